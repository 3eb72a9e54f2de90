//! One caller's view of the event log from a resume point: what the SSE
//! stream and the long-poll both read, so one code path decides what a
//! caller may see, and from where.

use super::{Admit, Event, Filter, FromWindow, Hub, Queued, Subscription};
use crate::error::{Error, Result};
use crate::model::{Caller, RoomId};
use crate::store::EventScope;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// The next thing a feed has for its reader.
#[derive(Debug)]
pub enum Step {
    /// An event the caller may see.
    Send(Arc<Event>),
    /// The same, and the last: the caller just lost the room of a room feed.
    SendAndEnd(Arc<Event>),
    /// Nothing more without waiting (only when asked not to wait).
    Idle,
    /// A signal (typing, presence) for the caller: sent, but no event of
    /// the log, so it moves no resume point. Only to a feed that takes them.
    Signal(Arc<Event>),
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
    filter: Filter,
    /// The id of the last event passed on or skipped.
    last: i64,
    /// Once the feed has passed everything up to the relay: its live queue.
    live: Option<Subscription>,
    /// Events read from the window or the log, waiting to be passed on in order.
    backlog: VecDeque<Arc<Event>>,
    /// Up to here the window or the log has been read whole once the
    /// backlog is passed.
    read_up_to: i64,
    /// A catch-up (a resume, or a fall a queue behind) not yet counted by
    /// where it was served from.
    uncounted_catch_up: bool,
    /// The newest event committed when the feed opened: it may not have
    /// reached the relay yet, but a caller asking for what is there now
    /// must get it (see `catch_up`).
    newest_at_open: i64,
    batch: u32,
    /// How long a read of the store may wait for a busy pool's connection.
    patience: Duration,
    /// Whether the reader takes signals (a stream does; a poll, whose
    /// answers are events of the log, does not).
    signals: bool,
}

/// Where a feed asked to resume after `resume_from` (or from now) starts.
/// From memory when this process's relay has published the id and its
/// window holds everything after it (unless this process purged what
/// follows the id); from the store's bounds otherwise: an id older than the
/// window, or newer than the relay (given by another process, ahead).
async fn start_of(hub: &Hub, resume_from: Option<i64>) -> Result<Start> {
    // After this process's own commits: a poll that does not wait gets
    // what its caller just posted.
    let newest = hub.caught_up_position().await?;
    let Some(from) = resume_from else {
        return Ok(Start::Fresh { newest });
    };
    let expired = |newest| Start::Reset {
        newest,
        reason: "event_id_expired",
    };
    if let Some(newest) = hub.router().covering(from) {
        // Another process's purge is seen when this one's own purge, on
        // the same schedule, catches up: until then the window may replay
        // events the log no longer keeps, which are still the log's events.
        return Ok(if from >= hub.store().purged_up_to() {
            Start::Resumed { from, newest }
        } else {
            expired(newest)
        });
    }
    let bounds = hub.store().event_bounds().await?;
    let newest = bounds.newest;
    Ok(match from {
        from if bounds.can_resume_from(from) => Start::Resumed { from, newest },
        from if from > newest => Start::Reset {
            newest,
            reason: "unknown_event_id",
        },
        _ => expired(newest),
    })
}

