//! The store's SQL. Placeholders are `$N` on both databases (sqlx-sqlite
//! maps them). What one database spells its own way comes from its
//! `Dialect`; the queries built from those pieces are composed once per
//! dialect, in `Queries`.

use super::dialect::Dialect;
use crate::model::ConversationStatus;
use crate::store::{Assignee, MAX_ROOM_PAGE, RoomFilter};

/// A message row's columns, as `MessageRow` reads them.
pub const MESSAGE_COLUMNS: &str = "id, room_id, seq, author_id, body, client_id, created_at, edited_at, deleted_at, deleted_by, \
     attachments";

/// `$1` caller, `$2` room, `$3` whether the caller sees every room. Nobody
/// sees a deleted room.
const VISIBLE_TO_CALLER: &str = "r.deleted_at IS NULL
     AND ($3 OR EXISTS (SELECT 1 FROM room_members v WHERE v.room_id = r.id AND v.user_id = $1))";

/// The deleted messages of room `room` (its id) past the seq `read`,
/// which unread counts leave out: a probe of the small index of deleted
/// messages.
fn deleted_past(room: &str, read: &str) -> String {
    format!(
        "(SELECT COUNT(*) FROM messages d
          WHERE d.room_id = {room} AND d.deleted_at IS NOT NULL AND d.seq > {read})"
    )
}

/// A room's conversation, as `ConversationRow` reads it from `rooms r`.
pub const CONVERSATION_COLUMNS: &str = "r.status, r.snoozed_until, r.resolved_at, r.assignee_id,
     r.assigned_at, COALESCE(r.started_at, r.created_at) AS started_at, r.first_response_at,
     r.last_customer_message_at, r.waiting_since";

/// Writes room `$1`'s conversation. Nothing customers see moves
/// (`updated_at`, `last_event_id`, `activity`).
pub const WRITE_CONVERSATION: &str = "UPDATE rooms SET status = $2, snoozed_until = $3,
         resolved_at = $4, assignee_id = $5, assigned_at = $6, started_at = $7,
         first_response_at = $8, last_customer_message_at = $9, waiting_since = $10
     WHERE id = $1";

/// Auto-assignment's queue (`rooms_waiting`): the open conversations
/// whose customer waits and no agent has.
const UNASSIGNED_WAITING: &str = "r.status = 'open' AND r.waiting_since IS NOT NULL
     AND r.assignee_id IS NULL AND r.deleted_at IS NULL";

/// The conversations an agent has had since before `$1` while their
/// customer waited since before it (`rooms_waiting_assigned`).
const KEPT_WAITING: &str = "r.status = 'open' AND r.waiting_since IS NOT NULL
     AND r.assignee_id IS NOT NULL AND r.deleted_at IS NULL
     AND (r.assigned_at IS NULL OR r.assigned_at < $1) AND r.waiting_since < $1";

/// Auto-assignment gave agent `$1` a conversation at `$2`.
pub const NOTE_ASSIGNED: &str = "UPDATE agents SET last_assigned_at = $2 WHERE user_id = $1";

/// Whether `$1` is an agent the server has learned.
pub const IS_AGENT: &str = "SELECT EXISTS (SELECT 1 FROM agents WHERE user_id = $1)";

/// Notes agent `$1`, named `$2` (a name once known stays until another
/// is given), first seen at `$3`.
pub const LEARN_AGENT: &str =
    "INSERT INTO agents (user_id, name, first_seen_at) VALUES ($1, $2, $3)
     ON CONFLICT (user_id) DO UPDATE SET name = COALESCE(excluded.name, agents.name)
     WHERE excluded.name IS NOT NULL AND excluded.name IS DISTINCT FROM agents.name";

/// Every agent, with their open conversations (a probe of
/// `rooms_by_assignee_status` each).
pub const AGENTS: &str = "SELECT a.user_id, a.name,
         (SELECT COUNT(*) FROM rooms r WHERE r.assignee_id = a.user_id
             AND r.status = 'open' AND r.deleted_at IS NULL) AS open_conversations
     FROM agents a ORDER BY a.user_id";

/// Conversations open, pending and snoozed (`rooms_by_status`).
pub const UNRESOLVED_COUNTS: &str = "SELECT status, COUNT(*) FROM rooms
     WHERE status IN ('open', 'pending', 'snoozed') AND deleted_at IS NULL GROUP BY status";

