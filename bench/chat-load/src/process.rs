//! The processes under test: `chat-server` (on SQLite or PostgreSQL) or the
//! reference hub, started beside this binary on a free port; and what
//! `/proc` says about them (resident memory, CPU time, open files).

use sqlx::Connection;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Served {
    child: Child,
    /// Kept to start the same process again (same port, same data).
    command: Command,
    ready: String,
    pub base: String,
    pub name: &'static str,
    /// The database URL chat-server was given (empty for the hub).
    pub database: String,
    _data: tempfile::TempDir,
}

/// Where a server keeps its data.
#[derive(Clone, Debug)]
pub enum StoreChoice {
    Sqlite,
    /// A server URL where a fresh database may be created.
    Postgres(String),
    /// This database, as it is (instances sharing one).
    Database(String),
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn sibling(name: &str) -> std::io::Result<std::path::PathBuf> {
    Ok(std::env::current_exe()?.with_file_name(name))
}

impl Served {
    /// `chat-server` with `env`, its limits opened wide for load.
    pub async fn chat_server(
        store: &StoreChoice,
        secret: &str,
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let port = free_port().map_err(|e| e.to_string())?;
        let data = tempfile::tempdir().map_err(|e| e.to_string())?;
        let database_url = match store {
            StoreChoice::Sqlite => format!("sqlite://{}", data.path().join("chat.db").display()),
            StoreChoice::Postgres(server) => fresh_postgres_database(server).await?,
            StoreChoice::Database(url) => url.clone(),
        };
        let mut command = Command::new(sibling("chat-server").map_err(|e| e.to_string())?);
        command
            .env("CHAT_LISTEN", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", &database_url)
            .env("CHAT_JWT_SECRET", secret)
            .env("CHAT_DATA_DIR", data.path())
            .env("CHAT_LOG", "warn")
            .env("CHAT_DATABASE_MAX_CONNECTIONS", "16");
        for (name, value) in [
            ("CHAT_STREAM_MAX_PER_USER", "1000000"),
            ("CHAT_STREAM_RATE_PER_USER", "1000000"),
            ("CHAT_STREAM_BURST_PER_USER", "1000000"),
            ("CHAT_STREAM_RATE_PER_IP", "1000000"),
            ("CHAT_STREAM_BURST_PER_IP", "1000000"),
            ("CHAT_MESSAGE_RATE_PER_USER", "1000000"),
            ("CHAT_MESSAGE_BURST_PER_USER", "1000000"),
            ("CHAT_ROOM_RATE_PER_USER", "1000000"),
            ("CHAT_ROOM_BURST_PER_USER", "1000000"),
            ("CHAT_MEMBER_RATE_PER_USER", "1000000"),
            ("CHAT_MEMBER_BURST_PER_USER", "1000000"),
            ("CHAT_READ_RATE_PER_USER", "1000000"),
            ("CHAT_READ_BURST_PER_USER", "1000000"),
            ("CHAT_SEARCH_RATE_PER_USER", "1000000"),
            ("CHAT_SEARCH_BURST_PER_USER", "1000000"),
        ] {
            command.env(name, value);
        }
        command.envs(env.iter().copied());
        let mut served = Self::start(command, port, "chat-server", "/readyz", data).await?;
        served.database = database_url;
        Ok(served)
    }

    /// The reference hub, with the given heartbeat.
    pub async fn hub(heartbeat: &str) -> Result<Self, String> {
        let port = free_port().map_err(|e| e.to_string())?;
        let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        command.args([
            "hub",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--heartbeat",
            heartbeat,
        ]);
        let data = tempfile::tempdir().map_err(|e| e.to_string())?;
        Self::start(command, port, "axum hub", "/publish", data).await
    }

    async fn start(
        mut command: Command,
        port: u16,
        name: &'static str,
        ready: &str,
        data: tempfile::TempDir,
    ) -> Result<Self, String> {
        command.stdout(Stdio::null());
        let child = command
            .spawn()
            .map_err(|e| format!("could not start {name}: {e}"))?;
        let served = Self {
            child,
            command,
            ready: ready.to_owned(),
            base: format!("http://127.0.0.1:{port}"),
            name,
            database: String::new(),
            _data: data,
        };
        served.wait_ready().await?;
        Ok(served)
    }

    async fn wait_ready(&self) -> Result<(), String> {
        let started = Instant::now();
        let http = reqwest::Client::new();
        loop {
            // Any answer means it listens (the hub answers GET /publish with 405).
            let answer = http
                .get(format!("{}{}", self.base, self.ready))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE) {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("{} did not come up", self.name));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process outright (SIGKILL) and starts it again on the same
    /// port and data; returns how long it took to be ready again.
    pub async fn restart(&mut self) -> Result<Duration, String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let started = Instant::now();
        self.child = self.command.spawn().map_err(|e| e.to_string())?;
        self.wait_ready().await?;
        Ok(started.elapsed())
    }

    pub fn sample(&self) -> Sample {
        Sample::of(self.child.id())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn fresh_postgres_database(server: &str) -> Result<String, String> {
    let name = format!("chat_bench_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    for statement in [
        format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#),
        format!(r#"CREATE DATABASE "{name}""#),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
    Ok(format!("{base}/{name}"))
}

/// A process's resources at one moment.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Sample {
    pub rss_kib: u64,
    /// User plus system CPU time, in clock ticks (1/100 s here).
    pub cpu_ticks: u64,
    pub open_files: u64,
}

impl Sample {
    pub fn of(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at 3.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let open_files =
            std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count() as u64);
        Self {
            rss_kib,
            cpu_ticks: ticks(11) + ticks(12),
            open_files,
        }
    }
}
