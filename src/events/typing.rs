//! Typing notices: a signal to a room's live viewers that one of them is
//! typing. Each says when it lapses, so a client clears it by itself; a
//! typist renews it while typing, and may end it early.

use super::Signal;
use crate::model::{RoomId, SignalData, UserId};
use std::time::Duration;

/// How long a notice holds unless renewed: a client renews every few
/// seconds while its user types, so one lost renewal does not blink.
pub const LASTS: Duration = Duration::from_secs(6);

/// `user` typing in `room` (or, with `typing` false, stopped).
pub fn notice(room: &RoomId, user: &UserId, typing: bool) -> Signal {
    let data = SignalData::Typing {
        room_id: room,
        user_id: user,
        typing,
        expires_in_ms: if typing { LASTS.as_millis() as u64 } else { 0 },
    };
    Signal {
        rooms: vec![room.clone()],
        // A struct of strings and numbers always encodes.
        data: serde_json::to_string(&data).unwrap_or_default(),
    }
}
