//! Per-user limits on writes, so one user cannot flood a room that thousands
//! watch; and the longest a token may live.

use crate::support::{
    Backend, SECRET, TestApp, admin, assert_error, on_both_stores, retry_after, send, sign,
    unix_now, user,
};
use figment::providers::Serialized;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Connection;

on_both_stores!(
    a_user_posting_past_their_limit_gets_429_with_retry_after_and_others_do_not,
    room_creation_and_membership_changes_are_limited_per_user,
    marking_read_is_limited_per_user_and_a_read_that_moves_nothing_waits_for_no_write,
    tokens_living_longer_than_the_maximum_are_refused,
    uploads_are_limited_per_user_across_instances,
);

fn limited(figment: figment::Figment, name: &str, rate: u32, burst: u32) -> figment::Figment {
    figment
        .merge(Serialized::default(&format!("{name}_rate_per_user"), rate))
        .merge(Serialized::default(
            &format!("{name}_burst_per_user"),
            burst,
        ))
}

async fn a_user_posting_past_their_limit_gets_429_with_retry_after_and_others_do_not(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |f| limited(f, "message", 1, 3)).await;
    let (boss, flooder, other) = (admin("boss"), user("flooder"), user("other"));
    let room = app.create_room(&boss, "busy", &["flooder", "other"]).await;
    let path = format!("/api/chat/rooms/{room}/messages");
    for n in 0..3 {
        let (status, body) = app
            .post(&path, &flooder, json!({"body": n.to_string()}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let refused = app
        .http
        .post(format!("{}{path}", app.address))
        .bearer_auth(&flooder)
        .json(&json!({"body": "one too many"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&refused) >= 1);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests");

    let (status, _) = app.post(&path, &other, json!({"body": "still fine"})).await;
    assert_eq!(status, StatusCode::CREATED, "another user is not limited");
    let (_, page) = app.get(&path, &boss).await;
    let bodies: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["0", "1", "2", "still fine"],
        "the refused post was not stored"
    );
}

async fn room_creation_and_membership_changes_are_limited_per_user(backend: Backend) {
    let app = TestApp::spawn_with(backend, |f| {
        limited(limited(f, "room", 1, 2), "member", 1, 1)
    })
    .await;
    let boss = admin("boss");
    let room = app.create_room(&boss, "one", &[]).await;
    app.create_room(&boss, "two", &[]).await;
    assert_error(
        app.post("/api/chat/rooms", &boss, json!({"name": "three"}))
            .await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
    );
    let members = format!("/api/chat/rooms/{room}/members");
    let (status, _) = app.post(&members, &boss, json!({"userId": "a"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        app.post(&members, &boss, json!({"userId": "b"})).await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
    );
    assert_error(
        app.delete(&format!("{members}/a"), &boss).await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
    );
    let (_, listed) = app.get("/api/chat/rooms", &boss).await;
    assert_eq!(
        listed["rooms"].as_array().unwrap().len(),
        2,
        "no third room"
    );
}

async fn tokens_living_longer_than_the_maximum_are_refused(backend: Backend) {
    let app = TestApp::spawn_with(backend, |f| {
        f.merge(Serialized::default("token_max_lifetime", "2h"))
    })
    .await;
    let now = unix_now();
    let token = |claims: serde_json::Value| sign(&claims, SECRET.as_bytes());
    let within = token(json!({"sub": "alice", "iat": now, "exp": now + 7000}));
    assert_eq!(app.get("/api/chat/rooms", &within).await.0, StatusCode::OK);
    for too_long in [
        json!({"sub": "alice", "iat": now, "exp": now + 3 * 3600}),
        // Issued long ago, so only an hour is left, but it was minted for days.
        json!({"sub": "alice", "iat": now - 3 * 86400, "exp": now + 3600}),
        // No `iat`: measured from now.
        json!({"sub": "alice", "exp": now + 3 * 3600}),
    ] {
        let (status, body) = app.get("/api/chat/rooms", &token(too_long)).await;
        assert_error(
            (status, body.clone()),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("lifetime"), "{message}");
    }
}

async fn marking_read_is_limited_per_user_and_a_read_that_moves_nothing_waits_for_no_write(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend.clone(), |f| limited(f, "read", 1, 3)).await;
    let (boss, reader) = (admin("boss"), user("reader"));
    let room = app.create_room(&boss, "read", &["reader"]).await;
    for n in 0..2 {
        app.send(&boss, &room, &format!("m{n}")).await;
    }
    let read = format!("/api/chat/rooms/{room}/read");
    let (status, state) = app.post(&read, &reader, json!({"seq": 2})).await;
    assert_eq!(status, StatusCode::OK, "{state}");

    // The message the moving read below reads up to: sent first, as on
    // SQLite it too would wait for the lock.
    app.send(&boss, &room, "m2").await;
    // Another connection holds what a cursor's write must wait for: on
    // SQLite the write lock, on PostgreSQL the cursor's row.
    let hold = match &backend {
        Backend::Sqlite => {
            let mut db = sqlx::SqliteConnection::connect(app.database_url())
                .await
                .unwrap();
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut db)
                .await
                .unwrap();
            Held::Sqlite(db)
        }
        Backend::Postgres(_) => {
            let mut db = sqlx::PgConnection::connect(app.database_url())
                .await
                .unwrap();
            sqlx::raw_sql("BEGIN").execute(&mut db).await.unwrap();
            sqlx::query(
                "SELECT 1 FROM read_cursors WHERE room_id = $1 AND user_id = 'reader' FOR UPDATE",
            )
            .bind(&room)
            .execute(&mut db)
            .await
            .unwrap();
            Held::Postgres(db)
        }
    };
    // A read that moves nothing answers at once, from what is stored.
    let started = std::time::Instant::now();
    let (status, state) = app.post(&read, &reader, json!({"seq": 1})).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["lastReadSeq"], 2);
    assert_eq!(state["unreadCount"], 1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // One that moves the cursor waits for the write, and is then stored.
    let moving = {
        let (http, url, reader) = (app.http.clone(), app.url(&read), reader.clone());
        tokio::spawn(async move {
            send(http.post(url).bearer_auth(&reader).json(&json!({"seq": 3}))).await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !moving.is_finished(),
        "a moving read did not wait for the write"
    );
    hold.release().await;
    let (status, state) = moving.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["lastReadSeq"], 3);

    // Reads are counted like writes: past the burst of 3 (at 1 a second),
    // a 429 comes within a few more.
    let mut refused = None;
    for _ in 0..6 {
        let response = app
            .http
            .post(app.url(&read))
            .bearer_auth(&reader)
            .json(&json!({"seq": 3}))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
    }
    let refused = refused.expect("a 429 past the burst");
    assert!(retry_after(&refused) >= 1);
    let (status, _) = app.post(&read, &boss, json!({"seq": 3})).await;
    assert_eq!(status, StatusCode::OK, "another user is not limited");
}

/// A lock another connection holds, until released.
enum Held {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Held {
    async fn release(self) {
        match self {
            Held::Sqlite(mut db) => sqlx::raw_sql("ROLLBACK").execute(&mut db).await.map(drop),
            Held::Postgres(mut db) => sqlx::raw_sql("ROLLBACK").execute(&mut db).await.map(drop),
        }
        .unwrap();
    }
}

/// On PostgreSQL the budget is the cluster's: a second instance spends
/// from the same one (on SQLite, one instance, it is the process's).
async fn uploads_are_limited_per_user_across_instances(backend: Backend) {
    let postgres = matches!(backend, Backend::Postgres(_));
    let app = TestApp::spawn_with(backend, |f| limited(f, "upload", 1, 2)).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "files", &[]).await;
    let sibling = match postgres {
        true => Some(app.sibling_with(|f| limited(f, "upload", 1, 2)).await),
        false => None,
    };
    let upload = |address: &str| {
        let request = app
            .http
            .post(format!(
                "{address}/api/chat/rooms/{room}/attachments?name=a.txt"
            ))
            .bearer_auth(&alice)
            .body("some text");
        async move { send(request).await }
    };
    let (status, body) = upload(&app.address).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let second = sibling
        .as_ref()
        .map_or(&app.address, |other| &other.address);
    let (status, body) = upload(second).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for address in [&app.address, second] {
        assert_error(
            upload(address).await,
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
        );
    }
    // Another user's budget is their own.
    let (status, _) = send(
        app.http
            .post(app.url(&format!("/api/chat/rooms/{room}/attachments?name=b.txt")))
            .bearer_auth(admin("agent"))
            .body("other text"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
}
