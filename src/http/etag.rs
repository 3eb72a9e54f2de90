//! Weak `ETag`s for what pages poll (the rooms listing, the inbox's
//! summary): made of who asks, what they asked and the store's version,
//! read before the answer, so a tag never claims more than its body shows.

use crate::error::{Error, Result};
use crate::model::Caller;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// A tag, and whether the request already holds it.
pub struct Tagged {
    etag: HeaderValue,
    pub unchanged: bool,
}

impl Tagged {
    /// The tag of `caller`'s answer to `asked` at the store's `version`.
    pub fn new(headers: &HeaderMap, caller: &Caller, asked: &str, version: &str) -> Result<Self> {
        let digest = Sha256::new()
            .chain_update(caller.id.as_str())
            .chain_update([0, u8::from(caller.is_admin())])
            .chain_update(format!("{asked}:{version}"))
            .finalize();
        let opaque = digest.iter().fold(String::from("\""), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        }) + "\"";
        // The weak comparison of RFC 9110 § 13.1.2: `W/` aside, the same tag.
        let unchanged = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|tag| tag.trim())
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == opaque);
        let etag = HeaderValue::try_from(format!("W/{opaque}"))
            .map_err(|e| Error::internal_from("could not build an ETag", e))?;
        Ok(Self { etag, unchanged })
    }

    /// `304 Not Modified`, with the tag.
    pub fn not_modified(self) -> Response {
        (StatusCode::NOT_MODIFIED, self.headers()).into_response()
    }

    /// `body`, with the tag.
    pub fn answer(self, body: impl IntoResponse) -> Response {
        (self.headers(), body).into_response()
    }

    fn headers(self) -> [(header::HeaderName, HeaderValue); 2] {
        [
            (header::ETAG, self.etag),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-cache"),
            ),
        ]
    }
}
