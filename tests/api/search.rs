//! Message search: found at once, by the words a message has now, only in
//! rooms the searcher may read; never a deleted, erased, expired message or
//! one of a deleted room; pages that hold each hit once; any input answered
//! with a 200 or a clear 400; snippets as text parts.

use crate::moderation::erasure_done;
use crate::support::{Backend, TestApp, WAIT, admin, assert_error, on_both_stores, send, user};
use figment::providers::Serialized;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;

on_both_stores!(
    a_sent_message_is_found_at_once_with_its_room_and_a_marked_snippet,
    the_last_word_typed_matches_as_the_start_of_a_word,
    a_user_finds_words_only_in_the_rooms_they_are_in_now,
    an_edited_message_is_found_by_its_new_words_and_never_its_old_ones,
    deleted_messages_erased_users_and_deleted_rooms_are_never_found,
    messages_past_the_retention_are_no_longer_found,
    sixty_five_hits_come_once_each_over_pages_in_either_order,
    relevance_pages_keep_their_window_while_new_matches_arrive,
    room_author_and_time_filters_narrow_the_hits,
    any_query_answers_200_or_a_clear_400_never_a_server_error,
    markup_in_a_body_comes_back_as_text_parts,
    searches_are_limited_per_user,
);

/// Searches `params` (`q` and the rest) as `token`; the status and answer.
async fn search_with(app: &TestApp, token: &str, params: &[(&str, &str)]) -> (StatusCode, Value) {
    send(app.http.get(search_url(app, params)).bearer_auth(token)).await
}

fn search_url(app: &TestApp, params: &[(&str, &str)]) -> reqwest::Url {
    reqwest::Url::parse_with_params(&app.url("/api/chat/search"), params).expect("a URL")
}

/// The hits of `q` for `token`, asserting a 200.
async fn hits(app: &TestApp, token: &str, q: &str) -> Vec<Value> {
    let (status, page) = search_with(app, token, &[("q", q)]).await;
    assert_eq!(status, StatusCode::OK, "{q}: {page}");
    page["hits"].as_array().expect("hits").clone()
}

/// The bodies of the hits of `q` for `token`.
async fn found(app: &TestApp, token: &str, q: &str) -> Vec<String> {
    hits(app, token, q)
        .await
        .iter()
        .map(|hit| hit["message"]["body"].as_str().expect("a body").to_owned())
        .collect()
}

/// The snippet's matching parts, and the whole snippet's text.
fn marked(hit: &Value) -> (Vec<String>, String) {
    let parts = hit["snippet"].as_array().expect("snippet parts");
    let matches = parts
        .iter()
        .filter(|part| part["match"] == true)
        .map(|part| part["text"].as_str().expect("text").to_owned())
        .collect();
    let text = parts
        .iter()
        .map(|part| part["text"].as_str().expect("text"))
        .collect();
    (matches, text)
}

async fn a_sent_message_is_found_at_once_with_its_room_and_a_marked_snippet(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = app.create_room(&alice, "Order #1234", &[]).await;
    app.send(&alice, &room, "hello there").await;
    let sent = app
        .send(&alice, &room, "You promised me a Refund last week!")
        .await;

    // Right after the post is acknowledged: no index lag to wait out.
    for token in [&alice, &agent] {
        let hits = hits(&app, token, "refund ").await;
        assert_eq!(hits.len(), 1, "{hits:?}");
        let hit = &hits[0];
        assert_eq!(hit["message"], sent);
        assert_eq!(hit["roomName"], "Order #1234");
        let (matches, text) = marked(hit);
        assert_eq!(matches, ["Refund"]);
        assert_eq!(text, "You promised me a Refund last week!");
    }
    // Every word must match; a phrase in order; `-` excludes; `or` either.
    assert_eq!(found(&app, &agent, "promised refund ").await.len(), 1);
    assert_eq!(found(&app, &agent, "promised nothing ").await.len(), 0);
    assert_eq!(found(&app, &agent, "\"last week\"").await.len(), 1);
    assert_eq!(found(&app, &agent, "\"week last\"").await.len(), 0);
    assert_eq!(found(&app, &agent, "refund -promised").await.len(), 0);
    assert_eq!(found(&app, &agent, "hello or refund ").await.len(), 2);
}

