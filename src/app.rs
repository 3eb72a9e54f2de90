//! Start-up and serving: builds the shared state from settings, wraps the API
//! in its middleware, and serves a bound listener until shutdown is signalled
//! (so tests bind port 0 and never sleep).

use crate::attachments::Attachments;
use crate::auth::{self, Auth};
use crate::config::{Config, Secret};
use crate::connection::Connection;
use crate::erasure::{ErasureOptions, Erasures};
use crate::error::{Error, ErrorDetail};
use crate::events::{Hub, HubOptions};
use crate::http::{self, AppState, api_router};
use crate::inbox::Inbox;
use crate::limits::Limits;
use crate::metrics;
use crate::store::{self, Cluster, Measured, Store, StoreOptions, Wake};
use crate::webhooks::{WebhookOptions, Webhooks};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, State};
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, Uri, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] store::OpenError),
    #[error(transparent)]
    Key(#[from] auth::KeyError),
    #[error("could not read or create the development JWT secret: {0}")]
    DevSecret(std::io::Error),
    #[error("could not start the event relay: {0}")]
    Relay(String),
    #[error("could not join the cluster: {0}")]
    Cluster(crate::error::Error),
    #[error("could not start attachments: {0}")]
    Attachments(crate::attachments::StorageError),
    #[error("could not start the webhooks: {0}")]
    Webhooks(reqwest::Error),
}

/// The secret HS256 tokens are signed with: the configured one; none when
/// only a public key is configured (HS256 is then refused, so no token can
/// pass for the key pair's); or in development (where validation allowed
/// its absence) one generated once under `data_dir`.
pub fn jwt_secret(config: &Config) -> Result<Option<Secret>, StartError> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(Some(secret.clone()));
    }
    if config.jwt_public_key_file.is_some() {
        return Ok(None);
    }
    let (secret, created) =
        auth::load_or_create_dev_secret(&config.data_dir).map_err(StartError::DevSecret)?;
    let path = config.data_dir.join(auth::DEV_SECRET_FILE);
    if created {
        tracing::warn!(path = %path.display(), "no JWT secret configured: generated a development secret");
    } else {
        tracing::info!(path = %path.display(), "using the development JWT secret");
    }
    Ok(Some(secret))
}

pub fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        url: config.database_url.clone(),
        max_connections: config.database_max_connections,
        acquire_timeout: config.database_acquire_timeout.0,
        search_language: config.search_language.clone(),
    }
}

/// Opens the store (applying migrations), loads the keys and starts the
/// relay. `draining` turns true when shutdown begins.
pub async fn build_state(
    config: Config,
    draining: watch::Receiver<bool>,
) -> Result<AppState, StartError> {
    let secret = jwt_secret(&config)?;
    let auth = Auth::new(&config, secret.as_ref())?;
    let metrics = crate::metrics::recorder();
    let wake = Arc::new(Wake::new());
    let store: Arc<dyn Store> = Arc::new(Measured(
        store::open(&store_options(&config), wake.clone()).await?,
    ));
    // On PostgreSQL the instances share their streams, for presence, and
    // (with cluster_limits) their write budgets and stream caps.
    let cluster = Cluster::join(&store_options(&config), config.instance_heartbeat.0)
        .await
        .map_err(StartError::Cluster)?;
    // Before the hub's background tasks start sharing the pool with it.
    let attachments = Arc::new(
        Attachments::start(store.clone(), &config)
            .await
            .map_err(StartError::Attachments)?,
    );
    let hub = Hub::start(
        store.clone(),
        wake,
        cluster.clone(),
        HubOptions {
            heartbeat_interval: config.heartbeat_interval.0,
            buffer: config.stream_buffer_events,
            window_events: config.event_window_events,
            window_bytes: config.event_window_bytes,
            poll_interval: config.relay_poll_interval.0,
            retention: config.event_retention.0,
            purge_batch: config.event_purge_batch,
            presence_grace: config.presence_grace.0,
            message_retention: config.message_retention.map(|retention| retention.0),
            erase_batch: config.erase_batch,
        },
    )
    .await
    .map_err(|e| StartError::Relay(e.to_string()))?;

    let erasures = Erasures::start(
        store.clone(),
        ErasureOptions {
            batch: config.erase_batch,
            lease: config.erasure_lease.0,
        },
        draining.clone(),
    );
    let inbox = Arc::new(Inbox::start(hub.clone(), &config));
    let webhooks = Webhooks::start(
        hub.clone(),
        attachments.clone(),
        webhook_options(&config),
        draining.clone(),
    )
    .map_err(StartError::Webhooks)?;
    Ok(AppState {
        store,
        auth: Arc::new(auth),
        limits: Limits::new(&config, cluster.filter(|_| config.cluster_limits)),
        metrics,
        config: Arc::new(config),
        hub,
        webhooks: Arc::new(webhooks),
        erasures: Arc::new(erasures),
        inbox,
        attachments,
        draining,
    })
}

