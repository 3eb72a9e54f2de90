//! What webhooks keep in the store: the endpoints (each with its cursors
//! into the event log and the unseen notices, its retry state and its
//! lease), the unseen notices, and when each user last went offline.
//! `impl_webhook_store!` writes the queries once for both databases, as
//! `sql.rs` does for the rest.

use crate::error::{Error, Result};
use crate::model::{Message, MessageId, RoomId, Timestamp, UserId};
use async_trait::async_trait;

/// A registered endpoint, as stored. Not `Debug`: it holds the secret, and
/// its URL may hold a credential, and neither may reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    /// `None`: every room.
    pub room_ids: Option<Vec<String>>,
    pub secret: String,
    /// The secret before the last rotation, and until when it signs too.
    pub previous_secret: Option<(String, Timestamp)>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub cursors: Cursors,
    pub state: WebhookState,
    /// The first failed attempt at the delivery now due, and how many since.
    pub failing_since: Option<Timestamp>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
}

/// How far an endpoint has acknowledged: the last event of the log, and
/// the last unseen notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursors {
    pub event: i64,
    pub notice: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookState {
    /// Delivered to, or retried.
    Active,
    /// Its retries gave up (after the horizon): skipped until resumed.
    Failing,
}

impl WebhookState {
    fn parse(text: &str) -> Result<Self> {
        match text {
            "active" => Ok(Self::Active),
            "failing" => Ok(Self::Failing),
            other => Err(Error::internal(format!("unknown webhook state `{other}`"))),
        }
    }
}

/// A new endpoint, its values checked (`webhooks::endpoints`).
#[derive(Clone)]
pub struct NewWebhook {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub room_ids: Option<Vec<String>>,
    pub secret: String,
}

/// What an update changes; `None` leaves a value as it is.
#[derive(Clone, Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// `Some(None)`: every room again.
    pub room_ids: Option<Option<Vec<String>>>,
}

/// What a failed attempt left: the endpoint's retry state after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub failing_since: Timestamp,
    pub attempts: i64,
}

/// One event of the log, as a delivery carries it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoggedEvent {
    pub id: i64,
    pub room_id: String,
    pub created_at: i64,
    pub data: String,
}

/// An unseen notice; its message as it is now (`None` once its room's
/// deletion removed it).
#[derive(Debug, Clone)]
pub struct Notice {
    pub id: i64,
    pub room_id: RoomId,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub message: Option<Message>,
}

/// A notice the sweep raises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotice {
    pub room_id: RoomId,
    pub message_id: MessageId,
    pub user_id: UserId,
}

