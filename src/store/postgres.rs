//! The production store: PostgreSQL, shared by every server instance. Writers
//! to one room queue on that room's row lock while taking its next seq, so a
//! room's seq can never gap or repeat across instances.

use super::{OpenError, StoreOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use std::str::FromStr;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(options: &StoreOptions) -> Result<Self, OpenError> {
        let connect = PgConnectOptions::from_str(&options.url)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }
}

super::sql::impl_store! {
    store: PgStore,
    connection: PgConnection,
    member_ids: "(SELECT COALESCE(json_agg(user_id ORDER BY joined_at, user_id), '[]'::json)::text
        FROM room_members WHERE room_id = r.id)",
    greatest: "GREATEST",
    next_activity: "nextval('room_activity')",
}
