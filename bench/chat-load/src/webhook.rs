//! A fast webhook receiver for W3 with `--webhook`: answers every delivery
//! 200 at once and counts, per message, what came, what came twice and how
//! long after its post was due it arrived. While `refusing`, it answers 503
//! and counts nothing, so a backlog builds to catch up on.

use crate::histogram::Histogram;
use crate::streams::now_micros;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// What the receiver took.
pub struct Received {
    pub refusing: AtomicBool,
    pub latency: Histogram,
    pub deliveries: AtomicU64,
    pub events: AtomicU64,
    pub duplicates: AtomicU64,
    /// Events whose log id was not above the previous one's.
    pub out_of_order: AtomicU64,
    /// (room, n) of the messages taken, and the last log id seen.
    seen: Mutex<(HashSet<(u64, u64)>, u64)>,
    /// When the first delivery came (µs since the epoch).
    pub first_micros: OnceLock<u64>,
    pub last_micros: AtomicU64,
}

impl Received {
    fn new() -> Self {
        Self {
            refusing: AtomicBool::new(false),
            latency: Histogram::new(),
            deliveries: AtomicU64::new(0),
            events: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            seen: Mutex::default(),
            first_micros: OnceLock::new(),
            last_micros: AtomicU64::new(0),
        }
    }

    pub fn distinct(&self) -> u64 {
        self.events.load(Ordering::Relaxed) - self.duplicates.load(Ordering::Relaxed)
    }

    fn take(&self, delivery: &Value) {
        let now = now_micros();
        let _ = self.first_micros.set(now);
        self.last_micros.store(now, Ordering::Relaxed);
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        let events = delivery["events"].as_array().map_or(&[][..], Vec::as_slice);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for event in events {
            self.events.fetch_add(1, Ordering::Relaxed);
            let id = event["id"]
                .as_str()
                .and_then(|id| id.strip_prefix("evt_"))
                .and_then(|id| id.parse::<u64>().ok())
                .unwrap_or(0);
            if id <= seen.1 {
                self.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            seen.1 = seen.1.max(id);
            let Some((sent, n, room)) = event["data"]["message"]["body"].as_str().and_then(parse)
            else {
                continue;
            };
            if seen.0.insert((room, n)) {
                self.latency.record(now.saturating_sub(sent));
            } else {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `t=<µs>;n=<n>;r=<room>`, as `Body::sent_at` writes it.
fn parse(body: &str) -> Option<(u64, u64, u64)> {
    let mut fields = body.split(';').map(|field| field.split_once('='));
    let mut value = |key: &str| match fields.next()? {
        Some((k, v)) if k == key => v.parse().ok(),
        _ => None,
    };
    Some((value("t")?, value("n")?, value("r").unwrap_or(0)))
}

/// Starts the receiver on this machine; returns its URL and its counts.
pub async fn start() -> Result<(String, Arc<Received>), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}/hooks",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let received = Arc::new(Received::new());
    let counts = received.clone();
    let router = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |axum::Json(delivery): axum::Json<Value>| {
            let status = if counts.refusing.load(Ordering::Relaxed) {
                axum::http::StatusCode::SERVICE_UNAVAILABLE
            } else {
                counts.take(&delivery);
                axum::http::StatusCode::OK
            };
            async move { status }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((url, received))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bodies_are_read_as_the_publishers_write_them() {
        assert_eq!(super::parse("t=17;n=4;r=9"), Some((17, 4, 9)));
        assert_eq!(super::parse("t=17;n=4"), Some((17, 4, 0)));
        assert_eq!(super::parse("hello"), None);
    }
}
