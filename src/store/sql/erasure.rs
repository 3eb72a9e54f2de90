//! Erasing messages: a user's (an erasure job, step by step under a lease)
//! or the retention's, as tombstones whose earlier events are rewritten.

use super::SqlStore;
use super::dialect::{Dialect, RowsAffected};
use super::queries::*;
use crate::error::{Error, Result};
use crate::model::{EventData, Message, Timestamp, UserId};
use crate::store::erasure::{
    ERASURE_COLUMNS, ErasureJob, ErasureRow, ErasureStep, ErasureStore, Requested,
};
use crate::store::{Erasing, MessageRow};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Whether anything of `user`'s is left to erase: a message with
/// its body, or a record of their presence or of notices to them.
const ANYTHING_LEFT: &str = "SELECT EXISTS (SELECT 1 FROM messages
         WHERE author_id = $1 AND deleted_at IS NULL)
     OR EXISTS (SELECT 1 FROM presence_offline WHERE user_id = $1)
     OR EXISTS (SELECT 1 FROM unseen_notices WHERE user_id = $1)";

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
    /// Pushes the condition on `messages` that `which` stands for: of
    /// rooms not deleted (a deletion's purge removes the others).
    pub(super) fn push_erasing<'a>(query: &mut sqlx::QueryBuilder<D>, which: Erasing<'a>) {
        query.push(
            "NOT EXISTS (SELECT 1 FROM rooms gone
             WHERE gone.id = messages.room_id AND gone.deleted_at IS NOT NULL) AND ",
        );
        match which {
            Erasing::WrittenBy(author) => {
                query.push("author_id = ").push_bind(author.as_str());
            }
            Erasing::WrittenBefore(cutoff) => {
                query.push("created_at < ").push_bind(cutoff.unix_ms());
            }
        }
    }

    /// Makes up to `batch` of the messages `which` names tombstones, in
    /// the transaction `tx`; how many. Their rooms are locked first, in
    /// id order, and the messages read again under the locks (an edit or
    /// deletion takes its room's lock first too): none is changed twice.
    /// None may be found though some are left, when their rooms were
    /// deleted between the two reads.
    pub(super) async fn erase_batch(
        tx: &mut D::Connection,
        by: &UserId,
        which: Erasing<'_>,
        batch: u32,
    ) -> Result<u64> {
        let mut next = sqlx::QueryBuilder::<D>::new(
            "SELECT DISTINCT room_id FROM (SELECT room_id FROM messages
             WHERE deleted_at IS NULL AND ",
        );
        Self::push_erasing(&mut next, which);
        // One user's: room by room, along their index. (The retention's
        // take the oldest, along the index of time.)
        if let Erasing::WrittenBy(_) = which {
            next.push(" ORDER BY room_id");
        }
        next.push(" LIMIT ")
            .push_bind(i64::from(batch))
            .push(") AS next");
        let candidates: Vec<String> = next.build_query_scalar().fetch_all(&mut *tx).await?;
        if candidates.is_empty() {
            return Ok(0);
        }
        let now = Timestamp::now().unix_ms();
        let mut lock = sqlx::QueryBuilder::<D>::new("SELECT id FROM rooms WHERE id IN (");
        let mut list = lock.separated(", ");
        for room in &candidates {
            list.push_bind(room.as_str());
        }
        lock.push(") ORDER BY id").push(D::LOCK_ROWS);
        let _: Vec<(String,)> = lock.build_query_as().fetch_all(&mut *tx).await?;
        let mut select = sqlx::QueryBuilder::<D>::new(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE deleted_at IS NULL AND "
        ));
        Self::push_erasing(&mut select, which);
        select.push(" AND room_id IN (");
        let mut list = select.separated(", ");
        for room in &candidates {
            list.push_bind(room.as_str());
        }
        select
            .push(") ORDER BY room_id, seq LIMIT ")
            .push_bind(i64::from(batch));
        let rows: Vec<MessageRow> = select.build_query_as().fetch_all(&mut *tx).await?;
        let was: Vec<Message> = rows.into_iter().map(Message::from).collect();
        if was.is_empty() {
            return Ok(0);
        }
        let mut update = sqlx::QueryBuilder::<D>::new(
            "UPDATE messages SET body = '', edited_at = NULL, attachments = NULL, deleted_at = ",
        );
        update
            .push_bind(now)
            .push(", deleted_by = ")
            .push_bind(by.as_str())
            .push(" WHERE id IN (");
        let mut list = update.separated(", ");
        for message in &was {
            list.push_bind(message.id.as_str());
        }
        update.push(")");
        update.build().execute(&mut *tx).await?;
        let erased: Vec<Message> = was
            .iter()
            .map(|message| Message {
                body: String::new(),
                edited_at: None,
                deleted_at: Some(Timestamp::from_unix_ms(now)),
                deleted_by: Some(by.clone()),
                attachments: Vec::new(),
                ..message.clone()
            })
            .collect();
        Self::drop_attachments_of(tx, &was, now).await?;
        for (was, erased) in was.iter().zip(&erased) {
            Self::rewrite_message_events(tx, was, erased).await?;
        }
        // The counter last, once for the batch, as a batch of posts takes it.
        let last_id: i64 = sqlx::query_scalar(TAKE_EVENT_IDS)
            .bind(erased.len() as i64)
            .fetch_one(&mut *tx)
            .await?;
        let first_id = last_id - erased.len() as i64 + 1;
        Self::insert_message_events(
            tx,
            erased.iter(),
            |message| EventData::MessageDeleted { message },
            first_id,
            now,
        )
        .await?;
        // Per room, its newest event (rows this transaction holds).
        let mut rooms: BTreeMap<&str, i64> = Default::default();
        for (id, message) in (first_id..).zip(&erased) {
            rooms.insert(message.room_id.as_str(), id);
        }
        sqlx::QueryBuilder::<D>::new("UPDATE rooms SET last_event_id = v.column2 FROM (")
            .push_values(rooms, |mut row, (room, event_id)| {
                row.push_bind(room).push_bind(event_id);
            })
            .push(") AS v WHERE rooms.id = v.column1")
            .build()
            .execute(&mut *tx)
            .await?;
        if let Some(notify) = D::notify_events() {
            sqlx::query(notify).bind(last_id).execute(&mut *tx).await?;
        }
        Ok(erased.len() as u64)
    }

    /// Removes up to `batch` of `author`'s messages left in deleted
    /// rooms (whose deletion was interrupted before it removed them),
    /// with the events that carry them; how many it removed (a
    /// deletion finishing meanwhile may remove some first). Nobody
    /// writes to a deleted room; a deletion's own removal may run at
    /// once, so rows are locked as it takes them: events in id order,
    /// the messages before the events (it takes events, then messages,
    /// a statement each).
    pub(super) async fn purge_from_deleted_rooms(
        tx: &mut D::Connection,
        author: &UserId,
        batch: u32,
    ) -> Result<u64> {
        let mut select =
            sqlx::QueryBuilder::<D>::new("SELECT m.id FROM messages m WHERE m.author_id = ");
        select
            .push_bind(author.as_str())
            .push(
                " AND m.deleted_at IS NULL AND EXISTS (SELECT 1 FROM rooms r
                 WHERE r.id = m.room_id AND r.deleted_at IS NOT NULL)
                 ORDER BY m.room_id, m.seq LIMIT ",
            )
            .push_bind(i64::from(batch))
            .push(D::LOCK_ROWS);
        let left: Vec<String> = select.build_query_scalar().fetch_all(&mut *tx).await?;
        if left.is_empty() {
            return Ok(0);
        }
        let mut events = sqlx::QueryBuilder::<D>::new(
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE message_id IN (",
        );
        let mut list = events.separated(", ");
        for id in &left {
            list.push_bind(id.as_str());
        }
        events.push(") ORDER BY id").push(D::LOCK_ROWS).push(")");
        events.build().execute(&mut *tx).await?;
        let mut messages = sqlx::QueryBuilder::<D>::new("DELETE FROM messages WHERE id IN (");
        let mut list = messages.separated(", ");
        for id in &left {
            list.push_bind(id.as_str());
        }
        messages.push(")");
        Ok(messages.build().execute(&mut *tx).await?.rows_affected())
    }

    /// The newest job `which` finds by `key`.
    pub(super) async fn erasure_job(
        conn: &mut D::Connection,
        which: &'static str,
        key: &str,
    ) -> Result<Option<ErasureJob>> {
        let row: Option<ErasureRow> = sqlx::query_as(which)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(ErasureJob::try_from).transpose()
    }
}

