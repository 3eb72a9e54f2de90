//! The live side of the event log. One relay per process reads the log in id
//! order, keeps the newest events in a shared window (`window`) and hands
//! each, encoded once, to the streams it concerns (`routing`); writers only
//! wake it (after their commit, and through the store's cross-process
//! notifications). A reader that falls behind catches up from the window, or
//! from the log when its id is older (`feed`): nothing is ever skipped. Also
//! the shared heartbeat.

mod feed;
mod filter;
pub mod presence;
mod routing;
mod signals;
pub mod typing;
mod window;

pub use feed::{Feed, Start, Step};
pub use filter::{Admit, Filter};
use presence::Presence;
use routing::{Audience, FromWindow, Queued, Router, Subscription};
pub use signals::Signal;
use window::Window;

use crate::error::Result;
use crate::metrics;
use crate::model::{CONVERSATION_UPDATED, MessageId, RoomChange, RoomId, Timestamp, UserId};
use crate::sse;
use crate::store::{Store, StoredEvent, StreamClaim, Wake};
use bytes::Bytes;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// How long an open waits for the relay to publish this process's latest
/// commits before it asks the store where the log ends.
const CAUGHT_UP_WAIT: Duration = Duration::from_millis(500);

/// How long a read that waited in vain for a busy pool's connection rests
/// before it asks again (it waited `database_acquire_timeout` already).
const POOL_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// How many events the relay reads from the log at once.
const RELAY_BATCH: u32 = 500;

/// How many events a stream reads from the window or the log at once when
/// catching up. A stream whose client stopped reading holds at most one such
/// batch and its live queue (bounded in events and bytes, see `routing`), so
/// keep it small: with those, it bounds a stalled stream's memory.
pub const CATCH_UP_BATCH: u32 = 64;

