//! Subscribers: many SSE streams, spread over source addresses 127.0.0.1-16
//! (each has its own ~28k ephemeral ports), parsed as they arrive. Every
//! published body is `t=<send time, µs>;n=<sequence>`: each subscriber
//! measures latency, and counts duplicates and the distinct messages it got
//! by sequence (in any order: publishers may have several posts in flight).
//! Signals (typing, presence) carry no id and no numbered body: they are
//! counted apart, never as messages.

use crate::histogram::Histogram;
use futures::StreamExt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// One HTTP client per source address.
pub fn clients() -> Vec<reqwest::Client> {
    (1..=16)
        .filter_map(|host| {
            reqwest::Client::builder()
                .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)))
                .pool_max_idle_per_host(0)
                .build()
                .ok()
        })
        .collect()
}

/// What all subscribers saw.
pub struct Tally {
    pub latency: Histogram,
    pub deliveries: AtomicU64,
    pub duplicates: AtomicU64,
    pub connected: AtomicU64,
    pub reconnected: AtomicU64,
    pub errors: AtomicU64,
    /// Typing signals received, over all subscribers.
    pub typing: AtomicU64,
    /// Presence signals received (streams with signals get them as users
    /// come and go), over all subscribers.
    pub presence: AtomicU64,
    /// Per subscriber, how many distinct messages it received.
    pub received: Vec<AtomicU64>,
}

