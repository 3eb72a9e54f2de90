//! `/api/chat/rooms`: listing with unread counts (what fallback polling reads),
//! creating rooms, closing, reopening and deleting them, and their membership.

use super::etag::Tagged;
use super::{AppState, Json, Path, Query, limit, room_id, user_id};
use crate::error::{BodyErrors, Error, ReadErrors, Result};
use crate::limits::Write;
use crate::model::{Caller, ConversationStatus, DeletedRoom, Room, RoomName, UserId};
use crate::store::{
    Assignee, MAX_ROOM_PAGE, MemberRules, RoomCursor, RoomFilter, cannot_add_others,
};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = MAX_ROOM_PAGE;
/// Members a room may be created with in one request.
const MAX_INITIAL_MEMBERS: usize = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rooms, create_room))
        .routes(routes!(get_room, change_room, delete_room))
        .routes(routes!(add_member))
        .routes(routes!(remove_member))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Rooms per page.
    #[param(minimum = 1, maximum = 500, default = 100)]
    limit: Option<i64>,
    /// The `nextPageToken` of the page before.
    page_token: Option<String>,
    /// Agents (admins) only: conversations of this status.
    status: Option<ConversationStatus>,
    /// Agents (admins) only: conversations assigned to `me` (the caller),
    /// to `none`, or to the agent with this id.
    #[param(min_length = 1, max_length = 128)]
    assignee: Option<String>,
}

