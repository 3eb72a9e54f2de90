//! Rate limits on opening streams, per user and per client address, so a
//! reconnect storm from one client cannot starve the others.

use crate::config::Config;
use crate::error::Error;
use crate::model::{Caller, UserId};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

pub struct StreamLimits {
    per_user: DefaultKeyedRateLimiter<UserId>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl StreamLimits {
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
            }
        });
        limits
    }

    /// Counts one stream opening; refuses it with a 429 when over a limit.
    pub fn check_open(&self, caller: &Caller, ip: IpAddr) -> Result<(), Error> {
        let refused = |not_until: governor::NotUntil<_>, whose: &'static str| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Error::TooManyRequests {
                retry_after: wait.as_secs().max(1),
                message: format!("too many streams opened {whose}; retry later").into(),
            }
        };
        self.per_ip
            .check_key(&ip)
            .map_err(|e| refused(e, "from this address"))?;
        self.per_user
            .check_key(&caller.id)
            .map_err(|e| refused(e, "by this user"))?;
        Ok(())
    }
}
