//! Auto-assignment (`auto_assign = "round_robin"`): every instance looks,
//! every second, for conversations whose customer waits and no agent has
//! (or, with `auto_assign_reassign_after`, whose agent has kept them
//! waiting too long), and gives them to the agents online now by the rules
//! of `store::assign`. The queue is the rooms' rows: a restart loses
//! nothing, and instances at it at once wait for each other on the agents'
//! rows, so no agent goes past the cap and each conversation gets one
//! decision.

use super::Periodic;
use crate::events::Hub;
use crate::model::Timestamp;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// This instance's auto-assignment, stopped when dropped.
pub struct AutoAssigner {
    _running: Periodic,
}

impl AutoAssigner {
    /// Holds `hub` weakly: the task ends with it.
    pub fn start(hub: &Arc<Hub>, cap: u32, reassign_after: Option<Duration>) -> Self {
        let hub: Weak<Hub> = Arc::downgrade(hub);
        let running = Periodic::start("assign the waiting conversations", move |batch| {
            let hub = hub.upgrade()?;
            Some(async move { pass(&hub, cap, reassign_after, batch).await })
        });
        Self { _running: running }
    }
}

/// One look: nothing is read of the agents unless a conversation waits.
async fn pass(
    hub: &Hub,
    cap: u32,
    reassign_after: Option<Duration>,
    batch: u32,
) -> crate::error::Result<u64> {
    let store = hub.store();
    let reassign_before = reassign_after.map(|after| {
        let after = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
        Timestamp::from_unix_ms(Timestamp::now().unix_ms().saturating_sub(after))
    });
    if !store.inbox().assignments_due(reassign_before).await? {
        return Ok(0);
    }
    let agents: Vec<_> = store
        .inbox()
        .agents()
        .await?
        .into_iter()
        .map(|agent| agent.id)
        .collect();
    let seen = hub.presence().look_up(hub, &agents).await?;
    let online: Vec<_> = seen
        .into_iter()
        .filter(|seen| seen.online)
        .map(|seen| seen.user)
        .collect();
    if online.is_empty() && reassign_before.is_none() {
        return Ok(0);
    }
    store
        .inbox()
        .auto_assign(&online, cap, reassign_before, batch)
        .await
}