/// Whether a snoozed conversation is due by `$1`.
pub const ANY_SNOOZE_DUE: &str = "SELECT EXISTS (SELECT 1 FROM rooms
     WHERE status = 'snoozed' AND snoozed_until <= $1 AND deleted_at IS NULL)";

/// The first id the log no longer holds, minus one: no snapshot may claim less.
const PURGED_UP_TO: &str =
    "SELECT COALESCE(MIN(id), (SELECT last_id + 1 FROM event_counter)) - 1 FROM events";

/// The rooms whose events a member's replay reads: the rooms of user `$2`
/// now (a deleted room's members stay, so the replay finds its deletion),
/// and those they joined or left after event `$1`.
const MEMBER_REPLAY_ROOMS: &str = "(SELECT room_id FROM room_members WHERE user_id = $2
      UNION
      SELECT room_id FROM events WHERE subject_id = $2 AND id > $1) AS mine";

/// The newest event in any of the rooms of the user `$1` (a deletion too).
const MEMBER_LAST_EVENT: &str = "SELECT COALESCE(MAX(r.last_event_id), 0)
     FROM room_members me JOIN rooms r ON r.id = me.room_id WHERE me.user_id = $1";

/// The newest event about the user `$1`: joining or leaving a room.
const SUBJECT_LAST_EVENT: &str = "SELECT COALESCE(MAX(id), 0) FROM events WHERE subject_id = $1";

/// `last_seq` of the room and whether it is closed, taking the room row's
/// lock for the rest of the transaction, if the caller may see it.
pub const LOCK_VISIBLE_ROOM: &str = "UPDATE rooms SET last_seq = last_seq
     WHERE id = $2 AND deleted_at IS NULL AND ($3 OR EXISTS
         (SELECT 1 FROM room_members v WHERE v.room_id = rooms.id AND v.user_id = $1))
     RETURNING last_seq, closed_at IS NOT NULL";
/// Whether user `$2` is a member of room `$1` now.
pub const IS_MEMBER: &str =
    "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2)";
/// Whether user `$2` left room `$1` or was removed from it.
pub const DEPARTED: &str =
    "SELECT EXISTS (SELECT 1 FROM room_departures WHERE room_id = $1 AND user_id = $2)";
/// The deleted messages of room `$1` past seq `$2`.
pub const DELETED_AFTER: &str = "SELECT COUNT(*) FROM messages
     WHERE room_id = $1 AND deleted_at IS NOT NULL AND seq > $2";
/// In the events that carry message `$1`, puts its JSON `$3` where its
/// JSON `$2` was.
pub const REWRITE_MESSAGE_EVENTS: &str =
    "UPDATE events SET data = REPLACE(data, $2, $3) WHERE message_id = $1";
pub const TOUCH_ROOM: &str = "UPDATE rooms SET updated_at = $2 WHERE id = $1";
/// `$5` holds the room's place in the activity order until its first
/// event's id takes it (see `create_room`).
pub const INSERT_ROOM: &str =
    "INSERT INTO rooms (id, name, created_by, created_at, updated_at, activity, started_at)
     VALUES ($1, $2, $3, $4, $4, $5, $4)";
/// Members of room `$1` now.
pub const MEMBER_COUNT: &str = "SELECT COUNT(*) FROM room_members WHERE room_id = $1";
pub const NEXT_EVENT_ID: &str = "UPDATE event_counter SET last_id = last_id + 1 RETURNING last_id";
/// Takes `$1` event ids at once; returns the last.
pub const TAKE_EVENT_IDS: &str =
    "UPDATE event_counter SET last_id = last_id + $1 RETURNING last_id";
pub const INSERT_EVENT: &str =
    "INSERT INTO events (id, room_id, subject_id, created_at, data, message_id)
     VALUES ($1, $2, $3, $4, $5, $6)";
pub const ROOM_EVENT: &str = "UPDATE rooms SET last_event_id = $2 WHERE id = $1";
pub const ROOM_ACTIVITY: &str = "UPDATE rooms SET last_event_id = $2, activity = $2 WHERE id = $1";
pub const CURSOR: &str =
    "SELECT last_read_seq FROM read_cursors WHERE room_id = $1 AND user_id = $2";
