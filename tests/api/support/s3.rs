//! A real S3-compatible server for the attachments' S3 backend: moto in
//! server mode (PyPI `moto[server]`, which `.ci/run` installs into
//! `target/moto-venv`), one per test, on an ephemeral port, with a bucket
//! made for the test. Where it is missing the tests say loudly that they
//! were skipped; with `CHAT_TEST_REQUIRE_S3` set (CI) they fail instead.

use super::{WAIT, free_port};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

pub const REQUIRE_S3: &str = "CHAT_TEST_REQUIRE_S3";
pub const BUCKET: &str = "chat-attachments";

pub struct S3Server {
    pub endpoint: String,
    child: Child,
}

/// `moto_server`: named by `CHAT_TEST_MOTO_SERVER`, in `target/moto-venv`,
/// or on the PATH.
fn moto_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHAT_TEST_MOTO_SERVER") {
        return Some(PathBuf::from(path));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/moto-venv/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
}

impl S3Server {
    /// A running server with an empty bucket; `None` (after saying so)
    /// when moto is not installed.
    pub async fn start(test: &str) -> Option<Self> {
        let Some(program) = moto_server() else {
            assert!(
                std::env::var_os(REQUIRE_S3).is_none(),
                "{REQUIRE_S3} is set but moto_server is not installed (pip install 'moto[server]')"
            );
            eprintln!(
                "\n!!! SKIPPED {test}: moto_server is not installed (pip install 'moto[server]'; CI installs it) !!!\n"
            );
            return None;
        };
        let port = free_port();
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let server = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            // moto takes unsigned requests: the bucket is made as it comes up.
            let made = http
                .put(format!("{}/{BUCKET}", server.endpoint))
                .send()
                .await;
            if made.is_ok_and(|response| response.status().is_success()) {
                return Some(server);
            }
            assert!(started.elapsed() < WAIT, "moto_server did not come up");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The server's settings for this bucket, as environment variables
    /// spell them (and as a test's figment takes them).
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CHAT_ATTACHMENT_STORAGE", "s3".to_owned()),
            ("CHAT_S3_BUCKET", BUCKET.to_owned()),
            ("CHAT_S3_ENDPOINT", self.endpoint.clone()),
            ("CHAT_S3_ACCESS_KEY_ID", "test".to_owned()),
            ("CHAT_S3_SECRET_ACCESS_KEY", "test".to_owned()),
            ("CHAT_S3_ALLOW_HTTP", "true".to_owned()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
