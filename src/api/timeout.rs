//! The request timeout. A request still running at its deadline gets 503 `request_timeout`,
//! unless a write of it has begun committing: then it gets that write's real outcome, however
//! late, so a 503 never hides a write that landed (see `store::deadline`).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::store::deadline::Deadline;

pub async fn request_timeout(
    State(after): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let deadline = Deadline::new(after);
    let handling = deadline.clone().scope(next.run(request));
    tokio::pin!(handling);
    let timed_out = || {
        Error::Timeout {
            after_secs: after.as_secs(),
        }
        .into_response()
    };
    tokio::select! {
        response = &mut handling => {
            // A store refused to write because the time was up: the answer is the timeout's.
            if deadline.expired() { timed_out() } else { response }
        }
        () = tokio::time::sleep_until(deadline.at()) => {
            if deadline.expire() {
                // Nothing committed and nothing will: dropping the handling is safe.
                timed_out()
            } else {
                handling.await
            }
        }
    }
}