pub const NEWEST_EVENT: &str = "SELECT last_id FROM event_counter";
// Replay: `$1` after, then the scope's id if any, then the limit.
pub const EVENTS_ALL: &str = "SELECT id, room_id, subject_id, data FROM events
     WHERE id > $1 ORDER BY id LIMIT $2";
pub const EVENTS_OF_ROOM: &str = "SELECT id, room_id, subject_id, data FROM events
     WHERE id > $1 AND room_id = $2 ORDER BY id LIMIT $3";
/// The events about user `$1` after `$2` (they joined or left a room), newest first.
pub const MEMBERSHIP_CHANGES_SINCE: &str = "SELECT room_id, data FROM events
     WHERE subject_id = $1 AND id > $2 ORDER BY id DESC";

/// The queries composed of a dialect's pieces, or of shared ones.
pub struct Queries {
    /// The room `$2` as caller `$1` sees it (`$3`: whether they see every room).
    pub visible_room: String,
    /// `last_seq` of the room and whether it is closed, if the caller may see it.
    pub visible_room_state: String,
    /// Rooms pages, newest activity first: `$1` caller, `$2` rows to fetch,
    /// `$3` the activity the previous page ended at (i64::MAX for the first).
    pub all_rooms: String,
    pub member_rooms: String,
    /// What a page of the listing reports beside its rooms, in one
    /// statement: the unread total, and the newest event id of its
    /// snapshot: every event up to it is in the answer, so a stream resumed
    /// from it misses nothing and starts where the recent-event window
    /// serves it.
    pub listing_marks_all: String,
    pub listing_marks_member: String,
    /// An inbox view's: no unread total (`/api/chat/inbox` counts its tabs).
    pub listing_marks_inbox: String,
    /// What a listing's version is made of, in one statement (one snapshot):
    /// every change to a listing writes an event, in one of the caller's
    /// rooms or about the caller (a room they left).
    pub version_all: String,
    pub version_member: String,
    /// A page of messages before seq `$2` of room `$1`, newest first (`$3`
    /// rows at most).
    pub messages_before: String,
    /// The same after seq `$2`, oldest first.
    pub messages_after: String,
    /// Message `$2` of room `$1`.
    pub message: String,
    /// `$1` room, `$2` a JSON array of user ids, `$3` when: one statement.
    pub insert_members: String,
    /// The events of a user's rooms now, and of the rooms they joined or
    /// left since `$1` (which covers every event about them): of every
    /// event after `$1` that they may have seen when it happened. Which of
    /// those they saw is the stream's filter's to decide, event by event.
    /// Each room is a range scan of `events_by_room` that stops at `$3`
    /// rows, so a batch reads at most rooms × `$3` rows, whatever the size
    /// of the log (each dialect spells it its own way).
    pub events_of_member: String,
    /// Moves cursor `$3` of user `$2` in room `$1` forward only.
    pub advance_cursor: String,
    /// Ends an insert into `read_cursors`: no cursor moves back.
    pub cursors_forward_only: String,
    /// The members of the rooms in the JSON array `$1`, with their cursors.
    pub readers: String,
    /// When each of the users in the JSON array `$1` last went offline.
    pub offline_at: String,
    /// Notes the users in the JSON array `$1` offline at `$2`, unless later.
    pub note_offline: String,
    /// The snoozed conversations due by `$1`, `$2` at most, locked.
    pub snoozed_due: String,
    /// Room `$1`'s conversation (its row locked by the transaction already).
    pub conversation: String,
    /// Whether auto-assignment's queue holds a conversation.
    pub unassigned_due: String,
    /// Whether an agent has kept a customer waiting since before `$1`.
    pub reassignment_due: String,
    /// The first `$1` of the queue, the longest waiting first.
    pub unassigned_head: String,
    /// The first `$2` of those kept waiting since before `$1`.
    pub kept_waiting_head: String,
    /// The conversations of the rooms in the JSON array `$1`, locked in id order.
    pub lock_conversations: String,
    /// The agents in the JSON array `$1`, locked in id order.
    pub lock_agents: String,
    /// How many open conversations each user in the JSON array `$1` has.
    pub open_by_assignee: String,
    /// An agent's listing filtered (see `inbox_rooms`).
    inbox_rooms: [[String; 3]; 5],
    /// The inbox's tabs for agent `$1`: one pass over the open
    /// conversations (`rooms_by_status`), with `$1`'s cursors and the
    /// deleted messages past them.
    pub inbox_summary: String,
    /// Moves webhook `$1`'s cursors forward to `$3` and `$4`, if `$2` holds
    /// its lease; `$5` whether it delivered something, at `$6`.
    pub advance_webhook: String,
}

