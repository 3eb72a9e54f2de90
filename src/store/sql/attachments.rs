//! `AttachmentStore` on either database, and the steps other writes take
//! in their own transactions when they orphan attachments (a message made
//! a tombstone, a room deleted, a user erased): rows out, blobs queued.

use super::SqlStore;
use super::dialect::{Dialect, RowsAffected};
use crate::error::{Error, Result};
use crate::model::{Attachment, AttachmentId, Caller, Message, RoomId, Timestamp, UserId};
use crate::store::attachments::{STAGING, THUMBNAIL, UPLOAD_COLUMNS, UploadRow, blob_keys};
use crate::store::{AttachmentStore, Upload, closed_room};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};
use std::time::Duration;

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
    /// Queues the blobs of the attachments `rows` names (id, and until
    /// when a direct upload's PUT works) and removes their rows: in the
    /// caller's transaction, with the change that orphaned them.
    async fn drop_rows(
        conn: &mut D::Connection,
        rows: &[(String, Option<i64>)],
        now: i64,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let keys: Vec<(String, i64)> = rows
            .iter()
            .flat_map(|(id, direct_until)| blob_keys(id, *direct_until, now))
            .collect();
        let mut queue = sqlx::QueryBuilder::<D>::new(
            "INSERT INTO blob_deletions (blob_key, due_at, attempts) ",
        );
        queue
            .push_values(keys, |mut row, (key, due)| {
                row.push_bind(key).push_bind(due).push_bind(0_i64);
            })
            .push(" ON CONFLICT (blob_key) DO NOTHING");
        queue.build().execute(&mut *conn).await?;
        let mut delete = sqlx::QueryBuilder::<D>::new("DELETE FROM attachments WHERE id IN (");
        let mut list = delete.separated(", ");
        for (id, _) in rows {
            list.push_bind(id.as_str());
        }
        delete.push(")");
        delete.build().execute(&mut *conn).await?;
        Ok(())
    }

    /// The attachments whose `column` is one of `values`, locked.
    async fn attachments_in(
        conn: &mut D::Connection,
        column: &str,
        values: &[&str],
    ) -> Result<Vec<(String, Option<i64>)>> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let mut select = sqlx::QueryBuilder::<D>::new(format!(
            "SELECT id, direct_until FROM attachments WHERE {column} IN ("
        ));
        let mut list = select.separated(", ");
        for value in values {
            list.push_bind(*value);
        }
        select.push(") ORDER BY id").push(D::LOCK_ROWS);
        Ok(select.build_query_as().fetch_all(&mut *conn).await?)
    }

    /// The attachments of `messages` (which are becoming tombstones) go:
    /// found by their rows' link to the messages, not by the messages'
    /// copy of their metadata.
    pub(super) async fn drop_attachments_of<'m>(
        conn: &mut D::Connection,
        messages: impl IntoIterator<Item = &'m Message>,
        now: i64,
    ) -> Result<()> {
        let ids: Vec<&str> = messages.into_iter().map(|m| m.id.as_str()).collect();
        let rows = Self::attachments_in(conn, "message_id", &ids).await?;
        Self::drop_rows(conn, &rows, now).await
    }

    /// Up to `batch` of the attachments `which` selects (`$1` bound to
    /// `key`) go; how many.
    async fn drop_attachments_where(
        conn: &mut D::Connection,
        which: &str,
        key: &str,
        batch: u32,
    ) -> Result<u64> {
        let rows: Vec<(String, Option<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, direct_until FROM attachments WHERE {which} ORDER BY id LIMIT $2{}",
            D::LOCK_ROWS
        )))
        .bind(key)
        .bind(i64::from(batch))
        .fetch_all(&mut *conn)
        .await?;
        Self::drop_rows(conn, &rows, Timestamp::now().unix_ms()).await?;
        Ok(rows.len() as u64)
    }

    /// Queues the blobs of every attachment of `room`, in the transaction
    /// that deletes it: its rows go after, in batches
    /// (`drop_room_attachments`), but nothing of its files can be left.
    pub(super) async fn queue_room_blobs(
        conn: &mut D::Connection,
        room: &RoomId,
        now: i64,
    ) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO blob_deletions (blob_key, due_at, attempts)
             SELECT k.blob_key, k.due_at, 0 FROM (
                 SELECT id AS blob_key, $2 AS due_at FROM attachments WHERE room_id = $1
                 UNION ALL
                 SELECT id || '{THUMBNAIL}', $2 FROM attachments WHERE room_id = $1
                 UNION ALL
                 SELECT id || '{STAGING}', CASE WHEN direct_until > $2 THEN direct_until ELSE $2 END
                 FROM attachments WHERE room_id = $1 AND direct_until IS NOT NULL
             ) AS k WHERE true
             ON CONFLICT (blob_key) DO NOTHING"
        )))
        .bind(room.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// A deleted room's attachments go, `batch` to a transaction.
    pub(super) async fn drop_room_attachments(&self, room: &RoomId, batch: u32) -> Result<()> {
        loop {
            let mut tx = self.begin_write().await?;
            let dropped =
                Self::drop_attachments_where(&mut tx, "room_id = $1", room.as_str(), batch).await?;
            tx.commit().await?;
            if dropped == 0 {
                return Ok(());
            }
        }
    }

    /// An erased user's uploads never sent go, in the erasure's last step.
    pub(super) async fn drop_unsent_uploads_of(
        conn: &mut D::Connection,
        user: &UserId,
        batch: u32,
    ) -> Result<()> {
        let unsent = "uploader_id = $1 AND message_id IS NULL";
        while Self::drop_attachments_where(conn, unsent, user.as_str(), batch).await? > 0 {}
        Ok(())
    }
}

