//! The snooze schedule: every instance looks, every `CHECK`, for snoozed
//! conversations whose time has come and opens them. The schedule is the
//! rooms' rows, not a timer in one process: a restart or a SIGKILL loses
//! nothing, and of instances looking at once each conversation is opened
//! by one (see `InboxStore::wake_snoozed`).

use super::Periodic;
use crate::model::Timestamp;
use crate::store::Store;
use std::sync::Arc;

/// This instance's look at the schedule, stopped when dropped.
pub struct SnoozeSchedule {
    _running: Periodic,
}

impl SnoozeSchedule {
    pub fn start(store: Arc<dyn Store>) -> Self {
        let running = Periodic::start("open the snoozed conversations due", move |batch| {
            let store = store.clone();
            Some(async move { store.inbox().wake_snoozed(Timestamp::now(), batch).await })
        });
        Self { _running: running }
    }
}
