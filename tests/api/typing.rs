//! Typing notices: ephemeral signals to a room's live viewers, on every
//! instance; never logged, replayed or unread; only from someone who may
//! see the room, and rate-limited.

use crate::support::{Backend, TestApp, admin, assert_error, on_both_stores, user};
use figment::providers::Serialized;
use reqwest::StatusCode;
use serde_json::json;

on_both_stores!(
    a_typing_notice_reaches_the_rooms_live_viewers_and_no_one_else,
    a_typing_notice_is_never_logged_replayed_polled_or_unread,
    typing_is_for_those_who_see_the_room_and_is_rate_limited,
);

fn typing_path(room: &str) -> String {
    format!("/api/chat/rooms/{room}/typing")
}

async fn a_typing_notice_reaches_the_rooms_live_viewers_and_no_one_else(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob, carol, agent) = (user("alice"), user("bob"), user("carol"), admin("agent"));
    let room = app.create_room(&alice, "typing", &["bob"]).await;
    let elsewhere = app.create_room(&carol, "elsewhere", &[]).await;
    let mut bobs_room = app
        .stream(&format!("?roomId={room}&signals=true"), &bob)
        .await;
    let mut bobs_global = app.stream("?signals=true", &bob).await;
    let mut agents = app.stream("?signals=true", &agent).await;
    let mut carols = app.stream("?signals=true", &carol).await;
    // A stream that did not ask for signals gets none.
    let mut plain = app.stream("", &agent).await;

    let (status, body) = app
        .post(&typing_path(&room), &alice, json!({"typing": true}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for stream in [&mut bobs_room, &mut bobs_global, &mut agents] {
        let notice = stream.expect("typing").await;
        assert_eq!(
            notice.data,
            json!({"type": "typing", "roomId": room, "userId": "alice",
                   "typing": true, "expiresInMs": 6000})
        );
        assert_eq!(notice.id, "", "a signal carries no id");
    }
    // Carol is in no room of alice's: the next thing she gets is her own
    // room's; so is the plain stream's.
    app.send(&carol, &elsewhere, "mine").await;
    for stream in [&mut carols, &mut plain] {
        assert_eq!(
            stream.expect("message").await.data["message"]["body"],
            "mine"
        );
    }

    // Stopping is a notice too, with nothing left to wait for.
    app.post(&typing_path(&room), &alice, json!({"typing": false}))
        .await;
    let stopped = bobs_room.expect("typing").await;
    assert_eq!(
        (&stopped.data["typing"], &stopped.data["expiresInMs"]),
        (&json!(false), &json!(0))
    );
}

async fn a_typing_notice_is_never_logged_replayed_polled_or_unread(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let room = app.create_room(&alice, "ephemeral", &["bob"]).await;
    let (_, before) = app.get("/api/chat/rooms", &bob).await;
    let last = before["lastEventId"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        app.post(&typing_path(&room), &alice, json!({"typing": true}))
            .await;
    }
    let (_, after) = app.get("/api/chat/rooms", &bob).await;
    assert_eq!(
        after["lastEventId"], before["lastEventId"],
        "nothing logged"
    );
    assert_eq!(after["totalUnread"], 0);
    let (status, poll) = app
        .get(&format!("/api/chat/events?lastEventId={last}&wait=0"), &bob)
        .await;
    assert_eq!(status, StatusCode::OK, "{poll}");
    assert_eq!(poll["events"], json!([]));
    // A stream resumed from before the notices gets the next message, not them.
    let mut resumed = app
        .stream_from(&format!("?roomId={room}&signals=true"), &bob, Some(&last))
        .await;
    app.send(&alice, &room, "sent").await;
    assert_eq!(
        resumed.expect("message").await.data["message"]["body"],
        "sent"
    );
}

async fn typing_is_for_those_who_see_the_room_and_is_rate_limited(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment
            .merge(Serialized::default("typing_rate_per_user", 1))
            .merge(Serialized::default("typing_burst_per_user", 2))
    })
    .await;
    let alice = user("alice");
    let room = app.create_room(&alice, "limits", &[]).await;
    assert_error(
        app.post(
            &typing_path(&room),
            &user("mallory"),
            json!({"typing": true}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
    let (status, _) = app
        .post(
            &typing_path(&room),
            &admin("agent"),
            json!({"typing": true}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "admins see every room");
    assert_error(
        app.post(&typing_path(&room), &alice, json!({"typing": "yes"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, _) = app
            .post(&typing_path(&room), &alice, json!({"typing": true}))
            .await;
        statuses.push(status);
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

/// On PostgreSQL, a notice posted to one instance reaches the streams of
/// another (through `chat_signals`), once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typing_notice_reaches_the_streams_of_every_instance_once() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let first = TestApp::spawn(backend).await;
    let second = first.sibling_with(|figment| figment).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let room = first.create_room(&alice, "across", &["bob"]).await;
    let query = format!("?roomId={room}&signals=true");
    let mut on_second = second.stream(&query, &bob).await;
    let mut on_first = first.stream(&query, &bob).await;
    first
        .post(&typing_path(&room), &alice, json!({"typing": true}))
        .await;
    assert_eq!(on_second.expect("typing").await.data["userId"], "alice");
    assert_eq!(on_first.expect("typing").await.data["userId"], "alice");
    // Once each: the next thing either gets is the message after it.
    first.send(&alice, &room, "after").await;
    for stream in [&mut on_second, &mut on_first] {
        assert_eq!(
            stream.expect("message").await.data["message"]["body"],
            "after"
        );
    }
}
