//! The domain: ids and validated inputs (parsed once, at the edge), and the
//! `Room` / `Message` shapes that the API and the streams put on the wire.

use serde::{Serialize, Serializer};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

/// Why an input was refused: a stable snake_case code and a sentence for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Checks the rules every stored string shares: length in characters, and no
/// NUL (PostgreSQL `text` cannot hold it, so neither store accepts it).
fn check_text(
    value: &str,
    field: &str,
    max_chars: usize,
    code: &'static str,
) -> Result<(), Invalid> {
    if value.trim().is_empty() {
        return Err(Invalid::new(code, format!("{field} must not be blank")));
    }
    if value.contains('\0') {
        return Err(Invalid::new(
            code,
            format!("{field} must not contain NUL characters"),
        ));
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(Invalid::new(
            code,
            format!("{field} must be at most {max_chars} characters, got {chars}"),
        ));
    }
    Ok(())
}

/// Rejects control characters in identifiers, which are never meant to be shown
/// as text with line breaks and would only make logs and URLs ambiguous.
fn check_no_control(value: &str, field: &str, code: &'static str) -> Result<(), Invalid> {
    if value.chars().any(char::is_control) {
        return Err(Invalid::new(
            code,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(())
}

/// Text a client chose, as we show it: without control characters nor the
/// invisible ones that reorder or hide text (bidirectional overrides,
/// zero-width characters, line and paragraph separators), trimmed and cut
/// to `max_chars`.
pub fn visible_text(raw: &str, max_chars: usize) -> String {
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}')
    };
    let text: String = raw
        .chars()
        .filter(|c| !invisible(*c))
        .collect::<String>()
        .trim()
        .chars()
        .take(max_chars)
        .collect();
    text.trim_end().to_owned()
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// A user, as named by the `sub` claim of their token. Opaque to us.
    UserId
);
string_newtype!(
    /// A room's id: a UUID (v7, so ids sort by creation time) in its text form.
    RoomId
);
string_newtype!(
    /// A message's id: a UUID v7 in its text form.
    MessageId
);
string_newtype!(
    /// A room's display name: 1 to 100 characters, not blank.
    RoomName
);
string_newtype!(
    /// A message's text: 1 to 4000 characters, not blank.
    MessageBody
);
string_newtype!(
    /// An uploaded file's id: a UUID v7 in its text form.
    AttachmentId
);
string_newtype!(
    /// The sender's own id for a message, so a retried send is recognised: at most 64 characters.
    ClientId
);

impl UserId {
    pub const MAX_CHARS: usize = 128;

    pub fn parse(value: impl Into<String>) -> Result<Self, Invalid> {
        let value = value.into();
        check_text(&value, "user id", Self::MAX_CHARS, "invalid_user_id")?;
        check_no_control(&value, "user id", "invalid_user_id")?;
        Ok(Self(value))
    }

    pub(crate) fn from_store(value: String) -> Self {
        Self(value)
    }
}

impl RoomId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// Accepts only the canonical hyphenated lower-case form, so one room has one id.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        match uuid::Uuid::try_parse(value) {
            Ok(id) if id.to_string() == value => Ok(Self(value.to_owned())),
            _ => Err(Invalid::new(
                "invalid_room_id",
                "room id must be a lower-case hyphenated UUID",
            )),
        }
    }

    /// Wraps an id read back from the store, which only ever holds valid ones.
    pub(crate) fn from_store(value: String) -> Self {
        Self(value)
    }
}

impl Default for RoomId {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// Accepts only the canonical hyphenated lower-case form, as for rooms.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        match uuid::Uuid::try_parse(value) {
            Ok(id) if id.to_string() == value => Ok(Self(value.to_owned())),
            _ => Err(Invalid::new(
                "invalid_message_id",
                "message id must be a lower-case hyphenated UUID",
            )),
        }
    }

    pub(crate) fn from_store(value: String) -> Self {
        Self(value)
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl AttachmentId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// Accepts only the canonical hyphenated lower-case form, as for rooms.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        match uuid::Uuid::try_parse(value) {
            Ok(id) if id.to_string() == value => Ok(Self(value.to_owned())),
            _ => Err(Invalid::new(
                "invalid_attachment_id",
                "attachment id must be a lower-case hyphenated UUID",
            )),
        }
    }

    pub(crate) fn from_store(value: String) -> Self {
        Self(value)
    }
}

