//! `/metrics`: the figures an operator watches move as streams open, events
//! flow, streams resume and end; the endpoint is never public by accident.
//! Each test runs its own server process: the metrics recorder is process-wide.

use crate::support::{
    Backend, EventStream, Scrape, ServerProcess, WAIT, on_both_stores, send, user,
};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Instant;

on_both_stores!(
    metrics_follow_streams_events_resumes_and_requests,
    metrics_need_their_token_or_their_own_address,
);

async fn metrics_follow_streams_events_resumes_and_requests(backend: Backend) {
    let server = ServerProcess::start(&backend, &[("CHAT_DATABASE_MAX_CONNECTIONS", "7")]).await;
    let http = reqwest::Client::new();
    let ann = user("ann");
    let room = server.create_room(&ann, "metrics", &[]).await;
    let open = |last_event_id: Option<i64>| {
        let mut request = http
            .get(server.url(&format!("/api/chat/sse?roomId={room}")))
            .bearer_auth(&ann);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        request.send()
    };
    let mut live = EventStream::new(open(None).await.unwrap());
    for body in ["one", "two", "three"] {
        let (status, _) = server
            .post_message(&ann, &room, json!({"body": body}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let first = live.expect("message").await.id();
    live.expect("message").await;
    live.expect("message").await;

    let scrape = Scrape::of(&server, None).await;
    let streams = [("kind", "room"), ("role", "user")];
    assert_eq!(scrape.value("chat_streams_open", &streams), 1.0);
    assert_eq!(scrape.value("chat_streams_opened_total", &streams), 1.0);
    assert_eq!(scrape.value("chat_stream_events_sent_total", &[]), 3.0);
    let posts = [
        ("method", "POST"),
        ("route", "/api/chat/rooms/{room_id}/messages"),
        ("status", "201"),
    ];
    assert_eq!(scrape.value("http_requests_total", &posts), 3.0);
    let timed_posts = [("operation", "post_message"), ("outcome", "ok")];
    assert_eq!(
        scrape.value("chat_store_operation_duration_seconds_count", &timed_posts),
        3.0
    );
    assert_eq!(scrape.value("chat_db_connections_max", &[]), 7.0);
    assert!(scrape.value("process_resident_memory_bytes", &[]) > 1e6);
    assert!(scrape.value("process_open_fds", &[]) >= 3.0);
    assert_eq!(scrape.value("chat_relay_events_total", &[]), 4.0); // the room, three posts
    assert_eq!(scrape.value("chat_relay_lag_events", &[]), 0.0);
    if matches!(backend, Backend::Postgres(_)) {
        assert!(scrape.value("chat_relay_notifications_total", &[]) >= 1.0);
    }

    // A resume from the first message replays the two after it.
    let mut resumed = EventStream::new(open(Some(first)).await.unwrap());
    resumed.expect("message").await;
    resumed.expect("message").await;
    drop(live);
    drop(resumed);
    let started = Instant::now();
    let scrape = loop {
        let scrape = Scrape::of(&server, None).await;
        if scrape.value("chat_streams_open", &[]) == 0.0 {
            break scrape;
        }
        assert!(
            started.elapsed() < WAIT,
            "streams still open after {WAIT:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(scrape.value("chat_stream_resumes_total", &[]), 1.0);
    assert_eq!(scrape.value("chat_stream_events_replayed_total", &[]), 2.0);
    assert_eq!(scrape.value("chat_stream_events_sent_total", &[]), 5.0);
    assert_eq!(
        scrape.value("chat_streams_closed_total", &[("reason", "client_gone")]),
        2.0
    );
    // Scrapes are requests too (each counted after it answered).
    let scrapes = [("route", "/metrics"), ("status", "200")];
    assert!(scrape.value("http_requests_total", &scrapes) >= 1.0);
    // Each stream logged its end, with why and what it sent.
    let closed = server
        .wait_for_log(|line| line.contains("stream closed") && line.contains("replayed=2"))
        .await;
    assert!(closed.contains("reason=\"client_gone\"") || closed.contains("reason=client_gone"));
}

async fn metrics_need_their_token_or_their_own_address(backend: Backend) {
    let http = reqwest::Client::new();
    let token = "a-metrics-token-for-the-scraper";
    let guarded = ServerProcess::start(&backend, &[("CHAT_METRICS_TOKEN", token)]).await;
    let (status, body) = send(http.get(guarded.url("/metrics"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = send(http.get(guarded.url("/metrics")).bearer_auth("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    Scrape::of(&guarded, Some(token)).await;

    let port = crate::support::free_port();
    let own_address = format!("127.0.0.1:{port}");
    let apart = ServerProcess::start(&backend, &[("CHAT_METRICS_LISTEN", &own_address)]).await;
    let (status, _) = send(http.get(apart.url("/metrics"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not on the API's address");
    apart
        .wait_for_log(|line| line.contains("serving /metrics"))
        .await;
    let response = http
        .get(format!("http://{own_address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("process_open_fds"));

    // Production, with neither: not served at all.
    let files = tempfile::tempdir().unwrap();
    let production = ServerProcess::start(
        &backend,
        &[
            ("CHAT_ENV", "production"),
            // On PostgreSQL production asks where files go (see settings).
            ("CHAT_ATTACHMENT_DIR", files.path().to_str().unwrap()),
            ("CHAT_JWT_ISSUER", "https://auth.example"),
            ("CHAT_JWT_AUDIENCE", "chat"),
        ],
    )
    .await;
    let (status, _) = send(http.get(production.url("/metrics"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Development off a loopback address, with neither: not served either.
    let exposed = ServerProcess::start(
        &backend,
        &[
            ("CHAT_LISTEN", "0.0.0.0:0"),
            ("CHAT_DEV_CORS_ANY_ORIGIN", "false"),
            ("CHAT_DEV_TOKEN_ENDPOINT", "false"),
        ],
    )
    .await;
    let (status, _) = send(http.get(exposed.url("/metrics"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
