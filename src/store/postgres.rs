//! The production store: PostgreSQL, shared by every server instance. Writers
//! to one room queue on that room's row lock while taking its next seq, so a
//! room's seq can never gap or repeat across instances. Each commit that adds
//! events notifies `chat_events` (the id only: payloads stay in the log), and
//! every instance listens, so all of them relay every event.

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
}

impl PgStore {
    pub async fn connect(options: &StoreOptions, wake: Arc<Notify>) -> Result<Self, OpenError> {
        let connect = PgConnectOptions::from_str(&options.url)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(Self { wake, pool })
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// Listens on `chat_events` for ever, waking `wake` on every notification.
    /// A notification sent while the connection is down is lost, so every
    /// (re)connection also wakes it: the relay then reads what it missed.
    async fn watch_notifications(&self, wake: Arc<Notify>) {
        loop {
            let mut listener = match PgListener::connect_with(&self.pool).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for events; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(error) = listener.listen(CHANNEL).await {
                tracing::warn!(%error, "cannot listen for events; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            wake.notify_one();
            loop {
                match listener.try_recv().await {
                    Ok(Some(_)) => wake.notify_one(),
                    // The connection dropped; the next call reconnects. Catch up now.
                    Ok(None) => {
                        tracing::warn!("event listener lost its connection; catching up");
                        wake.notify_one();
                    }
                    Err(error) => {
                        tracing::warn!(%error, "event listener failed; reconnecting");
                        wake.notify_one();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        break;
                    }
                }
            }
        }
    }
}

/// The channel commits notify and instances listen on.
const CHANNEL: &str = "chat_events";

super::sql::impl_store! {
    store: PgStore,
    connection: PgConnection,
    member_ids: "(SELECT COALESCE(json_agg(user_id ORDER BY joined_at, user_id), '[]'::json)::text
        FROM room_members WHERE room_id = r.id)",
    greatest: "GREATEST",
    // One snapshot for every statement of a listing, like SQLite's.
    begin_snapshot: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    notify: Some("SELECT pg_notify('chat_events', CAST($1 AS TEXT))"),
}
