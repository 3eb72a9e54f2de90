//! Unread counts: messages above the caller's cursor that others wrote; posting
//! moves the author's cursor; marking read only moves forward and is clamped.

use crate::support::{Backend, TestApp, admin, on_both_stores, user};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

on_both_stores!(
    unread_counts_follow_other_authors_own_messages_and_cursor_moves,
    marking_read_is_clamped_and_never_moves_backwards,
    total_unread_covers_every_visible_room_not_just_the_page,
    random_interleavings_keep_every_unread_count_equal_to_a_recount,
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

/// One step of a random interleaving: user `u` does something to room `r`.
#[derive(Debug, Clone)]
enum Step {
    Post {
        u: usize,
        r: usize,
    },
    /// Marks read up to `seq` (clamped by the server to the newest message).
    Read {
        u: usize,
        r: usize,
        seq: i64,
    },
    Leave {
        u: usize,
        r: usize,
    },
    Join {
        u: usize,
        r: usize,
    },
}

const USERS: usize = 3;
const ROOMS: usize = 2;

fn step() -> impl Strategy<Value = Step> {
    let (u, r) = (0..USERS, 0..ROOMS);
    prop_oneof![
        4 => (u.clone(), r.clone()).prop_map(|(u, r)| Step::Post { u, r }),
        2 => (u.clone(), r.clone(), 0..12i64).prop_map(|(u, r, seq)| Step::Read { u, r, seq }),
        1 => (u.clone(), r.clone()).prop_map(|(u, r)| Step::Leave { u, r }),
        1 => (u, r).prop_map(|(u, r)| Step::Join { u, r }),
    ]
}

/// Random posts, reads and membership changes; after each sequence every
/// user's listing must show exactly their rooms, each with an unread count
/// equal to a recount: the room's messages above the highest point the user
/// marked read or posted at (clamped as the server clamps), and a total that
/// is their sum. Sequences come from proptest's generator (no shrinking: each
/// case runs against the live server).
async fn random_interleavings_keep_every_unread_count_equal_to_a_recount(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let boss = admin("boss");
    let mut runner = TestRunner::new(Config::default());
    let steps = prop::collection::vec(step(), 1..30);
    for case in 0..12 {
        let steps = steps.new_tree(&mut runner).unwrap().current();
        let names: Vec<String> = (0..USERS).map(|u| format!("c{case}-u{u}")).collect();
        let tokens: Vec<String> = names.iter().map(|n| user(n)).collect();
        let everyone: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut rooms = Vec::new();
        for r in 0..ROOMS {
            rooms.push(
                app.create_room(&boss, &format!("c{case}-r{r}"), &everyone)
                    .await,
            );
        }
        // The model: who is in which room, each room's newest seq, and each
        // user's read point per room (kept across leaving and joining).
        let mut members: BTreeSet<(usize, usize)> = (0..USERS)
            .flat_map(|u| (0..ROOMS).map(move |r| (u, r)))
            .collect();
        let mut last_seq = [0i64; ROOMS];
        let mut read_to: BTreeMap<(usize, usize), i64> = BTreeMap::new();
        for step in &steps {
            match *step {
                Step::Post { u, r } => {
                    let path = format!("/api/chat/rooms/{}/messages", rooms[r]);
                    let (status, message) = app.post(&path, &tokens[u], json!({"body": "x"})).await;
                    if members.contains(&(u, r)) {
                        assert_eq!(status, StatusCode::CREATED, "{step:?}: {message}");
                        last_seq[r] += 1;
                        assert_eq!(message["seq"], last_seq[r]);
                        let point = read_to.entry((u, r)).or_default();
                        *point = (*point).max(last_seq[r]);
                    } else {
                        assert_eq!(status, StatusCode::NOT_FOUND, "{step:?}");
                    }
                }
                Step::Read { u, r, seq } => {
                    let path = format!("/api/chat/rooms/{}/read", rooms[r]);
                    let (status, _) = app.post(&path, &tokens[u], json!({"seq": seq})).await;
                    if members.contains(&(u, r)) {
                        assert_eq!(status, StatusCode::OK, "{step:?}");
                        let point = read_to.entry((u, r)).or_default();
                        *point = (*point).max(seq.min(last_seq[r]));
                    } else {
                        assert_eq!(status, StatusCode::NOT_FOUND, "{step:?}");
                    }
                }
                Step::Leave { u, r } => {
                    let path = format!("/api/chat/rooms/{}/members/{}", rooms[r], names[u]);
                    let (status, _) = app.delete(&path, &boss).await;
                    assert_eq!(status, StatusCode::OK, "{step:?}");
                    members.remove(&(u, r));
                }
                Step::Join { u, r } => {
                    let path = format!("/api/chat/rooms/{}/members", rooms[r]);
                    let (status, _) = app.post(&path, &boss, json!({"userId": names[u]})).await;
                    assert_eq!(status, StatusCode::OK, "{step:?}");
                    members.insert((u, r));
                }
            }
        }
        for (u, token) in tokens.iter().enumerate() {
            let (_, listing) = app.get("/api/chat/rooms", token).await;
            let listed: BTreeMap<String, i64> = listing["rooms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|room| {
                    let id = room["id"].as_str().unwrap().to_owned();
                    (id, room["unreadCount"].as_i64().unwrap())
                })
                .collect();
            let mut expected = BTreeMap::new();
            for r in (0..ROOMS).filter(|&r| members.contains(&(u, r))) {
                let (_, page) = app
                    .get(
                        &format!("/api/chat/rooms/{}/messages?limit=200", rooms[r]),
                        &boss,
                    )
                    .await;
                let point = read_to.get(&(u, r)).copied().unwrap_or(0);
                let above = page["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["seq"].as_i64().unwrap() > point)
                    .count() as i64;
                expected.insert(rooms[r].clone(), above);
            }
            assert_eq!(listed, expected, "case {case}, user {u}, after {steps:?}");
            let total: i64 = expected.values().sum();
            assert_eq!(listing["totalUnread"], total, "case {case}, user {u}");
        }
    }
}