#[async_trait::async_trait]
impl<D: Dialect> AttachmentStore for SqlStore<D>
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
    async fn begin_upload(
        &self,
        caller: &Caller,
        room: &RoomId,
        id: &AttachmentId,
        name: &str,
        direct_until: Option<Timestamp>,
    ) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        let state = Self::state_of_room(&mut conn, caller, room.as_str(), false).await?;
        if state.closed {
            return Err(closed_room());
        }
        sqlx::query(
            "INSERT INTO attachments (id, room_id, uploader_id, name, created_at, direct_until)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.as_str())
        .bind(room.as_str())
        .bind(caller.id.as_str())
        .bind(name)
        .bind(Timestamp::now().unix_ms())
        .bind(direct_until.map(Timestamp::unix_ms))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn finish_upload(&self, attachment: &Attachment) -> Result<()> {
        let thumbnail = attachment.thumbnail.as_ref();
        let done = sqlx::query(
            "UPDATE attachments SET content_type = $2, size = $3, width = $4, height = $5,
                 thumb_width = $6, thumb_height = $7, stored_at = $8
             WHERE id = $1 AND stored_at IS NULL",
        )
        .bind(attachment.id.as_str())
        .bind(attachment.content_type.as_str())
        .bind(attachment.size)
        .bind(attachment.width.map(i64::from))
        .bind(attachment.height.map(i64::from))
        .bind(thumbnail.map(|t| i64::from(t.width)))
        .bind(thumbnail.map(|t| i64::from(t.height)))
        .bind(Timestamp::now().unix_ms())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            // Swept as an orphan while its bytes came (or its room went):
            // its blobs are queued already.
            return Err(Error::NotFound("attachment"));
        }
        Ok(())
    }

    async fn discard_upload(&self, id: &AttachmentId) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let rows = Self::attachments_in(&mut tx, "id", &[id.as_str()]).await?;
        Self::drop_rows(&mut tx, &rows, Timestamp::now().unix_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn attachment(&self, caller: &Caller, id: &AttachmentId) -> Result<Upload> {
        let row: Option<UploadRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {UPLOAD_COLUMNS} FROM attachments a
             WHERE a.id = $2 AND a.stored_at IS NOT NULL
               AND (a.message_id IS NOT NULL OR a.uploader_id = $1)
               AND EXISTS (SELECT 1 FROM rooms r WHERE r.id = a.room_id AND r.deleted_at IS NULL
                   AND ($3 OR EXISTS (SELECT 1 FROM room_members m
                                      WHERE m.room_id = r.id AND m.user_id = $1)))"
        )))
        .bind(caller.id.as_str())
        .bind(id.as_str())
        .bind(caller.is_admin())
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or(Error::NotFound("attachment"))?.try_into()
    }

    async fn pending_upload(&self, caller: &Caller, id: &AttachmentId) -> Result<Upload> {
        let row: Option<UploadRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {UPLOAD_COLUMNS} FROM attachments
             WHERE id = $1 AND uploader_id = $2 AND stored_at IS NULL AND message_id IS NULL"
        )))
        .bind(id.as_str())
        .bind(caller.id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or(Error::NotFound("attachment"))?.try_into()
    }

    async fn linked_attachment(&self, id: &AttachmentId) -> Result<Upload> {
        let row: Option<UploadRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {UPLOAD_COLUMNS} FROM attachments a
             WHERE a.id = $1 AND a.stored_at IS NOT NULL
               AND EXISTS (SELECT 1 FROM rooms r WHERE r.id = a.room_id AND r.deleted_at IS NULL)"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or(Error::NotFound("attachment"))?.try_into()
    }

    async fn cleanup_due(&self, cutoff: Timestamp, now: Timestamp) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM attachments WHERE message_id IS NULL AND created_at < $1)
                 OR EXISTS (SELECT 1 FROM blob_deletions WHERE due_at <= $2)",
        )
        .bind(cutoff.unix_ms())
        .bind(now.unix_ms())
        .fetch_one(&self.pool)
        .await?)
    }

    async fn sweep_unsent(&self, cutoff: Timestamp, batch: u32) -> Result<u64> {
        let now = Timestamp::now().unix_ms();
        let mut tx = self.begin_write().await?;
        // Locked as read: a post sending one of them holds its row (after
        // its room's), and this waits for it, then finds it sent.
        // In id order, as a post locks the uploads it sends.
        let rows: Vec<(String, Option<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, direct_until FROM attachments WHERE message_id IS NULL AND created_at < $1
             ORDER BY id LIMIT $2{}",
            D::LOCK_ROWS
        )))
        .bind(cutoff.unix_ms())
        .bind(i64::from(batch))
        .fetch_all(&mut *tx)
        .await?;
        Self::drop_rows(&mut tx, &rows, now).await?;
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    async fn claim_blob_deletions(
        &self,
        now: Timestamp,
        lease: Duration,
        batch: u32,
    ) -> Result<Vec<String>> {
        let now = now.unix_ms();
        let until = now.saturating_add(lease.as_millis() as i64);
        // The outer `due_at` is checked again on a row another claim
        // changed meanwhile (PostgreSQL re-reads a row it waited for).
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE blob_deletions SET due_at = $2, attempts = attempts + 1
             WHERE due_at <= $1 AND blob_key IN
                 (SELECT blob_key FROM blob_deletions WHERE due_at <= $1
                  ORDER BY due_at LIMIT $3)
             RETURNING blob_key",
        )
        .bind(now)
        .bind(until)
        .bind(i64::from(batch))
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    async fn blobs_deleted(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut delete =
            sqlx::QueryBuilder::<D>::new("DELETE FROM blob_deletions WHERE blob_key IN (");
        let mut list = delete.separated(", ");
        for key in keys {
            list.push_bind(key.as_str());
        }
        delete.push(")");
        delete.build().execute(&self.pool).await?;
        Ok(())
    }

    async fn queue_blob_deletion(&self, key: &str, due: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO blob_deletions (blob_key, due_at, attempts) VALUES ($1, $2, 0)
             ON CONFLICT (blob_key) DO UPDATE SET due_at = excluded.due_at",
        )
        .bind(key)
        .bind(due.unix_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn link_key(&self, candidate: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO server_keys (name, value) VALUES ('attachment_links', $1)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(candidate)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM server_keys WHERE name = 'attachment_links'")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
