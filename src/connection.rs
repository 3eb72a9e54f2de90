//! One client connection as the server holds it, so that a stream whose client
//! stopped reading can be cut. hyper takes a stream's next frame only when the
//! socket has room for it, and a live stream gives one at least every
//! heartbeat; so a stream that has handed over nothing for `stall_timeout`
//! has a client that is not reading. Left alone, it would hold its socket
//! and its buffers for as long as the client's TCP stack answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How many looks the stall watch takes in one `stall_timeout`: a stall is
/// cut within a quarter of the timeout after it is due.
const LOOKS_PER_TIMEOUT: u32 = 4;

pub struct Connection {
    /// Frames the streams on this connection handed hyper. Counted, not
    /// timed: the watch reads the clock a few times a timeout, not every
    /// frame of every stream.
    frames: AtomicU64,
    streams: AtomicUsize,
    stream_started: Notify,
    cut: AtomicBool,
}

impl Connection {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            frames: AtomicU64::new(0),
            streams: AtomicUsize::new(0),
            stream_started: Notify::new(),
            cut: AtomicBool::new(false),
        })
    }

    /// A stream begins on this connection; the returned guard ends it.
    pub fn stream(self: &Arc<Self>) -> StreamOnConnection {
        self.frame_sent();
        self.streams.fetch_add(1, Ordering::Relaxed);
        self.stream_started.notify_one();
        StreamOnConnection(self.clone())
    }

    /// hyper took a frame: the client reads.
    pub fn frame_sent(&self) {
        self.frames.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the connection was cut for a stream that stopped being read.
    pub fn was_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    /// Resolves when a stream on this connection has handed over no frame for
    /// `limit`: the caller then drops the connection. Sleeps while no stream
    /// is open, so ordinary requests cost no timer.
    pub async fn stalled(&self, limit: Duration) {
        let look = (limit / LOOKS_PER_TIMEOUT).max(Duration::from_millis(1));
        // The count at the last look that found it moved, and when.
        let mut frames_seen = self.frames.load(Ordering::Relaxed);
        let mut moved_at = Instant::now();
        loop {
            if self.streams.load(Ordering::Relaxed) == 0 {
                self.stream_started.notified().await;
                frames_seen = self.frames.load(Ordering::Relaxed);
                moved_at = Instant::now();
                continue;
            }
            tokio::time::sleep(look).await;
            let frames = self.frames.load(Ordering::Relaxed);
            if frames != frames_seen {
                (frames_seen, moved_at) = (frames, Instant::now());
            } else if moved_at.elapsed() >= limit && self.streams.load(Ordering::Relaxed) > 0 {
                self.cut.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// One stream open on a connection, until dropped.
pub struct StreamOnConnection(Arc<Connection>);

impl StreamOnConnection {
    pub fn connection(&self) -> &Connection {
        &self.0
    }
}

impl Drop for StreamOnConnection {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}
