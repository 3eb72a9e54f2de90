//! A real-time chat backend. The map:
//!
//! - [`config`]: settings, layered from embedded defaults, files and env.
//! - [`model`]: ids, validated inputs, and the `Room`/`Message` wire shapes.
//! - [`auth`]: JWT verification and who a request speaks for.
//! - [`origin`]: whether a browser's request comes from our pages, an
//!   allowed origin, or another site.
//! - [`store`]: rooms, members, messages, read cursors and the event log, on
//!   SQLite or PostgreSQL.
//! - [`events`]: relays the event log to this process's streams and polls,
//!   each caller's feed of it, and heartbeats.
//! - [`sse`]: how stream frames are spelled on the wire.
//! - [`connection`]: a client connection, and cutting one whose stream is not read.
//! - [`limits`]: rate limits on opening streams and on writes.
//! - [`erasure`]: erasing what a user wrote, as a durable background job.
//! - [`inbox`]: the snooze schedule, which opens snoozed conversations.
//! - [`metrics`]: what is counted, for `/metrics`.
//! - [`http`]: the JSON API and the streams, one module per resource.
//! - [`attachments`]: files uploaded into rooms: their blob stores (disk,
//!   S3), checks, thumbnails, downloads and cleanup.
//! - [`error`]: the one error type and its HTTP mapping.
//! - [`app`]: start-up, middleware, and serving a listener until shutdown.

pub mod app;
pub mod attachments;
pub mod auth;
pub mod config;
pub mod connection;
pub mod erasure;
pub mod error;
pub mod events;
pub mod http;
pub mod inbox;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod origin;
pub mod sse;
pub mod store;
pub mod webhooks;
