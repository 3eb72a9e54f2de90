//! What the server counts, in the Prometheus text format: every metric's name
//! and help text (here, in one list), the process-wide recorder, and the
//! figures read only when scraped (pool, process memory and files, relay lag).
//! `docs/operations.md` explains each metric and the alerts to set on them.

use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

// Streams.
pub const STREAMS_OPEN: &str = "chat_streams_open";
pub const STREAMS_OPENED: &str = "chat_streams_opened_total";
pub const STREAMS_CLOSED: &str = "chat_streams_closed_total";
pub const STREAM_OPENS_REFUSED: &str = "chat_stream_opens_refused_total";
pub const EVENTS_SENT: &str = "chat_stream_events_sent_total";
pub const HEARTBEATS_SENT: &str = "chat_stream_heartbeats_sent_total";
pub const RESUMES: &str = "chat_stream_resumes_total";
pub const EVENTS_REPLAYED: &str = "chat_stream_events_replayed_total";
pub const RESETS: &str = "chat_stream_resets_total";
pub const CATCH_UPS: &str = "chat_stream_catch_ups_total";
// Writes.
pub const WRITES_REFUSED: &str = "chat_writes_refused_total";
// The relay.
pub const RELAYED: &str = "chat_relay_events_total";
pub const DELIVERIES: &str = "chat_relay_deliveries_total";
pub const RELAY_ERRORS: &str = "chat_relay_read_errors_total";
pub const STORE_POOL_WAITS: &str = "chat_store_pool_waits_total";
pub const SIGNALS_DROPPED: &str = "chat_signals_dropped_total";
pub const RELAY_LAG: &str = "chat_relay_lag_events";
pub const NOTIFICATIONS: &str = "chat_relay_notifications_total";
// Webhooks.
pub const WEBHOOK_DELIVERIES: &str = "chat_webhook_deliveries_total";
pub const WEBHOOK_EVENTS_DELIVERED: &str = "chat_webhook_events_delivered_total";
pub const WEBHOOK_RETRIES: &str = "chat_webhook_retries_total";
pub const WEBHOOK_LAG: &str = "chat_webhook_lag_events";
pub const WEBHOOKS_FAILING: &str = "chat_webhooks_failing";
pub const UNSEEN_RAISED: &str = "chat_unseen_notices_raised_total";
// The support inbox.
pub const FIRST_RESPONSE: &str = "chat_conversation_first_response_seconds";
pub const RESOLUTION: &str = "chat_conversation_resolution_seconds";
pub const CONVERSATIONS: &str = "chat_conversations";
// Erasure jobs.
pub const ERASED_MESSAGES: &str = "chat_erased_messages_total";
// HTTP.
pub const HTTP_REQUESTS: &str = "http_requests_total";
pub const HTTP_DURATION: &str = "http_request_duration_seconds";
// The store.
pub const STORE_DURATION: &str = "chat_store_operation_duration_seconds";
pub const DB_CONNECTIONS: &str = "chat_db_connections";
pub const DB_CONNECTIONS_MAX: &str = "chat_db_connections_max";
// The process.
pub const RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
pub const OPEN_FDS: &str = "process_open_fds";
pub const MAX_FDS: &str = "process_max_fds";

/// Histogram buckets, in seconds: from a cached 304 to a stalled database.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets for how long people wait, in seconds: 30 s to a week.
const WAIT_BUCKETS: [f64; 13] = [
    30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0,
    604800.0,
];

/// How often histograms are compacted when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the process-wide recorder on first use, and returns what renders
/// it. The `metrics` facade has one recorder per process: every server of a
/// process (several, in the tests) reports into it.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            // Only fails for an empty list.
            let builder = builder
                .set_buckets(&BUCKETS)
                .and_then(|builder| {
                    builder
                        .set_buckets_for_metric(Matcher::Full(FIRST_RESPONSE.into()), &WAIT_BUCKETS)
                })
                .and_then(|builder| {
                    builder.set_buckets_for_metric(Matcher::Full(RESOLUTION.into()), &WAIT_BUCKETS)
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if ::metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed: /metrics stays empty");
            }
            describe();
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            handle
        })
        .clone()
}

