//! Rate limits, per user and per client address: on opening streams, so a
//! reconnect storm from one client cannot starve the others; and on writes
//! (messages, rooms, membership changes, read cursors), so one user cannot
//! flood a room that thousands watch. On PostgreSQL the per-user write
//! budgets, and the stream cap, are the cluster's (`store::Cluster`), so N
//! instances do not give a user N times each; the rest count in this process.

use crate::config::{Config, Rate};
use crate::error::Error;
use crate::metrics::{STREAM_OPENS_REFUSED, WRITES_REFUSED};
use crate::model::{Caller, UserId};
use crate::store::Cluster;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

pub struct Limits {
    per_user: DefaultKeyedRateLimiter<UserId>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    messages: Budget,
    rooms: Budget,
    members: Budget,
    reads: Budget,
    typing: Budget,
    uploads: Budget,
    searches: Budget,
    /// Where the per-user budgets and stream counts are kept when several
    /// instances share them (PostgreSQL); `None` keeps them here.
    cluster: Option<Arc<Cluster>>,
}

/// One kind of write's budget per user.
struct Budget {
    local: DefaultKeyedRateLimiter<UserId>,
    rate: Rate,
}

/// A kind of write, each limited on its own.
#[derive(Debug, Clone, Copy)]
pub enum Write {
    Message,
    Room,
    Member,
    /// A read cursor moved (or asked to).
    Read,
    /// A typing notice.
    Typing,
    /// A file uploaded.
    Upload,
    /// A search: no write, but as dear as one, so budgeted the same way.
    Search,
}

impl Limits {
    pub fn new(config: &Config, cluster: Option<Arc<Cluster>>) -> Arc<Self> {
        let quota = |rate: Rate| {
            Quota::per_second(NonZeroU32::new(rate.per_second).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN))
        };
        let budget = |rate: Rate| Budget {
            local: RateLimiter::keyed(quota(rate)),
            rate,
        };
        let rates = config.rates();
        let limits = Arc::new(Self {
            per_user: RateLimiter::keyed(quota(rates.stream_opens_per_user)),
            per_ip: RateLimiter::keyed(quota(rates.stream_opens_per_ip)),
            messages: budget(rates.messages),
            rooms: budget(rates.rooms),
            members: budget(rates.members),
            reads: budget(rates.reads),
            typing: budget(rates.typing),
            uploads: budget(rates.uploads),
            searches: budget(rates.searches),
            cluster,
        });
        // Forget keys whose buckets are full again, so memory returns to its baseline.
        let weak = Arc::downgrade(&limits);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                let Some(limits) = weak.upgrade() else { return };
                limits.per_user.retain_recent();
                limits.per_ip.retain_recent();
                for budget in [
                    &limits.messages,
                    &limits.rooms,
                    &limits.members,
                    &limits.reads,
                    &limits.typing,
                    &limits.uploads,
                    &limits.searches,
                ] {
                    budget.local.retain_recent();
                }
            }
        });
        limits
    }

    /// Counts one stream opening; refuses it with a 429 when over a limit.
    pub fn check_open(&self, caller: &Caller, ip: IpAddr) -> Result<(), Error> {
        self.per_ip.check_key(&ip).map_err(|e| {
            ::metrics::counter!(STREAM_OPENS_REFUSED, "reason" => "ip_rate").increment(1);
            refused(e, "streams opened from this address")
        })?;
        self.per_user.check_key(&caller.id).map_err(|e| {
            ::metrics::counter!(STREAM_OPENS_REFUSED, "reason" => "user_rate").increment(1);
            refused(e, "streams opened by this user")
        })?;
        Ok(())
    }

    /// The cluster's shared counts, when there are several instances to share them.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// Counts one write of the caller's; refuses it with a 429 when over the
    /// limit. On PostgreSQL that is one statement, against the cluster's budget.
    pub async fn check_write(&self, caller: &Caller, write: Write) -> Result<(), Error> {
        let (budget, kind, what) = match write {
            Write::Message => (&self.messages, "message", "messages posted by this user"),
            Write::Room => (&self.rooms, "room", "rooms created by this user"),
            Write::Member => (&self.members, "member", "membership changes by this user"),
            Write::Read => (&self.reads, "read", "read cursor moves by this user"),
            Write::Typing => (&self.typing, "typing", "typing notices from this user"),
            Write::Upload => (&self.uploads, "upload", "files uploaded by this user"),
            Write::Search => (&self.searches, "search", "searches by this user"),
        };
        let wait = match &self.cluster {
            Some(cluster) => {
                let bucket = format!("{kind}:{}", caller.id.as_str());
                cluster
                    .spend(bucket, budget.rate.per_second, budget.rate.burst)
                    .await?
            }
            None => budget
                .local
                .check_key(&caller.id)
                .err()
                .map(|not_until| not_until.wait_time_from(DefaultClock::default().now())),
        };
        match wait {
            None => Ok(()),
            Some(wait) => {
                ::metrics::counter!(WRITES_REFUSED, "kind" => kind).increment(1);
                Err(too_many(wait, what))
            }
        }
    }
}

fn refused(not_until: governor::NotUntil<governor::clock::QuantaInstant>, what: &str) -> Error {
    too_many(
        not_until.wait_time_from(DefaultClock::default().now()),
        what,
    )
}

fn too_many(wait: Duration, what: &str) -> Error {
    Error::TooManyRequests {
        // Rounded up: a retry at the advised second finds the budget back.
        retry_after: u64::try_from(wait.as_nanos().div_ceil(1_000_000_000))
            .unwrap_or(u64::MAX)
            .max(1),
        message: format!("too many {what}; retry later").into(),
    }
}
