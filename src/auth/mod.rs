//! Who is calling and what they may do: token checks, the org rules of SPEC §4, and API-key sign-in.

pub mod api_key;
pub mod token;

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::AppState;
use crate::domain::{Timestamp, UserInfo};
use crate::error::Error;
use crate::store::Store;
pub use token::{Claims, TokenKeys};

/// The permissions this API checks, named as in the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Create,
    Get,
    Modify,
    Delete,
}

impl Permission {
    pub const ALL: [Permission; 4] = [Self::Create, Self::Get, Self::Modify, Self::Delete];

    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "Simulation:CreateSimulationUnitTest",
            Self::Get => "Simulation:GetSimulationUnitTest",
            Self::Modify => "Simulation:ModifySimulationUnitTest",
            Self::Delete => "Simulation:DeleteSimulationUnitTest",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The store a request's org lives in, once resolved (see [`crate::clusters`]).
#[derive(Clone)]
pub struct ClusterStore(pub Arc<dyn Store>);

/// Who a valid token says the caller is (before any org or permission is looked at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub org_id: String,
    pub user_id: String,
    /// The user's role in the token's org, as `identify` read it: acting in that org (nearly
    /// every request) needs no second lookup of the same record.
    pub role: String,
}

/// An authenticated caller acting in the path's org, with the permissions their role there grants.
#[derive(Clone)]
pub struct CurrentUser {
    /// The org of the path: where the request acts.
    pub org_id: String,
    /// The org that issued the token.
    pub token_org_id: String,
    pub user_id: String,
    permissions: Vec<Permission>,
    /// The store holding this org's data (its cluster).
    pub store: Arc<dyn Store>,
}

impl CurrentUser {
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
}

impl Authenticator {
    pub fn new(keys: TokenKeys) -> Self {
        Self { keys }
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
        let user = store.user(&claims.org_id, &claims.sub).await?;
        let Some(user) = user.filter(|u| !u.is_deleted) else {
            return Err(Error::Unauthorized("token user unknown or deleted"));
        };
        Ok(Identity {
            org_id: claims.org_id,
            user_id: claims.sub,
            role: user.role,
        })
    }

    /// Steps 4 and the role part of 5: the path's org exists (404), and what the caller's role
    /// there allows. In another org than the token's, the same user id needs a record there.
    pub async fn authorize(
        &self,
        store: Arc<dyn Store>,
        identity: Identity,
        path_org: &str,
    ) -> Result<CurrentUser, Error> {
        if store.organization(path_org).await?.is_none() {
            return Err(Error::OrganizationNotFound(path_org.to_owned()));
        }
        let role = if path_org == identity.org_id {
            Some(identity.role)
        } else {
            match store.user(path_org, &identity.user_id).await? {
                Some(u) if !u.is_deleted => Some(u.role),
                _ => None,
            }
        };
        let permissions = match role {
            Some(role) => role_permissions(store.as_ref(), path_org, &role).await?,
            None => Vec::new(),
        };
        Ok(CurrentUser {
            org_id: path_org.to_owned(),
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

    /// Exchanges an org API key for a token of one of the org's users.
    pub async fn sign_in_with_api_key(
        &self,
        store: &dyn Store,
        org_id: &str,
        key_id: &str,
        secret: &str,
        user_id: &str,
    ) -> Result<(String, Timestamp), Error> {
        if store.organization(org_id).await?.is_none() {
            return Err(Error::OrganizationNotFound(org_id.to_owned()));
        }
        let key = store.api_key(org_id, key_id).await?;
        let usable =
            key.filter(|k| !k.is_deleted && k.expires_at.is_none_or(|at| at > Timestamp::now()));
        let Some(key) = usable else {
            return Err(Error::Unauthorized("API key unknown, deleted or expired"));
        };
        let stored_hash = key.secret_hash.clone();
        let secret = secret.to_owned();
        // Argon2 takes tens of milliseconds of CPU on purpose: keep it off the async workers.
        let matches =
            tokio::task::spawn_blocking(move || api_key::verify_secret(&secret, &stored_hash))
                .await
                .map_err(|e| Error::Internal(format!("hash task failed: {e}")))?;
        if !matches {
            return Err(Error::Unauthorized("API key secret mismatch"));
        }
        match store.user(org_id, user_id).await? {
            Some(u) if !u.is_deleted => {}
            _ => return Err(Error::Unauthorized("sign-in user unknown or deleted")),
        }
        self.keys
            .issue(org_id, user_id)
            .map_err(|e| Error::Internal(e.to_string()))
    }
}

async fn role_permissions(
    store: &dyn Store,
    org_id: &str,
    role: &str,
) -> Result<Vec<Permission>, Error> {
    Ok(match role {
        "admin" => Permission::ALL.to_vec(),
        "viewer" => vec![Permission::Get],
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

/// The path's `{organization}` segment.
pub async fn path_org(parts: &mut Parts, state: &AppState) -> Result<String, Error> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| Error::RouteNotFound)?;
    params
        .iter()
        .find(|(name, _)| *name == "organization")
        .map(|(_, value)| value.to_owned())
        .ok_or(Error::RouteNotFound)
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let org = path_org(parts, state).await?;
        // The rate-limit layer has usually resolved the cluster and identified the caller already.
        let store = match parts.extensions.get::<ClusterStore>() {
            Some(ClusterStore(store)) => store.clone(),
            None => state.clusters.resolve(&org, &parts.headers).await?,
        };
        let identity = match parts.extensions.get::<Identity>() {
            Some(identity) => identity.clone(),
            None => state.auth.identify(store.as_ref(), &parts.headers).await?,
        };
        state.auth.authorize(store, identity, &org).await
    }
}
