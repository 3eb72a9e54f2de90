//! The store's queries and transactions, written once for both databases:
//! `SqlStore<D>` over sqlx's `Sqlite` or `Postgres`, each a `Dialect` that
//! supplies what differs.
//!
//! The event log's ids become visible in the order they are given: taking
//! one (`NEXT_EVENT_ID`) locks the single counter row until commit. To keep
//! that lock short and deadlock-free it is always a transaction's last lock:
//! a write first locks its room's row (an erasure step: its job's row, then
//! its rooms' in id order), and after the counter only inserts new rows or
//! updates rows it already holds.
//!
//! Every generic block repeats one `where` clause: what sqlx must know of a
//! database to run these queries (its executor, and how it binds and reads
//! the types used here). Rust does not carry such bounds over from a trait
//! (rust-lang/rust#20671), so they cannot live on `Dialect` alone.

mod attachments;
mod dialect;
mod erasure;
mod inbox;
mod posts;
pub mod queries;
mod rooms;
mod search;
mod store;
mod webhooks;

pub use dialect::{Dialect, Pools, RowsAffected};
pub use search::{SearchArgument, SearchStatement, search_statement};

use super::Wake;
use super::group_commit::{BatchQueue, Pending, PostQueue};
use super::{Erasing, OpenError, StoreOptions};
use crate::error::{Error, Result};
use crate::model::UserId;
use sqlx::{ColumnIndex, Decode, Encode, Executor, Pool, Transaction, Type};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

/// The most rooms one statement checks.
const MAX_ROOM_CHECKS: usize = 256;
/// How many such statements may be in flight at once: a burst of opens
/// takes two of the pool's connections.
const ROOM_CHECKERS: usize = 2;

/// Whether `user` (an admin or not) may see `room`.
pub(super) struct RoomCheck {
    user: String,
    room: String,
    admin: bool,
}

pub struct SqlStore<D: Dialect> {
    /// Poked after every write commits, to wake this process's relay.
    wake: Arc<Wake>,
    pool: Pool<D>,
    /// The relay's own connection (see `Store::relay_events_after`).
    relay_pool: Pool<D>,
    posts: PostQueue,
    /// Where concurrent `may_see_room` calls wait to share a statement.
    room_checks: BatchQueue<RoomCheck, bool>,
    /// The text search configuration searches read words with (PostgreSQL's).
    search_language: String,
    /// See `Store::purged_up_to`.
    purged_up_to: AtomicI64,
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    usize: ColumnIndex<D::Row>,
    for<'n> &'n str: ColumnIndex<D::Row>,
    for<'q> &'q str: Encode<'q, D> + Type<D>,
    for<'q> Option<&'q str>: Encode<'q, D>,
    for<'r> String: Encode<'r, D> + Decode<'r, D> + Type<D>,
    for<'r> Option<String>: Encode<'r, D>,
    for<'r> i64: Encode<'r, D> + Decode<'r, D> + Type<D>,
    for<'r> Option<i64>: Encode<'r, D>,
    for<'r> bool: Encode<'r, D> + Decode<'r, D> + Type<D>,
    for<'r> Option<bool>: Encode<'r, D>,
{
    /// Opens the database the options name; `wake` is poked after every
    /// write commits.
    pub async fn connect(options: &StoreOptions, wake: Arc<Wake>) -> Result<Self, OpenError> {
        let Pools { pool, relay_pool } = D::connect(options).await?;
        let posts = PostQueue::start(D::POST_WRITERS, {
            let (pool, wake) = (pool.clone(), wake.clone());
            move |batch| Self::write_posts(pool.clone(), wake.clone(), batch)
        });
        let (room_checks, _) = BatchQueue::start(MAX_ROOM_CHECKS, ROOM_CHECKERS, {
            let pool = pool.clone();
            move |checks| Self::check_rooms(pool.clone(), checks)
        });
        Ok(Self {
            wake,
            pool,
            relay_pool,
            posts,
            room_checks,
            search_language: options.search_language.clone(),
            purged_up_to: AtomicI64::new(0),
        })
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        D::migrate(&self.pool).await
    }

    /// Makes the search index read words in the configured language.
    pub async fn index_search(&self) -> Result<(), OpenError> {
        D::index_search_in(&self.pool, &self.search_language).await
    }

    /// Answers a batch of room checks with one statement.
    async fn check_rooms(pool: Pool<D>, checks: Vec<Pending<RoomCheck, bool>>) {
        // `VALUES` columns by their default names: SQLite names no columns
        // of a derived table.
        let mut query = sqlx::QueryBuilder::<D>::new("SELECT v.column1 FROM (");
        query.push_values(checks.iter().enumerate(), |mut row, (at, check)| {
            row.push_bind(at as i64)
                .push_bind(check.user.as_str())
                .push_bind(check.room.as_str())
                .push_bind(check.admin);
        });
        query.push(
            ") AS v JOIN rooms r ON r.id = v.column3 AND r.deleted_at IS NULL
             WHERE v.column4 OR EXISTS (SELECT 1 FROM room_members m
                 WHERE m.room_id = r.id AND m.user_id = v.column2)",
        );
        let visible: Result<Vec<i64>> = query
            .build_query_scalar()
            .fetch_all(&pool)
            .await
            .map_err(Into::into);
        match visible {
            Ok(visible) => {
                let visible: std::collections::HashSet<i64> = visible.into_iter().collect();
                for (at, check) in checks.into_iter().enumerate() {
                    check.answer(Ok(visible.contains(&(at as i64))));
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                for check in checks {
                    check.answer(Err(Error::shared(&error, "a batch of room checks failed")));
                }
            }
        }
    }

    /// Begins a transaction that writes.
    async fn begin_write(&self) -> Result<Transaction<'static, D>> {
        Ok(self.pool.begin_with(D::BEGIN_WRITE).await?)
    }

    /// Begins a read-only transaction whose statements share one snapshot.
    async fn begin_snapshot(&self) -> Result<Transaction<'static, D>> {
        Ok(self.pool.begin_with(D::BEGIN_SNAPSHOT).await?)
    }

    /// Commits a write, then wakes this process's relay to read what it
    /// logged: the end of every write.
    async fn commit(&self, tx: Transaction<'static, D>) -> Result<()> {
        tx.commit().await?;
        self.wake.poke();
        Ok(())
    }

    /// Makes the messages `which` names tombstones deleted by `by`, `batch`
    /// to a transaction, until a batch finds none; how many. (The
    /// retention's sweep: whatever a race leaves, the next sweep takes. An
    /// erasure job knows when it is done instead.)
    async fn erase(&self, by: &UserId, which: Erasing<'_>, batch: u32) -> Result<u64> {
        let mut erased = 0;
        loop {
            let mut tx = self.begin_write().await?;
            let written = Self::erase_batch(&mut tx, by, which, batch.max(1)).await?;
            if written == 0 {
                tx.rollback().await?;
                return Ok(erased);
            }
            self.commit(tx).await?;
            erased += written;
        }
    }
}
