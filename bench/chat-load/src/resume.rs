//! W6: a resume storm. Every stream cut at once by a SIGKILL and restart;
//! how long until every one has caught up, resuming by id.

use crate::Common;
use crate::report::write_json;
use crate::streams::Tally;
use crate::target::{Server, Target};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Serialize)]
struct ResumeResult {
    streams: usize,
    restart_s: f64,
    caught_up_s: f64,
    reconnected: u64,
    published: u64,
    lost: u64,
    duplicates: u64,
}

/// W6: every stream cut at once by a SIGKILL and restart; messages published
/// before the kill and right after the restart; how long until every stream
/// has all of them, resuming by id.
pub async fn resume(common: &Common, count: usize) -> Result<(), String> {
    let mut target = Target::ours(common, "1s").await?;
    let tally = Tally::new(count);
    let connect = target.open_streams(count, false, true, &tally).await?;
    println!(
        "{count} resuming streams connected in {:.1} s",
        connect.as_secs_f64()
    );
    let mut published = 0;
    for _ in 0..20 {
        published += 1;
        target.publish(published).await?;
    }
    let all_have = |published: u64, limit: Duration| {
        let tally = tally.clone();
        async move {
            let started = Instant::now();
            while tally.lost(published) > 0 {
                if started.elapsed() > limit {
                    return Err(format!(
                        "{} messages missing after {limit:?}",
                        tally.lost(published)
                    ));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(started.elapsed())
        }
    };
    all_have(published, Duration::from_secs(30)).await?;
    let restart = target.served.restart().await?;
    let restarted = Instant::now();
    for _ in 0..20 {
        published += 1;
        target.publish(published).await?;
    }
    all_have(published, Duration::from_secs(120)).await?;
    let result = ResumeResult {
        streams: count,
        restart_s: restart.as_secs_f64(),
        caught_up_s: restarted.elapsed().as_secs_f64(),
        reconnected: tally.reconnected.load(Ordering::Relaxed),
        published,
        lost: tally.lost(published),
        duplicates: tally.duplicates.load(Ordering::Relaxed),
    };
    println!(
        "resume storm: {} streams cut by SIGKILL; restarted in {:.2} s; all {} caught up {:.2} s after the restart ({} reconnects); lost {}, duplicates {}",
        result.streams,
        result.restart_s,
        result.published,
        result.caught_up_s,
        result.reconnected,
        result.lost,
        result.duplicates
    );
    if target.server == Server::Ours {
        // How the catch-ups were served: from the window (memory) or the store.
        println!("chat-server stream stats: {}", target.stream_stats().await?);
    }
    write_json("w6", common, &result)
}
