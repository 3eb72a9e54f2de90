//! The client package's own tests, under Node's test runner, against a real
//! server process: unit tests on a fake clock, the React hook, the types, and
//! the package installed from a packed tarball as an app would; and an app
//! on another origin that imports the package by name in a browser.

use super::{SERVER_ENV, required, this_test, web_packages_installed};
use crate::support::{Backend, ServerProcess, user};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_package_passes_its_tests_under_node_against_a_real_server() {
    let test = "the client package's tests";
    let Some(node) = required("node", test) else {
        return;
    };
    if !web_packages_installed(test) {
        return;
    }
    // A small upload limit, which the attachments' tests pass.
    let max_bytes = ("CHAT_ATTACHMENT_MAX_BYTES", "200000");
    let server = ServerProcess::start(&Backend::Sqlite, &[SERVER_ENV[0], max_bytes]).await;
    let output = tokio::process::Command::new(node)
        .args(["--test", "web/sdk/test/"])
        .env("CHAT_SERVER_URL", &server.address)
        .env(max_bytes.0, max_bytes.1)
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

/// Serves the test app (`tests/api/fixtures/app`) and the installed package
/// under `/node_modules/chat-server-client/`, as a static host would; its address.
async fn serve_app() -> String {
    use axum::extract::Path as UrlPath;
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let app = root.join("tests/api/fixtures/app");
    let package = root.join("web/node_modules/chat-server-client");
    let file = |path: std::path::PathBuf| async move {
        let kind = match path.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript",
            _ => "application/octet-stream",
        };
        match tokio::fs::read(&path).await {
            Ok(bytes) => ([(header::CONTENT_TYPE, kind)], bytes).into_response(),
            Err(_) => StatusCode::NOT_FOUND.into_response(),
        }
    };
    let router = axum::Router::new()
        .route(
            "/",
            axum::routing::get({
                let app = app.clone();
                move || file(app.join("index.html"))
            }),
        )
        .route(
            "/app.js",
            axum::routing::get(move || file(app.join("app.js"))),
        )
        .route(
            "/node_modules/chat-server-client/{*path}",
            axum::routing::get(move |UrlPath(path): UrlPath<String>| {
                // The package's own files (its modules under src/ too), and
                // nothing above it or hidden.
                let safe = path
                    .split('/')
                    .all(|part| !part.is_empty() && !part.starts_with('.'));
                file(if safe {
                    package.join(path)
                } else {
                    package.join("missing")
                })
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_on_another_origin_imports_the_installed_package_by_name_and_chats_live() {
    let test = &this_test();
    if !web_packages_installed(test) {
        return;
    }
    let Some(browser) = super::Browser::start(test).await else {
        return;
    };
    let app = serve_app().await;
    let origins = format!("[\"{app}\"]");
    let server = ServerProcess::start(
        &Backend::Sqlite,
        &[
            SERVER_ENV[0],
            ("CHAT_DEV_CORS_ANY_ORIGIN", "false"),
            ("CHAT_CORS_ALLOWED_ORIGINS", &origins),
        ],
    )
    .await;
    let alice = user("alice");
    let room = server.create_room(&alice, "From an app", &["agent"]).await;
    browser
        .goto(&format!(
            "{app}/?server={}&token={alice}&roomId={room}",
            server.address
        ))
        .await;
    browser
        .wait_for(
            "the app live",
            "document.getElementById('status').textContent === 'live'",
        )
        .await;
    server
        .send(&user("agent"), &room, "hello from support")
        .await;
    browser
        .wait_for(
            "the message and the unread count",
            "document.getElementById('messages').textContent === 'hello from support'
             && document.getElementById('unread').textContent === '1'",
        )
        .await;
    let sent = browser
        .run_async(
            "window.send('hi from the app').then((m) => done(m.body), (e) => done(String(e)));",
        )
        .await;
    assert_eq!(sent, "hi from the app");
    browser
        .wait_for(
            "its own message once, and the room read by posting",
            "[...document.querySelectorAll('#messages li')].map((li) => li.textContent).join('|')
               === 'hello from support|hi from the app'
             && document.getElementById('unread').textContent === '0'",
        )
        .await;
    assert_eq!(
        browser.run("return window.appErrors;").await,
        serde_json::json!([])
    );
    browser.close().await;
}
