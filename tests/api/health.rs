//! Liveness and readiness answer without a token.

use crate::support::{Backend, TestApp, on_both_stores, send};
use reqwest::StatusCode;

on_both_stores!(health_and_readiness_answer_200_when_the_store_is_up);

async fn health_and_readiness_answer_200_when_the_store_is_up(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = send(app.http.get(app.url("/healthz"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(app.http.get(app.url("/readyz"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
}
