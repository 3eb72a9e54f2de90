//! `WebhookStore` on either database.

use super::SqlStore;
use super::dialect::{Dialect, RowsAffected};
use crate::error::{Error, Result};
use crate::model::{Timestamp, UserId};
use crate::store::webhooks::{
    Cursors, Failure, LoggedEvent, NewNotice, NewWebhook, Notice, NoticeRow, Reader, UNSEEN,
    Webhook, WebhookChange, WebhookRow, WebhookStore, json_list, json_users,
};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};
use std::sync::LazyLock;

const WEBHOOK_COLUMNS: &str = "id, url, event_types, room_ids, secret, previous_secret,
     previous_until, created_at, updated_at, event_cursor, notice_cursor, state,
     failing_since, attempts, last_error, delivered_at";

/// With no other webhook asking for unseen notices, the sweep has stood
/// still (see `webhooks::unseen`): this starts it at the newest event, so
/// a new subscriber (`$1`) gets no notices of the past. Run before the
/// webhook asks: a sweep in between still sees nobody asking, and one
/// after starts from here.
const START_UNSEEN_SWEEP: &str =
    "UPDATE unseen_sweep SET last_event_id = (SELECT last_id FROM event_counter)
     WHERE NOT EXISTS (SELECT 1 FROM webhooks WHERE id <> $1 AND wants_unseen)";

/// The queries that read endpoints whole, composed once.
struct WebhookQueries {
    /// A new endpoint, from the newest committed event and notice on: ids
    /// commit in order, so nothing below either is still to come.
    insert: String,
    /// Every endpoint, oldest first.
    all: String,
    /// Endpoint `$1`.
    by_id: String,
    /// Changes endpoint `$1` (see `update_webhook`).
    update: String,
    /// Makes `$2` endpoint `$1`'s secret, the last one signing until `$3`.
    rotate: String,
    /// Makes endpoint `$1` active again.
    resume: String,
    /// Leases to `$1` until `$3` every endpoint it holds or whose lease ended before `$2`.
    lease: String,
}

static QUERIES: LazyLock<WebhookQueries> = LazyLock::new(|| WebhookQueries {
    insert: format!(
        "INSERT INTO webhooks (id, url, event_types, room_ids, secret, created_at,
                 updated_at, event_cursor, notice_cursor, state, wants_unseen)
             SELECT $1, $2, $3, $4, $5, $6, $6, (SELECT last_id FROM event_counter),
                 (SELECT COALESCE(MAX(id), 0) FROM unseen_notices), 'active', $7
             RETURNING {WEBHOOK_COLUMNS}"
    ),
    all: format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at, id"),
    by_id: format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"),
    update: format!(
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
    ),
    rotate: format!(
        "UPDATE webhooks SET previous_secret = secret, previous_until = $3,
                 secret = $2, updated_at = $4
             WHERE id = $1 RETURNING {WEBHOOK_COLUMNS}"
    ),
    resume: format!(
        "UPDATE webhooks SET state = 'active', failing_since = NULL, attempts = 0,
                 updated_at = $2
             WHERE id = $1 RETURNING {WEBHOOK_COLUMNS}"
    ),
    lease: format!(
        "UPDATE webhooks SET lease_owner = $1, lease_until = $3
             WHERE lease_owner = $1 OR lease_until < $2
             RETURNING {WEBHOOK_COLUMNS}"
    ),
});

fn webhooks_of(rows: Vec<WebhookRow>) -> Result<Vec<Webhook>> {
    rows.into_iter().map(Webhook::try_from).collect()
}

