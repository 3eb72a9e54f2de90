//! What webhooks keep in the store: the endpoints (each with its cursors
//! into the event log and the unseen notices, its retry state and its
//! lease), the unseen notices, and when each user last went offline.
//! The queries, for both databases, are in `sql/webhooks.rs`.

use crate::error::{Error, Result};
use crate::model::{Message, MessageId, RoomId, Timestamp, UserId};
use async_trait::async_trait;

/// A registered endpoint, as stored. Not `Debug`: it holds the secret, and
/// its URL may hold a credential, and neither may reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    /// `None`: every room.
    pub room_ids: Option<Vec<String>>,
    pub secret: String,
    /// The secret before the last rotation, and until when it signs too.
    pub previous_secret: Option<(String, Timestamp)>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub cursors: Cursors,
    pub state: WebhookState,
    /// The first failed attempt at the delivery now due, and how many since.
    pub failing_since: Option<Timestamp>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
}

/// How far an endpoint has acknowledged: the last event of the log, and
/// the last unseen notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursors {
    pub event: i64,
    pub notice: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookState {
    /// Delivered to, or retried.
    Active,
    /// Its retries gave up (after the horizon): skipped until resumed.
    Failing,
}

impl WebhookState {
    fn parse(text: &str) -> Result<Self> {
        match text {
            "active" => Ok(Self::Active),
            "failing" => Ok(Self::Failing),
            other => Err(Error::internal(format!("unknown webhook state `{other}`"))),
        }
    }
}

/// A new endpoint, its values checked (`webhooks::endpoints`).
#[derive(Clone)]
pub struct NewWebhook {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub room_ids: Option<Vec<String>>,
    pub secret: String,
}

/// What an update changes; `None` leaves a value as it is.
#[derive(Clone, Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// `Some(None)`: every room again.
    pub room_ids: Option<Option<Vec<String>>>,
}

/// What a failed attempt left: the endpoint's retry state after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub failing_since: Timestamp,
    pub attempts: i64,
}

/// One event of the log, as a delivery carries it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoggedEvent {
    pub id: i64,
    pub room_id: String,
    pub created_at: i64,
    pub data: String,
}

/// An unseen notice; its message as it is now (`None` once its room's
/// deletion removed it).
#[derive(Debug, Clone)]
pub struct Notice {
    pub id: i64,
    pub room_id: RoomId,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub message: Option<Message>,
}

/// A notice the sweep raises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotice {
    pub room_id: RoomId,
    pub message_id: MessageId,
    pub user_id: UserId,
}

/// A member of a room, for the unseen sweep.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Reader {
    pub room_id: String,
    pub user_id: String,
    pub joined_at: i64,
    pub last_read_seq: i64,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a new endpoint; it is told of what happens from now on. With
    /// `most` endpoints already, none (422 `too_many_webhooks`): counted
    /// under a lock, so concurrent creations never pass the cap.
    async fn create_webhook(&self, new: &NewWebhook, most: usize) -> Result<Webhook>;

    /// Every endpoint, oldest first.
    async fn webhooks(&self) -> Result<Vec<Webhook>>;

    /// `NotFound` if there is none of that id.
    async fn webhook(&self, id: &str) -> Result<Webhook>;

    async fn update_webhook(&self, id: &str, change: &WebhookChange) -> Result<Webhook>;

    async fn delete_webhook(&self, id: &str) -> Result<()>;

    /// Signs with `secret` from now on, and with the one before too until `previous_until`.
    async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret: &str,
        previous_until: Timestamp,
    ) -> Result<Webhook>;

    /// A failing endpoint is delivered to again, from where it stopped.
    async fn resume_webhook(&self, id: &str) -> Result<Webhook>;

    /// Takes (or keeps) the lease of every endpoint whose lease is free,
    /// lapsed or `owner`'s own, until `until`; those `owner` now holds.
    async fn lease_webhooks(&self, owner: &str, until: Timestamp) -> Result<Vec<Webhook>>;

    /// Gives back `owner`'s leases (it is stopping).
    async fn release_webhooks(&self, owner: &str) -> Result<()>;

    /// Moves the endpoint's cursors forward to `to` and clears its retry
    /// state, if `owner` still holds its lease; whether it did.
    async fn advance_webhook(
        &self,
        id: &str,
        owner: &str,
        to: Cursors,
        delivered: bool,
    ) -> Result<bool>;

    /// Notes a failed attempt (the cursors stay), marking the endpoint
    /// failing if it has failed for `horizon_ms`; `None` if `owner` lost the lease.
    async fn webhook_failed(
        &self,
        id: &str,
        owner: &str,
        error: &str,
        horizon_ms: i64,
    ) -> Result<Option<Failure>>;

    /// Up to `limit` events of the log after `after`, oldest first.
    async fn events_for_delivery(&self, after: i64, limit: u32) -> Result<Vec<LoggedEvent>>;

    /// Up to `limit` unseen notices after `after`, oldest first.
    async fn notices_after(&self, after: i64, limit: u32) -> Result<Vec<Notice>>;

    /// The last event the unseen sweep has looked at.
    async fn unseen_swept(&self) -> Result<i64>;

    /// The members of `rooms` (not deleted) with their read cursors.
    async fn readers(&self, rooms: &[String]) -> Result<Vec<Reader>>;

    /// When each of `users` last went offline, for those who ever did.
    async fn offline_at(&self, users: &[UserId]) -> Result<Vec<(UserId, Timestamp)>>;

    /// Moves the sweep from `from` to `to` and writes `notices` (each once
    /// ever), unless another sweep moved it first; whether this one did.
    async fn raise_unseen(&self, from: i64, to: i64, notices: &[NewNotice]) -> Result<bool>;

    /// `users` went offline at `at`.
    async fn note_offline(&self, users: &[UserId], at: Timestamp) -> Result<()>;

    /// Deletes notices created before `cutoff` that every active endpoint
    /// has acknowledged; how many.
    async fn purge_notices(&self, cutoff: Timestamp) -> Result<u64>;

    /// Forgets when users went offline, where it was more than `margin`
    /// before every message the sweep has yet to look at (before now, if
    /// it is not `sweeping`): such a time can spare nobody a notice any
    /// more. The margin covers the instances' clocks disagreeing. How many.
    async fn purge_offline(&self, margin: std::time::Duration, sweeping: bool) -> Result<u64>;
}