/// The queries that read erasure jobs whole, composed once.
struct ErasureQueries {
    /// User `$1`'s running job.
    running: String,
    /// User `$1`'s newest job.
    latest: String,
    /// Job `$1`.
    by_id: String,
    /// Leases to `$1` until `$2` the oldest running job whose lease is
    /// free, theirs, or ended before `$3`.
    lease: String,
}

static QUERIES: LazyLock<ErasureQueries> = LazyLock::new(|| {
    let newest = |condition: &str| {
        format!(
            "SELECT {ERASURE_COLUMNS} FROM erasure_jobs WHERE {condition}
             ORDER BY created_at DESC, id DESC LIMIT 1"
        )
    };
    ErasureQueries {
        running: newest("user_id = $1 AND state = 'running'"),
        latest: newest("user_id = $1"),
        by_id: newest("id = $1"),
        lease: format!(
            "UPDATE erasure_jobs SET lease_owner = $1, lease_until = $2
         WHERE id = (SELECT id FROM erasure_jobs
             WHERE state = 'running'
               AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $3)
             ORDER BY created_at, id LIMIT 1)
           AND state = 'running'
           AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $3)
         RETURNING {ERASURE_COLUMNS}"
        ),
    }
});

#[async_trait::async_trait]
impl<D: Dialect> ErasureStore for SqlStore<D>
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
    async fn request_erasure(&self, by: &UserId, user: &UserId) -> Result<Requested> {
        let mut tx = self.begin_write().await?;
        if let Some(job) = Self::erasure_job(&mut tx, &QUERIES.running, user.as_str()).await? {
            tx.commit().await?;
            return Ok(Requested::Running(job));
        }
        let last = Self::erasure_job(&mut tx, &QUERIES.latest, user.as_str()).await?;
        let left: bool = sqlx::query_scalar(ANYTHING_LEFT)
            .bind(user.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if let Some(done) = last.filter(|_| !left) {
            tx.commit().await?;
            return Ok(Requested::AlreadyDone(done));
        }
        // Two requests at once start one job: the second finds the
        // first's (one running job per user, by a unique index).
        sqlx::query(
            "INSERT INTO erasure_jobs (id, user_id, requested_by, state, created_at)
             VALUES ($1, $2, $3, 'running', $4)
             ON CONFLICT (user_id) WHERE state = 'running' DO NOTHING",
        )
        .bind(format!("er_{}", uuid::Uuid::now_v7().simple()))
        .bind(user.as_str())
        .bind(by.as_str())
        .bind(Timestamp::now().unix_ms())
        .execute(&mut *tx)
        .await?;
        let job = Self::erasure_job(&mut tx, &QUERIES.running, user.as_str())
            .await?
            .ok_or_else(|| Error::internal("a new erasure job is not there"))?;
        tx.commit().await?;
        Ok(Requested::Running(job))
    }

    async fn erasure(&self, id: &str) -> Result<ErasureJob> {
        let mut conn = self.pool.acquire().await?;
        Self::erasure_job(&mut conn, &QUERIES.by_id, id)
            .await?
            .ok_or(Error::NotFound("erasure"))
    }

    async fn lease_erasure(&self, owner: &str, until: Timestamp) -> Result<Option<ErasureJob>> {
        // Checked again on the row itself: of two instances taking
        // the same job at once, one does.
        let row: Option<ErasureRow> = sqlx::query_as(QUERIES.lease.as_str())
            .bind(owner)
            .bind(until.unix_ms())
            .bind(Timestamp::now().unix_ms())
            .fetch_optional(&self.pool)
            .await?;
        row.map(ErasureJob::try_from).transpose()
    }

    async fn erase_step(
        &self,
        id: &str,
        owner: &str,
        until: Timestamp,
        batch: u32,
    ) -> Result<ErasureStep> {
        let mut tx = self.begin_write().await?;
        // The job's row first (then rooms in id order, the counter
        // last, as every write): a lease lost, and nothing is done.
        let held: Option<(String, String)> = sqlx::query_as(
            "UPDATE erasure_jobs SET lease_until = $3
             WHERE id = $1 AND lease_owner = $2 AND state = 'running'
             RETURNING user_id, requested_by",
        )
        .bind(id)
        .bind(owner)
        .bind(until.unix_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((user, by)) = held else {
            return Ok(ErasureStep::LeaseLost);
        };
        let (user, by) = (UserId::from_store(user), UserId::from_store(by));
        // Their agent record (their name) at once, before any room: the
        // agents' rows are locked before rooms' (see auto-assignment).
        sqlx::query("DELETE FROM agents WHERE user_id = $1")
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
        let batch = batch.max(1);
        let mut erased = Self::erase_batch(&mut tx, &by, Erasing::WrittenBy(&user), batch).await?;
        if erased == 0 {
            erased = Self::purge_from_deleted_rooms(&mut tx, &user, batch).await?;
        }
        if erased > 0 {
            sqlx::query("UPDATE erasure_jobs SET erased = erased + $2 WHERE id = $1")
                .bind(id)
                .bind(erased as i64)
                .execute(&mut *tx)
                .await?;
            self.commit(tx).await?;
            return Ok(ErasureStep::Erased(erased));
        }
        let messages_left: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE author_id = $1 AND deleted_at IS NULL)",
        )
        .bind(user.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if messages_left {
            // A room was deleted between this step's reads: the next
            // step finds its messages there.
            tx.commit().await?;
            return Ok(ErasureStep::Erased(0));
        }
        Self::drop_unsent_uploads_of(&mut tx, &user, batch).await?;
        for records in [
            "DELETE FROM presence_offline WHERE user_id = $1",
            "DELETE FROM unseen_notices WHERE user_id = $1",
        ] {
            sqlx::query(records)
                .bind(user.as_str())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE erasure_jobs SET state = 'done', finished_at = $2,
                 lease_owner = NULL, lease_until = NULL
             WHERE id = $1",
        )
        .bind(id)
        .bind(Timestamp::now().unix_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ErasureStep::Done)
    }

    async fn release_erasures(&self, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE erasure_jobs SET lease_owner = NULL, lease_until = NULL
             WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
