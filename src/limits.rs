//! Rate limits, per user and per client address: on opening streams, so a
//! reconnect storm from one client cannot starve the others; and on writes
//! (messages, rooms, membership changes, read cursors), so one user cannot
//! flood a room that thousands watch.

use crate::config::Config;
use crate::error::Error;
use crate::metrics::{STREAM_OPENS_REFUSED, WRITES_REFUSED};
use crate::model::{Caller, UserId};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

pub struct Limits {
    per_user: DefaultKeyedRateLimiter<UserId>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    messages: DefaultKeyedRateLimiter<UserId>,
    rooms: DefaultKeyedRateLimiter<UserId>,
    members: DefaultKeyedRateLimiter<UserId>,
    reads: DefaultKeyedRateLimiter<UserId>,
}

/// A kind of write, each limited on its own.
#[derive(Debug, Clone, Copy)]
pub enum Write {
    Message,
    Room,
    Member,
    /// A read cursor moved (or asked to).
    Read,
}

impl Limits {
    pub fn new(config: &Config) -> Arc<Self> {
        let quota = |rate: u32, burst: u32| {
            Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
        };
        let limits = Arc::new(Self {
            per_user: RateLimiter::keyed(quota(
                config.stream_rate_per_user,
                config.stream_burst_per_user,
            )),
            per_ip: RateLimiter::keyed(quota(
                config.stream_rate_per_ip,
                config.stream_burst_per_ip,
            )),
            messages: RateLimiter::keyed(quota(
                config.message_rate_per_user,
                config.message_burst_per_user,
            )),
            rooms: RateLimiter::keyed(quota(config.room_rate_per_user, config.room_burst_per_user)),
            members: RateLimiter::keyed(quota(
                config.member_rate_per_user,
                config.member_burst_per_user,
            )),
            reads: RateLimiter::keyed(quota(config.read_rate_per_user, config.read_burst_per_user)),
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
                limits.messages.retain_recent();
                limits.rooms.retain_recent();
                limits.members.retain_recent();
                limits.reads.retain_recent();
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

    /// Counts one write of the caller's; refuses it with a 429 when over the limit.
    pub fn check_write(&self, caller: &Caller, write: Write) -> Result<(), Error> {
        let (limiter, kind, what) = match write {
            Write::Message => (&self.messages, "message", "messages posted by this user"),
            Write::Room => (&self.rooms, "room", "rooms created by this user"),
            Write::Member => (&self.members, "member", "membership changes by this user"),
            Write::Read => (&self.reads, "read", "read cursor moves by this user"),
        };
        limiter.check_key(&caller.id).map_err(|e| {
            ::metrics::counter!(WRITES_REFUSED, "kind" => kind).increment(1);
            refused(e, what)
        })
    }
}

fn refused(not_until: governor::NotUntil<governor::clock::QuantaInstant>, what: &str) -> Error {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    Error::TooManyRequests {
        retry_after: wait.as_secs().max(1),
        message: format!("too many {what}; retry later").into(),
    }
}
