//! Files between the widget and the admin panel: a screenshot pasted into
//! the widget's box on one instance shows as a thumbnail in the admin panel
//! on another (PostgreSQL) at once, and downloads from there byte-exact; a
//! file past the server's limit, or of a type it refuses, says so in the
//! widget, and the box still sends.

use super::{Browser, SERVER_ENV, admin_with_room_open, alices_widget, web_packages_installed};
use crate::support::{Backend, ServerProcess, SharedDb, admin, user};
use serde_json::{Value, json};
use std::path::Path;

/// Bytes as lower-case hex, as the pages give them.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Runs axe-core on the page; its serious or critical violations.
pub(super) async fn serious_violations(browser: &Browser) -> Value {
    let axe = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("web/node_modules/axe-core/axe.min.js"),
    )
    .expect("axe-core, installed by npm ci in web/");
    browser.run(&format!("{axe}\nreturn 0;")).await;
    browser
        .run_async(
            "axe.run(document).then((result) => done(result.violations
               .filter((v) => v.impact === 'serious' || v.impact === 'critical')
               .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.html) }))));",
        )
        .await
}

/// The image shown in the open conversation for the message whose body is `body`.
fn thumbnail_of(body: &str) -> String {
    format!(
        "[...document.querySelectorAll('#messages .message')]
           .find((m) => m.querySelector('.body').textContent === '{body}')
           ?.querySelector('.attachments a.attachment.image img')"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screenshot_pasted_in_the_widget_shows_as_a_thumbnail_in_the_admin_panel_on_another_instance_and_downloads_byte_exact()
 {
    let test = "browser::attachments::\
        a_screenshot_pasted_in_the_widget_shows_as_a_thumbnail_in_the_admin_panel_on_another_instance_and_downloads_byte_exact";
    let Some(backend) = Backend::postgres() else {
        return;
    };
    if !web_packages_installed(test) {
        return;
    }
    let Some(widget) = Browser::start(test).await else {
        return;
    };
    let Some(panel) = Browser::start(test).await else {
        return;
    };
    let db = SharedDb::create(&backend).await;
    // The instances share their files, as a cluster on one mount would.
    let files = tempfile::tempdir().expect("a temp dir");
    let shared = files.path().to_str().unwrap();
    let env = [SERVER_ENV[0], ("CHAT_ATTACHMENT_DIR", shared)];
    let a = ServerProcess::start_on(&db, 0, &env).await;
    let b = ServerProcess::start_on(&db, 0, &env).await;
    let alice = user("alice");
    let room = a.create_room(&alice, "Where is my parcel?", &[]).await;
    a.send(&alice, &room, "It says delivered").await;
    alices_widget(&widget, &a.address).await;
    admin_with_room_open(&panel, &b.address, &room).await;

    // A screenshot, drawn in the page, pasted into the box as a clipboard image.
    let pasted = widget
        .run_async(
            "const canvas = document.createElement('canvas');
             canvas.width = 640;
             canvas.height = 400;
             const g = canvas.getContext('2d');
             g.fillStyle = '#f4f6f8';
             g.fillRect(0, 0, 640, 400);
             g.fillStyle = '#1f5fbf';
             g.fillRect(40, 40, 300, 120);
             g.fillStyle = '#8a1c10';
             g.font = '32px sans-serif';
             g.fillText('Delivered? No.', 60, 260);
             canvas.toBlob(async (blob) => {
               const file = new File([blob], 'screenshot.png', { type: 'image/png' });
               const data = new DataTransfer();
               data.items.add(file);
               const box = document.getElementById('body');
               box.focus();
               const paste = new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true });
               box.dispatchEvent(paste);
               const bytes = new Uint8Array(await blob.arrayBuffer());
               done({
                 taken: paste.defaultPrevented,
                 hex: [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(''),
               });
             }, 'image/png');",
        )
        .await;
    assert_eq!(pasted["taken"], json!(true), "the paste is the composer's");
    let png = pasted["hex"].as_str().unwrap().to_owned();
    assert!(png.starts_with("89504e47"), "a PNG");
    widget
        .wait_for(
            "the upload, listed and done",
            "document.querySelector('.uploads .upload[data-state=\"done\"] .upload-name')?.textContent === 'screenshot.png'",
        )
        .await;
    // The box stayed usable while it uploaded: the text goes with the file.
    widget.type_and_send("Here is what I see").await;
    widget
        .wait_for(
            "its own message, with the thumbnail, and the list of uploads emptied",
            &format!(
                "({0})?.complete && ({0}).naturalWidth > 0 && document.querySelector('.uploads').hidden
                 && document.getElementById('body').value === ''",
                thumbnail_of("Here is what I see")
            ),
        )
        .await;

    // On the other instance, live: the thumbnail, loaded, sized by its metadata.
    let image = thumbnail_of("Here is what I see");
    panel
        .wait_for(
            "the thumbnail in the admin panel",
            &format!("({image})?.complete && ({image}).naturalWidth > 0"),
        )
        .await;
    let page = super::get(
        &b,
        &admin("agent"),
        &format!("/api/chat/rooms/{room}/messages"),
    )
    .await;
    let sent = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["body"] == "Here is what I see")
        .expect("the message, stored")
        .clone();
    let attachment = &sent["attachments"][0];
    assert_eq!(attachment["name"], "screenshot.png");
    assert_eq!(attachment["contentType"], "image/png");
    assert_eq!(
        (attachment["width"].clone(), attachment["height"].clone()),
        (json!(640), json!(400))
    );
    let shown = panel
        .run(&format!(
            "const img = {image};
             const link = img.closest('a');
             return {{
               alt: img.alt,
               width: img.getAttribute('width'),
               height: img.getAttribute('height'),
               naturalWidth: img.naturalWidth,
               href: link.href,
               target: link.target,
               rel: link.rel,
             }};"
        ))
        .await;
    assert_eq!(shown["alt"], "screenshot.png");
    assert_eq!(
        shown["width"],
        json!(attachment["thumbnail"]["width"].to_string())
    );
    assert_eq!(
        shown["height"],
        json!(attachment["thumbnail"]["height"].to_string())
    );
    assert_eq!(shown["naturalWidth"], attachment["thumbnail"]["width"]);
    assert_eq!(shown["target"], "_blank");
    assert_eq!(shown["rel"], "noopener");

    // The full image, from the admin panel's link (signed: no token), as pasted.
    let href = shown["href"].as_str().unwrap();
    assert!(href.starts_with(&b.address), "{href}");
    let response = reqwest::get(href).await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    assert_eq!(hex(&bytes), png, "the download is byte-exact");

    panel.screenshot("admin-attachment-image").await;
    assert_eq!(
        serious_violations(&panel).await,
        json!([]),
        "the admin panel with an image"
    );
    widget.assert_no_errors().await;
    panel.assert_no_errors().await;
    widget.close().await;
    panel.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_past_the_limit_or_of_a_refused_type_says_why_in_the_widget_and_the_box_still_sends()
{
    let test = "browser::attachments::\
        a_file_past_the_limit_or_of_a_refused_type_says_why_in_the_widget_and_the_box_still_sends";
    if !web_packages_installed(test) {
        return;
    }
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let server = ServerProcess::start(
        &Backend::Sqlite,
        &[SERVER_ENV[0], ("CHAT_ATTACHMENT_MAX_BYTES", "100000")],
    )
    .await;
    let alice = user("alice");
    let room = server.create_room(&alice, "Big files", &[]).await;
    server.send(&alice, &room, "first").await;
    alices_widget(&browser, &server.address).await;
    browser.resize(375, 740).await;

    // Chosen with the file input (the Attach button opens it): one too
    // large, one a page, which the server refuses.
    browser
        .run(
            "const data = new DataTransfer();
             data.items.add(new File(['a'.repeat(150000)], 'big.txt', { type: 'text/plain' }));
             data.items.add(new File(['<!doctype html><script>alert(1)</script>'], 'page.html', { type: 'text/html' }));
             const input = document.getElementById('attach-input');
             input.files = data.files;
             input.dispatchEvent(new Event('change', { bubbles: true }));
             return 0;",
        )
        .await;
    let errors = "[...document.querySelectorAll('.uploads .upload[data-state=\"failed\"]')]
        .map((u) => u.querySelector('.upload-name').textContent + ': ' + u.querySelector('.upload-error').textContent)";
    browser
        .wait_for(
            "both refused, each saying why",
            &format!(
                "JSON.stringify({errors}) === JSON.stringify([
                   'big.txt: File too large (max 98 KB)',
                   'page.html: This file type is not allowed',
                 ])"
            ),
        )
        .await;
    assert_eq!(
        browser
            .run(
                "return [...document.querySelectorAll('.uploads .upload')].map((u) =>
                   [...u.querySelectorAll('button')].map((b) => b.textContent).join(' '));"
            )
            .await,
        json!(["Retry Remove", "Retry Remove"])
    );
    // Nothing to send yet: an empty box with only failed files sends nothing.
    browser.click("#send button[type=submit]").await;
    // The box still sends text, the failures stay listed.
    browser.type_and_send("Never mind, here is the text").await;
    browser
        .wait_for(
            "the text sent, the failed files still listed",
            &format!(
                "[...document.querySelectorAll('#messages .body')].at(-1)?.textContent === 'Never mind, here is the text'
                 && document.getElementById('body').value === ''
                 && {errors}.length === 2"
            ),
        )
        .await;
    let messages = super::get(&server, &alice, &format!("/api/chat/rooms/{room}/messages")).await;
    let bodies: Vec<&str> = messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["first", "Never mind, here is the text"]);
    assert!(
        messages["messages"][1].get("attachments").is_none(),
        "no files with it"
    );

    // The layout holds at 375 px with the failures listed.
    let layout = browser
        .run(
            "const rect = (el) => el.getBoundingClientRect();
             return {
               overflow: document.documentElement.scrollWidth > window.innerWidth,
               inputVisible: rect(document.getElementById('body')).bottom <= window.innerHeight,
               attachVisible: rect(document.getElementById('attach')).right <= window.innerWidth,
             };",
        )
        .await;
    assert_eq!(
        layout,
        json!({"overflow": false, "inputVisible": true, "attachVisible": true})
    );
    browser.screenshot("widget-upload-failed-375px").await;
    assert_eq!(
        serious_violations(&browser).await,
        json!([]),
        "the widget with failed uploads"
    );

    // Removed, they leave the list; the focus goes back to the box.
    for _ in 0..2 {
        browser.click(".uploads .upload-remove").await;
    }
    browser
        .wait_for(
            "the list gone, the box focused",
            "document.querySelector('.uploads').hidden && document.activeElement?.id === 'body'",
        )
        .await;
    browser.assert_no_errors().await;
    browser.close().await;
}
