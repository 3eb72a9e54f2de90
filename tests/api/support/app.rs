//! A real server in the test's process, on an ephemeral port, with the
//! embedded defaults and the test's settings.

use super::db::TestDb;
use super::*;
use chat_server::app;
use chat_server::config::Config;
use chat_server::http::AppState;
use figment::providers::Serialized;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub struct TestApp {
    /// Its address, and what a test calls it with.
    pub client: Client,
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
        let figment = [
            "message", "room", "member", "read", "typing", "upload", "search",
        ]
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
            client: Client::of(address),
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
}

impl std::ops::Deref for TestApp {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