fn describe() {
    describe_gauge!(
        STREAMS_OPEN,
        "Streams open now, by kind (global, room) and role (admin, user)"
    );
    describe_counter!(STREAMS_OPENED, "Streams opened, by kind and role");
    describe_counter!(
        STREAMS_CLOSED,
        "Streams ended, by reason: client_gone, slow_consumer, token_expired, removed_from_room, shutdown, store_error"
    );
    describe_counter!(
        STREAM_OPENS_REFUSED,
        "Stream opens refused with 429, by reason: user_rate, ip_rate, user_streams"
    );
    describe_counter!(EVENTS_SENT, "Events written to streams (replays included)");
    describe_counter!(HEARTBEATS_SENT, "Heartbeat events written to streams");
    describe_counter!(
        RESUMES,
        "Streams opened with a Last-Event-ID they could resume from"
    );
    describe_counter!(
        EVENTS_REPLAYED,
        "Events resumed streams sent from before they opened"
    );
    describe_counter!(
        RESETS,
        "reset events sent for a Last-Event-ID that cannot be served, by reason"
    );
    describe_counter!(
        CATCH_UPS,
        "Catch-ups of streams that resumed or fell a queue behind, by where they were served \
         from: window (the recent events in memory) or store (the event log)"
    );
    describe_counter!(
        WRITES_REFUSED,
        "Writes refused with 429 by the per-user limits, by kind: message, room, member"
    );
    describe_counter!(RELAYED, "Events the relay read from the log and published");
    describe_counter!(
        DELIVERIES,
        "Events the relay handed to live streams: one per stream an event concerns"
    );
    describe_counter!(RELAY_ERRORS, "Failed reads of the event log by the relay");
    describe_counter!(
        STORE_POOL_WAITS,
        "Stream opens and catch-ups that waited again for a connection of a busy pool \
         while the store answered, by where: open, catch_up"
    );
    describe_counter!(
        SIGNALS_DROPPED,
        "Typing and presence signals not sent to the other instances: their outbox was full"
    );
    describe_gauge!(
        RELAY_LAG,
        "Events committed to the log that this process has not relayed yet (at scrape)"
    );
    describe_counter!(
        NOTIFICATIONS,
        "PostgreSQL notifications of commits (by any instance) received"
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook deliveries (POSTs), by webhook and outcome: delivered, failed"
    );
    describe_counter!(
        WEBHOOK_EVENTS_DELIVERED,
        "Events in webhook deliveries that were acknowledged, by webhook"
    );
    describe_counter!(
        WEBHOOK_RETRIES,
        "Webhook deliveries retried after a failure, by webhook"
    );
    describe_gauge!(
        WEBHOOK_LAG,
        "Events relayed here that a webhook's cursor has not passed yet, by webhook \
         (reported by the instance that delivers to it)"
    );
    describe_gauge!(
        WEBHOOKS_FAILING,
        "Webhooks this instance holds whose retries gave up: skipped until resumed"
    );
    describe_counter!(UNSEEN_RAISED, "message.unseen notices this instance raised");
    describe_counter!(
        ERASED_MESSAGES,
        "Messages erasure jobs made tombstones (or removed from deleted rooms) on this instance"
    );
    describe_histogram!(
        FIRST_RESPONSE,
        Unit::Seconds,
        "How long customers waited for a conversation's first agent reply (observed by the \
         instance that wrote the reply)"
    );
    describe_histogram!(
        RESOLUTION,
        Unit::Seconds,
        "How long conversations took from their start to being resolved"
    );
    describe_gauge!(
        CONVERSATIONS,
        "Conversations by status: open, pending, snoozed (read from the store at scrape; \
         the same on every instance)"
    );
    describe_counter!(HTTP_REQUESTS, "HTTP requests, by method, route and status");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to the response's head, by method and route (for streams: until they start)"
    );
    describe_histogram!(
        STORE_DURATION,
        Unit::Seconds,
        "Store operations as callers wait for them, by operation and outcome"
    );
    describe_gauge!(
        DB_CONNECTIONS,
        "Database pool connections, by state: in_use, idle"
    );
    describe_gauge!(DB_CONNECTIONS_MAX, "The database pool's size limit");
    describe_gauge!(
        RESIDENT_MEMORY,
        Unit::Bytes,
        "Resident memory of the process"
    );
    describe_gauge!(OPEN_FDS, "Open file descriptors (every stream holds one)");
    describe_gauge!(MAX_FDS, "The process's open file descriptor limit");
}

/// A conversation got its first agent reply after the customer waited `ms`.
pub fn first_response(ms: i64) {
    ::metrics::histogram!(FIRST_RESPONSE).record(ms.max(0) as f64 / 1000.0);
}

/// A conversation was resolved `ms` after it began.
pub fn conversation_resolved(ms: i64) {
    ::metrics::histogram!(RESOLUTION).record(ms.max(0) as f64 / 1000.0);
}

/// Sets the figures of the process itself, read from `/proc` when scraped.
pub fn record_process() {
    if let Some(bytes) = resident_memory() {
        gauge!(RESIDENT_MEMORY).set(bytes as f64);
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        gauge!(OPEN_FDS).set(entries.count() as f64);
    }
    if let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        gauge!(MAX_FDS).set(soft as f64);
    }
}

/// `VmRSS` of `/proc/self/status`, in bytes (Linux only; `None` elsewhere).
fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
