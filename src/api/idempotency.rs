//! `Idempotency-Key` on the operations that create (simtest's own, beyond Amigo's API): the
//! first answer to a request with a key is kept per (org, caller, key) for 24 hours and sent
//! again to a retry, so a client that lost an answer can retry without creating twice. The same
//! key with a different request is 422 (problem `idempotency_key_reused` at the header); a retry while the first request
//! is still running is 409 `idempotency_key_in_use`. Which answers are kept, and what a stored
//! record means for a new request, is `domain::idempotency`'s.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::Arc;

use super::pipeline::request_org;
use crate::AppState;
use crate::auth::Identity;
use crate::domain::Timestamp;
use crate::domain::UserInfo;
use crate::domain::idempotency::{Claim, KEY_CHARS, KeptAnswer, KeyRecord, KeyScope, keeps};
use crate::domain::problems::{Loc, Problems};
use crate::error::Error;
use crate::store::Store;

pub const HEADER: &str = "idempotency-key";
/// Set on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";

/// The layer: passes requests without the header through untouched.
pub async fn idempotent(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(raw) = request.headers().get(HEADER) else {
        return next.run(request).await;
    };
    let key = match raw.to_str().ok().filter(|k| valid(k)) {
        Some(key) => key.to_owned(),
        None => {
            let mut p = Problems::default();
            p.push(
                &Loc::root("header").key(HEADER),
                "idempotency_key",
                format!("An Idempotency-Key is 1 to {KEY_CHARS} visible ASCII characters"),
            );
            return Error::Invalid(p.into_vec()).into_response();
        }
    };
    match run_once(&state, key, request, next).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

fn valid(key: &str) -> bool {
    !key.is_empty() && key.len() <= KEY_CHARS && key.bytes().all(|b| b.is_ascii_graphic())
}

async fn run_once(
    state: &AppState,
    key: String,
    request: Request,
    next: Next,
) -> Result<Response, Error> {
    let org = request_org(&request)?;
    let identity = request
        .extensions()
        .get::<Identity>()
        .cloned()
        .ok_or_else(|| Error::Internal("route without the authentication step".into()))?;
    let (parts, body) = request.into_parts();
    // The largest body any route takes (an import's may be larger than others').
    let body = to_bytes(body, state.max_body_bytes.max(state.import_max_bytes))
        .await
        .map_err(|_| Error::PayloadTooLarge)?;
    let mut hash = Sha256::new();
    hash.update(parts.method.as_str());
    hash.update([0]);
    hash.update(parts.uri.path());
    hash.update([0]);
    hash.update(&body);
    let mut record = KeyRecord {
        scope: KeyScope {
            org_id: org.org.clone(),
            caller: UserInfo {
                org_id: identity.org_id.clone(),
                user_id: identity.user_id.clone(),
            },
            key,
        },
        fingerprint: hex::encode(hash.finalize()),
        nonce: uuid::Uuid::new_v4().to_string(),
        started_at: Timestamp::now(),
        answer: None,
    };
    match org.store.claim_key(&record).await? {
        Claim::Claimed => {}
        Claim::Running => return Err(Error::IdempotencyKeyInUse),
        Claim::Mismatch => {
            // A 422 like every other: the problem located at the header.
            let mut p = Problems::default();
            p.push(
                &Loc::root("header").key(HEADER),
                "idempotency_key_reused",
                "This Idempotency-Key was used for a different request",
            );
            return Err(Error::Invalid(p.into_vec()));
        }
        Claim::Replay(answer) => return Ok(replay(answer)),
    }
    // Should this future be dropped before it answers (the client went away, the request timed
    // out), the key is released at once rather than held until it counts as abandoned.
    let mut release = Release {
        store: org.store.clone(),
        record: Some(record.clone()),
    };
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    release.record = None;
    let (mut parts, body) = response.into_parts();
    let body = match to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => {
            // The answer was lost on its way out: release the key so a retry runs.
            org.store.finish_key(&record).await?;
            return Err(Error::Internal(format!("cannot read an answer: {e}")));
        }
    };
    if keeps(parts.status.as_u16()) {
        record.answer = Some(KeptAnswer {
            status: parts.status.as_u16(),
            body: String::from_utf8_lossy(&body).into_owned(),
            etag: parts
                .headers
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
    }
    if let Err(e) = org.store.finish_key(&record).await {
        // The write is done and its answer goes out; only a retry of it will wait (409) until
        // the claim is taken for abandoned.
        tracing::warn!(error = %e, "cannot keep an idempotent answer");
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// Releases a claimed key when dropped while still holding it.
struct Release {
    store: Arc<dyn Store>,
    record: Option<KeyRecord>,
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(error) = store.finish_key(&record).await {
                    tracing::warn!(%error, "cannot release an idempotency key");
                }
            });
        }
    }
}

fn replay(answer: KeptAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    if let Some(etag) = answer.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        headers.insert(header::ETAG, etag);
    }
    response
}
