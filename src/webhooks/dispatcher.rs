//! Delivery. Each instance leases the endpoints nobody else holds (a lease
//! row per endpoint: one instance at a time delivers to one endpoint, and a
//! killed instance's leases lapse within `webhook_lease`), and runs one task
//! per endpoint it holds, so a slow or dead receiver delays nobody else.
//!
//! A task reads the log (and the unseen notices) after the endpoint's
//! cursors, POSTs what the endpoint wants in order, up to `batch_events` at
//! a time, and moves the cursors only once the receiver answered 2xx:
//! anything else is retried, with exponential backoff and jitter, from the
//! same cursors, until the horizon passes and the endpoint is marked
//! failing. The cursors are saved at most once every `SAVE_EVERY` while
//! deliveries follow each other (each save is a commit beside the
//! messages'), at once when the endpoint is idle or recovered from a
//! failure, and at a clean shutdown: a crash repeats up to that much, and
//! never skips anything.

use super::endpoints::{UNSEEN, event_type, wants};
use super::{Shared, address, signing};
use crate::attachments::Variant;
use crate::metrics;
use crate::model::{AttachmentId, Message, RoomId, Timestamp, UserId};
use crate::store::{Cursors, Webhook, WebhookState};
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// How often a task with nothing to send looks for notices (they come
/// with no wake-up of their own) or, without notices, at all.
const NOTICE_POLL: Duration = Duration::from_secs(1);
const IDLE_POLL: Duration = Duration::from_secs(5);
/// How often a cursor is saved while it moves.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// How long an idle task, woken by new events, waits for more to come
/// before it reads: one read and one POST for what comes meanwhile, not
/// one for each event.
const GATHER: Duration = Duration::from_millis(20);
/// The first retry's delay; each next one doubles, up to `retry_max_interval`.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// An endpoint this instance delivers to: its latest row, and its task,
/// stopped when dropped.
struct Running {
    hook: watch::Sender<Webhook>,
    task: tokio::task::JoinHandle<()>,
    /// What it delivered and has not saved yet, for a clean shutdown to save.
    unsaved: Arc<std::sync::Mutex<Option<Cursors>>>,
}

