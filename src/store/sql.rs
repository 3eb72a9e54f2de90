//! The store's queries and transactions, written once for both databases.
//! `impl_store!` expands into a backend's module; the backend supplies what
//! differs: its connection type, how write and snapshot transactions begin,
//! two SQL spellings (member ids as JSON, the larger of two values) and how a
//! commit tells other processes about new events.
//! Placeholders are `$N` on both (sqlx-sqlite maps them).
//!
//! The event log's ids become visible in the order they are given: taking
//! one (`NEXT_EVENT_ID`) locks the single counter row until commit. To keep
//! that lock short and deadlock-free it is always a transaction's last lock:
//! a write first locks its room's row (an erasure step: its job's row, then
//! its rooms' in id order), and after the counter only inserts new rows or
//! updates rows it already holds.

/// A room query's head: the columns of `RoomRow` for the caller bound as `$1`,
/// followed by the given tail.
macro_rules! room_select {
    ($member_ids:literal, $read_cursors:literal, $($tail:tt)+) => {
        concat!(
            "SELECT r.id, r.name, r.created_at, r.updated_at, r.activity, r.last_seq,
                    r.closed_at, r.closed_by,
                    COALESCE(c.last_read_seq, 0) AS last_read_seq, ",
            $member_ids,
            " AS member_ids, ",
            $read_cursors,
            " AS read_cursors,
                    m.id AS msg_id, m.seq AS msg_seq, m.author_id AS msg_author_id,
                    m.body AS msg_body, m.client_id AS msg_client_id,
                    m.created_at AS msg_created_at, m.edited_at AS msg_edited_at,
                    m.deleted_at AS msg_deleted_at, m.deleted_by AS msg_deleted_by, ",
            deleted_past_cursor!(),
            " AS deleted_unread
             FROM rooms r
             LEFT JOIN read_cursors c ON c.room_id = r.id AND c.user_id = $1
             LEFT JOIN messages m ON m.room_id = r.id AND m.seq = r.last_seq ",
            $($tail)+
        )
    };
}
pub(super) use room_select;

/// The deleted messages of room `r` past cursor `c`, which unread counts
/// leave out: a probe of the small index of deleted messages.
macro_rules! deleted_past_cursor {
    () => {
        "(SELECT COUNT(*) FROM messages d
          WHERE d.room_id = r.id AND d.deleted_at IS NOT NULL
            AND d.seq > COALESCE(c.last_read_seq, 0))"
    };
}
pub(super) use deleted_past_cursor;

/// A message row's columns, as `MessageRow` reads them.
macro_rules! message_columns {
    () => {
        "id, room_id, seq, author_id, body, client_id, created_at, edited_at, deleted_at, deleted_by"
    };
}
pub(super) use message_columns;

/// `$1` caller, `$2` room, `$3` whether the caller sees every room. Nobody
/// sees a deleted room.
macro_rules! visible_to_caller {
    () => {
        "r.deleted_at IS NULL
         AND ($3 OR EXISTS (SELECT 1 FROM room_members v WHERE v.room_id = r.id AND v.user_id = $1))"
    };
}
pub(super) use visible_to_caller;

/// Unread totals: O(rooms visible), never a scan of messages. `$1` caller.
macro_rules! total_unread_all {
    () => {
        concat!(
            "SELECT CAST(COALESCE(SUM(r.last_seq - COALESCE(c.last_read_seq, 0) - ",
            deleted_past_cursor!(),
            "), 0) AS BIGINT)
             FROM rooms r
             LEFT JOIN read_cursors c ON c.room_id = r.id AND c.user_id = $1
             WHERE r.deleted_at IS NULL"
        )
    };
}
pub(super) use total_unread_all;

macro_rules! total_unread_member {
    () => {
        concat!(
            "SELECT CAST(COALESCE(SUM(r.last_seq - COALESCE(c.last_read_seq, 0) - ",
            deleted_past_cursor!(),
            "), 0) AS BIGINT)
             FROM room_members me
             JOIN rooms r ON r.id = me.room_id
             LEFT JOIN read_cursors c ON c.room_id = r.id AND c.user_id = $1
             WHERE me.user_id = $1 AND r.deleted_at IS NULL"
        )
    };
}
pub(super) use total_unread_member;

/// The first id the log no longer holds, minus one: no snapshot may claim less.
macro_rules! purged_up_to {
    () => {
        "SELECT COALESCE(MIN(id), (SELECT last_id + 1 FROM event_counter)) - 1 FROM events"
    };
}
pub(super) use purged_up_to;

/// The rooms whose events a member's replay reads: the rooms of user `$2`
/// now (a deleted room's members stay, so the replay finds its deletion),
/// and those they joined or left after event `$1`.
macro_rules! member_replay_rooms {
    () => {
        "(SELECT room_id FROM room_members WHERE user_id = $2
          UNION
          SELECT room_id FROM events WHERE subject_id = $2 AND id > $1) AS mine"
    };
}
pub(super) use member_replay_rooms;

/// The newest event in any of the rooms of the user `$1` (a deletion too).
macro_rules! member_last_event {
    () => {
        "SELECT COALESCE(MAX(r.last_event_id), 0)
         FROM room_members me JOIN rooms r ON r.id = me.room_id WHERE me.user_id = $1"
    };
}
pub(super) use member_last_event;

/// The newest event about the user `$1`: joining or leaving a room.
macro_rules! subject_last_event {
    () => {
        "SELECT COALESCE(MAX(id), 0) FROM events WHERE subject_id = $1"
    };
}
pub(super) use subject_last_event;

