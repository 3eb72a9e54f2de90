//! What the instances on one PostgreSQL database share so that the per-user
//! limits hold for the whole cluster, not once per instance: a heartbeat per
//! instance, the streams each user holds on each instance, and a rate budget
//! per user and kind of write (tables and functions of migration 0004).
//! Presence reads the same streams (`streaming`, `departed`).
//! SQLite serves one process, which counts in memory (`crate::limits`).

use super::group_commit::{BatchQueue, Pending, Reply};
use super::{Backend, StoreOptions};
use crate::error::{Error, Result};
use crate::model::UserId;
use futures::future::BoxFuture;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{Notify, RwLock};
use tokio::task::JoinHandle;

/// An instance that has not beaten for this many heartbeats is gone: its
/// streams stop counting, and the next heartbeat of another deletes it.
const HEARTBEATS_TO_LAPSE: u32 = 3;
/// The most requests one statement serves, and how many such statements
/// may be in flight at once (one batch gathers while another is written).
/// Claims take an advisory lock each until their statement ends, so their
/// batches stay small enough for PostgreSQL's lock table.
const MAX_SPENDS: usize = 256;
const MAX_CLAIMS: usize = 64;
const STATEMENTS_IN_FLIGHT: usize = 2;
/// The cluster pool's connections: one for each task that may use it at
/// once (the spend and claim statements, the give-backs), shared with the
/// requests' presence reads.
const CONNECTIONS: u32 = 2 * STATEMENTS_IN_FLIGHT as u32 + 1;
/// The housekeeping connections: the heartbeat's and the presence task's
/// reads of the cluster, one each. Apart from the claims and spends, so that
/// a storm of opens or writes never makes an instance miss its heartbeat
/// (and lapse, and lose its streams' count). (Presence news also reads the
/// rooms of whom it announces, on the store's own pool.)
const HOUSEKEEPING_CONNECTIONS: u32 = 2;

/// Which connections a read of the cluster goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A request's: shared with the claims and spends.
    Requests,
    /// The background tasks' own (heartbeat, presence news), which no
    /// burst of claims, spends or requests can use up.
    Housekeeping,
}

/// One write's spend of its budget.
struct Spend {
    bucket: String,
    emission: Duration,
    tolerance: Duration,
}

/// One stream's claim of a place.
struct Claim {
    user: String,
    max: i32,
}

