//! `/api/chat/rooms/{id}/messages` and `/read`: a room's history in pages,
//! sending (idempotent by `clientId`), and moving the caller's read cursor.

use super::{AppState, Json, Path, Query, limit, room_id};
use crate::error::{Error, Result};
use crate::limits::Write;
use crate::model::{Caller, ClientId, Message, MessageBody, ReadState};
use crate::store::{MessageRange, NewMessage, Posted};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/chat/rooms/{room_id}/messages",
            get(list_messages).post(post_message),
        )
        .route("/api/chat/rooms/{room_id}/read", post(mark_read))
}

#[derive(Deserialize)]
struct ListParams {
    after: Option<i64>,
    before: Option<i64>,
    limit: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageList {
    messages: Vec<Message>,
    has_more: bool,
    /// Resume the room's stream from here to miss nothing after this answer.
    last_event_id: String,
}

async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<MessageList>> {
    let room = room_id(&room)?;
    let limit = limit(params.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let range = match (params.after, params.before) {
        (None, None) => MessageRange::Newest,
        (Some(after), None) if after >= 0 => MessageRange::After(after),
        (None, Some(before)) if before >= 0 => MessageRange::Before(before),
        (Some(_), Some(_)) => {
            return Err(Error::bad_request(
                "invalid_range",
                "give `after` or `before`, not both",
            ));
        }
        _ => {
            return Err(Error::bad_request(
                "invalid_seq",
                "`after` and `before` must not be negative",
            ));
        }
    };
    let page = state.store.messages(&caller, &room, range, limit).await?;
    Ok(Json(MessageList {
        messages: page.messages,
        has_more: page.has_more,
        last_event_id: page.last_event_id.to_string(),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendMessage {
    body: String,
    client_id: Option<String>,
}

async fn post_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    Json(send): Json<SendMessage>,
) -> Result<(StatusCode, Json<Message>)> {
    state.limits.check_write(&caller, Write::Message)?;
    let room = room_id(&room)?;
    let message = NewMessage {
        body: MessageBody::parse(send.body)?,
        client_id: send.client_id.map(ClientId::parse).transpose()?,
    };
    Ok(
        match state.store.post_message(&caller, &room, &message).await? {
            Posted::Created(message) => (StatusCode::CREATED, Json(message)),
            Posted::Existing(message) => (StatusCode::OK, Json(message)),
        },
    )
}

#[derive(Deserialize)]
struct MarkRead {
    seq: i64,
}

async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    Json(read): Json<MarkRead>,
) -> Result<Json<ReadState>> {
    let room = room_id(&room)?;
    if read.seq < 0 {
        return Err(Error::unprocessable(
            "invalid_seq",
            "seq must not be negative",
        ));
    }
    Ok(Json(state.store.mark_read(&caller, &room, read.seq).await?))
}
