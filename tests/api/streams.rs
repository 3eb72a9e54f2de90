//! Live streams: who hears what, heartbeats, resuming by id, resets, and the
//! ends a stream may come to (removal, token expiry, limits).

use crate::support::{
    Backend, SECRET, Scrape, ServerProcess, SharedDb, TestApp, WAIT, admin, assert_error,
    on_both_stores, retry_after, send, sign, unix_now, user,
};
use chat_server::model::Timestamp;
use figment::providers::Serialized;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

on_both_stores!(
    an_admins_global_stream_carries_every_room_including_new_ones,
    a_users_global_stream_carries_their_rooms_including_rooms_joined_later,
    a_room_stream_carries_only_its_room_and_is_404_for_outsiders,
    heartbeats_arrive_at_the_configured_cadence_without_an_id,
    a_stream_resumes_after_its_last_id_from_the_header_or_the_query,
    the_header_wins_over_the_query_parameter,
    an_unknown_or_expired_id_gets_a_reset_with_the_newest_id,
    a_snapshots_last_event_id_loses_nothing_posted_before_the_stream_opened,
    a_removed_member_is_told_once_and_hears_no_more_of_the_room,
    a_stream_ends_with_auth_expired_when_its_token_expires,
    malformed_event_ids_get_a_json_400,
    more_streams_than_the_per_user_cap_get_429,
    opening_streams_too_fast_gets_429_with_retry_after,
    a_burst_of_opens_that_outruns_the_pool_waits_for_it_and_loses_no_stream,
    opens_fresh_or_resuming_inside_the_window_ask_the_store_nothing_of_the_log,
    a_fresh_stream_starts_after_everything_committed_before_it_opened,
    opens_checked_together_each_get_their_own_answer,
);

async fn an_admins_global_stream_carries_every_room_including_new_ones(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let boss = admin("boss");
    let mut stream = app.stream("", &boss).await;
    let room = app.create_room(&user("alice"), "new", &[]).await;
    let created = stream.expect("room").await;
    assert_eq!(created.data["room"]["id"], room.as_str());
    assert_eq!(created.data["change"], "created");
    assert!(created.data["room"].get("unreadCount").is_none());
    let sent = app.send(&user("alice"), &room, "hello").await;
    let message = stream.expect("message").await;
    assert_eq!(message.data["message"], sent);
    assert!(
        message.id() > created.id(),
        "ids increase in delivery order"
    );
    app.post(
        &format!("/api/chat/rooms/{room}/read"),
        &admin("other"),
        json!({"seq": 1}),
    )
    .await;
    let read = stream.expect("read").await;
    assert_eq!(
        read.data,
        json!({"type": "read", "roomId": room, "userId": "other", "lastReadSeq": 1})
    );
}

async fn a_users_global_stream_carries_their_rooms_including_rooms_joined_later(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let mut stream = app.stream("", &bob).await;

    let elsewhere = app.create_room(&carol, "carol's", &[]).await;
    app.send(&carol, &elsewhere, "not for bob").await;
    let shared = app
        .create_room(&admin("agent"), "with bob", &["alice", "bob"])
        .await;
    let created = stream.expect("room").await;
    assert_eq!(
        created.data["room"]["id"],
        shared.as_str(),
        "carol's room never showed"
    );
    assert_eq!(
        created.data["room"]["memberIds"],
        json!(["agent", "alice", "bob"])
    );
    app.send(&alice, &shared, "hi bob").await;
    assert_eq!(
        stream.expect("message").await.data["message"]["body"],
        "hi bob"
    );

    // Joining later: the room event, then its traffic.
    app.add_member(&elsewhere, "bob").await;
    let joined = stream.expect("room").await;
    assert_eq!(joined.data["change"], "member_added");
    assert_eq!(joined.data["userId"], "bob");
    assert!(
        joined.data["room"].get("memberIds").is_none(),
        "a change names the member, not the whole list: {}",
        joined.data
    );
    assert_eq!(joined.data["room"]["name"], "carol's");
    app.send(&carol, &elsewhere, "welcome").await;
    assert_eq!(
        stream.expect("message").await.data["message"]["body"],
        "welcome"
    );
}

