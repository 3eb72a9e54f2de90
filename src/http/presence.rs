//! `GET /api/chat/presence?userIds=…`: who of the named users is online, as
//! of a version, so a page starts right and then keeps the `presence`
//! signals newer than it.

use super::{AppState, Json, Query};
use crate::error::{Error, ReadErrors, Result};
use crate::model::{Caller, UserId};
use crate::store::Lane;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The most users one request asks about.
const MAX_USERS: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(presence))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct PresenceParams {
    /// Up to 100 user ids, comma-separated.
    #[param(min_length = 1, pattern = "^[^,\\x00-\\x1f]+(,[^,\\x00-\\x1f]+)*$")]
    user_ids: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PresenceList {
    /// Apply `presence` signals whose version is higher than this, and no other.
    version: i64,
    /// The users asked about whom the caller may see: those sharing a room
    /// with them (admins: everyone), and themself. Others are left out.
    users: Vec<UserPresence>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserPresence {
    user_id: UserId,
    online: bool,
}

#[utoipa::path(
    get,
    path = "/api/chat/presence",
    tag = "rooms",
    summary = "Who of the named users is online (those the caller shares a room with; admins: anyone)",
    description = "A user is online while they hold a stream or a waiting poll on any instance, \\
        and for presence_grace after the last ends. Streams then carry `presence` signals, \\
        each with a version: keep, per user, the one with the highest version.",
    params(PresenceParams),
    responses((status = 200, description = "Presence as of `version`", body = PresenceList), ReadErrors),
    security(("bearer" = []), ("access_token" = []), ("cookie" = [])),
)]
async fn presence(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<PresenceParams>,
) -> Result<Json<PresenceList>> {
    let mut users = params
        .user_ids
        .split(',')
        .map(|user| {
            UserId::parse(user)
                .map_err(|invalid| Error::bad_request("invalid_user_ids", invalid.message))
        })
        .collect::<Result<Vec<_>>>()?;
    users.sort();
    users.dedup();
    if users.len() > MAX_USERS {
        return Err(Error::bad_request(
            "invalid_user_ids",
            format!("ask about at most {MAX_USERS} users at once"),
        ));
    }
    if !caller.is_admin() {
        let mut visible = state.store.room_mates(&caller.id, &users).await?;
        if users.contains(&caller.id) {
            visible.push(caller.id.clone());
        }
        users.retain(|user| visible.contains(user));
    }
    let presence = state.hub.presence();
    // Before looking, so that any change the look misses is newer.
    let version = presence.version(Lane::Requests).await?;
    let seen = presence.look_up(&state.hub, &users).await?;
    Ok(Json(PresenceList {
        version,
        users: seen
            .into_iter()
            .map(|seen| UserPresence {
                user_id: seen.user,
                online: seen.online,
            })
            .collect(),
    }))
}
