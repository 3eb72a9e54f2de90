//! `/api/chat/rooms/{id}/attachments` and `/api/chat/attachments/{id}`:
//! uploading a file into a room (the request's body, streamed), and
//! downloading it (or its thumbnail) by those who may read the room, or
//! by a signed link. Downloads are never a page of ours: `nosniff`, a
//! sandboxing CSP, and `attachment` for all but raster images.

use super::{AppState, Query, attachment_id, room_id};
use crate::attachments::{Download, Variant};
use crate::error::{BodyErrors, ErrorBody, ReadErrors};
use crate::error::{Error, Result};
use crate::limits::Write;
use crate::model::{Attachment, Caller};
use crate::store::Upload;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What downloads may do in a browser that opens one: nothing (no
/// scripts, no plugins, no forms, an origin of its own), whatever they are.
const DOWNLOAD_CSP: &str = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .routes(routes!(begin_direct_upload))
        .routes(routes!(complete_direct_upload))
        .routes(routes!(download))
        .routes(routes!(download_thumbnail))
        .routes(routes!(link))
        .routes(routes!(linked_content))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UploadParams {
    /// The file's name, as the uploader's device had it (cleaned: no
    /// path, no invisible characters, at most 255 characters).
    #[param(max_length = 1000)]
    name: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/chat/rooms/{room_id}/attachments",
    tag = "attachments",
    summary = "Uploads a file into a room (members and admins); send it with a message by its id",
    description = "The body is the file's bytes, with a `Content-Length` (411 without one). \
        They are streamed to storage, never held whole; past `attachment_max_bytes` (25 MB by \
        default) the answer is 413 `attachment_too_large` and nothing is kept. The type is \
        sniffed from the bytes (the request's `Content-Type` is ignored) and must be one of \
        `attachment_types` (415 `attachment_type_not_allowed`). Images get their size and a \
        thumbnail. An upload not sent with a message within `attachment_orphan_ttl` (1 h) is \
        deleted.",
    params(
        ("room_id" = String, Path, description = "The room's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
        UploadParams,
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes"),
    responses(
        (status = 201, description = "Stored; send it with `POST .../messages` and `attachments: [id]`", body = Attachment),
        (status = 409, description = "The room is closed (`room_closed`)", body = ErrorBody),
        (status = 411, description = "No `Content-Length` (`length_required`)", body = ErrorBody),
        (status = 413, description = "Larger than `attachment_max_bytes` (`attachment_too_large`)", body = ErrorBody),
        (status = 415, description = "A type not in `attachment_types` (`attachment_type_not_allowed`)", body = ErrorBody),
        (status = 422, description = "An empty file (`empty_file`)", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Attachment>)> {
    let room = room_id(&room)?;
    state.limits.check_write(&caller, Write::Upload).await?;
    let len = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    Error::bad_request("invalid_content_length", "Content-Length is not a number")
                })?,
        ),
    };
    let body = futures::StreamExt::boxed(body.into_data_stream().map_err(std::io::Error::other));
    let name = params.name.as_deref().unwrap_or_default();
    let attachment = state
        .attachments
        .upload(&caller, &room, name, len, body)
        .await?;
    Ok((StatusCode::CREATED, Json(attachment)))
}

#[derive(Deserialize, ToSchema)]
struct DirectUploadAsked {
    /// The file's name (cleaned as for an upload through the server).
    #[schema(max_length = 1000)]
    name: String,
    /// Its size in bytes, checked against the limit now and against the
    /// bytes in the bucket at completion.
    #[schema(minimum = 1)]
    size: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DirectUploadBegun {
    /// The attachment's id: complete it by this, then send it.
    id: String,
    /// PUT the bytes here; no token (the URL is the permission).
    upload_url: String,
    /// When `uploadUrl` stops working (Unix seconds).
    expires_at: i64,
}

#[utoipa::path(
    post,
    path = "/api/chat/rooms/{room_id}/attachments/direct",
    tag = "attachments",
    summary = "Begins an upload straight to the S3 bucket (a presigned PUT)",
    description = "For large files, the bytes go from the client to the bucket, not through \
        this server: PUT them to `uploadUrl`, then `POST /api/chat/attachments/{id}/complete`, \
        which checks them as an upload through the server is checked. Only with \
        `attachment_storage = \"s3\"` (409 `direct_upload_unavailable` on the disk backend). \
        The bucket needs a CORS rule allowing PUT from the pages' origins.",
    params(("room_id" = String, Path, description = "The room's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    request_body = DirectUploadAsked,
    responses(
        (status = 201, description = "Where to PUT the bytes", body = DirectUploadBegun),
        (status = 409, description = "The disk backend, or a closed room", body = ErrorBody),
        (status = 413, description = "Larger than `attachment_max_bytes`", body = ErrorBody),
        ReadErrors,
        BodyErrors,
    ),
    security(("bearer" = [])),
)]
async fn begin_direct_upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    super::Json(asked): super::Json<DirectUploadAsked>,
) -> Result<(StatusCode, Json<DirectUploadBegun>)> {
    let room = room_id(&room)?;
    state.limits.check_write(&caller, Write::Upload).await?;
    let begun = state
        .attachments
        .begin_direct(&caller, &room, &asked.name, asked.size)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(DirectUploadBegun {
            id: begun.id.to_string(),
            upload_url: begun.url.to_string(),
            expires_at: begun.expires_at,
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/api/chat/attachments/{attachment_id}/complete",
    tag = "attachments",
    summary = "Completes a direct upload: checks the bytes in the bucket and makes them an attachment",
    description = "Its size (413) and sniffed type (415) are checked as for an upload through \
        the server, and an image gets its size and thumbnail; a file refused is deleted. 409 \
        `upload_not_received` before the bytes are in the bucket; 404 for anything but the \
        caller's own upload not completed yet.",
    params(("attachment_id" = String, Path, description = "The attachment's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses(
        (status = 201, description = "The attachment, ready to send", body = Attachment),
        (status = 409, description = "No bytes in the bucket yet (`upload_not_received`)", body = ErrorBody),
        (status = 413, description = "Larger than `attachment_max_bytes`", body = ErrorBody),
        (status = 415, description = "A type not in `attachment_types`", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
async fn complete_direct_upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Attachment>)> {
    let id = attachment_id(&id)?;
    let attachment = state.attachments.complete_direct(&caller, &id).await?;
    Ok((StatusCode::CREATED, Json(attachment)))
}

#[utoipa::path(
    get,
    path = "/api/chat/attachments/{attachment_id}",
    tag = "attachments",
    summary = "Downloads an attachment (members of its room and admins)",
    description = "Streams the bytes (with `Range` support: 206, or 416 past the end), or \
        redirects (302) to a presigned URL of the bucket valid for `attachment_url_lifetime`. \
        Raster images are `inline`; everything else (HTML, SVG, PDF, …) is \
        `Content-Disposition: attachment`, with `nosniff` and a sandboxing CSP. Someone \
        removed from the room gets 404, as does anyone else.",
    params(("attachment_id" = String, Path, description = "The attachment's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses(
        (status = 200, description = "The file, as its contentType (sniffed at upload)", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "*/*", body = Vec<u8>),
        (status = 302, description = "To the bucket's presigned URL"),
        (status = 416, description = "A range past the end", body = ErrorBody),
        ReadErrors,
    ),
    security(("bearer" = []), ("access_token" = []), ("cookie" = [])),
)]
async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let id = attachment_id(&id)?;
    let upload = state.attachments.find(&caller, &id).await?;
    serve(&state, &upload, Variant::Original, &headers).await
}

#[utoipa::path(
    get,
    path = "/api/chat/attachments/{attachment_id}/thumbnail",
    tag = "attachments",
    summary = "An image attachment's thumbnail (PNG, at most 320 pixels a side)",
    description = "As the attachment itself; 404 for an attachment without one.",
    params(("attachment_id" = String, Path, description = "The attachment's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses(
        (status = 200, description = "The thumbnail", content_type = "image/png", body = Vec<u8>),
        (status = 302, description = "To the bucket's presigned URL"),
        ReadErrors,
    ),
    security(("bearer" = []), ("access_token" = []), ("cookie" = [])),
)]
async fn download_thumbnail(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let id = attachment_id(&id)?;
    let upload = state.attachments.find(&caller, &id).await?;
    serve(&state, &upload, Variant::Thumbnail, &headers).await
}

/// Links to an attachment that need no token, for `<img src>` and
/// `<a href>` (and servers, in webhooks).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Links {
    /// The file (a path of this server, with a signed query).
    url: String,
    /// Its thumbnail's, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbnail_url: Option<String>,
    /// When the links stop working (Unix seconds).
    expires_at: i64,
}

#[utoipa::path(
    get,
    path = "/api/chat/attachments/{attachment_id}/link",
    tag = "attachments",
    summary = "Signed links to an attachment and its thumbnail, valid for attachment_url_lifetime",
    description = "For pages that show images with `<img src>` and offer downloads with \
        `<a href>`, which cannot send a token. Anyone holding a link can use it until it \
        expires: hand it only to the caller.",
    params(("attachment_id" = String, Path, description = "The attachment's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses((status = 200, description = "The links", body = Links), ReadErrors),
    security(("bearer" = []), ("access_token" = []), ("cookie" = [])),
)]
async fn link(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = attachment_id(&id)?;
    let upload = state.attachments.find(&caller, &id).await?;
    let (url, expires_at) = state.attachments.signed_link(&id, Variant::Original);
    let thumbnail_url = upload
        .attachment
        .thumbnail
        .map(|_| state.attachments.signed_link(&id, Variant::Thumbnail).0);
    let links = Links {
        url,
        thumbnail_url,
        expires_at,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(links)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LinkParams {
    /// `original` or `thumbnail`.
    #[param(pattern = "^(original|thumbnail)$")]
    variant: String,
    /// Unix seconds.
    expires: i64,
    #[param(pattern = "^[A-Za-z0-9_-]{43}$")]
    signature: String,
}

#[utoipa::path(
    get,
    path = "/api/chat/attachments/{attachment_id}/content",
    tag = "attachments",
    summary = "An attachment by a signed link (see `/link`, and webhooks' `downloadUrl`)",
    description = "No token: the signature is the permission, until `expires`. An invalid or \
        expired link is 403 `invalid_link`; an attachment deleted since is 404.",
    params(("attachment_id" = String, Path, description = "The attachment's id (a UUID)", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"), LinkParams),
    responses(
        (status = 200, description = "The file, as its contentType (sniffed at upload)", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "*/*", body = Vec<u8>),
        (status = 302, description = "To the bucket's presigned URL"),
        (status = 416, description = "A range past the end", body = ErrorBody),
        ReadErrors,
    ),
    security(()),
)]
async fn linked_content(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<LinkParams>,
    headers: HeaderMap,
) -> Result<Response> {
    let id = attachment_id(&id)?;
    let variant = Variant::parse(&params.variant).ok_or_else(|| {
        Error::bad_request("invalid_variant", "variant must be original or thumbnail")
    })?;
    let upload = state
        .attachments
        .find_linked(&id, variant, params.expires, &params.signature)
        .await?;
    serve(&state, &upload, variant, &headers).await
}

/// The download of `variant` of `upload`, as the request's `Range` asks.
async fn serve(
    state: &AppState,
    upload: &Upload,
    variant: Variant,
    request: &HeaderMap,
) -> Result<Response> {
    let size = upload.attachment.size.max(0) as u64;
    let range = match (variant, request.get(header::RANGE)) {
        (Variant::Original, Some(value)) => match parse_range(value, size) {
            Ranged::Whole => None,
            Ranged::Part(range) => Some(range),
            Ranged::Unsatisfiable => return Ok(unsatisfiable(size)),
        },
        _ => None,
    };
    let (read, headers) = match state.attachments.download(upload, variant, range).await? {
        Download::Redirect(url) => {
            let location = HeaderValue::try_from(url.as_str())
                .map_err(|e| Error::internal_from("a presigned URL is not a header value", e))?;
            return Ok((
                StatusCode::FOUND,
                [
                    (header::LOCATION, location),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
            )
                .into_response());
        }
        Download::Bytes { read, headers } => (read, headers),
    };
    let status = if read.range.start == 0 && read.range.end == read.size {
        StatusCode::OK
    } else {
        StatusCode::PARTIAL_CONTENT
    };
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, &headers.content_type)
        .header(header::CONTENT_DISPOSITION, &headers.content_disposition)
        .header(header::CONTENT_LENGTH, read.range.end - read.range.start)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, DOWNLOAD_CSP)
        // Never changes, but only those allowed may have it.
        .header(header::CACHE_CONTROL, "private, max-age=3600");
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!(
                "bytes {}-{}/{}",
                read.range.start,
                read.range.end.saturating_sub(1),
                read.size
            ),
        );
    }
    response
        .body(Body::from_stream(read.body))
        .map_err(|e| Error::internal_from("could not build a download's answer", e))
}

fn unsatisfiable(size: u64) -> Response {
    let mut response = Error::RangeNotSatisfiable.into_response();
    if let Ok(value) = HeaderValue::try_from(format!("bytes */{size}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    response
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Ranged {
    /// None, several, or one not understood: the whole file (RFC 9110
    /// lets a server ignore a range it does not serve).
    Whole,
    Part(Range<u64>),
    Unsatisfiable,
}

fn parse_range(value: &HeaderValue, size: u64) -> Ranged {
    let Some(spec) = value.to_str().ok().and_then(|v| v.strip_prefix("bytes=")) else {
        return Ranged::Whole;
    };
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let number = |text: &str| text.trim().parse::<u64>().ok();
    match (start.trim().is_empty(), number(start), number(end)) {
        // The last `n` bytes.
        (true, _, Some(0)) => Ranged::Unsatisfiable,
        (true, _, Some(suffix)) => Ranged::Part(size.saturating_sub(suffix)..size),
        (false, Some(start), _) if start >= size => Ranged::Unsatisfiable,
        (false, Some(start), None) if end.trim().is_empty() => Ranged::Part(start..size),
        (false, Some(start), Some(end)) if end >= start => {
            Ranged::Part(start..end.saturating_add(1).min(size))
        }
        _ => Ranged::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> Ranged {
        parse_range(&HeaderValue::from_str(text).unwrap(), 100)
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_has_them() {
        assert_eq!(range("bytes=0-9"), Ranged::Part(0..10));
        assert_eq!(range("bytes=90-"), Ranged::Part(90..100));
        assert_eq!(range("bytes=-10"), Ranged::Part(90..100));
        assert_eq!(range("bytes=95-200"), Ranged::Part(95..100));
        assert_eq!(range("bytes=100-"), Ranged::Unsatisfiable);
        assert_eq!(range("bytes=-0"), Ranged::Unsatisfiable);
        assert_eq!(range("bytes=0-1,5-6"), Ranged::Whole);
        assert_eq!(range("bytes=9-3"), Ranged::Whole);
        assert_eq!(range("items=0-9"), Ranged::Whole);
    }
}
