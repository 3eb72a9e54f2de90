//! What the support inbox keeps in the store: each room's conversation
//! state (migration 0014), which agents set and time moves on. The
//! queries, for both databases, are in `sql/inbox.rs`.

use crate::error::Result;
use crate::model::{Caller, ConversationStatus, Room, RoomId, Timestamp};
use async_trait::async_trait;

/// Who the log says woke a snoozed conversation: no user, the schedule.
pub const SNOOZE: &str = "chat-server:snooze";

#[async_trait]
pub trait InboxStore: Send + Sync {
    /// Agents (admins) set a conversation's status, with `snoozed_until`
    /// for `snoozed` (checked by the caller: in the future, and only
    /// then); one `conversation_updated` event, unless nothing changed.
    async fn set_conversation_status(
        &self,
        caller: &Caller,
        room: &RoomId,
        status: ConversationStatus,
        snoozed_until: Option<Timestamp>,
    ) -> Result<Room>;

    /// Opens the snoozed conversations whose time is up by `now`, up to
    /// `batch` in one transaction, each with one `conversation_updated`
    /// by `SNOOZE`; how many. Rows are locked as they are read, so of
    /// instances waking at once each conversation is opened by one.
    async fn wake_snoozed(&self, now: Timestamp, batch: u32) -> Result<u64>;
}
