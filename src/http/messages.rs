//! `/api/chat/rooms/{id}/messages` and `/read`: a room's history in pages,
//! sending (idempotent by `clientId`), editing and deleting, and moving the
//! caller's read cursor.

use super::{AppState, Json, Path, Query, limit, message_id, room_id};
use crate::error::{BodyErrors, ErrorBody, ReadErrors};
use crate::error::{Error, Result};
use crate::limits::Write;
use crate::model::{AttachmentId, Caller, ClientId, Message, MessageBody, ReadState};
use crate::store::{MessageRange, NewMessage, Posted};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;
/// The most attachments one message carries.
const MAX_ATTACHMENTS: usize = 10;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_messages, post_message))
        .routes(routes!(edit_message, delete_message))
        .routes(routes!(mark_read))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Messages after this seq (ascending from it); not with `before`.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Messages before this seq (the page just older); not with `after`.
    #[param(minimum = 0)]
    before: Option<i64>,
    /// The messages around this seq: about half older, the rest newer, and
    /// the message at it (to open a conversation at a found message); not
    /// with `after` or `before`.
    #[param(minimum = 0)]
    around: Option<i64>,
    #[param(minimum = 1, maximum = 200, default = 50)]
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MessageList {
    messages: Vec<Message>,
    /// Older messages exist before this page.
    has_more: bool,
    /// Only for `around`: newer messages exist after this page (ask
    /// `after` the last one's seq for them).
    #[serde(skip_serializing_if = "Option::is_none")]
    has_newer: Option<bool>,
    /// Resume the room's stream from here to miss nothing after this answer.
    last_event_id: String,
}

