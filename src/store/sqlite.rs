//! The embedded store: one SQLite file in WAL mode. Writers take the database's
//! write lock up front (`BEGIN IMMEDIATE`), which serialises them: a room's seq
//! can never gap or repeat, and no transaction fails upgrading a read lock.

use super::Wake;
use super::sql::queries::Queries;
use super::sql::{Dialect, Pools, RowsAffected, SqlStore};
use super::{Backend, OpenError, StoreOptions};
use crate::error::Result;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Pool, Sqlite};
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::mpsc;

pub type SqliteStore = SqlStore<Sqlite>;

impl RowsAffected for SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        SqliteQueryResult::rows_affected(self)
    }
}

impl Dialect for Sqlite {
    /// One: SQLite takes one writer at a time anyway.
    const POST_WRITERS: usize = 1;
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    /// Deferred: the snapshot starts at the first read.
    const BEGIN_SNAPSHOT: &'static str = "BEGIN";
    const BEGIN_SEARCH: &'static str = "BEGIN";
    const BACKEND: Backend = Backend::Sqlite;
    /// `BEGIN IMMEDIATE` already holds the database's write lock.
    const LOCK_ROWS: &'static str = "";
    /// `BEGIN IMMEDIATE` already serialises them.
    const LOCK_WEBHOOKS: Option<&'static str> = None;
    const GREATEST: &'static str = "MAX";
    const MEMBER_IDS: &'static str = "(SELECT json_group_array(user_id) FROM
        (SELECT user_id FROM room_members WHERE room_id = r.id ORDER BY joined_at, user_id))";
    const READ_CURSORS: &'static str = "(SELECT json_group_object(user_id, last_read_seq)
        FROM read_cursors WHERE room_id = r.id)";
    /// No lateral joins: each room's scan is bounded above by the id of its
    /// `$3`-th event after `$1`, which SQLite uses as the range's end.
    const EVENTS_OF_ROOMS: &'static str = "JOIN events e ON e.room_id = mine.room_id AND e.id > $1
             AND e.id <= COALESCE((SELECT x.id FROM events x
                 WHERE x.room_id = mine.room_id AND x.id > $1
                 ORDER BY x.id LIMIT 1 OFFSET $3 - 1), 9223372036854775807)
         ORDER BY e.id LIMIT $3";

    fn json_values(parameter: u8) -> String {
        format!("json_each(${parameter})")
    }

    /// One process owns the file: its own relay is all there is to wake.
    fn notify_events() -> Option<&'static str> {
        None
    }

    fn queries() -> &'static Queries {
        static QUERIES: LazyLock<Queries> = LazyLock::new(Queries::of::<Sqlite>);
        &QUERIES
    }

    /// Opens (creating if needed) the database file and its directory.
    async fn connect(options: &StoreOptions) -> Result<Pools<Self>, OpenError> {
        let connect = SqliteConnectOptions::from_str(&options.url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(dir) = connect.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        // sqlx keeps an in-memory database in SQLite's shared cache, whose
        // table locks fail at once instead of waiting: give it one connection.
        let in_memory = options.url.contains(":memory:") || options.url.contains("mode=memory");
        let max_connections = if in_memory {
            1
        } else {
            options.max_connections
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        let relay_pool = if in_memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(options.acquire_timeout)
                .connect_lazy_with(connect)
        };
        Ok(Pools { pool, relay_pool })
    }

    async fn migrate(pool: &Pool<Self>) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("./migrations/sqlite").run(pool).await
    }

    /// FTS5's tokenizer folds case and diacritics, and stems no language.
    async fn index_search_in(_: &Pool<Self>, language: &str) -> Result<(), OpenError> {
        match language {
            "simple" => Ok(()),
            _ => Err(OpenError::SearchLanguage(
                language.to_owned(),
                "SQLite's search index knows no language but `simple`".to_owned(),
            )),
        }
    }

    /// One process owns a SQLite file: every writer is in this process, and
    /// wakes the relay itself.
    async fn watch_notifications(_: &Pool<Self>, _: Arc<Wake>, _: mpsc::Sender<String>) {}

    /// One process owns the file: its own streams are all there are.
    async fn notify_signals(_: &Pool<Self>, _: &[String]) -> Result<()> {
        Ok(())
    }
}
