//! Test support: a real server on an ephemeral port over a fresh database
//! (a temp SQLite file, or a new PostgreSQL database per test), and a client
//! that speaks HTTP to it.

use chat_server::app;
use chat_server::config::Config;
use figment::providers::Serialized;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The HS256 secret every test server is configured with.
pub const SECRET: &str = "integration-test-secret-of-at-least-32-bytes";

/// Set in CI: a missing `TEST_DATABASE_URL` then fails instead of skipping.
const REQUIRE_POSTGRES: &str = "CHAT_TEST_REQUIRE_POSTGRES";

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

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    shutdown: watch::Sender<bool>,
    _data_dir: tempfile::TempDir,
    _db: TestDb,
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
        let data_dir = tempfile::tempdir().expect("a temp dir");
        let figment = Config::defaults()
            .merge(Serialized::default("database_url", database_url))
            .merge(Serialized::default("jwt_secret", SECRET))
            .merge(Serialized::default("data_dir", data_dir.path()))
            .merge(Serialized::default("database_max_connections", 5));
        let config = Config::from_figment(configure(figment)).expect("valid test settings");
        let (shutdown, draining) = watch::channel(false);
        let state = app::build_state(config, draining.clone())
            .await
            .expect("the server starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(app::serve(listener, app::router(state), draining));
        Self {
            address,
            http: reqwest::Client::new(),
            shutdown,
            _data_dir: data_dir,
            _db: db,
        }
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

    /// Creates a room, asserting success; returns its id.
    pub async fn create_room(&self, token: &str, name: &str, members: &[&str]) -> String {
        let (status, room) = self
            .post(
                "/api/chat/rooms",
                token,
                json!({"name": name, "memberIds": members}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "creating a room: {room}");
        room["id"].as_str().expect("a room id").to_owned()
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
