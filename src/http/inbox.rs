//! The support inbox: a room's conversation state, as agents (admins) set
//! it. Every change is a `conversation_updated` event on agents' global
//! streams; customers never see it.

use super::{AppState, Json, Path, room_id};
use crate::error::{BodyErrors, Error, ReadErrors, Result};
use crate::limits::Write;
use crate::model::{Caller, ConversationStatus, Room, Timestamp};
use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(change_conversation))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConversationChanges {
    status: ConversationStatus,
    /// For `snoozed` (and only then): when it opens again, in the future.
    #[schema(value_type = Option<String>, format = DateTime)]
    snoozed_until: Option<Timestamp>,
}

#[utoipa::path(
    patch,
    path = "/api/chat/rooms/{room_id}/conversation",
    tag = "inbox",
    summary = "Sets a conversation's status (agents, that is admins); streamed to agents as `conversation_updated`",
    params(("room_id" = String, Path, description = "The room's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    request_body = ConversationChanges,
    responses((status = 200, description = "The room, with its conversation", body = Room), ReadErrors, BodyErrors),
    security(("bearer" = [])),
)]
async fn change_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    Json(changes): Json<ConversationChanges>,
) -> Result<Json<Room>> {
    state.limits.check_write(&caller, Write::Room).await?;
    let room = room_id(&room)?;
    if !caller.is_admin() {
        return Err(Error::forbidden(
            "forbidden",
            "only agents (admins) may change a conversation's status",
        ));
    }
    match (changes.status, changes.snoozed_until) {
        (ConversationStatus::Snoozed, None) => {
            return Err(Error::unprocessable(
                "snooze_needs_a_time",
                "a snoozed conversation needs `snoozedUntil`",
            ));
        }
        (ConversationStatus::Snoozed, Some(until)) if until <= Timestamp::now() => {
            return Err(Error::unprocessable(
                "snooze_in_the_past",
                "`snoozedUntil` must be in the future",
            ));
        }
        (ConversationStatus::Snoozed, Some(_)) | (_, None) => {}
        (_, Some(_)) => {
            return Err(Error::unprocessable(
                "snooze_only_when_snoozed",
                "`snoozedUntil` goes with the status `snoozed` only",
            ));
        }
    }
    Ok(Json(
        state
            .store
            .inbox()
            .set_conversation_status(&caller, &room, changes.status, changes.snoozed_until)
            .await?,
    ))
}
