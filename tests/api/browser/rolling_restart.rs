//! The admin page in headless Chromium through nginx while both instances
//! behind it restart, one after the other, and a writer posts: at the end it
//! shows every acknowledged message once, in order, with exact badges,
//! without a reload (issue 14, point 2).

use super::{Browser, TIMINGS, TOTAL, badge, this_test};
use crate::real_proxies::rolling_restart::{Acked, Pair, Writer};
use crate::support::{send, user};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_rolling_restart_behind_nginx_the_admin_shows_every_acknowledged_message_once() {
    let test = &this_test();
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let Some(mut pair) = Pair::start(test).await else {
        return;
    };
    let alice = user("alice");
    let http = reqwest::Client::new();
    let mut rooms = Vec::new();
    for name in ["Read as it comes", "Left unread"] {
        let (status, room) = send(
            http.post(pair.url("/api/chat/rooms"))
                .bearer_auth(&alice)
                .json(&json!({"name": name})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{room}");
        rooms.push(room["id"].as_str().expect("a room id").to_owned());
    }
    let (open, other) = (&rooms[0], &rooms[1]);
    browser
        .goto(&pair.url(&format!("/admin?user=agent&role=admin&{TIMINGS}")))
        .await;
    browser.status_is("live").await;
    browser
        .wait_for("both rooms", &format!("{} === '0'", badge(other)))
        .await;
    browser
        .click(&format!("[data-room-id='{open}'] button"))
        .await;
    browser
        .wait_for(
            "the open room, empty",
            "document.getElementById('messages').textContent.includes('No messages')",
        )
        .await;
    browser
        .run("window.loadedAt = performance.timeOrigin; return 0;")
        .await;

    let mut writer = Writer::start(&pair.nginx.address, &alice, &rooms, 10);
    writer.wait_for_acks(10).await;
    pair.roll().await;
    let after = writer.acked() + 10;
    writer.wait_for_acks(after).await;
    let written = writer.stop().await;

    let mut shown: Vec<&Acked> = written.acked.iter().filter(|a| a.room() == open).collect();
    shown.sort_by_key(|a| a.message["seq"].as_i64());
    let bodies: Vec<&str> = shown
        .iter()
        .map(|a| a.message["body"].as_str().expect("a body"))
        .collect();
    let unread = written.acked.len() - shown.len();
    browser
        .wait_for(
            "every message once, the open room read, the other counted",
            &format!(
                "document.querySelectorAll('#messages .body').length === {} \
                 && {} === '0' && {} === '{unread}' && {TOTAL} === '{unread}'",
                bodies.len(),
                badge(open),
                badge(other),
            ),
        )
        .await;
    assert_eq!(browser.shown_bodies().await, bodies);
    browser.assert_not_reloaded().await;
    let reconnects = browser
        .run("return window.chatStream.stats.reconnects;")
        .await;
    assert!(
        reconnects.as_u64().is_some_and(|n| n >= 1),
        "the page's stream reconnected: {reconnects}"
    );
    eprintln!(
        "{test}: {} posts ({} needed a retry), {} shown in the open room, {unread} unread in \
         the other; the page's stream reconnected {reconnects} times",
        written.acked.len(),
        written.retried,
        bodies.len(),
    );
    browser.assert_no_errors().await;
    browser.close().await;
}