pub struct Cluster {
    /// The claims', spends' and give-backs' connections.
    pool: PgPool,
    /// The heartbeat's and presence's (`HOUSEKEEPING_CONNECTIONS`).
    housekeeping: PgPool,
    /// This process, random at each start.
    instance: String,
    heartbeat: Duration,
    /// Set when the registration was found lapsed, until its rows are
    /// written again (a failed rewrite is tried again at the next beat).
    needs_rewrite: AtomicBool,
    /// Wakes the heartbeat early: a claim found the registration gone.
    beat_now: Arc<Notify>,
    /// Streams this instance has claimed, per user: what its rows are
    /// rewritten from if its registration lapsed.
    held: Mutex<HashMap<UserId, i32>>,
    /// Streams that ended and whose claims are not yet given back.
    released: Mutex<HashMap<UserId, i32>>,
    release_pending: Arc<Notify>,
    /// Claims hold it shared; giving claims back, clearing empty rows and
    /// rewriting them after a lapse hold it alone. So the statements that
    /// change this instance's rows never run at once (they cannot deadlock
    /// on them), and no claim lands between a rewrite's read and its write.
    own_rows: RwLock<()>,
    /// Where concurrent writes queue their spends, and opens their claims,
    /// to share a statement.
    spends: BatchQueue<Spend, Option<Duration>>,
    claims: BatchQueue<Claim, bool>,
    /// Users whose streams were on an instance that lapsed (and that this
    /// one deleted), or that this one wrote again after its own lapse: their
    /// presence is news, for `take_departed` and `take_rejoined`.
    departed: Mutex<Vec<UserId>>,
    rejoined: Mutex<Vec<UserId>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(|p| p.into_inner());
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

/// One stream counted in the cluster, given back when dropped.
pub struct StreamClaim {
    cluster: Arc<Cluster>,
    user: UserId,
}

impl Drop for StreamClaim {
    fn drop(&mut self) {
        self.cluster.release(&self.user);
    }
}

impl Cluster {
    /// Registers this instance on the PostgreSQL database `options` name and
    /// keeps its heartbeat; `None` for SQLite. Migrations must have run.
    pub async fn join(options: &StoreOptions, heartbeat: Duration) -> Result<Option<Arc<Self>>> {
        if !matches!(Backend::of(&options.url), Ok(Backend::Postgres)) {
            return Ok(None);
        }
        let connect = PgConnectOptions::from_str(&options.url)?;
        // Beside the store's pool, so that a burst of limit checks never
        // waits behind the writes it guards (or the other way round).
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(connect.clone());
        let housekeeping = PgPoolOptions::new()
            .max_connections(HOUSEKEEPING_CONNECTIONS)
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(connect);
        let mut id = [0u8; 8];
        getrandom::fill(&mut id)
            .map_err(|e| Error::internal_from("no randomness for an instance id", e))?;
        let instance: String = id.iter().map(|byte| format!("{byte:02x}")).collect();
        let mut tasks = Vec::new();
        let spends = batches(MAX_SPENDS, &mut tasks, |spend| &spend.bucket, {
            let pool = pool.clone();
            move |batch| Box::pin(spend_all(pool.clone(), batch))
        });
        let beat_now = Arc::new(Notify::new());
        let claims = batches(MAX_CLAIMS, &mut tasks, |claim| &claim.user, {
            let (pool, instance, beat_now) = (pool.clone(), instance.clone(), beat_now.clone());
            move |batch| {
                let claimed = claim_all(pool.clone(), instance.clone(), batch);
                let beat_now = beat_now.clone();
                Box::pin(async move {
                    let claimed = claimed.await;
                    if claimed.is_err() {
                        beat_now.notify_one();
                    }
                    claimed
                })
            }
        });
        let cluster = Arc::new(Self {
            pool,
            housekeeping,
            instance,
            heartbeat,
            needs_rewrite: AtomicBool::new(false),
            beat_now,
            held: Mutex::new(HashMap::new()),
            released: Mutex::new(HashMap::new()),
            release_pending: Arc::new(Notify::new()),
            own_rows: RwLock::new(()),
            spends,
            claims,
            departed: Mutex::new(Vec::new()),
            rejoined: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
        });
        cluster.beat().await?;
        tasks.push(tokio::spawn(beat_forever(Arc::downgrade(&cluster))));
        tasks.push(tokio::spawn(give_back_forever(Arc::downgrade(&cluster))));
        lock(&cluster.tasks).extend(tasks.iter().map(tokio::task::JoinHandle::abort_handle));
        tracing::info!(instance = %cluster.instance, "joined the cluster");
        Ok(Some(cluster))
    }

    /// Spends one unit of `bucket`'s budget of `rate` a second, in bursts of
    /// `burst`; `Some(wait)` when it is spent, for the `Retry-After`.
    /// Concurrent spends share one statement, as posts share a transaction.
    pub async fn spend(&self, bucket: String, rate: u32, burst: u32) -> Result<Option<Duration>> {
        // In whole microseconds: PostgreSQL's intervals hold no finer.
        let emission = Duration::from_micros((1_000_000 / u64::from(rate.max(1))).max(1));
        let spend = Spend {
            bucket,
            emission,
            tolerance: emission * (burst.max(1) - 1),
        };
        self.spends.ask(spend).await
    }

    /// Counts one more stream of `user`'s in the cluster, unless the live
    /// instances hold `max` of theirs already (`None`).
    pub async fn claim_stream(
        self: &Arc<Self>,
        user: &UserId,
        max: usize,
    ) -> Result<Option<StreamClaim>> {
        let (cluster, user) = (self.clone(), user.clone());
        // In a task of its own, which runs to its end even if the open is
        // cancelled: a place counted in the database is then either handed
        // over or, dropped with the task's output, given back.
        let claimed = tokio::spawn(async move {
            let _shared = cluster.own_rows.read().await;
            let claim = Claim {
                user: user.as_str().to_owned(),
                max: i32::try_from(max).unwrap_or(i32::MAX),
            };
            if !cluster.claims.ask(claim).await? {
                return Ok(None);
            }
            *lock(&cluster.held).entry(user.clone()).or_insert(0) += 1;
            Ok(Some(StreamClaim {
                cluster: cluster.clone(),
                user,
            }))
        });
        claimed
            .await
            .map_err(|e| Error::internal_from("a stream claim failed", e))?
    }

    /// The connections for `lane`.
    fn pool_for(&self, lane: Lane) -> &PgPool {
        match lane {
            Lane::Requests => &self.pool,
            Lane::Housekeeping => &self.housekeeping,
        }
    }

