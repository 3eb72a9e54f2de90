//! Storage behind one narrow trait, implemented once (`sql/`) for two
//! databases, each a dialect: SQLite (the embedded default, `sqlite.rs`) and
//! PostgreSQL (production, `postgres.rs`). The backend is picked once, from
//! the URL scheme (`Backend`). Visibility rules live here, inside each
//! query and transaction, so no check can race a membership change.
//!
//! Every change also appends its event to the event log, in the same
//! transaction, under ids that become visible in the order they are given
//! (see `sql/mod.rs`): the log is what live streams relay and resume from.

mod assign;
mod attachments;
mod cluster;
mod erasure;
mod group_commit;
mod inbox;
mod measured;
mod postgres;
mod posts;
mod search;
mod sql;
mod sqlite;
mod wake;
mod webhooks;

pub use attachments::{AttachmentStore, Blob, Upload, attachment_unavailable, blob_key};
pub use cluster::{Cluster, Lane, StreamClaim};
pub use erasure::{ErasureJob, ErasureState, ErasureStep, ErasureStore, Requested};
use inbox::ConversationRow;
pub use inbox::{
    AUTO_ASSIGN, Agent, Assignee, ConversationChanges, InboxStore, RoomFilter, SNOOZE,
};
pub use measured::Measured;
pub use postgres::PgStore;
pub use search::{
    MAX_QUERY_CHARS, MAX_SEARCH_PAGE, SearchCursor, SearchHit, SearchOrder, SearchPage,
    SearchRequest, SearchStore, SearchText, SnippetPart,
};
pub use sql::{SearchArgument, SearchStatement};
pub use sqlite::SqliteStore;
pub use wake::Wake;
pub use webhooks::{
    Cursors, Failure, LoggedEvent, NewNotice, NewWebhook, Notice, Reader, UNSEEN, Webhook,
    WebhookChange, WebhookState, WebhookStore,
};

use crate::error::{Error, Result};
use crate::model::{
    AttachmentId, Caller, ClientId, Conversation, ConversationStatus, DeletedRoom, Message,
    MessageBody, MessageId, ReadState, Room, RoomChange, RoomId, RoomName, Timestamp, UserId,
};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// A room as a write or a check finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomState {
    pub last_seq: i64,
    pub closed: bool,
}

/// Who may put users into rooms, and how many a room holds.
#[derive(Debug, Clone, Copy)]
pub struct MemberRules {
    pub max_members: usize,
    /// Members may add others (`members_add_others`); admins always may.
    pub members_add_others: bool,
}

/// A room closed to new messages takes no typing, edits or members either.
pub fn closed_room() -> Error {
    Error::conflict(
        "room_closed",
        "this room is closed: it takes no new messages, edits, typing or members",
    )
}

/// A user who is not an admin named someone else to put into a room.
pub fn cannot_add_others() -> Error {
    Error::forbidden(
        "cannot_add_others",
        "only admins put other users into rooms: a user joins a room by an admin's doing, \
         or creates one with themselves alone",
    )
}

/// Where `GET /api/chat/rooms` left off: the activity number of a page's last room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomCursor {
    pub activity: i64,
}

/// The most rooms a page of a listing holds.
pub const MAX_ROOM_PAGE: u32 = 500;

#[derive(Debug)]
pub struct RoomPage {
    pub rooms: Vec<Room>,
    /// Over every room the caller can see, not only this page; none for
    /// an inbox view (`InboxStore::inbox_summary` counts its tabs).
    pub total_unread: Option<i64>,
    pub next: Option<RoomCursor>,
    /// The newest event of the answer's snapshot: a stream resumed from it
    /// misses nothing.
    pub last_event_id: i64,
}

impl RoomPage {
    /// Builds a page from the `limit + 1` rows a page query fetched.
    fn from_rows(
        caller: &Caller,
        rows: Vec<RoomRow>,
        limit: u32,
        total_unread: Option<i64>,
        last_event_id: i64,
    ) -> Result<Self> {
        let (rows, has_more) = page_of(rows, limit);
        let next = if has_more {
            rows.last().map(RoomRow::cursor)
        } else {
            None
        };
        let rooms = rows
            .into_iter()
            .map(|row| row.into_room(caller))
            .collect::<Result<_>>()?;
        Ok(Self {
            rooms,
            total_unread,
            next,
            last_event_id,
        })
    }
}

