//! Auto-assignment (`auto_assign = "round_robin"`): every instance looks,
//! every `CHECK`, for conversations whose customer waits and no agent has
//! (or, with `auto_assign_reassign_after`, whose agent has kept them
//! waiting too long), and gives them to the agents online now by the rules
//! of `store::assign`. The queue is the rooms' rows: a restart loses
//! nothing, and instances at it at once wait for each other on the agents'
//! rows, so no agent goes past the cap and each conversation gets one
//! decision.

use crate::events::Hub;
use crate::model::Timestamp;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often each instance looks: a conversation whose customer writes is
/// assigned within this (and a transaction).
const CHECK: Duration = Duration::from_secs(1);
/// Conversations given out in one transaction; a full batch is followed by
/// another at once.
const BATCH: u32 = 100;

/// This instance's auto-assignment, stopped when dropped.
pub struct AutoAssigner {
    task: tokio::task::AbortHandle,
}

impl AutoAssigner {
    /// Holds `hub` weakly: the task ends with it.
    pub fn start(hub: &Arc<Hub>, cap: u32, reassign_after: Option<Duration>) -> Self {
        let hub: Weak<Hub> = Arc::downgrade(hub);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(CHECK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(hub) = hub.upgrade() else {
                    return;
                };
                loop {
                    match pass(&hub, cap, reassign_after).await {
                        Ok(given) if given == u64::from(BATCH) => continue,
                        Ok(_) => break,
                        Err(error) => {
                            tracing::warn!(%error, "could not assign the waiting conversations");
                            break;
                        }
                    }
                }
            }
        })
        .abort_handle();
        Self { task }
    }
}

/// One look: nothing is read of the agents unless a conversation waits.
async fn pass(hub: &Hub, cap: u32, reassign_after: Option<Duration>) -> crate::error::Result<u64> {
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
        .auto_assign(&online, cap, reassign_before, BATCH)
        .await
}

impl Drop for AutoAssigner {
    fn drop(&mut self) {
        self.task.abort();
    }
}
