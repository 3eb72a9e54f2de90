//! Search in the admin panel: an agent types a word that one old message of
//! a long conversation holds, sees it marked in the results, and opens the
//! conversation at that message, in view and marked, with older and newer
//! pages loading as the list scrolls, and messages arriving meanwhile shown
//! once, in order, with no gap; a reply sent from there shows at the
//! newest; Escape brings the list back. Results group
//! by conversation, page on with Load more, and show a body's markup as text.

use super::attachments::serious_violations;
use super::{Browser, SERVER_ENV, TIMINGS, this_test, web_packages_installed};
use crate::support::{Backend, ServerProcess, on_both_stores, user};
use fantoccini::Locator;
use serde_json::{Value, json};

on_both_stores!(
    an_agent_finds_an_old_message_by_its_word_and_the_conversation_opens_at_it_with_no_gap_as_messages_arrive
);

/// The word only message 37 holds.
const WORD: &str = "zephyrquartz";

/// The seqs the open conversation shows, in order.
const SHOWN_SEQS: &str =
    "[...document.querySelectorAll('#messages .message')].map((m) => Number(m.dataset.seq))";

/// Scrolls the conversation to its end (or `0`: its start), as a person
/// does, and says which seq shows there; for a wait that scrolls on.
fn scrolled_to(end: bool, seq: u32) -> String {
    let (top, pick) = if end {
        ("list.scrollHeight", "at(-1)")
    } else {
        ("0", "at(0)")
    };
    format!(
        "(() => {{
           const list = document.getElementById('messages');
           list.scrollTop = {top};
           list.dispatchEvent(new Event('scroll'));
           return [...list.querySelectorAll('.message')].{pick}?.dataset.seq === '{seq}';
         }})()"
    )
}

/// Opens `agent`'s admin panel on `server`, live.
async fn panel(browser: &Browser, server: &ServerProcess) {
    browser
        .goto(&server.url(&format!("/admin?user=agent&role=admin&{TIMINGS}")))
        .await;
    browser.status_is("live").await;
}

/// Types `text` into the search box.
async fn search_for(browser: &Browser, text: &str) {
    let box_ = browser
        .client
        .find(Locator::Id("search-box"))
        .await
        .expect("the search box");
    box_.send_keys(text).await.expect("typing");
}

/// Asserts the shown seqs run from `first` to `last`, each once.
async fn shows_every_seq_once(browser: &Browser, first: u32, last: u32) {
    let shown: Vec<u32> =
        serde_json::from_value(browser.run(&format!("return {SHOWN_SEQS};")).await).expect("seqs");
    let expected: Vec<u32> = (first..=last).collect();
    assert_eq!(shown, expected, "every message once, in order, no gap");
}

