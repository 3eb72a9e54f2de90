//! `InboxStore` on either database: conversations' status, set by agents
//! and by the snooze schedule.

use super::SqlStore;
use super::dialect::{Dialect, RowsAffected};
use super::queries::{ANY_SNOOZE_DUE, SET_CONVERSATION_STATUS};
use crate::error::{Error, Result};
use crate::model::{
    Caller, Conversation, ConversationStatus, EventData, Room, RoomId, Timestamp, UserId,
};
use crate::store::{InboxStore, SNOOZE};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};

#[async_trait::async_trait]
impl<D: Dialect> InboxStore for SqlStore<D>
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
    async fn set_conversation_status(
        &self,
        caller: &Caller,
        room: &RoomId,
        status: ConversationStatus,
        snoozed_until: Option<Timestamp>,
    ) -> Result<Room> {
        let now = Timestamp::now().unix_ms();
        let mut tx = self.begin_write().await?;
        Self::state_of_room(&mut tx, caller, room.as_str(), true).await?;
        if !caller.is_admin() {
            return Err(Error::forbidden(
                "forbidden",
                "only agents (admins) may change a conversation's status",
            ));
        }
        let changed = sqlx::query(SET_CONVERSATION_STATUS)
            .bind(room.as_str())
            .bind(status.as_str())
            .bind(snoozed_until.map(Timestamp::unix_ms))
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let view = Self::visible_room(&mut tx, caller, room.as_str()).await?;
        if changed == 0 {
            tx.rollback().await?;
            return Ok(view);
        }
        let conversation = view
            .conversation
            .as_ref()
            .ok_or_else(|| Error::internal("an agent's view of a room has no conversation"))?;
        let event = EventData::ConversationUpdated {
            room_id: room,
            conversation,
            changed_by: &caller.id,
        };
        Self::log_for_agents(&mut tx, room, &event, now).await?;
        self.commit(tx).await?;
        Ok(view)
    }

    async fn wake_snoozed(&self, now: Timestamp, batch: u32) -> Result<u64> {
        // A read first: with nothing due (the usual case), the look every
        // second never takes SQLite's one write lock.
        let any_due: bool = sqlx::query_scalar(ANY_SNOOZE_DUE)
            .bind(now.unix_ms())
            .fetch_one(&self.pool)
            .await?;
        if !any_due {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        // Locked in id order, as every write locks rooms. Of two instances
        // at once, the second waits for the first's rows, then finds them
        // no longer due (PostgreSQL reads a row it waited for again).
        let due: Vec<String> = sqlx::query_scalar(D::queries().snoozed_due.as_str())
            .bind(now.unix_ms())
            .bind(i64::from(batch.max(1)))
            .fetch_all(&mut *tx)
            .await?;
        if due.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let (open, schedule) = (Conversation::open(), UserId::from_store(SNOOZE.to_owned()));
        let mut opened = 0;
        for room in &due {
            let room = RoomId::from_store(room.clone());
            let changed = sqlx::query(SET_CONVERSATION_STATUS)
                .bind(room.as_str())
                .bind(ConversationStatus::Open.as_str())
                .bind(None::<i64>)
                .bind(now.unix_ms())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed == 0 {
                continue;
            }
            opened += 1;
            let event = EventData::ConversationUpdated {
                room_id: &room,
                conversation: &open,
                changed_by: &schedule,
            };
            Self::log_for_agents(&mut tx, &room, &event, now.unix_ms()).await?;
        }
        self.commit(tx).await?;
        Ok(opened)
    }
}
