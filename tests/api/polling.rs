//! `GET /api/chat/events`, the long-poll: the stream's events, ids and
//! filtering over plain HTTP; waits that end with the first event; resets;
//! removals; and a resume point that never goes stale.

use crate::support::{
    Backend, Received, SECRET, TestApp, WAIT, admin, assert_error, on_both_stores, send, sign,
    unix_now, user,
};
use chat_server::model::Timestamp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_both_stores!(
    polling_carries_the_same_events_with_the_same_ids_as_the_stream,
    a_poll_answers_at_once_when_events_wait_and_else_with_the_first_new_one,
    a_poll_that_waits_in_vain_answers_empty_after_its_wait,
    a_quiet_poll_moves_its_resume_point_past_what_the_caller_cannot_see,
    an_unknown_or_expired_id_answers_one_reset_with_the_newest_id,
    a_removed_member_polling_the_room_gets_the_removal_then_404,
    a_room_resumed_from_before_the_callers_removal_carries_up_to_it_on_both_transports,
    polling_a_room_is_404_for_outsiders_and_bad_parameters_are_400,
    a_waiting_poll_counts_against_the_per_user_stream_cap,
    what_a_member_sees_is_decided_by_membership_at_each_event_whenever_it_is_read,
    a_poll_that_need_not_wait_answers_with_every_event_already_there,
    a_waiting_poll_ends_with_a_401_when_its_token_expires_and_a_503_when_the_server_drains,
    polls_are_opened_under_the_same_rate_limit_as_streams,
);

/// One poll, as `token`'s user: its status and JSON.
async fn poll(app: &TestApp, query: &str, token: &str) -> (StatusCode, Value) {
    app.get(&format!("/api/chat/events{query}"), token).await
}