impl Feed {
    /// Opens `caller`'s feed of one room (`room`) or of everything they may
    /// see, after `resume_from`; `NotFound` for a room they may not see.
    /// Reads the log `batch` events at a time, waiting up to `patience` for
    /// a busy pool's connection each time.
    pub async fn open(
        hub: &Arc<Hub>,
        caller: &Caller,
        room: Option<&RoomId>,
        resume_from: Option<i64>,
        batch: u32,
        patience: Duration,
    ) -> Result<(Self, Start)> {
        // Order matters. Read the newest id first, then check access: the
        // feed reads every event after its starting id, so a membership
        // change committed after the check has a larger id, reaches the feed
        // and the filter applies it (a removal ends a room feed).
        let store = hub.store();
        let start = start_of(hub, resume_from).await?;
        let newest = start.newest();
        let last = match start {
            Start::Resumed { from, .. } => from,
            Start::Fresh { newest } | Start::Reset { newest, .. } => newest,
        };
        let (scope, rooms) = match room {
            Some(room) => {
                // Removed since the resume point: the feed carries what
                // came before, then the removal, and ends there.
                let may_see = store.may_see_room(caller, room).await?
                    || (resume_from.is_some()
                        && store
                            .member_rooms_at(&caller.id, last)
                            .await?
                            .contains(room));
                if !may_see {
                    return Err(Error::NotFound("room"));
                }
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
            filter: Filter::new(caller.clone(), scope, rooms),
            last,
            live: None,
            backlog: VecDeque::new(),
            read_up_to: last,
            uncounted_catch_up: matches!(start, Start::Resumed { .. }),
            newest_at_open: newest,
            batch: batch.max(1),
            patience,
            signals: false,
        };
        Ok((feed, start))
    }

    /// Makes the feed pass on the signals routed to it while live. They
    /// need no filter: the router sends them only where the feed's own
    /// audience (its rooms as of its position) reaches.
    pub fn with_signals(mut self) -> Self {
        self.signals = true;
        self
    }

    /// The id up to which the caller has everything it may see: resuming
    /// from it misses nothing and repeats nothing.
    pub fn last_event_id(&self) -> i64 {
        self.last
    }

    /// Whether an event may be ready without waiting.
    pub fn has_ready(&self) -> bool {
        !self.backlog.is_empty() || self.live.as_ref().is_none_or(|live| !live.is_empty())
    }

    /// The next event the caller may see, in id order: from the window or
    /// the log while behind, then live. With `wait` it waits for one;
    /// without, it answers `Idle` rather than wait on live events (it still
    /// catches up).
    ///
    /// Cancel-safe: state changes only after each await completes, so a
    /// caller may race it against a timer and call it again.
    pub async fn next(&mut self, wait: bool) -> Result<Step> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                if let Some(step) = self.pass(event) {
                    return Ok(step);
                }
                continue;
            }
            // The backlog is passed: nothing the caller may see hides below here.
            self.last = self.last.max(self.read_up_to);
            if let Some(live) = &mut self.live {
                let received = if wait {
                    live.recv().await
                } else {
                    match live.try_recv() {
                        Queued::Event(event) => Some(event),
                        Queued::Empty => {
                            // Quiet: what was not routed here was not for the caller.
                            if let Some(position) = self.hub.router().quiet_position(live) {
                                self.last = self.last.max(position);
                            }
                            return Ok(Step::Idle);
                        }
                        Queued::Dropped => None,
                    }
                };
                match received {
                    Some(event) if event.ephemeral => {
                        if self.signals {
                            return Ok(Step::Signal(event));
                        }
                    }
                    Some(event) => {
                        if let Some(step) = self.pass(event) {
                            return Ok(step);
                        }
                    }
                    None => {
                        // Fell a queue behind and was dropped from the routes.
                        self.live = None;
                        self.uncounted_catch_up = true;
                    }
                }
                continue;
            }
            self.catch_up().await?;
        }
    }

    /// One step of catching up: a batch from the window or the store into
    /// the backlog, or, with nothing left between the feed and the relay,
    /// live.
    async fn catch_up(&mut self) -> Result<()> {
        // What the feed wants from the window, exactly: its filter's own
        // answer, on a copy (the events it skips never change its rooms).
        let mut probe = self.filter.clone();
        let filter = &self.filter;
        let read = self.hub.router().catch_up(
            self.last,
            self.batch as usize,
            |event| probe.admit(event) != Admit::Skip,
            || filter.audience(),
            self.signals,
        );
        let from_window = !matches!(read, FromWindow::TooOld);
        if std::mem::take(&mut self.uncounted_catch_up) {
            self.hub.note_catch_up(from_window);
        }
        match read {
            FromWindow::Live(subscription) => {
                self.live = Some(subscription);
                // Committed before the feed opened, not relayed yet: the
                // queue will bring it, but a poll that does not wait must
                // have it now. Live first, so nothing after it falls between.
                if self.last < self.newest_at_open {
                    self.read_store(self.newest_at_open).await?;
                }
            }
            FromWindow::Events { events, reached } => {
                self.backlog.extend(events);
                self.read_up_to = self.read_up_to.max(reached);
            }
            // Everything the relay has published is committed, so the read
            // sees it all.
            FromWindow::TooOld => self.read_store(self.hub.relayed_event_id()).await?,
        }
        Ok(())
    }

    /// A batch from the store into the backlog; once one comes back short,
    /// the log is read whole up to `horizon` (committed before the read).
    async fn read_store(&mut self, horizon: i64) -> Result<()> {
        let batch = self
            .hub
            .retry_while_pool_busy("catch_up", self.patience, || {
                self.hub
                    .store()
                    .events_after(self.last, self.filter.scope(), self.batch)
            })
            .await?;
        self.hub.note_store_success();
        if batch.len() < self.batch as usize {
            self.read_up_to = self.read_up_to.max(horizon);
        }
        self.backlog
            .extend(batch.into_iter().map(|e| Arc::new(Event::from_stored(e))));
        Ok(())
    }

    /// What to do with the next event in id order: a step for the reader,
    /// or `None` to go on.
    fn pass(&mut self, event: Arc<Event>) -> Option<Step> {
        // Already passed: read from the window or the log, or before the feed began.
        if event.id <= self.last {
            return None;
        }
        self.last = event.id;
        match self.filter.admit(&event) {
            Admit::Send => Some(Step::Send(event)),
            Admit::SendAndEnd => Some(Step::SendAndEnd(event)),
            Admit::Skip => None,
        }
    }
}
