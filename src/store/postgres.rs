//! The production store: PostgreSQL, shared by every server instance. Writers
//! to one room queue on that room's row lock while taking its next seq, so a
//! room's seq can never gap or repeat across instances. Each commit that adds
//! events notifies `chat_events` (the id only: payloads stay in the log), and
//! every instance listens, so all of them relay every event.

use super::Wake;
use super::sql::queries::Queries;
use super::sql::{Dialect, Pools, RowsAffected, SqlStore};
use super::{Backend, OpenError, StoreOptions};
use crate::error::Result;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgQueryResult};
use sqlx::{Pool, Postgres};
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::mpsc;

pub type PgStore = SqlStore<Postgres>;

/// The channel commits notify and instances listen on.
const CHANNEL: &str = "chat_events";
/// The channel of ephemeral signals, each with its payload.
const SIGNALS: &str = "chat_signals";

impl RowsAffected for PgQueryResult {
    fn rows_affected(&self) -> u64 {
        PgQueryResult::rows_affected(self)
    }
}

impl Dialect for Postgres {
    /// Several, so one batch is written while another commits.
    const POST_WRITERS: usize = 2;
    const BEGIN_WRITE: &'static str = "BEGIN";
    /// One snapshot for every statement of a listing, like SQLite's.
    const BEGIN_SNAPSHOT: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    /// A search is planned for its words: a rare one is found through the
    /// index, a common one among the newest messages (the connection's
    /// generic plans could not tell them apart). Without parallel workers:
    /// starting them took longer than a member's whole search (5 ms).
    const BEGIN_SEARCH: &'static str = "BEGIN READ ONLY;
        SET LOCAL plan_cache_mode = force_custom_plan;
        SET LOCAL max_parallel_workers_per_gather = 0";
    const BACKEND: Backend = Backend::Postgres;
    /// Rows locked in the order they are read.
    const LOCK_ROWS: &'static str = " FOR UPDATE";
    /// Creations count the endpoints one at a time (an arbitrary key of ours).
    const LOCK_WEBHOOKS: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(7163104836612961)");
    const GREATEST: &'static str = "GREATEST";
    const MEMBER_IDS: &'static str =
        "(SELECT COALESCE(json_agg(user_id ORDER BY joined_at, user_id), '[]'::json)::text
        FROM room_members WHERE room_id = r.id)";
    const READ_CURSORS: &'static str =
        "(SELECT COALESCE(json_object_agg(user_id, last_read_seq), '{}'::json)::text
        FROM read_cursors WHERE room_id = r.id)";
    /// Each room's scan stops at the limit (a lateral join).
    const EVENTS_OF_ROOMS: &'static str =
        "CROSS JOIN LATERAL (SELECT id, room_id, subject_id, data FROM events
              WHERE room_id = mine.room_id AND id > $1 ORDER BY id LIMIT $3) AS e
         ORDER BY e.id LIMIT $3";

    fn json_values(parameter: u8) -> String {
        format!("json_array_elements_text(${parameter}::json)")
    }

    /// The event's id only: payloads stay in the log.
    fn notify_events() -> Option<&'static str> {
        static NOTIFY_EVENTS: LazyLock<String> =
            LazyLock::new(|| format!("SELECT pg_notify('{CHANNEL}', CAST($1 AS TEXT))"));
        Some(&NOTIFY_EVENTS)
    }

    fn queries() -> &'static Queries {
        static QUERIES: LazyLock<Queries> = LazyLock::new(Queries::of::<Postgres>);
        &QUERIES
    }

    async fn connect(options: &StoreOptions) -> Result<Pools<Self>, OpenError> {
        // Every query here is an index lookup whose best plan does not depend
        // on its parameters, and planning the listing's (JSON aggregates,
        // four joins) costs ~2.5 ms: left to choose, PostgreSQL kept planning
        // it afresh on every call, which capped polling of the listing at
        // ~800 requests/s on two cores (docs/benchmarks.md, W4).
        let connect = PgConnectOptions::from_str(&options.url)?
            .options([("plan_cache_mode", "force_generic_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        let relay_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(connect);
        Ok(Pools { pool, relay_pool })
    }

    async fn migrate(pool: &Pool<Self>) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("./migrations/postgres").run(pool).await
    }

    /// Rebuilds the generated column and its index when the language
    /// changed: the table is rewritten, locked until it is (migration 0017).
    /// Instances starting together take turns; the first does the work.
    async fn index_search_in(pool: &Pool<Self>, language: &str) -> Result<(), OpenError> {
        let refuse = |why: &str| OpenError::SearchLanguage(language.to_owned(), why.to_owned());
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(7163104836612962)")
            .execute(&mut *tx)
            .await?;
        let indexed: String = sqlx::query_scalar("SELECT name FROM search_language")
            .fetch_one(&mut *tx)
            .await?;
        if indexed == language {
            return Ok(());
        }
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = $1
                 AND cfgnamespace = 'pg_catalog'::regnamespace)",
        )
        .bind(language)
        .fetch_one(&mut *tx)
        .await?;
        // Written into the column's definition: only a built-in name.
        if !known || !language.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            return Err(refuse(
                "not one of PostgreSQL's text search configurations (SELECT cfgname FROM pg_ts_config)",
            ));
        }
        tracing::warn!(from = %indexed, to = %language, "rebuilding the message search index for a new search_language: messages are locked until it is done");
        for statement in [
            "ALTER TABLE messages DROP COLUMN search".to_owned(),
            format!(
                "ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS
                     (to_tsvector('{language}', translate(body, '<>', '  '))) STORED"
            ),
            "CREATE INDEX messages_search ON messages USING gin (search)".to_owned(),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE search_language SET name = $1")
            .bind(language)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Listens on `chat_events` for ever, waking `wake` on every notification.
    /// A notification sent while the connection is down is lost, so after
    /// every (re)connection, once `LISTEN` is in place, it wakes `wake` too:
    /// the relay then reads whatever it missed from the log. Signals
    /// (`chat_signals`) carry their payload and are not in the log: one
    /// sent while the connection is down is gone, as ephemeral news may be.
    async fn watch_notifications(
        pool: &Pool<Self>,
        wake: Arc<Wake>,
        signals: mpsc::Sender<String>,
    ) {
        loop {
            match listen(pool).await {
                Ok(mut listener) => {
                    wake.poke();
                    // `Ok(None)` is a lost connection: reconnect ourselves, so
                    // the catch-up wake comes after the new LISTEN, not before.
                    let received = ::metrics::counter!(crate::metrics::NOTIFICATIONS);
                    while let Ok(Some(notification)) = listener.try_recv().await {
                        if notification.channel() == SIGNALS {
                            // A full queue drops the signal rather than stall
                            // the events' wake-ups behind it.
                            let _ = signals.try_send(notification.payload().to_owned());
                            continue;
                        }
                        received.increment(1);
                        wake.poke();
                    }
                    tracing::warn!("event listener lost its connection; reconnecting");
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for events; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn notify_signals(pool: &Pool<Self>, signals: &[String]) -> Result<()> {
        if signals.is_empty() {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, signal) FROM unnest($2::text[]) AS signal")
            .bind(SIGNALS)
            .bind(signals)
            .execute(pool)
            .await?;
        Ok(())
    }
}

/// A listener on a connection of its own, as sqlx's `PgListener::connect`
/// makes, to the store's database: held for ever, it must not take one of
/// the pool's connections from the requests.
async fn listen(pool: &Pool<Postgres>) -> Result<PgListener, sqlx::Error> {
    let own = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with((*pool.connect_options()).clone())
        .await?;
    let mut listener = PgListener::connect_with(&own).await?;
    listener.listen_all([CHANNEL, SIGNALS]).await?;
    Ok(listener)
}
