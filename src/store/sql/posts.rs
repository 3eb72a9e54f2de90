//! Posts, written in batches (see `group_commit`): a fixed number of
//! statements whatever the batch's size, the plan of what each post becomes
//! made by `store::posts`.

use super::SqlStore;
use super::dialect::Dialect;
use super::queries::*;
use crate::error::{Error, Result};
use crate::metrics;
use crate::model::{Conversation, ConversationChange, EventData, Message, RoomId, Timestamp};
use crate::store::attachments::{UPLOAD_COLUMNS, UploadRow};
use crate::store::group_commit::{Post, answer_failed_batch};
use crate::store::inbox::ConversationRow;
use crate::store::posts::{Asked, Found, Plan, plan};
use crate::store::{MessageRow, Posted, Upload, Wake};
use sqlx::Pool;
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

impl<D: Dialect> SqlStore<D>
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
    /// Writes a batch of posts (see `group_commit`) and answers each.
    pub(super) async fn write_posts(pool: Pool<D>, wake: Arc<Wake>, posts: Vec<Post>) {
        match Self::post_batch(&pool, &posts).await {
            Ok(outcomes) => {
                wake.poke();
                for (post, outcome) in posts.into_iter().zip(outcomes) {
                    post.answer(outcome);
                }
            }
            Err(error) => {
                answer_failed_batch(posts, error, |post| {
                    let pool = pool.clone();
                    async move {
                        let outcome = Self::post_batch(&pool, std::slice::from_ref(&post))
                            .await
                            .and_then(|mut outcomes| {
                                outcomes
                                    .pop()
                                    .ok_or_else(|| Error::internal("a post got no outcome"))
                            })
                            .and_then(|outcome| outcome);
                        post.answer(outcome);
                    }
                })
                .await;
                wake.poke();
            }
        }
    }

    /// Writes `posts` in one transaction; returns each one's outcome, in
    /// order. A post that may not be made (a room the caller cannot see, a
    /// `clientId` reused) gets its own error without failing the others;
    /// a database error fails the batch.
    ///
    /// A fixed number of statements whatever the batch's size: the rooms
    /// are locked in id order (so concurrent batches cannot deadlock), the
    /// posters' memberships and earlier `clientId`s are read at once, each
    /// post's seq is counted on from its room's, the rows go in with one
    /// statement per table, and the event counter is taken last, once.
    pub(super) async fn post_batch(pool: &Pool<D>, posts: &[Post]) -> Result<Vec<Result<Posted>>> {
        let now = Timestamp::now().unix_ms();
        let mut tx = pool.begin_with(D::BEGIN_WRITE).await?;
        let locked = Self::lock_rooms(&mut tx, posts).await?;
        let found = Found {
            open: locked.open,
            closed: locked.closed,
            members: Self::memberships(&mut tx, posts).await?,
            earlier: Self::messages_by_client_id(&mut tx, posts).await?,
            conversations: locked.conversations,
            uploads: Self::uploads_to_send(&mut tx, posts).await?,
        };
        let asked: Vec<Asked<'_>> = posts
            .iter()
            .map(|post| Asked {
                caller: &post.caller,
                room: &post.room,
                message: &post.message,
            })
            .collect();
        // Deadlock freedom comes from `lock_rooms`' order alone.
        let Plan {
            mut outcomes,
            created,
            conversations,
            reopened,
            first_responses,
        } = plan(&asked, found, now);
        if !created.is_empty() {
            Self::insert_messages(&mut tx, &created, now).await?;
            Self::link_attachments(&mut tx, &created).await?;
            // The messages' events, then the conversations they opened.
            let events = created.len() + reopened.len();
            let last_id: i64 = sqlx::query_scalar(TAKE_EVENT_IDS)
                .bind(events as i64)
                .fetch_one(&mut *tx)
                .await?;
            let first_id = last_id - events as i64 + 1;
            let messages = created.iter().map(|(_, message)| message);
            Self::insert_message_events(
                &mut tx,
                messages,
                |message| EventData::Message { message },
                first_id,
                now,
            )
            .await?;
            // Per room, its newest seq and event (rows this transaction holds).
            let mut rooms: BTreeMap<&RoomId, (i64, i64)> = Default::default();
            for (id, (_, message)) in (first_id..).zip(&created) {
                rooms.insert(&message.room_id, (message.seq, id));
            }
            let reopen_ids = first_id + created.len() as i64..;
            for (id, (room, customer)) in reopen_ids.zip(&reopened) {
                let conversation = conversations
                    .get(room)
                    .ok_or_else(|| Error::internal("a reopened room has no conversation"))?;
                let event = EventData::ConversationUpdated {
                    room_id: room,
                    conversation,
                    change: ConversationChange::Status,
                    changed_by: customer,
                };
                // Each room's `last_event_id` and `activity` stay its
                // message's: customers' listings are made of them.
                Self::insert_logged(&mut tx, id, room, None, &event, now).await?;
            }
            // And their conversations, which the messages moved on.
            let rooms = rooms
                .into_iter()
                .map(|(room, (last_seq, event_id))| {
                    let conversation = conversations.get(room).ok_or_else(|| {
                        Error::internal("a room with a message has no conversation")
                    })?;
                    Ok((room, last_seq, event_id, conversation))
                })
                .collect::<Result<Vec<_>>>()?;
            let time = |at: Option<Timestamp>| at.map(Timestamp::unix_ms);
            sqlx::QueryBuilder::<D>::new(
                "UPDATE rooms SET last_seq = v.column2, updated_at = v.column3,
                     last_event_id = v.column4, activity = v.column4,
                     status = v.column5, snoozed_until = v.column6, resolved_at = v.column7,
                     started_at = v.column8, first_response_at = v.column9,
                     last_customer_message_at = v.column10, waiting_since = v.column11
                 FROM (",
            )
            .push_values(
                rooms,
                |mut row, (room, last_seq, event_id, conversation)| {
                    row.push_bind(room.as_str())
                        .push_bind(last_seq)
                        .push_bind(now)
                        .push_bind(event_id)
                        .push_bind(conversation.status.as_str())
                        .push_bind(time(conversation.snoozed_until))
                        .push_bind(time(conversation.resolved_at))
                        .push_bind(conversation.started_at.unix_ms())
                        .push_bind(time(conversation.first_response_at))
                        .push_bind(time(conversation.last_customer_message_at))
                        .push_bind(time(conversation.waiting_since));
                },
            )
            .push(") AS v WHERE rooms.id = v.column1")
            .build()
            .execute(&mut *tx)
            .await?;
            if let Some(notify) = D::notify_events() {
                sqlx::query(notify).bind(last_id).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        for waited in first_responses {
            metrics::first_response(waited);
        }
        for (index, message) in created {
            outcomes[index] = Some(Ok(Posted::Created(message)));
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or_else(|| Err(Error::internal("a post got no outcome"))))
            .collect())
    }

    /// Locks the rooms `posts` go to, in id order (a deleted room is not
    /// one that exists).
    pub(super) async fn lock_rooms(
        conn: &mut D::Connection,
        posts: &[Post],
    ) -> Result<LockedRooms> {
        let rooms: BTreeSet<&str> = posts.iter().map(|post| post.room.as_str()).collect();
        let mut query = sqlx::QueryBuilder::<D>::new(format!(
            "SELECT r.id, r.last_seq, r.closed_at IS NOT NULL AS closed, {CONVERSATION_COLUMNS}
             FROM rooms r WHERE r.deleted_at IS NULL AND r.id IN ("
        ));
        let mut list = query.separated(", ");
        for room in rooms {
            list.push_bind(room);
        }
        query.push(") ORDER BY id").push(D::LOCK_ROWS);
        let rows: Vec<LockedRow> = query.build_query_as().fetch_all(&mut *conn).await?;
        let mut locked = LockedRooms::default();
        for row in rows {
            locked
                .conversations
                .insert(row.id.clone(), row.conversation.try_into()?);
            if row.closed {
                locked.closed.insert(row.id);
            } else {
                locked.open.insert(row.id, row.last_seq);
            }
        }
        Ok(locked)
    }

    /// Which of the posters who are not admins are members of their post's room.
    pub(super) async fn memberships(
        conn: &mut D::Connection,
        posts: &[Post],
    ) -> Result<HashSet<(String, String)>> {
        let pairs: BTreeSet<(&str, &str)> = posts
            .iter()
            .filter(|post| !post.caller.is_admin())
            .map(|post| (post.room.as_str(), post.caller.id.as_str()))
            .collect();
        if pairs.is_empty() {
            return Ok(Default::default());
        }
        let mut query = sqlx::QueryBuilder::<D>::new(
            "SELECT room_id, user_id FROM room_members WHERE (room_id, user_id) IN (",
        );
        query
            .push_values(pairs, |mut row, (room, user)| {
                row.push_bind(room).push_bind(user);
            })
            .push(")");
        let rows: Vec<(String, String)> = query.build_query_as().fetch_all(&mut *conn).await?;
        Ok(rows.into_iter().collect())
    }

    /// The stored messages whose `clientId` a post of `posts` reuses, by
    /// (room, author, clientId).
    pub(super) async fn messages_by_client_id(
        conn: &mut D::Connection,
        posts: &[Post],
    ) -> Result<HashMap<(String, String, String), Message>> {
        let keys: BTreeSet<(&str, &str, &str)> = posts
            .iter()
            .filter_map(|post| {
                let client_id = post.message.client_id.as_ref()?;
                Some((
                    post.room.as_str(),
                    post.caller.id.as_str(),
                    client_id.as_str(),
                ))
            })
            .collect();
        if keys.is_empty() {
            return Ok(Default::default());
        }
        let mut query = sqlx::QueryBuilder::<D>::new(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE client_id IS NOT NULL AND (room_id, author_id, client_id) IN ("
        ));
        query
            .push_values(keys, |mut row, (room, author, client_id)| {
                row.push_bind(room).push_bind(author).push_bind(client_id);
            })
            .push(")");
        let rows: Vec<MessageRow> = query.build_query_as().fetch_all(&mut *conn).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let key = (
                    row.room_id.clone(),
                    row.author_id.clone(),
                    row.client_id.clone()?,
                );
                Some((key, Message::from(row)))
            })
            .collect())
    }

    /// The uploads `posts` name, by id, locked (after the rooms, whose
    /// locks already keep two posts into one room from racing for one).
    pub(super) async fn uploads_to_send(
        conn: &mut D::Connection,
        posts: &[Post],
    ) -> Result<HashMap<String, Upload>> {
        let ids: BTreeSet<&str> = posts
            .iter()
            .flat_map(|post| &post.message.attachments)
            .map(|id| id.as_str())
            .collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut query = sqlx::QueryBuilder::<D>::new(format!(
            "SELECT {UPLOAD_COLUMNS} FROM attachments WHERE id IN ("
        ));
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        query.push(") ORDER BY id").push(D::LOCK_ROWS);
        let rows: Vec<UploadRow> = query.build_query_as().fetch_all(&mut *conn).await?;
        rows.into_iter()
            .map(|row| {
                let upload = Upload::try_from(row)?;
                Ok((upload.attachment.id.as_str().to_owned(), upload))
            })
            .collect()
    }

    /// The new messages' attachments are theirs now.
    async fn link_attachments(
        conn: &mut D::Connection,
        created: &[(usize, Message)],
    ) -> Result<()> {
        let links: Vec<(&str, &str)> = created
            .iter()
            .flat_map(|(_, message)| {
                message
                    .attachments
                    .iter()
                    .map(|attachment| (attachment.id.as_str(), message.id.as_str()))
            })
            .collect();
        if links.is_empty() {
            return Ok(());
        }
        sqlx::QueryBuilder::<D>::new("UPDATE attachments SET message_id = v.column2 FROM (")
            .push_values(links, |mut row, (attachment, message)| {
                row.push_bind(attachment).push_bind(message);
            })
            .push(") AS v WHERE attachments.id = v.column1")
            .build()
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The batch's messages, and each author's cursor moved to their newest.
    pub(super) async fn insert_messages(
        conn: &mut D::Connection,
        created: &[(usize, Message)],
        now: i64,
    ) -> Result<()> {
        sqlx::QueryBuilder::<D>::new(
            "INSERT INTO messages (room_id, seq, id, author_id, body, client_id, created_at, \
                 attachments) ",
        )
        .push_values(created, |mut row, (_, message)| {
            // Their metadata, as every read of the message will carry it.
            let attachments = (!message.attachments.is_empty())
                .then(|| serde_json::to_string(&message.attachments).ok())
                .flatten();
            row.push_bind(message.room_id.as_str())
                .push_bind(message.seq)
                .push_bind(message.id.as_str())
                .push_bind(message.author_id.as_str())
                .push_bind(message.body.as_str())
                .push_bind(message.client_id.as_deref())
                .push_bind(now)
                .push_bind(attachments);
        })
        .build()
        .execute(&mut *conn)
        .await?;
        // One row per (room, author): an upsert may not touch a row twice.
        let mut cursors: BTreeMap<(&str, &str), i64> = Default::default();
        for (_, message) in created {
            cursors.insert(
                (message.room_id.as_str(), message.author_id.as_str()),
                message.seq,
            );
        }
        sqlx::QueryBuilder::<D>::new("INSERT INTO read_cursors (room_id, user_id, last_read_seq) ")
            .push_values(cursors, |mut row, ((room, author), seq)| {
                row.push_bind(room).push_bind(author).push_bind(seq);
            })
            .push(D::queries().cursors_forward_only.as_str())
            .build()
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// An event of `kind` for each of `messages` (a batch of posts, or of
    /// an erasure), under ids `first_id`, `first_id + 1`, ….
    pub(super) async fn insert_message_events<'a>(
        conn: &mut D::Connection,
        messages: impl Iterator<Item = &'a Message>,
        kind: for<'m> fn(&'m Message) -> EventData<'m>,
        first_id: i64,
        now: i64,
    ) -> Result<()> {
        let events = (first_id..)
            .zip(messages)
            .map(|(id, message)| {
                serde_json::to_string(&kind(message))
                    .map(|json| (id, message.room_id.as_str(), json, message.id.as_str()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::internal_from("could not encode an event", e))?;
        sqlx::QueryBuilder::<D>::new(
            "INSERT INTO events (id, room_id, subject_id, created_at, data, message_id) ",
        )
        .push_values(events, |mut row, (id, room, json, message)| {
            row.push_bind(id)
                .push_bind(room)
                .push_bind(None::<&str>)
                .push_bind(now)
                .push_bind(json)
                .push_bind(message);
        })
        .build()
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// The rooms a batch locked, as it found them.
#[derive(Default)]
pub(super) struct LockedRooms {
    /// Each open room's newest seq.
    open: HashMap<String, i64>,
    closed: HashSet<String>,
    conversations: HashMap<String, Conversation>,
}

/// A room `lock_rooms` read.
#[derive(sqlx::FromRow)]
struct LockedRow {
    id: String,
    last_seq: i64,
    closed: bool,
    #[sqlx(flatten)]
    conversation: ConversationRow,
}
