//! W9: a support team's inbox over many rooms: each view of the rooms
//! listing an agent's page reads (by status, by assignee, both), the tabs'
//! counts and the agents' list, answered one after another by a server
//! whose rooms were seeded straight into the store. No hub beside it: a
//! bare hub has no rooms to filter. The target: p99 under 20 ms for each
//! at 100,000 rooms on PostgreSQL.

use crate::histogram::Histogram;
use crate::process::Served;
use crate::replay::run;
use crate::report::write_json;
use crate::target::{SECRET, token_as};
use crate::{Common, Store};
use serde::Serialize;
use std::time::Instant;

/// Agents sharing the assigned rooms; `agent-1` asks.
const AGENTS: u64 = 20;

#[derive(Serialize)]
struct ViewResult {
    view: &'static str,
    rooms: u64,
    requests: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// What an agent's page asks, each as a path.
const VIEWS: [(&str, &str); 9] = [
    ("all rooms", "/api/chat/rooms"),
    ("status=open", "/api/chat/rooms?status=open"),
    ("assignee=me", "/api/chat/rooms?assignee=me"),
    ("assignee=none", "/api/chat/rooms?assignee=none"),
    ("open, mine", "/api/chat/rooms?status=open&assignee=me"),
    (
        "open, unassigned",
        "/api/chat/rooms?status=open&assignee=none",
    ),
    (
        "pending, mine",
        "/api/chat/rooms?status=pending&assignee=me",
    ),
    ("summary", "/api/chat/inbox"),
    ("agents", "/api/chat/agents"),
];

pub async fn inbox(common: &Common, rooms: u64, requests: u64) -> Result<(), String> {
    let mut served = Served::chat_server(&common.store(), SECRET, &[]).await?;
    let seeding = Instant::now();
    seed(&served.database, common.store, rooms).await?;
    println!(
        "seeded {rooms} rooms in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    served.restart().await?;
    let http = reqwest::Client::new();
    let token = token_as("agent-1", "admin");
    let mut results = Vec::new();
    for (view, path) in VIEWS {
        let latencies = Histogram::new();
        let url = format!("{}{path}", served.base);
        // Warm: the first requests prepare the statements on each connection.
        for round in 0..requests + 20 {
            let started = Instant::now();
            let response = http
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("{view}: {}", response.status()));
            }
            response.bytes().await.map_err(|e| e.to_string())?;
            if round >= 20 {
                latencies.record(started.elapsed().as_micros() as u64);
            }
        }
        results.push(ViewResult {
            view,
            rooms,
            requests,
            p50_ms: latencies.percentile_ms(0.5),
            p99_ms: latencies.percentile_ms(0.99),
            max_ms: latencies.max_ms(),
        });
    }
    println!(
        "{:<20} {:>8} {:>10} {:>10} {:>10}",
        "view", "rooms", "p50", "p99", "max"
    );
    for r in &results {
        println!(
            "{:<20} {:>8} {:>7.1} ms {:>7.1} ms {:>7.1} ms",
            r.view, r.rooms, r.p50_ms, r.p99_ms, r.max_ms
        );
    }
    write_json("w9", common, &results)
}

/// `rooms` rooms as a support team has them: 1 in 20 open, 1 in 50
/// pending, 1 in 100 snoozed, the rest resolved; a third unassigned, the
/// others shared by the agents; each with its customer, who wrote its one
/// message; `agent-1` has read a seventh of them. Activity is a
/// permutation of the rows' order, as messages leave it in use.
async fn seed(database: &str, store: Store, rooms: u64) -> Result<(), String> {
    // A prime above `rooms`: n * 7919 mod it is a permutation of 1..=rooms.
    let modulus = (rooms + 1..).find(|&n| is_prime(n)).unwrap_or(rooms + 1);
    let numbers = format!(
        "WITH RECURSIVE numbers(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < {rooms})"
    );
    let statements = [
        format!(
            "{numbers} INSERT INTO rooms (id, name, created_by, created_at, updated_at, activity,
                 last_seq, status, snoozed_until, assignee_id, started_at)
             SELECT 'r' || n, 'conversation ' || n, 'seed', 0, 0, n * 7919 % {modulus}, 1,
                 CASE WHEN n % 20 = 0 THEN 'open' WHEN n % 50 = 1 THEN 'pending'
                      WHEN n % 100 = 3 THEN 'snoozed' ELSE 'resolved' END,
                 CASE WHEN n % 100 = 3 THEN 9999999999999 END,
                 CASE WHEN n % 3 = 0 THEN NULL ELSE 'agent-' || (n % {AGENTS}) END, 0
             FROM numbers"
        ),
        format!(
            "{numbers} INSERT INTO room_members (room_id, user_id, joined_at)
             SELECT 'r' || n, 'customer-' || n, 0 FROM numbers"
        ),
        format!(
            "{numbers} INSERT INTO messages (room_id, seq, id, author_id, body, created_at)
             SELECT 'r' || n, 1, 'm' || n, 'customer-' || n, 'my order has not arrived', 0
             FROM numbers"
        ),
        format!(
            "{numbers} INSERT INTO read_cursors (room_id, user_id, last_read_seq)
             SELECT 'r' || n, 'customer-' || n, 1 FROM numbers"
        ),
        format!(
            "{numbers} INSERT INTO read_cursors (room_id, user_id, last_read_seq)
             SELECT 'r' || n, 'agent-1', 1 FROM numbers WHERE n % 7 = 0"
        ),
        format!(
            "{numbers} INSERT INTO agents (user_id, name, first_seen_at)
             SELECT 'agent-' || n, 'Agent ' || n, 0 FROM numbers WHERE n < {AGENTS}"
        ),
    ];
    match store {
        Store::Postgres => run::<sqlx::PgConnection>(database, &statements).await,
        Store::Sqlite => run::<sqlx::SqliteConnection>(database, &statements).await,
    }
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}
