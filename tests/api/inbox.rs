//! The support inbox: agents (admins) set a conversation's status; every
//! change is one `conversation_updated` event that agents' global streams
//! carry, live and on resume, and no customer's stream ever does.

use crate::support::{
    Backend, Client, EventStream, Scrape, ServerProcess, SharedDb, TestApp, admin, assert_error,
    count_rows, free_port, named_admin, on_both_stores, streams_opened_freely, user,
};
use chat_server::model::Timestamp;
use chat_server::store::AUTO_ASSIGN;
use figment::providers::Serialized;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::{HashMap, HashSet};

on_both_stores!(
    an_agent_sets_a_conversations_status_and_agents_are_told_but_never_the_customer,
    only_agents_change_a_conversation_and_a_snooze_needs_a_time_in_the_future,
    a_resumed_agent_stream_replays_status_changes_and_a_resumed_customer_stream_skips_them,
    a_snoozed_conversation_opens_within_two_seconds_of_its_time_and_agents_are_told,
    a_customers_message_opens_a_waiting_conversation_again_and_an_agents_does_not,
    an_agent_assigns_a_conversation_to_an_agent_and_only_agents_are_told,
    agents_are_learned_as_they_sign_in_and_listed_with_presence_and_open_conversations,
    the_inbox_lists_conversations_by_status_and_assignee_and_counts_its_tabs,
    response_times_follow_the_customers_and_the_agents_messages,
    auto_assignment_gives_a_waiting_customer_to_the_least_busy_online_agent_within_the_cap,
    a_customer_kept_waiting_past_reassign_after_goes_to_another_agent,
);

/// A server that assigns conversations by itself, `cap` to an agent.
fn auto_assigning(
    cap: u32,
    reassign_after: Option<&'static str>,
) -> impl FnOnce(figment::Figment) -> figment::Figment {
    move |figment| {
        let figment = streams_opened_freely(figment)
            .merge(Serialized::default("auto_assign", "round_robin"))
            .merge(Serialized::default("auto_assign_cap", cap));
        match reassign_after {
            Some(after) => figment.merge(Serialized::default("auto_assign_reassign_after", after)),
            None => figment,
        }
    }
}

/// Reads `panel` until a `conversation_updated` that auto-assignment made;
/// returns (room, assignee).
async fn next_auto_assignment(panel: &mut EventStream) -> (String, Option<String>) {
    loop {
        let event = panel.next().await.expect("the stream to go on");
        if event.kind() == "conversation_updated" && event.data["changedBy"] == AUTO_ASSIGN {
            assert_eq!(event.data["change"], "assignee", "{:?}", event.data);
            let room = event.data["roomId"].as_str().unwrap().to_owned();
            let assignee = event.data["conversation"]["assigneeId"]
                .as_str()
                .map(str::to_owned);
            return (room, assignee);
        }
    }
}

/// The log's events that opened a snoozed conversation.
const WAKE_UPS: &str = "SELECT COUNT(*) FROM events
     WHERE data LIKE '{\"type\":\"conversation_updated\"%'
       AND data LIKE '%\"changedBy\":\"chat-server:snooze\"%'";

/// A room's conversation, as `agent` reads it.
async fn conversation_of(client: &Client, room: &str, agent: &str) -> serde_json::Value {
    let (status, room) = client.get(&format!("/api/chat/rooms/{room}"), agent).await;
    assert_eq!(status, StatusCode::OK, "{room}");
    room["conversation"].clone()
}

fn rfc3339(ms_from_now: i64) -> String {
    Timestamp::from_unix_ms(Timestamp::now().unix_ms() + ms_from_now).to_rfc3339()
}

