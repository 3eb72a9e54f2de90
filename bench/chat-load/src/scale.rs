//! W1's scale-out: many streams across several chat-server instances sharing
//! one PostgreSQL database, where each instance learns of the others' events
//! by LISTEN/NOTIFY. Every stream, on whichever instance, must see every
//! message, wherever it was posted. The load generator splits itself into one
//! worker process per instance, since each process may hold only ~20,000
//! open files; workers report over their stdout, one JSON line per phase.

use crate::histogram::Histogram;
use crate::process::{Sample, Served, StoreChoice, fresh_postgres_database};
use crate::streams::{Body, Tally, open_all};
use crate::target::{SECRET, create_room, token};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::ChildStdout;

/// What a worker reports once its streams are open, and once they have all
/// the messages (or the wait ran out).
#[derive(Serialize, Deserialize, Debug, Default)]
struct WorkerReport {
    streams: usize,
    connect_s: f64,
    deliveries: u64,
    lost: u64,
    duplicates: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Serialize)]
struct InstanceRow {
    instance: usize,
    streams: usize,
    connect_s: f64,
    rss_kib: u64,
    kib_per_stream: f64,
    open_files: u64,
    deliveries: u64,
    lost: u64,
    duplicates: u64,
    p50_ms: f64,
    p99_ms: f64,
}

pub async fn scale(
    postgres: &str,
    instances: usize,
    streams: usize,
    messages: u64,
) -> Result<(), String> {
    let database = fresh_postgres_database(postgres).await?;
    let mut servers = Vec::with_capacity(instances);
    for _ in 0..instances {
        // One at a time: the first applies the migrations. A production
        // heartbeat, and pools small enough for PostgreSQL's 100 connections.
        let server = Served::chat_server(
            &StoreChoice::Database(database.clone()),
            SECRET,
            &[
                ("CHAT_HEARTBEAT_INTERVAL", "25s"),
                ("CHAT_DATABASE_MAX_CONNECTIONS", "8"),
            ],
        )
        .await?;
        servers.push(server);
    }
    let idle: Vec<Sample> = servers.iter().map(Served::sample).collect();
    let http = reqwest::Client::new();
    let publisher = token("load-publisher");
    let room = create_room(
        &http,
        &servers[0].base,
        &publisher,
        json!({"name": "scale"}),
    )
    .await?;

    let started = Instant::now();
    let per_instance = streams / instances;
    let mut workers = Vec::with_capacity(instances);
    for (index, server) in servers.iter().enumerate() {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = tokio::process::Command::new(exe)
            .args(["scale-worker", "--base", &server.base, "--room", &room])
            .args(["--streams", &per_instance.to_string()])
            .args(["--first", &(index * per_instance).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| e.to_string())?;
        let lines = BufReader::new(child.stdout.take().ok_or("no worker stdout")?).lines();
        workers.push((child, lines));
    }
    for (_, lines) in &mut workers {
        report(lines).await?;
    }
    let connect_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled: Vec<Sample> = servers.iter().map(Served::sample).collect();
    println!(
        "{} streams open on {instances} instances in {connect_s:.1} s",
        per_instance * instances
    );

    // Posted to each instance in turn, one a second (100,000 deliveries a
    // second): every stream must see all of them, whichever instance it is on.
    for n in 1..=messages {
        let server = &servers[n as usize % instances];
        let body = Body::text(n, None);
        let url = format!("{}/api/chat/rooms/{room}/messages", server.base);
        http.post(url)
            .bearer_auth(&publisher)
            .json(&json!({"body": body, "clientId": format!("n{n}")}))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("publishing {n}: {e}"))?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut rows = Vec::with_capacity(instances);
    for (child, _) in &mut workers {
        let stdin = child.stdin.as_mut().ok_or("no worker stdin")?;
        stdin
            .write_all(format!("{messages}\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
    }
    for (index, (_, lines)) in workers.iter_mut().enumerate() {
        let done = report(lines).await?;
        let (before, after) = (idle[index], settled[index]);
        rows.push(InstanceRow {
            instance: index,
            streams: done.streams,
            connect_s: done.connect_s,
            rss_kib: after.rss_kib,
            kib_per_stream: after.rss_kib.saturating_sub(before.rss_kib) as f64
                / done.streams as f64,
            open_files: after.open_files,
            deliveries: done.deliveries,
            lost: done.lost,
            duplicates: done.duplicates,
            p50_ms: done.p50_ms,
            p99_ms: done.p99_ms,
        });
    }
    for row in &rows {
        println!(
            "instance {}: {} streams (connected in {:.1} s), RSS {} KiB ({:.1} KiB per stream), {} open files; {} deliveries, lost {}, duplicates {}, p50 {:.1} ms, p99 {:.1} ms",
            row.instance,
            row.streams,
            row.connect_s,
            row.rss_kib,
            row.kib_per_stream,
            row.open_files,
            row.deliveries,
            row.lost,
            row.duplicates,
            row.p50_ms,
            row.p99_ms
        );
    }
    let lost: u64 = rows.iter().map(|r| r.lost + r.duplicates).sum();
    let total: usize = rows.iter().map(|r| r.streams).sum();
    println!(
        "scale-out: {total} streams on {instances} instances, {messages} messages: {} lost or duplicated",
        lost
    );
    let path = std::path::Path::new("target/bench/w1-scale-postgres.json");
    let text = serde_json::to_string_pretty(&json!({
        "workload": "w1-scale", "store": "postgres", "instances": instances,
        "connect_s": connect_s, "messages": messages, "rows": rows}))
    .map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| e.to_string())?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The next report of a worker.
async fn report(lines: &mut Lines<BufReader<ChildStdout>>) -> Result<WorkerReport, String> {
    let line = lines
        .next_line()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("a worker ended early")?;
    serde_json::from_str(&line).map_err(|e| format!("a worker said {line:?}: {e}"))
}

/// One worker: `streams` streams to `base`, alternately the room's and the
/// global stream, each as a distinct admin. Reports once connected; then
/// reads how many messages were published, waits until every stream has them
/// all (at most 60 s), and reports again.
pub async fn worker(base: &str, room: &str, streams: usize, first: usize) -> Result<(), String> {
    let tally = Tally::new(streams);
    let urls = [
        format!("{base}/api/chat/sse?roomId={room}"),
        format!("{base}/api/chat/sse"),
    ];
    let all = (0..streams).map(|index| {
        let token = token(&format!("load-admin-{}", first + index));
        (urls[index % 2].clone(), Some(token))
    });
    let connect = open_all(all, false, &tally).await?;
    let say = |report: &WorkerReport| -> Result<(), String> {
        println!(
            "{}",
            serde_json::to_string(report).map_err(|e| e.to_string())?
        );
        Ok(())
    };
    say(&WorkerReport {
        streams,
        connect_s: connect.as_secs_f64(),
        ..WorkerReport::default()
    })?;
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    let published: u64 = line.trim().parse().map_err(|_| "expected a count")?;
    let waiting = Instant::now();
    while tally.lost(published) > 0 && waiting.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let latency: &Histogram = &tally.latency;
    say(&WorkerReport {
        streams,
        connect_s: connect.as_secs_f64(),
        deliveries: tally.deliveries.load(Ordering::Relaxed),
        lost: tally.lost(published),
        duplicates: tally.duplicates.load(Ordering::Relaxed),
        p50_ms: latency.percentile_ms(0.50),
        p99_ms: latency.percentile_ms(0.99),
        max_ms: latency.max_ms(),
    })
}
