//! `GET /api/openapi.json`: the OpenAPI 3.1 document, generated from the
//! handlers' own annotations as the router is built, so a route cannot exist
//! without its description.

use super::AppState;
use crate::error::{ErrorBody, ErrorInfo};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use std::sync::Arc;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chat-server",
        description = "Rooms, messages and unread counts over JSON; live updates over Server-Sent Events. \
            Every error answers `{\"error\": {\"code\", \"message\"}}`.",
    ),
    components(schemas(ErrorBody, ErrorInfo)),
    modifiers(&Credentials),
    tags(
        (name = "rooms", description = "Rooms, membership and the listing fallback polling reads"),
        (name = "messages", description = "History, sending and read cursors"),
        (name = "search", description = "Messages found by their words, in the rooms the caller may read"),
        (name = "inbox", description = "Rooms as support conversations: their status, for agents (admins)"),
        (name = "streams", description = "Live updates (Server-Sent Events)"),
        (name = "webhooks", description = "Signed POSTs to the application, from the event log (admins)"),
        (name = "health", description = "For load balancers"),
        (name = "operations", description = "For operators"),
        (name = "development", description = "Development only"),
    ),
)]
pub struct ApiDoc;

/// How callers prove who they are.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let jwt = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "A JWT: `sub` is the user, `role` is `admin` or `user`",
            ))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(jwt));
        components.add_security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "access_token",
                "The JWT in the query string, for EventSource (reads only)",
            ))),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "chat_token",
                "The JWT in the `token_cookie` cookie (reads only)",
            ))),
        );
        let scrape = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("The `metrics_token` setting, when set"))
            .build();
        components.add_security_scheme("metrics_token", SecurityScheme::Http(scrape));
    }
}

/// The routes of `api`, described, plus the route that serves the description.
pub fn with_document(api: OpenApiRouter<AppState>) -> Router<AppState> {
    let (router, document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api)
        .routes(routes!(openapi_json))
        .split_for_parts();
    // Written once; the same bytes for every request.
    let json = document
        .to_json()
        .unwrap_or_else(|e| format!(r#"{{"error": "the document did not serialise: {e}"}}"#));
    router.layer(Extension(Document(json.into())))
}

#[derive(Clone)]
struct Document(Arc<str>);

#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
async fn openapi_json(Extension(Document(json)): Extension<Document>) -> Response {
    let content_type = HeaderValue::from_static("application/json");
    ([(header::CONTENT_TYPE, content_type)], json.to_string()).into_response()
}
