//! `GET /api/chat/search`: messages found by their words, in the rooms the
//! caller may read, a page at a time, each with a snippet in text parts.

use super::{AppState, Json, Query, limit, room_id, user_id};
use crate::error::{ErrorBody, ReadErrors, Result};
use crate::limits::Write;
use crate::model::{Caller, Timestamp};
use crate::store::{
    MAX_SEARCH_PAGE, SearchCursor, SearchHit, SearchOrder, SearchRequest, SearchText,
};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const DEFAULT_LIMIT: u32 = 20;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct SearchParams {
    /// What to find, as typed (at most 200 characters): words (all must
    /// match), `"a phrase"`, `-word` (must not), `a or b`. The last word,
    /// unless a space follows it, also matches the start of a word.
    #[param(min_length = 1, max_length = 200)]
    q: String,
    /// Only this room's messages.
    room_id: Option<String>,
    /// Only this author's messages.
    author_id: Option<String>,
    /// Only messages written at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<Timestamp>,
    /// Only messages written before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<Timestamp>,
    /// `newest` first (the default), or the best matches first.
    #[param(inline)]
    sort: Option<SearchOrder>,
    #[param(minimum = 1, maximum = 50, default = 20)]
    limit: Option<i64>,
    /// The `next` of the previous page, with the same other parameters.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SearchResults {
    hits: Vec<SearchHit>,
    /// Ask again with this as `cursor` for the next page; none after the last.
    next: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/chat/search",
    tag = "search",
    summary = "Messages found by their words, in the rooms the caller may read",
    description = "Admins search every room; anyone else the rooms they are a member of now. \
                   Deleted messages and rooms are never found, and an edited message only by \
                   its words now. A snippet is plain text in parts: show each as text.",
    params(SearchParams),
    responses(
        (status = 200, description = "A page of hits", body = SearchResults),
        (status = 429, description = "Over the caller's search budget", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = []), ("access_token" = []), ("cookie" = [])),
)]
async fn search(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchResults>> {
    let request = SearchRequest {
        text: SearchText::parse(&params.q)?,
        room: params.room_id.as_deref().map(room_id).transpose()?,
        author: params.author_id.map(user_id).transpose()?,
        since: params.since,
        until: params.until,
        order: params.sort.unwrap_or_default(),
        limit: limit(params.limit, DEFAULT_LIMIT, MAX_SEARCH_PAGE)?,
        after: params
            .cursor
            .as_deref()
            .map(SearchCursor::decode)
            .transpose()?,
    };
    state.limits.check_write(&caller, Write::Search).await?;
    let page = state.store.search().search(&caller, &request).await?;
    Ok(Json(SearchResults {
        hits: page.hits,
        next: page.next.map(|cursor| cursor.encode()),
    }))
}
