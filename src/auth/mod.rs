//! Who is calling and what they may do: token checks, the org rules of SPEC §4, and API-key sign-in.

pub mod api_key;
pub mod token;

use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use tokio::sync::Semaphore;

use crate::config::SignInSettings;
use crate::domain::{OrgId, Timestamp, UserId, UserInfo};
use crate::error::Error;
use crate::store::{Store, User};
pub use token::{Claims, TokenKeys};

/// The permissions this API checks, named as in the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Create,
    Get,
    Modify,
    Delete,
    CreateSet,
    GetSet,
    ModifySet,
    DeleteSet,
    /// simtest's hard delete of a soft-deleted unit test (admins; roles may grant it).
    HardDelete,
}

impl Permission {
    pub const ALL: [Permission; 9] = [
        Self::Create,
        Self::Get,
        Self::Modify,
        Self::Delete,
        Self::CreateSet,
        Self::GetSet,
        Self::ModifySet,
        Self::DeleteSet,
        Self::HardDelete,
    ];

    /// What the built-in `viewer` role may do: read.
    pub const READ: [Permission; 2] = [Self::Get, Self::GetSet];

    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "Simulation:CreateSimulationUnitTest",
            Self::Get => "Simulation:GetSimulationUnitTest",
            Self::Modify => "Simulation:ModifySimulationUnitTest",
            Self::Delete => "Simulation:DeleteSimulationUnitTest",
            Self::CreateSet => "Simulation:CreateSimulationUnitTestSet",
            Self::GetSet => "Simulation:GetSimulationUnitTestSet",
            Self::ModifySet => "Simulation:ModifySimulationUnitTestSet",
            Self::DeleteSet => "Simulation:DeleteSimulationUnitTestSet",
            Self::HardDelete => "Simulation:HardDeleteSimulationUnitTest",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The request's org, decoded and validated once, and the store its data lives in (its cluster,
/// see [`crate::clusters`]). Set by the first step of every `/v1` request; everything after reads
/// the org from here.
#[derive(Clone)]
pub struct RequestOrg {
    pub org: OrgId,
    pub store: Arc<dyn Store>,
}

/// Who a valid token says the caller is (before any org or permission is looked at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub org_id: OrgId,
    pub user_id: UserId,
    /// The user's role in the token's org, as `identify` read it: acting in that org (nearly
    /// every request) needs no second lookup of the same record.
    pub role: String,
}

/// An authenticated caller acting in the path's org, with the permissions their role there grants.
#[derive(Clone)]
pub struct CurrentUser {
    /// The org of the path: where the request acts.
    pub org_id: OrgId,
    /// The org that issued the token.
    pub token_org_id: OrgId,
    pub user_id: UserId,
    permissions: Vec<Permission>,
    /// The store holding this org's data (its cluster).
    pub store: Arc<dyn Store>,
}

impl CurrentUser {
    /// The operator at the command line (`simtest import`): every permission in `org`, recorded
    /// as `user` of that org.
    pub fn operator(org: OrgId, user: UserId, store: Arc<dyn Store>) -> Self {
        Self {
            token_org_id: org.clone(),
            org_id: org,
            user_id: user,
            permissions: Permission::ALL.to_vec(),
            store,
        }
    }

    pub fn can(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    pub fn require(&self, permission: Permission) -> Result<(), Error> {
        if self.can(permission) {
            Ok(())
        } else {
            Err(Error::Forbidden(permission.name()))
        }
    }

    /// How this caller is recorded as `creator` / `updated_by`.
    pub fn info(&self) -> UserInfo {
        UserInfo {
            org_id: self.token_org_id.clone(),
            user_id: self.user_id.clone(),
        }
    }
}

/// Checks credentials against the signing keys and the store of the request's cluster.
pub struct Authenticator {
    keys: TokenKeys,
    sign_in: SignInSettings,
    /// One permit per Argon2 verification allowed to run at once.
    verification_slots: Arc<Semaphore>,
    /// Checked instead of a stored hash when the key is unknown, deleted or expired.
    dummy_hash: String,
    verifications: AtomicU64,
}

impl Authenticator {
    pub fn new(keys: TokenKeys, sign_in: SignInSettings) -> Self {
        Self {
            keys,
            sign_in,
            verification_slots: Arc::new(Semaphore::new(sign_in.max_concurrent_verifications)),
            dummy_hash: api_key::hash_secret(&api_key::generate_secret())
                .expect("hashing a generated secret"),
            verifications: AtomicU64::new(0),
        }
    }

    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// Step 2 of the contract's order: a genuine token of a live user (401 otherwise).
    pub async fn identify(
        &self,
        store: &dyn Store,
        headers: &HeaderMap,
    ) -> Result<Identity, Error> {
        let claims = self.claims(headers)?;
        if let Some(issuer_org) = headers.get("x-org-id")
            && issuer_org.to_str().ok() != Some(claims.org_id.as_str())
        {
            return Err(Error::Unauthorized("X-ORG-ID differs from the token's org"));
        }
        let user_id = UserId::from(claims.sub);
        let user = store.user(&claims.org_id, &user_id).await?;
        // A grant record is another org's user: it cannot be the subject of this org's token.
        let Some(user) = user.filter(User::is_member) else {
            return Err(Error::Unauthorized(
                "token user unknown, deleted or a grant",
            ));
        };
        Ok(Identity {
            org_id: claims.org_id,
            user_id,
            role: user.role,
        })
    }

