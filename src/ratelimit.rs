//! Per-user, per-endpoint budgets (SPEC §5): one keyed GCRA limiter (governor) per limited action.
//! Keys are fixed-size digests, so a key costs the same memory whatever value it is made of, and
//! idle keys are dropped periodically, so memory stays bounded however many callers pass through.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};

/// Each rate-limited action, with its default budget per minute and the setting that changes it
/// (`--rate-limit-…` / `SIMTEST_RATE_LIMIT_…`; see [`crate::config::RateLimitArgs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    CreateUnitTest,
    ListUnitTests,
    SearchUnitTests,
    UpdateUnitTest,
    DeleteUnitTest,
    /// simtest's read-one operation.
    GetUnitTest,
    /// simtest's clone operation.
    CloneUnitTest,
    /// simtest's history operation.
    UnitTestHistory,
    /// simtest's hard delete.
    HardDeleteUnitTest,
    /// simtest's export operation (each a stream of many unit tests).
    ExportUnitTests,
    /// simtest's import operation (each many creates).
    ImportUnitTests,
    CreateUnitTestSet,
    ListUnitTestSets,
    SearchUnitTestSets,
    UpdateUnitTestSet,
    DeleteUnitTestSet,
    /// Keyed by (org, API key id), not by user: this is what throttles guessing of a key's secret.
    SignIn,
    /// Sign-ins per client address, over every org and key id: guessing spread over many key ids
    /// (each with a fresh [`Limited::SignIn`] budget) is throttled here, before any key is kept.
    SignInPerAddress,
}

impl Limited {
    pub const ALL: [Limited; 18] = [
        Self::CreateUnitTest,
        Self::ListUnitTests,
        Self::SearchUnitTests,
        Self::UpdateUnitTest,
        Self::DeleteUnitTest,
        Self::GetUnitTest,
        Self::CloneUnitTest,
        Self::UnitTestHistory,
        Self::HardDeleteUnitTest,
        Self::ExportUnitTests,
        Self::ImportUnitTests,
        Self::CreateUnitTestSet,
        Self::ListUnitTestSets,
        Self::SearchUnitTestSets,
        Self::UpdateUnitTestSet,
        Self::DeleteUnitTestSet,
        Self::SignIn,
        Self::SignInPerAddress,
    ];

    pub fn default_per_minute(self) -> u32 {
        match self {
            Self::CreateUnitTest
            | Self::UpdateUnitTest
            | Self::DeleteUnitTest
            | Self::CloneUnitTest => 500,
            // A read of one is cheaper than a list page; as many as lists.
            Self::ListUnitTests | Self::GetUnitTest | Self::UnitTestHistory => 200,
            Self::SearchUnitTests => 50,
            // Each reads or writes many unit tests.
            Self::ExportUnitTests | Self::ImportUnitTests => 20,
            Self::HardDeleteUnitTest => 50,
            // The original's budget for each of its set endpoints.
            Self::CreateUnitTestSet
            | Self::ListUnitTestSets
            | Self::SearchUnitTestSets
            | Self::UpdateUnitTestSet
            | Self::DeleteUnitTestSet => 50,
            Self::SignIn => 5,
            // Generous: a CI fleet behind one NAT address signs in often, a guesser far more.
            Self::SignInPerAddress => 120,
        }
    }

