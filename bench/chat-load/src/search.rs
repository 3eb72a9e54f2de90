//! W11: message search. Rooms seeded through the API with chat-like text
//! (`corpus.rs`), the search index's size read from the store, then
//! searchers asking `GET /api/chat/search` for a while, at each pace given
//! (back to back: the most the store answers; or each a query every second:
//! agents searching as they work): one- and two-word queries, newest first and by relevance, the
//! first page (20 hits) of each; first as admins (every room), then as
//! members (the few rooms each is in). Queries are sent as typed, without a
//! trailing space, so their last word also matches as a prefix (search as
//! you type). No hub beside it: a bare hub has no messages to search. The
//! target: p99 under 50 ms on PostgreSQL.

use crate::corpus::{Corpus, Prng, WordClass};
use crate::histogram::Histogram;
use crate::report::write_json;
use crate::target::{Target, token, token_as};
use crate::{Common, Store, seed};
use serde::Serialize;
use sqlx::Connection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The target: p99 of each kind of query, on PostgreSQL.
const TARGET_P99_MS: f64 = 50.0;

/// Hits a page asks for.
const PAGE: usize = 20;

/// Each member user is in this many rooms (the `i`th room's member is
/// `load-member-{i % members}`).
const ROOMS_PER_MEMBER: usize = 10;

/// Searched but not measured at the start of each phase: the first queries
/// prepare each pooled connection's statements.
const WARM_UP: Duration = Duration::from_secs(2);

/// The kinds of query, each measured on its own: how many words, which sort.
const KINDS: [(usize, &str); 4] = [
    (1, "newest"),
    (1, "relevance"),
    (2, "newest"),
    (2, "relevance"),
];

/// What a query's words are drawn from: each word from one of these at
/// random, equally often.
const WORD_CLASSES: [WordClass; 3] = [WordClass::Common, WordClass::Generated, WordClass::Marker];

/// Who searches: which rooms a search covers.
#[derive(Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Searcher {
    /// Every room.
    Admin,
    /// The rooms the user is a member of.
    Member,
}

#[derive(Serialize)]
struct SearchReport {
    rooms: usize,
    messages: usize,
    seed_messages_per_s: f64,
    index: IndexSize,
    phases: Vec<Phase>,
}

/// What the search index takes in the store, after seeding (and on
/// PostgreSQL `VACUUM ANALYZE`), in bytes.
#[derive(Serialize)]
struct IndexSize {
    /// PostgreSQL: the GIN index `messages_search`. SQLite: the FTS5 index's
    /// tables (`messages_search_*`; its content is the messages' own).
    search_index_bytes: i64,
    /// PostgreSQL: the generated `search` tsvector column, in the rows.
    search_column_bytes: Option<i64>,
    /// The messages with all of theirs: the table and its indexes, TOAST
    /// (PostgreSQL) or the FTS5 tables (SQLite).
    messages_total_bytes: i64,
    /// The whole database.
    database_bytes: i64,
    /// SQLite: each FTS5 table by name.
    parts: Vec<(String, i64)>,
}

/// One run of searchers of one kind.
#[derive(Serialize)]
struct Phase {
    searcher: Searcher,
    searchers: usize,
    /// How often each searcher asks; 0: as soon as its last is answered.
    pace_ms: u64,
    seconds: u64,
    /// Measured queries a second, every kind together.
    per_s: f64,
    /// Any answer other than 200, the warm-up's too.
    errors: u64,
    first_error: Option<String>,
    server_cpu_percent: f64,
    kinds: Vec<KindResult>,
}

/// One kind of query in one phase; latencies of the 200s only.
#[derive(Serialize)]
struct KindResult {
    words: usize,
    sort: &'static str,
    queries: u64,
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Answers without a hit.
    empty: u64,
    /// Answers with a full page.
    full_pages: u64,
    errors: u64,
}

/// The tallies of one kind, shared by the searchers.
struct Tally {
    latency: Histogram,
    empty: AtomicU64,
    full_pages: AtomicU64,
    errors: AtomicU64,
}

pub async fn search(
    common: &Common,
    rooms: usize,
    messages: usize,
    searchers: usize,
    paces: &[Duration],
    seconds: u64,
) -> Result<(), String> {
    let target = Target::ours(common, "25s").await?;
    let corpus = Corpus::new();
    let members = (rooms / ROOMS_PER_MEMBER).max(1);
    let seed_messages_per_s = seed::rooms_with_messages(
        &target,
        rooms,
        messages,
        |index| vec![member(index % members)],
        |n| corpus.body(n),
    )
    .await?;
    let index = index_size(&target.served.database, common.store).await?;
    print_index(&index, messages);
    let corpus = Arc::new(corpus);
    let mut phases = Vec::new();
    for &pace in paces {
        for searcher in [Searcher::Admin, Searcher::Member] {
            let tokens: Vec<String> = (0..searchers)
                .map(|index| match searcher {
                    Searcher::Admin => token(&format!("load-searcher-{index}")),
                    Searcher::Member => token_as(&member(index % members), "user"),
                })
                .collect();
            let phase = run_phase(&target, &corpus, searcher, tokens, pace, seconds).await?;
            print_phase(&phase, common.store);
            phases.push(phase);
        }
    }
    println!("reference hub: no hub equivalent (a bare hub has no messages to search)");
    let errors: u64 = phases.iter().map(|phase| phase.errors).sum();
    let first_error = phases.iter().find_map(|phase| phase.first_error.clone());
    let report = SearchReport {
        rooms,
        messages,
        seed_messages_per_s,
        index,
        phases,
    };
    write_json("w11", common, &report)?;
    match first_error {
        Some(first) => Err(format!(
            "{errors} searches answered other than 200; the first: {first}"
        )),
        None => Ok(()),
    }
}