/// A member of a room, for the unseen sweep.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Reader {
    pub room_id: String,
    pub user_id: String,
    pub joined_at: i64,
    pub last_read_seq: i64,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a new endpoint; it is told of what happens from now on. With
    /// `most` endpoints already, none (422 `too_many_webhooks`): counted
    /// under a lock, so concurrent creations never pass the cap.
    async fn create_webhook(&self, new: &NewWebhook, most: usize) -> Result<Webhook>;

    /// Every endpoint, oldest first.
    async fn webhooks(&self) -> Result<Vec<Webhook>>;

    /// `NotFound` if there is none of that id.
    async fn webhook(&self, id: &str) -> Result<Webhook>;

    async fn update_webhook(&self, id: &str, change: &WebhookChange) -> Result<Webhook>;

    async fn delete_webhook(&self, id: &str) -> Result<()>;

    /// Signs with `secret` from now on, and with the one before too until `previous_until`.
    async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret: &str,
        previous_until: Timestamp,
    ) -> Result<Webhook>;

    /// A failing endpoint is delivered to again, from where it stopped.
    async fn resume_webhook(&self, id: &str) -> Result<Webhook>;

    /// Takes (or keeps) the lease of every endpoint whose lease is free,
    /// lapsed or `owner`'s own, until `until`; those `owner` now holds.
    async fn lease_webhooks(&self, owner: &str, until: Timestamp) -> Result<Vec<Webhook>>;

    /// Gives back `owner`'s leases (it is stopping).
    async fn release_webhooks(&self, owner: &str) -> Result<()>;

    /// Moves the endpoint's cursors forward to `to` and clears its retry
    /// state, if `owner` still holds its lease; whether it did.
    async fn advance_webhook(
        &self,
        id: &str,
        owner: &str,
        to: Cursors,
        delivered: bool,
    ) -> Result<bool>;

    /// Notes a failed attempt (the cursors stay), marking the endpoint
    /// failing if it has failed for `horizon_ms`; `None` if `owner` lost the lease.
    async fn webhook_failed(
        &self,
        id: &str,
        owner: &str,
        error: &str,
        horizon_ms: i64,
    ) -> Result<Option<Failure>>;

    /// Up to `limit` events of the log after `after`, oldest first.
    async fn events_for_delivery(&self, after: i64, limit: u32) -> Result<Vec<LoggedEvent>>;

    /// Up to `limit` unseen notices after `after`, oldest first.
    async fn notices_after(&self, after: i64, limit: u32) -> Result<Vec<Notice>>;

    /// The last event the unseen sweep has looked at.
    async fn unseen_swept(&self) -> Result<i64>;

    /// The members of `rooms` (not deleted) with their read cursors.
    async fn readers(&self, rooms: &[String]) -> Result<Vec<Reader>>;

    /// When each of `users` last went offline, for those who ever did.
    async fn offline_at(&self, users: &[UserId]) -> Result<Vec<(UserId, Timestamp)>>;

    /// Moves the sweep from `from` to `to` and writes `notices` (each once
    /// ever), unless another sweep moved it first; whether this one did.
    async fn raise_unseen(&self, from: i64, to: i64, notices: &[NewNotice]) -> Result<bool>;

    /// `users` went offline at `at`.
    async fn note_offline(&self, users: &[UserId], at: Timestamp) -> Result<()>;

    /// Deletes notices created before `cutoff` that every active endpoint
    /// has acknowledged; how many.
    async fn purge_notices(&self, cutoff: Timestamp) -> Result<u64>;

    /// Forgets when users went offline, where it was more than `margin`
    /// before every message the sweep has yet to look at (before now, if
    /// it is not `sweeping`): such a time can spare nobody a notice any
    /// more. The margin covers the instances' clocks disagreeing. How many.
    async fn purge_offline(&self, margin: std::time::Duration, sweeping: bool) -> Result<u64>;
}

/// The notice's event type, as endpoints' lists name it (see `webhooks::endpoints`).
pub const UNSEEN: &str = "message.unseen";

/// One endpoint row as both backends return it.
#[derive(sqlx::FromRow)]
pub(super) struct WebhookRow {
    id: String,
    url: String,
    event_types: String,
    room_ids: Option<String>,
    secret: String,
    previous_secret: Option<String>,
    previous_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
    event_cursor: i64,
    notice_cursor: i64,
    state: String,
    failing_since: Option<i64>,
    attempts: i64,
    last_error: Option<String>,
    delivered_at: Option<i64>,
}

impl TryFrom<WebhookRow> for Webhook {
    type Error = Error;

    fn try_from(row: WebhookRow) -> Result<Self> {
        let list = |text: &str| {
            serde_json::from_str::<Vec<String>>(text)
                .map_err(|e| Error::internal_from("a webhook's list is not JSON", e))
        };
        Ok(Self {
            event_types: list(&row.event_types)?,
            room_ids: row.room_ids.as_deref().map(list).transpose()?,
            id: row.id,
            url: row.url,
            secret: row.secret,
            previous_secret: row
                .previous_secret
                .zip(row.previous_until.map(Timestamp::from_unix_ms)),
            created_at: Timestamp::from_unix_ms(row.created_at),
            updated_at: Timestamp::from_unix_ms(row.updated_at),
            cursors: Cursors {
                event: row.event_cursor,
                notice: row.notice_cursor,
            },
            state: WebhookState::parse(&row.state)?,
            failing_since: row.failing_since.map(Timestamp::from_unix_ms),
            attempts: row.attempts,
            last_error: row.last_error,
            delivered_at: row.delivered_at.map(Timestamp::from_unix_ms),
        })
    }
}

/// One notice row, its message's columns `NULL` once the message is gone.
#[derive(sqlx::FromRow)]
pub(super) struct NoticeRow {
    id: i64,
    room_id: String,
    user_id: String,
    created_at: i64,
    #[sqlx(flatten)]
    message: super::JoinedMessage,
}

