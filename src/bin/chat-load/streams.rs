//! Subscribers: many SSE streams, spread over source addresses 127.0.0.1-16
//! (each has its own ~28k ephemeral ports), parsed as they arrive. Every
//! published body is `t=<send time, µs>;n=<sequence>`: each subscriber
//! measures latency and counts duplicates and gaps by sequence.

use crate::histogram::Histogram;
use futures::StreamExt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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
    pub gaps: AtomicU64,
    pub connected: AtomicU64,
    pub reconnected: AtomicU64,
    pub errors: AtomicU64,
    /// Per subscriber, the last sequence number seen.
    pub last_seen: Vec<AtomicU64>,
}

impl Tally {
    pub fn new(subscribers: usize) -> Arc<Self> {
        Arc::new(Self {
            latency: Histogram::new(),
            deliveries: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            reconnected: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_seen: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Messages up to `published` that some subscriber never received.
    pub fn lost(&self, published: u64) -> u64 {
        let tails: u64 = self
            .last_seen
            .iter()
            .map(|last| published.saturating_sub(last.load(Ordering::Relaxed)))
            .sum();
        tails + self.gaps.load(Ordering::Relaxed)
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

/// Where a subscriber is: the last sequence number it saw (per room, when
/// bodies name their room) and the last event id.
#[derive(Default)]
struct Position {
    last: std::collections::HashMap<u64, u64>,
    event_id: Option<String>,
}

/// Counts a stream's frames until it ends.
async fn read(response: reqwest::Response, position: &mut Position, index: usize, tally: &Tally) {
    let mut body = response.bytes_stream();
    let mut pending = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        pending.extend_from_slice(&chunk);
        let mut consumed = 0;
        while let Some(end) = pending[consumed..].iter().position(|&b| b == b'\n') {
            let line = &pending[consumed..consumed + end];
            consumed += end + 1;
            if let Some(id) = line.strip_prefix(b"id: ") {
                position.event_id = std::str::from_utf8(id).ok().map(str::to_owned);
                continue;
            }
            let Some(Body { sent, n, room }) = parse(line) else {
                continue;
            };
            tally.latency.record(now_micros().saturating_sub(sent));
            tally.deliveries.fetch_add(1, Ordering::Relaxed);
            let last = position.last.entry(room).or_default();
            if n <= *last {
                tally.duplicates.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if n > *last + 1 {
                tally.gaps.fetch_add(n - *last - 1, Ordering::Relaxed);
            }
            *last = n;
            tally.last_seen[index].store(n, Ordering::Relaxed);
        }
        pending.drain(..consumed);
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
        let room = room.map_or(String::new(), |r| format!(";r={r}"));
        format!("t={};n={n}{room}", now_micros())
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
}
