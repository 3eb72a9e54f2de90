//! A real-time chat backend. The map:
//!
//! - [`config`]: settings, layered from embedded defaults, files and env.
//! - [`model`]: ids, validated inputs, and the `Room`/`Message` wire shapes.
//! - [`auth`]: JWT verification and who a request speaks for.
//! - [`store`]: rooms, members, messages and read cursors, on SQLite or PostgreSQL.
//! - [`http`]: the JSON API, one module per resource.
//! - [`error`]: the one error type and its HTTP mapping.
//! - [`app`]: start-up, middleware, and serving a listener until shutdown.

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod http;
pub mod model;
pub mod store;