fn webhook_options(config: &Config) -> WebhookOptions {
    WebhookOptions {
        timeout: config.webhook_timeout.0,
        retry_horizon: config.webhook_retry_horizon.0,
        retry_max_interval: config.webhook_retry_max_interval.0,
        batch_events: config.webhook_batch_events,
        lease: config.webhook_lease.0,
        allow_internal: config.webhook_allow_internal_addresses,
        unseen_delay: config.unseen_delay.0,
        notice_retention: config.event_retention.0,
        public_url: config.public_url.clone(),
    }
}

/// The API with its middleware.
pub fn router(state: AppState) -> Router {
    let cors = cors(&state.config);
    api_router(&state.config)
        .layer(middleware::from_fn_with_state(
            state.config.request_timeout.0,
            answer_within,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(cors)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .route_layer(middleware::from_fn(count_request))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<Body>| {
                    let id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|id| id.to_str().ok())
                        .unwrap_or_default();
                    let uri = redact(request.uri());
                    // Headers are never logged: they carry tokens. What a
                    // client chose (the id, the URI) goes in as a string, so
                    // the text format quotes and escapes it: no value can
                    // pass for fields of its own.
                    tracing::info_span!(
                        "request",
                        id,
                        method = %request.method(),
                        uri = uri.as_str(),
                    )
                })
                .on_response(|response: &Response<Body>, latency: Duration, _: &Span| {
                    let status = response.status().as_u16();
                    let ms = latency.as_millis() as u64;
                    match response.extensions().get::<ErrorDetail>() {
                        Some(ErrorDetail(detail)) => {
                            tracing::error!(status, ms, error = detail.as_str(), "request failed");
                        }
                        None => tracing::debug!(status, ms, "response"),
                    }
                }),
        )
        // Outermost: the id exists before the span that logs it, and goes back
        // to the client (a proxy's own `X-Request-Id` is kept).
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, NewRequestId))
        .with_state(state)
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A fresh id for every request that comes without one: a UUIDv7, so ids
/// sort by time.
#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// Which browser pages elsewhere may call us: the configured origins, with
/// credentials (the token cookie), and what streams and conditional listings
/// need (`Last-Event-ID`, `If-None-Match`; `ETag` and `Retry-After` readable).
/// No others, in any mode: a grant to every origin would let any page a
/// developer visits use their local server.
fn cors(config: &Config) -> CorsLayer {
    let origins: Vec<HeaderValue> = config
        .cors_allowed_origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if origins.is_empty() {
        return CorsLayer::new();
    }
    let listed = origins.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([header::ETAG, header::RETRY_AFTER])
        // To the listed origins alone: an unlisted one is told nothing.
        .allow_credentials(AllowCredentials::predicate(move |origin, _| {
            listed.contains(origin)
        }))
        .max_age(Duration::from_secs(3600))
}

/// Bounds the time to an answer's head: reading the body included, a
/// stream's life not (its head goes out as it starts). A write cut short may
/// still take effect (a post waits in its batch), and its answer says so.
/// An upload is bounded by its pauses instead (each at most the same
/// limit, see `attachments`): 25 MB may take minutes on a slow link.
async fn answer_within(
    State(limit): State<Duration>,
    request: Request<Body>,
    next: Next,
) -> Response<Body> {
    let write = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if write && request.uri().path().ends_with("/attachments") {
        return next.run(request).await;
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) if write => Error::RequestTimeout.unsettled().into_response(),
        Err(_) => Error::RequestTimeout.into_response(),
    }
}

