//! The support inbox at run time: what it does by itself on each instance
//! (opening snoozed conversations when their time comes) and the agents it
//! learns as they sign in. Its state lives in the store (`store::inbox`);
//! its routes in `http::inbox`.

mod agents;
mod snooze;

pub use agents::AgentRoster;
pub use snooze::SnoozeSchedule;

use crate::store::Store;
use std::sync::Arc;

/// The inbox's parts an instance runs.
pub struct Inbox {
    pub agents: AgentRoster,
    /// Held to run.
    _snoozes: SnoozeSchedule,
}

impl Inbox {
    pub fn start(store: Arc<dyn Store>) -> Self {
        Self {
            agents: AgentRoster::new(store.clone()),
            _snoozes: SnoozeSchedule::start(store),
        }
    }
}
