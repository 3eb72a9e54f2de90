//! The snooze schedule: every instance looks, every `CHECK`, for snoozed
//! conversations whose time has come and opens them. The schedule is the
//! rooms' rows, not a timer in one process: a restart or a SIGKILL loses
//! nothing, and of instances looking at once each conversation is opened
//! by one (see `InboxStore::wake_snoozed`).

use crate::model::Timestamp;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// How often each instance looks: a conversation opens within this (and a
/// transaction) of its time.
const CHECK: Duration = Duration::from_secs(1);
/// Conversations opened in one transaction; a full batch is followed by
/// another at once.
const BATCH: u32 = 100;

/// This instance's look at the schedule, stopped when dropped.
pub struct SnoozeSchedule {
    task: tokio::task::AbortHandle,
}

impl SnoozeSchedule {
    pub fn start(store: Arc<dyn Store>) -> Self {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(CHECK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                loop {
                    match store.inbox().wake_snoozed(Timestamp::now(), BATCH).await {
                        Ok(opened) if opened == u64::from(BATCH) => continue,
                        Ok(_) => break,
                        Err(error) => {
                            tracing::warn!(%error, "could not open the snoozed conversations due");
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

impl Drop for SnoozeSchedule {
    fn drop(&mut self) {
        self.task.abort();
    }
}
