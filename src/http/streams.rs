//! `GET /api/chat/sse`: the live streams. A global stream carries every room
//! the caller may see; `?roomId=` carries one. Each stream replays the event
//! log after the client's last id (from the shared window of recent events,
//! or the store when older), then takes the live events routed to it.

use super::{AppState, Query, room_id};
use crate::auth::{Session, unix_now};
use crate::connection::Connection;
use crate::error::{Error, ReadErrors, Result};
use crate::events::{CATCH_UP_BATCH, Feed, Hub, Start, Step, StreamTicket};
use crate::metrics;
use crate::model::{Caller, RoomId};
use crate::sse;
use ::metrics::{Counter, Gauge};
use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open_stream))
        .routes(routes!(stream_stats))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamParams {
    /// One room's stream; without it, every room the caller may see.
    #[serde(rename = "roomId")]
    #[param(rename = "roomId")]
    room_id: Option<String>,
    /// Where to resume, for clients that cannot send the `Last-Event-ID` header.
    #[serde(rename = "lastEventId", alias = "last_event_id")]
    #[param(rename = "lastEventId", pattern = "^[0-9]+$")]
    last_event_id: Option<String>,
    /// Also carry the signals `typing` and `presence` (live only, no id).
    #[serde(default)]
    signals: bool,
}

#[utoipa::path(
    get,
    path = "/api/chat/sse",
    tag = "streams",
    summary = "A live stream of events (Server-Sent Events)",
    description = "Events `message`, `read` and `room` carry ids: reconnect with the last one as \
        `Last-Event-ID` and the stream replays what was missed, then goes live. `heartbeat` \
        events (no id) come every `heartbeat_interval`; `reset` says a resume id cannot be \
        served (reload the snapshot); `auth_expired` ends a stream whose token expired. With \
        `signals=true` it also carries `typing` and `presence`, which have no id and are never \
        replayed.",
    params(
        StreamParams,
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received"),
    ),
    responses(
        (status = 200, description = "The stream. It ends only as docs/streams.md says: after an `auth_expired`, a removal from its room, a shutdown's `retry:`, or an `unavailable` event when the store cannot be read (then it may be that one event)", content_type = "text/event-stream", body = String),
        ReadErrors,
    ),
    security(("bearer" = []), ("access_token" = []), ("cookie" = [])),
)]
async fn open_stream(
    State(state): State<AppState>,
    session: Session,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    connection: Option<Extension<Arc<Connection>>>,
    headers: HeaderMap,
    Query(params): Query<StreamParams>,
) -> Result<Response> {
    let caller = session.caller;
    let resume_from = resume_point(&headers, params.last_event_id)?;
    let room = params.room_id.as_deref().map(room_id).transpose()?;
    // The cheap refusals first, before any database work.
    state.limits.check_open(
        &caller,
        client_ip(peer, &headers, &state.config.trusted_proxies),
    )?;
    let opened = open_feed(
        &state,
        &caller,
        room.as_ref(),
        resume_from,
        CATCH_UP_BATCH,
        CATCH_UP_PATIENCE,
    )
    .await;
    let (ticket, feed, start) = match opened {
        Ok(opened) => opened,
        // A browser's EventSource gives up for good on a 503; told in a
        // stream, it (and the SDK) comes back when asked, spread out.
        Err(Error::Unavailable(_)) => {
            ::metrics::counter!(metrics::STREAM_OPENS_REFUSED, "reason" => "store_unavailable")
                .increment(1);
            let frame = unavailable(&state.hub, state.config.stream_retry.0);
            return Ok(event_stream(Body::from(frame)));
        }
        Err(error) => return Err(error),
    };
    let feed = if params.signals {
        feed.with_signals()
    } else {
        feed
    };
    if let Start::Resumed { .. } = start {
        ::metrics::counter!(metrics::RESUMES).increment(1);
    }
    let connection = connection.map(|Extension(connection)| connection);
    let on_connection = connection.as_ref().map(Connection::stream);
    let record = StreamRecord::open(
        &caller,
        room.as_ref(),
        resume_from,
        start.newest(),
        connection,
    );
    let stream = LiveStream {
        hub: state.hub.clone(),
        feed,
        start,
        expires_at: expiry_instant(session.expires_at),
        retry: state.config.stream_retry.0,
        draining: state.draining.clone(),
        spread: state.config.shutdown_spread.0,
        ticket,
        record,
    };
    // Each frame hyper takes says the client reads (see `connection`).
    let frames = stream.run().inspect(move |_| {
        if let Some(on_connection) = &on_connection {
            on_connection.connection().frame_sent();
        }
    });
    Ok(event_stream(Body::from_stream(frames)))
}