impl Default for AttachmentId {
    fn default() -> Self {
        Self::new()
    }
}

impl<'de> serde::Deserialize<'de> for AttachmentId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

impl RoomName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(value: impl Into<String>) -> Result<Self, Invalid> {
        let value = value.into();
        check_text(&value, "name", Self::MAX_CHARS, "invalid_name")?;
        check_no_control(&value, "name", "invalid_name")?;
        Ok(Self(value))
    }
}

impl MessageBody {
    pub const MAX_CHARS: usize = 4000;

    /// Line breaks and any other Unicode are kept byte-exact; only NUL is refused.
    pub fn parse(value: impl Into<String>) -> Result<Self, Invalid> {
        let value = value.into();
        check_text(&value, "body", Self::MAX_CHARS, "invalid_body")?;
        Ok(Self(value))
    }

    /// The body of a message that is its attachments alone.
    pub fn empty() -> Self {
        Self(String::new())
    }
}

impl ClientId {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(value: impl Into<String>) -> Result<Self, Invalid> {
        let value = value.into();
        check_text(&value, "clientId", Self::MAX_CHARS, "invalid_client_id")?;
        check_no_control(&value, "clientId", "invalid_client_id")?;
        Ok(Self(value))
    }
}

/// What a caller may do beyond their own rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize, Default, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    #[default]
    User,
}

/// The authenticated user behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub id: UserId,
    pub role: Role,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// A point in time, kept as Unix milliseconds (the stores' representation) and
/// written as RFC 3339 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ToSchema)]
#[schema(value_type = String, format = DateTime, example = "2026-11-27T12:00:00.123Z")]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Self((nanos / 1_000_000) as i64)
    }

    pub fn from_unix_ms(ms: i64) -> Self {
        Self(ms)
    }

    pub fn unix_ms(self) -> i64 {
        self.0
    }

    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default()
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    /// From RFC 3339, as written; to the millisecond.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let time = OffsetDateTime::parse(&text, &Rfc3339).map_err(|_| {
            serde::de::Error::custom("a time must be RFC 3339, as 2026-11-27T12:00:00Z")
        })?;
        i64::try_from(time.unix_timestamp_nanos() / 1_000_000)
            .map(Self)
            .map_err(|_| serde::de::Error::custom("that time is out of range"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: MessageId,
    pub room_id: RoomId,
    pub seq: i64,
    pub author_id: UserId,
    pub body: String,
    pub client_id: Option<String>,
    pub created_at: Timestamp,
    /// When the body was last replaced, if ever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Timestamp>,
    /// A deleted message is a tombstone: its body is empty, and these say
    /// when and by whom.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<UserId>,
    /// The files sent with it, in the order given; none once it is deleted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// A file a member uploaded into a room, as its message carries it: what a
/// client needs to show it before fetching a byte. Its content is at
/// `GET /api/chat/attachments/{id}`, its thumbnail (if it has one) at
/// `.../thumbnail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub id: AttachmentId,
    /// The uploader's file name, cleaned (no paths, controls or bidi marks).
    pub name: String,
    /// In bytes.
    pub size: i64,
    /// Sniffed from the bytes, never taken from the uploader.
    pub content_type: String,
    /// An image's size in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// A small image of it, for images within the pixel limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<Thumbnail>,
}

/// An image attachment's thumbnail, in pixels (PNG, at most 320 on a side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct Thumbnail {
    pub width: u32,
    pub height: u32,
}

impl Message {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// A room as one caller sees it: `unread_count` is that caller's own. In
/// stream events, which many viewers share, it is left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    pub id: RoomId,
    pub name: String,
    pub member_ids: Vec<UserId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_message: Option<Message>,
    /// Set while the room is closed (no new messages), with who closed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_count: Option<i64>,
    /// The caller's read cursor: the seq they have read up to. The unread
    /// count is the messages past it but for the deleted ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_read_seq: Option<i64>,
    /// How far each reader of the room has read (its members, and admins
    /// who read it), by user id: what "seen" receipts are computed from, with
    /// the `read` events keeping it current.
    #[schema(value_type = std::collections::BTreeMap<String, i64>)]
    pub read_cursors: std::collections::BTreeMap<UserId, i64>,
    /// The room as a support conversation: for agents (admins) only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Conversation>,
}