impl Running {
    /// Stops the task and saves what it delivered since its last save, so
    /// the next holder repeats nothing (a crash would repeat up to
    /// `SAVE_EVERY`).
    async fn stop_and_save(mut self, shared: &Shared) {
        self.task.abort();
        // Stopped for good once this answers: `unsaved` is final.
        let _ = (&mut self.task).await;
        let unsaved = self
            .unsaved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(cursors) = unsaved else { return };
        let id = self.hook.borrow().id.clone();
        if let Err(error) = shared
            .store()
            .advance_webhook(&id, &shared.owner, cursors, true)
            .await
        {
            tracing::warn!(webhook = %id, %error, "cannot save a cursor at shutdown; deliveries since the last save repeat");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
        // Its lag is the next holder's to tell now.
        let id = self.hook.borrow().id.clone();
        ::metrics::gauge!(metrics::WEBHOOK_LAG, "webhook" => id).set(0.0);
    }
}

/// Renews this instance's leases every third of their length (and when
/// poked: an endpoint was created or changed here), starting a task for
/// each endpoint it gains and stopping those it lost, until draining; then
/// gives its leases back, so another instance takes over at once.
pub(super) async fn lease_forever(
    shared: Arc<Shared>,
    poke: Arc<Notify>,
    mut draining: watch::Receiver<bool>,
    released: watch::Sender<bool>,
) {
    let lease = shared.options.lease;
    let mut running: HashMap<String, Running> = HashMap::new();
    // Until when this instance may deliver: a third of the lease before
    // the last renewal's end, counted from before it was asked for, so a
    // POST in flight is stopped before another instance may start, even
    // with the instances' clocks up to that far apart.
    let mut deliver_until = Instant::now();
    loop {
        let asked = Instant::now();
        let until = Timestamp::from_unix_ms(Timestamp::now().unix_ms() + lease.as_millis() as i64);
        match shared.store().lease_webhooks(&shared.owner, until).await {
            Ok(hooks) => {
                deliver_until = asked + lease - lease / 3;
                reconcile(&shared, &mut running, hooks);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot renew the webhooks' leases; retrying");
                if Instant::now() >= deliver_until {
                    running.clear();
                }
            }
        }
        let failing = running
            .values()
            .filter(|run| run.hook.borrow().state == WebhookState::Failing)
            .count();
        ::metrics::gauge!(metrics::WEBHOOKS_FAILING).set(failing as f64);
        let drained = async {
            // Gone with the sender: stopping too.
            let _ = draining.wait_for(|draining| *draining).await;
        };
        // Renewed every third of the lease; a failing renewal looks again
        // by `deliver_until` at the latest.
        let next = (lease / 3).min(deliver_until.saturating_duration_since(Instant::now()));
        let next = if running.is_empty() { lease / 3 } else { next };
        tokio::select! {
            () = tokio::time::sleep(next) => {}
            () = poke.notified() => {}
            () = drained => break,
        }
    }
    for (_, run) in running.drain() {
        run.stop_and_save(&shared).await;
    }
    if let Err(error) = shared.store().release_webhooks(&shared.owner).await {
        tracing::warn!(%error, "cannot give the webhooks' leases back; they lapse");
    }
    let _ = released.send(true);
}

fn reconcile(shared: &Arc<Shared>, running: &mut HashMap<String, Running>, hooks: Vec<Webhook>) {
    let held: std::collections::HashSet<String> = hooks.iter().map(|h| h.id.clone()).collect();
    running.retain(|id, run| held.contains(id) && !run.task.is_finished());
    for hook in hooks {
        match running.get(&hook.id) {
            Some(run) => {
                // The task is woken only for what changes its work: not for
                // its own retry state (that would cut its backoff short).
                run.hook.send_if_modified(|current| {
                    let changed = current.url != hook.url
                        || current.event_types != hook.event_types
                        || current.room_ids != hook.room_ids
                        || current.secret != hook.secret
                        || current.previous_secret != hook.previous_secret
                        || current.state != hook.state;
                    *current = hook;
                    changed
                });
            }
            None => {
                tracing::info!(webhook = %hook.id, "delivering to a webhook");
                let id = hook.id.clone();
                let (sender, receiver) = watch::channel(hook);
                let unsaved = Arc::default();
                let task = tokio::spawn(deliver_forever(
                    shared.clone(),
                    receiver,
                    Arc::clone(&unsaved),
                ));
                running.insert(
                    id,
                    Running {
                        hook: sender,
                        task,
                        unsaved,
                    },
                );
            }
        }
    }
}

/// What one POST carries: the events after `from`, up to `to`.
struct Batch {
    items: Vec<Box<RawValue>>,
    first: String,
    last: String,
    to: Cursors,
    /// The read stopped at its limit: more may follow at once.
    more: bool,
}

/// One event of a delivery.
#[derive(Serialize)]
struct Item<'a, T: Serialize + ?Sized> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: Timestamp,
    data: &'a T,
}

/// The data of a `message.unseen` event.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Unseen<'a> {
    room_id: &'a RoomId,
    /// The member who has not seen it.
    user_id: &'a UserId,
    message: &'a Message,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    webhook_id: &'a str,
    events: &'a [Box<RawValue>],
}

/// Why a delivery stopped being tried.
enum Stop {
    /// Taken, after failed attempts or not.
    Delivered {
        after_failures: bool,
    },
    /// The endpoint changed or gave up: read it again.
    Again,
    LeaseLost,
}

/// A task's cursors as saved, and what it delivered past them.
struct Progress {
    saved: Cursors,
    saved_at: Instant,
    /// Delivered and not saved yet (shared: a clean shutdown saves it).
    unsaved: Arc<std::sync::Mutex<Option<Cursors>>>,
}

impl Progress {
    fn unsaved(&self) -> std::sync::MutexGuard<'_, Option<Cursors>> {
        self.unsaved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Saves `to` (as delivered if anything was); `None` if the store
    /// failed, `Some(false)` if the lease is lost.
    async fn save(&mut self, shared: &Shared, webhook: &str, to: Cursors) -> Option<bool> {
        let delivered = self.unsaved().is_some();
        match shared
            .store()
            .advance_webhook(webhook, &shared.owner, to, delivered)
            .await
        {
            Ok(true) => {
                (self.saved, self.saved_at) = (to, Instant::now());
                *self.unsaved() = None;
                Some(true)
            }
            Ok(false) => Some(false),
            Err(error) => {
                tracing::warn!(%webhook, %error, "cannot save a cursor");
                None
            }
        }
    }
}