async fn the_last_word_typed_matches_as_the_start_of_a_word(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "typing", &[]).await;
    app.send(&alice, &room, "the refund was issued").await;
    app.send(&alice, &room, "a referral code").await;

    let mut as_typed = Vec::new();
    for typed in ["r", "re", "ref", "refu", "refund", "refund ", "refund i"] {
        as_typed.push((typed, found(&app, &alice, typed).await.len()));
    }
    assert_eq!(
        as_typed,
        [
            ("r", 2),
            ("re", 2),
            ("ref", 2),
            ("refu", 1),
            ("refund", 1),
            ("refund ", 1),
            ("refund i", 1)
        ]
    );
    // After a space the word is whole: `refu ` is no word of theirs.
    assert!(found(&app, &alice, "refu ").await.is_empty());
}

async fn a_user_finds_words_only_in_the_rooms_they_are_in_now(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob, agent) = (user("alice"), user("bob"), admin("agent"));
    let mine = app.create_room(&alice, "mine", &[]).await;
    let others = app.create_room(&bob, "others", &[]).await;
    let left = app.create_room(&alice, "left", &[]).await;
    let removed = app.create_room(&bob, "removed", &["alice"]).await;
    app.send(&alice, &mine, "zebra in my room").await;
    app.send(&bob, &others, "quokka only bob sees").await;
    app.send(&alice, &left, "wombat before leaving").await;
    app.send(&bob, &removed, "platypus before removal").await;

    // Before: a member finds what their rooms' histories show them, and
    // messages others wrote there too.
    assert_eq!(found(&app, &alice, "platypus ").await.len(), 1);
    assert_eq!(found(&app, &alice, "wombat ").await.len(), 1);
    // Alice leaves one room, and an admin removes her from another.
    let (status, body) = app
        .delete(&format!("/api/chat/rooms/{left}/members/alice"), &alice)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .delete(&format!("/api/chat/rooms/{removed}/members/alice"), &agent)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    assert_eq!(found(&app, &alice, "zebra ").await, ["zebra in my room"]);
    for word in ["quokka ", "wombat ", "platypus ", "quok", "womb"] {
        assert!(found(&app, &alice, word).await.is_empty(), "{word}");
        // Nor by naming the room.
        for room in [&others, &left, &removed] {
            let (status, page) = search_with(&app, &alice, &[("q", word), ("roomId", room)]).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            assert_eq!(page["hits"], json!([]), "{word} in {room}");
        }
    }
    // The words are there: an admin searches every room.
    for word in ["zebra ", "quokka ", "wombat ", "platypus "] {
        assert_eq!(found(&app, &agent, word).await.len(), 1, "{word}");
    }
    assert_eq!(found(&app, &bob, "quokka ").await.len(), 1);
    assert!(found(&app, &bob, "zebra ").await.is_empty());
    // Without credentials, nothing.
    let (status, _) = send(app.http.get(search_url(&app, &[("q", "zebra")]))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn an_edited_message_is_found_by_its_new_words_and_never_its_old_ones(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = app.create_room(&alice, "edits", &[]).await;
    let sent = app.send(&alice, &room, "my password is hunter2").await;
    let path = format!(
        "/api/chat/rooms/{room}/messages/{}",
        sent["id"].as_str().unwrap()
    );
    let (status, edited) = app
        .patch(&path, &alice, json!({"body": "my password is [redacted]"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");

    for token in [&alice, &agent] {
        assert!(found(&app, token, "hunter2").await.is_empty());
        assert!(found(&app, token, "hunt").await.is_empty());
        let hits = hits(&app, token, "password ").await;
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0]["message"], edited);
        let (_, text) = marked(&hits[0]);
        assert!(!text.contains("hunter2"), "{text}");
    }
    assert_eq!(found(&app, &agent, "redacted").await.len(), 1);
}

async fn deleted_messages_erased_users_and_deleted_rooms_are_never_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob, agent) = (user("alice"), user("bob"), admin("agent"));
    let room = app.create_room(&alice, "kept", &["bob"]).await;
    let doomed = app.create_room(&alice, "doomed", &[]).await;
    let deleted = app
        .send(&alice, &room, "alpaca deleted by its author")
        .await;
    app.send(&bob, &room, "bob writes about a narwhal").await;
    app.send(&bob, &room, "an alpaca bob keeps").await;
    app.send(&alice, &doomed, "axolotl in a deleted room").await;

    let (status, body) = app
        .delete(
            &format!(
                "/api/chat/rooms/{room}/messages/{}",
                deleted["id"].as_str().unwrap()
            ),
            &alice,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(found(&app, &agent, "alpaca").await, ["an alpaca bob keeps"]);

    // Bob's words, erased by an admin's job.
    let (status, job) = app.delete("/api/chat/users/bob/messages", &agent).await;
    assert!(status.is_success(), "{job}");
    erasure_done(&app, job["id"].as_str().unwrap()).await;
    for token in [&alice, &agent] {
        assert!(found(&app, token, "narwhal").await.is_empty());
        assert!(found(&app, token, "alpaca").await.is_empty());
    }

    assert_eq!(found(&app, &alice, "axolotl").await.len(), 1);
    let (status, body) = app
        .delete(&format!("/api/chat/rooms/{doomed}"), &agent)
        .await;
    assert!(status.is_success(), "{body}");
    for token in [&alice, &agent] {
        assert!(found(&app, token, "axolotl").await.is_empty());
    }
}

async fn messages_past_the_retention_are_no_longer_found(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment.merge(Serialized::default("message_retention", "2s"))
    })
    .await;
    let alice = user("alice");
    let room = app.create_room(&alice, "kept a while", &[]).await;
    app.send(&alice, &room, "ephemeral capybara").await;
    assert_eq!(found(&app, &alice, "capybara").await.len(), 1);
    let started = std::time::Instant::now();
    while !found(&app, &alice, "capybara").await.is_empty() {
        assert!(started.elapsed() < WAIT, "still found after the retention");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A message written since is found.
    app.send(&alice, &room, "a fresh capybara").await;
    assert_eq!(found(&app, &alice, "capybara").await, ["a fresh capybara"]);
}

