//! The replay queries read what they return, not the log: on a log of
//! 200,000 events, each stream kind's resume from the oldest id is planned as
//! index range scans, on both stores (and, on PostgreSQL, under the generic
//! plan that prepared statements switch to as well as the custom one). The
//! inbox's views and counts, over 100,000 rooms, read their own index; a
//! search over 100,000 messages reads the full-text index.

use crate::support::{Backend, TestApp, on_both_stores};
use chat_server::model::{Caller, Role, UserId};
use chat_server::store::{
    self, InboxQueries, ReplayQueries, SearchArgument, SearchCursor, SearchOrder, SearchRequest,
    SearchText,
};
use sqlx::{Connection, Row};

on_both_stores!(
    every_stream_kinds_resume_is_planned_on_indexes_over_a_big_log,
    the_inbox_views_and_counts_are_planned_on_their_indexes_over_100000_rooms,
    searches_are_planned_on_the_full_text_index_never_a_scan_of_messages,
);

const EVENTS: i64 = 200_000;
/// The member is in 10 rooms and was the subject of every 1,000th event.
const SEED: [&str; 4] = [
    "INSERT INTO rooms (id, name, created_by, created_at, updated_at, activity)
     SELECT 'r' || n, 'r', 'x', 0, 0, n FROM numbers WHERE n <= 2000",
    "INSERT INTO room_members (room_id, user_id, joined_at)
     SELECT 'r' || n, 'member', 0 FROM numbers WHERE n <= 10",
    "INSERT INTO events (id, room_id, subject_id, created_at, data)
     SELECT n, 'r' || (1 + n % 2000), CASE WHEN n % 1000 = 0 THEN 'member' END, 0, '{}'
     FROM numbers",
    "UPDATE event_counter SET last_id = 200000",
];

/// The plan's lines, and a description of what the test asked.
struct Plan {
    kind: String,
    lines: Vec<String>,
}

impl Plan {
    fn text(&self) -> String {
        format!("{}:\n  {}", self.kind, self.lines.join("\n  "))
    }
}

async fn every_stream_kinds_resume_is_planned_on_indexes_over_a_big_log(backend: Backend) {
    let app = TestApp::spawn(backend.clone()).await;
    let plans = match &backend {
        Backend::Sqlite => sqlite_plans(app.database_url()).await,
        Backend::Postgres(_) => postgres_plans(app.database_url()).await,
    };
    for plan in &plans {
        let text = plan.text();
        eprintln!("{text}");
        for line in &plan.lines {
            // A scan of the whole log: what a bounded answer must never cost.
            assert!(
                !line.contains("Seq Scan on events") && !line.starts_with("SCAN events"),
                "{text}"
            );
        }
        let uses = |index: &str| plan.lines.iter().any(|line| line.contains(index));
        match plan.kind.split(' ').next() {
            Some("all") => assert!(uses("PRIMARY KEY") || uses("events_pkey"), "{text}"),
            Some("room") => assert!(uses("events_by_room"), "{text}"),
            Some("member") => {
                assert!(
                    uses("events_by_room") && uses("events_by_subject"),
                    "{text}"
                );
                // Not the log in id order, filtered: the plan PostgreSQL's
                // generic plan chose for the old query.
                assert!(!uses("events_pkey"), "{text}");
                // Each room's range stops after a batch, so the sort above
                // it takes rooms × batch rows, not all that remain.
                let bounded = match backend {
                    Backend::Sqlite => uses("events_by_room (room_id=? AND id>? AND id<?)"),
                    Backend::Postgres(_) => {
                        plan.lines
                            .iter()
                            .filter(|line| line.contains("Limit"))
                            .count()
                            >= 2
                    }
                };
                assert!(bounded, "{text}");
            }
            _ => unreachable!(),
        }
    }
}

