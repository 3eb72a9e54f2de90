//! The steps writes to a room share: reading the room as the caller sees it,
//! taking its lock, reading and writing its conversation, and appending
//! events to the log; and the rewriting of a changed message's earlier
//! events.

use super::SqlStore;
use super::dialect::Dialect;
use super::queries::*;
use crate::error::{Error, Result};
use crate::model::{
    Caller, Conversation, EventData, Message, MessageId, ReadState, Room, RoomId, Timestamp, UserId,
};
use crate::store::inbox::ConversationRow;
use crate::store::{MessageRow, RoomRow, RoomState, closed_room, unread};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};

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
    pub(super) async fn visible_room(
        conn: &mut D::Connection,
        caller: &Caller,
        room: &str,
    ) -> Result<Room> {
        let row: Option<RoomRow> = sqlx::query_as(D::queries().visible_room.as_str())
            .bind(caller.id.as_str())
            .bind(room)
            .bind(caller.is_admin())
            .fetch_optional(&mut *conn)
            .await?;
        row.ok_or(Error::NotFound("room"))?.into_room(caller)
    }

    /// The room's state (`Store::room_state` on a connection or a
    /// transaction), or `NotFound` if the caller may not see it. Writers
    /// `lock` the room row with it (see the module doc).
    ///
    /// A member's membership is read again under the lock, in a
    /// statement of its own: under PostgreSQL's READ COMMITTED, the
    /// `EXISTS` of an `UPDATE` that waited for the lock is checked
    /// against the snapshot from before the wait, so a removal that
    /// held the lock and committed meanwhile would go unseen. A new
    /// statement sees it; and a removal that comes after waits for us.
    pub(super) async fn state_of_room(
        conn: &mut D::Connection,
        caller: &Caller,
        room: &str,
        lock: bool,
    ) -> Result<RoomState> {
        let state: Option<(i64, bool)> = sqlx::query_as(if lock {
            LOCK_VISIBLE_ROOM
        } else {
            D::queries().visible_room_state.as_str()
        })
        .bind(caller.id.as_str())
        .bind(room)
        .bind(caller.is_admin())
        .fetch_optional(&mut *conn)
        .await?;
        let (last_seq, closed) = state.ok_or(Error::NotFound("room"))?;
        if lock && !caller.is_admin() {
            let member: bool = sqlx::query_scalar(IS_MEMBER)
                .bind(room)
                .bind(caller.id.as_str())
                .fetch_one(&mut *conn)
                .await?;
            if !member {
                return Err(Error::NotFound("room"));
            }
        }
        Ok(RoomState { last_seq, closed })
    }

    /// The caller's read cursor in `room`, if they ever read there.
    pub(super) async fn read_cursor(
        conn: &mut D::Connection,
        caller: &Caller,
        room: &RoomId,
    ) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(CURSOR)
            .bind(room.as_str())
            .bind(caller.id.as_str())
            .fetch_optional(&mut *conn)
            .await?)
    }

    pub(super) async fn read_state(
        conn: &mut D::Connection,
        caller: &Caller,
        room: &RoomId,
        last_seq: i64,
        last_read_seq: i64,
    ) -> Result<ReadState> {
        let deleted: i64 = sqlx::query_scalar(DELETED_AFTER)
            .bind(room.as_str())
            .bind(last_read_seq)
            .fetch_one(&mut *conn)
            .await?;
        Ok(ReadState {
            room_id: room.clone(),
            user_id: caller.id.clone(),
            last_read_seq,
            unread_count: unread(last_seq, last_read_seq, deleted),
        })
    }

    pub(super) async fn touch_room(conn: &mut D::Connection, room: &str, now: i64) -> Result<()> {
        sqlx::query(TOUCH_ROOM)
            .bind(room)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Takes the next event id: the transaction's last lock (see the module doc).
    pub(super) async fn next_event_id(conn: &mut D::Connection) -> Result<i64> {
        Ok(sqlx::query_scalar(NEXT_EVENT_ID)
            .fetch_one(&mut *conn)
            .await?)
    }

    /// Logs event `id`, and tells other processes of it.
    pub(super) async fn insert_event(
        conn: &mut D::Connection,
        id: i64,
        room: &RoomId,
        subject: Option<&UserId>,
        data: &EventData<'_>,
        now: i64,
    ) -> Result<()> {
        Self::insert_logged(conn, id, room, subject, data, now).await?;
        if let Some(notify) = D::notify_events() {
            sqlx::query(notify).bind(id).execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Logs event `id` (of a batch, which tells other processes once).
    pub(super) async fn insert_logged(
        conn: &mut D::Connection,
        id: i64,
        room: &RoomId,
        subject: Option<&UserId>,
        data: &EventData<'_>,
        now: i64,
    ) -> Result<()> {
        let json = serde_json::to_string(data)
            .map_err(|e| Error::internal_from("could not encode an event", e))?;
        sqlx::query(INSERT_EVENT)
            .bind(id)
            .bind(room.as_str())
            .bind(subject.map(UserId::as_str))
            .bind(now)
            .bind(json)
            .bind(data.message_id().map(MessageId::as_str))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Appends an event only agents see (`conversation_updated`): unlike
    /// `append_event` it leaves the room's row as it is, whose
    /// `last_event_id` customers' listing versions are made of.
    pub(super) async fn log_for_agents(
        conn: &mut D::Connection,
        room: &RoomId,
        data: &EventData<'_>,
        now: i64,
    ) -> Result<i64> {
        let id = Self::next_event_id(conn).await?;
        Self::insert_event(conn, id, room, None, data, now).await?;
        Ok(id)
    }

    /// Appends an event about a room whose row this transaction holds; an
    /// `activity` event also moves the room to the top of listings.
    pub(super) async fn append_event(
        conn: &mut D::Connection,
        room: &RoomId,
        subject: Option<&UserId>,
        data: &EventData<'_>,
        activity: bool,
        now: i64,
    ) -> Result<i64> {
        let id = Self::next_event_id(conn).await?;
        Self::insert_event(conn, id, room, subject, data, now).await?;
        sqlx::query(if activity { ROOM_ACTIVITY } else { ROOM_EVENT })
            .bind(room.as_str())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(id)
    }

    /// Locks the room of a message to be edited or deleted and reads the
    /// message: `NotFound` for a room the caller cannot see or a message
    /// not in it, `Forbidden` for someone else's message (but an admin's),
    /// `room_closed` in a closed room unless `moderation` (an admin's
    /// deletion) is what the change is.
    pub(super) async fn change_message(
        conn: &mut D::Connection,
        caller: &Caller,
        room: &RoomId,
        message: &MessageId,
        moderation: bool,
    ) -> Result<Message> {
        let state = Self::state_of_room(conn, caller, room.as_str(), true).await?;
        if state.closed && !moderation {
            return Err(closed_room());
        }
        let row: Option<MessageRow> = sqlx::query_as(D::queries().message.as_str())
            .bind(room.as_str())
            .bind(message.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        let message = Message::from(row.ok_or(Error::NotFound("message"))?);
        if !caller.is_admin() && message.author_id != caller.id {
            return Err(Error::forbidden(
                "not_author",
                "only a message's author or an admin may change it",
            ));
        }
        Ok(message)
    }

    /// Gives the log's earlier events of a message (its `message`, its
    /// edits, the `room` events that show it as the room's last) its form
    /// now, `changed`, in place of its form until now, `was`: so no replay
    /// shows a body that was replaced or deleted. Every change rewrites
    /// them all, so they all hold `was`, byte for byte (serde writes a
    /// message one way). Before the event counter, as every write's other
    /// updates (see the module doc).
    pub(super) async fn rewrite_message_events(
        conn: &mut D::Connection,
        was: &Message,
        changed: &Message,
    ) -> Result<()> {
        let encode = |message: &Message| {
            serde_json::to_string(message)
                .map_err(|e| Error::internal_from("could not encode a message", e))
        };
        sqlx::query(REWRITE_MESSAGE_EVENTS)
            .bind(changed.id.as_str())
            .bind(encode(was)?)
            .bind(encode(changed)?)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Room `room`'s conversation; the caller holds its row.
    pub(super) async fn conversation_of(
        conn: &mut D::Connection,
        room: &RoomId,
    ) -> Result<Conversation> {
        let row: Option<ConversationRow> = sqlx::query_as(D::queries().conversation.as_str())
            .bind(room.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        row.ok_or(Error::NotFound("room"))?.try_into()
    }

    pub(super) async fn write_conversation(
        conn: &mut D::Connection,
        room: &RoomId,
        conversation: &Conversation,
    ) -> Result<()> {
        let time = |at: Option<Timestamp>| at.map(Timestamp::unix_ms);
        sqlx::query(WRITE_CONVERSATION)
            .bind(room.as_str())
            .bind(conversation.status.as_str())
            .bind(time(conversation.snoozed_until))
            .bind(time(conversation.resolved_at))
            .bind(conversation.assignee_id.as_ref().map(UserId::as_str))
            .bind(time(conversation.assigned_at))
            .bind(conversation.started_at.unix_ms())
            .bind(time(conversation.first_response_at))
            .bind(time(conversation.last_customer_message_at))
            .bind(time(conversation.waiting_since))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
