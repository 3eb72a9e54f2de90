//! The pages and the SDK are served from the binary with their types and a
//! strict content policy; the dev token endpoint exists only in development.

use crate::support::{Backend, TestApp, assert_error, on_both_stores, send};
use figment::providers::Serialized;
use reqwest::StatusCode;
use serde_json::json;

on_both_stores!(
    pages_and_the_sdk_are_served_from_the_binary,
    the_dev_token_endpoint_signs_in_development_and_does_not_exist_in_production,
    no_page_of_another_origin_gets_a_development_token_or_a_cors_grant,
);

async fn pages_and_the_sdk_are_served_from_the_binary(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (path, content_type, contains) in [
        ("/admin", "text/html; charset=utf-8", "/assets/admin.js"),
        ("/widget", "text/html; charset=utf-8", "/assets/widget.js"),
        // The entry re-exports the modules, which hold the code.
        (
            "/sdk/chat-client.js",
            "text/javascript",
            "export { ChatStream } from './src/stream.js';",
        ),
        (
            "/sdk/src/stream.js",
            "text/javascript",
            "export class ChatStream",
        ),
        (
            "/sdk/chat-client.d.ts",
            "application/typescript",
            "export declare class ChatStream",
        ),
        ("/assets/chat.css", "text/css", ".pill"),
        // A module the admin page imports by its path.
        (
            "/assets/search.js",
            "text/javascript",
            "export class SearchPanel",
        ),
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
        if path == "/admin" || path == "/widget" {
            let policy = response.headers()["content-security-policy"]
                .to_str()
                .unwrap();
            assert!(policy.contains("default-src 'self'") && policy.contains("script-src 'self'"));
        }
        assert!(response.text().await.unwrap().contains(contains), "{path}");
    }
}

/// The SDK is several modules that its entry imports by relative path: the
/// binary serves each of them at `/sdk/src/`, as they are in `web/sdk/src/`,
/// so that a page importing `/sdk/chat-client.js` loads all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_module_of_the_sdk_is_served_as_it_is_in_the_package() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/sdk");
    let mut modules: Vec<String> = std::fs::read_dir(sdk.join("src"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".js"))
        .map(|name| format!("src/{name}"))
        .collect();
    assert!(!modules.is_empty());
    modules.push("chat-client.js".into());
    for module in modules {
        let path = format!("/sdk/{module}");
        let response = app.http.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/javascript",
            "{path}"
        );
        assert_eq!(response.headers()["cache-control"], "no-cache", "{path}");
        let served = response.text().await.unwrap();
        let shipped = std::fs::read_to_string(sdk.join(&module)).unwrap();
        assert!(served == shipped, "{path} is not web/sdk/{module}");
    }
}

async fn the_dev_token_endpoint_signs_in_development_and_does_not_exist_in_production(
    backend: Backend,
) {
    let development = TestApp::spawn(backend.clone()).await;
    let (status, answer) = send(
        development
            .http
            .post(development.url("/api/dev/token"))
            .json(&json!({"sub": "agent", "role": "admin"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let token = answer["token"].as_str().unwrap();
    let (status, rooms) = development.get("/api/chat/rooms", token).await;
    assert_eq!(status, StatusCode::OK, "{rooms}");

    let production = TestApp::spawn_with(backend, |figment| {
        figment
            .merge(Serialized::default("env", "production"))
            .merge(Serialized::default("attachment_dir", "attachments"))
            .merge(Serialized::default("jwt_issuer", "https://auth.example"))
            .merge(Serialized::default("jwt_audience", "chat"))
            .merge(Serialized::default("dev_token_endpoint", false))
    })
    .await;
    let refused = send(
        production
            .http
            .post(production.url("/api/dev/token"))
            .json(&json!({"sub": "agent", "role": "admin"})),
    )
    .await;
    assert_error(refused, StatusCode::NOT_FOUND, "not_found");
}

/// The hostile review's probe: a preflight from `https://evil.example` was
/// granted with credentials (`very_permissive`), and then the page read an
/// admin token off `POST /api/dev/token`. Loopback-only did not help: the
/// developer's own browser is on loopback.
async fn no_page_of_another_origin_gets_a_development_token_or_a_cors_grant(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(Serialized::default(
            "cors_allowed_origins",
            ["https://app.example.com"],
        ))
    })
    .await;
    let evil = "https://evil.example";
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/api/dev/token"))
        .header("origin", evil)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    for grant in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
    ] {
        assert!(!preflight.headers().contains_key(grant), "{grant}");
    }
    let mint = |headers: &[(&str, &str)]| {
        let mut request = app
            .http
            .post(app.url("/api/dev/token"))
            .json(&json!({"sub": "agent-1", "role": "admin"}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request)
    };
    let host = app.address.trim_start_matches("http://").to_owned();
    let own = app.address.clone();
    let rebound = "http://evil.example:8080";
    let foreign: [&[(&str, &str)]; 6] = [
        &[("origin", evil)],
        // DNS rebinding: evil.example re-pointed at 127.0.0.1 is
        // same-origin with us as far as the browser knows.
        &[
            ("origin", rebound),
            ("host", "evil.example:8080"),
            ("sec-fetch-site", "same-origin"),
        ],
        &[("origin", evil), ("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "cross-site")],
        &[("origin", "null")],
        // An allowed origin may call the API, but mints nothing.
        &[
            ("origin", "https://app.example.com"),
            ("sec-fetch-site", "cross-site"),
        ],
    ];
    for headers in foreign {
        let (status, body) = mint(headers).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}: {body}");
        assert_eq!(body["error"]["code"], "cross_site_request", "{headers:?}");
        assert!(body.get("token").is_none());
    }
    // Our own pages (Fetch Metadata, or Origin against Host), and clients
    // that are no page at all (curl, the SDK's tests under Node).
    let port = host.rsplit_once(':').unwrap().1.to_owned();
    let localhost = format!("localhost:{port}");
    let ours: [&[(&str, &str)]; 4] = [
        &[("origin", own.as_str()), ("sec-fetch-site", "same-origin")],
        &[
            ("host", localhost.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
        &[("origin", own.as_str()), ("host", host.as_str())],
        &[],
    ];
    for headers in ours {
        let (status, body) = mint(headers).await;
        assert_eq!(status, StatusCode::OK, "{headers:?}: {body}");
        assert!(body["token"].is_string());
    }
}
