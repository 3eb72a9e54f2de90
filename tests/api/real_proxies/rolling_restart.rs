//! Rolling restart without loss (issue 14, point 2): two instances on one
//! PostgreSQL database behind nginx (`deploy/nginx.conf`, both upstreams),
//! a writer that posts through nginx and retries each post with its
//! `clientId` until acknowledged, and 50 streams that follow the protocol
//! (end or error: wait `retry:`, reopen with `Last-Event-ID`). A and then B
//! are stopped with SIGTERM and started again as `docs/deployment.md` says;
//! every stream ends up with every acknowledged message it may see, once, in
//! order, and the test prints the figures the document quotes.
//!
//! `Pair` (the instances, nginx, the procedure) and `Writer` serve the
//! browser's rolling-restart test too (`browser::rolling_restart`).

use super::harness::{Kind, Proxy};
use crate::support::{
    Backend, HELPER_ADMIN, ServerProcess, SharedDb, WAIT, admin, claims, stream_request, user,
};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The drain's timings, short so the test takes seconds: each stream ends
/// at a random moment within `SPREAD` of the SIGTERM, told to come back
/// after `RETRY`; the process exits by `DEADLINE` whatever happens.
const SPREAD: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_secs(1);
const DEADLINE: Duration = Duration::from_secs(6);
const HEARTBEAT: Duration = Duration::from_millis(200);
/// nginx's `proxy_read_timeout`: many heartbeats long.
const PROXY_TIMEOUT: Duration = Duration::from_secs(5);

/// Two server processes on one database, A and B on fixed ports (a restart
/// comes back where nginx expects it), and nginx in front of both.
pub struct Pair {
    pub nginx: Proxy,
    instances: [Instance; 2],
    env: Vec<(&'static str, String)>,
    db: SharedDb,
    http: reqwest::Client,
}

struct Instance {
    name: &'static str,
    port: u16,
    server: ServerProcess,
}

/// What one restart took.
#[derive(Debug, Clone, Copy)]
pub struct Restart {
    pub signalled: Instant,
    /// From the SIGTERM to a connect being refused.
    pub refusing: Duration,
    /// From the SIGTERM to an idle kept-alive connection's close.
    pub idle_closed: Duration,
    /// From the SIGTERM to the exit (status 0).
    pub drained: Duration,
    /// From the exit to `/readyz` answering 200 on the new process.
    pub started: Duration,
    /// From that `200` to the first request nginx passed it.
    pub taken_back: Duration,
}

impl Pair {
    /// `None` (after saying so loudly) where nginx or PostgreSQL is missing.
    pub async fn start(test: &str) -> Option<Self> {
        let program = Kind::Nginx.installed(test)?;
        let backend = Backend::postgres()?;
        let db = SharedDb::create(&backend).await;
        let env = vec![
            ("CHAT_HEARTBEAT_INTERVAL", millis(HEARTBEAT)),
            ("CHAT_SHUTDOWN_SPREAD", millis(SPREAD)),
            ("CHAT_SHUTDOWN_DEADLINE", millis(DEADLINE)),
            ("CHAT_STREAM_RETRY", millis(RETRY)),
            // Each request's answer in the log: it shows when nginx sends
            // to a restarted instance again.
            ("CHAT_LOG", "info,chat_server::app=debug".to_owned()),
        ];
        let mut instances = Vec::new();
        for name in ["A", "B"] {
            let port = crate::support::free_port();
            let server = ServerProcess::start_on(&db, port, &borrowed(&env)).await;
            instances.push(Instance { name, port, server });
        }
        let upstreams: Vec<String> = instances
            .iter()
            .map(|instance| format!("127.0.0.1:{}", instance.port))
            .collect();
        let upstreams: Vec<&str> = upstreams.iter().map(String::as_str).collect();
        let nginx = Proxy::start(Kind::Nginx, &program, &upstreams, PROXY_TIMEOUT).await;
        let Ok(instances) = <[Instance; 2]>::try_from(instances) else {
            unreachable!("two instances")
        };
        Some(Self {
            nginx,
            instances,
            env,
            db,
            http: reqwest::Client::new(),
        })
    }

    /// `path` through nginx.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.nginx.address)
    }

