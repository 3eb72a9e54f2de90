//! Bad input never hurts: every malformed request gets a clear JSON 4xx, never
//! a 500, and leaves the data exactly as it was.

use crate::support::{Backend, TestApp, assert_error, on_both_stores, send, user};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

on_both_stores!(
    malformed_bodies_get_a_json_4xx_and_change_nothing,
    malformed_paths_and_queries_get_a_json_400,
    nul_bytes_are_refused_on_every_store,
    unknown_routes_and_methods_answer_in_json,
);

async fn malformed_bodies_get_a_json_4xx_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "target", &[]).await;
    app.send(&alice, &room, "the only message").await;
    let before = snapshot(&app, &alice, &room).await;

    let rooms = app.url("/api/chat/rooms");
    let messages = app.url(&format!("/api/chat/rooms/{room}/messages"));
    let read = app.url(&format!("/api/chat/rooms/{room}/read"));
    let members = app.url(&format!("/api/chat/rooms/{room}/members"));
    let raw = |url: &str, content_type: &str, body: String| {
        app.http
            .post(url)
            .bearer_auth(&alice)
            .header(CONTENT_TYPE, content_type)
            .body(body)
    };
    let json_body = |url: &str, body: &str| raw(url, "application/json", body.to_owned());

    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            "truncated JSON",
            json_body(&messages, r#"{"body": "#),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "not JSON",
            json_body(&rooms, "name=x"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "wrong type",
            json_body(&messages, r#"{"body": 42}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "array body",
            json_body(&rooms, r#"["name"]"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            // A message may be its attachments alone; else it needs a body.
            "no body and no attachments",
            json_body(&messages, r#"{"clientId": "x"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "attachments not a list",
            json_body(&messages, r#"{"body": "x", "attachments": "a"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "blank body",
            json_body(&messages, r#"{"body": " \n\t "}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "empty body",
            json_body(&messages, r#"{"body": ""}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "4001 characters",
            json_body(&messages, &json!({"body": "é".repeat(4001)}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "65 characters of clientId",
            json_body(
                &messages,
                &json!({"body": "x", "clientId": "c".repeat(65)}).to_string(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_client_id",
        ),
        (
            "over 64 KiB",
            json_body(&messages, &json!({"body": "x".repeat(70_000)}).to_string()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "wrong content type",
            raw(&messages, "text/plain", r#"{"body": "x"}"#.to_owned()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "no content type",
            app.http
                .post(&messages)
                .bearer_auth(&alice)
                .body(r#"{"body": "x"}"#),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "blank room name",
            json_body(&rooms, r#"{"name": "   "}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            "101-character name",
            json_body(&rooms, &json!({"name": "n".repeat(101)}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            "member ids not strings",
            json_body(&rooms, r#"{"name": "x", "memberIds": [1, 2]}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "blank member id",
            json_body(&rooms, r#"{"name": "x", "memberIds": [""]}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_user_id",
        ),
        (
            "negative seq",
            json_body(&read, r#"{"seq": -1}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_seq",
        ),
        (
            "huge seq",
            json_body(&read, r#"{"seq": 1e30}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "seq beyond i64",
            json_body(&read, r#"{"seq": 99999999999999999999}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "seq as string",
            json_body(&read, r#"{"seq": "3"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "member with control characters",
            json_body(&members, r#"{"userId": "a\u0007b"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_user_id",
        ),
    ];
    for (case, request, status, code) in cases {
        let answer = send(request).await;
        assert_eq!(answer.0, status, "{case}: {}", answer.1);
        assert_error(answer, status, code);
    }
    assert_eq!(
        snapshot(&app, &alice, &room).await,
        before,
        "bad input changed nothing"
    );

    // The limits are inclusive: exactly 4000 characters is a message.
    let (status, _) = app
        .post(
            &format!("/api/chat/rooms/{room}/messages"),
            &alice,
            json!({"body": "é".repeat(4000)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn malformed_paths_and_queries_get_a_json_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "target", &[]).await;
    let cases = [
        ("/api/chat/rooms/not-a-uuid".to_owned(), "invalid_room_id"),
        (
            "/api/chat/rooms/1%27%20OR%201=1".to_owned(),
            "invalid_room_id",
        ),
        (
            format!("/api/chat/rooms/{}", room.to_uppercase()),
            "invalid_room_id",
        ),
        ("/api/chat/rooms?limit=0".to_owned(), "invalid_limit"),
        ("/api/chat/rooms?limit=-5".to_owned(), "invalid_limit"),
        ("/api/chat/rooms?limit=501".to_owned(), "invalid_limit"),
        (
            "/api/chat/rooms?limit=99999999999999999999".to_owned(),
            "invalid_query",
        ),
        ("/api/chat/rooms?limit=ten".to_owned(), "invalid_query"),
        (
            "/api/chat/rooms?pageToken=forged".to_owned(),
            "invalid_page_token",
        ),
        (
            format!("/api/chat/rooms/{room}/messages?limit=201"),
            "invalid_limit",
        ),
        (
            format!("/api/chat/rooms/{room}/messages?after=-1"),
            "invalid_seq",
        ),
        (
            format!("/api/chat/rooms/{room}/messages?before=-1"),
            "invalid_seq",
        ),
        (
            format!("/api/chat/rooms/{room}/messages?after=1&before=5"),
            "invalid_range",
        ),
        (
            format!("/api/chat/rooms/{room}/messages?after=1e3"),
            "invalid_query",
        ),
    ];
    for (path, code) in cases {
        let answer = app.get(&path, &alice).await;
        assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{path}: {}", answer.1);
        assert_error(answer, StatusCode::BAD_REQUEST, code);
    }
    assert_error(
        app.delete(&format!("/api/chat/rooms/{room}/members/%0A"), &alice)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_user_id",
    );
}

async fn nul_bytes_are_refused_on_every_store(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "nul", &[]).await;
    for (path, body, code) in [
        (
            format!("/api/chat/rooms/{room}/messages"),
            json!({"body": "a\u{0}b"}),
            "invalid_body",
        ),
        (
            format!("/api/chat/rooms/{room}/messages"),
            json!({"body": "ok", "clientId": "\u{0}"}),
            "invalid_client_id",
        ),
        (
            "/api/chat/rooms".to_owned(),
            json!({"name": "a\u{0}"}),
            "invalid_name",
        ),
    ] {
        assert_error(
            app.post(&path, &alice, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        );
    }
    let (_, messages) = app
        .get(&format!("/api/chat/rooms/{room}/messages"), &alice)
        .await;
    assert_eq!(messages["messages"], json!([]));
}

async fn unknown_routes_and_methods_answer_in_json(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    assert_error(
        app.get("/api/chat/nothing-here", &alice).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        send(app.http.put(app.url("/api/chat/rooms")).bearer_auth(&alice)).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

/// Everything a caller can observe of a room, to compare before and after.
async fn snapshot(app: &TestApp, token: &str, room: &str) -> (Value, Value, Value) {
    let (_, rooms) = app.get("/api/chat/rooms", token).await;
    let (_, one) = app.get(&format!("/api/chat/rooms/{room}"), token).await;
    let (_, messages) = app
        .get(&format!("/api/chat/rooms/{room}/messages"), token)
        .await;
    (rooms, one, messages)
}