async fn a_room_stream_carries_only_its_room_and_is_404_for_outsiders(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "one", &[]).await;
    let other = app.create_room(&alice, "two", &[]).await;
    let mut stream = app.stream(&format!("?roomId={room}"), &alice).await;
    app.send(&alice, &other, "elsewhere").await;
    app.send(&alice, &room, "here").await;
    let message = stream.expect("message").await;
    assert_eq!(message.data["message"]["body"], "here");

    let outsider = send(
        app.http
            .get(app.url(&format!("/api/chat/sse?roomId={room}")))
            .bearer_auth(user("mallory")),
    )
    .await;
    assert_error(outsider, StatusCode::NOT_FOUND, "room_not_found");
    // An admin may watch any room.
    let mut watching = app.stream(&format!("?roomId={room}"), &admin("boss")).await;
    app.send(&alice, &room, "watched").await;
    assert_eq!(
        watching.expect("message").await.data["message"]["body"],
        "watched"
    );
}

async fn heartbeats_arrive_at_the_configured_cadence_without_an_id(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(Serialized::default("heartbeat_interval", "200ms"))
    })
    .await;
    let alice = user("alice");
    let room = app.create_room(&alice, "quiet", &[]).await;
    for query in [String::new(), format!("?roomId={room}")] {
        let response = app
            .http
            .get(app.url(&format!("/api/chat/sse{query}")))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        let mut body = response.bytes_stream();
        let started = std::time::Instant::now();
        let mut text = String::new();
        while text.matches("\"type\":\"heartbeat\"").count() < 5 {
            let chunk = tokio::time::timeout(WAIT, body.next())
                .await
                .expect("heartbeats keep coming")
                .expect("the stream stays open")
                .unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        let elapsed = started.elapsed();
        assert!(text.starts_with("retry: 3000\n\n"), "{text}");
        for frame in text.split("\n\n").filter(|f| f.contains("heartbeat")) {
            assert!(
                !frame.contains("id:"),
                "a heartbeat carries no id: {frame:?}"
            );
            assert!(frame.starts_with("data: {\"type\":\"heartbeat\",\"timestamp\":"));
        }
        // Five beats at 200 ms: about a second, certainly not the 25 s default.
        assert!(elapsed.as_millis() >= 600, "{elapsed:?} for {query}");
        assert!(elapsed.as_secs() < 5, "{elapsed:?} for {query}");
    }
}

async fn a_stream_resumes_after_its_last_id_from_the_header_or_the_query(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "resume", &[]).await;
    let mut stream = app.stream(&format!("?roomId={room}"), &alice).await;
    app.send(&alice, &room, "one").await;
    let seen = stream.expect("message").await;
    drop(stream);
    for body in ["two", "three"] {
        app.send(&alice, &room, body).await;
    }
    let by_header = app
        .stream_from(&format!("?roomId={room}"), &alice, Some(&seen.id))
        .await;
    let by_query = app
        .stream(&format!("?roomId={room}&lastEventId={}", seen.id), &alice)
        .await;
    let by_other_name = app
        .stream(&format!("?roomId={room}&last_event_id={}", seen.id), &alice)
        .await;
    for mut resumed in [by_header, by_query, by_other_name] {
        let two = resumed.expect("message").await;
        let three = resumed.expect("message").await;
        assert_eq!(two.data["message"]["body"], "two");
        assert_eq!(three.data["message"]["body"], "three");
        app.send(&alice, &room, "live").await;
        let live = resumed.expect("message").await;
        assert_eq!(
            live.data["message"]["body"], "live",
            "then live, no duplicates"
        );
        assert!(seen.id() < two.id() && two.id() < three.id() && three.id() < live.id());
    }
}

