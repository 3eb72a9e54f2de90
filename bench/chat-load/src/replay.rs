//! W8: a member's global stream resumed from the oldest kept id of a big
//! log. The log is seeded straight into the store (millions of events would
//! take minutes through the API); the member's rooms hold the same number of
//! events whatever the log's size, so a replay that reads only what it
//! returns takes the same time on 100,000 events as on 1,000,000.

use crate::process::Served;
use crate::report::write_json;
use crate::target::{SECRET, token_as};
use crate::{Common, Store};
use futures::StreamExt;
use serde::Serialize;
use sqlx::Connection;
use std::time::{Duration, Instant};

/// The rooms of the log, of which the member is in the first `MEMBER_ROOMS`.
const ROOMS: u64 = 2_000;
const MEMBER_ROOMS: u64 = 10;

#[derive(Serialize)]
struct ReplayResult {
    log_events: u64,
    returned: u64,
    first_event_ms: f64,
    all_events_ms: f64,
    events_per_s: f64,
    seed_s: f64,
}

pub async fn replay(common: &Common, logs: &[u64], returned: u64) -> Result<(), String> {
    let mut results = Vec::new();
    for &events in logs {
        results.push(one(common, events, returned).await?);
    }
    println!(
        "{:>12} {:>10} {:>14} {:>12} {:>12}",
        "log events", "returned", "first event", "all", "events/s"
    );
    for r in &results {
        println!(
            "{:>12} {:>10} {:>11.1} ms {:>9.0} ms {:>12.0}",
            r.log_events, r.returned, r.first_event_ms, r.all_events_ms, r.events_per_s
        );
    }
    write_json("w8", common, &results)
}

async fn one(common: &Common, events: u64, returned: u64) -> Result<ReplayResult, String> {
    let mut served = Served::chat_server(&common.store(), SECRET, &[]).await?;
    let seeding = Instant::now();
    seed(&served.database, common.store, events, returned).await?;
    let seed_s = seeding.elapsed().as_secs_f64();
    // Started again on the seeded log: its window holds the newest events,
    // not the member's oldest.
    served.restart().await?;

    let http = reqwest::Client::new();
    let started = Instant::now();
    let response = http
        .get(format!("{}/api/chat/sse", served.base))
        .bearer_auth(token_as("member", "user"))
        .header("Last-Event-ID", "0")
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string())?;
    let mut body = response.bytes_stream();
    let (mut buffer, mut got, mut first) = (Vec::new(), 0u64, None);
    while got < returned {
        if started.elapsed() > Duration::from_secs(120) {
            return Err(format!("{got} of {returned} events after 120 s"));
        }
        let chunk = tokio::time::timeout(Duration::from_secs(120), body.next())
            .await
            .map_err(|_| format!("{got} of {returned} events after 120 s"))?
            .ok_or("the stream ended")?
            .map_err(|e| e.to_string())?;
        buffer.extend_from_slice(&chunk);
        // Whole frames only: a frame may span chunks.
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = buffer.drain(..end + 2).collect();
            if frame.windows(16).any(|w| w == br#""type":"message""#) {
                got += 1;
                first.get_or_insert_with(|| started.elapsed());
            }
        }
    }
    let all = started.elapsed();
    let result = ReplayResult {
        log_events: events,
        returned,
        first_event_ms: first.unwrap_or(all).as_secs_f64() * 1000.0,
        all_events_ms: all.as_secs_f64() * 1000.0,
        events_per_s: returned as f64 / all.as_secs_f64(),
        seed_s,
    };
    println!(
        "member resume from the oldest id of {events} events: first of {returned} after {:.1} ms, all after {:.0} ms (seeded in {seed_s:.1} s)",
        result.first_event_ms, result.all_events_ms
    );
    Ok(result)
}

/// `events` events over `ROOMS` rooms; every `events / returned`th is in one
/// of the member's rooms, the rest in the others.
async fn seed(database: &str, store: Store, events: u64, returned: u64) -> Result<(), String> {
    let step = (events / returned).max(1);
    // Now: the retention purge must not take the seeded log away.
    let now = crate::streams::now_micros() / 1000;
    let numbers = |upto: u64| {
        format!(
            "WITH RECURSIVE numbers(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < {upto})"
        )
    };
    let statements = [
        format!(
            "{} INSERT INTO rooms (id, name, created_by, created_at, updated_at, activity)
             SELECT 'r' || n, 'r', 'seed', 0, 0, n FROM numbers",
            numbers(ROOMS)
        ),
        format!(
            "{} INSERT INTO room_members (room_id, user_id, joined_at)
             SELECT 'r' || n, 'member', 0 FROM numbers",
            numbers(MEMBER_ROOMS)
        ),
        // A message's event as the store writes it, about 250 bytes.
        format!(
            "{}, placed(n, room) AS (
               SELECT n, CASE WHEN n % {step} = 0 THEN 'r' || (1 + (n / {step}) % {MEMBER_ROOMS})
                              ELSE 'r' || ({MEMBER_ROOMS} + 1 + n % ({ROOMS} - {MEMBER_ROOMS})) END
               FROM numbers)
             INSERT INTO events (id, room_id, subject_id, created_at, data)
             SELECT n, room, NULL, {now},
                    '{{\"type\":\"message\",\"message\":{{\"id\":\"m' || n || '\",\"roomId\":\"' || room
                    || '\",\"seq\":' || n || ',\"authorId\":\"seed\",\"body\":\"a message of the seeded log, as long as a short chat line\",\"clientId\":null,\"createdAt\":\"2026-12-03T00:00:00.000Z\"}}}}'
             FROM placed",
            numbers(events)
        ),
        format!("UPDATE event_counter SET last_id = {events}"),
    ];
    match store {
        Store::Postgres => run::<sqlx::PgConnection>(database, &statements).await,
        Store::Sqlite => run::<sqlx::SqliteConnection>(database, &statements).await,
    }
}

/// Runs `statements` in order on a connection to `database`, then `ANALYZE`.
pub async fn run<C>(database: &str, statements: &[String]) -> Result<(), String>
where
    C: Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
{
    let mut conn = C::connect(database).await.map_err(|e| e.to_string())?;
    for statement in statements.iter().map(String::as_str).chain(["ANALYZE"]) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .map_err(|e| format!("{e}: {statement}"))?;
    }
    Ok(())
}