    /// Label in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::CreateUnitTest => "create",
            Self::ListUnitTests => "list",
            Self::SearchUnitTests => "search",
            Self::UpdateUnitTest => "update",
            Self::DeleteUnitTest => "delete",
            Self::GetUnitTest => "get",
            Self::CloneUnitTest => "clone",
            Self::UnitTestHistory => "history",
            Self::HardDeleteUnitTest => "hard_delete",
            Self::ExportUnitTests => "export",
            Self::ImportUnitTests => "import",
            Self::CreateUnitTestSet => "create_set",
            Self::ListUnitTestSets => "list_sets",
            Self::SearchUnitTestSets => "search_sets",
            Self::UpdateUnitTestSet => "update_set",
            Self::DeleteUnitTestSet => "delete_set",
            Self::SignIn => "sign_in",
            Self::SignInPerAddress => "sign_in_per_address",
        }
    }

    /// The command-line flag setting this budget (without `--`).
    pub fn flag(self) -> &'static str {
        match self {
            Self::CreateUnitTest => "rate-limit-create",
            Self::ListUnitTests => "rate-limit-list",
            Self::SearchUnitTests => "rate-limit-search",
            Self::UpdateUnitTest => "rate-limit-update",
            Self::DeleteUnitTest => "rate-limit-delete",
            Self::GetUnitTest => "rate-limit-get",
            Self::CloneUnitTest => "rate-limit-clone",
            Self::UnitTestHistory => "rate-limit-history",
            Self::HardDeleteUnitTest => "rate-limit-hard-delete",
            Self::ExportUnitTests => "rate-limit-export",
            Self::ImportUnitTests => "rate-limit-import",
            Self::CreateUnitTestSet => "rate-limit-create-set",
            Self::ListUnitTestSets => "rate-limit-list-sets",
            Self::SearchUnitTestSets => "rate-limit-search-sets",
            Self::UpdateUnitTestSet => "rate-limit-update-set",
            Self::DeleteUnitTestSet => "rate-limit-delete-set",
            Self::SignIn => "rate-limit-sign-in",
            Self::SignInPerAddress => "rate-limit-sign-in-per-address",
        }
    }

    /// The environment variable setting this budget.
    pub fn env(self) -> &'static str {
        match self {
            Self::CreateUnitTest => "SIMTEST_RATE_LIMIT_CREATE",
            Self::ListUnitTests => "SIMTEST_RATE_LIMIT_LIST",
            Self::SearchUnitTests => "SIMTEST_RATE_LIMIT_SEARCH",
            Self::UpdateUnitTest => "SIMTEST_RATE_LIMIT_UPDATE",
            Self::DeleteUnitTest => "SIMTEST_RATE_LIMIT_DELETE",
            Self::GetUnitTest => "SIMTEST_RATE_LIMIT_GET",
            Self::CloneUnitTest => "SIMTEST_RATE_LIMIT_CLONE",
            Self::UnitTestHistory => "SIMTEST_RATE_LIMIT_HISTORY",
            Self::HardDeleteUnitTest => "SIMTEST_RATE_LIMIT_HARD_DELETE",
            Self::ExportUnitTests => "SIMTEST_RATE_LIMIT_EXPORT",
            Self::ImportUnitTests => "SIMTEST_RATE_LIMIT_IMPORT",
            Self::CreateUnitTestSet => "SIMTEST_RATE_LIMIT_CREATE_SET",
            Self::ListUnitTestSets => "SIMTEST_RATE_LIMIT_LIST_SETS",
            Self::SearchUnitTestSets => "SIMTEST_RATE_LIMIT_SEARCH_SETS",
            Self::UpdateUnitTestSet => "SIMTEST_RATE_LIMIT_UPDATE_SET",
            Self::DeleteUnitTestSet => "SIMTEST_RATE_LIMIT_DELETE_SET",
            Self::SignIn => "SIMTEST_RATE_LIMIT_SIGN_IN",
            Self::SignInPerAddress => "SIMTEST_RATE_LIMIT_SIGN_IN_PER_ADDRESS",
        }
    }

    /// What the budget counts, for `--help`.
    pub fn help(self) -> &'static str {
        match self {
            Self::CreateUnitTest => "Creates per user per minute (0 = unlimited)",
            Self::ListUnitTests => "Lists per user per minute (0 = unlimited)",
            Self::SearchUnitTests => "Searches per user per minute (0 = unlimited)",
            Self::UpdateUnitTest => "Updates per user per minute (0 = unlimited)",
            Self::DeleteUnitTest => "Deletes per user per minute (0 = unlimited)",
            Self::GetUnitTest => "Reads of one unit test per user per minute (0 = unlimited)",
            Self::CloneUnitTest => "Clones per user per minute (0 = unlimited)",
            Self::UnitTestHistory => "History pages per user per minute (0 = unlimited)",
            Self::HardDeleteUnitTest => "Hard deletes per user per minute (0 = unlimited)",
            Self::ExportUnitTests => "Exports per user per minute (0 = unlimited)",
            Self::ImportUnitTests => "Imports per user per minute (0 = unlimited)",
            Self::CreateUnitTestSet => "Set creates per user per minute (0 = unlimited)",
            Self::ListUnitTestSets => "Set lists per user per minute (0 = unlimited)",
            Self::SearchUnitTestSets => "Set searches per user per minute (0 = unlimited)",
            Self::UpdateUnitTestSet => "Set updates per user per minute (0 = unlimited)",
            Self::DeleteUnitTestSet => "Set deletes per user per minute (0 = unlimited)",
            Self::SignIn => "Sign-ins per (org, API key id) per minute (0 = unlimited)",
            Self::SignInPerAddress => {
                "Sign-ins per client address per minute, over every org and key (0 = unlimited)"
            }
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A budget per minute for each [`Limited`] action, set and read by action only; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets([u32; Limited::ALL.len()]);

impl Default for Budgets {
    fn default() -> Self {
        Self(Limited::ALL.map(Limited::default_per_minute))
    }
}

impl Budgets {
    pub fn off() -> Self {
        Self([0; Limited::ALL.len()])
    }

    pub fn get(&self, action: Limited) -> u32 {
        self.0[action.index()]
    }

    pub fn set(&mut self, action: Limited, per_minute: u32) {
        self.0[action.index()] = per_minute;
    }
}

/// What a check decided, with the figures for the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds at which the whole budget is available again.
    pub reset_unix: i64,
    /// Set when the request is refused: whole seconds until one more is admitted.
    pub retry_after_secs: Option<u64>,
}

