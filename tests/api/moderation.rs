//! Moderation: admins close a room to new messages and reopen it, delete a
//! room with its messages and events, streamed as room changes, and erase
//! what a user wrote, in batches; members may not.

use crate::support::{
    Backend, EventStream, TestApp, WAIT, admin, assert_error, count_rows, on_both_stores, send,
    user,
};
use chat_server::model::Timestamp;
use figment::providers::Serialized;
use reqwest::StatusCode;
use serde_json::json;

on_both_stores!(
    an_admin_closes_a_room_to_new_messages_and_reopens_it,
    a_closed_room_takes_no_typing_edits_or_members_but_admins_still_moderate_it,
    only_admins_may_close_a_room_and_outsiders_learn_nothing,
    deleting_a_room_ends_its_streams_drops_it_everywhere_and_leaves_only_its_deletion,
    a_stream_resumed_from_before_a_rooms_deletion_gets_the_deletion_and_nothing_of_the_room,
    only_admins_may_delete_a_room_and_deleting_it_again_answers_the_same,
    a_deleted_rooms_tombstone_goes_once_the_retention_purges_its_deletion,
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

/// The hostile review found a closed room still took typing (204), its
/// author's edits (200) and new members (200).
async fn a_closed_room_takes_no_typing_edits_or_members_but_admins_still_moderate_it(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob, agent) = (user("alice"), user("bob"), admin("agent"));
    let room = app.create_room(&alice, "closing", &["bob"]).await;
    let path = format!("/api/chat/rooms/{room}");
    let mine = app.send(&alice, &room, "my first").await;
    let spam = app.send(&bob, &room, "buy now").await;
    app.send(&bob, &room, "one more").await;
    let message = |m: &serde_json::Value| format!("{path}/messages/{}", m["id"].as_str().unwrap());
    let (status, _) = app.patch(&path, &agent, json!({"closed": true})).await;
    assert_eq!(status, StatusCode::OK);
    let quiet = newest_event_id(&app, &agent).await;

    let refused = [
        app.post(&format!("{path}/typing"), &alice, json!({"typing": true}))
            .await,
        app.patch(&message(&mine), &alice, json!({"body": "changed"}))
            .await,
        app.patch(&message(&mine), &agent, json!({"body": "changed"}))
            .await,
        app.delete(&message(&mine), &alice).await,
        app.post(
            &format!("{path}/members"),
            &agent,
            json!({"userId": "carol"}),
        )
        .await,
    ];
    for attempt in refused {
        assert_error(attempt, StatusCode::CONFLICT, "room_closed");
    }
    // Nothing of those was written.
    assert_eq!(newest_event_id(&app, &agent).await, quiet);
    let (_, room_now) = app.get(&path, &agent).await;
    assert_eq!(room_now["memberIds"], json!(["alice", "bob"]));
    let (_, page) = app.get(&format!("{path}/messages"), &alice).await;
    assert_eq!(page["messages"][0]["body"], "my first");

    // Reading is the reader's own business: a closed room's unread count
    // can still reach zero.
    let (status, read) = app
        .post(&format!("{path}/read"), &alice, json!({"seq": 3}))
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["unreadCount"], 0);
    // Admins moderate: delete a message, erase a user; a member may leave.
    let (status, deleted) = app.delete(&message(&spam), &agent).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["deletedBy"], "agent");
    let (status, _) = app.delete("/api/chat/users/bob/messages", &agent).await;
    assert!(status.is_success(), "{status}");
    let (status, left) = app.delete(&format!("{path}/members/bob"), &bob).await;
    assert_eq!(status, StatusCode::OK, "{left}");
    assert_eq!(left["memberIds"], json!(["alice"]));
    // And reopening lets everything back in.
    let (status, _) = app.patch(&path, &agent, json!({"closed": false})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, edited) = app
        .patch(&message(&mine), &alice, json!({"body": "changed"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    let (status, _) = app
        .post(&format!("{path}/typing"), &alice, json!({"typing": true}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
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

    let (status, job) = app.delete("/api/chat/users/alice/messages", &agent).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["userId"], "alice");
    assert_eq!(job["requestedBy"], "agent");
    let job = erasure_done(&app, job["id"].as_str().unwrap()).await;
    assert_eq!(job["erased"], 5, "{job}");
    assert!(job["finishedAt"].is_string(), "{job}");
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
        assert_eq!(count_rows(app.database_url(), sql).await, 0, "{sql}");
    }
    // Unread: the agent, who never read, has bob's message left.
    assert_eq!(app.unread(&agent, &first).await, 1);
    assert_eq!(app.unread(&agent, &second).await, 0);
    // Again: nothing left to erase, so the job that did it, done.
    let (status, again) = app.delete("/api/chat/users/alice/messages", &agent).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, job);
    // Following a job is for admins.
    let path = format!("/api/chat/erasures/{}", job["id"].as_str().unwrap());
    assert_error(
        app.get(&path, &bob).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    for none in ["er_none", "er_%00", "er_01a2502079eb772eaa00b6d6478fd49b"] {
        assert_error(
            app.get(&format!("/api/chat/erasures/{none}"), &agent).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
}

/// Reads erasure job `id` until it is done (within `WAIT`); the job.
pub async fn erasure_done(app: &TestApp, id: &str) -> serde_json::Value {
    let path = format!("/api/chat/erasures/{id}");
    let started = std::time::Instant::now();
    loop {
        let (status, job) = app.get(&path, &admin("agent")).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if job["state"] == "done" {
            return job;
        }
        assert!(started.elapsed() < WAIT, "the erasure is still {job}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
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
    let (status, file) = send(
        app.http
            .post(app.url(&format!(
                "/api/chat/rooms/{room}/attachments?name=notes.txt"
            )))
            .bearer_auth(&alice)
            .body("old notes"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let (status, old) = app
        .post_message(
            &alice,
            &room,
            json!({"body": "old news", "attachments": [file["id"]]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{old}");
    assert_eq!(app.state.attachments.blob_count().await.unwrap(), 1);
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
    // Its file goes with it.
    assert!(erased.data["message"].get("attachments").is_none());
    let started = std::time::Instant::now();
    while app.state.attachments.blob_count().await.unwrap() > 0 {
        assert!(started.elapsed() < WAIT, "the file outlived its message");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        count_rows(
            app.database_url(),
            "SELECT COUNT(*) FROM events WHERE data LIKE '%old news%'"
        )
        .await,
        0
    );
}

/// `deleted` room events, on each stream, for `room`: no body left in them.
async fn expect_deletion(stream: &mut EventStream, room: &str) {
    let event = stream.expect("room").await;
    assert_eq!(event.data["change"], "deleted", "{:?}", event.data);
    assert_eq!(event.data["room"]["id"], room);
    assert_eq!(event.data["room"]["lastMessage"], serde_json::Value::Null);
}

/// The ids of the rooms in the caller's listing.
async fn listed(app: &TestApp, token: &str) -> (Vec<String>, i64) {
    let (_, listing) = app.get("/api/chat/rooms", token).await;
    let rooms = listing["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|room| room["id"].as_str().unwrap().to_owned())
        .collect();
    (rooms, listing["totalUnread"].as_i64().unwrap())
}

async fn deleting_a_room_ends_its_streams_drops_it_everywhere_and_leaves_only_its_deletion(
    backend: Backend,
) {
    // Batches of two: its five events and three messages take several statements.
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(Serialized::default("erase_batch", 2))
    })
    .await;
    let (alice, bob, agent) = (user("alice"), user("bob"), admin("agent"));
    let doomed = app.create_room(&alice, "doomed", &["bob"]).await;
    let kept = app.create_room(&alice, "kept", &["bob"]).await;
    for n in 0..3 {
        app.send(&bob, &doomed, &format!("doomed secret {n}")).await;
    }
    let (status, _) = app
        .post(
            &format!("/api/chat/rooms/{doomed}/read"),
            &alice,
            json!({"seq": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.send(&bob, &kept, "kept").await;
    let mut widget = app.stream(&format!("?roomId={doomed}"), &alice).await;
    let mut alices = app.stream("", &alice).await;
    let mut agents = app.stream("", &agent).await;

    let path = format!("/api/chat/rooms/{doomed}");
    let (status, deleted) = app.delete(&path, &agent).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["roomId"], doomed.as_str());
    assert_eq!(deleted["deletedBy"], "agent");
    assert!(deleted["deletedAt"].is_string(), "{deleted}");
    expect_deletion(&mut widget, &doomed).await;
    widget.expect_end().await;
    expect_deletion(&mut alices, &doomed).await;
    expect_deletion(&mut agents, &doomed).await;
    // Alice's global stream goes on, with her other room.
    app.send(&bob, &kept, "after").await;
    let next = alices.expect("message").await;
    assert_eq!(next.data["message"]["roomId"], kept.as_str());

    for token in [&alice, &agent] {
        assert_eq!(listed(&app, token).await, (vec![kept.clone()], 2));
        assert_error(
            app.get(&path, token).await,
            StatusCode::NOT_FOUND,
            "room_not_found",
        );
        for refused in [
            app.post(
                &format!("{path}/messages"),
                token,
                json!({"body": "hello?"}),
            )
            .await,
            app.get(&format!("{path}/messages"), token).await,
            app.post(
                &format!("{path}/members"),
                token,
                json!({"userId": "carol"}),
            )
            .await,
            app.post(&format!("{path}/typing"), token, json!({"typing": true}))
                .await,
            app.post(&format!("{path}/read"), token, json!({"seq": 3}))
                .await,
            app.get(&format!("/api/chat/sse?roomId={doomed}"), token)
                .await,
        ] {
            assert_error(refused, StatusCode::NOT_FOUND, "room_not_found");
        }
    }
    // In the store, only the deletion is left of it: no message, no cursor,
    // no other event.
    for (sql, rows) in [
        (
            format!("SELECT COUNT(*) FROM messages WHERE room_id = '{doomed}'"),
            0,
        ),
        (
            format!("SELECT COUNT(*) FROM read_cursors WHERE room_id = '{doomed}'"),
            0,
        ),
        (
            format!("SELECT COUNT(*) FROM events WHERE room_id = '{doomed}'"),
            1,
        ),
        (
            "SELECT COUNT(*) FROM events WHERE data LIKE '%secret%'".to_owned(),
            0,
        ),
    ] {
        assert_eq!(count_rows(app.database_url(), &sql).await, rows, "{sql}");
    }
}

async fn a_stream_resumed_from_before_a_rooms_deletion_gets_the_deletion_and_nothing_of_the_room(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob, agent) = (user("alice"), user("bob"), admin("agent"));
    let kept = app.create_room(&alice, "kept", &["bob"]).await;
    let doomed = app.create_room(&alice, "doomed", &["bob"]).await;
    let before = newest_event_id(&app, &alice).await;
    app.send(&bob, &doomed, "doomed secret").await;
    let (status, _) = app
        .delete(&format!("/api/chat/rooms/{doomed}"), &agent)
        .await;
    assert_eq!(status, StatusCode::OK);
    app.send(&bob, &kept, "after").await;

    // A member's global stream and an admin's: the deletion, then what came after.
    for token in [&alice, &agent] {
        let mut resumed = app.stream_from("", token, Some(&before)).await;
        expect_deletion(&mut resumed, &doomed).await;
        let next = resumed.expect("message").await;
        assert_eq!(next.data["message"]["body"], "after");
    }
    // A member's stream of the room: the deletion, and the end.
    let mut widget = app
        .stream_from(&format!("?roomId={doomed}"), &alice, Some(&before))
        .await;
    expect_deletion(&mut widget, &doomed).await;
    widget.expect_end().await;
    // Long-polling from before: the same.
    let (status, page) = app
        .get(&format!("/api/chat/events?after={before}&wait=0"), &alice)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let kinds: Vec<(&str, &str)> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            let data = &event["data"];
            let kind = data["type"].as_str().unwrap();
            (kind, data["change"].as_str().unwrap_or(kind))
        })
        .collect();
    assert_eq!(kinds, [("room", "deleted"), ("message", "message")]);
}

async fn only_admins_may_delete_a_room_and_deleting_it_again_answers_the_same(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = app.create_room(&alice, "mine", &[]).await;
    let path = format!("/api/chat/rooms/{room}");
    assert_error(
        app.delete(&path, &alice).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    for (path, status, code) in [
        (path.as_str(), StatusCode::NOT_FOUND, "room_not_found"),
        (
            "/api/chat/rooms/00000000-0000-4000-8000-000000000000",
            StatusCode::NOT_FOUND,
            "room_not_found",
        ),
        (
            "/api/chat/rooms/not-a-room",
            StatusCode::BAD_REQUEST,
            "invalid_room_id",
        ),
    ] {
        assert_error(app.delete(path, &user("mallory")).await, status, code);
    }
    // Refused, it is as it was.
    app.send(&alice, &room, "still here").await;

    let (status, deleted) = app.delete(&path, &agent).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let quiet = newest_event_id(&app, &agent).await;
    let (status, again) = app.delete(&path, &agent).await;
    assert_eq!((status, again), (StatusCode::OK, deleted));
    assert_eq!(
        newest_event_id(&app, &agent).await,
        quiet,
        "no second event"
    );
    assert_error(
        app.delete(&path, &alice).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
}

async fn a_deleted_rooms_tombstone_goes_once_the_retention_purges_its_deletion(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = app.create_room(&alice, "short-lived", &["bob"]).await;
    let (status, _) = app.delete(&format!("/api/chat/rooms/{room}"), &agent).await;
    assert_eq!(status, StatusCode::OK);
    let tombstone = format!("SELECT COUNT(*) FROM rooms WHERE id = '{room}'");
    let members = format!("SELECT COUNT(*) FROM room_members WHERE room_id = '{room}'");
    assert_eq!(
        count_rows(app.database_url(), &tombstone).await,
        1,
        "kept beside its deletion"
    );
    assert_eq!(
        count_rows(app.database_url(), &members).await,
        2,
        "so members' replays find it"
    );
    // The retention's sweep, as if its window had passed since.
    let later = Timestamp::from_unix_ms(Timestamp::now().unix_ms() + 1_000);
    let purged = app.state.store.purge_events(later, 100).await.unwrap();
    assert_eq!(purged, 1, "its deletion (its creation went with the room)");
    assert_eq!(count_rows(app.database_url(), &tombstone).await, 0);
    assert_eq!(count_rows(app.database_url(), &members).await, 0);
}
