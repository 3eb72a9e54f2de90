//! What an upload is, decided from its bytes rather than the uploader's
//! word; and how it may be served: only raster images inline, everything
//! else as a download under a safe name.

use crate::model::visible_text;

/// The most bytes read before the type is decided: what the longest
/// signature `infer` knows needs.
pub const SNIFF_BYTES: usize = 8192;

/// The types a browser shows inline as an image, and nothing but an image
/// (SVG is a document, with scripts: not one of them).
pub const RASTER_IMAGES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// The upload's type, from its first bytes (up to `SNIFF_BYTES`, or all
/// of a smaller file): a known signature's; else text, if it reads as
/// UTF-8 without NUL (a log, a CSV); else `application/octet-stream`.
pub fn sniff(head: &[u8], whole: bool) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    // A multi-byte character may be cut at the end of a partial head.
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(error) => !whole && error.error_len().is_none(),
    };
    if text && !head.contains(&0) && looks_like_markup(head) {
        // infer finds HTML only by a few leading tags: a page that
        // starts otherwise is still one to a browser.
        return "text/html".to_owned();
    }
    if text && !head.contains(&0) {
        "text/plain".to_owned()
    } else {
        "application/octet-stream".to_owned()
    }
}

/// Whether text holds markup a browser would render as a page or an SVG.
fn looks_like_markup(head: &[u8]) -> bool {
    let lower = String::from_utf8_lossy(head).to_ascii_lowercase();
    [
        "<html",
        "<script",
        "<svg",
        "<!doctype",
        "<body",
        "<iframe",
        "<?xml",
    ]
    .iter()
    .any(|tag| lower.contains(tag))
}

pub fn is_raster_image(content_type: &str) -> bool {
    RASTER_IMAGES.contains(&content_type)
}

/// An uploader's file name as we keep and show it: visible characters
/// only, no path, at most 255 characters; `file` when nothing is left.
pub fn clean_name(raw: &str) -> String {
    let name = visible_text(raw, 255);
    let name = name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    match name {
        "" | "." | ".." => "file".to_owned(),
        name => name.to_owned(),
    }
}

/// `Content-Disposition` for a download of `name`: `inline` for a raster
/// image, `attachment` for anything else; the name as RFC 6266 has it, an
/// ASCII fallback and the exact UTF-8 one (`filename*`).
pub fn disposition(content_type: &str, name: &str) -> String {
    let kind = if is_raster_image(content_type) {
        "inline"
    } else {
        "attachment"
    };
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' && c != '%' => c,
            _ => '_',
        })
        .collect();
    let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes())
        // form encoding writes a space as `+`; RFC 5987 wants `%20`.
        .map(|part| if part == "+" { "%20" } else { part })
        .collect();
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes_not_the_name() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(sniff(png, true), "image/png");
        assert_eq!(sniff(b"<html><script>alert(1)</script>", true), "text/html");
        assert_eq!(sniff(b"hello <svg onload=alert(1)>", true), "text/html");
        assert_eq!(sniff(b"2026-12-07 error: disk full\n", true), "text/plain");
        assert_eq!(sniff(b"\0\x01\x02binary", true), "application/octet-stream");
        assert_eq!(sniff(b"%PDF-1.7\n", true), "application/pdf");
        // A character cut at the end of a partial head is still text.
        assert_eq!(
            sniff("caf\u{e9}".as_bytes()[..4].as_ref(), false),
            "text/plain"
        );
    }

    #[test]
    fn names_lose_paths_and_invisible_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\me\\report.pdf"), "report.pdf");
        assert_eq!(clean_name("evil\u{202E}gnp.exe"), "evilgnp.exe");
        assert_eq!(clean_name("  "), "file");
        assert_eq!(clean_name(".."), "file");
    }

    #[test]
    fn only_raster_images_are_inline_and_names_are_quoted_safely() {
        assert!(disposition("image/png", "a.png").starts_with("inline;"));
        for kind in [
            "text/html",
            "image/svg+xml",
            "application/pdf",
            "text/plain",
        ] {
            assert!(disposition(kind, "a").starts_with("attachment;"), "{kind}");
        }
        assert_eq!(
            disposition("text/plain", "r\u{e9}sum\u{e9} \"x\".txt"),
            "attachment; filename=\"r_sum_ _x_.txt\"; \
             filename*=UTF-8''r%C3%A9sum%C3%A9%20%22x%22.txt"
        );
    }
}
