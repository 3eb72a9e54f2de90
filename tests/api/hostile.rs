//! Hostile clients and a failing database, against a real server process:
//! clients that trickle headers or bodies, reconnect storms, readers that
//! never read, oversized requests, connections cut in the middle of a post,
//! and PostgreSQL going away for ten seconds. The server keeps serving
//! everyone else, loses nothing it acknowledged, and recovers by itself.

use crate::support::throwaway_postgres::ThrowawayPostgres;
use crate::support::{
    Backend, EventStream, Scrape, ServerProcess, WAIT, admin, on_both_stores,
    raise_open_file_limit, send, user,
};
use futures::StreamExt;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

on_both_stores!(
    a_client_trickling_headers_or_a_body_is_cut_while_streams_live_on,
    a_reconnect_storm_is_limited_and_leaves_other_users_and_memory_alone,
    a_thousand_readers_that_never_read_cost_bounded_memory_and_slow_no_one,
    oversized_heads_and_bodies_get_a_4xx_and_the_server_serves_on,
    a_post_cut_off_midway_is_stored_and_streamed_whole_or_not_at_all,
    a_stream_whose_client_stopped_reading_is_cut_and_counted,
);

/// One figure of the server's `/metrics`: the sum of `name`'s series.
async fn figure(server: &ServerProcess, name: &str) -> f64 {
    Scrape::of(server, None).await.value(name, &[])
}

/// The server's address, for raw sockets.
fn socket_address(server: &ServerProcess) -> String {
    server.address.trim_start_matches("http://").to_owned()
}

