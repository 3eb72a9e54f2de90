//! Group commit: concurrent requests wait in one queue (`BatchQueue`); a few
//! writer tasks each take everything queued and write it at once. Posts go
//! this way (up to `MAX_BATCH` in one transaction with one notification, each
//! answered only after its batch has committed), and so do the cluster's
//! limit checks (`cluster`: one statement a batch).
//!
//! Why: the event log's counter row stays locked from a write's first event
//! id to its commit, flush to disk included, so one transaction per message
//! caps every writer together at the disk's flush rate (about 600 messages/s
//! on PostgreSQL on the benchmark machine). A batch pays that flush once.

use super::{NewMessage, Posted};
use crate::error::{Error, Result};
use crate::model::{Caller, RoomId};
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

/// The most posts one transaction writes.
pub const MAX_BATCH: usize = 256;

/// A request waiting in a `BatchQueue`; it reads as the request itself.
pub struct Pending<T, R> {
    request: T,
    reply: Reply<R>,
}

/// How a request's caller gets its answer.
pub struct Reply<R>(oneshot::Sender<Result<R>>);

impl<R> Reply<R> {
    /// Answers the caller (who may have gone: a disconnect does not undo a write).
    pub fn answer(self, outcome: Result<R>) {
        let _ = self.0.send(outcome);
    }
}

impl<T, R> Pending<T, R> {
    /// Answers the caller (see `Reply::answer`).
    pub fn answer(self, outcome: Result<R>) {
        self.reply.answer(outcome);
    }

    /// The request, and the answer to give apart from it.
    pub fn into_parts(self) -> (T, Reply<R>) {
        (self.request, self.reply)
    }
}

impl<T, R> Deref for Pending<T, R> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.request
    }
}

/// Requests that writer tasks take in batches: each task takes everything
/// queued (up to a batch's most) and writes it at once, one task gathering
/// while the others write; each caller waits for its own answer.
pub struct BatchQueue<T, R> {
    sender: mpsc::Sender<Pending<T, R>>,
}

impl<T: Send + 'static, R: Send + 'static> BatchQueue<T, R> {
    /// Starts `writers` tasks that hand batches of up to `most` requests to
    /// `write`, which must answer every one; once the queue is dropped they
    /// write what is queued, then end. Four batches may wait; further
    /// callers wait to enqueue.
    pub fn start<W, F>(most: usize, writers: usize, write: W) -> (Self, Vec<JoinHandle<()>>)
    where
        W: Fn(Vec<Pending<T, R>>) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send,
    {
        let (sender, receiver) = mpsc::channel(4 * most);
        let receiver = Arc::new(Mutex::new(receiver));
        let write = Arc::new(write);
        let writers = (0..writers.max(1))
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
            .collect();
        (Self { sender }, writers)
    }

    /// Queues a request and waits for its batch's answer to it.
    pub async fn ask(&self, request: T) -> Result<R> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Pending {
                request,
                reply: Reply(reply),
            })
            .await
            .map_err(|_| Error::ShuttingDown)?;
        answer
            .await
            .map_err(|_| Error::internal("a batch's writer stopped without answering"))?
    }
}

/// One post, as it waits for its batch.
pub struct NewPost {
    pub caller: Caller,
    pub room: RoomId,
    pub message: NewMessage,
}

pub type Post = Pending<NewPost, Posted>;

/// Where concurrent `post_message` calls wait for a writer.
pub struct PostQueue(BatchQueue<NewPost, Posted>);

impl PostQueue {
    /// Starts `writers` tasks that each write batches with `write`, which
    /// must answer every post it is given.
    pub fn start<W, F>(writers: usize, write: W) -> Self
    where
        W: Fn(Vec<Post>) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send,
    {
        // The writers end with the queue.
        Self(BatchQueue::start(MAX_BATCH, writers, write).0)
    }

    /// Queues a post and waits until its batch has committed (or failed).
    pub async fn post(
        &self,
        caller: &Caller,
        room: &RoomId,
        message: &NewMessage,
    ) -> Result<Posted> {
        self.0
            .ask(NewPost {
                caller: caller.clone(),
                room: room.clone(),
                message: message.clone(),
            })
            .await
    }
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
