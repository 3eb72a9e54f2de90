//! W3: chat-shaped load. Many rooms with one widget stream each (a user, a
//! member of that room only), a few admin panels watching every room, and
//! messages spread over the rooms at a fixed total rate. Each room's messages
//! are numbered on their own: every stream counts, room by room, what it got
//! and what came twice. Optionally the first rooms' users also send typing
//! notices at a fixed rate each, and every stream takes signals: typing is
//! counted apart from the messages, as what it cost. With `--webhook`,
//! chat-server also delivers every message to one fast receiver in this
//! process, counted as the streams are (the hub has no webhooks); with
//! `--webhook-backlog` the receiver refuses until the last post, then
//! takes the whole backlog: the catch-up rate.

use crate::histogram::Histogram;
use crate::report::write_json;
use crate::streams::{Body, Tally};
use crate::target::{Server, Target, lineup, token, token_as};
use crate::{Common, webhook};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Publisher tasks; each owns every `PUBLISHERS`th room.
const PUBLISHERS: usize = 64;

/// Typist tasks; each owns every `TYPISTS`th typing room. Each awaits its
/// posts one by one, so enough of them that 1,000/s keep up.
const TYPISTS: usize = 32;

/// How the webhook receiver takes the messages.
#[derive(Clone, Copy, PartialEq)]
pub enum Webhook {
    /// As they come.
    Live,
    /// Refused (503) until the last post, then all at once.
    Backlog,
}

/// The typing load: the first `rooms` rooms' users each send `rate` typing
/// notices a second while the messages go.
#[derive(Clone, Copy)]
pub struct Typing {
    pub rooms: usize,
    pub rate: f64,
}

#[derive(Serialize)]
struct ChatResult {
    target: &'static str,
    rooms: usize,
    admins: usize,
    rate: u32,
    achieved_rate: f64,
    connect_s: f64,
    deliveries_per_s: f64,
    widget_p50_ms: f64,
    widget_p99_ms: f64,
    widget_max_ms: f64,
    admin_p50_ms: f64,
    admin_p99_ms: f64,
    admin_max_ms: f64,
    /// A post's answer, from when it was due: what of the delivery latency
    /// is spent before the server has committed and answered.
    post_p50_ms: f64,
    post_p99_ms: f64,
    lost: u64,
    duplicates: u64,
    server_cpu_percent: f64,
    server_rss_kib: u64,
    typing_rooms: usize,
    typing_rate: f64,
    typing_sent: u64,
    /// Typing posts that failed or were answered other than 200/204.
    typing_failed: u64,
    /// Typing signals received, widgets and panels together.
    typing_deliveries: u64,
    /// Of those due (each answered notice to its widget and every panel),
    /// how many never came (signals are live only: a lagging stream may
    /// miss some, by design).
    typing_missed: u64,
    /// Of the missed, how many were the panels' (the rest, the widgets').
    typing_missed_by_panels: u64,
    typing_deliveries_per_s: f64,
    /// Presence signals received (only with typing on, as only then do the
    /// streams take signals): mostly as the widgets connect, before the run.
    presence_deliveries: u64,
    /// With `--webhook` (ours only; null otherwise): what the receiver took.
    webhook: Option<WebhookResult>,
}

#[derive(Serialize)]
struct WebhookResult {
    /// Distinct messages received.
    events: u64,
    lost: u64,
    duplicates: u64,
    out_of_order: u64,
    /// POSTs (each a batch of events).
    deliveries: u64,
    /// From when the message's post was due to when its delivery came.
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Distinct messages a second, between the first and last delivery
    /// taken.
    events_per_s: f64,
    /// After the last post, how long until the last delivery came.
    drain_s: f64,
}

/// What the typists did.
#[derive(Default)]
struct Typed {
    sent: u64,
    failed: u64,
    /// The first failure, to print.
    first_failure: Option<String>,
}

/// What W3 runs: the rooms, the panels, the messages' rate and for how long,
/// and what it adds (typing, a webhook).
#[derive(Clone, Copy)]
struct Load {
    rooms: usize,
    admins: usize,
    rate: u32,
    seconds: u64,
    typing: Typing,
    webhook: Option<Webhook>,
}

