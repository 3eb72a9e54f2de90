//! One caller's view of the event log from a resume point: what the SSE
//! stream and the long-poll both read, so one code path decides what a
//! caller may see, and from where.

use super::{Admit, Event, Filter, Hub};
use crate::error::Result;
use crate::model::{Caller, RoomId};
use crate::store::EventScope;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// The next thing a feed has for its reader.
#[derive(Debug)]
pub enum Step {
    /// An event the caller may see.
    Send(Arc<Event>),
    /// The same, and the last: the caller just lost the room of a room feed.
    SendAndEnd(Arc<Event>),
    /// Nothing more without waiting (only when asked not to wait).
    Idle,
    /// The hub stopped: the process is shutting down.
    Closed,
}

/// Where a feed starts, as the caller asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Everything after the caller's id, `from`.
    Resumed { from: i64, newest: i64 },
    /// No id given: from the newest event on. What came before is the
    /// snapshot's business, and repeating it would duplicate.
    Fresh { newest: i64 },
    /// The id cannot be served: the caller must reload its snapshot and go
    /// on from `newest`.
    Reset { newest: i64, reason: &'static str },
}

impl Start {
    /// The newest event of the log when the feed opened.
    pub fn newest(&self) -> i64 {
        match *self {
            Self::Resumed { newest, .. } | Self::Fresh { newest } | Self::Reset { newest, .. } => {
                newest
            }
        }
    }
}

pub struct Feed {
    hub: Arc<Hub>,
    live: broadcast::Receiver<Arc<Event>>,
    filter: Filter,
    /// The id of the last event passed on or skipped.
    last: i64,
    /// Whether the log may hold events after `last` that `live` will not bring.
    catch_up: bool,
    /// Events read from the log, waiting to be passed on in order.
    backlog: VecDeque<Arc<Event>>,
    /// Up to here the log has been read whole once the backlog is passed.
    read_up_to: i64,
    batch: u32,
}

impl Feed {
    /// Opens `caller`'s feed of one room (`room`) or of everything they may
    /// see, after `resume_from`; `NotFound` for a room they may not see.
    /// Reads the log `batch` events at a time.
    pub async fn open(
        hub: &Arc<Hub>,
        caller: &Caller,
        room: Option<&RoomId>,
        resume_from: Option<i64>,
        batch: u32,
    ) -> Result<(Self, Start)> {
        // Order matters. Subscribe first, so every event committed from now on
        // reaches this feed; then read the newest id; only then check access.
        // A membership change committed after that check has a larger id, so it
        // reaches the feed and the filter applies it (a removal ends a room feed).
        let live = hub.subscribe();
        let store = hub.store();
        let bounds = store.event_bounds().await?;
        let newest = bounds.newest;
        let start = match resume_from {
            None => Start::Fresh { newest },
            Some(from) if bounds.can_resume_from(from) => Start::Resumed { from, newest },
            Some(id) => Start::Reset {
                newest,
                reason: if id > newest {
                    "unknown_event_id"
                } else {
                    "event_id_expired"
                },
            },
        };
        let (last, catch_up) = match start {
            Start::Resumed { from, .. } => (from, true),
            Start::Fresh { newest } => (newest, true),
            Start::Reset { newest, .. } => (newest, false),
        };
        let (scope, rooms) = match room {
            Some(room) => {
                store.room(caller, room).await?;
                (EventScope::Room(room.clone()), Vec::new())
            }
            None if caller.is_admin() => (EventScope::All, Vec::new()),
            // The rooms as they were at `last`: the filter replays the joins
            // and departures after it, event by event, so what the caller
            // sees does not depend on when they read.
            None => (
                EventScope::MemberOf(caller.id.clone()),
                store.member_rooms_at(&caller.id, last).await?,
            ),
        };
        let feed = Self {
            hub: hub.clone(),
            live,
            filter: Filter::new(caller.clone(), scope, rooms),
            last,
            catch_up,
            backlog: VecDeque::new(),
            read_up_to: last,
            batch: batch.max(1),
        };
        Ok((feed, start))
    }

    /// The id up to which the caller has everything it may see: resuming
    /// from it misses nothing and repeats nothing.
    pub fn last_event_id(&self) -> i64 {
        self.last
    }

    /// Whether an event may be ready without waiting.
    pub fn has_ready(&self) -> bool {
        !self.backlog.is_empty() || self.catch_up || !self.live.is_empty()
    }

    /// The next event the caller may see, in id order: from the log while
    /// behind, then live. With `wait` it waits for one; without, it answers
    /// `Idle` rather than wait on live events (it still reads the log).
    ///
    /// Cancel-safe: state changes only after each await completes, so a
    /// caller may race it against a timer and call it again.
    pub async fn next(&mut self, wait: bool) -> Result<Step> {
        loop {
            let event = if let Some(event) = self.backlog.pop_front() {
                event
            } else if self.catch_up {
                // Everything the relay has broadcast is committed, so the read
                // below sees it all: once it comes back short, the log is read
                // whole up to there.
                let horizon = self.hub.relayed_event_id();
                let batch = self
                    .hub
                    .store()
                    .events_after(self.last, self.filter.scope(), self.batch)
                    .await?;
                self.catch_up = batch.len() == self.batch as usize;
                if !self.catch_up {
                    self.read_up_to = self.read_up_to.max(horizon);
                }
                self.backlog
                    .extend(batch.into_iter().map(|e| Arc::new(Event::from_stored(e))));
                continue;
            } else {
                // The log is passed: nothing the caller may see hides below here.
                self.last = self.last.max(self.read_up_to);
                let received = if wait {
                    self.live.recv().await
                } else {
                    match self.live.try_recv() {
                        Err(TryRecvError::Empty) => return Ok(Step::Idle),
                        Err(TryRecvError::Closed) => Err(RecvError::Closed),
                        Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                        Ok(event) => Ok(event),
                    }
                };
                match received {
                    Ok(event) => event,
                    Err(RecvError::Lagged(_)) => {
                        // Fell behind the broadcast: the log has everything.
                        self.hub.note_catch_up();
                        self.catch_up = true;
                        continue;
                    }
                    Err(RecvError::Closed) => return Ok(Step::Closed),
                }
            };
            // Already passed: read from the log, or before the feed began.
            if event.id <= self.last {
                continue;
            }
            self.last = event.id;
            match self.filter.admit(&event) {
                Admit::Send => return Ok(Step::Send(event)),
                Admit::SendAndEnd => return Ok(Step::SendAndEnd(event)),
                Admit::Skip => {}
            }
        }
    }
}
