//! Integration tests: a real server on an ephemeral port, real HTTP, and a real
//! database (SQLite always; PostgreSQL too when `TEST_DATABASE_URL` is set).

// A test that cannot set up its fixture should fail loudly, right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod attachments;
mod auth;
mod bad_input;
mod browser;
mod cluster_limits;
mod cors;
mod edits;
mod erasure;
mod fanout;
mod health;
mod hostile;
mod inbox;
mod lifecycle;
mod load;
mod logs;
mod messages;
mod metrics;
mod moderation;
mod no_loss;
mod openapi;
mod pages;
mod plans;
mod polling;
mod presence;
mod races;
mod real_proxies;
mod receipts;
mod retention;
mod rooms;
mod search;
mod settings;
mod streams;
mod typing;
mod unread;
mod webhooks;
mod write_limits;