/// One event as streams see it.
#[derive(Debug)]
pub struct Event {
    pub id: i64,
    pub room_id: RoomId,
    /// For `room` events: whom the change is about, and whom it puts in the room.
    pub membership: Option<Membership>,
    /// For `message_edited` and `message_deleted` events: the message whose
    /// earlier events the change rewrote in the log.
    pub rewrote: Option<MessageId>,
    /// A signal (see `signals`): not in the log, its `id` is 0.
    pub ephemeral: bool,
    /// For agents' (admins') global streams only: a conversation's state,
    /// which no customer may learn.
    pub agents_only: bool,
    /// The whole SSE frame, shared by every stream that sends it.
    pub frame: Bytes,
    /// Where the frame's JSON data begins.
    data_at: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Membership {
    pub change: RoomChange,
    /// The member added or removed.
    pub user: Option<UserId>,
    /// Whom the event puts in the room: a new room's members, or the one
    /// added (a set: each of their streams asks whether its user is in it).
    pub joined: HashSet<UserId>,
}

impl Event {
    pub fn from_stored(stored: StoredEvent) -> Self {
        // Only `room` events need a look inside; they are serialised tag first.
        let membership = stored
            .data
            .starts_with(r#"{"type":"room""#)
            .then(|| serde_json::from_str::<RoomEventFields>(&stored.data).ok())
            .flatten()
            .map(Membership::from);
        let rewrote = [
            r#"{"type":"message_edited""#,
            r#"{"type":"message_deleted""#,
        ]
        .iter()
        .any(|tag| stored.data.starts_with(tag))
        .then(|| serde_json::from_str::<ChangedMessage>(&stored.data).ok())
        .flatten()
        .map(|changed| MessageId::from_store(changed.message.id));
        let frame = sse::event(stored.id, &stored.data);
        Self {
            id: stored.id,
            data_at: frame.len() - stored.data.len() - sse::EVENT_END.len(),
            frame,
            room_id: RoomId::from_store(stored.room_id),
            membership,
            rewrote,
            ephemeral: false,
            agents_only: stored.data.starts_with(CONVERSATION_UPDATED),
        }
    }

    /// A signal's event: routed to live streams like a logged one, never
    /// kept (see `signals`).
    fn signal(room_id: RoomId, frame: Bytes) -> Self {
        Self {
            id: 0,
            room_id,
            membership: None,
            rewrote: None,
            ephemeral: true,
            agents_only: false,
            data_at: 0,
            frame,
        }
    }

    /// The event's JSON, as the log keeps it and the frame carries it.
    pub fn data(&self) -> Bytes {
        self.frame
            .slice(self.data_at..self.frame.len() - sse::EVENT_END.len())
    }
}

#[derive(Deserialize)]
struct ChangedMessage {
    message: MessageIdField,
}

#[derive(Deserialize)]
struct MessageIdField {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomEventFields {
    change: RoomChange,
    user_id: Option<String>,
    room: RoomMembers,
}

/// Only a `created` event lists the members (events logged before 2026-12
/// list them in every change; those lists are not needed, and ignored).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomMembers {
    #[serde(default)]
    member_ids: Vec<String>,
}

impl From<RoomEventFields> for Membership {
    fn from(fields: RoomEventFields) -> Self {
        let user = fields.user_id.map(UserId::from_store);
        let joined = match fields.change {
            RoomChange::Created => fields
                .room
                .member_ids
                .into_iter()
                .map(UserId::from_store)
                .collect(),
            RoomChange::MemberAdded => user.iter().cloned().collect(),
            RoomChange::MemberRemoved
            | RoomChange::Closed
            | RoomChange::Reopened
            | RoomChange::Deleted => HashSet::new(),
        };
        Self {
            change: fields.change,
            user,
            joined,
        }
    }
}

/// Settings of the live side.
#[derive(Debug, Clone)]
pub struct HubOptions {
    pub heartbeat_interval: Duration,
    /// Events a room's channel, admins' channel or a member's queue holds
    /// before a stream that has not taken them must catch up from the window.
    pub buffer: usize,
    /// The recent-event window's bounds.
    pub window_events: usize,
    pub window_bytes: usize,
    /// How often the relay reads the log even when nobody woke it.
    pub poll_interval: Duration,
    pub retention: Duration,
    /// Events the retention purge deletes per statement.
    pub purge_batch: u32,
    /// How long after their last stream ends a user stays online.
    pub presence_grace: Duration,
    /// If set, messages older than this become tombstones, `erase_batch`
    /// to a transaction.
    pub message_retention: Option<Duration>,
    pub erase_batch: u32,
}

/// The fan-out of one process.
pub struct Hub {
    router: Arc<Router>,
    heartbeat: watch::Receiver<Bytes>,
    store: Arc<dyn Store>,
    open_streams: AtomicUsize,
    streams_per_user: Mutex<HashMap<UserId, usize>>,
    /// Catch-ups (resumes, and streams that fell a queue behind) served
    /// from the window, and from the store.
    catch_ups_from_window: AtomicUsize,
    catch_ups_from_store: AtomicUsize,
    /// Since when reads of the store have failed (the relay's, catch-ups,
    /// stream opens), if they do now: how far clients are told to back off.
    store_down_since: Mutex<Option<std::time::Instant>>,
    /// The relay, heartbeat, retention and notification tasks, stopped with the hub.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// This process among those on the store, for the signals it sends.
    origin: u64,
    /// The signals for the other processes, on their way (see `signals`).
    outbox: tokio::sync::mpsc::Sender<String>,
    presence: Presence,
    /// The newest event published, for those who wait on it (webhooks).
    relayed: watch::Sender<i64>,
    /// Whether the relay's last read of the log worked: the store answers.
    relay_read_ok: AtomicBool,
    /// What commits poke; its count of pokes says what the relay has read.
    wake: Arc<Wake>,
    /// The count of pokes read before the relay's last whole pass began:
    /// every commit that poked before it is published.
    relay_passed: watch::Sender<u64>,
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
    /// Fills the window with the log's newest events (so streams resuming
    /// after a restart catch up from memory), then starts the relay, the
    /// heartbeat and the log's retention; they stop with the hub. `wake` is
    /// what writers poke after a commit.
    pub async fn start(
        store: Arc<dyn Store>,
        wake: Arc<Wake>,
        cluster: Option<Arc<crate::store::Cluster>>,
        options: HubOptions,
    ) -> crate::error::Result<Arc<Self>> {
        let (presence, arrivals) = Presence::new(options.presence_grace, cluster);
        let router = Arc::new(preloaded_router(store.as_ref(), &options).await?);
        let (outbox, to_send) = tokio::sync::mpsc::channel(signals::OUTBOX);
        let (beat, heartbeat) = watch::channel(sse::heartbeat(Timestamp::now().unix_ms()));
        let hub = Arc::new(Self {
            router,
            heartbeat,
            store: store.clone(),
            open_streams: AtomicUsize::new(0),
            streams_per_user: Mutex::new(HashMap::new()),
            catch_ups_from_window: AtomicUsize::new(0),
            catch_ups_from_store: AtomicUsize::new(0),
            store_down_since: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            origin: uuid::Uuid::now_v7().as_u64_pair().1,
            outbox,
            presence,
            relayed: watch::channel(0).0,
            relay_read_ok: AtomicBool::new(true),
            wake: wake.clone(),
            relay_passed: watch::channel(0).0,
        });
        let (signals, inbox) = tokio::sync::mpsc::channel(signals::INBOX);
        let tasks = [
            tokio::spawn(relay(
                Arc::downgrade(&hub),
                wake.clone(),
                options.poll_interval,
            )),
            tokio::spawn(heartbeats(beat, options.heartbeat_interval)),
            tokio::spawn(message_retention(
                store.clone(),
                options.message_retention,
                options.erase_batch,
            )),
            tokio::spawn(retention(
                store.clone(),
                options.retention,
                options.purge_batch,
            )),
            tokio::spawn(signals::send_out(store.clone(), to_send)),
            tokio::spawn(async move { store.watch_other_writers(wake, signals).await }),
            tokio::spawn(signals::relay_signals(Arc::downgrade(&hub), inbox)),
            tokio::spawn(presence::run(
                Arc::downgrade(&hub),
                arrivals,
                options.presence_grace,
            )),
        ];
        hub.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(tasks.iter().map(tokio::task::JoinHandle::abort_handle));
        Ok(hub)
    }

