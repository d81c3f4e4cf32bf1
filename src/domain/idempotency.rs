//! Safe retries (`Idempotency-Key`): the first answer to a create is kept per (org, user, key) for
//! 24 hours and replayed to retries. What a stored record means for a new request with the same
//! key is decided here, once, for both stores; the stores only make the read-decide-write atomic.

use serde::{Deserialize, Serialize};

use super::{OrgId, Timestamp, UserInfo};

/// Longest key accepted (the header's value).
pub const KEY_CHARS: usize = 255;
/// How long an answer is kept and replayed.
pub const KEEP_MILLIS: i64 = 24 * 60 * 60 * 1000;
/// How long a request may hold its key without answering before the key is taken as abandoned
/// (its server stopped mid-request): well past the request timeout, so a running request is never
/// taken for a dead one.
pub const ABANDONED_AFTER_MILLIS: i64 = 5 * 60 * 1000;

/// Whose key: the org acted in, the caller (token org and user), and the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyScope {
    pub org_id: OrgId,
    pub caller: UserInfo,
    pub key: String,
}

impl KeyScope {
    /// One string naming the scope (the stores' key), unambiguous whatever the parts hold: each
    /// part is length-prefixed.
    pub fn storage_key(&self) -> String {
        let parts = [
            self.org_id.as_str(),
            self.caller.org_id.as_str(),
            self.caller.user_id.as_str(),
            self.key.as_str(),
        ];
        parts
            .iter()
            .map(|p| format!("{}:{p}", p.len()))
            .collect::<Vec<_>>()
            .join("|")
    }
}

/// An answer as kept for replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptAnswer {
    pub status: u16,
    pub body: String,
    pub etag: Option<String>,
}

/// A key as stored: which request holds it (its fingerprint and a nonce of this attempt), since
/// when, and its answer once it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub scope: KeyScope,
    /// The request the key was first used for (method, path and body, hashed).
    pub fingerprint: String,
    /// This attempt's: only the request that claimed the key answers or releases it.
    pub nonce: String,
    pub started_at: Timestamp,
    pub answer: Option<KeptAnswer>,
}

/// What a request with a key finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this request's: run it, then keep or release its answer.
    Claimed,
    /// Another request with this key is still running.
    Running,
    /// The key was used for a different request.
    Mismatch,
    /// The first request's answer, to send again.
    Replay(KeptAnswer),
}

impl KeyRecord {
    /// Whether a new request may take the key over: the answer expired, or the request holding it
    /// never answered and is long gone.
    pub fn is_stale(&self, now: Timestamp) -> bool {
        let age = now.millis() - self.started_at.millis();
        age >= KEEP_MILLIS || (self.answer.is_none() && age >= ABANDONED_AFTER_MILLIS)
    }

    /// What `wanted` (a new request's record) finds when this one is stored and not stale.
    pub fn claim_by(&self, wanted: &KeyRecord) -> Claim {
        if self.fingerprint != wanted.fingerprint {
            return Claim::Mismatch;
        }
        match &self.answer {
            Some(answer) => Claim::Replay(answer.clone()),
            None => Claim::Running,
        }
    }
}

/// Whether an answer is kept for replay: the outcomes of a request that ran (2xx, and 4xx the
/// request itself caused, such as 404 or 409). Not kept, so a retry runs again: credentials and
/// permissions (401, 403), throttling (429), bodies refused before running (413, 422), and every
/// 5xx (nothing was written).
pub fn keeps(status: u16) -> bool {
    (200..500).contains(&status) && !matches!(status, 401 | 403 | 408 | 413 | 422 | 429)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fingerprint: &str, started: i64, answer: Option<u16>) -> KeyRecord {
        KeyRecord {
            scope: KeyScope {
                org_id: "acme".into(),
                caller: UserInfo {
                    org_id: "acme".into(),
                    user_id: "alice".into(),
                },
                key: "k".into(),
            },
            fingerprint: fingerprint.into(),
            nonce: "n".into(),
            started_at: Timestamp::from_millis(started),
            answer: answer.map(|status| KeptAnswer {
                status,
                body: "{}".into(),
                etag: None,
            }),
        }
    }

    #[test]
    fn a_stored_key_is_replayed_running_mismatched_or_stale() {
        let wanted = record("f", 0, None);
        assert_eq!(record("g", 0, Some(201)).claim_by(&wanted), Claim::Mismatch);
        assert_eq!(record("f", 0, None).claim_by(&wanted), Claim::Running);
        assert!(
            matches!(record("f", 0, Some(201)).claim_by(&wanted), Claim::Replay(a) if a.status == 201)
        );
        let now = Timestamp::from_millis(ABANDONED_AFTER_MILLIS);
        assert!(record("f", 0, None).is_stale(now), "abandoned");
        assert!(
            !record("f", 0, Some(201)).is_stale(now),
            "answers are kept a day"
        );
        assert!(record("f", 0, Some(201)).is_stale(Timestamp::from_millis(KEEP_MILLIS)));
    }

    #[test]
    fn scopes_cannot_be_spelled_two_ways() {
        let scope = |org: &str, user: &str, key: &str| KeyScope {
            org_id: org.into(),
            caller: UserInfo {
                org_id: org.into(),
                user_id: user.into(),
            },
            key: key.into(),
        };
        assert_ne!(
            scope("a", "b|c", "d").storage_key(),
            scope("a", "b", "c|d").storage_key()
        );
    }

    #[test]
    fn only_answers_of_requests_that_ran_are_kept() {
        for kept in [200, 201, 204, 400, 404, 409, 412] {
            assert!(keeps(kept), "{kept}");
        }
        for not in [401, 403, 413, 422, 429, 500, 503] {
            assert!(!keeps(not), "{not}");
        }
    }
}
