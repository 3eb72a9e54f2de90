//! W2: fan-out. One room, many subscribers, the publish rate stepped up;
//! deliveries a second, latency and losses at each step, ours beside the hub.

use crate::Common;
use crate::report::write_json;
use crate::streams::Tally;
use crate::target::{Server, Target, lineup};
use futures::StreamExt;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Serialize, Clone)]
pub struct Step {
    target: &'static str,
    rate: u32,
    achieved_rate: f64,
    pub deliveries_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    pub lost: u64,
    pub duplicates: u64,
}

/// Posts a fan-out publisher may have in flight at once.
const IN_FLIGHT: usize = 32;

/// W2: one room, `subscribers` streams, the publish rate stepped through `rates`.
pub async fn fanout(
    common: &Common,
    subscribers: usize,
    rates: &[u32],
    step_seconds: u64,
    name: &str,
) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for &server in lineup(common) {
        let target = Target::start(common, server, "25s").await?;
        let tally = Tally::new(subscribers);
        let connect = target.open(subscribers, false, &tally).await?;
        println!(
            "{}: {subscribers} subscribers connected in {:.1} s",
            target.served.name,
            connect.as_secs_f64()
        );
        let mut published = 0u64;
        for &rate in rates {
            tally.latency.reset();
            let (delivered_before, duplicates_before, lost_before) = (
                tally.deliveries.load(Ordering::Relaxed),
                tally.duplicates.load(Ordering::Relaxed),
                tally.lost(published),
            );
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
            let count = u64::from(rate) * step_seconds;
            // On schedule, however long each post takes: posts overlap, up
            // to `IN_FLIGHT`, so the publisher is not what limits the rate.
            let mut in_flight = futures::stream::FuturesUnordered::new();
            for _ in 0..count {
                loop {
                    tokio::select! {
                        _ = tick.tick(), if in_flight.len() < IN_FLIGHT => break,
                        Some(posted) = in_flight.next(), if !in_flight.is_empty() => posted?,
                    }
                }
                published += 1;
                in_flight.push(target.publish(published));
            }
            while let Some(posted) = in_flight.next().await {
                posted?;
            }
            let publishing = started.elapsed().as_secs_f64();
            // Let the last deliveries land (bounded).
            let drain = Instant::now();
            while tally.lost(published) > lost_before && drain.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let delivered = tally.deliveries.load(Ordering::Relaxed) - delivered_before;
            let step = Step {
                target: target.served.name,
                rate,
                achieved_rate: count as f64 / publishing,
                deliveries_per_s: delivered as f64 / publishing,
                p50_ms: tally.latency.percentile_ms(0.50),
                p99_ms: tally.latency.percentile_ms(0.99),
                max_ms: tally.latency.max_ms(),
                lost: tally.lost(published) - lost_before,
                duplicates: tally.duplicates.load(Ordering::Relaxed) - duplicates_before,
            };
            println!(
                "{:>12} {:>5}/s (got {:>7.1}/s): {:>10.0} deliveries/s  p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  lost {}  dup {}",
                step.target,
                step.rate,
                step.achieved_rate,
                step.deliveries_per_s,
                step.p50_ms,
                step.p99_ms,
                step.max_ms,
                step.lost,
                step.duplicates
            );
            steps.push(step);
        }
        println!(
            "{} after the run: {:?}",
            target.served.name,
            target.served.sample()
        );
        if target.server == Server::Ours {
            println!("chat-server stream stats: {}", target.stream_stats().await?);
        }
    }
    write_json(name, common, &steps)?;
    Ok(steps)
}