    /// Of `users`, those who hold streams on a live instance now.
    pub async fn streaming(&self, users: &[UserId], lane: Lane) -> Result<Vec<UserId>> {
        let users: Vec<&str> = users.iter().map(UserId::as_str).collect();
        let held: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT s.user_id FROM user_streams AS s
             JOIN instances AS live ON live.id = s.instance_id
             WHERE s.user_id = ANY($1) AND s.streams > 0
               AND live.seen_at > clock_timestamp() - live.lapse",
        )
        .bind(&users)
        .fetch_all(self.pool_for(lane))
        .await?;
        Ok(held.into_iter().map(UserId::from_store).collect())
    }

    /// A number above every one taken before what the caller saw committed
    /// (see migration 0006).
    pub async fn presence_version(&self, lane: Lane) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT nextval('presence_versions')")
            .fetch_one(self.pool_for(lane))
            .await?)
    }

    /// The users whose streams went with a lapsed instance, since last asked.
    pub fn take_departed(&self) -> Vec<UserId> {
        std::mem::take(&mut *lock(&self.departed))
    }

    /// The users whose streams this instance wrote again, since last asked.
    pub fn take_rejoined(&self) -> Vec<UserId> {
        std::mem::take(&mut *lock(&self.rejoined))
    }

    /// The users an instance that stopped left due for a look (see
    /// `leave`), taken by this instance alone.
    pub async fn due_departures(&self) -> Result<Vec<UserId>> {
        let due: Vec<String> = sqlx::query_scalar(
            "DELETE FROM presence_departures WHERE due_at <= clock_timestamp() RETURNING user_id",
        )
        .fetch_all(&self.housekeeping)
        .await?;
        Ok(due.into_iter().map(UserId::from_store).collect())
    }

    /// Stops the heartbeat and deregisters this instance, giving back every
    /// claim it holds (at shutdown). `users`, whose streams were here, are
    /// left for the other instances to announce offline after `grace`,
    /// unless they come back.
    pub async fn leave(&self, users: &[UserId], grace: Duration) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        let users: Vec<&str> = users.iter().map(UserId::as_str).collect();
        let handed_over = sqlx::query(
            "INSERT INTO presence_departures (user_id, due_at)
             SELECT u, clock_timestamp() + $2 FROM unnest($1::text[]) AS u",
        )
        .bind(&users)
        .bind(grace)
        .execute(&self.housekeeping)
        .await;
        if let Err(error) = handed_over {
            tracing::warn!(%error, "could not hand presence over; those users stay online");
        }
        let left = sqlx::query("DELETE FROM instances WHERE id = $1")
            .bind(&self.instance)
            .execute(&self.housekeeping)
            .await;
        if let Err(error) = left {
            tracing::warn!(%error, "could not leave the cluster; its claims lapse by themselves");
        }
    }

    /// How long this instance may be silent before the others count it
    /// gone (in whole microseconds, as an interval holds).
    fn lapse(&self) -> Duration {
        let lapse = self.heartbeat * HEARTBEATS_TO_LAPSE;
        Duration::from_micros(u64::try_from(lapse.as_micros()).unwrap_or(u64::MAX))
    }

    /// Queues a claim to give back; `give_back_forever` writes it.
    fn release(&self, user: &UserId) {
        let mut held = lock(&self.held);
        if let Some(count) = held.get_mut(user) {
            *count -= 1;
            if *count <= 0 {
                held.remove(user);
            }
        }
        drop(held);
        *lock(&self.released).entry(user.clone()).or_insert(0) += 1;
        self.release_pending.notify_one();
    }

    /// Says this instance is alive and forgets the ones that are not. If its
    /// own registration had lapsed (and its rows went with it), writes them
    /// again from what it holds.
    async fn beat(&self) -> Result<()> {
        // `xmax = 0` only on a row this statement inserted.
        let registered_afresh: bool = sqlx::query_scalar(
            "INSERT INTO instances (id, seen_at, lapse) VALUES ($1, clock_timestamp(), $2)
             ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at, lapse = EXCLUDED.lapse
             RETURNING xmax = 0",
        )
        .bind(&self.instance)
        .bind(self.lapse())
        .fetch_one(&self.housekeeping)
        .await?;
        if registered_afresh {
            self.needs_rewrite.store(true, Ordering::SeqCst);
        }
        if self.needs_rewrite.load(Ordering::SeqCst) && self.rewrite_claims().await? {
            self.needs_rewrite.store(false, Ordering::SeqCst);
        }
        // The users of the instances that lapse, read as they go (the
        // statement's snapshot still holds their rows): presence news.
        let departed: Vec<String> = sqlx::query_scalar(
            "WITH gone AS (
                 DELETE FROM instances WHERE seen_at < clock_timestamp() - lapse RETURNING id)
             SELECT DISTINCT s.user_id FROM user_streams AS s JOIN gone ON gone.id = s.instance_id
             WHERE s.streams > 0",
        )
        .fetch_all(&self.housekeeping)
        .await?;
        lock(&self.departed).extend(departed.into_iter().map(UserId::from_store));
        // Only when no claim is under way: waiting for a storm of them
        // would delay the next beat. Empty rows are gone at a later one.
        if let Ok(_alone) = self.own_rows.try_write() {
            sqlx::query("DELETE FROM user_streams WHERE instance_id = $1 AND streams <= 0")
                .bind(&self.instance)
                .execute(&self.housekeeping)
                .await?;
        }
        // Full buckets say nothing a missing row would not. Rows a spend has
        // locked are skipped, so this never waits for one (or deadlocks).
        sqlx::query(
            "DELETE FROM rate_budgets WHERE bucket IN (
                 SELECT bucket FROM rate_budgets WHERE full_at < clock_timestamp()
                 LIMIT 10000 FOR UPDATE SKIP LOCKED)",
        )
        .execute(&self.housekeeping)
        .await?;
        Ok(())
    }

    /// Writes this instance's rows from `held` (after a lapse: none are left).
    /// Not while a claim is under way (waiting for a storm of them would
    /// delay the beat): `false` then, and the next beat tries again.
    async fn rewrite_claims(&self) -> Result<bool> {
        let Ok(_alone) = self.own_rows.try_write() else {
            return Ok(false);
        };
        // What was released is already out of `held`.
        lock(&self.released).clear();
        let (users, counts): (Vec<String>, Vec<i32>) = lock(&self.held)
            .iter()
            .map(|(user, count)| (user.as_str().to_owned(), *count))
            .unzip();
        if users.is_empty() {
            return Ok(true);
        }
        tracing::warn!(
            instance = %self.instance,
            users = users.len(),
            "this instance's registration had lapsed; writing its streams again"
        );
        sqlx::query(
            "INSERT INTO user_streams (user_id, instance_id, streams)
             SELECT u, $1, n FROM unnest($2::text[], $3::int[]) AS held(u, n)
             ON CONFLICT (user_id, instance_id) DO UPDATE SET streams = EXCLUDED.streams",
        )
        .bind(&self.instance)
        .bind(&users)
        .bind(&counts)
        .execute(&self.housekeeping)
        .await?;
        lock(&self.rejoined).extend(users.into_iter().map(UserId::from_store));
        Ok(true)
    }

    /// Gives back the queued claims in one statement; on failure they stay queued.
    async fn give_back(&self) -> Result<()> {
        // The connection first: claims queue behind a waiting writer, so it
        // must not wait for the pool while it holds them back.
        let mut connection = self.pool.acquire().await?;
        let _alone = self.own_rows.write().await;
        let released = std::mem::take(&mut *lock(&self.released));
        if released.is_empty() {
            return Ok(());
        }
        let (users, counts): (Vec<String>, Vec<i32>) = released
            .iter()
            .map(|(user, count)| (user.as_str().to_owned(), *count))
            .unzip();
        let written = sqlx::query(
            "UPDATE user_streams AS s SET streams = s.streams - r.n
             FROM unnest($2::text[], $3::int[]) AS r(u, n)
             WHERE s.instance_id = $1 AND s.user_id = r.u",
        )
        .bind(&self.instance)
        .bind(&users)
        .bind(&counts)
        .execute(&mut *connection)
        .await;
        if let Err(error) = written {
            let mut queued = lock(&self.released);
            for (user, count) in released {
                *queued.entry(user).or_insert(0) += count;
            }
            return Err(error.into());
        }
        Ok(())
    }
}

