//! Which events one stream carries, decided event by event, in id order.

use super::{Audience, Event};
use crate::model::{Caller, RoomChange, RoomId};
use crate::store::EventScope;
use std::collections::HashSet;

/// What a stream does with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Send,
    Skip,
    /// Send it, then end the stream (its viewer just lost the room).
    SendAndEnd,
}

#[derive(Clone)]
pub struct Filter {
    caller: Caller,
    scope: EventScope,
    /// For a user's global stream: the rooms they are in as of the last
    /// event passed, kept current by the membership events that pass.
    rooms: HashSet<RoomId>,
}

impl Filter {
    /// `rooms`: for a user's global feed, the rooms they were in at the
    /// feed's starting id; the membership events after it change them.
    pub fn new(caller: Caller, scope: EventScope, rooms: impl IntoIterator<Item = RoomId>) -> Self {
        Self {
            caller,
            scope,
            rooms: rooms.into_iter().collect(),
        }
    }

    pub fn scope(&self) -> &EventScope {
        &self.scope
    }

    /// Whom live events are routed to for this filter, as of the last event
    /// it passed: the same rooms it would admit.
    pub fn audience(&self) -> Audience {
        match &self.scope {
            EventScope::All => Audience::Everything,
            EventScope::Room(room) => Audience::Room(room.clone()),
            EventScope::MemberOf(user) => Audience::Member {
                user: user.clone(),
                rooms: self.rooms.clone(),
            },
        }
    }

    pub fn admit(&mut self, event: &Event) -> Admit {
        let change = event.membership.as_ref().map(|m| m.change);
        let about_me = event.membership.as_ref().filter(|m| {
            m.change == RoomChange::MemberRemoved && m.user.as_ref() == Some(&self.caller.id)
        });
        // A deleted room is lost to everyone who saw it.
        let lost = about_me.is_some() || change == Some(RoomChange::Deleted);
        match &self.scope {
            EventScope::All => Admit::Send,
            // Agents read conversations' state on their global streams.
            _ if event.agents_only => Admit::Skip,
            EventScope::Room(room) if event.room_id != *room => Admit::Skip,
            EventScope::Room(_) if change == Some(RoomChange::Deleted) => Admit::SendAndEnd,
            EventScope::Room(_) if about_me.is_some() && !self.caller.is_admin() => {
                Admit::SendAndEnd
            }
            EventScope::Room(_) => Admit::Send,
            EventScope::MemberOf(_) => {
                if let Some(membership) = &event.membership {
                    if membership.joined.contains(&self.caller.id) {
                        self.rooms.insert(event.room_id.clone());
                    } else if lost {
                        // Told once, so their screen can drop the room (if
                        // it ever showed it).
                        return if self.rooms.remove(&event.room_id) {
                            Admit::Send
                        } else {
                            Admit::Skip
                        };
                    }
                }
                if self.rooms.contains(&event.room_id) {
                    Admit::Send
                } else {
                    Admit::Skip
                }
            }
        }
    }
}