#[utoipa::path(
    get,
    path = "/api/chat/rooms/{room_id}/messages",
    tag = "messages",
    summary = "A page of a room's history, ascending by seq (the newest page by default)",
    params(("room_id" = String, Path, description = "The room's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"), ListParams),
    responses((status = 200, description = "A page of messages", body = MessageList), ReadErrors),
    security(("bearer" = []), ("access_token" = []), ("cookie" = [])),
)]
async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<MessageList>> {
    let room = room_id(&room)?;
    let limit = limit(params.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let range = match (params.after, params.before, params.around) {
        (None, None, None) => MessageRange::Newest,
        (Some(after), None, None) if after >= 0 => MessageRange::After(after),
        (None, Some(before), None) if before >= 0 => MessageRange::Before(before),
        (None, None, Some(around)) if around >= 0 => MessageRange::Around(around),
        (after, before, around)
            if [after, before, around]
                .iter()
                .filter(|seq| seq.is_some())
                .count()
                > 1 =>
        {
            return Err(Error::bad_request(
                "invalid_range",
                "give one of `after`, `before` and `around`, not several",
            ));
        }
        _ => {
            return Err(Error::bad_request(
                "invalid_seq",
                "`after`, `before` and `around` must not be negative",
            ));
        }
    };
    let page = state.store.messages(&caller, &room, range, limit).await?;
    Ok(Json(MessageList {
        messages: page.messages,
        has_more: page.has_more,
        has_newer: page.has_newer,
        last_event_id: page.last_event_id.to_string(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SendMessage {
    /// Up to 4000 characters, no NUL; not blank, unless the message has
    /// attachments.
    #[schema(max_length = 4000)]
    #[serde(default)]
    body: String,
    /// Uploads of the sender's into this room (`POST .../attachments`),
    /// not sent yet: at most 10, each sent once.
    #[serde(default)]
    #[schema(max_items = 10)]
    attachments: Vec<String>,
    /// The sender's own id for this message: a retry with the same one gets
    /// the original back (200) instead of a second message.
    #[schema(max_length = 64)]
    client_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/chat/rooms/{room_id}/messages",
    tag = "messages",
    summary = "Sends a message; idempotent by `clientId`",
    params(("room_id" = String, Path, description = "The room's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    request_body = SendMessage,
    responses(
        (status = 201, description = "Stored and streamed", body = Message),
        (status = 200, description = "A retry: the message first sent with this `clientId`", body = Message),
        ReadErrors,
        BodyErrors,
    ),
    security(("bearer" = [])),
)]
async fn post_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    Json(send): Json<SendMessage>,
) -> Result<(StatusCode, Json<Message>)> {
    state.limits.check_write(&caller, Write::Message).await?;
    let room = room_id(&room)?;
    if send.attachments.len() > MAX_ATTACHMENTS {
        return Err(Error::unprocessable(
            "too_many_attachments",
            format!("a message carries at most {MAX_ATTACHMENTS} attachments"),
        ));
    }
    let attachments = send
        .attachments
        .iter()
        .map(|id| AttachmentId::parse(id))
        .collect::<Result<Vec<_>, _>>()?;
    let body = match send.body.trim().is_empty() && !attachments.is_empty() {
        true => MessageBody::empty(),
        false => MessageBody::parse(send.body)?,
    };
    let message = NewMessage {
        body,
        client_id: send.client_id.map(ClientId::parse).transpose()?,
        attachments,
    };
    let posted = state
        .store
        .post_message(&caller, &room, &message)
        .await
        .map_err(|error| match error {
            // Refused before it was queued: certainly not stored.
            Error::ShuttingDown => error,
            // The store failed while the post was queued or committing.
            error if error.status().is_server_error() => error.unsettled(),
            error => error,
        })?;
    Ok(match posted {
        Posted::Created(message) => (StatusCode::CREATED, Json(message)),
        Posted::Existing(message) => (StatusCode::OK, Json(message)),
    })
}

#[derive(Deserialize, ToSchema)]
struct EditMessage {
    /// The new text: 1 to 4000 characters, not blank, no NUL.
    #[schema(min_length = 1, max_length = 4000)]
    body: String,
}

#[utoipa::path(
    patch,
    path = "/api/chat/rooms/{room_id}/messages/{message_id}",
    tag = "messages",
    summary = "Replaces a message's body (its author within message_edit_window, or an admin); streamed as message_edited",
    description = "The message keeps its id and seq. Sending the body it already has changes nothing. \
        Someone else's message answers 403 `not_author`, an author past the window 403 \
        `edit_window_closed`, a deleted message 409 `message_deleted`, a closed room 409 \
        `room_closed` (admins' too).",
    params(
        ("room_id" = String, Path, description = "The room's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
        ("message_id" = String, Path, description = "The message's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
    ),
    request_body = EditMessage,
    responses((status = 200, description = "The message as it is now", body = Message), ReadErrors, BodyErrors),
    security(("bearer" = [])),
)]
async fn edit_message(
    State(state): State<AppState>,
    caller: Caller,
    Path((room, message)): Path<(String, String)>,
    Json(edit): Json<EditMessage>,
) -> Result<Json<Message>> {
    state.limits.check_write(&caller, Write::Message).await?;
    let room = room_id(&room)?;
    let message = message_id(&message)?;
    let body = MessageBody::parse(edit.body)?;
    let window = state.config.message_edit_window.0;
    Ok(Json(
        state
            .store
            .edit_message(&caller, &room, &message, &body, window)
            .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/api/chat/rooms/{room_id}/messages/{message_id}",
    tag = "messages",
    summary = "Deletes a message (its author or an admin): a tombstone stays, streamed as message_deleted",
    description = "The message keeps its id and seq; its body is gone from the store and from the \
        log's events of it, and it no longer counts as unread. Deleting it again answers the \
        same tombstone and changes nothing. In a closed room only an admin may (moderation); \
        its author is answered 409 `room_closed`.",
    params(
        ("room_id" = String, Path, description = "The room's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
        ("message_id" = String, Path, description = "The message's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
    ),
    responses(
        (status = 200, description = "The tombstone", body = Message),
        (status = 409, description = "A closed room, and the caller is no admin (`room_closed`)", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
async fn delete_message(
    State(state): State<AppState>,
    caller: Caller,
    Path((room, message)): Path<(String, String)>,
) -> Result<Json<Message>> {
    state.limits.check_write(&caller, Write::Message).await?;
    let room = room_id(&room)?;
    let message = message_id(&message)?;
    Ok(Json(
        state.store.delete_message(&caller, &room, &message).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
struct MarkRead {
    /// Read up to here; clamped to the newest message, never moves back.
    #[schema(minimum = 0)]
    seq: i64,
}

#[utoipa::path(
    post,
    path = "/api/chat/rooms/{room_id}/read",
    tag = "messages",
    summary = "Moves the caller's read cursor forward",
    description = "In a closed room too: what the caller has read is theirs to say, and an \
        unread count that could never reach zero would haunt their inbox.",
    params(("room_id" = String, Path, description = "The room's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    request_body = MarkRead,
    responses((status = 200, description = "The cursor after the move", body = ReadState), ReadErrors, BodyErrors),
    security(("bearer" = [])),
)]
async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    Json(read): Json<MarkRead>,
) -> Result<Json<ReadState>> {
    state.limits.check_write(&caller, Write::Read).await?;
    let room = room_id(&room)?;
    if read.seq < 0 {
        return Err(Error::unprocessable(
            "invalid_seq",
            "seq must not be negative",
        ));
    }
    Ok(Json(state.store.mark_read(&caller, &room, read.seq).await?))
}
