//! Settings: the embedded `config/default.toml`, then `config/production.toml`
//! when `CHAT_ENV=production`, then the file named by `CHAT_CONFIG`, then
//! `CHAT_*` environment variables (and `DATABASE_URL`); then `validate()`.

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const DEFAULT_TOML: &str = include_str!("../config/default.toml");
const PRODUCTION_TOML: &str = include_str!("../config/production.toml");

/// The shortest production secret: 256 bits, what HS256 is designed for.
pub const MIN_SECRET_BYTES: usize = 32;

/// The shortest metrics token: it guards figures, not accounts.
pub const MIN_METRICS_TOKEN_BYTES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event, the span's fields in front.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Whether the support inbox assigns conversations by itself, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoAssign {
    Off,
    /// To the online agent with the fewest open conversations (below
    /// `auto_assign_cap`); of those, the one who got one longest ago.
    RoundRobin,
}

/// Where attachments' bytes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentStorage {
    /// Files under `attachment_dir`: one instance's (or a shared mount's).
    Disk,
    /// An S3-compatible bucket (`s3_*`): any number of instances.
    S3,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub env: Environment,
    pub listen: SocketAddr,
    pub log: String,
    pub log_format: LogFormat,
    pub data_dir: PathBuf,

    pub database_url: String,
    pub database_max_connections: u32,
    pub database_acquire_timeout: Interval,

    #[serde(default)]
    pub jwt_secret: Option<Secret>,
    #[serde(default)]
    pub jwt_public_key_file: Option<PathBuf>,
    #[serde(default)]
    pub jwt_public_key_algorithm: Option<String>,
    #[serde(default)]
    pub jwt_issuer: Option<String>,
    #[serde(default)]
    pub jwt_audience: Option<String>,
    pub jwt_leeway: Interval,
    pub token_cookie: String,
    pub token_max_lifetime: Interval,

    pub heartbeat_interval: Interval,
    pub stream_retry: Interval,
    pub event_retention: Interval,
    pub event_purge_batch: u32,
    pub stream_buffer_events: usize,
    pub event_window_events: usize,
    pub event_window_bytes: usize,
    pub relay_poll_interval: Interval,
    pub stream_max_per_user: usize,
    stream_rate_per_user: u32,
    stream_burst_per_user: u32,
    stream_rate_per_ip: u32,
    stream_burst_per_ip: u32,
    message_rate_per_user: u32,
    message_burst_per_user: u32,
    room_rate_per_user: u32,
    room_burst_per_user: u32,
    member_rate_per_user: u32,
    member_burst_per_user: u32,
    read_rate_per_user: u32,
    read_burst_per_user: u32,
    typing_rate_per_user: u32,
    typing_burst_per_user: u32,
    upload_rate_per_user: u32,
    upload_burst_per_user: u32,
    search_rate_per_user: u32,
    search_burst_per_user: u32,
    /// PostgreSQL's text search configuration for message search: `simple`
    /// (every language, no stemming) or one of its languages (`english`…).
    pub search_language: String,
    /// On PostgreSQL: the per-user write budgets and stream cap are the
    /// cluster's, kept in the database, rather than each process's.
    pub cluster_limits: bool,
    /// How often an instance tells the database it is alive; three missed
    /// and its streams stop counting against their users' cap.
    pub instance_heartbeat: Interval,
    /// How long a user stays online after their last stream or poll ends,
    /// so a reload does not show them offline.
    pub presence_grace: Interval,
    /// Proxies whose `X-Forwarded-For` names the client.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub shutdown_deadline: Interval,
    pub shutdown_spread: Interval,

    pub max_body_bytes: usize,
    pub room_max_members: usize,
    /// Members (not only admins) may put other users into their rooms,
    /// for apps with peer group chats. Off: membership is by consent.
    pub members_add_others: bool,
    /// How long after sending a message its author may still edit it
    /// (admins always may).
    pub message_edit_window: Interval,
    /// Messages one transaction of an erasure makes tombstones, and rows
    /// one statement of a room's deletion removes.
    pub erase_batch: u32,
    /// How long an instance's hold on an erasure job lasts unless renewed
    /// (a killed instance's job is taken over after it).
    pub erasure_lease: Interval,
    /// Whether conversations whose customer waits are assigned by
    /// themselves (see `inbox::AutoAssigner`).
    pub auto_assign: AutoAssign,
    /// The open conversations auto-assignment gives one agent at most.
    pub auto_assign_cap: u32,
    /// If set, an assigned open conversation whose customer has waited this
    /// long (and longer than its assignee has had it) goes to another agent,
    /// or back to the queue.
    #[serde(default)]
    pub auto_assign_reassign_after: Option<Interval>,
    /// If set, messages older than this become tombstones (in batches of
    /// `erase_batch`), as an erasure makes them.
    #[serde(default)]
    pub message_retention: Option<Interval>,
    pub attachment_storage: AttachmentStorage,
    /// The disk backend's directory; `<data_dir>/attachments` when unset.
    #[serde(default)]
    attachment_dir: Option<PathBuf>,
    /// The largest upload, in bytes.
    pub attachment_max_bytes: u64,
    /// The types (sniffed from the bytes) that may be uploaded.
    pub attachment_types: Vec<String>,
    /// Images with more pixels get their size but no thumbnail.
    pub attachment_max_pixels: u64,
    /// How long an upload may wait to be sent with a message.
    pub attachment_orphan_ttl: Interval,
    /// How long download redirects and signed links stay valid.
    pub attachment_url_lifetime: Interval,
    #[serde(default)]
    pub s3_bucket: Option<String>,
    /// For an S3-compatible store other than AWS (MinIO, R2, Ceph…).
    #[serde(default)]
    pub s3_endpoint: Option<String>,
    pub s3_region: String,
    #[serde(default)]
    pub s3_access_key_id: Option<String>,
    #[serde(default)]
    pub s3_secret_access_key: Option<Secret>,
    /// Plain HTTP to `s3_endpoint` (a store on the same host or network).
    pub s3_allow_http: bool,
    /// How long a webhook receiver has to answer a delivery.
    pub webhook_timeout: Interval,
    /// How long a delivery is retried before its webhook is marked failing.
    pub webhook_retry_horizon: Interval,
    /// The longest wait between two retries of a delivery.
    pub webhook_retry_max_interval: Interval,
    /// The most events one webhook delivery carries.
    pub webhook_batch_events: u32,
    /// How long an instance's hold on a webhook lasts unless renewed (a
    /// killed instance's webhooks are taken over after it).
    pub webhook_lease: Interval,
    /// Webhooks may point at loopback, private and link-local addresses.
    pub webhook_allow_internal_addresses: bool,
    /// How long a rotated-out webhook secret still signs deliveries.
    pub webhook_secret_grace: Interval,
    /// How long a message waits before its `message.unseen` notices.
    pub unseen_delay: Interval,
    pub header_timeout: Interval,
    pub stream_stall_timeout: Interval,
    /// The longest (and default) wait of `GET /api/chat/events`; see
    /// [`Config::longest_poll`].
    pub long_poll_wait: Interval,
    pub request_timeout: Interval,

    /// Where clients and webhook receivers reach this server
    /// (`https://chat.example.com`): the base of the download links
    /// webhooks carry, which are paths without it.
    #[serde(default)]
    pub public_url: Option<String>,

    /// Origins whose pages may call the API from a browser, with credentials.
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,

    /// When set, `/metrics` is served here, and not on `listen`.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// When set, `/metrics` needs `Authorization: Bearer <metrics_token>`.
    #[serde(default)]
    pub metrics_token: Option<Secret>,

    /// Dev-only: `POST /api/dev/token` signs a token for any user (for the pages).
    pub dev_token_endpoint: bool,
    /// A setting that is gone (it answered CORS from any origin): still read,
    /// so that a configuration which turns it on fails loudly instead of
    /// meeting unexplained CORS refusals.
    #[serde(default, rename = "dev_cors_any_origin")]
    removed_dev_cors_any_origin: Option<bool>,
}