async fn deliver_forever(
    shared: Arc<Shared>,
    mut hook: watch::Receiver<Webhook>,
    unsaved: Arc<std::sync::Mutex<Option<Cursors>>>,
) {
    let mut relayed = shared.hub.relayed_events();
    let mut cursors = hook.borrow().cursors;
    let mut progress = Progress {
        saved: cursors,
        saved_at: Instant::now(),
        unsaved,
    };
    loop {
        let current = hook.borrow_and_update().clone();
        cursors = Cursors {
            event: cursors.event.max(current.cursors.event),
            notice: cursors.notice.max(current.cursors.notice),
        };
        note_lag(&shared, &current.id, cursors.event);
        if current.state == WebhookState::Failing {
            if hook.changed().await.is_err() {
                return;
            }
            continue;
        }
        let batch = match next_batch(&shared, &current, cursors).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(webhook = %current.id, %error, "cannot read what to deliver; retrying");
                tokio::time::sleep(FIRST_RETRY).await;
                continue;
            }
        };
        if batch.items.is_empty() {
            cursors = batch.to;
            // Idle (nothing more to read) with deliveries unsaved: now.
            let idle_after_deliveries = progress.unsaved().is_some() && !batch.more;
            if cursors != progress.saved
                && (idle_after_deliveries || progress.saved_at.elapsed() >= SAVE_EVERY)
                && progress.save(&shared, &current.id, cursors).await == Some(false)
            {
                return;
            }
            if batch.more {
                continue;
            }
            let poll = if current.event_types.iter().any(|kind| kind == UNSEEN) {
                NOTICE_POLL
            } else {
                IDLE_POLL
            };
            tokio::select! {
                _ = relayed.changed() => tokio::time::sleep(GATHER).await,
                changed = hook.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(poll) => {}
            }
            continue;
        }
        match send(&shared, &mut hook, &current, &batch, cursors.event).await {
            Stop::Delivered { after_failures } => {
                cursors = batch.to;
                *progress.unsaved() = Some(cursors);
                // A recovery clears the failure's state at once.
                if !after_failures && progress.saved_at.elapsed() < SAVE_EVERY {
                    continue;
                }
                match progress.save(&shared, &current.id, cursors).await {
                    Some(true) => {}
                    Some(false) => return,
                    // Delivered all the same: saved with the next one.
                    None => tokio::time::sleep(FIRST_RETRY).await,
                }
            }
            Stop::Again => {}
            Stop::LeaseLost => return,
        }
    }
}

/// What to send next after `from`: the events `hook` wants, then its notices.
async fn next_batch(shared: &Shared, hook: &Webhook, from: Cursors) -> crate::error::Result<Batch> {
    let limit = shared.options.batch_events;
    let events = shared
        .store()
        .events_for_delivery(from.event, limit)
        .await?;
    let mut more = events.len() == limit as usize;
    let mut to = from;
    let mut items = Vec::new();
    let mut ids = Vec::new();
    for event in &events {
        to.event = event.id;
        let Some(kind) = event_type(&event.data) else {
            continue;
        };
        if !wants(hook, kind, &event.room_id) {
            continue;
        }
        let id = format!("evt_{}", event.id);
        let timestamp = Timestamp::from_unix_ms(event.created_at);
        // Most events have no attachments, and go on as they were logged.
        if event.data.contains(r#""attachments":"#) {
            let mut data: serde_json::Value = serde_json::from_str(&event.data)
                .map_err(|e| crate::error::Error::internal_from("a logged event is not JSON", e))?;
            add_download_urls(shared, &mut data);
            items.push(item(&id, kind, timestamp, &data)?);
        } else {
            let data: &RawValue = serde_json::from_str(&event.data)
                .map_err(|e| crate::error::Error::internal_from("a logged event is not JSON", e))?;
            items.push(item(&id, kind, timestamp, data)?);
        }
        ids.push(id);
    }
    let room = items.len() as u32;
    // Notices only once the log is read to its end: a notice is raised
    // `unseen_delay` after its message was logged, so its message's event
    // has then been delivered (or is in this batch, before it).
    if hook.event_types.iter().any(|kind| kind == UNSEEN) && !more && room < limit {
        let notices = shared
            .store()
            .notices_after(from.notice, limit - room)
            .await?;
        more |= notices.len() == (limit - room) as usize;
        for notice in &notices {
            to.notice = notice.id;
            let Some(message) = notice.message.as_ref().filter(|m| !m.is_deleted()) else {
                continue;
            };
            if !wants(hook, UNSEEN, notice.room_id.as_str()) {
                continue;
            }
            let data = Unseen {
                room_id: &notice.room_id,
                user_id: &notice.user_id,
                message,
            };
            let id = format!("ntc_{}", notice.id);
            let mut data = serde_json::to_value(&data)
                .map_err(|e| crate::error::Error::internal_from("a notice does not encode", e))?;
            add_download_urls(shared, &mut data);
            items.push(item(&id, UNSEEN, notice.created_at, &data)?);
            ids.push(id);
        }
    }
    Ok(Batch {
        items,
        first: ids.first().cloned().unwrap_or_default(),
        last: ids.last().cloned().unwrap_or_default(),
        to,
        more,
    })
}