async fn sixty_five_hits_come_once_each_over_pages_in_either_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let rooms = [
        app.create_room(&alice, "one", &[]).await,
        app.create_room(&alice, "two", &[]).await,
    ];
    let mut sent = Vec::new();
    for n in 0..65 {
        // Ranks differ (one to three matches) and tie (same count).
        let body = format!("invoice {n}{}", " invoice".repeat(n % 3));
        let message = app.send(&alice, &rooms[n % 2], &body).await;
        sent.push(message["id"].as_str().unwrap().to_owned());
        if n % 10 == 0 {
            app.send(&alice, &rooms[0], "unrelated words").await;
        }
    }
    for sort in ["newest", "relevance"] {
        for token in [&alice, &agent] {
            let mut seen: Vec<String> = Vec::new();
            let mut scores_then_newest = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut params = vec![("q", "invoice"), ("sort", sort), ("limit", "7")];
                if let Some(cursor) = &cursor {
                    params.push(("cursor", cursor));
                }
                let (status, page) = search_with(&app, token, &params).await;
                assert_eq!(status, StatusCode::OK, "{page}");
                pages += 1;
                for hit in page["hits"].as_array().unwrap() {
                    seen.push(hit["message"]["id"].as_str().unwrap().to_owned());
                    let body = hit["message"]["body"].as_str().unwrap();
                    scores_then_newest.push(body.matches("invoice").count());
                }
                match page["next"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
                assert!(pages < 20, "{sort}: pages never end: {seen:?}");
            }
            assert_eq!(pages, 10, "{sort}: 65 hits in pages of 7");
            let unique: HashSet<&String> = seen.iter().collect();
            assert_eq!(unique.len(), 65, "{sort}: each hit once");
            assert_eq!(seen.len(), 65, "{sort}");
            match sort {
                "newest" => {
                    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();
                    assert_eq!(seen, newest_first);
                }
                _ => {
                    // More matches rank higher: the counts never rise.
                    assert!(
                        scores_then_newest.windows(2).all(|w| w[0] >= w[1]),
                        "{scores_then_newest:?}"
                    );
                }
            }
        }
    }
}

