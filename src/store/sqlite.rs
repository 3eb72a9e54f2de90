//! The embedded store: one SQLite file in WAL mode. Writers take the database's
//! write lock up front (`BEGIN IMMEDIATE`), which serialises them: a room's seq
//! can never gap or repeat, and no transaction fails upgrading a read lock.

use super::group_commit::PostQueue;
use super::{OpenError, StoreOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub struct SqliteStore {
    /// Poked after every write commits, to wake this process's relay.
    wake: Arc<Notify>,
    pool: SqlitePool,
    /// The relay's own connection (see `Store::relay_events_after`).
    relay_pool: SqlitePool,
    posts: PostQueue,
}

/// Batch writers of posts. One: SQLite takes one writer at a time anyway.
const POST_WRITERS: usize = 1;

impl SqliteStore {
    /// Opens (creating if needed) the database file and its directory.
    pub async fn connect(options: &StoreOptions, wake: Arc<Notify>) -> Result<Self, OpenError> {
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
        let posts = PostQueue::start(POST_WRITERS, {
            let (pool, wake) = (pool.clone(), wake.clone());
            move |batch| write_posts(pool.clone(), wake.clone(), batch)
        });
        Ok(Self {
            wake,
            pool,
            relay_pool,
            posts,
        })
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("./migrations/sqlite").run(&self.pool).await
    }

    /// One process owns a SQLite file: every writer is in this process, and
    /// wakes the relay itself.
    async fn watch_notifications(
        &self,
        _wake: Arc<Notify>,
        _signals: tokio::sync::mpsc::Sender<String>,
    ) {
    }

    /// One process owns the file: its own streams are all there are.
    async fn notify_signals(&self, _signals: &[String]) -> crate::error::Result<()> {
        Ok(())
    }
}

/// Begins a transaction that writes.
async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

super::sql::impl_store! {
    store: SqliteStore,
    database: Sqlite,
    connection: SqliteConnection,
    member_ids: "(SELECT json_group_array(user_id) FROM
        (SELECT user_id FROM room_members WHERE room_id = r.id ORDER BY joined_at, user_id))",
    read_cursors: "(SELECT json_group_object(user_id, last_read_seq) FROM read_cursors
        WHERE room_id = r.id)",
    greatest: "MAX",
    insert_members: "INSERT INTO room_members (room_id, user_id, joined_at)
        SELECT $1, value, $3 FROM json_each($2)",
    // No lateral joins: each room's scan is bounded above by the id of its
    // `$3`-th event after `$1`, which SQLite uses as the range's end.
    events_of_member: concat!(
        "SELECT e.id, e.room_id, e.subject_id, e.data FROM ",
        super::sql::member_replay_rooms!(),
        " JOIN events e ON e.room_id = mine.room_id AND e.id > $1
             AND e.id <= COALESCE((SELECT x.id FROM events x
                 WHERE x.room_id = mine.room_id AND x.id > $1
                 ORDER BY x.id LIMIT 1 OFFSET $3 - 1), 9223372036854775807)
         ORDER BY e.id LIMIT $3"
    ),
    // Deferred: the snapshot starts at the first read.
    begin_snapshot: "BEGIN",
    // `BEGIN IMMEDIATE` already holds the database's write lock.
    lock_rows: "",
    notify: None,
}

super::webhooks::impl_webhook_store! {
    store: SqliteStore,
    database: Sqlite,
    json_values: "json_each($1)",
    greatest: "MAX",
    // `BEGIN IMMEDIATE` already serialises them.
    lock_webhooks: None,
}
