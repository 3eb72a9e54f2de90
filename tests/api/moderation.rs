//! Moderation: admins close a room to new messages and reopen it, streamed
//! as room changes, and erase what a user wrote, in batches; members may not.

use crate::helpers::{Backend, TestApp, admin, assert_error, on_both_stores, user};
use figment::providers::Serialized;
use reqwest::StatusCode;
use serde_json::json;

on_both_stores!(
    an_admin_closes_a_room_to_new_messages_and_reopens_it,
    only_admins_may_close_a_room_and_outsiders_learn_nothing,
    erasing_a_user_makes_every_message_of_theirs_a_tombstone_in_batches_and_streams_each,
    with_a_message_retention_old_messages_become_tombstones_and_new_ones_stay,
);

async fn newest_event_id(app: &TestApp, token: &str) -> String {
    let (_, listing) = app.get("/api/chat/rooms", token).await;
    listing["lastEventId"].as_str().unwrap().to_owned()
}

async fn an_admin_closes_a_room_to_new_messages_and_reopens_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = app.create_room(&alice, "closing", &[]).await;
    let path = format!("/api/chat/rooms/{room}");
    let messages = format!("{path}/messages");
    let sent = json!({"body": "before", "clientId": "c-1"});
    let (status, original) = app.post(&messages, &alice, sent.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let mut widget = app.stream(&format!("?roomId={room}"), &alice).await;

    let (status, closed) = app.patch(&path, &agent, json!({"closed": true})).await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert!(closed["closedAt"].is_string(), "{closed}");
    assert_eq!(closed["closedBy"], "agent");
    let change = widget.expect("room").await;
    assert_eq!(change.data["change"], "closed");
    assert!(change.data["room"]["closedAt"].is_string());

    for token in [&alice, &agent] {
        assert_error(
            app.post(&messages, token, json!({"body": "after"})).await,
            StatusCode::CONFLICT,
            "room_closed",
        );
    }
    // A retry of what was sent before the close still gets the original.
    let (status, again) = app.post(&messages, &alice, sent).await;
    assert_eq!((status, again), (StatusCode::OK, original));
    // Closing it again changes nothing.
    let quiet = newest_event_id(&app, &agent).await;
    let (status, _) = app.patch(&path, &agent, json!({"closed": true})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(newest_event_id(&app, &agent).await, quiet);

    let (status, reopened) = app.patch(&path, &agent, json!({"closed": false})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reopened.get("closedAt"), None, "{reopened}");
    assert_eq!(widget.expect("room").await.data["change"], "reopened");
    app.send(&alice, &room, "open again").await;
    assert_eq!(
        widget.expect("message").await.data["message"]["body"],
        "open again"
    );
}

async fn only_admins_may_close_a_room_and_outsiders_learn_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "mine", &[]).await;
    let path = format!("/api/chat/rooms/{room}");
    assert_error(
        app.patch(&path, &alice, json!({"closed": true})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        app.patch(&path, &user("mallory"), json!({"closed": true}))
            .await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
    assert_error(
        app.patch(&path, &admin("agent"), json!({"closed": "yes"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    app.send(&alice, &room, "still open").await;
}

async fn erasing_a_user_makes_every_message_of_theirs_a_tombstone_in_batches_and_streams_each(
    backend: Backend,
) {
    // Batches of two: five messages take three transactions.
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(Serialized::default("erase_batch", 2))
    })
    .await;
    let (alice, bob, agent) = (user("alice"), user("bob"), admin("agent"));
    let first = app.create_room(&alice, "first", &["bob"]).await;
    let second = app.create_room(&alice, "second", &[]).await;
    for n in 0..3 {
        app.send(&alice, &first, &format!("alice secret {n}")).await;
    }
    app.send(&bob, &first, "bob stays").await;
    for n in 3..5 {
        app.send(&alice, &second, &format!("alice secret {n}"))
            .await;
    }
    let mut agents = app.stream("", &agent).await;
    assert_error(
        app.delete("/api/chat/users/alice/messages", &bob).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    let (status, erased) = app.delete("/api/chat/users/alice/messages", &agent).await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased, json!({"userId": "alice", "erased": 5}));
    let mut streamed = Vec::new();
    while streamed.len() < 5 {
        let event = agents.expect("message_deleted").await;
        assert_eq!(event.data["message"]["deletedBy"], "agent");
        streamed.push(event.data["message"]["body"].clone());
    }
    assert!(streamed.iter().all(|body| body == ""));
    let (_, page) = app
        .get(&format!("/api/chat/rooms/{first}/messages"), &bob)
        .await;
    let bodies: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["", "", "", "bob stays"],
        "the seqs stay, bob's message too"
    );
    for sql in [
        "SELECT COUNT(*) FROM messages WHERE body LIKE '%secret%'",
        "SELECT COUNT(*) FROM events WHERE data LIKE '%secret%'",
    ] {
        assert_eq!(app.count_rows(sql).await, 0, "{sql}");
    }
    // Unread: the agent, who never read, has bob's message left.
    assert_eq!(app.unread(&agent, &first).await, 1);
    assert_eq!(app.unread(&agent, &second).await, 0);
    // Again: nothing left to erase.
    let (_, again) = app.delete("/api/chat/users/alice/messages", &agent).await;
    assert_eq!(again["erased"], 0);
}

async fn with_a_message_retention_old_messages_become_tombstones_and_new_ones_stay(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(Serialized::default("message_retention", "3s"))
    })
    .await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = app.create_room(&alice, "kept a while", &[]).await;
    let mut agents = app.stream("", &agent).await;
    let old = app.send(&alice, &room, "old news").await;
    // Fresh, it is kept.
    let (_, page) = app
        .get(&format!("/api/chat/rooms/{room}/messages"), &alice)
        .await;
    assert_eq!(page["messages"][0]["body"], "old news");
    let message = agents.expect("message").await;
    assert_eq!(message.data["message"]["id"], old["id"]);
    // Three seconds on, the retention makes it a tombstone, as a deletion.
    let erased = agents.expect("message_deleted").await;
    assert_eq!(erased.data["message"]["id"], old["id"]);
    assert_eq!(erased.data["message"]["deletedBy"], "chat-server:retention");
    assert_eq!(
        app.count_rows("SELECT COUNT(*) FROM events WHERE data LIKE '%old news%'")
            .await,
        0
    );
}