/// Gives each attachment of the event's message signed links a receiver
/// can fetch it (and its thumbnail) by, without a token: `downloadUrl`,
/// `thumbnailUrl`, valid until `downloadExpiresAt` (Unix seconds), for as
/// long as the delivery may be retried, and an hour more.
fn add_download_urls(shared: &Shared, data: &mut serde_json::Value) {
    let Some(attachments) = data
        .pointer_mut("/message/attachments")
        .and_then(|attachments| attachments.as_array_mut())
    else {
        return;
    };
    let base = shared.options.public_url.as_deref().unwrap_or_default();
    for attachment in attachments {
        let Some(id) = attachment
            .get("id")
            .and_then(|id| id.as_str())
            .and_then(|id| AttachmentId::parse(id).ok())
        else {
            continue;
        };
        let links = &shared.attachments;
        let (url, expires) = links.webhook_link(&id, Variant::Original);
        attachment["downloadUrl"] = format!("{base}{url}").into();
        if attachment.get("thumbnail").is_some() {
            let (url, _) = links.webhook_link(&id, Variant::Thumbnail);
            attachment["thumbnailUrl"] = format!("{base}{url}").into();
        }
        attachment["downloadExpiresAt"] = expires.into();
    }
}

fn item<T: Serialize + ?Sized>(
    id: &str,
    kind: &str,
    timestamp: Timestamp,
    data: &T,
) -> crate::error::Result<Box<RawValue>> {
    let item = Item {
        id,
        kind,
        timestamp,
        data,
    };
    serde_json::value::to_raw_value(&item)
        .map_err(|e| crate::error::Error::internal_from("a webhook event does not encode", e))
}

