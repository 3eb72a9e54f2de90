//! Streams, resumes and the fallbacks through real nginx and HAProxy, each
//! run from its production config in `deploy/` with the server's heartbeat
//! and the proxy's idle timeout scaled down together (2 s and 5 s): a quiet
//! stream outlives the timeout on heartbeats, posts arrive unbuffered, and a
//! control shows that a heartbeat longer than the timeout does get cut.
//!
//! These are about the transport, so they run on SQLite only, but for the
//! rolling restart (`rolling_restart`): two instances need PostgreSQL. Where
//! a proxy is missing they say loudly that they were skipped; with
//! `CHAT_TEST_REQUIRE_PROXIES` set (CI) they fail instead.

mod harness;
pub mod rolling_restart;

use crate::support::{Backend, EventStream, ServerProcess, WAIT, send, stream_request, user};
use futures::StreamExt;
use harness::{Kind, Proxy};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Runs each named test (an `async fn(Kind, &str)`) through nginx and through HAProxy.
macro_rules! through_each_proxy {
    ($($name:ident),+ $(,)?) => {
        mod nginx {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test = concat!("real_proxies::nginx::", stringify!($name));
                    super::$name(super::Kind::Nginx, test).await;
                }
            )+
        }
        mod haproxy {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test = concat!("real_proxies::haproxy::", stringify!($name));
                    super::$name(super::Kind::Haproxy, test).await;
                }
            )+
        }
    };
}

through_each_proxy!(
    a_quiet_stream_stays_open_on_heartbeats_for_four_times_the_proxy_timeout,
    a_posted_message_reaches_the_stream_within_100_ms,
    a_cut_stream_resumes_with_last_event_id_and_gets_exactly_the_missed_events,
    a_long_poll_answers_with_new_events_and_waits_out_its_wait_uncut,
    the_rooms_listing_answers_304_to_its_etag_until_it_changes,
    a_stream_whose_heartbeat_is_longer_than_the_proxy_timeout_is_cut,
);

/// The server's heartbeat and the proxy's idle timeout in most tests: the
/// production 25 s and 60 s, scaled down so a test idles for seconds.
const HEARTBEAT: Duration = Duration::from_secs(2);
const PROXY_TIMEOUT: Duration = Duration::from_secs(5);
/// The server's longest long-poll: shorter than the proxy's timeout, as in
/// production (25 s under 60 s).
const LONG_POLL_WAIT: Duration = Duration::from_secs(3);

/// A server process and a proxy in front of it; requests go through the proxy.
struct Through {
    /// Held so the server lives as long as the test.
    _server: ServerProcess,
    proxy: Proxy,
    http: reqwest::Client,
}