pub async fn chat(
    common: &Common,
    rooms: usize,
    admins: usize,
    rate: u32,
    seconds: u64,
    typing: Typing,
    webhook: Option<Webhook>,
) -> Result<(), String> {
    let load = Load {
        rooms,
        admins,
        rate,
        seconds,
        typing,
        webhook,
    };
    let mut results = Vec::new();
    for &server in lineup(common) {
        let (result, typed) = run(common, server, load).await?;
        print(&result, &typed);
        results.push(result);
    }
    write_json("w3", common, &results)
}

/// The addresses one server is loaded through, each stream's with its token.
struct Urls {
    widget_streams: Vec<(String, Option<String>)>,
    /// Where each room's messages are posted.
    publish: Vec<String>,
    global: String,
    /// Where each typing room's notices are posted.
    typing_posts: Vec<(String, Option<String>)>,
}

/// Starts the server; ours, with a webhook, as its receiver here needs.
async fn start(common: &Common, server: Server, load: Load) -> Result<Target, String> {
    if server == Server::Ours && load.webhook.is_some() {
        // The receiver is on this machine, and a refused backlog is
        // tried again within a second.
        let mut common = common.clone();
        for (name, value) in [
            ("CHAT_WEBHOOK_ALLOW_INTERNAL_ADDRESSES", "true"),
            ("CHAT_WEBHOOK_RETRY_MAX_INTERVAL", "1s"),
        ] {
            common.server_env.insert(0, (name.into(), value.into()));
        }
        Target::start(&common, server, "25s").await
    } else {
        Target::start(common, server, "25s").await
    }
}

/// Creates the rooms (ours) and says where everything goes.
async fn urls(target: &Target, server: Server, load: Load) -> Result<Urls, String> {
    let base = &target.served.base;
    // With typing on, every stream takes signals, as the pages' do.
    let (and_signals, with_signals) = if load.typing.rooms > 0 {
        ("&signals=true", "?signals=true")
    } else {
        ("", "")
    };
    if server == Server::Hub {
        let rooms = load.rooms;
        return Ok(Urls {
            widget_streams: (0..rooms)
                .map(|room| (format!("{base}/sse?room={room}"), None))
                .collect(),
            publish: (0..rooms)
                .map(|room| format!("{base}/publish?room={room}"))
                .collect(),
            global: format!("{base}/sse"),
            typing_posts: (0..load.typing.rooms.min(rooms))
                .map(|room| (format!("{base}/typing?room={room}"), None))
                .collect(),
        });
    }
    let ids = target
        .create_rooms(load.rooms, |index| vec![format!("load-user-{index}")])
        .await?;
    let user = |index: usize| Some(token_as(&format!("load-user-{index}"), "user"));
    Ok(Urls {
        widget_streams: ids
            .iter()
            .enumerate()
            .map(|(index, room)| {
                let url = format!("{base}/api/chat/sse?roomId={room}{and_signals}");
                (url, user(index))
            })
            .collect(),
        publish: ids.iter().map(|room| target.messages_url(room)).collect(),
        global: format!("{base}/api/chat/sse{with_signals}"),
        typing_posts: ids
            .iter()
            .take(load.typing.rooms)
            .enumerate()
            .map(|(index, room)| (format!("{base}/api/chat/rooms/{room}/typing"), user(index)))
            .collect(),
    })
}