/// Asks for a stream over a socket with a small receive buffer, then reads
/// nothing: the server's side of it fills up quickly.
async fn unread_stream(server: &ServerProcess, token: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket
        .connect(socket_address(server).parse().unwrap())
        .await
        .unwrap();
    let request =
        format!("GET /api/chat/sse HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Reads until the server closes the connection; what it sent.
async fn read_to_close(socket: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, socket.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the server did not close the connection within {WAIT:?}"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

async fn a_client_trickling_headers_or_a_body_is_cut_while_streams_live_on(backend: Backend) {
    let server = ServerProcess::start(
        &backend,
        &[
            ("CHAT_HEADER_TIMEOUT", "1s"),
            ("CHAT_REQUEST_TIMEOUT", "1s"),
            ("CHAT_HEARTBEAT_INTERVAL", "200ms"),
        ],
    )
    .await;
    // A stream opened first outlives both timeouts many times over.
    let mut stream = server.stream("", &user("ann")).await;

    // Slowloris: a header line every 300 ms, never the blank line.
    let mut slow = TcpStream::connect(socket_address(&server)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let trickle = async {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(WAIT, trickle).await;
    let cut_after = started.elapsed();
    assert!(
        cut_after >= Duration::from_millis(900) && cut_after < Duration::from_secs(5),
        "cut after {cut_after:?}, the header timeout is 1s"
    );

    // A body promised but trickled: 408 with a JSON error, then the close.
    let mut slow_body = TcpStream::connect(socket_address(&server)).await.unwrap();
    let head = format!(
        "POST /api/chat/rooms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        user("ann")
    );
    slow_body.write_all(head.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut slow_body).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    // A write cut short may yet take effect: the answer says so.
    assert!(answer.contains(r#""outcome":"unknown""#), "{answer}");

    // Three seconds on, the stream is still there and beating.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut beats = 0;
    while Instant::now() < deadline {
        let event = stream.next_any().await.expect("the stream lives on");
        if event.kind() == "heartbeat" {
            beats += 1;
        }
    }
    assert!(beats >= 10, "{beats} heartbeats in 3 s at 200 ms");
}

async fn a_reconnect_storm_is_limited_and_leaves_other_users_and_memory_alone(backend: Backend) {
    raise_open_file_limit();
    // A small pool, filled before the baseline: its connections are files too.
    let server = ServerProcess::start(&backend, &[("CHAT_DATABASE_MAX_CONNECTIONS", "2")]).await;
    let boss = admin("boss");
    let room = server.create_room(&boss, "storm", &[]).await;
    // A bystander, on an address of their own, streaming the room.
    let bystander = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let open = |client: &reqwest::Client, token: String| {
        client
            .get(server.url("/api/chat/sse"))
            .bearer_auth(token)
            .send()
    };
    let mut watching = EventStream::new(open(&bystander, boss.clone()).await.unwrap());
    // Warm up, then the baseline.
    for _ in 0..3 {
        drop(open(&bystander, user("warm-up")).await.unwrap());
    }
    join_all((0..10).map(|_| {
        send(
            bystander
                .get(server.url("/api/chat/rooms"))
                .bearer_auth(&boss),
        )
    }))
    .await;
    let memory_before = figure(&server, "process_resident_memory_bytes").await;
    let files_before = figure(&server, "process_open_fds").await;

    // 5,000 opens in a few seconds: one user from one address, then many
    // users from another address.
    let storm = |address: &'static str, token: Box<dyn Fn(usize) -> String + Send + Sync>| {
        let client = reqwest::Client::builder()
            .local_address(address.parse::<IpAddr>().unwrap())
            .build()
            .unwrap();
        let server = &server;
        async move {
            let statuses = futures::stream::iter(0..5_000)
                .map(|i| {
                    let request = client
                        .get(server.url("/api/chat/sse"))
                        .bearer_auth(token(i));
                    async move {
                        let response = request.send().await.unwrap();
                        let status = response.status();
                        if status == StatusCode::TOO_MANY_REQUESTS {
                            assert!(crate::support::retry_after(&response) >= 1);
                        }
                        status
                    }
                })
                .buffer_unordered(50)
                .collect::<Vec<_>>()
                .await;
            let refused = statuses
                .iter()
                .filter(|status| **status == StatusCode::TOO_MANY_REQUESTS)
                .count();
            let opened = statuses.iter().filter(|status| status.is_success()).count();
            (opened, refused)
        }
    };
    let started = Instant::now();
    let (one_user_opened, one_user_refused) =
        storm("127.0.0.3", Box::new(|_| user("stormy"))).await;
    let (one_ip_opened, one_ip_refused) =
        storm("127.0.0.4", Box::new(|i| user(&format!("crowd-{i}")))).await;
    let took = started.elapsed();
    assert_eq!(one_user_opened + one_user_refused, 5_000);
    assert_eq!(one_ip_opened + one_ip_refused, 5_000);
    // A burst of 30, then 10 a second, for one user; 300 and 100 a second per address.
    let seconds = took.as_secs_f64();
    assert!(
        (one_user_opened as f64) <= 30.0 + 10.0 * seconds + 1.0,
        "{one_user_opened} opened for one user in {took:?}"
    );
    assert!(
        (one_ip_opened as f64) <= 300.0 + 100.0 * seconds + 1.0,
        "{one_ip_opened} opened from one address in {took:?}"
    );

    // The bystander still opens streams and hears the room at once.
    let (status, _) = server
        .post_message(&boss, &room, json!({"body": "still here"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        watching.expect("message").await.data["message"]["body"],
        "still here"
    );
    let response = open(&bystander, user("latecomer")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);

    // Every stream of the storm is gone, and so is what it held.
    let started = Instant::now();
    loop {
        let files = figure(&server, "process_open_fds").await;
        let streams = figure(&server, "chat_streams_open").await;
        if files <= files_before + 2.0 && streams == 1.0 {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "{files} files open, {files_before} before"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let memory_after = figure(&server, "process_resident_memory_bytes").await;
    assert!(
        memory_after < memory_before + 32.0 * 1024.0 * 1024.0,
        "resident memory {memory_before} before the storm, {memory_after} after"
    );
}

async fn a_thousand_readers_that_never_read_cost_bounded_memory_and_slow_no_one(backend: Backend) {
    raise_open_file_limit();
    let server = ServerProcess::start(
        &backend,
        &[
            ("CHAT_STREAM_RATE_PER_IP", "100000"),
            ("CHAT_STREAM_BURST_PER_IP", "100000"),
        ],
    )
    .await;
    let boss = admin("boss");
    let room = server.create_room(&boss, "stalled", &[]).await;
    let memory_before = figure(&server, "process_resident_memory_bytes").await;

    // 1,000 streams whose clients send the request, then never read: small
    // receive buffers, so the server's side fills up quickly.
    let mut stalled = Vec::new();
    for chunk in (0..1_000).collect::<Vec<_>>().chunks(100) {
        let tokens: Vec<String> = chunk
            .iter()
            .map(|i| user(&format!("stalled-{i}")))
            .collect();
        stalled.extend(join_all(tokens.iter().map(|token| unread_stream(&server, token))).await);
    }
    // Every stalled user is in the room, so every message is for them.
    let ids: Vec<String> = (0..1_000).map(|i| format!("stalled-{i}")).collect();
    for chunk in ids.chunks(100) {
        for id in chunk {
            let (status, _) = send(
                reqwest::Client::new()
                    .post(server.url(&format!("/api/chat/rooms/{room}/members")))
                    .bearer_auth(&boss)
                    .json(&json!({"userId": id})),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    let mut live = server.stream(&format!("?roomId={room}"), &boss).await;

    // 2 MB of messages flow; the live reader gets each one, in order.
    let body = "x".repeat(2_000);
    let mut slowest = Duration::ZERO;
    for i in 0..1_000 {
        let sent = Instant::now();
        let (status, message) = server
            .post_message(&boss, &room, json!({"body": format!("{i} {body}")}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{message}");
        let event = live.expect("message").await;
        assert_eq!(event.data["message"]["seq"], message["seq"]);
        slowest = slowest.max(sent.elapsed());
    }
    // Generous: this bounds a stall, not speed (that is for the benchmarks).
    assert!(
        slowest < Duration::from_secs(2),
        "a live reader waited {slowest:?}"
    );

    let memory_after = figure(&server, "process_resident_memory_bytes").await;
    let grown = (memory_after - memory_before) / 1024.0 / 1024.0;
    // Each stalled stream holds shared frames and its connection's buffers,
    // never its own copy of the backlog: 1,000 of them × 2 MB would be 2 GB.
    assert!(grown < 96.0, "resident memory grew by {grown:.0} MiB");
    drop(stalled);
}

async fn oversized_heads_and_bodies_get_a_4xx_and_the_server_serves_on(backend: Backend) {
    let server = ServerProcess::start(&backend, &[]).await;
    let http = reqwest::Client::new();
    let ann = user("ann");
    let room = server.create_room(&ann, "sizes", &[]).await;
    let routes = [
        ("GET", "/api/chat/rooms".to_owned()),
        ("POST", "/api/chat/rooms".to_owned()),
        ("GET", format!("/api/chat/rooms/{room}")),
        ("POST", format!("/api/chat/rooms/{room}/members")),
        ("DELETE", format!("/api/chat/rooms/{room}/members/bob")),
        ("GET", format!("/api/chat/rooms/{room}/messages")),
        ("POST", format!("/api/chat/rooms/{room}/messages")),
        ("POST", format!("/api/chat/rooms/{room}/read")),
        ("GET", "/api/chat/sse".to_owned()),
        ("GET", "/api/chat/sse/stats".to_owned()),
        ("POST", "/api/dev/token".to_owned()),
        ("GET", "/healthz".to_owned()),
    ];
    let huge = "x".repeat(1 << 20);
    for (method, path) in &routes {
        let method: reqwest::Method = method.parse().unwrap();
        let attempts = [
            (
                "a 1 MiB header",
                http.request(method.clone(), server.url(path))
                    .bearer_auth(&ann)
                    .header("x-huge", &huge),
            ),
            (
                "a 1 MiB query",
                http.request(method.clone(), server.url(&format!("{path}?q={huge}")))
                    .bearer_auth(&ann),
            ),
            (
                "a 1 MiB body",
                http.request(method.clone(), server.url(path))
                    .bearer_auth(&ann)
                    .header("content-type", "application/json")
                    .body(format!("{{\"body\":\"{huge}\"}}")),
            ),
            (
                "a 1 MiB token",
                http.request(method.clone(), server.url(path))
                    .bearer_auth(&huge),
            ),
            (
                "a body of invalid UTF-8",
                http.request(method.clone(), server.url(path))
                    .bearer_auth(&ann)
                    .header("content-type", "application/json")
                    .body(vec![b'{', 0xff, 0xfe, b'}']),
            ),
            (
                "a header of invalid UTF-8",
                http.request(method.clone(), server.url(path))
                    .bearer_auth(&ann)
                    .header(
                        "last-event-id",
                        reqwest::header::HeaderValue::from_bytes(&[0xff, 0xfe]).unwrap(),
                    ),
            ),
        ];
        for (what, request) in attempts {
            let head_too_large = what.starts_with("a 1 MiB") && !what.ends_with("body");
            match request.send().await {
                // Refused; or answered by a route that ignores what it does
                // not read (a body on a GET, a header it has no use for). A
                // head too large is never read at all.
                Ok(response) => {
                    let status = response.status();
                    assert!(
                        status.is_client_error() || (status.is_success() && !head_too_large),
                        "{what} on {method} {path}: {status}"
                    );
                }
                // The server may close the connection on a head too large to read.
                Err(error) => assert!(head_too_large, "{what} on {method} {path}: {error}"),
            }
        }
    }
    let (status, _) = send(http.get(server.url("/readyz"))).await;
    assert_eq!(status, StatusCode::OK, "the server serves on");
    let (status, _) = server
        .post_message(&ann, &room, json!({"body": "after all that"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn a_post_cut_off_midway_is_stored_and_streamed_whole_or_not_at_all(backend: Backend) {
    let server = ServerProcess::start(&backend, &[]).await;
    let ann = user("ann");
    let room = server.create_room(&ann, "cut", &[]).await;
    let mut stream = server.stream(&format!("?roomId={room}"), &ann).await;
    // Each post is cut at a different point: in the head, in the body, right
    // after the body, or after the answer began.
    let mut sent_whole = Vec::new();
    for i in 0..60usize {
        let body = json!({"body": format!("cut {i}"), "clientId": format!("cut-{i}")}).to_string();
        let request = format!(
            "POST /api/chat/rooms/{room}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ann}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let cut = request.len() * (i % 12) / 10; // 0 %, 10 %, … 110 %: some whole
        let mut socket = TcpStream::connect(socket_address(&server)).await.unwrap();
        socket
            .write_all(&request.as_bytes()[..cut.min(request.len())])
            .await
            .unwrap();
        if cut > request.len() {
            // Sent whole; hang up before reading a byte of the answer.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(socket);
        sent_whole.push(cut >= request.len());
    }
    // A last, ordinary post, sent after every cut connection was closed.
    let (status, _) = server
        .post_message(
            &ann,
            &room,
            json!({"body": "the end", "clientId": "the-end"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut streamed: Vec<Value> = Vec::new();
    let mut next_streamed = async || stream.expect("message").await.data["message"].clone();
    while streamed
        .last()
        .is_none_or(|message| message["clientId"] != "the-end")
    {
        streamed.push(next_streamed().await);
    }
    // What is stored is what is streamed: a stream carries only commits, so
    // the history read now holds all it carried; what the history holds
    // beyond that (a cut post committed late) must come down the stream too.
    let (status, history) = send(
        reqwest::Client::new()
            .get(server.url(&format!("/api/chat/rooms/{room}/messages?limit=200")))
            .bearer_auth(&ann),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let stored: Vec<Value> = history["messages"].as_array().unwrap().clone();
    for message in &streamed {
        assert!(
            stored.contains(message),
            "streamed but not stored: {message}"
        );
    }
    while streamed.len() < stored.len() {
        streamed.push(next_streamed().await);
    }
    let by_seq = |messages: &[Value]| {
        let mut messages = messages.to_vec();
        messages.sort_by_key(|message| message["seq"].as_i64());
        messages
    };
    assert_eq!(by_seq(&streamed), stored);
    // Each stored post whole, once, with seqs that never gap, and only if it
    // was sent whole.
    let mut seen = HashSet::new();
    for (n, message) in stored.iter().enumerate() {
        assert_eq!(message["seq"], n as i64 + 1, "seqs without a gap");
        let client_id = message["clientId"].as_str().unwrap();
        if client_id == "the-end" {
            continue;
        }
        let i: usize = client_id.trim_start_matches("cut-").parse().unwrap();
        assert_eq!(message["body"], format!("cut {i}"), "whole");
        assert!(seen.insert(i), "once");
        assert!(sent_whole[i], "cut-{i} was cut short, yet stored");
    }
}

async fn a_stream_whose_client_stopped_reading_is_cut_and_counted(backend: Backend) {
    let server = ServerProcess::start(
        &backend,
        &[
            ("CHAT_HEARTBEAT_INTERVAL", "100ms"),
            // Long enough that a reader on a test process busy with other
            // tests is not taken for one that stopped.
            ("CHAT_STREAM_STALL_TIMEOUT", "3s"),
        ],
    )
    .await;
    let boss = admin("boss");
    let room = server.create_room(&boss, "stall", &[]).await;
    // One admin's stream is read; another's client stops reading after the head.
    // The reader reads all along, on a task of its own.
    let mut reader = server.stream("", &boss).await;
    let (read, mut messages) = tokio::sync::mpsc::unbounded_channel();
    let reading = tokio::spawn(async move {
        while let Some(event) = reader.next().await {
            if read.send(event).is_err() {
                return;
            }
        }
    });
    let mut stalled = unread_stream(&server, &admin("sleepy")).await;
    let mut head = [0u8; 12];
    stalled.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    // Messages flow until the stalled stream's buffers fill and it is cut.
    // The longest body there is (4,000 characters of 4 bytes): the buffers
    // fill in few posts, however busy the machine.
    let body = "\u{1F4AC}".repeat(4_000);
    let started = Instant::now();
    let mut posted = 0;
    while figure(&server, "chat_streams_closed_total").await == 0.0 {
        for _ in 0..20 {
            let (status, _) = server
                .post_message(&boss, &room, json!({"body": body}))
                .await;
            assert_eq!(status, StatusCode::CREATED);
            posted += 1;
        }
        assert!(started.elapsed() < WAIT, "not cut after {posted} messages");
    }
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"chat_streams_closed_total{reason="slow_consumer"} 1"#),
        "{text}"
    );
    // Its socket is closed: what the server had sent, then the end.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, stalled.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the stalled connection stays open");
    // The reader was never held back: it has every message, and stays open.
    for _ in 0..posted {
        let event = tokio::time::timeout(WAIT, messages.recv()).await.unwrap();
        assert_eq!(
            event.expect("the reader's stream goes on").kind(),
            "message"
        );
    }
    assert_eq!(figure(&server, "chat_streams_open").await, 1.0);
    reading.abort();
    server
        .wait_for_log(|line| line.contains("stream closed") && line.contains("slow_consumer"))
        .await;
}

/// PostgreSQL goes away for 10 s: streams stay open with heartbeats, writes
/// and readiness answer 503 in JSON, and when it returns everything recovers
/// by itself, with no acknowledged message lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_keeps_streams_open_answers_503_and_recovers_losing_nothing() {
    let Some(mut database) = ThrowawayPostgres::start().await else {
        return;
    };
    let server = ServerProcess::start_with_database(
        &database.url(),
        0,
        &[
            ("CHAT_HEARTBEAT_INTERVAL", "200ms"),
            ("CHAT_DATABASE_ACQUIRE_TIMEOUT", "1s"),
            ("CHAT_RELAY_POLL_INTERVAL", "100ms"),
            // So that the write itself meets the outage: with the cluster's
            // budgets, their check would meet it first and refuse the post
            // before it began (a 503 without an unknown outcome).
            ("CHAT_CLUSTER_LIMITS", "false"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let boss = admin("boss");
    let room = server.create_room(&boss, "outage", &[]).await;
    let mut stream = server.stream("", &boss).await;
    let mut acknowledged = Vec::new();
    for i in 0..3 {
        let (status, message) = server
            .post_message(&boss, &room, json!({"body": format!("before {i}")}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        acknowledged.push(message["id"].clone());
        stream.expect("message").await;
    }

    database.stop();
    let outage = Instant::now();
    let mut refused_writes = 0;
    let mut unready = 0;
    let mut beats = 0;
    let mut unsettled = Vec::new();
    while outage.elapsed() < Duration::from_secs(10) {
        let client_id = format!("during-{refused_writes}");
        let post = json!({"body": client_id, "clientId": client_id});
        let (status, body) = server.post_message(&boss, &room, post.clone()).await;
        // A write either fails with a 503 that leaves its outcome open, or
        // (never, with the database gone) succeeds and is owed to the history.
        if status == StatusCode::CREATED {
            acknowledged.push(body["id"].clone());
        } else {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
            assert_eq!(body["error"]["outcome"], "unknown", "{body}");
            unsettled.push(post);
            refused_writes += 1;
        }
        let (status, body) = send(http.get(server.url("/readyz"))).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(body["error"]["code"].is_string(), "{body}");
            unready += 1;
        }
        // The stream goes on beating meanwhile.
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            let event = stream.next_any().await.expect("the stream stays open");
            assert_eq!(event.kind(), "heartbeat");
            beats += 1;
        }
    }
    assert!(refused_writes >= 3, "{refused_writes} writes refused");
    assert!(unready >= 3, "/readyz was 503 {unready} times");
    assert!(beats >= 20, "{beats} heartbeats in 10 s at 200 ms");

    database.resume().await;
    // Readiness and writes come back by themselves; the stream carries the
    // first post after the outage, and the history holds every acknowledged one.
    let recovery = Instant::now();
    let after = loop {
        let (status, body) = server
            .post_message(&boss, &room, json!({"body": "after"}))
            .await;
        if status == StatusCode::CREATED {
            break body;
        }
        assert!(
            recovery.elapsed() < WAIT,
            "writes did not recover: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    acknowledged.push(after["id"].clone());
    // What the client does with an unknown outcome: send it again, same clientId.
    let (mut retried, mut stored_after_all) = (Vec::new(), Vec::new());
    for post in unsettled {
        let (status, body) = server.post_message(&boss, &room, post).await;
        match status {
            StatusCode::CREATED => retried.push(body["id"].clone()),
            // It had been stored after all: the original comes back.
            StatusCode::OK => stored_after_all.push(body["id"].clone()),
            _ => panic!("a retry got {status} {body}"),
        }
    }
    let (status, _) = send(http.get(server.url("/readyz"))).await;
    assert_eq!(status, StatusCode::OK);
    let last = retried.last().unwrap_or(&after["id"]).clone();
    loop {
        let event = stream.expect("message").await;
        if event.data["message"]["id"] == last {
            break;
        }
    }
    acknowledged.extend(retried);
    let (_, history) = send(
        http.get(server.url(&format!("/api/chat/rooms/{room}/messages?limit=200")))
            .bearer_auth(&boss),
    )
    .await;
    let stored: Vec<Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["id"].clone())
        .filter(|id| !stored_after_all.contains(id))
        .collect();
    assert_eq!(
        stored, acknowledged,
        "every acknowledged message, once, in order, and each retried one once"
    );
}

/// One client of the outage below, reconnecting as the SSE rules and the SDK
/// do: with its last id, after the stream's last `retry:` (an `unavailable`
/// event's `retryIn` sets it too) or a refusal's `Retry-After`; after a
/// network blip, within the SDK's floor of half a second.
struct Steadfast {
    /// How long after a blip it reconnects: under half a second, its own.
    after_blip: Duration,
    /// When each connection attempt began.
    attempts: std::sync::Mutex<Vec<Instant>>,
    /// The ids of the messages it received, in order.
    messages: std::sync::Mutex<Vec<String>>,
}

impl Steadfast {
    async fn run(
        self: std::sync::Arc<Self>,
        http: reqwest::Client,
        url: String,
        token: String,
        mut blips: tokio::sync::watch::Receiver<u32>,
    ) {
        use eventsource_stream::Eventsource;
        let mut last_id: Option<String> = None;
        let mut retry = Duration::from_secs(3);
        loop {
            self.attempts.lock().unwrap().push(Instant::now());
            let mut request = http.get(&url).bearer_auth(&token);
            if let Some(id) = &last_id {
                request = request.header("Last-Event-ID", id);
            }
            let mut wait = retry;
            match request.send().await {
                Ok(response) if response.status() == StatusCode::OK => {
                    let mut events = response.bytes_stream().eventsource();
                    loop {
                        tokio::select! {
                            event = events.next() => match event {
                                Some(Ok(event)) => {
                                    if let Some(advised) = event.retry {
                                        retry = advised;
                                    }
                                    if !event.id.is_empty() {
                                        last_id = Some(event.id.clone());
                                    }
                                    let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
                                        continue;
                                    };
                                    if data["type"] == "message" {
                                        let id = data["message"]["id"].as_str().unwrap().to_owned();
                                        self.messages.lock().unwrap().push(id);
                                    }
                                }
                                // Ended, or broken: come back after `retry`.
                                _ => {
                                    wait = retry;
                                    break;
                                }
                            },
                            _ = blips.changed() => {
                                wait = self.after_blip;
                                break;
                            }
                        }
                    }
                }
                Ok(response) => {
                    let seconds = response
                        .headers()
                        .get("retry-after")
                        .and_then(|value| value.to_str().ok()?.parse().ok())
                        .unwrap_or(retry.as_secs());
                    wait = Duration::from_secs(seconds);
                }
                Err(_) => {}
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// PostgreSQL goes away while 1,000 streams are open and every client is cut
/// off by a network blip: while it is down their reconnects thin out instead
/// of piling up (each open answered with `unavailable`, waiting as long as
/// the outage has lasted), and once it is back every client catches up (from
/// the store: the window holds too little) with every message of its room,
/// once and in order, those the writer retried included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_under_a_thousand_streams_brings_no_reconnect_storm_and_loses_nothing() {
    const ROOMS: usize = 100;
    const STREAMS_PER_ROOM: usize = 10;
    raise_open_file_limit();
    let Some(mut database) = ThrowawayPostgres::start().await else {
        return;
    };
    let server = ServerProcess::start_with_database(
        &database.url(),
        0,
        &[
            ("CHAT_DATABASE_ACQUIRE_TIMEOUT", "1s"),
            ("CHAT_RELAY_POLL_INTERVAL", "100ms"),
            ("CHAT_EVENT_WINDOW_EVENTS", "64"),
            ("CHAT_STREAM_RATE_PER_USER", "10000"),
            ("CHAT_STREAM_BURST_PER_USER", "10000"),
            ("CHAT_STREAM_RATE_PER_IP", "10000"),
            ("CHAT_STREAM_BURST_PER_IP", "10000"),
            // Streams cut by the blip may count until a heartbeat finds them gone.
            ("CHAT_STREAM_MAX_PER_USER", "64"),
            ("CHAT_HEARTBEAT_INTERVAL", "2s"),
        ],
    )
    .await;
    let boss = admin("boss");
    let http = reqwest::Client::new();
    let mut rooms = Vec::new();
    for i in 0..ROOMS {
        let (status, room) = send(
            http.post(server.url("/api/chat/rooms"))
                .bearer_auth(&boss)
                .json(&json!({"name": format!("room {i}"), "memberIds": [format!("u{i}")]})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{room}");
        rooms.push(room["id"].as_str().unwrap().to_owned());
    }
    let noise = server.create_room(&boss, "noise", &[]).await;

    // Per room, its member's widgets (room streams) and global streams.
    let (blip, blips) = tokio::sync::watch::channel(0u32);
    let mut clients = Vec::new();
    for (i, room) in rooms.iter().enumerate() {
        for n in 0..STREAMS_PER_ROOM {
            let spread = ((clients.len() * 7919) % 1000) as u64;
            let client = std::sync::Arc::new(Steadfast {
                after_blip: Duration::from_micros(500 * spread),
                attempts: Default::default(),
                messages: Default::default(),
            });
            let url = if n % 2 == 0 {
                server.url(&format!("/api/chat/sse?roomId={room}"))
            } else {
                server.url("/api/chat/sse")
            };
            tokio::spawn(client.clone().run(
                http.clone(),
                url,
                user(&format!("u{i}")),
                blips.clone(),
            ));
            clients.push((i, client));
        }
    }
    let all = ROOMS * STREAMS_PER_ROOM;
    let started = Instant::now();
    while figure(&server, "chat_streams_open").await < all as f64 {
        assert!(started.elapsed() < WAIT, "the streams did not all open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for room in &rooms {
        let (status, _) = server
            .post_message(&boss, room, json!({"body": "before"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let got = |count: usize| {
        clients
            .iter()
            .all(|(_, client)| client.messages.lock().unwrap().len() >= count)
    };
    let started = Instant::now();
    while !got(1) {
        assert!(
            started.elapsed() < WAIT,
            "not every stream got its first message"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // More than the window holds: every resume point is now older than it.
    for i in 0..200 {
        let (status, _) = server
            .post_message(&boss, &noise, json!({"body": format!("noise {i}")}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }

    database.stop();
    let down = Instant::now();
    // Every client is cut off, and comes back into the outage.
    blip.send_modify(|blips| *blips += 1);
    let mut unsettled = Vec::new();
    let mut attempt = 0;
    while down.elapsed() < Duration::from_secs(6) {
        let room = &rooms[attempt % ROOMS];
        let client_id = format!("during-{attempt}");
        let post = json!({"body": client_id, "clientId": client_id});
        let (status, body) = server.post_message(&boss, room, post.clone()).await;
        assert_ne!(
            status,
            StatusCode::CREATED,
            "a write with the store down: {body}"
        );
        unsettled.push((room.clone(), post));
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    database.resume().await;
    let back = Instant::now();

    // The writer sends again what it could not, with the same clientId, and
    // one more to each room.
    for (room, post) in &unsettled {
        loop {
            let (status, body) = server.post_message(&boss, room, post.clone()).await;
            if status == StatusCode::CREATED || status == StatusCode::OK {
                break;
            }
            assert!(
                back.elapsed() < WAIT,
                "writes did not recover: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for room in &rooms {
        let (status, _) = server
            .post_message(&boss, room, json!({"body": "after"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut history = Vec::new();
    for room in &rooms {
        let (_, page) = send(
            http.get(server.url(&format!("/api/chat/rooms/{room}/messages?limit=100")))
                .bearer_auth(&boss),
        )
        .await;
        let ids: Vec<String> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|message| message["id"].as_str().unwrap().to_owned())
            .collect();
        history.push(ids);
    }
    // Clients wait at most twice as long as the store was down, plus a beat.
    let caught_up = || {
        clients
            .iter()
            .all(|(room, client)| client.messages.lock().unwrap().len() >= history[*room].len())
    };
    while !caught_up() {
        assert!(
            back.elapsed() < Duration::from_secs(45),
            "not every stream caught up within 45 s of the store's return"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered_in = back.elapsed();
    for (room, client) in &clients {
        assert_eq!(
            *client.messages.lock().unwrap(),
            history[*room],
            "every message of the room, once, in order"
        );
    }

    // Reconnects a second, from the blip on.
    let mut per_second = vec![0usize; (down.elapsed().as_secs() + 1) as usize];
    for (_, client) in &clients {
        for at in client
            .attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|at| **at >= down)
        {
            per_second[(*at - down).as_secs() as usize] += 1;
        }
    }
    let outage_seconds = (back - down).as_secs() as usize;
    let during: usize = per_second[..outage_seconds].iter().sum();
    let peak_after_blip = per_second[1..].iter().copied().max().unwrap_or(0);
    let from_store = Scrape::of(&server, None)
        .await
        .value("chat_stream_catch_ups_total", &[("source", "store")]);
    eprintln!(
        "store outage under {all} streams: down {:.1} s; reconnects {during} while down \
         ({:.2} a stream), per second from the blip {per_second:?}; peak after the blip's \
         second {peak_after_blip}/s; every stream caught up {:.1} s after the store came back \
         ({from_store} catch-ups read the store)",
        (back - down).as_secs_f64(),
        during as f64 / all as f64,
        recovered_in.as_secs_f64(),
    );
    // A client that came straight back would open hundreds of times a
    // second each; these come back after seconds, later the longer it lasts.
    assert!(
        during <= 4 * all,
        "{during} reconnects by {all} clients in a {outage_seconds} s outage"
    );
    assert!(
        peak_after_blip <= all / 2,
        "{peak_after_blip} reconnects in one second by {all} clients"
    );
}