impl Through {
    /// `None` when the proxy is not installed (after saying so).
    async fn start(
        kind: Kind,
        test: &str,
        heartbeat: Duration,
        proxy_timeout: Duration,
    ) -> Option<Self> {
        let program = kind.installed(test)?;
        let heartbeat = format!("{}ms", heartbeat.as_millis());
        let long_poll_wait = format!("{}ms", LONG_POLL_WAIT.as_millis());
        let server = ServerProcess::start(
            &Backend::Sqlite,
            &[
                ("CHAT_HEARTBEAT_INTERVAL", &heartbeat),
                ("CHAT_LONG_POLL_WAIT", &long_poll_wait),
                // At least twice the heartbeat, whichever a test uses.
                ("CHAT_STREAM_STALL_TIMEOUT", "60s"),
            ],
        )
        .await;
        let upstream = server
            .address
            .strip_prefix("http://")
            .expect("an http address")
            .to_owned();
        let proxy = Proxy::start(kind, &program, &[&upstream], proxy_timeout).await;
        Some(Self {
            _server: server,
            proxy,
            http: reqwest::Client::new(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.proxy.address, path)
    }

    /// Opens `/api/chat/sse{query}` through the proxy, resuming after
    /// `last_event_id` if given; checks it answered as a stream.
    async fn stream(&self, query: &str, token: &str, last_event_id: Option<&str>) -> EventStream {
        let response = self.open(query, token, last_event_id).await;
        EventStream::new(response)
    }

    async fn open(
        &self,
        query: &str,
        token: &str,
        last_event_id: Option<&str>,
    ) -> reqwest::Response {
        let response = stream_request(&self.http, &self.proxy.address, query, token, last_event_id)
            .send()
            .await
            .expect("the proxy answers");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "opening {query}; the proxy's log:\n{}",
            self.proxy.logs()
        );
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        response
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        send(self.http.get(self.url(path)).bearer_auth(token)).await
    }

    async fn create_room(&self, token: &str, name: &str) -> String {
        let (status, room) = send(
            self.http
                .post(self.url("/api/chat/rooms"))
                .bearer_auth(token)
                .json(&json!({"name": name})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "creating a room: {room}");
        room["id"].as_str().expect("a room id").to_owned()
    }

    /// Posts `body` to `room` through the proxy, asserting it was created.
    async fn send(&self, token: &str, room: &str, body: &str) -> Value {
        let (status, message) = send(
            self.http
                .post(self.url(&format!("/api/chat/rooms/{room}/messages")))
                .bearer_auth(token)
                .json(&json!({"body": body})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "sending a message: {message}");
        message
    }
}

async fn a_quiet_stream_stays_open_on_heartbeats_for_four_times_the_proxy_timeout(
    kind: Kind,
    test: &str,
) {
    let Some(through) = Through::start(kind, test, HEARTBEAT, PROXY_TIMEOUT).await else {
        return;
    };
    let alice = user("alice");
    let room = through.create_room(&alice, "quiet").await;
    let mut stream = through
        .stream(&format!("?roomId={room}"), &alice, None)
        .await;

    // The idle period: only heartbeats, never longer apart than the timeout
    // (`next_any` fails the test on a broken stream, or on none within `WAIT`).
    let idle = PROXY_TIMEOUT * 4;
    let started = Instant::now();
    let mut last = started;
    let mut beats = 0;
    while started.elapsed() < idle {
        let event = stream
            .next_any()
            .await
            .unwrap_or_else(|| panic!("the stream ended after {:?}", started.elapsed()));
        assert_eq!(event.kind(), "heartbeat", "{:?}", event.data);
        let gap = last.elapsed();
        assert!(gap < PROXY_TIMEOUT, "{gap:?} between heartbeats");
        last = Instant::now();
        beats += 1;
    }
    let expected = idle.as_millis() / HEARTBEAT.as_millis();
    assert!(
        beats + 2 >= expected,
        "{beats} heartbeats in {idle:?}, expected about {expected}"
    );
    // And the same connection still carries messages.
    through.send(&alice, &room, "still here").await;
    let message = stream.expect("message").await;
    assert_eq!(message.data["message"]["body"], "still here");
    eprintln!(
        "{test}: open {:?} through a {PROXY_TIMEOUT:?} idle timeout, {beats} heartbeats",
        started.elapsed()
    );
}

async fn a_posted_message_reaches_the_stream_within_100_ms(kind: Kind, test: &str) {
    let Some(through) = Through::start(kind, test, HEARTBEAT, PROXY_TIMEOUT).await else {
        return;
    };
    let alice = user("alice");
    let room = through.create_room(&alice, "quick").await;
    let mut stream = through
        .stream(&format!("?roomId={room}"), &alice, None)
        .await;
    let mut took = Vec::new();
    for n in 0..5 {
        let body = format!("message {n}");
        // From before the post goes out to the event parsed off the stream,
        // both through the proxy: a buffering proxy holds it for seconds,
        // HAProxy without `option http-no-delay` some 200 ms.
        let started = Instant::now();
        through.send(&alice, &room, &body).await;
        let message = stream.expect("message").await;
        took.push(started.elapsed());
        assert_eq!(message.data["message"]["body"], body.as_str());
    }
    eprintln!("{test}: post to stream took {took:?}");
    let slowest = took.iter().max().expect("five posts");
    assert!(
        *slowest < Duration::from_millis(100),
        "post to stream took {took:?}"
    );
}

async fn a_cut_stream_resumes_with_last_event_id_and_gets_exactly_the_missed_events(
    kind: Kind,
    test: &str,
) {
    let Some(through) = Through::start(kind, test, HEARTBEAT, PROXY_TIMEOUT).await else {
        return;
    };
    let alice = user("alice");
    let room = through.create_room(&alice, "resume").await;
    let query = format!("?roomId={room}");
    let mut stream = through.stream(&query, &alice, None).await;
    through.send(&alice, &room, "one").await;
    let seen = stream.expect("message").await;
    assert_eq!(seen.data["message"]["body"], "one");
    drop(stream);

    for body in ["two", "three"] {
        through.send(&alice, &room, body).await;
    }
    let mut resumed = through.stream(&query, &alice, Some(&seen.id)).await;
    let two = resumed.expect("message").await;
    let three = resumed.expect("message").await;
    assert_eq!(two.data["message"]["body"], "two");
    assert_eq!(three.data["message"]["body"], "three");
    assert!(seen.id() < two.id() && two.id() < three.id());
    // Then live, with nothing repeated in between.
    through.send(&alice, &room, "live").await;
    let live = resumed.expect("message").await;
    assert_eq!(live.data["message"]["body"], "live");
}

async fn a_long_poll_answers_with_new_events_and_waits_out_its_wait_uncut(kind: Kind, test: &str) {
    let Some(through) = Through::start(kind, test, HEARTBEAT, PROXY_TIMEOUT).await else {
        return;
    };
    let alice = user("alice");
    let room = through.create_room(&alice, "polled").await;
    let poll = |query: &str| format!("/api/chat/events?roomId={room}&{query}");

    // Without a resume point, a poll that need not wait answers with none
    // and the point to poll after.
    let (status, page) = through.get(&poll("wait=0"), &alice).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["events"], json!([]));
    let start = page["lastEventId"].as_str().expect("an id").to_owned();

    for body in ["two", "three"] {
        through.send(&alice, &room, body).await;
    }
    let (status, page) = through
        .get(&poll(&format!("after={start}&wait=0")), &alice)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let bodies: Vec<&Value> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| &event["data"]["message"]["body"])
        .collect();
    assert_eq!(bodies, [&json!("two"), &json!("three")]);
    let after = page["lastEventId"].as_str().expect("an id").to_owned();

    // A waiting poll answers with the first new event, long before its wait
    // is out (whether the post reaches the server before it or during it).
    let started = Instant::now();
    let waiting = tokio::spawn(send(
        through
            .http
            .get(through.url(&poll(&format!("after={after}"))))
            .bearer_auth(&alice),
    ));
    through.send(&alice, &room, "four").await;
    let (status, page) = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("the poll answers")
        .expect("the poll task");
    let answered = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["events"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["events"][0]["data"]["message"]["body"], "four");
    assert!(answered < LONG_POLL_WAIT / 2, "answered after {answered:?}");

    // A poll that waits in vain waits the server's whole long_poll_wait,
    // which the proxy does not cut, being shorter than its timeout.
    let after = page["lastEventId"].as_str().expect("an id").to_owned();
    let started = Instant::now();
    let (status, page) = through.get(&poll(&format!("after={after}")), &alice).await;
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["events"], json!([]));
    assert!(
        waited >= LONG_POLL_WAIT - Duration::from_millis(100) && waited < PROXY_TIMEOUT,
        "waited {waited:?}"
    );
    eprintln!("{test}: a woken poll answered in {answered:?}; an idle one after {waited:?}");
}

