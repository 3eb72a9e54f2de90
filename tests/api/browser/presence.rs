//! Typing and presence between the two pages: the customer's typing in the
//! widget shows in the admin panel and goes away by itself when it expires,
//! an agent's typing shows in the widget, and the admin panel on one
//! instance sees the customer come online and go offline on another
//! (PostgreSQL, which carries signals between instances).

use super::{
    Browser, SERVER_ENV, admin_with_room_open, alices_widget, create_room_with_message, this_test,
};
use crate::support::{Backend, ServerProcess, SharedDb, user};
use fantoccini::Locator;
use std::time::Duration;

/// The open conversation's typing line in the admin panel.
const ADMIN_TYPING: &str = "document.getElementById('typing').textContent";

/// Whether the admin list's dot for `room` says the customer is `online`.
fn row_dot(room: &str, online: bool) -> String {
    format!(
        "document.querySelector('[data-room-id=\"{room}\"] .presence')?.dataset.online === '{online}' \
         && document.querySelector('[data-room-id=\"{room}\"] .presence').textContent === '{}'",
        if online {
            "Customer online"
        } else {
            "Customer offline"
        }
    )
}

/// Whether the open conversation's dot says the customer is `online`.
fn open_dot(online: bool) -> String {
    format!(
        "!document.getElementById('room-presence').hidden \
         && document.getElementById('room-presence').dataset.online === '{online}'"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_in_the_widget_shows_in_the_admin_panel_and_goes_away_by_itself() {
    let test = &this_test();
    // Two browsers, so that neither page loses the focus to the other (a
    // blur would stop the typing at once, not by expiry).
    let Some(agent) = Browser::start(test).await else {
        return;
    };
    let Some(customer) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    let room = create_room_with_message(&server, &user("alice"), "Hello?").await;
    admin_with_room_open(&agent, &server.address, &room).await;
    alices_widget(&customer, &server.address).await;
    assert_eq!(agent.run(&format!("return {ADMIN_TYPING};")).await, "");

    let body = customer.client.find(Locator::Id("body")).await.unwrap();
    body.send_keys("Where is my").await.unwrap();
    agent
        .wait_for(
            "the customer typing",
            &format!("{ADMIN_TYPING} === 'alice is typing…'"),
        )
        .await;
    let live = agent
        .run("return document.getElementById('typing').getAttribute('aria-live');")
        .await;
    assert_eq!(live, "polite", "the typing line is a polite live region");
    // Nothing renews it: it lasts the server's expiresInMs (6 s), then goes.
    let gone = agent
        .wait_within(
            Duration::from_secs(12),
            "the typing line to clear by itself",
            &format!("{ADMIN_TYPING} === ''"),
        )
        .await;
    assert!(
        gone >= Duration::from_secs(3),
        "it expired, it was not stopped: gone after {gone:?}"
    );
    assert_eq!(
        customer.run("return document.activeElement?.id;").await,
        "body",
        "the widget kept the focus throughout"
    );

    // And the other way: the agent types, the widget says so until the reply.
    let reply = agent.client.find(Locator::Id("body")).await.unwrap();
    reply.send_keys("Let me check").await.unwrap();
    customer
        .wait_for(
            "the agent typing",
            "document.getElementById('typing').textContent === 'Agent is typing…'",
        )
        .await;
    reply.send_keys("\u{E007}").await.unwrap(); // Enter
    customer
        .wait_for(
            "the reply, and the typing line cleared",
            "document.getElementById('typing').textContent === '' \
             && [...document.querySelectorAll('#messages .body')].some((b) => b.textContent === 'Let me check')",
        )
        .await;
    agent.assert_no_errors().await;
    customer.assert_no_errors().await;
    agent.close().await;
    customer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_on_one_instance_sees_the_customer_online_on_another_and_offline_after_they_leave()
 {
    let test = "browser::presence::\
        the_admin_on_one_instance_sees_the_customer_online_on_another_and_offline_after_they_leave";
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let Some(agent) = Browser::start(test).await else {
        return;
    };
    let Some(customer) = Browser::start(test).await else {
        return;
    };
    let env = [SERVER_ENV[0], ("CHAT_PRESENCE_GRACE", "1s")];
    let db = SharedDb::create(&backend).await;
    let a = ServerProcess::start_on(&db, 0, &env).await;
    let b = ServerProcess::start_on(&db, 0, &env).await;
    let room = create_room_with_message(&b, &user("alice"), "Hello from B").await;
    admin_with_room_open(&agent, &a.address, &room).await;
    agent
        .wait_for("the customer offline", &row_dot(&room, false))
        .await;
    agent
        .wait_for("the customer offline", &open_dot(false))
        .await;

    alices_widget(&customer, &b.address).await;
    agent
        .wait_for(
            "the customer online, in the list and the conversation",
            &format!("{} && {}", row_dot(&room, true), open_dot(true)),
        )
        .await;

    customer.close().await;
    agent
        .wait_for(
            "the customer offline after the grace",
            &format!("{} && {}", row_dot(&room, false), open_dot(false)),
        )
        .await;
    agent.assert_no_errors().await;
    agent.close().await;
}
