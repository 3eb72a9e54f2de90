//! `Store` on either database.

use super::dialect::{Dialect, RowsAffected};
use super::queries::*;
use super::{RoomCheck, SqlStore};
use crate::error::{Error, Result};
use crate::model::{
    Caller, DeletedRoom, EventData, Message, MessageBody, MessageId, ReadState, Role, Room,
    RoomChange, RoomId, RoomName, Timestamp, UserId,
};
use crate::store::{
    Assignee, AttachmentStore, Erasing, ErasureStore, InboxStore, MAX_ROOM_PAGE, PoolStats,
    RETENTION, RoomFilter, SearchStore, WebhookStore, cannot_add_others, closed_room, rooms_before,
};
use crate::store::{
    EventBounds, EventScope, MemberRules, MessagePage, MessageRange, MessageRow, NewMessage,
    Posted, RoomCursor, RoomPage, RoomRow, RoomState, Store, StoredEvent, Wake, initial_members,
    page_of, pending_activity,
};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

#[async_trait::async_trait]
impl<D: Dialect> Store for SqlStore<D>
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
    async fn ping(&self) -> Result<()> {
        // Any failure here means "not ready", never a bug of the caller's.
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| Error::Unavailable(e.into()))?;
        Ok(())
    }

    async fn create_room(
        &self,
        caller: &Caller,
        name: &RoomName,
        members: &[UserId],
    ) -> Result<Room> {
        let id = RoomId::new();
        let now = Timestamp::now().unix_ms();
        let members: Vec<&str> = initial_members(&caller.id, members)
            .into_iter()
            .map(UserId::as_str)
            .collect();
        let members = serde_json::to_string(&members)
            .map_err(|e| Error::internal_from("could not encode members", e))?;
        let mut tx = self.begin_write().await?;
        // The room and its members first, the event counter last, as
        // in every write: the counter is held for the event's insert
        // alone. Until then the room takes a place of its own below
        // every real activity (unique: concurrent creations never meet).
        sqlx::query(INSERT_ROOM)
            .bind(id.as_str())
            .bind(name.as_str())
            .bind(caller.id.as_str())
            .bind(now)
            .bind(pending_activity())
            .execute(&mut *tx)
            .await?;
        sqlx::query(D::queries().insert_members.as_str())
            .bind(id.as_str())
            .bind(members)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let room = Self::visible_room(&mut tx, caller, id.as_str()).await?;
        let event = EventData::room(&room, RoomChange::Created, None);
        Self::append_event(&mut tx, &id, None, &event, true, now).await?;
        self.commit(tx).await?;
        Ok(room)
    }

    async fn room(&self, caller: &Caller, room: &RoomId) -> Result<Room> {
        let mut conn = self.pool.acquire().await?;
        Self::visible_room(&mut conn, caller, room.as_str()).await
    }

    async fn may_see_room(&self, caller: &Caller, room: &RoomId) -> Result<bool> {
        self.room_checks
            .ask(RoomCheck {
                user: caller.id.as_str().to_owned(),
                room: room.as_str().to_owned(),
                admin: caller.is_admin(),
            })
            .await
    }

    async fn room_state(&self, caller: &Caller, room: &RoomId) -> Result<RoomState> {
        let mut conn = self.pool.acquire().await?;
        Self::state_of_room(&mut conn, caller, room.as_str(), false).await
    }

    async fn rooms(
        &self,
        caller: &Caller,
        filter: &RoomFilter,
        limit: u32,
        after: Option<&RoomCursor>,
    ) -> Result<RoomPage> {
        // No page larger than the queries' inner bound.
        let limit = limit.min(MAX_ROOM_PAGE);
        let queries = D::queries();
        // An agent's inbox view binds its agent after the page; its marks
        // hold no unread total, and so no caller.
        let inbox = caller.is_admin() && !filter.is_empty();
        let (query, marks) = match (caller.is_admin(), inbox) {
            (true, true) => (queries.inbox_rooms(filter), &queries.listing_marks_inbox),
            (true, false) => (queries.all_rooms.as_str(), &queries.listing_marks_all),
            (false, _) => (queries.member_rooms.as_str(), &queries.listing_marks_member),
        };
        // One snapshot, so the page, the total and the event id agree.
        let mut tx = self.begin_snapshot().await?;
        let mut rows = sqlx::query_as(query)
            .bind(caller.id.as_str())
            .bind(i64::from(limit) + 1)
            .bind(after.map_or(i64::MAX, |cursor| cursor.activity));
        if inbox && let Some(Assignee::Agent(agent)) = &filter.assignee {
            rows = rows.bind(agent.as_str());
        }
        let rows: Vec<RoomRow> = rows.fetch_all(&mut *tx).await?;
        let mut marks = sqlx::query_as(marks.as_str());
        if !inbox {
            marks = marks.bind(caller.id.as_str());
        }
        let (total_unread, last_event_id): (Option<i64>, i64) = marks.fetch_one(&mut *tx).await?;
        tx.commit().await?;
        RoomPage::from_rows(caller, rows, limit, total_unread, last_event_id)
    }

    async fn rooms_version(&self, caller: &Caller) -> Result<String> {
        // One statement: no transaction to begin and end.
        if caller.is_admin() {
            let (newest, purged_up_to): (i64, i64) =
                sqlx::query_as(D::queries().version_all.as_str())
                    .fetch_one(&self.pool)
                    .await?;
            Ok(format!("all:{newest}:{purged_up_to}"))
        } else {
            let (rooms, about, purged_up_to): (i64, i64, i64) =
                sqlx::query_as(D::queries().version_member.as_str())
                    .bind(caller.id.as_str())
                    .fetch_one(&self.pool)
                    .await?;
            Ok(format!("member:{rooms}:{about}:{purged_up_to}"))
        }
    }

    async fn add_member(
        &self,
        caller: &Caller,
        room: &RoomId,
        user: &UserId,
        rules: &MemberRules,
    ) -> Result<Room> {
        let now = Timestamp::now().unix_ms();
        let max_members = rules.max_members;
        let mut tx = self.begin_write().await?;
        let state = Self::state_of_room(&mut tx, caller, room.as_str(), true).await?;
        if !caller.is_admin() && *user != caller.id {
            if !rules.members_add_others {
                return Err(cannot_add_others());
            }
            let departed: bool = sqlx::query_scalar(DEPARTED)
                .bind(room.as_str())
                .bind(user.as_str())
                .fetch_one(&mut *tx)
                .await?;
            if departed {
                return Err(Error::forbidden(
                    "left_the_room",
                    "this user left the room or was removed from it: only an admin may put them back",
                ));
            }
        }
        if state.closed {
            return Err(closed_room());
        }
        // Counted under the room's lock: concurrent adds cannot pass the cap.
        let members: i64 = sqlx::query_scalar(MEMBER_COUNT)
            .bind(room.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if usize::try_from(members).unwrap_or(usize::MAX) >= max_members {
            let already: bool = sqlx::query_scalar(IS_MEMBER)
                .bind(room.as_str())
                .bind(user.as_str())
                .fetch_one(&mut *tx)
                .await?;
            if !already {
                return Err(Error::unprocessable(
                    "room_full",
                    format!("a room holds at most {max_members} members"),
                ));
            }
        }
        let added = sqlx::query(
            "INSERT INTO room_members (room_id, user_id, joined_at) VALUES ($1, $2, $3)
             ON CONFLICT (room_id, user_id) DO NOTHING",
        )
        .bind(room.as_str())
        .bind(user.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if added == 0 {
            tx.rollback().await?;
            return self.room(caller, room).await;
        }
        sqlx::query("DELETE FROM room_departures WHERE room_id = $1 AND user_id = $2")
            .bind(room.as_str())
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
        Self::touch_room(&mut tx, room.as_str(), now).await?;
        let view = Self::visible_room(&mut tx, caller, room.as_str()).await?;
        let event = EventData::room(&view, RoomChange::MemberAdded, Some(user));
        Self::append_event(&mut tx, room, Some(user), &event, true, now).await?;
        self.commit(tx).await?;
        Ok(view)
    }

    async fn set_closed(&self, caller: &Caller, room: &RoomId, closed: bool) -> Result<Room> {
        let now = Timestamp::now().unix_ms();
        let mut tx = self.begin_write().await?;
        Self::state_of_room(&mut tx, caller, room.as_str(), true).await?;
        if !caller.is_admin() {
            return Err(Error::forbidden(
                "forbidden",
                "only admins may close or reopen a room",
            ));
        }
        let (closed_at, closed_by) = if closed {
            (Some(now), Some(caller.id.as_str()))
        } else {
            (None, None)
        };
        let changed = sqlx::query(
            "UPDATE rooms SET closed_at = $2, closed_by = $3, updated_at = $4
             WHERE id = $1 AND (closed_at IS NULL) = $5",
        )
        .bind(room.as_str())
        .bind(closed_at)
        .bind(closed_by)
        .bind(now)
        .bind(closed)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let view = Self::visible_room(&mut tx, caller, room.as_str()).await?;
        if changed > 0 {
            let change = if closed {
                RoomChange::Closed
            } else {
                RoomChange::Reopened
            };
            let event = EventData::room(&view, change, None);
            Self::append_event(&mut tx, room, None, &event, false, now).await?;
        }
        self.commit(tx).await?;
        Ok(view)
    }

    async fn delete_room(&self, caller: &Caller, room: &RoomId, batch: u32) -> Result<DeletedRoom> {
        let now = Timestamp::now().unix_ms();
        let mut tx = self.begin_write().await?;
        let mut lock = sqlx::QueryBuilder::<D>::new(
            "SELECT deleted_at, deleted_by, last_event_id FROM rooms WHERE id = ",
        );
        lock.push_bind(room.as_str()).push(D::LOCK_ROWS);
        let row: Option<(Option<i64>, Option<String>, i64)> =
            lock.build_query_as().fetch_optional(&mut *tx).await?;
        let Some((deleted_at, deleted_by, last_event_id)) = row else {
            return Err(Error::NotFound("room"));
        };
        if !caller.is_admin() {
            // A member learns it is not theirs to delete; anyone else, nothing.
            Self::state_of_room(&mut tx, caller, room.as_str(), false).await?;
            return Err(Error::forbidden(
                "forbidden",
                "only admins may delete a room",
            ));
        }
        let (deleted, deleted_event) = match (deleted_at, deleted_by) {
            (Some(at), Some(by)) => {
                tx.rollback().await?;
                ((at, UserId::from_store(by)), last_event_id)
            }
            _ => {
                // The event shows the room without its last message: its body goes too.
                let view = Room {
                    last_message: None,
                    ..Self::visible_room(&mut tx, caller, room.as_str()).await?
                };
                sqlx::query(
                    "UPDATE rooms SET deleted_at = $2, deleted_by = $3, updated_at = $2
                     WHERE id = $1",
                )
                .bind(room.as_str())
                .bind(now)
                .bind(caller.id.as_str())
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM read_cursors WHERE room_id = $1")
                    .bind(room.as_str())
                    .execute(&mut *tx)
                    .await?;
                Self::queue_room_blobs(&mut tx, room, now).await?;
                let event = EventData::room(&view, RoomChange::Deleted, None);
                let id = Self::append_event(&mut tx, room, None, &event, false, now).await?;
                self.commit(tx).await?;
                ((now, caller.id.clone()), id)
            }
        };
        // Gone from every listing and route already; now the rows,
        // `batch` to a statement, so no writer waits long behind one.
        let batch = i64::from(batch.max(1));
        loop {
            let purged = sqlx::query(
                "DELETE FROM events WHERE id IN
                 (SELECT id FROM events WHERE room_id = $1 AND id < $2 LIMIT $3)",
            )
            .bind(room.as_str())
            .bind(deleted_event)
            .bind(batch)
            .execute(&self.pool)
            .await?;
            if purged.rows_affected() == 0 {
                break;
            }
        }
        loop {
            let purged = sqlx::query(
                "DELETE FROM messages WHERE room_id = $1 AND seq IN
                 (SELECT seq FROM messages WHERE room_id = $1 LIMIT $2)",
            )
            .bind(room.as_str())
            .bind(batch)
            .execute(&self.pool)
            .await?;
            if purged.rows_affected() == 0 {
                break;
            }
        }
        self.drop_room_attachments(room, batch as u32).await?;
        Ok(DeletedRoom {
            room_id: room.clone(),
            deleted_at: Timestamp::from_unix_ms(deleted.0),
            deleted_by: deleted.1,
        })
    }

    async fn remove_member(&self, caller: &Caller, room: &RoomId, user: &UserId) -> Result<Room> {
        let now = Timestamp::now().unix_ms();
        let mut tx = self.begin_write().await?;
        Self::state_of_room(&mut tx, caller, room.as_str(), true).await?;
        if !caller.is_admin() && caller.id != *user {
            return Err(Error::forbidden(
                "forbidden",
                "only admins may remove other members from a room",
            ));
        }
        let removed = sqlx::query("DELETE FROM room_members WHERE room_id = $1 AND user_id = $2")
            .bind(room.as_str())
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed > 0 {
            sqlx::query(
                "INSERT INTO room_departures (room_id, user_id, left_at) VALUES ($1, $2, $3)
                 ON CONFLICT (room_id, user_id) DO UPDATE SET left_at = excluded.left_at",
            )
            .bind(room.as_str())
            .bind(user.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Self::touch_room(&mut tx, room.as_str(), now).await?;
        }
        // A member who just left no longer sees the room, but is answered with it.
        let as_admin = Caller {
            id: caller.id.clone(),
            role: Role::Admin,
        };
        let mut view = Self::visible_room(&mut tx, &as_admin, room.as_str()).await?;
        if !caller.is_admin() {
            // What only agents see stays theirs.
            view.conversation = None;
        }
        if removed > 0 {
            let event = EventData::room(&view, RoomChange::MemberRemoved, Some(user));
            Self::append_event(&mut tx, room, Some(user), &event, true, now).await?;
        }
        self.commit(tx).await?;
        Ok(view)
    }

    async fn messages(
        &self,
        caller: &Caller,
        room: &RoomId,
        range: MessageRange,
        limit: u32,
    ) -> Result<MessagePage> {
        let queries = D::queries();
        // Older ones from `before` (down), newer ones from `after` (up).
        let (before, after) = match range {
            MessageRange::Newest => (Some((i64::MAX, limit)), None),
            MessageRange::Before(seq) => (Some((seq, limit)), None),
            MessageRange::After(seq) => (None, Some((seq, limit))),
            MessageRange::Around(seq) => {
                let older = limit.div_ceil(2);
                (
                    Some((seq.saturating_add(1), older)),
                    Some((seq, limit - older)),
                )
            }
        };
        let mut tx = self.begin_snapshot().await?;
        Self::state_of_room(&mut tx, caller, room.as_str(), false).await?;
        // The snapshot's newest id, as for a listing.
        let last_event_id: i64 = sqlx::query_scalar(NEWEST_EVENT).fetch_one(&mut *tx).await?;
        let mut read = async |query: &'static str, (from, limit): (i64, u32)| {
            let rows: Vec<MessageRow> = sqlx::query_as(query)
                .bind(room.as_str())
                .bind(from)
                .bind(i64::from(limit) + 1)
                .fetch_all(&mut *tx)
                .await?;
            Ok::<_, Error>(page_of(rows, limit))
        };
        let (mut messages, mut has_more, mut has_newer) = (Vec::new(), false, None);
        if let Some(from) = before {
            let (mut rows, more) = read(&queries.messages_before, from).await?;
            rows.reverse();
            messages.extend(rows.into_iter().map(Message::from));
            has_more = more;
        }
        if let Some(from) = after {
            let (rows, more) = read(&queries.messages_after, from).await?;
            messages.extend(rows.into_iter().map(Message::from));
            match range {
                MessageRange::Around(_) => has_newer = Some(more),
                _ => has_more = more,
            }
        }
        tx.commit().await?;
        Ok(MessagePage {
            messages,
            has_more,
            has_newer,
            last_event_id,
        })
    }

    async fn post_message(
        &self,
        caller: &Caller,
        room: &RoomId,
        message: &NewMessage,
    ) -> Result<Posted> {
        self.posts.post(caller, room, message).await
    }

    async fn edit_message(
        &self,
        caller: &Caller,
        room: &RoomId,
        message: &MessageId,
        body: &MessageBody,
        edit_window: std::time::Duration,
    ) -> Result<Message> {
        let now = Timestamp::now().unix_ms();
        let mut tx = self.begin_write().await?;
        let was = Self::change_message(&mut tx, caller, room, message, false).await?;
        let mut edited = was.clone();
        if edited.is_deleted() {
            return Err(Error::conflict(
                "message_deleted",
                "this message was deleted; it cannot be edited",
            ));
        }
        // A retried edit changes nothing, whenever it arrives.
        if edited.body == body.as_str() {
            tx.rollback().await?;
            return Ok(edited);
        }
        let window_ms = i64::try_from(edit_window.as_millis()).unwrap_or(i64::MAX);
        if !caller.is_admin() && now.saturating_sub(edited.created_at.unix_ms()) > window_ms {
            return Err(Error::forbidden(
                "edit_window_closed",
                "a message may be edited only shortly after it was sent",
            ));
        }
        edited.body = body.to_string();
        edited.edited_at = Some(Timestamp::from_unix_ms(now));
        sqlx::query("UPDATE messages SET body = $3, edited_at = $4 WHERE room_id = $1 AND id = $2")
            .bind(room.as_str())
            .bind(message.as_str())
            .bind(body.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        Self::rewrite_message_events(&mut tx, &was, &edited).await?;
        let event = EventData::MessageEdited { message: &edited };
        Self::append_event(&mut tx, room, None, &event, false, now).await?;
        self.commit(tx).await?;
        Ok(edited)
    }

    async fn delete_message(
        &self,
        caller: &Caller,
        room: &RoomId,
        message: &MessageId,
    ) -> Result<Message> {
        let now = Timestamp::now().unix_ms();
        let mut tx = self.begin_write().await?;
        let was = Self::change_message(&mut tx, caller, room, message, caller.is_admin()).await?;
        let mut deleted = was.clone();
        if deleted.is_deleted() {
            tx.rollback().await?;
            return Ok(deleted);
        }
        deleted.body = String::new();
        deleted.edited_at = None;
        deleted.deleted_at = Some(Timestamp::from_unix_ms(now));
        deleted.deleted_by = Some(caller.id.clone());
        deleted.attachments = Vec::new();
        Self::drop_attachments_of(&mut tx, [&was], now).await?;
        sqlx::query(
            "UPDATE messages SET body = '', edited_at = NULL, attachments = NULL,
                 deleted_at = $3, deleted_by = $4
             WHERE room_id = $1 AND id = $2",
        )
        .bind(room.as_str())
        .bind(message.as_str())
        .bind(now)
        .bind(caller.id.as_str())
        .execute(&mut *tx)
        .await?;
        Self::rewrite_message_events(&mut tx, &was, &deleted).await?;
        let event = EventData::MessageDeleted { message: &deleted };
        Self::append_event(&mut tx, room, None, &event, false, now).await?;
        self.commit(tx).await?;
        Ok(deleted)
    }

    async fn erase_messages_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64> {
        let by = UserId::from_store(RETENTION.to_owned());
        self.erase(&by, Erasing::WrittenBefore(cutoff), batch).await
    }

    async fn mark_read(&self, caller: &Caller, room: &RoomId, seq: i64) -> Result<ReadState> {
        // A read that moves nothing writes nothing: pages send one for
        // every message they show, and on SQLite a write transaction
        // waits for the one write lock.
        {
            let mut conn = self.pool.acquire().await?;
            let last_seq = Self::state_of_room(&mut conn, caller, room.as_str(), false)
                .await?
                .last_seq;
            let cursor = Self::read_cursor(&mut conn, caller, room).await?;
            if let Some(read) = cursor.filter(|&read| read >= seq.clamp(0, last_seq)) {
                return Self::read_state(&mut conn, caller, room, last_seq, read).await;
            }
        }
        let mut tx = self.begin_write().await?;
        let last_seq = Self::state_of_room(&mut tx, caller, room.as_str(), true)
            .await?
            .last_seq;
        let before = Self::read_cursor(&mut tx, caller, room).await?;
        let last_read_seq: i64 = sqlx::query_scalar(D::queries().advance_cursor.as_str())
            .bind(room.as_str())
            .bind(caller.id.as_str())
            .bind(seq.clamp(0, last_seq))
            .fetch_one(&mut *tx)
            .await?;
        // Only a cursor that moved is news to the room's other viewers.
        if before.is_none_or(|before| last_read_seq > before) {
            let event = EventData::Read {
                room_id: room,
                user_id: &caller.id,
                last_read_seq,
            };
            let now = Timestamp::now().unix_ms();
            Self::append_event(&mut tx, room, None, &event, false, now).await?;
        }
        let state = Self::read_state(&mut tx, caller, room, last_seq, last_read_seq).await?;
        self.commit(tx).await?;
        Ok(state)
    }

    async fn events_after(
        &self,
        after: i64,
        scope: &EventScope,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let limit = i64::from(limit);
        let query = match scope {
            EventScope::All => sqlx::query_as(EVENTS_ALL).bind(after).bind(limit),
            EventScope::MemberOf(user) => sqlx::query_as(D::queries().events_of_member.as_str())
                .bind(after)
                .bind(user.as_str())
                .bind(limit),
            EventScope::Room(room) => sqlx::query_as(EVENTS_OF_ROOM)
                .bind(after)
                .bind(room.as_str())
                .bind(limit),
        };
        Ok(query.fetch_all(&self.pool).await?)
    }

    async fn relay_events_after(&self, after: i64, limit: u32) -> Result<Vec<StoredEvent>> {
        Ok(sqlx::query_as(EVENTS_ALL)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.relay_pool)
            .await?)
    }

    async fn message_events(&self, messages: &[MessageId]) -> Result<Vec<StoredEvent>> {
        let mut query = sqlx::QueryBuilder::<D>::new(
            "SELECT id, room_id, subject_id, data FROM events WHERE message_id IN (",
        );
        let mut list = query.separated(", ");
        for message in messages {
            list.push_bind(message.as_str());
        }
        query.push(") ORDER BY id");
        Ok(query.build_query_as().fetch_all(&self.relay_pool).await?)
    }

    async fn event_bounds(&self) -> Result<EventBounds> {
        let mut tx = self.begin_snapshot().await?;
        let newest: i64 = sqlx::query_scalar(NEWEST_EVENT).fetch_one(&mut *tx).await?;
        let oldest: Option<i64> = sqlx::query_scalar("SELECT MIN(id) FROM events")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(EventBounds { oldest, newest })
    }

    async fn rooms_of(&self, users: &[UserId]) -> Result<Vec<(UserId, RoomId)>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = sqlx::QueryBuilder::<D>::new(
            "SELECT me.user_id, me.room_id FROM room_members me
             JOIN rooms r ON r.id = me.room_id AND r.deleted_at IS NULL
             WHERE me.user_id IN (",
        );
        let mut list = query.separated(", ");
        for user in users {
            list.push_bind(user.as_str());
        }
        query.push(")");
        let rows: Vec<(String, String)> = query.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(user, room)| (UserId::from_store(user), RoomId::from_store(room)))
            .collect())
    }

    async fn room_mates(&self, user: &UserId, users: &[UserId]) -> Result<Vec<UserId>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = sqlx::QueryBuilder::<D>::new(
            "SELECT DISTINCT mate.user_id FROM room_members me
             JOIN rooms r ON r.id = me.room_id AND r.deleted_at IS NULL
             JOIN room_members mate ON mate.room_id = me.room_id
             WHERE me.user_id = ",
        );
        query
            .push_bind(user.as_str())
            .push(" AND mate.user_id IN (");
        let mut list = query.separated(", ");
        for user in users {
            list.push_bind(user.as_str());
        }
        query.push(")");
        let mates: Vec<String> = query.build_query_scalar().fetch_all(&self.pool).await?;
        Ok(mates.into_iter().map(UserId::from_store).collect())
    }

    async fn member_rooms_at(&self, user: &UserId, event: i64) -> Result<Vec<RoomId>> {
        // One snapshot: the rooms now, and the changes that led there.
        let mut tx = self.begin_snapshot().await?;
        // A deleted room is among them until its deletion event.
        let rooms: Vec<String> = sqlx::query_scalar(
            "SELECT me.room_id FROM room_members me JOIN rooms r ON r.id = me.room_id
             WHERE me.user_id = $1 AND (r.deleted_at IS NULL OR r.last_event_id > $2)",
        )
        .bind(user.as_str())
        .bind(event)
        .fetch_all(&mut *tx)
        .await?;
        let changes: Vec<(String, String)> = sqlx::query_as(MEMBERSHIP_CHANGES_SINCE)
            .bind(user.as_str())
            .bind(event)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rooms_before(rooms, changes)
    }

    async fn purge_events(&self, cutoff: Timestamp, batch: u32) -> Result<u64> {
        // Oldest first, each batch its own short statement: what the
        // log keeps starts at one id with none missing after it but a
        // deleted room's (which nobody may see), as the resume check
        // (`MIN(id)`) assumes, even when the instances' clocks
        // disagree; and a writer waits for one batch at most.
        // Ids commit in order, so no write in flight has an id below
        // one read here.
        let batch = batch.max(1); // a setting, checked; never a loop that deletes nothing
        let mut deleted = 0;
        // Below here everything is deleted: each batch starts past
        // it, not at the index's start, where PostgreSQL keeps the
        // dead entries of the batches before until a vacuum.
        let mut purged_up_to = 0_i64;
        // Nor past what an active webhook has yet to deliver.
        let held: Option<i64> =
            sqlx::query_scalar("SELECT MIN(event_cursor) FROM webhooks WHERE state = 'active'")
                .fetch_one(&self.pool)
                .await?;
        let held = held.unwrap_or(i64::MAX);
        let deleted = loop {
            let started = tokio::time::Instant::now();
            let oldest: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT id, created_at FROM events WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(purged_up_to)
            .bind(i64::from(batch))
            .fetch_all(&self.pool)
            .await?;
            // The log's head says what any process purged before: so an
            // instance learns of another's purge at its own next run.
            if let Some(&(first, _)) = oldest.first() {
                self.purged_up_to.fetch_max(first - 1, Ordering::SeqCst);
            }
            let expired = oldest
                .iter()
                .take_while(|(id, created_at)| *created_at < cutoff.unix_ms() && *id <= held)
                .count();
            let Some(&(up_to, _)) = expired.checked_sub(1).and_then(|last| oldest.get(last)) else {
                break deleted;
            };
            deleted += sqlx::query("DELETE FROM events WHERE id > $1 AND id <= $2")
                .bind(purged_up_to)
                .bind(up_to)
                .execute(&self.pool)
                .await?
                .rows_affected();
            purged_up_to = up_to;
            self.purged_up_to.fetch_max(up_to, Ordering::SeqCst);
            if expired < oldest.len() || oldest.len() < batch as usize {
                break deleted;
            }
            // As long again for everyone else: a backlog is purged at
            // half speed, and the writers it shares the store with
            // (on SQLite, its one write lock) keep their pace.
            tokio::time::sleep(started.elapsed()).await;
        };
        // A deleted room's tombstone outlives its deletion event
        // only until here: no stream can resume from before it now.
        sqlx::query(
            "DELETE FROM rooms WHERE deleted_at IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM events e WHERE e.room_id = rooms.id)",
        )
        .execute(&self.pool)
        .await?;
        Ok(deleted)
    }

    fn purged_up_to(&self) -> i64 {
        self.purged_up_to.load(Ordering::SeqCst)
    }

    async fn watch_other_writers(&self, wake: Arc<Wake>, signals: mpsc::Sender<String>) {
        D::watch_notifications(&self.pool, wake, signals).await
    }

    async fn send_signals(&self, signals: &[String]) -> Result<()> {
        D::notify_signals(&self.pool, signals).await
    }

    fn webhooks(&self) -> &dyn WebhookStore {
        self
    }

    fn erasures(&self) -> &dyn ErasureStore {
        self
    }

    fn inbox(&self) -> &dyn InboxStore {
        self
    }

    fn attachments(&self) -> &dyn AttachmentStore {
        self
    }

    fn search(&self) -> &dyn SearchStore {
        self
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            open: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }
}
