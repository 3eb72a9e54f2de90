//! The unseen notice: once a message has been in its room for
//! `unseen_delay`, each member but its author who has neither read past it
//! nor been online since it came (holding a stream or a poll, here or on
//! another instance) gets one `message.unseen` notice, the trigger for an
//! email or a push notification.
//!
//! A sweep reads the log's messages in id order from where the last sweep
//! stopped, and writes its notices and its new position in one
//! transaction that moves the position by compare-and-set: of two
//! instances sweeping the same events, one writes and the other's notices
//! are dropped, so no notice is raised twice, nor skipped by a crash.

use super::Shared;
use super::endpoints::UNSEEN;
use crate::error::Result;
use crate::metrics;
use crate::model::{MessageId, RoomId, Timestamp, UserId};
use crate::store::{LoggedEvent, NewNotice};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Events one sweep transaction covers.
const SWEEP_BATCH: u32 = 500;
/// How long before the sweep's next message a user's time offline is kept
/// (see `purge_offline`): ample for the instances' clocks to disagree.
const OFFLINE_KEPT: Duration = Duration::from_secs(3600);

/// Sweeps every quarter of the delay (1 to 15 s), for as long as the
/// webhooks run; and deletes the notices past the event retention, and the
/// times users went offline that no notice can need any more.
pub(super) async fn sweep_forever(shared: Arc<Shared>) {
    let every =
        (shared.options.unseen_delay / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let sweeping = match sweep(&shared).await {
            Ok(sweeping) => sweeping,
            Err(error) => {
                tracing::warn!(%error, "cannot sweep for unseen messages; retrying");
                true
            }
        };
        if let Err(error) = shared.store().purge_offline(OFFLINE_KEPT, sweeping).await {
            tracing::warn!(%error, "cannot forget old offline times; retrying");
        }
        let cutoff = Timestamp::from_unix_ms(
            Timestamp::now().unix_ms() - shared.options.notice_retention.as_millis() as i64,
        );
        if let Err(error) = shared.store().purge_notices(cutoff).await {
            tracing::warn!(%error, "cannot purge old unseen notices; retrying");
        }
    }
}

/// Sweeps every message old enough, a batch to a transaction; whether any
/// endpoint asks for notices (else the sweep stands still).
async fn sweep(shared: &Shared) -> Result<bool> {
    // Nobody asks: the sweep stands still, reading nothing. A webhook that
    // asks again moves it to the newest event (`start_unseen_sweep`), so
    // it gets no notices of the past.
    let wanted = shared
        .store()
        .webhooks()
        .await?
        .iter()
        .any(|hook| hook.event_types.iter().any(|kind| kind == UNSEEN));
    if !wanted {
        return Ok(false);
    }
    loop {
        let from = shared.store().unseen_swept().await?;
        let events = shared
            .store()
            .events_for_delivery(from, SWEEP_BATCH)
            .await?;
        let cutoff = Timestamp::now().unix_ms() - shared.options.unseen_delay.as_millis() as i64;
        // In id order up to the first that is too young: the position
        // never passes a message not yet looked at.
        let due: Vec<&LoggedEvent> = events
            .iter()
            .take_while(|event| event.created_at <= cutoff)
            .collect();
        let Some(last) = due.last() else {
            return Ok(true);
        };
        let notices = unseen(shared, &due).await?;
        let raised = notices.len();
        if !shared.store().raise_unseen(from, last.id, &notices).await? {
            // Another instance swept these first.
            return Ok(true);
        }
        ::metrics::counter!(metrics::UNSEEN_RAISED).increment(raised as u64);
        if due.len() < events.len() || events.len() < SWEEP_BATCH as usize {
            return Ok(true);
        }
    }
}

/// The `message` part of a `message` event.
#[derive(Deserialize)]
struct Posted {
    message: PostedMessage,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostedMessage {
    id: String,
    seq: i64,
    author_id: String,
    #[serde(default)]
    deleted_at: Option<serde::de::IgnoredAny>,
}

/// The notices `events` call for now.
async fn unseen(shared: &Shared, events: &[&LoggedEvent]) -> Result<Vec<NewNotice>> {
    let posted: Vec<(&LoggedEvent, PostedMessage)> = events
        .iter()
        .filter(|event| event.data.starts_with(r#"{"type":"message","#))
        .filter_map(|event| {
            let Posted { message } = serde_json::from_str(&event.data).ok()?;
            // Deleted since: nothing to notice.
            message.deleted_at.is_none().then_some((*event, message))
        })
        .collect();
    if posted.is_empty() {
        return Ok(Vec::new());
    }
    let rooms: Vec<String> = posted
        .iter()
        .map(|(event, _)| event.room_id.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut readers: HashMap<String, Vec<crate::store::Reader>> = HashMap::new();
    for reader in shared.store().readers(&rooms).await? {
        readers
            .entry(reader.room_id.clone())
            .or_default()
            .push(reader);
    }
    // Members who had the message to read: not its author, in the room
    // when it came, their cursor still before it.
    let mut candidates: Vec<(&LoggedEvent, &PostedMessage, UserId)> = Vec::new();
    for (event, message) in &posted {
        for reader in readers.get(&event.room_id).into_iter().flatten() {
            if reader.user_id != message.author_id
                && reader.joined_at <= event.created_at
                && reader.last_read_seq < message.seq
            {
                candidates.push((event, message, UserId::from_store(reader.user_id.clone())));
            }
        }
    }
    let users: Vec<UserId> = candidates
        .iter()
        .map(|(_, _, user)| user.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let hub = &shared.hub;
    let online: HashSet<UserId> = hub
        .presence()
        .look_up(hub, &users)
        .await?
        .into_iter()
        .filter(|seen| seen.online)
        .map(|seen| seen.user)
        .collect();
    let offline_at: HashMap<UserId, Timestamp> = shared
        .store()
        .offline_at(&users)
        .await?
        .into_iter()
        .collect();
    Ok(candidates
        .into_iter()
        .filter(|(event, _, user)| {
            !online.contains(user)
                && offline_at
                    .get(user)
                    .is_none_or(|at| at.unix_ms() < event.created_at)
        })
        .map(|(event, message, user)| NewNotice {
            room_id: RoomId::from_store(event.room_id.clone()),
            message_id: MessageId::from_store(message.id.clone()),
            user_id: user,
        })
        .collect())
}
