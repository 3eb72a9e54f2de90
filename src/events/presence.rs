//! Presence: a user is online while they hold a stream or a waiting poll
//! on any instance, and offline once the last has been gone for the grace
//! (so a reload does not blink). Changes are signals to the streams that
//! may see the user: admins', and those of the rooms the user is in.
//!
//! Each instance announces what it sees: "online" when one of its streams
//! of the user opens (after its claim in the cluster has committed), and
//! "offline" when the grace of its last one has passed and no live
//! instance holds one. Each announcement carries a version taken after what
//! it saw (from the database on PostgreSQL, where several instances share
//! it), so a client that keeps the highest version per user ends on the
//! truth whichever news arrives first. A lapsed instance's users are
//! announced by the instance that deletes it.

use super::{Hub, Signal};
use crate::error::Result;
use crate::model::{SignalData, Timestamp, UserId};
use crate::store::{Cluster, Lane};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How many arrivals may wait for their announcement.
const ARRIVALS: usize = 8192;
/// How long arrivals gather before they are announced together: a burst of
/// opens (clients coming back after a restart) costs a few statements, not
/// a few for each.
const GATHER: Duration = Duration::from_millis(50);

pub struct Presence {
    grace: Duration,
    /// The instances' shared streams, on PostgreSQL; `None` on SQLite, where
    /// this process's streams are all there are.
    cluster: Option<Arc<Cluster>>,
    /// Versions on SQLite: microseconds since the epoch at start, counting
    /// on, so they rise across restarts too.
    local_version: AtomicI64,
    /// Users whose last stream here ended, and when.
    leaving: Mutex<HashMap<UserId, Instant>>,
    arrivals: mpsc::Sender<UserId>,
}

/// What `Presence::new` leaves for `Presence::run`.
pub struct Arrivals(mpsc::Receiver<UserId>);

/// Whether a user is online (as of the version taken before the look).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub user: UserId,
    pub online: bool,
}

impl Presence {
    pub fn new(grace: Duration, cluster: Option<Arc<Cluster>>) -> (Self, Arrivals) {
        let (arrivals, queued) = mpsc::channel(ARRIVALS);
        let presence = Self {
            grace,
            cluster,
            local_version: AtomicI64::new(Timestamp::now().unix_ms().saturating_mul(1000)),
            leaving: Mutex::new(HashMap::new()),
            arrivals,
        };
        (presence, Arrivals(queued))
    }

    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Users online by this process's doing: holding a stream here, or
    /// within the grace of their last.
    pub fn here(&self, hub: &Hub) -> Vec<UserId> {
        let mut users = hub.users_with_streams();
        users.extend(lock(&self.leaving).keys().cloned());
        users.sort();
        users.dedup();
        users
    }

    /// A stream (or poll) of `user` opened here, and is counted in the cluster.
    pub fn arrived(&self, user: &UserId) {
        lock(&self.leaving).remove(user);
        // A full queue means announcements lag far behind; this one is
        // dropped rather than the stream held back (the snapshot has it).
        let _ = self.arrivals.try_send(user.clone());
    }

    /// The last stream of `user` here ended.
    pub fn left(&self, user: &UserId) {
        lock(&self.leaving).insert(user.clone(), Instant::now());
    }

    /// A version above every announcement made before what the caller
    /// reads next, taken on `lane`'s connections.
    pub async fn version(&self, lane: Lane) -> Result<i64> {
        match &self.cluster {
            Some(cluster) => cluster.presence_version(lane).await,
            None => Ok(self.local_version.fetch_add(1, Ordering::SeqCst) + 1),
        }
    }

    /// Whether each of `users` is online: holding a stream or a poll on
    /// some instance, or here within the grace of their last.
    pub async fn look_up(&self, hub: &Hub, users: &[UserId]) -> Result<Vec<Seen>> {
        let mut online: HashSet<UserId> = users
            .iter()
            .filter(|user| hub.streams_of(user) > 0 || lock(&self.leaving).contains_key(*user))
            .cloned()
            .collect();
        if let Some(cluster) = &self.cluster {
            online.extend(cluster.streaming(users, Lane::Requests).await?);
        }
        Ok(users
            .iter()
            .map(|user| Seen {
                user: user.clone(),
                online: online.contains(user),
            })
            .collect())
    }
}

