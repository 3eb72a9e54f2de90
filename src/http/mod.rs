//! The HTTP API: one module per resource, each with its own `router()`, merged
//! here with the fallbacks that keep even unknown routes answering in JSON.

mod attachments;
mod etag;
mod events;
mod extract;
mod health;
mod inbox;
mod messages;
mod metrics;
mod openapi;
mod pages;
mod presence;
mod rooms;
mod search;
mod streams;
mod typing;
mod users;
mod webhooks;

pub use extract::{Json, Path, Query};

use crate::attachments::Attachments;
use crate::auth::Auth;
use crate::config::{Config, Environment};
use crate::erasure::Erasures;
use crate::error::{Error, Result};
use crate::events::Hub;
use crate::inbox::Inbox;
use crate::limits::Limits;
use crate::model::{AttachmentId, MessageId, RoomId, UserId};
use crate::store::Store;
use crate::webhooks::Webhooks;
use axum::Router;
use axum::extract::FromRef;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;

/// What every handler may reach.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub auth: Arc<Auth>,
    pub config: Arc<Config>,
    pub hub: Arc<Hub>,
    pub limits: Arc<Limits>,
    /// The webhooks' dispatcher, told when an endpoint changes.
    pub webhooks: Arc<Webhooks>,
    /// The erasure worker, told when a job is asked for.
    pub erasures: Arc<Erasures>,
    /// Learns agents; opens snoozed conversations when their time comes.
    pub inbox: Arc<Inbox>,
    /// Uploads, downloads and the cleanup of their blobs.
    pub attachments: Arc<Attachments>,
    /// Renders the process's metrics.
    pub metrics: PrometheusHandle,
    /// Turns true when shutdown begins: readiness fails, streams wind down.
    pub draining: watch::Receiver<bool>,
}

/// Every route of the API, without the middleware (see `app::router`).
/// `/metrics` is among them unless it is served on its own address, or it
/// would be public (without `metrics_token`, anywhere but a developer's own
/// machine: development on a loopback address).
pub fn api_router(config: &Config) -> Router<AppState> {
    let metrics_here = config.metrics_listen.is_none()
        && (config.metrics_token.is_some()
            || (config.env == Environment::Development && config.listens_on_loopback()));
    let api = OpenApiRouter::new()
        .merge(rooms::router())
        .merge(inbox::router())
        .merge(messages::router())
        .merge(attachments::router())
        .merge(search::router())
        .merge(typing::router())
        .merge(presence::router())
        .merge(users::router())
        .merge(webhooks::router())
        .merge(streams::router())
        .merge(events::router())
        .merge(pages::router())
        .merge(health::router());
    let api = if metrics_here {
        api.merge(metrics::router())
    } else {
        api
    };
    openapi::with_document(api)
        .fallback(|| async { Error::NotFound("route") })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
}

/// `/metrics` alone, for the `metrics_listen` address.
pub fn metrics_router() -> Router<AppState> {
    Router::from(metrics::router())
        .fallback(|| async { Error::NotFound("route") })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
}

/// A room id from the path: a malformed one is a 400, not a lookup.
fn room_id(raw: &str) -> Result<RoomId> {
    RoomId::parse(raw).map_err(|invalid| Error::bad_request(invalid.code, invalid.message))
}

/// A message id from the path.
fn message_id(raw: &str) -> Result<MessageId> {
    MessageId::parse(raw).map_err(|invalid| Error::bad_request(invalid.code, invalid.message))
}

/// An attachment id from the path.
fn attachment_id(raw: &str) -> Result<AttachmentId> {
    AttachmentId::parse(raw).map_err(|invalid| Error::bad_request(invalid.code, invalid.message))
}

/// A user id from the path.
fn user_id(raw: String) -> Result<UserId> {
    UserId::parse(raw).map_err(|invalid| Error::bad_request(invalid.code, invalid.message))
}

/// Checks a `limit` query parameter against its range, defaulting when absent.
fn limit(value: Option<i64>, default: u32, max: u32) -> Result<u32> {
    match value {
        None => Ok(default),
        Some(n) if n >= 1 && n <= i64::from(max) => Ok(n as u32),
        Some(n) => Err(Error::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {max}, got {n}"),
        )),
    }
}