/// A query's argument, bound (SQLite) or written out (PostgreSQL's EXECUTE).
#[derive(Clone, Copy)]
enum Argument {
    Number(i64),
    Text(&'static str),
}

/// One read to explain: what it is, its SQL, its arguments.
struct Read {
    kind: String,
    sql: String,
    arguments: Vec<Argument>,
}

impl Read {
    fn new(kind: &str, sql: &str, arguments: &[Argument]) -> Self {
        Self {
            kind: kind.to_owned(),
            sql: sql.to_owned(),
            arguments: arguments.to_vec(),
        }
    }
}

fn replay_reads(backend: store::Backend) -> Vec<Read> {
    use Argument::{Number, Text};
    let ReplayQueries { all, room, member } = ReplayQueries::of(backend);
    vec![
        Read::new("all", all, &[Number(0), Number(64)]),
        Read::new("room", room, &[Number(0), Text("r7"), Number(64)]),
        Read::new("member", member, &[Number(0), Text("member"), Number(64)]),
    ]
}

async fn sqlite_plans(url: &str) -> Vec<Plan> {
    let mut db = sqlite_seeded(url, EVENTS, &SEED).await;
    sqlite_explained(&mut db, replay_reads(store::Backend::Sqlite)).await
}

async fn postgres_plans(url: &str) -> Vec<Plan> {
    let mut db = postgres_seeded(url, EVENTS, &SEED).await;
    postgres_explained(&mut db, replay_reads(store::Backend::Postgres)).await
}

/// A connection to the test's database, with a `numbers` table of 1 to
/// `count` and `seed` run, then `ANALYZE`d.
async fn sqlite_seeded(url: &str, count: i64, seed: &[&str]) -> sqlx::SqliteConnection {
    let mut db = sqlx::SqliteConnection::connect(url).await.unwrap();
    let numbers = format!(
        "CREATE TEMP TABLE numbers AS WITH RECURSIVE g(n) AS
         (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {count}) SELECT n FROM g"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(numbers))
        .execute(&mut db)
        .await
        .unwrap();
    for statement in seed.iter().chain(&["ANALYZE"]) {
        sqlx::query(sqlx::AssertSqlSafe(*statement))
            .execute(&mut db)
            .await
            .unwrap();
    }
    db
}

async fn postgres_seeded(url: &str, count: i64, seed: &[&str]) -> sqlx::PgConnection {
    let mut db = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("CREATE TEMP TABLE numbers AS SELECT n FROM generate_series(1, $1::bigint) AS n")
        .bind(count)
        .execute(&mut db)
        .await
        .unwrap();
    for statement in seed.iter().chain(&["ANALYZE"]) {
        sqlx::query(sqlx::AssertSqlSafe(*statement))
            .execute(&mut db)
            .await
            .unwrap();
    }
    db
}

async fn sqlite_explained(db: &mut sqlx::SqliteConnection, reads: Vec<Read>) -> Vec<Plan> {
    let mut plans = Vec::new();
    for read in reads {
        let explain = format!("EXPLAIN QUERY PLAN {}", read.sql);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(explain));
        for argument in read.arguments {
            query = match argument {
                Argument::Number(number) => query.bind(number),
                Argument::Text(text) => query.bind(text),
            };
        }
        let rows = query.fetch_all(&mut *db).await.unwrap();
        plans.push(Plan {
            kind: read.kind,
            lines: rows.iter().map(|row| row.get::<String, _>(3)).collect(),
        });
    }
    plans
}

/// Each read prepared, as the store's are, and explained under either plan.
async fn postgres_explained(db: &mut sqlx::PgConnection, reads: Vec<Read>) -> Vec<Plan> {
    for (index, read) in reads.iter().enumerate() {
        let prepare = format!("PREPARE read_{index} AS {}", read.sql);
        sqlx::raw_sql(sqlx::AssertSqlSafe(prepare))
            .execute(&mut *db)
            .await
            .unwrap();
    }
    let mut plans = Vec::new();
    for (mode, label) in [
        ("force_custom_plan", ""),
        ("force_generic_plan", " (generic plan)"),
    ] {
        for (index, read) in reads.iter().enumerate() {
            let arguments: Vec<String> = read
                .arguments
                .iter()
                .map(|argument| match argument {
                    Argument::Number(number) => number.to_string(),
                    Argument::Text(text) => format!("'{text}'"),
                })
                .collect();
            let execute = match arguments.is_empty() {
                true => format!("read_{index}"),
                false => format!("read_{index}({})", arguments.join(", ")),
            };
            let explain = format!("SET plan_cache_mode = {mode}; EXPLAIN EXECUTE {execute}");
            let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(explain))
                .fetch_all(&mut *db)
                .await
                .unwrap();
            plans.push(Plan {
                kind: format!("{}{label}", read.kind),
                lines: rows.iter().map(|row| row.get::<String, _>(0)).collect(),
            });
        }
    }
    plans
}

