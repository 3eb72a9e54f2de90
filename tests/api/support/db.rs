//! A database of a test's own: a temp SQLite file, or a PostgreSQL database
//! created for the test and dropped with it; and running each test on both.

use super::*;
use sqlx::Connection;
use std::sync::Arc;

/// Runs each named test (an `async fn(Backend)` in the calling module) on
/// SQLite, and on PostgreSQL when `TEST_DATABASE_URL` names a server.
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = $crate::support::Backend::postgres() {
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
pub(super) enum TestDb {
    /// Held so the directory lives as long as the test.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        server_url: String,
        name: String,
    },
}

impl TestDb {
    pub(super) async fn create(backend: &Backend) -> (Self, String) {
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
    pub(super) db: Arc<TestDb>,
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
