//! Logs: every line of a request carries its id (the caller's `X-Request-Id`
//! or a fresh one, sent back), streams log their open and close, tokens never
//! reach the log, and JSON output is one object per line. Logs do not depend
//! on the store, so these run on SQLite alone.

use crate::helpers::{Backend, EventStream, ServerProcess, user};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_a_request_carries_its_id_and_tokens_are_never_logged() {
    let server = ServerProcess::start(&Backend::Sqlite, &[("CHAT_LOG", "debug,sqlx=warn")]).await;
    let http = reqwest::Client::new();
    let ann = user("ann");
    // A token in the query string (as EventSource sends it) on a stream.
    let response = http
        .get(server.url(&format!("/api/chat/sse?access_token={ann}")))
        .header("x-request-id", "req-from-the-proxy-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-request-id"], "req-from-the-proxy-42");
    let mut stream = EventStream::new(response);
    // A failed write with the token in the header, so the request logs an error.
    let (status, _) = crate::helpers::send(
        http.post(server.url("/api/chat/rooms"))
            .bearer_auth(&ann)
            .json(&json!({"name": ""})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = crate::helpers::send(
        http.get(server.url("/api/chat/rooms"))
            .header("authorization", format!("Bearer {ann}x")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    drop(stream.next_any());
    drop(stream);

    let opened = server
        .wait_for_log(|line| line.contains("stream opened"))
        .await;
    assert!(opened.contains("req-from-the-proxy-42"), "{opened}");
    assert!(opened.contains("user=ann"), "{opened}");
    let closed = server
        .wait_for_log(|line| line.contains("stream closed"))
        .await;
    assert!(closed.contains("req-from-the-proxy-42"), "{closed}");
    for field in ["duration_ms=", "reason=", "events=", "heartbeats="] {
        assert!(closed.contains(field), "{field} in {closed}");
    }
    // Every line logged inside that request names it.
    let of_the_stream: Vec<String> = server
        .logs()
        .into_iter()
        .filter(|line| line.contains("/api/chat/sse"))
        .collect();
    assert!(!of_the_stream.is_empty());
    for line in &of_the_stream {
        assert!(line.contains("req-from-the-proxy-42"), "{line}");
        assert!(line.contains("access_token=[redacted]"), "{line}");
    }
    let signature = ann.rsplit('.').next().unwrap();
    for line in server.logs() {
        assert!(!line.contains(signature), "a token in the log: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_the_requests_id() {
    let server = ServerProcess::start(&Backend::Sqlite, &[("CHAT_LOG_FORMAT", "json")]).await;
    let response = reqwest::Client::new()
        .get(server.url("/api/chat/sse"))
        .bearer_auth(user("ann"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "a fresh UUID: {id}");
    drop(response);

    let closed = server
        .wait_for_log(|line| line.contains("stream closed"))
        .await;
    let closed: Value = serde_json::from_str(&closed).unwrap();
    assert_eq!(closed["span"]["id"], id.as_str(), "{closed}");
    assert_eq!(closed["fields"]["reason"], "client_gone", "{closed}");
    for line in server.logs() {
        let parsed: Result<Value, _> = serde_json::from_str(&line);
        assert!(
            parsed.is_ok_and(|v| v.is_object()),
            "not a JSON object: {line}"
        );
    }
}
