//! Liveness and readiness: `/healthz` says the process serves; `/readyz` says
//! it can do its work (the store answers), for load balancers to route by.

use super::AppState;
use crate::error::{Error, Result};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> super::Json<Value> {
    super::Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Result<super::Json<Value>> {
    if *state.draining.borrow() {
        return Err(Error::ShuttingDown);
    }
    state.store.ping().await?;
    Ok(super::Json(json!({"status": "ready"})))
}
