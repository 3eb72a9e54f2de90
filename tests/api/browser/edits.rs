//! Edits, deletions and seen receipts on the two pages, live between an
//! admin tab and a widget tab of one browser: a deletion in the admin panel
//! is a tombstone in the widget (after a reload too), an edit in the widget
//! shows in the admin panel, each side sees when the other has read, and a
//! refused edit says why.

use super::{Browser, SERVER_ENV, TIMINGS, create_room_with_message, this_test};
use crate::support::{Backend, ServerProcess, user};
use fantoccini::Locator;
use fantoccini::wd::WindowHandle;
use serde_json::json;

/// The CSS selector of a message's list item.
fn item(message: &serde_json::Value) -> String {
    format!(
        "#messages [data-message-id=\"{}\"]",
        message["id"].as_str().expect("a message id")
    )
}

/// A JavaScript expression: the text of `part` (a CSS selector) of the item, or undefined.
fn text_of(item: &str, part: &str) -> String {
    format!("document.querySelector('{item} {part}')?.textContent")
}

/// The admin panel in the browser's first tab, live, and a second tab.
async fn admin_and_a_tab(
    browser: &Browser,
    server: &ServerProcess,
) -> (WindowHandle, WindowHandle) {
    let admin_tab = browser.client.window().await.unwrap();
    browser
        .goto(&server.url(&format!("/admin?user=agent&role=admin&{TIMINGS}")))
        .await;
    browser.status_is("live").await;
    let widget_tab = browser.client.new_window(true).await.unwrap().handle;
    (admin_tab, widget_tab)
}

async fn switch(browser: &Browser, tab: &WindowHandle) {
    browser.client.switch_to_window(tab.clone()).await.unwrap();
}

async fn open_room_in_admin(browser: &Browser, room: &str, shown: &str) {
    browser
        .click(&format!("[data-room-id='{room}'] button"))
        .await;
    browser.wait_for("the conversation", shown).await;
}