    /// Where live events and the window come from.
    pub(crate) fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// Who is online, and the cluster's shared streams (on PostgreSQL).
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// The users who hold streams (or waiting polls) in this process.
    pub fn users_with_streams(&self) -> Vec<UserId> {
        self.streams_per_user
            .lock()
            .map(|per_user| per_user.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// How many streams (and waiting polls) `user` holds in this process.
    pub fn streams_of(&self, user: &UserId) -> usize {
        self.streams_per_user
            .lock()
            .map(|per_user| per_user.get(user).copied().unwrap_or(0))
            .unwrap_or_default()
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
            claim: None,
        })
    }

    /// The newest event the relay has published (and so, committed).
    pub fn relayed_event_id(&self) -> i64 {
        self.router.position()
    }

    /// The relay's position once it has published every event this process
    /// committed before now (another process's are there once their
    /// notification came, a few milliseconds after their commit): where a
    /// feed that gives no id starts, and what one that resumes must reach
    /// before it waits. Asks the store only when the relay cannot read it.
    pub async fn caught_up_position(&self) -> Result<i64> {
        let poked = self.wake.pokes();
        let mut passed = self.relay_passed.subscribe();
        let relayed = self.relay_read_ok.load(Ordering::Relaxed)
            && tokio::time::timeout(CAUGHT_UP_WAIT, passed.wait_for(|passed| *passed >= poked))
                .await
                .is_ok_and(|passed| passed.is_ok());
        if relayed {
            Ok(self.router.position())
        } else {
            let newest = self.store.event_bounds().await?.newest;
            Ok(newest.max(self.router.position()))
        }
    }

    /// Runs `read` (which only reads) again while it fails only for want
    /// of a free connection and the store answers the relay, until
    /// `patience` has passed: a burst of opens queues for the pool rather
    /// than send its streams away. `at` names the wait in the metrics.
    pub async fn retry_while_pool_busy<T, Read>(
        &self,
        at: &'static str,
        patience: Duration,
        mut read: impl FnMut() -> Read,
    ) -> Result<T>
    where
        Read: Future<Output = Result<T>>,
    {
        let started = tokio::time::Instant::now();
        loop {
            match read().await {
                Err(error)
                    if error.is_pool_busy()
                        && self.relay_read_ok.load(Ordering::Relaxed)
                        && started.elapsed() + POOL_RETRY_PAUSE < patience =>
                {
                    ::metrics::counter!(metrics::STORE_POOL_WAITS, "at" => at).increment(1);
                    tokio::time::sleep(POOL_RETRY_PAUSE).await;
                }
                done => return done,
            }
        }
    }

    /// Changes whenever the relay has published events.
    pub fn relayed_events(&self) -> watch::Receiver<i64> {
        self.relayed.subscribe()
    }

