//! The support inbox, for agents (admins): a room's conversation (its
//! status and assignee, changed with PATCH; every change is a
//! `conversation_updated` event on agents' global streams, never on a
//! customer's), the agents, and the counts the inbox's tabs show.

use super::etag::Tagged;
use super::{AppState, Json, Path, room_id, user_id};
use crate::error::{BodyErrors, Error, ReadErrors, Result};
use crate::limits::Write;
use crate::model::{Caller, ConversationStatus, InboxSummary, Room, Timestamp, UserId};
use crate::store::ConversationChanges;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(change_conversation))
        .routes(routes!(agents))
        .routes(routes!(forget_agent))
        .routes(routes!(summary))
}

fn agents_only(caller: &Caller, what: &str) -> Result<()> {
    match caller.is_admin() {
        true => Ok(()),
        false => Err(Error::forbidden(
            "forbidden",
            format!("only agents (admins) may {what}"),
        )),
    }
}

/// What to change; what is left out stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConversationPatch {
    status: Option<ConversationStatus>,
    /// For `snoozed` (and only then): when it opens again, in the future.
    #[schema(value_type = Option<String>, format = DateTime)]
    snoozed_until: Option<Timestamp>,
    /// The agent to assign it to (`me`: the caller), or `null` to unassign.
    /// An agent is a user who has signed in with the admin role.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable, min_length = 1, max_length = 128)]
    assignee_id: Option<Option<String>>,
}

/// A field that is present, even as `null` (`Some(None)`), as opposed to
/// one left out (`None`, by `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

impl ConversationPatch {
    fn changes(self, caller: &Caller) -> Result<ConversationChanges> {
        let status = match (self.status, self.snoozed_until) {
            (None, None) => None,
            (Some(ConversationStatus::Snoozed), None) => {
                return Err(Error::unprocessable(
                    "snooze_needs_a_time",
                    "a snoozed conversation needs `snoozedUntil`",
                ));
            }
            (Some(ConversationStatus::Snoozed), Some(until)) if until <= Timestamp::now() => {
                return Err(Error::unprocessable(
                    "snooze_in_the_past",
                    "`snoozedUntil` must be in the future",
                ));
            }
            (Some(status @ ConversationStatus::Snoozed), until) | (Some(status), until @ None) => {
                Some((status, until))
            }
            (_, Some(_)) => {
                return Err(Error::unprocessable(
                    "snooze_only_when_snoozed",
                    "`snoozedUntil` goes with the status `snoozed` only",
                ));
            }
        };
        // `me`, as in the listing's filter, is the caller.
        let assignee = match self.assignee_id {
            None => None,
            Some(None) => Some(None),
            Some(Some(agent)) if agent == "me" => Some(Some(caller.id.clone())),
            Some(Some(agent)) => {
                Some(Some(UserId::parse(agent).map_err(|invalid| {
                    Error::unprocessable(invalid.code, invalid.message)
                })?))
            }
        };
        if status.is_none() && assignee.is_none() {
            return Err(Error::unprocessable(
                "nothing_to_change",
                "give `status` or `assigneeId`",
            ));
        }
        Ok(ConversationChanges { status, assignee })
    }
}

#[utoipa::path(
    patch,
    path = "/api/chat/rooms/{room_id}/conversation",
    tag = "inbox",
    summary = "Changes a conversation's status or assignee (agents, that is admins); streamed to agents as `conversation_updated`",
    description = "One `conversation_updated` event for each part that changed (`change`: `status` or `assignee`); none when nothing did. Assigning to a user who is not an agent is a 422.",
    params(("room_id" = String, Path, description = "The room's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    request_body = ConversationPatch,
    responses((status = 200, description = "The room, with its conversation", body = Room), ReadErrors, BodyErrors),
    security(("bearer" = [])),
)]
async fn change_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    Json(patch): Json<ConversationPatch>,
) -> Result<Json<Room>> {
    state.limits.check_write(&caller, Write::Room).await?;
    let room = room_id(&room)?;
    agents_only(&caller, "change a conversation")?;
    let changes = patch.changes(&caller)?;
    Ok(Json(
        state
            .store
            .inbox()
            .change_conversation(&caller, &room, &changes)
            .await?,
    ))
}

