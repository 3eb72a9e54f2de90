//! The server a workload measures, set up for it: chat-server (ours) or
//! the reference hub, where subscribers connect and how to publish; and
//! the tokens and requests every workload shares.

use crate::Common;
use crate::process::Served;
use crate::streams::{self, Body, Tally, now_micros};
use futures::{StreamExt, TryStreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The secret chat-server is started with, and every token signed with.
pub const SECRET: &str = "chat-load-secret-that-is-at-least-32-bytes";

/// Which server a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// chat-server.
    Ours,
    /// The reference: a bare axum hub (`hub.rs`).
    Hub,
}

/// An admin's token for `sub`.
pub fn token(sub: &str) -> String {
    token_as(sub, "admin")
}

pub fn token_as(sub: &str, role: &str) -> String {
    let claims = json!({"sub": sub, "role": role, "exp": now_micros() / 1_000_000 + 86_400});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap_or_default()
}

/// One server under test, set up for a workload: where subscribers connect
/// and how to publish.
pub struct Target {
    pub served: Served,
    pub stream_urls: Vec<String>,
    pub publish_url: String,
    pub server: Server,
    pub http: reqwest::Client,
    pub publisher: String,
}

/// What a workload measures, one after the other: ours, then (unless
/// `--no-reference`) the reference hub.
pub fn lineup(common: &Common) -> &'static [Server] {
    if common.no_reference {
        &[Server::Ours]
    } else {
        &[Server::Ours, Server::Hub]
    }
}

impl Target {
    /// chat-server's `/api/chat/sse/stats`, as it answered.
    pub async fn stream_stats(&self) -> Result<String, String> {
        let answer = self
            .http
            .get(format!("{}/api/chat/sse/stats", self.served.base))
            .bearer_auth(&self.publisher)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Ok(answer.text().await.unwrap_or_default())
    }

    pub async fn start(common: &Common, server: Server, heartbeat: &str) -> Result<Self, String> {
        match server {
            Server::Ours => Self::ours(common, heartbeat).await,
            Server::Hub => Self::hub(heartbeat).await,
        }
    }

    pub async fn ours(common: &Common, heartbeat: &str) -> Result<Self, String> {
        let served = Served::chat_server(
            &common.store(),
            SECRET,
            &common.server_env(&[("CHAT_HEARTBEAT_INTERVAL", heartbeat)]),
        )
        .await?;
        let http = reqwest::Client::new();
        let publisher = token("load-publisher");
        let room = create_room(&http, &served.base, &publisher, json!({"name": "load"})).await?;
        Ok(Self {
            stream_urls: vec![
                format!("{}/api/chat/sse?roomId={room}", served.base),
                format!("{}/api/chat/sse", served.base),
            ],
            publish_url: format!("{}/api/chat/rooms/{room}/messages", served.base),
            served,
            server: Server::Ours,
            http,
            publisher,
        })
    }

    pub async fn hub(heartbeat: &str) -> Result<Self, String> {
        let served = Served::hub(heartbeat).await?;
        Ok(Self {
            stream_urls: vec![format!("{}/sse", served.base)],
            publish_url: format!("{}/publish", served.base),
            served,
            server: Server::Hub,
            http: reqwest::Client::new(),
            publisher: String::new(),
        })
    }

    /// Creates `count` more rooms, the `index`th with `members(index)`;
    /// returns their ids, in order.
    pub async fn create_rooms(
        &self,
        count: usize,
        members: impl Fn(usize) -> Vec<String>,
    ) -> Result<Vec<String>, String> {
        let creations = (0..count).map(|index| {
            let room = json!({"name": format!("load {index}"), "memberIds": members(index)});
            create_room(&self.http, &self.served.base, &self.publisher, room)
        });
        futures::stream::iter(creations)
            .buffered(4)
            .try_collect()
            .await
    }

    /// Where a room takes messages.
    pub fn messages_url(&self, room: &str) -> String {
        format!("{}/api/chat/rooms/{room}/messages", self.served.base)
    }

