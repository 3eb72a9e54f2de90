//! A smoke of the load generator (a few hundred streams for a few seconds):
//! it works against the real binary and finds no loss. Speed is measured by
//! the benchmarks (docs/benchmarks.md), never by tests.

use crate::support::{Backend, on_both_stores, raise_open_file_limit};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

on_both_stores!(the_load_generator_smoke_runs_and_finds_no_loss);

/// The load generator, built once per run. It is a workspace crate of its
/// own, which this package's tests do not build; it looks for `chat-server`
/// beside itself, so it is built into the same profile's directory.
fn chat_load() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let server = Path::new(env!("CARGO_BIN_EXE_chat-server"));
        let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        build
            .args(["build", "--locked", "-p", "chat-load", "--bin", "chat-load"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if server.parent().and_then(Path::file_name) == Some("release".as_ref()) {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "cargo could not build chat-load");
        server.with_file_name("chat-load")
    })
}

async fn the_load_generator_smoke_runs_and_finds_no_loss(backend: Backend) {
    raise_open_file_limit();
    let chat_load = tokio::task::spawn_blocking(chat_load).await.unwrap();
    let mut command = Command::new(chat_load);
    command.arg("smoke").current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Backend::Postgres(url) = &backend {
        command.args(["--store", "postgres", "--postgres", url]);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("chat-load runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains("smoke: ok, nothing lost or duplicated"),
        "{report}"
    );
}
