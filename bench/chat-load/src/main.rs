//! `chat-load`: measures chat-server beside a reference bare axum hub in the
//! same run, so every figure is also a ratio. Each workload is one command:
//! it starts the server (and the hub) itself, loads it from this process,
//! samples the server's memory, CPU and open files from `/proc`, prints a
//! table and writes JSON under `target/bench/`.

mod chat;
mod histogram;
mod hub;
mod plot;
mod polling;
mod process;
mod replay;
mod scale;
mod streams;
mod webhook;
mod writes;

use clap::{Parser, Subcommand, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use process::{Served, StoreChoice};
use serde::Serialize;
use serde_json::json;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use streams::{Body, Tally, now_micros};

const SECRET: &str = "chat-load-secret-that-is-at-least-32-bytes";

#[derive(Parser)]
#[command(about = "Load generator for chat-server, with a reference axum hub")]
struct Cli {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Clone, Copy, ValueEnum, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum Store {
    Sqlite,
    Postgres,
}

#[derive(clap::Args, Clone)]
struct Common {
    #[arg(long, value_enum, default_value_t = Store::Sqlite)]
    store: Store,
    /// For `--store postgres`: a server where a fresh database may be created.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Skip the reference hub.
    #[arg(long)]
    no_reference: bool,
    /// A setting for chat-server, as `NAME=value` (e.g. `CHAT_CLUSTER_LIMITS=false`); repeatable.
    #[arg(long = "server-env", value_parser = name_and_value)]
    server_env: Vec<(String, String)>,
}

fn name_and_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("`{text}` is not NAME=value"))
}