    /// Notes where a stream's catch-up was served from: the window (memory)
    /// or the store.
    pub fn note_catch_up(&self, from_window: bool) {
        let (source, count) = if from_window {
            ("window", &self.catch_ups_from_window)
        } else {
            ("store", &self.catch_ups_from_store)
        };
        ::metrics::counter!(metrics::CATCH_UPS, "source" => source).increment(1);
        count.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes a failed read of the store; how long reads have failed for.
    pub fn note_store_failure(&self) -> Duration {
        let mut since = self
            .store_down_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        since.get_or_insert_with(std::time::Instant::now).elapsed()
    }

    /// Notes a read of the store that worked.
    pub fn note_store_success(&self) {
        *self
            .store_down_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    /// What this process holds now: for leak checks and the metrics.
    pub fn stats(&self) -> HubStats {
        let users = self
            .streams_per_user
            .lock()
            .map(|per_user| per_user.len())
            .unwrap_or_default();
        let from_window = self.catch_ups_from_window.load(Ordering::Relaxed);
        let from_store = self.catch_ups_from_store.load(Ordering::Relaxed);
        let (window_events, window_bytes) = self.router.window_size();
        HubStats {
            open_streams: self.open_streams.load(Ordering::Relaxed),
            subscribers: self.router.subscribers(),
            users_with_streams: users,
            relayed_event_id: self.router.position(),
            deliveries: self.router.deliveries(),
            catch_ups: from_window + from_store,
            catch_ups_from_window: from_window,
            catch_ups_from_store: from_store,
            window_events,
            window_bytes,
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
    /// Events handed to streams (one per stream an event concerns).
    pub deliveries: u64,
    pub catch_ups: usize,
    pub catch_ups_from_window: usize,
    pub catch_ups_from_store: usize,
    pub window_events: usize,
    pub window_bytes: usize,
}

/// One open stream, counted until dropped.
pub struct StreamTicket {
    hub: Arc<Hub>,
    user: UserId,
    /// Its count in the cluster, where the instances share one.
    claim: Option<StreamClaim>,
}

impl StreamTicket {
    /// Holds the stream's count in the cluster for as long as the ticket.
    pub fn hold(&mut self, claim: StreamClaim) {
        self.claim = Some(claim);
    }
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
                self.hub.presence.left(&self.user);
            }
        }
    }
}

/// A router whose window holds the log's newest events, up to its bounds.
async fn preloaded_router(store: &dyn Store, options: &HubOptions) -> crate::error::Result<Router> {
    let bounds = store.event_bounds().await?;
    let first_kept = bounds.oldest.unwrap_or(bounds.newest + 1);
    let wanted = i64::try_from(options.window_events).unwrap_or(i64::MAX);
    let from = bounds.newest.saturating_sub(wanted).max(first_kept - 1);
    let router = Router::new(
        Window::new(from, options.window_events, options.window_bytes),
        options.buffer,
    );
    loop {
        let batch = store
            .relay_events_after(router.position(), RELAY_BATCH)
            .await?;
        let full = batch.len() == RELAY_BATCH as usize;
        router.publish(batch.into_iter().map(|e| Arc::new(Event::from_stored(e))));
        if !full {
            return Ok(router);
        }
    }
}

/// Reads the log after the last relayed id whenever woken (or polled), and
/// publishes what it finds in id order. Ids commit in order, so reading past
/// an id never skips one that commits later.
async fn relay(hub: std::sync::Weak<Hub>, wake: Arc<Wake>, poll_interval: Duration) {
    let mut poll = tokio::time::interval(poll_interval);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = wake.poked() => {}
            _ = poll.tick() => {}
        }
        let Some(hub) = hub.upgrade() else { return };
        loop {
            // Read before the log: this read sees every commit poked by then.
            let pokes = wake.pokes();
            let after = hub.router.position();
            let batch = match hub.store.relay_events_after(after, RELAY_BATCH).await {
                Ok(batch) => batch,
                Err(error) => {
                    hub.relay_read_ok.store(false, Ordering::Relaxed);
                    ::metrics::counter!(metrics::RELAY_ERRORS).increment(1);
                    let down_for = hub.note_store_failure();
                    tracing::warn!(%error, ?down_for, "relay cannot read the event log; retrying");
                    break;
                }
            };
            hub.note_store_success();
            hub.relay_read_ok.store(true, Ordering::Relaxed);
            let full = batch.len() == RELAY_BATCH as usize;
            ::metrics::counter!(metrics::RELAYED).increment(batch.len() as u64);
            let events: Vec<Arc<Event>> = batch
                .into_iter()
                .map(|stored| Arc::new(Event::from_stored(stored)))
                .collect();
            // Before the edits and deletions are published: once a stream
            // may see one, no catch-up from the window shows the old body.
            let rewritten: Vec<MessageId> =
                events.iter().filter_map(|e| e.rewrote.clone()).collect();
            if !rewritten.is_empty() {
                rewrite_window(&hub, &rewritten).await;
            }
            let delivered = hub.router.publish(events);
            ::metrics::counter!(metrics::DELIVERIES).increment(delivered as u64);
            hub.relayed.send_replace(hub.router.position());
            if !full {
                hub.relay_passed.send_replace(pokes);
                break;
            }
        }
    }
}

/// Gives the window the log's events of `messages` as an edit or deletion
/// left them, so a catch-up from memory shows no body the store no longer
/// has. Should the read fail, the window keeps the old copies until they
/// age out: a catch-up then shows the old body just before the change.
async fn rewrite_window(hub: &Hub, messages: &[MessageId]) {
    match hub.store.message_events(messages).await {
        Ok(events) => hub
            .router
            .rewrite(events.into_iter().map(|e| Arc::new(Event::from_stored(e)))),
        Err(error) => tracing::warn!(%error, "could not read the events an edit rewrote"),
    }
}

/// Makes messages older than `window` tombstones; with no window, keeps them.
async fn message_retention(store: Arc<dyn Store>, window: Option<Duration>, batch: u32) {
    let Some(window) = window else { return };
    sweep_older_than(window, |cutoff| {
        let store = store.clone();
        async move {
            match store.erase_messages_before(cutoff, batch).await {
                Ok(0) => {}
                Ok(erased) => tracing::info!(erased, "erased messages past the retention window"),
                Err(error) => tracing::warn!(%error, "could not erase old messages"),
            }
        }
    })
    .await
}

/// Runs `sweep` with the moment `window` ago, hourly (or sooner for short
/// windows), for ever.
async fn sweep_older_than<F, Swept>(window: Duration, mut sweep: F)
where
    F: FnMut(Timestamp) -> Swept,
    Swept: Future<Output = ()>,
{
    let every = (window / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        sweep(Timestamp::from_unix_ms(
            Timestamp::now().unix_ms().saturating_sub(window_ms),
        ))
        .await;
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

/// Deletes events older than the retention window.
async fn retention(store: Arc<dyn Store>, window: Duration, batch: u32) {
    sweep_older_than(window, |cutoff| {
        let store = store.clone();
        async move {
            match store.purge_events(cutoff, batch).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "purged events past the retention window"),
                Err(error) => tracing::warn!(%error, "could not purge old events"),
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership(data: &str) -> Membership {
        let stored = StoredEvent {
            id: 1,
            room_id: "r".to_owned(),
            subject_id: None,
            data: data.to_owned(),
        };
        Event::from_stored(stored)
            .membership
            .expect("a room event has a membership")
    }

    fn users(ids: &[&str]) -> HashSet<UserId> {
        ids.iter()
            .map(|id| UserId::from_store((*id).to_owned()))
            .collect()
    }

    #[test]
    fn a_new_room_puts_its_members_in_and_a_change_only_the_member_added() {
        let created = membership(
            r#"{"type":"room","room":{"id":"r","memberIds":["ann","bob"]},"change":"created"}"#,
        );
        assert_eq!(created.joined, users(&["ann", "bob"]));
        let added = membership(
            r#"{"type":"room","room":{"id":"r"},"change":"member_added","userId":"cat"}"#,
        );
        assert_eq!(added.joined, users(&["cat"]));
        let removed = membership(
            r#"{"type":"room","room":{"id":"r"},"change":"member_removed","userId":"cat"}"#,
        );
        assert!(removed.joined.is_empty());
        assert_eq!(removed.user, Some(UserId::from_store("cat".to_owned())));
    }

    #[test]
    fn membership_events_logged_with_the_whole_list_read_the_same() {
        let added = membership(
            r#"{"type":"room","room":{"id":"r","memberIds":["ann","cat"]},"change":"member_added","userId":"cat"}"#,
        );
        assert_eq!(added.joined, users(&["cat"]));
        let removed = membership(
            r#"{"type":"room","room":{"id":"r","memberIds":["ann"]},"change":"member_removed","userId":"cat"}"#,
        );
        assert!(removed.joined.is_empty());
    }
}
