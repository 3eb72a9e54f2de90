//! The support inbox at run time: what it does by itself on each instance
//! (opening snoozed conversations when their time comes, assigning waiting
//! ones) and the agents it learns as they sign in. Its state lives in the
//! store (`store::inbox`); its routes in `http::inbox`.

mod agents;
mod assign;
mod snooze;

pub use agents::AgentRoster;
pub use assign::AutoAssigner;
pub use snooze::SnoozeSchedule;

use crate::config::{AutoAssign, Config};
use crate::error::Result;
use crate::events::Hub;
use std::sync::Arc;
use std::time::Duration;

/// How often each instance looks for what the inbox does by itself: a
/// conversation is woken or assigned within this (and a transaction).
const CHECK: Duration = Duration::from_secs(1);
/// Conversations one pass changes in a transaction; a full batch is
/// followed by another at once.
const BATCH: u32 = 100;

/// A pass run every `CHECK` (and again at once after a full batch) until
/// dropped, or until `pass` gives no work (`None`: what it works on is gone).
struct Periodic {
    task: tokio::task::AbortHandle,
}

impl Periodic {
    fn start<F, Fut>(what: &'static str, mut pass: F) -> Self
    where
        F: FnMut(u32) -> Option<Fut> + Send + 'static,
        Fut: Future<Output = Result<u64>> + Send,
    {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(CHECK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                loop {
                    let Some(work) = pass(BATCH) else {
                        return;
                    };
                    match work.await {
                        Ok(changed) if changed == u64::from(BATCH) => continue,
                        Ok(_) => break,
                        Err(error) => {
                            tracing::warn!(%error, "the inbox could not {what}");
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

impl Drop for Periodic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The inbox's parts an instance runs.
pub struct Inbox {
    pub agents: AgentRoster,
    /// Held to run.
    _snoozes: SnoozeSchedule,
    _assigner: Option<AutoAssigner>,
}

impl Inbox {
    pub fn start(hub: Arc<Hub>, config: &Config) -> Self {
        let store = hub.store().clone();
        let assigner = match config.auto_assign {
            AutoAssign::Off => None,
            AutoAssign::RoundRobin => Some(AutoAssigner::start(
                &hub,
                config.auto_assign_cap,
                config.auto_assign_reassign_after.map(|after| after.0),
            )),
        };
        Self {
            agents: AgentRoster::new(store.clone()),
            _snoozes: SnoozeSchedule::start(store),
            _assigner: assigner,
        }
    }
}