/// A `text/event-stream` answer that no proxy or cache holds back.
fn event_stream(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Where a client resumes: the `Last-Event-ID` header, else the id in the
/// query. A browser's own reconnect sends a fresh header on the old URL, so
/// the header wins.
pub(super) fn resume_point(headers: &HeaderMap, query: Option<String>) -> Result<Option<i64>> {
    let text = match headers.get("last-event-id") {
        Some(value) => value.to_str().unwrap_or_default().to_owned(),
        None => match query {
            Some(text) => text,
            None => return Ok(None),
        },
    };
    sse::parse_event_id(text.trim()).map(Some).ok_or_else(|| {
        Error::bad_request(
            "invalid_last_event_id",
            "the last event id (Last-Event-ID, lastEventId or after) must be decimal digits",
        )
    })
}

/// How long a live stream's catch-up waits for a busy pool's connection
/// before its client is sent `unavailable` (it has its answer's head: no
/// request timeout runs).
const CATCH_UP_PATIENCE: Duration = Duration::from_secs(30);

/// Admits the caller's stream (or poll) and opens its feed (see
/// `Feed::open`; its reads wait up to `patience` for a busy pool). The
/// open waits, rather than fails, while the store's pool is only busy, as
/// long as the answer's head may wait: a burst of opens queues for its
/// connections.
pub(super) async fn open_feed(
    state: &AppState,
    caller: &Caller,
    room: Option<&RoomId>,
    resume_from: Option<i64>,
    batch: u32,
    patience: Duration,
) -> Result<(StreamTicket, Feed, Start)> {
    // Once: a retried admission would count the stream twice.
    let ticket = admit(state, caller).await?;
    let (feed, start) = state
        .hub
        .retry_while_pool_busy("open", state.config.longest_before_answer(), || {
            Feed::open(&state.hub, caller, room, resume_from, batch, patience)
        })
        .await?;
    Ok((ticket, feed, start))
}

/// Counts one more stream (or waiting poll) of the caller's, unless they
/// already hold `stream_max_per_user`: in this process, and on PostgreSQL in
/// the whole cluster.
async fn admit(state: &AppState, caller: &Caller) -> Result<StreamTicket> {
    let max = state.config.stream_max_per_user;
    let too_many = || {
        ::metrics::counter!(metrics::STREAM_OPENS_REFUSED, "reason" => "user_streams").increment(1);
        Error::TooManyRequests {
            retry_after: 5,
            message: "too many open streams for this user".into(),
        }
    };
    let mut ticket = state.hub.admit(&caller.id, max).ok_or_else(too_many)?;
    // Counted in the cluster for presence; capped there with cluster_limits.
    if let Some(cluster) = state.hub.presence().cluster() {
        let cap = if state.config.cluster_limits {
            max
        } else {
            usize::MAX
        };
        let claim = cluster.claim_stream(&caller.id, cap).await?;
        ticket.hold(claim.ok_or_else(too_many)?);
    }
    state.hub.presence().arrived(&caller.id);
    Ok(ticket)
}

/// What the server holds for streams now (admins only): for leak checks.
#[utoipa::path(
    get,
    path = "/api/chat/sse/stats",
    tag = "streams",
    summary = "What this process holds for streams now (admins only)",
    responses((status = 200, description = "Counts", body = crate::events::HubStats), ReadErrors),
    security(("bearer" = [])),
)]
async fn stream_stats(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<super::Json<crate::events::HubStats>> {
    if !caller.is_admin() {
        return Err(Error::forbidden(
            "forbidden",
            "stream statistics are for admins",
        ));
    }
    Ok(super::Json(state.hub.stats()))
}

fn expiry_instant(expires_at: u64) -> Instant {
    Instant::now() + Duration::from_secs(expires_at.saturating_sub(unix_now()))
}

/// The client's address: the socket's peer, unless that peer is a trusted
/// proxy, in which case the nearest untrusted `X-Forwarded-For` entry.
pub(super) fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.ip();
    if !trusted.contains(&peer) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

/// Everything one open stream holds.
struct LiveStream {
    hub: Arc<Hub>,
    feed: Feed,
    start: Start,
    expires_at: Instant,
    retry: Duration,
    draining: watch::Receiver<bool>,
    spread: Duration,
    ticket: StreamTicket,
    record: StreamRecord,
}

/// One stream's life, for the metrics and for its two log lines: one when it
/// opens, one when it ends, with how long it lived, why it ended and what it sent.
struct StreamRecord {
    /// The request's span: the close is logged under the request's id too,
    /// though it happens when the connection drops the body, outside it.
    span: tracing::Span,
    /// Says whether the stream ended because its client stopped reading.
    connection: Option<Arc<Connection>>,
    opened: Instant,
    /// Events up to this id predate the stream: sending them is a replay.
    replay_up_to: i64,
    end: End,
    events: u64,
    heartbeats: u64,
    replayed: u64,
    open: Gauge,
    events_sent: Counter,
    heartbeats_sent: Counter,
    events_replayed: Counter,
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy)]
enum End {
    /// The client went away (or the connection broke): the default.
    ClientGone,
    /// The client stopped reading: its connection was cut.
    SlowConsumer,
    TokenExpired,
    RemovedFromRoom,
    Shutdown,
    StoreError,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            End::ClientGone => "client_gone",
            End::SlowConsumer => "slow_consumer",
            End::TokenExpired => "token_expired",
            End::RemovedFromRoom => "removed_from_room",
            End::Shutdown => "shutdown",
            End::StoreError => "store_error",
        }
    }
}

