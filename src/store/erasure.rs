//! What erasure jobs keep in the store: one row per request to erase what a
//! user wrote, with its state, its count and its lease. The queries are in
//! `sql/erasure.rs` (an erasure step is a write like any other: rooms locked in id
//! order, the event counter last).

use crate::error::{Error, Result};
use crate::model::{Timestamp, UserId};
use async_trait::async_trait;

/// A request to erase what a user wrote, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureJob {
    pub id: String,
    pub user_id: UserId,
    pub requested_by: UserId,
    pub state: ErasureState,
    /// Messages of the user this job made tombstones (or removed from a
    /// deleted room), counted in the transactions that did it.
    pub erased: i64,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErasureState {
    /// Batches are still being erased (or the job waits for an instance).
    Running,
    /// None of the user's messages is left, nor their other records.
    Done,
}

impl ErasureState {
    pub(super) fn parse(text: &str) -> Result<Self> {
        match text {
            "running" => Ok(Self::Running),
            "done" => Ok(Self::Done),
            other => Err(Error::internal(format!("unknown erasure state `{other}`"))),
        }
    }
}

/// What asking for an erasure found.
#[derive(Debug)]
pub enum Requested {
    /// A job runs: the one already running for the user, or a new one.
    Running(ErasureJob),
    /// The user's last job is done and nothing of theirs came since.
    AlreadyDone(ErasureJob),
}

/// What one step of a job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureStep {
    /// Erased this many; more may be left.
    Erased(u64),
    /// Nothing of the user is left: the job is done.
    Done,
    /// Another instance holds the job now (this one's lease lapsed).
    LeaseLost,
}

#[derive(sqlx::FromRow)]
pub(super) struct ErasureRow {
    id: String,
    user_id: String,
    requested_by: String,
    state: String,
    erased: i64,
    created_at: i64,
    finished_at: Option<i64>,
}

/// The columns of `ErasureRow`.
pub(super) const ERASURE_COLUMNS: &str =
    "id, user_id, requested_by, state, erased, created_at, finished_at";

impl TryFrom<ErasureRow> for ErasureJob {
    type Error = Error;

    fn try_from(row: ErasureRow) -> Result<Self> {
        Ok(Self {
            id: row.id,
            user_id: UserId::from_store(row.user_id),
            requested_by: UserId::from_store(row.requested_by),
            state: ErasureState::parse(&row.state)?,
            erased: row.erased,
            created_at: Timestamp::from_unix_ms(row.created_at),
            finished_at: row.finished_at.map(Timestamp::from_unix_ms),
        })
    }
}

#[async_trait]
pub trait ErasureStore: Send + Sync {
    /// Starts erasing what `user` wrote, on `by`'s request: the job running
    /// for them already if there is one (asking twice is asking once);
    /// their last job if it is done and nothing of theirs is left; else a
    /// new job.
    async fn request_erasure(&self, by: &UserId, user: &UserId) -> Result<Requested>;

    /// `NotFound` if there is none of that id.
    async fn erasure(&self, id: &str) -> Result<ErasureJob>;

    /// Takes the lease of the oldest running job whose lease is free or
    /// lapsed (or is `owner`'s own), until `until`.
    async fn lease_erasure(&self, owner: &str, until: Timestamp) -> Result<Option<ErasureJob>>;

    /// One transaction of job `id`, if `owner` still holds it: renews the
    /// lease to `until`, makes up to `batch` of the user's messages
    /// tombstones (or, once none is left in a room that exists, removes
    /// those left in deleted rooms), and counts them; with nothing left,
    /// erases the user's other records and marks the job done.
    async fn erase_step(
        &self,
        id: &str,
        owner: &str,
        until: Timestamp,
        batch: u32,
    ) -> Result<ErasureStep>;

    /// Gives back `owner`'s leases (it is stopping), so another instance
    /// goes on at once.
    async fn release_erasures(&self, owner: &str) -> Result<()>;
}
