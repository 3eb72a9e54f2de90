//! The reference: a bare axum broadcast hub, the least a Rust SSE server can
//! do (no auth, no store, no resume): `tokio::sync::broadcast` in,
//! `axum::response::sse` out, with axum's keep-alive as its heartbeat. Events
//! go to everyone (`/sse`) and to a room's channel (`/sse?room=R`) when
//! published with `?room=R`; `POST /typing?room=R` sends a typing signal
//! the same way, shaped like ours (a data line, no id). For the polling workload it serves one fixed
//! body at `/rooms` (set by a `POST`), with an `ETag`.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::broadcast;

#[derive(Clone)]
struct Hub {
    everyone: broadcast::Sender<Arc<str>>,
    rooms: Arc<Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>>,
    listing: Arc<Mutex<Arc<str>>>,
    heartbeat: Duration,
}

#[derive(serde::Deserialize)]
struct Room {
    room: Option<String>,
}

impl Hub {
    fn room(&self, room: &str) -> broadcast::Sender<Arc<str>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        rooms
            .entry(room.to_owned())
            .or_insert_with(|| broadcast::channel(64).0)
            .clone()
    }
}

pub async fn serve(listen: SocketAddr, heartbeat: Duration) -> std::io::Result<()> {
    let hub = Hub {
        everyone: broadcast::channel(1024).0,
        rooms: Arc::default(),
        listing: Arc::new(Mutex::new(Arc::from("{}"))),
        heartbeat,
    };
    let app = Router::new()
        .route("/sse", get(subscribe))
        .route("/publish", post(publish))
        .route("/typing", post(typing))
        .route("/rooms", get(listing).post(set_listing))
        .with_state(hub);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await
}

async fn subscribe(State(hub): State<Hub>, Query(query): Query<Room>) -> impl IntoResponse {
    let receiver = match &query.room {
        Some(room) => hub.room(room).subscribe(),
        None => hub.everyone.subscribe(),
    };
    Sse::new(events(receiver)).keep_alive(KeepAlive::new().interval(hub.heartbeat))
}

async fn publish(State(hub): State<Hub>, Query(query): Query<Room>, body: String) {
    let event: Arc<str> = Arc::from(body);
    if let Some(room) = &query.room {
        let _ = hub.room(room).send(event.clone());
    }
    let _ = hub.everyone.send(event);
}

/// A typing signal for the room, to its channel and to everyone: what ours
/// sends a room's widget and the admin panels, in the same shape.
async fn typing(State(hub): State<Hub>, Query(query): Query<Room>) {
    let room = query.room.unwrap_or_default();
    // Written out, not `json!`: its keys come out sorted, and `type` leads
    // in ours.
    let quoted = |text: &str| serde_json::Value::from(text).to_string();
    let (room_id, user_id) = (quoted(&room), quoted(&format!("load-user-{room}")));
    let event: Arc<str> = Arc::from(format!(
        r#"{{"type":"typing","roomId":{room_id},"userId":{user_id},"typing":true,"expiresInMs":6000}}"#
    ));
    let _ = hub.room(&room).send(event.clone());
    let _ = hub.everyone.send(event);
}

async fn listing(State(hub): State<Hub>, headers: HeaderMap) -> Response {
    let body = hub
        .listing
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let etag = format!("\"{}\"", body.len());
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (header::ETAG, etag),
            (header::CONTENT_TYPE, "application/json".to_owned()),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn set_listing(State(hub): State<Hub>, body: String) {
    *hub.listing.lock().unwrap_or_else(PoisonError::into_inner) = Arc::from(body);
}

fn events(
    mut receiver: broadcast::Receiver<Arc<str>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    async_stream::stream! {
        loop {
            match receiver.recv().await {
                Ok(body) => yield Ok(Event::default().data(&*body)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
