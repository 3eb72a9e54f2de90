//! `POST /api/chat/rooms/{id}/typing`: tells the room's live viewers, on
//! every instance, that the caller is typing (or stopped).

use super::{AppState, Json, Path, room_id};
use crate::error::{BodyErrors, ReadErrors, Result};
use crate::events::typing;
use crate::limits::Write;
use crate::model::Caller;
use crate::store::closed_room;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(typing))
}

#[derive(Deserialize, ToSchema)]
struct Typing {
    /// `true` while typing (renew every few seconds: a notice lapses after
    /// `expiresInMs`), `false` to end it at once.
    typing: bool,
}

#[utoipa::path(
    post,
    path = "/api/chat/rooms/{room_id}/typing",
    tag = "rooms",
    summary = "Tells the room's live viewers that the caller is typing (members and admins); a closed room answers 409",
    description = "Sends an ephemeral `typing` event to the room's streams on every instance: \\
        never stored, never replayed, never unread. It lapses by itself after `expiresInMs` \\
        unless renewed. Rate-limited per user (typing_rate_per_user).",
    params(("room_id" = String, Path, description = "The room's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    request_body = Typing,
    responses((status = 204, description = "Sent to the room's live viewers"), ReadErrors, BodyErrors),
    security(("bearer" = [])),
)]
async fn typing(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    Json(notice): Json<Typing>,
) -> Result<StatusCode> {
    state.limits.check_write(&caller, Write::Typing).await?;
    let room = room_id(&room)?;
    // Only someone who may see the room may type in it, and not once it is closed.
    if state.store.room_state(&caller, &room).await?.closed {
        return Err(closed_room());
    }
    state
        .hub
        .signal(vec![typing::notice(&room, &caller.id, notice.typing)]);
    Ok(StatusCode::NO_CONTENT)
}