/// Who a tombstone made by the message retention says deleted it.
pub const RETENTION: &str = "chat-server:retention";

/// Which messages an erasure makes tombstones.
#[derive(Debug, Clone, Copy)]
enum Erasing<'a> {
    WrittenBy(&'a UserId),
    WrittenBefore(Timestamp),
}

/// Which messages of a room to read; always returned ascending by seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRange {
    Newest,
    After(i64),
    Before(i64),
    /// About half before, the rest after, and the message at this seq.
    Around(i64),
}

#[derive(Debug)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    /// Older messages exist before the page.
    pub has_more: bool,
    /// For `Around`: whether newer messages exist after the page.
    pub has_newer: Option<bool>,
    /// The newest event of the answer's snapshot, as for a listing.
    pub last_event_id: i64,
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub body: MessageBody,
    pub client_id: Option<ClientId>,
    /// Uploads of the sender's into the room, not yet sent.
    pub attachments: Vec<AttachmentId>,
}

/// The result of a send: a new message, or the original of a retried `clientId`.
#[derive(Debug)]
pub enum Posted {
    Created(Message),
    Existing(Message),
}

/// Which events of the log a stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventScope {
    /// Every room (an admin's global stream).
    All,
    /// The rooms the user is a member of now, and changes about the user.
    MemberOf(UserId),
    /// One room.
    Room(RoomId),
}

/// One event of the log, with its JSON as it goes on the wire.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub id: i64,
    pub room_id: String,
    pub subject_id: Option<String>,
    pub data: String,
}

/// The SQL a backend replays the log with, by scope (`$1` after, then the
/// room or user for a scoped one, then the limit): for plan checks.
#[derive(Debug, Clone, Copy)]
pub struct ReplayQueries {
    pub all: &'static str,
    pub room: &'static str,
    pub member: &'static str,
}

impl ReplayQueries {
    pub fn of(backend: Backend) -> Self {
        use sql::Dialect;
        let member = match backend {
            Backend::Sqlite => sqlx::Sqlite::queries(),
            Backend::Postgres => sqlx::Postgres::queries(),
        };
        Self {
            all: sql::queries::EVENTS_ALL,
            room: sql::queries::EVENTS_OF_ROOM,
            member: member.events_of_member.as_str(),
        }
    }
}