/// A limiter key: a digest of the parts that identify the caller (user, API key, address), so every
/// key takes 16 bytes whatever the parts' length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LimitKey([u8; 16]);

impl LimitKey {
    pub fn of(parts: &[&str]) -> Self {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for part in parts {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
        let digest = hash.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        Self(key)
    }
}

struct Limiter {
    per_minute: u32,
    inner: DefaultKeyedRateLimiter<LimitKey, StateInformationMiddleware>,
}

pub struct RateLimits {
    limiters: Vec<Option<Limiter>>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new(budgets: Budgets) -> Self {
        let limiters = Limited::ALL
            .iter()
            .map(|action| {
                NonZeroU32::new(budgets.get(*action)).map(|n| Limiter {
                    per_minute: n.get(),
                    inner: DefaultKeyedRateLimiter::keyed(Quota::per_minute(n))
                        .with_middleware::<StateInformationMiddleware>(),
                })
            })
            .collect();
        Self {
            limiters,
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `key`'s budget for `action`; `None` when that action is not limited.
    pub fn check(&self, action: Limited, key: LimitKey) -> Option<Decision> {
        let limiter = self.limiters[action.index()].as_ref()?;
        let limit = limiter.per_minute;
        // GCRA replenishes one request every `interval`.
        let interval = Duration::from_secs(60) / limit;
        let now_unix = chrono::Utc::now().timestamp_millis();
        let at = |wait: Duration| (now_unix + wait.as_millis() as i64 + 999) / 1000;
        Some(match limiter.inner.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    limit,
                    remaining,
                    reset_unix: at(interval * (limit - remaining)),
                    retry_after_secs: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Decision {
                    limit,
                    remaining: 0,
                    reset_unix: at(wait + interval * (limit - 1)),
                    retry_after_secs: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                }
            }
        })
    }

    /// Forgets keys whose budget is full again (they behave exactly like unseen keys).
    pub fn forget_idle(&self) {
        for limiter in self.limiters.iter().flatten() {
            limiter.inner.retain_recent();
            limiter.inner.shrink_to_fit();
        }
    }

    /// Whether `action` is limited at all.
    pub fn is_on(&self, action: Limited) -> bool {
        self.limiters[action.index()].is_some()
    }

    /// Keys currently remembered, over all actions.
    pub fn tracked_keys(&self) -> usize {
        self.limiters.iter().flatten().map(|l| l.inner.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_spent_then_refused_with_retry_after() {
        let mut budgets = Budgets::off();
        budgets.set(Limited::SignIn, 3);
        let limits = RateLimits::new(budgets);
        let remaining: Vec<u32> = (0..3)
            .map(|_| {
                limits
                    .check(Limited::SignIn, LimitKey::of(&["k"]))
                    .unwrap()
                    .remaining
            })
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limits.check(Limited::SignIn, LimitKey::of(&["k"])).unwrap();
        assert_eq!(refused.remaining, 0);
        let retry = refused.retry_after_secs.expect("refused");
        assert!(
            (1..=20).contains(&retry),
            "one request per 20 s comes back: {retry}"
        );
    }

    #[test]
    fn keys_and_actions_do_not_share_budgets() {
        let mut budgets = Budgets::off();
        budgets.set(Limited::SignIn, 1);
        budgets.set(Limited::SearchUnitTests, 1);
        let limits = RateLimits::new(budgets);
        assert!(
            limits
                .check(Limited::SignIn, LimitKey::of(&["a"]))
                .unwrap()
                .retry_after_secs
                .is_none()
        );
        assert!(
            limits
                .check(Limited::SignIn, LimitKey::of(&["a"]))
                .unwrap()
                .retry_after_secs
                .is_some()
        );
        assert!(
            limits
                .check(Limited::SignIn, LimitKey::of(&["b"]))
                .unwrap()
                .retry_after_secs
                .is_none(),
            "another key"
        );
        assert!(
            limits
                .check(Limited::SearchUnitTests, LimitKey::of(&["a"]))
                .unwrap()
                .retry_after_secs
                .is_none(),
            "another action"
        );
        assert!(
            limits
                .check(Limited::ListUnitTests, LimitKey::of(&["a"]))
                .is_none(),
            "0 means off"
        );
    }

    #[test]
    fn every_action_has_its_own_slot_flag_and_env() {
        for (i, action) in Limited::ALL.into_iter().enumerate() {
            assert_eq!(action.index(), i, "ALL is in declaration order");
            assert_eq!(
                action.env(),
                format!("SIMTEST_{}", action.flag().replace('-', "_").to_uppercase())
            );
        }
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let limits = RateLimits::new(Budgets::default());
        for i in 0..1000 {
            limits.check(
                Limited::ListUnitTests,
                LimitKey::of(&[&format!("user-{i}")]),
            );
        }
        assert_eq!(limits.tracked_keys(), 1000);
        // Nothing has replenished yet: spent keys are kept.
        limits.forget_idle();
        assert!(limits.tracked_keys() > 0);
    }
}
