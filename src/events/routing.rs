//! Routing by audience: which of the process's live streams an event may
//! concern. A room's room streams share one channel, and admins' global
//! streams another (one send reaches them all, as in a per-room hub); each
//! member's global stream has a queue of its own, found through an index from
//! a room to the global streams of its members. The relay publishes each
//! event only to those; no stream is woken to throw an event away.
//!
//! The indexes change with the membership events, in log order, as they are
//! published: a member's global stream gains a room at the event that puts
//! them in it and loses it just after the event that removes them, or
//! deletes the room (which it still receives). A feed joins the routes only when it has read everything
//! up to the relay's position (from the window or the store), with its
//! filter's rooms as of there, so between the two nothing falls through.
//!
//! Signals (typing, presence: see `signals`) go only to the subscribers that
//! asked for them: admins' and room streams' through channels of their own
//! beside the events', members' in their queue; nobody else is woken.
//!
//! Channels and queues are bounded. A subscriber that falls that far behind
//! (a member's queue is emptied then: what it held is in the window, or the
//! log) sees its queue end, catches up, then joins again.
//!
//! With its tests the file is over 800 lines, and stays whole: the tests
//! check the invariants above against the one lock that keeps them.

use super::Event;
use super::window::Window;
use crate::model::{RoomChange, RoomId, UserId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, broadcast};

/// Which events one live subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every event: an admin's global stream.
    Everything,
    /// One room's events.
    Room(RoomId),
    /// The events of the member's rooms (kept current by the membership
    /// events), and of a room they are removed from.
    Member {
        user: UserId,
        rooms: HashSet<RoomId>,
    },
}

/// What a feed at some id gets from the router.
pub enum FromWindow {
    /// Events after the id that the feed wants, and the id up to which the
    /// window was looked through: read them, then ask again.
    Events {
        events: Vec<Arc<Event>>,
        reached: i64,
    },
    /// Nothing between the id and the relay: the feed is live from here.
    Live(Subscription),
    /// The window no longer holds the events after the id: read the store.
    TooOld,
}

/// The most events one look at the window goes through, so the lock it
/// holds stays short whatever a feed skips.
pub const SCAN: usize = 4096;

/// The most bytes of frames one subscriber's queue holds: a stream this far
/// behind reads from the window, and does not pin what the window let go.
const QUEUE_BYTES: usize = 1 << 20;

pub struct Router {
    routes: Mutex<Routes>,
    /// Each channel and queue holds this many events.
    queue: usize,
}

struct Routes {
    window: Window,
    /// Events handed to subscribers, ever.
    deliveries: u64,
    /// Each room's room streams, on one channel (made with its first).
    rooms: HashMap<RoomId, broadcast::Sender<Arc<Event>>>,
    /// Admins' global streams, on one channel.
    everything: broadcast::Sender<Arc<Event>>,
    /// The signals for the room streams, and the admins' global streams,
    /// that take them.
    signal_rooms: HashMap<RoomId, broadcast::Sender<Arc<Event>>>,
    signal_everything: broadcast::Sender<Arc<Event>>,
    next_id: u64,
    /// Members' global streams.
    members: HashMap<u64, MemberStream>,
    /// The global streams of each room's members.
    by_room: HashMap<RoomId, HashSet<u64>>,
    /// Each member's global streams, to find them when their rooms change.
    by_member: HashMap<UserId, HashSet<u64>>,
}

struct MemberStream {
    queue: Arc<Queue>,
    user: UserId,
    rooms: HashSet<RoomId>,
    /// Whether it takes signals.
    signals: bool,
}

/// One subscriber's events, in id order. Only the router pushes (under its
/// lock); only the subscriber's feed takes.
struct Queue {
    state: Mutex<QueueState>,
    arrived: Notify,
}

#[derive(Default)]
struct QueueState {
    events: VecDeque<Arc<Event>>,
    bytes: usize,
    /// Dropped from the routes: nothing more comes.
    dropped: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an event; false (and the queue emptied and closed) if it would
    /// pass either bound.
    fn push(&self, event: &Arc<Event>, max_events: usize) -> bool {
        let mut state = self.lock();
        let bytes = state.bytes + event.frame.len();
        if state.events.len() >= max_events || bytes > QUEUE_BYTES {
            state.events = VecDeque::new();
            state.bytes = 0;
            state.dropped = true;
            drop(state);
            self.arrived.notify_one();
            return false;
        }
        state.bytes = bytes;
        state.events.push_back(event.clone());
        drop(state);
        self.arrived.notify_one();
        true
    }

