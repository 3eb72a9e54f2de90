//! Editing and deleting messages: who may, the events every viewer streams
//! (and a resumed stream replays), tombstones that keep their seq, bodies
//! gone from the store and the log, and unread counts that stay exact.

use crate::support::{Backend, TestApp, admin, assert_error, count_rows, on_both_stores, user};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_stores!(
    an_edit_reaches_every_viewer_with_a_new_event_id_and_keeps_the_seq,
    only_the_author_within_the_window_or_an_admin_may_edit,
    a_deletion_leaves_a_tombstone_at_its_seq_and_no_body_in_the_store_or_the_log,
    deleting_twice_answers_the_same_tombstone_and_logs_one_event,
    a_deleted_unread_message_no_longer_counts_and_the_listing_changes_its_etag,
    members_cannot_delete_each_others_messages_and_outsiders_learn_nothing,
    a_resent_client_id_of_a_deleted_message_answers_its_tombstone,
);

fn message_path(room: &str, message: &Value) -> String {
    let id = message["id"].as_str().expect("a message id");
    format!("/api/chat/rooms/{room}/messages/{id}")
}

/// The room's messages, as its history answers them.
async fn history(app: &TestApp, token: &str, room: &str) -> Vec<Value> {
    let (status, page) = app
        .get(&format!("/api/chat/rooms/{room}/messages"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["messages"].as_array().expect("messages").clone()
}

async fn newest_event_id(app: &TestApp, token: &str) -> String {
    let (status, listing) = app.get("/api/chat/rooms", token).await;
    assert_eq!(status, StatusCode::OK, "{listing}");
    listing["lastEventId"].as_str().expect("an id").to_owned()
}

async fn an_edit_reaches_every_viewer_with_a_new_event_id_and_keeps_the_seq(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = app.create_room(&alice, "edits", &["bob"]).await;
    let before = newest_event_id(&app, &agent).await;
    let sent = app.send(&alice, &room, "helo").await;

    let mut admin_stream = app.stream("", &agent).await;
    let mut member_stream = app.stream("", &user("bob")).await;
    let mut room_stream = app.stream(&format!("?roomId={room}"), &alice).await;
    let (status, edited) = app
        .patch(
            &message_path(&room, &sent),
            &alice,
            json!({"body": "hello"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["body"], "hello");
    assert_eq!(edited["seq"], sent["seq"]);
    assert_eq!(edited["id"], sent["id"]);
    assert!(edited["editedAt"].is_string(), "{edited}");

    for stream in [&mut admin_stream, &mut member_stream, &mut room_stream] {
        let event = stream.expect("message_edited").await;
        assert_eq!(event.data["message"], edited);
    }
    assert_eq!(
        history(&app, &alice, &room).await,
        std::slice::from_ref(&edited)
    );
    let (_, listed) = app
        .get(&format!("/api/chat/rooms/{room}"), &user("bob"))
        .await;
    assert_eq!(listed["lastMessage"], edited);

    // A stream resumed from before the post replays the log, which no
    // longer holds the first body: the message as it is now, then the edit.
    let mut resumed = app
        .stream_from(&format!("?roomId={room}"), &alice, Some(&before))
        .await;
    let message = resumed.expect("message").await;
    assert_eq!(message.data["message"]["body"], "hello");
    let edit = resumed.expect("message_edited").await;
    assert!(edit.id() > message.id());
    assert_eq!(
        count_rows(
            app.database_url(),
            "SELECT COUNT(*) FROM events WHERE data LIKE '%helo%'"
        )
        .await,
        0
    );
}

async fn only_the_author_within_the_window_or_an_admin_may_edit(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(figment::providers::Serialized::default(
            "message_edit_window",
            "1s",
        ))
    })
    .await;
    let (alice, bob, agent) = (user("alice"), user("bob"), admin("agent"));
    let room = app.create_room(&alice, "window", &["bob"]).await;
    let sent = app.send(&alice, &room, "first").await;
    let sent_at = std::time::Instant::now();
    let path = message_path(&room, &sent);
    let (status, edited) = app.patch(&path, &alice, json!({"body": "first!"})).await;
    assert_eq!(status, StatusCode::OK, "within the window: {edited}");

    assert_error(
        app.patch(&path, &bob, json!({"body": "bob was here"}))
            .await,
        StatusCode::FORBIDDEN,
        "not_author",
    );
    assert_error(
        app.patch(&path, &user("mallory"), json!({"body": "x"}))
            .await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
    assert_error(
        app.patch(&path, &alice, json!({"body": "  "})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    let other_room = app.create_room(&alice, "other", &[]).await;
    assert_error(
        app.patch(
            &message_path(&other_room, &sent),
            &alice,
            json!({"body": "x"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        app.patch(
            &format!("/api/chat/rooms/{room}/messages/not-a-uuid"),
            &alice,
            json!({"body": "x"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_message_id",
    );
    // The same body again changes nothing and logs nothing.
    let quiet = newest_event_id(&app, &agent).await;
    let (status, same) = app.patch(&path, &alice, json!({"body": "first!"})).await;
    assert_eq!((status, &same), (StatusCode::OK, &edited));
    assert_eq!(newest_event_id(&app, &agent).await, quiet);

    // The window closes for the author (it is 1 s here), never for an admin.
    let closed = std::time::Duration::from_millis(1200);
    tokio::time::sleep(closed.saturating_sub(sent_at.elapsed())).await;
    assert_error(
        app.patch(&path, &alice, json!({"body": "too late"})).await,
        StatusCode::FORBIDDEN,
        "edit_window_closed",
    );
    let (status, moderated) = app.patch(&path, &agent, json!({"body": "[edited]"})).await;
    assert_eq!(status, StatusCode::OK, "{moderated}");
    assert_eq!(history(&app, &bob, &room).await[0]["body"], "[edited]");
}

async fn a_deletion_leaves_a_tombstone_at_its_seq_and_no_body_in_the_store_or_the_log(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob, agent) = (user("alice"), user("bob"), admin("agent"));
    let room = app.create_room(&alice, "oops", &["bob"]).await;
    app.send(&alice, &room, "before").await;
    let mistake = app.send(&alice, &room, "my card is 4111 1111").await;
    let (status, _) = app
        .patch(
            &message_path(&room, &mistake),
            &alice,
            json!({"body": "my card is 4111 1111 1111"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A membership change now shows the mistake as the room's last message.
    app.add_member(&room, "carol").await;

    let mut bobs_stream = app.stream("", &bob).await;
    let (status, tombstone) = app.delete(&message_path(&room, &mistake), &alice).await;
    assert_eq!(status, StatusCode::OK, "{tombstone}");
    assert_eq!(tombstone["body"], "");
    assert_eq!(tombstone["seq"], 2);
    assert_eq!(tombstone["deletedBy"], "alice");
    assert!(tombstone["deletedAt"].is_string(), "{tombstone}");
    assert_eq!(tombstone.get("editedAt"), None, "{tombstone}");
    let event = bobs_stream.expect("message_deleted").await;
    assert_eq!(event.data["message"], tombstone);

    // No gap: the tombstone keeps seq 2, the next message takes 3.
    let next = app.send(&bob, &room, "after").await;
    assert_eq!(next["seq"], 3);
    let seqs: Vec<i64> = history(&app, &agent, &room)
        .await
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(history(&app, &bob, &room).await[1], tombstone);

    // The body is gone from the messages and from every event of the log.
    for table in ["messages", "events"] {
        let column = if table == "messages" { "body" } else { "data" };
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} LIKE '%4111%'");
        assert_eq!(count_rows(app.database_url(), &sql).await, 0, "{table}");
    }
    // Nor does a replay of the whole log show it, from the window or the store.
    let (status, replay) = app.get("/api/chat/events?after=0&wait=0", &agent).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!replay.to_string().contains("4111"), "{replay}");
    assert!(replay.to_string().contains("member_added"), "{replay}");
    assert_error(
        app.patch(
            &message_path(&room, &mistake),
            &agent,
            json!({"body": "back"}),
        )
        .await,
        StatusCode::CONFLICT,
        "message_deleted",
    );
}

async fn deleting_twice_answers_the_same_tombstone_and_logs_one_event(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = app.create_room(&alice, "twice", &[]).await;
    let sent = app.send(&alice, &room, "bye").await;
    let (status, first) = app.delete(&message_path(&room, &sent), &agent).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["deletedBy"], "agent");
    let after_first = newest_event_id(&app, &agent).await;
    let (status, second) = app.delete(&message_path(&room, &sent), &alice).await;
    assert_eq!((status, &second), (StatusCode::OK, &first));
    assert_eq!(newest_event_id(&app, &agent).await, after_first);
    let deletions = count_rows(
        app.database_url(),
        "SELECT COUNT(*) FROM events WHERE data LIKE '{\"type\":\"message_deleted\"%'",
    )
    .await;
    assert_eq!(deletions, 1);
}

async fn a_deleted_unread_message_no_longer_counts_and_the_listing_changes_its_etag(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let room = app.create_room(&alice, "unread", &["bob"]).await;
    let sent: Vec<Value> = {
        let mut sent = Vec::new();
        for body in ["one", "two", "three"] {
            sent.push(app.send(&alice, &room, body).await);
        }
        sent
    };
    assert_eq!(app.unread(&bob, &room).await, 3);
    let listing = app
        .http
        .get(app.url("/api/chat/rooms"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    let etag = listing.headers()["etag"].clone();

    let (status, _) = app.delete(&message_path(&room, &sent[1]), &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.unread(&bob, &room).await, 2);
    let (_, listing) = app.get("/api/chat/rooms", &bob).await;
    assert_eq!(listing["totalUnread"], 2);
    assert_eq!(listing["rooms"][0]["unreadCount"], 2);
    let revalidated = app
        .http
        .get(app.url("/api/chat/rooms"))
        .bearer_auth(&bob)
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), StatusCode::OK, "not a stale 304");

    // Reading past the tombstone leaves one; reading all, none.
    let read = format!("/api/chat/rooms/{room}/read");
    let (_, state) = app.post(&read, &bob, json!({"seq": 1})).await;
    assert_eq!(state["unreadCount"], 1);
    // The author's own count never included their messages, deleted or not.
    assert_eq!(app.unread(&alice, &room).await, 0);
    let (_, state) = app.post(&read, &bob, json!({"seq": 3})).await;
    assert_eq!(state["unreadCount"], 0);
    // A deletion below the cursor changes no count.
    app.delete(&message_path(&room, &sent[0]), &alice).await;
    assert_eq!(app.unread(&bob, &room).await, 0);
    let (_, listing) = app.get("/api/chat/rooms", &admin("agent")).await;
    assert_eq!(
        listing["totalUnread"], 1,
        "the admin never read: three, two deleted"
    );
}

async fn members_cannot_delete_each_others_messages_and_outsiders_learn_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let room = app.create_room(&alice, "mine", &["bob"]).await;
    let sent = app.send(&alice, &room, "keep me").await;
    let path = message_path(&room, &sent);
    assert_error(
        app.delete(&path, &bob).await,
        StatusCode::FORBIDDEN,
        "not_author",
    );
    assert_error(
        app.delete(&path, &user("mallory")).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
    assert_error(
        app.delete(
            &format!("/api/chat/rooms/{room}/messages/{}", uuid_like()),
            &alice,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(history(&app, &bob, &room).await[0]["body"], "keep me");
}

fn uuid_like() -> &'static str {
    "0190a7f0-0000-7000-8000-000000000000"
}

async fn a_resent_client_id_of_a_deleted_message_answers_its_tombstone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "resend", &[]).await;
    let path = format!("/api/chat/rooms/{room}/messages");
    let send = json!({"body": "once", "clientId": "c-1"});
    let (status, sent) = app.post(&path, &alice, send.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, tombstone) = app.delete(&message_path(&room, &sent), &alice).await;
    // A retry that arrives after the deletion: the send did happen.
    let (status, again) = app.post(&path, &alice, send).await;
    assert_eq!((status, again), (StatusCode::OK, tombstone));
    assert_eq!(history(&app, &alice, &room).await.len(), 1);
}