/// `SUM(value)` over the rows where `condition` holds, as a BIGINT (0 for none).
fn sum_where(condition: &str, value: &str) -> String {
    format!("CAST(COALESCE(SUM(CASE WHEN {condition} THEN {value} ELSE 0 END), 0) AS BIGINT)")
}

impl Queries {
    /// An agent's listing filtered by `filter`: the agent it is assigned
    /// to, if one, is bound as `$4`.
    pub fn inbox_rooms(&self, filter: &RoomFilter) -> &str {
        let status = match filter.status {
            None => 0,
            Some(ConversationStatus::Open) => 1,
            Some(ConversationStatus::Pending) => 2,
            Some(ConversationStatus::Resolved) => 3,
            Some(ConversationStatus::Snoozed) => 4,
        };
        let assignee = match filter.assignee {
            None => 0,
            Some(Assignee::Nobody) => 1,
            Some(Assignee::Agent(_)) => 2,
        };
        &self.inbox_rooms[status][assignee]
    }

    pub fn of<D: Dialect>() -> Self {
        // The rooms `tail` picks, each with the caller's cursor (`$1`) read
        // by a probe of its row, never a join: a join may be planned as a
        // pass over every reader's cursors. Then each room's members,
        // readers, last message and deleted messages past the cursor, the
        // whole ended by `end`.
        let room_select = |tail: &str, end: &str| {
            format!(
                "SELECT r.id, r.name, r.created_at, r.updated_at, r.activity, r.last_seq,
                        r.closed_at, r.closed_by, {CONVERSATION_COLUMNS}, r.last_read_seq,
                        {member_ids} AS member_ids, {read_cursors} AS read_cursors,
                        m.id AS msg_id, m.seq AS msg_seq, m.author_id AS msg_author_id,
                        m.body AS msg_body, m.client_id AS msg_client_id,
                        m.created_at AS msg_created_at, m.edited_at AS msg_edited_at,
                        m.deleted_at AS msg_deleted_at, m.deleted_by AS msg_deleted_by,
                        m.attachments AS msg_attachments, {deleted} AS deleted_unread
                 FROM (SELECT r.*, COALESCE((SELECT c.last_read_seq FROM read_cursors c
                               WHERE c.room_id = r.id AND c.user_id = $1), 0) AS last_read_seq
                       FROM rooms r {tail}) AS r
                 LEFT JOIN messages m ON m.room_id = r.id AND m.seq = r.last_seq
                 ORDER BY r.activity DESC{end}",
                member_ids = D::MEMBER_IDS,
                read_cursors = D::READ_CURSORS,
                deleted = deleted_past("r.id", "r.last_read_seq"),
            )
        };
        // A page of the rooms `filter` picks, newest activity first, `$2`
        // rows at most. The inner bound is a constant (the largest page):
        // PostgreSQL's generic plan of a prepared statement guesses a
        // bound's rows, and guessing a tenth of the table it read every
        // last message with a scan; the outer `$2` ends the walk early.
        let page = |filter: &str| {
            room_select(
                &format!(
                    "{filter} ORDER BY r.activity DESC LIMIT {}",
                    MAX_ROOM_PAGE + 1
                ),
                " LIMIT $2",
            )
        };
        // Unread totals: O(rooms visible), never a scan of messages. `$1` caller.
        let unread_total = |rooms: &str, condition: &str| {
            format!(
                "SELECT CAST(COALESCE(SUM(r.last_seq - COALESCE(c.last_read_seq, 0)
                     - {deleted}), 0) AS BIGINT)
                 FROM {rooms}
                 LEFT JOIN read_cursors c ON c.room_id = r.id AND c.user_id = $1
                 WHERE {condition}r.deleted_at IS NULL",
                deleted = deleted_past("r.id", "COALESCE(c.last_read_seq, 0)"),
            )
        };
        let unread_all = unread_total("rooms r", "");
        let unread_member = unread_total(
            "room_members me JOIN rooms r ON r.id = me.room_id",
            "me.user_id = $1 AND ",
        );
        let greatest = D::GREATEST;
        let cursors_forward_only = format!(
            " ON CONFLICT (room_id, user_id) DO UPDATE SET last_read_seq =
                 {greatest}(read_cursors.last_read_seq, excluded.last_read_seq)"
        );
        Self {
            visible_room: room_select(&format!("WHERE r.id = $2 AND {VISIBLE_TO_CALLER}"), ""),
            visible_room_state: format!(
                "SELECT r.last_seq, r.closed_at IS NOT NULL FROM rooms r
                 WHERE r.id = $2 AND {VISIBLE_TO_CALLER}"
            ),
            all_rooms: page("WHERE r.activity < $3 AND r.deleted_at IS NULL"),
            member_rooms: page(
                "JOIN room_members me ON me.room_id = r.id AND me.user_id = $1
                 WHERE r.activity < $3 AND r.deleted_at IS NULL",
            ),
            listing_marks_all: format!(
                "SELECT ({unread_all}), (SELECT last_id FROM event_counter)"
            ),
            listing_marks_member: format!(
                "SELECT ({unread_member}), (SELECT last_id FROM event_counter)"
            ),
            listing_marks_inbox: "SELECT CAST(NULL AS BIGINT), last_id FROM event_counter"
                .to_owned(),
            version_all: format!("SELECT (SELECT last_id FROM event_counter), ({PURGED_UP_TO})"),
            version_member: format!(
                "SELECT ({MEMBER_LAST_EVENT}), ({SUBJECT_LAST_EVENT}), ({PURGED_UP_TO})"
            ),
            messages_before: format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
            ),
            messages_after: format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE room_id = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3"
            ),
            message: format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND id = $2"
            ),
            insert_members: format!(
                "INSERT INTO room_members (room_id, user_id, joined_at)
                 SELECT $1, value, $3 FROM {}",
                D::json_values(2)
            ),
            events_of_member: format!(
                "SELECT e.id, e.room_id, e.subject_id, e.data FROM {MEMBER_REPLAY_ROOMS} {}",
                D::EVENTS_OF_ROOMS
            ),
            advance_cursor: format!(
                "INSERT INTO read_cursors (room_id, user_id, last_read_seq) VALUES ($1, $2, $3)
                 {cursors_forward_only} RETURNING last_read_seq"
            ),
            cursors_forward_only,
            readers: format!(
                "SELECT m.room_id, m.user_id, m.joined_at,
                     COALESCE(c.last_read_seq, 0) AS last_read_seq
                 FROM room_members m
                 JOIN rooms r ON r.id = m.room_id AND r.deleted_at IS NULL
                 LEFT JOIN read_cursors c ON c.room_id = m.room_id AND c.user_id = m.user_id
                 WHERE m.room_id IN (SELECT value FROM {})",
                D::json_values(1)
            ),
            offline_at: format!(
                "SELECT user_id, offline_at FROM presence_offline
                 WHERE user_id IN (SELECT value FROM {})",
                D::json_values(1)
            ),
            // `WHERE true`: SQLite reads `ON` after a bare SELECT as a join's.
            note_offline: format!(
                "INSERT INTO presence_offline (user_id, offline_at)
                 SELECT value, $2 FROM {} WHERE true
                 ON CONFLICT (user_id) DO UPDATE
                 SET offline_at = {greatest}(presence_offline.offline_at, excluded.offline_at)",
                D::json_values(1)
            ),
            snoozed_due: format!(
                "SELECT r.id, {CONVERSATION_COLUMNS} FROM rooms r
                 WHERE r.status = 'snoozed' AND r.snoozed_until <= $1 AND r.deleted_at IS NULL
                 ORDER BY r.id LIMIT $2{}",
                D::LOCK_ROWS
            ),
            conversation: format!("SELECT {CONVERSATION_COLUMNS} FROM rooms r WHERE r.id = $1"),
            unassigned_due: format!(
                "SELECT EXISTS (SELECT 1 FROM rooms r WHERE {UNASSIGNED_WAITING})"
            ),
            reassignment_due: format!("SELECT EXISTS (SELECT 1 FROM rooms r WHERE {KEPT_WAITING})"),
            unassigned_head: format!(
                "SELECT r.id FROM rooms r WHERE {UNASSIGNED_WAITING}
                 ORDER BY r.waiting_since, r.id LIMIT $1"
            ),
            kept_waiting_head: format!(
                "SELECT r.id FROM rooms r WHERE {KEPT_WAITING}
                 ORDER BY r.assigned_at, r.id LIMIT $2"
            ),
            lock_conversations: format!(
                "SELECT r.id, {CONVERSATION_COLUMNS} FROM rooms r
                 WHERE r.deleted_at IS NULL AND r.id IN (SELECT value FROM {})
                 ORDER BY r.id{}",
                D::json_values(1),
                D::LOCK_ROWS
            ),
            lock_agents: format!(
                "SELECT user_id, last_assigned_at FROM agents
                 WHERE user_id IN (SELECT value FROM {}) ORDER BY user_id{}",
                D::json_values(1),
                D::LOCK_ROWS
            ),
            open_by_assignee: format!(
                "SELECT assignee_id, COUNT(*) FROM rooms
                 WHERE status = 'open' AND deleted_at IS NULL
                   AND assignee_id IN (SELECT value FROM {})
                 GROUP BY assignee_id",
                D::json_values(1)
            ),
            // The status is written in, not bound: a generic plan that does
            // not know it would walk the activity order for a rare one.
            inbox_rooms: [
                None,
                Some(ConversationStatus::Open),
                Some(ConversationStatus::Pending),
                Some(ConversationStatus::Resolved),
                Some(ConversationStatus::Snoozed),
            ]
            .map(|status| {
                [None, Some(false), Some(true)].map(|by_agent| {
                    let mut filter = String::new();
                    if let Some(status) = status {
                        filter.push_str(&format!(" AND r.status = '{}'", status.as_str()));
                    }
                    match by_agent {
                        None => {}
                        Some(false) => filter.push_str(" AND r.assignee_id IS NULL"),
                        Some(true) => filter.push_str(" AND r.assignee_id = $4"),
                    }
                    page(&format!(
                        "WHERE r.activity < $3 AND r.deleted_at IS NULL{filter}"
                    ))
                })
            }),
            // Joins, not a probe per room: the open rooms, the caller's
            // cursors (`read_cursors_by_user`) and the deleted messages are
            // each read once and hashed together.
            inbox_summary: format!(
                "SELECT COUNT(*), {sum_all},
                     {count_mine}, {sum_mine}, {count_nobody}, {sum_nobody}
                 FROM (SELECT r.assignee_id,
                           r.last_seq - COALESCE(c.last_read_seq, 0) - COUNT(d.seq) AS unread
                       FROM rooms r
                       LEFT JOIN read_cursors c ON c.room_id = r.id AND c.user_id = $1
                       LEFT JOIN messages d ON d.room_id = r.id AND d.deleted_at IS NOT NULL
                           AND d.seq > COALESCE(c.last_read_seq, 0)
                       WHERE r.status = 'open' AND r.deleted_at IS NULL
                       GROUP BY r.id, r.assignee_id, r.last_seq, c.last_read_seq) AS o",
                sum_all = "CAST(COALESCE(SUM(unread), 0) AS BIGINT)",
                count_mine = sum_where("assignee_id = $1", "1"),
                sum_mine = sum_where("assignee_id = $1", "unread"),
                count_nobody = sum_where("assignee_id IS NULL", "1"),
                sum_nobody = sum_where("assignee_id IS NULL", "unread"),
            ),
            advance_webhook: format!(
                "UPDATE webhooks SET event_cursor = {greatest}(event_cursor, $3),
                     notice_cursor = {greatest}(notice_cursor, $4),
                     failing_since = NULL, attempts = 0, last_error = NULL,
                     delivered_at = CASE WHEN $5 THEN $6 ELSE delivered_at END
                 WHERE id = $1 AND lease_owner = $2"
            ),
        }
    }
}