/// Measures one server: connects the streams, posts and types for the
/// load's time, waits for what is due, and tallies.
async fn run(common: &Common, server: Server, load: Load) -> Result<(ChatResult, Typed), String> {
    let Load { rooms, admins, .. } = load;
    let target = start(common, server, load).await?;
    let urls = urls(&target, server, load).await?;
    let (widgets, panels) = (Tally::new(rooms), Tally::new(admins));
    let connect = target.connect(urls.widget_streams, false, &widgets).await?;
    let admin_streams = (0..admins).map(|index| {
        let token = (server == Server::Ours).then(|| token(&format!("load-panel-{index}")));
        (urls.global.clone(), token)
    });
    target.connect(admin_streams, false, &panels).await?;
    println!(
        "{}: {rooms} widget streams connected in {:.1} s, and {admins} admin panels",
        target.served.name,
        connect.as_secs_f64()
    );

    let receiver = match load.webhook {
        Some(how) if server == Server::Ours => {
            let received = register_receiver(&target).await?;
            received
                .refusing
                .store(how == Webhook::Backlog, Ordering::Relaxed);
            Some(received)
        }
        _ => None,
    };
    let cpu_before = target.served.sample().cpu_ticks;
    let (started, started_micros) = (Instant::now(), crate::streams::now_micros());
    let target = Arc::new(target);
    let posts = Arc::new(Histogram::new());
    let publishers = publish(
        &target,
        urls.publish,
        load,
        (started, started_micros),
        &posts,
    );
    let typists = typists(
        &target,
        urls.typing_posts,
        load.typing.rate,
        started,
        load.seconds,
    );
    let mut published = vec![0u64; rooms];
    for publisher in publishers {
        for (room, count) in publisher.await.map_err(|e| e.to_string())?? {
            published[room] = count;
        }
    }
    let publishing = started.elapsed().as_secs_f64();
    let published_micros = crate::streams::now_micros();
    if let Some(received) = &receiver {
        received.refusing.store(false, Ordering::Relaxed);
    }
    let mut typed = Typed::default();
    for typist in typists {
        let done = typist.await.map_err(|e| e.to_string())?;
        typed.sent += done.sent;
        typed.failed += done.failed;
        typed.first_failure = typed.first_failure.or(done.first_failure);
    }
    let total: u64 = published.iter().sum();
    let lost = |widgets: &Tally, panels: &Tally| {
        let widget_tails: u64 = published
            .iter()
            .zip(&widgets.received)
            .map(|(&sent, got)| sent.saturating_sub(got.load(Ordering::Relaxed)))
            .sum();
        let panel_distinct =
            panels.deliveries.load(Ordering::Relaxed) - panels.duplicates.load(Ordering::Relaxed);
        widget_tails + (total * admins as u64).saturating_sub(panel_distinct)
    };
    // Each typing notice answered goes to its room's widget and every panel.
    let typing_due = (typed.sent - typed.failed) * (1 + admins as u64);
    let typing_got =
        || widgets.typing.load(Ordering::Relaxed) + panels.typing.load(Ordering::Relaxed);
    let drain = Instant::now();
    while (lost(&widgets, &panels) > 0 || typing_got() < typing_due)
        && drain.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sample = target.served.sample();
    let delivered =
        widgets.deliveries.load(Ordering::Relaxed) + panels.deliveries.load(Ordering::Relaxed);
    let typing_delivered = typing_got();
    let webhook = match &receiver {
        Some(received) => Some(drain_webhook(received, total, published_micros).await),
        None => None,
    };
    let result = ChatResult {
        target: target.served.name,
        rooms,
        admins,
        rate: load.rate,
        achieved_rate: total as f64 / publishing,
        connect_s: connect.as_secs_f64(),
        deliveries_per_s: delivered as f64 / publishing,
        widget_p50_ms: widgets.latency.percentile_ms(0.50),
        widget_p99_ms: widgets.latency.percentile_ms(0.99),
        widget_max_ms: widgets.latency.max_ms(),
        admin_p50_ms: panels.latency.percentile_ms(0.50),
        admin_p99_ms: panels.latency.percentile_ms(0.99),
        admin_max_ms: panels.latency.max_ms(),
        post_p50_ms: posts.percentile_ms(0.50),
        post_p99_ms: posts.percentile_ms(0.99),
        lost: lost(&widgets, &panels),
        duplicates: widgets.duplicates.load(Ordering::Relaxed)
            + panels.duplicates.load(Ordering::Relaxed),
        server_cpu_percent: (sample.cpu_ticks - cpu_before) as f64 * 10.0 / (publishing * 1000.0)
            * 100.0,
        server_rss_kib: sample.rss_kib,
        typing_rooms: load.typing.rooms.min(rooms),
        typing_rate: load.typing.rate,
        typing_sent: typed.sent,
        typing_failed: typed.failed,
        typing_deliveries: typing_delivered,
        typing_missed: typing_due.saturating_sub(typing_delivered),
        typing_missed_by_panels: ((typed.sent - typed.failed) * admins as u64)
            .saturating_sub(panels.typing.load(Ordering::Relaxed)),
        typing_deliveries_per_s: typing_delivered as f64 / publishing,
        presence_deliveries: widgets.presence.load(Ordering::Relaxed)
            + panels.presence.load(Ordering::Relaxed),
        webhook,
    };
    Ok((result, typed))
}