/// An agent, as the inbox shows them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AgentView {
    #[schema(value_type = String)]
    id: UserId,
    /// Their token's `name` claim, the last one given.
    name: Option<String>,
    /// Holding a stream or a poll now (as `presence` tells).
    online: bool,
    /// Conversations assigned to them that stand open.
    open_conversations: i64,
}

#[derive(Serialize, ToSchema)]
struct AgentList {
    agents: Vec<AgentView>,
}

#[utoipa::path(
    get,
    path = "/api/chat/agents",
    tag = "inbox",
    summary = "The agents (users who signed in as admins), with presence and their open conversations",
    responses((status = 200, description = "Every agent, by id", body = AgentList), ReadErrors),
    security(("bearer" = []), ("access_token" = []), ("cookie" = [])),
)]
async fn agents(State(state): State<AppState>, caller: Caller) -> Result<Json<AgentList>> {
    agents_only(&caller, "list the agents")?;
    let agents = state.store.inbox().agents().await?;
    let ids: Vec<UserId> = agents.iter().map(|agent| agent.id.clone()).collect();
    let seen = state.hub.presence().look_up(&state.hub, &ids).await?;
    let agents = agents
        .into_iter()
        .zip(seen)
        .map(|(agent, seen)| AgentView {
            id: agent.id,
            name: agent.name,
            online: seen.online,
            open_conversations: agent.open_conversations,
        })
        .collect();
    Ok(Json(AgentList { agents }))
}

#[utoipa::path(
    delete,
    path = "/api/chat/agents/{user_id}",
    tag = "inbox",
    summary = "Forgets an agent (one no longer on the team); conversations assigned to them stay so until changed",
    description = "An agent is noted again when they sign in with the admin role, within ten minutes on each instance: revoke their admin tokens first.",
    params(("user_id" = String, Path, description = "The agent's user id")),
    responses((status = 204, description = "Forgotten"), ReadErrors),
    security(("bearer" = [])),
)]
async fn forget_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent): Path<String>,
) -> Result<StatusCode> {
    state.limits.check_write(&caller, Write::Room).await?;
    agents_only(&caller, "forget an agent")?;
    let agent = user_id(agent)?;
    match state.store.inbox().forget_agent(&agent).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(Error::NotFound("agent")),
    }
}

#[utoipa::path(
    get,
    path = "/api/chat/inbox",
    tag = "inbox",
    summary = "The counts of the inbox's tabs: open conversations mine, unassigned and all, with their unread messages",
    description = "For polling: send the last `ETag` as `If-None-Match` and unchanged counts are a `304`.",
    params(("If-None-Match" = Option<String>, Header, description = "The `ETag` of the last answer")),
    responses(
        (status = 200, description = "The tabs' counts", body = InboxSummary,
            headers(("ETag" = String, description = "Changes whenever the counts may have"))),
        (status = 304, description = "Unchanged since the `ETag` given"),
        ReadErrors,
    ),
    security(("bearer" = []), ("access_token" = []), ("cookie" = [])),
)]
async fn summary(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response> {
    agents_only(&caller, "read the inbox's counts")?;
    // Every change to the counts is an event (a message, a read, a
    // conversation's): the listing's version covers them.
    let version = state.store.rooms_version(&caller).await?;
    let tagged = Tagged::new(&headers, &caller, "inbox", &version)?;
    if tagged.unchanged {
        return Ok(tagged.not_modified());
    }
    let summary = state.store.inbox().inbox_summary(&caller).await?;
    Ok(tagged.answer(Json(summary)))
}
