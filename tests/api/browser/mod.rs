//! The browser side, proven in headless Chromium against real server
//! processes: the `/admin` and `/widget` pages over the client package, with
//! short timings (heartbeat 200 ms, watchdog 1 s, backoff 100 to 800 ms),
//! often behind a test proxy that breaks the network on demand, or behind
//! nginx through a rolling restart; edits, deletions and seen receipts
//! between the two pages; typing and presence between them, across two
//! instances too; files (a pasted screenshot, a refused upload) between
//! them; and the client package's own tests under Node.
//!
//! Where Chromium, Node or npm is missing these tests say loudly that they
//! were skipped; with `CHAT_TEST_REQUIRE_BROWSER` set (CI) they fail instead.

mod attachments;
mod edits;
mod fallback;
mod inbox;
mod package;
mod pages;
mod presence;
mod rolling_restart;
mod rooms_deleted;
mod search;

use crate::support::proxy::Proxy;
use crate::support::{Backend, ServerProcess, WAIT, free_port, send, user};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REQUIRE_BROWSER: &str = "CHAT_TEST_REQUIRE_BROWSER";
pub const SERVER_ENV: [(&str, &str); 1] = [("CHAT_HEARTBEAT_INTERVAL", "200ms")];
/// The pages' timings in most tests: quick to notice, quick to retry.
pub const TIMINGS: &str =
    "heartbeatTimeout=1000&connectTimeout=1000&backoffInitial=100&backoffMax=800&sendTimeout=1500";

fn find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// The tool (the first of its names found), or `None` after saying loudly
/// that the test is skipped.
pub fn required(program: &str, test: &str) -> Option<PathBuf> {
    let names: &[&str] = match program {
        "chromium" => &["chromium", "chromium-browser", "google-chrome"],
        other => &[other],
    };
    let found = names.iter().find_map(|name| find(name));
    if found.is_none() {
        assert!(
            std::env::var_os(REQUIRE_BROWSER).is_none(),
            "{REQUIRE_BROWSER} is set but `{program}` is not installed"
        );
        eprintln!("\n!!! SKIPPED {test}: `{program}` is not installed (CI installs it) !!!\n");
    }
    found
}