/// The notice's event type, as endpoints' lists name it (see `webhooks::endpoints`).
pub const UNSEEN: &str = "message.unseen";

/// One endpoint row as both backends return it.
#[derive(sqlx::FromRow)]
pub(super) struct WebhookRow {
    id: String,
    url: String,
    event_types: String,
    room_ids: Option<String>,
    secret: String,
    previous_secret: Option<String>,
    previous_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
    event_cursor: i64,
    notice_cursor: i64,
    state: String,
    failing_since: Option<i64>,
    attempts: i64,
    last_error: Option<String>,
    delivered_at: Option<i64>,
}

impl TryFrom<WebhookRow> for Webhook {
    type Error = Error;

    fn try_from(row: WebhookRow) -> Result<Self> {
        let list = |text: &str| {
            serde_json::from_str::<Vec<String>>(text)
                .map_err(|e| Error::internal_from("a webhook's list is not JSON", e))
        };
        Ok(Self {
            event_types: list(&row.event_types)?,
            room_ids: row.room_ids.as_deref().map(list).transpose()?,
            id: row.id,
            url: row.url,
            secret: row.secret,
            previous_secret: row
                .previous_secret
                .zip(row.previous_until.map(Timestamp::from_unix_ms)),
            created_at: Timestamp::from_unix_ms(row.created_at),
            updated_at: Timestamp::from_unix_ms(row.updated_at),
            cursors: Cursors {
                event: row.event_cursor,
                notice: row.notice_cursor,
            },
            state: WebhookState::parse(&row.state)?,
            failing_since: row.failing_since.map(Timestamp::from_unix_ms),
            attempts: row.attempts,
            last_error: row.last_error,
            delivered_at: row.delivered_at.map(Timestamp::from_unix_ms),
        })
    }
}

/// One notice row, its message's columns `NULL` once the message is gone.
#[derive(sqlx::FromRow)]
pub(super) struct NoticeRow {
    id: i64,
    room_id: String,
    user_id: String,
    created_at: i64,
    #[sqlx(flatten)]
    message: super::JoinedMessage,
}

impl From<NoticeRow> for Notice {
    fn from(row: NoticeRow) -> Self {
        Self {
            id: row.id,
            message: row.message.into_message(&row.room_id),
            room_id: RoomId::from_store(row.room_id),
            user_id: UserId::from_store(row.user_id),
            created_at: Timestamp::from_unix_ms(row.created_at),
        }
    }
}

pub(super) fn json_list(items: &[String]) -> String {
    // A list of strings always encodes.
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

pub(super) fn json_users(users: &[UserId]) -> String {
    let users: Vec<&str> = users.iter().map(UserId::as_str).collect();
    serde_json::to_string(&users).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_state_is_read_as_the_queries_write_it() {
        assert_eq!(WebhookState::parse("active").unwrap(), WebhookState::Active);
        assert_eq!(
            WebhookState::parse("failing").unwrap(),
            WebhookState::Failing
        );
        assert!(WebhookState::parse("paused").is_err());
    }
}