    /// Restarts A then B, each as `docs/deployment.md` says.
    pub async fn roll(&mut self) -> [Restart; 2] {
        [self.restart(0).await, self.restart(1).await]
    }

    /// The procedure for one instance: SIGTERM; wait for the exit (0, within
    /// the deadline); start it on its port; wait for its `/readyz`; then
    /// wait until nginx passes it requests again (it stops using an upstream
    /// for `fail_timeout` after a failed connect), so that stopping the next
    /// one never leaves nginx with no upstream it will try.
    async fn restart(&mut self, index: usize) -> Restart {
        let env = borrowed(&self.env);
        let instance = &mut self.instances[index];
        let name = instance.name;
        let mut idle = kept_alive(instance.port).await;
        let signalled = Instant::now();
        instance.server.terminate();
        // At once, not when the streams are done: the listener closes (a
        // connect is refused, so nginx goes to the other instance at once)
        // and idle kept-alive connections are closed (nginx drops them
        // instead of sending a request down one).
        let idle_closed = tokio::time::timeout(WAIT, closed_by_peer(&mut idle))
            .await
            .unwrap_or_else(|_| panic!("{name} kept an idle connection open while draining"));
        let idle_closed = idle_closed.duration_since(signalled);
        let refusing = refused(instance.port).await.duration_since(signalled);
        let draining = instance
            .server
            .child
            .try_wait()
            .expect("waitable")
            .is_none();
        assert!(
            draining,
            "{name} had exited before its drain could be watched"
        );
        let status = instance.server.wait_for_exit(DEADLINE + WAIT).await;
        let drained = signalled.elapsed();
        assert!(status.success(), "{name} exited with {status:?}");
        assert!(
            drained < DEADLINE,
            "{name} took {drained:?} to drain, past its {DEADLINE:?} deadline"
        );
        let exited = Instant::now();
        instance.server = ServerProcess::start_on(&self.db, instance.port, &env).await;
        let (http, readyz) = (&self.http, &instance.server.url("/readyz"));
        wait_until(&format!("{name}'s /readyz"), WAIT, || async move {
            let answer = http.get(readyz).send().await;
            answer.is_ok_and(|answer| answer.status() == StatusCode::OK)
        })
        .await;
        let ready = Instant::now();
        // Probes through nginx until one reaches the new process: only
        // nginx asks for /healthz.
        let server = &self.instances[index].server;
        let probe = &self.url("/healthz");
        wait_until(
            &format!("nginx to pass requests to {name} again"),
            WAIT,
            || async move {
                let _ = http.get(probe).send().await;
                server
                    .logs()
                    .iter()
                    .any(|line| line.contains(r#"uri="/healthz""#) && line.contains("response"))
            },
        )
        .await;
        Restart {
            signalled,
            refusing,
            idle_closed,
            drained,
            started: ready - exited,
            taken_back: ready.elapsed(),
        }
    }
}

/// A connection to the instance on `port` that has had one answer and is
/// kept alive, idle, as nginx keeps its connections to upstreams.
async fn kept_alive(port: u16) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut connection = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the instance accepts");
    connection
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("a request");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    // The head, then a body as long as it says.
    loop {
        let text = String::from_utf8_lossy(&answer).to_lowercase();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|length| length.trim().parse::<usize>().ok())
                .expect("a content-length");
            if body.len() >= length {
                assert!(head.starts_with("http/1.1 200"), "{text}");
                return connection;
            }
        }
        let read = tokio::time::timeout(WAIT, connection.read(&mut buffer))
            .await
            .expect("an answer")
            .expect("a readable connection");
        assert!(read > 0, "closed before answering");
        answer.extend_from_slice(&buffer[..read]);
    }
}

/// When the peer closed `connection` (its end, or a reset).
async fn closed_by_peer(connection: &mut tokio::net::TcpStream) -> Instant {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 64];
    loop {
        match connection.read(&mut buffer).await {
            Ok(0) | Err(_) => return Instant::now(),
            Ok(_) => {}
        }
    }
}

/// When a connect to `port` is first refused (polled, at most `WAIT`).
async fn refused(port: u16) -> Instant {
    let started = Instant::now();
    loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Instant::now();
            }
            _ => {}
        }
        assert!(started.elapsed() < WAIT, "port {port} still accepts");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

