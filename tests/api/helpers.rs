//! Test support: a real server on an ephemeral port over a fresh database
//! (a temp SQLite file, or a new PostgreSQL database per test), and a client
//! that speaks HTTP to it.

use chat_server::app;
use chat_server::config::Config;
use chat_server::http::AppState;
use eventsource_stream::Eventsource;
use figment::providers::Serialized;
use futures::{Stream, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The HS256 secret every test server is configured with.
pub const SECRET: &str = "integration-test-secret-of-at-least-32-bytes";

/// Set in CI: a missing `TEST_DATABASE_URL` then fails instead of skipping.
pub const REQUIRE_POSTGRES: &str = "CHAT_TEST_REQUIRE_POSTGRES";

/// Runs each named test (an `async fn(Backend)` in the calling module) on
/// SQLite, and on PostgreSQL when `TEST_DATABASE_URL` names a server.
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = $crate::helpers::Backend::postgres() {
                        super::$name(backend).await;
                    }
                }
            )+
        }
    };
}
pub(crate) use on_both_stores;

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// The URL of a server where the test may create databases.
    Postgres(String),
}

impl Backend {
    pub fn postgres() -> Option<Self> {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Some(Self::Postgres(url)),
            _ if std::env::var_os(REQUIRE_POSTGRES).is_some() => {
                panic!("{REQUIRE_POSTGRES} is set but TEST_DATABASE_URL is not")
            }
            _ => {
                eprintln!("TEST_DATABASE_URL is not set: skipping the PostgreSQL run");
                None
            }
        }
    }
}

/// A database of the test's own, dropped with it.
enum TestDb {
    /// Held so the directory lives as long as the test.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        server_url: String,
        name: String,
    },
}

impl TestDb {
    async fn create(backend: &Backend) -> (Self, String) {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temp dir");
                let url = format!("sqlite://{}", dir.path().join("chat.db").display());
                (Self::Sqlite(dir), url)
            }
            Backend::Postgres(server_url) => {
                let name = format!("chat_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = sqlx::PgConnection::connect(server_url)
                    .await
                    .expect("TEST_DATABASE_URL must reach a PostgreSQL server");
                sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
                    .execute(&mut conn)
                    .await
                    .expect("create the test database");
                let url = with_database(server_url, &name);
                let db = Self::Postgres {
                    server_url: server_url.clone(),
                    name,
                };
                (db, url)
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Self::Postgres { server_url, name } = self else {
            return;
        };
        let (server_url, name) = (server_url.clone(), name.clone());
        // Drop runs inside the test's runtime; do the async clean-up on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server_url).await {
                    let drop = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                        .execute(&mut conn)
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// How long a test waits for something that should happen before failing.
pub const WAIT: Duration = Duration::from_secs(15);

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    /// The server's own state: its store, and its hub's counters.
    pub state: AppState,
    database_url: String,
    shutdown: watch::Sender<bool>,
    _data_dir: tempfile::TempDir,
    db: Arc<TestDb>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |figment| figment).await
    }

    /// Starts a server whose settings `configure` may change.
    pub async fn spawn_with(
        backend: Backend,
        configure: impl FnOnce(figment::Figment) -> figment::Figment,
    ) -> Self {
        let (db, database_url) = TestDb::create(&backend).await;
        Self::start(Arc::new(db), database_url, configure).await
    }

    /// Another server instance on the same database.
    pub async fn sibling_with(
        &self,
        configure: impl FnOnce(figment::Figment) -> figment::Figment,
    ) -> Self {
        Self::start(self.db.clone(), self.database_url.clone(), configure).await
    }

