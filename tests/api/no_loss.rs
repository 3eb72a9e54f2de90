//! Nothing is lost: readers cut off at random moments and resuming by id get
//! every acknowledged message (and conversation change) exactly once, in
//! order, from either instance;
//! an instance whose notification connection dies catches up; a stalled
//! reader neither slows the others nor loses anything.

use crate::support::{
    Backend, EventStream, TestApp, WAIT, admin, on_both_stores, streams_opened_freely,
};
use figment::providers::Serialized;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

on_both_stores!(
    an_event_id_taken_by_an_open_transaction_holds_back_every_later_one,
    readers_cut_off_at_random_get_every_acknowledged_message_exactly_once_in_order,
    a_stalled_reader_neither_delays_live_readers_nor_loses_anything,
    with_edits_and_deletes_among_concurrent_writes_a_resuming_readers_view_equals_the_store,
);

const ROOMS: usize = 5;
const WRITERS: usize = 20;
const MESSAGES_PER_WRITER: usize = 12;
/// Conversation changes among the writes, each two events (status, assignee).
const CONVERSATION_CHANGES: usize = 20;

/// The classic trap: ids taken in one order but committed in another, so a
/// reader sees id 11 before id 10 commits and a resume from 11 loses 10. Here
/// a transaction that has taken an id holds back every other event writer
/// until it ends, so ids become visible strictly in order.
async fn an_event_id_taken_by_an_open_transaction_holds_back_every_later_one(backend: Backend) {
    use sqlx::{Connection, Executor};
    let app = TestApp::spawn(backend.clone()).await;
    let boss = admin("boss");
    let room = app.create_room(&boss, "order", &[]).await;
    let (_, snapshot) = app.get("/api/chat/rooms", &boss).await;
    let before: i64 = snapshot["lastEventId"].as_str().unwrap().parse().unwrap();

    // Someone else's transaction takes the next id and stays open.
    let take = "UPDATE event_counter SET last_id = last_id + 1 RETURNING last_id";
    let taken: i64 = match &backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(app.database_url())
                .await
                .unwrap();
            conn.execute("BEGIN IMMEDIATE").await.unwrap();
            let taken = sqlx::query_scalar(take).fetch_one(&mut conn).await.unwrap();
            hold_then_roll_back(&app, &boss, &room, taken, conn).await;
            taken
        }
        Backend::Postgres(_) => {
            let mut conn = sqlx::PgConnection::connect(app.database_url())
                .await
                .unwrap();
            conn.execute("BEGIN").await.unwrap();
            let taken = sqlx::query_scalar(take).fetch_one(&mut conn).await.unwrap();
            hold_then_roll_back(&app, &boss, &room, taken, conn).await;
            taken
        }
    };
    assert_eq!(taken, before + 1);
}

/// Posts while `conn` holds event id `taken`: the post must wait; once the
/// holder rolls back, the post's event takes that very id.
async fn hold_then_roll_back<C>(app: &TestApp, boss: &str, room: &str, taken: i64, mut conn: C)
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c>,
{
    use sqlx::Executor;
    let mut stream = app
        .stream(&format!("?roomId={room}&lastEventId={}", taken - 1), boss)
        .await;
    let mut post = Box::pin(app.send(boss, room, "waits its turn"));
    let still_waiting =
        tokio::time::timeout(std::time::Duration::from_millis(500), &mut post).await;
    assert!(
        still_waiting.is_err(),
        "a later writer must wait for the open id"
    );
    conn.execute("ROLLBACK").await.unwrap();
    let message = post.await;
    let event = stream.expect("message").await;
    assert_eq!(event.data["message"], message);
    assert_eq!(
        event.id(),
        taken,
        "the released id went to the next writer: no gap"
    );
}