/// A publisher task: how many it posted to each of its rooms.
type Publisher = tokio::task::JoinHandle<Result<Vec<(usize, u64)>, String>>;

/// The publisher tasks, posting at the load's rate from `started` (an
/// instant, and the same in microseconds of the clock the bodies carry);
/// each says how many it posted to each of its rooms.
fn publish(
    target: &Arc<Target>,
    urls: Vec<String>,
    load: Load,
    (started, started_micros): (Instant, u64),
    posts: &Arc<Histogram>,
) -> Vec<Publisher> {
    let urls = Arc::new(urls);
    let per_publisher = f64::from(load.rate) / PUBLISHERS as f64;
    let messages = u64::from(load.rate) * load.seconds / PUBLISHERS as u64;
    let publishers = PUBLISHERS.min(load.rooms);
    (0..publishers)
        .map(|publisher| {
            let (target, urls, posts) = (target.clone(), urls.clone(), posts.clone());
            tokio::spawn(async move {
                let own: Vec<usize> = (publisher..urls.len()).step_by(PUBLISHERS).collect();
                let mut sent = vec![0u64; own.len()];
                // Each publisher's ticks are offset by its share of the period:
                // started in step, the 64 of them post in bursts of 64, which
                // the server takes as one batch and the rest wait behind.
                let period = Duration::from_secs_f64(1.0 / per_publisher);
                let phase = period.mul_f64(publisher as f64 / publishers as f64);
                let mut tick = tokio::time::interval_at(
                    tokio::time::Instant::from_std(started) + phase,
                    period,
                );
                for message in 0..messages as usize {
                    // Latency counts from when the post was due, not from
                    // when it went: a publisher that falls behind (missed
                    // ticks fire at once) shows its queueing instead of
                    // hiding it.
                    let due = tick.tick().await;
                    let due_micros = started_micros
                        + due
                            .into_std()
                            .saturating_duration_since(started)
                            .as_micros() as u64;
                    let slot = message % own.len();
                    sent[slot] += 1;
                    let room = own[slot];
                    let body = Body::sent_at(due_micros, sent[slot], Some(room as u64));
                    target.publish_to(&urls[room], &body, sent[slot]).await?;
                    posts.record(due.elapsed().as_micros() as u64);
                }
                Ok::<_, String>(own.into_iter().zip(sent).collect::<Vec<_>>())
            })
        })
        .collect()
}

/// Prints one server's line (and its typing's, and its webhook's).
fn print(result: &ChatResult, typed: &Typed) {
    println!(
        "{:>12}: {:.0} msg/s over {} rooms, {:.0} deliveries/s; widgets p50 {:.1} ms p99 {:.1} ms max {:.1} ms; admins p50 {:.1} ms p99 {:.1} ms max {:.1} ms; posts p50 {:.1} ms p99 {:.1} ms; lost {} dup {}; server CPU {:.0} %, RSS {} KiB",
        result.target,
        result.achieved_rate,
        result.rooms,
        result.deliveries_per_s,
        result.widget_p50_ms,
        result.widget_p99_ms,
        result.widget_max_ms,
        result.admin_p50_ms,
        result.admin_p99_ms,
        result.admin_max_ms,
        result.post_p50_ms,
        result.post_p99_ms,
        result.lost,
        result.duplicates,
        result.server_cpu_percent,
        result.server_rss_kib
    );
    if result.typing_rooms > 0 {
        println!(
            "{:>12}: typing in {} rooms at {}/s: {} sent, {} failed, {} delivered ({:.0}/s), {} missed ({} by the panels); {} presence signals delivered",
            result.target,
            result.typing_rooms,
            result.typing_rate,
            result.typing_sent,
            result.typing_failed,
            result.typing_deliveries,
            result.typing_deliveries_per_s,
            result.typing_missed,
            result.typing_missed_by_panels,
            result.presence_deliveries
        );
        if let Some(failure) = &typed.first_failure {
            println!("{:>12}: first typing failure: {failure}", result.target);
        }
    }
    if let Some(hook) = &result.webhook {
        println!(
            "{:>12}: webhook: {} messages ({:.0}/s) in {} deliveries, p50 {:.1} ms p99 {:.1} ms max {:.1} ms, drained {:.2} s after the last post; lost {} dup {} out of order {}",
            result.target,
            hook.events,
            hook.events_per_s,
            hook.deliveries,
            hook.p50_ms,
            hook.p99_ms,
            hook.max_ms,
            hook.drain_s,
            hook.lost,
            hook.duplicates,
            hook.out_of_order
        );
    }
}