    async fn start(
        db: Arc<TestDb>,
        database_url: String,
        configure: impl FnOnce(figment::Figment) -> figment::Figment,
    ) -> Self {
        let data_dir = tempfile::tempdir().expect("a temp dir");
        let figment = Config::defaults()
            .merge(Serialized::default("database_url", &database_url))
            .merge(Serialized::default("jwt_secret", SECRET))
            .merge(Serialized::default("data_dir", data_dir.path()))
            .merge(Serialized::default("database_max_connections", 5));
        // Tests write in bursts; the write limits have tests of their own.
        let figment =
            ["message", "room", "member", "read", "typing"]
                .iter()
                .fold(figment, |f, write| {
                    f.merge(Serialized::default(
                        &format!("{write}_rate_per_user"),
                        1_000_000,
                    ))
                    .merge(Serialized::default(
                        &format!("{write}_burst_per_user"),
                        1_000_000,
                    ))
                });
        let config = Config::from_figment(configure(figment)).expect("valid test settings");
        let (shutdown, draining) = watch::channel(false);
        let state = app::build_state(config, draining.clone())
            .await
            .expect("the server starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("address"));
        let timeouts = app::ClientTimeouts::of(&state.config);
        tokio::spawn(app::serve(
            listener,
            app::router(state.clone()),
            draining,
            timeouts,
        ));
        Self {
            address,
            http: reqwest::Client::new(),
            state,
            database_url,
            shutdown,
            _data_dir: data_dir,
            db,
        }
    }

    /// Begins shutting down, as SIGTERM does: readiness fails, streams and
    /// polls wind down.
    pub fn start_draining(&self) {
        let _ = self.shutdown.send(true);
    }

    /// The URL of this server's database, for tests that act on it directly.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// A pool on this server's PostgreSQL database, for tests that act on it directly.
    pub async fn pg_pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.database_url)
            .await
            .expect("the test database")
    }

    /// Opens `/api/chat/sse{query}` and checks it answered as a stream.
    pub async fn stream(&self, query: &str, token: &str) -> EventStream {
        self.stream_from(query, token, None).await
    }

    /// The same, resuming with a `Last-Event-ID` header.
    pub async fn stream_from(
        &self,
        query: &str,
        token: &str,
        last_event_id: Option<&str>,
    ) -> EventStream {
        let response = stream_request(&self.http, &self.address, query, token, last_event_id)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), StatusCode::OK, "opening {query}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        EventStream::new(response)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        send(self.http.get(self.url(path)).bearer_auth(token)).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        send(
            self.http
                .post(self.url(path))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        send(self.http.delete(self.url(path)).bearer_auth(token)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        send(
            self.http
                .patch(self.url(path))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    /// Runs `SELECT COUNT(*) …` (`sql`) on the server's database directly:
    /// for what no answer of the API shows, such as a deleted body's bytes.
    /// Runs `sql` on the app's database (to age rows, say).
    pub async fn execute(&self, sql: &str) {
        use sqlx::Connection;
        let sql = || sqlx::AssertSqlSafe(sql.to_owned());
        if self.database_url.starts_with("sqlite:") {
            let mut db = sqlx::SqliteConnection::connect(&self.database_url)
                .await
                .unwrap();
            sqlx::raw_sql(sql()).execute(&mut db).await.unwrap();
        } else {
            let mut db = sqlx::PgConnection::connect(&self.database_url)
                .await
                .unwrap();
            sqlx::raw_sql(sql()).execute(&mut db).await.unwrap();
        }
    }

    pub async fn count_rows(&self, sql: &str) -> i64 {
        count_rows(&self.database_url, sql).await
    }

    /// Creates a room as `token`'s user with `members` too, asserting
    /// success; returns its id. Only admins put others into rooms: for a
    /// user's room, an admin adds them after (one `member_added` each).
    pub async fn create_room(&self, token: &str, name: &str, members: &[&str]) -> String {
        let by_admin = claims(token)["role"] == "admin";
        let named = if by_admin { members } else { &[] };
        let (status, room) = self
            .post(
                "/api/chat/rooms",
                token,
                json!({"name": name, "memberIds": named}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "creating a room: {room}");
        let room = room["id"].as_str().expect("a room id").to_owned();
        if !by_admin {
            for member in members {
                self.add_member(&room, member).await;
            }
        }
        room
    }

    /// Puts `user` into `room`, as an admin does, asserting success.
    pub async fn add_member(&self, room: &str, user: &str) {
        let (status, body) = self
            .post(
                &format!("/api/chat/rooms/{room}/members"),
                &admin(HELPER_ADMIN),
                json!({"userId": user}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "adding {user}: {body}");
    }

    /// Sends a message, asserting it was created; returns it.
    pub async fn send(&self, token: &str, room: &str, body: &str) -> Value {
        let (status, message) = self
            .post(
                &format!("/api/chat/rooms/{room}/messages"),
                token,
                json!({"body": body}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "sending a message: {message}");
        message
    }

    pub async fn unread(&self, token: &str, room: &str) -> i64 {
        let (status, room) = self.get(&format!("/api/chat/rooms/{room}"), token).await;
        assert_eq!(status, StatusCode::OK, "reading a room: {room}");
        room["unreadCount"].as_i64().expect("an unread count")
    }
}

/// The real `chat-server` binary, serving on an ephemeral port.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub address: String,
    pub database_url: String,
    /// Every line the server logged so far.
    logs: Arc<std::sync::Mutex<Vec<String>>>,
    _data_dir: tempfile::TempDir,
    _db: Option<Arc<TestDb>>,
}

/// One integer `sql` answers on the database at `url` (a count, an id).
pub async fn count_rows(url: &str, sql: &str) -> i64 {
    use sqlx::Connection;
    let sql = || sqlx::AssertSqlSafe(sql.to_owned());
    if url.starts_with("sqlite:") {
        let mut db = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql()).fetch_one(&mut db).await.unwrap()
    } else {
        let mut db = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql()).fetch_one(&mut db).await.unwrap()
    }
}

/// A database the test holds, so that server processes can come and go on it.
pub struct SharedDb {
    db: Arc<TestDb>,
    pub url: String,
}

impl SharedDb {
    pub async fn create(backend: &Backend) -> Self {
        let (db, url) = TestDb::create(backend).await;
        Self {
            db: Arc::new(db),
            url,
        }
    }
}

/// `GET {base}/api/chat/sse{query}` as `token`'s user, resuming after
/// `last_event_id` (as the `Last-Event-ID` header) when given.
pub fn stream_request(
    http: &reqwest::Client,
    base: &str,
    query: &str,
    token: &str,
    last_event_id: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = http
        .get(format!("{base}/api/chat/sse{query}"))
        .bearer_auth(token);
    match last_event_id {
        Some(id) => request.header("Last-Event-ID", id),
        None => request,
    }
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
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
            address: format!("http://{address}"),
            database_url,
            logs,
            _data_dir: data_dir,
            _db: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Opens `/api/chat/sse{query}` and checks it answered as a stream.
    pub async fn stream(&self, query: &str, token: &str) -> EventStream {
        let response = reqwest::Client::new()
            .get(self.url(&format!("/api/chat/sse{query}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), StatusCode::OK, "opening {query}");
        EventStream::new(response)
    }

    /// Creates a room as `token`'s user; its id.
    pub async fn create_room(&self, token: &str, name: &str) -> String {
        let (status, room) = send(
            reqwest::Client::new()
                .post(self.url("/api/chat/rooms"))
                .bearer_auth(token)
                .json(&json!({"name": name})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{room}");
        room["id"].as_str().expect("a room id").to_owned()
    }

    /// Posts `message` (a JSON body) to `room` as `token`'s user.
    pub async fn post(&self, token: &str, room: &str, message: Value) -> (StatusCode, Value) {
        send(
            reqwest::Client::new()
                .post(self.url(&format!("/api/chat/rooms/{room}/messages")))
                .bearer_auth(token)
                .json(&message),
        )
        .await
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

/// One SSE event, as a real parser read it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The last id the stream carried (the parser keeps it across events).
    pub id: String,
    pub data: Value,
}

impl Received {
    pub fn kind(&self) -> &str {
        self.data["type"].as_str().unwrap_or_default()
    }

    pub fn id(&self) -> i64 {
        self.id.parse().expect("a numeric event id")
    }
}

type EventItems =
    std::pin::Pin<Box<dyn Stream<Item = Result<eventsource_stream::Event, String>> + Send>>;

/// A live stream, read with bounded waits.
pub struct EventStream {
    events: EventItems,
}

impl EventStream {
    pub fn new(response: reqwest::Response) -> Self {
        let events = response
            .bytes_stream()
            .eventsource()
            .map(|item| item.map_err(|e| e.to_string()));
        Self {
            events: Box::pin(events),
        }
    }

    /// The next event with data, heartbeats included; `None` once the stream
    /// ended cleanly. Fails the test on a broken stream or after `WAIT`.
    pub async fn next_any(&mut self) -> Option<Received> {
        let next = async {
            loop {
                match self.events.next().await {
                    None => return None,
                    Some(Err(error)) => panic!("the stream broke: {error}"),
                    Some(Ok(event)) if event.data.is_empty() => continue,
                    Some(Ok(event)) => {
                        let data = serde_json::from_str(&event.data).expect("JSON data");
                        return Some(Received { id: event.id, data });
                    }
                }
            }
        };
        tokio::time::timeout(WAIT, next)
            .await
            .expect("an event within the wait")
    }

    /// The next event that is not a heartbeat or a `presence` signal (which
    /// come whenever someone connects: `presence` tests read them with
    /// `next_any`); `None` once the stream ended.
    pub async fn next(&mut self) -> Option<Received> {
        loop {
            match self.next_any().await {
                Some(event) if matches!(event.kind(), "heartbeat" | "presence") => continue,
                other => return other,
            }
        }
    }

    /// The next non-heartbeat event, which must be of `kind`.
    pub async fn expect(&mut self, kind: &str) -> Received {
        let event = self.next().await.expect("the stream to go on");
        assert_eq!(event.kind(), kind, "{:?}", event.data);
        event
    }

    /// The stream ends cleanly, with nothing but heartbeats before the end.
    pub async fn expect_end(&mut self) {
        if let Some(event) = self.next().await {
            panic!("expected the stream to end, got {:?}", event.data);
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

pub async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Asserts the error shape every failure shares, with its status and code.
pub fn assert_error(actual: (StatusCode, Value), status: StatusCode, code: &str) {
    let (actual_status, body) = actual;
    assert_eq!(actual_status, status, "status of {body}");
    assert_eq!(body["error"]["code"], code, "code of {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "a message in {body}"
    );
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// An HS256 token for `sub` signed with the test secret, valid for an hour.
pub fn token(sub: &str, role: &str) -> String {
    sign(
        &json!({"sub": sub, "role": role, "exp": unix_now() + 3600}),
        SECRET.as_bytes(),
    )
}

/// The admin the helpers act as when a test's setup needs one.
pub const HELPER_ADMIN: &str = "helper-admin";

/// A token's claims, as the server will read them.
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&json).expect("JSON claims")
}

pub fn user(sub: &str) -> String {
    token(sub, "user")
}

pub fn admin(sub: &str) -> String {
    token(sub, "admin")
}

/// Signs any claims with HS256 and the given secret.
pub fn sign(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("signing")
}

/// The `Retry-After` of a refused request, in whole seconds.
pub fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}
