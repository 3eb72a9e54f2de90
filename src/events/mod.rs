//! The live side of the event log. One relay per process reads the log in id
//! order and broadcasts each event, encoded once, to every stream of the
//! process; writers only wake it (after their commit, and through the store's
//! cross-process notifications). A reader that falls behind the broadcast
//! reads the log itself (`feed`): nothing is ever skipped. Also the shared
//! heartbeat.

mod feed;
mod filter;

pub use feed::{Feed, Start, Step};
pub use filter::{Admit, Filter};

use crate::metrics;
use crate::model::{RoomChange, RoomId, Timestamp, UserId};
use crate::sse;
use crate::store::{EventScope, Store, StoredEvent};
use bytes::Bytes;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, watch};
use tokio::time::MissedTickBehavior;

/// How many events the relay reads from the log at once.
const RELAY_BATCH: u32 = 500;

/// How many events a stream reads from the log at once when catching up. A
/// stream whose client stopped reading holds at most one such batch, so keep
/// it small: that is what bounds a stalled stream's memory.
pub const CATCH_UP_BATCH: u32 = 64;

/// One event as streams see it.
#[derive(Debug)]
pub struct Event {
    pub id: i64,
    pub room_id: RoomId,
    /// For `room` events: who is in the room now, and whom the change is about.
    pub membership: Option<Membership>,
    /// The whole SSE frame, shared by every stream that sends it.
    pub frame: Bytes,
    /// Where the frame's JSON data begins.
    data_at: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Membership {
    pub change: RoomChange,
    pub user: Option<UserId>,
    pub members: Vec<UserId>,
}

impl Event {
    pub fn from_stored(stored: StoredEvent) -> Self {
        // Only `room` events need a look inside; they are serialised tag first.
        let membership = stored
            .data
            .starts_with(r#"{"type":"room""#)
            .then(|| serde_json::from_str::<RoomEventFields>(&stored.data).ok())
            .flatten()
            .map(|fields| Membership {
                change: fields.change,
                user: fields.user_id.map(UserId::from_store),
                members: fields
                    .room
                    .member_ids
                    .into_iter()
                    .map(UserId::from_store)
                    .collect(),
            });
        let frame = sse::event(stored.id, &stored.data);
        Self {
            id: stored.id,
            data_at: frame.len() - stored.data.len() - sse::EVENT_END.len(),
            frame,
            room_id: RoomId::from_store(stored.room_id),
            membership,
        }
    }

    /// The event's JSON, as the log keeps it and the frame carries it.
    pub fn data(&self) -> Bytes {
        self.frame
            .slice(self.data_at..self.frame.len() - sse::EVENT_END.len())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomEventFields {
    change: RoomChange,
    user_id: Option<String>,
    room: RoomMembers,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomMembers {
    member_ids: Vec<String>,
}

/// Settings of the live side.
#[derive(Debug, Clone)]
pub struct HubOptions {
    pub heartbeat_interval: Duration,
    /// Events the broadcast holds for slow streams before they must read the log.
    pub buffer: usize,
    /// How often the relay reads the log even when nobody woke it.
    pub poll_interval: Duration,
    pub retention: Duration,
}

/// The fan-out of one process.
pub struct Hub {
    sender: broadcast::Sender<Arc<Event>>,
    heartbeat: watch::Receiver<Bytes>,
    store: Arc<dyn Store>,
    /// The newest event the relay has broadcast.
    relayed: AtomicI64,
    open_streams: AtomicUsize,
    streams_per_user: Mutex<HashMap<UserId, usize>>,
    /// Times a stream fell behind the broadcast and read the log instead.
    catch_ups: AtomicUsize,
    /// The relay, heartbeat, retention and notification tasks, stopped with the hub.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(|p| p.into_inner());
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

impl Hub {
    /// Starts the relay, the heartbeat and the log's retention; they stop
    /// with the hub. `wake` is what writers poke after a commit.
    pub async fn start(
        store: Arc<dyn Store>,
        wake: Arc<Notify>,
        options: HubOptions,
    ) -> crate::error::Result<Arc<Self>> {
        let newest = store.event_bounds().await?.newest;
        let (sender, _) = broadcast::channel(options.buffer.max(16));
        let (beat, heartbeat) = watch::channel(sse::heartbeat(Timestamp::now().unix_ms()));
        let hub = Arc::new(Self {
            sender,
            heartbeat,
            store: store.clone(),
            relayed: AtomicI64::new(newest),
            open_streams: AtomicUsize::new(0),
            streams_per_user: Mutex::new(HashMap::new()),
            catch_ups: AtomicUsize::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        let tasks = [
            tokio::spawn(relay(
                Arc::downgrade(&hub),
                wake.clone(),
                options.poll_interval,
            )),
            tokio::spawn(heartbeats(beat, options.heartbeat_interval)),
            tokio::spawn(retention(store.clone(), options.retention)),
            tokio::spawn(async move { store.watch_other_writers(wake).await }),
        ];
        hub.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(tasks.iter().map(tokio::task::JoinHandle::abort_handle));
        Ok(hub)
    }

    /// Live events from now on. Subscribe before reading the log, so nothing
    /// committed in between can fall through.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// The newest heartbeat frame; changes at every tick.
    pub fn heartbeats(&self) -> watch::Receiver<Bytes> {
        self.heartbeat.clone()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Counts a new stream of `user`, unless they already hold `max` streams.
    pub fn admit(self: &Arc<Self>, user: &UserId, max: usize) -> Option<StreamTicket> {
        let mut per_user = self
            .streams_per_user
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = per_user.entry(user.clone()).or_insert(0);
        if *count >= max {
            if *count == 0 {
                per_user.remove(user);
            }
            return None;
        }
        *count += 1;
        self.open_streams.fetch_add(1, Ordering::Relaxed);
        Some(StreamTicket {
            hub: self.clone(),
            user: user.clone(),
        })
    }

    /// The newest event the relay has broadcast (and so, committed).
    pub fn relayed_event_id(&self) -> i64 {
        self.relayed.load(Ordering::Relaxed)
    }

    /// Notes that a stream fell behind the broadcast and reads the log.
    pub fn note_catch_up(&self) {
        ::metrics::counter!(metrics::CATCH_UPS).increment(1);
        self.catch_ups.fetch_add(1, Ordering::Relaxed);
    }

    /// What this process holds now: for leak checks and the metrics.
    pub fn stats(&self) -> HubStats {
        let users = self
            .streams_per_user
            .lock()
            .map(|per_user| per_user.len())
            .unwrap_or_default();
        HubStats {
            open_streams: self.open_streams.load(Ordering::Relaxed),
            subscribers: self.sender.receiver_count(),
            users_with_streams: users,
            relayed_event_id: self.relayed.load(Ordering::Relaxed),
            catch_ups: self.catch_ups.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HubStats {
    pub open_streams: usize,
    pub subscribers: usize,
    pub users_with_streams: usize,
    pub relayed_event_id: i64,
    pub catch_ups: usize,
}

/// One open stream, counted until dropped.
pub struct StreamTicket {
    hub: Arc<Hub>,
    user: UserId,
}

impl Drop for StreamTicket {
    fn drop(&mut self) {
        self.hub.open_streams.fetch_sub(1, Ordering::Relaxed);
        let mut per_user = self
            .hub
            .streams_per_user
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = per_user.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                per_user.remove(&self.user);
            }
        }
    }
}

/// Reads the log after the last relayed id whenever woken (or polled), and
/// broadcasts what it finds in id order. Ids commit in order, so reading past
/// an id never skips one that commits later.
async fn relay(hub: std::sync::Weak<Hub>, wake: Arc<Notify>, poll_interval: Duration) {
    let mut poll = tokio::time::interval(poll_interval);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = wake.notified() => {}
            _ = poll.tick() => {}
        }
        let Some(hub) = hub.upgrade() else { return };
        loop {
            let after = hub.relayed.load(Ordering::Relaxed);
            let batch = match hub
                .store
                .events_after(after, &EventScope::All, RELAY_BATCH)
                .await
            {
                Ok(batch) => batch,
                Err(error) => {
                    ::metrics::counter!(metrics::RELAY_ERRORS).increment(1);
                    tracing::warn!(%error, "relay cannot read the event log; retrying");
                    break;
                }
            };
            let full = batch.len() == RELAY_BATCH as usize;
            ::metrics::counter!(metrics::RELAYED).increment(batch.len() as u64);
            for stored in batch {
                let event = Arc::new(Event::from_stored(stored));
                hub.relayed.store(event.id, Ordering::Relaxed);
                // No subscriber is fine: nobody is listening.
                let _ = hub.sender.send(event);
            }
            if !full {
                break;
            }
        }
    }
}

/// One tick for every stream of the process, with its frame encoded once.
async fn heartbeats(beat: watch::Sender<Bytes>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if beat
            .send(sse::heartbeat(Timestamp::now().unix_ms()))
            .is_err()
        {
            return;
        }
    }
}

/// Deletes events older than the retention window, hourly (or sooner for
/// short windows).
async fn retention(store: Arc<dyn Store>, window: Duration) {
    let every = (window / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let cutoff = Timestamp::from_unix_ms(Timestamp::now().unix_ms().saturating_sub(window_ms));
        match store.purge_events(cutoff).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "purged events past the retention window"),
            Err(error) => tracing::warn!(%error, "could not purge old events"),
        }
    }
}
