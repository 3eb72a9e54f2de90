//! A store that times every operation for the metrics, as its callers wait
//! for it (a post includes its wait for the batch's commit).

use super::{
    EventBounds, EventScope, MemberRules, MessagePage, MessageRange, NewMessage, PoolStats, Posted,
    RoomCursor, RoomFilter, RoomPage, RoomState, Store, StoredEvent,
};
use crate::error::{Error, Result};
use crate::metrics::STORE_DURATION;
use crate::model::{
    Caller, DeletedRoom, Message, MessageBody, MessageId, ReadState, Room, RoomId, RoomName,
    Timestamp, UserId,
};
use async_trait::async_trait;
use std::sync::Arc;
use tokio::time::Instant;

pub struct Measured(pub Arc<dyn Store>);

async fn timed<T>(operation: &'static str, work: impl Future<Output = Result<T>>) -> Result<T> {
    let started = Instant::now();
    let result = work.await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(Error::Unavailable(_) | Error::Internal { .. }) => "error",
        // A refusal the caller earned: not found, forbidden, conflict.
        Err(_) => "refused",
    };
    ::metrics::histogram!(STORE_DURATION, "operation" => operation, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    result
}

#[async_trait]
impl Store for Measured {
    async fn ping(&self) -> Result<()> {
        timed("ping", self.0.ping()).await
    }

    async fn create_room(
        &self,
        caller: &Caller,
        name: &RoomName,
        members: &[UserId],
    ) -> Result<Room> {
        timed("create_room", self.0.create_room(caller, name, members)).await
    }

    async fn room(&self, caller: &Caller, room: &RoomId) -> Result<Room> {
        timed("room", self.0.room(caller, room)).await
    }

    async fn may_see_room(&self, caller: &Caller, room: &RoomId) -> Result<bool> {
        timed("may_see_room", self.0.may_see_room(caller, room)).await
    }

    async fn room_state(&self, caller: &Caller, room: &RoomId) -> Result<RoomState> {
        timed("room_state", self.0.room_state(caller, room)).await
    }

    async fn rooms(
        &self,
        caller: &Caller,
        filter: &RoomFilter,
        limit: u32,
        after: Option<&RoomCursor>,
    ) -> Result<RoomPage> {
        timed("rooms", self.0.rooms(caller, filter, limit, after)).await
    }

    async fn rooms_version(&self, caller: &Caller) -> Result<String> {
        timed("rooms_version", self.0.rooms_version(caller)).await
    }

    async fn add_member(
        &self,
        caller: &Caller,
        room: &RoomId,
        user: &UserId,
        rules: &MemberRules,
    ) -> Result<Room> {
        timed("add_member", self.0.add_member(caller, room, user, rules)).await
    }

    async fn set_closed(&self, caller: &Caller, room: &RoomId, closed: bool) -> Result<Room> {
        timed("set_closed", self.0.set_closed(caller, room, closed)).await
    }

    async fn delete_room(&self, caller: &Caller, room: &RoomId, batch: u32) -> Result<DeletedRoom> {
        timed("delete_room", self.0.delete_room(caller, room, batch)).await
    }

    async fn remove_member(&self, caller: &Caller, room: &RoomId, user: &UserId) -> Result<Room> {
        timed("remove_member", self.0.remove_member(caller, room, user)).await
    }

    async fn messages(
        &self,
        caller: &Caller,
        room: &RoomId,
        range: MessageRange,
        limit: u32,
    ) -> Result<MessagePage> {
        timed("messages", self.0.messages(caller, room, range, limit)).await
    }

    async fn post_message(
        &self,
        caller: &Caller,
        room: &RoomId,
        message: &NewMessage,
    ) -> Result<Posted> {
        timed("post_message", self.0.post_message(caller, room, message)).await
    }

    async fn edit_message(
        &self,
        caller: &Caller,
        room: &RoomId,
        message: &MessageId,
        body: &MessageBody,
        edit_window: std::time::Duration,
    ) -> Result<Message> {
        timed(
            "edit_message",
            self.0
                .edit_message(caller, room, message, body, edit_window),
        )
        .await
    }

    async fn delete_message(
        &self,
        caller: &Caller,
        room: &RoomId,
        message: &MessageId,
    ) -> Result<Message> {
        timed(
            "delete_message",
            self.0.delete_message(caller, room, message),
        )
        .await
    }

    async fn erase_messages_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64> {
        timed(
            "erase_messages_before",
            self.0.erase_messages_before(cutoff, batch),
        )
        .await
    }

    async fn mark_read(&self, caller: &Caller, room: &RoomId, seq: i64) -> Result<ReadState> {
        timed("mark_read", self.0.mark_read(caller, room, seq)).await
    }

    async fn events_after(
        &self,
        after: i64,
        scope: &EventScope,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        timed("events_after", self.0.events_after(after, scope, limit)).await
    }

    async fn relay_events_after(&self, after: i64, limit: u32) -> Result<Vec<StoredEvent>> {
        timed(
            "relay_events_after",
            self.0.relay_events_after(after, limit),
        )
        .await
    }

    async fn message_events(&self, messages: &[MessageId]) -> Result<Vec<StoredEvent>> {
        timed("message_events", self.0.message_events(messages)).await
    }

    async fn event_bounds(&self) -> Result<EventBounds> {
        timed("event_bounds", self.0.event_bounds()).await
    }

    async fn rooms_of(&self, users: &[UserId]) -> Result<Vec<(UserId, RoomId)>> {
        timed("rooms_of", self.0.rooms_of(users)).await
    }

    async fn room_mates(&self, user: &UserId, users: &[UserId]) -> Result<Vec<UserId>> {
        timed("room_mates", self.0.room_mates(user, users)).await
    }

    async fn member_rooms_at(&self, user: &UserId, event: i64) -> Result<Vec<RoomId>> {
        timed("member_rooms_at", self.0.member_rooms_at(user, event)).await
    }

    async fn purge_events(&self, cutoff: Timestamp, batch: u32) -> Result<u64> {
        timed("purge_events", self.0.purge_events(cutoff, batch)).await
    }

    fn purged_up_to(&self) -> i64 {
        self.0.purged_up_to()
    }

    async fn watch_other_writers(
        &self,
        wake: Arc<super::Wake>,
        signals: tokio::sync::mpsc::Sender<String>,
    ) {
        self.0.watch_other_writers(wake, signals).await
    }

    async fn send_signals(&self, signals: &[String]) -> Result<()> {
        timed("send_signals", self.0.send_signals(signals)).await
    }

    fn pool_stats(&self) -> PoolStats {
        self.0.pool_stats()
    }

    fn webhooks(&self) -> &dyn super::WebhookStore {
        self.0.webhooks()
    }

    fn erasures(&self) -> &dyn super::ErasureStore {
        self.0.erasures()
    }

    fn inbox(&self) -> &dyn super::InboxStore {
        self.0.inbox()
    }

    fn attachments(&self) -> &dyn super::AttachmentStore {
        self.0.attachments()
    }

    fn search(&self) -> &dyn super::SearchStore {
        self.0.search()
    }
}
