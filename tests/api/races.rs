//! Races between a member's removal and what the member does at the same
//! moment: an edit, a deletion or a read either happens before the removal
//! commits, or is refused as from someone who is not in the room. The log
//! says which happened first, so the test reads it back. (Typing logs
//! nothing: its one-statement check sees every committed removal, but a
//! notice checked just before one may reach the room just after it.)

use crate::polling::poll_all;
use crate::support::{Backend, TestApp, admin, on_both_stores, user};
use reqwest::StatusCode;
use serde_json::json;

on_both_stores!(nothing_a_member_does_is_logged_after_their_removal_committed);

/// Rooms raced at once, and rounds in each: 2,000 races.
const LANES: usize = 4;
const ROUNDS: usize = 500;

/// What the member tries while an admin removes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Edit,
    Delete,
    Read,
    Typing,
}

async fn nothing_a_member_does_is_logged_after_their_removal_committed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let lanes = futures::future::join_all((0..LANES).map(|lane| race_in_a_room(&app, lane))).await;
    let mut outcomes: std::collections::BTreeMap<(String, u16), usize> = Default::default();
    for (room, tally) in lanes {
        for (key, count) in tally {
            *outcomes.entry(key).or_default() += count;
        }
        check_the_log(&app, &room).await;
    }
    eprintln!("attempts by outcome: {outcomes:?}");
    // The race was run: some attempts won, some lost.
    for attempt in ["Edit", "Read"] {
        for status in [200, 404] {
            assert!(
                outcomes.contains_key(&(attempt.to_owned(), status)),
                "{attempt} never answered {status}: {outcomes:?}"
            );
        }
    }
    assert!(
        outcomes
            .keys()
            .all(|(_, status)| [200, 204, 404].contains(status)),
        "{outcomes:?}"
    );
}

/// `ROUNDS` races in a room of its own; the room, and each attempt's outcomes.
async fn race_in_a_room(
    app: &TestApp,
    lane: usize,
) -> (String, std::collections::BTreeMap<(String, u16), usize>) {
    let (alice, boss) = (user(&format!("alice-{lane}")), admin("boss"));
    let alice_id = format!("alice-{lane}");
    let room = app
        .create_room(&boss, &format!("race {lane}"), &[&alice_id])
        .await;
    let edited = app.send(&alice, &room, "to be edited").await;
    let edited = edited["id"].as_str().unwrap().to_owned();
    let mut tally: std::collections::BTreeMap<(String, u16), usize> = Default::default();
    let attempts = [
        Attempt::Edit,
        Attempt::Delete,
        Attempt::Read,
        Attempt::Typing,
    ];
    for round in 0..ROUNDS {
        if round > 0 {
            app.add_member(&room, &alice_id).await;
        }
        let attempt = attempts[round % attempts.len()];
        // Hers to delete; the admin's to read (her own posts are read
        // already: posting moves the author's cursor).
        let author = if attempt == Attempt::Read {
            &boss
        } else {
            &alice
        };
        let fresh = app.send(author, &room, &format!("round {round}")).await;
        let path = format!("/api/chat/rooms/{room}");
        let acting = async {
            match attempt {
                Attempt::Edit => {
                    app.patch(
                        &format!("{path}/messages/{edited}"),
                        &alice,
                        json!({"body": format!("edit {round}")}),
                    )
                    .await
                }
                Attempt::Delete => {
                    let id = fresh["id"].as_str().unwrap();
                    app.delete(&format!("{path}/messages/{id}"), &alice).await
                }
                Attempt::Read => {
                    app.post(
                        &format!("{path}/read"),
                        &alice,
                        json!({"seq": fresh["seq"]}),
                    )
                    .await
                }
                Attempt::Typing => {
                    app.post(&format!("{path}/typing"), &alice, json!({"typing": true}))
                        .await
                }
            }
        };
        let removal = format!("{path}/members/{alice_id}");
        let removing = app.delete(&removal, &boss);
        let ((status, body), (removed, _)) = tokio::join!(acting, removing);
        assert_eq!(removed, StatusCode::OK);
        assert!(
            matches!(status.as_u16(), 200 | 204 | 404),
            "{attempt:?}: {status} {body}"
        );
        *tally
            .entry((format!("{attempt:?}"), status.as_u16()))
            .or_default() += 1;
    }
    (room, tally)
}

/// Walks the room's log in order: every edit, deletion and read of the
/// member's happens while they are a member.
async fn check_the_log(app: &TestApp, room: &str) {
    let (events, _) = poll_all(app, &format!("roomId={room}&"), &admin("boss"), "0", 500).await;
    let mut members: std::collections::HashSet<String> = Default::default();
    let mut checked: std::collections::BTreeSet<&str> = Default::default();
    for (id, data) in &events {
        let actor = match data["type"].as_str().unwrap() {
            "room" => {
                let user = data["userId"].as_str().map(str::to_owned);
                match (data["change"].as_str().unwrap(), user) {
                    ("created", _) => {
                        for member in data["room"]["memberIds"].as_array().unwrap() {
                            members.insert(member.as_str().unwrap().to_owned());
                        }
                    }
                    ("member_added", Some(user)) => {
                        members.insert(user);
                    }
                    ("member_removed", Some(user)) => {
                        members.remove(&user);
                    }
                    _ => {}
                }
                continue;
            }
            "message_edited" => data["message"]["authorId"].clone(),
            "message_deleted" => data["message"]["deletedBy"].clone(),
            "read" => data["userId"].clone(),
            _ => continue,
        };
        let actor = actor.as_str().unwrap();
        if actor.starts_with("alice-") {
            checked.insert(data["type"].as_str().unwrap());
            assert!(
                members.contains(actor),
                "event {id} by {actor}, who was not a member then: {data}"
            );
        }
    }
    assert_eq!(
        checked.into_iter().collect::<Vec<_>>(),
        ["message_deleted", "message_edited", "read"],
        "each kind of the member's writes was logged, and checked"
    );
}
