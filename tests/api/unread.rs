//! Unread counts: messages above the caller's cursor that others wrote; posting
//! moves the author's cursor; marking read only moves forward and is clamped.

use crate::helpers::{Backend, TestApp, admin, on_both_stores, user};
use reqwest::StatusCode;
use serde_json::json;

on_both_stores!(
    unread_counts_follow_other_authors_own_messages_and_cursor_moves,
    marking_read_is_clamped_and_never_moves_backwards,
    total_unread_covers_every_visible_room_not_just_the_page,
);

async fn unread_counts_follow_other_authors_own_messages_and_cursor_moves(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob, boss) = (user("alice"), user("bob"), admin("boss"));
    let room = app.create_room(&alice, "pair", &["bob"]).await;

    app.send(&alice, &room, "one").await;
    app.send(&alice, &room, "two").await;
    assert_eq!(
        app.unread(&alice, &room).await,
        0,
        "your own messages are read"
    );
    assert_eq!(app.unread(&bob, &room).await, 2);
    assert_eq!(
        app.unread(&boss, &room).await,
        2,
        "admins count for themselves"
    );

    app.send(&bob, &room, "three").await;
    assert_eq!(
        app.unread(&bob, &room).await,
        0,
        "posting moves the author's cursor"
    );
    assert_eq!(app.unread(&alice, &room).await, 1);

    let (status, read) = app
        .post(
            &format!("/api/chat/rooms/{room}/read"),
            &boss,
            json!({"seq": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(
        read,
        json!({"roomId": room, "userId": "boss", "lastReadSeq": 1, "unreadCount": 2})
    );
    assert_eq!(app.unread(&boss, &room).await, 2);
    assert_eq!(
        app.unread(&alice, &room).await,
        1,
        "one reader's cursor is theirs alone"
    );
}

async fn marking_read_is_clamped_and_never_moves_backwards(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let room = app.create_room(&alice, "cursor", &["bob"]).await;
    for body in ["a", "b", "c"] {
        app.send(&alice, &room, body).await;
    }
    let read = |seq: i64| {
        let path = format!("/api/chat/rooms/{room}/read");
        let (app, bob) = (&app, &bob);
        async move {
            let (status, state) = app.post(&path, bob, json!({"seq": seq})).await;
            assert_eq!(status, StatusCode::OK, "{state}");
            (
                state["lastReadSeq"].as_i64().unwrap(),
                state["unreadCount"].as_i64().unwrap(),
            )
        }
    };
    assert_eq!(read(2).await, (2, 1));
    assert_eq!(read(1).await, (2, 1), "a cursor never moves back");
    assert_eq!(
        read(1_000_000).await,
        (3, 0),
        "beyond the last message is clamped"
    );
    assert_eq!(read(0).await, (3, 0));
    app.send(&alice, &room, "d").await;
    assert_eq!(
        app.unread(&bob, &room).await,
        1,
        "the clamp did not reach ahead"
    );
}

async fn total_unread_covers_every_visible_room_not_just_the_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob, boss) = (user("alice"), user("bob"), admin("boss"));
    for i in 0..4 {
        let room = app
            .create_room(&alice, &format!("room {i}"), &["bob"])
            .await;
        for _ in 0..=i {
            app.send(&alice, &room, "ping").await;
        }
    }
    let elsewhere = app.create_room(&user("carol"), "carol's", &[]).await;
    app.send(&user("carol"), &elsewhere, "not for bob").await;

    let (_, page) = app.get("/api/chat/rooms?limit=1", &bob).await;
    assert_eq!(page["rooms"].as_array().unwrap().len(), 1);
    assert_eq!(page["rooms"][0]["unreadCount"], 4);
    assert_eq!(page["totalUnread"], 1 + 2 + 3 + 4);
    let (_, page) = app.get("/api/chat/rooms?limit=1", &boss).await;
    assert_eq!(
        page["totalUnread"],
        1 + 2 + 3 + 4 + 1,
        "admins count every room"
    );
    let (_, page) = app.get("/api/chat/rooms", &alice).await;
    assert_eq!(page["totalUnread"], 0);
}