/// Every event after `after` that `scope` (`""` or `roomId=…&`) carries,
/// polled `limit` at a time without waiting; also the final `lastEventId`.
pub(crate) async fn poll_all(
    app: &TestApp,
    scope: &str,
    token: &str,
    after: &str,
    limit: u32,
) -> (Vec<(String, Value)>, String) {
    let mut after = after.to_owned();
    let mut events = Vec::new();
    loop {
        let (status, page) = poll(
            app,
            &format!("?{scope}after={after}&limit={limit}&wait=0"),
            token,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for event in page["events"].as_array().unwrap() {
            events.push((
                event["id"].as_str().unwrap().to_owned(),
                event["data"].clone(),
            ));
        }
        after = page["lastEventId"].as_str().unwrap().to_owned();
        if page["hasMore"] == false {
            return (events, after);
        }
    }
}

/// A poll on a task of its own, so the test can act while it waits.
fn spawn_poll(
    app: &TestApp,
    query: &str,
    token: &str,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let request = app
        .http
        .get(app.url(&format!("/api/chat/events{query}")))
        .bearer_auth(token);
    tokio::spawn(send(request))
}

/// Waits until a poll holds its place among the server's streams.
async fn wait_until_polling(app: &TestApp) {
    let started = Instant::now();
    while app.state.hub.stats().open_streams == 0 {
        assert!(started.elapsed() < WAIT, "the poll never started waiting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn as_pairs(received: &[Received]) -> Vec<(String, Value)> {
    received
        .iter()
        .map(|event| (event.id.clone(), event.data.clone()))
        .collect()
}

async fn polling_carries_the_same_events_with_the_same_ids_as_the_stream(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob, carol, boss) = (user("alice"), user("bob"), user("carol"), admin("boss"));
    let before = app.get("/api/chat/rooms", &boss).await.1["lastEventId"]
        .as_str()
        .unwrap()
        .to_owned();
    let shared = app.create_room(&alice, "with bob", &["bob"]).await;
    let live_boss = app.stream(&format!("?lastEventId={before}"), &boss).await;
    let live_room = app
        .stream(&format!("?roomId={shared}&lastEventId={before}"), &alice)
        .await;

    // Every kind of event, in rooms bob may see and in one he may not.
    let elsewhere = app.create_room(&carol, "carol's", &[]).await;
    app.send(&carol, &elsewhere, "not for bob").await;
    app.send(&alice, &shared, "hi bob").await;
    app.post(
        &format!("/api/chat/rooms/{shared}/read"),
        &bob,
        json!({"seq": 1}),
    )
    .await;
    app.add_member(&elsewhere, "bob").await;
    app.send(&carol, &elsewhere, "bob was in the room for this")
        .await;
    app.delete(&format!("/api/chat/rooms/{elsewhere}/members/bob"), &boss)
        .await;
    app.send(&carol, &elsewhere, "and not for this").await;
    app.send(&alice, &shared, "the end").await;

    // What a stream resuming from `before` now carries, for each caller.
    let until_the_end = |mut stream: crate::support::EventStream| async move {
        let mut events = Vec::new();
        loop {
            let event = stream.next().await.expect("the stream goes on");
            let done = event.data["message"]["body"] == "the end";
            events.push(event);
            if done {
                return as_pairs(&events);
            }
        }
    };
    let bobs = until_the_end(app.stream(&format!("?lastEventId={before}"), &bob).await).await;
    let bosses = until_the_end(app.stream(&format!("?lastEventId={before}"), &boss).await).await;
    let rooms = until_the_end(
        app.stream(&format!("?roomId={shared}&lastEventId={before}"), &alice)
            .await,
    )
    .await;
    // Live, the admin and the room stream carried the same.
    assert_eq!(until_the_end(live_boss).await, bosses);
    assert_eq!(until_the_end(live_room).await, rooms);

    for limit in [1, 2, 100] {
        let (polled, _) = poll_all(&app, "", &bob, &before, limit).await;
        assert_eq!(polled, bobs, "bob's, {limit} at a time");
        let (polled, _) = poll_all(&app, "", &boss, &before, limit).await;
        assert_eq!(polled, bosses, "the admin's, {limit} at a time");
        let (polled, _) =
            poll_all(&app, &format!("roomId={shared}&"), &alice, &before, limit).await;
        assert_eq!(polled, rooms, "the room's, {limit} at a time");
    }
    // The filtering was exercised: bob sees his rooms, and a room while he was in it.
    let kinds: Vec<String> = bobs
        .iter()
        .map(|(_, data)| match data["type"].as_str().unwrap() {
            "message" => format!("message {}", data["message"]["body"]),
            "room" => format!("room {}", data["change"]),
            other => other.to_owned(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            // Bob was put into the room after alice created it.
            "room \"member_added\"",
            "message \"hi bob\"",
            "read",
            "room \"member_added\"",
            "message \"bob was in the room for this\"",
            "room \"member_removed\"",
            "message \"the end\"",
        ]
    );
    // The one more for bob joining the first room.
    assert_eq!(bosses.len(), 11, "the admin sees everything");
}

async fn a_poll_answers_at_once_when_events_wait_and_else_with_the_first_new_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "waiting", &[]).await;
    let (_, snapshot) = app
        .get(&format!("/api/chat/rooms/{room}/messages"), &alice)
        .await;
    let after = snapshot["lastEventId"].as_str().unwrap().to_owned();
    app.send(&alice, &room, "already here").await;

    let started = Instant::now();
    let (status, page) = poll(&app, &format!("?roomId={room}&after={after}"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no wait when events wait"
    );
    assert_eq!(page["events"][0]["data"]["message"]["body"], "already here");
    assert_eq!(page["hasMore"], false);
    let after = page["lastEventId"].as_str().unwrap().to_owned();
    assert_eq!(page["events"][0]["id"], after.as_str());

    // Nothing new: the poll waits until the next post, then answers at once.
    let waiting = {
        let (http, url, token) = (
            app.http.clone(),
            app.url(&format!(
                "/api/chat/events?roomId={room}&after={after}&wait=20"
            )),
            alice.clone(),
        );
        tokio::spawn(async move { send(http.get(url).bearer_auth(token)).await })
    };
    let started = Instant::now();
    while app.state.hub.stats().open_streams == 0 {
        assert!(started.elapsed() < WAIT, "the poll never started waiting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let posted = Instant::now();
    app.send(&alice, &room, "news").await;
    let (status, page) = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(
        posted.elapsed() < Duration::from_secs(5),
        "answered with the post, not after the wait: {:?}",
        posted.elapsed()
    );
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["data"]["message"]["body"], "news");
    let id: i64 = events[0]["id"].as_str().unwrap().parse().unwrap();
    assert!(id > after.parse().unwrap());
}

async fn a_poll_that_waits_in_vain_answers_empty_after_its_wait(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "quiet", &[]).await;
    let (_, first) = poll(&app, &format!("?roomId={room}&wait=0"), &alice).await;
    let after = first["lastEventId"].as_str().unwrap().to_owned();
    assert_eq!(first["events"], json!([]), "no id: only what comes next");

    let started = Instant::now();
    let (status, page) = poll(
        &app,
        &format!("?roomId={room}&after={after}&wait=1"),
        &alice,
    )
    .await;
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["events"], json!([]));
    assert_eq!(page["lastEventId"], after.as_str());
    assert_eq!(page["hasMore"], false);
    assert!(
        waited >= Duration::from_millis(900),
        "it waited: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "no longer than asked: {waited:?}"
    );
}

async fn a_quiet_poll_moves_its_resume_point_past_what_the_caller_cannot_see(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, carol) = (user("alice"), user("carol"));
    let room = app.create_room(&alice, "quiet", &[]).await;
    let (_, page) = poll(&app, &format!("?roomId={room}&wait=0"), &alice).await;
    let after: i64 = page["lastEventId"].as_str().unwrap().parse().unwrap();
    let elsewhere = app.create_room(&carol, "busy", &[]).await;
    for n in 0..5 {
        app.send(&carol, &elsewhere, &format!("busy {n}")).await;
    }
    let newest: i64 = app.get("/api/chat/rooms", &admin("boss")).await.1["lastEventId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // The relay may be a moment behind the commit: the point moves as it catches up.
    let started = Instant::now();
    loop {
        let (_, page) = poll(
            &app,
            &format!("?roomId={room}&after={after}&wait=0"),
            &alice,
        )
        .await;
        assert_eq!(page["events"], json!([]));
        let moved: i64 = page["lastEventId"].as_str().unwrap().parse().unwrap();
        assert!(moved >= after && moved <= newest);
        if moved == newest {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "the resume point stayed at {moved}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And from there nothing is lost.
    app.send(&alice, &room, "hello").await;
    let (_, page) = poll(&app, &format!("?roomId={room}&after={newest}"), &alice).await;
    assert_eq!(page["events"][0]["data"]["message"]["body"], "hello");
}

async fn an_unknown_or_expired_id_answers_one_reset_with_the_newest_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "reset", &[]).await;
    app.send(&alice, &room, "one").await;
    let newest = app.get("/api/chat/rooms", &admin("boss")).await.1["lastEventId"].clone();

    let (status, page) = poll(&app, "?after=999999", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page,
        json!({
            "events": [{"id": newest, "data": {"type": "reset", "reason": "unknown_event_id"}}],
            "lastEventId": newest,
            "hasMore": false,
        })
    );

    let far_future = Timestamp::from_unix_ms(Timestamp::now().unix_ms() + 3_600_000);
    app.state
        .store
        .purge_events(far_future, 1000)
        .await
        .unwrap();
    let (_, page) = poll(&app, &format!("?roomId={room}&after=1"), &alice).await;
    assert_eq!(page["events"][0]["data"]["reason"], "event_id_expired");
    assert_eq!(page["events"][0]["id"], newest);
    // Going on from the reset's id resets no more.
    app.send(&alice, &room, "fresh").await;
    let (_, page) = poll(
        &app,
        &format!("?roomId={room}&after={}", newest.as_str().unwrap()),
        &alice,
    )
    .await;
    assert_eq!(page["events"][0]["data"]["message"]["body"], "fresh");
}

async fn a_removed_member_polling_the_room_gets_the_removal_then_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let room = app.create_room(&alice, "team", &["bob"]).await;
    let (_, page) = poll(&app, &format!("?roomId={room}&wait=0"), &bob).await;
    let after = page["lastEventId"].as_str().unwrap().to_owned();
    app.send(&alice, &room, "before").await;
    let (_, page) = poll(&app, &format!("?roomId={room}&after={after}"), &bob).await;
    assert_eq!(page["events"][0]["data"]["message"]["body"], "before");
    let after = page["lastEventId"].as_str().unwrap().to_owned();

    // Bob's next poll is waiting when he is removed.
    let waiting = spawn_poll(&app, &format!("?roomId={room}&after={after}&wait=20"), &bob);
    wait_until_polling(&app).await;
    app.delete(
        &format!("/api/chat/rooms/{room}/members/bob"),
        &admin("boss"),
    )
    .await;
    let (status, page) = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["data"]["change"], "member_removed");
    assert_eq!(events[0]["data"]["userId"], "bob");
    assert_eq!(page["hasMore"], false);

    // As on the stream: the room is gone for him.
    app.send(&alice, &room, "after").await;
    let after = page["lastEventId"].as_str().unwrap();
    let gone = poll(&app, &format!("?roomId={room}&after={after}"), &bob).await;
    assert_error(gone, StatusCode::NOT_FOUND, "room_not_found");
}

