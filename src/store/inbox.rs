//! What the support inbox keeps in the store: each room's conversation
//! (migrations 0014 and 0015), which agents and time change, and the
//! agents the server has learned. The queries, for both databases, are in
//! `sql/inbox.rs`.

use crate::error::{Error, Result};
use crate::model::{
    Caller, Conversation, ConversationStatus, InboxSummary, Room, RoomId, Timestamp, UserId,
};
use async_trait::async_trait;

/// Who the log says woke a snoozed conversation: no user, the schedule.
pub const SNOOZE: &str = "chat-server:snooze";
/// Who the log says assigned a conversation by itself.
pub const AUTO_ASSIGN: &str = "chat-server:auto-assign";

#[async_trait]
pub trait InboxStore: Send + Sync {
    /// Agents (admins) change a conversation: its status (with the snooze
    /// time, checked by the caller: in the future, and only for
    /// `snoozed`), its assignee, or both. One `conversation_updated` event
    /// for each that changed; an assignee who is not an agent is refused.
    async fn change_conversation(
        &self,
        caller: &Caller,
        room: &RoomId,
        changes: &ConversationChanges,
    ) -> Result<Room>;

    /// Opens the snoozed conversations whose time is up by `now`, up to
    /// `batch` in one transaction, each with one `conversation_updated`
    /// by `SNOOZE`; how many. Rows are locked as they are read, so of
    /// instances waking at once each conversation is opened by one.
    async fn wake_snoozed(&self, now: Timestamp, batch: u32) -> Result<u64>;

    /// Whether auto-assignment has work: an open conversation whose
    /// customer waits and that no agent has, or (with `reassign_before`)
    /// has had since before it while the customer waited since before it.
    /// A read of `rooms_waiting`, made before any lock.
    async fn assignments_due(&self, reassign_before: Option<Timestamp>) -> Result<bool>;

    /// Auto-assignment's pass: locks the `online` agents' rows, then up to
    /// `batch` of the conversations `assignments_due` looks for, and gives
    /// them out by `store::assign`'s rules, none past `cap` open ones per
    /// agent; one `conversation_updated` (`change: assignee`, by
    /// `AUTO_ASSIGN`) for each given or taken back. How many. Of instances
    /// at it at once, the agents' locks make one wait for the other.
    async fn auto_assign(
        &self,
        online: &[UserId],
        cap: u32,
        reassign_before: Option<Timestamp>,
        batch: u32,
    ) -> Result<u64>;

    /// Notes `agent` (a caller with the admin role) and the name their
    /// token gave, if it gave one.
    async fn learn_agent(&self, agent: &UserId, name: Option<&str>) -> Result<()>;

    /// Forgets agent `agent` (no longer one; an admin who signs in again is
    /// noted again); whether they were one. Their conversations stay
    /// assigned to them until an agent changes it.
    async fn forget_agent(&self, agent: &UserId) -> Result<bool>;

    /// Every agent learned, by id, with their open conversations.
    async fn agents(&self) -> Result<Vec<Agent>>;

    /// The inbox's tabs for `agent`: open conversations assigned to them,
    /// to nobody, and all, each with the unread messages they hold for
    /// `agent`. One statement, of the open conversations only.
    async fn inbox_summary(&self, agent: &Caller) -> Result<InboxSummary>;

    /// How many conversations stand open, pending and snoozed.
    async fn unresolved_counts(&self) -> Result<Vec<(ConversationStatus, i64)>>;
}

/// What an agent's PATCH asks to change; `None` leaves a part as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationChanges {
    pub status: Option<(ConversationStatus, Option<Timestamp>)>,
    /// `Some(None)` unassigns.
    pub assignee: Option<Option<UserId>>,
}

/// An agent as the store knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: UserId,
    pub name: Option<String>,
    pub open_conversations: i64,
}

/// Which rooms an agent's listing shows (all, when nothing is set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomFilter {
    pub status: Option<ConversationStatus>,
    pub assignee: Option<Assignee>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    Nobody,
    Agent(UserId),
}

impl RoomFilter {
    pub fn is_empty(&self) -> bool {
        self.status.is_none() && self.assignee.is_none()
    }
}

/// A room's conversation columns, as every query that reads them names
/// them (`queries::CONVERSATION_COLUMNS`).
#[derive(sqlx::FromRow)]
pub(super) struct ConversationRow {
    status: String,
    snoozed_until: Option<i64>,
    resolved_at: Option<i64>,
    assignee_id: Option<String>,
    assigned_at: Option<i64>,
    started_at: i64,
    first_response_at: Option<i64>,
    last_customer_message_at: Option<i64>,
    waiting_since: Option<i64>,
}

impl TryFrom<ConversationRow> for Conversation {
    type Error = Error;

    fn try_from(row: ConversationRow) -> Result<Self> {
        let time = |ms: Option<i64>| ms.map(Timestamp::from_unix_ms);
        Ok(Self {
            status: ConversationStatus::parse(&row.status).ok_or_else(|| {
                Error::internal(format!("unknown conversation status `{}`", row.status))
            })?,
            snoozed_until: time(row.snoozed_until),
            resolved_at: time(row.resolved_at),
            assignee_id: row.assignee_id.map(UserId::from_store),
            assigned_at: time(row.assigned_at),
            started_at: Timestamp::from_unix_ms(row.started_at),
            first_response_at: time(row.first_response_at),
            last_customer_message_at: time(row.last_customer_message_at),
            waiting_since: time(row.waiting_since),
        })
    }
}
