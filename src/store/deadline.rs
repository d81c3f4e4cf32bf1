//! A request's deadline as the stores see it. The guarantee it carries: a request is answered
//! 503 `request_timeout` only if none of its writes committed, and a write that commits is
//! answered with its real outcome, however late.
//!
//! Both sides decide through one atomic state, so they cannot both win: the timeout layer
//! ([`Deadline::expire`]) and a store about to commit ([`Deadline::begin_commit`]). Whichever moves
//! the state first decides; a store that loses aborts its transaction (nothing written), a timeout
//! that loses waits for the commit's outcome instead of answering 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::time::Instant;

const OPEN: u8 = 0;
const COMMITTING: u8 = 1;
const EXPIRED: u8 = 2;

tokio::task_local! {
    static CURRENT: Arc<Deadline>;
}

/// The deadline of one request.
#[derive(Debug)]
pub struct Deadline {
    at: Instant,
    state: AtomicU8,
}

/// The request was (or is about to be) answered 503 `request_timeout`: the write must not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlinePassed;

impl Deadline {
    pub fn new(after: Duration) -> Arc<Self> {
        Arc::new(Self {
            at: Instant::now() + after,
            state: AtomicU8::new(OPEN),
        })
    }

    /// When the request's time is up.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// Runs `work` (a request's handling) with this deadline visible to the stores it calls.
    pub async fn scope<F: Future>(self: Arc<Self>, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    /// The deadline of the request being handled on this task, if any (none for seeding, the CLI,
    /// or work outside a request).
    pub fn current() -> Option<Arc<Deadline>> {
        CURRENT.try_with(Arc::clone).ok()
    }

    /// Called by a store right before it commits a write (the embedded store) or sends it
    /// (MongoDB). `Ok`: go ahead; the request now waits for this write's outcome. `Err`: the time is
    /// up and the request gets 503 `request_timeout`; the write must be dropped.
    pub fn begin_commit(&self) -> Result<(), DeadlinePassed> {
        if Instant::now() >= self.at {
            // Checked here too, not only by the timer: the timer may fire a little late.
            let _ = self.cas(OPEN, EXPIRED);
            return Err(DeadlinePassed);
        }
        match self.cas(OPEN, COMMITTING) {
            Ok(()) => Ok(()),
            Err(COMMITTING) => Ok(()),
            Err(_) => Err(DeadlinePassed),
        }
    }

    /// Called when the time is up. `true`: no write began committing, and none will: answer 503.
    /// `false`: a write is committing; its outcome must be awaited and sent.
    pub fn expire(&self) -> bool {
        match self.cas(OPEN, EXPIRED) {
            Ok(()) => true,
            Err(state) => state == EXPIRED,
        }
    }

    /// Whether the request's time was declared up (so nothing of it was written).
    pub fn expired(&self) -> bool {
        self.state.load(Ordering::Acquire) == EXPIRED
    }

    /// Time left before the deadline (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    fn cas(&self, from: u8, to: u8) -> Result<(), u8> {
        self.state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_and_a_timeout_cannot_both_win() {
        let d = Deadline::new(Duration::from_secs(60));
        assert_eq!(d.begin_commit(), Ok(()));
        assert!(!d.expire(), "a commit under way is waited for");
        assert!(!d.expired());

        let d = Deadline::new(Duration::from_secs(60));
        assert!(d.expire());
        assert_eq!(d.begin_commit(), Err(DeadlinePassed), "too late to write");
        assert!(d.expired());
    }

    #[test]
    fn a_passed_deadline_refuses_a_commit_before_the_timer_fires() {
        let d = Deadline::new(Duration::ZERO);
        assert_eq!(d.begin_commit(), Err(DeadlinePassed));
        assert!(d.expire() && d.expired());
    }

    #[tokio::test]
    async fn the_deadline_is_visible_inside_its_scope_only() {
        assert!(Deadline::current().is_none());
        let d = Deadline::new(Duration::from_secs(5));
        let seen = d.clone().scope(async { Deadline::current() }).await;
        assert!(seen.is_some_and(|s| Arc::ptr_eq(&s, &d)));
    }
}
