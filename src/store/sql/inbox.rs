//! `InboxStore` on either database: conversations, changed by agents, by
//! the snooze schedule and by auto-assignment; the agents learned; the
//! inbox's counts.

use super::SqlStore;
use super::dialect::{Dialect, RowsAffected};
use super::queries::{
    AGENTS, ANY_SNOOZE_DUE, IS_AGENT, LEARN_AGENT, NOTE_ASSIGNED, TAKE_EVENT_IDS, UNRESOLVED_COUNTS,
};
use crate::error::{Error, Result};
use crate::metrics;
use crate::model::{
    Caller, Conversation, ConversationChange, ConversationStatus, EventData, InboxSummary,
    InboxTab, Room, RoomId, Timestamp, UserId,
};
use crate::store::assign::{self, AgentLoad};
use crate::store::inbox::ConversationRow;
use crate::store::{AUTO_ASSIGN, Agent, ConversationChanges, InboxStore, SNOOZE};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};
use std::collections::{BTreeSet, HashMap};

/// A room's conversation, with the room's id: what the snooze schedule
/// and auto-assignment lock and read.
#[derive(sqlx::FromRow)]
struct RoomConversation {
    id: String,
    #[sqlx(flatten)]
    conversation: ConversationRow,
}

#[async_trait::async_trait]
impl<D: Dialect> InboxStore for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    usize: ColumnIndex<D::Row>,
    for<'n> &'n str: ColumnIndex<D::Row>,
    for<'q> &'q str: Encode<'q, D> + Type<D>,
    for<'q> Option<&'q str>: Encode<'q, D>,
    for<'r> String: Encode<'r, D> + Decode<'r, D> + Type<D>,
    for<'r> Option<String>: Encode<'r, D>,
    for<'r> i64: Encode<'r, D> + Decode<'r, D> + Type<D>,
    for<'r> Option<i64>: Encode<'r, D>,
    for<'r> bool: Encode<'r, D> + Decode<'r, D> + Type<D>,
    for<'r> Option<bool>: Encode<'r, D>,
{
    async fn change_conversation(
        &self,
        caller: &Caller,
        room: &RoomId,
        changes: &ConversationChanges,
    ) -> Result<Room> {
        let now = Timestamp::now();
        let mut tx = self.begin_write().await?;
        Self::state_of_room(&mut tx, caller, room.as_str(), true).await?;
        if !caller.is_admin() {
            return Err(Error::forbidden(
                "forbidden",
                "only agents (admins) may change a conversation",
            ));
        }
        let mut conversation = Self::conversation_of(&mut tx, room).await?;
        let mut changed = Vec::new();
        let mut resolved_after_ms = None;
        if let Some((status, snoozed_until)) = changes.status
            && let Some(set) = conversation.set_status(status, snoozed_until, now)
        {
            changed.push(ConversationChange::Status);
            resolved_after_ms = set.resolved_after_ms;
        }
        if let Some(assignee) = &changes.assignee
            && conversation.assignee_id != *assignee
        {
            if let Some(agent) = assignee {
                let known: bool = sqlx::query_scalar(IS_AGENT)
                    .bind(agent.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                if !known {
                    return Err(Error::unprocessable(
                        "not_an_agent",
                        "a conversation is assigned to an agent: a user who has signed in \
                         with the admin role",
                    ));
                }
            }
            conversation.assign(assignee.clone(), now);
            changed.push(ConversationChange::Assignee);
        }
        if changed.is_empty() {
            let view = Self::visible_room(&mut tx, caller, room.as_str()).await?;
            tx.rollback().await?;
            return Ok(view);
        }
        Self::write_conversation(&mut tx, room, &conversation).await?;
        for change in changed {
            let event = EventData::ConversationUpdated {
                room_id: room,
                conversation: &conversation,
                change,
                changed_by: &caller.id,
            };
            Self::log_for_agents(&mut tx, room, &event, now.unix_ms()).await?;
        }
        let view = Self::visible_room(&mut tx, caller, room.as_str()).await?;
        self.commit(tx).await?;
        if let Some(ms) = resolved_after_ms {
            metrics::conversation_resolved(ms);
        }
        Ok(view)
    }

    async fn wake_snoozed(&self, now: Timestamp, batch: u32) -> Result<u64> {
        // A read first: with nothing due (the usual case), the look every
        // second never takes SQLite's one write lock.
        let any_due: bool = sqlx::query_scalar(ANY_SNOOZE_DUE)
            .bind(now.unix_ms())
            .fetch_one(&self.pool)
            .await?;
        if !any_due {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        // Locked in id order, as every write locks rooms. Of two instances
        // at once, the second waits for the first's rows, then finds them
        // no longer due (PostgreSQL reads a row it waited for again).
        let due: Vec<RoomConversation> = sqlx::query_as(D::queries().snoozed_due.as_str())
            .bind(now.unix_ms())
            .bind(i64::from(batch.max(1)))
            .fetch_all(&mut *tx)
            .await?;
        if due.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let schedule = UserId::from_store(SNOOZE.to_owned());
        let opened = due.len() as u64;
        for row in due {
            let room = RoomId::from_store(row.id);
            let mut conversation = Conversation::try_from(row.conversation)?;
            conversation.set_status(ConversationStatus::Open, None, now);
            Self::write_conversation(&mut tx, &room, &conversation).await?;
            let event = EventData::ConversationUpdated {
                room_id: &room,
                conversation: &conversation,
                change: ConversationChange::Status,
                changed_by: &schedule,
            };
            Self::log_for_agents(&mut tx, &room, &event, now.unix_ms()).await?;
        }
        self.commit(tx).await?;
        Ok(opened)
    }

    async fn assignments_due(&self, reassign_before: Option<Timestamp>) -> Result<bool> {
        let queries = D::queries();
        let unassigned: bool = sqlx::query_scalar(queries.unassigned_due.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(match (unassigned, reassign_before) {
            (true, _) => true,
            (false, None) => false,
            (false, Some(before)) => {
                sqlx::query_scalar(queries.reassignment_due.as_str())
                    .bind(before.unix_ms())
                    .fetch_one(&self.pool)
                    .await?
            }
        })
    }

    async fn auto_assign(
        &self,
        online: &[UserId],
        cap: u32,
        reassign_before: Option<Timestamp>,
        batch: u32,
    ) -> Result<u64> {
        let now = Timestamp::now();
        let queries = D::queries();
        let json = |ids: &[&str]| {
            serde_json::to_string(ids)
                .map_err(|e| Error::internal_from("could not encode a list of ids", e))
        };
        let online: Vec<&str> = online.iter().map(UserId::as_str).collect();
        let mut tx = self.begin_write().await?;
        // The agents first: every pass that could give one of them a
        // conversation waits here for the one before it.
        let agents: Vec<(String, Option<i64>)> = sqlx::query_as(queries.lock_agents.as_str())
            .bind(json(&online)?)
            .fetch_all(&mut *tx)
            .await?;
        let ids: Vec<&str> = agents.iter().map(|(id, _)| id.as_str()).collect();
        let open: HashMap<String, i64> = sqlx::query_as(queries.open_by_assignee.as_str())
            .bind(json(&ids)?)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
        let mut loads: Vec<AgentLoad> = agents
            .iter()
            .map(|(id, last_assigned_at)| AgentLoad {
                id: UserId::from_store(id.clone()),
                open: open.get(id).copied().unwrap_or(0),
                last_assigned_at: *last_assigned_at,
            })
            .collect();
        // Only as many of the queue as there are free places: with every
        // agent at the cap (or none online), no room is locked.
        let free: i64 = loads
            .iter()
            .map(|load| (i64::from(cap) - load.open).max(0))
            .sum();
        let batch = i64::from(batch.max(1));
        let mut head: Vec<String> = Vec::new();
        if free > 0 {
            head = sqlx::query_scalar(queries.unassigned_head.as_str())
                .bind(free.min(batch))
                .fetch_all(&mut *tx)
                .await?;
        }
        if let Some(before) = reassign_before {
            let kept: Vec<String> = sqlx::query_scalar(queries.kept_waiting_head.as_str())
                .bind(before.unix_ms())
                .bind(batch)
                .fetch_all(&mut *tx)
                .await?;
            head.extend(kept);
        }
        if head.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let head: Vec<&str> = head.iter().map(String::as_str).collect();
        let locked: Vec<RoomConversation> = sqlx::query_as(queries.lock_conversations.as_str())
            .bind(json(&head)?)
            .fetch_all(&mut *tx)
            .await?;
        let mut rooms = locked
            .into_iter()
            .map(|row| Ok((RoomId::from_store(row.id), row.conversation.try_into()?)))
            .collect::<Result<Vec<(RoomId, Conversation)>>>()?;
        rooms.sort_by(|(a, x), (b, y)| (x.waiting_since, a).cmp(&(y.waiting_since, b)));
        let changed = assign::plan(rooms, &mut loads, i64::from(cap), reassign_before, now);
        if changed.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        for (room, conversation) in &changed {
            Self::write_conversation(&mut tx, room, conversation).await?;
        }
        let given: BTreeSet<&UserId> = changed
            .iter()
            .filter_map(|(_, conversation)| conversation.assignee_id.as_ref())
            .collect();
        for agent in given {
            sqlx::query(NOTE_ASSIGNED)
                .bind(agent.as_str())
                .bind(now.unix_ms())
                .execute(&mut *tx)
                .await?;
        }
        // The events last, at once: the counter is every transaction's
        // last lock, held for three statements.
        let by = UserId::from_store(AUTO_ASSIGN.to_owned());
        let events = changed
            .iter()
            .map(|(room, conversation)| {
                let event = EventData::ConversationUpdated {
                    room_id: room,
                    conversation,
                    change: ConversationChange::Assignee,
                    changed_by: &by,
                };
                serde_json::to_string(&event).map(|json| (room.as_str(), json))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::internal_from("could not encode an event", e))?;
        let last_id: i64 = sqlx::query_scalar(TAKE_EVENT_IDS)
            .bind(events.len() as i64)
            .fetch_one(&mut *tx)
            .await?;
        let first_id = last_id - events.len() as i64 + 1;
        sqlx::QueryBuilder::<D>::new("INSERT INTO events (id, room_id, created_at, data) ")
            .push_values((first_id..).zip(events), |mut row, (id, (room, json))| {
                row.push_bind(id)
                    .push_bind(room)
                    .push_bind(now.unix_ms())
                    .push_bind(json);
            })
            .build()
            .execute(&mut *tx)
            .await?;
        if let Some(notify) = D::notify_events() {
            sqlx::query(notify).bind(last_id).execute(&mut *tx).await?;
        }
        self.commit(tx).await?;
        Ok(changed.len() as u64)
    }

    async fn learn_agent(&self, agent: &UserId, name: Option<&str>) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(LEARN_AGENT)
            .bind(agent.as_str())
            .bind(name)
            .bind(Timestamp::now().unix_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn forget_agent(&self, agent: &UserId) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let forgotten = sqlx::query("DELETE FROM agents WHERE user_id = $1")
            .bind(agent.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(forgotten > 0)
    }

    async fn agents(&self) -> Result<Vec<Agent>> {
        let rows: Vec<(String, Option<String>, i64)> =
            sqlx::query_as(AGENTS).fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, open_conversations)| Agent {
                id: UserId::from_store(id),
                name,
                open_conversations,
            })
            .collect())
    }

    async fn inbox_summary(&self, agent: &Caller) -> Result<InboxSummary> {
        let (all, all_unread, mine, mine_unread, nobody, nobody_unread): (
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = sqlx::query_as(D::queries().inbox_summary.as_str())
            .bind(agent.id.as_str())
            .fetch_one(&self.pool)
            .await?;
        let tab = |open, unread| InboxTab { open, unread };
        Ok(InboxSummary {
            mine: tab(mine, mine_unread),
            unassigned: tab(nobody, nobody_unread),
            all: tab(all, all_unread),
        })
    }

    async fn unresolved_counts(&self) -> Result<Vec<(ConversationStatus, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(UNRESOLVED_COUNTS)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(status, count)| Some((ConversationStatus::parse(&status)?, count)))
            .collect())
    }
}
