//! What a commit pokes to wake this process's relay. The pokes are counted,
//! so that a fresh stream can wait for the relay to have read past every
//! commit this process made before it opened, without asking the store.

use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Wake {
    notify: Notify,
    pokes: AtomicU64,
}

impl Wake {
    pub fn new() -> Self {
        Self::default()
    }

    /// After a commit, or news of another process's: the relay reads the log.
    pub fn poke(&self) {
        self.pokes.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Waits for the next poke (one made while nobody waited counts).
    pub async fn poked(&self) {
        self.notify.notified().await;
    }

    /// How many pokes so far: a relay pass that began after reading `n`
    /// has read every commit that poked before the `n`th poke.
    pub fn pokes(&self) -> u64 {
        self.pokes.load(Ordering::SeqCst)
    }
}
