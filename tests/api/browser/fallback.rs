//! The pages when the network misbehaves, behind the test proxy: a proxy
//! that buffers the stream (the pages long-poll and lose nothing), answers
//! lost after the server stored a post, a silent stream, a network that goes
//! and comes back, and one stream shared by several tabs.

use super::{BehindProxy, TIMINGS, TOTAL, badge, stored_times, this_test};
use crate::support::proxy::Streams;
use crate::support::{WAIT, admin, send};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Fallback timings: give a stream 1 s to show a byte, try streaming again
/// every 1.5 s; polls wait 1 s, so one that goes on shows within a few.
const FALLBACK: &str = "heartbeatTimeout=1000&connectTimeout=1000&backoffInitial=100&backoffMax=800&maxAttempts=3&streamRetryInterval=1500&pollWait=1&sendTimeout=1500";

/// Records, on the page, every event the client delivers (`window.delivered`).
const RECORD: &str = "window.delivered = [];
    window.chatStream.addEventListener('event', (e) => window.delivered.push(e.detail));
    return window.chatStream.lastEventId;";

/// What the page delivered since `RECORD`.
async fn delivered(browser: &super::Browser) -> Vec<Value> {
    serde_json::from_value(browser.run("return window.delivered;").await).unwrap()
}

/// Every event the agent may see after `after`, by the store's own log.
async fn agents_log(server: &crate::support::ServerProcess, after: &str) -> Vec<Value> {
    let (status, page) = send(
        reqwest::Client::new()
            .get(server.url(&format!("/api/chat/events?after={after}&wait=0&limit=500")))
            .bearer_auth(admin("agent")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["hasMore"], false);
    page["events"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_buffering_proxy_the_admin_long_polls_every_event_once_and_streams_again_after() {
    let test = &this_test();
    let Some(BehindProxy {
        browser,
        server,
        proxy,
        alice,
        room,
    }) = BehindProxy::admin(test, FALLBACK).await
    else {
        return;
    };
    let other = server.create_room(&alice, "Another order", &["bob"]).await;
    browser
        .click(&format!("[data-room-id='{room}'] button"))
        .await;
    browser
        .wait_for("the open room read", &format!("{} === '0'", badge(&room)))
        .await;
    let from = browser.run(RECORD).await;
    let from = from.as_str().unwrap().to_owned();

    // The proxy now holds every byte of every stream.
    proxy.streams(Streams::Buffer);
    browser.status_is("polling").await;
    let quickly = Duration::from_millis(2_500);
    server.send(&alice, &room, "while buffered").await;
    let took = browser
        .wait_within(
            quickly,
            "the message in the open conversation",
            "[...document.querySelectorAll('#messages .body')].some(b => b.textContent === 'while buffered')",
        )
        .await;
    eprintln!("a message reached the open conversation {took:?} after its post");
    server.send(&alice, &other, "in the other room").await;
    browser
        .wait_within(
            quickly,
            "the other room's badge",
            &format!("{} === '1' && {TOTAL} === '1'", badge(&other)),
        )
        .await;
    // Read on another device, and a member removed.
    let (status, _) = send(
        reqwest::Client::new()
            .post(server.url(&format!("/api/chat/rooms/{other}/read")))
            .bearer_auth(admin("agent"))
            .json(&json!({"seq": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    browser
        .wait_within(
            quickly,
            "the read from the other device",
            &format!("{} === '0' && {TOTAL} === '0'", badge(&other)),
        )
        .await;
    let (status, _) = send(
        reqwest::Client::new()
            .delete(server.url(&format!("/api/chat/rooms/{other}/members/bob")))
            .bearer_auth(admin("agent")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    browser
        .wait_within(
            quickly,
            "the removal",
            "window.delivered.some(e => e.data.type === 'room' && e.data.change === 'member_removed')",
        )
        .await;
    assert_eq!(
        browser.run("return window.chatStream.status;").await,
        "polling",
        "all of it by polling"
    );

    // The proxy stops buffering: the stream comes back, polling stops.
    proxy.streams(Streams::Pass);
    browser.status_is("live").await;
    server.send(&alice, &room, "streamed again").await;
    browser
        .wait_for(
            "the message by stream",
            "[...document.querySelectorAll('#messages .body')].some(b => b.textContent === 'streamed again')",
        )
        .await;
    // Absence cannot be awaited: polls that went on would show within 3 s (each waits 1 s).
    let polls = proxy.event_polls();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        proxy.event_polls() <= polls + 1,
        "polling stopped: {} polls after {polls}",
        proxy.event_polls()
    );

    let got = delivered(&browser).await;
    let log = agents_log(&server, &from).await;
    let ids = |events: &[Value]| events.iter().map(|e| e["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&got), ids(&log), "every event, once, in order");
    assert_eq!(
        browser.shown_bodies().await,
        ["first", "while buffered", "streamed again"],
        "the conversation: each message once"
    );
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_answer_is_lost_is_retried_and_shows_once_on_both_pages_and_in_the_store() {
    let test = &this_test();
    let Some(BehindProxy {
        browser,
        server,
        proxy,
        alice,
        room,
    }) = BehindProxy::admin(test, TIMINGS).await
    else {
        return;
    };
    browser
        .click(&format!("[data-room-id='{room}'] button"))
        .await;
    for (page, text) in [("admin", "answered once"), ("widget", "asked once")] {
        if page == "widget" {
            browser
                .goto(&proxy.url(&format!("/widget?user=alice&{TIMINGS}")))
                .await;
            browser.status_is("live").await;
        }
        let forwarded = proxy.posts_forwarded();
        proxy.lose_post_answers(1);
        browser.type_and_send(text).await;
        browser
            .wait_for(
                "the send to be retried and the box cleared",
                "document.getElementById('body').value === '' && !document.getElementById('send').dataset.state",
            )
            .await;
        assert_eq!(proxy.posts_forwarded(), forwarded + 2, "sent twice");
        assert_eq!(
            browser
                .run(&format!(
                    "return [...document.querySelectorAll('#messages .body')].filter(b => b.textContent === '{text}').length;"
                ))
                .await,
            1,
            "shown once on the {page} page"
        );
        assert_eq!(
            stored_times(&server, &alice, &room, text).await,
            1,
            "stored once"
        );
        browser.assert_no_errors().await;
    }
    // Every try's answer lost: the send fails, but the message came back by
    // the stream, so the box knows it was stored.
    let forwarded = proxy.posts_forwarded();
    proxy.lose_post_answers(usize::MAX);
    browser.type_and_send("never answered").await;
    browser
        .wait_for(
            "the box cleared by the message's own event, no failure shown",
            "document.getElementById('body').value === '' && !document.getElementById('send').dataset.state
             && document.querySelector('.problem').hidden",
        )
        .await;
    proxy.lose_post_answers(0);
    assert!(proxy.posts_forwarded() >= forwarded + 2, "it was retried");
    assert_eq!(
        stored_times(&server, &alice, &room, "never answered").await,
        1
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_reconnects_a_stream_that_went_silent() {
    let test = &this_test();
    let Some(BehindProxy {
        browser,
        server,
        proxy,
        alice,
        room,
    }) = BehindProxy::admin(test, TIMINGS).await
    else {
        return;
    };

    let statuses = "window.statuses = [];
        window.chatStream.addEventListener('status', (e) => window.statuses.push(e.detail.status));
        return 0;";
    browser.run(statuses).await;
    // A message after the stream's first bytes proves the path passes data
    // as it comes; a stream frozen before that would rightly count as held.
    server.send(&alice, &room, "sent while working").await;
    browser
        .wait_for(
            "the stream to carry a message",
            &format!("{} === '2'", badge(&room)),
        )
        .await;
    // The stream that works stops carrying anything, heartbeats included,
    // without closing: only the watchdog can tell.
    let opens = proxy.stream_opens();
    proxy.freeze_open_streams();
    server.send(&alice, &room, "sent while silent").await;
    browser
        .wait_for(
            "the message sent during the silence, by a new stream",
            &format!("{} === '3'", badge(&room)),
        )
        .await;
    browser.status_is("live").await;
    assert_eq!(proxy.stream_opens(), opens + 1, "one reconnect");
    let seen = browser.run("return window.statuses;").await;
    assert!(
        !seen.as_array().unwrap().contains(&json!("polling")),
        "a stream that had worked is reconnected, not given up: {seen}"
    );
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_network_comes_back_the_page_is_live_again_within_five_seconds() {
    let test = &this_test();
    // The pages' own timings: only the server's heartbeat is short.
    let Some(BehindProxy {
        browser,
        server,
        proxy,
        alice,
        room,
    }) = BehindProxy::admin(test, "").await
    else {
        return;
    };
    proxy.down(true);
    browser.status_is("reconnecting").await;
    // Five failed tries (backoff up to 5 s each) and it polls, failing too.
    browser
        .wait_within(
            Duration::from_secs(30),
            "the page to fall back to polling",
            "document.getElementById('status').dataset.status === 'polling'",
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // a failed poll or two
    server.send(&alice, &room, "sent while down").await;
    proxy.down(false);
    // The probe interval (5 s, jittered below), and the stream's first bytes.
    let back = browser
        .wait_within(
            Duration::from_millis(5_500),
            "live, and the message",
            &format!(
                "document.getElementById('status').dataset.status === 'live' && {} === '2'",
                badge(&room)
            ),
        )
        .await;
    eprintln!("live again {back:?} after the network came back");
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_admin_tabs_share_one_stream_and_hand_it_over_without_loss() {
    let test = &this_test();
    let Some(BehindProxy {
        browser,
        server,
        proxy,
        alice,
        room,
    }) = BehindProxy::admin(test, TIMINGS).await
    else {
        return;
    };
    let page = proxy.url(&format!("/admin?user=agent&role=admin&{TIMINGS}"));
    let mut tabs = vec![browser.client.window().await.unwrap()];
    for _ in 0..2 {
        let tab = browser.client.new_window(true).await.unwrap().handle;
        browser.client.switch_to_window(tab.clone()).await.unwrap();
        browser.goto(&page).await;
        browser.status_is("live").await;
        tabs.push(tab);
    }
    assert_eq!(proxy.open_streams(), 1, "three tabs, one stream");

    server.send(&alice, &room, "two").await;
    let mut leader = None;
    for tab in &tabs {
        browser.client.switch_to_window(tab.clone()).await.unwrap();
        browser
            .wait_for(
                "every tab to count it",
                &format!("{} === '2'", badge(&room)),
            )
            .await;
        browser.assert_no_errors().await;
        if browser.run("return window.chatStream.isLeader;").await == json!(true) {
            leader = Some(tab.clone());
        }
    }

    // Close the leader; messages keep coming during the handover.
    let leader = leader.expect("one tab leads");
    browser
        .client
        .switch_to_window(leader.clone())
        .await
        .unwrap();
    browser.client.close_window().await.unwrap();
    server.send(&alice, &room, "three").await;
    server.send(&alice, &room, "four").await;
    let rest: Vec<_> = tabs.into_iter().filter(|tab| *tab != leader).collect();
    for tab in &rest {
        browser.client.switch_to_window(tab.clone()).await.unwrap();
        browser
            .wait_for(
                "the surviving tabs to count every message",
                &format!("{} === '4'", badge(&room)),
            )
            .await;
        browser.status_is("live").await;
        browser.assert_no_errors().await;
    }
    let started = Instant::now();
    while proxy.open_streams() != 1 {
        assert!(
            started.elapsed() < WAIT,
            "{} streams after the handover",
            proxy.open_streams()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.close().await;
}