#[async_trait::async_trait]
impl<D: Dialect> WebhookStore for SqlStore<D>
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
    async fn create_webhook(&self, new: &NewWebhook, most: usize) -> Result<Webhook> {
        let mut tx = self.begin_write().await?;
        if let Some(lock) = D::LOCK_WEBHOOKS {
            sqlx::query(lock).execute(&mut *tx).await?;
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks")
            .fetch_one(&mut *tx)
            .await?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= most {
            return Err(Error::unprocessable(
                "too_many_webhooks",
                format!("there are {count} webhooks already, the most there may be"),
            ));
        }
        if new.event_types.iter().any(|kind| kind == UNSEEN) {
            sqlx::query(START_UNSEEN_SWEEP)
                .bind(&new.id)
                .execute(&mut *tx)
                .await?;
        }
        let row: WebhookRow = sqlx::query_as(QUERIES.insert.as_str())
            .bind(&new.id)
            .bind(&new.url)
            .bind(json_list(&new.event_types))
            .bind(new.room_ids.as_deref().map(json_list))
            .bind(&new.secret)
            .bind(Timestamp::now().unix_ms())
            .bind(new.event_types.iter().any(|kind| kind == UNSEEN))
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        row.try_into()
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        let rows = sqlx::query_as(QUERIES.all.as_str())
            .fetch_all(&self.pool)
            .await?;
        webhooks_of(rows)
    }

    async fn webhook(&self, id: &str) -> Result<Webhook> {
        let row: Option<WebhookRow> = sqlx::query_as(QUERIES.by_id.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.ok_or(Error::NotFound("webhook"))?.try_into()
    }

    async fn update_webhook(&self, id: &str, change: &WebhookChange) -> Result<Webhook> {
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
            sqlx::query(START_UNSEEN_SWEEP)
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        let row: Option<WebhookRow> = sqlx::query_as(QUERIES.update.as_str())
            .bind(id)
            .bind(change.url.as_deref())
            .bind(change.event_types.as_deref().map(json_list))
            .bind(change.room_ids.is_some())
            .bind(change.room_ids.clone().flatten().as_deref().map(json_list))
            .bind(Timestamp::now().unix_ms())
            // Asking for notices from now on: none of the past.
            .bind(wants_unseen)
            .bind(change.event_types.as_ref().map(|_| wants_unseen))
            .fetch_optional(&self.pool)
            .await?;
        row.ok_or(Error::NotFound("webhook"))?.try_into()
    }

    async fn delete_webhook(&self, id: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(Error::NotFound("webhook"));
        }
        Ok(())
    }

    async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret: &str,
        previous_until: Timestamp,
    ) -> Result<Webhook> {
        let row: Option<WebhookRow> = sqlx::query_as(QUERIES.rotate.as_str())
            .bind(id)
            .bind(secret)
            .bind(previous_until.unix_ms())
            .bind(Timestamp::now().unix_ms())
            .fetch_optional(&self.pool)
            .await?;
        row.ok_or(Error::NotFound("webhook"))?.try_into()
    }

    async fn resume_webhook(&self, id: &str) -> Result<Webhook> {
        let row: Option<WebhookRow> = sqlx::query_as(QUERIES.resume.as_str())
            .bind(id)
            .bind(Timestamp::now().unix_ms())
            .fetch_optional(&self.pool)
            .await?;
        row.ok_or(Error::NotFound("webhook"))?.try_into()
    }

    async fn lease_webhooks(&self, owner: &str, until: Timestamp) -> Result<Vec<Webhook>> {
        // A read first: with no webhooks (the usual case), renewals
        // never take SQLite's one write lock.
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM webhooks)")
            .fetch_one(&self.pool)
            .await?;
        if !any {
            return Ok(Vec::new());
        }
        let rows = sqlx::query_as(QUERIES.lease.as_str())
            .bind(owner)
            .bind(Timestamp::now().unix_ms())
            .bind(until.unix_ms())
            .fetch_all(&self.pool)
            .await?;
        webhooks_of(rows)
    }

    async fn release_webhooks(&self, owner: &str) -> Result<()> {
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
    ) -> Result<bool> {
        let now = Timestamp::now().unix_ms();
        let moved = sqlx::query(D::queries().advance_webhook.as_str())
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
    ) -> Result<Option<Failure>> {
        let now = Timestamp::now().unix_ms();
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
            failing_since: Timestamp::from_unix_ms(since),
            attempts,
        }))
    }

    async fn events_for_delivery(&self, after: i64, limit: u32) -> Result<Vec<LoggedEvent>> {
        Ok(sqlx::query_as(
            "SELECT id, room_id, created_at, data FROM events
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn notices_after(&self, after: i64, limit: u32) -> Result<Vec<Notice>> {
        let rows: Vec<NoticeRow> = sqlx::query_as(
            "SELECT n.id, n.room_id, n.user_id, n.created_at, m.id AS msg_id,
                 m.seq AS msg_seq, m.author_id AS msg_author_id, m.body AS msg_body,
                 m.client_id AS msg_client_id, m.created_at AS msg_created_at,
                 m.edited_at AS msg_edited_at, m.deleted_at AS msg_deleted_at,
                 m.deleted_by AS msg_deleted_by, m.attachments AS msg_attachments
             FROM unseen_notices n LEFT JOIN messages m ON m.id = n.message_id
             WHERE n.id > $1 ORDER BY n.id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Notice::from).collect())
    }

    async fn unseen_swept(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT last_event_id FROM unseen_sweep")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn readers(&self, rooms: &[String]) -> Result<Vec<Reader>> {
        Ok(sqlx::query_as(D::queries().readers.as_str())
            .bind(json_list(rooms))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn offline_at(&self, users: &[UserId]) -> Result<Vec<(UserId, Timestamp)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(D::queries().offline_at.as_str())
            .bind(json_users(users))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(user, at)| (UserId::from_store(user), Timestamp::from_unix_ms(at)))
            .collect())
    }

    async fn raise_unseen(&self, from: i64, to: i64, notices: &[NewNotice]) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        // First: the row's lock orders the notices' ids by commit.
        let moved =
            sqlx::query("UPDATE unseen_sweep SET last_event_id = $2 WHERE last_event_id = $1")
                .bind(from)
                .bind(to)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if moved != 1 {
            return Ok(false);
        }
        let now = Timestamp::now().unix_ms();
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

    async fn note_offline(&self, users: &[UserId], at: Timestamp) -> Result<()> {
        if users.is_empty() {
            return Ok(());
        }
        sqlx::query(D::queries().note_offline.as_str())
            .bind(json_users(users))
            .bind(at.unix_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge_notices(&self, cutoff: Timestamp) -> Result<u64> {
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

    async fn purge_offline(&self, margin: std::time::Duration, sweeping: bool) -> Result<u64> {
        // The first message not swept yet is the oldest a notice may
        // still come for (ids commit in order); with none, now.
        Ok(sqlx::query(
            "DELETE FROM presence_offline WHERE offline_at < CASE WHEN $2 THEN
                 COALESCE((SELECT e.created_at FROM events e
                     WHERE e.id > (SELECT last_event_id FROM unseen_sweep)
                     ORDER BY e.id LIMIT 1), $1)
                 ELSE $1 END - $3",
        )
        .bind(Timestamp::now().unix_ms())
        .bind(sweeping)
        .bind(i64::try_from(margin.as_millis()).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