/// Replaces the text of the open editor and presses Enter.
async fn edit_to(browser: &Browser, text: &str) {
    let box_ = browser
        .client
        .find(Locator::Css("#messages .editor textarea"))
        .await
        .expect("the editor");
    box_.clear().await.unwrap();
    box_.send_keys(text).await.unwrap();
    box_.send_keys("\u{E007}").await.unwrap(); // Enter
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_deleted_in_the_admin_panel_is_a_tombstone_live_in_the_widget_and_after_a_reload()
{
    let test = &this_test();
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    let alice = user("alice");
    let room = create_room_with_message(&server, &alice, "Hello").await;
    let secret = server
        .send(&alice, &room, "my card is 4111 1111 1111 1111")
        .await;
    let (admin_tab, widget_tab) = admin_and_a_tab(&browser, &server).await;

    switch(&browser, &widget_tab).await;
    let widget = server.url(&format!("/widget?user=alice&{TIMINGS}"));
    browser.goto(&widget).await;
    browser.status_is("live").await;
    browser
        .wait_for(
            "the message",
            &format!(
                "{} === 'my card is 4111 1111 1111 1111'",
                text_of(&item(&secret), ".body")
            ),
        )
        .await;
    browser
        .run("window.loadedAt = performance.timeOrigin; return 0;")
        .await;

    switch(&browser, &admin_tab).await;
    open_room_in_admin(
        &browser,
        &room,
        &format!("document.querySelector('{}')", item(&secret)),
    )
    .await;
    browser.click(&format!("{} .delete", item(&secret))).await;
    browser
        .wait_for(
            "the question, focused on its answer",
            "document.activeElement?.classList.contains('confirm-delete')",
        )
        .await;
    browser.screenshot("admin-asking-before-a-deletion").await;
    browser
        .click(&format!("{} .confirm-delete", item(&secret)))
        .await;
    let tombstone = format!(
        "document.querySelector('{0}')?.classList.contains('deleted') && {1} === 'message deleted'
         && !document.getElementById('messages').textContent.includes('4111')",
        item(&secret),
        text_of(&item(&secret), ".body"),
    );
    browser
        .wait_for("the tombstone in the admin panel", &tombstone)
        .await;
    assert_eq!(
        browser
            .run(&format!(
                "return document.querySelectorAll('{} button').length;",
                item(&secret)
            ))
            .await,
        json!(0),
        "nothing left to do to a tombstone"
    );
    browser.assert_no_errors().await;

    switch(&browser, &widget_tab).await;
    browser
        .wait_for("the tombstone in the widget, live", &tombstone)
        .await;
    browser.assert_not_reloaded().await;
    assert_eq!(
        browser.shown_bodies().await,
        ["Hello", "message deleted"],
        "the tombstone keeps its place"
    );
    browser.goto(&widget).await;
    browser.status_is("live").await;
    browser
        .wait_for("the tombstone after a reload", &tombstone)
        .await;
    browser.screenshot("widget-tombstone").await;
    assert_eq!(browser.shown_bodies().await, ["Hello", "message deleted"]);
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_shows_seen_once_the_agent_opens_the_room_and_the_admin_once_the_customer_sees_the_reply()
 {
    let test = &this_test();
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    let (admin_tab, widget_tab) = admin_and_a_tab(&browser, &server).await;
    switch(&browser, &widget_tab).await;
    let widget = server.url(&format!("/widget?user=alice&{TIMINGS}"));
    browser.goto(&widget).await;
    browser.type_and_send("Has my order shipped?").await;
    browser
        .wait_for(
            "the message, stored",
            "document.querySelector('#messages .message.mine')",
        )
        .await;
    let room = browser.run("return window.chatRoomId;").await;
    let room = room.as_str().expect("the widget's room").to_owned();
    let receipts = "[...document.querySelectorAll('#messages .receipt')].map((r) => r.closest('.message').querySelector('.body').textContent).join('|')";
    assert_eq!(
        browser.run(&format!("return {receipts};")).await,
        json!(""),
        "nobody else has read it"
    );

    switch(&browser, &admin_tab).await;
    let row_receipt = format!("document.querySelector('[data-room-id=\"{room}\"] .receipt')");
    browser.wait_for("the room", &row_receipt).await;
    assert_eq!(
        browser
            .run(&format!("return {row_receipt}.textContent;"))
            .await,
        json!(""),
        "the customer spoke last: no reply to have seen"
    );
    // Opening the room reads it.
    open_room_in_admin(&browser, &room, "document.querySelector('#messages .body')").await;

    switch(&browser, &widget_tab).await;
    browser
        .wait_for(
            "Seen under the customer's message",
            &format!("{receipts} === 'Has my order shipped?'"),
        )
        .await;
    // The customer is away while the agent replies.
    browser.goto("about:blank").await;

    switch(&browser, &admin_tab).await;
    browser.type_and_send("Yes, it left this morning.").await;
    browser
        .wait_for(
            "the reply marked not seen in the list",
            &format!(
                "{row_receipt}.dataset.seen === 'false' && {row_receipt}.textContent === 'Not seen'"
            ),
        )
        .await;
    assert_eq!(
        browser.run(&format!("return {receipts};")).await,
        json!(""),
        "no Seen in the conversation yet"
    );

    switch(&browser, &widget_tab).await;
    browser.goto(&widget).await;
    browser
        .wait_for(
            "the reply in the widget, its own message still seen",
            &format!(
                "[...document.querySelectorAll('#messages .body')].some((b) => b.textContent === 'Yes, it left this morning.')
                 && {receipts} === 'Has my order shipped?'"
            ),
        )
        .await;
    browser.assert_no_errors().await;

    switch(&browser, &admin_tab).await;
    browser
        .wait_for(
            "the reply marked seen, in the list and under it",
            &format!(
                "{row_receipt}.dataset.seen === 'true' && {row_receipt}.textContent === 'Seen'
                 && {receipts} === 'Yes, it left this morning.'"
            ),
        )
        .await;
    browser.screenshot("admin-seen").await;
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_and_a_deletion_in_the_widget_show_live_in_the_admin_panel() {
    let test = &this_test();
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    let alice = user("alice");
    let room = create_room_with_message(&server, &alice, "Hello").await;
    let typo = server.send(&alice, &room, "I ned help").await;
    let (admin_tab, widget_tab) = admin_and_a_tab(&browser, &server).await;
    open_room_in_admin(
        &browser,
        &room,
        &format!("{} === 'I ned help'", text_of(&item(&typo), ".body")),
    )
    .await;
    browser
        .run("window.loadedAt = performance.timeOrigin; return 0;")
        .await;

    switch(&browser, &widget_tab).await;
    browser
        .goto(&server.url(&format!("/widget?user=alice&{TIMINGS}")))
        .await;
    browser.status_is("live").await;
    browser
        .wait_for(
            "the controls on the last message only",
            &format!(
                "document.querySelectorAll('#messages .actions').length === 1
                 && document.querySelector('{} .actions .edit')",
                item(&typo)
            ),
        )
        .await;
    browser.click(&format!("{} .edit", item(&typo))).await;
    browser
        .wait_for(
            "the editor, focused, with the body",
            "document.activeElement?.matches('#messages .editor textarea') && document.activeElement.value === 'I ned help'",
        )
        .await;
    browser.screenshot("widget-editing").await;
    edit_to(&browser, "I need help").await;
    let edited = format!(
        "{} === 'I need help' && {} === '(edited)' && !document.querySelector('#messages .editor')",
        text_of(&item(&typo), ".body"),
        text_of(&item(&typo), ".edited"),
    );
    browser.wait_for("the edit in the widget", &edited).await;

    switch(&browser, &admin_tab).await;
    browser
        .wait_for("the edit in the admin panel, live", &edited)
        .await;
    browser.screenshot("admin-edited").await;
    browser.assert_not_reloaded().await;

    switch(&browser, &widget_tab).await;
    browser.click(&format!("{} .delete", item(&typo))).await;
    browser
        .click(&format!("{} .confirm-delete", item(&typo)))
        .await;
    let deleted = format!(
        "{} === 'message deleted' && !document.getElementById('messages').textContent.includes('need help')",
        text_of(&item(&typo), ".body"),
    );
    browser
        .wait_for("the tombstone in the widget", &deleted)
        .await;
    browser
        .wait_for(
            "the controls on the message before, now the last",
            "document.querySelectorAll('#messages .actions').length === 1
             && [...document.querySelectorAll('#messages .message')][0].querySelector('.actions .edit')",
        )
        .await;
    browser.assert_no_errors().await;

    switch(&browser, &admin_tab).await;
    browser
        .wait_for("the tombstone in the admin panel, live", &deleted)
        .await;
    browser.assert_not_reloaded().await;
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_the_server_refuses_says_why_and_leaves_the_message_as_it_was() {
    let test = &this_test();
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    // Every edit comes too late.
    let server = ServerProcess::start(
        &Backend::Sqlite,
        &[SERVER_ENV[0], ("CHAT_MESSAGE_EDIT_WINDOW", "0s")],
    )
    .await;
    let alice = user("alice");
    let room = create_room_with_message(&server, &alice, "Hello").await;
    let message = server.send(&alice, &room, "too late to fix").await;
    browser
        .goto(&server.url(&format!("/widget?user=alice&{TIMINGS}")))
        .await;
    browser.status_is("live").await;
    browser.click(&format!("{} .edit", item(&message))).await;
    edit_to(&browser, "fixed").await;
    browser
        .wait_for(
            "the server's reason, with the editor still open",
            &format!(
                "{} === 'Not saved: a message may be edited only shortly after it was sent.'
                 && document.querySelector('#messages .editor textarea')?.value === 'fixed'",
                text_of(&item(&message), "[role=alert]")
            ),
        )
        .await;
    browser.screenshot("widget-edit-refused").await;
    let textarea = browser
        .client
        .find(Locator::Css("#messages .editor textarea"))
        .await
        .unwrap();
    textarea.send_keys("\u{E00C}").await.unwrap(); // Escape
    browser
        .wait_for(
            "the message as it was, the editor and the reason gone",
            &format!(
                "{} === 'too late to fix' && !document.querySelector('#messages .editor, #messages .problem')
                 && document.activeElement?.classList.contains('edit')",
                text_of(&item(&message), ".body")
            ),
        )
        .await;
    assert_eq!(
        browser
            .run(&format!(
                "return !!document.querySelector('{} .edited');",
                item(&message)
            ))
            .await,
        json!(false)
    );
    browser.assert_no_errors().await;
    browser.close().await;
}