    fn take(&self) -> Queued {
        let mut state = self.lock();
        match state.events.pop_front() {
            Some(event) => {
                state.bytes -= event.frame.len();
                Queued::Event(event)
            }
            None if state.dropped => Queued::Dropped,
            None => Queued::Empty,
        }
    }

    fn is_empty(&self) -> bool {
        self.lock().events.is_empty()
    }
}

impl Router {
    pub fn new(window: Window, queue: usize) -> Self {
        Self {
            routes: Mutex::new(Routes {
                window,
                deliveries: 0,
                rooms: HashMap::new(),
                everything: broadcast::Sender::new(queue.max(1)),
                signal_rooms: HashMap::new(),
                signal_everything: broadcast::Sender::new(queue.max(1)),
                next_id: 0,
                members: HashMap::new(),
                by_room: HashMap::new(),
                by_member: HashMap::new(),
            }),
            queue: queue.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends events, in id order, to the window and hands each to its
    /// audience; returns how many deliveries that made. The lock is taken
    /// per event: each is whole for whoever joins, and nobody waits behind a
    /// batch.
    pub fn publish(&self, events: impl IntoIterator<Item = Arc<Event>>) -> usize {
        events
            .into_iter()
            .map(|event| self.lock().publish(event, self.queue))
            .sum()
    }

    /// Hands a signal (never kept in the window) to the live subscribers of
    /// `rooms`: admins', those rooms' room streams, and their members'
    /// global streams, each once; how many got it.
    pub fn signal(&self, event: &Arc<Event>, rooms: &[RoomId]) -> usize {
        let mut routes = self.lock();
        let mut delivered = routes.signal_everything.send(event.clone()).unwrap_or(0);
        let mut members = HashSet::new();
        for room in rooms {
            if let Some(channel) = routes.signal_rooms.get(room) {
                delivered += channel.send(event.clone()).unwrap_or(0);
            }
            members.extend(routes.by_room.get(room).into_iter().flatten().copied());
        }
        for id in members {
            let Some(member) = routes.members.get(&id).filter(|member| member.signals) else {
                continue;
            };
            if member.queue.push(event, self.queue) {
                delivered += 1;
            } else {
                routes.unsubscribe_member(id);
            }
        }
        delivered
    }

    /// Replaces the window's copies of events the log rewrote (see
    /// `Window::replace`). Streams already handed the old copy get the
    /// edit or deletion next.
    pub fn rewrite(&self, events: impl IntoIterator<Item = Arc<Event>>) {
        let mut routes = self.lock();
        for event in events {
            routes.window.replace(event);
        }
    }

    /// The newest event published.
    pub fn position(&self) -> i64 {
        self.lock().window.newest()
    }

    /// The newest event published, if the window holds every event after
    /// `id` up to it: a resume from `id` can be answered from memory.
    pub fn covering(&self, id: i64) -> Option<i64> {
        let routes = self.lock();
        let newest = routes.window.newest();
        (routes.window.covers(id) && id <= newest).then_some(newest)
    }

    /// Open subscribers now.
    pub fn subscribers(&self) -> usize {
        let routes = self.lock();
        routes.members.len()
            + routes.everything.receiver_count()
            + routes
                .rooms
                .values()
                .map(broadcast::Sender::receiver_count)
                .sum::<usize>()
    }

    /// Events handed to subscribers' queues so far: once a subscriber has
    /// an event, this counts the whole publication it came in.
    pub fn deliveries(&self) -> u64 {
        self.lock().deliveries
    }

    /// What a feed that has passed every event up to `after` reads next:
    /// up to `limit` events from the window that `wanted` keeps (looking at
    /// no more than `SCAN`), or, when it has nothing after `after`, a
    /// subscription for the audience `audience` makes (the feed's filter as
    /// of `after`; with the signals too if `signals`), or word that `after`
    /// is too old.
    pub fn catch_up(
        self: &Arc<Self>,
        after: i64,
        limit: usize,
        wanted: impl FnMut(&Event) -> bool,
        audience: impl FnOnce() -> Audience,
        signals: bool,
    ) -> FromWindow {
        let mut routes = self.lock();
        if after >= routes.window.newest() {
            return FromWindow::Live(routes.subscribe(self, audience(), signals));
        }
        if !routes.window.covers(after) {
            return FromWindow::TooOld;
        }
        let (events, reached) = routes.window.read(after, limit, SCAN, wanted);
        FromWindow::Events { events, reached }
    }

    /// The relay's position, if nothing is queued for `subscription`: it has
    /// had everything up to there that it may see.
    pub fn quiet_position(&self, subscription: &Subscription) -> Option<i64> {
        let routes = self.lock();
        subscription.is_empty().then(|| routes.window.newest())
    }

    /// The window's size now: events and bytes.
    pub fn window_size(&self) -> (usize, usize) {
        let routes = self.lock();
        (routes.window.event_count(), routes.window.bytes())
    }
}

impl Routes {
    fn subscribe(
        &mut self,
        router: &Arc<Router>,
        audience: Audience,
        signals: bool,
    ) -> Subscription {
        let live = match audience {
            Audience::Everything => Live::Channel {
                room: None,
                receiver: self.everything.subscribe(),
                signals: signals.then(|| self.signal_everything.subscribe()),
            },
            Audience::Room(room) => {
                let receiver = self
                    .rooms
                    .entry(room.clone())
                    .or_insert_with(|| broadcast::Sender::new(router.queue))
                    .subscribe();
                let signals = signals.then(|| {
                    self.signal_rooms
                        .entry(room.clone())
                        .or_insert_with(|| broadcast::Sender::new(router.queue))
                        .subscribe()
                });
                Live::Channel {
                    room: Some(room),
                    receiver,
                    signals,
                }
            }
            Audience::Member { user, rooms } => {
                let id = self.next_id;
                self.next_id += 1;
                self.by_member.entry(user.clone()).or_default().insert(id);
                for room in &rooms {
                    self.by_room.entry(room.clone()).or_default().insert(id);
                }
                let queue = Arc::new(Queue {
                    state: Mutex::new(QueueState::default()),
                    arrived: Notify::new(),
                });
                let member = MemberStream {
                    queue: queue.clone(),
                    user,
                    rooms,
                    signals,
                };
                self.members.insert(id, member);
                Live::Queue { id, queue }
            }
        };
        Subscription {
            router: router.clone(),
            live,
        }
    }

    fn unsubscribe_member(&mut self, id: u64) {
        let Some(member) = self.members.remove(&id) else {
            return;
        };
        for room in &member.rooms {
            leave(&mut self.by_room, room, id);
        }
        leave(&mut self.by_member, &member.user, id);
    }

    /// A room's channel goes with its last room stream (the one leaving is
    /// still subscribed as it asks), and its signals' with the last that
    /// took them.
    fn leave_room_channel(&mut self, room: &RoomId, took_signals: bool) {
        if self
            .rooms
            .get(room)
            .is_some_and(|channel| channel.receiver_count() <= 1)
        {
            self.rooms.remove(room);
        }
        if took_signals
            && self
                .signal_rooms
                .get(room)
                .is_some_and(|channel| channel.receiver_count() <= 1)
        {
            self.signal_rooms.remove(room);
        }
    }

    /// The member streams of the users in `members`: by the shorter of the
    /// two lists, so a new big room costs only its members with streams.
    fn member_streams_among(&self, members: &HashSet<UserId>) -> Vec<u64> {
        if self.by_member.len() < members.len() {
            self.by_member
                .iter()
                .filter(|(user, _)| members.contains(*user))
                .flat_map(|(_, ids)| ids.iter().copied())
                .collect()
        } else {
            members
                .iter()
                .filter_map(|user| self.by_member.get(user))
                .flatten()
                .copied()
                .collect()
        }
    }

    /// Sets whether member stream `id` routes `room`.
    fn route_member(&mut self, id: u64, room: &RoomId, routed: bool) {
        let Some(MemberStream { rooms, .. }) = self.members.get_mut(&id) else {
            return;
        };
        if routed && rooms.insert(room.clone()) {
            self.by_room.entry(room.clone()).or_default().insert(id);
        } else if !routed && rooms.remove(room) {
            leave(&mut self.by_room, room, id);
        }
    }

    fn publish(&mut self, event: Arc<Event>, queue: usize) -> usize {
        let room = &event.room_id;
        let deleted = event
            .membership
            .as_ref()
            .is_some_and(|m| m.change == RoomChange::Deleted);
        if deleted {
            // The log no longer has them: nor does a catch-up from memory.
            self.window.forget_room(room);
        }
        self.window.push(event.clone());
        // Whoever the event puts in the room receives it.
        if let Some(membership) = &event.membership {
            for id in self.member_streams_among(&membership.joined) {
                self.route_member(id, room, true);
            }
        }
        // No receiver is fine: nobody is listening.
        let mut delivered = self.everything.send(event.clone()).unwrap_or(0);
        if event.agents_only {
            // Only admins' global streams take it (their filter's rule).
            self.deliveries += delivered as u64;
            return delivered;
        }
        if let Some(channel) = self.rooms.get(room) {
            delivered += channel.send(event.clone()).unwrap_or(0);
        }
        let mut fell_behind = Vec::new();
        for id in self.by_room.get(room).into_iter().flatten() {
            let Some(member) = self.members.get(id) else {
                continue;
            };
            if member.queue.push(&event, queue) {
                delivered += 1;
            } else {
                // It reads the rest from the window, or the log.
                fell_behind.push(*id);
            }
        }
        // A member removed has been told; the room leaves their routes now.
        if let Some(membership) = &event.membership
            && membership.change == RoomChange::MemberRemoved
            && let Some(user) = &membership.user
        {
            let ids: Vec<u64> = self
                .by_member
                .get(user)
                .into_iter()
                .flatten()
                .copied()
                .collect();
            for id in ids {
                self.route_member(id, room, false);
            }
        }
        // A deleted room leaves every route now; its room streams end.
        if deleted {
            for id in self.by_room.remove(room).into_iter().flatten() {
                if let Some(member) = self.members.get_mut(&id) {
                    member.rooms.remove(room);
                }
            }
        }
        for id in fell_behind {
            self.unsubscribe_member(id);
        }
        self.deliveries += delivered as u64;
        delivered
    }
}

/// Takes `id` out of `key`'s set, and the set out of the index once empty.
fn leave<K: std::hash::Hash + Eq>(index: &mut HashMap<K, HashSet<u64>>, key: &K, id: u64) {
    if let Some(ids) = index.get_mut(key) {
        ids.remove(&id);
        if ids.is_empty() {
            index.remove(key);
        }
    }
}

/// What a subscriber's queue holds now.
pub enum Queued {
    Event(Arc<Event>),
    Empty,
    /// Dropped from the routes, or passed by its channel, for falling
    /// behind: its feed catches up.
    Dropped,
}

/// A live subscriber's end: the events routed to it, in id order, until it
/// falls too far behind.
pub struct Subscription {
    router: Arc<Router>,
    live: Live,
}

enum Live {
    /// A member's global stream: a queue of its own.
    Queue { id: u64, queue: Arc<Queue> },
    /// A room's streams (`room`) or admins' (`None`): a shared channel,
    /// and the signals' beside it if the stream takes them.
    Channel {
        room: Option<RoomId>,
        receiver: broadcast::Receiver<Arc<Event>>,
        signals: Option<broadcast::Receiver<Arc<Event>>>,
    },
}

impl Subscription {
    /// The next event; `None` once it fell too far behind. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        match &mut self.live {
            Live::Queue { queue, .. } => loop {
                // Registered before looking, so a push in between still
                // wakes it (one a cancelled wait missed is kept as a permit).
                let arrived = queue.arrived.notified();
                match queue.take() {
                    Queued::Event(event) => return Some(event),
                    Queued::Dropped => return None,
                    Queued::Empty => arrived.await,
                }
            },
            Live::Channel {
                receiver,
                signals: None,
                ..
            } => receiver.recv().await.ok(),
            Live::Channel {
                receiver,
                signals: Some(signals),
                ..
            } => loop {
                tokio::select! {
                    biased;
                    // Lagged: the window has what the channel no longer holds.
                    event = receiver.recv() => return event.ok(),
                    // A signal missed is gone: the next one will do.
                    signal = signals.recv() => match signal {
                        Ok(signal) => return Some(signal),
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => {
                            return receiver.recv().await.ok();
                        }
                    },
                }
            },
        }
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Queued {
        match &mut self.live {
            Live::Queue { queue, .. } => queue.take(),
            Live::Channel {
                receiver, signals, ..
            } => match receiver.try_recv() {
                Ok(event) => Queued::Event(event),
                Err(broadcast::error::TryRecvError::Empty) => {
                    match signals.as_mut().map(broadcast::Receiver::try_recv) {
                        Some(Ok(signal)) => Queued::Event(signal),
                        _ => Queued::Empty,
                    }
                }
                Err(_) => Queued::Dropped,
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        match &self.live {
            Live::Queue { queue, .. } => queue.is_empty(),
            Live::Channel { receiver, .. } => receiver.is_empty(),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut routes = self.router.lock();
        match &self.live {
            Live::Queue { id, .. } => routes.unsubscribe_member(*id),
            Live::Channel {
                room: Some(room),
                signals,
                ..
            } => routes.leave_room_channel(room, signals.is_some()),
            Live::Channel { room: None, .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredEvent;

    fn message(id: i64, room: &str) -> Arc<Event> {
        Arc::new(Event::from_stored(StoredEvent {
            id,
            room_id: room.to_owned(),
            subject_id: None,
            data: r#"{"type":"message"}"#.to_owned(),
        }))
    }

    fn membership(id: i64, room: &str, change: &str, user: &str) -> Arc<Event> {
        // Tag first, as the store writes it.
        let data =
            format!(r#"{{"type":"room","change":"{change}","userId":"{user}","room":{{}}}}"#);
        Arc::new(Event::from_stored(StoredEvent {
            id,
            room_id: room.to_owned(),
            subject_id: Some(user.to_owned()),
            data,
        }))
    }

    fn router() -> Arc<Router> {
        Arc::new(Router::new(Window::new(0, 100, usize::MAX), 4))
    }

    fn live(router: &Arc<Router>, audience: Audience) -> Subscription {
        subscribe(router, audience, false)
    }

    fn subscribe(router: &Arc<Router>, audience: Audience, signals: bool) -> Subscription {
        match router.catch_up(router.position(), 10, |_| true, || audience, signals) {
            FromWindow::Live(subscription) => subscription,
            _ => panic!("a feed at the relay's position goes live"),
        }
    }

    fn signal(room: &str) -> Arc<Event> {
        Arc::new(Event::signal(
            RoomId::from_store(room.to_owned()),
            bytes::Bytes::from_static(b"data: {}\n\n"),
        ))
    }

    fn ids(subscription: &mut Subscription) -> Vec<i64> {
        let mut ids = Vec::new();
        while let Queued::Event(event) = subscription.try_recv() {
            ids.push(event.id);
        }
        ids
    }

    fn room(id: &str) -> RoomId {
        RoomId::from_store(id.to_owned())
    }

    /// The audience of `user`'s global stream, in `rooms`.
    fn member(user: &str, rooms: &[&str]) -> Audience {
        Audience::Member {
            user: UserId::from_store(user.to_owned()),
            rooms: rooms.iter().map(|id| room(id)).collect(),
        }
    }

    #[test]
    fn an_event_reaches_its_rooms_streams_its_members_and_admins_and_no_one_else() {
        let router = router();
        let mut room_a = live(&router, Audience::Room(room("a")));
        let mut room_b = live(&router, Audience::Room(room("b")));
        let mut admin = live(&router, Audience::Everything);
        let mut ann = live(&router, member("ann", &["a"]));
        assert_eq!(router.publish([message(1, "a")]), 3);
        assert_eq!(ids(&mut room_a), [1]);
        assert_eq!(ids(&mut admin), [1]);
        assert_eq!(ids(&mut ann), [1]);
        assert!(ids(&mut room_b).is_empty(), "not woken");
    }

    #[test]
    fn a_signal_reaches_only_the_subscribers_of_its_rooms_that_take_signals() {
        let router = router();
        let mut room_a = subscribe(&router, Audience::Room(room("a")), true);
        let mut room_b = subscribe(&router, Audience::Room(room("b")), true);
        let mut room_a_plain = live(&router, Audience::Room(room("a")));
        let mut admin = subscribe(&router, Audience::Everything, true);
        let mut admin_plain = live(&router, Audience::Everything);
        let mut ann = subscribe(&router, member("ann", &["a", "b"]), true);
        let mut bob_plain = live(&router, member("bob", &["a"]));
        // About both rooms: ann, in both, gets it once.
        assert_eq!(router.signal(&signal("a"), &[room("a"), room("b")]), 4);
        for taker in [&mut room_a, &mut room_b, &mut admin, &mut ann] {
            assert!(matches!(taker.try_recv(), Queued::Event(e) if e.ephemeral));
            assert!(matches!(taker.try_recv(), Queued::Empty), "once");
        }
        for plain in [&mut room_a_plain, &mut admin_plain, &mut bob_plain] {
            assert!(matches!(plain.try_recv(), Queued::Empty), "not woken");
        }
        assert_eq!(router.position(), 0, "not in the window");
        drop((room_a, room_b, room_a_plain));
        assert!(router.lock().signal_rooms.is_empty());
    }

    #[test]
    fn a_member_gains_a_room_at_the_event_that_adds_them_and_loses_it_after_the_removal() {
        let router = router();
        let mut bob = live(&router, member("bob", &[]));
        router.publish([
            message(1, "c"),
            membership(2, "c", "member_added", "bob"),
            message(3, "c"),
            membership(4, "c", "member_removed", "bob"),
            message(5, "c"),
        ]);
        assert_eq!(ids(&mut bob), [2, 3, 4]);
        drop(bob);
        assert_eq!(router.subscribers(), 0);
        assert!(router.lock().by_room.is_empty() && router.lock().by_member.is_empty());
    }

    #[test]
    fn a_member_that_falls_a_queue_behind_is_dropped_and_catches_up_from_the_window() {
        let router = router();
        let mut slow = live(&router, member("ann", &["a"]));
        router.publish((1..=2).map(|id| message(id, "a")));
        assert_eq!(ids(&mut slow), [1, 2]);
        router.publish((3..=6).map(|id| message(id, "a")));
        assert_eq!(router.subscribers(), 1, "four fit");
        router.publish([message(7, "a")]);
        // At the fifth it was dropped, and its queue emptied: it pins no
        // event the window may let go. It catches up from the last it took.
        assert_eq!(router.subscribers(), 0);
        assert!(matches!(slow.try_recv(), Queued::Dropped));
        let FromWindow::Events { events, reached } =
            router.catch_up(2, 10, |_| true, || Audience::Everything, false)
        else {
            panic!("the window holds what it missed")
        };
        assert_eq!(
            events.iter().map(|e| e.id).collect::<Vec<_>>(),
            [3, 4, 5, 6, 7]
        );
        assert_eq!(reached, 7);
        assert!(matches!(
            router.catch_up(7, 10, |_| true, || Audience::Everything, false),
            FromWindow::Live(_)
        ));
    }

    #[test]
    fn a_room_stream_that_falls_its_channel_behind_catches_up_and_the_channel_goes_with_it() {
        let router = router();
        let mut slow = live(&router, Audience::Room(room("a")));
        let mut other = live(&router, Audience::Room(room("a")));
        router.publish((1..=6).map(|id| message(id, "a")));
        // The channel holds four: both fell behind, and catch up from the window.
        assert!(matches!(slow.try_recv(), Queued::Dropped));
        assert!(matches!(other.try_recv(), Queued::Dropped));
        assert_eq!(router.lock().rooms.len(), 1);
        drop((slow, other));
        assert!(
            router.lock().rooms.is_empty(),
            "no channel for a room nobody watches"
        );
    }

    #[tokio::test]
    async fn a_waiting_subscriber_wakes_for_an_event_even_after_a_cancelled_wait() {
        let router = router();
        let mut waiting = live(&router, member("ann", &["a"]));
        // A wait given up (a heartbeat won the race), then an event.
        let gave_up =
            tokio::time::timeout(std::time::Duration::from_millis(10), waiting.recv()).await;
        assert!(gave_up.is_err());
        let publisher = {
            let router = router.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                router.publish([message(1, "a")]);
            })
        };
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), waiting.recv())
            .await
            .expect("woken")
            .expect("an event");
        assert_eq!(event.id, 1);
        publisher.await.unwrap();
    }

    #[test]
    fn an_id_the_window_no_longer_holds_goes_to_the_store() {
        let router = Arc::new(Router::new(Window::new(0, 2, usize::MAX), 4));
        router.publish((1..=5).map(|id| message(id, "a")));
        assert!(matches!(
            router.catch_up(2, 10, |_| true, || Audience::Everything, false),
            FromWindow::TooOld
        ));
        assert!(matches!(
            router.catch_up(3, 10, |_| true, || Audience::Everything, false),
            FromWindow::Events { .. }
        ));
    }
}