/// Where a support conversation stands, as agents set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    Open,
    /// Waiting on the customer.
    Pending,
    Resolved,
    /// Out of the way until `snoozedUntil`.
    Snoozed,
}

impl ConversationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Pending => "pending",
            Self::Resolved => "resolved",
            Self::Snoozed => "snoozed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Open, Self::Pending, Self::Resolved, Self::Snoozed]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// A room as a support conversation: what agents (admins) see of it, and
/// customers never do. Its rules (what a message, a status or the clock
/// changes) are the methods below, so both stores follow the same ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    pub status: ConversationStatus,
    /// Set while `snoozed`.
    pub snoozed_until: Option<Timestamp>,
    /// Set while `resolved`: since when.
    pub resolved_at: Option<Timestamp>,
    /// The agent working on it, if any.
    #[schema(value_type = Option<String>)]
    pub assignee_id: Option<UserId>,
    /// When they got it.
    pub assigned_at: Option<Timestamp>,
    /// When this conversation began: its room's creation, or the moment
    /// it left `resolved` (a customer wrote again, or an agent reopened it).
    pub started_at: Timestamp,
    /// The first agent message after a customer's, in this conversation.
    pub first_response_at: Option<Timestamp>,
    pub last_customer_message_at: Option<Timestamp>,
    /// The oldest customer message no agent has answered yet: how long the
    /// customer has waited. `null` once an agent has replied.
    pub waiting_since: Option<Timestamp>,
}

/// A status set that changed something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChanged {
    /// If the conversation was resolved now: how long it took, in ms.
    pub resolved_after_ms: Option<i64>,
}

/// What one `conversation_updated` event changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationChange {
    /// Its status (or snooze time).
    Status,
    /// Its assignee: another agent, or none.
    Assignee,
}

impl Conversation {
    /// Sets the status (and the snooze time that goes with it) at `now`;
    /// `None` if it stood so already. Leaving `resolved` begins a new
    /// conversation.
    pub fn set_status(
        &mut self,
        status: ConversationStatus,
        snoozed_until: Option<Timestamp>,
        now: Timestamp,
    ) -> Option<StatusChanged> {
        if self.status == status && self.snoozed_until == snoozed_until {
            return None;
        }
        let was = self.status;
        self.status = status;
        self.snoozed_until = snoozed_until;
        if was == ConversationStatus::Resolved && status != ConversationStatus::Resolved {
            self.started_at = now;
            self.first_response_at = None;
        }
        if status == ConversationStatus::Resolved {
            if was != ConversationStatus::Resolved {
                // A resolution ends the customer's wait, answered or not:
                // the next conversation's is its own.
                self.waiting_since = None;
                self.resolved_at = Some(now);
                return Some(StatusChanged {
                    resolved_after_ms: Some(now.unix_ms() - self.started_at.unix_ms()),
                });
            }
        } else {
            self.resolved_at = None;
        }
        Some(StatusChanged {
            resolved_after_ms: None,
        })
    }

    /// Gives it to `agent` (or to nobody) at `now`; whether that changed
    /// anything.
    pub fn assign(&mut self, agent: Option<UserId>, now: Timestamp) -> bool {
        if self.assignee_id == agent {
            return false;
        }
        self.assigned_at = agent.as_ref().map(|_| now);
        self.assignee_id = agent;
        true
    }

    /// A customer wrote at `now`: they wait for an agent, and a
    /// conversation that was not open is again. Whether it was reopened.
    pub fn customer_wrote(&mut self, now: Timestamp) -> bool {
        let reopened = self.status != ConversationStatus::Open;
        if reopened {
            self.set_status(ConversationStatus::Open, None, now);
        }
        self.last_customer_message_at = Some(now);
        self.waiting_since.get_or_insert(now);
        reopened
    }

    /// An agent wrote at `now`: the customer waits no longer. If it is the
    /// conversation's first response, how long the customer waited (ms).
    pub fn agent_wrote(&mut self, now: Timestamp) -> Option<i64> {
        let since = self.waiting_since.take()?;
        if self.first_response_at.is_some() {
            return None;
        }
        self.first_response_at = Some(now);
        Some(now.unix_ms() - since.unix_ms())
    }
}

