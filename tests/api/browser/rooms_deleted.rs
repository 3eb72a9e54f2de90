//! Room deletion on the two pages: a room another admin deletes leaves the
//! admin panel's list live, the room's widget says it was deleted and opens
//! no stream again, and after a reload neither page shows the room; the
//! admin panel deletes its open conversation after a question in place
//! (offered to admins only), says when that failed, and every admin panel
//! drops the room.

use super::{
    Browser, SERVER_ENV, TIMINGS, TOTAL, admin_with_room_open, alices_widget, badge,
    create_room_with_message, this_test,
};
use crate::support::proxy::Proxy;
use crate::support::{Backend, ServerProcess, admin, send, user};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

const DELETED: &str = "This conversation was deleted.";

/// Whether `room` has a row in the admin list.
fn listed(room: &str) -> String {
    format!("!!document.querySelector('[data-room-id=\"{room}\"]')")
}

/// Whether the open conversation shows the notice `text` instead of its
/// messages, and the message box is disabled.
fn gone_with(text: &str) -> String {
    format!(
        "document.querySelector('#messages .gone')?.textContent === '{text}'
         && document.querySelectorAll('#messages .message').length === 0
         && document.getElementById('body').disabled"
    )
}

/// Whether the element of this id is hidden.
fn hidden(id: &str) -> String {
    format!("document.getElementById('{id}').hidden")
}