async fn relevance_pages_keep_their_window_while_new_matches_arrive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "busy", &[]).await;
    let mut sent = HashSet::new();
    for n in 0..24 {
        let body = format!("ticket {n}{}", " ticket".repeat(n % 4));
        let message = app.send(&alice, &room, &body).await;
        sent.insert(message["id"].as_str().unwrap().to_owned());
    }
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        assert!(page < 10, "pages never end");
        let mut params = vec![("q", "ticket "), ("sort", "relevance"), ("limit", "5")];
        if let Some(cursor) = &cursor {
            params.push(("cursor", cursor));
        }
        let (status, answer) = search_with(&app, &alice, &params).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        for hit in answer["hits"].as_array().unwrap() {
            seen.push(hit["message"]["id"].as_str().unwrap().to_owned());
        }
        // Between pages, better matches arrive (and change SQLite's bm25
        // statistics): they belong to a new search, not to this one's pages.
        app.send(&alice, &room, "ticket ticket ticket ticket ticket")
            .await;
        match answer["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), unique.len(), "a hit came twice: {seen:?}");
    assert_eq!(unique, sent, "the first page's window, each once");
}

async fn room_author_and_time_filters_narrow_the_hits(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob, agent) = (user("alice"), user("bob"), admin("agent"));
    let first = app.create_room(&alice, "first", &["bob"]).await;
    let second = app.create_room(&alice, "second", &["bob"]).await;
    let early = app.send(&alice, &first, "shipping early").await;
    let between = early["createdAt"].as_str().unwrap().to_owned();
    app.send(&bob, &first, "shipping by bob").await;
    let late = app.send(&alice, &second, "shipping late").await;

    let bodies = |page: &Value| -> Vec<String> {
        page["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hit| hit["message"]["body"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, page) = search_with(&app, &agent, &[("q", "shipping"), ("roomId", &second)]).await;
    assert_eq!(bodies(&page), ["shipping late"]);
    let (_, page) = search_with(&app, &bob, &[("q", "shipping"), ("authorId", "bob")]).await;
    assert_eq!(bodies(&page), ["shipping by bob"]);
    let (_, page) = search_with(
        &app,
        &agent,
        &[("q", "shipping"), ("until", &between), ("roomId", &first)],
    )
    .await;
    assert!(bodies(&page).is_empty(), "until is exclusive: {page}");
    let (_, page) = search_with(
        &app,
        &agent,
        &[
            ("q", "shipping"),
            ("since", late["createdAt"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(bodies(&page), ["shipping late"]);
}

async fn any_query_answers_200_or_a_clear_400_never_a_server_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = app.create_room(&alice, "hostile", &[]).await;
    app.send(&alice, &room, "a perfectly normal message, 100% ok")
        .await;
    let long = "refund ".repeat(1500);
    let hostile = [
        "\"",
        "\"\"",
        "\"unclosed phrase",
        "a\" OR \"b",
        "NEAR(a b)",
        "a AND NOT b",
        "*",
        "a*",
        "%",
        "100%",
        "_",
        "'; DROP TABLE messages; --",
        "' OR 1=1 --",
        "a:b",
        "body:secret",
        "!()&|:*\\",
        "- - -",
        "-a -b",
        "or or or",
        "😀",
        "😀 message",
        "ｆｕｌｌｗｉｄｔｈ",
        "\u{202e}rtl",
        "x\u{0}y",
        "^normal",
        "{normal}",
        "[a-z]+",
        "a <-> b",
        "a & !b",
        "a\\",
        "C:\\",
        "C:\\Users\\",
        "don't",
        "it's refu'nd",
        "a\\' b",
        "a \"or\" b",
        "perfectly|normal",
        long.as_str(),
    ];
    for q in hostile {
        for sort in ["newest", "relevance"] {
            let (status, body) = search_with(&app, &agent, &[("q", q), ("sort", sort)]).await;
            assert!(
                status == StatusCode::OK
                    || (status == StatusCode::BAD_REQUEST
                        && body["error"]["code"] == "invalid_query"),
                "{q:?} ({sort}): {status} {body}"
            );
        }
    }
    assert_error(
        search_with(&app, &agent, &[("q", &long)]).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    for bad in [
        vec![],
        vec![("q", "")],
        vec![("q", "a"), ("limit", "0")],
        vec![("q", "a"), ("limit", "51")],
        vec![("q", "a"), ("sort", "oldest")],
        vec![("q", "a"), ("since", "yesterday")],
        vec![("q", "a"), ("roomId", "not-a-room")],
        vec![("q", "a"), ("cursor", "e30")],
        vec![("q", "a"), ("cursor", "!!")],
    ] {
        let (status, body) = search_with(&app, &agent, &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    // The message is still there, and still found.
    assert_eq!(found(&app, &alice, "normal").await.len(), 1);
    assert_eq!(found(&app, &alice, "100%").await.len(), 1);
}

async fn markup_in_a_body_comes_back_as_text_parts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "<b>markup</b>", &[]).await;
    let body = "<img src=x onerror=alert(1)> please <b>refund</b> &amp; <script>steal()</script>";
    app.send(&alice, &room, body).await;
    let hits = hits(&app, &alice, "refund ").await;
    assert_eq!(hits.len(), 1);
    let (matches, text) = marked(&hits[0]);
    assert_eq!(matches, ["refund"]);
    // The snippet is the body as written: markup is text, to show as text.
    assert_eq!(text, body);
    assert_eq!(hits[0]["roomName"], "<b>markup</b>");
    // A word written inside angle brackets is a word too.
    assert_eq!(found(&app, &alice, "steal ").await.len(), 1);
}

async fn searches_are_limited_per_user(backend: Backend) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment
            .merge(Serialized::default("search_rate_per_user", 1))
            .merge(Serialized::default("search_burst_per_user", 3))
    })
    .await;
    let (alice, bob) = (user("alice"), user("bob"));
    for _ in 0..3 {
        assert!(hits(&app, &alice, "anything").await.is_empty());
    }
    assert_error(
        search_with(&app, &alice, &[("q", "anything")]).await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
    );
    // Another user's budget is their own.
    assert!(hits(&app, &bob, "anything").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_language_setting_finds_other_forms_of_a_word() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let app = TestApp::spawn(backend).await;
    let alice = user("alice");
    let room = app.create_room(&alice, "stems", &[]).await;
    app.send(&alice, &room, "the refunds were issued").await;
    assert!(
        found(&app, &alice, "refund ").await.is_empty(),
        "simple: as written"
    );

    // Another instance with `english`: the index is rebuilt at its start.
    let english = app
        .sibling_with(|figment| figment.merge(Serialized::default("search_language", "english")))
        .await;
    assert_eq!(
        found(&english, &alice, "refund ").await,
        ["the refunds were issued"]
    );
    assert_eq!(found(&english, &alice, "issue ").await.len(), 1);
    app.send(&alice, &room, "refunding now").await;
    assert_eq!(found(&english, &alice, "refund ").await.len(), 2);
}