/// A rate limit: `per_second` on average, in bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// Every rate limit, each from its pair of settings (`<what>_rate_per_user`
/// and `<what>_burst_per_user`, or `_per_ip`).
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub stream_opens_per_user: Rate,
    pub stream_opens_per_ip: Rate,
    pub messages: Rate,
    pub rooms: Rate,
    pub members: Rate,
    pub reads: Rate,
    pub typing: Rate,
    pub uploads: Rate,
    pub searches: Rate,
}

impl Rates {
    /// Each, by the stem of its settings' names (`_ip` for the per-address one).
    fn named(&self) -> [(&'static str, Rate); 9] {
        [
            ("stream", self.stream_opens_per_user),
            ("stream_ip", self.stream_opens_per_ip),
            ("message", self.messages),
            ("room", self.rooms),
            ("member", self.members),
            ("read", self.reads),
            ("typing", self.typing),
            ("upload", self.uploads),
            ("search", self.searches),
        ]
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after.
fn is_origin(text: &str) -> bool {
    let Some((scheme, host)) = text.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// A duration written the human way (`25s`, `200ms`, `1h 30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub Duration);

impl Interval {
    pub fn parse(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map(Self)
            .map_err(|e| format!("`{text}` is not a duration like `25s` or `200ms`: {e}"))
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("settings could not be read: {0}")]
    Read(#[from] Box<figment::Error>),
    #[error("invalid settings: {0}")]
    Invalid(String),
}

impl Config {
    /// The embedded defaults alone: what tests start from, untouched by the environment.
    pub fn defaults() -> Figment {
        Figment::from(Toml::string(DEFAULT_TOML))
    }

    /// Every layer, as the server and the `token` command use them.
    pub fn layered() -> Figment {
        let mut figment = Self::defaults();
        let env_name = std::env::var("CHAT_ENV").unwrap_or_default();
        if env_name.trim().eq_ignore_ascii_case("production") {
            figment = figment.merge(Toml::string(PRODUCTION_TOML));
        }
        if let Ok(path) = std::env::var("CHAT_CONFIG") {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment
            .merge(Env::prefixed("CHAT_").ignore(&["CONFIG"]))
            .merge(Env::raw().only(&["DATABASE_URL"]))
    }

    /// Where the disk backend keeps attachments.
    pub fn attachment_dir(&self) -> PathBuf {
        self.attachment_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("attachments"))
    }

    fn validate_attachments(&self) -> Result<(), String> {
        if self.attachment_max_bytes == 0 {
            return Err("attachment_max_bytes must be at least 1".to_owned());
        }
        if self.attachment_orphan_ttl.0 <= self.attachment_url_lifetime.0 {
            // A direct upload's PUT must be over before it can be swept.
            return Err(
                "attachment_orphan_ttl must be longer than attachment_url_lifetime".to_owned(),
            );
        }
        if self.attachment_url_lifetime.0 < Duration::from_secs(1)
            || self.attachment_url_lifetime.0 > Duration::from_secs(7 * 24 * 3600)
        {
            // S3 signs for a week at most.
            return Err("attachment_url_lifetime must be between 1s and 7d".to_owned());
        }
        match self.attachment_storage {
            AttachmentStorage::S3 => {
                for (name, set) in [
                    ("s3_bucket", self.s3_bucket.is_some()),
                    ("s3_access_key_id", self.s3_access_key_id.is_some()),
                    ("s3_secret_access_key", self.s3_secret_access_key.is_some()),
                ] {
                    if !set {
                        return Err(format!(
                            "attachment_storage = \"s3\" needs {name} (CHAT_{})",
                            name.to_uppercase()
                        ));
                    }
                }
            }
            // Instances on one PostgreSQL database each serve any room's
            // attachments: files on one machine's disk would be missing
            // on the others. A directory named on purpose may be a mount
            // they share (or the one instance's), so it is allowed.
            AttachmentStorage::Disk
                if self.env == Environment::Production
                    && self.attachment_dir.is_none()
                    && !self.database_url.starts_with("sqlite:") =>
            {
                return Err(
                    "on PostgreSQL, production keeps attachments in an S3-compatible \
                     bucket (attachment_storage = \"s3\"), which every instance reaches; or \
                     name attachment_dir, a directory every instance shares"
                        .to_owned(),
                );
            }
            AttachmentStorage::Disk => {}
        }
        Ok(())
    }

    pub fn load() -> Result<Self, ConfigError> {
        Self::from_figment(Self::layered())
    }

    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let mut config: Self = figment.extract().map_err(Box::new)?;
        config.normalise();
        config.validate()?;
        Ok(config)
    }

    /// Empty strings in files and env mean "not set".
    fn normalise(&mut self) {
        fn blank_to_none<T: AsRef<str>>(value: &mut Option<T>) {
            if value.as_ref().is_some_and(|v| v.as_ref().trim().is_empty()) {
                *value = None;
            }
        }
        if self.jwt_secret.as_ref().is_some_and(|s| s.0.is_empty()) {
            self.jwt_secret = None;
        }
        if self
            .jwt_public_key_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            self.jwt_public_key_file = None;
        }
        blank_to_none(&mut self.jwt_public_key_algorithm);
        blank_to_none(&mut self.jwt_issuer);
        blank_to_none(&mut self.jwt_audience);
        blank_to_none(&mut self.s3_bucket);
        blank_to_none(&mut self.public_url);
        if let Some(url) = &mut self.public_url {
            *url = url.trim_end_matches('/').to_owned();
        }
        blank_to_none(&mut self.s3_endpoint);
        blank_to_none(&mut self.s3_access_key_id);
        if self
            .s3_secret_access_key
            .as_ref()
            .is_some_and(|s| s.0.is_empty())
        {
            self.s3_secret_access_key = None;
        }
        if self
            .attachment_dir
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            self.attachment_dir = None;
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        if self.removed_dev_cors_any_origin == Some(true) {
            return invalid(
                "dev_cors_any_origin is gone: it let any web page call the API with a \
                 developer's credentials. List the front-end's origin in cors_allowed_origins \
                 (CHAT_CORS_ALLOWED_ORIGINS='[\"http://localhost:3000\"]') instead"
                    .to_owned(),
            );
        }
        if self.env == Environment::Production {
            match &self.jwt_secret {
                None if self.jwt_public_key_file.is_none() => {
                    return invalid(
                        "production needs a JWT secret (CHAT_JWT_SECRET) or a public key \
                         (CHAT_JWT_PUBLIC_KEY_FILE and CHAT_JWT_PUBLIC_KEY_ALGORITHM)"
                            .to_owned(),
                    );
                }
                None => {}
                Some(secret) if secret.0.len() < MIN_SECRET_BYTES => {
                    return invalid(format!(
                        "the JWT secret is {} bytes; production needs at least {MIN_SECRET_BYTES}",
                        secret.0.len()
                    ));
                }
                Some(_) => {}
            }
            for (name, on) in self.dev_conveniences() {
                if on {
                    return invalid(format!(
                        "{name} is a development feature; production refuses it"
                    ));
                }
            }
            // Without them, a token that the same key signed for another
            // service (or another tenant) would be taken for ours.
            for (name, value, variable, claim) in [
                ("jwt_issuer", &self.jwt_issuer, "CHAT_JWT_ISSUER", "iss"),
                (
                    "jwt_audience",
                    &self.jwt_audience,
                    "CHAT_JWT_AUDIENCE",
                    "aud",
                ),
            ] {
                if value.is_none() {
                    return invalid(format!(
                        "production needs {name}: set {variable} to the `{claim}` your tokens carry"
                    ));
                }
            }
        }
        // The development conveniences are for a developer's own machine:
        // on any other address they would hand out tokens, open CORS with
        // credentials to every site, or run on a secret nobody chose.
        if !self.listens_on_loopback() {
            let listen = self.listen;
            for (name, on) in self.dev_conveniences() {
                if on {
                    return invalid(format!(
                        "{name} only works on a loopback address, and listen is {listen}: \
                         turn it off (CHAT_{}=false) or listen on 127.0.0.1",
                        name.to_uppercase()
                    ));
                }
            }
            match &self.jwt_secret {
                Some(secret) if secret.0.len() >= MIN_SECRET_BYTES => {}
                None if self.jwt_public_key_file.is_some() => {}
                _ => {
                    return invalid(format!(
                        "jwt_secret must be set, with at least {MIN_SECRET_BYTES} bytes (or \
                         only a public key), to listen on {listen}: the generated development \
                         secret and short secrets only work on a loopback address"
                    ));
                }
            }
        }
        if let Some(url) = &self.public_url
            && !is_origin(url.trim_end_matches('/'))
        {
            return invalid(format!(
                "public_url: `{url}` is not a URL like `https://chat.example.com` (scheme and \
                 host, no path)"
            ));
        }
        for origin in &self.cors_allowed_origins {
            if !is_origin(origin) {
                return invalid(format!(
                    "cors_allowed_origins: `{origin}` is not an origin like `https://app.example.com`"
                ));
            }
        }
        if let Some(token) = &self.metrics_token
            && token.0.len() < MIN_METRICS_TOKEN_BYTES
        {
            return invalid(format!(
                "metrics_token must be at least {MIN_METRICS_TOKEN_BYTES} bytes"
            ));
        }
        if self.jwt_leeway.0 > Duration::from_secs(60) {
            return invalid("jwt_leeway must be at most 60s".to_owned());
        }
        if self.heartbeat_interval.0 < Duration::from_millis(10) {
            return invalid("heartbeat_interval must be at least 10ms".to_owned());
        }
        if self.relay_poll_interval.0 < Duration::from_millis(10) {
            return invalid("relay_poll_interval must be at least 10ms".to_owned());
        }
        if let Err(message) = self.validate_attachments() {
            return invalid(message);
        }
        if self.erase_batch == 0 {
            return invalid("erase_batch must be at least 1".to_owned());
        }
        if self.erasure_lease.0 < Duration::from_millis(300) {
            return invalid("erasure_lease must be at least 300ms".to_owned());
        }
        if self.auto_assign_cap == 0 {
            return invalid("auto_assign_cap must be at least 1".to_owned());
        }
        if self
            .auto_assign_reassign_after
            .is_some_and(|after| after.0 < Duration::from_secs(1))
        {
            return invalid("auto_assign_reassign_after must be at least 1s".to_owned());
        }
        if self.event_purge_batch == 0 {
            return invalid("event_purge_batch must be at least 1".to_owned());
        }
        if self.event_retention.0 < Duration::from_secs(60) {
            return invalid("event_retention must be at least 1m".to_owned());
        }
        if self.stream_stall_timeout.0 < self.heartbeat_interval.0 * 2 {
            return invalid(
                "stream_stall_timeout must be at least twice heartbeat_interval: a stream \
                 that is read hands over a heartbeat every interval"
                    .to_owned(),
            );
        }
        if self.shutdown_spread.0 >= self.shutdown_deadline.0 {
            return invalid("shutdown_spread must be shorter than shutdown_deadline".to_owned());
        }
        if self.instance_heartbeat.0 < Duration::from_millis(100) {
            return invalid("instance_heartbeat must be at least 100ms".to_owned());
        }
        if self.stream_max_per_user == 0 {
            return invalid("stream_max_per_user must be at least 1".to_owned());
        }
        for (name, rate) in self.rates().named() {
            if rate.per_second == 0 || rate.burst == 0 {
                return invalid(format!(
                    "{name}_rate_per_{who} and {name}_burst_per_{who} must be at least 1",
                    who = if name.ends_with("_ip") { "ip" } else { "user" },
                    name = name.trim_end_matches("_ip"),
                ));
            }
        }
        if !(1..=1000).contains(&self.webhook_batch_events) {
            return invalid("webhook_batch_events must be 1 to 1000".to_owned());
        }
        if self.webhook_lease.0 < Duration::from_millis(300) {
            return invalid("webhook_lease must be at least 300ms".to_owned());
        }
        if self.webhook_timeout.0 < Duration::from_millis(100) {
            return invalid("webhook_timeout must be at least 100ms".to_owned());
        }
        if self.webhook_retry_max_interval.0 < Duration::from_secs(1) {
            return invalid("webhook_retry_max_interval must be at least 1s".to_owned());
        }
        if self.unseen_delay.0 < Duration::from_secs(1) {
            return invalid("unseen_delay must be at least 1s".to_owned());
        }
        if self.token_max_lifetime.0 < Duration::from_secs(60) {
            return invalid("token_max_lifetime must be at least 1m".to_owned());
        }
        if self.database_max_connections == 0 {
            return invalid("database_max_connections must be at least 1".to_owned());
        }
        if self.max_body_bytes < 1024 {
            return invalid("max_body_bytes must be at least 1024".to_owned());
        }
        if self.room_max_members < 2 {
            return invalid("room_max_members must be at least 2".to_owned());
        }
        if self.jwt_public_key_file.is_some() != self.jwt_public_key_algorithm.is_some() {
            return invalid(
                "jwt_public_key_file and jwt_public_key_algorithm go together".to_owned(),
            );
        }
        if self.token_cookie.is_empty() || !self.token_cookie.chars().all(is_cookie_name_char) {
            return invalid(format!(
                "token_cookie `{}` is not a valid cookie name",
                self.token_cookie
            ));
        }
        Ok(())
    }

    /// The rate limits, each a pair of settings.
    pub fn rates(&self) -> Rates {
        let rate = |per_second, burst| Rate { per_second, burst };
        Rates {
            stream_opens_per_user: rate(self.stream_rate_per_user, self.stream_burst_per_user),
            stream_opens_per_ip: rate(self.stream_rate_per_ip, self.stream_burst_per_ip),
            messages: rate(self.message_rate_per_user, self.message_burst_per_user),
            rooms: rate(self.room_rate_per_user, self.room_burst_per_user),
            members: rate(self.member_rate_per_user, self.member_burst_per_user),
            reads: rate(self.read_rate_per_user, self.read_burst_per_user),
            typing: rate(self.typing_rate_per_user, self.typing_burst_per_user),
            uploads: rate(self.upload_rate_per_user, self.upload_burst_per_user),
            searches: rate(self.search_rate_per_user, self.search_burst_per_user),
        }
    }

    /// How long a poll of `GET /api/chat/events` may wait: `long_poll_wait`,
    /// but well within `request_timeout` (by 5 s, or a quarter of a shorter
    /// one), which would otherwise answer the waiting poll with a 408.
    pub fn longest_poll(&self) -> Duration {
        self.long_poll_wait.0.min(self.longest_before_answer())
    }

    /// The longest a request may wait before its answer begins (for a
    /// pool's connection, a poll's events): `request_timeout` less a margin
    /// (5 s, or a quarter), so that it answers itself rather than get a 408.
    pub fn longest_before_answer(&self) -> Duration {
        let request = self.request_timeout.0;
        let margin = (request / 4).min(Duration::from_secs(5));
        request - margin
    }

    /// The development-only features, by setting name, and whether each is on.
    fn dev_conveniences(&self) -> [(&'static str, bool); 1] {
        [("dev_token_endpoint", self.dev_token_endpoint)]
    }

    /// Whether only this machine can reach `listen`.
    pub fn listens_on_loopback(&self) -> bool {
        self.listen.ip().to_canonical().is_loopback()
    }

    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }
}

fn is_cookie_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Serialized;

    fn with(key: &str, value: impl serde::Serialize) -> Result<Config, ConfigError> {
        Config::from_figment(Config::defaults().merge(Serialized::default(key, value)))
    }

    #[test]
    fn the_embedded_defaults_are_valid_for_development() {
        let config = Config::from_figment(Config::defaults()).unwrap();
        assert_eq!(config.env, Environment::Development);
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.heartbeat_interval.0, Duration::from_secs(25));
        assert_eq!(config.jwt_leeway.0, Duration::from_secs(5));
        assert!(config.jwt_secret.is_none());
    }

    #[test]
    fn durations_parse_or_fail_with_a_clear_message() {
        assert_eq!(
            with("heartbeat_interval", "200ms")
                .unwrap()
                .heartbeat_interval
                .0,
            Duration::from_millis(200)
        );
        let error = with("heartbeat_interval", "soon").unwrap_err().to_string();
        assert!(error.contains("`soon` is not a duration"), "{error}");
    }

    #[test]
    fn production_refuses_a_missing_or_weak_secret() {
        let production = Config::defaults().merge(Toml::string(PRODUCTION_TOML));
        let error = Config::from_figment(production.clone()).unwrap_err();
        assert!(error.to_string().contains("CHAT_JWT_SECRET"), "{error}");
        let weak = production
            .clone()
            .merge(Serialized::default("jwt_secret", "short"));
        assert!(Config::from_figment(weak).is_err());
        let strong = production
            .merge(Serialized::default("jwt_secret", "x".repeat(32)))
            .merge(Serialized::default("jwt_issuer", "https://auth.example"))
            .merge(Serialized::default("jwt_audience", "chat"));
        assert!(Config::from_figment(strong).is_ok());
    }

    #[test]
    fn production_needs_an_issuer_and_an_audience_whatever_the_algorithm() {
        let production = Config::defaults()
            .merge(Toml::string(PRODUCTION_TOML))
            .merge(Serialized::default("jwt_secret", "x".repeat(32)));
        let error = Config::from_figment(production.clone()).unwrap_err();
        assert!(error.to_string().contains("CHAT_JWT_ISSUER"), "{error}");
        let issuer = production.merge(Serialized::default("jwt_issuer", "https://auth.example"));
        let error = Config::from_figment(issuer.clone()).unwrap_err();
        assert!(error.to_string().contains("CHAT_JWT_AUDIENCE"), "{error}");
        assert!(
            Config::from_figment(issuer.merge(Serialized::default("jwt_audience", "chat"))).is_ok()
        );
    }

    #[test]
    fn the_development_conveniences_need_a_loopback_address() {
        let anywhere = || Config::defaults().merge(Serialized::default("listen", "0.0.0.0:8080"));
        let error = Config::from_figment(anywhere()).unwrap_err().to_string();
        assert!(
            error.contains("dev_token_endpoint only works on a loopback address"),
            "{error}"
        );
        let off = anywhere().merge(Serialized::default("dev_token_endpoint", false));
        let error = Config::from_figment(off.clone()).unwrap_err().to_string();
        assert!(error.contains("jwt_secret must be set"), "{error}");
        let chosen = off.merge(Serialized::default("jwt_secret", "x".repeat(32)));
        assert!(Config::from_figment(chosen).is_ok());
        for loopback in ["[::1]:8080", "[::ffff:127.0.0.1]:8080", "127.0.0.2:8080"] {
            let on = Config::defaults().merge(Serialized::default("listen", loopback));
            assert!(Config::from_figment(on).is_ok(), "{loopback}");
        }
    }

    #[test]
    fn cors_origins_must_be_origins_and_a_metrics_token_must_not_be_short() {
        let origins = |list: &[&str]| {
            Config::from_figment(
                Config::defaults().merge(Serialized::default("cors_allowed_origins", list)),
            )
        };
        assert!(origins(&["https://app.example.com", "http://localhost:3000"]).is_ok());
        for bad in [
            "*",
            "app.example.com",
            "https://app.example.com/",
            "ftp://x",
        ] {
            let error = origins(&[bad]).unwrap_err().to_string();
            assert!(error.contains(bad), "{error}");
        }
        let token = |value: &str| {
            Config::from_figment(
                Config::defaults().merge(Serialized::default("metrics_token", value)),
            )
        };
        assert!(token("short").is_err());
        assert!(token("a-long-enough-scrape-token").is_ok());
    }

    #[test]
    fn a_stream_stall_timeout_must_leave_room_for_two_heartbeats() {
        let stall = |value: &str| {
            Config::from_figment(
                Config::defaults().merge(Serialized::default("stream_stall_timeout", value)),
            )
        };
        let error = stall("40s").unwrap_err().to_string();
        assert!(error.contains("twice heartbeat_interval"), "{error}");
        assert!(stall("50s").is_ok());
    }

    #[test]
    fn a_poll_never_waits_into_the_request_timeout() {
        let with = |poll: &str, request: &str| {
            Config::from_figment(
                Config::defaults()
                    .merge(Serialized::default("long_poll_wait", poll))
                    .merge(Serialized::default("request_timeout", request)),
            )
            .unwrap()
            .longest_poll()
        };
        assert_eq!(with("25s", "30s"), Duration::from_secs(25));
        assert_eq!(with("60s", "30s"), Duration::from_secs(25));
        assert_eq!(with("10s", "30s"), Duration::from_secs(10));
        assert_eq!(with("25s", "1s"), Duration::from_millis(750));
    }

    #[test]
    fn production_refuses_dev_features() {
        let figment = Config::defaults()
            .merge(Toml::string(PRODUCTION_TOML))
            .merge(Serialized::default("jwt_secret", "x".repeat(32)))
            .merge(Serialized::default("dev_token_endpoint", true));
        let error = Config::from_figment(figment).unwrap_err().to_string();
        assert!(error.contains("dev_token_endpoint"), "{error}");
    }

    #[test]
    fn production_takes_a_public_key_alone_but_not_nothing() {
        let production = || {
            Config::defaults()
                .merge(Toml::string(PRODUCTION_TOML))
                .merge(Serialized::default("jwt_issuer", "https://auth.example"))
                .merge(Serialized::default("jwt_audience", "chat"))
        };
        let error = Config::from_figment(production()).unwrap_err().to_string();
        assert!(error.contains("CHAT_JWT_PUBLIC_KEY_FILE"), "{error}");
        let key_only = production()
            .merge(Serialized::default(
                "jwt_public_key_file",
                "/etc/chat/jwt.pub.pem",
            ))
            .merge(Serialized::default("jwt_public_key_algorithm", "RS256"));
        assert!(Config::from_figment(key_only).is_ok());
    }

    #[test]
    fn a_rate_or_a_burst_of_zero_is_refused_naming_its_pair_of_settings() {
        for (setting, pair) in [
            (
                "typing_burst_per_user",
                "typing_rate_per_user and typing_burst_per_user",
            ),
            (
                "stream_rate_per_ip",
                "stream_rate_per_ip and stream_burst_per_ip",
            ),
            (
                "message_rate_per_user",
                "message_rate_per_user and message_burst_per_user",
            ),
        ] {
            let figment = Config::defaults().merge(Serialized::default(setting, 0));
            let error = Config::from_figment(figment).unwrap_err().to_string();
            assert!(error.contains(pair), "{setting}: {error}");
        }
        let rates = Config::from_figment(Config::defaults()).unwrap().rates();
        assert_eq!(
            rates.messages,
            Rate {
                per_second: 10,
                burst: 30
            }
        );
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "****");
    }

    mod properties {
        use super::super::Interval;
        use proptest::prelude::*;
        use std::time::Duration;

        proptest! {
            #[test]
            fn durations_with_a_unit_parse_to_what_they_say(
                n in 0u64..1_000_000,
                (unit, scale) in prop::sample::select(vec![
                    ("ms", 1u64), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000),
                ]),
            ) {
                let parsed = Interval::parse(&format!(" {n}{unit} "));
                prop_assert_eq!(parsed, Ok(Interval(Duration::from_millis(n * scale))));
            }

            #[test]
            fn anything_else_fails_with_a_message_that_quotes_it(text in "[^0-9]*|[0-9]+|[0-9]+[a-z]{3,6}") {
                if let Err(message) = Interval::parse(&text) {
                    prop_assert!(message.contains(&format!("`{text}`")), "{message}");
                    prop_assert!(message.contains("like `25s`"), "{message}");
                }
                // A bare number has no unit: never taken for seconds or
                // anything else (only `0` means the same in every unit).
                if text != "0" && !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                    prop_assert!(Interval::parse(&text).is_err(), "{text}");
                }
            }
        }
    }
}
