//! Presence: online while holding a stream or a waiting poll, offline once
//! the grace after the last has passed (a reload does not blink), told live
//! to the streams that may see the user and answered by
//! `GET /api/chat/presence`; on PostgreSQL the same across instances, and a
//! stopped or killed instance's users go offline too.

use crate::support::{
    Backend, EventStream, Received, ServerProcess, SharedDb, TestApp, admin, on_both_stores,
    stream_request, user,
};
use figment::providers::Serialized;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_both_stores!(
    a_user_is_online_while_streaming_and_offline_once_the_grace_has_passed,
    a_reload_within_the_grace_does_not_show_the_user_offline,
    a_waiting_poll_keeps_a_user_online,
    presence_is_told_only_to_those_who_share_a_room_and_to_admins,
);

const GRACE: &str = "400ms";

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |figment| {
        figment.merge(Serialized::default("presence_grace", GRACE))
    })
    .await
}

/// The next `presence` signal about `who` (other events are skipped).
async fn presence_of(stream: &mut EventStream, who: &str) -> Received {
    loop {
        let event = stream.next_any().await.expect("the stream goes on");
        if event.kind() == "presence" && event.data["userId"] == who {
            return event;
        }
    }
}

/// `GET /api/chat/presence?userIds=…` as `token`: each user's online flag, and the version.
async fn look_up(app: &TestApp, token: &str, users: &str) -> (Value, i64) {
    let (status, body) = app
        .get(&format!("/api/chat/presence?userIds={users}"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let online = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["userId"].as_str().unwrap().to_owned(),
                u["online"].clone(),
            )
        })
        .collect::<serde_json::Map<_, _>>();
    (Value::Object(online), body["version"].as_i64().unwrap())
}

async fn a_user_is_online_while_streaming_and_offline_once_the_grace_has_passed(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, bob, agent) = (user("alice"), user("bob"), admin("agent"));
    let room = app.create_room(&alice, "presence", &["bob"]).await;
    let mut bobs = app.stream("?signals=true", &bob).await;
    let mut agents = app.stream("?signals=true", &agent).await;
    let (offline, before) = look_up(&app, &bob, "alice").await;
    assert_eq!(offline, json!({"alice": false}));

    let alices = app.stream(&format!("?roomId={room}"), &alice).await;
    let mut versions = Vec::new();
    for stream in [&mut bobs, &mut agents] {
        let online = presence_of(stream, "alice").await;
        assert_eq!(online.data["online"], true);
        assert_eq!(online.id, "", "a signal carries no id");
        versions.push(online.data["version"].as_i64().unwrap());
    }
    assert!(
        versions.iter().all(|&v| v > before),
        "{versions:?} after {before}"
    );
    assert_eq!(look_up(&app, &bob, "alice").await.0, json!({"alice": true}));

    let closed = Instant::now();
    drop(alices);
    let offline = presence_of(&mut bobs, "alice").await;
    assert_eq!(offline.data["online"], false);
    assert!(offline.data["version"].as_i64().unwrap() > versions[0]);
    assert!(
        closed.elapsed() >= Duration::from_millis(400),
        "not before the grace: {:?}",
        closed.elapsed()
    );
    assert_eq!(
        presence_of(&mut agents, "alice").await.data["online"],
        false
    );
    assert_eq!(
        look_up(&app, &bob, "alice").await.0,
        json!({"alice": false})
    );
}

async fn a_reload_within_the_grace_does_not_show_the_user_offline(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let room = app.create_room(&alice, "reload", &["bob"]).await;
    let mut bobs = app
        .stream(&format!("?roomId={room}&signals=true"), &bob)
        .await;
    let first = app.stream(&format!("?roomId={room}"), &alice).await;
    assert_eq!(presence_of(&mut bobs, "alice").await.data["online"], true);
    // A reload: the page's stream ends, and the new page's opens.
    drop(first);
    let _second = app.stream(&format!("?roomId={room}"), &alice).await;
    assert_eq!(presence_of(&mut bobs, "alice").await.data["online"], true);
    // Three graces later, nothing said she left: the next event is a message.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    app.send(&alice, &room, "still here").await;
    let next = bobs.next().await.unwrap();
    assert_eq!(
        (next.kind(), &next.data["message"]["body"]),
        ("message", &json!("still here")),
        "{:?}",
        next.data
    );
    assert_eq!(look_up(&app, &bob, "alice").await.0, json!({"alice": true}));
}

async fn a_waiting_poll_keeps_a_user_online(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let room = app.create_room(&alice, "polling", &["bob"]).await;
    let mut bobs = app
        .stream(&format!("?roomId={room}&signals=true"), &bob)
        .await;
    let (_, listing) = app.get("/api/chat/rooms", &alice).await;
    let last = listing["lastEventId"].as_str().unwrap().to_owned();
    let poll = app
        .http
        .get(app.url(&format!("/api/chat/events?lastEventId={last}&wait=2")))
        .bearer_auth(&alice)
        .send();
    let (answer, online) = tokio::join!(poll, presence_of(&mut bobs, "alice"));
    assert_eq!(answer.unwrap().status(), StatusCode::OK);
    assert_eq!(online.data["online"], true);
    // The poll ended; with no next one, she is offline after the grace.
    assert_eq!(presence_of(&mut bobs, "alice").await.data["online"], false);
}

