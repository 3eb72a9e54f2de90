//! The embedded store: one SQLite file in WAL mode. Writers take the database's
//! write lock up front (`BEGIN IMMEDIATE`), which serialises them: a room's seq
//! can never gap or repeat, and no transaction fails upgrading a read lock.

use super::{OpenError, StoreOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::str::FromStr;
use std::time::Duration;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and its directory.
    pub async fn connect(options: &StoreOptions) -> Result<Self, OpenError> {
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
            .connect_with(connect)
            .await?;
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("./migrations/sqlite").run(&self.pool).await
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

super::sql::impl_store! {
    store: SqliteStore,
    connection: SqliteConnection,
    member_ids: "(SELECT json_group_array(user_id) FROM
        (SELECT user_id FROM room_members WHERE room_id = r.id ORDER BY joined_at, user_id))",
    greatest: "MAX",
    next_activity: "(SELECT COALESCE(MAX(activity), 0) + 1 FROM rooms)",
}