#[derive(Subcommand)]
enum Workload {
    /// The reference hub itself (started by the workloads).
    Hub {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        heartbeat: Duration,
    },
    /// W1: idle streams, global and room mixed, with a 1 s heartbeat.
    Idle {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 10_000)]
        streams: usize,
        /// How long to watch the idle streams.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// W2: one room, many subscribers, publish rate stepped up.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "2,5,10,25,50,60,70,80,100,200"
        )]
        rates: Vec<u32>,
        #[arg(long, default_value_t = 5)]
        step_seconds: u64,
    },
    /// W3: rooms with one widget stream each, admin panels watching every
    /// room, messages spread over the rooms.
    Chat {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 5_000)]
        rooms: usize,
        #[arg(long, default_value_t = 20)]
        admins: usize,
        /// Messages per second, over all rooms.
        #[arg(long, default_value_t = 500)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Of the rooms, the percentage (the first ones) whose user also
        /// sends typing notices; streams then ask for signals.
        #[arg(long, default_value_t = 0)]
        typing_rooms_percent: u32,
        /// Typing notices per second in each of those rooms.
        #[arg(long, default_value_t = 1.0)]
        typing_rate: f64,
        /// Also deliver every message to a webhook receiver in this process.
        #[arg(long)]
        webhook: bool,
        /// With `--webhook`: the receiver refuses until the last post, then
        /// takes the backlog.
        #[arg(long, requires = "webhook")]
        webhook_backlog: bool,
    },
    /// W4: fallback polling of `GET /api/chat/rooms`, without and with
    /// `If-None-Match`, over rooms seeded with messages.
    Polling {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 10_000)]
        rooms: usize,
        #[arg(long, default_value_t = 1_000_000)]
        messages: usize,
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        /// Requests per second, over all users.
        #[arg(long, default_value_t = 1_000)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// W5: concurrent writers posting over many rooms, stepped by writer count.
    Writes {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        #[arg(long, value_delimiter = ',', default_value = "16,64,256")]
        writers: Vec<usize>,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// chat-server instances on the one database (PostgreSQL), the
        /// writers spread over them in turn.
        #[arg(long, default_value_t = 1)]
        instances: usize,
    },
    /// W6: streams cut at once by a server restart (SIGKILL), all resuming
    /// with their last event id: time until every one has caught up.
    Resume {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 10_000)]
        streams: usize,
    },
    /// W8: a member's global stream resumed from the oldest id of logs of
    /// each size, their rooms holding `returned` events whatever the size.
    Replay {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
        events: Vec<u64>,
        #[arg(long, default_value_t = 5_000)]
        returned: u64,
    },
    /// W1 scale-out: streams spread over several instances sharing one
    /// PostgreSQL database; every stream must see every message.
    Scale {
        /// A server where a fresh database may be created.
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        postgres: String,
        #[arg(long, default_value_t = 6)]
        instances: usize,
        #[arg(long, default_value_t = 100_000)]
        streams: usize,
        #[arg(long, default_value_t = 20)]
        messages: u64,
    },
    /// One load-generating process of `scale` (started by it).
    #[command(hide = true)]
    ScaleWorker {
        #[arg(long)]
        base: String,
        #[arg(long)]
        room: String,
        #[arg(long)]
        streams: usize,
        /// The index of this worker's first admin user.
        #[arg(long)]
        first: usize,
    },
    /// Draws the recorded results (W1, W2) as SVG charts.
    Plot {
        #[arg(long, default_value = "target/bench")]
        input: std::path::PathBuf,
        #[arg(long, default_value = "docs/benchmarks")]
        output: std::path::PathBuf,
    },
    /// A few hundred streams for a few seconds: works, and loses nothing (CI).
    Smoke {
        #[command(flatten)]
        common: Common,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let outcome = match Cli::parse().workload {
        Workload::Hub { listen, heartbeat } => hub::serve(listen, heartbeat)
            .await
            .map_err(|e| e.to_string()),
        Workload::Idle {
            common,
            streams,
            seconds,
        } => idle(&common, streams, seconds).await,
        Workload::Fanout {
            common,
            subscribers,
            rates,
            step_seconds,
        } => fanout(&common, subscribers, &rates, step_seconds, "w2")
            .await
            .map(|_| ()),
        Workload::Chat {
            common,
            rooms,
            admins,
            rate,
            seconds,
            typing_rooms_percent,
            typing_rate,
            webhook,
            webhook_backlog,
        } => {
            let typing = chat::Typing {
                rooms: rooms * typing_rooms_percent as usize / 100,
                rate: typing_rate,
            };
            let webhook = match (webhook, webhook_backlog) {
                (false, _) => None,
                (true, false) => Some(chat::Webhook::Live),
                (true, true) => Some(chat::Webhook::Backlog),
            };
            chat::chat(&common, rooms, admins, rate, seconds, typing, webhook).await
        }
        Workload::Polling {
            common,
            rooms,
            messages,
            users,
            rate,
            seconds,
        } => polling::polling(&common, rooms, messages, users, rate, seconds).await,
        Workload::Writes {
            common,
            rooms,
            writers,
            seconds,
            instances,
        } => writes::writes(&common, rooms, &writers, seconds, instances).await,
        Workload::Resume { common, streams } => resume(&common, streams).await,
        Workload::Replay {
            common,
            events,
            returned,
        } => replay::replay(&common, &events, returned).await,
        Workload::Scale {
            postgres,
            instances,
            streams,
            messages,
        } => scale::scale(&postgres, instances, streams, messages).await,
        Workload::ScaleWorker {
            base,
            room,
            streams,
            first,
        } => scale::worker(&base, &room, streams, first).await,
        Workload::Plot { input, output } => plot::plot(&input, &output),
        Workload::Smoke { common } => smoke(&common).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat-load: {error}");
            ExitCode::FAILURE
        }
    }
}

fn token(sub: &str) -> String {
    token_as(sub, "admin")
}

fn token_as(sub: &str, role: &str) -> String {
    let claims = json!({"sub": sub, "role": role, "exp": now_micros() / 1_000_000 + 86_400});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap_or_default()
}

impl Common {
    /// The `--server-env` settings, after `base`'s.
    fn server_env<'a>(&'a self, base: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        base.iter()
            .copied()
            .chain(
                self.server_env
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str())),
            )
            .collect()
    }

    fn store(&self) -> StoreChoice {
        match self.store {
            Store::Sqlite => StoreChoice::Sqlite,
            Store::Postgres => StoreChoice::Postgres(self.postgres.clone()),
        }
    }
}

/// One server under test, set up for a workload: where subscribers connect
/// and how to publish.
struct Target {
    served: Served,
    stream_urls: Vec<String>,
    publish_url: String,
    ours: bool,
    http: reqwest::Client,
    publisher: String,
}

/// What a workload measures, one after the other: ours, then (unless
/// `--no-reference`) the reference hub.
fn lineup(common: &Common) -> &'static [bool] {
    if common.no_reference {
        &[true]
    } else {
        &[true, false]
    }
}

impl Target {
    /// chat-server's `/api/chat/sse/stats`, as it answered.
    async fn stream_stats(&self) -> Result<String, String> {
        let answer = self
            .http
            .get(format!("{}/api/chat/sse/stats", self.served.base))
            .bearer_auth(&self.publisher)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Ok(answer.text().await.unwrap_or_default())
    }

