//! Group commit for posts. Concurrent `post_message` calls wait in one queue;
//! a few writer tasks each take everything queued (up to `MAX_BATCH` posts)
//! and write it in one transaction with one notification. Each post is
//! answered only after its batch has committed.
//!
//! Why: the event log's counter row stays locked from a write's first event
//! id to its commit, flush to disk included, so one transaction per message
//! caps every writer together at the disk's flush rate (about 600 messages/s
//! on PostgreSQL on the benchmark machine). A batch pays that flush once.

use super::{NewMessage, Posted};
use crate::error::{Error, Result};
use crate::model::{Caller, RoomId};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};

/// The most posts one transaction writes.
pub const MAX_BATCH: usize = 256;
/// Posts that may wait for a writer; further callers wait to enqueue.
const QUEUE: usize = 4 * MAX_BATCH;

/// One post waiting for its batch.
pub struct Post {
    pub caller: Caller,
    pub room: RoomId,
    pub message: NewMessage,
    reply: oneshot::Sender<Result<Posted>>,
}

impl Post {
    /// Answers the caller (who may have gone: a disconnect does not undo a post).
    pub fn answer(self, outcome: Result<Posted>) {
        let _ = self.reply.send(outcome);
    }
}

pub struct PostQueue {
    sender: mpsc::Sender<Post>,
}

impl PostQueue {
    /// Starts `writers` tasks that each write batches with `write`, which
    /// must answer every post it is given.
    pub fn start<W, F>(writers: usize, write: W) -> Self
    where
        W: Fn(Vec<Post>) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send,
    {
        let (sender, receiver) = mpsc::channel(QUEUE);
        write_in_batches(receiver, MAX_BATCH, writers, write);
        Self { sender }
    }

    /// Queues a post and waits until its batch has committed (or failed).
    pub async fn post(
        &self,
        caller: &Caller,
        room: &RoomId,
        message: &NewMessage,
    ) -> Result<Posted> {
        let (reply, answer) = oneshot::channel();
        let post = Post {
            caller: caller.clone(),
            room: room.clone(),
            message: message.clone(),
            reply,
        };
        self.sender
            .send(post)
            .await
            .map_err(|_| Error::ShuttingDown)?;
        answer
            .await
            .map_err(|_| Error::internal("a post's writer stopped without answering"))?
    }
}

/// Starts `writers` tasks that each take everything queued on `receiver`
/// (up to `most`) and hand it to `write`, a batch at a time: one task
/// gathers while the others write. They end when every sender is gone.
pub fn write_in_batches<T, W, F>(
    receiver: mpsc::Receiver<T>,
    most: usize,
    writers: usize,
    write: W,
) -> Vec<tokio::task::JoinHandle<()>>
where
    T: Send + 'static,
    W: Fn(Vec<T>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send,
{
    let receiver = Arc::new(Mutex::new(receiver));
    let write = Arc::new(write);
    (0..writers.max(1))
        .map(|_| {
            let (receiver, write) = (receiver.clone(), write.clone());
            tokio::spawn(async move {
                loop {
                    let mut batch = Vec::with_capacity(most);
                    if receiver.lock().await.recv_many(&mut batch, most).await == 0 {
                        return;
                    }
                    write(batch).await;
                }
            })
        })
        .collect()
}

/// Answers every post of a failed batch. A store that cannot be reached fails
/// them all; any other failure may be one post's doing, so each is retried
/// alone with `write_one` and gets its own outcome.
pub async fn answer_failed_batch<W, F>(posts: Vec<Post>, error: Error, write_one: W)
where
    W: Fn(Post) -> F,
    F: Future<Output = ()>,
{
    if let Error::Unavailable(source) = &error {
        for post in posts {
            post.answer(Err(Error::Unavailable(source.clone())));
        }
        return;
    }
    let mut posts = posts.into_iter();
    if posts.len() == 1 {
        if let Some(post) = posts.next() {
            post.answer(Err(error));
        }
        return;
    }
    for post in posts {
        write_one(post).await;
    }
}
