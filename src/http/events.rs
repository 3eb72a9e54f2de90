//! `GET /api/chat/events`: the event log over plain HTTP, for clients that
//! cannot stream. A long-poll: it answers at once when events are waiting,
//! else when the first arrives or `wait` runs out. The same feed as the
//! stream decides what the caller sees, so both carry the same events under
//! the same ids, and a client may switch between them at any id.

use super::streams::{client_ip, open_feed, resume_point};
use super::{AppState, Query, limit, room_id};
use crate::auth::{Session, unix_now};
use crate::error::{Error, ReadErrors, Result};
use crate::events::{Event, Feed, Start, Step};
use crate::metrics;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 500;
/// How long a poll woken by an event waits for the rest of its burst.
const GATHER: Duration = Duration::from_millis(50);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(poll_events))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PollParams {
    /// The last event id received: the answer starts after it. Without it
    /// (and without `Last-Event-ID`), the answer waits for events newer than
    /// the newest now. `lastEventId`, the stream's name for it, is taken too.
    #[serde(alias = "lastEventId", alias = "last_event_id")]
    #[param(pattern = "^[0-9]{1,19}$")]
    after: Option<String>,
    /// One room's events; without it, every room the caller may see.
    #[serde(rename = "roomId")]
    #[param(
        rename = "roomId",
        pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )]
    room_id: Option<String>,
    /// Events per answer at most.
    #[param(minimum = 1, maximum = 500, default = 100)]
    limit: Option<i64>,
    /// Seconds to wait for an event when none is waiting: 0 answers at
    /// once; at most (and by default) the server's `long_poll_wait`, 25 s.
    #[param(minimum = 0)]
    wait: Option<u64>,
}

/// A page of the event log as one caller sees it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EventPage {
    /// In id order; the same events, with the same ids and data, as the stream.
    events: Vec<PolledEvent>,
    /// Poll again after this id: everything the caller may see up to it is
    /// in this answer or an earlier one. It may pass the last event's id.
    last_event_id: String,
    /// More events may be waiting now: poll again at once.
    has_more: bool,
}

#[derive(Serialize, ToSchema)]
struct PolledEvent {
    /// The event id, as the stream's `id:` line carries it.
    id: String,
    /// The event, as the stream's `data:` line carries it: `type` is
    /// `message`, `read`, `room` or `reset` (see docs/streams.md).
    #[schema(value_type = Object)]
    data: Box<RawValue>,
}

#[utoipa::path(
    get,
    path = "/api/chat/events",
    tag = "streams",
    summary = "The events after an id, waiting for one if none yet (long-polling)",
    description = "For clients that cannot hold a stream open: the same events as \
        `/api/chat/sse`, with the same ids, filtered the same way. Poll again with the \
        answer's `lastEventId` as `after`: nothing is lost and nothing repeats. An id that \
        cannot be served answers one `reset` event (reload the snapshot, go on from its id).",
    params(
        PollParams,
        ("Last-Event-ID" = Option<String>, Header, description = "Instead of `after`; wins over it, as on the stream"),
    ),
    responses(
        (status = 200, description = "The events, possibly none after a wait", body = EventPage),
        ReadErrors,
    ),
    security(("bearer" = []), ("access_token" = []), ("cookie" = [])),
)]
async fn poll_events(
    State(state): State<AppState>,
    session: Session,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<PollParams>,
) -> Result<Response> {
    let started = Instant::now();
    let caller = session.caller;
    let after = resume_point(&headers, params.after)?;
    let room = params.room_id.as_deref().map(room_id).transpose()?;
    let limit = limit(params.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let longest = state.config.longest_poll();
    let wait = params
        .wait
        .map_or(longest, |seconds| Duration::from_secs(seconds).min(longest));
    // A poll is a stream opened for a moment: the same limits on opening,
    // and a waiting poll holds what a stream holds, so it counts as one.
    state.limits.check_open(
        &caller,
        client_ip(peer, &headers, &state.config.trusted_proxies),
    )?;
    let answer_within = state.config.longest_before_answer();
    let (_ticket, mut feed, start) =
        open_feed(&state, &caller, room.as_ref(), after, limit, answer_within).await?;
    if let Start::Reset { newest, reason } = start {
        ::metrics::counter!(metrics::RESETS, "reason" => reason).increment(1);
        let data = serde_json::json!({"type": "reset", "reason": reason}).to_string();
        return page(vec![polled(newest, data)?], newest, false);
    }
    let limit = limit as usize;
    // What is there now, from the log, before any waiting.
    let mut events = Vec::new();
    let mut ended = gather(&mut feed, &mut events, limit).await?;
    // What waiting for the pool took comes off the wait: the answer is due
    // before the request's timeout.
    let wait = wait.min(answer_within.saturating_sub(started.elapsed()));
    if events.is_empty() && !ended && !wait.is_zero() {
        let token_left = Duration::from_secs(session.expires_at.saturating_sub(unix_now()));
        let mut draining = state.draining.clone();
        let first = tokio::select! {
            step = feed.next(true) => step?,
            () = tokio::time::sleep(wait.min(token_left)) => {
                if token_left < wait {
                    // As a stream says `auth_expired`: come back with a fresh token.
                    return Err(Error::Unauthorized {
                        token_given: true,
                        message: "the token expired while the poll waited".into(),
                    });
                }
                Step::Idle
            }
            _ = draining.wait_for(|draining| *draining) => return Err(Error::ShuttingDown),
        };
        match first {
            Step::Send(event) => events.push(event),
            Step::SendAndEnd(event) => {
                events.push(event);
                ended = true;
            }
            // A poll's feed takes no signals.
            Step::Idle | Step::Signal(_) => {}
        }
        if !events.is_empty() && !ended {
            // Events come in bursts (a batch of posts, a read after a
            // message): take the rest of this one in the same answer.
            tokio::time::sleep(GATHER).await;
            ended = gather(&mut feed, &mut events, limit).await?;
        }
    }
    let has_more = !ended && events.len() == limit && feed.has_ready();
    let events = events
        .iter()
        .map(|event| {
            polled(
                event.id,
                String::from_utf8_lossy(&event.data()).into_owned(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    page(events, feed.last_event_id(), has_more)
}

/// Adds to `events`, up to `limit`, what the feed has without waiting;
/// whether the feed ended (the caller lost the room).
async fn gather(feed: &mut Feed, events: &mut Vec<Arc<Event>>, limit: usize) -> Result<bool> {
    while events.len() < limit {
        match feed.next(false).await? {
            Step::Send(event) => events.push(event),
            Step::SendAndEnd(event) => {
                events.push(event);
                return Ok(true);
            }
            Step::Idle => return Ok(false),
            Step::Signal(_) => {}
        }
    }
    Ok(false)
}

fn polled(id: i64, data: String) -> Result<PolledEvent> {
    let data = RawValue::from_string(data)
        .map_err(|e| Error::internal_from("a logged event is not JSON", e))?;
    Ok(PolledEvent {
        id: id.to_string(),
        data,
    })
}

fn page(events: Vec<PolledEvent>, last_event_id: i64, has_more: bool) -> Result<Response> {
    let page = EventPage {
        events,
        last_event_id: last_event_id.to_string(),
        has_more,
    };
    // Every answer is of one moment: no cache may keep it.
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        super::Json(page),
    )
        .into_response())
}