/// `GET /api/chat/rooms/{room}`'s status for `token`.
async fn room_status(server: &ServerProcess, token: &str, room: &str) -> StatusCode {
    let (status, _) = send(
        reqwest::Client::new()
            .get(server.url(&format!("/api/chat/rooms/{room}")))
            .bearer_auth(token),
    )
    .await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_another_admin_deletes_leaves_the_admin_list_live_and_its_widget_says_it_was_deleted()
 {
    let test = &this_test();
    // The agent's browser and the customer's, each its own sign-in.
    let Some(agent) = Browser::start(test).await else {
        return;
    };
    let Some(customer) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    // The widget through a proxy that counts the streams it opens.
    let proxy = Proxy::start(&server.address).await;
    let room = create_room_with_message(&server, &user("alice"), "Where is my parcel?").await;
    let other = create_room_with_message(&server, &user("bob"), "Can I pay later?").await;
    admin_with_room_open(&agent, &server.address, &room).await;
    agent
        .wait_for(
            "the other room unread",
            &format!("{} === '1' && {TOTAL} === '1'", badge(&other)),
        )
        .await;
    alices_widget(&customer, &proxy.address).await;
    customer
        .run("window.loadedAt = performance.timeOrigin; return 0;")
        .await;

    let (status, answer) = send(
        reqwest::Client::new()
            .delete(server.url(&format!("/api/chat/rooms/{room}")))
            .bearer_auth(admin("supervisor")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["roomId"], json!(room));
    assert_eq!(answer["deletedBy"], "supervisor");

    customer
        .wait_for("the widget to say so, live", &gone_with(DELETED))
        .await;
    customer.assert_not_reloaded().await;
    customer.status_is("offline").await;
    customer.screenshot("widget-room-deleted").await;
    agent
        .wait_for(
            "the room off the list, live, and the open conversation saying why",
            &format!("!{} && {}", listed(&room), gone_with(DELETED)),
        )
        .await;
    assert_eq!(
        agent.run(&format!("return {};", listed(&other))).await,
        true
    );
    assert_eq!(agent.run(&format!("return {TOTAL};")).await, "1");
    assert_eq!(
        agent
            .run(&format!("return {};", hidden("delete-room")))
            .await,
        true,
        "nothing left to delete"
    );
    agent.screenshot("admin-open-room-deleted").await;

    // The widget's view stopped: nothing waits to reconnect, nothing does.
    let opened = proxy.stream_opens();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(proxy.stream_opens(), opened, "no stream opened again");
    assert_eq!(
        customer
            .run("return window.chatStream.pendingTimers();")
            .await,
        json!([])
    );
    assert_eq!(
        customer
            .run(&format!("return {};", gone_with(DELETED)))
            .await,
        true,
        "the notice stays"
    );
    customer.status_is("offline").await;
    customer.assert_no_errors().await;
    agent.assert_no_errors().await;

    agent
        .goto(&server.url(&format!("/admin?user=agent&role=admin&{TIMINGS}")))
        .await;
    agent.status_is("live").await;
    agent.wait_for("the other room", &listed(&other)).await;
    assert_eq!(
        agent.run(&format!("return {};", listed(&room))).await,
        false
    );
    assert_eq!(agent.run(&format!("return {TOTAL};")).await, "1");

    // Alice has no room now: her widget starts afresh, nothing of the old one shown.
    let widget = proxy.url(&format!("/widget?user=alice&{TIMINGS}"));
    customer.goto(&widget).await;
    customer.status_is("live").await;
    customer
        .wait_for(
            "an empty conversation, ready for a new message",
            "document.querySelector('#messages .empty') && !document.getElementById('body').disabled",
        )
        .await;
    assert_eq!(customer.run("return window.chatRoomId;").await, json!(null));
    assert!(customer.shown_bodies().await.is_empty());
    // The room's own address, kept from before: it says the room is gone.
    customer.goto(&format!("{widget}&roomId={room}")).await;
    customer
        .wait_for(
            "the room gone, said so",
            &gone_with("This conversation is no longer available."),
        )
        .await;
    customer.status_is("offline").await;
    customer.assert_no_errors().await;
    agent.assert_no_errors().await;
    agent.close().await;
    customer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_deletes_the_open_conversation_after_a_question_in_place_and_every_admin_panel_drops_it()
 {
    let test = &this_test();
    let Some(deleting) = Browser::start(test).await else {
        return;
    };
    let Some(watching) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    // The deleting panel through a proxy, to take its network away.
    let proxy = Proxy::start(&server.address).await;
    let alice = user("alice");
    let room = create_room_with_message(&server, &alice, "Please close my account").await;

    // Not offered to a customer on the admin page: the server lets admins only.
    watching
        .goto(&server.url(&format!("/admin?user=alice&role=user&{TIMINGS}")))
        .await;
    watching.status_is("live").await;
    watching
        .click(&format!("[data-room-id='{room}'] button"))
        .await;
    watching
        .wait_for(
            "the conversation",
            "document.querySelector('#messages .body')",
        )
        .await;
    assert_eq!(
        watching
            .run(&format!("return {};", hidden("delete-room")))
            .await,
        true
    );
    admin_with_room_open(&watching, &server.address, &room).await;

    admin_with_room_open(&deleting, &proxy.address, &room).await;
    deleting.click("#delete-room").await;
    deleting
        .wait_for(
            "the question, focused on its answer",
            &format!(
                "!{} && {} && document.activeElement?.id === 'confirm-delete-room'",
                hidden("delete-room-confirm"),
                hidden("delete-room")
            ),
        )
        .await;
    deleting
        .screenshot("admin-asking-before-deleting-a-room")
        .await;
    deleting.click("#keep-room").await;
    deleting
        .wait_for(
            "the question put away, the focus back on the button",
            &format!(
                "{} && document.activeElement?.id === 'delete-room'",
                hidden("delete-room-confirm")
            ),
        )
        .await;
    assert_eq!(room_status(&server, &alice, &room).await, StatusCode::OK);

    // Asked while the network is down: it says so, and the room stays.
    deleting.click("#delete-room").await;
    proxy.down(true);
    deleting.click("#confirm-delete-room").await;
    deleting
        .wait_for(
            "the failure, said in place",
            &format!(
                "!{} && document.getElementById('delete-room-problem').textContent
                   === 'Not deleted: the server could not be reached; try again.'
                 && !{}",
                hidden("delete-room-problem"),
                hidden("delete-room")
            ),
        )
        .await;
    assert_eq!(room_status(&server, &alice, &room).await, StatusCode::OK);
    proxy.down(false);
    deleting.status_is("live").await;

    deleting.click("#delete-room").await;
    deleting.click("#confirm-delete-room").await;
    for (panel, which) in [
        (&deleting, "the deleting panel"),
        (&watching, "the other panel"),
    ] {
        panel
            .wait_for(
                &format!("the room off {which}'s list, its conversation gone"),
                &format!(
                    "!{} && {} && {}",
                    listed(&room),
                    gone_with(DELETED),
                    hidden("delete-room-problem")
                ),
            )
            .await;
        panel.status_is("live").await;
        panel.assert_no_errors().await;
    }
    assert_eq!(
        room_status(&server, &admin("agent"), &room).await,
        StatusCode::NOT_FOUND
    );
    deleting.close().await;
    watching.close().await;
}
