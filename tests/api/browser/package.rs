//! The client package's own tests, under Node's test runner, against a real
//! server process: unit tests on a fake clock, the React hook, the types, and
//! the package installed from a packed tarball as an app would.

use super::{SERVER_ENV, required, web_packages_installed};
use crate::helpers::{Backend, ServerProcess};

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
