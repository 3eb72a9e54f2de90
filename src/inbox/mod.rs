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
use crate::events::Hub;
use std::sync::Arc;

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