fn millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

/// Tries `done` every 50 ms until it holds; fails the test after `limit`.
async fn wait_until<F, Fut>(what: &str, limit: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One acknowledged post.
#[derive(Debug, Clone)]
pub struct Acked {
    /// The stored message, as the answer gave it.
    pub message: Value,
    pub at: Instant,
}

impl Acked {
    pub fn id(&self) -> &str {
        self.message["id"].as_str().expect("a message id")
    }

    pub fn room(&self) -> &str {
        self.message["roomId"].as_str().expect("a room id")
    }
}

/// What the writer did.
pub struct Written {
    /// Every post, acknowledged, in the order of its acknowledgement.
    pub acked: Vec<Acked>,
    /// Posts that took more than one try.
    pub retried: usize,
    /// What the failed tries met: a status, or the client's error.
    pub failures: BTreeMap<String, usize>,
}

/// Posts through nginx at a steady rate, round the rooms, as one user; each
/// post is retried with its `clientId` until acknowledged.
pub struct Writer {
    stop: watch::Sender<bool>,
    acked: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<Written>,
}

impl Writer {
    pub fn start(base: &str, token: &str, rooms: &[String], per_second: u32) -> Self {
        let (stop, stopped) = watch::channel(false);
        let (count, acked) = watch::channel(0);
        let task = tokio::spawn(write(
            reqwest::Client::new(),
            base.to_owned(),
            token.to_owned(),
            rooms.to_vec(),
            Duration::from_secs(1) / per_second,
            stopped,
            count,
        ));
        Self { stop, acked, task }
    }

    /// Waits (at most `WAIT`) until `count` posts in all were acknowledged.
    pub async fn wait_for_acks(&mut self, count: usize) {
        let reached = tokio::time::timeout(WAIT, self.acked.wait_for(|acked| *acked >= count));
        assert!(
            matches!(reached.await, Ok(Ok(_))),
            "{count} posts were not acknowledged within {WAIT:?} (only {})",
            *self.acked.borrow()
        );
    }

    pub fn acked(&self) -> usize {
        *self.acked.borrow()
    }

    /// Stops posting and waits for the posts under way to be acknowledged.
    pub async fn stop(self) -> Written {
        let _ = self.stop.send(true);
        tokio::time::timeout(WAIT * 2, self.task)
            .await
            .expect("the last posts acknowledged")
            .expect("the writer")
    }
}

async fn write(
    http: reqwest::Client,
    base: String,
    token: String,
    rooms: Vec<String>,
    every: Duration,
    mut stopped: watch::Receiver<bool>,
    count: watch::Sender<usize>,
) -> Written {
    let record = Arc::new(Mutex::new(Written {
        acked: Vec::new(),
        retried: 0,
        failures: BTreeMap::new(),
    }));
    let mut posts = tokio::task::JoinSet::new();
    let mut ticks = tokio::time::interval(every);
    for n in 0.. {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.wait_for(|stop| *stop) => break,
        }
        let url = format!("{base}/api/chat/rooms/{}/messages", rooms[n % rooms.len()]);
        let body = json!({"body": format!("post {n}"), "clientId": format!("post-{n}")});
        let (http, token, record, count) =
            (http.clone(), token.clone(), record.clone(), count.clone());
        posts.spawn(async move {
            let (message, failures) = post_until_acknowledged(&http, &url, &token, &body).await;
            let at = Instant::now();
            let mut record = record.lock().expect("the record");
            if !failures.is_empty() {
                record.retried += 1;
            }
            for failure in failures {
                *record.failures.entry(failure).or_default() += 1;
            }
            record.acked.push(Acked { message, at });
            count.send_modify(|acked| *acked += 1);
        });
    }
    while let Some(done) = posts.join_next().await {
        done.expect("a post");
    }
    let Ok(record) = Arc::try_unwrap(record) else {
        unreachable!("every post is done")
    };
    record.into_inner().expect("the record")
}

