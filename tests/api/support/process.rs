//! The real `chat-server` binary as a child process, its log kept, and
//! what its `/metrics` says.

use super::db::TestDb;
use super::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The real `chat-server` binary, serving on an ephemeral port.
pub struct ServerProcess {
    pub child: std::process::Child,
    /// Its address, and what a test calls it with.
    pub client: Client,
    pub database_url: String,
    /// Every line the server logged so far.
    logs: Arc<std::sync::Mutex<Vec<String>>>,
    _data_dir: tempfile::TempDir,
    _db: Option<Arc<TestDb>>,
}

impl ServerProcess {
    /// Starts the binary on a fresh database with the test secret and `env`.
    pub async fn start(backend: &Backend, env: &[(&str, &str)]) -> Self {
        let db = SharedDb::create(backend).await;
        Self::start_on(&db, 0, env).await
    }

    /// Starts the binary on `db`, listening on `port` (0: any).
    pub async fn start_on(db: &SharedDb, port: u16, env: &[(&str, &str)]) -> Self {
        let mut server = Self::start_with_database(&db.url, port, env).await;
        server._db = Some(db.db.clone());
        server
    }

    /// Starts the binary on the database at `database_url`, which the caller owns.
    pub async fn start_with_database(database_url: &str, port: u16, env: &[(&str, &str)]) -> Self {
        let database_url = database_url.to_owned();
        let listen = format!("127.0.0.1:{port}");
        let data_dir = tempfile::tempdir().expect("a temp dir");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_chat-server"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CHAT_LISTEN", &listen)
            .env("DATABASE_URL", &database_url)
            .env("CHAT_JWT_SECRET", SECRET)
            .env("CHAT_DATA_DIR", data_dir.path())
            .env("CHAT_LOG", "info");
        // Tests write in bursts; the write limits have tests of their own.
        for write in ["MESSAGE", "ROOM", "MEMBER", "READ"] {
            command
                .env(format!("CHAT_{write}_RATE_PER_USER"), "1000000")
                .env(format!("CHAT_{write}_BURST_PER_USER"), "1000000");
        }
        command
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("the server binary starts");
        let stderr = child.stderr.take().expect("stderr");
        let (found, address) = std::sync::mpsc::channel();
        let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
        // Reads the log for the bound address, and keeps every line.
        let kept = logs.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut found = Some(found);
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                kept.lock().expect("the log").push(line.clone());
                if let Some(address) = serving_address(&line)
                    && let Some(found) = found.take()
                {
                    let _ = found.send(address.trim().to_owned());
                }
            }
        });
        let address = tokio::task::spawn_blocking(move || address.recv_timeout(WAIT))
            .await
            .expect("the log reader")
            .expect("the server logs the address it serves on");
        Self {
            child,
            client: Client::of(format!("http://{address}")),
            database_url,
            logs,
            _data_dir: data_dir,
            _db: None,
        }
    }

    /// Every line the server logged so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("the log").clone()
    }

    /// Waits (at most `WAIT`) for a logged line that `matches`, and returns it.
    pub async fn wait_for_log(&self, matches: impl Fn(&str) -> bool) -> String {
        let started = std::time::Instant::now();
        loop {
            if let Some(line) = self.logs().into_iter().find(|line| matches(line)) {
                return line;
            }
            assert!(
                started.elapsed() < WAIT,
                "no such log line within {WAIT:?}; the log:\n{}",
                self.logs().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Sends SIGKILL and waits for the process to go.
    pub fn kill(&mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub async fn wait_for_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waitable") {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "the server did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl std::ops::Deref for ServerProcess {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One scrape: every sample, keyed by its series as written (`name{labels}`).
pub struct Scrape(std::collections::HashMap<String, f64>);

impl Scrape {
    pub async fn of(server: &ServerProcess, bearer: Option<&str>) -> Self {
        let mut request = reqwest::Client::new().get(server.url("/metrics"));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the server answers");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        Self::parse(&response.text().await.unwrap())
    }

    fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect();
        Self(samples)
    }

    /// The sum of `name`'s samples whose labels include all of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(series, _)| {
                let (series_name, series_labels) =
                    series.split_once('{').unwrap_or((series.as_str(), ""));
                series_name == name
                    && labels
                        .iter()
                        .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, value)| value)
            .sum()
    }
}

/// The address of a "serving" log line, written as text or as JSON.
pub fn serving_address(line: &str) -> Option<String> {
    if let Ok(json) = serde_json::from_str::<Value>(line) {
        return (json["fields"]["message"] == "serving")
            .then(|| json["fields"]["address"].as_str().map(str::to_owned))
            .flatten();
    }
    line.split("address=")
        .nth(1)
        .filter(|_| line.contains(" serving"))
        .map(str::to_owned)
}
