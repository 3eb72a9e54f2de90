//! `/api/chat/webhooks`: the endpoints the application is told what
//! happened at (admins): create, list, read, change, delete, rotate the
//! signing secret, and resume one whose retries gave up. Delivery itself is
//! `crate::webhooks`'.

use super::{AppState, Json, Path};
use crate::error::{BodyErrors, Error, ReadErrors, Result};
use crate::limits::Write;
use crate::model::{Caller, Timestamp};
use crate::store::{NewWebhook, Webhook, WebhookChange, WebhookState};
use crate::webhooks::endpoints::{self, UrlRules};
use crate::webhooks::signing;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(resume_webhook))
}

/// An endpoint as admins see it. The secret is only in the answers that
/// make one (creation and rotation): it is shown once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct WebhookView {
    id: String,
    url: String,
    event_types: Vec<String>,
    /// The rooms it is told about; `null`: every room.
    room_ids: Option<Vec<String>>,
    state: WebhookState,
    /// The last event of the log it acknowledged.
    event_cursor: i64,
    /// The last unseen notice it acknowledged.
    notice_cursor: i64,
    /// Since when the delivery now due has failed, if it has.
    failing_since: Option<Timestamp>,
    /// Failed attempts at the delivery now due.
    attempts: i64,
    last_error: Option<String>,
    delivered_at: Option<Timestamp>,
    /// Until when deliveries are signed with the secret before the last rotation too.
    previous_secret_until: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
    /// `whsec_` and the base64 of the key: only when it was just made.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl WebhookView {
    fn of(hook: Webhook) -> Self {
        Self {
            id: hook.id,
            url: hook.url,
            event_types: hook.event_types,
            room_ids: hook.room_ids,
            state: hook.state,
            event_cursor: hook.cursors.event,
            notice_cursor: hook.cursors.notice,
            failing_since: hook.failing_since,
            attempts: hook.attempts,
            last_error: hook.last_error,
            delivered_at: hook.delivered_at,
            previous_secret_until: hook.previous_secret.map(|(_, until)| until),
            created_at: hook.created_at,
            updated_at: hook.updated_at,
            secret: None,
        }
    }

    fn with_secret(hook: Webhook) -> Self {
        let secret = hook.secret.clone();
        Self {
            secret: Some(secret),
            ..Self::of(hook)
        }
    }
}

#[derive(Serialize, ToSchema)]
struct WebhookList {
    webhooks: Vec<WebhookView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewWebhookBody {
    /// Where deliveries are POSTed: https (http outside production), not
    /// an internal address unless `webhook_allow_internal_addresses`.
    // The pattern is the shape; `endpoints::check_url` checks more.
    #[schema(
        example = "https://app.example.com/hooks/chat",
        max_length = 2048,
        pattern = r"^https?://[^\s/?#@]+(/\S*)?$"
    )]
    url: String,
    #[schema(schema_with = event_types_schema)]
    event_types: Vec<String>,
    /// Only these rooms' events; left out or `null`: every room.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 1000)]
    room_ids: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WebhookPatch {
    #[schema(max_length = 2048, pattern = r"^https?://[^\s/?#@]+(/\S*)?$")]
    url: Option<String>,
    #[schema(schema_with = event_types_schema)]
    event_types: Option<Vec<String>>,
    /// `null`: every room again; left out: unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, nullable, min_items = 1, max_items = 1000)]
    room_ids: Option<Option<Vec<String>>>,
}

/// `eventTypes` in the OpenAPI document: the names there are, at least one.
fn event_types_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(endpoints::EVENT_TYPES)),
        )
        .min_items(Some(1))
        .description(Some(
            "Which events it is told of (see docs/webhooks.md), at least one.",
        ))
        .build()
}

/// A field that is present, `null` or not: `Some`, so that `null` differs
/// from absent (`None`, by `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

fn admins_only(caller: &Caller) -> Result<()> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(Error::forbidden(
            "forbidden",
            "only admins may manage webhooks",
        ))
    }
}

fn url_rules(state: &AppState) -> UrlRules {
    UrlRules {
        https_only: state.config.is_production(),
        allow_internal: state.config.webhook_allow_internal_addresses,
    }
}

fn new_secret() -> Result<String> {
    signing::new_secret().map_err(|e| Error::internal_from("no randomness for a secret", e))
}

#[utoipa::path(
    post,
    path = "/api/chat/webhooks",
    tag = "webhooks",
    summary = "Registers a webhook (admins): it is told of what happens from now on",
    description = "The answer carries the signing secret, once. Deliveries are signed as the \\
        Standard Webhooks specification says; see docs/webhooks.md.",
    request_body = NewWebhookBody,
    responses(
        (status = 201, description = "The new webhook, with its secret", body = WebhookView),
        ReadErrors,
        BodyErrors,
    ),
    security(("bearer" = [])),
)]
async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewWebhookBody>,
) -> Result<(StatusCode, Json<WebhookView>)> {
    admins_only(&caller)?;
    state.limits.check_write(&caller, Write::Room).await?;
    let new = NewWebhook {
        id: format!("wh_{}", uuid::Uuid::now_v7().simple()),
        url: endpoints::check_url(&body.url, url_rules(&state))?,
        event_types: endpoints::check_event_types(&body.event_types)?,
        room_ids: endpoints::check_room_ids(body.room_ids.as_deref())?,
        secret: new_secret()?,
    };
    let hook = state
        .store
        .webhooks()
        .create_webhook(&new, endpoints::MAX_WEBHOOKS)
        .await?;
    state.webhooks.changed();
    tracing::info!(webhook = %hook.id, "created a webhook");
    Ok((StatusCode::CREATED, Json(WebhookView::with_secret(hook))))
}

