//! The two pages as their users meet them: badges and totals that stay
//! exact (at 1,000 rooms too), rooms read when opened, one widget room per
//! user, long conversations, unsent messages kept with a retry control, a
//! first snapshot that retries and says so, sign-in focus, empty lists, and
//! an accessibility check.

use super::{
    BehindProxy, Browser, SERVER_ENV, TIMINGS, TOTAL, badge, create_room_with_message, get,
    stored_times, this_test, web_packages_installed,
};
use crate::support::proxy::Proxy;
use crate::support::{Backend, ServerProcess, SharedDb, admin, free_port, user};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_counts_in_the_admin_badge_and_total_and_opening_the_room_reads_it() {
    let test = &this_test();
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    browser
        .goto(&server.url(&format!("/admin?user=agent&role=admin&{TIMINGS}")))
        .await;
    browser.status_is("live").await;
    browser
        .wait_for(
            "the empty list to say so",
            "!document.getElementById('rooms-empty').hidden",
        )
        .await;

    let room = create_room_with_message(&server, &user("alice"), "Hello? Anyone there?").await;
    browser
        .wait_for(
            "the room's badge and the total to count it",
            &format!("{} === '1' && {TOTAL} === '1'", badge(&room)),
        )
        .await;
    let label = browser
        .run(&format!(
            "return document.querySelector('[data-room-id=\"{room}\"] .badge').getAttribute('aria-label');"
        ))
        .await;
    assert_eq!(label, "1 unread message", "the badge says its count");
    assert_eq!(
        browser
            .run("return document.getElementById('rooms-empty').hidden;")
            .await,
        true
    );
    browser.screenshot("admin-1280px").await;

    browser
        .click(&format!("[data-room-id='{room}'] button"))
        .await;
    browser
        .wait_for(
            "the conversation",
            "document.querySelector('#messages .body')?.textContent === 'Hello? Anyone there?'",
        )
        .await;
    browser
        .wait_for(
            "opening the room to read it",
            &format!("{} === '0' && {TOTAL} === '0'", badge(&room)),
        )
        .await;
    let seen = get(&server, &admin("agent"), &format!("/api/chat/rooms/{room}")).await;
    assert_eq!(seen["unreadCount"], 0, "read in the store too");
    browser.resize(375, 740).await;
    browser.screenshot("admin-375px").await;
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widget_user_and_an_admin_talk_live_and_the_widget_keeps_one_room() {
    let test = &this_test();
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    let alice = user("alice");
    let admin_tab = browser.client.window().await.unwrap();
    browser
        .goto(&server.url(&format!("/admin?user=agent&role=admin&{TIMINGS}")))
        .await;
    browser.status_is("live").await;

    let widget_tab = browser.client.new_window(true).await.unwrap().handle;
    browser
        .client
        .switch_to_window(widget_tab.clone())
        .await
        .unwrap();
    let widget = server.url(&format!("/widget?user=alice&{TIMINGS}"));
    browser.goto(&widget).await;
    browser
        .wait_for(
            "the empty conversation to say so",
            "document.querySelector('#messages .empty')?.textContent.startsWith('No messages yet')",
        )
        .await;
    let rooms = get(&server, &alice, "/api/chat/rooms").await;
    assert_eq!(rooms["rooms"], json!([]), "signing in creates no room");
    browser.type_and_send("Hi, I need help with my order").await;
    browser
        .wait_for("the widget's room", "window.chatRoomId != null")
        .await;
    let room = browser.run("return window.chatRoomId;").await;
    let room = room.as_str().unwrap().to_owned();
    browser
        .wait_for(
            "the message, once",
            "document.querySelectorAll('#messages .body').length === 1",
        )
        .await;

    browser
        .client
        .switch_to_window(admin_tab.clone())
        .await
        .unwrap();
    browser
        .wait_for(
            "the widget's message to reach the admin",
            &format!("{} === '1'", badge(&room)),
        )
        .await;
    browser
        .click(&format!("[data-room-id='{room}'] button"))
        .await;
    browser
        .wait_for("the message in the conversation", "[...document.querySelectorAll('#messages .body')].some(b => b.textContent === 'Hi, I need help with my order')")
        .await;
    browser
        .type_and_send("Happy to help! What is your order number?")
        .await;
    browser.assert_no_errors().await;

    browser
        .client
        .switch_to_window(widget_tab.clone())
        .await
        .unwrap();
    browser
        .wait_for("the reply to reach the widget", "[...document.querySelectorAll('#messages .body')].some(b => b.textContent === 'Happy to help! What is your order number?')")
        .await;
    browser.resize(375, 740).await;
    browser.screenshot("widget-375px").await;
    browser.assert_no_errors().await;

    // Signing in again: the same room, with its history.
    browser.goto(&widget).await;
    browser.status_is("live").await;
    assert_eq!(
        browser.run("return window.chatRoomId;").await,
        room.as_str()
    );
    browser
        .wait_for(
            "the history",
            "document.querySelectorAll('#messages .body').length === 2",
        )
        .await;
    let rooms = get(&server, &alice, "/api/chat/rooms").await;
    assert_eq!(
        rooms["rooms"].as_array().unwrap().len(),
        1,
        "one room, reused"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_arrives_while_the_conversation_loads_stays_in_it() {
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
    // The history page is read before the new message is posted, and
    // reaches the page after the message's live event.
    proxy.hold_histories(true);
    browser
        .click(&format!("[data-room-id='{room}'] button"))
        .await;
    server.send(&alice, &room, "while loading").await;
    browser
        .wait_for(
            "the live message, shown while the history loads",
            "document.querySelectorAll('#messages .body').length === 1",
        )
        .await;
    proxy.hold_histories(false);
    browser
        .wait_for(
            "the history beside the live message",
            "document.querySelectorAll('#messages .body').length === 2",
        )
        .await;
    assert_eq!(browser.shown_bodies().await, ["first", "while loading"]);
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_and_restart_the_admin_shows_every_message_once_without_a_reload() {
    let test = &this_test();
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let db = SharedDb::create(&Backend::Sqlite).await;
    let port = free_port();
    let mut server = ServerProcess::start_on(&db, port, &SERVER_ENV).await;
    // A second process on the same database takes writes while the first is down.
    let during = ServerProcess::start_on(&db, 0, &SERVER_ENV).await;
    let alice = user("alice");
    browser
        .goto(&server.url(&format!("/admin?user=agent&role=admin&{TIMINGS}")))
        .await;
    browser.status_is("live").await;
    let room = create_room_with_message(&server, &alice, "before 1").await;
    browser
        .wait_for("the room", &format!("{} === '1'", badge(&room)))
        .await;
    browser
        .click(&format!("[data-room-id='{room}'] button"))
        .await;
    server.send(&alice, &room, "before 2").await;
    browser
        .wait_for(
            "two messages",
            "document.querySelectorAll('#messages .body').length === 2",
        )
        .await;
    browser
        .run("window.loadedAt = performance.timeOrigin; return 0;")
        .await;

    server.kill();
    browser.status_is("reconnecting").await;
    for n in 1..=3 {
        during.send(&alice, &room, &format!("during {n}")).await;
    }
    let _restarted = ServerProcess::start_on(&db, port, &SERVER_ENV).await;
    browser.status_is("live").await;
    browser
        .wait_for(
            "every message, once, read as it came",
            &format!(
                "document.querySelectorAll('#messages .body').length === 5 && {} === '0'",
                badge(&room)
            ),
        )
        .await;
    assert_eq!(
        browser.shown_bodies().await,
        ["before 1", "before 2", "during 1", "during 2", "during 3"]
    );
    browser.assert_not_reloaded().await;
    browser.assert_no_errors().await;
    browser.close().await;
}

/// Every room's badge on the admin page, by room id.
async fn badges(browser: &Browser) -> HashMap<String, i64> {
    let shown = browser
        .run(
            "return Object.fromEntries([...document.querySelectorAll('#rooms li')]
                .map(row => [row.dataset.roomId, Number(row.querySelector('.badge').textContent)]));",
        )
        .await;
    serde_json::from_value(shown).unwrap()
}

/// The agent's unread count of every room, from the store, all pages.
async fn unread_in_store(server: &ServerProcess) -> (HashMap<String, i64>, i64) {
    let agent = admin("agent");
    let mut counts = HashMap::new();
    let first = get(server, &agent, "/api/chat/rooms?limit=500").await;
    let total = first["totalUnread"].as_i64().unwrap();
    let mut page = first;
    loop {
        for room in page["rooms"].as_array().unwrap() {
            counts.insert(
                room["id"].as_str().unwrap().to_owned(),
                room["unreadCount"].as_i64().unwrap(),
            );
        }
        let Some(token) = page["nextPageToken"].as_str() else {
            return (counts, total);
        };
        page = get(
            server,
            &agent,
            &format!("/api/chat/rooms?limit=500&pageToken={token}"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_panel_keeps_a_thousand_rooms_their_badges_and_the_total_exact() {
    let test = &this_test();
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    let alice = user("alice");
    // Room n holds n % 3 messages; the oldest rooms come last in the list.
    let rooms: Vec<String> = futures::stream::iter(0..1_000)
        .map(|n| {
            let (server, alice) = (&server, &alice);
            async move {
                let room = server.create_room(alice, &format!("Room {n}"), &[]).await;
                for m in 0..n % 3 {
                    server.send(alice, &room, &format!("message {m}")).await;
                }
                room
            }
        })
        .buffered(16)
        .collect()
        .await;
    browser
        .goto(&server.url(&format!("/admin?user=agent&role=admin&{TIMINGS}")))
        .await;
    browser.status_is("live").await;
    browser
        .wait_for(
            "every room",
            "document.querySelectorAll('#rooms li').length === 1000",
        )
        .await;
    let (store, total) = unread_in_store(&server).await;
    assert_eq!(total, (0..1_000).map(|n| n % 3).sum::<i64>());
    assert_eq!(
        badges(&browser).await,
        store,
        "every badge as the store counts"
    );
    assert_eq!(
        browser.run(&format!("return {TOTAL};")).await,
        total.to_string()
    );

    // A live message in the room at the very end of the list (page 2 of the listing).
    let oldest = &rooms[0];
    server.send(&alice, oldest, "news in the oldest room").await;
    browser
        .wait_for(
            "the oldest room to come first, counted",
            &format!(
                "document.querySelector('#rooms li').dataset.roomId === '{oldest}' && {} === '1' && {TOTAL} === '{}'",
                badge(oldest),
                total + 1
            ),
        )
        .await;
    let shown = badges(&browser).await;
    assert_eq!(shown.len(), 1_000, "each room once, none lost");
    let (store, _) = unread_in_store(&server).await;
    assert_eq!(shown, store);
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_first_snapshot_is_retried_with_backoff_and_the_page_says_so() {
    let test = &this_test();
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    let proxy = Proxy::start(&server.address).await;
    let room = create_room_with_message(&server, &user("alice"), "waiting").await;
    for page in [
        format!("/admin?user=agent&role=admin&{TIMINGS}"),
        format!("/widget?user=alice&{TIMINGS}"),
    ] {
        proxy.refuse_listing(true);
        let refused_before = proxy.room_polls();
        browser.goto(&proxy.url(&page)).await;
        browser
            .wait_for(
                "the pill to say it is retrying",
                "document.getElementById('status').dataset.retrying === 'true'
                 && document.getElementById('status').textContent.includes('retrying in')",
            )
            .await;
        let started = std::time::Instant::now();
        while proxy.room_polls() < refused_before + 2 {
            assert!(started.elapsed() < crate::support::WAIT, "it did not retry");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        proxy.refuse_listing(false);
        browser.status_is("live").await;
        browser
            .wait_for(
                "the snapshot on the page",
                &format!(
                    "document.querySelector('[data-room-id=\"{room}\"]') || document.querySelector('#messages .body')?.textContent === 'waiting'"
                ),
            )
            .await;
        browser.assert_no_errors().await;
    }
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsent_message_stays_in_the_box_with_a_retry_that_stores_it_once() {
    let test = &this_test();
    let timings = format!("{TIMINGS}&sendAttempts=2");
    let Some(BehindProxy {
        browser,
        server,
        proxy,
        alice,
        room,
    }) = BehindProxy::admin(test, &timings).await
    else {
        return;
    };
    browser
        .click(&format!("[data-room-id='{room}'] button"))
        .await;
    for (page, text) in [("admin", "from the agent"), ("widget", "from alice")] {
        if page == "widget" {
            browser
                .goto(&proxy.url(&format!("/widget?user=alice&{timings}")))
                .await;
            browser.status_is("live").await;
        }
        proxy.refuse_posts(true);
        browser.type_and_send(text).await;
        browser
            .wait_for(
                "the failure, with a retry control",
                "!document.querySelector('.problem').hidden && document.querySelector('.problem .retry')",
            )
            .await;
        assert_eq!(
            browser
                .run("return document.getElementById('body').value;")
                .await,
            text,
            "the text stays in the box"
        );
        assert_eq!(
            stored_times(&server, &alice, &room, text).await,
            0,
            "not stored"
        );
        proxy.refuse_posts(false);
        browser.click(".problem .retry").await;
        browser
            .wait_for(
                "the message, and the box cleared",
                &format!(
                    "[...document.querySelectorAll('#messages .body')].filter(b => b.textContent === '{text}').length === 1
                     && document.getElementById('body').value === ''
                     && document.querySelector('.problem').hidden"
                ),
            )
            .await;
        assert_eq!(
            stored_times(&server, &alice, &room, text).await,
            1,
            "stored once"
        );
        browser.assert_no_errors().await;
    }
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_conversation_opens_at_the_newest_loads_older_on_scroll_and_keeps_the_input_on_screen()
 {
    let test = &this_test();
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    let alice = user("alice");
    let room = server.create_room(&alice, "A long one", &[]).await;
    for n in 1..=120 {
        server
            .send(&alice, &room, &format!("message {n}\nwith a second line"))
            .await;
    }
    let on_screen = r#"
        const rect = (el) => el.getBoundingClientRect();
        const list = document.getElementById('messages');
        const last = [...list.querySelectorAll('.message')].at(-1);
        const input = document.getElementById('body');
        return {
          inputVisible: rect(input).top >= 0 && rect(input).bottom <= window.innerHeight,
          newestVisible: rect(last).bottom <= rect(list).bottom + 1 && rect(last).top >= rect(list).top - 1,
          shown: list.querySelectorAll('.message').length,
        };"#;
    for (width, height) in [(375, 667), (1280, 800)] {
        browser.resize(width, height).await;
        for page in ["widget", "admin"] {
            let url = match page {
                "widget" => server.url(&format!("/widget?user=alice&{TIMINGS}")),
                _ => server.url(&format!("/admin?user=agent&role=admin&{TIMINGS}")),
            };
            browser.goto(&url).await;
            browser.status_is("live").await;
            if page == "admin" {
                browser
                    .click(&format!("[data-room-id='{room}'] button"))
                    .await;
            }
            browser
                .wait_for(
                    "the newest message",
                    "[...document.querySelectorAll('#messages .body')].at(-1)?.textContent.startsWith('message 120')",
                )
                .await;
            let view = browser.run(on_screen).await;
            assert_eq!(view["inputVisible"], true, "{page} at {width}px: {view}");
            assert_eq!(view["newestVisible"], true, "{page} at {width}px: {view}");
            assert!(
                view["shown"].as_i64().unwrap() < 120,
                "not all at once: {view}"
            );
            browser.screenshot(&format!("{page}-long-{width}px")).await;
            // Scrolling up loads the older ones, page by page, to the first.
            let started = std::time::Instant::now();
            loop {
                let first = browser
                    .run(
                        "const list = document.getElementById('messages');
                         list.scrollTop = 0;
                         list.dispatchEvent(new Event('scroll'));
                         return list.querySelector('.body').textContent;",
                    )
                    .await;
                if first.as_str().unwrap().starts_with("message 1\n") {
                    break;
                }
                assert!(
                    started.elapsed() < crate::support::WAIT,
                    "older messages did not load"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let bodies = browser.shown_bodies().await;
            assert_eq!(bodies.len(), 120, "each once");
            assert!(bodies.windows(2).all(|pair| {
                let number = |body: &str| {
                    body.split_whitespace()
                        .nth(1)
                        .unwrap()
                        .parse::<u32>()
                        .unwrap()
                };
                number(&pair[0]) + 1 == number(&pair[1])
            }));
            let view = browser.run(on_screen).await;
            assert_eq!(
                view["inputVisible"], true,
                "{page} at {width}px, scrolled: {view}"
            );
        }
    }
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_moves_focus_to_the_message_box() {
    let test = &this_test();
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    browser
        .goto(&server.url(&format!("/widget?{TIMINGS}")))
        .await;
    browser
        .wait_for(
            "the sign-in form, focused",
            "!document.getElementById('signin').hidden && document.activeElement?.name === 'user'",
        )
        .await;
    let name = browser
        .client
        .find(fantoccini::Locator::Css("#signin input[name=user]"))
        .await
        .unwrap();
    name.send_keys("Zoë").await.unwrap();
    name.send_keys("\u{E007}").await.unwrap();
    browser
        .wait_for(
            "the focus in the message box",
            "document.activeElement?.id === 'body' && !document.getElementById('body').disabled",
        )
        .await;
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_pages_pass_an_accessibility_check_with_no_serious_violation() {
    let test = &this_test();
    if !web_packages_installed(test) {
        return;
    }
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let axe = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("web/node_modules/axe-core/axe.min.js"),
    )
    .expect("axe-core, installed by npm ci in web/");
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    let alice = user("alice");
    let room = create_room_with_message(&server, &alice, "Hello").await;
    server
        .send(&admin("agent"), &room, "Hi, how can I help?")
        .await;
    let admin_page = format!("/admin?user=agent&role=admin&{TIMINGS}");
    let widget_page = format!("/widget?user=alice&{TIMINGS}");
    for (page, url) in [
        ("admin", admin_page.clone()),
        ("admin, asking before a deletion", admin_page),
        ("widget", widget_page.clone()),
        ("widget, editing a message", widget_page),
        ("sign-in", format!("/widget?{TIMINGS}")),
    ] {
        // A tab remembers who signed in: forget it, to see the form.
        browser.run("sessionStorage.clear(); return 0;").await;
        browser.goto(&server.url(&url)).await;
        if page == "sign-in" {
            browser
                .wait_for("the form", "!document.getElementById('signin').hidden")
                .await;
        } else {
            browser.status_is("live").await;
        }
        if page.starts_with("admin") {
            browser
                .click(&format!("[data-room-id='{room}'] button"))
                .await;
            browser
                .wait_for(
                    "the conversation",
                    "document.querySelector('#messages .body')",
                )
                .await;
        }
        // The controls of a message as they open in place.
        if page == "admin, asking before a deletion" {
            browser.click("#messages .actions .delete").await;
            browser
                .wait_for(
                    "the question",
                    "document.querySelector('#messages .confirm')",
                )
                .await;
        }
        if page == "widget, editing a message" {
            browser
                .wait_for(
                    "the controls",
                    "document.querySelector('#messages .actions .edit')",
                )
                .await;
            browser.click("#messages .actions .edit").await;
            browser
                .wait_for("the editor", "document.querySelector('#messages .editor')")
                .await;
        }
        browser.run(&format!("{axe}\nreturn 0;")).await;
        let result = browser
            .run_async(
                "axe.run(document).then((result) => done({
                   checked: result.passes.length,
                   violations: result.violations
                     .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                     .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.html) })),
                 }));",
            )
            .await;
        assert!(
            result["checked"].as_u64().unwrap() > 10,
            "axe ran: {result}"
        );
        assert_eq!(
            result["violations"],
            Value::Array(vec![]),
            "{page}: {result:#}"
        );
    }
    browser.close().await;
}