async fn an_agent_finds_an_old_message_by_its_word_and_the_conversation_opens_at_it_with_no_gap_as_messages_arrive(
    backend: Backend,
) {
    let test = &this_test();
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let store = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres(_) => "postgres",
    };
    let server = ServerProcess::start(&backend, &SERVER_ENV).await;
    let alice = user("alice");
    let room = server.create_room(&alice, "Parcel to Lisbon", &[]).await;
    let mut found = Value::Null;
    for n in 1..=500 {
        let body = if n == 37 {
            format!("message 37: the courier said {WORD} at the door")
        } else {
            format!("message {n}")
        };
        let message = server.send(&alice, &room, &body).await;
        if n == 37 {
            found = message;
        }
    }
    assert_eq!(found["seq"], 37);
    let found_id = found["id"].as_str().expect("an id").to_owned();
    panel(&browser, &server).await;

    search_for(&browser, WORD).await;
    let hit = format!("#search-hits .hit[data-message-id='{found_id}']");
    browser
        .wait_for(
            "the hit, its word marked",
            &format!(
                "document.getElementById('search-results').dataset.state === 'done'
                 && document.querySelector(\"{hit}\")?.querySelector('mark')?.textContent.toLowerCase() === '{WORD}'"
            ),
        )
        .await;
    let shown = browser
        .run(&format!(
            "const hit = document.querySelector(\"{hit}\");
             return {{
               hits: document.querySelectorAll('#search-hits .hit').length,
               group: hit.closest('.search-group').querySelector('h3').textContent,
               meta: hit.querySelector('.meta').textContent,
               snippet: hit.querySelector('.snippet').textContent,
               listHidden: document.getElementById('room-list').hidden,
             }};"
        ))
        .await;
    assert_eq!(shown["hits"], 1, "{shown}");
    assert_eq!(shown["group"], "Parcel to Lisbon");
    assert!(
        shown["meta"].as_str().unwrap().starts_with("alice · "),
        "{shown}"
    );
    assert!(shown["snippet"].as_str().unwrap().contains(WORD), "{shown}");
    assert_eq!(shown["listHidden"], true, "the results in the list's place");

    // The conversation opens at the message: in view, marked, not at the newest.
    browser.click(&hit).await;
    browser
        .wait_for(
            "the found message, marked",
            "document.querySelector('#messages .message--found')?.dataset.seq === '37'
             && !document.getElementById('messages').hasAttribute('aria-busy')",
        )
        .await;
    let view = browser
        .run(
            "const found = document.querySelector('#messages .message--found');
             const list = document.getElementById('messages');
             const r = found.getBoundingClientRect();
             const l = list.getBoundingClientRect();
             return {
               id: found.dataset.messageId,
               marked: document.querySelectorAll('#messages .message--found').length,
               inList: r.top >= l.top - 1 && r.bottom <= l.bottom + 1,
               inWindow: r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0 && r.right <= window.innerWidth,
               focused: document.activeElement === found,
               body: found.querySelector('.body').textContent,
               newestShown: Boolean(list.querySelector('[data-seq=\"500\"]')),
               title: document.getElementById('room-title').textContent,
             };",
        )
        .await;
    assert_eq!(view["id"], json!(found_id), "{view}");
    assert_eq!(view["marked"], 1, "{view}");
    assert_eq!(view["inList"], true, "in the list's view: {view}");
    assert_eq!(view["inWindow"], true, "in the viewport: {view}");
    assert_eq!(view["focused"], true, "{view}");
    assert_eq!(
        view["body"],
        json!(format!("message 37: the courier said {WORD} at the door"))
    );
    assert_eq!(view["newestShown"], false, "loaded around it: {view}");
    assert_eq!(view["title"], "Parcel to Lisbon");
    browser.screenshot(&format!("{test}-{store}")).await;

    // A message arrives while the newest page is not shown: it waits.
    server.send(&alice, &room, "message 501").await;
    browser
        .wait_for(
            "the page to hear of it",
            &format!("window.chatRooms.room('{room}')?.lastMessage?.seq === 501"),
        )
        .await;
    let last_shown = browser.run(&format!("return {SHOWN_SEQS}.at(-1);")).await;
    assert!(
        last_shown.as_u64().unwrap() < 100,
        "not appended past a gap: {last_shown}"
    );
    // Scrolling down brings the pages up to it; scrolling up, the first.
    browser
        .wait_for("the newest, scrolling down", &scrolled_to(true, 501))
        .await;
    let first = browser.run(&format!("return {SHOWN_SEQS}[0];")).await;
    let first = u32::try_from(first.as_u64().expect("a seq")).expect("small");
    shows_every_seq_once(&browser, first, 501).await;
    browser
        .wait_for("the first, scrolling up", &scrolled_to(false, 1))
        .await;
    shows_every_seq_once(&browser, 1, 501).await;
    // At the newest now: a message shows as it arrives.
    server.send(&alice, &room, "message 502").await;
    browser
        .wait_for(
            "the new message at the end",
            &format!("{SHOWN_SEQS}.at(-1) === 502"),
        )
        .await;
    shows_every_seq_once(&browser, 1, 502).await;

    // Opened at the hit again, a reply the agent sends takes the
    // conversation to its newest, the reply there once.
    browser.click(&hit).await;
    browser
        .wait_for(
            "the found message again, not at the newest",
            "document.querySelector('#messages .message--found')?.dataset.seq === '37'
             && !document.querySelector('#messages [data-seq=\"502\"]')",
        )
        .await;
    browser.type_and_send("Found it: on its way").await;
    browser
        .wait_for(
            "the reply at the newest",
            &format!(
                "{SHOWN_SEQS}.at(-1) === 503
                 && [...document.querySelectorAll('#messages .body')].at(-1).textContent === 'Found it: on its way'
                 && !document.getElementById('messages').hasAttribute('aria-busy')"
            ),
        )
        .await;
    let first = browser.run(&format!("return {SHOWN_SEQS}[0];")).await;
    let first = u32::try_from(first.as_u64().expect("a seq")).expect("small");
    shows_every_seq_once(&browser, first, 503).await;

    // Escape: the list again, the box empty, the mark gone.
    let box_ = browser
        .client
        .find(Locator::Id("search-box"))
        .await
        .unwrap();
    box_.send_keys("\u{E00C}").await.unwrap();
    browser
        .wait_for(
            "the list back",
            "document.getElementById('search-results').hidden
             && !document.getElementById('room-list').hidden
             && document.getElementById('search-box').value === ''
             && !document.querySelector('.message--found')",
        )
        .await;
    browser.assert_no_errors().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_group_by_conversation_page_on_with_load_more_and_show_markup_as_text() {
    let test = &this_test();
    if !web_packages_installed(test) {
        return;
    }
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(&Backend::Sqlite, &SERVER_ENV).await;
    let alice = user("alice");
    let bob = user("bob");
    let carol = user("carol");
    let markup = "<img src=x onerror=alert(1)> refund";
    let a = server.create_room(&alice, "Alice's order", &[]).await;
    let b = server.create_room(&bob, "Bob's order", &[]).await;
    let c = server.create_room(&carol, "Carol's orders", &[]).await;
    // Newest first: A's second, C's 22 (page one ends in them), B's, A's markup.
    let oldest = server.send(&alice, &a, markup).await;
    let bobs = server.send(&bob, &b, "a refund for order 9, please").await;
    for n in 1..=22 {
        server.send(&carol, &c, &format!("refund {n}")).await;
    }
    let newest = server.send(&alice, &a, "still no refund").await;
    panel(&browser, &server).await;

    search_for(&browser, "refund").await;
    browser
        .wait_for(
            "the first page",
            "document.getElementById('search-results').dataset.state === 'done'
             && document.querySelectorAll('#search-hits .hit').length === 20
             && !document.getElementById('search-more').hidden",
        )
        .await;
    browser.click("#search-more").await;
    browser
        .wait_for(
            "every hit",
            "document.querySelectorAll('#search-hits .hit').length === 25
             && document.getElementById('search-more').hidden",
        )
        .await;
    let groups = browser
        .run(
            "return [...document.querySelectorAll('#search-hits .search-group')].map((group) => ({
               name: group.querySelector('h3').textContent,
               hits: [...group.querySelectorAll('.hit')].map((hit) => hit.dataset.messageId),
             }));",
        )
        .await;
    let names: Vec<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|group| group["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alice's order", "Carol's orders", "Bob's order"]);
    assert_eq!(groups[0]["hits"], json!([newest["id"], oldest["id"]]));
    assert_eq!(groups[1]["hits"].as_array().unwrap().len(), 22);
    assert_eq!(groups[2]["hits"], json!([bobs["id"]]));

    // The markup is text: no element made of it, the word marked.
    let hit = format!(
        "document.querySelector(\"#search-hits .hit[data-message-id='{}']\")",
        oldest["id"].as_str().unwrap()
    );
    let shown = browser
        .run(&format!(
            "const hit = {hit};
             return {{
               snippet: hit.querySelector('.snippet').textContent,
               marked: [...hit.querySelectorAll('mark')].map((m) => m.textContent),
               elements: [...hit.querySelector('.snippet').querySelectorAll('*')].map((e) => e.localName),
               images: document.querySelectorAll('#search-results img').length,
             }};"
        ))
        .await;
    assert!(
        shown["snippet"].as_str().unwrap().contains("<img src=x"),
        "{shown}"
    );
    assert_eq!(shown["marked"], json!(["refund"]), "{shown}");
    assert_eq!(shown["elements"], json!(["mark"]), "{shown}");
    assert_eq!(shown["images"], 0);
    browser.screenshot(&format!("{test}-results")).await;
    assert_eq!(
        serious_violations(&browser).await,
        json!([]),
        "the admin panel with search results"
    );

    // Opened from the results, the message shows as text too. (Scrolled
    // to, as a person would: the box above the results stays on top.)
    browser
        .run(&format!(
            "{hit}.scrollIntoView({{ block: 'center' }}); return 0;"
        ))
        .await;
    browser
        .click(&format!(
            "#search-hits .hit[data-message-id='{}']",
            oldest["id"].as_str().unwrap()
        ))
        .await;
    browser
        .wait_for(
            "the found message",
            &format!(
                "document.querySelector('#messages .message--found .body')?.textContent === {}",
                json!(markup)
            ),
        )
        .await;
    assert_eq!(
        browser
            .run("return document.querySelectorAll('#messages img').length;")
            .await,
        0
    );
    browser.assert_no_errors().await;
    browser.close().await;
}