/// Removed between two polls (or while the stream was down): what came
/// before the removal, and the removal, still reach the member.
async fn a_room_resumed_from_before_the_callers_removal_carries_up_to_it_on_both_transports(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let room = app.create_room(&alice, "team", &["bob"]).await;
    let (_, page) = poll(&app, &format!("?roomId={room}&wait=0"), &bob).await;
    let after = page["lastEventId"].as_str().unwrap().to_owned();
    app.send(&alice, &room, "missed").await;
    app.delete(
        &format!("/api/chat/rooms/{room}/members/bob"),
        &admin("boss"),
    )
    .await;
    app.send(&alice, &room, "not for him").await;

    // The stream's name for the resume point works on the poll too.
    let (status, page) = poll(
        &app,
        &format!("?roomId={room}&lastEventId={after}&wait=0"),
        &bob,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{page}");
    assert_eq!(events[0]["data"]["message"]["body"], "missed");
    assert_eq!(events[1]["data"]["change"], "member_removed");
    assert_eq!(page["hasMore"], false);

    let mut stream = app
        .stream(&format!("?roomId={room}&lastEventId={after}"), &bob)
        .await;
    assert_eq!(
        stream.expect("message").await.data["message"]["body"],
        "missed"
    );
    assert_eq!(stream.expect("room").await.data["change"], "member_removed");
    stream.expect_end().await;

    // From the removal on, the room is gone for him.
    let removal = page["lastEventId"].as_str().unwrap();
    let gone = poll(&app, &format!("?roomId={room}&after={removal}"), &bob).await;
    assert_error(gone, StatusCode::NOT_FOUND, "room_not_found");
}

async fn polling_a_room_is_404_for_outsiders_and_bad_parameters_are_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "private", &[]).await;
    let outsider = poll(&app, &format!("?roomId={room}&wait=0"), &user("mallory")).await;
    assert_error(outsider, StatusCode::NOT_FOUND, "room_not_found");
    for (query, code) in [
        ("?after=abc", "invalid_last_event_id"),
        ("?after=-1", "invalid_last_event_id"),
        ("?after=99999999999999999999", "invalid_last_event_id"),
        ("?limit=0", "invalid_limit"),
        ("?limit=501", "invalid_limit"),
        ("?wait=-1", "invalid_query"),
        ("?roomId=nope", "invalid_room_id"),
    ] {
        assert_error(
            poll(&app, query, &alice).await,
            StatusCode::BAD_REQUEST,
            code,
        );
    }
    let by_header = send(
        app.http
            .get(app.url("/api/chat/events"))
            .bearer_auth(&alice)
            .header("Last-Event-ID", "x"),
    )
    .await;
    assert_error(by_header, StatusCode::BAD_REQUEST, "invalid_last_event_id");
    let no_token = send(app.http.get(app.url("/api/chat/events"))).await;
    assert_error(no_token, StatusCode::UNAUTHORIZED, "unauthorized");
    // Nothing cached between polls.
    let response = app
        .http
        .get(app.url("/api/chat/events?wait=0"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
}

async fn a_waiting_poll_counts_against_the_per_user_stream_cap(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(figment::providers::Serialized::default(
            "stream_max_per_user",
            1,
        ))
    })
    .await;
    let alice = user("alice");
    let _stream = app.stream("", &alice).await;
    let refused = poll(&app, "?wait=0", &alice).await;
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    let (status, _) = poll(&app, "?wait=0", &user("bob")).await;
    assert_eq!(status, StatusCode::OK, "others are unaffected");
}