impl StreamRecord {
    fn open(
        caller: &Caller,
        room: Option<&RoomId>,
        resume_from: Option<i64>,
        newest: i64,
        connection: Option<Arc<Connection>>,
    ) -> Self {
        let kind = if room.is_some() { "room" } else { "global" };
        let role = if caller.is_admin() { "admin" } else { "user" };
        ::metrics::counter!(metrics::STREAMS_OPENED, "kind" => kind, "role" => role).increment(1);
        let open = ::metrics::gauge!(metrics::STREAMS_OPEN, "kind" => kind, "role" => role);
        open.increment(1);
        // A user id is the token's `sub`: logged as a string, quoted.
        tracing::info!(
            user = caller.id.as_str(),
            kind,
            room = room.map(RoomId::as_str),
            resume_from,
            "stream opened"
        );
        Self {
            span: tracing::Span::current(),
            connection,
            opened: Instant::now(),
            replay_up_to: if resume_from.is_some() { newest } else { 0 },
            end: End::ClientGone,
            events: 0,
            heartbeats: 0,
            replayed: 0,
            open,
            events_sent: ::metrics::counter!(metrics::EVENTS_SENT),
            heartbeats_sent: ::metrics::counter!(metrics::HEARTBEATS_SENT),
            events_replayed: ::metrics::counter!(metrics::EVENTS_REPLAYED),
        }
    }

    fn sent_event(&mut self, id: i64) {
        self.events += 1;
        self.events_sent.increment(1);
        if id <= self.replay_up_to {
            self.replayed += 1;
            self.events_replayed.increment(1);
        }
    }

    fn ended(&mut self, why: End) {
        self.end = why;
    }

    fn sent_heartbeat(&mut self) {
        self.heartbeats += 1;
        self.heartbeats_sent.increment(1);
    }
}

impl Drop for StreamRecord {
    fn drop(&mut self) {
        self.open.decrement(1);
        if self.connection.as_ref().is_some_and(|c| c.was_cut()) {
            self.end = End::SlowConsumer;
        }
        let reason = self.end.as_str();
        let _request = self.span.enter();
        ::metrics::counter!(metrics::STREAMS_CLOSED, "reason" => reason).increment(1);
        tracing::info!(
            duration_ms = self.opened.elapsed().as_millis() as u64,
            reason,
            events = self.events,
            heartbeats = self.heartbeats,
            replayed = self.replayed,
            "stream closed"
        );
    }
}

/// What woke a stream.
enum Wake {
    /// The feed's next event, read live or from the log.
    Feed(Result<Step>),
    Heartbeat(Bytes),
    Expired,
    /// The server drains, and this stream's moment to end within the spread came.
    Draining,
}