async fn the_rooms_listing_answers_304_to_its_etag_until_it_changes(kind: Kind, test: &str) {
    let Some(through) = Through::start(kind, test, HEARTBEAT, PROXY_TIMEOUT).await else {
        return;
    };
    let alice = user("alice");
    through.create_room(&alice, "first").await;
    let list = |etag: Option<String>| {
        let mut request = through
            .http
            .get(through.url("/api/chat/rooms"))
            .bearer_auth(&alice);
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        request.send()
    };
    let first = list(None).await.expect("the proxy answers");
    assert_eq!(first.status(), StatusCode::OK);
    let etag = first.headers()["etag"]
        .to_str()
        .expect("an ASCII ETag")
        .to_owned();

    let unchanged = list(Some(etag.clone())).await.expect("the proxy answers");
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(unchanged.headers()["etag"], etag.as_str());
    assert_eq!(unchanged.text().await.expect("a body"), "");

    // A change gives a full answer under a new tag: nothing between the
    // client and the server answered from a cache.
    through.create_room(&alice, "second").await;
    let changed = list(Some(etag.clone())).await.expect("the proxy answers");
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers()["etag"], etag.as_str());
    let rooms: Value = changed.json().await.expect("JSON");
    assert_eq!(rooms["rooms"].as_array().expect("rooms").len(), 2);
}

async fn a_stream_whose_heartbeat_is_longer_than_the_proxy_timeout_is_cut(kind: Kind, test: &str) {
    let (heartbeat, timeout) = (Duration::from_secs(30), Duration::from_secs(3));
    let Some(through) = Through::start(kind, test, heartbeat, timeout).await else {
        return;
    };
    let alice = user("alice");
    let room = through.create_room(&alice, "too quiet").await;
    let response = through.open(&format!("?roomId={room}"), &alice, None).await;
    let started = Instant::now();
    let mut body = response.bytes_stream();
    let mut text = String::new();
    // Read until the proxy ends the answer (cleanly or not); bounded.
    let ended = tokio::time::timeout(timeout + WAIT, async {
        while let Some(Ok(chunk)) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    let after = started.elapsed();
    assert!(
        ended.is_ok(),
        "the stream was still open after {after:?}; the proxy's log:\n{}",
        through.proxy.logs()
    );
    assert!(
        after >= timeout - Duration::from_millis(500),
        "cut after {after:?}, before the proxy's {timeout:?} timeout"
    );
    // The heartbeat a stream opens with, and nothing after it.
    assert_eq!(text.matches("\"heartbeat\"").count(), 1, "{text}");
    eprintln!("{test}: cut after {after:?} by a {timeout:?} idle timeout");
}