/// The inbox's reads as each database runs them, for the plan test.
pub struct InboxQueries {
    /// Filtered listings: `[by status][by assignee: none, nobody, an agent]`.
    pub rooms: [[&'static str; 3]; 2],
    pub summary: &'static str,
    pub agents: &'static str,
}

impl InboxQueries {
    pub fn of(backend: Backend) -> Self {
        use sql::Dialect;
        let queries = match backend {
            Backend::Sqlite => sqlx::Sqlite::queries(),
            Backend::Postgres => sqlx::Postgres::queries(),
        };
        let rooms = [None, Some(ConversationStatus::Open)].map(|status| {
            let agent = Assignee::Agent(UserId::from_store(String::new()));
            [None, Some(Assignee::Nobody), Some(agent)]
                .map(|assignee| queries.inbox_rooms(&RoomFilter { status, assignee }))
        });
        Self {
            rooms,
            summary: queries.inbox_summary.as_str(),
            agents: sql::queries::AGENTS,
        }
    }
}

/// A search's statement as `backend` runs it, for the plan test.
pub fn search_statement(
    backend: Backend,
    language: &str,
    caller: &Caller,
    request: &SearchRequest,
) -> SearchStatement {
    sql::search_statement(backend, language, caller, request)
}

/// Which ids the log can still replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventBounds {
    /// The oldest event kept; `None` when every event was purged.
    pub oldest: Option<i64>,
    /// The newest id handed out (and committed: ids commit in order).
    pub newest: i64,
}

impl EventBounds {
    /// Whether every event after `id` is still in the log, and `id` was issued.
    pub fn can_resume_from(&self, id: i64) -> bool {
        let first_kept = self.oldest.unwrap_or(self.newest + 1);
        id <= self.newest && id >= first_kept - 1
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> Result<()>;

    async fn create_room(
        &self,
        caller: &Caller,
        name: &RoomName,
        members: &[UserId],
    ) -> Result<Room>;

    /// The room as the caller sees it; `NotFound` if absent or not visible.
    async fn room(&self, caller: &Caller, room: &RoomId) -> Result<Room>;

    /// The room's state; `NotFound` unless the caller may see the room: one
    /// index probe, for what needs no more than the answer (a typing notice).
    async fn room_state(&self, caller: &Caller, room: &RoomId) -> Result<RoomState>;

    /// Whether the caller may see the room now. Concurrent calls share one
    /// statement (a burst of stream opens reads its rooms at once).
    async fn may_see_room(&self, caller: &Caller, room: &RoomId) -> Result<bool>;

    /// The caller's rooms, newest activity first; an agent's, filtered
    /// (a filter for anyone else is the caller's to refuse).
    async fn rooms(
        &self,
        caller: &Caller,
        filter: &RoomFilter,
        limit: u32,
        after: Option<&RoomCursor>,
    ) -> Result<RoomPage>;

    /// A value that changes whenever anything in the caller's room listing
    /// may have: cheap (index lookups only), for `If-None-Match`.
    async fn rooms_version(&self, caller: &Caller) -> Result<String>;

    /// Admins; members of the room for themselves (which changes nothing),
    /// or for others if `rules` let them and the other never left the room.
    /// Adding a member twice changes nothing; a room of `max_members` takes
    /// no more (422); a closed room takes none (409).
    async fn add_member(
        &self,
        caller: &Caller,
        room: &RoomId,
        user: &UserId,
        rules: &MemberRules,
    ) -> Result<Room>;

    /// Admins close a room to new messages (`closed`), or reopen it; the
    /// state it is already in changes nothing.
    async fn set_closed(&self, caller: &Caller, room: &RoomId, closed: bool) -> Result<Room>;

    /// Admins delete a room: it is gone from every listing and route at
    /// once, with one `deleted` event; then its messages and earlier events
    /// go, `batch` rows to a statement. Deleting it again answers the same
    /// and finishes what an interrupted deletion left.
    async fn delete_room(&self, caller: &Caller, room: &RoomId, batch: u32) -> Result<DeletedRoom>;

    /// Admins, or the member themself (in a closed room too). Only an admin
    /// may put them back.
    async fn remove_member(&self, caller: &Caller, room: &RoomId, user: &UserId) -> Result<Room>;

    async fn messages(
        &self,
        caller: &Caller,
        room: &RoomId,
        range: MessageRange,
        limit: u32,
    ) -> Result<MessagePage>;

    /// Appends a message with the room's next seq and moves the author's cursor to it.
    async fn post_message(
        &self,
        caller: &Caller,
        room: &RoomId,
        message: &NewMessage,
    ) -> Result<Posted>;

    /// Replaces a message's body: its author's, within `edit_window` of
    /// sending it, or an admin's; not in a closed room. The body it already
    /// has changes nothing.
    async fn edit_message(
        &self,
        caller: &Caller,
        room: &RoomId,
        message: &MessageId,
        body: &MessageBody,
        edit_window: Duration,
    ) -> Result<Message>;

    /// Makes a message a tombstone (its body gone, from the log's events of
    /// it too): its author or an admin; in a closed room, an admin only.
    /// Deleting it again changes nothing.
    async fn delete_message(
        &self,
        caller: &Caller,
        room: &RoomId,
        message: &MessageId,
    ) -> Result<Message>;

    /// Makes every message written before `cutoff` (the message
    /// retention) a tombstone deleted by `RETENTION`, with its
    /// `message_deleted` event, `batch` messages to a transaction (so the
    /// event counter is never held for long); how many. (Erasing what one
    /// user wrote is a job: `erasures`.)
    async fn erase_messages_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64>;

    /// Moves the caller's cursor forward to `seq`, clamped to the newest message.
    async fn mark_read(&self, caller: &Caller, room: &RoomId, seq: i64) -> Result<ReadState>;

    /// Up to `limit` events of `scope` after `after`, oldest first.
    async fn events_after(
        &self,
        after: i64,
        scope: &EventScope,
        limit: u32,
    ) -> Result<Vec<StoredEvent>>;

    /// The relay's read of the whole log: up to `limit` events after
    /// `after`, on a connection of its own, so that no burst of stream opens
    /// or catch-ups queues ahead of live delivery.
    async fn relay_events_after(&self, after: i64, limit: u32) -> Result<Vec<StoredEvent>>;

    /// The log's events that carry any of `messages`, as they are now (an
    /// edit or deletion rewrites them), on the relay's connection.
    async fn message_events(&self, messages: &[MessageId]) -> Result<Vec<StoredEvent>>;

    async fn event_bounds(&self) -> Result<EventBounds>;

    /// The rooms each of `users` is a member of now, as (user, room) pairs.
    async fn rooms_of(&self, users: &[UserId]) -> Result<Vec<(UserId, RoomId)>>;

    /// Those of `users` who share a room with `user`.
    async fn room_mates(&self, user: &UserId, users: &[UserId]) -> Result<Vec<UserId>>;

    /// The rooms the user was a member of just after event `event`: the
    /// rooms now, with the joins and departures since undone.
    async fn member_rooms_at(&self, user: &UserId, event: i64) -> Result<Vec<RoomId>>;

    /// Deletes events created before `cutoff`; returns how many.
    /// Deletes the oldest events, in id order, up to the first one written
    /// at or after `cutoff`, `batch` at a time; how many it deleted.
    async fn purge_events(&self, cutoff: Timestamp, batch: u32) -> Result<u64>;

    /// Every event up to this id was purged by this process (another
    /// process's purge is not seen here).
    fn purged_up_to(&self) -> i64;

    /// Runs for ever, waking `wake` whenever another process may have written
    /// events (and whenever it may have missed such news), and handing
    /// `signals` what other processes sent with `send_signal`. A store that
    /// only one process writes returns at once.
    async fn watch_other_writers(
        &self,
        wake: Arc<Wake>,
        signals: tokio::sync::mpsc::Sender<String>,
    );

    /// Sends ephemeral signals (typing, presence: never logged) to the
    /// other processes on this database, in one statement, at most once:
    /// one whose listener is reconnecting misses them. A store one process
    /// owns sends nothing.
    async fn send_signals(&self, signals: &[String]) -> Result<()>;

    /// The connection pool now, for the metrics.
    fn pool_stats(&self) -> PoolStats;

    /// The webhooks' part of the store.
    fn webhooks(&self) -> &dyn WebhookStore;

    /// The erasure jobs' part of the store.
    fn erasures(&self) -> &dyn ErasureStore;

    /// The support inbox's part of the store.
    fn inbox(&self) -> &dyn InboxStore;

    /// The attachments' part of the store.
    fn attachments(&self) -> &dyn AttachmentStore;

    /// The message search's part of the store.
    fn search(&self) -> &dyn SearchStore;
}

/// Connections of a store's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// How to reach the database, from the settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// PostgreSQL's text search configuration for message search (`simple`,
    /// `english`, ...); SQLite's index knows no other than `simple`.
    pub search_language: String,
}

/// Which database a URL names: decided here alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> Result<Self, OpenError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else {
            Err(OpenError::Scheme)
        }
    }

    /// Its name, for logs (a URL may carry credentials).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgresql",
        }
    }
}

