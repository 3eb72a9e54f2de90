//! Ephemeral signals: typing and presence. They go to the live streams of
//! the rooms they are about (and admins'), on this process at once and on
//! the others through the store, and nowhere else: no id, no place in the
//! log or the window, never replayed. A stream that is catching up, or
//! reconnecting, misses them; what they tell expires or is in the snapshot.

use super::{Event, Hub};
use crate::model::RoomId;
use crate::sse;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;

/// How many signals from other processes may wait for the router.
pub const INBOX: usize = 4096;

/// How many envelopes may wait to go to the other processes; past it, new
/// ones are dropped (a signal is sent at most once anyway).
pub const OUTBOX: usize = 4096;

/// How long the outbox gathers envelopes into one statement. Every
/// PostgreSQL `NOTIFY` queues at commit behind the same lock as the event
/// log's writes' own; gathered, hundreds of typing notices a second make a
/// few dozen statements, and a notice lapses after seconds anyway.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// The most envelopes one statement carries.
const PER_STATEMENT: usize = 256;

/// One signal: the rooms whose viewers receive it (admins always do), and
/// its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub rooms: Vec<RoomId>,
    pub data: String,
}

/// A signal as it travels between processes, with the process it came
/// from, so that one does not deliver it twice.
#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    origin: u64,
    rooms: Vec<String>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// PostgreSQL's bound on a notification's payload is 8000 bytes: a signal
/// about many rooms goes in several envelopes, each under this.
const MAX_ENVELOPE: usize = 7000;

impl Signal {
    /// The frame streams send: a data line, no id (it never moves a
    /// client's resume point).
    fn into_event(self) -> (Arc<Event>, Vec<RoomId>) {
        // Routing reads `rooms`; the event's own room is only a label.
        let room_id = self
            .rooms
            .first()
            .cloned()
            .unwrap_or_else(|| RoomId::from_store(String::new()));
        let frame = sse::signal(&self.data);
        (Arc::new(Event::signal(room_id, frame)), self.rooms)
    }

    /// The envelopes that carry this signal to the other processes.
    fn envelopes(&self, origin: u64) -> Vec<String> {
        let Ok(data) = RawValue::from_string(self.data.clone()) else {
            return Vec::new();
        };
        let room_bytes = 40; // a UUID, quoted, and a comma
        let per_envelope = MAX_ENVELOPE
            .saturating_sub(self.data.len() + 64)
            .max(room_bytes)
            / room_bytes;
        // No rooms is one envelope too: admins still receive it.
        let chunks: Vec<&[RoomId]> = if self.rooms.is_empty() {
            vec![&[]]
        } else {
            self.rooms.chunks(per_envelope).collect()
        };
        chunks
            .into_iter()
            .filter_map(|rooms| {
                serde_json::to_string(&Envelope {
                    origin,
                    rooms: rooms.iter().map(|room| room.as_str().to_owned()).collect(),
                    data: &data,
                })
                .ok()
            })
            .collect()
    }
}

impl Hub {
    /// Delivers `signals` to this process's streams that may see them, at
    /// once, and queues them for the other processes (see `send_out`); how
    /// many streams here got one.
    pub fn signal(&self, signals: Vec<Signal>) -> usize {
        for envelope in signals
            .iter()
            .flat_map(|signal| signal.envelopes(self.origin))
        {
            if self.outbox.try_send(envelope).is_err() {
                ::metrics::counter!(crate::metrics::SIGNALS_DROPPED).increment(1);
            }
        }
        signals.into_iter().map(|signal| self.deliver(signal)).sum()
    }

    fn deliver(&self, signal: Signal) -> usize {
        let (event, rooms) = signal.into_event();
        self.router.signal(&event, &rooms)
    }
}

/// Sends the queued envelopes to the other processes, those gathered within
/// `GATHER` of the first in one statement, for ever.
pub async fn send_out(
    store: Arc<dyn crate::store::Store>,
    mut outbox: tokio::sync::mpsc::Receiver<String>,
) {
    let mut batch = Vec::with_capacity(PER_STATEMENT);
    loop {
        if outbox.recv_many(&mut batch, PER_STATEMENT).await == 0 {
            return;
        }
        tokio::time::sleep(GATHER).await;
        let room = PER_STATEMENT.saturating_sub(batch.len());
        if room > 0 && !outbox.is_empty() {
            outbox.recv_many(&mut batch, room).await;
        }
        if let Err(error) = store.send_signals(&batch).await {
            tracing::warn!(%error, "could not send signals to the other instances");
        }
        batch.clear();
    }
}

/// Delivers the signals other processes sent, for ever.
pub async fn relay_signals(
    hub: std::sync::Weak<Hub>,
    mut inbox: tokio::sync::mpsc::Receiver<String>,
) {
    while let Some(envelope) = inbox.recv().await {
        let Some(hub) = hub.upgrade() else { return };
        let Ok(Envelope {
            origin,
            rooms,
            data,
        }) = serde_json::from_str(&envelope)
        else {
            tracing::warn!("a signal from another instance is not an envelope; dropped");
            continue;
        };
        if origin == hub.origin {
            continue;
        }
        hub.deliver(Signal {
            rooms: rooms.into_iter().map(RoomId::from_store).collect(),
            data: data.get().to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_about_many_rooms_travels_in_envelopes_under_the_payload_bound() {
        let rooms: Vec<RoomId> = (0..1000).map(|_| RoomId::new()).collect();
        let signal = Signal {
            rooms: rooms.clone(),
            data: r#"{"type":"presence","userId":"ann","online":true}"#.to_owned(),
        };
        let envelopes = signal.envelopes(7);
        assert!(envelopes.len() > 1);
        let mut carried = Vec::new();
        for envelope in &envelopes {
            assert!(envelope.len() < 8000, "{}", envelope.len());
            let parsed: Envelope = serde_json::from_str(envelope).unwrap();
            assert_eq!(parsed.origin, 7);
            assert_eq!(parsed.data.get(), signal.data);
            carried.extend(parsed.rooms.into_iter().map(RoomId::from_store));
        }
        assert_eq!(carried, rooms);
    }
}
