//! Integration tests: a real server on an ephemeral port, real HTTP, and a real
//! database (SQLite always; PostgreSQL too when `TEST_DATABASE_URL` is set).

mod helpers;

mod auth;
mod bad_input;
mod health;
mod messages;
mod rooms;
mod unread;
