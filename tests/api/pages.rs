//! The pages and the SDK are served from the binary with their types and a
//! strict content policy; the dev token endpoint exists only in development.

use crate::helpers::{Backend, TestApp, assert_error, on_both_stores, send};
use figment::providers::Serialized;
use reqwest::StatusCode;
use serde_json::json;

on_both_stores!(
    pages_and_the_sdk_are_served_from_the_binary,
    the_dev_token_endpoint_signs_in_development_and_does_not_exist_in_production,
);

async fn pages_and_the_sdk_are_served_from_the_binary(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (path, content_type, contains) in [
        ("/admin", "text/html; charset=utf-8", "/assets/admin.js"),
        ("/widget", "text/html; charset=utf-8", "/assets/widget.js"),
        (
            "/sdk/chat-client.js",
            "text/javascript",
            "export class ChatStream",
        ),
        (
            "/sdk/chat-client.d.ts",
            "application/typescript",
            "export declare class ChatStream",
        ),
        ("/assets/chat.css", "text/css", ".pill"),
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
            .merge(Serialized::default("jwt_issuer", "https://auth.example"))
            .merge(Serialized::default("jwt_audience", "chat"))
            .merge(Serialized::default("dev_cors_any_origin", false))
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
