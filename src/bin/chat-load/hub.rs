//! The reference: a bare axum broadcast hub, the least a Rust SSE server can
//! do (no auth, no store, no resume): `tokio::sync::broadcast` in,
//! `axum::response::sse` out, with axum's keep-alive as its heartbeat.

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use futures::Stream;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

pub async fn serve(listen: SocketAddr, heartbeat: Duration) -> std::io::Result<()> {
    let (sender, _) = broadcast::channel::<Arc<str>>(1024);
    let app = Router::new()
        .route(
            "/sse",
            get(
                move |State(sender): State<broadcast::Sender<Arc<str>>>| async move {
                    Sse::new(events(sender.subscribe()))
                        .keep_alive(KeepAlive::new().interval(heartbeat))
                },
            ),
        )
        .route(
            "/publish",
            post(
                |State(sender): State<broadcast::Sender<Arc<str>>>, body: String| async move {
                    let _ = sender.send(Arc::from(body));
                },
            ),
        )
        .with_state(sender);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await
}

fn events(
    mut receiver: broadcast::Receiver<Arc<str>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    async_stream::stream! {
        loop {
            match receiver.recv().await {
                Ok(body) => yield Ok(Event::default().data(&*body)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