async fn the_header_wins_over_the_query_parameter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "both", &[]).await;
    let first = app.send(&alice, &room, "first").await;
    app.send(&alice, &room, "second").await;
    let (_, page) = app
        .get(&format!("/api/chat/rooms/{room}/messages?before=2"), &alice)
        .await;
    assert_eq!(page["messages"][0]["id"], first["id"]);
    let mut snapshot = app
        .stream(&format!("?roomId={room}&lastEventId=0"), &alice)
        .await;
    let created = snapshot.expect("room").await;
    let after_first = snapshot.expect("message").await;
    // The query says "from the start", the header says "after the first message".
    let mut stream = app
        .stream_from(
            &format!("?roomId={room}&lastEventId={}", created.id),
            &alice,
            Some(&after_first.id),
        )
        .await;
    assert_eq!(
        stream.expect("message").await.data["message"]["body"],
        "second"
    );
}

async fn an_unknown_or_expired_id_gets_a_reset_with_the_newest_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "reset", &[]).await;
    app.send(&alice, &room, "one").await;
    let (_, snapshot) = app.get("/api/chat/rooms", &alice).await;
    let newest = snapshot["lastEventId"].as_str().unwrap().to_owned();

    let mut unknown = app.stream("?lastEventId=999999", &alice).await;
    let reset = unknown.expect("reset").await;
    assert_eq!(reset.data["reason"], "unknown_event_id");
    assert_eq!(reset.id, newest, "the reset carries the newest id");
    app.send(&alice, &room, "after the reset").await;
    assert_eq!(
        unknown.expect("message").await.data["message"]["body"],
        "after the reset"
    );

    // Expire everything, as the retention window eventually does.
    let far_future = Timestamp::from_unix_ms(Timestamp::now().unix_ms() + 3_600_000);
    app.state
        .store
        .purge_events(far_future, 1000)
        .await
        .unwrap();
    let mut expired = app.stream("?lastEventId=1", &alice).await;
    let reset = expired.expect("reset").await;
    assert_eq!(reset.data["reason"], "event_id_expired");
    // A browser reconnects with the id the reset carried: no second reset.
    let mut reconnected = app.stream_from("", &alice, Some(&reset.id)).await;
    app.send(&alice, &room, "fresh").await;
    let next = reconnected.expect("message").await;
    assert_eq!(next.data["message"]["body"], "fresh");
}

async fn a_snapshots_last_event_id_loses_nothing_posted_before_the_stream_opened(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let room = app.create_room(&alice, "snap", &["bob"]).await;
    let noise = app.create_room(&user("carol"), "noise", &[]).await;
    app.send(&alice, &room, "before").await;

    let (_, rooms) = app.get("/api/chat/rooms", &bob).await;
    let (_, messages) = app
        .get(&format!("/api/chat/rooms/{room}/messages"), &bob)
        .await;
    let from_messages = messages["lastEventId"].as_str().unwrap().to_owned();
    assert_eq!(rooms["rooms"][0]["unreadCount"], 1);

    // It is the newest id of the log, others' events included, so a stream
    // resumed from it starts inside the recent-event window, and a newcomer
    // with no rooms is not sent to the start of the log.
    let mut everything = app.stream("", &admin("boss")).await;
    app.send(&user("carol"), &noise, "unrelated").await;
    let newest = everything.expect("message").await.id();
    let (_, again) = app.get("/api/chat/rooms", &bob).await;
    assert_eq!(again["lastEventId"], newest.to_string());
    let (_, newcomer) = app.get("/api/chat/rooms", &user("dave")).await;
    assert_eq!(newcomer["lastEventId"], newest.to_string());
    let (_, messages_again) = app
        .get(&format!("/api/chat/rooms/{room}/messages"), &bob)
        .await;
    assert_eq!(messages_again["lastEventId"], newest.to_string());

    // Between the snapshot and the stream.
    app.send(&alice, &room, "in the gap").await;
    let mut global = app
        .stream(
            &format!("?lastEventId={}", again["lastEventId"].as_str().unwrap()),
            &bob,
        )
        .await;
    let mut widget = app
        .stream(&format!("?roomId={room}&lastEventId={from_messages}"), &bob)
        .await;
    for stream in [&mut global, &mut widget] {
        let gap = stream.expect("message").await;
        assert_eq!(
            gap.data["message"]["body"], "in the gap",
            "nothing lost, nothing repeated"
        );
    }
}