const ROOMS: i64 = 100_000;
/// A support team's rooms: 1 in 20 open, 1 in 50 pending, 1 in 100
/// snoozed, the rest resolved; a third unassigned, the others shared by
/// 20 agents; each has its customer, who wrote three messages (a tenth of
/// the rooms' last one deleted) and read them all; `agent-1` has read a few. Their activity order is not the table's (a permutation): in use,
/// every message moves a room's row.
const INBOX_SEED: [&str; 7] = [
    "INSERT INTO rooms (id, name, created_by, created_at, updated_at, activity, last_seq,
         status, snoozed_until, assignee_id, started_at)
     SELECT 'r' || n, 'r', 'x', 0, 0, n * 7919 % 100003, 3,
         CASE WHEN n % 20 = 0 THEN 'open' WHEN n % 50 = 1 THEN 'pending'
              WHEN n % 100 = 3 THEN 'snoozed' ELSE 'resolved' END,
         CASE WHEN n % 100 = 3 THEN 9999999999999 END,
         CASE WHEN n % 3 = 0 THEN NULL ELSE 'agent-' || (n % 20) END, 0
     FROM numbers",
    "INSERT INTO room_members (room_id, user_id, joined_at)
     SELECT 'r' || n, 'customer-' || n, 0 FROM numbers",
    "INSERT INTO messages (room_id, seq, id, author_id, body, created_at)
     SELECT 'r' || n, seq, 'm' || n || '-' || seq, 'customer-' || n, 'where is my order?', 0
     FROM numbers, (SELECT 1 AS seq UNION ALL SELECT 2 UNION ALL SELECT 3) AS s",
    "UPDATE messages SET deleted_at = 1, deleted_by = 'x' WHERE seq = 3 AND room_id LIKE '%7'",
    "INSERT INTO read_cursors (room_id, user_id, last_read_seq)
     SELECT 'r' || n, 'customer-' || n, 3 FROM numbers",
    "INSERT INTO read_cursors (room_id, user_id, last_read_seq)
     SELECT 'r' || n, 'agent-1', 2 FROM numbers WHERE n % 7 = 0",
    "INSERT INTO agents (user_id, name, first_seen_at)
     SELECT 'agent-' || n, NULL, 0 FROM numbers WHERE n < 20",
];

/// The inbox's reads as `agent-1` makes them: each view's first page of
/// 100 (`$1` caller, `$2` page size + 1, `$3` activity bound, then an
/// agent), the tabs' counts and the agents' list.
fn inbox_reads(backend: store::Backend) -> Vec<Read> {
    use Argument::{Number, Text};
    let queries = InboxQueries::of(backend);
    let [[_, nobody, agent], [by_status, status_nobody, status_agent]] = queries.rooms;
    let page = |filter: &[Argument]| {
        let mut arguments = vec![Text("agent-1"), Number(101), Number(i64::MAX)];
        arguments.extend_from_slice(filter);
        arguments
    };
    vec![
        Read::new("status=open", by_status, &page(&[])),
        Read::new("assignee=none", nobody, &page(&[])),
        Read::new("assignee=agent-1", agent, &page(&[Text("agent-1")])),
        Read::new("status=open&assignee=none", status_nobody, &page(&[])),
        Read::new(
            "status=open&assignee=agent-1",
            status_agent,
            &page(&[Text("agent-1")]),
        ),
        Read::new("summary", queries.summary, &[Text("agent-1")]),
        Read::new("agents", queries.agents, &[]),
    ]
}