/// The counts an agent's inbox tabs show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxSummary {
    /// Open conversations assigned to the caller.
    pub mine: InboxTab,
    /// Open conversations assigned to nobody.
    pub unassigned: InboxTab,
    /// Every open conversation.
    pub all: InboxTab,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxTab {
    /// Open conversations.
    pub open: i64,
    /// The messages in them the caller has not read.
    pub unread: i64,
}

/// A caller's read cursor in a room, after it moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadState {
    pub room_id: RoomId,
    pub user_id: UserId,
    pub last_read_seq: i64,
    pub unread_count: i64,
}

/// What changed about a room, in a `room` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomChange {
    Created,
    MemberAdded,
    MemberRemoved,
    /// An admin closed the room: it takes no new messages.
    Closed,
    Reopened,
    /// An admin deleted the room, its messages and its events: the last
    /// event of the room, and the only one the log keeps of it.
    Deleted,
}

/// What is left of a deleted room: who deleted it, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRoom {
    pub room_id: RoomId,
    pub deleted_at: Timestamp,
    pub deleted_by: UserId,
}

/// The `data` of a stream event that the event log keeps (heartbeats, resets
/// and `auth_expired` belong to one connection and are never logged).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventData<'a> {
    Message {
        message: &'a Message,
    },
    /// The message's new body (its `seq` and `id` unchanged).
    MessageEdited {
        message: &'a Message,
    },
    /// The message, now a tombstone.
    MessageDeleted {
        message: &'a Message,
    },
    #[serde(rename_all = "camelCase")]
    Read {
        room_id: &'a RoomId,
        user_id: &'a UserId,
        last_read_seq: i64,
    },
    #[serde(rename_all = "camelCase")]
    Room {
        room: RoomInEvent<'a>,
        change: RoomChange,
        /// The member added or removed.
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<&'a UserId>,
    },
    /// A conversation's new state, and the agent who changed it: for
    /// agents' streams only (see `CONVERSATION_UPDATED`).
    #[serde(rename_all = "camelCase")]
    ConversationUpdated {
        room_id: &'a RoomId,
        conversation: &'a Conversation,
        change: ConversationChange,
        changed_by: &'a UserId,
    },
}

/// How a `conversation_updated` event's JSON starts (the tag is written
/// first): the relay tells agents-only events by it.
pub const CONVERSATION_UPDATED: &str = r#"{"type":"conversation_updated""#;

impl<'a> EventData<'a> {
    /// The message an event carries, if it carries one (a `room` event, its
    /// room's last): the log keeps it beside the event, so an edit or
    /// deletion finds the events to rewrite.
    pub fn message_id(&self) -> Option<&'a MessageId> {
        match self {
            Self::Message { message }
            | Self::MessageEdited { message }
            | Self::MessageDeleted { message } => Some(&message.id),
            Self::Room { room, .. } => room.last_message.map(|message| &message.id),
            Self::Read { .. } | Self::ConversationUpdated { .. } => None,
        }
    }

    /// A `room` event: `user` is the member added or removed.
    pub fn room(room: &'a Room, change: RoomChange, user: Option<&'a UserId>) -> Self {
        Self::Room {
            room: RoomInEvent {
                id: &room.id,
                name: &room.name,
                member_ids: (change == RoomChange::Created).then_some(room.member_ids.as_slice()),
                created_at: room.created_at,
                updated_at: room.updated_at,
                last_message: room.last_message.as_ref(),
                closed_at: room.closed_at,
            },
            change,
            user_id: user,
        }
    }
}

/// The `data` of an ephemeral signal: sent to live streams, never logged,
/// so with no id (see `events::signals`).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignalData<'a> {
    /// `user` is typing in `room` for `expires_in_ms` unless renewed, or
    /// (`typing: false`) stopped.
    #[serde(rename_all = "camelCase")]
    Typing {
        room_id: &'a RoomId,
        user_id: &'a UserId,
        typing: bool,
        expires_in_ms: u64,
    },
    /// Whether `user` is online; of two about one user, the higher
    /// `version` is the newer.
    #[serde(rename_all = "camelCase")]
    Presence {
        user_id: &'a UserId,
        online: bool,
        version: i64,
    },
}