    /// How many messages the store holds: the sum of every room's newest
    /// seq, read page by page through the listing.
    pub async fn stored_messages(&self) -> Result<u64, String> {
        let (mut total, mut page_token) = (0, None::<String>);
        loop {
            // Page tokens are URL-safe base64: no escaping needed.
            let next = page_token.map_or(String::new(), |t| format!("&pageToken={t}"));
            let url = format!("{}/api/chat/rooms?limit=500{next}", self.served.base);
            let page = json_of(self.http.get(url).bearer_auth(&self.publisher)).await?;
            let rooms = page["rooms"].as_array().cloned().unwrap_or_default();
            total += rooms
                .iter()
                .filter_map(|room| room["lastMessage"]["seq"].as_u64())
                .sum::<u64>();
            match page["nextPageToken"].as_str() {
                Some(next) => page_token = Some(next.to_owned()),
                None => return Ok(total),
            }
        }
    }

    /// Opens `count` streams, each as a distinct admin (`mixed`: alternately
    /// room and global streams); returns how long connecting took.
    pub async fn open(
        &self,
        count: usize,
        mixed: bool,
        tally: &Arc<Tally>,
    ) -> Result<Duration, String> {
        self.open_streams(count, mixed, false, tally).await
    }

    /// `open`, with streams that reconnect and resume by id when cut.
    pub async fn open_streams(
        &self,
        count: usize,
        mixed: bool,
        resuming: bool,
        tally: &Arc<Tally>,
    ) -> Result<Duration, String> {
        let streams = (0..count).map(|index| {
            let url = &self.stream_urls[if mixed {
                index % self.stream_urls.len()
            } else {
                0
            }];
            let token =
                (self.server == Server::Ours).then(|| token(&format!("load-admin-{index}")));
            (url.clone(), token)
        });
        self.connect(streams, resuming, tally).await
    }

    /// Opens a stream for each (URL, token), the `index`th counting in
    /// `tally` at `index`, at most 256 connecting at once; returns once all
    /// are open, with how long that took.
    pub async fn connect(
        &self,
        streams: impl IntoIterator<Item = (String, Option<String>)>,
        resuming: bool,
        tally: &Arc<Tally>,
    ) -> Result<Duration, String> {
        streams::open_all(streams, resuming, tally)
            .await
            .map_err(|e| format!("{e} on {}", self.served.name))
    }

    /// Publishes message `n`, retrying (idempotently, by clientId) until stored.
    pub async fn publish(&self, n: u64) -> Result<(), String> {
        self.publish_to(&self.publish_url, &Body::text(n, None), n)
            .await
    }

    /// Publishes `body` as message `n` at `url` (ours: a room's messages;
    /// the hub: its publish URL). The hub is sent an event of the same shape
    /// and size as ours sends, so both move the same bytes.
    pub async fn publish_to(&self, url: &str, body: &str, n: u64) -> Result<(), String> {
        let hub_event = json!({"type": "message", "message": {
            "id": "01a21bc8-1182-706a-bfb3-288d70bd4d7d",
            "roomId": "01a21bc8-1175-756f-9e0c-38792acfab03",
            "seq": n, "authorId": "load-publisher", "body": body,
            "clientId": format!("n{n}"), "createdAt": "2026-11-27T06:53:46.242Z"}})
        .to_string();
        for _ in 0..20 {
            let request = match self.server {
                Server::Ours => self
                    .http
                    .post(url)
                    .bearer_auth(&self.publisher)
                    .json(&json!({"body": body, "clientId": format!("n{n}")})),
                Server::Hub => self.http.post(url).body(hub_event.clone()),
            };
            if matches!(request.send().await, Ok(r) if r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(format!("could not publish message {n}"))
    }
}

/// Sends `request` and reads its JSON answer; a status other than 2xx is an error.
pub async fn json_of(request: reqwest::RequestBuilder) -> Result<serde_json::Value, String> {
    request
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}

/// Creates a room on the server at `base`, as `token`; returns its id.
pub async fn create_room(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    room: serde_json::Value,
) -> Result<String, String> {
    let url = format!("{base}/api/chat/rooms");
    let room = json_of(http.post(url).bearer_auth(token).json(&room)).await?;
    Ok(room["id"].as_str().unwrap_or_default().to_owned())
}
