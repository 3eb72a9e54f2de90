//! Erasure as a durable job: asked twice it is one job; it runs in the
//! background, survives a SIGKILL of the instance running it, and ends only
//! when none of the user's messages is left anywhere, whatever deletes
//! rooms, tombstones messages or runs the retention meanwhile; it touches
//! nobody else's; and the records of a user's presence go with it (and,
//! for everyone, once no unseen notice can need them).

use crate::support::{
    Backend, ServerProcess, SharedDb, TestApp, WAIT, admin, count_rows, free_port, on_both_stores,
    send, user,
};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_both_stores!(
    an_erasure_killed_halfway_resumes_and_leaves_none_of_the_users_messages_whatever_else_happens,
    asking_twice_is_one_job_and_a_done_erasure_answers_200_until_the_user_writes_again,
    offline_times_no_notice_can_need_are_forgotten_and_an_erasure_takes_the_users_records,
);

const ROOMS: usize = 500;
/// The writer's messages per room, written straight to the store.
const PER_ROOM: usize = 100;
/// Everyone else's per room, which must come through untouched.
const OTHERS_PER_ROOM: usize = 4;
/// Every this many rooms, in id order, one an admin deletes while the
/// erasure runs (before it gets there, as it gets there, after).
const DELETED_EVERY: usize = 12;
/// More of the writer's messages, posted through the API into rooms the
/// erasure comes to late, which a moderator deletes one by one meanwhile.
const MODERATED: usize = 300;
/// From this room on (in id order), the writer's messages are past the
/// message retention: the restarted instance's first sweep takes them
/// while the erasure goes on.
const OLD_FROM: usize = 450;

