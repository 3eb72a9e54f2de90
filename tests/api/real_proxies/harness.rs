//! The real proxies as child processes: `deploy/`'s config filled in, run in
//! the foreground on a free port, waited for, and killed by PID on drop.

use crate::support::{WAIT, free_port};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set in CI: a missing proxy then fails the test instead of skipping it.
pub const REQUIRE_PROXIES: &str = "CHAT_TEST_REQUIRE_PROXIES";

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Nginx,
    Haproxy,
}

impl Kind {
    fn program(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Haproxy => "haproxy",
        }
    }

    /// The Debian package that installs the program.
    fn package(self) -> &'static str {
        match self {
            Self::Nginx => "nginx-light",
            Self::Haproxy => "haproxy",
        }
    }

    /// The production config, as `docs/deployment.md` shows it.
    fn template(self) -> &'static str {
        match self {
            Self::Nginx => include_str!("../../../deploy/nginx.conf"),
            Self::Haproxy => include_str!("../../../deploy/haproxy.cfg"),
        }
    }

    /// The program, or `None` after saying loudly that `test` is skipped.
    pub fn installed(self, test: &str) -> Option<PathBuf> {
        let program = self.program();
        // The proxies live in sbin, which a user's PATH may lack.
        let path = std::env::var_os("PATH").unwrap_or_default();
        let found = std::env::split_paths(&path)
            .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file());
        if found.is_none() {
            assert!(
                std::env::var_os(REQUIRE_PROXIES).is_none(),
                "{REQUIRE_PROXIES} is set but `{program}` (package {}) is not installed",
                self.package()
            );
            eprintln!(
                "\n!!! SKIPPED {test}: `{program}` is not installed (the Debian package {}; CI installs it) !!!\n",
                self.package()
            );
        }
        found
    }
}

/// A running proxy in front of one upstream or several.
pub struct Proxy {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    kind: Kind,
    child: Child,
    dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts `program` (of `kind`) in front of `upstreams` (`host:port`
    /// each: the config's `{{upstream}}` line once for each, as production
    /// lists its instances), cutting connections quiet for `idle_timeout`;
    /// returns once it accepts.
    pub async fn start(
        kind: Kind,
        program: &Path,
        upstreams: &[&str],
        idle_timeout: Duration,
    ) -> Self {
        // HAProxy names each server line: one copy would repeat the name.
        assert!(
            upstreams.len() == 1 || matches!(kind, Kind::Nginx),
            "several upstreams are run through nginx only"
        );
        let dir = tempfile::tempdir().expect("a temp dir");
        let listen = format!("127.0.0.1:{}", free_port());
        let timeout = format!("{}ms", idle_timeout.as_millis());
        let temp_dir = dir.path().display().to_string();
        let config = fill(
            &each_upstream(kind.template(), upstreams),
            &[
                ("listen", &listen),
                ("read_timeout", &timeout),
                ("idle_timeout", &timeout),
                ("temp_dir", &temp_dir),
            ],
        );
        let mut command = Command::new(program);
        match kind {
            Kind::Nginx => {
                let file = dir.path().join("nginx.conf");
                std::fs::write(&file, config).expect("write nginx.conf");
                // `-e`: the log nginx opens before it has read the config.
                command
                    .arg("-p")
                    .arg(dir.path())
                    .arg("-e")
                    .arg(dir.path().join("error.log"))
                    .arg("-c")
                    .arg(file);
            }
            Kind::Haproxy => {
                let file = dir.path().join("haproxy.cfg");
                std::fs::write(&file, config).expect("write haproxy.cfg");
                command.arg("-db").arg("-f").arg(file);
            }
        }
        let output = std::fs::File::create(dir.path().join("output.log")).expect("a log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("a log file"))
            .stderr(output)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", kind.program()));
        let mut proxy = Self {
            address: format!("http://{listen}"),
            kind,
            child,
            dir,
        };
        proxy.wait_until_accepting(&listen).await;
        proxy
    }

    async fn wait_until_accepting(&mut self, listen: &str) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waitable") {
                panic!(
                    "{} exited ({status}) before accepting connections:\n{}",
                    self.kind.program(),
                    self.logs()
                );
            }
            if tokio::net::TcpStream::connect(listen).await.is_ok() {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "{} did not accept connections on {listen} within {WAIT:?}:\n{}",
                self.kind.program(),
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the proxy wrote: its output, and nginx's error log.
    pub fn logs(&self) -> String {
        ["output.log", "error.log"]
            .iter()
            .filter_map(|name| std::fs::read_to_string(self.dir.path().join(name)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // One process each (nginx runs without a master, HAProxy with -db).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The template with each line that names `{{upstream}}` written once for
/// every upstream, in order.
fn each_upstream(template: &str, upstreams: &[&str]) -> String {
    let mut text = String::new();
    for line in template.lines() {
        if line.contains("{{upstream}}") && !line.trim_start().starts_with('#') {
            for upstream in upstreams {
                text.push_str(&line.replace("{{upstream}}", upstream));
                text.push('\n');
            }
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// The template with every `{{name}}` replaced; fails on a placeholder
/// outside the comments that nothing filled.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let filled = values
        .iter()
        .fold(template.to_owned(), |text, (name, value)| {
            text.replace(&format!("{{{{{name}}}}}"), value)
        });
    let unfilled: Vec<&str> = filled
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && line.contains("{{"))
        .collect();
    assert!(unfilled.is_empty(), "placeholders left: {unfilled:?}");
    filled
}
