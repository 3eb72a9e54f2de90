//! The `chat-server` binary: `serve` (the default), `migrate`, and `token`.

use chat_server::app;
use chat_server::auth::Auth;
use chat_server::config::{Config, Interval, LogFormat};
use chat_server::model::{Role, UserId};
use chat_server::store;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::process::ExitCode;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(version, about = "Real-time chat backend")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Print a token signed with the configured secret.
    Token {
        /// The user id (the `sub` claim).
        #[arg(long)]
        sub: String,
        #[arg(long, value_enum, default_value_t = RoleArg::User)]
        role: RoleArg,
        /// How long the token is valid, like `1h` or `30m`.
        #[arg(long, default_value = "1h", value_parser = Interval::parse)]
        ttl: Interval,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    User,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("chat-server: {error}");
            return ExitCode::FAILURE;
        }
    };
    // `token` prints the token on stdout; keep its stderr to what needs saying.
    let quiet = matches!(cli.command, Some(Command::Token { .. }));
    init_tracing(if quiet { "warn" } else { &config.log }, config.log_format);
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => migrate(&config).await,
        Command::Token { sub, role, ttl } => token(&config, sub, role, ttl),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error>;

fn init_tracing(default_filter: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // The request's span (its id, method and URI) on every line.
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

async fn serve(config: Config) -> Result<(), AnyError> {
    let listen = config.listen;
    let metrics_listen = config.metrics_listen;
    let timeouts = app::ClientTimeouts::of(&config);
    let deadline = config.shutdown_deadline.0;
    tracing::info!(env = ?config.env, database = %store_kind(&config.database_url), "starting");
    // Every stream is an open file: take all the kernel allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open-file limit"),
    }
    let (drain, draining) = watch::channel(false);
    let state = app::build_state(config, draining.clone()).await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("could not listen on {listen}: {e}"))?;
    tracing::info!(address = %listener.local_addr()?, "serving");
    if let Some(address) = metrics_listen {
        let metrics = TcpListener::bind(address)
            .await
            .map_err(|e| format!("could not listen on {address} for metrics: {e}"))?;
        tracing::info!(address = %metrics.local_addr()?, "serving /metrics");
        let router = app::metrics_router(state.clone());
        tokio::spawn(app::serve(metrics, router, draining.clone(), timeouts));
    }
    tokio::spawn(async move {
        shutdown_signal().await;
        // Readiness fails at once; streams wind down; no new connections.
        let _ = drain.send(true);
    });
    let hub = state.hub.clone();
    let webhooks = state.webhooks.clone();
    let erasures = state.erasures.clone();
    let server = app::serve(listener, app::router(state), draining.clone(), timeouts);
    let mut signalled = draining;
    let deadline_passed = async move {
        let _ = signalled.wait_for(|draining| *draining).await;
        tokio::time::sleep(deadline).await;
    };
    let served = tokio::select! {
        served = server => served,
        () = deadline_passed => {
            tracing::warn!(?deadline, "shutdown deadline passed; exiting");
            Ok(())
        }
    };
    // The webhooks' cursors saved and their leases given back (and the
    // erasure job's), so the next instance goes on at once and repeats nothing.
    let released = async { tokio::join!(webhooks.released(), erasures.released()) };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), released).await;
    // Gives this instance's streams back at once, rather than at its lapse,
    // and leaves its users' presence to the others.
    if let Some(cluster) = hub.presence().cluster() {
        let users = hub.presence().here(&hub);
        let grace = hub.presence().grace();
        let left = cluster.leave(&users, grace);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), left).await;
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(config: &Config) -> Result<(), AnyError> {
    // Nothing relays events here: no one needs waking.
    store::open(&app::store_options(config), Default::default()).await?;
    tracing::info!(database = %store_kind(&config.database_url), "migrations applied");
    Ok(())
}

fn token(config: &Config, sub: String, role: RoleArg, ttl: Interval) -> Result<(), AnyError> {
    let secret = app::jwt_secret(config)?;
    let auth = Auth::new(config, secret.as_ref())?;
    let role = match role {
        RoleArg::Admin => Role::Admin,
        RoleArg::User => Role::User,
    };
    println!("{}", auth.mint(&UserId::parse(sub)?, role, ttl.0)?);
    Ok(())
}

/// Names the backend without printing credentials from the URL.
fn store_kind(url: &str) -> &'static str {
    store::Backend::of(url).map_or("unknown", store::Backend::name)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