async fn the_inbox_views_and_counts_are_planned_on_their_indexes_over_100000_rooms(
    backend: Backend,
) {
    let app = TestApp::spawn(backend.clone()).await;
    let plans = match &backend {
        Backend::Sqlite => sqlite_inbox_plans(app.database_url()).await,
        Backend::Postgres(_) => postgres_inbox_plans(app.database_url()).await,
    };
    for plan in &plans {
        let text = plan.text();
        eprintln!("{text}");
        let uses = |index: &str| {
            plan.lines
                .iter()
                .any(|line| line.contains(&format!("{index} ")) || line.ends_with(index))
        };
        // Never every room, every cursor nor every message, under either
        // plan: not a scan of a table, nor of the activity order filtered
        // row by row. (SQLite's `SCAN r` is of the page when `r` is a
        // subquery's co-routine.)
        let page_is_r = plan
            .lines
            .iter()
            .any(|line| line.ends_with("CO-ROUTINE r") || line.ends_with("MATERIALIZE r"));
        for line in &plan.lines {
            let step = line.trim_start_matches(|c: char| !c.is_alphabetic());
            assert!(
                !line.contains("Seq Scan on rooms")
                    && !line.contains("Seq Scan on read_cursors")
                    && !line.contains("Seq Scan on messages")
                    && (step != "SCAN r" || page_is_r)
                    && step != "SCAN c"
                    && !line.contains("rooms_by_activity"),
                "{text}"
            );
        }
        let wanted = match plan.kind.split(' ').next().unwrap_or_default() {
            "status=open" | "summary" => "rooms_by_status",
            "assignee=none" => "rooms_unassigned",
            "assignee=agent-1" => "rooms_by_assignee",
            "status=open&assignee=none" => "rooms_unassigned_by_status",
            _ => "rooms_by_assignee_status",
        };
        assert!(uses(wanted), "{wanted} in {text}");
    }
}

async fn sqlite_inbox_plans(url: &str) -> Vec<Plan> {
    let mut db = sqlite_seeded(url, ROOMS, &INBOX_SEED).await;
    sqlite_explained(&mut db, inbox_reads(store::Backend::Sqlite)).await
}

async fn postgres_inbox_plans(url: &str) -> Vec<Plan> {
    let mut db = postgres_seeded(url, ROOMS, &INBOX_SEED).await;
    postgres_explained(&mut db, inbox_reads(store::Backend::Postgres)).await
}

/// 100,000 messages in 1,000 rooms, every 1,000th with a rare word, every
/// other one with a common word; `member` in 10 of the rooms.
const SEARCH_SEED: [&str; 3] = [
    "INSERT INTO rooms (id, name, created_by, created_at, updated_at, activity)
     SELECT 'r' || n, 'r', 'x', 0, 0, n FROM numbers WHERE n <= 1000",
    "INSERT INTO room_members (room_id, user_id, joined_at)
     SELECT 'r' || n, 'member', 0 FROM numbers WHERE n <= 10",
    "INSERT INTO messages (room_id, seq, id, author_id, body, created_at)
     SELECT 'r' || (1 + n % 1000), 1 + n / 1000, 'm' || n, 'u' || (n % 50),
         'order ' || n || CASE WHEN n % 1000 = 7 THEN ' chargeback' ELSE '' END
             || CASE WHEN n % 2 = 0 THEN ' refund' ELSE ' delivery' END,
         n
     FROM numbers",
];

/// The searches to explain: a rare word and a common one, by an admin and
/// by a member, newest first and by relevance, and a later page.
fn searches() -> Vec<(String, Caller, SearchRequest)> {
    let admin = Caller {
        id: UserId::parse("agent").unwrap(),
        role: Role::Admin,
    };
    let member = Caller {
        id: UserId::parse("member").unwrap(),
        role: Role::User,
    };
    let mut searches = Vec::new();
    for (who, caller) in [("admin", &admin), ("member", &member)] {
        for q in ["chargeback", "refund delivery", "refu"] {
            for order in [SearchOrder::Newest, SearchOrder::Relevance] {
                for after in [
                    None,
                    Some(SearchCursor {
                        position: 50_000,
                        id: "m50000".to_owned(),
                        top: Some(90_000),
                    }),
                ] {
                    let request = SearchRequest {
                        text: SearchText::parse(q).unwrap(),
                        room: None,
                        author: None,
                        since: None,
                        until: None,
                        order,
                        limit: 20,
                        after: after.clone(),
                    };
                    let page = if after.is_some() {
                        ", a later page"
                    } else {
                        ""
                    };
                    searches.push((
                        format!("{who} {q:?} {order:?}{page}"),
                        caller.clone(),
                        request,
                    ));
                }
            }
        }
    }
    searches
}

