//! HS256 tokens: issued by sign-in and `simtest token`, checked on every `/v1` request.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::OrgId;
use crate::domain::Timestamp;

/// Shortest signing secret accepted (bytes): HS256 wants at least the hash size.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why signing keys cannot be built, or a token cannot be signed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token secret must be at least {MIN_SECRET_BYTES} bytes")]
    SecretTooShort,
    #[error("the token maximum lifetime ({max} s) is shorter than the token TTL ({ttl} s)")]
    LifetimeBelowTtl { max: i64, ttl: i64 },
    #[error("cannot sign the token: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// The claims simtest writes and requires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub org_id: OrgId,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

/// Signing and checking keys with the issuer and lifetime they apply.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    ttl_seconds: i64,
    /// Longest `exp - iat` accepted (see [`TokenKeys::with_max_lifetime`]).
    max_lifetime_seconds: i64,
}

/// Allowed clock difference between the issuer and us, in seconds.
const LEEWAY_SECONDS: u64 = 30;

impl TokenKeys {
    pub fn new(secret: &[u8], issuer: &str, ttl_seconds: i64) -> Result<Self, TokenError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(TokenError::SecretTooShort);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            validation,
            issuer: issuer.to_owned(),
            ttl_seconds,
            max_lifetime_seconds: ttl_seconds
                .max(crate::config::DEFAULT_TOKEN_MAX_LIFETIME_SECONDS),
        })
    }

    /// Refuses tokens living longer than `seconds` (plus the leeway): a leaked token signed for a
    /// century, or by a tool that forgot `exp`'s unit, is not a key for life. At least the TTL.
    pub fn with_max_lifetime(mut self, seconds: i64) -> Result<Self, TokenError> {
        if seconds < self.ttl_seconds {
            return Err(TokenError::LifetimeBelowTtl {
                max: seconds,
                ttl: self.ttl_seconds,
            });
        }
        self.max_lifetime_seconds = seconds;
        Ok(self)
    }

    /// A token for `user_id` of `org_id`, and when it expires.
    pub fn issue(&self, org_id: &OrgId, user_id: &str) -> Result<(String, Timestamp), TokenError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_owned(),
            org_id: org_id.to_owned(),
            iat: now,
            exp: now + self.ttl_seconds,
            iss: self.issuer.clone(),
            nbf: None,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, Timestamp::from_millis(claims.exp * 1000)))
    }

    /// The claims of a genuine, current token of ours; the reason (for the log only) otherwise.
    pub fn verify(&self, token: &str) -> Result<Claims, &'static str> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token expired",
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => "token not yet valid",
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => "token from another issuer",
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "token signature mismatch",
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => "token algorithm refused",
                _ => "token malformed",
            })?
            .claims;
        if claims.iat > chrono::Utc::now().timestamp() + LEEWAY_SECONDS as i64 {
            return Err("token issued in the future");
        }
        if claims.exp.saturating_sub(claims.iat) > self.max_lifetime_seconds + LEEWAY_SECONDS as i64
        {
            return Err("token lifetime beyond the maximum");
        }
        if claims.sub.is_empty() || claims.org_id.is_empty() {
            return Err("token without subject or org");
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32], "simtest", 3600).unwrap()
    }

    #[test]
    fn issued_tokens_verify() {
        let (token, _) = keys().issue(&"acme".into(), "alice").unwrap();
        let claims = keys().verify(&token).unwrap();
        assert_eq!(
            (claims.org_id.as_str(), claims.sub.as_str()),
            ("acme", "alice")
        );
    }

    #[test]
    fn forged_tokens_are_refused() {
        let (token, _) = keys().issue(&"acme".into(), "alice").unwrap();
        let other = TokenKeys::new(&[8u8; 32], "simtest", 3600).unwrap();
        assert!(other.verify(&token).is_err(), "other secret");

        let parts: Vec<&str> = token.split('.').collect();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(
            keys()
                .verify(&format!("{none_header}.{}.", parts[1]))
                .is_err(),
            "alg none"
        );

        let tampered = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap())
                .unwrap()
                .replace("alice", "admin"),
        );
        assert!(
            keys()
                .verify(&format!("{}.{tampered}.{}", parts[0], parts[2]))
                .is_err(),
            "tampered"
        );

        let expired = TokenKeys::new(&[7u8; 32], "simtest", -3600)
            .unwrap()
            .issue(&"acme".into(), "alice")
            .unwrap()
            .0;
        assert_eq!(keys().verify(&expired).unwrap_err(), "token expired");

        let foreign = TokenKeys::new(&[7u8; 32], "elsewhere", 3600)
            .unwrap()
            .issue(&"acme".into(), "alice")
            .unwrap()
            .0;
        assert!(keys().verify(&foreign).is_err(), "issuer");
    }

    #[test]
    fn tokens_living_past_the_maximum_are_refused() {
        let long = TokenKeys::new(&[7u8; 32], "simtest", 86_400 * 365)
            .unwrap()
            .issue(&"acme".into(), "alice")
            .unwrap()
            .0;
        let keys = keys().with_max_lifetime(7200).unwrap();
        assert_eq!(
            keys.verify(&long).unwrap_err(),
            "token lifetime beyond the maximum"
        );
        assert!(
            keys.verify(&keys.issue(&"acme".into(), "alice").unwrap().0)
                .is_ok()
        );
        assert!(self::keys().with_max_lifetime(60).is_err(), "below the TTL");
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(TokenKeys::new(b"short", "simtest", 60).is_err());
    }
}
