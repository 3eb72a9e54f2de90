//! A small reverse proxy for browser tests: forwards everything to a server,
//! counts what passes, and breaks things on demand the way networks do: it
//! buffers `/api/chat/sse`, silences the streams open, refuses
//! snapshots, holds history pages, loses the answers of posts it forwarded,
//! or goes down.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Streams {
    Pass = 0,
    /// Forward the headers and hold the bytes, releasing them only in
    /// 16 KiB lumps, as a proxy that buffers `text/event-stream` does.
    Buffer = 1,
}

/// What a buffering proxy holds before it passes anything on.
const BUFFER_BYTES: usize = 16 * 1024;

pub struct Proxy {
    pub address: String,
    state: Arc<ProxyState>,
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    mode: AtomicU8,
    cut: Notify,
    /// Every request fails (502) and open streams are cut.
    down: AtomicBool,
    /// `GET /api/chat/rooms` answers 503.
    refuse_listing: AtomicBool,
    /// `POST …/messages` answers 503 without reaching the server.
    refuse_posts: AtomicBool,
    /// While true, the answers of `GET …/messages` (history pages) wait.
    hold_histories: watch::Sender<bool>,
    /// The next this many `POST …/messages` reach the server, and their
    /// answers are never passed on.
    lose_post_answers: AtomicUsize,
    /// Streams opened before the latest freeze pass nothing more (and stay open).
    freezes: AtomicUsize,
    stream_opens: AtomicUsize,
    open_streams: AtomicUsize,
    room_polls: AtomicUsize,
    event_polls: AtomicUsize,
    posts_forwarded: AtomicUsize,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Self {
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            mode: AtomicU8::new(Streams::Pass as u8),
            cut: Notify::new(),
            down: AtomicBool::new(false),
            refuse_listing: AtomicBool::new(false),
            refuse_posts: AtomicBool::new(false),
            hold_histories: watch::Sender::new(false),
            lose_post_answers: AtomicUsize::new(0),
            freezes: AtomicUsize::new(0),
            stream_opens: AtomicUsize::new(0),
            open_streams: AtomicUsize::new(0),
            room_polls: AtomicUsize::new(0),
            event_polls: AtomicUsize::new(0),
            posts_forwarded: AtomicUsize::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(forward).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sets how streams are treated from now on; open streams are cut.
    pub fn streams(&self, mode: Streams) {
        self.state.mode.store(mode as u8, Ordering::SeqCst);
        self.state.cut.notify_waiters();
    }

    /// The network is gone (every request fails, streams are cut), or back.
    pub fn down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
        self.state.cut.notify_waiters();
    }

    /// Whether the rooms listing (the admin's snapshot) answers 503.
    pub fn refuse_listing(&self, refuse: bool) {
        self.state.refuse_listing.store(refuse, Ordering::SeqCst);
    }

    /// Whether posts answer 503 without reaching the server.
    pub fn refuse_posts(&self, refuse: bool) {
        self.state.refuse_posts.store(refuse, Ordering::SeqCst);
    }

    /// Whether history pages are held: fetched from the server, passed on
    /// only once released.
    pub fn hold_histories(&self, hold: bool) {
        self.state.hold_histories.send_replace(hold);
    }

    /// The next `count` posts reach the server; their answers are lost.
    pub fn lose_post_answers(&self, count: usize) {
        self.state.lose_post_answers.store(count, Ordering::SeqCst);
    }

    /// The streams open now pass nothing more, without closing; new ones pass.
    pub fn freeze_open_streams(&self) {
        self.state.freezes.fetch_add(1, Ordering::SeqCst);
    }

    /// Streams opened (and forwarded) so far.
    pub fn stream_opens(&self) -> usize {
        self.state.stream_opens.load(Ordering::SeqCst)
    }

    /// Streams open through the proxy now.
    pub fn open_streams(&self) -> usize {
        self.state.open_streams.load(Ordering::SeqCst)
    }