/// Sends `body` until it is acknowledged (`201`, or `200` for a retry the
/// store had already taken); the message and what each failed try met.
/// Any failure is retried, after a short pause, with the same `clientId`:
/// no answer, a `5xx` (nginx's `502` included), a `408` or a `429`.
async fn post_until_acknowledged(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> (Value, Vec<String>) {
    let mut failures = Vec::new();
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < WAIT,
            "{body} not acknowledged within {WAIT:?}: {failures:?}"
        );
        let sent = http
            .post(url)
            .bearer_auth(token)
            .json(body)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let failure = match sent {
            Ok(answer) if answer.status().is_success() => match answer.json::<Value>().await {
                Ok(message) => return (message, failures),
                Err(error) => format!("an unread answer ({error})"),
            },
            Ok(answer) => {
                let status = answer.status();
                let retryable = status.is_server_error()
                    || status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::TOO_MANY_REQUESTS;
                let text = answer.text().await.unwrap_or_default();
                assert!(retryable, "{body}: {status} is final: {text}");
                status.as_u16().to_string()
            }
            Err(error) if error.is_timeout() => "a timeout".to_owned(),
            Err(_) => "a connection error".to_owned(),
        };
        failures.push(failure);
        let pause = 50 * failures.len().min(10) as u64;
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// The events of a stream as they come off the wire: the fields this
/// client acts on, `retry:` included (a block with no data is an event too).
#[derive(Default)]
struct SseReader {
    text: String,
    block: Block,
}

#[derive(Default, Debug)]
struct Block {
    id: Option<String>,
    data: String,
    retry: Option<u64>,
}

impl SseReader {
    /// The blocks that `chunk` completes.
    fn push(&mut self, chunk: &[u8]) -> Vec<Block> {
        self.text.push_str(&String::from_utf8_lossy(chunk));
        let mut blocks = Vec::new();
        while let Some(end) = self.text.find('\n') {
            let line: String = self.text.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                blocks.push(std::mem::take(&mut self.block));
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => self.block.id = Some(value.to_owned()),
                "data" => self.block.data.push_str(value),
                "retry" => self.block.retry = value.parse().ok(),
                _ => {}
            }
        }
        blocks
    }
}

/// One message as a stream delivered it.
struct Delivery {
    message: String,
    room: String,
    seq: i64,
    event_id: i64,
    at: Instant,
}

/// What one stream's client saw over its life, reconnects and all.
#[derive(Default)]
struct Seen {
    deliveries: Vec<Delivery>,
    /// When a stream of its ended (the end of the answer's body).
    ends: Vec<Instant>,
    /// Ends that were not clean (the body broke), or came without `retry:`.
    unclean_ends: usize,
    /// For each clean end: how long the stream had been quiet before its
    /// final `retry:` (a draining stream goes on with heartbeats and events).
    quiet_before_end: Vec<Duration>,
    /// From each end to the next open's `200`.
    gaps: Vec<Duration>,
    /// Opens that failed, by what they met.
    refused: BTreeMap<String, usize>,
    opens: usize,
}

/// A stream's client: opens, reads, and on an end or an error waits the
/// server's `retry:` and opens again with `Last-Event-ID`, until stopped.
struct Follower {
    query: String,
    token: String,
    /// Which rooms it may see (by id); `None`: all of them.
    rooms: Option<HashSet<String>>,
    seen: Arc<Mutex<Seen>>,
}

impl Follower {
    fn sees(&self, room: &str) -> bool {
        self.rooms.as_ref().is_none_or(|rooms| rooms.contains(room))
    }