/// A small deterministic generator for "random" cut-off points.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// The instances a chaos test writes and reads on: on PostgreSQL two on
/// the same database, on SQLite its one process; streams open freely and
/// heartbeats come every 100 ms.
async fn writers_and_readers(backend: Backend) -> (TestApp, Option<TestApp>) {
    let relaxed = |figment: figment::Figment| {
        streams_opened_freely(figment).merge(Serialized::default("heartbeat_interval", "100ms"))
    };
    let first = TestApp::spawn_with(backend.clone(), relaxed).await;
    let second = match backend {
        Backend::Postgres(_) => Some(first.sibling_with(relaxed).await),
        Backend::Sqlite => None,
    };
    (first, second)
}

/// What a reader saw: per room, the seqs in arrival order; every message
/// id; every event id; and how many conversation changes.
#[derive(Default, Debug)]
struct Seen {
    seqs: HashMap<String, Vec<i64>>,
    ids: Vec<String>,
    event_ids: Vec<i64>,
    conversation_changes: usize,
}

async fn readers_cut_off_at_random_get_every_acknowledged_message_exactly_once_in_order(
    backend: Backend,
) {
    let (first, second) = writers_and_readers(backend).await;
    let instances: Vec<&TestApp> = std::iter::once(&first).chain(second.as_ref()).collect();
    let boss = admin("boss");
    let mut rooms = Vec::new();
    for i in 0..ROOMS {
        rooms.push(first.create_room(&boss, &format!("room {i}"), &[]).await);
    }
    let (_, snapshot) = first.get("/api/chat/rooms", &boss).await;
    let start = snapshot["lastEventId"].as_str().unwrap().to_owned();

    let writers = join_all((0..WRITERS).map(|writer| {
        let (instances, rooms) = (&instances, &rooms);
        async move {
            let token = admin(&format!("writer-{writer}"));
            let mut acked = Vec::new();
            for n in 0..MESSAGES_PER_WRITER {
                let app = instances[(writer + n) % instances.len()];
                let room = &rooms[(writer + n) % ROOMS];
                let (status, message) = app
                    .post(
                        &format!("/api/chat/rooms/{room}/messages"),
                        &token,
                        json!({"body": format!("{writer}/{n}")}),
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{message}");
                acked.push(message);
            }
            acked
        }
    }));
    // An agent works the conversations meanwhile, on either instance: each
    // change sets a status and an assignee, so it is two events.
    let changer = async {
        for change in 0..CONVERSATION_CHANGES {
            let app = instances[change % instances.len()];
            let room = &rooms[change % ROOMS];
            let body = match (change / ROOMS) % 2 {
                0 => json!({"status": "pending", "assigneeId": "boss"}),
                _ => json!({"status": "open", "assigneeId": null}),
            };
            let path = format!("/api/chat/rooms/{room}/conversation");
            let (status, answer) = app.patch(&path, &boss, body).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
    };
    let global_reader = read_with_cuts(
        &instances,
        "",
        &boss,
        &start,
        (WRITERS * MESSAGES_PER_WRITER, CONVERSATION_CHANGES * 2),
        1,
    );
    let room_messages = (0..WRITERS)
        .flat_map(|w| (0..MESSAGES_PER_WRITER).map(move |n| (w + n) % ROOMS))
        .filter(|room| *room == 0)
        .count();
    let room_query = format!("?roomId={}", rooms[0]);
    // A room's stream carries no conversation change (agents' global ones do).
    let room_reader = read_with_cuts(
        &instances,
        &room_query,
        &boss,
        &start,
        (room_messages, 0),
        2,
    );
    let (acked, (), global, widget) = tokio::join!(writers, changer, global_reader, room_reader);
    let acked: Vec<serde_json::Value> = acked.into_iter().flatten().collect();

    let expected: BTreeSet<String> = acked
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        global.ids.len(),
        expected.len(),
        "no duplicates on the global stream"
    );
    assert_eq!(
        global.ids.iter().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    let expected_in_room: BTreeSet<String> = acked
        .iter()
        .filter(|m| m["roomId"] == rooms[0].as_str())
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        widget.ids.len(),
        expected_in_room.len(),
        "no duplicates in the room"
    );
    assert_eq!(
        widget.ids.iter().cloned().collect::<BTreeSet<_>>(),
        expected_in_room
    );
    assert_eq!(global.conversation_changes, CONVERSATION_CHANGES * 2);
    assert_eq!(widget.conversation_changes, 0);
    for seen in [&global, &widget] {
        for (room, seqs) in &seen.seqs {
            let ascending: Vec<i64> = (1..=seqs.len() as i64).collect();
            assert_eq!(seqs, &ascending, "room {room}: every seq once, in order");
        }
        assert!(
            seen.event_ids.windows(2).all(|pair| pair[0] < pair[1]),
            "every event once, in order: {:?}",
            seen.event_ids
        );
    }
}

/// Writers post, edit and delete at once on every instance while readers,
/// cut off at random and resuming, keep a view of each room by applying the
/// events; once the writers are done and the readers reached the last id,
/// every reader's view is exactly what the store's history answers.
async fn with_edits_and_deletes_among_concurrent_writes_a_resuming_readers_view_equals_the_store(
    backend: Backend,
) {
    let (first, second) = writers_and_readers(backend).await;
    let instances: Vec<&TestApp> = std::iter::once(&first).chain(second.as_ref()).collect();
    let boss = admin("boss");
    let mut rooms = Vec::new();
    for i in 0..ROOMS {
        rooms.push(first.create_room(&boss, &format!("room {i}"), &[]).await);
    }
    let (_, snapshot) = first.get("/api/chat/rooms", &boss).await;
    let start = snapshot["lastEventId"].as_str().unwrap().to_owned();

    let writers = join_all((0..WRITERS).map(|writer| {
        let (instances, rooms) = (&instances, &rooms);
        async move {
            let token = admin(&format!("writer-{writer}"));
            let mut dice = Dice(0x5851_F42D_4C95_7F2D ^ writer as u64);
            let mut mine: Vec<(String, String)> = Vec::new();
            for n in 0..MESSAGES_PER_WRITER {
                let app = instances[(writer + n) % instances.len()];
                let room = &rooms[(writer + n) % ROOMS];
                let (status, message) = app
                    .post(
                        &format!("/api/chat/rooms/{room}/messages"),
                        &token,
                        json!({"body": format!("{writer}/{n}")}),
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{message}");
                mine.push((room.clone(), message["id"].as_str().unwrap().to_owned()));
                // Now and then, change one of this writer's messages.
                let (room, id) = &mine[dice.roll(mine.len() as u64) as usize];
                let path = format!("/api/chat/rooms/{room}/messages/{id}");
                let (status, answer) = match dice.roll(4) {
                    0 => app.delete(&path, &token).await,
                    1 => {
                        let body = json!({"body": format!("{writer}/{n} edited")});
                        app.patch(&path, &token, body).await
                    }
                    _ => continue,
                };
                // An edit of a message deleted before is refused; all else works.
                assert!(
                    status == StatusCode::OK
                        || (status == StatusCode::CONFLICT
                            && answer["error"]["code"] == "message_deleted"),
                    "{status} {answer}"
                );
            }
        }
    }));
    let room_query = format!("?roomId={}", rooms[0]);
    let readers = join_all([("", ROOMS, 1), (room_query.as_str(), 1, 2)].map(
        |(query, rooms, seed)| {
            let (instances, boss, start) = (&instances, &boss, &start);
            async move { view_with_cuts(instances, query, boss, start, rooms, seed).await }
        },
    ));
    // Last, one message that says so in every room.
    let finish = async {
        writers.await;
        for room in &rooms {
            first.send(&boss, room, THE_END).await;
        }
    };
    let ((), views) = tokio::join!(finish, readers);

    for (view, rooms) in views.iter().zip([&rooms[..], &rooms[..1]]) {
        assert_eq!(view.len(), rooms.len(), "a view of every room it reads");
        for room in rooms {
            let (status, page) = first
                .get(&format!("/api/chat/rooms/{room}/messages?limit=200"), &boss)
                .await;
            assert_eq!(status, StatusCode::OK);
            let stored: Vec<serde_json::Value> = page["messages"].as_array().unwrap().clone();
            let seen: Vec<serde_json::Value> = view[room].values().cloned().collect();
            assert_eq!(seen, stored, "room {room}");
        }
    }
}

/// Per room, by seq, each message as the events left it.
type View = HashMap<String, std::collections::BTreeMap<i64, serde_json::Value>>;

/// The body of the message posted last in every room, once the writers are done.
const THE_END: &str = "the end";

/// Applies a stream's message events to a view, cutting the connection after
/// a random number of events and resuming from the last id, until the last
/// message of each of its `rooms` rooms came.
async fn view_with_cuts(
    instances: &[&TestApp],
    query: &str,
    token: &str,
    start: &str,
    rooms: usize,
    seed: u64,
) -> View {
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ seed);
    let mut view = View::new();
    let mut ended = 0;
    let mut last_id = start.to_owned();
    let deadline = Instant::now() + WAIT * 4;
    for connection in 0.. {
        if ended == rooms {
            break;
        }
        assert!(Instant::now() < deadline, "not caught up by the deadline");
        let app = instances[connection % instances.len()];
        let mut stream = app.stream_from(query, token, Some(&last_id)).await;
        for _ in 0..1 + dice.roll(25) {
            if ended == rooms {
                break;
            }
            let Some(event) = stream.next().await else {
                break;
            };
            last_id = event.id.clone();
            if event.data["message"]["body"] == THE_END {
                ended += 1;
            }
            let message = &event.data["message"];
            match event.kind() {
                "message" | "message_edited" | "message_deleted" => {
                    let room = message["roomId"].as_str().unwrap().to_owned();
                    let seq = message["seq"].as_i64().unwrap();
                    let known = view.entry(room).or_default();
                    if event.kind() == "message" {
                        assert!(!known.contains_key(&seq), "seq {seq} twice");
                    }
                    known.insert(seq, message.clone());
                }
                _ => {}
            }
        }
    }
    view
}

/// Reads a stream until `expected` messages and conversation changes
/// arrived, cutting the connection after a random number of events and
/// resuming with the last id, by header or by query parameter, on
/// alternating instances.
async fn read_with_cuts(
    instances: &[&TestApp],
    query: &str,
    token: &str,
    start: &str,
    (expected, expected_changes): (usize, usize),
    seed: u64,
) -> Seen {
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ seed);
    let mut seen = Seen::default();
    let mut last_id = start.to_owned();
    let deadline = Instant::now() + WAIT * 4;
    let mut connection = 0;
    let done =
        |seen: &Seen| seen.ids.len() >= expected && seen.conversation_changes >= expected_changes;
    while !done(&seen) {
        assert!(
            Instant::now() < deadline,
            "got {} of {expected} messages, {} of {expected_changes} changes",
            seen.ids.len(),
            seen.conversation_changes
        );
        let app = instances[connection % instances.len()];
        let mut stream = if connection % 2 == 0 {
            app.stream_from(query, token, Some(&last_id)).await
        } else {
            let join = if query.is_empty() { "?" } else { "&" };
            app.stream(&format!("{query}{join}lastEventId={last_id}"), token)
                .await
        };
        connection += 1;
        let cut_after = 1 + dice.roll(25);
        let mut read = 0;
        while read < cut_after && !done(&seen) {
            let Some(event) = stream.next().await else {
                break;
            };
            last_id = event.id.clone();
            seen.event_ids.push(event.id());
            if event.kind() == "conversation_updated" {
                seen.conversation_changes += 1;
            }
            if event.kind() == "message" {
                let message = &event.data["message"];
                let room = message["roomId"].as_str().unwrap().to_owned();
                seen.seqs
                    .entry(room)
                    .or_default()
                    .push(message["seq"].as_i64().unwrap());
                seen.ids.push(message["id"].as_str().unwrap().to_owned());
            }
            read += 1;
        }
        drop(stream);
    }
    seen
}