async fn an_agent_sets_a_conversations_status_and_agents_are_told_but_never_the_customer(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (alice, agent, other_agent) = (user("alice"), admin("agent"), admin("agent-2"));
    let room = app.create_room(&agent, "help", &["alice"]).await;
    let (_, fresh) = app.get(&format!("/api/chat/rooms/{room}"), &agent).await;
    assert_eq!(fresh["conversation"]["status"], "open", "{fresh}");
    assert!(fresh["conversation"]["resolvedAt"].is_null());
    let mut panel = app.stream("", &other_agent).await;
    let mut widget = app.stream(&format!("?roomId={room}"), &alice).await;
    let mut customer = app.stream("", &alice).await;
    let before = app
        .http
        .get(app.url("/api/chat/rooms"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    let etag = before.headers()["etag"].to_str().unwrap().to_owned();
    let before: serde_json::Value = before.json().await.unwrap();

    let path = format!("/api/chat/rooms/{room}/conversation");
    let (status, resolved) = app
        .patch(&path, &agent, json!({"status": "resolved"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["conversation"]["status"], "resolved");
    let resolved_at = resolved["conversation"]["resolvedAt"].clone();
    assert!(resolved_at.is_string(), "{resolved}");
    let told = panel.expect("conversation_updated").await;
    assert_eq!(told.data["roomId"], room.as_str());
    assert_eq!(told.data["changedBy"], "agent");
    assert_eq!(told.data["conversation"], resolved["conversation"]);

    // The same status again changes nothing, and tells no one.
    let (status, again) = app
        .patch(&path, &agent, json!({"status": "resolved"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["conversation"]["resolvedAt"], resolved_at);
    let (status, pending) = app.patch(&path, &agent, json!({"status": "pending"})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(pending["conversation"]["resolvedAt"].is_null(), "{pending}");
    let told = panel.expect("conversation_updated").await;
    assert_eq!(told.data["conversation"]["status"], "pending");
    // Nothing she could read moved: not her listing's version, nor the
    // room's `updatedAt`.
    let again = app
        .http
        .get(app.url("/api/chat/rooms"))
        .bearer_auth(&alice)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let (_, seen) = app.get(&format!("/api/chat/rooms/{room}"), &alice).await;
    assert_eq!(seen["updatedAt"], before["rooms"][0]["updatedAt"], "{seen}");

    // The customer's streams go straight from before to her next message,
    // which opens the conversation again (for agents only, too).
    app.send(&alice, &room, "still there?").await;
    for stream in [&mut widget, &mut customer] {
        let next = stream.expect("message").await;
        assert_eq!(next.data["message"]["body"], "still there?");
    }
    assert_eq!(
        panel.expect("message").await.data["message"]["body"],
        "still there?"
    );
    let reopened = panel.expect("conversation_updated").await;
    assert_eq!(reopened.data["conversation"]["status"], "open");
    // Nor does anything she reads say it.
    let (_, seen) = app.get(&format!("/api/chat/rooms/{room}"), &alice).await;
    assert!(seen.get("conversation").is_none(), "{seen}");
    let (_, listing) = app.get("/api/chat/rooms", &alice).await;
    assert!(
        listing["rooms"][0].get("conversation").is_none(),
        "{listing}"
    );
    let (_, listing) = app.get("/api/chat/rooms", &agent).await;
    assert_eq!(listing["rooms"][0]["conversation"]["status"], "open");
    // Nor what she is answered as she leaves.
    let (status, left) = app
        .delete(&format!("/api/chat/rooms/{room}/members/alice"), &alice)
        .await;
    assert_eq!(status, StatusCode::OK, "{left}");
    assert!(left.get("conversation").is_none(), "{left}");
}

async fn only_agents_change_a_conversation_and_a_snooze_needs_a_time_in_the_future(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = app.create_room(&agent, "help", &["alice"]).await;
    let path = format!("/api/chat/rooms/{room}/conversation");
    assert_error(
        app.patch(&path, &alice, json!({"status": "resolved"}))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    for (body, code) in [
        (json!({"status": "snoozed"}), "snooze_needs_a_time"),
        (
            json!({"status": "snoozed", "snoozedUntil": rfc3339(-1_000)}),
            "snooze_in_the_past",
        ),
        (
            json!({"status": "open", "snoozedUntil": rfc3339(60_000)}),
            "snooze_only_when_snoozed",
        ),
    ] {
        assert_error(
            app.patch(&path, &agent, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        );
    }
    for body in [
        json!({"status": "closed"}),
        json!({"status": "snoozed", "snoozedUntil": "tomorrow"}),
        json!({}),
        json!({"assigneeId": 5}),
        json!({"assigneeId": ""}),
    ] {
        let (status, answer) = app.patch(&path, &agent, body).await;
        assert!(status.is_client_error(), "{status} {answer}");
        assert!(answer["error"]["code"].is_string(), "{answer}");
    }
    let missing = "/api/chat/rooms/00000000-0000-4000-8000-000000000000/conversation";
    assert_error(
        app.patch(missing, &agent, json!({"status": "pending"}))
            .await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
    // Nothing of the refused changes was kept.
    let (_, room_now) = app.get(&format!("/api/chat/rooms/{room}"), &agent).await;
    assert_eq!(room_now["conversation"]["status"], "open", "{room_now}");
    assert!(room_now["conversation"]["snoozedUntil"].is_null());

    let until = rfc3339(3_600_000);
    let (status, snoozed) = app
        .patch(
            &path,
            &agent,
            json!({"status": "snoozed", "snoozedUntil": until}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{snoozed}");
    assert_eq!(snoozed["conversation"]["status"], "snoozed");
    assert_eq!(snoozed["conversation"]["snoozedUntil"], until.as_str());
}

async fn a_resumed_agent_stream_replays_status_changes_and_a_resumed_customer_stream_skips_them(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = app.create_room(&agent, "help", &["alice"]).await;
    let (_, listing) = app.get("/api/chat/rooms", &agent).await;
    let before = listing["lastEventId"].as_str().unwrap().to_owned();
    let path = format!("/api/chat/rooms/{room}/conversation");
    let (status, _) = app.patch(&path, &agent, json!({"status": "pending"})).await;
    assert_eq!(status, StatusCode::OK);
    app.send(&alice, &room, "after the change").await;

    let mut panel = app.stream_from("", &agent, Some(&before)).await;
    let change = panel.expect("conversation_updated").await;
    assert_eq!(change.data["conversation"]["status"], "pending");
    panel.expect("message").await;
    for query in [String::new(), format!("?roomId={room}")] {
        let mut customer = app.stream_from(&query, &alice, Some(&before)).await;
        let next = customer.expect("message").await;
        assert_eq!(next.data["message"]["body"], "after the change", "{query}");
    }
    // The long-poll reads the same feed.
    let (status, polled) = app
        .get(&format!("/api/chat/events?after={before}&wait=0"), &alice)
        .await;
    assert_eq!(status, StatusCode::OK, "{polled}");
    let kinds: Vec<&str> = polled["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["data"]["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["message"], "{polled}");
}

async fn a_snoozed_conversation_opens_within_two_seconds_of_its_time_and_agents_are_told(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let agent = admin("agent");
    let room = app.create_room(&agent, "later", &["alice"]).await;
    let mut panel = app.stream("", &agent).await;
    let due = Timestamp::now().unix_ms() + 1_500;
    let until = Timestamp::from_unix_ms(due).to_rfc3339();
    let path = format!("/api/chat/rooms/{room}/conversation");
    let (status, _) = app
        .patch(
            &path,
            &agent,
            json!({"status": "snoozed", "snoozedUntil": until}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    panel.expect("conversation_updated").await;

    let woke = panel.expect("conversation_updated").await;
    let late = Timestamp::now().unix_ms() - due;
    assert!(
        (0..2_000).contains(&late),
        "opened {late} ms after its time"
    );
    assert_eq!(woke.data["changedBy"], "chat-server:snooze");
    assert_eq!(woke.data["conversation"]["status"], "open");
    assert!(woke.data["conversation"]["snoozedUntil"].is_null());
    let (_, now) = app.get(&format!("/api/chat/rooms/{room}"), &agent).await;
    assert_eq!(now["conversation"]["status"], "open", "{now}");
    assert_eq!(count_rows(app.database_url(), WAKE_UPS).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_two_instances_open_each_snoozed_conversation_once() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let a = TestApp::spawn(backend).await;
    let b = a.sibling_with(|figment| figment).await;
    let agent = admin("agent");
    let mut rooms = HashSet::new();
    for index in 0..40 {
        rooms.insert(a.create_room(&agent, &format!("later {index}"), &[]).await);
    }
    // All due at once, a little after the last is snoozed.
    let until = rfc3339(3_000);
    for room in &rooms {
        let path = format!("/api/chat/rooms/{room}/conversation");
        let body = json!({"status": "snoozed", "snoozedUntil": until});
        let (status, answer) = a.patch(&path, &agent, body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let mut panel = b.stream("", &agent).await;
    let mut opened = HashSet::new();
    while opened.len() < rooms.len() {
        let event = panel.expect("conversation_updated").await;
        if event.data["conversation"]["status"] == "open" {
            let room = event.data["roomId"].as_str().unwrap().to_owned();
            assert!(rooms.contains(&room), "{room}");
            assert!(opened.insert(room), "opened twice: {:?}", event.data);
        }
    }
    assert_eq!(count_rows(a.database_url(), WAKE_UPS).await, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_snooze_set_before_a_sigkill_opens_after_the_restart() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let db = SharedDb::create(&backend).await;
    let port = free_port();
    let mut server = ServerProcess::start_on(&db, port, &[]).await;
    let agent = admin("agent");
    let room = server.create_room(&agent, "later", &[]).await;
    let path = format!("/api/chat/rooms/{room}/conversation");
    let (status, _) = server
        .patch(
            &path,
            &agent,
            json!({"status": "snoozed", "snoozedUntil": rfc3339(1_000)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.kill();
    assert_eq!(count_rows(&db.url, WAKE_UPS).await, 0);

    let server = ServerProcess::start_on(&db, port, &[]).await;
    let mut panel = server.stream("", &agent).await;
    let room_now = loop {
        let (_, room_now) = server.get(&format!("/api/chat/rooms/{room}"), &agent).await;
        if room_now["conversation"]["status"] == "open" {
            break room_now;
        }
        let event = panel.expect("conversation_updated").await;
        assert_eq!(event.data["conversation"]["status"], "open");
    };
    assert!(room_now["conversation"]["snoozedUntil"].is_null());
    assert_eq!(count_rows(&db.url, WAKE_UPS).await, 1);
}

async fn a_customers_message_opens_a_waiting_conversation_again_and_an_agents_does_not(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = app.create_room(&agent, "help", &["alice"]).await;
    let path = format!("/api/chat/rooms/{room}/conversation");
    let mut panel = app.stream("", &agent).await;
    let mut widget = app.stream(&format!("?roomId={room}"), &alice).await;
    for (status, extra) in [
        ("resolved", json!({})),
        ("pending", json!({})),
        ("snoozed", json!({"snoozedUntil": rfc3339(3_600_000)})),
    ] {
        let mut body = json!({"status": status});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (code, _) = app.patch(&path, &agent, body).await;
        assert_eq!(code, StatusCode::OK);
        panel.expect("conversation_updated").await;
        // An agent's own message leaves it as it is.
        app.send(&agent, &room, "an agent's note").await;
        panel.expect("message").await;
        widget.expect("message").await;

        app.send(&alice, &room, &format!("back, from {status}"))
            .await;
        assert_eq!(
            panel.expect("message").await.data["message"]["authorId"],
            "alice"
        );
        let reopened = panel.expect("conversation_updated").await;
        assert_eq!(reopened.data["changedBy"], "alice");
        assert_eq!(reopened.data["conversation"]["status"], "open");
        assert!(reopened.data["conversation"]["resolvedAt"].is_null());
        assert!(reopened.data["conversation"]["snoozedUntil"].is_null());
        // The widget sees her message and nothing of the conversation.
        assert_eq!(
            widget.expect("message").await.data["message"]["authorId"],
            "alice"
        );
        let (_, now) = app.get(&format!("/api/chat/rooms/{room}"), &agent).await;
        assert_eq!(
            now["conversation"]["status"], "open",
            "after {status}: {now}"
        );
    }
    // In an open conversation, a message is only a message.
    app.send(&alice, &room, "and one more").await;
    panel.expect("message").await;
    app.send(&agent, &room, "done").await;
    assert_eq!(
        panel.expect("message").await.data["message"]["body"],
        "done"
    );
}

async fn an_agent_assigns_a_conversation_to_an_agent_and_only_agents_are_told(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, agent, colleague) = (user("alice"), admin("agent"), admin("colleague"));
    let room = app.create_room(&agent, "help", &["alice"]).await;
    let path = format!("/api/chat/rooms/{room}/conversation");
    let mut widget = app.stream(&format!("?roomId={room}"), &alice).await;
    // The colleague signs in (their stream): from now on an agent.
    let mut panel = app.stream("", &colleague).await;

    for (who, code) in [
        ("alice", "not_an_agent"),
        ("never-signed-in", "not_an_agent"),
    ] {
        assert_error(
            app.patch(&path, &agent, json!({"assigneeId": who})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        );
    }
    assert_error(
        app.patch(&path, &alice, json!({"assigneeId": "agent"}))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let (_, unchanged) = app.get(&format!("/api/chat/rooms/{room}"), &agent).await;
    assert!(
        unchanged["conversation"]["assigneeId"].is_null(),
        "{unchanged}"
    );

    assert_error(
        app.patch(&path, &agent, json!({"assigneeId": "bad\nid"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_user_id",
    );
    // `me` is the caller.
    let (status, mine) = app.patch(&path, &agent, json!({"assigneeId": "me"})).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["conversation"]["assigneeId"], "agent");
    panel.expect("conversation_updated").await;
    let (status, assigned) = app
        .patch(&path, &agent, json!({"assigneeId": "colleague"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{assigned}");
    assert_eq!(assigned["conversation"]["assigneeId"], "colleague");
    let told = panel.expect("conversation_updated").await;
    assert_eq!(told.data["change"], "assignee");
    assert_eq!(told.data["changedBy"], "agent");
    assert_eq!(told.data["conversation"]["assigneeId"], "colleague");

    // Both at once: one event for each, in the order status, assignee.
    let (status, both) = app
        .patch(
            &path,
            &colleague,
            json!({"status": "pending", "assigneeId": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{both}");
    assert!(both["conversation"]["assigneeId"].is_null(), "{both}");
    let first = panel.expect("conversation_updated").await;
    let second = panel.expect("conversation_updated").await;
    assert_eq!(
        (
            first.data["change"].as_str(),
            second.data["change"].as_str()
        ),
        (Some("status"), Some("assignee"))
    );
    assert_eq!(second.data["conversation"], both["conversation"]);
    // The same again changes nothing and tells no one: the next event
    // the panel gets is the message after it.
    let (status, _) = app
        .patch(
            &path,
            &agent,
            json!({"assigneeId": null, "status": "pending"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.send(&agent, &room, "still here").await;
    panel.expect("message").await;
    // The customer saw the message, and nothing of who works on her case.
    let seen = widget.expect("message").await;
    assert_eq!(seen.data["message"]["body"], "still here");
    let (_, hers) = app.get(&format!("/api/chat/rooms/{room}"), &alice).await;
    assert!(hers.get("conversation").is_none(), "{hers}");
}

async fn agents_are_learned_as_they_sign_in_and_listed_with_presence_and_open_conversations(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (ada, bo) = (named_admin("ada", "Ada Lovelace"), admin("bo"));
    let customer = user("carol");
    // A customer is never an agent, however often she signs in.
    app.get("/api/chat/rooms", &customer).await;
    assert_error(
        app.get("/api/chat/agents", &customer).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let rooms = [
        app.create_room(&ada, "one", &["carol"]).await,
        app.create_room(&ada, "two", &["carol"]).await,
    ];
    app.get("/api/chat/rooms", &bo).await;
    for room in &rooms {
        let path = format!("/api/chat/rooms/{room}/conversation");
        let (status, _) = app.patch(&path, &bo, json!({"assigneeId": "ada"})).await;
        assert_eq!(status, StatusCode::OK);
    }
    // A resolved conversation is not an open one.
    let path = format!("/api/chat/rooms/{}/conversation", rooms[1]);
    app.patch(&path, &bo, json!({"status": "resolved"})).await;
    let _stream = app.stream("", &ada).await;

    let (status, listed) = app.get("/api/chat/agents", &bo).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let agents = listed["agents"].as_array().unwrap();
    let ids: Vec<&str> = agents.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["ada", "bo"], "{listed}");
    assert_eq!(agents[0]["name"], "Ada Lovelace");
    assert_eq!(agents[0]["online"], true);
    assert_eq!(agents[0]["openConversations"], 1);
    assert!(agents[1]["name"].is_null());
    assert_eq!(agents[1]["online"], false);
    assert_eq!(agents[1]["openConversations"], 0);
    // An agent who left the team is forgotten; only agents forget them.
    assert_error(
        app.delete("/api/chat/agents/bo", &customer).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let (status, _) = app.delete("/api/chat/agents/bo", &admin("ada")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        app.delete("/api/chat/agents/bo", &admin("ada")).await,
        StatusCode::NOT_FOUND,
        "agent_not_found",
    );
    let (_, listed) = app.get("/api/chat/agents", &admin("ada")).await;
    assert_eq!(listed["agents"].as_array().unwrap().len(), 1, "{listed}");
    let path = format!("/api/chat/rooms/{}/conversation", rooms[0]);
    assert_error(
        app.patch(&path, &admin("ada"), json!({"assigneeId": "bo"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_an_agent",
    );
    // A later token without the claim keeps the name; one with another
    // renames (and notes bo again, as a new instance would).
    app.get("/api/chat/rooms", &admin("ada")).await;
    app.get("/api/chat/rooms", &named_admin("bo", "Bo")).await;
    let (_, listed) = app.get("/api/chat/agents", &bo).await;
    assert_eq!(listed["agents"][0]["name"], "Ada Lovelace", "{listed}");
    assert_eq!(listed["agents"][1]["name"], "Bo", "{listed}");
}

async fn the_inbox_lists_conversations_by_status_and_assignee_and_counts_its_tabs(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (me, other, alice) = (admin("me"), admin("other"), user("alice"));
    app.get("/api/chat/rooms", &other).await;
    // Made in this order, so newest activity first is the reverse.
    let mut rooms = Vec::new();
    for name in ["mine", "nobody's", "other's", "resolved"] {
        rooms.push(app.create_room(&me, name, &["alice"]).await);
    }
    let (mine, nobodys, others, resolved) = (&rooms[0], &rooms[1], &rooms[2], &rooms[3]);
    let change = |room: &str, body| {
        let path = format!("/api/chat/rooms/{room}/conversation");
        let app = &app;
        let me = &me;
        async move {
            let (status, answer) = app.patch(&path, me, body).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
    };
    change(mine, json!({"assigneeId": "me"})).await;
    change(others, json!({"assigneeId": "other", "status": "pending"})).await;
    change(resolved, json!({"status": "resolved"})).await;
    // Unread for `me`: two from alice in mine, one in nobody's.
    for room in [mine, mine, nobodys] {
        app.send(&alice, room, "hello?").await;
    }
    let names = |listing: &serde_json::Value| -> Vec<String> {
        listing["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|room| room["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for (query, expected) in [
        ("", vec!["nobody's", "mine", "resolved", "other's"]),
        ("?assignee=me", vec!["mine"]),
        ("?assignee=none", vec!["nobody's", "resolved"]),
        ("?assignee=other", vec!["other's"]),
        ("?status=open", vec!["nobody's", "mine"]),
        ("?status=open&assignee=none", vec!["nobody's"]),
        ("?status=pending&assignee=other", vec!["other's"]),
        ("?status=snoozed", vec![]),
    ] {
        let (status, listing) = app.get(&format!("/api/chat/rooms{query}"), &me).await;
        assert_eq!(status, StatusCode::OK, "{query}: {listing}");
        assert_eq!(names(&listing), expected, "{query}");
    }
    // Pages of a filtered view follow one another.
    let (_, first) = app.get("/api/chat/rooms?assignee=none&limit=1", &me).await;
    assert_eq!(names(&first), ["nobody's"]);
    let token = first["nextPageToken"].as_str().unwrap();
    let (_, second) = app
        .get(
            &format!("/api/chat/rooms?assignee=none&limit=1&pageToken={token}"),
            &me,
        )
        .await;
    assert_eq!(names(&second), ["resolved"]);
    assert!(second["nextPageToken"].is_null(), "{second}");
    // Customers have no inbox; a status we do not know is malformed.
    assert_error(
        app.get("/api/chat/rooms?status=open", &alice).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let (status, _) = app.get("/api/chat/rooms?status=closed", &me).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let summary = || {
        app.http
            .get(app.url("/api/chat/inbox"))
            .bearer_auth(&me)
            .send()
    };
    let answer = summary().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let etag = answer.headers()["etag"].to_str().unwrap().to_owned();
    let counts: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        counts,
        json!({
            "mine": {"open": 1, "unread": 2},
            "unassigned": {"open": 1, "unread": 1},
            "all": {"open": 2, "unread": 3},
        })
    );
    let again = app
        .http
        .get(app.url("/api/chat/inbox"))
        .bearer_auth(&me)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    // Reading her messages moves the counts, and the tag with them.
    let (status, _) = app
        .post(
            &format!("/api/chat/rooms/{mine}/read"),
            &me,
            json!({"seq": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let moved = app
        .http
        .get(app.url("/api/chat/inbox"))
        .bearer_auth(&me)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::OK);
    let counts: serde_json::Value = moved.json().await.unwrap();
    assert_eq!(counts["mine"], json!({"open": 1, "unread": 0}), "{counts}");
    assert_error(
        app.get("/api/chat/inbox", &alice).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

async fn response_times_follow_the_customers_and_the_agents_messages(backend: Backend) {
    // Its own process: the metrics recorder is process-wide.
    let server = ServerProcess::start(&backend, &[]).await;
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = server.create_room(&agent, "help", &["alice"]).await;
    let fresh = conversation_of(&server, &room, &agent).await;
    assert!(fresh["startedAt"].is_string(), "{fresh}");
    assert!(fresh["waitingSince"].is_null());

    let asked = server.send(&alice, &room, "is anyone there?").await;
    server.send(&alice, &room, "hello?").await;
    let waiting = conversation_of(&server, &room, &agent).await;
    assert_eq!(waiting["waitingSince"], asked["createdAt"], "{waiting}");
    assert!(waiting["lastCustomerMessageAt"].is_string());
    assert!(waiting["firstResponseAt"].is_null());

    let reply = server.send(&agent, &room, "here!").await;
    server.send(&agent, &room, "how can I help?").await;
    let answered = conversation_of(&server, &room, &agent).await;
    assert_eq!(
        answered["firstResponseAt"], reply["createdAt"],
        "{answered}"
    );
    assert!(answered["waitingSince"].is_null());

    // She thanks; the agent resolves without a reply: her wait ends with it.
    server.send(&alice, &room, "thanks!").await;
    let (status, resolved) = server
        .patch(
            &format!("/api/chat/rooms/{room}/conversation"),
            &agent,
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        resolved["conversation"]["waitingSince"].is_null(),
        "{resolved}"
    );
    let scrape = Scrape::of(&server, None).await;
    assert_eq!(
        scrape.value("chat_conversation_first_response_seconds_count", &[]),
        1.0
    );
    assert_eq!(
        scrape.value("chat_conversation_resolution_seconds_count", &[]),
        1.0
    );
    assert_eq!(
        scrape.value("chat_conversations", &[("status", "open")]),
        0.0
    );

    // She writes again: a new conversation, open, waiting, its first
    // response still to come.
    let more = server.send(&alice, &room, "one more thing").await;
    let again = conversation_of(&server, &room, &agent).await;
    assert_eq!(again["status"], "open");
    assert!(again["firstResponseAt"].is_null(), "{again}");
    assert_eq!(again["waitingSince"], more["createdAt"], "{again}");
    assert!(again["startedAt"].as_str() > answered["startedAt"].as_str());
    let scrape = Scrape::of(&server, None).await;
    assert_eq!(
        scrape.value("chat_conversations", &[("status", "open")]),
        1.0
    );
}

async fn auto_assignment_gives_a_waiting_customer_to_the_least_busy_online_agent_within_the_cap(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, auto_assigning(1, None)).await;
    let (ann, bo, carl) = (admin("ann"), admin("bo"), admin("carl"));
    // Carl is an agent, but not online: he gets nothing.
    app.get("/api/chat/rooms", &carl).await;
    let mut panel = app.stream("", &ann).await;
    let _bo_online = app.stream("", &bo).await;
    let mut rooms = Vec::new();
    for customer in ["c1", "c2", "c3"] {
        rooms.push(app.create_room(&carl, customer, &[customer]).await);
    }
    // An agent writing first makes no customer wait: nothing to assign.
    app.send(&carl, &rooms[0], "hello, how can we help?").await;
    app.send(&user("c1"), &rooms[0], "my order is late").await;
    let (room, first) = next_auto_assignment(&mut panel).await;
    assert_eq!(room, rooms[0]);
    app.send(&user("c2"), &rooms[1], "and mine").await;
    let (room, second) = next_auto_assignment(&mut panel).await;
    assert_eq!(room, rooms[1]);
    let mut given: Vec<_> = [first.clone(), second].into_iter().flatten().collect();
    given.sort();
    assert_eq!(given, ["ann", "bo"], "one each: the cap is 1");
    // Both at the cap: the third waits in the queue...
    app.send(&user("c3"), &rooms[2], "me too").await;
    let (_, queued) = app
        .get("/api/chat/rooms?status=open&assignee=none", &ann)
        .await;
    assert_eq!(queued["rooms"][0]["id"], rooms[2].as_str(), "{queued}");
    // ...until the first agent's conversation is resolved: it is theirs.
    let first = first.unwrap();
    let path = format!("/api/chat/rooms/{}/conversation", rooms[0]);
    let (status, _) = app
        .patch(&path, &admin(&first), json!({"status": "resolved"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (room, third) = next_auto_assignment(&mut panel).await;
    assert_eq!((room, third), (rooms[2].clone(), Some(first)));
    let (_, agents) = app.get("/api/chat/agents", &ann).await;
    let carls = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|agent| agent["id"] == "carl")
        .cloned()
        .unwrap();
    assert_eq!(carls["openConversations"], 0, "{agents}");
}

async fn a_customer_kept_waiting_past_reassign_after_goes_to_another_agent(backend: Backend) {
    let app = TestApp::spawn_with(backend, auto_assigning(5, Some("3s"))).await;
    let (ann, bo) = (admin("ann"), admin("bo"));
    let mut panel = app.stream("", &ann).await;
    let _bo_online = app.stream("", &bo).await;
    let room = app.create_room(&ann, "help", &["dee"]).await;
    app.send(&user("dee"), &room, "hello?").await;
    // Both free and never given one: the first by id.
    assert_eq!(
        next_auto_assignment(&mut panel).await,
        (room.clone(), Some("ann".to_owned()))
    );
    // Ann does not answer: once Dee has waited three seconds for her, it
    // goes to Bo.
    let given = Timestamp::now().unix_ms();
    assert_eq!(
        next_auto_assignment(&mut panel).await,
        (room.clone(), Some("bo".to_owned()))
    );
    assert!(Timestamp::now().unix_ms() - given >= 2_000);
    // Bo answers: she waits no more, and it stays his.
    app.send(&bo, &room, "here!").await;
    let conversation = conversation_of(&app, &room, &ann).await;
    assert_eq!(conversation["assigneeId"], "bo");
    assert!(conversation["waitingSince"].is_null(), "{conversation}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_two_instances_assign_200_conversations_arriving_at_once_within_the_cap() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let a = TestApp::spawn_with(backend, auto_assigning(30, None)).await;
    let b = a.sibling_with(auto_assigning(30, None)).await;
    let agents: Vec<String> = (1..=5).map(|n| format!("agent-{n}")).collect();
    let mut panels = Vec::new();
    for (n, agent) in agents.iter().enumerate() {
        let instance = if n % 2 == 0 { &a } else { &b };
        panels.push(instance.stream("", &admin(agent)).await);
    }
    let mut rooms = Vec::new();
    for n in 0..200 {
        let customer = format!("customer-{n}");
        rooms.push(
            a.create_room(&admin("agent-1"), &customer, &[&customer])
                .await,
        );
    }
    // Every customer writes at once, half of them through each instance.
    futures::future::join_all(rooms.iter().enumerate().map(|(n, room)| {
        let instance = if n % 2 == 0 { &a } else { &b };
        async move {
            instance
                .send(&user(&format!("customer-{n}")), room, "hello?")
                .await
        }
    }))
    .await;
    let mut assigned: HashMap<String, String> = HashMap::new();
    while assigned.len() < 150 {
        let (room, agent) = next_auto_assignment(&mut panels[0]).await;
        let agent = agent.expect("an assignment");
        assert!(
            assigned.insert(room.clone(), agent).is_none(),
            "{room} assigned twice"
        );
    }
    let mut per_agent: HashMap<&str, usize> = HashMap::new();
    for agent in assigned.values() {
        *per_agent.entry(agent.as_str()).or_default() += 1;
    }
    assert!(per_agent.values().all(|&n| n == 30), "{per_agent:?}");
    let (_, counts) = b.get("/api/chat/inbox", &admin("agent-1")).await;
    assert_eq!(counts["unassigned"]["open"], 50, "{counts}");
    assert_eq!(counts["mine"]["open"], 30, "{counts}");
    assert_eq!(
        count_rows(
            a.database_url(),
            "SELECT COUNT(*) FROM events WHERE data LIKE '%\"changedBy\":\"chat-server:auto-assign\"%'"
        )
        .await,
        150
    );
}
