//! `/api/chat/rooms`: listing with unread counts (what fallback polling reads),
//! creating rooms, and their membership.

use super::{AppState, Json, Path, Query, limit, room_id, user_id};
use crate::error::{Error, Result};
use crate::limits::Write;
use crate::model::{Caller, Room, RoomName, UserId};
use crate::store::RoomCursor;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 500;
/// Members a room may be created with in one request.
const MAX_INITIAL_MEMBERS: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/chat/rooms", get(list_rooms).post(create_room))
        .route("/api/chat/rooms/{room_id}", get(get_room))
        .route("/api/chat/rooms/{room_id}/members", post(add_member))
        .route(
            "/api/chat/rooms/{room_id}/members/{user_id}",
            delete(remove_member),
        )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    limit: Option<i64>,
    page_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomList {
    rooms: Vec<Room>,
    total_unread: i64,
    next_page_token: Option<String>,
    /// Resume a stream from here to miss nothing after this answer.
    last_event_id: String,
}

/// Answers with a strong `ETag` and honours `If-None-Match`: an unchanged
/// fallback poll is a `304` that costs only the store's version check. The
/// tag covers the caller, the page asked for and the store's version of the
/// caller's listing, read before the listing, so a tag never claims more
/// than its body shows.
async fn list_rooms(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(params): Query<ListParams>,
) -> Result<Response> {
    let limit = limit(params.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let after = params
        .page_token
        .as_deref()
        .map(decode_page_token)
        .transpose()?;
    let version = state.store.rooms_version(&caller).await?;
    let tag = Sha256::new()
        .chain_update(caller.id.as_str())
        .chain_update([0, u8::from(caller.is_admin())])
        .chain_update(format!("{limit}:{:?}:{version}", params.page_token));
    let etag = format!("\"{:x}\"", tag.finalize());
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == etag);
    let etag = HeaderValue::try_from(etag)
        .map_err(|e| Error::Internal(format!("could not build an ETag: {e}")))?;
    let cache = HeaderValue::from_static("private, no-cache");
    if unchanged {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    let page = state.store.rooms(&caller, limit, after.as_ref()).await?;
    let list = RoomList {
        rooms: page.rooms,
        total_unread: page.total_unread,
        next_page_token: page.next.as_ref().map(encode_page_token),
        last_event_id: page.last_event_id.to_string(),
    };
    Ok((
        [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        Json(list),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewRoom {
    name: String,
    #[serde(default)]
    member_ids: Vec<String>,
}

async fn create_room(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewRoom>,
) -> Result<(StatusCode, Json<Room>)> {
    state.limits.check_write(&caller, Write::Room)?;
    let name = RoomName::parse(new.name)?;
    if new.member_ids.len() > MAX_INITIAL_MEMBERS {
        return Err(Error::unprocessable(
            "too_many_members",
            format!("a room may be created with at most {MAX_INITIAL_MEMBERS} members"),
        ));
    }
    let members = new
        .member_ids
        .into_iter()
        .map(UserId::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let room = state.store.create_room(&caller, &name, &members).await?;
    Ok((StatusCode::CREATED, Json(room)))
}

async fn get_room(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
) -> Result<Json<Room>> {
    let room = state.store.room(&caller, &room_id(&room)?).await?;
    Ok(Json(room))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewMember {
    user_id: String,
}

async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    Json(member): Json<NewMember>,
) -> Result<Json<Room>> {
    state.limits.check_write(&caller, Write::Member)?;
    let room = room_id(&room)?;
    let user = UserId::parse(member.user_id)?;
    Ok(Json(state.store.add_member(&caller, &room, &user).await?))
}

async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((room, user)): Path<(String, String)>,
) -> Result<Json<Room>> {
    state.limits.check_write(&caller, Write::Member)?;
    let room = room_id(&room)?;
    let user = user_id(user)?;
    Ok(Json(
        state.store.remove_member(&caller, &room, &user).await?,
    ))
}

/// Page tokens are opaque to clients: the activity number a page ended at.
fn encode_page_token(cursor: &RoomCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("a{}", cursor.activity))
}

fn decode_page_token(token: &str) -> Result<RoomCursor> {
    let invalid = || Error::bad_request("invalid_page_token", "pageToken is not one we issued");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let activity = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.strip_prefix('a'))
        .and_then(|number| number.parse::<i64>().ok())
        .filter(|activity| *activity > 0)
        .ok_or_else(invalid)?;
    Ok(RoomCursor { activity })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_refuse_forgeries() {
        let cursor = RoomCursor { activity: 42 };
        assert_eq!(
            decode_page_token(&encode_page_token(&cursor)).ok(),
            Some(cursor)
        );
        assert!(decode_page_token("not a token").is_err());
        assert!(decode_page_token(&URL_SAFE_NO_PAD.encode("12:'; DROP TABLE rooms")).is_err());
    }
}