impl From<NoticeRow> for Notice {
    fn from(row: NoticeRow) -> Self {
        Self {
            id: row.id,
            message: row.message.into_message(&row.room_id),
            room_id: RoomId::from_store(row.room_id),
            user_id: UserId::from_store(row.user_id),
            created_at: Timestamp::from_unix_ms(row.created_at),
        }
    }
}

pub(super) fn json_list(items: &[String]) -> String {
    // A list of strings always encodes.
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

pub(super) fn json_users(users: &[UserId]) -> String {
    let users: Vec<&str> = users.iter().map(UserId::as_str).collect();
    serde_json::to_string(&users).unwrap_or_else(|_| "[]".to_owned())
}

/// The webhook queries for one backend: `$json_values` spells "the values
/// of the JSON array `$1`" as a table with a `value` column; `$greatest`
/// the larger of two values.
macro_rules! impl_webhook_store {
    (
        store: $store:ty,
        database: $db:ty,
        json_values: $json_values:literal,
        greatest: $greatest:literal,
        lock_webhooks: $lock_webhooks:expr $(,)?
    ) => {
        use super::webhooks::{
            Cursors, Failure, LoggedEvent, NewNotice, NewWebhook, Notice, NoticeRow, Reader,
            UNSEEN, Webhook, WebhookChange, WebhookRow, WebhookStore, json_list,
            json_users,
        };

        const WEBHOOK_COLUMNS: &str = "id, url, event_types, room_ids, secret, previous_secret,
             previous_until, created_at, updated_at, event_cursor, notice_cursor, state,
             failing_since, attempts, last_error, delivered_at";

        /// With no other webhook asking for unseen notices, the sweep has
        /// stood still (see `webhooks::unseen`): it starts at the newest
        /// event, so the new subscriber gets no notices of the past.
        /// Called before the webhook asks: a sweep in between still sees
        /// nobody asking, and one after starts from here.
        async fn start_unseen_sweep(
            conn: &mut <$db as sqlx::Database>::Connection,
            id: &str,
        ) -> crate::error::Result<()> {
            sqlx::query(
                "UPDATE unseen_sweep SET last_event_id = (SELECT last_id FROM event_counter)
                 WHERE NOT EXISTS (SELECT 1 FROM webhooks
                     WHERE id <> $1 AND wants_unseen)",
            )
            .bind(id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        fn webhooks_of(rows: Vec<WebhookRow>) -> crate::error::Result<Vec<Webhook>> {
            rows.into_iter().map(Webhook::try_from).collect()
        }

        #[async_trait::async_trait]
        impl WebhookStore for $store {
            async fn create_webhook(
                &self,
                new: &NewWebhook,
                most: usize,
            ) -> crate::error::Result<Webhook> {
                let mut tx = begin_write(&self.pool).await?;
                let lock: Option<&'static str> = $lock_webhooks;
                if let Some(lock) = lock {
                    sqlx::query(lock).execute(&mut *tx).await?;
                }
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks")
                    .fetch_one(&mut *tx)
                    .await?;
                if usize::try_from(count).unwrap_or(usize::MAX) >= most {
                    return Err(crate::error::Error::unprocessable(
                        "too_many_webhooks",
                        format!("there are {count} webhooks already, the most there may be"),
                    ));
                }
                if new.event_types.iter().any(|kind| kind == UNSEEN) {
                    start_unseen_sweep(&mut tx, &new.id).await?;
                }
                // From the newest committed event and notice on: ids
                // commit in order, so nothing below either is still to come.
                let row: WebhookRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO webhooks (id, url, event_types, room_ids, secret, created_at,
                         updated_at, event_cursor, notice_cursor, state, wants_unseen)
                     SELECT $1, $2, $3, $4, $5, $6, $6, (SELECT last_id FROM event_counter),
                         (SELECT COALESCE(MAX(id), 0) FROM unseen_notices), 'active', $7
                     RETURNING {WEBHOOK_COLUMNS}"
                )))
                .bind(&new.id)
                .bind(&new.url)
                .bind(json_list(&new.event_types))
                .bind(new.room_ids.as_deref().map(json_list))
                .bind(&new.secret)
                .bind(crate::model::Timestamp::now().unix_ms())
                .bind(new.event_types.iter().any(|kind| kind == UNSEEN))
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                row.try_into()
            }

            async fn webhooks(&self) -> crate::error::Result<Vec<Webhook>> {
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at, id"
                )))
                .fetch_all(&self.pool)
                .await?;
                webhooks_of(rows)
            }

            async fn webhook(&self, id: &str) -> crate::error::Result<Webhook> {
                let row: Option<WebhookRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.ok_or(crate::error::Error::NotFound("webhook"))?
                    .try_into()
            }

            async fn update_webhook(
                &self,
                id: &str,
                change: &WebhookChange,
            ) -> crate::error::Result<Webhook> {
                let wants_unseen = change
                    .event_types
                    .as_ref()
                    .is_some_and(|types| types.iter().any(|kind| kind == UNSEEN));
                let had_unseen = self
                    .webhook(id)
                    .await?
                    .event_types
                    .iter()
                    .any(|kind| kind == UNSEEN);
                if wants_unseen && !had_unseen {
                    start_unseen_sweep(&mut *self.pool.acquire().await?, id).await?;
                }
                let row: Option<WebhookRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE webhooks SET url = COALESCE($2, url),
                         event_types = COALESCE($3, event_types),
                         room_ids = CASE WHEN $4 THEN $5 ELSE room_ids END,
                         updated_at = $6,
                         notice_cursor = CASE
                             WHEN $7 AND NOT wants_unseen
                             THEN (SELECT COALESCE(MAX(id), 0) FROM unseen_notices)
                             ELSE notice_cursor END,
                         wants_unseen = COALESCE($8, wants_unseen)
                     WHERE id = $1 RETURNING {WEBHOOK_COLUMNS}"
                )))
                .bind(id)
                .bind(change.url.as_deref())
                .bind(change.event_types.as_deref().map(json_list))
                .bind(change.room_ids.is_some())
                .bind(change.room_ids.clone().flatten().as_deref().map(json_list))
                .bind(crate::model::Timestamp::now().unix_ms())
                // Asking for notices from now on: none of the past.
                .bind(wants_unseen)
                .bind(change.event_types.as_ref().map(|_| wants_unseen))
                .fetch_optional(&self.pool)
                .await?;
                row.ok_or(crate::error::Error::NotFound("webhook"))?
                    .try_into()
            }

            async fn delete_webhook(&self, id: &str) -> crate::error::Result<()> {
                let deleted = sqlx::query("DELETE FROM webhooks WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    return Err(crate::error::Error::NotFound("webhook"));
                }
                Ok(())
            }

            async fn rotate_webhook_secret(
                &self,
                id: &str,
                secret: &str,
                previous_until: crate::model::Timestamp,
            ) -> crate::error::Result<Webhook> {
                let row: Option<WebhookRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE webhooks SET previous_secret = secret, previous_until = $3,
                         secret = $2, updated_at = $4
                     WHERE id = $1 RETURNING {WEBHOOK_COLUMNS}"
                )))
                .bind(id)
                .bind(secret)
                .bind(previous_until.unix_ms())
                .bind(crate::model::Timestamp::now().unix_ms())
                .fetch_optional(&self.pool)
                .await?;
                row.ok_or(crate::error::Error::NotFound("webhook"))?
                    .try_into()
            }

            async fn resume_webhook(&self, id: &str) -> crate::error::Result<Webhook> {
                let row: Option<WebhookRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE webhooks SET state = 'active', failing_since = NULL, attempts = 0,
                         updated_at = $2
                     WHERE id = $1 RETURNING {WEBHOOK_COLUMNS}"
                )))
                .bind(id)
                .bind(crate::model::Timestamp::now().unix_ms())
                .fetch_optional(&self.pool)
                .await?;
                row.ok_or(crate::error::Error::NotFound("webhook"))?
                    .try_into()
            }

            async fn lease_webhooks(
                &self,
                owner: &str,
                until: crate::model::Timestamp,
            ) -> crate::error::Result<Vec<Webhook>> {
                // A read first: with no webhooks (the usual case), renewals
                // never take SQLite's one write lock.
                let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM webhooks)")
                    .fetch_one(&self.pool)
                    .await?;
                if !any {
                    return Ok(Vec::new());
                }
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE webhooks SET lease_owner = $1, lease_until = $3
                     WHERE lease_owner = $1 OR lease_until < $2
                     RETURNING {WEBHOOK_COLUMNS}"
                )))
                .bind(owner)
                .bind(crate::model::Timestamp::now().unix_ms())
                .bind(until.unix_ms())
                .fetch_all(&self.pool)
                .await?;
                webhooks_of(rows)
            }

            async fn release_webhooks(&self, owner: &str) -> crate::error::Result<()> {
                sqlx::query(
                    "UPDATE webhooks SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = $1",
                )
                .bind(owner)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn advance_webhook(
                &self,
                id: &str,
                owner: &str,
                to: Cursors,
                delivered: bool,
            ) -> crate::error::Result<bool> {
                let now = crate::model::Timestamp::now().unix_ms();
                let moved = sqlx::query(concat!(
                    "UPDATE webhooks SET event_cursor = ", $greatest, "(event_cursor, $3),
                         notice_cursor = ", $greatest, "(notice_cursor, $4),
                         failing_since = NULL, attempts = 0, last_error = NULL,
                         delivered_at = CASE WHEN $5 THEN $6 ELSE delivered_at END
                     WHERE id = $1 AND lease_owner = $2"
                ))
                .bind(id)
                .bind(owner)
                .bind(to.event)
                .bind(to.notice)
                .bind(delivered)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(moved == 1)
            }

            async fn webhook_failed(
                &self,
                id: &str,
                owner: &str,
                error: &str,
                horizon_ms: i64,
            ) -> crate::error::Result<Option<Failure>> {
                let now = crate::model::Timestamp::now().unix_ms();
                let row: Option<(i64, i64)> = sqlx::query_as(
                    "UPDATE webhooks SET failing_since = COALESCE(failing_since, $3),
                         attempts = attempts + 1, last_error = $4,
                         state = CASE WHEN $3 - COALESCE(failing_since, $3) >= $5
                             THEN 'failing' ELSE state END
                     WHERE id = $1 AND lease_owner = $2
                     RETURNING failing_since, attempts",
                )
                .bind(id)
                .bind(owner)
                .bind(now)
                .bind(error)
                .bind(horizon_ms)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(since, attempts)| Failure {
                    failing_since: crate::model::Timestamp::from_unix_ms(since),
                    attempts,
                }))
            }

            async fn events_for_delivery(
                &self,
                after: i64,
                limit: u32,
            ) -> crate::error::Result<Vec<LoggedEvent>> {
                Ok(sqlx::query_as(
                    "SELECT id, room_id, created_at, data FROM events
                     WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn notices_after(
                &self,
                after: i64,
                limit: u32,
            ) -> crate::error::Result<Vec<Notice>> {
                let rows: Vec<NoticeRow> = sqlx::query_as(
                    "SELECT n.id, n.room_id, n.user_id, n.created_at, m.id AS msg_id,
                         m.seq AS msg_seq, m.author_id AS msg_author_id, m.body AS msg_body,
                         m.client_id AS msg_client_id, m.created_at AS msg_created_at,
                         m.edited_at AS msg_edited_at, m.deleted_at AS msg_deleted_at,
                         m.deleted_by AS msg_deleted_by
                     FROM unseen_notices n LEFT JOIN messages m ON m.id = n.message_id
                     WHERE n.id > $1 ORDER BY n.id LIMIT $2",
                )
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Notice::from).collect())
            }

            async fn unseen_swept(&self) -> crate::error::Result<i64> {
                Ok(sqlx::query_scalar("SELECT last_event_id FROM unseen_sweep")
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn readers(&self, rooms: &[String]) -> crate::error::Result<Vec<Reader>> {
                Ok(sqlx::query_as(concat!(
                    "SELECT m.room_id, m.user_id, m.joined_at,
                         COALESCE(c.last_read_seq, 0) AS last_read_seq
                     FROM room_members m
                     JOIN rooms r ON r.id = m.room_id AND r.deleted_at IS NULL
                     LEFT JOIN read_cursors c ON c.room_id = m.room_id AND c.user_id = m.user_id
                     WHERE m.room_id IN (SELECT value FROM ", $json_values, ")"
                ))
                .bind(json_list(rooms))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn offline_at(
                &self,
                users: &[crate::model::UserId],
            ) -> crate::error::Result<Vec<(crate::model::UserId, crate::model::Timestamp)>> {
                let rows: Vec<(String, i64)> = sqlx::query_as(concat!(
                    "SELECT user_id, offline_at FROM presence_offline
                     WHERE user_id IN (SELECT value FROM ", $json_values, ")"
                ))
                .bind(json_users(users))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(user, at)| {
                        (
                            crate::model::UserId::from_store(user),
                            crate::model::Timestamp::from_unix_ms(at),
                        )
                    })
                    .collect())
            }

            async fn raise_unseen(
                &self,
                from: i64,
                to: i64,
                notices: &[NewNotice],
            ) -> crate::error::Result<bool> {
                let mut tx = begin_write(&self.pool).await?;
                // First: the row's lock orders the notices' ids by commit.
                let moved = sqlx::query(
                    "UPDATE unseen_sweep SET last_event_id = $2 WHERE last_event_id = $1",
                )
                .bind(from)
                .bind(to)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if moved != 1 {
                    return Ok(false);
                }
                let now = crate::model::Timestamp::now().unix_ms();
                for notice in notices {
                    sqlx::query(
                        "INSERT INTO unseen_notices (room_id, message_id, user_id, created_at)
                         VALUES ($1, $2, $3, $4) ON CONFLICT (message_id, user_id) DO NOTHING",
                    )
                    .bind(notice.room_id.as_str())
                    .bind(notice.message_id.as_str())
                    .bind(notice.user_id.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn note_offline(
                &self,
                users: &[crate::model::UserId],
                at: crate::model::Timestamp,
            ) -> crate::error::Result<()> {
                if users.is_empty() {
                    return Ok(());
                }
                // `WHERE true`: SQLite reads `ON` after a bare SELECT as a join's.
                sqlx::query(concat!(
                    "INSERT INTO presence_offline (user_id, offline_at)
                     SELECT value, $2 FROM ", $json_values, " WHERE true
                     ON CONFLICT (user_id) DO UPDATE SET offline_at = ", $greatest,
                    "(presence_offline.offline_at, excluded.offline_at)"
                ))
                .bind(json_users(users))
                .bind(at.unix_ms())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn purge_notices(
                &self,
                cutoff: crate::model::Timestamp,
            ) -> crate::error::Result<u64> {
                Ok(sqlx::query(
                    "DELETE FROM unseen_notices WHERE created_at < $1
                     AND id <= COALESCE((SELECT MIN(notice_cursor) FROM webhooks
                         WHERE state = 'active' AND wants_unseen),
                         9223372036854775807)",
                )
                .bind(cutoff.unix_ms())
                .execute(&self.pool)
                .await?
                .rows_affected())
            }

            async fn purge_offline(
                &self,
                margin: std::time::Duration,
                sweeping: bool,
            ) -> crate::error::Result<u64> {
                // The first message not swept yet is the oldest a notice may
                // still come for (ids commit in order); with none, now.
                Ok(sqlx::query(
                    "DELETE FROM presence_offline WHERE offline_at < CASE WHEN $2 THEN
                         COALESCE((SELECT e.created_at FROM events e
                             WHERE e.id > (SELECT last_event_id FROM unseen_sweep)
                             ORDER BY e.id LIMIT 1), $1)
                         ELSE $1 END - $3",
                )
                .bind(crate::model::Timestamp::now().unix_ms())
                .bind(sweeping)
                .bind(i64::try_from(margin.as_millis()).unwrap_or(i64::MAX))
                .execute(&self.pool)
                .await?
                .rows_affected())
            }
        }
    };
}
pub(super) use impl_webhook_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_state_is_read_as_the_queries_write_it() {
        assert_eq!(WebhookState::parse("active").unwrap(), WebhookState::Active);
        assert_eq!(
            WebhookState::parse("failing").unwrap(),
            WebhookState::Failing
        );
        assert!(WebhookState::parse("paused").is_err());
    }
}