/// A room as a `room` event shows it to all its viewers: nobody's unread
/// count, and the members listed only when it is created. A membership
/// change names the one member instead, so its cost does not grow with the
/// room; whoever needs the whole list fetches the room.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomInEvent<'a> {
    pub id: &'a RoomId,
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_ids: Option<&'a [UserId]>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_message: Option<&'a Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolving_measures_the_conversation_and_leaving_resolved_begins_a_new_one() {
        let at = Timestamp::from_unix_ms;
        let mut conversation = Conversation {
            status: ConversationStatus::Open,
            snoozed_until: None,
            resolved_at: None,
            assignee_id: None,
            assigned_at: None,
            started_at: at(1_000),
            first_response_at: Some(at(2_000)),
            last_customer_message_at: Some(at(1_500)),
            waiting_since: None,
        };
        // The customer thanks, the agent resolves without a reply.
        assert!(!conversation.customer_wrote(at(50_000)));
        let resolved = conversation.set_status(ConversationStatus::Resolved, None, at(61_000));
        assert_eq!(resolved.and_then(|set| set.resolved_after_ms), Some(60_000));
        assert_eq!(conversation.resolved_at, Some(at(61_000)));
        assert_eq!(conversation.waiting_since, None);
        // Resolved again: nothing changes, nothing is measured twice.
        assert_eq!(
            conversation.set_status(ConversationStatus::Resolved, None, at(70_000)),
            None
        );
        let pending = conversation.set_status(ConversationStatus::Pending, None, at(80_000));
        assert_eq!(pending.and_then(|set| set.resolved_after_ms), None);
        assert_eq!(conversation.started_at, at(80_000));
        assert_eq!(conversation.first_response_at, None);
        assert_eq!(conversation.resolved_at, None);
        // Her next message's wait is measured from it, not from her thanks.
        conversation.customer_wrote(at(90_000));
        assert_eq!(conversation.agent_wrote(at(90_500)), Some(500));
        // A snooze's time is a change of its own; pending to snoozed keeps
        // the conversation.
        let until = Some(at(99_000));
        assert!(
            conversation
                .set_status(ConversationStatus::Snoozed, until, at(81_000))
                .is_some()
        );
        assert!(
            conversation
                .set_status(ConversationStatus::Snoozed, Some(at(98_000)), at(82_000))
                .is_some()
        );
        assert_eq!(conversation.started_at, at(80_000));
    }

    #[test]
    fn room_names_are_one_to_a_hundred_characters() {
        assert!(RoomName::parse("a").is_ok());
        assert!(RoomName::parse("é".repeat(100)).is_ok());
        assert!(RoomName::parse("é".repeat(101)).is_err());
        assert!(RoomName::parse("").is_err());
        assert!(RoomName::parse("   ").is_err());
    }

    #[test]
    fn message_bodies_keep_line_breaks_but_refuse_nul() {
        assert!(MessageBody::parse("line one\r\nline two").is_ok());
        assert!(MessageBody::parse("x".repeat(4000)).is_ok());
        assert!(MessageBody::parse("x".repeat(4001)).is_err());
        assert_eq!(
            MessageBody::parse("a\0b").map_err(|e| e.code),
            Err("invalid_body")
        );
        assert!(MessageBody::parse("\n\t ").is_err());
    }

    #[test]
    fn room_ids_must_be_canonical_uuids() {
        let id = RoomId::new();
        assert_eq!(RoomId::parse(id.as_str()), Ok(id.clone()));
        assert!(RoomId::parse(&id.as_str().to_uppercase()).is_err());
        assert!(RoomId::parse("1; DROP TABLE rooms").is_err());
        assert!(RoomId::parse("").is_err());
    }

    #[test]
    fn user_ids_refuse_control_characters() {
        assert!(UserId::parse("alice@example.com").is_ok());
        assert!(UserId::parse("ali\nce").is_err());
        assert!(UserId::parse("x".repeat(129)).is_err());
    }

    #[test]
    fn logged_events_are_tagged_by_type_in_camel_case() {
        let room = RoomId::new();
        let user = UserId::parse("u1").unwrap();
        let read = EventData::Read {
            room_id: &room,
            user_id: &user,
            last_read_seq: 3,
        };
        assert_eq!(
            serde_json::to_value(&read).unwrap(),
            serde_json::json!({"type": "read", "roomId": room, "userId": "u1", "lastReadSeq": 3})
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(
            Timestamp::from_unix_ms(1_700_000_000_123).to_rfc3339(),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            Timestamp::from_unix_ms(0).to_rfc3339(),
            "1970-01-01T00:00:00Z"
        );
    }
}
