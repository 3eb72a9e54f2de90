//! What differs between the two databases, as the store's one implementation
//! asks it: how transactions begin, how rows are locked, a few SQL spellings,
//! how a commit tells other processes about new events, and how to connect.
//! Implemented on sqlx's own `Sqlite` and `Postgres` (in `store::sqlite` and
//! `store::postgres`).

use super::queries::Queries;
use crate::error::Result;
use crate::store::Wake;
use crate::store::{Backend, OpenError, StoreOptions};
use sqlx::{Database, IntoArguments, Pool};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The pools a store opens: one for everything, and the relay's own (see
/// `Store::relay_events_after`).
pub struct Pools<D: Database> {
    pub pool: Pool<D>,
    pub relay_pool: Pool<D>,
}

/// How many rows a statement changed (each driver has a result type of its own).
pub trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

pub trait Dialect: Database<Arguments: IntoArguments<Self>, QueryResult: RowsAffected> {
    /// Tasks that write batches of posts, one batch each at a time (see
    /// `group_commit`).
    const POST_WRITERS: usize;
    /// Begins a transaction that writes.
    const BEGIN_WRITE: &'static str;
    /// Begins a read-only transaction whose statements share one snapshot.
    const BEGIN_SNAPSHOT: &'static str;
    /// Begins the read-only transaction of a search.
    const BEGIN_SEARCH: &'static str;
    /// Which database this is (its full-text engine is its own: see `search`).
    const BACKEND: Backend;
    /// Appended to a `SELECT` to lock the rows it reads, in the order read;
    /// empty where `BEGIN_WRITE` already serialises writers.
    const LOCK_ROWS: &'static str;
    /// Serialises the creations of webhooks, where `BEGIN_WRITE` does not.
    const LOCK_WEBHOOKS: Option<&'static str>;
    /// The larger of two values (a function of two arguments).
    const GREATEST: &'static str;
    /// Room `r`'s member ids as JSON text, by joining time.
    const MEMBER_IDS: &'static str;
    /// Every reader's cursor in room `r` as a JSON object text, by user id.
    const READ_CURSORS: &'static str;
    /// How a member's replay reads each of its rooms (see
    /// `Queries::events_of_member`): what follows `FROM (…) AS mine`.
    const EVENTS_OF_ROOMS: &'static str;

    /// The values of the JSON array bound as `$parameter`, as a table of
    /// one column, `value`.
    fn json_values(parameter: u8) -> String;

    /// Run with an event's id (`$1`) by the commit that logged it, to wake
    /// other processes' relays; `None` where one process owns the database.
    fn notify_events() -> Option<&'static str>;

    /// This dialect's queries, composed once.
    fn queries() -> &'static Queries;

    fn connect(
        options: &StoreOptions,
    ) -> impl Future<Output = Result<Pools<Self>, OpenError>> + Send;

    fn migrate(
        pool: &Pool<Self>,
    ) -> impl Future<Output = Result<(), sqlx::migrate::MigrateError>> + Send;

    /// Makes the search index read words as the text search configuration
    /// `language` does, rebuilding it if it read them otherwise.
    fn index_search_in(
        pool: &Pool<Self>,
        language: &str,
    ) -> impl Future<Output = Result<(), OpenError>> + Send;

    /// Wakes `wake` whenever another process commits events, and forwards
    /// their signals, for ever. Where one process owns the database, there
    /// is none: it returns at once.
    fn watch_notifications(
        pool: &Pool<Self>,
        wake: Arc<Wake>,
        signals: mpsc::Sender<String>,
    ) -> impl Future<Output = ()> + Send;

    /// Sends ephemeral signals to every other process's streams.
    fn notify_signals(
        pool: &Pool<Self>,
        signals: &[String],
    ) -> impl Future<Output = Result<()>> + Send;
}
