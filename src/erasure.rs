//! Erasing what a user wrote, as a durable job: an admin's request stores
//! the job and answers at once; one instance at a time (the holder of the
//! job's lease, renewed by every step) erases it a batch to a transaction,
//! each batch counted in its own transaction, until nothing of the user's
//! is left. A crash or a restart loses nothing: the lease lapses within
//! `erasure_lease` and any instance goes on from where the job stood.

use crate::metrics;
use crate::model::Timestamp;
use crate::store::{ErasureStep, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// How often an idle instance looks for jobs nobody holds (a job asked for
/// here starts at once; one left by a stopped instance, within this).
const IDLE_POLL: Duration = Duration::from_secs(2);
/// The wait before a step the store could not take is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// The wait after a step found nothing though messages were left (a room
/// was deleted between its reads): the next one finds them.
const RACED: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy)]
pub struct ErasureOptions {
    /// Messages a step makes tombstones (`erase_batch`).
    pub batch: u32,
    /// How long a hold on a job lasts unless a step renews it.
    pub lease: Duration,
}

/// This instance's erasure worker, stopped when dropped.
pub struct Erasures {
    poke: Arc<Notify>,
    task: tokio::task::AbortHandle,
    released: watch::Receiver<bool>,
}

impl Erasures {
    /// Works on jobs until `draining`, then gives its lease back.
    pub fn start(
        store: Arc<dyn Store>,
        options: ErasureOptions,
        draining: watch::Receiver<bool>,
    ) -> Self {
        let poke = Arc::new(Notify::new());
        let (release, released) = watch::channel(false);
        let worker = Worker {
            store,
            options,
            owner: uuid::Uuid::now_v7().to_string(),
            draining,
        };
        let task = tokio::spawn(worker.run(poke.clone(), release)).abort_handle();
        Self {
            poke,
            task,
            released,
        }
    }

    /// A job was asked for here: start it now, not at the next look.
    pub fn requested(&self) {
        self.poke.notify_one();
    }

    /// Once draining began: waits until the step in hand is committed and
    /// the lease given back.
    pub async fn released(&self) {
        let mut released = self.released.clone();
        let _ = released.wait_for(|released| *released).await;
    }
}

impl Drop for Erasures {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Worker {
    store: Arc<dyn Store>,
    options: ErasureOptions,
    /// This instance, as a lease holder.
    owner: String,
    draining: watch::Receiver<bool>,
}

impl Worker {
    async fn run(mut self, poke: Arc<Notify>, release: watch::Sender<bool>) {
        while !*self.draining.borrow() {
            let until = self.lease_end();
            match self
                .store
                .erasures()
                .lease_erasure(&self.owner, until)
                .await
            {
                Ok(Some(job)) => self.work(&job.id).await,
                Ok(None) => {
                    tokio::select! {
                        () = poke.notified() => {}
                        () = tokio::time::sleep(IDLE_POLL) => {}
                        () = drained(&mut self.draining) => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot look for erasure jobs; retrying");
                    self.pause(RETRY).await;
                }
            }
        }
        if let Err(error) = self.store.erasures().release_erasures(&self.owner).await {
            tracing::warn!(%error, "cannot give an erasure job back; its lease lapses");
        }
        let _ = release.send(true);
    }

    /// Steps through job `id` until it is done, lost to another instance,
    /// or this one drains.
    async fn work(&mut self, id: &str) {
        let erased = ::metrics::counter!(metrics::ERASED_MESSAGES);
        while !*self.draining.borrow() {
            let until = self.lease_end();
            let step = self
                .store
                .erasures()
                .erase_step(id, &self.owner, until, self.options.batch)
                .await;
            match step {
                Ok(ErasureStep::Erased(0)) => self.pause(RACED).await,
                Ok(ErasureStep::Erased(count)) => erased.increment(count),
                Ok(ErasureStep::Done) => {
                    tracing::info!(job = id, "an erasure is done");
                    return;
                }
                Ok(ErasureStep::LeaseLost) => return,
                Err(error) => {
                    tracing::warn!(job = id, %error, "an erasure step failed; retrying");
                    self.pause(RETRY).await;
                }
            }
        }
    }

    fn lease_end(&self) -> Timestamp {
        let lease = i64::try_from(self.options.lease.as_millis()).unwrap_or(i64::MAX);
        Timestamp::from_unix_ms(Timestamp::now().unix_ms().saturating_add(lease))
    }

    /// Waits `wait`, or less if draining begins.
    async fn pause(&mut self, wait: Duration) {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = drained(&mut self.draining) => {}
        }
    }
}

/// Once draining has begun (never, if nobody can say so any more: the
/// worker is then aborted with its `Erasures`).
async fn drained(draining: &mut watch::Receiver<bool>) {
    if draining.wait_for(|draining| *draining).await.is_err() {
        std::future::pending::<()>().await;
    }
}
