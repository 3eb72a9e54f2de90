//! W4: fallback polling. Many rooms full of messages, each with one member;
//! many users polling `GET /api/chat/rooms` at a fixed total rate (open
//! loop: requests leave on schedule whether or not earlier ones answered),
//! first without and then with `If-None-Match` (each user sending back the
//! last `ETag` it got). The hub answers the same requests with a fixed body
//! of the size ours sent.

use crate::histogram::Histogram;
use crate::report::write_json;
use crate::target::{Server, Target, lineup, token_as};
use crate::{Common, seed};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Serialize)]
struct PollingStep {
    target: &'static str,
    conditional: bool,
    rate: u32,
    achieved_rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    ok_200: u64,
    not_modified_304: u64,
    errors: u64,
    body_bytes: usize,
    server_cpu_percent: f64,
}

pub async fn polling(
    common: &Common,
    rooms: usize,
    messages: usize,
    users: usize,
    rate: u32,
    seconds: u64,
) -> Result<(), String> {
    let mut steps = Vec::new();
    // What ours answered one user, for the hub to send the same bytes.
    let mut listing = String::from("{}");
    for &server in lineup(common) {
        let target = Target::start(common, server, "25s").await?;
        let url = if server == Server::Ours {
            seed::rooms_with_messages(
                &target,
                rooms,
                messages,
                |index| vec![format!("load-user-{}", index % users)],
                |n| format!("seed message {n}"),
            )
            .await?;
            format!("{}/api/chat/rooms", target.served.base)
        } else {
            target
                .http
                .post(format!("{}/rooms", target.served.base))
                .body(listing.clone())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            format!("{}/rooms", target.served.base)
        };
        let tokens: Vec<String> = (0..users)
            .map(|user| token_as(&format!("load-user-{user}"), "user"))
            .collect();
        if server == Server::Ours {
            listing = target
                .http
                .get(&url)
                .bearer_auth(&tokens[0])
                .send()
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
        }
        for conditional in [false, true] {
            let step = poll(&target, &url, &tokens, conditional, rate, seconds).await?;
            println!(
                "{:>12} {:<22} {:>6.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.1} ms  200: {}  304: {}  errors {}  body {} B  server CPU {:.0} %",
                step.target,
                if conditional {
                    "with If-None-Match:"
                } else {
                    "without If-None-Match:"
                },
                step.achieved_rate,
                step.p50_ms,
                step.p99_ms,
                step.max_ms,
                step.ok_200,
                step.not_modified_304,
                step.errors,
                step.body_bytes,
                step.server_cpu_percent
            );
            steps.push(step);
        }
    }
    write_json("w4", common, &steps)
}

/// One phase: `rate` requests per second for `seconds`, user after user.
async fn poll(
    target: &Target,
    url: &str,
    tokens: &[String],
    conditional: bool,
    rate: u32,
    seconds: u64,
) -> Result<PollingStep, String> {
    let latency = Arc::new(Histogram::new());
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let body_bytes = Arc::new(AtomicU64::new(0));
    let etags: Arc<Vec<Mutex<Option<String>>>> =
        Arc::new(tokens.iter().map(|_| Mutex::new(None)).collect());
    let cpu_before = target.served.sample().cpu_ticks;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = u64::from(rate) * seconds;
    let mut requests = Vec::with_capacity(total as usize);
    for n in 0..total as usize {
        tick.tick().await;
        let user = n % tokens.len();
        let mut request = target.http.get(url);
        if target.server == Server::Ours {
            request = request.bearer_auth(&tokens[user]);
        }
        let etag = etags[user]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(etag) = etag.filter(|_| conditional) {
            request = request.header("If-None-Match", etag);
        }
        let (latency, counts, body_bytes, etags) = (
            latency.clone(),
            counts.clone(),
            body_bytes.clone(),
            etags.clone(),
        );
        requests.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer = request.send().await;
            let status = answer.as_ref().map(reqwest::Response::status);
            let outcome = match answer {
                Ok(response) if response.status().is_success() => {
                    let etag = response
                        .headers()
                        .get("etag")
                        .and_then(|tag| tag.to_str().ok())
                        .map(str::to_owned);
                    let body = response.bytes().await.map(|b| b.len()).unwrap_or(0);
                    body_bytes.store(body as u64, Ordering::Relaxed);
                    *etags[user].lock().unwrap_or_else(PoisonError::into_inner) = etag;
                    0
                }
                Ok(_) if status.is_ok_and(|s| s == reqwest::StatusCode::NOT_MODIFIED) => 1,
                _ => 2,
            };
            latency.record(sent.elapsed().as_micros() as u64);
            counts[outcome].fetch_add(1, Ordering::Relaxed);
        }));
    }
    for request in requests {
        request.await.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (target.served.sample().cpu_ticks - cpu_before) as f64 * 10.0;
    Ok(PollingStep {
        target: target.served.name,
        conditional,
        rate,
        achieved_rate: total as f64 / elapsed,
        p50_ms: latency.percentile_ms(0.50),
        p99_ms: latency.percentile_ms(0.99),
        max_ms: latency.max_ms(),
        ok_200: counts[0].load(Ordering::Relaxed),
        not_modified_304: counts[1].load(Ordering::Relaxed),
        errors: counts[2].load(Ordering::Relaxed),
        body_bytes: body_bytes.load(Ordering::Relaxed) as usize,
        server_cpu_percent: cpu / (elapsed * 1000.0) * 100.0,
    })
}
