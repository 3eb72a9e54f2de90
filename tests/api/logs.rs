//! Logs: every line of a request carries its id (the caller's `X-Request-Id`
//! or a fresh one, sent back), streams log their open and close, tokens never
//! reach the log, what a client chose cannot pass for fields of its own, and
//! JSON output is one object per line. Logs do not depend on the store, so
//! these run on SQLite alone.

use crate::support::{Backend, EventStream, ServerProcess, user};
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
    let (status, _) = crate::support::send(
        http.post(server.url("/api/chat/rooms"))
            .bearer_auth(&ann)
            .json(&json!({"name": ""})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = crate::support::send(
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
    assert!(opened.contains(r#"user="ann""#), "{opened}");
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

/// The hostile review's probe: a `sub` of `bob kind="room" role="admin"
/// room="x"` was logged unquoted, so its line read as a stream of another
/// kind, for an admin, in a room. So could an `X-Request-Id`, a path, or an
/// error that quotes what the client sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_a_client_chose_are_quoted_and_forge_no_field_in_either_format() {
    let forging = r#"bob kind="room" role="admin" room="x""#;
    let token = user(forging);
    for format in ["text", "json"] {
        let server = ServerProcess::start(&Backend::Sqlite, &[("CHAT_LOG_FORMAT", format)]).await;
        let http = reqwest::Client::new();
        let response = http
            .get(server.url("/api/chat/sse?x=%22%20role=%22admin"))
            .bearer_auth(&token)
            .header("x-request-id", r#"r1" user="admin"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        drop(response);
        // An error whose message repeats what was sent.
        let (status, _) = crate::support::send(
            http.post(server.url("/api/chat/rooms"))
                .bearer_auth(&token)
                .json(&json!({"name": "x", "memberIds": [r#"y" role="admin"#]})),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let opened = server
            .wait_for_log(|line| line.contains("stream opened"))
            .await;
        server
            .wait_for_log(|line| line.contains("stream closed"))
            .await;
        if format == "json" {
            let opened: Value = serde_json::from_str(&opened).unwrap();
            assert_eq!(opened["fields"]["user"], forging, "{opened}");
            assert_eq!(opened["fields"]["kind"], "global", "{opened}");
            assert_eq!(opened["span"]["id"], r#"r1" user="admin"#, "{opened}");
            assert!(opened["fields"].get("role").is_none(), "{opened}");
            continue;
        }
        let fields = unquoted_fields(&opened);
        assert_eq!(
            fields,
            ["id", "method", "uri", "user", "kind"],
            "the fields the server put there, and none the client did: {opened}"
        );
        assert!(
            opened.contains(r#"user="bob kind=\"room\" role=\"admin\" room=\"x\"""#),
            "{opened}"
        );
        for line in server.logs() {
            let fields = unquoted_fields(&line);
            for forged in ["role", "room"] {
                assert!(!fields.contains(&forged.to_owned()), "{forged} in {line}");
            }
            assert!(
                fields.iter().filter(|field| *field == "user").count() <= 1,
                "{line}"
            );
        }
    }
}

/// The names of a text log line's `name=value` fields, outside quoted values.
fn unquoted_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let (mut quoted, mut escaped) = (false, false);
    let mut word = String::new();
    for c in line.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ if quoted => {}
            '=' => fields.push(std::mem::take(&mut word)),
            ' ' | '{' | ':' => word.clear(),
            _ => word.push(c),
        }
    }
    fields
}
