//! Liveness and readiness: `/healthz` says the process serves; `/readyz` says
//! it can do its work (the store answers), for load balancers to route by.

use super::AppState;
use crate::error::ReadErrors;
use crate::error::{Error, Result};
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

#[derive(Serialize, ToSchema)]
struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    summary = "The process serves",
    responses((status = 200, description = "Alive", body = Health)),
)]
async fn healthz() -> super::Json<Health> {
    super::Json(Health { status: "ok" })
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    summary = "The process can do its work: the store answers, and it is not shutting down",
    responses((status = 200, description = "Ready", body = Health), ReadErrors),
)]
async fn readyz(State(state): State<AppState>) -> Result<super::Json<Health>> {
    if *state.draining.borrow() {
        return Err(Error::ShuttingDown);
    }
    state.store.ping().await?;
    Ok(super::Json(Health { status: "ready" }))
}
