//! Agents, learned as they sign in: a caller with the admin role is one,
//! named by their token's `name` claim when it has one. Each instance
//! writes an agent (or a new name) once; the store keeps them all.

use crate::model::Caller;
use crate::model::UserId;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct AgentRoster {
    store: Arc<dyn Store>,
    /// The agents this instance has written, with the name it wrote.
    written: Mutex<HashMap<UserId, Option<String>>>,
}

impl AgentRoster {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            written: Mutex::new(HashMap::new()),
        }
    }

    /// `caller` signed in, with the name their token gave: an agent if they
    /// are an admin. A store that cannot take it now is asked again on
    /// their next request; the request itself goes on.
    pub async fn saw(&self, caller: &Caller, name: Option<&str>) {
        if !caller.is_admin() {
            return;
        }
        let known = self
            .written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&caller.id)
            .is_some_and(|written| name.is_none() || written.as_deref() == name);
        if known {
            return;
        }
        match self.store.inbox().learn_agent(&caller.id, name).await {
            Ok(()) => {
                self.written
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(caller.id.clone(), name.map(str::to_owned));
            }
            Err(error) => tracing::warn!(%error, "could not note an agent"),
        }
    }
}
