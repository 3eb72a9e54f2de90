//! Webhooks: the application behind chat-server is told what happened by
//! signed POSTs (`signing`) to the endpoints admins register (`endpoints`,
//! checked against internal addresses by `address`), delivered from the
//! event log at least once and in order (`dispatcher`), and an "unseen"
//! notice for members who are away (`unseen`).

pub mod address;
mod dispatcher;
pub mod endpoints;
pub mod signing;
mod unseen;

use crate::attachments::Attachments;
use crate::events::Hub;
use crate::store::WebhookStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Settings of delivery.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// How long a receiver has to answer one delivery.
    pub timeout: Duration,
    /// How long a delivery is retried before its endpoint is marked failing.
    pub retry_horizon: Duration,
    /// The longest wait between two retries.
    pub retry_max_interval: Duration,
    /// The most events one delivery carries.
    pub batch_events: u32,
    /// How long an instance's hold on an endpoint lasts unless renewed.
    pub lease: Duration,
    /// Whether endpoints may be loopback, private or link-local addresses.
    pub allow_internal: bool,
    /// How long a message waits before its unseen notices are raised.
    pub unseen_delay: Duration,
    /// How long notices are kept (as events are: `event_retention`).
    pub notice_retention: Duration,
    /// Where receivers reach this server (`public_url`), for the
    /// attachments' download links; without it the links are paths.
    pub public_url: Option<String>,
}

/// What the dispatcher's tasks share.
struct Shared {
    hub: Arc<Hub>,
    /// Signs the download links deliveries carry.
    attachments: Arc<Attachments>,
    client: reqwest::Client,
    options: WebhookOptions,
    /// This instance, as a lease holder.
    owner: String,
    /// Renews the leases now (an endpoint was created or changed).
    poke: Arc<Notify>,
}

impl Shared {
    fn store(&self) -> &dyn WebhookStore {
        self.hub.store().webhooks()
    }
}

/// The webhooks of one instance: its dispatcher and its unseen sweep,
/// stopped when dropped.
pub struct Webhooks {
    poke: Arc<Notify>,
    tasks: Vec<tokio::task::AbortHandle>,
    /// Turns true once draining has saved the cursors and given the leases back.
    released: watch::Receiver<bool>,
}

impl Webhooks {
    /// Starts delivering (until `draining`) and sweeping.
    pub fn start(
        hub: Arc<Hub>,
        attachments: Arc<Attachments>,
        options: WebhookOptions,
        draining: watch::Receiver<bool>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("chat-server-webhooks/", env!("CARGO_PKG_VERSION")))
            // A redirect could lead anywhere, internal services included.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .no_proxy()
            .dns_resolver(Arc::new(address::GuardedResolver {
                allow_internal: options.allow_internal,
            }))
            .build()?;
        let poke = Arc::new(Notify::new());
        let (release, released) = watch::channel(false);
        let shared = Arc::new(Shared {
            hub,
            attachments,
            client,
            options,
            owner: uuid::Uuid::now_v7().to_string(),
            poke: poke.clone(),
        });
        let tasks = vec![
            tokio::spawn(dispatcher::lease_forever(
                shared.clone(),
                poke.clone(),
                draining,
                release,
            ))
            .abort_handle(),
            tokio::spawn(unseen::sweep_forever(shared)).abort_handle(),
        ];
        Ok(Self {
            poke,
            tasks,
            released,
        })
    }

    /// Once draining began: waits until the cursors are saved and the
    /// leases given back (the process must not exit before).
    pub async fn released(&self) {
        let mut released = self.released.clone();
        let _ = released.wait_for(|released| *released).await;
    }

    /// An endpoint was created or changed: take it up now, not at the next renewal.
    pub fn changed(&self) {
        self.poke.notify_one();
    }
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
