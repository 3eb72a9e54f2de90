//! `GET /metrics`: the Prometheus scrape. On the API's own listener it is
//! served only behind `metrics_token` (or in development); `metrics_listen`
//! serves it on a separate, private address instead.

use super::AppState;
use crate::error::ReadErrors;
use crate::error::{Error, Result};
use crate::metrics::{self, CONVERSATIONS, DB_CONNECTIONS, DB_CONNECTIONS_MAX, RELAY_LAG};
use crate::model::ConversationStatus;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(scrape))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Metrics in the Prometheus text format",
    responses(
        (status = 200, description = "Every metric", content_type = "text/plain", body = String),
        ReadErrors,
    ),
    security((), ("metrics_token" = [])),
)]
async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    if let Some(token) = &state.config.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Compared as digests: the time taken says nothing about the token.
        if Sha256::digest(given.trim()) != Sha256::digest(token.expose()) {
            return Err(Error::Unauthorized {
                token_given: !given.is_empty(),
                message: "metrics need `Authorization: Bearer <metrics_token>`".into(),
            });
        }
    }
    record_scrape_time_figures(&state).await;
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Figures nobody counts as they happen: read now.
async fn record_scrape_time_figures(state: &AppState) {
    let pool = state.store.pool_stats();
    ::metrics::gauge!(DB_CONNECTIONS, "state" => "in_use").set(pool.open.saturating_sub(pool.idle));
    ::metrics::gauge!(DB_CONNECTIONS, "state" => "idle").set(pool.idle);
    ::metrics::gauge!(DB_CONNECTIONS_MAX).set(pool.max);
    if let Ok(bounds) = state.store.event_bounds().await {
        let relayed = state.hub.stats().relayed_event_id;
        ::metrics::gauge!(RELAY_LAG).set((bounds.newest - relayed).max(0) as f64);
    }
    if let Ok(counts) = state.store.inbox().unresolved_counts().await {
        for status in [
            ConversationStatus::Open,
            ConversationStatus::Pending,
            ConversationStatus::Snoozed,
        ] {
            let count = counts
                .iter()
                .find_map(|(counted, count)| (*counted == status).then_some(*count))
                .unwrap_or(0);
            ::metrics::gauge!(CONVERSATIONS, "status" => status.as_str()).set(count as f64);
        }
    }
    metrics::record_process();
}
