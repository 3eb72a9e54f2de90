//! Attachments on both blob stores (the disk, and a real S3 server: moto)
//! and both databases: exact bytes back, and only to those who may read
//! the room; nothing served inline but raster images; 413 past the limit
//! with nothing kept; images measured and thumbnailed; and no blob left
//! behind by a deleted message, room or user, an upload never sent, or a
//! server killed mid-upload.

use crate::support::s3::S3Server;
use crate::support::{
    Backend, ServerProcess, SharedDb, TestApp, WAIT, admin, assert_error, count_rows, user,
};
use figment::providers::Serialized;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Where a test's blobs go.
#[derive(Debug, Clone, Copy)]
enum Blobs {
    Disk,
    S3,
}

/// Runs each named test (an `async fn(Backend, Blobs)`) on both blob
/// stores, each on both databases.
macro_rules! on_both_blob_stores {
    ($($name:ident),+ $(,)?) => {
        mod disk {
            $(
                async fn $name(backend: crate::support::Backend) {
                    super::$name(backend, super::Blobs::Disk).await;
                }
            )+
            crate::support::on_both_stores!($($name),+);
        }
        mod s3 {
            $(
                async fn $name(backend: crate::support::Backend) {
                    super::$name(backend, super::Blobs::S3).await;
                }
            )+
            crate::support::on_both_stores!($($name),+);
        }
    };
}

on_both_blob_stores!(
    an_upload_comes_back_byte_for_byte_and_travels_with_its_message,
    only_those_who_may_read_the_room_may_download,
    nothing_but_raster_images_is_served_inline,
    an_upload_past_the_limit_is_refused_and_leaves_nothing,
    an_image_gets_its_size_and_a_thumbnail,
    an_upload_is_sent_once_by_its_uploader_into_its_room,
    deleted_messages_rooms_users_and_unsent_uploads_leave_no_blob,
    a_direct_upload_to_the_bucket_is_checked_when_completed,
);

crate::support::on_both_stores!(a_server_killed_mid_upload_leaves_no_blob_after_restart);

/// A server on `blobs`, with `settings`; the S3 server it uses, held.
async fn spawn(
    backend: Backend,
    blobs: Blobs,
    test: &str,
    settings: &[(&'static str, Value)],
) -> Option<(TestApp, Option<S3Server>)> {
    let s3 = match blobs {
        Blobs::Disk => None,
        Blobs::S3 => Some(S3Server::start(test).await?),
    };
    let mut all: Vec<(String, Value)> = s3
        .iter()
        .flat_map(|s3| s3.settings())
        .map(|(name, value)| {
            let name = name.trim_start_matches("CHAT_").to_lowercase();
            let value = serde_json::from_str(&value).unwrap_or(json!(value));
            (name, value)
        })
        .collect();
    all.extend(
        settings
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone())),
    );
    let app = TestApp::spawn_with(backend, |figment| {
        all.into_iter().fold(figment, |figment, (name, value)| {
            figment.merge(Serialized::default(&name, value))
        })
    })
    .await;
    Some((app, s3))
}

/// Uploads `bytes` as `name` into `room`.
async fn upload(
    app: &TestApp,
    token: &str,
    room: &str,
    name: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    crate::support::send(
        app.client
            .http
            .post(app.client.url(&format!(
                "/api/chat/rooms/{room}/attachments?name={}",
                url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
            )))
            .bearer_auth(token)
            .header("content-type", "image/png")
            .body(bytes),
    )
    .await
}

async fn uploaded(app: &TestApp, token: &str, room: &str, name: &str, bytes: Vec<u8>) -> Value {
    let (status, attachment) = upload(app, token, room, name, bytes).await;
    assert_eq!(status, StatusCode::CREATED, "{attachment}");
    attachment
}

/// GETs `path` as `token`'s user, following a redirect to the bucket.
async fn download(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let request = app.client.http.get(app.client.url(path));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.expect("the server answers")
}

