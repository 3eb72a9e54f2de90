//! The replay queries read what they return, not the log: on a log of
//! 200,000 events, each stream kind's resume from the oldest id is planned as
//! index range scans, on both stores (and, on PostgreSQL, under the generic
//! plan that prepared statements switch to as well as the custom one).

use crate::support::{Backend, TestApp, on_both_stores};
use chat_server::store::{self, ReplayQueries};
use sqlx::{Connection, Row};

on_both_stores!(every_stream_kinds_resume_is_planned_on_indexes_over_a_big_log);

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

async fn sqlite_plans(url: &str) -> Vec<Plan> {
    let mut db = sqlx::SqliteConnection::connect(url).await.unwrap();
    let numbers = format!(
        "CREATE TEMP TABLE numbers AS WITH RECURSIVE g(n) AS
         (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {EVENTS}) SELECT n FROM g"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(numbers))
        .execute(&mut db)
        .await
        .unwrap();
    for statement in SEED.into_iter().chain(["ANALYZE"]) {
        sqlx::query(statement).execute(&mut db).await.unwrap();
    }
    let ReplayQueries { all, room, member } = ReplayQueries::of(store::Backend::Sqlite);
    let mut plans = Vec::new();
    for (kind, sql, scope) in [
        ("all", all, None),
        ("room", room, Some("r7")),
        ("member", member, Some("member")),
    ] {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let query = sqlx::query(sqlx::AssertSqlSafe(explain)).bind(0_i64);
        let query = match scope {
            Some(scope) => query.bind(scope).bind(64_i64),
            None => query.bind(64_i64),
        };
        let rows = query.fetch_all(&mut db).await.unwrap();
        plans.push(Plan {
            kind: kind.to_owned(),
            lines: rows.iter().map(|row| row.get::<String, _>(3)).collect(),
        });
    }
    plans
}

async fn postgres_plans(url: &str) -> Vec<Plan> {
    let mut db = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("CREATE TEMP TABLE numbers AS SELECT n FROM generate_series(1, $1::bigint) AS n")
        .bind(EVENTS)
        .execute(&mut db)
        .await
        .unwrap();
    for statement in SEED.into_iter().chain(["ANALYZE"]) {
        sqlx::query(statement).execute(&mut db).await.unwrap();
    }
    let ReplayQueries { all, room, member } = ReplayQueries::of(store::Backend::Postgres);
    // Prepared, as the store's are; explained under either plan.
    let kinds = [
        ("all", all, "0, 64"),
        ("room", room, "0, 'r7', 64"),
        ("member", member, "0, 'member', 64"),
    ];
    for (kind, sql, _) in kinds {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PREPARE replay_{kind} AS {sql}"
        )))
        .execute(&mut db)
        .await
        .unwrap();
    }
    let mut plans = Vec::new();
    for (mode, label) in [
        ("force_custom_plan", ""),
        ("force_generic_plan", " (generic plan)"),
    ] {
        for (kind, _, arguments) in kinds {
            let explain =
                format!("SET plan_cache_mode = {mode}; EXPLAIN EXECUTE replay_{kind}({arguments})");
            let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(explain))
                .fetch_all(&mut db)
                .await
                .unwrap();
            plans.push(Plan {
                kind: format!("{kind}{label}"),
                lines: rows.iter().map(|row| row.get::<String, _>(0)).collect(),
            });
        }
    }
    plans
}
