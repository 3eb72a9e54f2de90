//! Deletes the blobs nothing refers to any more, on every instance: each
//! pass moves uploads never sent (past `attachment_orphan_ttl`) to the
//! deletion queue, then takes due deletions from it (each claimed by one
//! instance for a lease) and deletes their blobs. A deletion that fails
//! comes due again after the lease; one whose blobs are gone already
//! succeeds, so retrying is always safe.

use super::storage::BlobStore;
use crate::model::Timestamp;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// How often each instance looks for work.
const CHECK: Duration = Duration::from_secs(1);
/// Deletions (and orphans) taken in one go; a full batch is followed by
/// another at once.
const BATCH: u32 = 100;
/// How long a claimed deletion is the claimer's before it comes due again.
const LEASE: Duration = Duration::from_secs(60);

/// The cleanup task, stopped when dropped.
pub struct Cleanup {
    task: tokio::task::AbortHandle,
}

impl Cleanup {
    pub fn start(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>, orphan_ttl: Duration) -> Self {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(CHECK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                while pass(&*store, &*blobs, orphan_ttl).await {}
            }
        })
        .abort_handle();
        Self { task }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One pass; whether a batch was full (so more may be waiting).
async fn pass(store: &dyn Store, blobs: &dyn BlobStore, orphan_ttl: Duration) -> bool {
    let now = Timestamp::now();
    let cutoff = Timestamp::from_unix_ms(now.unix_ms() - orphan_ttl.as_millis() as i64);
    match store.attachments().cleanup_due(cutoff, now).await {
        Ok(true) => {}
        Ok(false) => return false,
        Err(error) => {
            tracing::warn!(%error, "could not look for blobs to delete");
            return false;
        }
    }
    let swept = match store.attachments().sweep_unsent(cutoff, BATCH).await {
        Ok(swept) => swept,
        Err(error) => {
            tracing::warn!(%error, "could not sweep uploads never sent");
            0
        }
    };
    let due = match store
        .attachments()
        .claim_blob_deletions(now, LEASE, BATCH)
        .await
    {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(%error, "could not take blob deletions");
            return false;
        }
    };
    let full = swept == u64::from(BATCH) || due.len() == BATCH as usize;
    delete_blobs(store, blobs, due).await;
    full
}

/// Deletes the blobs `keys` (queued already), and their queue entries
/// once gone; those that fail stay queued.
pub async fn delete_blobs(store: &dyn Store, blobs: &dyn BlobStore, keys: Vec<String>) {
    let mut deleted = Vec::with_capacity(keys.len());
    for key in keys {
        match blobs.delete(&key).await {
            Ok(()) => deleted.push(key),
            Err(error) => tracing::warn!(%error, key, "could not delete a blob; will retry"),
        }
    }
    if let Err(error) = store.attachments().blobs_deleted(&deleted).await {
        tracing::warn!(%error, "could not note deleted blobs; they will be deleted again");
    }
}
