//! Webhooks against a real HTTP receiver in the test process: exactly the
//! events asked for, in order, signed; retries that leave the cursor where
//! it was; a receiver down for a while that then gets everything; retries
//! that give up and a resume that goes on; internal addresses refused; and
//! the unseen notice, raised when it should be and only then.

use crate::support::{
    Backend, TestApp, WAIT, admin, assert_error, count_rows, on_both_stores, user,
};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

on_both_stores!(
    a_webhook_gets_exactly_the_events_it_asked_for_in_order_and_signed,
    a_failing_receiver_is_retried_from_an_unmoved_cursor_and_then_gets_everything_in_order,
    a_receiver_that_does_not_answer_in_time_is_retried,
    retries_give_up_after_the_horizon_and_a_resume_goes_on_from_where_they_stopped,
    a_receiver_that_hangs_delays_no_other_and_a_deleted_webhook_gets_nothing_more,
    retention_keeps_what_an_active_webhook_has_yet_to_deliver,
    metrics_count_deliveries_by_outcome_retries_and_the_lag,
    a_clean_shutdown_saves_what_was_delivered_so_the_next_instance_repeats_nothing,
    webhooks_are_for_admins_and_refuse_internal_addresses_and_unknown_event_types,
    an_unseen_notice_comes_once_for_a_member_who_neither_read_nor_was_online,
    two_hundred_creations_at_once_never_pass_the_cap,
    webhooks_asking_for_status_changes_or_assignments_get_each_with_who_made_it,
    a_message_with_an_attachment_arrives_with_a_signed_download_url_that_needs_no_token,
);

/// How the receiver answers.
#[derive(Debug, Clone)]
enum Answer {
    Ok,
    Status(u16),
    /// A 307 to this URL.
    Redirect(String),
    /// Answers 200 only after this long (noted as answered `0`: too late
    /// for a sender with a shorter timeout).
    Late(Duration),
}

/// One POST the receiver took, whatever it answered.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: HeaderMap,
    pub body: String,
    pub answered: u16,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON delivery")
    }
}

/// An HTTP server in the test process that records every delivery.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    answer: Arc<Mutex<Answer>>,
    arrived: Arc<Notify>,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let receiver = Self {
            url,
            deliveries: Arc::default(),
            answer: Arc::new(Mutex::new(Answer::Ok)),
            arrived: Arc::new(Notify::new()),
        };
        let taken = receiver.clone();
        let router = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let taken = taken.clone();
                async move {
                    let answer = taken.answer.lock().unwrap().clone();
                    let (status, late, location) = match answer {
                        Answer::Ok => (200, None, None),
                        Answer::Status(status) => (status, None, None),
                        Answer::Late(delay) => (200, Some(delay), None),
                        Answer::Redirect(to) => (307, None, Some(to)),
                    };
                    // Noted as it arrives: a sender that gives up on a
                    // late answer cancels this handler.
                    taken.deliveries.lock().unwrap().push(Delivery {
                        headers,
                        body,
                        answered: if late.is_some() { 0 } else { status },
                    });
                    taken.arrived.notify_waiters();
                    if let Some(delay) = late {
                        tokio::time::sleep(delay).await;
                    }
                    let status = StatusCode::from_u16(status).unwrap();
                    let location = location
                        .into_iter()
                        .map(|to| (axum::http::header::LOCATION, to));
                    (status, axum::response::AppendHeaders(location))
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        receiver
    }

    fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    /// The events of the deliveries answered 2xx, in the order received.
    pub fn accepted_events(&self) -> Vec<Value> {
        self.deliveries()
            .iter()
            .filter(|delivery| delivery.answered == 200)
            .flat_map(|delivery| delivery.json()["events"].as_array().unwrap().clone())
            .collect()
    }

    /// Waits (up to `WAIT`) until `done` holds of the deliveries.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Delivery]) -> bool) {
        let waited = tokio::time::timeout(WAIT, async {
            loop {
                let arrived = self.arrived.notified();
                if done(&self.deliveries()) {
                    return;
                }
                arrived.await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "waited for {what}; got {:?}",
            self.deliveries()
        );
    }

    /// Waits until the accepted events number at least `count`; returns them.
    pub async fn wait_for_events(&self, count: usize) -> Vec<Value> {
        let accepted = |deliveries: &[Delivery]| {
            deliveries
                .iter()
                .filter(|d| d.answered == 200)
                .map(|d| d.json()["events"].as_array().unwrap().len())
                .sum::<usize>()
        };
        self.wait_until(&format!("{count} events"), |d| accepted(d) >= count)
            .await;
        self.accepted_events()
    }
}

