//! W5: concurrent writers, each posting its next message as soon as the last
//! one is acknowledged, over many rooms: acknowledged messages per second and
//! latency per post, with every acknowledged message then counted in the store.
//! With `--instances N` on PostgreSQL the writers spread over N chat-server
//! processes on the one database: the cluster's write ceiling.

use crate::Common;
use crate::histogram::Histogram;
use crate::process::{Served, StoreChoice};
use crate::report::write_json;
use crate::target::{SECRET, Server, Target, lineup, token};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Serialize)]
pub struct WritesStep {
    target: &'static str,
    instances: usize,
    writers: usize,
    acknowledged: u64,
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: u64,
    /// Messages the store holds after the step, beyond those of earlier steps.
    stored: Option<u64>,
    /// Over every instance.
    server_cpu_percent: f64,
}

/// Posts from `writers` concurrent writers for `seconds`, for each count of writers.
pub async fn writes(
    common: &Common,
    rooms: usize,
    writer_counts: &[usize],
    seconds: u64,
    instances: usize,
) -> Result<(), String> {
    let mut steps = Vec::new();
    for &server in lineup(common) {
        let target = Target::start(common, server, "25s").await?;
        let mut others = Vec::new();
        if server == Server::Ours && instances > 1 {
            if !target.served.database.starts_with("postgres") {
                return Err("--instances above 1 needs --store postgres".to_owned());
            }
            let database = StoreChoice::Database(target.served.database.clone());
            let env = common.server_env(&[("CHAT_HEARTBEAT_INTERVAL", "25s")]);
            for _ in 1..instances {
                others.push(Served::chat_server(&database, SECRET, &env).await?);
            }
        }
        let bases: Vec<&str> = std::iter::once(target.served.base.as_str())
            .chain(others.iter().map(|served| served.base.as_str()))
            .collect();
        // Writer w posts to room w (mod rooms) through instance w (mod instances).
        let room_urls: Vec<Vec<String>> = if server == Server::Ours {
            let rooms = target.create_rooms(rooms, |_| Vec::new()).await?;
            bases
                .iter()
                .map(|base| {
                    rooms
                        .iter()
                        .map(|room| format!("{base}/api/chat/rooms/{room}/messages"))
                        .collect()
                })
                .collect()
        } else {
            vec![vec![target.publish_url.clone()]]
        };
        let cpu_ticks = || {
            target.served.sample().cpu_ticks
                + others.iter().map(|s| s.sample().cpu_ticks).sum::<u64>()
        };
        let mut stored_before = 0;
        for (step, &writers) in writer_counts.iter().enumerate() {
            let latency = Arc::new(Histogram::new());
            let (acknowledged, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
            let http = reqwest::Client::new();
            let cpu_before = cpu_ticks();
            let started = Instant::now();
            let deadline = started + Duration::from_secs(seconds);
            let tasks: Vec<_> = (0..writers)
                .map(|writer| {
                    let through = &room_urls[writer % room_urls.len()];
                    let url = through[writer % through.len()].clone();
                    let token = token(&format!("load-writer-{writer}"));
                    let (http, latency, acknowledged, errors) = (
                        http.clone(),
                        latency.clone(),
                        acknowledged.clone(),
                        errors.clone(),
                    );
                    tokio::spawn(async move {
                        let mut n = 0u64;
                        while Instant::now() < deadline {
                            n += 1;
                            let body = json!({"body": format!("w{writer} n{n}"), "clientId": format!("s{step}-w{writer}-{n}")});
                            let sent = Instant::now();
                            let answer = http.post(&url).bearer_auth(&token).json(&body).send().await;
                            // From us, 201 only: a 200 would be a retry's original.
                            let stored = answer.is_ok_and(|r| {
                                r.status() == reqwest::StatusCode::CREATED
                                    || (server == Server::Hub && r.status().is_success())
                            });
                            if stored {
                                latency.record(sent.elapsed().as_micros() as u64);
                                acknowledged.fetch_add(1, Ordering::Relaxed);
                            } else {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.map_err(|e| e.to_string())?;
            }
            let elapsed = started.elapsed().as_secs_f64();
            let cpu = (cpu_ticks() - cpu_before) as f64 * 10.0;
            let acknowledged = acknowledged.load(Ordering::Relaxed);
            let stored = if server == Server::Ours {
                let total = target.stored_messages().await?;
                let step = total - stored_before;
                stored_before = total;
                Some(step)
            } else {
                None
            };
            let step = WritesStep {
                target: target.served.name,
                instances: bases.len(),
                writers,
                acknowledged,
                per_s: acknowledged as f64 / elapsed,
                p50_ms: latency.percentile_ms(0.50),
                p99_ms: latency.percentile_ms(0.99),
                max_ms: latency.max_ms(),
                errors: errors.load(Ordering::Relaxed),
                stored,
                server_cpu_percent: cpu / (elapsed * 1000.0) * 100.0,
            };
            println!(
                "{:>12} x{} {:>4} writers: {:>8.0} msg/s  p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>7.1} ms  errors {}  stored {}  server CPU {:.0} %",
                step.target,
                step.instances,
                step.writers,
                step.per_s,
                step.p50_ms,
                step.p99_ms,
                step.max_ms,
                step.errors,
                step.stored
                    .map_or("-".to_owned(), |s| format!("{s} of {acknowledged}")),
                step.server_cpu_percent
            );
            if step.stored.is_some_and(|s| s != acknowledged) {
                return Err(format!(
                    "{acknowledged} posts acknowledged but {:?} stored",
                    step.stored
                ));
            }
            steps.push(step);
        }
    }
    write_json("w5", common, &steps)
}
