//! A small reverse proxy for browser tests: forwards everything to a server,
//! counts what passes, and can refuse, silence or cut `/api/chat/sse`.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use tokio::net::TcpListener;
use tokio::sync::Notify;

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Streams {
    Pass = 0,
    /// Answer `/api/chat/sse` with a 503.
    Refuse = 1,
    /// Forward the stream's headers, then nothing, without closing.
    Silence = 2,
}

pub struct Proxy {
    pub address: String,
    state: Arc<ProxyState>,
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    mode: AtomicU8,
    cut: Notify,
    stream_opens: AtomicUsize,
    open_streams: AtomicUsize,
    room_polls: AtomicUsize,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Self {
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            mode: AtomicU8::new(Streams::Pass as u8),
            cut: Notify::new(),
            stream_opens: AtomicUsize::new(0),
            open_streams: AtomicUsize::new(0),
            room_polls: AtomicUsize::new(0),
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

    /// Streams opened (and forwarded) so far.
    pub fn stream_opens(&self) -> usize {
        self.state.stream_opens.load(Ordering::SeqCst)
    }

    /// Streams open through the proxy now.
    pub fn open_streams(&self) -> usize {
        self.state.open_streams.load(Ordering::SeqCst)
    }

    /// `GET /api/chat/rooms` requests (fallback polls, and snapshots) so far.
    pub fn room_polls(&self) -> usize {
        self.state.room_polls.load(Ordering::SeqCst)
    }
}

/// Decrements the open-stream count when a forwarded stream ends.
struct OpenStream(Arc<ProxyState>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let target = format!(
        "{}{}",
        state.upstream,
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let is_stream = path == "/api/chat/sse";
    let mode = state.mode.load(Ordering::SeqCst);
    if is_stream && mode == Streams::Refuse as u8 {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "streams refused by the test proxy",
        )
            .into_response();
    }
    if path == "/api/chat/rooms" && request.method() == "GET" {
        state.room_polls.fetch_add(1, Ordering::SeqCst);
    }
    let method = request.method().clone();
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
    let mut response = Response::builder().status(upstream.status());
    for (name, value) in upstream.headers() {
        if name != HeaderName::from_static("transfer-encoding") {
            response = response.header(name, value);
        }
    }
    if !is_stream || !upstream.status().is_success() {
        let bytes = upstream.bytes().await.unwrap_or_default();
        return response.body(Body::from(bytes)).unwrap();
    }
    state.stream_opens.fetch_add(1, Ordering::SeqCst);
    state.open_streams.fetch_add(1, Ordering::SeqCst);
    let silent = mode == Streams::Silence as u8;
    let guard = OpenStream(state.clone());
    let body = async_stream::stream! {
        let _guard = guard;
        let mut upstream = upstream.bytes_stream();
        let cut = state.cut.notified();
        tokio::pin!(cut);
        loop {
            tokio::select! {
                () = &mut cut => break,
                chunk = upstream.next() => match chunk {
                    Some(Ok(bytes)) if !silent => yield Ok::<Bytes, std::io::Error>(bytes),
                    Some(Ok(_)) => {}
                    _ => break,
                },
            }
        }
    };
    response.body(Body::from_stream(body)).unwrap()
}
