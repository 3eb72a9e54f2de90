//! What the tests stand on: a real server in this process (`app`) or as
//! the real binary (`process`), each over a database of its own (`db`);
//! a client's requests and checks (`client`), streams read with bounded
//! waits (`stream`), tokens (`tokens`); and, for some tests, a proxy that
//! breaks things (`proxy`) and a PostgreSQL cluster of their own
//! (`throwaway_postgres`).

mod app;
mod client;
mod db;
mod process;
pub mod proxy;
pub mod s3;
mod stream;
pub mod throwaway_postgres;
mod tokens;

pub use app::TestApp;
pub use client::{Client, assert_error, retry_after, send};
pub(crate) use db::on_both_stores;
pub use db::{Backend, SharedDb, count_rows};
pub use process::{Scrape, ServerProcess, serving_address};
pub use stream::{EventStream, Received, stream_request};
pub use tokens::{HELPER_ADMIN, SECRET, admin, claims, named_admin, sign, unix_now, user};

use figment::providers::Serialized;
use std::time::Duration;

/// Set in CI: a missing `TEST_DATABASE_URL` then fails instead of skipping.
pub const REQUIRE_POSTGRES: &str = "CHAT_TEST_REQUIRE_POSTGRES";

/// How long a test waits for something that should happen before failing.
pub const WAIT: Duration = Duration::from_secs(15);

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Settings for a test that opens streams by the hundred from one user and
/// one address: the opening rates out of the way (they have tests of their own).
pub fn streams_opened_freely(figment: figment::Figment) -> figment::Figment {
    figment
        .merge(Serialized::default("stream_rate_per_user", 10_000))
        .merge(Serialized::default("stream_burst_per_user", 10_000))
        .merge(Serialized::default("stream_rate_per_ip", 10_000))
        .merge(Serialized::default("stream_burst_per_ip", 10_000))
}

/// Lets this test process hold as many sockets as the system allows.
pub fn raise_open_file_limit() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
}