async fn presence_is_told_only_to_those_who_share_a_room_and_to_admins(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, carol) = (user("alice"), user("carol"));
    app.create_room(&alice, "alice's", &["bob"]).await;
    let carols_room = app.create_room(&carol, "carol's", &[]).await;
    let mut carols = app.stream("?signals=true", &carol).await;
    let _alices = app.stream("", &alice).await;
    // The next thing carol gets is her own room's message, not alice's presence.
    app.send(&carol, &carols_room, "mine").await;
    loop {
        let next = carols.next_any().await.unwrap();
        match (next.kind(), next.data["userId"].as_str()) {
            ("heartbeat", _) | ("presence", Some("carol")) => continue,
            (kind, _) => {
                assert_eq!(kind, "message", "{:?}", next.data);
                break;
            }
        }
    }
    // Asked, she learns nothing of alice; bob, who shares a room, and an admin do.
    let (seen, _) = look_up(&app, &carol, "alice,carol").await;
    assert_eq!(seen, json!({"carol": true}));
    let (seen, _) = look_up(&app, &user("bob"), "alice").await;
    assert_eq!(seen, json!({"alice": true}));
    let (seen, _) = look_up(&app, &admin("agent"), "alice,carol,nobody").await;
    assert_eq!(seen, json!({"alice": true, "carol": true, "nobody": false}));
    let (status, body) = app.get("/api/chat/presence?userIds=a,,b", &carol).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// Two real server processes on one PostgreSQL database, beating every 300 ms.
async fn two_instances() -> (SharedDb, ServerProcess, ServerProcess) {
    let backend = Backend::postgres().expect("PostgreSQL");
    let db = SharedDb::create(&backend).await;
    let env = [
        ("CHAT_INSTANCE_HEARTBEAT", "300ms"),
        ("CHAT_PRESENCE_GRACE", GRACE),
    ];
    let a = ServerProcess::start_on(&db, 0, &env).await;
    let b = ServerProcess::start_on(&db, 0, &env).await;
    (db, a, b)
}

/// A stream of `token`'s on `server`, held open.
async fn hold_stream(server: &ServerProcess, query: &str, token: &str) -> EventStream {
    let response = stream_request(&reqwest::Client::new(), &server.address, query, token, None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    EventStream::new(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_presence_agrees_across_instances_and_survives_a_killed_one() {
    if Backend::postgres().is_none() {
        return;
    }
    let (_db, mut a, b) = two_instances().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let room = a.create_room(&alice, "across", &[]).await;
    let added = reqwest::Client::new()
        .post(a.url(&format!("/api/chat/rooms/{room}/members")))
        .bearer_auth(admin("boss"))
        .json(&json!({"userId": "bob"}))
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success());
    let mut bobs = hold_stream(&b, &format!("?roomId={room}&signals=true"), &bob).await;

    // Online on A: B's stream hears it, and B's snapshot agrees.
    let alices = hold_stream(&a, "", &alice).await;
    assert_eq!(presence_of(&mut bobs, "alice").await.data["online"], true);
    let seen: Value = reqwest::Client::new()
        .get(b.url("/api/chat/presence?userIds=alice"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["users"][0]["online"], true, "{seen}");

    // A is killed with her stream open: B tells bob she left, once A lapses.
    let killed = Instant::now();
    a.kill();
    drop(alices);
    let offline = presence_of(&mut bobs, "alice").await;
    assert_eq!(offline.data["online"], false);
    eprintln!(
        "a killed instance's user went offline after {:?} (heartbeat 300ms)",
        killed.elapsed()
    );
    assert!(killed.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_stopped_instances_users_go_offline_after_the_grace_unless_they_return() {
    if Backend::postgres().is_none() {
        return;
    }
    let (_db, mut a, b) = two_instances().await;
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let room = b.create_room(&alice, "handover", &[]).await;
    for mate in ["bob", "carol"] {
        let added = reqwest::Client::new()
            .post(b.url(&format!("/api/chat/rooms/{room}/members")))
            .bearer_auth(admin("boss"))
            .json(&json!({"userId": mate}))
            .send()
            .await
            .unwrap();
        assert!(added.status().is_success());
    }
    let mut bobs = hold_stream(&b, &format!("?roomId={room}&signals=true"), &bob).await;
    let _alices = hold_stream(&a, "", &alice).await;
    let _carols = hold_stream(&a, "", &carol).await;
    // Announced together: in either order.
    let mut online = std::collections::BTreeSet::new();
    while online.len() < 2 {
        let event = bobs.next_any().await.expect("the stream goes on");
        let about = event.data["userId"].as_str().unwrap_or_default().to_owned();
        if event.kind() == "presence" && about != "bob" && event.data["online"] == true {
            online.insert(about);
        }
    }
    assert_eq!(online, ["alice".to_owned(), "carol".to_owned()].into());
    // A stops (SIGTERM); carol comes back on B at once, alice does not.
    a.terminate();
    a.wait_for_exit(Duration::from_secs(15)).await;
    let _carol_again = hold_stream(&b, "", &carol).await;
    let offline = presence_of(&mut bobs, "alice").await;
    assert_eq!(offline.data["online"], false);
    let seen: Value = reqwest::Client::new()
        .get(b.url("/api/chat/presence?userIds=alice,carol"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        seen["users"],
        json!([{"userId": "alice", "online": false}, {"userId": "carol", "online": true}])
    );
}
