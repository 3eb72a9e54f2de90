//! The production store: PostgreSQL, shared by every server instance. Writers
//! to one room queue on that room's row lock while taking its next seq, so a
//! room's seq can never gap or repeat across instances. Each commit that adds
//! events notifies `chat_events` (the id only: payloads stay in the log), and
//! every instance listens, so all of them relay every event.

use super::group_commit::PostQueue;
use super::{OpenError, StoreOptions};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub struct PgStore {
    /// Poked after every write commits, to wake this process's relay.
    wake: Arc<Notify>,
    pool: PgPool,
    /// The relay's own connection (see `Store::relay_events_after`).
    relay_pool: PgPool,
    posts: PostQueue,
}

/// Batch writers of posts. Several, so one batch is written while another commits.
const POST_WRITERS: usize = 2;

impl PgStore {
    pub async fn connect(options: &StoreOptions, wake: Arc<Notify>) -> Result<Self, OpenError> {
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
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
    }

    /// Listens on `chat_events` for ever, waking `wake` on every notification.
    /// A notification sent while the connection is down is lost, so after
    /// every (re)connection, once `LISTEN` is in place, it wakes `wake` too:
    /// the relay then reads whatever it missed from the log. Signals
    /// (`chat_signals`) carry their payload and are not in the log: one
    /// sent while the connection is down is gone, as ephemeral news may be.
    async fn watch_notifications(
        &self,
        wake: Arc<Notify>,
        signals: tokio::sync::mpsc::Sender<String>,
    ) {
        loop {
            match self.listen().await {
                Ok(mut listener) => {
                    wake.notify_one();
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
                        wake.notify_one();
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

    async fn listen(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen_all([CHANNEL, SIGNALS]).await?;
        Ok(listener)
    }

    async fn notify_signals(&self, signals: &[String]) -> crate::error::Result<()> {
        if signals.is_empty() {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, signal) FROM unnest($2::text[]) AS signal")
            .bind(SIGNALS)
            .bind(signals)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The channel commits notify and instances listen on.
pub(super) const CHANNEL: &str = "chat_events";
/// What a commit that logged events sends on `CHANNEL` (a test in
/// `store::tests` checks the name: `.ci/run` counts tests named
/// `::postgres::` as the PostgreSQL run's).
pub(super) const NOTIFY_EVENTS: &str = "SELECT pg_notify('chat_events', CAST($1 AS TEXT))";
/// The channel of ephemeral signals, each with its payload.
const SIGNALS: &str = "chat_signals";

/// Begins a transaction that writes.
async fn begin_write(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin().await
}

super::sql::impl_store! {
    store: PgStore,
    database: Postgres,
    connection: PgConnection,
    member_ids: "(SELECT COALESCE(json_agg(user_id ORDER BY joined_at, user_id), '[]'::json)::text
        FROM room_members WHERE room_id = r.id)",
    read_cursors: "(SELECT COALESCE(json_object_agg(user_id, last_read_seq), '{}'::json)::text
        FROM read_cursors WHERE room_id = r.id)",
    greatest: "GREATEST",
    insert_members: "INSERT INTO room_members (room_id, user_id, joined_at)
        SELECT $1, m, $3 FROM json_array_elements_text($2::json) AS m",
    // Each room's scan stops at the limit (a lateral join).
    events_of_member: concat!(
        "SELECT e.id, e.room_id, e.subject_id, e.data FROM ",
        super::sql::member_replay_rooms!(),
        " CROSS JOIN LATERAL (SELECT id, room_id, subject_id, data FROM events
              WHERE room_id = mine.room_id AND id > $1 ORDER BY id LIMIT $3) AS e
         ORDER BY e.id LIMIT $3"
    ),
    // One snapshot for every statement of a listing, like SQLite's.
    begin_snapshot: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    // Rows locked in the order they are read.
    lock_rows: " FOR UPDATE",
    notify: Some(NOTIFY_EVENTS),
}

super::webhooks::impl_webhook_store! {
    store: PgStore,
    database: Postgres,
    json_values: "json_array_elements_text($1::json)",
    greatest: "GREATEST",
    // Creations count the endpoints one at a time (an arbitrary key of ours).
    lock_webhooks: Some("SELECT pg_advisory_xact_lock(7163104836612961)"),
}