/// Starts a queue of requests that share one statement: each batch (up to
/// `most`) is sorted by key, so that concurrent batches, of this instance or
/// another, lock rows in one order (one key's requests keep their order: the
/// sort is stable), and answered in that order.
fn batches<T: Send + 'static, R: Send + 'static>(
    most: usize,
    tasks: &mut Vec<JoinHandle<()>>,
    key: fn(&T) -> &String,
    write: impl Fn(Vec<T>) -> Answers<R> + Send + Sync + 'static,
) -> BatchQueue<T, R> {
    let (queue, writers) = BatchQueue::start(
        most,
        STATEMENTS_IN_FLIGHT,
        move |mut batch: Vec<Pending<T, R>>| {
            batch.sort_by(|a, b| key(a).cmp(key(b)));
            let (requests, replies): (Vec<T>, Vec<Reply<R>>) =
                batch.into_iter().map(Pending::into_parts).unzip();
            let answers = write(requests);
            async move { answer_in_order(replies, answers.await) }
        },
    );
    tasks.extend(writers);
    queue
}

type Answers<R> = BoxFuture<'static, Result<Vec<R>>>;

/// Answers each request of a batch, in order: its own answer, or the
/// batch's failure.
fn answer_in_order<R>(replies: Vec<Reply<R>>, answers: Result<Vec<R>>) {
    match answers {
        Ok(answers) if answers.len() == replies.len() => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                reply.answer(Ok(answer));
            }
        }
        Ok(answers) => {
            let error = format!("{} requests got {} answers", replies.len(), answers.len());
            for reply in replies {
                reply.answer(Err(Error::internal(error.clone())));
            }
        }
        Err(error) => {
            let error = std::sync::Arc::new(error);
            for reply in replies {
                reply.answer(Err(Error::shared(
                    &error,
                    "a batch of the cluster's writes failed",
                )));
            }
        }
    }
}

