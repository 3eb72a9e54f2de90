//! A smoke of the load generator (a few hundred streams for a few seconds):
//! it works against the real binary and finds no loss. Speed is measured by
//! the benchmarks (docs/benchmarks.md), never by tests.

use crate::helpers::{Backend, on_both_stores, raise_open_file_limit};
use std::process::Command;

on_both_stores!(the_load_generator_smoke_runs_and_finds_no_loss);

async fn the_load_generator_smoke_runs_and_finds_no_loss(backend: Backend) {
    raise_open_file_limit();
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-load"));
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