async fn what_a_member_sees_is_decided_by_membership_at_each_event_whenever_it_is_read(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (bob, carol, boss) = (user("bob"), user("carol"), admin("boss"));
    let room = app.create_room(&carol, "carol's", &[]).await;
    app.send(&carol, &room, "before bob came").await;
    let before = app.get("/api/chat/rooms", &bob).await.1["lastEventId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut live = app.stream(&format!("?lastEventId={before}"), &bob).await;
    app.add_member(&room, "bob").await;
    app.send(&carol, &room, "while bob is in").await;
    app.delete(&format!("/api/chat/rooms/{room}/members/bob"), &boss)
        .await;
    app.send(&carol, &room, "after bob left").await;
    let mut streamed = Vec::new();
    for _ in 0..3 {
        streamed.push(live.next().await.expect("the live stream"));
    }
    let streamed = as_pairs(&streamed);
    let summary = |events: &[(String, Value)]| -> Vec<String> {
        events
            .iter()
            .map(|(_, data)| match data["type"].as_str().unwrap() {
                "message" => data["message"]["body"].as_str().unwrap().to_owned(),
                _ => data["change"].as_str().unwrap().to_owned(),
            })
            .collect()
    };
    assert_eq!(
        summary(&streamed),
        ["member_added", "while bob is in", "member_removed"]
    );
    // Read later, after he left: the same, by polling and by a resumed stream.
    let (polled, _) = poll_all(&app, "", &bob, &before, 2).await;
    assert_eq!(polled, streamed, "a poll from the same id");
    let mut resumed = app.stream(&format!("?lastEventId={before}"), &bob).await;
    let mut again = Vec::new();
    for _ in 0..3 {
        again.push(resumed.next().await.expect("the resumed stream"));
    }
    assert_eq!(
        as_pairs(&again),
        streamed,
        "a stream resumed from the same id"
    );
    // From before carol's room existed: nothing of what bob never saw.
    let (from_start, _) = poll_all(&app, "", &bob, "0", 100).await;
    assert_eq!(summary(&from_start), summary(&streamed));
}

async fn a_poll_that_need_not_wait_answers_with_every_event_already_there(backend: Backend) {
    // A hundred polls in a row: above the default opening rate.
    let app = TestApp::spawn_with(backend, |figment| {
        figment
            .merge(figment::providers::Serialized::default(
                "stream_rate_per_user",
                1000,
            ))
            .merge(figment::providers::Serialized::default(
                "stream_burst_per_user",
                1000,
            ))
    })
    .await;
    let alice = user("alice");
    let room = app.create_room(&alice, "busy", &[]).await;
    let (_, page) = poll(&app, &format!("?roomId={room}&wait=0"), &alice).await;
    let mut after = page["lastEventId"].as_str().unwrap().to_owned();
    for n in 0..100 {
        app.send(&alice, &room, &format!("m{n}")).await;
        let (_, page) = poll(
            &app,
            &format!("?roomId={room}&after={after}&wait=0"),
            &alice,
        )
        .await;
        let events = page["events"].as_array().unwrap();
        assert_eq!(
            events.len(),
            1,
            "poll {n}: the event that was there, at once: {page}"
        );
        assert_eq!(page["hasMore"], false);
        after = page["lastEventId"].as_str().unwrap().to_owned();
    }
}

async fn a_waiting_poll_ends_with_a_401_when_its_token_expires_and_a_503_when_the_server_drains(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(figment::providers::Serialized::default("jwt_leeway", "0s"))
    })
    .await;
    let short = sign(
        &json!({"sub": "alice", "exp": unix_now() + 2}),
        SECRET.as_bytes(),
    );
    let started = Instant::now();
    let expired = poll(&app, "?wait=20", &short).await;
    assert_error(expired, StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "at its expiry, not after the wait"
    );

    let waiting = spawn_poll(&app, "?wait=20", &user("bob"));
    wait_until_polling(&app).await;
    app.start_draining();
    let (status, body) = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_error(
        (status, body),
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
    );
}

async fn polls_are_opened_under_the_same_rate_limit_as_streams(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment
            .merge(figment::providers::Serialized::default(
                "stream_rate_per_user",
                1,
            ))
            .merge(figment::providers::Serialized::default(
                "stream_burst_per_user",
                3,
            ))
    })
    .await;
    let alice = user("alice");
    for _ in 0..3 {
        assert_eq!(poll(&app, "?wait=0", &alice).await.0, StatusCode::OK);
    }
    let refused = poll(&app, "?wait=0", &alice).await;
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    assert_eq!(poll(&app, "?wait=0", &user("bob")).await.0, StatusCode::OK);
}
