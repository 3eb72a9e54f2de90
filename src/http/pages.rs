//! The browser side, embedded in the binary: the `/admin` and `/widget` pages,
//! their scripts and styles, the client SDK at `/sdk/`, and the dev-only
//! token endpoint the pages sign in with.

use super::{AppState, Json};
use crate::error::{Error, Result};
use crate::model::{Role, UserId};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// Pages load nothing from elsewhere, and run no inline script.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| page(include_str!("../../web/admin.html"))))
        .route(
            "/widget",
            get(|| page(include_str!("../../web/widget.html"))),
        )
        .route(
            "/assets/chat.css",
            get(|| asset("text/css", include_str!("../../web/chat.css"))),
        )
        .route(
            "/assets/admin.js",
            get(|| asset("text/javascript", include_str!("../../web/admin.js"))),
        )
        .route(
            "/assets/widget.js",
            get(|| asset("text/javascript", include_str!("../../web/widget.js"))),
        )
        .route(
            "/assets/session.js",
            get(|| asset("text/javascript", include_str!("../../web/session.js"))),
        )
        .route(
            "/sdk/chat-client.js",
            get(|| {
                asset(
                    "text/javascript",
                    include_str!("../../web/sdk/chat-client.js"),
                )
            }),
        )
        .route(
            "/sdk/chat-client.d.ts",
            get(|| {
                asset(
                    "application/typescript",
                    include_str!("../../web/sdk/chat-client.d.ts"),
                )
            }),
        )
        .route("/api/dev/token", post(dev_token))
}

async fn page(html: &'static str) -> Response {
    let mut response = asset("text/html; charset=utf-8", html).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    // A page's address never travels to other sites.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct DevTokenRequest {
    sub: String,
    #[serde(default)]
    role: Role,
}

/// Development only (production refuses the setting): a token for anyone.
async fn dev_token(
    State(state): State<AppState>,
    Json(request): Json<DevTokenRequest>,
) -> Result<Json<Value>> {
    if !state.config.dev_token_endpoint {
        return Err(Error::NotFound("route"));
    }
    let user = UserId::parse(request.sub)?;
    let ttl = Duration::from_secs(3600);
    let token = state.auth.mint(&user, request.role, ttl)?;
    Ok(Json(json!({"token": token, "expiresIn": ttl.as_secs()})))
}
