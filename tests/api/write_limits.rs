//! Per-user limits on writes, so one user cannot flood a room that thousands
//! watch; and the longest a token may live.

use crate::helpers::{
    Backend, SECRET, TestApp, admin, assert_error, on_both_stores, retry_after, sign, unix_now,
    user,
};
use figment::providers::Serialized;
use reqwest::StatusCode;
use serde_json::json;

on_both_stores!(
    a_user_posting_past_their_limit_gets_429_with_retry_after_and_others_do_not,
    room_creation_and_membership_changes_are_limited_per_user,
    tokens_living_longer_than_the_maximum_are_refused,
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