/// Starts a receiver and registers it with chat-server for every message.
async fn register_receiver(target: &Target) -> Result<Arc<webhook::Received>, String> {
    let (url, received) = webhook::start().await?;
    let answer = target
        .http
        .post(format!("{}/api/chat/webhooks", target.served.base))
        .bearer_auth(&target.publisher)
        .json(&serde_json::json!({"url": url, "eventTypes": ["message.created"]}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !answer.status().is_success() {
        let status = answer.status();
        return Err(format!(
            "registering the webhook: {status} {}",
            answer.text().await.unwrap_or_default()
        ));
    }
    Ok(received)
}

/// Waits (up to 60 s) for the receiver to have all `total` messages; what
/// it took.
async fn drain_webhook(
    received: &webhook::Received,
    total: u64,
    published_micros: u64,
) -> WebhookResult {
    let waiting = Instant::now();
    while received.distinct() < total && waiting.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = received.distinct();
    let first = received.first_micros.get().copied().unwrap_or(0);
    let last = received.last_micros.load(Ordering::Relaxed);
    WebhookResult {
        events,
        lost: total.saturating_sub(events),
        duplicates: received.duplicates.load(Ordering::Relaxed),
        out_of_order: received.out_of_order.load(Ordering::Relaxed),
        deliveries: received.deliveries.load(Ordering::Relaxed),
        p50_ms: received.latency.percentile_ms(0.50),
        p99_ms: received.latency.percentile_ms(0.99),
        max_ms: received.latency.max_ms(),
        events_per_s: events as f64 / (last.saturating_sub(first).max(1) as f64 / 1e6),
        drain_s: last.saturating_sub(published_micros) as f64 / 1e6,
    }
}

/// Starts the typists: over `seconds` from `started`, each of `posts`
/// (URL, token: one typing room's) is posted `rate` times a second,
/// `{"typing": true}`, answers checked.
fn typists(
    target: &Arc<Target>,
    posts: Vec<(String, Option<String>)>,
    rate: f64,
    started: Instant,
    seconds: u64,
) -> Vec<tokio::task::JoinHandle<Typed>> {
    if posts.is_empty() || rate <= 0.0 {
        return Vec::new();
    }
    let posts = Arc::new(posts);
    let typists = TYPISTS.min(posts.len());
    (0..typists)
        .map(|typist| {
            let (target, posts) = (target.clone(), posts.clone());
            tokio::spawn(async move {
                let own: Vec<usize> = (typist..posts.len()).step_by(TYPISTS).collect();
                let per_second = own.len() as f64 * rate;
                let count = (per_second * seconds as f64).round() as usize;
                // Offset like the publishers', so the typists do not post in step.
                let period = Duration::from_secs_f64(1.0 / per_second);
                let phase = period.mul_f64(typist as f64 / typists as f64);
                let mut tick = tokio::time::interval_at(
                    tokio::time::Instant::from_std(started) + phase,
                    period,
                );
                let mut typed = Typed::default();
                // In turn, so each room's notices come evenly `1 / rate` apart.
                for notice in 0..count {
                    tick.tick().await;
                    let (url, token) = &posts[own[notice % own.len()]];
                    let mut request = target
                        .http
                        .post(url)
                        .json(&serde_json::json!({"typing": true}));
                    if let Some(token) = token {
                        request = request.bearer_auth(token);
                    }
                    typed.sent += 1;
                    let failure = match request.send().await {
                        Ok(answer) if matches!(answer.status().as_u16(), 200 | 204) => None,
                        Ok(answer) => Some(format!("{} from {url}", answer.status())),
                        Err(error) => Some(format!("{error} from {url}")),
                    };
                    if let Some(failure) = failure {
                        typed.failed += 1;
                        typed.first_failure.get_or_insert(failure);
                    }
                }
                typed
            })
        })
        .collect()
}