/// The member user seeded into rooms `index`, `index + members`, ….
fn member(index: usize) -> String {
    format!("load-member-{index}")
}

/// `searchers` tasks, one per token, each searching one query after
/// another for the warm-up and then `seconds`, the kinds in turn.
async fn run_phase(
    target: &Target,
    corpus: &Arc<Corpus>,
    searcher: Searcher,
    tokens: Vec<String>,
    pace: Duration,
    seconds: u64,
) -> Result<Phase, String> {
    let tallies: Arc<Vec<Tally>> = Arc::new(
        KINDS
            .iter()
            .map(|_| Tally {
                latency: Histogram::new(),
                empty: AtomicU64::new(0),
                full_pages: AtomicU64::new(0),
                errors: AtomicU64::new(0),
            })
            .collect(),
    );
    let first_error = Arc::new(Mutex::new(None::<String>));
    let searchers = tokens.len();
    let measuring = Instant::now() + WARM_UP;
    let deadline = measuring + Duration::from_secs(seconds);
    let url = format!("{}/api/chat/search", target.served.base);
    let tasks: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(index, token)| {
            let (http, url, corpus) = (target.http.clone(), url.clone(), corpus.clone());
            let (tallies, first_error) = (tallies.clone(), first_error.clone());
            tokio::spawn(async move {
                let mut rng = Prng::new(index as u64);
                // Offset, so the searchers do not ask the same kind in step.
                let mut turn = index;
                // Paced, the searchers start spread over one interval.
                let mut next = Instant::now() + pace.mul_f64(index as f64 / searchers as f64);
                while Instant::now() < deadline {
                    tokio::time::sleep_until(next.into()).await;
                    next = (next + pace).max(Instant::now());
                    let kind = turn % KINDS.len();
                    let (words, sort) = KINDS[kind];
                    let q = (0..words)
                        .map(|_| {
                            let class = WORD_CLASSES[rng.below(WORD_CLASSES.len())];
                            corpus.query_word(class, &mut rng)
                        })
                        .collect::<Vec<_>>()
                        // Words are ASCII letters: a space is all to escape.
                        .join("%20");
                    let query = format!("{url}?q={q}&sort={sort}&limit={PAGE}");
                    let sent = Instant::now();
                    let outcome = ask(&http, &query, &token).await;
                    let tally = &tallies[kind];
                    match outcome {
                        Ok(hits) if sent >= measuring => {
                            tally.latency.record(sent.elapsed().as_micros() as u64);
                            if hits == 0 {
                                tally.empty.fetch_add(1, Ordering::Relaxed);
                            } else if hits == PAGE {
                                tally.full_pages.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tally.errors.fetch_add(1, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_or_insert_with(|| format!("{error} for {query}"));
                        }
                    }
                    turn += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep_until(measuring.into()).await;
    let cpu_before = target.served.sample().cpu_ticks;
    for task in tasks {
        task.await.map_err(|e| e.to_string())?;
    }
    let elapsed = measuring.elapsed().as_secs_f64();
    let cpu = (target.served.sample().cpu_ticks - cpu_before) as f64 * 10.0;
    let kinds: Vec<KindResult> = KINDS
        .iter()
        .zip(tallies.iter())
        .map(|(&(words, sort), tally)| KindResult {
            words,
            sort,
            queries: tally.latency.count(),
            per_s: tally.latency.count() as f64 / elapsed,
            p50_ms: tally.latency.percentile_ms(0.50),
            p99_ms: tally.latency.percentile_ms(0.99),
            max_ms: tally.latency.max_ms(),
            empty: tally.empty.load(Ordering::Relaxed),
            full_pages: tally.full_pages.load(Ordering::Relaxed),
            errors: tally.errors.load(Ordering::Relaxed),
        })
        .collect();
    let first_error = first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    Ok(Phase {
        searcher,
        searchers,
        pace_ms: pace.as_millis() as u64,
        seconds,
        per_s: kinds.iter().map(|kind| kind.per_s).sum(),
        errors: kinds.iter().map(|kind| kind.errors).sum(),
        first_error,
        server_cpu_percent: cpu / (elapsed * 1000.0) * 100.0,
        kinds,
    })
}

/// Sends one search; its hits, or why it was not a 200 with hits.
async fn ask(http: &reqwest::Client, url: &str, token: &str) -> Result<usize, String> {
    let answer = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = answer.status();
    let body = answer.bytes().await.map_err(|e| e.to_string())?;
    if status != reqwest::StatusCode::OK {
        let text = String::from_utf8_lossy(&body);
        return Err(format!(
            "{status} {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    let page: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    page["hits"]
        .as_array()
        .map(Vec::len)
        .ok_or_else(|| "200 without hits".to_owned())
}

/// The search index's size, read from the store itself.
async fn index_size(database: &str, store: Store) -> Result<IndexSize, String> {
    match store {
        Store::Postgres => {
            let mut db = sqlx::PgConnection::connect(database)
                .await
                .map_err(|e| e.to_string())?;
            let (index, column, total, whole): (i64, i64, i64, i64) = sqlx::query_as(
                "SELECT pg_relation_size('messages_search'),
                        (SELECT COALESCE(sum(pg_column_size(search)), 0)::int8 FROM messages),
                        pg_total_relation_size('messages'),
                        pg_database_size(current_database())",
            )
            .fetch_one(&mut db)
            .await
            .map_err(|e| e.to_string())?;
            Ok(IndexSize {
                search_index_bytes: index,
                search_column_bytes: Some(column),
                messages_total_bytes: total,
                database_bytes: whole,
                parts: Vec::new(),
            })
        }
        Store::Sqlite => {
            let mut db = sqlx::SqliteConnection::connect(database)
                .await
                .map_err(|e| e.to_string())?;
            let parts: Vec<(String, i64)> = sqlx::query_as(
                "SELECT name, sum(pgsize) FROM dbstat
                 WHERE name GLOB 'messages_search_*' GROUP BY name ORDER BY name",
            )
            .fetch_all(&mut db)
            .await
            .map_err(|e| e.to_string())?;
            let (table, whole): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COALESCE(sum(pgsize), 0) FROM dbstat WHERE name IN
                            (SELECT name FROM sqlite_schema WHERE tbl_name = 'messages')),
                        (SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size())",
            )
            .fetch_one(&mut db)
            .await
            .map_err(|e| e.to_string())?;
            let index = parts.iter().map(|(_, bytes)| bytes).sum();
            Ok(IndexSize {
                search_index_bytes: index,
                search_column_bytes: None,
                messages_total_bytes: table + index,
                database_bytes: whole,
                parts,
            })
        }
    }
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_index(index: &IndexSize, messages: usize) {
    let per_message = index.search_index_bytes as f64 / messages.max(1) as f64;
    println!(
        "search index: {:.1} MiB ({per_message:.0} B a message); the messages with everything of theirs {:.1} MiB; the database {:.1} MiB",
        mib(index.search_index_bytes),
        mib(index.messages_total_bytes),
        mib(index.database_bytes)
    );
    if let Some(column) = index.search_column_bytes {
        println!(
            "search tsvector column: {:.1} MiB ({:.0} % of the messages' total)",
            mib(column),
            column as f64 / index.messages_total_bytes.max(1) as f64 * 100.0
        );
    }
    for (name, bytes) in &index.parts {
        println!("  {name}: {:.1} MiB", mib(*bytes));
    }
}

fn print_phase(phase: &Phase, store: Store) {
    println!(
        "{} searching: {} at once, {}, {} s: {:.0} queries/s, errors {}, chat-server CPU {:.0} %",
        match phase.searcher {
            Searcher::Admin => "admins",
            Searcher::Member => "members",
        },
        phase.searchers,
        match phase.pace_ms {
            0 => "back to back".to_owned(),
            ms => format!("each a query every {ms} ms"),
        },
        phase.seconds,
        phase.per_s,
        phase.errors,
        phase.server_cpu_percent
    );
    for kind in &phase.kinds {
        let judged = match (store, kind.p99_ms < TARGET_P99_MS) {
            (Store::Postgres, true) => "met",
            (Store::Postgres, false) => "missed",
            (Store::Sqlite, true) => "PostgreSQL's; under it",
            (Store::Sqlite, false) => "PostgreSQL's; over it",
        };
        println!(
            "  {} word{} {:<9} {:>6.0} q/s  p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>7.1} ms  empty {:>5}  full {:>5}  errors {}  target p99 < {TARGET_P99_MS} ms: {judged}",
            kind.words,
            if kind.words == 1 { ", " } else { "s," },
            kind.sort,
            kind.per_s,
            kind.p50_ms,
            kind.p99_ms,
            kind.max_ms,
            kind.empty,
            kind.full_pages,
            kind.errors
        );
    }
    if let Some(first) = &phase.first_error {
        println!("  first error: {first}");
    }
}
