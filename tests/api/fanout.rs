//! Fan-out that costs what it delivers: an event is handed only to the
//! streams it concerns, and streams that resume or fall behind catch up from
//! the shared window of recent events, not each from the store.

use crate::support::{Backend, TestApp, admin, on_both_stores, streams_opened_freely, user};
use figment::providers::Serialized;
use futures::future::join_all;
use serde_json::Value;
use std::time::Duration;

on_both_stores!(
    an_event_is_handed_only_to_the_streams_it_concerns,
    membership_changes_move_a_members_routes_in_log_order,
    streams_resuming_on_a_new_instance_catch_up_from_its_window_not_the_store,
    a_stream_resuming_from_before_the_window_reads_the_store_and_loses_nothing,
);

async fn an_event_is_handed_only_to_the_streams_it_concerns(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (boss, ann, bob) = (admin("boss"), user("ann"), user("bob"));
    let target = app.create_room(&ann, "target", &["bob"]).await;
    let elsewhere = app.create_room(&ann, "elsewhere", &[]).await;
    let mut others = Vec::new();
    for i in 0..20 {
        let someone = user(&format!("someone-{i}"));
        let room = app.create_room(&someone, "another", &[]).await;
        others.push(app.stream(&format!("?roomId={room}"), &someone).await);
    }
    let mut room_stream = app.stream(&format!("?roomId={target}"), &bob).await;
    let mut admin_stream = app.stream("", &boss).await;
    let mut member_stream = app.stream("", &bob).await;
    // Carl is in no room: his global stream concerns nothing posted here.
    let _carl = app.stream("", &user("carl")).await;

    // Once the admin has this, everything before it is published.
    app.send(&ann, &elsewhere, "settle").await;
    admin_stream.expect("message").await;
    let before = app.state.hub.stats().deliveries;

    let message = app.send(&ann, &target, "for three streams").await;
    for stream in [&mut room_stream, &mut admin_stream, &mut member_stream] {
        assert_eq!(stream.expect("message").await.data["message"], message);
    }
    assert_eq!(
        app.state.hub.stats().deliveries - before,
        3,
        "the room's stream, the admin's and the member's; none of the other 21"
    );
    drop(others);
}

async fn membership_changes_move_a_members_routes_in_log_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ann, bob) = (user("ann"), user("bob"));
    let room = app.create_room(&ann, "moving", &[]).await;
    let mut bobs = app.stream("", &bob).await;

    // Before bob is in the room, its messages are not his.
    app.send(&ann, &room, "before").await;
    app.add_member(&room, "bob").await;
    let during = app.send(&ann, &room, "during").await;
    let (status, _) = app
        .delete(
            &format!("/api/chat/rooms/{room}/members/bob"),
            &admin("boss"),
        )
        .await;
    assert!(status.is_success());
    app.send(&ann, &room, "after").await;
    let other = app.create_room(&bob, "his own", &[]).await;

    assert_eq!(bobs.expect("room").await.data["change"], "member_added");
    assert_eq!(bobs.expect("message").await.data["message"], during);
    assert_eq!(bobs.expect("room").await.data["change"], "member_removed");
    // Next comes his own room's creation, not "after".
    let created = bobs.expect("room").await;
    assert_eq!(created.data["room"]["id"], other.as_str());
    let routes = app.state.hub.stats().subscribers;
    assert_eq!(routes, 1);
}

/// Events posted on one instance; streams that resume on another, just
/// started (as after a restart), from an id its window holds.
async fn streams_resuming_on_a_new_instance_catch_up_from_its_window_not_the_store(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let ann = user("ann");
    let room = app.create_room(&ann, "resumed", &[]).await;
    let first = app.send(&ann, &room, "0").await;
    let mut sent = vec![first.clone()];
    for i in 1..50 {
        sent.push(app.send(&ann, &room, &i.to_string()).await);
    }
    let restarted = app
        .sibling_with(|figment| {
            streams_opened_freely(figment).merge(Serialized::default("stream_max_per_user", 1000))
        })
        .await;
    // The message's event id: the room event came first.
    let (_, page) = app
        .get(&format!("/api/chat/rooms/{room}/messages"), &ann)
        .await;
    let resume_from = page["lastEventId"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap()
        - 50;

    let query = format!("?roomId={room}&lastEventId={resume_from}");
    let streams = join_all((0..100).map(|_| restarted.stream(&query, &ann))).await;
    join_all(streams.into_iter().map(|mut stream| {
        let sent = &sent;
        async move {
            for message in sent {
                assert_eq!(&stream.expect("message").await.data["message"], message);
            }
        }
    }))
    .await;
    let stats = restarted.state.hub.stats();
    assert_eq!(
        (stats.catch_ups_from_window, stats.catch_ups_from_store),
        (100, 0),
        "every resume served from memory: {stats:?}"
    );
}

async fn a_stream_resuming_from_before_the_window_reads_the_store_and_loses_nothing(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(Serialized::default("event_window_events", 10))
    })
    .await;
    let ann = user("ann");
    let room = app.create_room(&ann, "long ago", &[]).await;
    let mut sent = Vec::new();
    for i in 0..30 {
        sent.push(app.send(&ann, &room, &i.to_string()).await);
    }
    // Until the relay has all 31 events, the window may still cover 0.
    let mut live = app.stream(&format!("?roomId={room}"), &ann).await;
    app.send(&ann, &room, "settle").await;
    live.expect("message").await;
    let stats = app.state.hub.stats();
    assert_eq!(stats.window_events, 10);

    let mut resumed = app
        .stream(&format!("?roomId={room}&lastEventId=0"), &ann)
        .await;
    assert_eq!(resumed.expect("room").await.data["change"], "created");
    for message in &sent {
        assert_eq!(&resumed.expect("message").await.data["message"], message);
    }
    let after = app.state.hub.stats();
    assert_eq!(after.catch_ups_from_store - stats.catch_ups_from_store, 1);
    tokio::time::timeout(Duration::from_secs(1), async {
        let event: Value = resumed.expect("message").await.data;
        assert_eq!(event["message"]["body"], "settle");
    })
    .await
    .expect("it goes on to the newest, live");
}