/// POSTs `batch` until the receiver takes it, the endpoint changes, its
/// retries give up or the lease is lost.
async fn send(
    shared: &Shared,
    hook: &mut watch::Receiver<Webhook>,
    current: &Webhook,
    batch: &Batch,
    cursor: i64,
) -> Stop {
    let body = Body {
        webhook_id: &current.id,
        events: &batch.items,
    };
    let body = match serde_json::to_vec(&body) {
        Ok(body) => bytes::Bytes::from(body),
        Err(error) => {
            tracing::error!(%error, "a webhook delivery does not encode");
            return Stop::Again;
        }
    };
    let delivery_id = format!("dlv_{}_{}", batch.first, batch.last);
    let webhook = current.id.clone();
    let mut after_failures = false;
    loop {
        match post(shared, current, &delivery_id, body.clone()).await {
            Ok(()) => {
                ::metrics::counter!(metrics::WEBHOOK_DELIVERIES, "webhook" => webhook.clone(), "outcome" => "delivered")
                    .increment(1);
                ::metrics::counter!(metrics::WEBHOOK_EVENTS_DELIVERED, "webhook" => webhook)
                    .increment(batch.items.len() as u64);
                return Stop::Delivered { after_failures };
            }
            Err(error) => {
                after_failures = true;
                note_lag(shared, &current.id, cursor);
                ::metrics::counter!(metrics::WEBHOOK_DELIVERIES, "webhook" => webhook.clone(), "outcome" => "failed")
                    .increment(1);
                let horizon = shared.options.retry_horizon.as_millis() as i64;
                let failure = match shared
                    .store()
                    .webhook_failed(&current.id, &shared.owner, &error, horizon)
                    .await
                {
                    Ok(Some(failure)) => failure,
                    Ok(None) => return Stop::LeaseLost,
                    Err(store_error) => {
                        tracing::warn!(%webhook, %store_error, "cannot note a failed delivery");
                        tokio::time::sleep(FIRST_RETRY).await;
                        return Stop::Again;
                    }
                };
                let failing_for = Timestamp::now().unix_ms() - failure.failing_since.unix_ms();
                if failing_for >= horizon {
                    tracing::warn!(%webhook, %error, attempts = failure.attempts, "a webhook's retries gave up: it is failing until resumed");
                    // Its row says so at the next lease renewal: now. An
                    // admin's resume before that renewal changes nothing
                    // the watch sees, so read it again after a lease anyway.
                    shared.poke.notify_one();
                    let _ = tokio::time::timeout(shared.options.lease, hook.changed()).await;
                    return Stop::Again;
                }
                tracing::info!(%webhook, %error, attempts = failure.attempts, "a webhook delivery failed; retrying");
                ::metrics::counter!(metrics::WEBHOOK_RETRIES, "webhook" => webhook.clone())
                    .increment(1);
                let delay = backoff(failure.attempts, shared.options.retry_max_interval);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    // A new URL, say: try it now.
                    changed = hook.changed() => {
                        if changed.is_err() {
                            return Stop::LeaseLost;
                        }
                        return Stop::Again;
                    }
                }
            }
        }
    }
}

/// The lag gauge: how many events the log holds past `cursor`.
fn note_lag(shared: &Shared, webhook: &str, cursor: i64) {
    let lag = (shared.hub.relayed_event_id() - cursor).max(0);
    ::metrics::gauge!(metrics::WEBHOOK_LAG, "webhook" => webhook.to_owned()).set(lag as f64);
}

/// One POST; `Err` says why it did not take (never with the URL: it may
/// hold a credential).
async fn post(
    shared: &Shared,
    hook: &Webhook,
    delivery_id: &str,
    body: bytes::Bytes,
) -> Result<(), String> {
    let url = url::Url::parse(&hook.url).map_err(|e| format!("the URL does not parse: {e}"))?;
    // A name is checked as it resolves; an address written out, here.
    if !shared.options.allow_internal
        && let Some(why) = url.host().as_ref().and_then(address::refusal)
    {
        return Err(format!("refused: {why}"));
    }
    let now = Timestamp::now();
    let timestamp = now.unix_ms() / 1000;
    let previous = hook
        .previous_secret
        .as_ref()
        .filter(|(_, until)| *until > now)
        .map(|(secret, _)| secret.as_str());
    let signature = signing::signature_header(
        std::iter::once(hook.secret.as_str()).chain(previous),
        delivery_id,
        timestamp,
        &body,
    );
    let response = shared
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", delivery_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|error| describe(&error.without_url()))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {status}"))
    }
}

/// A failed request's causes, outermost first.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The wait before retry `attempts` + 1: doubling from `FIRST_RETRY` up
/// to `max`, less up to half at random, so that endpoints failing together
/// do not retry together.
fn backoff(attempts: i64, max: Duration) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = FIRST_RETRY.saturating_mul(1 << doublings).min(max);
    let mut random = [0u8; 2];
    let _ = getrandom::fill(&mut random);
    let fraction = f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX);
    full.mul_f64(1.0 - fraction / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_twice_as_long_each_time_up_to_the_maximum_less_some_jitter() {
        let max = Duration::from_secs(600);
        for (attempts, full) in [(1, 1), (2, 2), (3, 4), (10, 512), (11, 600), (1000, 600)] {
            let delay = backoff(attempts, max);
            let full = Duration::from_secs(full);
            assert!(delay <= full && delay >= full / 2, "{attempts}: {delay:?}");
        }
    }
}
