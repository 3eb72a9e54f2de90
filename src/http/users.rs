//! Erasing what a person wrote, on request (admins): `DELETE
//! /api/chat/users/{userId}/messages` starts a job (every message becomes a
//! tombstone, streamed as `message_deleted`, and the records of the user's
//! presence go), and `GET /api/chat/erasures/{id}` follows it.

use super::{AppState, Json, Path, user_id};
use crate::error::{Error, ReadErrors, Result};
use crate::limits::Write;
use crate::model::{Caller, Timestamp, UserId};
use crate::store::{ErasureJob, ErasureState, Requested};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(erase_messages))
        .routes(routes!(erasure))
}

/// An erasure job, as an admin follows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Erasure {
    id: String,
    user_id: UserId,
    requested_by: UserId,
    state: ErasureState,
    /// The user's messages made tombstones so far (or removed from deleted
    /// rooms), counted exactly, also across restarts.
    erased: i64,
    created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<Timestamp>,
}

impl From<ErasureJob> for Erasure {
    fn from(job: ErasureJob) -> Self {
        Self {
            id: job.id,
            user_id: job.user_id,
            requested_by: job.requested_by,
            state: job.state,
            erased: job.erased,
            created_at: job.created_at,
            finished_at: job.finished_at,
        }
    }
}

fn admins_only(caller: &Caller) -> Result<()> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(Error::forbidden(
            "forbidden",
            "only admins may erase a user's messages or follow an erasure",
        ))
    }
}

#[utoipa::path(
    delete,
    path = "/api/chat/users/{user_id}/messages",
    tag = "rooms",
    summary = "Erases every message a user wrote (admins), as a job: tombstones, streamed as message_deleted",
    description = "Answers at once: 202 with the job (`Location` names it), which runs in the \\
        background on one instance, erase_batch messages to a transaction, resumes after a crash \\
        or a restart, and ends only when none of the user's messages is left in any room; then \\
        their presence records and unseen notices go too. Bodies are gone from the store and \\
        the log; seqs stay. Asking again while it runs answers the same job; asking once it is \\
        done answers it with 200 if nothing of the user's came since, else starts a new one.",
    params(("user_id" = String, Path, description = "The user, as their token's `sub` names them")),
    responses(
        (status = 202, description = "The job, running", body = Erasure,
            headers(("Location" = String, description = "The job's address"))),
        (status = 200, description = "The user's last job: done, with nothing left since", body = Erasure),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
async fn erase_messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> Result<Response> {
    admins_only(&caller)?;
    state.limits.check_write(&caller, Write::Member).await?;
    let user = user_id(user)?;
    let requested = state
        .store
        .erasures()
        .request_erasure(&caller.id, &user)
        .await?;
    let (status, job) = match requested {
        Requested::Running(job) => (StatusCode::ACCEPTED, job),
        Requested::AlreadyDone(job) => (StatusCode::OK, job),
    };
    if status == StatusCode::ACCEPTED {
        state.erasures.requested();
        tracing::info!(
            user = user.as_str(),
            job = job.id.as_str(),
            "erasing a user's messages"
        );
    }
    let location = HeaderValue::try_from(format!("/api/chat/erasures/{}", job.id))
        .map_err(|e| Error::internal_from("could not name a job", e))?;
    Ok((
        status,
        [(header::LOCATION, location)],
        Json(Erasure::from(job)),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/chat/erasures/{erasure_id}",
    tag = "rooms",
    summary = "An erasure job: its state and how many messages it erased (admins)",
    params(("erasure_id" = String, Path, description = "The job's id, as the erasure's answer gave it", pattern = r"^er_[0-9a-f]{32}$")),
    responses((status = 200, description = "The job", body = Erasure), ReadErrors),
    security(("bearer" = [])),
)]
async fn erasure(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Erasure>> {
    admins_only(&caller)?;
    // Only an id we could have made is looked up.
    let ours = id.strip_prefix("er_").is_some_and(|hex| {
        hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    if !ours {
        return Err(Error::NotFound("erasure"));
    }
    let job = state.store.erasures().erasure(&id).await?;
    Ok(Json(Erasure::from(job)))
}
