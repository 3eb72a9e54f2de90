//! `/api/openapi.json` is an OpenAPI 3.1 document of every API route, whose
//! every reference resolves. (Whether answers match it is schemathesis's
//! job, in `.ci/run`.)

use crate::support::{Backend, TestApp, on_both_stores};
use reqwest::StatusCode;
use serde_json::Value;

on_both_stores!(the_openapi_document_describes_every_route_and_its_errors);

async fn the_openapi_document_describes_every_route_and_its_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let operations = [
        ("/api/chat/rooms", "get"),
        ("/api/chat/rooms", "post"),
        ("/api/chat/rooms/{room_id}", "get"),
        ("/api/chat/rooms/{room_id}", "patch"),
        ("/api/chat/rooms/{room_id}", "delete"),
        ("/api/chat/rooms/{room_id}/conversation", "patch"),
        ("/api/chat/inbox", "get"),
        ("/api/chat/agents", "get"),
        ("/api/chat/agents/{user_id}", "delete"),
        ("/api/chat/rooms/{room_id}/members", "post"),
        ("/api/chat/rooms/{room_id}/members/{user_id}", "delete"),
        ("/api/chat/rooms/{room_id}/messages", "get"),
        ("/api/chat/search", "get"),
        ("/api/chat/rooms/{room_id}/messages", "post"),
        ("/api/chat/rooms/{room_id}/messages/{message_id}", "patch"),
        ("/api/chat/rooms/{room_id}/messages/{message_id}", "delete"),
        ("/api/chat/rooms/{room_id}/read", "post"),
        ("/api/chat/rooms/{room_id}/attachments", "post"),
        ("/api/chat/rooms/{room_id}/attachments/direct", "post"),
        ("/api/chat/attachments/{attachment_id}/complete", "post"),
        ("/api/chat/attachments/{attachment_id}", "get"),
        ("/api/chat/attachments/{attachment_id}/thumbnail", "get"),
        ("/api/chat/attachments/{attachment_id}/link", "get"),
        ("/api/chat/attachments/{attachment_id}/content", "get"),
        ("/api/chat/rooms/{room_id}/typing", "post"),
        ("/api/chat/events", "get"),
        ("/api/chat/presence", "get"),
        ("/api/chat/users/{user_id}/messages", "delete"),
        ("/api/chat/erasures/{erasure_id}", "get"),
        ("/api/chat/webhooks", "get"),
        ("/api/chat/webhooks", "post"),
        ("/api/chat/webhooks/{webhook_id}", "get"),
        ("/api/chat/webhooks/{webhook_id}", "patch"),
        ("/api/chat/webhooks/{webhook_id}", "delete"),
        ("/api/chat/webhooks/{webhook_id}/secret", "post"),
        ("/api/chat/webhooks/{webhook_id}/resume", "post"),
        ("/api/chat/sse", "get"),
        ("/api/chat/sse/stats", "get"),
        ("/api/dev/token", "post"),
        ("/api/openapi.json", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ];
    let paths = document["paths"].as_object().unwrap();
    let described: usize = paths
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(described, operations.len(), "{:?}", paths.keys());
    for (path, method) in operations {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} is described");
        if path.starts_with("/api/chat") {
            let error = &operation["responses"]["401"]["content"]["application/json"]["schema"];
            assert_eq!(
                error["$ref"], "#/components/schemas/ErrorBody",
                "{method} {path}"
            );
            assert!(
                operation["security"].is_array(),
                "{method} {path} needs a token"
            );
        }
    }
    // Every reference points at something the document holds.
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = reference.split('"').next().unwrap();
        let pointer = target.trim_start_matches('#');
        assert!(document.pointer(pointer).is_some(), "dangling {target}");
    }
}