/// `/metrics` alone, for the `metrics_listen` address.
pub fn metrics_router(state: AppState) -> Router {
    http::metrics_router().with_state(state)
}

/// Counts every request by method, route and status, and times its head.
/// A route layer: the route is the matched pattern (`/api/chat/rooms/{id}`),
/// never the raw path, so ids do not multiply the series.
async fn count_request(route: MatchedPath, request: Request<Body>, next: Next) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let route = route.as_str().to_owned();
    let status = response.status().as_u16().to_string();
    ::metrics::histogram!(metrics::HTTP_DURATION, "method" => method.clone(), "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    ::metrics::counter!(metrics::HTTP_REQUESTS, "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response<Body> {
    Error::internal("a handler panicked").into_response()
}

/// How long the server waits on clients.
#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    /// For a request's head (line and headers).
    pub header: Duration,
    /// For a stream's client to take its next frame.
    pub stream_stall: Duration,
}

impl ClientTimeouts {
    pub fn of(config: &Config) -> Self {
        Self {
            header: config.header_timeout.0,
            stream_stall: config.stream_stall_timeout.0,
        }
    }
}

/// Serves HTTP/1.1 until `draining` turns true, then stops accepting
/// connections and waits for open ones to finish (streams end themselves
/// when draining). Unlike `axum::serve`, it cuts a client that has not sent
/// a request's head within `timeouts.header` (hyper needs a timer for that):
/// one that trickles its headers (slowloris) holds a connection until then;
/// and a connection whose stream has not been read for `timeouts.stream_stall`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    mut draining: watch::Receiver<bool>,
    timeouts: ClientTimeouts,
) -> std::io::Result<()> {
    let drained = async move {
        let _ = draining.wait_for(|draining| *draining).await;
    };
    tokio::pin!(drained);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    let connections = GracefulShutdown::new();
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut drained => break,
        };
        // Streams write small frames: no waiting to fill a segment.
        let _ = socket.set_nodelay(true);
        let held = Connection::new();
        let service = router.clone().map_request({
            let held = held.clone();
            move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.extensions_mut().insert(held.clone());
                request.map(Body::new)
            }
        });
        let connection =
            http.serve_connection(TokioIo::new(socket), TowerToHyperService::new(service));
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            tokio::select! {
                served = connection => if let Err(error) = served {
                    tracing::debug!(%error, "connection ended with an error");
                },
                // Dropping the connection closes the socket.
                () = held.stalled(timeouts.stream_stall) => {}
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

/// A failed accept: a connection reset before we took it is the client's
/// business; anything else (out of file descriptors) gets a pause, so the
/// loop does not spin while the condition lasts.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept connections; retrying in 1s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Query parameters that are credentials: a token, and a download link's
/// signature (the link works without a token until it expires).
const SECRET_PARAMETERS: [&str; 2] = ["access_token", "signature"];

/// A URI fit for logs: the values of credentials in its query are hidden.
pub fn redact(uri: &Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| {
            let secret = form_urlencoded::parse(pair.as_bytes())
                .next()
                .and_then(|(name, _)| SECRET_PARAMETERS.into_iter().find(|s| name == *s));
            match secret {
                Some(name) => format!("{name}=[redacted]"),
                None => pair.to_owned(),
            }
        })
        .collect();
    format!("{}?{}", uri.path(), query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_uris_hide_access_tokens_however_they_are_spelled() {
        let uri: Uri = "/api/chat/sse?roomId=1&access_token=abc.def&x=2&access%5Ftoken=ghi"
            .parse()
            .unwrap();
        let logged = redact(&uri);
        assert_eq!(
            logged,
            "/api/chat/sse?roomId=1&access_token=[redacted]&x=2&access_token=[redacted]"
        );
        assert!(!logged.contains("abc") && !logged.contains("ghi"));
        let link: Uri = "/api/chat/attachments/x/content?variant=original&expires=9&signature=s1G"
            .parse()
            .unwrap();
        assert_eq!(
            redact(&link),
            "/api/chat/attachments/x/content?variant=original&expires=9&signature=[redacted]"
        );
    }
}