async fn a_stalled_reader_neither_delays_live_readers_nor_loses_anything(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| {
        streams_opened_freely(figment)
            .merge(Serialized::default("stream_buffer_events", 16))
            .merge(Serialized::default("stream_max_per_user", 1000))
    })
    .await;
    let boss = admin("boss");
    let chat = app.create_room(&boss, "chat", &[]).await;
    let bulk = app.create_room(&boss, "bulk", &[]).await;

    // The stalled reader watches everything and never reads.
    let stalled = app
        .http
        .get(app.url("/api/chat/sse"))
        .bearer_auth(&boss)
        .send()
        .await
        .unwrap();
    let query = format!("?roomId={chat}");
    let mut live: Vec<EventStream> = join_all((0..100).map(|_| app.stream(&query, &boss))).await;
    let catch_ups_before = app.state.hub.stats().catch_ups;

    // Enough bulk to fill the stalled connection's socket buffers many times
    // over, interleaved with chat that the live readers must all receive.
    let big = "x".repeat(4000);
    let mut chat_messages = Vec::new();
    for round in 0..40 {
        for _ in 0..50 {
            app.send(&boss, &bulk, &big).await;
        }
        chat_messages.push(app.send(&boss, &chat, &format!("chat {round}")).await);
    }
    join_all(live.iter_mut().map(|stream| {
        let chat_messages = &chat_messages;
        async move {
            for expected in chat_messages {
                let event = stream.expect("message").await;
                assert_eq!(&event.data["message"], expected);
            }
        }
    }))
    .await;
    drop(live);

    // Reading again, it gets everything, in order.
    let mut stalled = EventStream::new(stalled);
    let mut bulk_seqs = Vec::new();
    let mut chat_seen = Vec::new();
    while chat_seen.len() < chat_messages.len() {
        let event = stalled.expect("message").await;
        let message = event.data["message"].clone();
        if message["roomId"] == bulk.as_str() {
            bulk_seqs.push(message["seq"].as_i64().unwrap());
        } else {
            chat_seen.push(message);
        }
    }
    assert_eq!(chat_seen, chat_messages);
    assert_eq!(bulk_seqs, (1..=2000).collect::<Vec<i64>>());
    // While stalled it was not even polled (nothing queued for it); woken,
    // it found it had fallen behind the broadcast and read the log instead.
    assert!(app.state.hub.stats().catch_ups > catch_ups_before);
}

/// PostgreSQL only: an instance whose LISTEN connection is killed reconnects
/// and catches up from the log, so its streams lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_listen_connection_is_killed_loses_nothing() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let writer = TestApp::spawn(backend).await;
    // Only notifications wake this instance's relay: no polling to hide a loss.
    let reader = writer
        .sibling_with(|figment| figment.merge(Serialized::default("relay_poll_interval", "1h")))
        .await;
    let boss = admin("boss");
    let room = writer.create_room(&boss, "across", &[]).await;
    let mut stream = reader.stream(&format!("?roomId={room}"), &boss).await;
    writer.send(&boss, &room, "before").await;
    assert_eq!(
        stream.expect("message").await.data["message"]["body"],
        "before"
    );

    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&writer.pg_pool().await)
    .await
    .unwrap();
    assert_eq!(
        killed,
        vec![true, true],
        "both instances' listeners were killed"
    );
    for n in 0..10 {
        writer.send(&boss, &room, &format!("during {n}")).await;
    }
    for n in 0..10 {
        let event = stream.expect("message").await;
        assert_eq!(event.data["message"]["body"], format!("during {n}"));
    }
}