/// Opens the store the URL names, applying pending migrations. `wake` is
/// poked after every write commits.
pub async fn open(options: &StoreOptions, wake: Arc<Wake>) -> Result<Arc<dyn Store>, OpenError> {
    match Backend::of(&options.url)? {
        Backend::Postgres => {
            let store = PgStore::connect(options, wake).await?;
            store.migrate().await?;
            store.index_search().await?;
            Ok(Arc::new(store))
        }
        Backend::Sqlite => {
            let store = SqliteStore::connect(options, wake).await?;
            store.migrate().await?;
            store.index_search().await?;
            Ok(Arc::new(store))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("DATABASE_URL must start with sqlite:, postgres:// or postgresql://")]
    Scheme,
    #[error("could not open the database: {0}")]
    Connect(#[from] sqlx::Error),
    #[error("could not apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("search_language {0:?}: {1}")]
    SearchLanguage(String, String),
    #[error("could not create the database's directory: {0}")]
    Directory(#[from] std::io::Error),
}

/// One room row as both backends' room queries return it.
#[derive(sqlx::FromRow)]
struct RoomRow {
    id: String,
    name: String,
    created_at: i64,
    updated_at: i64,
    activity: i64,
    last_seq: i64,
    last_read_seq: i64,
    /// A JSON array of user ids, aggregated in SQL.
    member_ids: String,
    /// A JSON object of every reader's cursor in the room, by user id.
    read_cursors: String,
    /// Its last message.
    #[sqlx(flatten)]
    last_message: JoinedMessage,
    closed_at: Option<i64>,
    closed_by: Option<String>,
    /// Deleted messages past the caller's cursor: not unread any more.
    deleted_unread: i64,
    #[sqlx(flatten)]
    conversation: ConversationRow,
}

impl RoomRow {
    fn cursor(&self) -> RoomCursor {
        RoomCursor {
            activity: self.activity,
        }
    }

    /// The room as `caller` sees it: its conversation, to agents only.
    fn into_room(self, caller: &Caller) -> Result<Room> {
        let conversation = match caller.is_admin() {
            true => Some(Conversation::try_from(self.conversation)?),
            false => None,
        };
        let member_ids: Vec<String> = serde_json::from_str(&self.member_ids)
            .map_err(|e| Error::internal_from("room members are not a JSON list", e))?;
        let read_cursors: std::collections::BTreeMap<String, i64> =
            serde_json::from_str(&self.read_cursors)
                .map_err(|e| Error::internal_from("read cursors are not a JSON object", e))?;
        let last_message = self.last_message.into_message(&self.id);
        let room_id = RoomId::from_store(self.id);
        Ok(Room {
            id: room_id,
            name: self.name,
            member_ids: member_ids.into_iter().map(UserId::from_store).collect(),
            created_at: Timestamp::from_unix_ms(self.created_at),
            updated_at: Timestamp::from_unix_ms(self.updated_at),
            last_message,
            unread_count: Some(unread(
                self.last_seq,
                self.last_read_seq,
                self.deleted_unread,
            )),
            closed_at: self.closed_at.map(Timestamp::from_unix_ms),
            closed_by: self.closed_by.map(UserId::from_store),
            last_read_seq: Some(self.last_read_seq),
            read_cursors: read_cursors
                .into_iter()
                .map(|(user, seq)| (UserId::from_store(user), seq))
                .collect(),
            conversation,
        })
    }
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: String,
    room_id: String,
    seq: i64,
    author_id: String,
    body: String,
    client_id: Option<String>,
    created_at: i64,
    edited_at: Option<i64>,
    deleted_at: Option<i64>,
    deleted_by: Option<String>,
    /// A JSON array of its attachments, if it has any.
    attachments: Option<String>,
}

/// A message's columns as a `LEFT JOIN` of `messages` reads them (`msg_`
/// before each name): all `NULL` where there is none.
#[derive(sqlx::FromRow)]
struct JoinedMessage {
    msg_id: Option<String>,
    msg_seq: Option<i64>,
    msg_author_id: Option<String>,
    msg_body: Option<String>,
    msg_client_id: Option<String>,
    msg_created_at: Option<i64>,
    msg_edited_at: Option<i64>,
    msg_deleted_at: Option<i64>,
    msg_deleted_by: Option<String>,
    msg_attachments: Option<String>,
}

impl JoinedMessage {
    /// The message of room `room_id`, if the join found one.
    fn into_message(self, room_id: &str) -> Option<Message> {
        let row = MessageRow {
            id: self.msg_id?,
            room_id: room_id.to_owned(),
            seq: self.msg_seq?,
            author_id: self.msg_author_id?,
            body: self.msg_body?,
            client_id: self.msg_client_id,
            created_at: self.msg_created_at?,
            edited_at: self.msg_edited_at,
            deleted_at: self.msg_deleted_at,
            deleted_by: self.msg_deleted_by,
            attachments: self.msg_attachments,
        };
        Some(Message::from(row))
    }
}

impl From<MessageRow> for Message {
    fn from(row: MessageRow) -> Self {
        Message {
            id: MessageId::from_store(row.id),
            room_id: RoomId::from_store(row.room_id),
            seq: row.seq,
            author_id: UserId::from_store(row.author_id),
            body: row.body,
            client_id: row.client_id,
            created_at: Timestamp::from_unix_ms(row.created_at),
            edited_at: row.edited_at.map(Timestamp::from_unix_ms),
            deleted_at: row.deleted_at.map(Timestamp::from_unix_ms),
            deleted_by: row.deleted_by.map(UserId::from_store),
            // Written by `insert_messages` from the same type: nothing
            // else would be there.
            attachments: row
                .attachments
                .and_then(|json| serde_json::from_str(&json).ok())
                .unwrap_or_default(),
        }
    }
}

/// A cursor's unread count: the messages past it, but for the deleted ones.
/// A user's own messages are never past their cursor (posting moves it).
fn unread(last_seq: i64, last_read_seq: i64, deleted_past_cursor: i64) -> i64 {
    (last_seq - last_read_seq - deleted_past_cursor).max(0)
}

/// Turns the `limit + 1` rows a page query fetched into a page and whether more exist.
fn page_of<T>(mut rows: Vec<T>, limit: u32) -> (Vec<T>, bool) {
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    (rows, has_more)
}

/// The rooms a user was in before `changes` (their `room` events, newest
/// first, as `(room id, event JSON)`), given the rooms they are in now.
fn rooms_before(now: Vec<String>, changes: Vec<(String, String)>) -> Result<Vec<RoomId>> {
    #[derive(serde::Deserialize)]
    struct Change {
        change: RoomChange,
    }
    let mut rooms: std::collections::HashSet<String> = now.into_iter().collect();
    for (room, data) in changes {
        let Change { change } = serde_json::from_str(&data)
            .map_err(|e| Error::internal_from("an event about a member is not a room change", e))?;
        match change {
            RoomChange::MemberAdded | RoomChange::Created => rooms.remove(&room),
            RoomChange::MemberRemoved => rooms.insert(room),
            // Not about a member (and never logged with one as subject).
            RoomChange::Closed | RoomChange::Reopened | RoomChange::Deleted => false,
        };
    }
    Ok(rooms.into_iter().map(RoomId::from_store).collect())
}

/// What a resend of a `clientId` gets: the original if the body matches, else 409.
/// An original edited or deleted since answers as it is now: its first body
/// is gone, so nothing can be compared, and the send did happen.
fn resend(existing: Message, message: &NewMessage) -> Result<Posted> {
    if existing.body == message.body.as_str()
        || existing.edited_at.is_some()
        || existing.is_deleted()
    {
        Ok(Posted::Existing(existing))
    } else {
        Err(Error::conflict(
            "client_id_conflict",
            "this clientId was already used for a different message",
        ))
    }
}

/// A place in the activity order for a room not yet given its first event:
/// below every real one (event ids are positive), and unique but for odds of
/// 2^-62, so concurrent creations never wait on each other's index entry.
fn pending_activity() -> i64 {
    let (_, random) = uuid::Uuid::now_v7().as_u64_pair();
    -1 - (random & (i64::MAX as u64)) as i64
}

/// The members a new room starts with: the creator first, then the others once each.
fn initial_members<'a>(creator: &'a UserId, others: &'a [UserId]) -> Vec<&'a UserId> {
    let mut members = vec![creator];
    for user in others {
        if !members.contains(&user) {
            members.push(user);
        }
    }
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rooms_before_a_users_changes_undo_them_newest_first() {
        let event = |change: &str| format!(r#"{{"type":"room","change":"{change}","room":{{}}}}"#);
        let now = vec!["a".to_owned(), "b".to_owned()];
        // Since then: left c, joined b, left b, joined b again.
        let changes = vec![
            ("b".to_owned(), event("member_added")),
            ("b".to_owned(), event("member_removed")),
            ("b".to_owned(), event("member_added")),
            ("c".to_owned(), event("member_removed")),
        ];
        let mut before: Vec<String> = rooms_before(now, changes)
            .unwrap()
            .into_iter()
            .map(|room| room.as_str().to_owned())
            .collect();
        before.sort();
        assert_eq!(before, ["a", "c"]);
        assert!(rooms_before(vec![], vec![("x".to_owned(), "{}".to_owned())]).is_err());
    }
}
