//! Messages: pages in both directions, idempotent retries by `clientId`, and a
//! per-room `seq` with no gaps or repeats however many write at once.

use crate::support::{Backend, TestApp, admin, assert_error, on_both_stores, user};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;

on_both_stores!(
    history_pages_are_ascending_newest_first_and_scroll_both_ways,
    a_page_around_a_seq_holds_it_between_older_and_newer_ones,
    a_retried_client_id_returns_the_original_and_writes_nothing,
    concurrent_retries_of_one_client_id_store_exactly_one_message,
    fifty_concurrent_writers_get_gap_free_seqs,
    posts_written_together_succeed_or_fail_each_on_its_own,
    bodies_are_stored_and_returned_byte_exact,
);

fn seqs(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

async fn a_page_around_a_seq_holds_it_between_older_and_newer_ones(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "around", &[]).await;
    for n in 1..=30 {
        app.send(&alice, &room, &format!("message {n}")).await;
    }
    let around = |seq: i64, limit: u32| {
        let app = &app;
        let (room, alice) = (&room, &alice);
        async move {
            let (status, page) = app
                .get(
                    &format!("/api/chat/rooms/{room}/messages?around={seq}&limit={limit}"),
                    alice,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page
        }
    };
    let page = around(12, 6).await;
    assert_eq!(seqs(&page), [10, 11, 12, 13, 14, 15]);
    assert_eq!(
        (page["hasMore"].clone(), page["hasNewer"].clone()),
        (json!(true), json!(true))
    );
    // At either end, nothing beyond.
    let page = around(2, 6).await;
    assert_eq!(seqs(&page), [1, 2, 3, 4, 5]);
    assert_eq!(
        (page["hasMore"].clone(), page["hasNewer"].clone()),
        (json!(false), json!(true))
    );
    let page = around(29, 6).await;
    assert_eq!(seqs(&page), [27, 28, 29, 30]);
    assert_eq!(
        (page["hasMore"].clone(), page["hasNewer"].clone()),
        (json!(true), json!(false))
    );
    let page = around(30, 1).await;
    assert_eq!(seqs(&page), [30]);
    assert_eq!(page["hasNewer"], false);
    // Newer pages follow on with `after`, older ones with `before`.
    let (_, newer) = app
        .get(
            &format!("/api/chat/rooms/{room}/messages?after=15&limit=3"),
            &alice,
        )
        .await;
    assert_eq!(seqs(&newer), [16, 17, 18]);
    // The other forms do not say `hasNewer`.
    let (_, newest) = app
        .get(&format!("/api/chat/rooms/{room}/messages"), &alice)
        .await;
    assert!(newest.get("hasNewer").is_none(), "{newest}");
    for bad in ["around=-1", "around=3&after=1", "around=3&before=9"] {
        let (status, body) = app
            .get(&format!("/api/chat/rooms/{room}/messages?{bad}"), &alice)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

async fn history_pages_are_ascending_newest_first_and_scroll_both_ways(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "history", &[]).await;
    for i in 1..=12 {
        app.send(&alice, &room, &format!("message {i}")).await;
    }
    let page = |query: &str| {
        let path = format!("/api/chat/rooms/{room}/messages{query}");
        let alice = alice.clone();
        let app = &app;
        async move {
            let (status, body) = app.get(&path, &alice).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body
        }
    };

    let newest = page("?limit=5").await;
    assert_eq!(seqs(&newest), vec![8, 9, 10, 11, 12]);
    assert_eq!(newest["hasMore"], true);
    let older = page("?before=8&limit=5").await;
    assert_eq!(seqs(&older), vec![3, 4, 5, 6, 7]);
    assert_eq!(older["hasMore"], true);
    let oldest = page("?before=3&limit=5").await;
    assert_eq!(seqs(&oldest), vec![1, 2]);
    assert_eq!(oldest["hasMore"], false);

    let first = page("?after=0&limit=5").await;
    assert_eq!(seqs(&first), vec![1, 2, 3, 4, 5]);
    assert_eq!(first["hasMore"], true);
    let last = page("?after=10&limit=5").await;
    assert_eq!(seqs(&last), vec![11, 12]);
    assert_eq!(last["hasMore"], false);
    assert_eq!(seqs(&page("?after=12").await), Vec::<i64>::new());

    let all = page("").await;
    assert_eq!(seqs(&all), (1..=12).collect::<Vec<_>>(), "default limit 50");
    assert_eq!(all["hasMore"], false);
    assert_eq!(all["messages"][0]["body"], "message 1");
    assert_eq!(all["messages"][0]["authorId"], "alice");
    assert_eq!(all["messages"][0]["roomId"], room.as_str());
    assert_eq!(all["messages"][0]["clientId"], Value::Null);
}

async fn a_retried_client_id_returns_the_original_and_writes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let room = app.create_room(&alice, "retries", &["bob"]).await;
    let path = format!("/api/chat/rooms/{room}/messages");
    let send = json!({"body": "once", "clientId": "c-1"});

    let (status, original) = app.post(&path, &alice, send.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(original["clientId"], "c-1");
    let (status, retried) = app.post(&path, &alice, send.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retried, original);

    assert_error(
        app.post(
            &path,
            &alice,
            json!({"body": "different", "clientId": "c-1"}),
        )
        .await,
        StatusCode::CONFLICT,
        "client_id_conflict",
    );
    // Another author may use the same clientId: it is theirs, not global.
    let (status, bobs) = app.post(&path, &bob, send).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(bobs["seq"], 2);

    let (_, all) = app.get(&path, &alice).await;
    assert_eq!(
        seqs(&all),
        vec![1, 2],
        "the retry and the conflict wrote nothing"
    );
}

async fn concurrent_retries_of_one_client_id_store_exactly_one_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "storm", &[]).await;
    let path = format!("/api/chat/rooms/{room}/messages");
    let send = json!({"body": "flaky network", "clientId": "retry-me"});

    let answers = join_all((0..20).map(|_| app.post(&path, &alice, send.clone()))).await;
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{answers:?}");
    let ids: HashSet<&str> = answers
        .iter()
        .map(|(status, message)| {
            assert!(status.is_success(), "{status}: {message}");
            message["id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every retry got the same message");

    let (_, all) = app.get(&path, &alice).await;
    assert_eq!(seqs(&all), vec![1]);
    // The next message still takes seq 2: the retries left no gap.
    assert_eq!(app.send(&alice, &room, "next").await["seq"], 2);
}

async fn fifty_concurrent_writers_get_gap_free_seqs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let boss = admin("boss");
    let room = app.create_room(&boss, "busy", &[]).await;
    let writers: Vec<String> = (0..50).map(|i| user(&format!("writer-{i}"))).collect();
    for i in 0..50 {
        let (status, _) = app
            .post(
                &format!("/api/chat/rooms/{room}/members"),
                &boss,
                json!({"userId": format!("writer-{i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let path = format!("/api/chat/rooms/{room}/messages");
    let rounds = 3;
    let answers = join_all(writers.iter().enumerate().map(|(i, token)| {
        let (app, path) = (&app, &path);
        async move {
            let mut seqs = Vec::new();
            for round in 0..rounds {
                let (status, message) = app
                    .post(path, token, json!({"body": format!("{i}/{round}")}))
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{message}");
                seqs.push(message["seq"].as_i64().unwrap());
            }
            seqs
        }
    }))
    .await;
    let mut acknowledged: Vec<i64> = answers.into_iter().flatten().collect();
    acknowledged.sort_unstable();
    let expected: Vec<i64> = (1..=50 * rounds).collect();
    assert_eq!(acknowledged, expected, "every seq once, none skipped");

    let (_, stored) = app.get(&format!("{path}?limit=200"), &boss).await;
    assert_eq!(seqs(&stored), expected);
}

async fn bodies_are_stored_and_returned_byte_exact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app
        .create_room(&alice, "Ünïcødé 💬 '; DROP TABLE rooms; --", &[])
        .await;
    let bodies = [
        "'; DROP TABLE messages; --",
        "\" OR 1=1 --",
        "emoji 👩‍💻🏳️‍🌈 and CJK 漢字 and RTL عربى",
        "line one\nline two\r\nthree\rfour",
        "data: not an event\n\nid: 7\n",
        "  leading and trailing spaces  ",
        "\u{200b}zero width\u{feff}",
        "%s %n {} \\ \\\\ $1 ?",
    ];
    for body in bodies {
        let sent = app.send(&alice, &room, body).await;
        assert_eq!(sent["body"], body);
    }
    let (_, all) = app
        .get(&format!("/api/chat/rooms/{room}/messages"), &alice)
        .await;
    let stored: Vec<&str> = all["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(stored, bodies);
    let (_, listed) = app.get(&format!("/api/chat/rooms/{room}"), &alice).await;
    assert_eq!(listed["name"], "Ünïcødé 💬 '; DROP TABLE rooms; --");
}

/// Concurrent posts are committed in batches (group commit): one post that
/// may not be made must not take the others of its batch down with it.
async fn posts_written_together_succeed_or_fail_each_on_its_own(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let boss = admin("boss");
    let (open, closed) = (
        app.create_room(&boss, "open", &["member"]).await,
        app.create_room(&boss, "closed", &[]).await,
    );
    let (member, stranger) = (user("member"), user("stranger"));
    let posts = (0..60).map(|i| {
        let app = &app;
        // A member's posts, a stranger's (404), and clientId reuse with another body (409).
        let (token, room, body) = match i % 3 {
            0 => (&member, &open, json!({"body": format!("ok {i}")})),
            1 => (&stranger, &open, json!({"body": format!("no {i}")})),
            _ => (&member, &closed, json!({"body": format!("no {i}")})),
        };
        async move {
            let (status, answer) = app
                .post(&format!("/api/chat/rooms/{room}/messages"), token, body)
                .await;
            (i, status, answer)
        }
    });
    let reused = app
        .post(
            &format!("/api/chat/rooms/{open}/messages"),
            &member,
            json!({"body": "first", "clientId": "c-1"}),
        )
        .await;
    assert_eq!(reused.0, StatusCode::CREATED);
    let open_path = format!("/api/chat/rooms/{open}/messages");
    let conflicts = (0..10).map(|_| {
        app.post(
            &open_path,
            &member,
            json!({"body": "other", "clientId": "c-1"}),
        )
    });
    let (answers, conflicts) = futures::join!(join_all(posts), join_all(conflicts));
    for (i, status, answer) in answers {
        let expected = if i % 3 == 0 {
            StatusCode::CREATED
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(status, expected, "post {i}: {answer}");
    }
    for (status, answer) in conflicts {
        assert_error((status, answer), StatusCode::CONFLICT, "client_id_conflict");
    }
    let (_, stored) = app
        .get(&format!("/api/chat/rooms/{open}/messages?limit=200"), &boss)
        .await;
    assert_eq!(
        seqs(&stored),
        (1..=21).collect::<Vec<_>>(),
        "20 posts and `first`, gap-free"
    );
    let (_, closed) = app
        .get(&format!("/api/chat/rooms/{closed}/messages"), &boss)
        .await;
    assert_eq!(seqs(&closed), Vec::<i64>::new());
}