async fn a_removed_member_is_told_once_and_hears_no_more_of_the_room(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let room = app.create_room(&alice, "team", &["bob"]).await;
    let kept = app.create_room(&alice, "still together", &["bob"]).await;
    let mut global = app.stream("", &bob).await;
    let mut widget = app.stream(&format!("?roomId={room}"), &bob).await;

    let (status, _) = app
        .delete(
            &format!("/api/chat/rooms/{room}/members/bob"),
            &admin("boss"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for stream in [&mut global, &mut widget] {
        let removed = stream.expect("room").await;
        assert_eq!(removed.data["change"], "member_removed");
        assert_eq!(removed.data["userId"], "bob");
        assert_eq!(removed.data["room"]["id"], room.as_str());
    }
    widget.expect_end().await;
    // His token is still good, but not for that room's stream any more.
    let reopened = app
        .http
        .get(app.url(&format!("/api/chat/sse?roomId={room}")))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(reopened.status(), StatusCode::NOT_FOUND);
    assert_eq!(reopened.headers()["content-type"], "application/json");

    app.send(&alice, &room, "bob cannot see this").await;
    app.send(&alice, &kept, "but this").await;
    let next = global.expect("message").await;
    assert_eq!(next.data["message"]["body"], "but this");
}

async fn a_stream_ends_with_auth_expired_when_its_token_expires(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(Serialized::default("jwt_leeway", "0s"))
    })
    .await;
    let short = sign(
        &json!({"sub": "alice", "exp": unix_now() + 2}),
        SECRET.as_bytes(),
    );
    let mut stream = app.stream("", &short).await;
    let event = stream.next().await.expect("auth_expired before the end");
    assert_eq!(event.data, json!({"type": "auth_expired"}));
    stream.expect_end().await;
}

async fn malformed_event_ids_get_a_json_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    for bad in ["abc", "-1", "1.5", "99999999999999999999"] {
        let by_query = send(
            app.http
                .get(app.url(&format!("/api/chat/sse?lastEventId={bad}")))
                .bearer_auth(&alice),
        )
        .await;
        assert_error(by_query, StatusCode::BAD_REQUEST, "invalid_last_event_id");
        let by_header = send(
            app.http
                .get(app.url("/api/chat/sse"))
                .bearer_auth(&alice)
                .header("Last-Event-ID", bad),
        )
        .await;
        assert_error(by_header, StatusCode::BAD_REQUEST, "invalid_last_event_id");
    }
    let no_token = send(app.http.get(app.url("/api/chat/sse"))).await;
    assert_error(no_token, StatusCode::UNAUTHORIZED, "unauthorized");
}

async fn more_streams_than_the_per_user_cap_get_429(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment
            .merge(Serialized::default("stream_max_per_user", 3))
            .merge(Serialized::default("heartbeat_interval", "200ms"))
    })
    .await;
    let alice = user("alice");
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(app.stream("", &alice).await);
    }
    let refused = open_raw(&app, &alice).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("open streams")
    );
    // Others are unaffected, and closing a stream frees a place.
    let _bob = app.stream("", &user("bob")).await;
    drop(open.pop());
    let started = std::time::Instant::now();
    loop {
        let response = open_raw(&app, &alice).await;
        if response.status() == StatusCode::OK {
            break;
        }
        // The server notices the closed stream at its next write.
        assert!(started.elapsed() < WAIT, "the place was not freed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn opening_streams_too_fast_gets_429_with_retry_after(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment
            .merge(Serialized::default("stream_rate_per_user", 1))
            .merge(Serialized::default("stream_burst_per_user", 5))
    })
    .await;
    let alice = user("alice");
    let mut opened = 0;
    let mut kept = Vec::new();
    let refused = loop {
        let response = open_raw(&app, &alice).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            break response;
        }
        assert_eq!(response.status(), StatusCode::OK);
        kept.push(response);
        opened += 1;
        assert!(opened < 20, "the opening rate was never limited");
    };
    assert!(opened >= 5, "the burst is allowed: {opened}");
    assert!(retry_after(&refused) >= 1);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("opened"),
        "{body}"
    );
    // Another user is unaffected.
    assert_eq!(open_raw(&app, &user("bob")).await.status(), StatusCode::OK);
}

