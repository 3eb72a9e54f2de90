//! `chat-load`: measures chat-server beside a reference bare axum hub in the
//! same run, so every figure is also a ratio. Each workload is one command:
//! it starts the server (and the hub) itself, loads it from this process,
//! samples the server's memory, CPU and open files from `/proc`, prints a
//! table and writes JSON under `target/bench/`.

mod chat;
mod corpus;
mod fanout;
mod histogram;
mod hub;
mod idle;
mod inbox;
mod plot;
mod polling;
mod process;
mod replay;
mod report;
mod resume;
mod scale;
mod search;
mod seed;
mod smoke;
mod streams;
mod target;
mod uploads;
mod webhook;
mod writes;

use clap::{Parser, Subcommand, ValueEnum};
use process::StoreChoice;
use serde::Serialize;
use std::process::ExitCode;
use std::time::Duration;

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
    /// W9: a support inbox's views and counts over many seeded rooms.
    Inbox {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 100_000)]
        rooms: u64,
        /// Requests per view, one after another.
        #[arg(long, default_value_t = 500)]
        requests: u64,
    },
    /// W10: attachments: eight 25 MB uploads at once (the server's memory
    /// sampled), and upload and download throughput on the disk backend
    /// (and S3, given `--s3-endpoint`) beside the storage alone.
    Uploads {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 8)]
        concurrent: usize,
        /// An S3-compatible server (moto, MinIO) to run the S3 backend against.
        #[arg(long)]
        s3_endpoint: Option<String>,
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
    /// W11: message search over rooms seeded with chat-like text: the
    /// index's size, then one- and two-word queries (newest first and by
    /// relevance) from concurrent searchers, admins and then members.
    Search {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 10_000)]
        rooms: usize,
        #[arg(long, default_value_t = 1_000_000)]
        messages: usize,
        /// Concurrent searchers.
        #[arg(long, default_value_t = 20)]
        searchers: usize,
        /// How often each searcher asks, a phase of each: `0s` asks the
        /// next query when the last is answered (the most the store
        /// answers); `1s` is an agent searching every second.
        #[arg(long, value_delimiter = ',', default_value = "0s,1s", value_parser = humantime::parse_duration)]
        paces: Vec<Duration>,
        /// How long each phase (admins, members) is measured.
        #[arg(long, default_value_t = 20)]
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
        } => idle::idle(&common, streams, seconds).await,
        Workload::Fanout {
            common,
            subscribers,
            rates,
            step_seconds,
        } => fanout::fanout(&common, subscribers, &rates, step_seconds, "w2")
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
        Workload::Inbox {
            common,
            rooms,
            requests,
        } => inbox::inbox(&common, rooms, requests).await,
        Workload::Uploads {
            common,
            concurrent,
            s3_endpoint,
        } => uploads::uploads(&common, concurrent, s3_endpoint.as_deref()).await,
        Workload::Polling {
            common,
            rooms,
            messages,
            users,
            rate,
            seconds,
        } => polling::polling(&common, rooms, messages, users, rate, seconds).await,
        Workload::Search {
            common,
            rooms,
            messages,
            searchers,
            paces,
            seconds,
        } => search::search(&common, rooms, messages, searchers, &paces, seconds).await,
        Workload::Writes {
            common,
            rooms,
            writers,
            seconds,
            instances,
        } => writes::writes(&common, rooms, &writers, seconds, instances).await,
        Workload::Resume { common, streams } => resume::resume(&common, streams).await,
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
        Workload::Smoke { common } => smoke::smoke(&common).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat-load: {error}");
            ExitCode::FAILURE
        }
    }
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