    async fn follow(
        self: Arc<Self>,
        http: reqwest::Client,
        base: String,
        start: String,
        delivered: watch::Sender<u64>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let mut last_id = start;
        let mut retry = RETRY;
        let mut ended_at: Option<Instant> = None;
        loop {
            let request = stream_request(&http, &base, &self.query, &self.token, Some(&last_id));
            let opened = tokio::select! {
                opened = request.send() => opened,
                _ = stopped.wait_for(|stop| *stop) => return,
            };
            match opened {
                Ok(response) if response.status() == StatusCode::OK => {
                    {
                        let mut seen = self.seen.lock().expect("seen");
                        seen.opens += 1;
                        if let Some(ended) = ended_at.take() {
                            seen.gaps.push(ended.elapsed());
                        }
                    }
                    let read = self.read(response, &mut last_id, &mut retry, &delivered);
                    let quiet = tokio::select! {
                        quiet = read => quiet,
                        _ = stopped.wait_for(|stop| *stop) => return,
                    };
                    let now = Instant::now();
                    let mut seen = self.seen.lock().expect("seen");
                    seen.ends.push(now);
                    match quiet {
                        Some(quiet) => seen.quiet_before_end.push(quiet),
                        None => seen.unclean_ends += 1,
                    }
                    ended_at = Some(now);
                }
                Ok(response) => {
                    let status = response.status().as_u16().to_string();
                    *self
                        .seen
                        .lock()
                        .expect("seen")
                        .refused
                        .entry(status)
                        .or_default() += 1;
                }
                Err(_) => {
                    let error = "a connection error".to_owned();
                    *self
                        .seen
                        .lock()
                        .expect("seen")
                        .refused
                        .entry(error)
                        .or_default() += 1;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Reads one stream to its end. If it ended cleanly, its last frame a
    /// `retry:`, how long it was quiet before that frame.
    async fn read(
        &self,
        response: reqwest::Response,
        last_id: &mut String,
        retry: &mut Duration,
        delivered: &watch::Sender<u64>,
    ) -> Option<Duration> {
        let mut body = response.bytes_stream();
        let mut reader = SseReader::default();
        let mut last_was_retry = false;
        let (mut previous_frame, mut last_frame) = (Instant::now(), Instant::now());
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else {
                return None;
            };
            for block in reader.push(&chunk) {
                (previous_frame, last_frame) = (last_frame, Instant::now());
                last_was_retry = block.retry.is_some() && block.data.is_empty();
                if let Some(ms) = block.retry {
                    *retry = Duration::from_millis(ms);
                }
                if let Some(id) = &block.id {
                    id.clone_into(last_id);
                }
                if block.data.is_empty() {
                    continue;
                }
                let event: Value = serde_json::from_str(&block.data).expect("JSON data");
                if event["type"] != "message" {
                    continue;
                }
                let message = &event["message"];
                let delivery = Delivery {
                    message: message["id"].as_str().expect("an id").to_owned(),
                    room: message["roomId"].as_str().expect("a room").to_owned(),
                    seq: message["seq"].as_i64().expect("a seq"),
                    event_id: block
                        .id
                        .as_deref()
                        .and_then(|id| id.parse().ok())
                        .expect("an event id"),
                    at: Instant::now(),
                };
                self.seen.lock().expect("seen").deliveries.push(delivery);
                delivered.send_modify(|count| *count += 1);
            }
        }
        last_was_retry.then(|| last_frame - previous_frame)
    }
}

/// A sample's value at `fraction` (0.5: the median), by nearest rank.
fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(duration: Duration) -> u128 {
    duration.as_millis()
}

const ROOMS: usize = 4;
const MEMBERS: usize = 20;
const ADMIN_STREAMS: usize = 10;
const POSTS_PER_SECOND: u32 = 25;
/// A message delivered later than this after its acknowledgement is delayed.
const DELAYED: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_streams_get_every_acknowledged_message_once_in_order_through_a_rolling_restart() {
    let test = "real_proxies::rolling_restart::\
        fifty_streams_get_every_acknowledged_message_once_in_order_through_a_rolling_restart";
    let Some(mut pair) = Pair::start(test).await else {
        return;
    };
    let http = reqwest::Client::new();
    let writer = user("writer");
    let rooms = create_rooms(&http, &pair, &writer).await;
    let (status, snapshot) =
        crate::support::send(http.get(pair.url("/api/chat/rooms")).bearer_auth(&writer)).await;
    assert_eq!(status, StatusCode::OK, "{snapshot}");
    let start = snapshot["lastEventId"].as_str().expect("an id").to_owned();

    let followers = followers(&rooms);
    let (delivered, mut deliveries) = watch::channel(0u64);
    let (stop, stopped) = watch::channel(false);
    let tasks: Vec<_> = followers
        .iter()
        .map(|(_, follower)| {
            tokio::spawn(follower.clone().follow(
                http.clone(),
                pair.nginx.address.clone(),
                start.clone(),
                delivered.clone(),
                stopped.clone(),
            ))
        })
        .collect();
    let opening = &followers;
    wait_until("all 50 streams to open", WAIT, || async move {
        opening.iter().all(|(_, f)| f.seen().opens > 0)
    })
    .await;

    let mut writer = Writer::start(&pair.nginx.address, &writer, &rooms, POSTS_PER_SECOND);
    writer.wait_for_acks(25).await;
    let restarts = pair.roll().await;
    let after = writer.acked() + 25;
    writer.wait_for_acks(after).await;
    let written = writer.stop().await;

    // Every stream has every acknowledged message it may see (bounded).
    let expected: Vec<HashSet<&str>> = followers
        .iter()
        .map(|(_, f)| f.expected(&written.acked))
        .collect();
    let complete = || {
        let mut each = followers.iter().zip(&expected);
        each.all(|((_, f), expected)| f.has_all(expected))
    };
    let caught_up = tokio::time::timeout(WAIT, async {
        while !complete() {
            let _ = deliveries.changed().await;
        }
    })
    .await;
    let _ = stop.send(true);
    for task in tasks {
        task.await.expect("a follower");
    }

    let tally = Tally::of(&followers, &written.acked);
    report(test, &tally, &written, &restarts, &pair.nginx.logs());
    assert!(
        caught_up.is_ok(),
        "not every stream got every acknowledged message within {WAIT:?}"
    );
    assert_eq!(tally.lost, 0, "lost");
    assert_eq!(tally.duplicated, 0, "duplicated");
    assert_eq!(
        tally.unexpected, 0,
        "messages no acknowledgement or membership explains"
    );
    assert!(
        tally.out_of_order.is_empty(),
        "out of order: {:?}",
        tally.out_of_order
    );
    assert!(
        tally.never_reconnected.is_empty(),
        "never reconnected: {:?}",
        tally.never_reconnected
    );
    assert_eq!(
        tally.unclean_ends, 0,
        "every stream ended cleanly, with a final retry:"
    );
    // A draining stream carries heartbeats and events until its own end:
    // quiet for the spread, it would hold back whatever came meanwhile.
    assert!(
        tally.quiet < HEARTBEAT * 5,
        "a stream was quiet for {:?} before its end (heartbeat {HEARTBEAT:?})",
        tally.quiet
    );
    // The ends are spread over the spread, not bunched in one instant:
    // without the jitter they would all fall within a few milliseconds.
    let [a, b] = restarts;
    let drains = [
        ("A", tally.ends_between(a.signalled, Some(b.signalled))),
        ("B", tally.ends_between(b.signalled, None)),
    ];
    for (name, (count, span)) in drains {
        assert!(count >= 5, "{name}'s drain ended {count} streams");
        assert!(
            span >= SPREAD / 2,
            "{name}'s {count} stream ends fell within {span:?} of a {SPREAD:?} spread"
        );
    }
}

/// The writer's rooms; member k belongs to rooms k and k + 1 (mod 4).
async fn create_rooms(http: &reqwest::Client, pair: &Pair, writer: &str) -> Vec<String> {
    let mut rooms = Vec::new();
    for r in 0..ROOMS {
        let members: Vec<String> = (0..MEMBERS)
            .filter(|k| k % ROOMS == r || (k + 1) % ROOMS == r)
            .map(|k| format!("member-{k}"))
            .collect();
        // Only admins put others into rooms: one makes the writer's.
        let writer_id = claims(writer)["sub"].as_str().expect("a sub").to_owned();
        let members: Vec<String> = std::iter::once(writer_id).chain(members).collect();
        let (status, room) = crate::support::send(
            http.post(pair.url("/api/chat/rooms"))
                .bearer_auth(admin(HELPER_ADMIN))
                .json(&json!({"name": format!("room {r}"), "memberIds": members})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{room}");
        rooms.push(room["id"].as_str().expect("a room id").to_owned());
    }
    rooms
}

/// The 50 streams, each with what it is: 10 admins' global streams, and
/// for each of the 20 members a global stream and one room's.
fn followers(rooms: &[String]) -> Vec<(&'static str, Arc<Follower>)> {
    let follower = |kind, token, query, rooms| {
        let seen = Arc::default();
        let follower = Follower {
            query,
            token,
            rooms,
            seen,
        };
        (kind, Arc::new(follower))
    };
    let mut followers = Vec::new();
    for a in 0..ADMIN_STREAMS {
        let token = admin(&format!("admin-{a}"));
        followers.push(follower("admin global", token, String::new(), None));
    }
    for k in 0..MEMBERS {
        let token = user(&format!("member-{k}"));
        let (own, next) = (&rooms[k % ROOMS], &rooms[(k + 1) % ROOMS]);
        let both = HashSet::from([own.clone(), next.clone()]);
        followers.push(follower(
            "member global",
            token.clone(),
            String::new(),
            Some(both),
        ));
        let query = format!("?roomId={own}");
        let one = HashSet::from([own.clone()]);
        followers.push(follower("room", token, query, Some(one)));
    }
    followers
}

impl Follower {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().expect("seen")
    }

    /// The acknowledged messages this stream may see.
    fn expected<'a>(&self, acked: &'a [Acked]) -> HashSet<&'a str> {
        acked
            .iter()
            .filter(|a| self.sees(a.room()))
            .map(Acked::id)
            .collect()
    }

    fn has_all(&self, expected: &HashSet<&str>) -> bool {
        let seen = self.seen();
        let got: HashSet<&str> = seen.deliveries.iter().map(|d| d.message.as_str()).collect();
        expected.iter().all(|id| got.contains(id))
    }
}

/// What the streams saw, against what the writer had acknowledged.
#[derive(Default)]
struct Tally {
    streams: usize,
    /// Acknowledged messages a stream that may see them never got.
    lost: usize,
    /// Deliveries of a message beyond its first on the same stream.
    duplicated: usize,
    /// Deliveries of messages not acknowledged, or not the stream's to see.
    unexpected: usize,
    out_of_order: Vec<String>,
    never_reconnected: Vec<String>,
    reconnects: usize,
    unclean_ends: usize,
    /// The longest quiet before a stream's final `retry:`.
    quiet: Duration,
    /// Reconnect gaps, sorted.
    gaps: Vec<Duration>,
    /// From each message's acknowledgement to each delivery of it, sorted.
    delays: Vec<Duration>,
    ends: Vec<Instant>,
    refused: BTreeMap<String, usize>,
}

impl Tally {
    fn of(followers: &[(&str, Arc<Follower>)], acked: &[Acked]) -> Self {
        let acked_at: HashMap<&str, Instant> = acked.iter().map(|a| (a.id(), a.at)).collect();
        let mut tally = Self {
            streams: followers.len(),
            ..Self::default()
        };
        for (n, (kind, follower)) in followers.iter().enumerate() {
            let expected = follower.expected(acked);
            let seen = follower.seen();
            let mut times: HashMap<&str, usize> = HashMap::new();
            for delivery in &seen.deliveries {
                let id = delivery.message.as_str();
                *times.entry(id).or_default() += 1;
                match acked_at.get(id) {
                    Some(at) if expected.contains(id) => {
                        tally
                            .delays
                            .push(delivery.at.saturating_duration_since(*at));
                    }
                    _ => tally.unexpected += 1,
                }
            }
            tally.lost += expected
                .iter()
                .filter(|id| !times.contains_key(*id))
                .count();
            tally.duplicated += times.values().map(|n| n - 1).sum::<usize>();
            // In order: event ids rising, and each room's seqs 1, 2, 3, ...
            let ids_rise = seen
                .deliveries
                .windows(2)
                .all(|p| p[0].event_id < p[1].event_id);
            let mut seqs: HashMap<&str, Vec<i64>> = HashMap::new();
            for delivery in &seen.deliveries {
                seqs.entry(&delivery.room).or_default().push(delivery.seq);
            }
            let seqs_run = seqs
                .values()
                .all(|s| s.iter().copied().eq(1..=s.len() as i64));
            if !(ids_rise && seqs_run) {
                tally.out_of_order.push(format!("stream {n} ({kind})"));
            }
            if seen.opens < 2 {
                tally.never_reconnected.push(format!("stream {n} ({kind})"));
            }
            tally.reconnects += seen.opens.saturating_sub(1);
            tally.unclean_ends += seen.unclean_ends;
            tally.quiet = seen
                .quiet_before_end
                .iter()
                .copied()
                .fold(tally.quiet, Duration::max);
            tally.gaps.extend(&seen.gaps);
            tally.ends.extend(&seen.ends);
            for (what, count) in &seen.refused {
                *tally.refused.entry(what.clone()).or_default() += count;
            }
        }
        tally.gaps.sort();
        tally.delays.sort();
        tally
    }

    /// How many streams ended from `from` until `to`, and over how long.
    fn ends_between(&self, from: Instant, to: Option<Instant>) -> (usize, Duration) {
        let ends = self.ends.iter().copied();
        let window: Vec<Instant> = ends
            .filter(|end| *end >= from && to.is_none_or(|to| *end < to))
            .collect();
        let first = window.iter().min().copied().unwrap_or(from);
        let last = window.iter().max().copied().unwrap_or(from);
        (window.len(), last - first)
    }
}

/// `502 ×3, a connection error ×1`, or `none`.
fn counts(counted: &BTreeMap<String, usize>) -> String {
    if counted.is_empty() {
        return "none".to_owned();
    }
    let each: Vec<String> = counted
        .iter()
        .map(|(what, n)| format!("{what} ×{n}"))
        .collect();
    each.join(", ")
}

/// The figures `docs/deployment.md` quotes.
fn report(test: &str, tally: &Tally, written: &Written, [a, b]: &[Restart; 2], nginx: &str) {
    let (a_ends, a_span) = tally.ends_between(a.signalled, Some(b.signalled));
    let (b_ends, b_span) = tally.ends_between(b.signalled, None);
    let delayed = tally.delays.iter().filter(|d| **d > DELAYED).count();
    let max = |sorted: &[Duration]| ms(sorted.last().copied().unwrap_or_default());
    // What nginx met on the way to the instances (its error log).
    let mut met = BTreeMap::new();
    for what in [
        "connect() failed",
        "upstream prematurely closed",
        "reset by peer",
        "no live upstreams",
    ] {
        let times = nginx.lines().filter(|line| line.contains(what)).count();
        if times > 0 {
            met.insert(what.to_owned(), times);
        }
    }
    eprintln!(
        "{test}:\n  rolling restart figures: {} streams, {} posts at {POSTS_PER_SECOND}/s, \
         {} deliveries; reconnect gap p50 {} ms, p99 {} ms, max {} ms (retry: {} ms); \
         delayed (delivered > {} ms after the ack) {delayed}, worst {} ms, p99 {} ms; \
         lost {}; duplicated {}; reconnects {}; posts that needed a retry {} ({}); \
         failed stream opens: {}; nginx logged: {}\n  \
         drain (A / B): refusing connects {} / {} ms and idle connections closed {} / {} ms \
         after SIGTERM; {a_ends} / {b_ends} stream ends spread over {} / {} ms \
         (shutdown_spread {} ms), each stream quiet at most {} ms before its end \
         (heartbeat {} ms); exited {} / {} ms after SIGTERM; /readyz {} / {} ms after the \
         exit; nginx passed them requests again {} / {} ms after that",
        tally.streams,
        written.acked.len(),
        tally.delays.len(),
        ms(percentile(&tally.gaps, 0.5)),
        ms(percentile(&tally.gaps, 0.99)),
        max(&tally.gaps),
        ms(RETRY),
        ms(DELAYED),
        max(&tally.delays),
        ms(percentile(&tally.delays, 0.99)),
        tally.lost,
        tally.duplicated,
        tally.reconnects,
        written.retried,
        counts(&written.failures),
        counts(&tally.refused),
        counts(&met),
        ms(a.refusing),
        ms(b.refusing),
        ms(a.idle_closed),
        ms(b.idle_closed),
        ms(a_span),
        ms(b_span),
        ms(SPREAD),
        ms(tally.quiet),
        ms(HEARTBEAT),
        ms(a.drained),
        ms(b.drained),
        ms(a.started),
        ms(b.started),
        ms(a.taken_back),
        ms(b.taken_back),
    );
}
