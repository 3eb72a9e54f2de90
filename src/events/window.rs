//! The recent-event window: the newest events the relay has read, in id
//! order, bounded by count and bytes, shared by every stream of the process.
//! A stream that resumes or falls behind inside it catches up from memory,
//! with the very frames the live streams sent; only older ids go to the store.

use super::Event;
use crate::model::RoomId;
use std::collections::VecDeque;
use std::sync::Arc;

pub struct Window {
    events: VecDeque<Arc<Event>>,
    /// The frames' bytes held, for the byte bound.
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
    /// Every event of the log after this id, up to `newest`, is held.
    floor: i64,
    /// The newest event appended: where the relay is.
    newest: i64,
}

impl Window {
    /// An empty window at `newest`: it holds everything after it that is appended.
    pub fn new(newest: i64, max_events: usize, max_bytes: usize) -> Self {
        Self {
            events: VecDeque::new(),
            bytes: 0,
            max_events,
            max_bytes,
            floor: newest,
            newest,
        }
    }

    /// Appends the log's next event (ids only rise), dropping the oldest
    /// beyond the bounds.
    pub fn push(&mut self, event: Arc<Event>) {
        debug_assert!(
            event.id > self.newest,
            "the relay reads the log in id order"
        );
        self.newest = event.id;
        self.bytes += event.frame.len();
        self.events.push_back(event);
        self.shrink();
    }

    /// Puts `event` in the place of the held event with its id, if there is
    /// one: an edit or a deletion rewrote it in the log, so that what a
    /// catch-up reads from memory is what it would read from the store.
    pub fn replace(&mut self, event: Arc<Event>) {
        let Ok(at) = self.events.binary_search_by_key(&event.id, |held| held.id) else {
            return;
        };
        self.bytes = self.bytes - self.events[at].frame.len() + event.frame.len();
        self.events[at] = event;
        self.shrink();
    }

    /// Drops the events of a room just deleted (the log purges them): the
    /// window still holds every event of the log after its floor.
    pub fn forget_room(&mut self, room: &RoomId) {
        let bytes = &mut self.bytes;
        self.events.retain(|event| {
            let kept = event.room_id != *room;
            if !kept {
                *bytes -= event.frame.len();
            }
            kept
        });
    }

    /// Drops the oldest events beyond the bounds.
    fn shrink(&mut self) {
        while self.events.len() > self.max_events || self.bytes > self.max_bytes {
            let Some(oldest) = self.events.pop_front() else {
                break;
            };
            self.bytes -= oldest.frame.len();
            self.floor = oldest.id;
        }
    }

    /// Whether the window holds every event after `id`.
    pub fn covers(&self, id: i64) -> bool {
        id >= self.floor
    }

    /// The newest event appended.
    pub fn newest(&self) -> i64 {
        self.newest
    }

    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The events after `after` that `wanted` keeps, up to `limit` of them,
    /// looking at no more than `scan` events; and the id up to which the
    /// window was looked through. Only for an `after` the window covers.
    pub fn read(
        &self,
        after: i64,
        limit: usize,
        scan: usize,
        mut wanted: impl FnMut(&Event) -> bool,
    ) -> (Vec<Arc<Event>>, i64) {
        debug_assert!(self.covers(after));
        let start = self.events.partition_point(|event| event.id <= after);
        let mut found = Vec::new();
        let mut reached = after.max(self.floor);
        for event in self.events.range(start..).take(scan.max(1)) {
            if found.len() == limit {
                break;
            }
            reached = event.id;
            if wanted(event) {
                found.push(event.clone());
            }
        }
        (found, reached)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredEvent;

    fn event(id: i64, room: &str, body: usize) -> Arc<Event> {
        Arc::new(Event::from_stored(StoredEvent {
            id,
            room_id: room.to_owned(),
            subject_id: None,
            data: format!(r#"{{"type":"message","body":"{}"}}"#, "x".repeat(body)),
        }))
    }

    #[test]
    fn it_holds_the_newest_events_within_its_count_and_says_what_it_covers() {
        let mut window = Window::new(10, 3, usize::MAX);
        assert!(window.covers(10) && !window.covers(9));
        for id in 11..=15 {
            window.push(event(id, "a", 1));
        }
        assert_eq!((window.event_count(), window.newest()), (3, 15));
        // 13, 14 and 15 are held: every event after 12 is here.
        assert!(window.covers(12) && !window.covers(11));
        let (events, reached) = window.read(12, 10, 10, |_| true);
        assert_eq!(
            events.iter().map(|e| e.id).collect::<Vec<_>>(),
            [13, 14, 15]
        );
        assert_eq!(reached, 15);
    }

    #[test]
    fn its_byte_bound_drops_the_oldest_and_a_frame_too_big_is_not_held() {
        let size = event(1, "a", 100).frame.len();
        let mut window = Window::new(0, usize::MAX, size * 2);
        for id in 1..=3 {
            window.push(event(id, "a", 100));
        }
        assert_eq!((window.event_count(), window.bytes()), (2, size * 2));
        assert!(window.covers(1) && !window.covers(0));
        window.push(event(4, "a", 1000));
        assert_eq!(window.event_count(), 0);
        assert!(window.covers(4) && !window.covers(3));
    }

    #[test]
    fn a_replaced_event_is_read_in_its_new_form_and_an_id_not_held_changes_nothing() {
        let mut window = Window::new(0, 100, usize::MAX);
        for id in 1..=3 {
            window.push(event(id, "a", 1));
        }
        window.replace(event(2, "a", 10));
        window.replace(event(7, "a", 10));
        let (events, _) = window.read(0, 10, 10, |_| true);
        let sizes: Vec<usize> = events.iter().map(|e| e.frame.len()).collect();
        let (small, large) = (event(1, "a", 1).frame.len(), event(2, "a", 10).frame.len());
        assert_eq!(sizes, [small, large, small]);
        assert_eq!(window.bytes(), 2 * small + large);
    }

    #[test]
    fn a_deleted_rooms_events_leave_and_the_window_still_covers_what_it_did() {
        let mut window = Window::new(0, 100, usize::MAX);
        for id in 1..=4 {
            window.push(event(id, if id % 2 == 0 { "gone" } else { "kept" }, 1));
        }
        window.forget_room(&RoomId::from_store("gone".to_owned()));
        let (events, reached) = window.read(0, 10, 10, |_| true);
        assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(reached, 3);
        assert_eq!(window.bytes(), 2 * event(1, "kept", 1).frame.len());
        assert!(window.covers(0));
    }

    #[test]
    fn a_read_keeps_what_is_wanted_within_its_limit_and_scan_and_says_how_far_it_looked() {
        let mut window = Window::new(0, 100, usize::MAX);
        for id in 1..=10 {
            window.push(event(id, if id % 2 == 0 { "even" } else { "odd" }, 1));
        }
        let even = |e: &Event| e.room_id.as_str() == "even";
        let (events, reached) = window.read(0, 2, 100, even);
        assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [2, 4]);
        assert_eq!(reached, 4, "stopped at its limit");
        let (events, reached) = window.read(4, 100, 3, even);
        assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [6]);
        assert_eq!(reached, 7, "stopped at its scan");
        let (events, reached) = window.read(10, 100, 100, even);
        assert!(events.is_empty());
        assert_eq!(reached, 10);
    }
}