impl Hub {
    /// Tells the streams that may see each of `users` whether they are
    /// online: one read of their rooms, one statement to the other instances.
    async fn announce(&self, users: &[UserId], online: bool, version: i64) -> Result<()> {
        if users.is_empty() {
            return Ok(());
        }
        tracing::debug!(?users, online, version, "announcing presence");
        let mut rooms: HashMap<UserId, Vec<crate::model::RoomId>> = users
            .iter()
            .map(|user| (user.clone(), Vec::new()))
            .collect();
        for (user, room) in self.store.rooms_of(users).await? {
            rooms.entry(user).or_default().push(room);
        }
        let signals = rooms
            .into_iter()
            .map(|(user, rooms)| {
                let data = SignalData::Presence {
                    user_id: &user,
                    online,
                    version,
                };
                Signal {
                    rooms,
                    // A struct of strings, a flag and a number always encodes.
                    data: serde_json::to_string(&data).unwrap_or_default(),
                }
            })
            .collect();
        self.signal(signals);
        Ok(())
    }
}

/// Announces arrivals as they come, and departures once their grace has
/// passed (looked at every quarter of it), for as long as the hub lives.
pub async fn run(hub: Weak<Hub>, Arrivals(mut arrivals): Arrivals, grace: Duration) {
    let mut tick =
        tokio::time::interval((grace / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut came = Vec::new();
        let outcome = tokio::select! {
            arrived = arrivals.recv_many(&mut came, ARRIVALS) => {
                if arrived == 0 {
                    return;
                }
                tokio::time::sleep(GATHER).await;
                while let Ok(user) = arrivals.try_recv() {
                    came.push(user);
                }
                let Some(hub) = hub.upgrade() else { return };
                announce_arrivals(&hub, came).await
            }
            _ = tick.tick() => {
                let Some(hub) = hub.upgrade() else { return };
                // Those written again after a lapse come back with no arrival.
                let rejoined = announce_arrivals(&hub, Vec::new()).await;
                rejoined.and(announce_departures(&hub).await)
            }
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, "could not announce presence; the snapshot still has it");
        }
    }
}

async fn announce_arrivals(hub: &Hub, came: Vec<UserId>) -> Result<()> {
    let presence = hub.presence();
    let mut came = came;
    if let Some(cluster) = presence.cluster() {
        // Written again after a lapse: others may have announced them gone.
        came.extend(cluster.take_rejoined());
    }
    came.sort();
    came.dedup();
    if came.is_empty() {
        return Ok(());
    }
    // After their claims committed: above any "offline" that missed them.
    let version = presence.version(Lane::Housekeeping).await?;
    hub.announce(&came, true, version).await
}

async fn announce_departures(hub: &Hub) -> Result<()> {
    let presence = hub.presence();
    let now = Instant::now();
    let mut due: Vec<UserId> = {
        let mut leaving = lock(&presence.leaving);
        let due: Vec<UserId> = leaving
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= presence.grace)
            .map(|(user, _)| user.clone())
            .collect();
        for user in &due {
            leaving.remove(user);
        }
        due
    };
    if let Some(cluster) = presence.cluster() {
        due.extend(cluster.take_departed());
        due.extend(cluster.due_departures().await?);
    }
    due.retain(|user| hub.streams_of(user) == 0);
    due.sort();
    due.dedup();
    if due.is_empty() {
        return Ok(());
    }
    let looked = async {
        // Before looking: an arrival the look misses has a higher version.
        let version = presence.version(Lane::Housekeeping).await?;
        let held: HashSet<UserId> = match presence.cluster() {
            Some(cluster) => cluster
                .streaming(&due, Lane::Housekeeping)
                .await?
                .into_iter()
                .collect(),
            None => HashSet::new(),
        };
        Ok::<_, crate::error::Error>((version, held))
    };
    let (version, held) = match looked.await {
        Ok(looked) => looked,
        Err(error) => {
            // Due again at the next look.
            let mut leaving = lock(&presence.leaving);
            for user in due {
                leaving.entry(user).or_insert(now - presence.grace);
            }
            return Err(error);
        }
    };
    due.retain(|user| !held.contains(user));
    // Kept, so that the unseen notice knows who was online since a message.
    if let Err(error) = hub
        .store
        .webhooks()
        .note_offline(&due, Timestamp::now())
        .await
    {
        tracing::warn!(%error, "cannot note who went offline; unseen notices may come for them");
    }
    hub.announce(&due, false, version).await
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
