//! Settings the server refuses to start with, run as the real binary: the
//! development conveniences anywhere but a loopback address, and production
//! without the issuer and audience its tokens must carry.

use crate::support::{SECRET, WAIT, serving_address};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

/// How `chat-server` answered a start with some settings.
enum Outcome {
    /// It exited at once, having said why on stderr.
    Refused(String),
    /// It logged that it serves (and was stopped).
    Served,
}

/// Starts `chat-server` on SQLite in a temp dir, with nothing but `env`, and
/// sees whether it serves or refuses.
fn start(env: &[(&str, &str)]) -> Outcome {
    let data_dir = tempfile::tempdir().expect("a temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CHAT_DATA_DIR", data_dir.path())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", data_dir.path().join("chat.db").display()),
        )
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let (line_sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line_sender.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let mut said = Vec::new();
    // Each line, until it serves or its stderr closes (it exited).
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if serving_address(&line).is_some() => {
                let _ = child.kill();
                let _ = child.wait();
                return Outcome::Served;
            }
            Ok(line) => said.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("neither served nor refused within {WAIT:?}: {said:?}");
            }
        }
    }
    let status = child.wait().expect("the server's exit status");
    assert!(!status.success(), "exited 0 without serving: {said:?}");
    Outcome::Refused(said.join("\n"))
}

fn refused(env: &[(&str, &str)]) -> String {
    match start(env) {
        Outcome::Refused(said) => said,
        Outcome::Served => panic!("started with {env:?}"),
    }
}

fn served(env: &[(&str, &str)]) {
    if let Outcome::Refused(said) = start(env) {
        panic!("refused {env:?}: {said}");
    }
}

#[test]
fn the_development_conveniences_refuse_to_start_on_an_address_other_than_loopback() {
    // Port 0: whatever port is free, on every address.
    let listen = ("CHAT_LISTEN", "0.0.0.0:0");
    let secret = ("CHAT_JWT_SECRET", SECRET);
    let said = refused(&[listen, secret]);
    assert!(
        said.contains("dev_token_endpoint only works on a loopback address"),
        "{said}"
    );

    let conveniences_off = [listen, ("CHAT_DEV_TOKEN_ENDPOINT", "false")];
    // The generated development secret, and a short one: refused too.
    let said = refused(&conveniences_off);
    assert!(said.contains("jwt_secret must be set"), "{said}");
    let short = [&conveniences_off[..], &[("CHAT_JWT_SECRET", "short")]].concat();
    let said = refused(&short);
    assert!(
        said.contains("jwt_secret must be set, with at least 32 bytes"),
        "{said}"
    );

    // With none of them, development serves on any address.
    served(&[&conveniences_off[..], &[secret]].concat());
    // And on loopback, the conveniences work as before: IPv4, and IPv6
    // where the machine has it.
    served(&[("CHAT_LISTEN", "127.0.0.1:0")]);
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        served(&[("CHAT_LISTEN", "[::1]:0")]);
    }
    let said = refused(&[("CHAT_LISTEN", "[::]:0"), secret]);
    assert!(said.contains("only works on a loopback address"), "{said}");
}

#[test]
fn a_configuration_that_still_opens_cors_to_any_origin_is_refused_with_what_to_do_instead() {
    let said = refused(&[("CHAT_DEV_CORS_ANY_ORIGIN", "true")]);
    assert!(said.contains("dev_cors_any_origin is gone"), "{said}");
    assert!(said.contains("cors_allowed_origins"), "{said}");
    // Off, it is as if it were not there.
    served(&[("CHAT_DEV_CORS_ANY_ORIGIN", "false")]);
}

#[test]
fn production_refuses_to_start_without_an_issuer_and_an_audience() {
    let production = [
        ("CHAT_ENV", "production"),
        ("CHAT_LISTEN", "127.0.0.1:0"),
        ("CHAT_JWT_SECRET", SECRET),
    ];
    let said = refused(&production);
    assert!(
        said.contains("production needs jwt_issuer: set CHAT_JWT_ISSUER"),
        "{said}"
    );
    let issuer = [
        &production[..],
        &[("CHAT_JWT_ISSUER", "https://auth.example")],
    ]
    .concat();
    let said = refused(&issuer);
    assert!(
        said.contains("production needs jwt_audience: set CHAT_JWT_AUDIENCE"),
        "{said}"
    );
    served(&[&issuer[..], &[("CHAT_JWT_AUDIENCE", "chat")]].concat());
}

#[test]
fn production_on_postgresql_keeps_attachments_in_a_bucket_or_a_directory_named_on_purpose() {
    let production = [
        ("CHAT_ENV", "production"),
        ("CHAT_LISTEN", "127.0.0.1:0"),
        ("CHAT_JWT_SECRET", SECRET),
        ("CHAT_JWT_ISSUER", "https://auth.example"),
        ("CHAT_JWT_AUDIENCE", "chat"),
        // Refused by the settings, before any connection is tried.
        ("DATABASE_URL", "postgres://127.0.0.1:1/nowhere"),
    ];
    let said = refused(&production);
    assert!(said.contains("S3-compatible bucket"), "{said}");
    let s3 = [&production[..], &[("CHAT_ATTACHMENT_STORAGE", "s3")]].concat();
    let said = refused(&s3);
    assert!(said.contains("needs s3_bucket (CHAT_S3_BUCKET)"), "{said}");
    let link_base = [
        &production[..],
        &[
            ("CHAT_ATTACHMENT_DIR", "/srv/shared/attachments"),
            ("CHAT_PUBLIC_URL", "chat.example.com/x"),
        ],
    ]
    .concat();
    let said = refused(&link_base);
    assert!(said.contains("public_url"), "{said}");
}
