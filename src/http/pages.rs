//! The browser side, embedded in the binary: the `/admin` and `/widget` pages,
//! their scripts and styles, the client SDK at `/sdk/`, and the dev-only
//! token endpoint the pages sign in with.

use super::{AppState, Json};
use crate::error::{BodyErrors, Error, ReadErrors, Result};
use crate::model::{Role, UserId};
use crate::origin::{self, Initiator};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Pages load nothing from elsewhere, and run no inline script.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'";

/// A module of the client SDK, by its path in `web/sdk/`: (route, content
/// type, content).
macro_rules! sdk_module {
    ($path:literal) => {
        (
            concat!("/sdk/", $path),
            "text/javascript",
            include_str!(concat!("../../web/sdk/", $path)),
        )
    };
}

/// The client SDK as its package ships it: the entry the pages import, the
/// modules it imports in turn (one concern each, under `/sdk/src/`), and
/// its types. A module added to `web/sdk/src/` is added here too; the pages
/// test checks that each one is served.
const SDK: &[(&str, &str, &str)] = &[
    sdk_module!("chat-client.js"),
    sdk_module!("src/api.js"),
    sdk_module!("src/attachments.js"),
    sdk_module!("src/common.js"),
    sdk_module!("src/lifecycle.js"),
    sdk_module!("src/messages.js"),
    sdk_module!("src/polling.js"),
    sdk_module!("src/presence.js"),
    sdk_module!("src/rooms.js"),
    sdk_module!("src/search.js"),
    sdk_module!("src/sse.js"),
    sdk_module!("src/stream.js"),
    sdk_module!("src/tabs.js"),
    sdk_module!("src/typing.js"),
    sdk_module!("src/unread.js"),
    (
        "/sdk/chat-client.d.ts",
        "application/typescript",
        include_str!("../../web/sdk/types/chat-client.d.ts"),
    ),
];

/// The pages and files are not in the OpenAPI document: they are not API.
pub fn router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new();
    for &(path, content_type, body) in SDK {
        router = router.route(path, get(move || asset(content_type, body)));
    }
    router
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
            "/assets/conversation.js",
            get(|| asset("text/javascript", include_str!("../../web/conversation.js"))),
        )
        .route(
            "/assets/search.js",
            get(|| asset("text/javascript", include_str!("../../web/search.js"))),
        )
        .routes(routes!(dev_token))
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

#[derive(Deserialize, ToSchema)]
struct DevTokenRequest {
    /// The user to sign for.
    #[schema(min_length = 1, max_length = 128)]
    sub: String,
    #[serde(default)]
    role: Role,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DevToken {
    token: String,
    /// Seconds.
    expires_in: u64,
}

/// Development only (production refuses the setting): a token for anyone.
#[utoipa::path(
    post,
    path = "/api/dev/token",
    tag = "development",
    summary = "Signs a token for any user (development only; 404 in production)",
    description = "For this server's own pages: a request from a page of any other origin \
        (`Origin`, or `Sec-Fetch-Site: cross-site`), or sent to a name other than a loopback \
        one (`Host`: DNS rebinding), answers 403 `cross_site_request`.",
    request_body = DevTokenRequest,
    responses((status = 200, description = "A token valid for an hour", body = DevToken), ReadErrors, BodyErrors),
)]
async fn dev_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<DevTokenRequest>,
) -> Result<Json<DevToken>> {
    if !state.config.dev_token_endpoint {
        return Err(Error::NotFound("route"));
    }
    // For our own pages (and curl) only, not even allowed origins, and by a
    // loopback name: any page a developer visits could otherwise mint an
    // admin token from their local server, whose address every page knows,
    // or re-point a name of its own at 127.0.0.1 and be "same-origin" with us.
    let initiator = Initiator::of(&headers, &state.config.cors_allowed_origins);
    if !matches!(initiator, Initiator::SameOrigin | Initiator::NoPage)
        || !origin::addressed_to_loopback(&headers)
    {
        return Err(Error::forbidden(
            "cross_site_request",
            "development tokens are for this server's own pages, reached at a loopback \
             address: this request comes from another origin or names another host",
        ));
    }
    let user = UserId::parse(request.sub)?;
    let ttl = Duration::from_secs(3600);
    let token = state.auth.mint(&user, request.role, ttl)?;
    Ok(Json(DevToken {
        token,
        expires_in: ttl.as_secs(),
    }))
}
