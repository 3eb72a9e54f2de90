//! W1: idle streams. Many streams, room and global mixed, nothing sent but
//! heartbeats: connect time, memory per stream, CPU per heartbeat.

use crate::Common;
use crate::process;
use crate::report::write_json;
use crate::streams::Tally;
use crate::target::{Target, lineup};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Serialize)]
struct IdleResult {
    target: &'static str,
    streams: usize,
    connect_s: f64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    kib_per_stream: f64,
    cpu_ms_per_1000_heartbeats: f64,
    open_files: u64,
    /// (streams open, server RSS in KiB), sampled while connecting.
    rss_by_streams: Vec<(u64, u64)>,
}

/// W1: `count` idle streams (room and global mixed), heartbeat 1 s.
pub async fn idle(common: &Common, count: usize, seconds: u64) -> Result<(), String> {
    let mut results = Vec::new();
    for &server in lineup(common) {
        let target = Target::start(common, server, "1s").await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = target.served.sample();
        let tally = Tally::new(count);
        let pid = target.served.pid();
        let sampler = tokio::spawn({
            let tally = tally.clone();
            async move {
                let mut series = Vec::new();
                loop {
                    let open = tally.connected.load(Ordering::Relaxed);
                    series.push((open, process::Sample::of(pid).rss_kib));
                    if open >= count as u64 {
                        return series;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        let connect = target.open(count, true, &tally).await?;
        let mut rss_by_streams = sampler.await.map_err(|e| e.to_string())?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let settled = target.served.sample();
        rss_by_streams.push((count as u64, settled.rss_kib));
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let after = target.served.sample();
        let heartbeats = (count as u64 * seconds) as f64;
        let result = IdleResult {
            target: target.served.name,
            streams: count,
            connect_s: connect.as_secs_f64(),
            rss_before_kib: before.rss_kib,
            rss_after_kib: settled.rss_kib,
            kib_per_stream: (settled.rss_kib.saturating_sub(before.rss_kib)) as f64 / count as f64,
            cpu_ms_per_1000_heartbeats: (after.cpu_ticks - settled.cpu_ticks) as f64 * 10.0
                / heartbeats
                * 1000.0,
            open_files: after.open_files,
            rss_by_streams,
        };
        println!(
            "{:>12}: {} streams, connected in {:.1} s, {:.1} KiB RSS per stream ({} -> {} KiB), {:.2} ms CPU per 1,000 heartbeats, {} open files",
            result.target,
            result.streams,
            result.connect_s,
            result.kib_per_stream,
            result.rss_before_kib,
            result.rss_after_kib,
            result.cpu_ms_per_1000_heartbeats,
            result.open_files
        );
        results.push(result);
    }
    write_json("w1", common, &results)
}