async fn searches_are_planned_on_the_full_text_index_never_a_scan_of_messages(backend: Backend) {
    let app = TestApp::spawn(backend.clone()).await;
    let kind = match &backend {
        Backend::Sqlite => store::Backend::Sqlite,
        Backend::Postgres(_) => store::Backend::Postgres,
    };
    // Each search's statement, explained with its arguments bound.
    let statements = searches().into_iter().map(|(label, caller, request)| {
        let statement = store::search_statement(kind, "simple", &caller, &request);
        (label, statement.arguments, statement.sql)
    });
    let mut plans = Vec::new();
    match &backend {
        Backend::Sqlite => {
            let mut db = sqlite_seeded(app.database_url(), 100_000, &SEARCH_SEED).await;
            for (label, arguments, sql) in statements {
                let explain = sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}"));
                let rows = bound(sqlx::query(explain), arguments)
                    .fetch_all(&mut db)
                    .await
                    .unwrap();
                let lines = rows.iter().map(|row| row.get::<String, _>(3)).collect();
                plans.push(Plan { kind: label, lines });
            }
        }
        Backend::Postgres(_) => {
            let mut db = postgres_seeded(app.database_url(), 100_000, &SEARCH_SEED).await;
            // As a search runs: planned for its words (`BEGIN_SEARCH`).
            sqlx::query("SET plan_cache_mode = force_custom_plan")
                .execute(&mut db)
                .await
                .unwrap();
            for (label, arguments, sql) in statements {
                let explain = sqlx::AssertSqlSafe(format!("EXPLAIN {sql}"));
                let rows = bound(sqlx::query(explain), arguments)
                    .fetch_all(&mut db)
                    .await
                    .unwrap();
                let lines = rows.iter().map(|row| row.get::<String, _>(0)).collect();
                plans.push(Plan { kind: label, lines });
            }
        }
    }
    for plan in &plans {
        let text = plan.text();
        eprintln!("{text}");
        let uses = |what: &str| plan.lines.iter().any(|line| line.contains(what));
        for line in &plan.lines {
            let step = line.trim_start_matches(|c: char| !c.is_alphabetic());
            assert!(
                !line.contains("Seq Scan on messages") && step != "SCAN m",
                "{text}"
            );
        }
        match &backend {
            // The match first, then each hit's row by its key (an admin's),
            // or through the rooms of a member's.
            Backend::Sqlite => {
                let matched = plan.lines.iter().any(|line| {
                    line.starts_with("SCAN messages_search VIRTUAL TABLE INDEX")
                        && line.contains(":M")
                });
                assert!(matched, "{text}");
                assert!(
                    uses("SEARCH m USING INTEGER PRIMARY KEY (rowid=?)")
                        || uses("SEARCH m USING INDEX sqlite_autoindex_messages_2 (room_id=?)"),
                    "{text}"
                );
            }
            // An admin's through the full-text index; a member's may read
            // their few rooms' messages instead, by room.
            Backend::Postgres(_) => {
                let by_room = plan.kind.starts_with("member")
                    && uses("Index Scan using messages_pkey on messages m");
                assert!(
                    uses("Bitmap Index Scan on messages_search") || by_room,
                    "{text}"
                );
            }
        }
    }
}

/// `query` with `arguments` bound, as the store binds them.
fn bound<'q, D: sqlx::Database>(
    mut query: sqlx::query::Query<'q, D, <D as sqlx::Database>::Arguments>,
    arguments: Vec<SearchArgument>,
) -> sqlx::query::Query<'q, D, <D as sqlx::Database>::Arguments>
where
    String: sqlx::Encode<'q, D> + sqlx::Type<D>,
    i64: sqlx::Encode<'q, D> + sqlx::Type<D>,
{
    for argument in arguments {
        query = match argument {
            SearchArgument::Text(text) => query.bind(text),
            SearchArgument::Number(number) => query.bind(number),
        };
    }
    query
}