macro_rules! impl_store {
    (
        store: $store:ty,
        database: $db:ty,
        connection: $conn:ty,
        member_ids: $member_ids:literal,
        read_cursors: $read_cursors:literal,
        greatest: $greatest:literal,
        insert_members: $insert_members:literal,
        events_of_member: $events_of_member:expr,
        begin_snapshot: $begin_snapshot:literal,
        lock_rows: $lock_rows:literal,
        notify: $notify:expr $(,)?
    ) => {
        use super::erasure::{
            ERASURE_COLUMNS, ErasureJob, ErasureRow, ErasureStep, ErasureStore, Requested,
        };
        use super::group_commit::{Post, answer_failed_batch};
        use super::sql::{
            deleted_past_cursor, member_last_event, message_columns, purged_up_to, room_select,
            subject_last_event, total_unread_all, total_unread_member, visible_to_caller,
        };
        use super::{
            EventBounds, EventScope, MemberRules, MessagePage, MessageRange, MessageRow, NewMessage,
            Posted, RoomCursor, RoomPage, RoomRow, RoomState, Store, StoredEvent, initial_members,
            page_of, pending_activity,
        };
        use crate::error::{Error, Result};
        use crate::model::{
            Caller, DeletedRoom, EventData, Message, MessageBody, MessageId, ReadState, Role, Room,
            RoomChange, RoomId, RoomName, Timestamp, UserId,
        };

        const VISIBLE_ROOM: &str =
            room_select!($member_ids, $read_cursors, "WHERE r.id = $2 AND ", visible_to_caller!());
        /// `last_seq` of the room and whether it is closed, if the caller may see it.
        const VISIBLE_ROOM_STATE: &str = concat!(
            "SELECT r.last_seq, r.closed_at IS NOT NULL FROM rooms r WHERE r.id = $2 AND ",
            visible_to_caller!()
        );
        /// The same, taking the room row's lock for the rest of the transaction.
        const LOCK_VISIBLE_ROOM: &str = "UPDATE rooms SET last_seq = last_seq
             WHERE id = $2 AND deleted_at IS NULL AND ($3 OR EXISTS
                 (SELECT 1 FROM room_members v WHERE v.room_id = rooms.id AND v.user_id = $1))
             RETURNING last_seq, closed_at IS NOT NULL";
        /// Whether user `$2` is a member of room `$1` now.
        const IS_MEMBER: &str =
            "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2)";
        // Rooms pages, newest activity first: `$1` caller, `$2` rows to fetch,
        // `$3` the activity the previous page ended at (i64::MAX for the first).
        const ALL_ROOMS: &str = room_select!(
            $member_ids,
            $read_cursors,
            "WHERE r.activity < $3 AND r.deleted_at IS NULL ORDER BY r.activity DESC LIMIT $2"
        );
        const MEMBER_ROOMS: &str = room_select!(
            $member_ids,
            $read_cursors,
            "JOIN room_members me ON me.room_id = r.id AND me.user_id = $1 ",
            "WHERE r.activity < $3 AND r.deleted_at IS NULL ORDER BY r.activity DESC LIMIT $2"
        );
        /// What a page of the listing reports beside its rooms, in one
        /// statement: the unread total, the newest event, the purge mark.
        /// A listing's total and the newest event id of its snapshot: every
        /// event up to it is in the answer, so a stream resumed from it misses
        /// nothing and starts where the recent-event window serves it.
        const LISTING_MARKS_ALL: &str = concat!(
            "SELECT (", total_unread_all!(), "), (SELECT last_id FROM event_counter)"
        );
        const LISTING_MARKS_MEMBER: &str = concat!(
            "SELECT (", total_unread_member!(), "), (SELECT last_id FROM event_counter)"
        );
        /// What a listing's version is made of, in one statement (one snapshot):
        /// every change to a listing writes an event, in one of the caller's
        /// rooms or about the caller (a room they left).
        const VERSION_ALL: &str = concat!(
            "SELECT (SELECT last_id FROM event_counter), (", purged_up_to!(), ")"
        );
        const VERSION_MEMBER: &str = concat!(
            "SELECT (", member_last_event!(), "), (", subject_last_event!(), "), (",
            purged_up_to!(), ")"
        );
        // Messages pages: `$1` room, `$2` seq, `$3` rows to fetch.
        const MESSAGES_BEFORE: &str = concat!(
            "SELECT ", message_columns!(),
            " FROM messages WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        );
        const MESSAGES_AFTER: &str = concat!(
            "SELECT ", message_columns!(),
            " FROM messages WHERE room_id = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3"
        );
        /// Message `$2` of room `$1`.
        const MESSAGE: &str = concat!(
            "SELECT ", message_columns!(), " FROM messages WHERE room_id = $1 AND id = $2"
        );
        /// The deleted messages of room `$1` past seq `$2`.
        const DELETED_AFTER: &str = "SELECT COUNT(*) FROM messages
             WHERE room_id = $1 AND deleted_at IS NOT NULL AND seq > $2";
        /// In the events that carry message `$1`, puts its JSON `$3` where its
        /// JSON `$2` was.
        const REWRITE_MESSAGE_EVENTS: &str =
            "UPDATE events SET data = REPLACE(data, $2, $3) WHERE message_id = $1";
        const TOUCH_ROOM: &str = "UPDATE rooms SET updated_at = $2 WHERE id = $1";
        /// `$5` holds the room's place in the activity order until its first
        /// event's id takes it (see `create_room`).
        const INSERT_ROOM: &str =
            "INSERT INTO rooms (id, name, created_by, created_at, updated_at, activity)
             VALUES ($1, $2, $3, $4, $4, $5)";
        /// `$1` room, `$2` a JSON array of user ids, `$3` when: one statement.
        const INSERT_MEMBERS: &str = $insert_members;
        /// Members of room `$1` now.
        const MEMBER_COUNT: &str = "SELECT COUNT(*) FROM room_members WHERE room_id = $1";
        const NEXT_EVENT_ID: &str =
            "UPDATE event_counter SET last_id = last_id + 1 RETURNING last_id";
        /// Takes `$1` event ids at once; returns the last.
        const TAKE_EVENT_IDS: &str =
            "UPDATE event_counter SET last_id = last_id + $1 RETURNING last_id";
        const INSERT_EVENT: &str = "INSERT INTO events (id, room_id, subject_id, created_at, data, message_id)
             VALUES ($1, $2, $3, $4, $5, $6)";
        const ROOM_EVENT: &str = "UPDATE rooms SET last_event_id = $2 WHERE id = $1";
        const ROOM_ACTIVITY: &str =
            "UPDATE rooms SET last_event_id = $2, activity = $2 WHERE id = $1";
        const CURSOR: &str =
            "SELECT last_read_seq FROM read_cursors WHERE room_id = $1 AND user_id = $2";
        const NEWEST_EVENT: &str = "SELECT last_id FROM event_counter";
        // Replay: `$1` after, then the scope's id if any, then the limit.
        const EVENTS_ALL: &str = "SELECT id, room_id, subject_id, data FROM events
             WHERE id > $1 ORDER BY id LIMIT $2";
        /// The events of a user's rooms now, and of the rooms they joined or
        /// left since `$1` (which covers every event about them): of every
        /// event after `$1` that they may have seen when it happened. Which
        /// of those they saw is the stream's filter's to decide, event by
        /// event. Each room is a range scan of `events_by_room` that stops at
        /// `$3` rows, so a batch reads at most rooms × `$3` rows, whatever
        /// the size of the log (each backend spells it its own way).
        const EVENTS_OF_MEMBER: &str = $events_of_member;
        /// The events about user `$1` after `$2` (they joined or left a room), newest first.
        const MEMBERSHIP_CHANGES_SINCE: &str = "SELECT room_id, data FROM events
             WHERE subject_id = $1 AND id > $2 ORDER BY id DESC";
        const EVENTS_OF_ROOM: &str = "SELECT id, room_id, subject_id, data FROM events
             WHERE id > $1 AND room_id = $2 ORDER BY id LIMIT $3";
        /// The replay queries, for the tests that check their plans.
        pub const REPLAY_QUERIES: super::ReplayQueries = super::ReplayQueries {
            all: EVENTS_ALL,
            room: EVENTS_OF_ROOM,
            member: EVENTS_OF_MEMBER,
        };
        /// Moves a cursor forward only.
        const ADVANCE_CURSOR: &str = concat!(
            "INSERT INTO read_cursors (room_id, user_id, last_read_seq) VALUES ($1, $2, $3)
             ON CONFLICT (room_id, user_id) DO UPDATE SET last_read_seq = ",
            $greatest,
            "(read_cursors.last_read_seq, excluded.last_read_seq)
             RETURNING last_read_seq"
        );

        async fn visible_room(conn: &mut $conn, caller: &Caller, room: &str) -> Result<Room> {
            let row: Option<RoomRow> = sqlx::query_as(VISIBLE_ROOM)
                .bind(caller.id.as_str())
                .bind(room)
                .bind(caller.is_admin())
                .fetch_optional(&mut *conn)
                .await?;
            row.ok_or(Error::NotFound("room"))?.into_room()
        }

        /// The room's state, or `NotFound` if the caller may not see it.
        /// Writers `lock` the room row with it (see the module doc).
        ///
        /// A member's membership is read again under the lock, in a
        /// statement of its own: under PostgreSQL's READ COMMITTED, the
        /// `EXISTS` of an `UPDATE` that waited for the lock is checked
        /// against the snapshot from before the wait, so a removal that
        /// held the lock and committed meanwhile would go unseen. A new
        /// statement sees it; and a removal that comes after waits for us.
        async fn room_state(
            conn: &mut $conn,
            caller: &Caller,
            room: &str,
            lock: bool,
        ) -> Result<RoomState> {
            let state: Option<(i64, bool)> =
                sqlx::query_as(if lock { LOCK_VISIBLE_ROOM } else { VISIBLE_ROOM_STATE })
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
        async fn read_cursor(conn: &mut $conn, caller: &Caller, room: &RoomId) -> Result<Option<i64>> {
            Ok(sqlx::query_scalar(CURSOR)
                .bind(room.as_str())
                .bind(caller.id.as_str())
                .fetch_optional(&mut *conn)
                .await?)
        }

        async fn read_state(
            conn: &mut $conn,
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
                unread_count: super::unread(last_seq, last_read_seq, deleted),
            })
        }

        async fn touch_room(conn: &mut $conn, room: &str, now: i64) -> Result<()> {
            sqlx::query(TOUCH_ROOM)
                .bind(room)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        /// Takes the next event id: the transaction's last lock (see the module doc).
        async fn next_event_id(conn: &mut $conn) -> Result<i64> {
            Ok(sqlx::query_scalar(NEXT_EVENT_ID).fetch_one(&mut *conn).await?)
        }

        async fn insert_event(
            conn: &mut $conn,
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
            let notify: Option<&'static str> = $notify;
            if let Some(notify) = notify {
                sqlx::query(notify).bind(id).execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// Appends an event about a room whose row this transaction holds; an
        /// `activity` event also moves the room to the top of listings.
        async fn append_event(
            conn: &mut $conn,
            room: &RoomId,
            subject: Option<&UserId>,
            data: &EventData<'_>,
            activity: bool,
            now: i64,
        ) -> Result<i64> {
            let id = next_event_id(conn).await?;
            insert_event(conn, id, room, subject, data, now).await?;
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
        async fn change_message(
            conn: &mut $conn,
            caller: &Caller,
            room: &RoomId,
            message: &MessageId,
            moderation: bool,
        ) -> Result<Message> {
            let state = room_state(conn, caller, room.as_str(), true).await?;
            if state.closed && !moderation {
                return Err(super::closed_room());
            }
            let row: Option<MessageRow> = sqlx::query_as(MESSAGE)
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
        async fn rewrite_message_events(
            conn: &mut $conn,
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

        impl $store {
            /// Commits a write, then wakes this process's relay to read
            /// what it logged: the end of every write.
            async fn commit(&self, tx: sqlx::Transaction<'static, $db>) -> Result<()> {
                tx.commit().await?;
                self.wake.notify_one();
                Ok(())
            }

            /// Makes the messages `which` names tombstones deleted by `by`,
            /// `batch` to a transaction, until a batch finds none; how many.
            /// (The retention's sweep: whatever a race leaves, the next
            /// sweep takes. An erasure job knows when it is done instead.)
            async fn erase(&self, by: &UserId, which: super::Erasing<'_>, batch: u32) -> Result<u64> {
                let mut erased = 0;
                loop {
                    let mut tx = begin_write(&self.pool).await?;
                    let written = erase_batch(&mut tx, by, which, batch.max(1)).await?;
                    if written == 0 {
                        tx.rollback().await?;
                        return Ok(erased);
                    }
                    self.commit(tx).await?;
                    erased += written;
                }
            }
        }

        /// Pushes the condition on `messages` that `which` stands for: of
        /// rooms not deleted (a deletion's purge removes the others).
        fn push_erasing<'a>(query: &mut sqlx::QueryBuilder<$db>, which: super::Erasing<'a>) {
            query.push(
                "NOT EXISTS (SELECT 1 FROM rooms gone
                 WHERE gone.id = messages.room_id AND gone.deleted_at IS NOT NULL) AND ",
            );
            match which {
                super::Erasing::WrittenBy(author) => {
                    query.push("author_id = ").push_bind(author.as_str());
                }
                super::Erasing::WrittenBefore(cutoff) => {
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
        async fn erase_batch(
            tx: &mut $conn,
            by: &UserId,
            which: super::Erasing<'_>,
            batch: u32,
        ) -> Result<u64> {
            let mut next = sqlx::QueryBuilder::<$db>::new(
                "SELECT DISTINCT room_id FROM (SELECT room_id FROM messages
                 WHERE deleted_at IS NULL AND ",
            );
            push_erasing(&mut next, which);
            // One user's: room by room, along their index. (The retention's
            // take the oldest, along the index of time.)
            if let super::Erasing::WrittenBy(_) = which {
                next.push(" ORDER BY room_id");
            }
            next.push(" LIMIT ").push_bind(i64::from(batch)).push(") AS next");
            let candidates: Vec<String> =
                next.build_query_scalar().fetch_all(&mut *tx).await?;
            if candidates.is_empty() {
                return Ok(0);
            }
            let now = Timestamp::now().unix_ms();
            let mut lock = sqlx::QueryBuilder::<$db>::new("SELECT id FROM rooms WHERE id IN (");
            let mut list = lock.separated(", ");
            for room in &candidates {
                list.push_bind(room.as_str());
            }
            lock.push(") ORDER BY id").push($lock_rows);
            let _: Vec<(String,)> = lock.build_query_as().fetch_all(&mut *tx).await?;
            let mut select = sqlx::QueryBuilder::<$db>::new(concat!(
                "SELECT ", message_columns!(),
                " FROM messages WHERE deleted_at IS NULL AND "
            ));
            push_erasing(&mut select, which);
            select.push(" AND room_id IN (");
            let mut list = select.separated(", ");
            for room in &candidates {
                list.push_bind(room.as_str());
            }
            select.push(") ORDER BY room_id, seq LIMIT ").push_bind(i64::from(batch));
            let rows: Vec<MessageRow> = select.build_query_as().fetch_all(&mut *tx).await?;
            let was: Vec<Message> = rows.into_iter().map(Message::from).collect();
            if was.is_empty() {
                return Ok(0);
            }
            let mut update = sqlx::QueryBuilder::<$db>::new(
                "UPDATE messages SET body = '', edited_at = NULL, deleted_at = ",
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
                    ..message.clone()
                })
                .collect();
            for (was, erased) in was.iter().zip(&erased) {
                rewrite_message_events(tx, was, erased).await?;
            }
            // The counter last, once for the batch, as a batch of posts takes it.
            let last_id: i64 = sqlx::query_scalar(TAKE_EVENT_IDS)
                .bind(erased.len() as i64)
                .fetch_one(&mut *tx)
                .await?;
            let first_id = last_id - erased.len() as i64 + 1;
            insert_message_events(tx, erased.iter(), |message| EventData::MessageDeleted { message }, first_id, now)
                .await?;
            // Per room, its newest event (rows this transaction holds).
            let mut rooms: std::collections::BTreeMap<&str, i64> = Default::default();
            for (id, message) in (first_id..).zip(&erased) {
                rooms.insert(message.room_id.as_str(), id);
            }
            sqlx::QueryBuilder::<$db>::new("UPDATE rooms SET last_event_id = v.column2 FROM (")
                .push_values(rooms, |mut row, (room, event_id)| {
                    row.push_bind(room).push_bind(event_id);
                })
                .push(") AS v WHERE rooms.id = v.column1")
                .build()
                .execute(&mut *tx)
                .await?;
            let notify: Option<&'static str> = $notify;
            if let Some(notify) = notify {
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
        async fn purge_from_deleted_rooms(tx: &mut $conn, author: &UserId, batch: u32) -> Result<u64> {
            let mut select = sqlx::QueryBuilder::<$db>::new(
                "SELECT m.id FROM messages m WHERE m.author_id = ",
            );
            select
                .push_bind(author.as_str())
                .push(
                    " AND m.deleted_at IS NULL AND EXISTS (SELECT 1 FROM rooms r
                     WHERE r.id = m.room_id AND r.deleted_at IS NOT NULL)
                     ORDER BY m.room_id, m.seq LIMIT ",
                )
                .push_bind(i64::from(batch))
                .push($lock_rows);
            let left: Vec<String> = select.build_query_scalar().fetch_all(&mut *tx).await?;
            if left.is_empty() {
                return Ok(0);
            }
            let mut events = sqlx::QueryBuilder::<$db>::new(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE message_id IN (",
            );
            let mut list = events.separated(", ");
            for id in &left {
                list.push_bind(id.as_str());
            }
            events.push(") ORDER BY id").push($lock_rows).push(")");
            events.build().execute(&mut *tx).await?;
            let mut messages = sqlx::QueryBuilder::<$db>::new("DELETE FROM messages WHERE id IN (");
            let mut list = messages.separated(", ");
            for id in &left {
                list.push_bind(id.as_str());
            }
            messages.push(")");
            Ok(messages.build().execute(&mut *tx).await?.rows_affected())
        }

        /// Writes a batch of posts (see `group_commit`) and answers each.
        async fn write_posts(
            pool: sqlx::Pool<$db>,
            wake: std::sync::Arc<tokio::sync::Notify>,
            posts: Vec<Post>,
        ) {
            match post_batch(&pool, &posts).await {
                Ok(outcomes) => {
                    wake.notify_one();
                    for (post, outcome) in posts.into_iter().zip(outcomes) {
                        post.answer(outcome);
                    }
                }
                Err(error) => {
                    answer_failed_batch(posts, error, |post| {
                        let pool = pool.clone();
                        async move {
                            let outcome = post_batch(&pool, std::slice::from_ref(&post))
                                .await
                                .and_then(|mut outcomes| {
                                    outcomes.pop().ok_or_else(|| {
                                        Error::internal("a post got no outcome")
                                    })
                                })
                                .and_then(|outcome| outcome);
                            post.answer(outcome);
                        }
                    })
                    .await;
                    wake.notify_one();
                }
            }
        }

        /// Writes `posts` in one transaction; returns each one's outcome, in
        /// order. A post that may not be made (a room the caller cannot see, a
        /// `clientId` reused) gets its own error without failing the others;
        /// a database error fails the batch.
        ///
        /// A fixed number of statements whatever the batch's size: the rooms
        /// are locked in id order (so concurrent batches cannot deadlock), the
        /// posters' memberships and earlier `clientId`s are read at once, each
        /// post's seq is counted on from its room's, the rows go in with one
        /// statement per table, and the event counter is taken last, once.
        async fn post_batch(
            pool: &sqlx::Pool<$db>,
            posts: &[Post],
        ) -> Result<Vec<Result<Posted>>> {
            let now = Timestamp::now().unix_ms();
            let mut tx = begin_write(pool).await?;
            let (open, closed) = lock_rooms(&mut tx, posts).await?;
            let found = super::posts::Found {
                open,
                closed,
                members: memberships(&mut tx, posts).await?,
                earlier: messages_by_client_id(&mut tx, posts).await?,
            };
            let asked: Vec<super::posts::Asked<'_>> = posts
                .iter()
                .map(|post| super::posts::Asked {
                    caller: &post.caller,
                    room: &post.room,
                    message: &post.message,
                })
                .collect();
            // Deadlock freedom comes from `lock_rooms`' order alone.
            let super::posts::Plan {
                mut outcomes,
                created,
            } = super::posts::plan(&asked, found, now);
            if !created.is_empty() {
                insert_messages(&mut tx, &created, now).await?;
                let last_id: i64 = sqlx::query_scalar(TAKE_EVENT_IDS)
                    .bind(created.len() as i64)
                    .fetch_one(&mut *tx)
                    .await?;
                let first_id = last_id - created.len() as i64 + 1;
                let messages = created.iter().map(|(_, message)| message);
                insert_message_events(&mut tx, messages, |message| EventData::Message { message }, first_id, now)
                    .await?;
                // Per room, its newest seq and event (rows this transaction holds).
                let mut rooms: std::collections::BTreeMap<&str, (i64, i64)> = Default::default();
                for (id, (_, message)) in (first_id..).zip(&created) {
                    rooms.insert(message.room_id.as_str(), (message.seq, id));
                }
                sqlx::QueryBuilder::<$db>::new(
                    "UPDATE rooms SET last_seq = v.column2, updated_at = v.column3,
                         last_event_id = v.column4, activity = v.column4 FROM (",
                )
                    .push_values(rooms, |mut row, (room, (last_seq, event_id))| {
                        row.push_bind(room)
                            .push_bind(last_seq)
                            .push_bind(now)
                            .push_bind(event_id);
                    })
                    .push(") AS v WHERE rooms.id = v.column1")
                    .build()
                    .execute(&mut *tx)
                    .await?;
                let notify: Option<&'static str> = $notify;
                if let Some(notify) = notify {
                    sqlx::query(notify).bind(last_id).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            for (index, message) in created {
                outcomes[index] = Some(Ok(Posted::Created(message)));
            }
            Ok(outcomes
                .into_iter()
                .map(|outcome| {
                    outcome.unwrap_or_else(|| Err(Error::internal("a post got no outcome")))
                })
                .collect())
        }

        /// Locks the rooms `posts` go to, in id order; returns each existing
        /// open one's newest seq, and the closed ones (a deleted room is not
        /// one that exists).
        async fn lock_rooms(
            conn: &mut $conn,
            posts: &[Post],
        ) -> Result<(std::collections::HashMap<String, i64>, std::collections::HashSet<String>)> {
            let rooms: std::collections::BTreeSet<&str> =
                posts.iter().map(|post| post.room.as_str()).collect();
            let mut query = sqlx::QueryBuilder::<$db>::new(
                "SELECT id, last_seq, closed_at IS NOT NULL FROM rooms WHERE deleted_at IS NULL AND id IN (",
            );
            let mut list = query.separated(", ");
            for room in rooms {
                list.push_bind(room);
            }
            query.push(") ORDER BY id").push($lock_rows);
            let rows: Vec<(String, i64, bool)> = query.build_query_as().fetch_all(&mut *conn).await?;
            let closed = rows
                .iter()
                .filter(|(_, _, closed)| *closed)
                .map(|(room, _, _)| room.clone())
                .collect();
            let open = rows
                .into_iter()
                .filter(|(_, _, closed)| !*closed)
                .map(|(room, seq, _)| (room, seq))
                .collect();
            Ok((open, closed))
        }

        /// Which of the posters who are not admins are members of their post's room.
        async fn memberships(
            conn: &mut $conn,
            posts: &[Post],
        ) -> Result<std::collections::HashSet<(String, String)>> {
            let pairs: std::collections::BTreeSet<(&str, &str)> = posts
                .iter()
                .filter(|post| !post.caller.is_admin())
                .map(|post| (post.room.as_str(), post.caller.id.as_str()))
                .collect();
            if pairs.is_empty() {
                return Ok(Default::default());
            }
            let mut query = sqlx::QueryBuilder::<$db>::new(
                "SELECT room_id, user_id FROM room_members WHERE (room_id, user_id) IN (",
            );
            query
                .push_values(pairs, |mut row, (room, user)| {
                    row.push_bind(room).push_bind(user);
                })
                .push(")");
            let rows: Vec<(String, String)> = query.build_query_as().fetch_all(&mut *conn).await?;
            Ok(rows.into_iter().collect())
        }

        /// The stored messages whose `clientId` a post of `posts` reuses, by
        /// (room, author, clientId).
        async fn messages_by_client_id(
            conn: &mut $conn,
            posts: &[Post],
        ) -> Result<std::collections::HashMap<(String, String, String), Message>> {
            let keys: std::collections::BTreeSet<(&str, &str, &str)> = posts
                .iter()
                .filter_map(|post| {
                    let client_id = post.message.client_id.as_ref()?;
                    Some((post.room.as_str(), post.caller.id.as_str(), client_id.as_str()))
                })
                .collect();
            if keys.is_empty() {
                return Ok(Default::default());
            }
            let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                "SELECT ", message_columns!(), " FROM messages
                 WHERE client_id IS NOT NULL AND (room_id, author_id, client_id) IN (",
            ));
            query
                .push_values(keys, |mut row, (room, author, client_id)| {
                    row.push_bind(room).push_bind(author).push_bind(client_id);
                })
                .push(")");
            let rows: Vec<MessageRow> = query.build_query_as().fetch_all(&mut *conn).await?;
            Ok(rows
                .into_iter()
                .filter_map(|row| {
                    let key = (row.room_id.clone(), row.author_id.clone(), row.client_id.clone()?);
                    Some((key, Message::from(row)))
                })
                .collect())
        }

        /// The batch's messages, and each author's cursor moved to their newest.
        async fn insert_messages(
            conn: &mut $conn,
            created: &[(usize, Message)],
            now: i64,
        ) -> Result<()> {
            sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO messages (room_id, seq, id, author_id, body, client_id, created_at) ",
            )
            .push_values(created, |mut row, (_, message)| {
                row.push_bind(message.room_id.as_str())
                    .push_bind(message.seq)
                    .push_bind(message.id.as_str())
                    .push_bind(message.author_id.as_str())
                    .push_bind(message.body.as_str())
                    .push_bind(message.client_id.as_deref())
                    .push_bind(now);
            })
            .build()
            .execute(&mut *conn)
            .await?;
            // One row per (room, author): an upsert may not touch a row twice.
            let mut cursors: std::collections::BTreeMap<(&str, &str), i64> = Default::default();
            for (_, message) in created {
                cursors.insert((message.room_id.as_str(), message.author_id.as_str()), message.seq);
            }
            sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO read_cursors (room_id, user_id, last_read_seq) ",
            )
            .push_values(cursors, |mut row, ((room, author), seq)| {
                row.push_bind(room).push_bind(author).push_bind(seq);
            })
            .push(concat!(
                " ON CONFLICT (room_id, user_id) DO UPDATE SET last_read_seq = ",
                $greatest,
                "(read_cursors.last_read_seq, excluded.last_read_seq)"
            ))
            .build()
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// An event of `kind` for each of `messages` (a batch of posts, or of
        /// an erasure), under ids `first_id`, `first_id + 1`, ….
        async fn insert_message_events<'a>(
            conn: &mut $conn,
            messages: impl Iterator<Item = &'a Message>,
            kind: for<'m> fn(&'m Message) -> EventData<'m>,
            first_id: i64,
            now: i64,
        ) -> Result<()> {
            let events = (first_id..)
                .zip(messages)
                .map(|(id, message)| {
                    serde_json::to_string(&kind(message)).map(|json| {
                        (id, message.room_id.as_str(), json, message.id.as_str())
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::internal_from("could not encode an event", e))?;
            sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO events (id, room_id, subject_id, created_at, data, message_id) ",
            )
            .push_values(events, |mut row, (id, room, json, message)| {
                row.push_bind(id)
                    .push_bind(room)
                    .push_bind(None::<&str>)
                    .push_bind(now)
                    .push_bind(json)
                    .push_bind(message);
            })
            .build()
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// A room as a `room` event shows it: no one viewer's unread count.
        #[async_trait::async_trait]
        impl Store for $store {
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
                let mut tx = begin_write(&self.pool).await?;
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
                sqlx::query(INSERT_MEMBERS)
                    .bind(id.as_str())
                    .bind(members)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let room = visible_room(&mut tx, caller, id.as_str()).await?;
                let event = EventData::room(&room, RoomChange::Created, None);
                append_event(&mut tx, &id, None, &event, true, now).await?;
                self.commit(tx).await?;
                Ok(room)
            }

            async fn room(&self, caller: &Caller, room: &RoomId) -> Result<Room> {
                let mut conn = self.pool.acquire().await?;
                visible_room(&mut conn, caller, room.as_str()).await
            }

            async fn room_state(&self, caller: &Caller, room: &RoomId) -> Result<RoomState> {
                let mut conn = self.pool.acquire().await?;
                room_state(&mut conn, caller, room.as_str(), false).await
            }

            async fn rooms(
                &self,
                caller: &Caller,
                limit: u32,
                after: Option<&RoomCursor>,
            ) -> Result<RoomPage> {
                let (query, marks) = if caller.is_admin() {
                    (ALL_ROOMS, LISTING_MARKS_ALL)
                } else {
                    (MEMBER_ROOMS, LISTING_MARKS_MEMBER)
                };
                // One snapshot, so the page, the total and the event id agree.
                let mut tx = self.pool.begin_with($begin_snapshot).await?;
                let rows: Vec<RoomRow> = sqlx::query_as(query)
                    .bind(caller.id.as_str())
                    .bind(i64::from(limit) + 1)
                    .bind(after.map_or(i64::MAX, |cursor| cursor.activity))
                    .fetch_all(&mut *tx)
                    .await?;
                let (total_unread, last_event_id): (i64, i64) = sqlx::query_as(marks)
                    .bind(caller.id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                RoomPage::from_rows(rows, limit, total_unread, last_event_id)
            }

            async fn rooms_version(&self, caller: &Caller) -> Result<String> {
                // One statement: no transaction to begin and end.
                if caller.is_admin() {
                    let (newest, purged_up_to): (i64, i64) =
                        sqlx::query_as(VERSION_ALL).fetch_one(&self.pool).await?;
                    Ok(format!("all:{newest}:{purged_up_to}"))
                } else {
                    let (rooms, about, purged_up_to): (i64, i64, i64) = sqlx::query_as(VERSION_MEMBER)
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
                let mut tx = begin_write(&self.pool).await?;
                let state = room_state(&mut tx, caller, room.as_str(), true).await?;
                if !caller.is_admin() && *user != caller.id {
                    if !rules.members_add_others {
                        return Err(super::cannot_add_others());
                    }
                    let departed: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM room_departures WHERE room_id = $1 AND user_id = $2)",
                    )
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
                    return Err(super::closed_room());
                }
                // Counted under the room's lock: concurrent adds cannot pass the cap.
                let members: i64 = sqlx::query_scalar(MEMBER_COUNT)
                    .bind(room.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                if usize::try_from(members).unwrap_or(usize::MAX) >= max_members {
                    let already: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2)",
                    )
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
                touch_room(&mut tx, room.as_str(), now).await?;
                let view = visible_room(&mut tx, caller, room.as_str()).await?;
                let event = EventData::room(&view, RoomChange::MemberAdded, Some(user));
                append_event(&mut tx, room, Some(user), &event, true, now).await?;
                self.commit(tx).await?;
                Ok(view)
            }

            async fn set_closed(&self, caller: &Caller, room: &RoomId, closed: bool) -> Result<Room> {
                let now = Timestamp::now().unix_ms();
                let mut tx = begin_write(&self.pool).await?;
                room_state(&mut tx, caller, room.as_str(), true).await?;
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
                let view = visible_room(&mut tx, caller, room.as_str()).await?;
                if changed > 0 {
                    let change = if closed { RoomChange::Closed } else { RoomChange::Reopened };
                    let event = EventData::room(&view, change, None);
                    append_event(&mut tx, room, None, &event, false, now).await?;
                }
                self.commit(tx).await?;
                Ok(view)
            }

            async fn delete_room(
                &self,
                caller: &Caller,
                room: &RoomId,
                batch: u32,
            ) -> Result<DeletedRoom> {
                let now = Timestamp::now().unix_ms();
                let mut tx = begin_write(&self.pool).await?;
                let mut lock = sqlx::QueryBuilder::<$db>::new(
                    "SELECT deleted_at, deleted_by, last_event_id FROM rooms WHERE id = ",
                );
                lock.push_bind(room.as_str()).push($lock_rows);
                let row: Option<(Option<i64>, Option<String>, i64)> =
                    lock.build_query_as().fetch_optional(&mut *tx).await?;
                let Some((deleted_at, deleted_by, last_event_id)) = row else {
                    return Err(Error::NotFound("room"));
                };
                if !caller.is_admin() {
                    // A member learns it is not theirs to delete; anyone else, nothing.
                    room_state(&mut tx, caller, room.as_str(), false).await?;
                    return Err(Error::forbidden("forbidden", "only admins may delete a room"));
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
                            ..visible_room(&mut tx, caller, room.as_str()).await?
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
                        let event = EventData::room(&view, RoomChange::Deleted, None);
                        let id = append_event(&mut tx, room, None, &event, false, now).await?;
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
                Ok(DeletedRoom {
                    room_id: room.clone(),
                    deleted_at: Timestamp::from_unix_ms(deleted.0),
                    deleted_by: deleted.1,
                })
            }

            async fn remove_member(
                &self,
                caller: &Caller,
                room: &RoomId,
                user: &UserId,
            ) -> Result<Room> {
                let now = Timestamp::now().unix_ms();
                let mut tx = begin_write(&self.pool).await?;
                room_state(&mut tx, caller, room.as_str(), true).await?;
                if !caller.is_admin() && caller.id != *user {
                    return Err(Error::forbidden(
                        "forbidden",
                        "only admins may remove other members from a room",
                    ));
                }
                let removed =
                    sqlx::query("DELETE FROM room_members WHERE room_id = $1 AND user_id = $2")
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
                    touch_room(&mut tx, room.as_str(), now).await?;
                }
                // A member who just left no longer sees the room, but is answered with it.
                let as_admin = Caller {
                    id: caller.id.clone(),
                    role: Role::Admin,
                };
                let view = visible_room(&mut tx, &as_admin, room.as_str()).await?;
                if removed > 0 {
                    let event = EventData::room(&view, RoomChange::MemberRemoved, Some(user));
                    append_event(&mut tx, room, Some(user), &event, true, now).await?;
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
                let (query, from, descending) = match range {
                    MessageRange::Newest => (MESSAGES_BEFORE, i64::MAX, true),
                    MessageRange::Before(seq) => (MESSAGES_BEFORE, seq, true),
                    MessageRange::After(seq) => (MESSAGES_AFTER, seq, false),
                };
                let mut tx = self.pool.begin_with($begin_snapshot).await?;
                room_state(&mut tx, caller, room.as_str(), false).await?;
                // The snapshot's newest id, as for a listing.
                let last_event_id: i64 = sqlx::query_scalar(NEWEST_EVENT).fetch_one(&mut *tx).await?;
                let rows: Vec<MessageRow> = sqlx::query_as(query)
                    .bind(room.as_str())
                    .bind(from)
                    .bind(i64::from(limit) + 1)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                let (mut rows, has_more) = page_of(rows, limit);
                if descending {
                    rows.reverse();
                }
                Ok(MessagePage {
                    messages: rows.into_iter().map(Message::from).collect(),
                    has_more,
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
                let mut tx = begin_write(&self.pool).await?;
                let was = change_message(&mut tx, caller, room, message, false).await?;
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
                if !caller.is_admin()
                    && now.saturating_sub(edited.created_at.unix_ms()) > window_ms
                {
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
                rewrite_message_events(&mut tx, &was, &edited).await?;
                let event = EventData::MessageEdited { message: &edited };
                append_event(&mut tx, room, None, &event, false, now).await?;
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
                let mut tx = begin_write(&self.pool).await?;
                let was = change_message(&mut tx, caller, room, message, caller.is_admin())
                    .await?;
                let mut deleted = was.clone();
                if deleted.is_deleted() {
                    tx.rollback().await?;
                    return Ok(deleted);
                }
                deleted.body = String::new();
                deleted.edited_at = None;
                deleted.deleted_at = Some(Timestamp::from_unix_ms(now));
                deleted.deleted_by = Some(caller.id.clone());
                sqlx::query(
                    "UPDATE messages SET body = '', edited_at = NULL, deleted_at = $3, deleted_by = $4
                     WHERE room_id = $1 AND id = $2",
                )
                .bind(room.as_str())
                .bind(message.as_str())
                .bind(now)
                .bind(caller.id.as_str())
                .execute(&mut *tx)
                .await?;
                rewrite_message_events(&mut tx, &was, &deleted).await?;
                let event = EventData::MessageDeleted { message: &deleted };
                append_event(&mut tx, room, None, &event, false, now).await?;
                self.commit(tx).await?;
                Ok(deleted)
            }

            async fn erase_messages_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64> {
                let by = UserId::from_store(super::RETENTION.to_owned());
                self.erase(&by, super::Erasing::WrittenBefore(cutoff), batch).await
            }

            async fn mark_read(
                &self,
                caller: &Caller,
                room: &RoomId,
                seq: i64,
            ) -> Result<ReadState> {
                // A read that moves nothing writes nothing: pages send one for
                // every message they show, and on SQLite a write transaction
                // waits for the one write lock.
                {
                    let mut conn = self.pool.acquire().await?;
                    let last_seq = room_state(&mut conn, caller, room.as_str(), false).await?.last_seq;
                    let cursor = read_cursor(&mut conn, caller, room).await?;
                    if let Some(read) = cursor.filter(|&read| read >= seq.clamp(0, last_seq)) {
                        return read_state(&mut conn, caller, room, last_seq, read).await;
                    }
                }
                let mut tx = begin_write(&self.pool).await?;
                let last_seq = room_state(&mut tx, caller, room.as_str(), true).await?.last_seq;
                let before = read_cursor(&mut tx, caller, room).await?;
                let last_read_seq: i64 = sqlx::query_scalar(ADVANCE_CURSOR)
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
                    append_event(&mut tx, room, None, &event, false, now).await?;
                }
                let state = read_state(&mut tx, caller, room, last_seq, last_read_seq).await?;
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
                    EventScope::MemberOf(user) => sqlx::query_as(EVENTS_OF_MEMBER)
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
                let mut query = sqlx::QueryBuilder::<$db>::new(
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
                let mut tx = self.pool.begin_with($begin_snapshot).await?;
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
                let mut query = sqlx::QueryBuilder::<$db>::new(
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
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT DISTINCT mate.user_id FROM room_members me
                     JOIN rooms r ON r.id = me.room_id AND r.deleted_at IS NULL
                     JOIN room_members mate ON mate.room_id = me.room_id
                     WHERE me.user_id = ",
                );
                query.push_bind(user.as_str()).push(" AND mate.user_id IN (");
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
                let mut tx = self.pool.begin_with($begin_snapshot).await?;
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
                super::rooms_before(rooms, changes)
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
                let held: Option<i64> = sqlx::query_scalar(
                    "SELECT MIN(event_cursor) FROM webhooks WHERE state = 'active'",
                )
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
                    let expired = oldest
                        .iter()
                        .take_while(|(id, created_at)| *created_at < cutoff.unix_ms() && *id <= held)
                        .count();
                    let Some(&(up_to, _)) = expired.checked_sub(1).and_then(|last| oldest.get(last))
                    else {
                        break deleted;
                    };
                    deleted += sqlx::query("DELETE FROM events WHERE id > $1 AND id <= $2")
                        .bind(purged_up_to)
                        .bind(up_to)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                    purged_up_to = up_to;
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

            async fn watch_other_writers(
                &self,
                wake: std::sync::Arc<tokio::sync::Notify>,
                signals: tokio::sync::mpsc::Sender<String>,
            ) {
                self.watch_notifications(wake, signals).await
            }

            async fn send_signals(&self, signals: &[String]) -> Result<()> {
                self.notify_signals(signals).await
            }

            fn webhooks(&self) -> &dyn super::WebhookStore {
                self
            }

            fn erasures(&self) -> &dyn super::ErasureStore {
                self
            }

            fn pool_stats(&self) -> super::PoolStats {
                super::PoolStats {
                    open: self.pool.size(),
                    idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
                    max: self.pool.options().get_max_connections(),
                }
            }
        }

        /// Whether anything of `user`'s is left to erase: a message with
        /// its body, or a record of their presence or of notices to them.
        const ANYTHING_LEFT: &str = "SELECT EXISTS (SELECT 1 FROM messages
                 WHERE author_id = $1 AND deleted_at IS NULL)
             OR EXISTS (SELECT 1 FROM presence_offline WHERE user_id = $1)
             OR EXISTS (SELECT 1 FROM unseen_notices WHERE user_id = $1)";

        async fn erasure_job(conn: &mut $conn, condition: &str, key: &str) -> Result<Option<ErasureJob>> {
            let row: Option<ErasureRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ERASURE_COLUMNS} FROM erasure_jobs WHERE {condition}
                 ORDER BY created_at DESC, id DESC LIMIT 1"
            )))
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
            row.map(ErasureJob::try_from).transpose()
        }

        #[async_trait::async_trait]
        impl ErasureStore for $store {
            async fn request_erasure(&self, by: &UserId, user: &UserId) -> Result<Requested> {
                let mut tx = begin_write(&self.pool).await?;
                let running = "user_id = $1 AND state = 'running'";
                if let Some(job) = erasure_job(&mut tx, running, user.as_str()).await? {
                    tx.commit().await?;
                    return Ok(Requested::Running(job));
                }
                let last = erasure_job(&mut tx, "user_id = $1", user.as_str()).await?;
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
                let job = erasure_job(&mut tx, running, user.as_str())
                    .await?
                    .ok_or_else(|| Error::internal("a new erasure job is not there"))?;
                tx.commit().await?;
                Ok(Requested::Running(job))
            }

            async fn erasure(&self, id: &str) -> Result<ErasureJob> {
                let mut conn = self.pool.acquire().await?;
                erasure_job(&mut conn, "id = $1", id)
                    .await?
                    .ok_or(Error::NotFound("erasure"))
            }

            async fn lease_erasure(&self, owner: &str, until: Timestamp) -> Result<Option<ErasureJob>> {
                // Checked again on the row itself: of two instances taking
                // the same job at once, one does.
                let row: Option<ErasureRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE erasure_jobs SET lease_owner = $1, lease_until = $2
                     WHERE id = (SELECT id FROM erasure_jobs
                         WHERE state = 'running'
                           AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $3)
                         ORDER BY created_at, id LIMIT 1)
                       AND state = 'running'
                       AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $3)
                     RETURNING {ERASURE_COLUMNS}"
                )))
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
                let mut tx = begin_write(&self.pool).await?;
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
                let batch = batch.max(1);
                let mut erased =
                    erase_batch(&mut tx, &by, super::Erasing::WrittenBy(&user), batch).await?;
                if erased == 0 {
                    erased = purge_from_deleted_rooms(&mut tx, &user, batch).await?;
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
                for records in [
                    "DELETE FROM presence_offline WHERE user_id = $1",
                    "DELETE FROM unseen_notices WHERE user_id = $1",
                ] {
                    sqlx::query(records).bind(user.as_str()).execute(&mut *tx).await?;
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
    };
}
pub(super) use impl_store;
