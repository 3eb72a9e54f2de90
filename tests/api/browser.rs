//! The browser side, proven in headless Chromium against a real server
//! process: the `/admin` and `/widget` pages over the client SDK, with short
//! timings (heartbeat 200 ms, watchdog 1 s, backoff 100 to 800 ms). Also runs
//! the client's own unit tests (Node's test runner, on a fake clock).
//!
//! Where Chromium or Node is missing these tests say loudly that they were
//! skipped; with `CHAT_TEST_REQUIRE_BROWSER` set (CI) they fail instead.

use crate::helpers::{Backend, ServerProcess, SharedDb, WAIT, free_port, send, user};
use crate::proxy::{Proxy, Streams};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REQUIRE_BROWSER: &str = "CHAT_TEST_REQUIRE_BROWSER";
const SERVER_ENV: [(&str, &str); 1] = [("CHAT_HEARTBEAT_INTERVAL", "200ms")];
const TIMINGS: &str = "heartbeatTimeout=1000&backoffInitial=100&backoffMax=800";

fn find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// The tool (the first of its names found), or `None` after saying loudly
/// that the test is skipped.
fn required(program: &str, test: &str) -> Option<PathBuf> {
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
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(test: &str) -> Option<Self> {
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

    async fn run(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("running {script}: {e}"))
    }

    /// Waits until the JavaScript expression is true; fails after `WAIT`.
    async fn wait_for(&self, what: &str, expression: &str) {
        let started = Instant::now();
        loop {
            if self.run(&format!("return !!({expression});")).await == json!(true) {
                return;
            }
            assert!(started.elapsed() < WAIT, "waited in vain for {what}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn status_is(&self, status: &str) {
        self.wait_for(
            &format!("the status pill to say {status}"),
            &format!("document.getElementById('status')?.dataset.status === '{status}'"),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("finding {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    async fn type_and_send(&self, text: &str) {
        self.wait_for("the send box", "!document.getElementById('body').disabled")
            .await;
        let body = self.client.find(Locator::Id("body")).await.unwrap();
        body.send_keys(text).await.unwrap();
        body.send_keys("\u{E007}").await.unwrap(); // Enter
    }

    /// No console errors, no uncaught errors, no CSP violations on this page.
    async fn assert_no_errors(&self) {
        assert_eq!(self.run("return window.chatErrors;").await, json!([]));
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn badge(room: &str) -> String {
    format!("document.querySelector('[data-room-id=\"{room}\"] .badge')?.textContent")
}

async fn create_room_with_message(server: &ServerProcess, token: &str, body: &str) -> String {
    let http = reqwest::Client::new();
    let (status, room) = send(
        http.post(server.url("/api/chat/rooms"))
            .bearer_auth(token)
            .json(&json!({"name": "Where is my parcel?"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let room = room["id"].as_str().unwrap().to_owned();
    post(server, token, &room, body).await;
    room
}

async fn post(server: &ServerProcess, token: &str, room: &str, body: &str) {
    let (status, message) = send(
        reqwest::Client::new()
            .post(server.url(&format!("/api/chat/rooms/{room}/messages")))
            .bearer_auth(token)
            .json(&json!({"body": body})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_message_shows_in_the_admin_badges_and_mark_as_read_clears_them() {
    let test = "a_posted_message_shows_in_the_admin_badges_and_mark_as_read_clears_them";
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    browser
        .client
        .goto(&server.url(&format!("/admin?user=agent&role=admin&{TIMINGS}")))
        .await
        .unwrap();
    browser.status_is("live").await;

    let room = create_room_with_message(&server, &user("alice"), "Hello? Anyone there?").await;
    browser
        .wait_for(
            "the room's badge and the total to count it",
            &format!(
                "{} === '1' && document.getElementById('total').textContent === '1'",
                badge(&room)
            ),
        )
        .await;
    browser
        .click(&format!("[data-room-id='{room}'] button"))
        .await;
    browser
        .wait_for(
            "the conversation",
            "document.querySelector('#messages .body')?.textContent === 'Hello? Anyone there?'",
        )
        .await;
    // History and stream can interleave: the conversation stays in seq order.
    let order = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             import('/assets/session.js').then(({ showInOrder }) => {
               const list = document.createElement('ol');
               const shown = new Set();
               const at = '2026-01-01T00:00:00Z';
               for (const seq of [3, 1, 4, 2, 4]) {
                 showInOrder(list, { id: 'm' + seq, seq, authorId: 'x', body: '', createdAt: at }, 'me', shown);
               }
               done([...list.children].map((item) => Number(item.dataset.seq)));
             });",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(order, json!([1, 2, 3, 4]), "in order, each once");
    browser.screenshot("admin-1280px").await;
    browser.client.set_window_size(360, 740).await.unwrap();
    browser.screenshot("admin-360px").await;
    browser.client.set_window_size(1280, 900).await.unwrap();
    browser.click("#mark-read").await;
    browser
        .wait_for(
            "mark-as-read to clear the badge and the total",
            &format!(
                "{} === '0' && document.getElementById('total').textContent === '0'",
                badge(&room)
            ),
        )
        .await;
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widget_user_and_an_admin_talk_live() {
    let test = "a_widget_user_and_an_admin_talk_live";
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    let admin_tab = browser.client.window().await.unwrap();
    browser
        .client
        .goto(&server.url(&format!("/admin?user=agent&role=admin&{TIMINGS}")))
        .await
        .unwrap();
    browser.status_is("live").await;

    let widget_tab = browser.client.new_window(true).await.unwrap().handle;
    browser
        .client
        .switch_to_window(widget_tab.clone())
        .await
        .unwrap();
    browser
        .client
        .goto(&server.url(&format!("/widget?user=alice&{TIMINGS}")))
        .await
        .unwrap();
    browser.status_is("live").await;
    let room = browser.run("return window.chatRoomId;").await;
    let room = room.as_str().unwrap().to_owned();
    browser.type_and_send("Hi, I need help with my order").await;

    browser
        .client
        .switch_to_window(admin_tab.clone())
        .await
        .unwrap();
    browser
        .wait_for(
            "the widget's message to reach the admin",
            &format!("{} === '1'", badge(&room)),
        )
        .await;
    browser
        .click(&format!("[data-room-id='{room}'] button"))
        .await;
    browser
        .wait_for("the message in the conversation", "[...document.querySelectorAll('#messages .body')].some(b => b.textContent === 'Hi, I need help with my order')")
        .await;
    browser
        .type_and_send("Happy to help! What is your order number?")
        .await;
    browser.assert_no_errors().await;

    browser.client.switch_to_window(widget_tab).await.unwrap();
    browser
        .wait_for("the reply to reach the widget", "[...document.querySelectorAll('#messages .body')].some(b => b.textContent === 'Happy to help! What is your order number?')")
        .await;
    browser.client.set_window_size(360, 740).await.unwrap();
    browser.screenshot("widget-360px").await;
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_and_restart_the_admin_shows_every_message_once_without_a_reload() {
    let test = "after_a_sigkill_and_restart_the_admin_shows_every_message_once_without_a_reload";
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let db = SharedDb::create(&Backend::Sqlite).await;
    let port = free_port();
    let mut server = ServerProcess::start_on(&db, port, &SERVER_ENV).await;
    // A second process on the same database takes writes while the first is down.
    let during = ServerProcess::start_on(&db, 0, &SERVER_ENV).await;
    let alice = user("alice");
    browser
        .client
        .goto(&server.url(&format!("/admin?user=agent&role=admin&{TIMINGS}")))
        .await
        .unwrap();
    browser.status_is("live").await;
    let room = create_room_with_message(&server, &alice, "before 1").await;
    browser
        .wait_for("the room", &format!("{} === '1'", badge(&room)))
        .await;
    browser
        .click(&format!("[data-room-id='{room}'] button"))
        .await;
    post(&server, &alice, &room, "before 2").await;
    browser
        .wait_for(
            "two messages",
            "document.querySelectorAll('#messages li').length === 2",
        )
        .await;
    browser
        .run("window.loadedAt = performance.timeOrigin; return 0;")
        .await;

    server.kill();
    browser.status_is("reconnecting").await;
    for n in 1..=3 {
        post(&during, &alice, &room, &format!("during {n}")).await;
    }
    let _restarted = ServerProcess::start_on(&db, port, &SERVER_ENV).await;
    browser.status_is("live").await;
    browser
        .wait_for(
            "every message, once",
            &format!(
                "document.querySelectorAll('#messages li').length === 5 && {} === '5'",
                badge(&room)
            ),
        )
        .await;
    let bodies = browser
        .run("return [...document.querySelectorAll('#messages .body')].map(b => b.textContent);")
        .await;
    assert_eq!(
        bodies,
        json!(["before 1", "before 2", "during 1", "during 2", "during 3"])
    );
    assert_eq!(
        browser
            .run("return window.loadedAt === performance.timeOrigin;")
            .await,
        json!(true),
        "no reload"
    );
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_package_passes_its_tests_under_node_against_a_real_server() {
    let test = "the client package's tests";
    let Some(node) = required("node", test) else {
        return;
    };
    if !web_packages_installed(test) {
        return;
    }
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    let output = tokio::process::Command::new(node)
        .args(["--test", "web/sdk/test/"])
        .env("CHAT_SERVER_URL", &server.address)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .await
        .expect("node runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    // Every test ran: none failed, none was skipped for want of the server.
    for line in ["# fail 0", "# skipped 0", "# todo 0", "# cancelled 0"] {
        assert!(report.contains(line), "no `{line}` in:\n{report}");
    }
}

/// Installs `web/`'s packages (the client's test dependencies, axe-core) with
/// `npm ci` when they are missing or older than the lock file, once per run.
/// `false` (after saying so loudly) when npm is not installed.
fn web_packages_installed(test: &str) -> bool {
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

/// A browser whose `/admin` page, with `timings`, reaches a fresh server
/// through a counting proxy; alice's room already holds one message.
struct BehindProxy {
    browser: Browser,
    server: ServerProcess,
    proxy: Proxy,
    alice: String,
    room: String,
}

impl BehindProxy {
    async fn start(test: &str, timings: &str) -> Option<Self> {
        let browser = Browser::start(test).await?;
        let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
        let proxy = Proxy::start(&server.address).await;
        let alice = user("alice");
        let room = create_room_with_message(&server, &alice, "first").await;
        browser
            .client
            .goto(&proxy.url(&format!("/admin?user=agent&role=admin&{timings}")))
            .await
            .unwrap();
        browser.status_is("live").await;
        Some(Self {
            browser,
            server,
            proxy,
            alice,
            room,
        })
    }
}

/// Timings for the fallback tests: poll every 300 ms, try streaming every 1.5 s.
const FALLBACK_TIMINGS: &str = "heartbeatTimeout=1000&backoffInitial=100&backoffMax=800&pollInterval=300&streamRetryInterval=1500";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_streams_the_admin_polls_and_returns_to_live_when_they_are_back() {
    let test = "without_streams_the_admin_polls_and_returns_to_live_when_they_are_back";
    let Some(BehindProxy {
        browser,
        server,
        proxy,
        alice,
        room,
    }) = BehindProxy::start(test, FALLBACK_TIMINGS).await
    else {
        return;
    };

    proxy.streams(Streams::Refuse);
    browser.status_is("polling").await;
    post(&server, &alice, &room, "while polling").await;
    browser
        .wait_for(
            "polling to update the badge",
            &format!("{} === '2'", badge(&room)),
        )
        .await;
    let polls_while_polling = proxy.room_polls();

    proxy.streams(Streams::Pass);
    browser.status_is("live").await;
    let polls_at_live = proxy.room_polls();
    assert!(polls_at_live > polls_while_polling, "it did poll");
    post(&server, &alice, &room, "streamed again").await;
    browser
        .wait_for(
            "the stream to update the badge",
            &format!("{} === '3'", badge(&room)),
        )
        .await;
    // Absence cannot be awaited: give polling three of its intervals to show itself.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        proxy.room_polls() <= polls_at_live + 1,
        "polling stopped once live: {} polls after {polls_at_live}",
        proxy.room_polls()
    );
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_reconnects_a_stream_that_went_silent() {
    let test = "the_watchdog_reconnects_a_stream_that_went_silent";
    let Some(BehindProxy {
        browser,
        server,
        proxy,
        alice,
        room,
    }) = BehindProxy::start(test, TIMINGS).await
    else {
        return;
    };

    // From now on streams open but carry nothing, not even heartbeats.
    proxy.streams(Streams::Silence);
    let opens = proxy.stream_opens();
    let started = Instant::now();
    while proxy.stream_opens() < opens + 2 {
        assert!(started.elapsed() < WAIT, "the watchdog did not reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    post(&server, &alice, &room, "sent while silent").await;
    proxy.streams(Streams::Pass);
    browser.status_is("live").await;
    browser
        .wait_for(
            "the message sent during the silence",
            &format!("{} === '2'", badge(&room)),
        )
        .await;
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_admin_tabs_share_one_stream_and_hand_it_over_without_loss() {
    let test = "three_admin_tabs_share_one_stream_and_hand_it_over_without_loss";
    let Some(BehindProxy {
        browser,
        server,
        proxy,
        alice,
        room,
    }) = BehindProxy::start(test, TIMINGS).await
    else {
        return;
    };
    let page = proxy.url(&format!("/admin?user=agent&role=admin&{TIMINGS}"));
    let mut tabs = vec![browser.client.window().await.unwrap()];
    for _ in 0..2 {
        let tab = browser.client.new_window(true).await.unwrap().handle;
        browser.client.switch_to_window(tab.clone()).await.unwrap();
        browser.client.goto(&page).await.unwrap();
        browser.status_is("live").await;
        tabs.push(tab);
    }
    assert_eq!(proxy.open_streams(), 1, "three tabs, one stream");

    post(&server, &alice, &room, "two").await;
    let mut leader = None;
    for tab in &tabs {
        browser.client.switch_to_window(tab.clone()).await.unwrap();
        browser
            .wait_for(
                "every tab to count it",
                &format!("{} === '2'", badge(&room)),
            )
            .await;
        browser.assert_no_errors().await;
        if browser.run("return window.chatStream.isLeader;").await == json!(true) {
            leader = Some(tab.clone());
        }
    }

    // Close the leader; messages keep coming during the handover.
    let leader = leader.expect("one tab leads");
    browser
        .client
        .switch_to_window(leader.clone())
        .await
        .unwrap();
    browser.client.close_window().await.unwrap();
    post(&server, &alice, &room, "three").await;
    post(&server, &alice, &room, "four").await;
    let rest: Vec<_> = tabs.into_iter().filter(|tab| *tab != leader).collect();
    for tab in &rest {
        browser.client.switch_to_window(tab.clone()).await.unwrap();
        browser
            .wait_for(
                "the surviving tabs to count every message",
                &format!("{} === '4'", badge(&room)),
            )
            .await;
        browser.status_is("live").await;
        browser.assert_no_errors().await;
    }
    let started = Instant::now();
    while proxy.open_streams() != 1 {
        assert!(
            started.elapsed() < WAIT,
            "{} streams after the handover",
            proxy.open_streams()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.close().await;
}