    /// Steps 4 and the role part of 5: the path's org exists (404), and what the caller's role
    /// there allows. In another org than the token's, only an explicit grant counts: a record in
    /// the path's org naming the token's org as the user's home (SPEC §4). A same-named user of
    /// the path's org is someone else and grants nothing.
    pub async fn authorize(
        &self,
        store: Arc<dyn Store>,
        identity: Identity,
        path_org: &OrgId,
    ) -> Result<CurrentUser, Error> {
        if store.organization(path_org).await?.is_none() {
            return Err(Error::OrganizationNotFound(path_org.to_string()));
        }
        let role = if *path_org == identity.org_id {
            Some(identity.role)
        } else {
            store
                .user(path_org, &identity.user_id)
                .await?
                .filter(|u| u.grants(&identity.org_id))
                .map(|u| u.role)
        };
        let permissions = match role {
            Some(role) => role_permissions(store.as_ref(), path_org, &role).await?,
            None => Vec::new(),
        };
        Ok(CurrentUser {
            org_id: path_org.clone(),
            token_org_id: identity.org_id,
            user_id: identity.user_id,
            permissions,
            store,
        })
    }

    /// The token's claims, from `Bearer <jwt>` or `Basic base64({org}_{user}:<jwt>)`.
    fn claims(&self, headers: &HeaderMap) -> Result<Claims, Error> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(Error::Unauthorized("no Authorization header"))?;
        let (scheme, rest) = value
            .split_once(' ')
            .ok_or(Error::Unauthorized("malformed Authorization header"))?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.keys.verify(rest).map_err(Error::Unauthorized);
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(Error::Unauthorized("unsupported Authorization scheme"));
        }
        let decoded = STANDARD
            .decode(rest)
            .map_err(|_| Error::Unauthorized("Basic credentials not base64"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| Error::Unauthorized("Basic credentials not UTF-8"))?;
        let (username, token) = decoded
            .split_once(':')
            .ok_or(Error::Unauthorized("Basic credentials without password"))?;
        let claims = self.keys.verify(token).map_err(Error::Unauthorized)?;
        if username != format!("{}_{}", claims.org_id, claims.sub) {
            return Err(Error::Unauthorized(
                "Basic username does not match the token",
            ));
        }
        Ok(claims)
    }

    /// How many API key secrets have been checked against a hash (real or dummy): every sign-in
    /// that reaches the check costs exactly one, whether or not its key exists.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Exchanges an org API key for a token of one of the org's users.
    ///
    /// Unknown, deleted and expired keys are checked against a dummy hash, so they take the path
    /// and the time of a real key with a wrong secret: timing does not tell which key ids exist.
    /// Verifications run through a pool no wider than the configured limit (Argon2 takes ~19 MiB
    /// and tens of milliseconds each); a sign-in that waits too long for a slot gets 503.
    pub async fn sign_in_with_api_key(
        &self,
        store: &dyn Store,
        org: &OrgId,
        key_id: &str,
        secret: &str,
        user_id: &UserId,
    ) -> Result<(String, Timestamp), Error> {
        if store.organization(org).await?.is_none() {
            return Err(Error::OrganizationNotFound(org.to_string()));
        }
        let key = store.api_key(org, key_id).await?;
        let usable =
            key.filter(|k| !k.is_deleted && k.expires_at.is_none_or(|at| at > Timestamp::now()));
        let stored_hash = match &usable {
            Some(key) => key.secret_hash.clone(),
            None => self.dummy_hash.clone(),
        };
        let matches = self.verify(secret, stored_hash).await?;
        let refused = match (usable, matches) {
            (None, _) => Some("API key unknown, deleted or expired"),
            (Some(_), false) => Some("API key secret mismatch"),
            (Some(_), true) => match store.user(org, user_id).await? {
                Some(u) if u.is_member() => None,
                _ => Some("sign-in user unknown, deleted or a grant"),
            },
        };
        if let Some(reason) = refused {
            // For operators watching for guessing: who was tried, never with what.
            tracing::warn!(org = %org, key_id, user = %user_id, reason, "sign-in refused");
            return Err(Error::Unauthorized(reason));
        }
        self.keys
            .issue(org, user_id.as_str())
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// One Argon2 check in the blocking pool, once a verification slot is free.
    async fn verify(&self, secret: &str, stored_hash: String) -> Result<bool, Error> {
        let slot = tokio::time::timeout(
            self.sign_in.max_wait,
            self.verification_slots.clone().acquire_owned(),
        )
        .await;
        let Ok(Ok(slot)) = slot else {
            return Err(Error::SignInBusy);
        };
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let secret = secret.to_owned();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            api_key::verify_secret(&secret, &stored_hash)
        })
        .await
        .map_err(|e| Error::Internal(format!("hash task failed: {e}")))
    }
}

async fn role_permissions(
    store: &dyn Store,
    org_id: &OrgId,
    role: &str,
) -> Result<Vec<Permission>, Error> {
    Ok(match role {
        "admin" => Permission::ALL.to_vec(),
        "viewer" => Permission::READ.to_vec(),
        other => match store.role(org_id, other).await? {
            Some(r) => r
                .permissions
                .iter()
                .filter_map(|p| Permission::from_name(p))
                .collect(),
            None => Vec::new(),
        },
    })
}

impl<S> FromRequestParts<S> for CurrentUser
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    /// The permissions step: the org and the caller were settled by the layers before it
    /// (`api::pipeline`); this only looks up what the caller may do there.
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let org = parts
            .extensions
            .get::<RequestOrg>()
            .cloned()
            .ok_or_else(|| Error::Internal("route without the org step".into()))?;
        let identity = parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(|| Error::Internal("route without the authentication step".into()))?;
        let auth = Arc::<Authenticator>::from_ref(state);
        auth.authorize(org.store, identity, &org.org).await
    }
}