/// Makes a batch of spends; each one's wait, `None` when spent.
async fn spend_all(pool: PgPool, batch: Vec<Spend>) -> Result<Vec<Option<Duration>>> {
    let buckets: Vec<&str> = batch.iter().map(|spend| spend.bucket.as_str()).collect();
    let emissions: Vec<Duration> = batch.iter().map(|spend| spend.emission).collect();
    let tolerances: Vec<Duration> = batch.iter().map(|spend| spend.tolerance).collect();
    let waits: Vec<f64> = sqlx::query_scalar("SELECT chat_spend_many($1, $2, $3)")
        .bind(&buckets)
        .bind(&emissions)
        .bind(&tolerances)
        .fetch_one(&pool)
        .await?;
    Ok(waits
        .into_iter()
        .map(|wait| {
            // Not trusted to be finite: a wait the database got wrong is a second.
            (wait > 0.0)
                .then(|| Duration::try_from_secs_f64(wait).unwrap_or(Duration::from_secs(1)))
        })
        .collect())
}

/// Makes a batch of claims for `instance`; whether each was counted.
async fn claim_all(pool: PgPool, instance: String, batch: Vec<Claim>) -> Result<Vec<bool>> {
    let users: Vec<&str> = batch.iter().map(|claim| claim.user.as_str()).collect();
    let maxima: Vec<i32> = batch.iter().map(|claim| claim.max).collect();
    let claimed: Option<Vec<bool>> = sqlx::query_scalar("SELECT chat_claim_streams($1, $2, $3)")
        .bind(&instance)
        .bind(&users)
        .bind(&maxima)
        .fetch_one(&pool)
        .await?;
    // Not registered: it lapsed and another instance deleted it. The clients
    // come back (told by the `unavailable` event) once the heartbeat, woken
    // now, has registered it and written its rows again.
    claimed.ok_or_else(|| {
        Error::Unavailable(Arc::new(sqlx::Error::Protocol(
            "this instance is registering with the cluster again".into(),
        )))
    })
}

async fn beat_forever(cluster: Weak<Cluster>) {
    // Waits holding the signals only, so that the cluster can be dropped.
    let Some((every, beat_now)) = cluster.upgrade().map(|c| (c.heartbeat, c.beat_now.clone()))
    else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = beat_now.notified() => {}
        }
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        if let Err(error) = cluster.beat().await {
            tracing::warn!(%error, "cluster heartbeat failed; retrying at the next");
        }
    }
}

async fn give_back_forever(cluster: Weak<Cluster>) {
    // Waits holding the signal only, so that the cluster can be dropped.
    let Some(pending) = cluster.upgrade().map(|c| c.release_pending.clone()) else {
        return;
    };
    loop {
        pending.notified().await;
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        if let Err(error) = cluster.give_back().await {
            tracing::warn!(%error, "could not give back ended streams; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            pending.notify_one();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
