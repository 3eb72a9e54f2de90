//! Streams as a client reads them: a real SSE parser, bounded waits.

use super::*;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use serde_json::Value;

/// `GET {base}/api/chat/sse{query}` as `token`'s user, resuming after
/// `last_event_id` (as the `Last-Event-ID` header) when given.
pub fn stream_request(
    http: &reqwest::Client,
    base: &str,
    query: &str,
    token: &str,
    last_event_id: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = http
        .get(format!("{base}/api/chat/sse{query}"))
        .bearer_auth(token);
    match last_event_id {
        Some(id) => request.header("Last-Event-ID", id),
        None => request,
    }
}

/// One SSE event, as a real parser read it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The last id the stream carried (the parser keeps it across events).
    pub id: String,
    pub data: Value,
}

impl Received {
    pub fn kind(&self) -> &str {
        self.data["type"].as_str().unwrap_or_default()
    }

    pub fn id(&self) -> i64 {
        self.id.parse().expect("a numeric event id")
    }
}

type EventItems =
    std::pin::Pin<Box<dyn Stream<Item = Result<eventsource_stream::Event, String>> + Send>>;

/// A live stream, read with bounded waits.
pub struct EventStream {
    events: EventItems,
}

impl EventStream {
    pub fn new(response: reqwest::Response) -> Self {
        let events = response
            .bytes_stream()
            .eventsource()
            .map(|item| item.map_err(|e| e.to_string()));
        Self {
            events: Box::pin(events),
        }
    }

    /// The next event with data, heartbeats included; `None` once the stream
    /// ended cleanly. Fails the test on a broken stream or after `WAIT`.
    pub async fn next_any(&mut self) -> Option<Received> {
        let next = async {
            loop {
                match self.events.next().await {
                    None => return None,
                    Some(Err(error)) => panic!("the stream broke: {error}"),
                    Some(Ok(event)) if event.data.is_empty() => continue,
                    Some(Ok(event)) => {
                        let data = serde_json::from_str(&event.data).expect("JSON data");
                        return Some(Received { id: event.id, data });
                    }
                }
            }
        };
        tokio::time::timeout(WAIT, next)
            .await
            .expect("an event within the wait")
    }

    /// The next event that is not a heartbeat or a `presence` signal (which
    /// come whenever someone connects: `presence` tests read them with
    /// `next_any`); `None` once the stream ended.
    pub async fn next(&mut self) -> Option<Received> {
        loop {
            match self.next_any().await {
                Some(event) if matches!(event.kind(), "heartbeat" | "presence") => continue,
                other => return other,
            }
        }
    }

    /// The next non-heartbeat event, which must be of `kind`.
    pub async fn expect(&mut self, kind: &str) -> Received {
        let event = self.next().await.expect("the stream to go on");
        assert_eq!(event.kind(), kind, "{:?}", event.data);
        event
    }

    /// The stream ends cleanly, with nothing but heartbeats before the end.
    pub async fn expect_end(&mut self) {
        if let Some(event) = self.next().await {
            panic!("expected the stream to end, got {:?}", event.data);
        }
    }
}