/// Text bytes of `len`, different at every offset.
fn text(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789 \n"[(i * 7 + i / 38) % 38])
        .collect()
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 99]));
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

/// How many blobs the server's store holds (the directory's files, the
/// bucket's objects).
async fn blob_count(app: &TestApp) -> usize {
    app.state.attachments.blob_count().await.unwrap()
}

/// Waits until the server's store holds `count` blobs.
async fn until_blobs(app: &TestApp, count: usize) {
    let started = Instant::now();
    loop {
        let now = blob_count(app).await;
        if now == count {
            return;
        }
        assert!(started.elapsed() < WAIT, "{now} blobs, expected {count}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn an_upload_comes_back_byte_for_byte_and_travels_with_its_message(
    backend: Backend,
    blobs: Blobs,
) {
    let test = "attachments::an_upload_comes_back_byte_for_byte_and_travels_with_its_message";
    let Some((app, _s3)) = spawn(backend, blobs, test, &[]).await else {
        return;
    };
    let (alice, bob) = (user("alice"), user("bob"));
    let room = app
        .create_room(&admin("agent"), "files", &["alice", "bob"])
        .await;
    let mut bob_stream = app.stream(&format!("?roomId={room}"), &bob).await;
    let bytes = text(300_000);
    let attachment = uploaded(&app, &alice, &room, "server log.txt", bytes.clone()).await;
    assert_eq!(attachment["name"], "server log.txt");
    assert_eq!(attachment["size"], 300_000);
    // Sniffed, not the request's `image/png`.
    assert_eq!(attachment["contentType"], "text/plain");
    assert!(attachment.get("thumbnail").is_none());

    let (status, message) = app
        .post_message(
            &alice,
            &room,
            json!({"body": "", "attachments": [attachment["id"]]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{message}");
    assert_eq!(message["attachments"], json!([attachment]));
    let event = bob_stream.expect("message").await;
    assert_eq!(event.data["message"], message);
    let (_, history) = app
        .get(&format!("/api/chat/rooms/{room}/messages"), &bob)
        .await;
    assert_eq!(history["messages"][0]["attachments"], json!([attachment]));
    let (_, listed) = app.get(&format!("/api/chat/rooms/{room}"), &bob).await;
    assert_eq!(listed["lastMessage"]["attachments"], json!([attachment]));

    let id = attachment["id"].as_str().unwrap();
    let response = download(&app, &format!("/api/chat/attachments/{id}"), Some(&bob)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;"),
        "{:?}",
        response.headers()
    );
    assert_eq!(response.bytes().await.unwrap(), bytes);

    // A part of it, as a resumed download asks.
    let response = app
        .client
        .http
        .get(app.client.url(&format!("/api/chat/attachments/{id}")))
        .bearer_auth(&bob)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.bytes().await.unwrap(), bytes[1000..2000]);

    // A signed link works without a token, and not once tampered with.
    let (status, links) = app
        .get(&format!("/api/chat/attachments/{id}/link"), &bob)
        .await;
    assert_eq!(status, StatusCode::OK, "{links}");
    let url = links["url"].as_str().unwrap();
    let response = download(&app, url, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap(), bytes);
    // Tampered with, it opens nothing: another signature, another
    // expiry, the thumbnail's signature for the file, another file's.
    let signature = url.split("signature=").nth(1).unwrap();
    let expires: i64 = url
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let other = uploaded(&app, &alice, &room, "other.txt", text(10)).await;
    let other_id = other["id"].as_str().unwrap();
    for forged in [
        url.replace("signature=", "signature=A"),
        url.replace(
            &format!("expires={expires}"),
            &format!("expires={}", expires + 1),
        ),
        url.replace("variant=original", "variant=thumbnail"),
        url.replace(id, other_id),
        format!(
            "/api/chat/attachments/{id}/content?variant=original&expires={}&signature={signature}",
            expires + 10 * 365 * 86_400
        ),
    ] {
        let response = download(&app, &forged, None).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{forged}");
    }
    // Once its message is deleted, the link opens nothing either.
    let message_id = message["id"].as_str().unwrap();
    let (status, _) = app
        .delete(
            &format!("/api/chat/rooms/{room}/messages/{message_id}"),
            &alice,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        download(&app, url, None).await.status(),
        StatusCode::NOT_FOUND
    );
}

async fn only_those_who_may_read_the_room_may_download(backend: Backend, blobs: Blobs) {
    let test = "attachments::only_those_who_may_read_the_room_may_download";
    let Some((app, _s3)) = spawn(backend, blobs, test, &[]).await else {
        return;
    };
    let (alice, bob, agent) = (user("alice"), user("bob"), admin("agent"));
    let room = app.create_room(&agent, "private", &["alice", "bob"]).await;
    let sent = uploaded(&app, &alice, &room, "a.txt", text(1000)).await;
    let unsent = uploaded(&app, &alice, &room, "b.txt", text(1000)).await;
    let (status, _) = app
        .post_message(
            &alice,
            &room,
            json!({"body": "see", "attachments": [sent["id"]]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let path = |attachment: &Value| {
        format!(
            "/api/chat/attachments/{}",
            attachment["id"].as_str().unwrap()
        )
    };

    for (token, status) in [
        (Some(&bob), StatusCode::OK),
        (Some(&agent), StatusCode::OK),
        (Some(&user("mallory")), StatusCode::NOT_FOUND),
        (None, StatusCode::UNAUTHORIZED),
    ] {
        let response = download(&app, &path(&sent), token.map(String::as_str)).await;
        assert_eq!(response.status(), status);
        let (status, _) = match token {
            Some(token) => app.get(&format!("{}/link", path(&sent)), token).await,
            None => (StatusCode::UNAUTHORIZED, Value::Null),
        };
        assert!(status == StatusCode::OK || status.is_client_error());
    }
    // An upload not sent yet is its uploader's alone.
    assert_eq!(
        download(&app, &path(&unsent), Some(&alice)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        download(&app, &path(&unsent), Some(&bob)).await.status(),
        StatusCode::NOT_FOUND
    );

    // Removed from the room, bob can read it no more.
    let (status, _) = app
        .delete(&format!("/api/chat/rooms/{room}/members/bob"), &agent)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        download(&app, &path(&sent), Some(&bob)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_error(
        app.get(&format!("{}/link", path(&sent)), &bob).await,
        StatusCode::NOT_FOUND,
        "attachment_not_found",
    );
    // Nor upload into it.
    assert_error(
        upload(&app, &bob, &room, "c.txt", text(10)).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
}

async fn nothing_but_raster_images_is_served_inline(backend: Backend, blobs: Blobs) {
    let test = "attachments::nothing_but_raster_images_is_served_inline";
    // By default, pages are refused outright.
    {
        let Some((app, _s3)) = spawn(backend.clone(), blobs, test, &[]).await else {
            return;
        };
        let room = app.create_room(&user("alice"), "pages", &[]).await;
        let page = b"<html><script>alert(document.cookie)</script></html>".to_vec();
        assert_error(
            upload(&app, &user("alice"), &room, "invoice.png", page).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "attachment_type_not_allowed",
        );
        assert_eq!(blob_count(&app).await, 0);
    }
    // Allowed by a setting, they still only ever download.
    let types = json!(["text/html", "text/plain", "image/png"]);
    let Some((app, _s3)) = spawn(backend, blobs, test, &[("attachment_types", types)]).await else {
        return;
    };
    let alice = user("alice");
    let room = app.create_room(&alice, "pages", &[]).await;
    for (name, bytes) in [
        (
            "page.html",
            b"<!DOCTYPE html><html><script>alert(1)</script></html>".to_vec(),
        ),
        (
            "logo.svg",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec(),
        ),
        ("invoice.png", b"<html><body onload=alert(1)>".to_vec()),
        ("notes.png", b"just some text".to_vec()),
    ] {
        let attachment = uploaded(&app, &alice, &room, name, bytes.clone()).await;
        assert_ne!(attachment["contentType"], "image/png", "{name}");
        let id = attachment["id"].as_str().unwrap();
        let response = download(&app, &format!("/api/chat/attachments/{id}"), Some(&alice)).await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        let headers = response.headers().clone();
        let disposition = headers["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment;"),
            "{name}: {disposition}"
        );
        assert!(
            disposition.contains(&format!("filename*=UTF-8''{name}")),
            "{disposition}"
        );
        assert!(
            !headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("image/"),
            "{name}"
        );
        if let Blobs::Disk = blobs {
            // Ours: a bucket's answer is the bucket's (see docs/security.md).
            assert_eq!(headers["x-content-type-options"], "nosniff");
            assert!(
                headers["content-security-policy"]
                    .to_str()
                    .unwrap()
                    .starts_with("sandbox")
            );
        }
        assert_eq!(response.bytes().await.unwrap(), bytes);
    }
    // A real image is shown inline.
    let image = uploaded(&app, &alice, &room, "shot.png", png(10, 10)).await;
    let id = image["id"].as_str().unwrap();
    let response = download(&app, &format!("/api/chat/attachments/{id}"), Some(&alice)).await;
    assert_eq!(response.headers()["content-type"], "image/png");
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline;")
    );
}

async fn an_upload_past_the_limit_is_refused_and_leaves_nothing(backend: Backend, blobs: Blobs) {
    let test = "attachments::an_upload_past_the_limit_is_refused_and_leaves_nothing";
    let settings = [("attachment_max_bytes", json!(100_000))];
    let Some((app, _s3)) = spawn(backend, blobs, test, &settings).await else {
        return;
    };
    let alice = user("alice");
    let room = app.create_room(&alice, "big", &[]).await;
    assert_error(
        upload(&app, &alice, &room, "big.txt", text(100_001)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "attachment_too_large",
    );
    // A body of unknown length is refused before a byte is read.
    let chunks = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(text(10)))]);
    assert_error(
        crate::support::send(
            app.client
                .http
                .post(
                    app.client
                        .url(&format!("/api/chat/rooms/{room}/attachments")),
                )
                .bearer_auth(&alice)
                .body(reqwest::Body::wrap_stream(chunks)),
        )
        .await,
        StatusCode::LENGTH_REQUIRED,
        "length_required",
    );
    assert_error(
        crate::support::send(
            app.client
                .http
                .post(
                    app.client
                        .url(&format!("/api/chat/rooms/{room}/attachments")),
                )
                .bearer_auth(&alice)
                .header("content-length", "0"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "empty_file",
    );
    assert_eq!(blob_count(&app).await, 0);
    assert_eq!(
        count_rows(app.database_url(), "SELECT COUNT(*) FROM attachments").await,
        0
    );
    // Exactly the limit is fine.
    uploaded(&app, &alice, &room, "fits.txt", text(100_000)).await;
    assert_eq!(blob_count(&app).await, 1);
}

async fn an_image_gets_its_size_and_a_thumbnail(backend: Backend, blobs: Blobs) {
    let test = "attachments::an_image_gets_its_size_and_a_thumbnail";
    let Some((app, _s3)) = spawn(backend, blobs, test, &[]).await else {
        return;
    };
    let alice = user("alice");
    let room = app.create_room(&alice, "shots", &[]).await;
    let shot = uploaded(&app, &alice, &room, "screenshot.png", png(1280, 720)).await;
    assert_eq!(shot["contentType"], "image/png");
    assert_eq!(
        (shot["width"].clone(), shot["height"].clone()),
        (json!(1280), json!(720))
    );
    assert_eq!(shot["thumbnail"], json!({"width": 320, "height": 180}));
    let id = shot["id"].as_str().unwrap();
    let response = download(
        &app,
        &format!("/api/chat/attachments/{id}/thumbnail"),
        Some(&alice),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let thumbnail = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((thumbnail.width(), thumbnail.height()), (320, 180));
    assert_eq!(blob_count(&app).await, 2);
    // A file without one has none to fetch.
    let log = uploaded(&app, &alice, &room, "log.txt", text(100)).await;
    let id = log["id"].as_str().unwrap();
    let response = download(
        &app,
        &format!("/api/chat/attachments/{id}/thumbnail"),
        Some(&alice),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

async fn an_upload_is_sent_once_by_its_uploader_into_its_room(backend: Backend, blobs: Blobs) {
    let test = "attachments::an_upload_is_sent_once_by_its_uploader_into_its_room";
    let Some((app, _s3)) = spawn(backend, blobs, test, &[]).await else {
        return;
    };
    let (alice, bob, agent) = (user("alice"), user("bob"), admin("agent"));
    let room = app.create_room(&agent, "shared", &["alice", "bob"]).await;
    let other = app.create_room(&agent, "other", &["alice"]).await;
    let file = uploaded(&app, &alice, &room, "a.txt", text(100)).await;
    let ids = json!([file["id"]]);
    for (token, into) in [(&bob, &room), (&alice, &other)] {
        assert_error(
            app.post_message(token, into, json!({"body": "x", "attachments": ids}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "attachment_unavailable",
        );
    }
    let send = json!({"body": "", "attachments": ids, "clientId": "c-1"});
    let (status, first) = app.post_message(&alice, &room, send.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    // A retry is the same message; another send of it is refused.
    let (status, again) = app.post_message(&alice, &room, send).await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    assert_error(
        app.post_message(&alice, &room, json!({"body": "twice", "attachments": ids}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "attachment_unavailable",
    );
    assert_error(
        app.post_message(&alice, &room, json!({"body": "", "attachments": ["nope"]}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_attachment_id",
    );
    assert_error(
        app.post_message(&alice, &room, json!({"body": ""})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    let (_, history) = app
        .get(&format!("/api/chat/rooms/{room}/messages"), &alice)
        .await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 1);
}

async fn deleted_messages_rooms_users_and_unsent_uploads_leave_no_blob(
    backend: Backend,
    blobs: Blobs,
) {
    let test = "attachments::deleted_messages_rooms_users_and_unsent_uploads_leave_no_blob";
    let settings = [
        ("attachment_orphan_ttl", json!("2s")),
        ("attachment_url_lifetime", json!("1s")),
    ];
    let Some((app, _s3)) = spawn(backend, blobs, test, &settings).await else {
        return;
    };
    let (alice, agent) = (user("alice"), admin("agent"));
    let room = app.create_room(&agent, "doomed", &["alice"]).await;
    let send = |attachment: &Value| json!({"body": "", "attachments": [attachment["id"]]});

    // A deleted message: its image and thumbnail go.
    let shot = uploaded(&app, &alice, &room, "shot.png", png(64, 64)).await;
    let (_, message) = app.post_message(&alice, &room, send(&shot)).await;
    until_blobs(&app, 2).await;
    let id = message["id"].as_str().unwrap();
    let (status, tombstone) = app
        .delete(&format!("/api/chat/rooms/{room}/messages/{id}"), &alice)
        .await;
    assert_eq!(status, StatusCode::OK, "{tombstone}");
    assert!(tombstone.get("attachments").is_none(), "{tombstone}");
    until_blobs(&app, 0).await;
    let shot_id = shot["id"].as_str().unwrap();
    let response = download(
        &app,
        &format!("/api/chat/attachments/{shot_id}"),
        Some(&alice),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // An upload never sent goes after attachment_orphan_ttl.
    uploaded(&app, &alice, &room, "forgotten.txt", text(100)).await;
    assert_eq!(blob_count(&app).await, 1);
    until_blobs(&app, 0).await;

    // An erased user's messages and unsent uploads go.
    let sent = uploaded(&app, &alice, &room, "sent.txt", text(100)).await;
    let (status, _) = app.post_message(&alice, &room, send(&sent)).await;
    assert_eq!(status, StatusCode::CREATED);
    uploaded(&app, &alice, &room, "unsent.txt", text(100)).await;
    until_blobs(&app, 2).await;
    let (status, job) = app.delete("/api/chat/users/alice/messages", &agent).await;
    assert!(status.is_success(), "{job}");
    until_blobs(&app, 0).await;

    // A deleted room's go.
    let (bob, other) = (
        user("bob"),
        app.create_room(&user("bob"), "other", &[]).await,
    );
    let kept = uploaded(&app, &bob, &other, "kept.txt", text(100)).await;
    app.post_message(&bob, &other, send(&kept)).await;
    let gone = uploaded(&app, &agent, &room, "gone.txt", text(100)).await;
    app.post_message(&agent, &room, send(&gone)).await;
    until_blobs(&app, 2).await;
    let (status, _) = app.delete(&format!("/api/chat/rooms/{room}"), &agent).await;
    assert_eq!(status, StatusCode::OK);
    until_blobs(&app, 1).await;
    assert_eq!(
        count_rows(app.database_url(), "SELECT COUNT(*) FROM attachments").await,
        1
    );
    let started = Instant::now();
    while count_rows(app.database_url(), "SELECT COUNT(*) FROM blob_deletions").await > 0 {
        assert!(started.elapsed() < WAIT, "the deletion queue did not empty");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_direct_upload_to_the_bucket_is_checked_when_completed(backend: Backend, blobs: Blobs) {
    let test = "attachments::a_direct_upload_to_the_bucket_is_checked_when_completed";
    let Some((app, _s3)) = spawn(backend, blobs, test, &[]).await else {
        return;
    };
    let (alice, bob) = (user("alice"), user("bob"));
    let room = app
        .create_room(&admin("agent"), "direct", &["alice", "bob"])
        .await;
    let direct = format!("/api/chat/rooms/{room}/attachments/direct");
    let begin = |name: &str, size: usize| {
        let (app, alice, direct) = (&app, &alice, &direct);
        let body = json!({"name": name, "size": size});
        async move { app.post(direct, alice, body).await }
    };
    if let Blobs::Disk = blobs {
        assert_error(
            begin("a.txt", 10).await,
            StatusCode::CONFLICT,
            "direct_upload_unavailable",
        );
        assert_eq!(
            count_rows(app.database_url(), "SELECT COUNT(*) FROM attachments").await,
            0
        );
        return;
    }
    let put = |url: &str, bytes: Vec<u8>| {
        let request = app.client.http.put(url).body(bytes);
        async move { request.send().await.unwrap().status() }
    };
    let bytes = png(800, 600);
    let (status, begun) = begin("photo.png", bytes.len()).await;
    assert_eq!(status, StatusCode::CREATED, "{begun}");
    let id = begun["id"].as_str().unwrap();
    let complete = format!("/api/chat/attachments/{id}/complete");
    assert_error(
        app.post(&complete, &alice, json!({})).await,
        StatusCode::CONFLICT,
        "upload_not_received",
    );
    assert!(
        put(begun["uploadUrl"].as_str().unwrap(), bytes.clone())
            .await
            .is_success()
    );
    // Only the uploader completes it.
    assert_error(
        app.post(&complete, &bob, json!({})).await,
        StatusCode::NOT_FOUND,
        "attachment_not_found",
    );
    let (status, attachment) = app.post(&complete, &alice, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{attachment}");
    assert_eq!(attachment["contentType"], "image/png");
    assert_eq!(
        attachment["thumbnail"],
        json!({"width": 320, "height": 240})
    );
    let (status, _) = app
        .post_message(&alice, &room, json!({"body": "", "attachments": [id]}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let response = download(&app, &format!("/api/chat/attachments/{id}"), Some(&bob)).await;
    assert_eq!(response.bytes().await.unwrap(), bytes);
    // The URL still works for a while, but what it PUTs now is not the file.
    let url = begun["uploadUrl"].as_str().unwrap();
    assert!(
        put(url, b"<html>swapped</html>".to_vec())
            .await
            .is_success()
    );
    let response = download(&app, &format!("/api/chat/attachments/{id}"), Some(&bob)).await;
    assert_eq!(response.bytes().await.unwrap(), bytes);

    // A page sent straight to the bucket is refused when completed, and deleted.
    let page = b"<html><script>alert(1)</script></html>".to_vec();
    let (_, begun) = begin("invoice.png", page.len()).await;
    assert!(
        put(begun["uploadUrl"].as_str().unwrap(), page)
            .await
            .is_success()
    );
    let id = begun["id"].as_str().unwrap();
    assert_error(
        app.post(
            &format!("/api/chat/attachments/{id}/complete"),
            &alice,
            json!({}),
        )
        .await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "attachment_type_not_allowed",
    );
    // The photo and its thumbnail; and the two staging objects, deleted
    // once their URLs expire (a PUT may still come until then).
    until_blobs(&app, 4).await;
    assert_eq!(
        count_rows(
            app.database_url(),
            "SELECT COUNT(*) FROM blob_deletions WHERE blob_key LIKE '%.direct'"
        )
        .await,
        2
    );
    assert_error(
        begin("huge.bin", 26_214_401).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "attachment_too_large",
    );
}

/// An upload in flight when its server is SIGKILLed leaves a row (and a
/// partial file, or an unfinished PUT): after a restart, the orphan
/// sweep removes both.
async fn a_server_killed_mid_upload_leaves_no_blob_after_restart(backend: Backend) {
    let db = SharedDb::create(&backend).await;
    let blob_dir = tempfile::tempdir().unwrap();
    let dir = blob_dir.path().to_str().unwrap();
    let env = [
        ("CHAT_ATTACHMENT_DIR", dir),
        ("CHAT_ATTACHMENT_ORPHAN_TTL", "2s"),
        ("CHAT_ATTACHMENT_URL_LIFETIME", "1s"),
    ];
    let mut server = ServerProcess::start_on(&db, 0, &env).await;
    let alice = user("alice");
    let room = server.client.create_room(&alice, "cut", &[]).await;
    // Half of a 2 MB body, then nothing: the server is killed meanwhile.
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<bytes::Bytes, std::io::Error>>();
    tx.unbounded_send(Ok(bytes::Bytes::from(text(1_000_000))))
        .unwrap();
    let request = server
        .client
        .http
        .post(
            server
                .client
                .url(&format!("/api/chat/rooms/{room}/attachments")),
        )
        .bearer_auth(&alice)
        .header("content-length", "2000000")
        .body(reqwest::Body::wrap_stream(rx))
        .send();
    let upload = tokio::spawn(request);
    let started = Instant::now();
    while std::fs::read_dir(dir).unwrap().count() == 0
        || count_rows(&db.url, "SELECT COUNT(*) FROM attachments").await == 0
    {
        assert!(started.elapsed() < WAIT, "the upload did not begin");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    let _ = upload.await;
    drop(tx);
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 1, "a partial file");

    let _restarted = ServerProcess::start_on(&db, 0, &env).await;
    let started = Instant::now();
    while std::fs::read_dir(dir).unwrap().count() > 0
        || count_rows(&db.url, "SELECT COUNT(*) FROM attachments").await > 0
        || count_rows(&db.url, "SELECT COUNT(*) FROM blob_deletions").await > 0
    {
        assert!(
            started.elapsed() < WAIT,
            "the cut upload was not cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
