//! What a test sends and checks, to a server in-process (`TestApp`) or a
//! process (`ServerProcess`) alike: one `Client`, one meaning per name; a
//! request's status and JSON, the shape every error shares, a refusal's
//! `Retry-After`.

use super::{EventStream, HELPER_ADMIN, admin, claims, stream_request};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Asserts the error shape every failure shares, with its status and code.
pub fn assert_error(actual: (StatusCode, Value), status: StatusCode, code: &str) {
    let (actual_status, body) = actual;
    assert_eq!(actual_status, status, "status of {body}");
    assert_eq!(body["error"]["code"], code, "code of {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "a message in {body}"
    );
}

/// The `Retry-After` of a refused request, in whole seconds.
pub fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A client of one server: its address, and the calls tests make, each
/// asserting what a setup step must not fail at.
pub struct Client {
    pub address: String,
    pub http: reqwest::Client,
}

impl Client {
    pub fn of(address: String) -> Self {
        Self {
            address,
            http: reqwest::Client::new(),
        }
    }

    /// Opens `/api/chat/sse{query}` and checks it answered as a stream.
    pub async fn stream(&self, query: &str, token: &str) -> EventStream {
        self.stream_from(query, token, None).await
    }

    /// The same, resuming with a `Last-Event-ID` header.
    pub async fn stream_from(
        &self,
        query: &str,
        token: &str,
        last_event_id: Option<&str>,
    ) -> EventStream {
        let response = stream_request(&self.http, &self.address, query, token, last_event_id)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), StatusCode::OK, "opening {query}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        EventStream::new(response)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        send(self.http.get(self.url(path)).bearer_auth(token)).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        send(
            self.http
                .post(self.url(path))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        send(self.http.delete(self.url(path)).bearer_auth(token)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        send(
            self.http
                .patch(self.url(path))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    /// Posts `message` (a JSON body) to `room` as `token`'s user.
    pub async fn post_message(
        &self,
        token: &str,
        room: &str,
        message: Value,
    ) -> (StatusCode, Value) {
        self.post(&format!("/api/chat/rooms/{room}/messages"), token, message)
            .await
    }

    /// Creates a room as `token`'s user with `members` too, asserting
    /// success; returns its id. Only admins put others into rooms: for a
    /// user's room, an admin adds them after (one `member_added` each).
    pub async fn create_room(&self, token: &str, name: &str, members: &[&str]) -> String {
        let by_admin = claims(token)["role"] == "admin";
        let named = if by_admin { members } else { &[] };
        let (status, room) = self
            .post(
                "/api/chat/rooms",
                token,
                json!({"name": name, "memberIds": named}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "creating a room: {room}");
        let room = room["id"].as_str().expect("a room id").to_owned();
        if !by_admin {
            for member in members {
                self.add_member(&room, member).await;
            }
        }
        room
    }

    /// Puts `user` into `room`, as an admin does, asserting success.
    pub async fn add_member(&self, room: &str, user: &str) {
        let (status, body) = self
            .post(
                &format!("/api/chat/rooms/{room}/members"),
                &admin(HELPER_ADMIN),
                json!({"userId": user}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "adding {user}: {body}");
    }

    /// Sends a message, asserting it was created; returns it.
    pub async fn send(&self, token: &str, room: &str, body: &str) -> Value {
        let (status, message) = self
            .post(
                &format!("/api/chat/rooms/{room}/messages"),
                token,
                json!({"body": body}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "sending a message: {message}");
        message
    }

    pub async fn unread(&self, token: &str, room: &str) -> i64 {
        let (status, room) = self.get(&format!("/api/chat/rooms/{room}"), token).await;
        assert_eq!(status, StatusCode::OK, "reading a room: {room}");
        room["unreadCount"].as_i64().expect("an unread count")
    }
}