    async fn start(common: &Common, ours: bool, heartbeat: &str) -> Result<Self, String> {
        if ours {
            Self::ours(common, heartbeat).await
        } else {
            Self::hub(heartbeat).await
        }
    }

    async fn ours(common: &Common, heartbeat: &str) -> Result<Self, String> {
        let served = Served::chat_server(
            &common.store(),
            SECRET,
            &common.server_env(&[("CHAT_HEARTBEAT_INTERVAL", heartbeat)]),
        )
        .await?;
        let http = reqwest::Client::new();
        let publisher = token("load-publisher");
        let room = create_room(&http, &served.base, &publisher, json!({"name": "load"})).await?;
        Ok(Self {
            stream_urls: vec![
                format!("{}/api/chat/sse?roomId={room}", served.base),
                format!("{}/api/chat/sse", served.base),
            ],
            publish_url: format!("{}/api/chat/rooms/{room}/messages", served.base),
            served,
            ours: true,
            http,
            publisher,
        })
    }

    async fn hub(heartbeat: &str) -> Result<Self, String> {
        let served = Served::hub(heartbeat).await?;
        Ok(Self {
            stream_urls: vec![format!("{}/sse", served.base)],
            publish_url: format!("{}/publish", served.base),
            served,
            ours: false,
            http: reqwest::Client::new(),
            publisher: String::new(),
        })
    }

    /// Creates `count` more rooms, the `index`th with `members(index)`;
    /// returns their ids, in order.
    async fn create_rooms(
        &self,
        count: usize,
        members: impl Fn(usize) -> Vec<String>,
    ) -> Result<Vec<String>, String> {
        let creations = (0..count).map(|index| {
            let room = json!({"name": format!("load {index}"), "memberIds": members(index)});
            create_room(&self.http, &self.served.base, &self.publisher, room)
        });
        futures::stream::iter(creations)
            .buffered(4)
            .try_collect()
            .await
    }

    /// Where a room takes messages.
    fn messages_url(&self, room: &str) -> String {
        format!("{}/api/chat/rooms/{room}/messages", self.served.base)
    }

    /// How many messages the store holds: the sum of every room's newest
    /// seq, read page by page through the listing.
    async fn stored_messages(&self) -> Result<u64, String> {
        let (mut total, mut page_token) = (0, None::<String>);
        loop {
            // Page tokens are URL-safe base64: no escaping needed.
            let next = page_token.map_or(String::new(), |t| format!("&pageToken={t}"));
            let url = format!("{}/api/chat/rooms?limit=500{next}", self.served.base);
            let page = json_of(self.http.get(url).bearer_auth(&self.publisher)).await?;
            let rooms = page["rooms"].as_array().cloned().unwrap_or_default();
            total += rooms
                .iter()
                .filter_map(|room| room["lastMessage"]["seq"].as_u64())
                .sum::<u64>();
            match page["nextPageToken"].as_str() {
                Some(next) => page_token = Some(next.to_owned()),
                None => return Ok(total),
            }
        }
    }

    /// Opens `count` streams, each as a distinct admin (`mixed`: alternately
    /// room and global streams); returns how long connecting took.
    async fn open(
        &self,
        count: usize,
        mixed: bool,
        tally: &Arc<Tally>,
    ) -> Result<Duration, String> {
        self.open_streams(count, mixed, false, tally).await
    }

    /// `open`, with streams that reconnect and resume by id when cut.
    async fn open_streams(
        &self,
        count: usize,
        mixed: bool,
        resuming: bool,
        tally: &Arc<Tally>,
    ) -> Result<Duration, String> {
        let streams = (0..count).map(|index| {
            let url = &self.stream_urls[if mixed {
                index % self.stream_urls.len()
            } else {
                0
            }];
            let token = self.ours.then(|| token(&format!("load-admin-{index}")));
            (url.clone(), token)
        });
        self.connect(streams, resuming, tally).await
    }

    /// Opens a stream for each (URL, token), the `index`th counting in
    /// `tally` at `index`, at most 256 connecting at once; returns once all
    /// are open, with how long that took.
    async fn connect(
        &self,
        streams: impl IntoIterator<Item = (String, Option<String>)>,
        resuming: bool,
        tally: &Arc<Tally>,
    ) -> Result<Duration, String> {
        streams::open_all(streams, resuming, tally)
            .await
            .map_err(|e| format!("{e} on {}", self.served.name))
    }

