//! The admin panel as a support inbox, with two agents on two instances
//! (PostgreSQL): one assigns a conversation to the other, who sees it come
//! into Mine at once; resolved, it leaves the open view until the customer
//! writes again; snoozed for a few seconds, it comes back by itself.

use super::{Browser, SERVER_ENV, TIMINGS, create_room_with_message};
use crate::support::{Backend, ServerProcess, SharedDb, user};
use fantoccini::Locator;

/// The open conversation's state line, e.g. `Open · assigned to you`.
const STATE: &str = "document.getElementById('conversation-state').textContent";

fn count(tab: &str, n: usize) -> String {
    format!("document.getElementById('count-{tab}').textContent === '{n}'")
}

fn row(room: &str) -> String {
    format!("document.querySelector('[data-room-id=\"{room}\"]')")
}

/// Opens `agent`'s admin panel at `address`, live.
async fn panel(browser: &Browser, address: &str, agent: &str) {
    browser
        .goto(&format!(
            "{address}/admin?user={agent}&role=admin&{TIMINGS}"
        ))
        .await;
    browser.status_is("live").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_assigns_a_conversation_to_another_on_another_instance_who_resolves_and_snoozes_it()
 {
    let test = "browser::inbox::\
        an_agent_assigns_a_conversation_to_another_on_another_instance_who_resolves_and_snoozes_it";
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let Some(ann) = Browser::start(test).await else {
        return;
    };
    let Some(bo) = Browser::start(test).await else {
        return;
    };
    let db = SharedDb::create(&backend).await;
    let a = ServerProcess::start_on(&db, 0, &SERVER_ENV).await;
    let b = ServerProcess::start_on(&db, 0, &SERVER_ENV).await;
    let alice = user("alice");
    let room = create_room_with_message(&a, &alice, "My invoice is wrong").await;
    // Bo signs in first (on B): an agent Ann can choose.
    panel(&bo, &b.address, "bo").await;
    bo.wait_for(
        "the conversation, none of it his",
        &format!("{} && {}", count("all", 1), count("mine", 0)),
    )
    .await;
    panel(&ann, &a.address, "ann").await;
    ann.wait_for("the open conversation counted", &count("all", 1))
        .await;
    ann.wait_for("as unassigned", &count("unassigned", 1)).await;
    ann.click(&format!("[data-room-id='{room}'] button")).await;
    ann.wait_for("its state", &format!("{STATE} === 'Open · unassigned'"))
        .await;
    ann.wait_for(
        "bo among the agents",
        "[...document.getElementById('assignee').options].some((o) => o.value === 'bo')",
    )
    .await;
    ann.client
        .find(Locator::Id("assignee"))
        .await
        .unwrap()
        .select_by_value("bo")
        .await
        .unwrap();
    ann.wait_for(
        "given to bo",
        &format!("{STATE} === 'Open · assigned to bo'"),
    )
    .await;

    // On the other instance, at once: in Bo's Mine.
    bo.wait_for("it is his", &count("mine", 1)).await;
    bo.click("[data-tab='mine']").await;
    bo.wait_for("in Mine", &row(&room)).await;
    bo.click(&format!("[data-room-id='{room}'] button")).await;
    bo.wait_for(
        "its state",
        &format!("{STATE} === 'Open · assigned to you'"),
    )
    .await;
    bo.click("#resolve").await;
    bo.wait_for(
        "resolved, out of the open view",
        &format!(
            "{STATE} === 'Resolved · assigned to you' && !{} && {}",
            row(&room),
            count("mine", 0)
        ),
    )
    .await;
    ann.wait_for("Ann sees it resolved", &count("all", 0)).await;

    // Alice writes again: open again, back in Bo's Mine.
    a.send(&alice, &room, "It is still wrong").await;
    bo.wait_for(
        "open again",
        &format!(
            "{STATE} === 'Open · assigned to you' && {} && {}",
            row(&room),
            count("mine", 1)
        ),
    )
    .await;

    // Snoozed a few seconds (the field counts whole ones), it leaves the
    // view and comes back by itself.
    bo.run(
        "const at = new Date(Math.ceil((Date.now() + 4000) / 1000) * 1000);
         const pad = (n) => String(n).padStart(2, '0');
         document.getElementById('snooze-until').value =
           `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T` +
           `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
         return 0;",
    )
    .await;
    bo.click("#snooze").await;
    bo.wait_for(
        "snoozed",
        &format!(
            "{STATE}.startsWith('Snoozed until') && !{} && {}",
            row(&room),
            count("mine", 0)
        ),
    )
    .await;
    bo.wait_for(
        "back by itself",
        &format!(
            "{STATE} === 'Open · assigned to you' && {} && {}",
            row(&room),
            count("mine", 1)
        ),
    )
    .await;
    ann.wait_for("Ann sees it back", &count("all", 1)).await;
    ann.assert_no_errors().await;
    bo.assert_no_errors().await;
    ann.close().await;
    bo.close().await;
}
