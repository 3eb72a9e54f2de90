//! A stream's life and the server's: graceful shutdown ends every stream
//! cleanly and finishes writes, and connecting and disconnecting leaves
//! nothing behind.

use crate::support::{
    Backend, EventStream, ServerProcess, TestApp, WAIT, admin, on_both_stores,
    raise_open_file_limit,
};
use chat_server::model::{Caller, Role, RoomId, UserId};
use chat_server::store::{self, MessageRange, StoreOptions};
use figment::providers::Serialized;
use futures::StreamExt;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

on_both_stores!(
    sigterm_ends_a_thousand_streams_cleanly_finishes_the_write_and_exits_0,
    ten_thousand_connect_disconnect_cycles_leave_nothing_behind,
);

const LOOSE_LIMITS: [(&str, &str); 5] = [
    ("CHAT_STREAM_MAX_PER_USER", "100000"),
    ("CHAT_STREAM_RATE_PER_USER", "100000"),
    ("CHAT_STREAM_BURST_PER_USER", "100000"),
    ("CHAT_STREAM_RATE_PER_IP", "100000"),
    ("CHAT_STREAM_BURST_PER_IP", "100000"),
];

async fn sigterm_ends_a_thousand_streams_cleanly_finishes_the_write_and_exits_0(backend: Backend) {
    raise_open_file_limit();
    let mut env = LOOSE_LIMITS.to_vec();
    env.extend([
        ("CHAT_SHUTDOWN_SPREAD", "1s"),
        ("CHAT_SHUTDOWN_DEADLINE", "10s"),
    ]);
    let mut server = ServerProcess::start(&backend, &env).await;
    let http = reqwest::Client::new();
    let boss = admin("boss");
    let (status, room) = crate::support::send(
        http.post(server.url("/api/chat/rooms"))
            .bearer_auth(&boss)
            .json(&json!({"name": "shutdown"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let room = room["id"].as_str().unwrap().to_owned();

    let mut streams = Vec::new();
    for _ in 0..10 {
        let batch = join_all((0..100).map(|_| {
            http.get(server.url("/api/chat/sse"))
                .bearer_auth(&boss)
                .send()
        }))
        .await;
        for response in batch {
            let response = response.expect("a stream opens");
            assert_eq!(response.status(), StatusCode::OK);
            streams.push(EventStream::new(response));
        }
    }

    let write = tokio::spawn({
        let request = http
            .post(server.url(&format!("/api/chat/rooms/{room}/messages")))
            .bearer_auth(&boss)
            .json(&json!({"body": "in flight", "clientId": "last-words"}));
        async move { request.send().await }
    });
    let signalled = Instant::now();
    server.terminate();

    // Every stream ends with the end of its body, not a reset.
    join_all(
        streams
            .iter_mut()
            .map(|stream| async move { while stream.next_any().await.is_some() {} }),
    )
    .await;
    let status = server.wait_for_exit(Duration::from_secs(12)).await;
    assert!(status.success(), "exit status {status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "within the deadline"
    );

    // The write was either committed and acknowledged, or refused and absent.
    let acknowledged = match write.await.unwrap() {
        Ok(response) if response.status() == StatusCode::CREATED => true,
        Ok(response) => {
            assert!(response.status().is_server_error(), "{}", response.status());
            false
        }
        Err(_) => false,
    };
    let wake = Default::default();
    let store = store::open(
        &StoreOptions {
            url: server.database_url.clone(),
            max_connections: 1,
            acquire_timeout: WAIT,
            search_language: "simple".to_owned(),
        },
        wake,
    )
    .await
    .unwrap();
    let caller = Caller {
        id: UserId::parse("boss").unwrap(),
        role: Role::Admin,
    };
    let stored = store
        .messages(
            &caller,
            &RoomId::parse(&room).unwrap(),
            MessageRange::Newest,
            10,
        )
        .await
        .unwrap();
    assert_eq!(stored.messages.len(), usize::from(acknowledged));
}

async fn ten_thousand_connect_disconnect_cycles_leave_nothing_behind(backend: Backend) {
    raise_open_file_limit();
    let app = TestApp::spawn_with(backend, |figment| {
        LOOSE_LIMITS
            .iter()
            .fold(figment, |figment, (name, value)| {
                let key = name.trim_start_matches("CHAT_").to_lowercase();
                figment.merge(Serialized::default(&key, value.parse::<u64>().unwrap()))
            })
            .merge(Serialized::default("heartbeat_interval", "100ms"))
    })
    .await;
    let boss = admin("boss");
    let room = app.create_room(&boss, "churn", &[]).await;
    let baseline = app.state.hub.stats();

    // Spread the client side over several source addresses: each closed
    // connection leaves a port in TIME_WAIT.
    let clients: Vec<reqwest::Client> = (2..=6)
        .map(|host| {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 0, host]))
                .build()
                .unwrap()
        })
        .collect();
    let cycles = 10_000;
    let concurrency = 50;
    futures::stream::iter(0..cycles)
        .for_each_concurrent(concurrency, |cycle| {
            let client = &clients[cycle % clients.len()];
            let query = if cycle % 2 == 0 {
                String::new()
            } else {
                format!("?roomId={room}")
            };
            let url = app.url(&format!("/api/chat/sse{query}"));
            let boss = &boss;
            async move {
                let response = client.get(url).bearer_auth(boss).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let mut body = response.bytes_stream();
                // The first frame arrives, then the client goes away.
                let first = body.next().await.unwrap().unwrap();
                assert!(first.starts_with(b"retry:"));
            }
        })
        .await;

    // Disconnects are noticed at the latest by the next heartbeat write.
    let started = Instant::now();
    loop {
        let now = app.state.hub.stats();
        let settled = now.open_streams == baseline.open_streams
            && now.subscribers == baseline.subscribers
            && now.users_with_streams == baseline.users_with_streams;
        if settled {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "still held after {cycles} cycles: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And the server still serves.
    let mut stream = app.stream(&format!("?roomId={room}"), &boss).await;
    app.send(&boss, &room, "still here").await;
    assert_eq!(
        stream.expect("message").await.data["message"]["body"],
        "still here"
    );
}
