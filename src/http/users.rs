//! `/api/chat/users/{userId}/messages`: erasing what a person wrote, on
//! request (admins): every message becomes a tombstone, streamed as
//! `message_deleted`.

use super::{AppState, Json, Path, user_id};
use crate::error::{Error, ReadErrors, Result};
use crate::limits::Write;
use crate::model::{Caller, UserId};
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(erase_messages))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Erased {
    user_id: UserId,
    /// Messages made tombstones by this request (none when asked again).
    erased: u64,
}

#[utoipa::path(
    delete,
    path = "/api/chat/users/{user_id}/messages",
    tag = "rooms",
    summary = "Erases every message a user wrote (admins): tombstones, streamed as message_deleted",
    description = "In batches of erase_batch messages, each its own transaction, so writers \\
        never wait long. Bodies are gone from the store and the log; seqs stay. Asking again \\
        erases what was written since.",
    params(("user_id" = String, Path, description = "The user, as their token's `sub` names them")),
    responses((status = 200, description = "How many were erased", body = Erased), ReadErrors),
    security(("bearer" = [])),
)]
async fn erase_messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> Result<Json<Erased>> {
    if !caller.is_admin() {
        return Err(Error::forbidden(
            "forbidden",
            "only admins may erase a user's messages",
        ));
    }
    state.limits.check_write(&caller, Write::Member).await?;
    let user = user_id(user)?;
    let erased = state
        .store
        .erase_messages(&caller.id, &user, state.config.erase_batch)
        .await?;
    tracing::info!(user = user.as_str(), erased, "erased a user's messages");
    Ok(Json(Erased {
        user_id: user,
        erased,
    }))
}