/// The hostile review read the old erasure: candidates read outside the
/// transaction, a stop at the first empty batch (a room deleted meanwhile
/// ended it), and all of it inside the request, cut by `request_timeout`.
async fn an_erasure_killed_halfway_resumes_and_leaves_none_of_the_users_messages_whatever_else_happens(
    backend: Backend,
) {
    let db = SharedDb::create(&backend).await;
    let port = free_port();
    let env = [
        ("CHAT_ERASURE_LEASE", "1s"),
        // Swept as each instance starts, then hourly.
        ("CHAT_MESSAGE_RETENTION", "1h"),
    ];
    let mut server = ServerProcess::start_on(&db, port, &env).await;
    let base = server.address.clone();
    let http = reqwest::Client::new();
    let (dpo, moderator) = (admin("dpo"), admin("moderator"));

    // 500 rooms of the writer's and someone else's.
    let mut rooms: Vec<String> = futures::stream::iter(0..ROOMS)
        .map(|r| {
            let (http, base, dpo) = (http.clone(), base.clone(), dpo.clone());
            async move {
                let (status, room) = send(
                    http.post(format!("{base}/api/chat/rooms"))
                        .bearer_auth(&dpo)
                        .json(
                            &json!({"name": format!("room {r}"), "memberIds": ["writer", "other"]}),
                        ),
                )
                .await;
                assert_eq!(status, StatusCode::CREATED, "{room}");
                room["id"].as_str().unwrap().to_owned()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    rooms.sort();
    // Through the API, as clients post: one of each's in every room, and
    // the moderated ones.
    let started = Instant::now();
    let posts = rooms.iter().flat_map(|room| {
        [
            ("writer", "secret-of-writer, posted"),
            ("other", "other's, posted"),
        ]
        .map(|(who, body)| (room.clone(), who, body.to_owned()))
    });
    let moderated_posts = (0..MODERATED).map(|n| {
        let room = rooms[OLD_FROM - 1 - n % 50].clone();
        (room, "writer", format!("secret-of-writer, moderated {n}"))
    });
    let posted: Vec<(String, Value)> = futures::stream::iter(posts.chain(moderated_posts))
        .map(|(room, who, body)| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let (status, message) = send(
                    http.post(format!("{base}/api/chat/rooms/{room}/messages"))
                        .bearer_auth(user(who))
                        .json(&json!({"body": body})),
                )
                .await;
                assert_eq!(status, StatusCode::CREATED, "{message}");
                (room, message)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let moderated: Vec<String> = posted
        .iter()
        .filter(|(_, message)| message["body"].as_str().unwrap().contains("moderated"))
        .map(|(room, message)| {
            let id = message["id"].as_str().unwrap();
            format!("/api/chat/rooms/{room}/messages/{id}")
        })
        .collect();
    // The bulk straight into the store, as the server writes it (rows,
    // events, counters): posting 52,000 through the API took a minute of
    // both cores, which the other tests running beside this one need.
    let url = db.url.clone();
    seed(&url, &rooms).await;
    eprintln!("wrote the messages in {:?}", started.elapsed());
    let writers = "SELECT COUNT(*) FROM messages WHERE author_id = 'writer'";
    let total = (ROOMS * (PER_ROOM + 1) + MODERATED) as i64;
    assert_eq!(count_rows(&url, writers).await, total);

    let (status, job) = send(
        http.delete(format!("{base}/api/chat/users/writer/messages"))
            .bearer_auth(&dpo),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job_path = format!("/api/chat/erasures/{}", job["id"].as_str().unwrap());

    // Meanwhile: an admin deletes rooms, a moderator deletes messages of
    // the writer's one by one; both go on through the kill and restart.
    let deleted: Vec<&String> = rooms[..OLD_FROM - 50]
        .iter()
        .skip(5)
        .step_by(DELETED_EVERY)
        .collect();
    let deleting = tokio::spawn(retrying_each(
        http.clone(),
        base.clone(),
        moderator.clone(),
        deleted
            .iter()
            .map(|room| format!("/api/chat/rooms/{room}"))
            .collect(),
    ));
    let moderating = tokio::spawn(retrying_each(
        http.clone(),
        base.clone(),
        moderator.clone(),
        moderated,
    ));

    // Killed once it is well under way.
    let halfway = read_job_until(&http, &base, &job_path, |job| {
        job["erased"].as_i64().unwrap() >= 2_000
    })
    .await;
    server.kill();
    assert_eq!(halfway["state"], "running");
    let at_kill = count_rows(
        &url,
        "SELECT COUNT(*) FROM messages WHERE author_id = 'writer' AND deleted_at IS NULL",
    )
    .await;
    assert!(at_kill > 0, "killed too late to tell");
    let server = ServerProcess::start_on(&db, port, &env).await;
    let done = read_job_until(&http, &server.address, &job_path, |job| {
        job["state"] == "done"
    })
    .await;
    deleting.await.unwrap();
    moderating.await.unwrap();
    eprintln!(
        "erased {} in {:?}; {at_kill} were left at the kill",
        done["erased"],
        started.elapsed()
    );

    // None of the writer's messages has a body, anywhere: not in a room
    // that exists, nor in a deleted room, nor in the log.
    for left in [
        "SELECT COUNT(*) FROM messages WHERE author_id = 'writer' AND deleted_at IS NULL",
        "SELECT COUNT(*) FROM messages WHERE author_id = 'writer' AND body <> ''",
        "SELECT COUNT(*) FROM events WHERE data LIKE '%secret-of-writer%'",
    ] {
        assert_eq!(count_rows(&url, left).await, 0, "{left}");
    }
    // The rooms deleted meanwhile are gone, their messages with them.
    let surviving = (ROOMS - deleted.len()) as i64;
    let gone = "SELECT COUNT(*) FROM rooms WHERE deleted_at IS NOT NULL";
    assert_eq!(count_rows(&url, gone).await, deleted.len() as i64);
    // In the others, each of the writer's messages is a tombstone, by the
    // erasure, the moderator or the retention; everyone else's as it was.
    let in_surviving = "FROM messages m JOIN rooms r ON r.id = m.room_id AND r.deleted_at IS NULL";
    let by = |who: &str| {
        format!(
            "SELECT COUNT(*) {in_surviving} WHERE m.author_id = 'writer' AND m.deleted_by = '{who}'"
        )
    };
    let (erased, moderated, retained) = (
        count_rows(&url, &by("dpo")).await,
        count_rows(&url, &by("moderator")).await,
        count_rows(&url, &by("chat-server:retention")).await,
    );
    assert_eq!(
        erased + moderated + retained,
        surviving * (PER_ROOM + 1) as i64 + MODERATED as i64,
        "dpo {erased}, moderator {moderated}, retention {retained}"
    );
    assert!(
        moderated > 0 && retained > 0,
        "both raced the erasure: moderator {moderated}, retention {retained}"
    );
    let others = format!(
        "SELECT COUNT(*) {in_surviving} WHERE m.author_id = 'other'
         AND m.deleted_at IS NULL AND m.body LIKE 'other''s%'"
    );
    assert_eq!(
        count_rows(&url, &others).await,
        surviving * OTHERS_PER_ROOM as i64
    );
    let others_in_log = "SELECT COUNT(*) FROM events WHERE data LIKE '%\"body\":\"other''s%'";
    assert!(count_rows(&url, others_in_log).await >= surviving * OTHERS_PER_ROOM as i64);
    // The count: every tombstone the erasure made in a room that survives,
    // and at most the writer's messages of each room deleted meanwhile (it
    // may have made tombstones there before the room went).
    let counted = done["erased"].as_i64().unwrap();
    assert!(
        counted >= erased && counted <= erased + (deleted.len() * (PER_ROOM + 1)) as i64,
        "counted {counted}; made {erased} tombstones in the rooms left"
    );
}

/// Asking again while it runs answers the same job; once it is done, its
/// answer (200) until the user writes again, which takes a new job.
async fn asking_twice_is_one_job_and_a_done_erasure_answers_200_until_the_user_writes_again(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (writer, dpo) = (user("writer"), admin("dpo"));
    let room = app.create_room(&writer, "mine", &[]).await;
    for n in 0..5 {
        app.send(&writer, &room, &format!("note {n}")).await;
    }
    let asked = futures::future::join_all(
        (0..10).map(|_| app.delete("/api/chat/users/writer/messages", &dpo)),
    )
    .await;
    let first = &asked[0].1;
    for (status, job) in &asked {
        assert!(
            [StatusCode::ACCEPTED, StatusCode::OK].contains(status),
            "{status} {job}"
        );
        assert_eq!(job["id"], first["id"], "one job: {job}");
    }
    let done = crate::moderation::erasure_done(&app, first["id"].as_str().unwrap()).await;
    assert_eq!(done["erased"], 5);
    let (status, again) = app.delete("/api/chat/users/writer/messages", &dpo).await;
    assert_eq!((status, &again), (StatusCode::OK, &done));
    // Someone with nothing to erase: a job all the same, done at once.
    let (status, nobody) = app.delete("/api/chat/users/nobody/messages", &dpo).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{nobody}");
    let nobody = crate::moderation::erasure_done(&app, nobody["id"].as_str().unwrap()).await;
    assert_eq!(nobody["erased"], 0);

    app.send(&writer, &room, "written after").await;
    let (status, next) = app.delete("/api/chat/users/writer/messages", &dpo).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{next}");
    assert_ne!(next["id"], done["id"]);
    let next = crate::moderation::erasure_done(&app, next["id"].as_str().unwrap()).await;
    assert_eq!(next["erased"], 1);
}

/// A churn of distinct users once left a row each for ever (41,000 users,
/// 41,000 rows). A user's time offline only matters until the unseen sweep
/// has passed the messages it could spare them a notice of.
async fn offline_times_no_notice_can_need_are_forgotten_and_an_erasure_takes_the_users_records(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |figment| {
        figment
            .merge(figment::providers::Serialized::default(
                "presence_grace",
                "100ms",
            ))
            .merge(figment::providers::Serialized::default(
                "unseen_delay",
                "1s",
            ))
    })
    .await;
    for n in 0..20 {
        let stream = app.stream("", &user(&format!("passer-by-{n}"))).await;
        drop(stream);
    }
    let rows = "SELECT COUNT(*) FROM presence_offline";
    wait_for(&app, rows, |count| count == 20).await;
    // Kept while a notice could need them (here, for the hour of margin
    // the instances' clocks get); forgotten once older.
    sql(
        app.database_url(),
        "UPDATE presence_offline SET offline_at = offline_at - 7200000
         WHERE user_id LIKE 'passer-by-1%'",
    )
    .await;
    wait_for(&app, rows, |count| count == 9).await;

    // An erasure takes the user's own at once, with their messages.
    let room = app.create_room(&user("passer-by-2"), "theirs", &[]).await;
    app.send(&user("passer-by-2"), &room, "hello").await;
    let who = "SELECT COUNT(*) FROM presence_offline WHERE user_id = 'passer-by-2'";
    assert_eq!(count_rows(app.database_url(), who).await, 1);
    let (status, job) = app
        .delete("/api/chat/users/passer-by-2/messages", &admin("dpo"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    crate::moderation::erasure_done(&app, job["id"].as_str().unwrap()).await;
    assert_eq!(count_rows(app.database_url(), who).await, 0);
    assert_eq!(count_rows(app.database_url(), rows).await, 8);
}

/// Writes `PER_ROOM` messages of the writer's and `OTHERS_PER_ROOM - 1` of
/// the other's into each room, with their events, as a post does (the same
/// JSON, from the server's own types), in chunks of a transaction each,
/// taking event ids in order. The writer's in the rooms from `OLD_FROM` on
/// are dated 1970: past any retention.
async fn seed(url: &str, rooms: &[String]) {
    use chat_server::model::{EventData, Message, MessageId, RoomId, Timestamp, UserId};
    let quote = |text: &str| format!("'{}'", text.replace('\'', "''"));
    let now = Timestamp::now().unix_ms();
    let mut next_event = count_rows(url, "SELECT last_id FROM event_counter").await + 1;
    let mut room_updates = Vec::new();
    for (chunk_start, chunk) in rooms
        .chunks(10)
        .enumerate()
        .map(|(c, chunk)| (c * 10, chunk))
    {
        let (mut messages, mut events) = (Vec::new(), Vec::new());
        for (offset, room) in chunk.iter().enumerate() {
            let index = chunk_start + offset;
            let last_seq = count_rows(
                url,
                &format!("SELECT last_seq FROM rooms WHERE id = {}", quote(room)),
            )
            .await;
            let authors = std::iter::repeat_n("writer", PER_ROOM)
                .chain(std::iter::repeat_n("other", OTHERS_PER_ROOM - 1));
            let mut seq = last_seq;
            for (n, author) in authors.enumerate() {
                seq += 1;
                let old = author == "writer" && index >= OLD_FROM;
                let body = match author {
                    "writer" => format!("secret-of-writer {index}/{n}"),
                    _ => format!("other's {index}/{n}"),
                };
                let message = Message {
                    id: MessageId::new(),
                    room_id: RoomId::parse(room).unwrap(),
                    seq,
                    author_id: UserId::parse(author).unwrap(),
                    body,
                    client_id: None,
                    created_at: Timestamp::from_unix_ms(if old { 0 } else { now }),
                    edited_at: None,
                    deleted_at: None,
                    deleted_by: None,
                    attachments: Vec::new(),
                };
                let data =
                    serde_json::to_string(&EventData::Message { message: &message }).unwrap();
                messages.push(format!(
                    "({}, {seq}, {}, {}, {}, NULL, {})",
                    quote(room),
                    quote(message.id.as_str()),
                    quote(author),
                    quote(&message.body),
                    message.created_at.unix_ms()
                ));
                events.push(format!(
                    "({next_event}, {}, NULL, {now}, {}, {})",
                    quote(room),
                    quote(&data),
                    quote(message.id.as_str())
                ));
                next_event += 1;
            }
            room_updates.push(format!(
                "UPDATE rooms SET last_seq = {seq}, last_event_id = {last}, activity = {last}
                 WHERE id = {};",
                quote(room),
                last = next_event - 1
            ));
        }
        // Ids taken first, as a post takes them; visible all at once.
        sql(
            url,
            &format!(
                "BEGIN;
                 UPDATE event_counter SET last_id = {};
                 INSERT INTO messages (room_id, seq, id, author_id, body, client_id, created_at)
                 VALUES {};
                 INSERT INTO events (id, room_id, subject_id, created_at, data, message_id)
                 VALUES {};
                 {}
                 COMMIT;",
                next_event - 1,
                messages.join(", "),
                events.join(", "),
                std::mem::take(&mut room_updates).join("\n"),
            ),
        )
        .await;
    }
}

/// Waits (up to `WAIT`) for `sql`'s count to satisfy `done`.
async fn wait_for(app: &TestApp, sql: &str, done: impl Fn(i64) -> bool) {
    let started = Instant::now();
    loop {
        let count = count_rows(app.database_url(), sql).await;
        if done(count) {
            return;
        }
        assert!(started.elapsed() < WAIT, "{sql}: still {count}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `statements` (one or several) on the database at `url`.
async fn sql(url: &str, statements: &str) {
    use sqlx::Connection;
    let statements = sqlx::AssertSqlSafe(statements.to_owned());
    if url.starts_with("sqlite:") {
        let mut db = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::raw_sql(statements).execute(&mut db).await.unwrap();
    } else {
        let mut db = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(statements).execute(&mut db).await.unwrap();
    }
}

/// DELETEs each of `paths` as `token`, one after another, retrying one
/// while the server cannot be reached (it is being restarted).
async fn retrying_each(http: reqwest::Client, base: String, token: String, paths: Vec<String>) {
    for path in paths {
        let started = Instant::now();
        loop {
            match http
                .delete(format!("{base}{path}"))
                .bearer_auth(&token)
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => break,
                Ok(response) => {
                    let status = response.status();
                    // Cut by the kill mid-way, a retry finishes it.
                    assert!(status.is_server_error(), "{path}: {status}");
                }
                Err(_) => {}
            }
            assert!(started.elapsed() < WAIT * 4, "{path} never went through");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads the job at `path` until `done` holds of it, through a restart.
async fn read_job_until(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        if let Ok(response) = http
            .get(format!("{base}{path}"))
            .bearer_auth(admin("dpo"))
            .send()
            .await
            && response.status() == StatusCode::OK
        {
            let job: Value = response.json().await.unwrap();
            if done(&job) {
                return job;
            }
        }
        assert!(started.elapsed() < WAIT * 8, "the erasure never got there");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