impl Tally {
    pub fn new(subscribers: usize) -> Arc<Self> {
        Arc::new(Self {
            latency: Histogram::new(),
            deliveries: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            reconnected: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            typing: AtomicU64::new(0),
            presence: AtomicU64::new(0),
            received: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Of `published` messages to every subscriber, how many deliveries are missing.
    pub fn lost(&self, published: u64) -> u64 {
        self.received
            .iter()
            .map(|received| published.saturating_sub(received.load(Ordering::Relaxed)))
            .sum()
    }
}

/// Opens a stream for each (URL, token), the `index`th counting in `tally`
/// at `index`, at most 256 connecting at once; returns once all are open,
/// with how long that took.
pub async fn open_all(
    streams: impl IntoIterator<Item = (String, Option<String>)>,
    resuming: bool,
    tally: &Arc<Tally>,
) -> Result<Duration, String> {
    let clients = clients();
    let connecting = Arc::new(Semaphore::new(256));
    let started = Instant::now();
    let mut count = 0;
    for (index, (url, token)) in streams.into_iter().enumerate() {
        count += 1;
        let client = clients[index % clients.len()].clone();
        let permit = connecting
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let tally = tally.clone();
        if resuming {
            let token = token.unwrap_or_default();
            tokio::spawn(subscribe_resuming(client, url, token, index, tally, permit));
        } else {
            tokio::spawn(subscribe(client, url, token, index, tally, permit));
        }
    }
    while tally.connected.load(Ordering::Relaxed) + tally.errors.load(Ordering::Relaxed)
        < count as u64
    {
        if started.elapsed() > Duration::from_secs(300) {
            return Err("streams did not all connect within 300 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match tally.errors.load(Ordering::Relaxed) {
        0 => Ok(started.elapsed()),
        errors => Err(format!("{errors} of {count} streams failed to open")),
    }
}

/// Opens a stream and counts what it carries until the process ends. The
/// permit bounds how many connect at once; it is released once connected.
pub async fn subscribe(
    client: reqwest::Client,
    url: String,
    token: Option<String>,
    index: usize,
    tally: Arc<Tally>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let mut request = client.get(&url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = request.send().await;
    drop(permit);
    match answer {
        Ok(response) if response.status().is_success() => {
            tally.connected.fetch_add(1, Ordering::Relaxed);
            read(response, &mut Position::default(), index, &tally).await;
        }
        _ => {}
    }
    tally.errors.fetch_add(1, Ordering::Relaxed);
}

/// Like `subscribe`, but whenever the stream ends it reconnects (after a
/// short jittered pause) with `Last-Event-ID`, as a browser does.
pub async fn subscribe_resuming(
    client: reqwest::Client,
    url: String,
    token: String,
    index: usize,
    tally: Arc<Tally>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let mut permit = Some(permit);
    let mut position = Position::default();
    loop {
        let mut request = client.get(&url).bearer_auth(&token);
        if let Some(id) = &position.event_id {
            request = request.header("Last-Event-ID", id);
        }
        let answer = request.send().await;
        let first = permit.take().is_some();
        if let Ok(response) = answer
            && response.status().is_success()
        {
            let counter = if first {
                &tally.connected
            } else {
                &tally.reconnected
            };
            counter.fetch_add(1, Ordering::Relaxed);
            read(response, &mut position, index, &tally).await;
        }
        // Spread the reconnects over a quarter second.
        let pause = 50 + (index as u64 * 7919) % 250;
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
    }
}

/// Where a subscriber is: the sequence numbers it has seen (per room, when
/// bodies name their room), as bit sets, and the last event id.
#[derive(Default)]
struct Position {
    seen: std::collections::HashMap<u64, Vec<u64>>,
    event_id: Option<String>,
}

impl Position {
    /// Marks `n` of `room` seen; whether it was new.
    fn see(&mut self, room: u64, n: u64) -> bool {
        let bits = self.seen.entry(room).or_default();
        let (word, bit) = ((n / 64) as usize, 1u64 << (n % 64));
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        let new = bits[word] & bit == 0;
        bits[word] |= bit;
        new
    }
}

/// Counts a stream's frames until it ends.
async fn read(response: reqwest::Response, position: &mut Position, index: usize, tally: &Tally) {
    let mut body = response.bytes_stream();
    let mut pending = Vec::new();
    // The current frame's `event:` name, if it has one (ours sends none; a
    // frame ends at a blank line).
    let mut event = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        pending.extend_from_slice(&chunk);
        let mut consumed = 0;
        while let Some(end) = pending[consumed..].iter().position(|&b| b == b'\n') {
            let line = &pending[consumed..consumed + end];
            consumed += end + 1;
            if line.is_empty() {
                event.clear();
                continue;
            }
            if let Some(id) = line.strip_prefix(b"id: ") {
                position.event_id = std::str::from_utf8(id).ok().map(str::to_owned);
                continue;
            }
            if let Some(name) = line.strip_prefix(b"event:") {
                event.clear();
                event.extend_from_slice(name.trim_ascii());
                continue;
            }
            // Before looking for a body: a signal is never a message, whatever
            // its JSON happens to hold.
            match Signal::of(&event, line) {
                Some(Signal::Typing) => {
                    tally.typing.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Some(Signal::Presence) => {
                    tally.presence.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                None => {}
            }
            let Some(Body { sent, n, room }) = parse(line) else {
                continue;
            };
            tally.latency.record(now_micros().saturating_sub(sent));
            tally.deliveries.fetch_add(1, Ordering::Relaxed);
            if position.see(room, n) {
                tally.received[index].fetch_add(1, Ordering::Relaxed);
            } else {
                tally.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
        pending.drain(..consumed);
    }
}

/// An ephemeral frame that is not a message.
#[derive(Debug, PartialEq)]
enum Signal {
    Typing,
    Presence,
}

impl Signal {
    /// What a `data:` line is, in a frame named `event` (empty: unnamed),
    /// if a signal: by its name, or else by its JSON's leading `type` (ours
    /// names no frames; serde writes the tag first).
    fn of(event: &[u8], line: &[u8]) -> Option<Self> {
        let data = line.strip_prefix(b"data:")?.trim_ascii_start();
        if event == b"typing" || data.starts_with(br#"{"type":"typing""#) {
            Some(Self::Typing)
        } else if event == b"presence" || data.starts_with(br#"{"type":"presence""#) {
            Some(Self::Presence)
        } else {
            None
        }
    }
}

/// What a published body carries: `t=<send time, µs>;n=<sequence>`, and
/// `;r=<room index>` where messages go to many rooms, each its own sequence.
#[derive(Debug, PartialEq)]
pub struct Body {
    sent: u64,
    n: u64,
    room: u64,
}

impl Body {
    pub fn text(n: u64, room: Option<u64>) -> String {
        Self::sent_at(now_micros(), n, room)
    }

    /// The same, stamped with `sent` (µs since the epoch) rather than now.
    pub fn sent_at(sent: u64, n: u64, room: Option<u64>) -> String {
        let room = room.map_or(String::new(), |r| format!(";r={r}"));
        format!("t={sent};n={n}{room}")
    }
}

/// Finds a `Body` in a `data:` line.
fn parse(line: &[u8]) -> Option<Body> {
    if !line.starts_with(b"data:") {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    let number = |key: &str| -> Option<u64> {
        let start = text.find(key)? + key.len();
        let digits: String = text[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    Some(Body {
        sent: number("t=")?,
        n: number(";n=")?,
        room: number(";r=").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn bodies_are_found_in_our_events_and_the_hubs() {
        let body = |sent, n, room| Some(super::Body { sent, n, room });
        let ours = br#"data: {"type":"message","message":{"body":"t=1700;n=42","seq":9}}"#;
        assert_eq!(super::parse(ours), body(1700, 42, 0));
        assert_eq!(super::parse(b"data: t=5;n=6;r=7\n"), body(5, 6, 7));
        assert_eq!(super::parse(b"id: 5\n"), None);
    }

    #[test]
    fn signals_are_told_from_messages() {
        use super::Signal;
        let typing = br#"data: {"type":"typing","roomId":"r","userId":"t=1;n=2","typing":true}"#;
        assert_eq!(Signal::of(b"", typing), Some(Signal::Typing));
        assert_eq!(
            Signal::of(b"typing", b"data: t=5;n=6"),
            Some(Signal::Typing)
        );
        let presence = br#"data: {"type":"presence","userId":"u","online":true,"version":3}"#;
        assert_eq!(Signal::of(b"", presence), Some(Signal::Presence));
        let message = br#"data: {"type":"message","message":{"body":"t=1700;n=42"}}"#;
        assert_eq!(Signal::of(b"", message), None);
        assert_eq!(Signal::of(b"typing", b"id: 5"), None);
    }
}