impl LiveStream {
    fn run(self) -> impl Stream<Item = std::result::Result<Bytes, Infallible>> + Send {
        let LiveStream {
            hub,
            feed,
            start,
            expires_at,
            retry,
            draining,
            spread,
            ticket,
            mut record,
        } = self;
        async_stream::stream! {
            let _ticket = ticket;
            // The heartbeat, the expiry and the drain are each armed once: a
            // future made per loop would register and unregister a waiter on a
            // channel all streams share (or on the timer wheel) for every event.
            let mut heartbeat = hub.heartbeats();
            heartbeat.mark_unchanged();
            // The latest beat goes out at once, after `retry:`: a client sees
            // data flow from the start, and knows the stream is not held.
            let first_beat = heartbeat.borrow().clone();
            let beats = futures::stream::unfold(heartbeat, |mut beats| async move {
                beats.changed().await.ok()?;
                let frame = beats.borrow_and_update().clone();
                Some((frame, beats))
            });
            tokio::pin!(beats);
            // A drain ends each stream at a moment of its own within the
            // spread, so clients do not all reconnect at once; until then
            // it carries events and heartbeats as before.
            let drain = async move {
                let mut draining = draining;
                let _ = draining.wait_for(|draining| *draining).await;
                tokio::time::sleep(spread_delay(spread)).await;
            };
            tokio::pin!(drain);
            yield Ok(sse::retry(retry.as_millis() as u64));
            record.sent_heartbeat();
            yield Ok(first_beat);
            if let Start::Reset { newest, reason } = start {
                ::metrics::counter!(metrics::RESETS, "reason" => reason).increment(1);
                yield Ok(sse::reset(newest, reason));
            }
            let expiry = tokio::time::sleep_until(expires_at);
            tokio::pin!(expiry);
            // The feed's steps as a stream: a read of the store that a
            // heartbeat interrupts goes on where it was, not from scratch.
            let steps = futures::stream::unfold(feed, |mut feed| async move {
                let step = feed.next(true).await;
                Some((step, feed))
            });
            tokio::pin!(steps);
            loop {
                let wake = tokio::select! {
                    Some(step) = steps.next() => Wake::Feed(step),
                    Some(frame) = beats.next() => Wake::Heartbeat(frame),
                    () = &mut expiry => Wake::Expired,
                    () = &mut drain => Wake::Draining,
                };
                match wake {
                    Wake::Feed(Ok(Step::Send(event))) => {
                        record.sent_event(event.id);
                        yield Ok(event.frame.clone());
                    }
                    Wake::Feed(Ok(Step::SendAndEnd(event))) => {
                        record.sent_event(event.id);
                        record.ended(End::RemovedFromRoom);
                        yield Ok(event.frame.clone());
                        return;
                    }
                    Wake::Feed(Ok(Step::Signal(event))) => yield Ok(event.frame.clone()),
                    // Only a feed asked not to wait is idle.
                    Wake::Feed(Ok(Step::Idle)) => {}
                    Wake::Feed(Err(_)) => {
                        // The client reconnects with its last id and loses
                        // nothing; told to wait longer while failures go on,
                        // so that clients do not all come back at once.
                        record.ended(End::StoreError);
                        yield Ok(unavailable(&hub, retry));
                        return;
                    }
                    Wake::Heartbeat(frame) => {
                        record.sent_heartbeat();
                        yield Ok(frame);
                    }
                    Wake::Expired => {
                        record.ended(End::TokenExpired);
                        yield Ok(sse::auth_expired());
                        return;
                    }
                    Wake::Draining => {
                        record.ended(End::Shutdown);
                        yield Ok(sse::retry(retry.as_millis() as u64));
                        return;
                    }
                }
            }
        }
    }
}

/// A delay in `[0, spread)`, different for each stream.
fn spread_delay(spread: Duration) -> Duration {
    spread.mul_f64(random_fraction())
}

/// The `unavailable` frame for a stream the store failed: it notes the
/// failure and tells the client how long to stay away.
fn unavailable(hub: &Hub, retry: Duration) -> Bytes {
    let down_for = hub.note_store_failure();
    sse::unavailable(back_off(retry, down_for).as_millis() as u64)
}

/// How long a client the store failed should wait: as long as the store has
/// been down (at least `retry`, at most 30 s), spread over `[d, 2d)`. A blip
/// sends clients away briefly; a long outage thins their returns out, so
/// the reconnects a second fall while it lasts instead of piling up.
fn back_off(retry: Duration, down_for: Duration) -> Duration {
    let delay = down_for.max(retry).min(Duration::from_secs(30));
    delay + delay.mul_f64(random_fraction())
}

/// A number in `[0, 1)`, different for each call.
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_store_failure_sends_clients_away_for_as_long_as_it_lasted_spread_and_bounded() {
        let retry = Duration::from_secs(3);
        for (down_for, least) in [(0, 3), (2, 3), (5, 5), (12, 12), (30, 30), (3600, 30)] {
            let mut delays = HashSet::new();
            for _ in 0..100 {
                let delay = back_off(retry, Duration::from_secs(down_for));
                let least = Duration::from_secs(least);
                assert!(delay >= least && delay < least * 2, "{down_for}: {delay:?}");
                delays.insert(delay);
            }
            assert!(delays.len() > 90, "spread: {} of 100 differ", delays.len());
        }
    }

    #[test]
    fn the_client_address_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.1"),
        );
        let from_proxy = SocketAddr::new(proxy, 4000);
        let from_client = SocketAddr::new("198.51.100.2".parse().unwrap(), 4000);
        // Untrusted peers cannot pick their address with a header.
        assert_eq!(client_ip(from_client, &headers, &[proxy]), from_client.ip());
        assert_eq!(client_ip(from_proxy, &headers, &[]), proxy);
        // Behind a trusted proxy: the nearest address it did not add itself.
        assert_eq!(
            client_ip(from_proxy, &headers, &[proxy]),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
    }
}