#[utoipa::path(
    get,
    path = "/api/chat/webhooks",
    tag = "webhooks",
    summary = "Every webhook, with its delivery state (admins)",
    responses((status = 200, description = "The webhooks, oldest first", body = WebhookList), ReadErrors),
    security(("bearer" = [])),
)]
async fn list_webhooks(State(state): State<AppState>, caller: Caller) -> Result<Json<WebhookList>> {
    admins_only(&caller)?;
    let webhooks = state.store.webhooks().webhooks().await?;
    Ok(Json(WebhookList {
        webhooks: webhooks.into_iter().map(WebhookView::of).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/api/chat/webhooks/{webhook_id}",
    tag = "webhooks",
    summary = "One webhook, with its delivery state (admins)",
    params(("webhook_id" = String, Path)),
    responses((status = 200, description = "The webhook", body = WebhookView), ReadErrors),
    security(("bearer" = [])),
)]
async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>> {
    admins_only(&caller)?;
    let hook = state.store.webhooks().webhook(&id).await?;
    Ok(Json(WebhookView::of(hook)))
}

#[utoipa::path(
    patch,
    path = "/api/chat/webhooks/{webhook_id}",
    tag = "webhooks",
    summary = "Changes a webhook's URL, event types or rooms (admins)",
    description = "Its cursors stay: it goes on from where it is, with the new settings.",
    params(("webhook_id" = String, Path)),
    request_body = WebhookPatch,
    responses((status = 200, description = "The webhook", body = WebhookView), ReadErrors, BodyErrors),
    security(("bearer" = [])),
)]
async fn update_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(patch): Json<WebhookPatch>,
) -> Result<Json<WebhookView>> {
    admins_only(&caller)?;
    state.limits.check_write(&caller, Write::Room).await?;
    let change = WebhookChange {
        url: patch
            .url
            .as_deref()
            .map(|url| endpoints::check_url(url, url_rules(&state)))
            .transpose()?,
        event_types: patch
            .event_types
            .as_deref()
            .map(endpoints::check_event_types)
            .transpose()?,
        room_ids: patch
            .room_ids
            .map(|rooms| endpoints::check_room_ids(rooms.as_deref()))
            .transpose()?,
    };
    let hook = state.store.webhooks().update_webhook(&id, &change).await?;
    state.webhooks.changed();
    Ok(Json(WebhookView::of(hook)))
}

#[utoipa::path(
    delete,
    path = "/api/chat/webhooks/{webhook_id}",
    tag = "webhooks",
    summary = "Deletes a webhook (admins): nothing more is delivered to it",
    params(("webhook_id" = String, Path)),
    responses((status = 204, description = "Deleted"), ReadErrors),
    security(("bearer" = [])),
)]
async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    admins_only(&caller)?;
    state.limits.check_write(&caller, Write::Room).await?;
    state.store.webhooks().delete_webhook(&id).await?;
    state.webhooks.changed();
    tracing::info!(webhook = %id, "deleted a webhook");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/chat/webhooks/{webhook_id}/secret",
    tag = "webhooks",
    summary = "Rotates a webhook's signing secret (admins); the answer carries the new one, once",
    description = "For `webhook_secret_grace` (24 h by default) deliveries carry a signature \\
        with the old secret too, so receivers can switch without refusing one.",
    params(("webhook_id" = String, Path)),
    responses((status = 200, description = "The webhook, with its new secret", body = WebhookView), ReadErrors),
    security(("bearer" = [])),
)]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>> {
    admins_only(&caller)?;
    state.limits.check_write(&caller, Write::Room).await?;
    let grace = i64::try_from(state.config.webhook_secret_grace.0.as_millis()).unwrap_or(i64::MAX);
    let until = Timestamp::from_unix_ms(Timestamp::now().unix_ms().saturating_add(grace));
    let hook = state
        .store
        .webhooks()
        .rotate_webhook_secret(&id, &new_secret()?, until)
        .await?;
    state.webhooks.changed();
    tracing::info!(webhook = %id, "rotated a webhook's secret");
    Ok(Json(WebhookView::with_secret(hook)))
}

#[utoipa::path(
    post,
    path = "/api/chat/webhooks/{webhook_id}/resume",
    tag = "webhooks",
    summary = "Delivers to a failing webhook again, from where it stopped (admins)",
    params(("webhook_id" = String, Path)),
    responses((status = 200, description = "The webhook, active", body = WebhookView), ReadErrors),
    security(("bearer" = [])),
)]
async fn resume_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>> {
    admins_only(&caller)?;
    state.limits.check_write(&caller, Write::Room).await?;
    let hook = state.store.webhooks().resume_webhook(&id).await?;
    state.webhooks.changed();
    tracing::info!(webhook = %id, "resumed a webhook");
    Ok(Json(WebhookView::of(hook)))
}