    /// `GET /api/chat/rooms` requests (snapshots) so far.
    pub fn room_polls(&self) -> usize {
        self.state.room_polls.load(Ordering::SeqCst)
    }

    /// `GET /api/chat/events` requests (long-polls) so far.
    pub fn event_polls(&self) -> usize {
        self.state.event_polls.load(Ordering::SeqCst)
    }

    /// Posts of messages that reached the server.
    pub fn posts_forwarded(&self) -> usize {
        self.state.posts_forwarded.load(Ordering::SeqCst)
    }
}

/// Decrements the open-stream count when a forwarded stream ends.
struct OpenStream(Arc<ProxyState>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

fn unavailable(why: &'static str) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if state.down.load(Ordering::SeqCst) {
        return (StatusCode::BAD_GATEWAY, "the test network is down").into_response();
    }
    let target = format!(
        "{}{}",
        state.upstream,
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let is_stream = path == "/api/chat/sse";
    let is_post = method == Method::POST && path.ends_with("/messages");
    let is_history = method == Method::GET && path.ends_with("/messages");
    let mode = state.mode.load(Ordering::SeqCst);
    if path == "/api/chat/rooms" && method == Method::GET {
        state.room_polls.fetch_add(1, Ordering::SeqCst);
        if state.refuse_listing.load(Ordering::SeqCst) {
            return unavailable("the listing is refused by the test proxy");
        }
    }
    if path == "/api/chat/events" {
        state.event_polls.fetch_add(1, Ordering::SeqCst);
    }
    if is_post && state.refuse_posts.load(Ordering::SeqCst) {
        return unavailable("posts refused by the test proxy");
    }
    let mut headers = request.headers().clone();
    headers.remove("host");
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let Ok(upstream) = state
        .http
        .request(method, target)
        .headers(headers)
        .body(body)
        .send()
        .await
    else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    if is_post {
        state.posts_forwarded.fetch_add(1, Ordering::SeqCst);
        let lose = state
            .lose_post_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if lose {
            // Stored upstream; the client never hears of it.
            drop(upstream.bytes().await);
            return futures::future::pending::<Response>().await;
        }
    }
    let mut response = Response::builder().status(upstream.status());
    for (name, value) in upstream.headers() {
        if name != HeaderName::from_static("transfer-encoding") {
            response = response.header(name, value);
        }
    }
    if !is_stream || !upstream.status().is_success() {
        let bytes = upstream.bytes().await.unwrap_or_default();
        if is_history {
            let _ = state.hold_histories.subscribe().wait_for(|h| !*h).await;
        }
        return response.body(Body::from(bytes)).unwrap();
    }
    state.stream_opens.fetch_add(1, Ordering::SeqCst);
    state.open_streams.fetch_add(1, Ordering::SeqCst);
    let guard = OpenStream(state.clone());
    let opened_before = state.freezes.load(Ordering::SeqCst);
    let body = async_stream::stream! {
        let _guard = guard;
        let mut upstream = upstream.bytes_stream();
        let mut held = Vec::new();
        let cut = state.cut.notified();
        tokio::pin!(cut);
        loop {
            tokio::select! {
                () = &mut cut => break,
                chunk = upstream.next() => match chunk {
                    Some(Ok(_)) if state.freezes.load(Ordering::SeqCst) != opened_before => {}
                    Some(Ok(bytes)) if mode == Streams::Pass as u8 => {
                        yield Ok::<Bytes, std::io::Error>(bytes);
                    }
                    Some(Ok(bytes)) if mode == Streams::Buffer as u8 => {
                        held.extend_from_slice(&bytes);
                        if held.len() >= BUFFER_BYTES {
                            yield Ok(Bytes::from(std::mem::take(&mut held)));
                        }
                    }
                    _ => break,
                },
            }
        }
    };
    response.body(Body::from_stream(body)).unwrap()
}
