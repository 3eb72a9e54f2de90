//! Seen receipts: a room carries every reader's cursor, and the `read`
//! events keep it current, so a client shows "seen" with no request per
//! message; the listing's ETag changes with another reader's cursor.

use crate::support::{Backend, TestApp, admin, on_both_stores, user};
use reqwest::StatusCode;
use serde_json::json;

on_both_stores!(
    a_room_carries_every_readers_cursor_and_read_events_keep_it_current,
    another_readers_cursor_changes_the_listings_etag,
);

async fn a_room_carries_every_readers_cursor_and_read_events_keep_it_current(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = app.create_room(&alice, "receipts", &["bob"]).await;
    app.send(&alice, &room, "one").await;
    app.send(&alice, &room, "two").await;
    let (_, fresh) = app.get(&format!("/api/chat/rooms/{room}"), &alice).await;
    // Posting reads the room: the author is at their own newest message.
    assert_eq!(fresh["readCursors"], json!({"alice": 2}));
    assert_eq!(fresh["lastReadSeq"], 2);

    let mut widget = app.stream(&format!("?roomId={room}"), &alice).await;
    let (status, _) = app
        .post(
            &format!("/api/chat/rooms/{room}/read"),
            &agent,
            json!({"seq": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let read = widget.expect("read").await;
    assert_eq!(
        (&read.data["userId"], &read.data["lastReadSeq"]),
        (&json!("agent"), &json!(1))
    );
    // The snapshot says the same, to the author and to the agents alike.
    for token in [&alice, &agent] {
        let (_, listing) = app.get("/api/chat/rooms", token).await;
        assert_eq!(
            listing["rooms"][0]["readCursors"],
            json!({"agent": 1, "alice": 2})
        );
    }
    // A member who never read has no cursor; one who cannot see the room
    // learns nothing of it.
    let (status, _) = app
        .get(&format!("/api/chat/rooms/{room}"), &user("mallory"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn another_readers_cursor_changes_the_listings_etag(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let room = app.create_room(&alice, "etag", &["bob"]).await;
    app.send(&alice, &room, "seen yet?").await;
    let listing = |etag: Option<String>| {
        let mut request = app.http.get(app.url("/api/chat/rooms")).bearer_auth(&alice);
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        request.send()
    };
    let first = listing(None).await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        listing(Some(etag.clone())).await.unwrap().status(),
        StatusCode::NOT_MODIFIED
    );
    app.post(
        &format!("/api/chat/rooms/{room}/read"),
        &bob,
        json!({"seq": 1}),
    )
    .await;
    let after = listing(Some(etag)).await.unwrap();
    assert_eq!(after.status(), StatusCode::OK, "not a stale 304");
    let body: serde_json::Value = after.json().await.unwrap();
    assert_eq!(body["rooms"][0]["readCursors"]["bob"], 1);
}
