//! On PostgreSQL the per-user limits are the cluster's: a user cannot get
//! more by spreading requests over instances, even all at once; a closed
//! stream frees its place on every instance; a stopped or killed instance's
//! streams stop counting (at once after a SIGTERM, within three heartbeats
//! after a SIGKILL), and one that was only frozen counts them again when it
//! wakes. A control shows that without `cluster_limits` each instance counts
//! alone, so the tests can fail.

use crate::support::{
    Backend, ServerProcess, SharedDb, TestApp, WAIT, admin, stream_request, user,
};
use figment::Figment;
use figment::providers::Serialized;
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

/// Message budget in these tests: one a second, bursts of four.
fn four_messages(figment: Figment) -> Figment {
    figment
        .merge(Serialized::default("message_rate_per_user", 1))
        .merge(Serialized::default("message_burst_per_user", 4))
}

/// Posts alternately to `a` and `b`, `tries` times, as `flooder`; how many were accepted.
async fn accepted_over_two(a: &TestApp, b: &TestApp, room: &str, tries: usize) -> usize {
    let flooder = user("flooder");
    let mut accepted = 0;
    for n in 0..tries {
        let app = if n % 2 == 0 { a } else { b };
        let (status, body) = app
            .post(
                &format!("/api/chat/rooms/{room}/messages"),
                &flooder,
                json!({"body": format!("flood {n}")}),
            )
            .await;
        match status {
            StatusCode::CREATED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["error"]["code"], "too_many_requests");
            }
            other => panic!("post {n}: {other} {body}"),
        }
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_user_cannot_post_past_their_limit_by_spreading_posts_over_two_instances() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let a = TestApp::spawn_with(backend, four_messages).await;
    let b = a.sibling_with(four_messages).await;
    let boss = admin("boss");
    let room = a.create_room(&boss, "busy", &["flooder", "other"]).await;

    // Eight tries within a second: the one budget of four, whichever instance.
    assert_eq!(accepted_over_two(&a, &b, &room, 8).await, 4);
    // Another user's budget is their own.
    let (status, body) = b
        .post(
            &format!("/api/chat/rooms/{room}/messages"),
            &user("other"),
            json!({"body": "still fine"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // And the budget comes back at its rate, on either instance.
    let started = Instant::now();
    loop {
        let (status, _) = b
            .post(
                &format!("/api/chat/rooms/{room}/messages"),
                &user("flooder"),
                json!({"body": "later"}),
            )
            .await;
        if status == StatusCode::CREATED {
            break;
        }
        assert!(started.elapsed() < WAIT, "the budget never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_rate_that_is_no_whole_number_of_microseconds_a_write_limits_like_any() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    // One every 333,333.3 µs: PostgreSQL's intervals hold whole microseconds.
    let three_a_second = |figment: Figment| {
        figment
            .merge(Serialized::default("message_rate_per_user", 3))
            .merge(Serialized::default("message_burst_per_user", 2))
    };
    let a = TestApp::spawn_with(backend, three_a_second).await;
    let b = a.sibling_with(three_a_second).await;
    let room = a.create_room(&admin("boss"), "thirds", &["flooder"]).await;
    assert_eq!(accepted_over_two(&a, &b, &room, 4).await, 2);
    let refused = a
        .http
        .post(a.url(&format!("/api/chat/rooms/{room}/messages")))
        .bearer_auth(user("flooder"))
        .json(&json!({"body": "one more"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        crate::support::retry_after(&refused),
        1,
        "a third of a second, rounded up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cluster_limits_each_instance_counts_alone_and_two_give_twice_the_budget() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let alone = |figment: Figment| {
        four_messages(figment).merge(Serialized::default("cluster_limits", false))
    };
    let a = TestApp::spawn_with(backend, alone).await;
    let b = a.sibling_with(alone).await;
    let room = a.create_room(&admin("boss"), "busy", &["flooder"]).await;
    assert_eq!(accepted_over_two(&a, &b, &room, 8).await, 8);
}

/// Two instances on one database, each capping a user's streams at `cap`.
async fn two_apps_with_stream_cap(backend: Backend, cap: usize) -> (TestApp, TestApp) {
    let capped =
        move |figment: Figment| figment.merge(Serialized::default("stream_max_per_user", cap));
    let a = TestApp::spawn_with(backend, capped).await;
    let b = a.sibling_with(capped).await;
    (a, b)
}

/// Opens a stream on `base` as `token`'s user; its status, and the response
/// (held open while kept).
async fn open(base: &str, token: &str) -> (StatusCode, reqwest::Response) {
    let response = stream_request(&reqwest::Client::new(), base, "", token, None)
        .send()
        .await
        .expect("the server answers");
    (response.status(), response)
}

/// Tries to open a stream on `base` until one opens (at most `WAIT`); how long it took.
async fn open_eventually(base: &str, token: &str) -> (Duration, reqwest::Response) {
    let started = Instant::now();
    loop {
        let (status, response) = open(base, token).await;
        match status {
            StatusCode::OK => return (started.elapsed(), response),
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("opening a stream: {other}"),
        }
        assert!(started.elapsed() < WAIT, "the stream never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_the_stream_cap_holds_across_instances_and_a_closed_stream_frees_its_place() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let (a, b) = two_apps_with_stream_cap(backend, 2).await;
    let viewer = user("viewer");

    let (status, on_a) = open(&a.address, &viewer).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _on_b) = open(&b.address, &viewer).await;
    assert_eq!(status, StatusCode::OK);
    for app in [&a, &b] {
        let (status, refused) = open(&app.address, &viewer).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "a third, anywhere");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_requests");
    }
    // Someone else is not refused.
    let (status, _) = open(&b.address, &user("someone")).await;
    assert_eq!(status, StatusCode::OK);

    // Closing the one on A frees a place on B.
    drop(on_a);
    let (took, _again) = open_eventually(&b.address, &viewer).await;
    eprintln!("a closed stream's place was free on the other instance after {took:?}");
    let (status, _) = open(&a.address, &viewer).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "and it was the only one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_opens_of_one_user_all_at_once_over_two_instances_get_exactly_the_cap() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let (a, b) = two_apps_with_stream_cap(backend, 5).await;
    let viewer = user("viewer");
    let opens = (0..24).map(|n| {
        let base = if n % 2 == 0 { &a.address } else { &b.address };
        open(base, &viewer)
    });
    let answers = futures::future::join_all(opens).await;
    let opened = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    let refused = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((opened, refused), (5, 19), "24 opens at once, a cap of 5");
}

/// Two server processes on one database, with a cap of two streams a user.
async fn two_processes(heartbeat: &str) -> (SharedDb, ServerProcess, ServerProcess) {
    let backend = Backend::postgres().expect("checked by the caller");
    let db = SharedDb::create(&backend).await;
    let env = [
        ("CHAT_STREAM_MAX_PER_USER", "2"),
        ("CHAT_INSTANCE_HEARTBEAT", heartbeat),
    ];
    let a = ServerProcess::start_on(&db, 0, &env).await;
    let b = ServerProcess::start_on(&db, 0, &env).await;
    (db, a, b)
}

/// Fills `viewer`'s cap on `a`, and checks `b` refuses one more.
async fn fill_cap_on(a: &ServerProcess, b: &ServerProcess, viewer: &str) -> Vec<reqwest::Response> {
    let mut held = Vec::new();
    for _ in 0..2 {
        let (status, response) = open(&a.address, viewer).await;
        assert_eq!(status, StatusCode::OK);
        held.push(response);
    }
    let (status, _) = open(&b.address, viewer).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_stopped_instance_gives_its_streams_back_as_it_exits() {
    if Backend::postgres().is_none() {
        return;
    }
    // A heartbeat far longer than the test: only the exit can free the places.
    let (db, mut a, b) = two_processes("1h").await;
    let viewer = user("viewer");
    let _held = fill_cap_on(&a, &b, &viewer).await;
    a.terminate();
    assert!(a.wait_for_exit(WAIT).await.success());
    let registered: i64 = sqlx::query_scalar("SELECT count(*) FROM instances")
        .fetch_one(&sqlx::PgPool::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    assert_eq!(registered, 1, "A deregistered as it exited; B is left");
    for _ in 0..2 {
        let (status, _) = open(&b.address, &viewer).await;
        assert_eq!(status, StatusCode::OK, "A's places are free once it exited");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_killed_instances_streams_stop_counting_within_three_heartbeats() {
    if Backend::postgres().is_none() {
        return;
    }
    let (_db, mut a, b) = two_processes("300ms").await;
    let viewer = user("viewer");
    let _held = fill_cap_on(&a, &b, &viewer).await;
    a.kill();
    let (took, _) = open_eventually(&b.address, &viewer).await;
    eprintln!("a killed instance's streams stopped counting after {took:?} (heartbeat 300ms)");
    assert!(
        took < Duration::from_secs(5),
        "three heartbeats are 900 ms; took {took:?}"
    );
    // A write budget is the cluster's too, with A gone: B still works.
    let boss = admin("boss");
    let room = b.create_room(&boss, "after", &[]).await;
    let (status, body) = b.post_message(&boss, &room, json!({"body": "alive"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_an_instance_frozen_past_its_lapse_counts_its_streams_again_when_it_wakes() {
    if Backend::postgres().is_none() {
        return;
    }
    let (db, a, b) = two_processes("300ms").await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let viewer = user("viewer");
    let _held = fill_cap_on(&a, &b, &viewer).await;
    let signal = |signal: &str| {
        let status = std::process::Command::new("kill")
            .args([signal, &a.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    };
    // Frozen, A stops beating: B counts it gone, and lets the viewer in.
    signal("-STOP");
    let (took, on_b) = open_eventually(&b.address, &viewer).await;
    eprintln!("A frozen: its streams stopped counting after {took:?}");
    // And B's heartbeat deletes A's registration, and A's rows with it.
    let started = Instant::now();
    loop {
        let registered: i64 = sqlx::query_scalar("SELECT count(*) FROM instances")
            .fetch_one(&pool)
            .await
            .unwrap();
        if registered == 1 {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "A's registration was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Awake, A registers again and writes its two streams back; with B's
    // closed, the viewer holds two again, and B refuses a third.
    signal("-CONT");
    a.wait_for_log(|line| line.contains("writing its streams again"))
        .await;
    drop(on_b);
    let started = Instant::now();
    loop {
        let (status, _) = open(&b.address, &viewer).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < WAIT,
            "A's streams never counted again after it woke"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_gone_a_write_is_refused_before_it_begins_and_a_stream_told_to_come_back()
{
    let Some(mut database) = crate::support::throwaway_postgres::ThrowawayPostgres::start().await
    else {
        return;
    };
    let server = ServerProcess::start_with_database(
        &database.url(),
        0,
        &[("CHAT_DATABASE_ACQUIRE_TIMEOUT", "1s")],
    )
    .await;
    let boss = admin("boss");
    let room = server.create_room(&boss, "outage", &[]).await;
    database.stop();
    // The budget's check meets the outage first: nothing was written, so
    // the answer does not leave the outcome open.
    let (status, body) = server
        .post_message(&boss, &room, json!({"body": "lost?"}))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    assert!(body["error"].get("outcome").is_none(), "{body}");
    // A stream open cannot claim its place: an EventSource must not get a
    // 503 (it would give up), but the `unavailable` event with a retry.
    let (status, response) = open(&server.address, &boss).await;
    assert_eq!(status, StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(text.contains("unavailable"), "{text}");
    assert!(text.contains("retry:"), "{text}");
    database.resume().await;
}