impl ListParams {
    /// The inbox filter asked for: agents' alone.
    fn filter(&self, caller: &Caller) -> Result<RoomFilter> {
        let assignee = match self.assignee.as_deref() {
            None => None,
            Some("me") => Some(Assignee::Agent(caller.id.clone())),
            Some("none") => Some(Assignee::Nobody),
            Some(agent) => Some(Assignee::Agent(user_id(agent.to_owned())?)),
        };
        let filter = RoomFilter {
            status: self.status,
            assignee,
        };
        if !filter.is_empty() && !caller.is_admin() {
            return Err(Error::forbidden(
                "forbidden",
                "only agents (admins) filter rooms by conversation",
            ));
        }
        Ok(filter)
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RoomList {
    rooms: Vec<Room>,
    /// Unread messages in every room the caller can see. Not in an inbox
    /// view (filtered by status or assignee): `/api/chat/inbox` has its
    /// tabs' counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    total_unread: Option<i64>,
    next_page_token: Option<String>,
    /// Resume a stream from here to miss nothing after this answer.
    last_event_id: String,
}

/// Answers with an `ETag` and honours `If-None-Match`: an unchanged
/// fallback poll is a `304` that costs only the store's version check. The
/// tag covers the caller, the page asked for and the store's version of the
/// caller's listing, read before the listing, so a tag never claims more
/// than its body shows. It is weak: a member's `lastEventId` is the newest
/// id of the whole log, which others' events move without changing what the
/// listing says (either id resumes without loss).
#[utoipa::path(
    get,
    path = "/api/chat/rooms",
    tag = "rooms",
    summary = "The caller's rooms, newest activity first, with unread counts",
    description = "What fallback polling reads: send the last `ETag` as `If-None-Match` and an unchanged listing is a `304`. Agents (admins) may filter it into an inbox view by `status` and `assignee`; a filter from anyone else is a 403.",
    params(
        ListParams,
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of the last answer"),
    ),
    responses(
        (status = 200, description = "A page of rooms", body = RoomList,
            headers(("ETag" = String, description = "Changes whenever the listing may have"))),
        (status = 304, description = "Unchanged since the `ETag` given"),
        ReadErrors,
    ),
    security(("bearer" = []), ("access_token" = []), ("cookie" = [])),
)]
async fn list_rooms(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(params): Query<ListParams>,
) -> Result<Response> {
    let limit = limit(params.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let filter = params.filter(&caller)?;
    let after = params
        .page_token
        .as_deref()
        .map(decode_page_token)
        .transpose()?;
    let version = state.store.rooms_version(&caller).await?;
    let asked = format!("{limit}:{:?}:{filter:?}", params.page_token);
    let tagged = Tagged::new(&headers, &caller, &asked, &version)?;
    if tagged.unchanged {
        return Ok(tagged.not_modified());
    }
    let page = state
        .store
        .rooms(&caller, &filter, limit, after.as_ref())
        .await?;
    let list = RoomList {
        rooms: page.rooms,
        total_unread: page.total_unread,
        next_page_token: page.next.as_ref().map(encode_page_token),
        last_event_id: page.last_event_id.to_string(),
    };
    Ok(tagged.answer(Json(list)))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct NewRoom {
    /// 1 to 100 characters, not blank.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// Members besides the creator: admins only (see `members_add_others`).
    #[serde(default)]
    #[schema(max_items = 1000)]
    member_ids: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/chat/rooms",
    tag = "rooms",
    summary = "Creates a room; the caller is its first member",
    description = "`memberIds` may name others only when an admin creates the room (or \
        members_add_others is set): otherwise 403 `cannot_add_others`, and nothing is created.",
    request_body = NewRoom,
    responses((status = 201, description = "The new room", body = Room), ReadErrors, BodyErrors),
    security(("bearer" = [])),
)]
async fn create_room(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewRoom>,
) -> Result<(StatusCode, Json<Room>)> {
    state.limits.check_write(&caller, Write::Room).await?;
    let name = RoomName::parse(new.name)?;
    // The creator is a member too.
    let most = MAX_INITIAL_MEMBERS.min(state.config.room_max_members - 1);
    if new.member_ids.len() > most {
        return Err(Error::unprocessable(
            "too_many_members",
            format!("a room may be created with at most {most} other members"),
        ));
    }
    let members = new
        .member_ids
        .into_iter()
        .map(UserId::parse)
        .collect::<Result<Vec<_>, _>>()?;
    // Membership by consent: nobody is put into a room by a stranger.
    if !caller.is_admin()
        && !state.config.members_add_others
        && members.iter().any(|member| *member != caller.id)
    {
        return Err(cannot_add_others());
    }
    let room = state.store.create_room(&caller, &name, &members).await?;
    Ok((StatusCode::CREATED, Json(room)))
}

#[utoipa::path(
    get,
    path = "/api/chat/rooms/{room_id}",
    tag = "rooms",
    summary = "One room, as the caller sees it",
    params(("room_id" = String, Path, description = "The room's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses((status = 200, description = "The room", body = Room), ReadErrors),
    security(("bearer" = []), ("access_token" = []), ("cookie" = [])),
)]
async fn get_room(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
) -> Result<Json<Room>> {
    let room = state.store.room(&caller, &room_id(&room)?).await?;
    Ok(Json(room))
}

#[derive(Deserialize, ToSchema)]
struct RoomChanges {
    /// `true` closes the room to new messages (posts answer 409
    /// `room_closed`); `false` reopens it.
    closed: bool,
}

#[utoipa::path(
    patch,
    path = "/api/chat/rooms/{room_id}",
    tag = "rooms",
    summary = "Closes a room to new messages, or reopens it (admins); streamed as a room change",
    params(("room_id" = String, Path, description = "The room's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    request_body = RoomChanges,
    responses((status = 200, description = "The room", body = Room), ReadErrors, BodyErrors),
    security(("bearer" = [])),
)]
async fn change_room(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    Json(changes): Json<RoomChanges>,
) -> Result<Json<Room>> {
    state.limits.check_write(&caller, Write::Room).await?;
    let room = room_id(&room)?;
    Ok(Json(
        state
            .store
            .set_closed(&caller, &room, changes.closed)
            .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/api/chat/rooms/{room_id}",
    tag = "rooms",
    summary = "Deletes a room, its messages and its events (admins); streamed as a room change `deleted`",
    description = "Its streams get the `deleted` event and end; members' global streams drop the \
        room; it leaves every listing at once, then its messages and earlier events are removed \
        in batches of erase_batch rows. Deleting it again answers the same and finishes a \
        deletion that was interrupted.",
    params(("room_id" = String, Path, description = "The room's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses((status = 200, description = "Who deleted the room, and when", body = DeletedRoom), ReadErrors),
    security(("bearer" = [])),
)]
async fn delete_room(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
) -> Result<Json<DeletedRoom>> {
    state.limits.check_write(&caller, Write::Room).await?;
    let room = room_id(&room)?;
    let deleted = state
        .store
        .delete_room(&caller, &room, state.config.erase_batch)
        .await?;
    Ok(Json(deleted))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct NewMember {
    #[schema(min_length = 1, max_length = 128)]
    user_id: String,
}

#[utoipa::path(
    post,
    path = "/api/chat/rooms/{room_id}/members",
    tag = "rooms",
    summary = "Adds a member (admins); adding twice changes nothing; a full room (room_max_members) answers 422, a closed one 409",
    description = "Only admins put other users into rooms (403 `cannot_add_others`), unless \
        members_add_others is set: then members of the room may too, but never put back a user \
        who left the room or was removed from it (403 `left_the_room`).",
    params(("room_id" = String, Path, description = "The room's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    request_body = NewMember,
    responses((status = 200, description = "The room", body = Room), ReadErrors, BodyErrors),
    security(("bearer" = [])),
)]
async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    Json(member): Json<NewMember>,
) -> Result<Json<Room>> {
    state.limits.check_write(&caller, Write::Member).await?;
    let room = room_id(&room)?;
    let user = UserId::parse(member.user_id)?;
    let rules = MemberRules {
        max_members: state.config.room_max_members,
        members_add_others: state.config.members_add_others,
    };
    Ok(Json(
        state
            .store
            .add_member(&caller, &room, &user, &rules)
            .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/api/chat/rooms/{room_id}/members/{user_id}",
    tag = "rooms",
    summary = "Removes a member (admins, or the member themself, in a closed room too); only an admin may put them back",
    params(
        ("room_id" = String, Path, description = "The room's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
        ("user_id" = String, Path, description = "The member to remove"),
    ),
    responses((status = 200, description = "The room", body = Room), ReadErrors),
    security(("bearer" = [])),
)]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((room, user)): Path<(String, String)>,
) -> Result<Json<Room>> {
    state.limits.check_write(&caller, Write::Member).await?;
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