/// Settings for quick tests: a receiver on this machine is allowed, and
/// retries and leases are short.
pub fn quick(figment: figment::Figment) -> figment::Figment {
    use figment::providers::Serialized;
    figment
        .merge(Serialized::default(
            "webhook_allow_internal_addresses",
            true,
        ))
        .merge(Serialized::default("webhook_retry_max_interval", "1s"))
        .merge(Serialized::default("webhook_lease", "1s"))
        .merge(Serialized::default("webhook_timeout", "500ms"))
        .merge(Serialized::default("unseen_delay", "1s"))
}

/// Registers a webhook for `types`, asserting success.
pub async fn register(app: &TestApp, url: &str, types: &[&str], rooms: Option<&[&str]>) -> Value {
    let mut body = json!({"url": url, "eventTypes": types});
    if let Some(rooms) = rooms {
        body["roomIds"] = json!(rooms);
    }
    let (status, hook) = app.post("/api/chat/webhooks", &admin("ops"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    hook
}

/// Reads the webhook at `path` until `done` holds of it (up to `WAIT`):
/// its row follows the deliveries, saved a moment after the receiver had them.
async fn read_until(app: &TestApp, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let read = tokio::time::timeout(WAIT, async {
        loop {
            let (_, read) = app.get(path, &admin("ops")).await;
            if done(&read) {
                return read;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let Ok(read) = read else {
        panic!(
            "waited for {what}; the webhook is {}",
            app.get(path, &admin("ops")).await.1
        )
    };
    read
}

fn types_and_ids(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The log id of a delivered event (`evt_<id>`).
fn log_id(event: &Value) -> i64 {
    event["id"].as_str().unwrap()["evt_".len()..]
        .parse()
        .unwrap()
}

async fn a_webhook_gets_exactly_the_events_it_asked_for_in_order_and_signed(backend: Backend) {
    let app = TestApp::spawn_with(backend, quick).await;
    let receiver = Receiver::start().await;
    let alice = user("alice");
    let watched = app.create_room(&alice, "watched", &["bob"]).await;
    let other = app.create_room(&alice, "other", &["bob"]).await;
    let hook = register(
        &app,
        &receiver.url,
        &["message.created", "room.member_added"],
        Some(&[&watched]),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    // Shown once: never in a listing or a read.
    let (_, listed) = app.get("/api/chat/webhooks", &admin("ops")).await;
    assert!(listed["webhooks"][0].get("secret").is_none(), "{listed}");
    assert!(!listed.to_string().contains(&secret));

    let mut sent = Vec::new();
    for n in 0..5 {
        sent.push(app.send(&alice, &watched, &format!("watched {n}")).await);
        app.send(&alice, &other, &format!("other {n}")).await;
    }
    app.add_member(&watched, "carol").await;
    let (status, _) = app
        .post(
            &format!("/api/chat/rooms/{watched}/read"),
            &user("bob"),
            json!({"seq": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let events = receiver.wait_for_events(6).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "message.created",
            "message.created",
            "message.created",
            "message.created",
            "message.created",
            "room.member_added"
        ]
    );
    for (event, message) in events.iter().zip(&sent) {
        assert_eq!(event["data"]["message"]["id"], message["id"]);
        assert_eq!(event["data"]["message"]["roomId"], watched.as_str());
        assert!(
            event["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
    }
    assert_eq!(events[5]["data"]["userId"], "carol");
    let ids: Vec<i64> = events.iter().map(log_id).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");

    // Every delivery is signed as Standard Webhooks says, with this secret.
    for delivery in receiver.deliveries() {
        let header = |name: &str| delivery.headers[name].to_str().unwrap().to_owned();
        let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
        let expected = chat_server::webhooks::signing::sign(
            &secret,
            &id,
            timestamp.parse().unwrap(),
            delivery.body.as_bytes(),
        )
        .unwrap();
        assert_eq!(header("webhook-signature"), expected);
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(delivery.json()["webhookId"], hook["id"]);
    }
    // Once acknowledged, the cursor passes them.
    let path = format!("/api/chat/webhooks/{}", hook["id"].as_str().unwrap());
    let last = *ids.last().unwrap();
    let read = read_until(&app, &path, "the cursor past the deliveries", |read| {
        read["eventCursor"].as_i64().unwrap() >= last
    })
    .await;
    assert_eq!(read["state"], "active");
    assert!(read["deliveredAt"].is_string());
}

async fn a_failing_receiver_is_retried_from_an_unmoved_cursor_and_then_gets_everything_in_order(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, quick).await;
    let receiver = Receiver::start().await;
    let alice = user("alice");
    let room = app.create_room(&alice, "room", &[]).await;
    let hook = register(&app, &receiver.url, &["message.created"], None).await;
    let path = format!("/api/chat/webhooks/{}", hook["id"].as_str().unwrap());
    let cursor = hook["eventCursor"].as_i64().unwrap();

    receiver.answer(Answer::Status(500));
    app.send(&alice, &room, "first").await;
    receiver
        .wait_until("two failed attempts", |d| {
            d.iter().filter(|d| d.answered == 500).count() >= 2
        })
        .await;
    let (_, failing) = app.get(&path, &admin("ops")).await;
    assert_eq!(failing["eventCursor"].as_i64(), Some(cursor), "{failing}");
    assert!(failing["attempts"].as_i64().unwrap() >= 1, "{failing}");
    assert!(failing["failingSince"].is_string(), "{failing}");
    assert!(
        failing["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{failing}"
    );
    // The same delivery each time: its id and events do not change.
    let attempts = receiver.deliveries();
    assert_eq!(
        attempts[0].headers["webhook-id"],
        attempts[1].headers["webhook-id"]
    );
    assert_eq!(attempts[0].body, attempts[1].body);

    // Down for a while: more is written meanwhile.
    for n in 0..20 {
        app.send(&alice, &room, &format!("meanwhile {n}")).await;
    }
    receiver.answer(Answer::Ok);
    let events = receiver.wait_for_events(21).await;
    let bodies: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["message"]["body"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = std::iter::once("first".to_owned())
        .chain((0..20).map(|n| format!("meanwhile {n}")))
        .collect();
    assert_eq!(bodies, expected);
    read_until(&app, &path, "the failure cleared", |read| {
        read["attempts"] == 0 && read["failingSince"].is_null()
    })
    .await;
}

async fn a_receiver_that_does_not_answer_in_time_is_retried(backend: Backend) {
    let app = TestApp::spawn_with(backend, quick).await;
    let receiver = Receiver::start().await;
    let alice = user("alice");
    let room = app.create_room(&alice, "room", &[]).await;
    register(&app, &receiver.url, &["message.created"], None).await;
    // Past the 500 ms webhook_timeout.
    receiver.answer(Answer::Late(Duration::from_millis(1500)));
    app.send(&alice, &room, "slow").await;
    receiver
        .wait_until("a first, timed-out attempt", |d| !d.is_empty())
        .await;
    receiver.answer(Answer::Ok);
    // The late answer to the first attempt came after the timeout: it did
    // not count, so the same event comes again and is acknowledged.
    let events = receiver.wait_for_events(1).await;
    assert_eq!(events[0]["data"]["message"]["body"], "slow");
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries[0].answered, 0, "the first attempt timed out");
    assert_eq!(deliveries[0].body, deliveries[1].body);
}

async fn retries_give_up_after_the_horizon_and_a_resume_goes_on_from_where_they_stopped(
    backend: Backend,
) {
    use figment::providers::Serialized;
    let app = TestApp::spawn_with(backend, |f| {
        quick(f).merge(Serialized::default("webhook_retry_horizon", "2s"))
    })
    .await;
    let receiver = Receiver::start().await;
    let alice = user("alice");
    let room = app.create_room(&alice, "room", &[]).await;
    let hook = register(&app, &receiver.url, &["message.created"], None).await;
    let path = format!("/api/chat/webhooks/{}", hook["id"].as_str().unwrap());
    receiver.answer(Answer::Status(503));
    app.send(&alice, &room, "kept").await;
    let failing = read_until(&app, &path, "the webhook marked failing", |read| {
        read["state"] == "failing"
    })
    .await;
    assert_eq!(failing["eventCursor"], hook["eventCursor"], "{failing}");
    // Failing: skipped, so no attempt comes any more, whatever happens.
    let tried = receiver.deliveries().len();
    app.send(&alice, &room, "while failing").await;
    receiver.answer(Answer::Ok);
    let (status, resumed) = app
        .post(&format!("{path}/resume"), &admin("ops"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["state"], "active");
    let events = receiver.wait_for_events(2).await;
    let bodies: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["message"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["kept", "while failing"]);
    assert!(receiver.deliveries().len() > tried);
}

async fn a_receiver_that_hangs_delays_no_other_and_a_deleted_webhook_gets_nothing_more(
    backend: Backend,
) {
    use figment::providers::Serialized;
    // A hung receiver holds its delivery for a minute, past `WAIT`: had
    // the others to wait behind it, they would get nothing in time.
    let app = TestApp::spawn_with(backend, |f| {
        quick(f).merge(Serialized::default("webhook_timeout", "60s"))
    })
    .await;
    let (hung, healthy, witness) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    hung.answer(Answer::Late(Duration::from_secs(3600)));
    let alice = user("alice");
    let room = app.create_room(&alice, "room", &[]).await;
    register(&app, &hung.url, &["message.created"], None).await;
    let deleted = register(&app, &healthy.url, &["message.created"], None).await;
    register(&app, &witness.url, &["message.created"], None).await;
    for n in 0..10 {
        app.send(&alice, &room, &format!("message {n}")).await;
    }
    assert_eq!(healthy.wait_for_events(10).await.len(), 10);
    assert_eq!(witness.wait_for_events(10).await.len(), 10);
    hung.wait_until("the hung receiver's first attempt", |d| !d.is_empty())
        .await;
    assert!(hung.accepted_events().is_empty());

    let path = format!("/api/chat/webhooks/{}", deleted["id"].as_str().unwrap());
    let (status, _) = app.delete(&path, &admin("ops")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.send(&alice, &room, "after the deletion").await;
    let seen = witness.wait_for_events(11).await;
    assert_eq!(seen[10]["data"]["message"]["body"], "after the deletion");
    assert_eq!(
        healthy.accepted_events().len(),
        10,
        "a deleted webhook got more"
    );
}

async fn retention_keeps_what_an_active_webhook_has_yet_to_deliver(backend: Backend) {
    use figment::providers::Serialized;
    // The shortest window: a purge every 6 s.
    let app = TestApp::spawn_with(backend, |f| {
        quick(f).merge(Serialized::default("event_retention", "1m"))
    })
    .await;
    let receiver = Receiver::start().await;
    let alice = user("alice");
    let room = app.create_room(&alice, "room", &[]).await;
    app.send(&alice, &room, "before the webhook").await;
    receiver.answer(Answer::Status(503));
    let hook = register(&app, &receiver.url, &["message.created"], None).await;
    let cursor = hook["eventCursor"].as_i64().unwrap();
    for n in 0..3 {
        app.send(&alice, &room, &format!("held {n}")).await;
    }
    receiver
        .wait_until("a first, refused attempt", |d| !d.is_empty())
        .await;
    // Everything is now past the window; only what the webhook has
    // acknowledged may go.
    app.execute("UPDATE events SET created_at = 0").await;
    let older = format!("SELECT COUNT(*) FROM events WHERE id <= {cursor}");
    let purge = tokio::time::timeout(2 * WAIT, async {
        while count_rows(app.database_url(), &older).await > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(purge.is_ok(), "the acknowledged events were never purged");
    let held = format!("SELECT COUNT(*) FROM events WHERE id > {cursor}");
    assert_eq!(count_rows(app.database_url(), &held).await, 3);

    receiver.answer(Answer::Ok);
    let events = receiver.wait_for_events(3).await;
    let bodies: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["message"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["held 0", "held 1", "held 2"]);
}

/// Store-agnostic (the dispatcher's HTTP client), so on SQLite only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed_and_counts_as_a_failure() {
    let app = TestApp::spawn_with(Backend::Sqlite, quick).await;
    let (redirecting, elsewhere) = (Receiver::start().await, Receiver::start().await);
    redirecting.answer(Answer::Redirect(elsewhere.url.clone()));
    let alice = user("alice");
    let room = app.create_room(&alice, "room", &[]).await;
    let hook = register(&app, &redirecting.url, &["message.created"], None).await;
    let path = format!("/api/chat/webhooks/{}", hook["id"].as_str().unwrap());
    app.send(&alice, &room, "stay here").await;
    redirecting
        .wait_until("two attempts", |d| d.len() >= 2)
        .await;
    let failing = read_until(&app, &path, "the redirect noted as a failure", |read| {
        read["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("307"))
    })
    .await;
    assert_eq!(failing["eventCursor"], hook["eventCursor"], "{failing}");
    assert!(
        elsewhere.deliveries().is_empty(),
        "the redirect was followed"
    );
}

/// In a server process of its own: the metrics recorder is the process's.
async fn metrics_count_deliveries_by_outcome_retries_and_the_lag(backend: Backend) {
    use crate::support::{Scrape, ServerProcess, send};
    let env = [
        ("CHAT_WEBHOOK_ALLOW_INTERNAL_ADDRESSES", "true"),
        ("CHAT_WEBHOOK_RETRY_MAX_INTERVAL", "1s"),
    ];
    let server = ServerProcess::start(&backend, &env).await;
    let receiver = Receiver::start().await;
    let (status, hook) = send(
        reqwest::Client::new()
            .post(server.url("/api/chat/webhooks"))
            .bearer_auth(admin("ops"))
            .json(&json!({"url": receiver.url, "eventTypes": ["message.created"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let webhook = hook["id"].as_str().unwrap();
    let alice = user("alice");
    let room = server.create_room(&alice, "room", &[]).await;
    receiver.answer(Answer::Status(500));
    let (status, _) = server
        .post_message(&alice, &room, json!({"body": "counted"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    receiver
        .wait_until("two failed attempts", |d| d.len() >= 2)
        .await;
    let this = [("webhook", webhook)];
    let scrape = Scrape::of(&server, None).await;
    let failed = [("webhook", webhook), ("outcome", "failed")];
    assert!(scrape.value("chat_webhook_deliveries_total", &failed) >= 2.0);
    assert!(scrape.value("chat_webhook_retries_total", &this) >= 1.0);
    assert!(scrape.value("chat_webhook_lag_events", &this) >= 1.0);

    receiver.answer(Answer::Ok);
    receiver.wait_for_events(1).await;
    let delivered = [("webhook", webhook), ("outcome", "delivered")];
    let caught_up = tokio::time::timeout(WAIT, async {
        loop {
            let scrape = Scrape::of(&server, None).await;
            if scrape.value("chat_webhook_lag_events", &this) == 0.0 {
                return scrape;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the lag back to 0");
    assert_eq!(
        caught_up.value("chat_webhook_deliveries_total", &delivered),
        1.0
    );
    assert_eq!(
        caught_up.value("chat_webhook_events_delivered_total", &this),
        1.0
    );
    assert_eq!(caught_up.value("chat_webhooks_failing", &[]), 0.0);
}

async fn a_clean_shutdown_saves_what_was_delivered_so_the_next_instance_repeats_nothing(
    backend: Backend,
) {
    use crate::support::{ServerProcess, SharedDb, count_rows, send};
    use std::sync::atomic::{AtomicBool, Ordering};
    let db = SharedDb::create(&backend).await;
    let env = [("CHAT_WEBHOOK_ALLOW_INTERNAL_ADDRESSES", "true")];
    let mut server = ServerProcess::start_on(&db, 0, &env).await;
    let receiver = Receiver::start().await;
    let (status, hook) = send(
        reqwest::Client::new()
            .post(server.url("/api/chat/webhooks"))
            .bearer_auth(admin("ops"))
            .json(&json!({"url": receiver.url, "eventTypes": ["message.created"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let alice = user("alice");
    let room = server.create_room(&alice, "room", &[]).await;
    // Posting on while the server stops: the dispatcher is never idle, so
    // only the shutdown saves its last deliveries (it saves once a second
    // while busy).
    let posting = Arc::new(AtomicBool::new(true));
    let writer = {
        let (url, posting, alice) = (
            server.url(&format!("/api/chat/rooms/{room}/messages")),
            posting.clone(),
            alice.clone(),
        );
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0;
            while posting.load(Ordering::Relaxed) {
                n += 1;
                let body = json!({"body": format!("busy {n}")});
                let _ = http.post(&url).bearer_auth(&alice).json(&body).send().await;
            }
        })
    };
    receiver
        .wait_until("a busy dispatcher", |d| d.len() >= 30)
        .await;
    server.terminate();
    server.wait_for_exit(WAIT).await;
    posting.store(false, Ordering::Relaxed);
    writer.await.unwrap();

    // The delivery in flight at the stop may not have been acknowledged
    // to the dispatcher; every one before it was, and is saved.
    let deliveries = receiver.deliveries();
    let acknowledged = deliveries[..deliveries.len() - 1]
        .iter()
        .flat_map(|delivery| delivery.json()["events"].as_array().unwrap().clone())
        .map(|event| log_id(&event))
        .max()
        .unwrap();
    let id = hook["id"].as_str().unwrap();
    let cursor = count_rows(
        &db.url,
        &format!("SELECT event_cursor FROM webhooks WHERE id = '{id}'"),
    )
    .await;
    assert!(
        cursor >= acknowledged,
        "saved {cursor}, but {acknowledged} was delivered before the stop"
    );
}

async fn webhooks_are_for_admins_and_refuse_internal_addresses_and_unknown_event_types(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let ops = admin("ops");
    let create = |url: &str, types: Value| json!({"url": url, "eventTypes": types});
    assert_error(
        app.post(
            "/api/chat/webhooks",
            &user("alice"),
            create("https://hooks.example.com/", json!(["message.created"])),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        app.get("/api/chat/webhooks", &user("alice")).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    for internal in [
        "http://127.0.0.1:9/hooks",
        "http://localhost/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/",
        "http://[::1]:8080/",
        "http://2130706433/",
        "ftp://hooks.example.com/",
    ] {
        assert_error(
            app.post(
                "/api/chat/webhooks",
                &ops,
                create(internal, json!(["message.created"])),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_webhook_url",
        );
    }
    for types in [json!([]), json!(["message.sent"])] {
        assert_error(
            app.post(
                "/api/chat/webhooks",
                &ops,
                create("https://hooks.example.com/", types),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event_types",
        );
    }
    let (_, none) = app.get("/api/chat/webhooks", &ops).await;
    assert_eq!(none, json!({"webhooks": []}), "refusals store nothing");

    // A public name is taken (it is checked again as it resolves).
    let (status, hook) = app
        .post(
            "/api/chat/webhooks",
            &ops,
            create("https://hooks.example.com/chat", json!(["message.created"])),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let path = format!("/api/chat/webhooks/{}", hook["id"].as_str().unwrap());
    assert_error(
        app.patch(&path, &ops, json!({"url": "http://192.168.0.1/"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_webhook_url",
    );
    let (status, changed) = app
        .patch(
            &path,
            &ops,
            json!({"eventTypes": ["room.created", "message.unseen"], "roomIds": ["r1"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["url"], "https://hooks.example.com/chat");
    assert_eq!(changed["roomIds"], json!(["r1"]));
    let (_, everywhere) = app.patch(&path, &ops, json!({"roomIds": null})).await;
    assert!(everywhere["roomIds"].is_null(), "{everywhere}");
    assert_eq!(
        everywhere["eventTypes"],
        json!(["room.created", "message.unseen"])
    );

    let (status, rotated) = app.post(&format!("{path}/secret"), &ops, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_ne!(rotated["secret"], hook["secret"]);
    assert!(rotated["previousSecretUntil"].is_string(), "{rotated}");

    let (status, _) = app.delete(&path, &ops).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        app.get(&path, &ops).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        app.delete(&path, &ops).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

async fn an_unseen_notice_comes_once_for_a_member_who_neither_read_nor_was_online(
    backend: Backend,
) {
    use figment::providers::Serialized;
    // A short grace, so erin is offline before the second message's sweep.
    let app = TestApp::spawn_with(backend, |f| {
        quick(f).merge(Serialized::default("presence_grace", "100ms"))
    })
    .await;
    let receiver = Receiver::start().await;
    let alice = user("alice");
    // bob is away; carol reads at once; dave is online throughout; erin
    // is online as both messages come and leaves, unread, before the
    // second one's delay is up: she was online since, so nothing for her.
    let room = app
        .create_room(&alice, "support", &["bob", "carol", "dave", "erin"])
        .await;
    let mut dave = app.stream(&format!("?roomId={room}"), &user("dave")).await;
    let mut erin = app.stream(&format!("?roomId={room}"), &user("erin")).await;
    register(&app, &receiver.url, &["message.unseen"], None).await;

    let first = app.send(&alice, &room, "are you there?").await;
    let (status, _) = app
        .post(
            &format!("/api/chat/rooms/{room}/read"),
            &user("carol"),
            json!({"seq": first["seq"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    dave.expect("message").await;

    let events = receiver.wait_for_events(1).await;
    assert_eq!(types_and_ids(&events)[0].0, "message.unseen");
    let notice = &events[0]["data"];
    assert_eq!(notice["userId"], "bob", "{notice}");
    assert_eq!(notice["roomId"], room.as_str());
    assert_eq!(notice["message"]["id"], first["id"]);
    assert_eq!(notice["message"]["body"], "are you there?");

    // A second message: its notice comes after anything else the first
    // could still raise, and only for bob again, once.
    let second = app.send(&alice, &room, "hello?").await;
    // Both reached her stream (reads come between), then she goes.
    while let Some(event) = erin.next().await {
        if event.data["message"]["id"] == second["id"] {
            break;
        }
    }
    drop(erin);
    let (status, _) = app
        .post(
            &format!("/api/chat/rooms/{room}/read"),
            &user("carol"),
            json!({"seq": second["seq"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let events = receiver.wait_for_events(2).await;
    let notices: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["data"]["userId"].as_str().unwrap().to_owned(),
                e["data"]["message"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        notices,
        [
            ("bob".to_owned(), first["id"].as_str().unwrap().to_owned()),
            ("bob".to_owned(), second["id"].as_str().unwrap().to_owned()),
        ]
    );
    assert_eq!(
        count_rows(app.database_url(), "SELECT COUNT(*) FROM unseen_notices").await,
        2
    );
    drop(dave);
}

/// Checks deliveries with the Standard Webhooks reference library for
/// JavaScript (`web/node_modules/standardwebhooks`): each of `secrets` must
/// verify each delivery, and a delivery with its body changed must fail.
const VERIFY: &str = r#"
import { Webhook } from "standardwebhooks";
const { secrets, deliveries } = JSON.parse(await new Response(process.stdin).text());
let verified = 0;
for (const secret of secrets) {
  const hook = new Webhook(secret);
  for (const { headers, body } of deliveries) {
    hook.verify(body, headers);
    verified += 1;
    let forged = false;
    try { hook.verify(body.replace("signed", "forged"), headers); forged = true; } catch {}
    if (forged) throw new Error("a changed body verified");
  }
}
console.log(`verified ${verified}`);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_verify_with_the_standard_webhooks_library_under_both_secrets_after_a_rotation()
{
    let test = "webhook signatures under the Standard Webhooks library";
    let Some(node) = crate::browser::required("node", test) else {
        return;
    };
    if !crate::browser::web_packages_installed(test) {
        return;
    }
    let app = TestApp::spawn_with(Backend::Sqlite, quick).await;
    let receiver = Receiver::start().await;
    let alice = user("alice");
    let room = app.create_room(&alice, "room", &[]).await;
    let hook = register(&app, &receiver.url, &["message.created"], None).await;
    let path = format!("/api/chat/webhooks/{}", hook["id"].as_str().unwrap());
    let (_, rotated) = app
        .post(&format!("{path}/secret"), &admin("ops"), json!({}))
        .await;
    app.send(&alice, &room, "signed").await;
    receiver.wait_for_events(1).await;
    let deliveries: Vec<Value> = receiver
        .deliveries()
        .iter()
        .map(|delivery| {
            let header = |name: &str| delivery.headers[name].to_str().unwrap().to_owned();
            json!({
                "body": delivery.body,
                "headers": {
                    "webhook-id": header("webhook-id"),
                    "webhook-timestamp": header("webhook-timestamp"),
                    "webhook-signature": header("webhook-signature"),
                },
            })
        })
        .collect();
    let input = json!({"secrets": [rotated["secret"], hook["secret"]], "deliveries": deliveries});
    let mut verify = tokio::process::Command::new(node)
        .args(["--input-type=module", "-e", VERIFY])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/web"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    use tokio::io::AsyncWriteExt;
    let mut stdin = verify.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let output = verify.wait_with_output().await.unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report.trim(), format!("verified {}", 2 * deliveries.len()));
}

/// The message ids of the accepted `message.created` events, in the order
/// first received, after checking that their log ids rise in that order.
fn delivered_messages(receiver: &Receiver) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut last = 0;
    let mut messages = Vec::new();
    for event in receiver.accepted_events() {
        let id = log_id(&event);
        // A repeat (the delivery a crash interrupted) is fine; a step back
        // to something new is not.
        if !seen.insert(id) {
            continue;
        }
        assert!(id > last, "event {id} came after {last}, out of order");
        last = id;
        messages.push(event["data"]["message"]["id"].as_str().unwrap().to_owned());
    }
    messages
}

/// PostgreSQL only (SQLite has one process), so not among the tests run
/// on both stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_killed_dispatchers_webhooks_are_taken_over_within_the_lease_and_nothing_is_skipped()
 {
    use crate::support::{ServerProcess, SharedDb, send};
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let db = SharedDb::create(&backend).await;
    let env = [
        ("CHAT_WEBHOOK_ALLOW_INTERNAL_ADDRESSES", "true"),
        ("CHAT_WEBHOOK_LEASE", "1s"),
        ("CHAT_WEBHOOK_RETRY_MAX_INTERVAL", "1s"),
        // Small deliveries, so the kill comes between two of them.
        ("CHAT_WEBHOOK_BATCH_EVENTS", "5"),
    ];
    let mut first = ServerProcess::start_on(&db, 0, &env).await;
    let receiver = Receiver::start().await;
    let (status, hook) = send(
        reqwest::Client::new()
            .post(first.url("/api/chat/webhooks"))
            .bearer_auth(admin("ops"))
            .json(&json!({"url": receiver.url, "eventTypes": ["message.created"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let taken = |line: &str| line.contains("delivering to a webhook");
    first.wait_for_log(taken).await;
    let second = ServerProcess::start_on(&db, 0, &env).await;
    let alice = user("alice");
    let room = first.create_room(&alice, "room", &[]).await;
    let mut sent = Vec::new();
    for n in 0..60 {
        let server = if n % 2 == 0 { &first } else { &second };
        let (status, message) = server
            .post_message(&alice, &room, json!({"body": format!("before {n}")}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{message}");
        sent.push(message["id"].as_str().unwrap().to_owned());
    }
    receiver
        .wait_until("some deliveries before the kill", |d| d.len() >= 2)
        .await;
    first.kill();
    for n in 0..60 {
        let (status, message) = second
            .post_message(&alice, &room, json!({"body": format!("after {n}")}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{message}");
        sent.push(message["id"].as_str().unwrap().to_owned());
    }
    second.wait_for_log(taken).await;
    receiver
        .wait_until("every message, after the takeover", |_| {
            delivered_messages(&receiver).len() >= sent.len()
        })
        .await;
    assert_eq!(delivered_messages(&receiver), sent);
}

/// The cap was checked, then the row inserted: concurrent creations all
/// saw room under it. Now they count one at a time.
async fn two_hundred_creations_at_once_never_pass_the_cap(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| {
        quick(figment).merge(figment::providers::Serialized::default(
            "database_max_connections",
            20,
        ))
    })
    .await;
    let ops = admin("ops");
    let created = futures::future::join_all((0..200).map(|n| {
        app.post(
            "/api/chat/webhooks",
            &ops,
            json!({"url": format!("http://127.0.0.1:9/hook-{n}"), "eventTypes": ["message.created"]}),
        )
    }))
    .await;
    let mut answers: std::collections::BTreeMap<u16, usize> = Default::default();
    for (status, body) in &created {
        *answers.entry(status.as_u16()).or_default() += 1;
        if *status == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(body["error"]["code"], "too_many_webhooks", "{body}");
        }
    }
    assert_eq!(
        answers,
        [(201, 100), (422, 100)].into_iter().collect(),
        "exactly the cap of 100 created"
    );
    let (_, listed) = app.get("/api/chat/webhooks", &ops).await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 100);
}

async fn webhooks_asking_for_status_changes_or_assignments_get_each_with_who_made_it(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, quick).await;
    let receiver = Receiver::start().await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = app.create_room(&agent, "help", &["alice"]).await;
    let assignments = Receiver::start().await;
    register(&app, &receiver.url, &["conversation.status_changed"], None).await;
    register(&app, &assignments.url, &["conversation.assigned"], None).await;
    let path = format!("/api/chat/rooms/{room}/conversation");
    let (status, _) = app.patch(&path, &agent, json!({"status": "pending"})).await;
    assert_eq!(status, StatusCode::OK);
    app.send(&alice, &room, "back").await;
    // One PATCH, two events: each goes to the webhook that asked for it.
    let both = json!({"status": "resolved", "assigneeId": "me"});
    let (status, _) = app.patch(&path, &agent, both).await;
    assert_eq!(status, StatusCode::OK);

    let assigned = assignments.wait_for_events(1).await;
    assert_eq!(assigned[0]["type"], "conversation.assigned", "{assigned:?}");
    assert_eq!(assigned[0]["data"]["change"], "assignee");
    assert_eq!(assigned[0]["data"]["conversation"]["assigneeId"], "agent");
    assert_eq!(assigned[0]["data"]["changedBy"], "agent");
    let events = receiver.wait_for_events(3).await;
    let told: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|event| {
            (
                event["type"].as_str().unwrap(),
                event["data"]["conversation"]["status"].as_str().unwrap(),
                event["data"]["changedBy"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        told,
        [
            ("conversation.status_changed", "pending", "agent"),
            ("conversation.status_changed", "open", "alice"),
            ("conversation.status_changed", "resolved", "agent"),
        ]
    );
    assert!(
        events
            .iter()
            .all(|event| event["data"]["roomId"] == room.as_str())
    );
}

async fn a_message_with_an_attachment_arrives_with_a_signed_download_url_that_needs_no_token(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |figment| {
        quick(figment).merge(figment::providers::Serialized::default(
            "public_url",
            "https://chat.example.com/",
        ))
    })
    .await;
    let receiver = Receiver::start().await;
    let alice = user("alice");
    let room = app.create_room(&alice, "files", &[]).await;
    register(&app, &receiver.url, &["message.created"], None).await;
    let bytes = b"order 1234: total 56.78 EUR\n".to_vec();
    let (status, attachment) = crate::support::send(
        app.client
            .http
            .post(app.client.url(&format!(
                "/api/chat/rooms/{room}/attachments?name=invoice.txt"
            )))
            .bearer_auth(&alice)
            .body(bytes.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{attachment}");
    let (status, _) = app
        .post_message(
            &alice,
            &room,
            json!({"body": "", "attachments": [attachment["id"]]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let events = receiver.wait_for_events(1).await;
    let told = &events[0]["data"]["message"]["attachments"][0];
    assert_eq!(told["id"], attachment["id"]);
    assert_eq!(told["name"], "invoice.txt");
    let url = told["downloadUrl"].as_str().unwrap();
    let path = url.strip_prefix("https://chat.example.com/api/").unwrap();
    // Valid for as long as the delivery may be retried (24 h), and an hour.
    let expires = told["downloadExpiresAt"].as_i64().unwrap();
    assert!(
        expires > crate::support::unix_now() as i64 + 24 * 3600,
        "{told}"
    );
    let response = app
        .client
        .http
        .get(app.client.url(&format!("/api/{path}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap(), bytes);
}