    /// Publishes message `n`, retrying (idempotently, by clientId) until stored.
    async fn publish(&self, n: u64) -> Result<(), String> {
        self.publish_to(&self.publish_url, &Body::text(n, None), n)
            .await
    }

    /// Publishes `body` as message `n` at `url` (ours: a room's messages;
    /// the hub: its publish URL). The hub is sent an event of the same shape
    /// and size as ours sends, so both move the same bytes.
    async fn publish_to(&self, url: &str, body: &str, n: u64) -> Result<(), String> {
        let hub_event = json!({"type": "message", "message": {
            "id": "01a21bc8-1182-706a-bfb3-288d70bd4d7d",
            "roomId": "01a21bc8-1175-756f-9e0c-38792acfab03",
            "seq": n, "authorId": "load-publisher", "body": body,
            "clientId": format!("n{n}"), "createdAt": "2026-11-27T06:53:46.242Z"}})
        .to_string();
        for _ in 0..20 {
            let request = if self.ours {
                self.http
                    .post(url)
                    .bearer_auth(&self.publisher)
                    .json(&json!({"body": body, "clientId": format!("n{n}")}))
            } else {
                self.http.post(url).body(hub_event.clone())
            };
            if matches!(request.send().await, Ok(r) if r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(format!("could not publish message {n}"))
    }
}

#[derive(Serialize, Clone)]
struct Step {
    target: &'static str,
    rate: u32,
    achieved_rate: f64,
    deliveries_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    lost: u64,
    duplicates: u64,
}

/// Posts a fan-out publisher may have in flight at once.
const IN_FLIGHT: usize = 32;

/// W2: one room, `subscribers` streams, the publish rate stepped through `rates`.
async fn fanout(
    common: &Common,
    subscribers: usize,
    rates: &[u32],
    step_seconds: u64,
    name: &str,
) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for &ours in lineup(common) {
        let target = Target::start(common, ours, "25s").await?;
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
        if target.ours {
            println!("chat-server stream stats: {}", target.stream_stats().await?);
        }
    }
    write_json(name, common, &steps)?;
    Ok(steps)
}

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
async fn idle(common: &Common, count: usize, seconds: u64) -> Result<(), String> {
    let mut results = Vec::new();
    for &ours in lineup(common) {
        let target = Target::start(common, ours, "1s").await?;
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
async fn resume(common: &Common, count: usize) -> Result<(), String> {
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
    if target.ours {
        // How the catch-ups were served: from the window (memory) or the store.
        println!("chat-server stream stats: {}", target.stream_stats().await?);
    }
    write_json("w6", common, &result)
}

/// The CI smoke: works end to end and loses nothing.
async fn smoke(common: &Common) -> Result<(), String> {
    let common = Common {
        no_reference: true,
        ..common.clone()
    };
    let steps = fanout(&common, 300, &[20], 3, "smoke").await?;
    let lost: u64 = steps.iter().map(|s| s.lost + s.duplicates).sum();
    let delivered = steps.iter().all(|s| s.deliveries_per_s > 0.0);
    if lost > 0 || !delivered {
        return Err(format!(
            "smoke failed: {lost} lost or duplicated, delivered: {delivered}"
        ));
    }
    println!("smoke: ok, nothing lost or duplicated");
    Ok(())
}

/// Sends `request` and reads its JSON answer; a status other than 2xx is an error.
async fn json_of(request: reqwest::RequestBuilder) -> Result<serde_json::Value, String> {
    request
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}

/// Creates a room on the server at `base`, as `token`; returns its id.
async fn create_room(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    room: serde_json::Value,
) -> Result<String, String> {
    let url = format!("{base}/api/chat/rooms");
    let room = json_of(http.post(url).bearer_auth(token).json(&room)).await?;
    Ok(room["id"].as_str().unwrap_or_default().to_owned())
}

fn write_json<T: Serialize>(name: &str, common: &Common, rows: &T) -> Result<(), String> {
    let dir = std::path::Path::new("target/bench");
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let store = match common.store {
        Store::Sqlite => "sqlite",
        Store::Postgres => "postgres",
    };
    let path = dir.join(format!("{name}-{store}.json"));
    let text =
        serde_json::to_string_pretty(&json!({"workload": name, "store": store, "rows": rows}))
            .map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    println!("wrote {}", path.display());
    Ok(())
}