/// A headless Chromium driven through chromedriver, with a fresh profile.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start(test: &str) -> Option<Self> {
        let chromium = required("chromium", test)?;
        let chromedriver = required("chromedriver", test)?;
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let webdriver = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while reqwest::get(format!("{webdriver}/status")).await.is_err() {
            assert!(started.elapsed() < WAIT, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("a profile dir");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .expect("a browser session");
        Some(Self {
            client,
            driver,
            _profile: profile,
        })
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    pub async fn run(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("running {script}: {e}"))
    }

    /// Runs a script that ends by calling `done(value)`.
    pub async fn run_async(&self, script: &str) -> Value {
        let script = format!("const done = arguments[arguments.length - 1];\n{script}");
        self.client
            .execute_async(&script, vec![])
            .await
            .unwrap_or_else(|e| panic!("running {script}: {e}"))
    }

    /// Waits until the JavaScript expression is true; fails after `WAIT`.
    pub async fn wait_for(&self, what: &str, expression: &str) {
        self.wait_within(WAIT, what, expression).await;
    }

    /// Waits at most `limit` until the expression is true; how long it took.
    pub async fn wait_within(&self, limit: Duration, what: &str, expression: &str) -> Duration {
        let started = Instant::now();
        loop {
            if self.run(&format!("return !!({expression});")).await == json!(true) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "waited {limit:?} in vain for {what}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn status_is(&self, status: &str) {
        self.wait_for(
            &format!("the status pill to say {status}"),
            &format!("document.getElementById('status')?.dataset.status === '{status}'"),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("finding {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    pub async fn type_and_send(&self, text: &str) {
        self.wait_for("the send box", "!document.getElementById('body').disabled")
            .await;
        let body = self.client.find(Locator::Id("body")).await.unwrap();
        body.send_keys(text).await.unwrap();
        body.send_keys("\u{E007}").await.unwrap(); // Enter
    }

    /// Asserts the page was not reloaded since the test set
    /// `window.loadedAt = performance.timeOrigin` on it.
    pub async fn assert_not_reloaded(&self) {
        assert_eq!(
            self.run("return window.loadedAt === performance.timeOrigin;")
                .await,
            json!(true),
            "no reload"
        );
    }

    /// The bodies of the messages the open conversation shows, in order.
    pub async fn shown_bodies(&self) -> Vec<String> {
        let bodies = self
            .run(
                "return [...document.querySelectorAll('#messages .body')].map(b => b.textContent);",
            )
            .await;
        serde_json::from_value(bodies).unwrap()
    }

    /// No console errors, no uncaught errors, no CSP violations on this page.
    pub async fn assert_no_errors(&self) {
        assert_eq!(self.run("return window.chatErrors;").await, json!([]));
    }

    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The text of `room`'s badge in the admin list.
pub fn badge(room: &str) -> String {
    format!("document.querySelector('[data-room-id=\"{room}\"] .badge')?.textContent")
}

/// The admin header's total.
pub const TOTAL: &str = "document.getElementById('total').textContent";

/// The running test's name, for its artifacts: libtest names each test's
/// thread after it (with its module path, which this leaves out).
pub fn this_test() -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("browser-test");
    name.rsplit("::").next().unwrap_or(name).to_owned()
}

pub async fn create_room_with_message(server: &ServerProcess, token: &str, body: &str) -> String {
    let room = server.create_room(token, "Where is my parcel?", &[]).await;
    server.send(token, &room, body).await;
    room
}

/// A JSON GET against the server, asserting success.
pub async fn get(server: &ServerProcess, token: &str, path: &str) -> Value {
    let (status, body) = send(
        reqwest::Client::new()
            .get(server.url(path))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// How many times the store holds a message of `body` in `room`.
pub async fn stored_times(server: &ServerProcess, token: &str, room: &str, body: &str) -> usize {
    let page = get(
        server,
        token,
        &format!("/api/chat/rooms/{room}/messages?limit=200"),
    )
    .await;
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|message| message["body"] == body)
        .count()
}

/// Opens the admin panel at `address` (a server's, or a proxy's in front of
/// it) with `room` selected, its message shown.
pub async fn admin_with_room_open(browser: &Browser, address: &str, room: &str) {
    browser
        .goto(&format!("{address}/admin?user=agent&role=admin&{TIMINGS}"))
        .await;
    browser.status_is("live").await;
    browser
        .click(&format!("[data-room-id='{room}'] button"))
        .await;
    browser
        .wait_for(
            "the conversation",
            "document.querySelector('#messages .body')",
        )
        .await;
}

/// Opens alice's widget at `address` (a server's, or a proxy's), live, her
/// message shown.
pub async fn alices_widget(browser: &Browser, address: &str) {
    browser
        .goto(&format!("{address}/widget?user=alice&{TIMINGS}"))
        .await;
    browser.status_is("live").await;
    browser
        .wait_for(
            "the conversation",
            "document.querySelector('#messages .body')",
        )
        .await;
}

/// A browser on a page (`path`, with its query) of a fresh server, reached
/// through a test proxy; alice's room already holds one message.
pub struct BehindProxy {
    pub browser: Browser,
    pub server: ServerProcess,
    pub proxy: Proxy,
    pub alice: String,
    pub room: String,
}

impl BehindProxy {
    /// The admin panel, with `timings`, live.
    pub async fn admin(test: &str, timings: &str) -> Option<Self> {
        Self::start(test, &format!("/admin?user=agent&role=admin&{timings}")).await
    }

    pub async fn start(test: &str, path: &str) -> Option<Self> {
        let browser = Browser::start(test).await?;
        let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
        let proxy = Proxy::start(&server.address).await;
        let alice = user("alice");
        let room = create_room_with_message(&server, &alice, "first").await;
        browser.goto(&proxy.url(path)).await;
        browser.status_is("live").await;
        // Live shows at the first bytes; what the tests do to the network
        // next must meet a stream known to pass data, not one still on trial.
        browser
            .wait_for("the stream to be proven", "window.chatStream.streamProven")
            .await;
        Some(Self {
            browser,
            server,
            proxy,
            alice,
            room,
        })
    }
}

/// Installs `web/`'s packages (the client's test dependencies, axe-core) with
/// `npm ci` when they are missing or older than the lock file, once per run.
/// `false` (after saying so loudly) when npm is not installed.
pub fn web_packages_installed(test: &str) -> bool {
    static INSTALLED: std::sync::Mutex<Option<bool>> = std::sync::Mutex::new(None);
    let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(done) = *installed {
        return done;
    }
    let Some(npm) = required("npm", test) else {
        *installed = Some(false);
        return false;
    };
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let modified = |path: PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let current = match (
        modified(web.join("node_modules/.package-lock.json")),
        modified(web.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => installed >= lock,
        _ => false,
    };
    if !current {
        let output = Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&web)
            .output()
            .expect("npm runs");
        assert!(
            output.status.success(),
            "npm ci in web/ failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    *installed = Some(true);
    true
}
