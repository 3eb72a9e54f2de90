//! Agents, learned as they sign in: a caller with the admin role is one,
//! named by their token's `name` claim when it has one. Each instance
//! writes an agent (or a new name) once, and again every `RENOTE`, so one
//! removed while still signing in as an admin comes back; a store that
//! failed is not asked again for `BACK_OFF`.

use crate::model::{Caller, UserId};
use crate::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long an instance trusts that the store has an agent it wrote.
const RENOTE: Duration = Duration::from_secs(600);
/// How long after a failed write no agent is written.
const BACK_OFF: Duration = Duration::from_secs(10);

pub struct AgentRoster {
    store: Arc<dyn Store>,
    state: Mutex<Written>,
}

#[derive(Default)]
struct Written {
    /// The agents this instance wrote: the name, and when.
    agents: HashMap<UserId, (Option<String>, Instant)>,
    failed_at: Option<Instant>,
}

impl AgentRoster {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            state: Mutex::new(Written::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, Written> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `caller` signed in, with the name their token gave: an agent if they
    /// are an admin. The request goes on whatever the store answers.
    pub async fn saw(&self, caller: &Caller, name: Option<&str>) {
        if !caller.is_admin() {
            return;
        }
        {
            let state = self.state();
            let known = state.agents.get(&caller.id).is_some_and(|(written, at)| {
                (name.is_none() || written.as_deref() == name) && at.elapsed() < RENOTE
            });
            let backing_off = state.failed_at.is_some_and(|at| at.elapsed() < BACK_OFF);
            if known || backing_off {
                return;
            }
        }
        match self.store.inbox().learn_agent(&caller.id, name).await {
            Ok(()) => {
                let entry = (name.map(str::to_owned), Instant::now());
                self.state().agents.insert(caller.id.clone(), entry);
            }
            Err(error) => {
                self.state().failed_at = Some(Instant::now());
                tracing::warn!(%error, "could not note an agent");
            }
        }
    }
}