/// Opens a stream without reading it (the response holds it open).
async fn open_raw(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .get(app.url("/api/chat/sse"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// One connection, given up on soon, and 300 opens at once, each of which
/// reads its room: most must wait longer than that for the connection (on
/// PostgreSQL, surely so: the memberships are locked meanwhile, which the
/// metrics' scrape does not read). Waiting is not the store failing: no
/// stream is sent `unavailable`, and all go on.
async fn a_burst_of_opens_that_outruns_the_pool_waits_for_it_and_loses_no_stream(backend: Backend) {
    crate::support::raise_open_file_limit();
    let postgres = matches!(backend, Backend::Postgres(_));
    // Set up first: a migration takes longer than such a pool waits, and
    // so may a write while the background tasks start.
    let db = SharedDb::create(&backend).await;
    let room = ServerProcess::start_on(&db, 0, &[])
        .await
        .create_room(&user("ann"), "busy", &[])
        .await;
    let server = ServerProcess::start_on(
        &db,
        0,
        &[
            ("CHAT_DATABASE_MAX_CONNECTIONS", "1"),
            (
                "CHAT_DATABASE_ACQUIRE_TIMEOUT",
                if postgres { "300ms" } else { "50ms" },
            ),
            ("CHAT_STREAM_BURST_PER_IP", "10000"),
        ],
    )
    .await;
    let pool_waits = || async {
        Scrape::of(&server, None)
            .await
            .value("chat_store_pool_waits_total", &[("at", "open")])
    };
    let mut lock = None;
    if postgres {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql("BEGIN; LOCK TABLE room_members IN ACCESS EXCLUSIVE MODE")
            .execute(&mut db)
            .await
            .unwrap();
        lock = Some(db);
    }
    let opens = (0..300).map(|i| {
        let agent = admin(&format!("agent{i}"));
        let (server, room) = (&server, &room);
        async move { server.stream(&format!("?roomId={room}"), &agent).await }
    });
    let unlock = async {
        if let Some(mut db) = lock {
            let started = std::time::Instant::now();
            while pool_waits().await == 0.0 {
                assert!(started.elapsed() < WAIT, "no open waited for the pool");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            sqlx::raw_sql("COMMIT").execute(&mut db).await.unwrap();
        }
    };
    let (mut streams, ()) = tokio::join!(futures::future::join_all(opens), unlock);
    let sent = server.send(&user("ann"), &room, "to all").await;
    for stream in &mut streams {
        assert_eq!(stream.expect("message").await.data["message"], sent);
    }
    let scrape = Scrape::of(&server, None).await;
    // On SQLite the burst waits on most runs, not surely.
    if postgres {
        assert!(
            pool_waits().await > 0.0,
            "the burst waited for the pool (else this test tests nothing)"
        );
    }
    assert_eq!(
        scrape.value("chat_streams_closed_total", &[("reason", "store_error")]),
        0.0
    );
}

/// Where the log ends and what it still keeps is in the relay and its
/// window: an open reads neither from the store (one query per open was
/// most of what an open cost).
async fn opens_fresh_or_resuming_inside_the_window_ask_the_store_nothing_of_the_log(
    backend: Backend,
) {
    let server = ServerProcess::start(&backend, &[]).await;
    let ann = user("ann");
    let room = server.create_room(&ann, "bounds", &[]).await;
    let mut watcher = server.stream(&format!("?roomId={room}"), &ann).await;
    server.send(&ann, &room, "one").await;
    let first = watcher.expect("message").await.id;
    server.send(&ann, &room, "two").await;
    watcher.expect("message").await;
    let bounds_read = || async {
        Scrape::of(&server, None).await.value(
            "chat_store_operation_duration_seconds_count",
            &[("operation", "event_bounds")],
        )
    };
    let before = bounds_read().await;
    let mut fresh = Vec::new();
    let mut resumed = Vec::new();
    for i in 0..5 {
        let agent = admin(&format!("agent{i}"));
        fresh.push(server.stream(&format!("?roomId={room}"), &agent).await);
        fresh.push(server.stream("", &agent).await);
        resumed.push(
            server
                .stream_from(&format!("?roomId={room}"), &agent, Some(&first))
                .await,
        );
        resumed.push(server.stream_from("", &agent, Some(&first)).await);
    }
    for stream in &mut resumed {
        let replayed = stream.expect("message").await;
        assert_eq!(replayed.data["message"]["body"], "two");
    }
    server.send(&ann, &room, "three").await;
    for stream in fresh.iter_mut().chain(&mut resumed) {
        let next = stream.expect("message").await;
        assert_eq!(next.data["message"]["body"], "three");
    }
    // The scrape itself reads them once, for the relay's lag.
    assert_eq!(
        bounds_read().await,
        before + 1.0,
        "no open read the log's bounds"
    );
}

/// A fresh stream (no id) starts after every event committed before it
/// opened, though its starting point comes from the relay, not a query:
/// posted and opened back to back, it never repeats the post.
async fn a_fresh_stream_starts_after_everything_committed_before_it_opened(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = user("ann");
    let room = app.create_room(&ann, "fresh", &[]).await;
    for round in 0..20 {
        app.send(&ann, &room, &format!("before {round}")).await;
        let mut stream = app.stream(&format!("?roomId={room}"), &ann).await;
        app.send(&ann, &room, &format!("after {round}")).await;
        let first = stream.expect("message").await;
        assert_eq!(first.data["message"]["body"], format!("after {round}"));
    }
}

/// Concurrent opens share one statement for their rooms: members, admins,
/// outsiders and a deleted room, all at once, each get their own answer.
async fn opens_checked_together_each_get_their_own_answer(backend: Backend) {
    let app = TestApp::spawn_with(backend, crate::support::streams_opened_freely).await;
    let rooms = [
        app.create_room(&user("ann"), "ann's", &["bob"]).await,
        app.create_room(&user("cat"), "cat's", &[]).await,
    ];
    let deleted = app.create_room(&user("ann"), "gone", &[]).await;
    let (status, _) = app
        .delete(&format!("/api/chat/rooms/{deleted}"), &admin("boss"))
        .await;
    assert!(status.is_success(), "{status}");
    // (who, room, may see it)
    // Five rounds: each user's opens stay under `stream_max_per_user`.
    let mut asked = Vec::new();
    for round in 0..5 {
        asked.push((user("ann"), rooms[0].clone(), true));
        asked.push((user("bob"), rooms[0].clone(), true));
        asked.push((user("cat"), rooms[0].clone(), false));
        asked.push((user("ann"), rooms[1].clone(), false));
        asked.push((user("cat"), rooms[1].clone(), true));
        asked.push((admin(&format!("agent{round}")), rooms[1].clone(), true));
        asked.push((admin(&format!("agent{round}")), deleted.clone(), false));
        asked.push((user("ann"), deleted.clone(), false));
    }
    let opens = asked.iter().map(|(token, room, _)| {
        app.http
            .get(app.url(&format!("/api/chat/sse?roomId={room}")))
            .bearer_auth(token)
            .send()
    });
    let answers = futures::future::join_all(opens).await;
    for ((_, room, may_see), answer) in asked.iter().zip(answers) {
        let status = answer.unwrap().status();
        let expected = if *may_see {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(status, expected, "{room}");
    }
}
