//! Attachments at run time: uploads streamed to the blob store (checked
//! for size and type as they come, images measured and thumbnailed after),
//! downloads streamed or redirected, signed download links, and the
//! cleanup that deletes blobs nothing refers to any more. The rows are the
//! store's (`store::attachments`); the routes `http::attachments`.

mod cleanup;
pub mod content;
pub mod storage;
mod thumbnail;

use crate::config::{AttachmentStorage, Config};
use crate::error::{Error, Result};
use crate::model::{Attachment, AttachmentId, Caller, RoomId, Thumbnail, Timestamp};
use crate::store::{Blob, Store, Upload, blob_key};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::{Bytes, BytesMut};
use content::{SNIFF_BYTES, clean_name, disposition, is_raster_image, sniff};
use futures::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use storage::{BlobError, BlobHeaders, BlobRead, BlobStore, ByteStream, Disk, S3, S3Options};

/// Which of an attachment's blobs a download asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The file as uploaded.
    Original,
    /// An image's PNG thumbnail.
    Thumbnail,
}

impl Variant {
    fn key(self, id: &AttachmentId) -> String {
        blob_key(
            id,
            match self {
                Self::Original => Blob::Original,
                Self::Thumbnail => Blob::Thumbnail,
            },
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Original => "original",
            Self::Thumbnail => "thumbnail",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "original" => Some(Self::Original),
            "thumbnail" => Some(Self::Thumbnail),
            _ => None,
        }
    }
}

/// What a download answers with.
pub enum Download {
    /// The bytes, from us.
    Bytes {
        read: BlobRead,
        headers: BlobHeaders,
    },
    /// A presigned URL of the bucket's.
    Redirect(url::Url),
}

/// A direct upload begun: where the client PUTs the bytes, then
/// completes it (`Attachments::complete_direct`).
pub struct DirectUpload {
    pub id: AttachmentId,
    pub url: url::Url,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The settings uploads are checked against.
#[derive(Debug, Clone)]
pub struct AttachmentOptions {
    pub max_bytes: u64,
    pub types: Vec<String>,
    pub max_pixels: u64,
    pub url_lifetime: Duration,
    pub orphan_ttl: Duration,
    /// The longest wait for an upload's next bytes.
    pub idle: Duration,
    /// How long the links webhook deliveries carry work.
    pub webhook_link_lifetime: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("could not create the attachments directory {path}: {source}")]
    Directory { path: String, source: io::Error },
    #[error("could not set up the S3 bucket's client: {0}")]
    S3(BlobError),
    #[error("could not read or make the key download links are signed with: {0}")]
    LinkKey(Error),
}

pub struct Attachments {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    options: AttachmentOptions,
    /// Keyed once with the shared link key; each link's MAC starts from a copy.
    link_mac: Hmac<Sha256>,
    /// One image decoded at a time: its pixels are the one large buffer.
    thumbnails: Arc<tokio::sync::Semaphore>,
    _cleanup: cleanup::Cleanup,
}

impl Attachments {
    pub async fn start(store: Arc<dyn Store>, config: &Config) -> Result<Self, StorageError> {
        let blobs: Arc<dyn BlobStore> = match config.attachment_storage {
            AttachmentStorage::Disk => {
                let dir = config.attachment_dir();
                Arc::new(
                    Disk::new(dir.clone()).map_err(|source| StorageError::Directory {
                        path: dir.display().to_string(),
                        source,
                    })?,
                )
            }
            AttachmentStorage::S3 => {
                Arc::new(S3::new(&s3_options(config)).map_err(StorageError::S3)?)
            }
        };
        let mut candidate = [0u8; 32];
        getrandom::fill(&mut candidate)
            .map_err(|e| StorageError::LinkKey(Error::internal(e.to_string())))?;
        let candidate: String = candidate.iter().map(|b| format!("{b:02x}")).collect();
        let link_key = store
            .attachments()
            .link_key(&candidate)
            .await
            .map_err(StorageError::LinkKey)?;
        let link_mac = Hmac::<Sha256>::new_from_slice(link_key.as_bytes())
            .map_err(|e| StorageError::LinkKey(Error::internal(e.to_string())))?;
        let options = AttachmentOptions {
            max_bytes: config.attachment_max_bytes,
            types: config.attachment_types.clone(),
            max_pixels: config.attachment_max_pixels,
            url_lifetime: config.attachment_url_lifetime.0,
            orphan_ttl: config.attachment_orphan_ttl.0,
            idle: config.request_timeout.0,
            // As long as a delivery may be retried, and an hour more.
            webhook_link_lifetime: config.webhook_retry_horizon.0 + Duration::from_secs(3600),
        };
        let cleanup = cleanup::Cleanup::start(store.clone(), blobs.clone(), options.orphan_ttl);
        Ok(Self {
            store,
            blobs,
            options,
            link_mac,
            thumbnails: Arc::new(tokio::sync::Semaphore::new(1)),
            _cleanup: cleanup,
        })
    }

    /// Stores a member's upload into `room`: `len` bytes (the request's
    /// `Content-Length`, required), streamed to the blob store as they
    /// come. Past the limit, of a type not allowed, or cut off, nothing of
    /// it is kept.
    pub async fn upload(
        &self,
        caller: &Caller,
        room: &RoomId,
        name: &str,
        len: Option<u64>,
        body: ByteStream,
    ) -> Result<Attachment> {
        let len = len.ok_or(Error::LengthRequired)?;
        if len > self.options.max_bytes {
            self.drain(body).await;
            return Err(Error::FileTooLarge(self.options.max_bytes));
        }
        if len == 0 {
            return Err(Error::unprocessable("empty_file", "the file is empty"));
        }
        let id = AttachmentId::new();
        let name = clean_name(name);
        let begun = self
            .store
            .attachments()
            .begin_upload(caller, room, &id, &name, None)
            .await;
        if let Err(error) = begun {
            self.drain(body).await;
            return Err(error);
        }
        let stored = self.store_bytes(&id, &name, len, body).await;
        self.finish(&id, stored).await
    }

    /// Records a checked upload; or, if it failed (or its row went while
    /// its bytes came: swept, or its room deleted), makes sure nothing of
    /// it stays.
    async fn finish(&self, id: &AttachmentId, stored: Result<Attachment>) -> Result<Attachment> {
        let finished = match stored {
            Ok(attachment) => self
                .store
                .attachments()
                .finish_upload(&attachment)
                .await
                .map(|()| attachment),
            Err(error) => Err(error),
        };
        if finished.is_err() {
            // Queued first, so a crash before the deletion still has it done.
            self.store.attachments().discard_upload(id).await?;
            let keys = [Blob::Original, Blob::Thumbnail].map(|blob| blob_key(id, blob));
            cleanup::delete_blobs(&*self.store, &*self.blobs, keys.to_vec()).await;
        }
        finished
    }

    /// Begins an upload straight to the bucket: a presigned PUT, valid for
    /// `attachment_url_lifetime`, of a file the client says has `size`
    /// bytes. The bucket cannot be told to refuse more (see `upload_url`):
    /// the completion checks the size, and deletes a file past the limit;
    /// one never completed is swept as an upload never sent. Only the S3
    /// backend takes them (409 `direct_upload_unavailable` on the disk).
    pub async fn begin_direct(
        &self,
        caller: &Caller,
        room: &RoomId,
        name: &str,
        size: u64,
    ) -> Result<DirectUpload> {
        if size > self.options.max_bytes {
            return Err(Error::FileTooLarge(self.options.max_bytes));
        }
        if size == 0 {
            return Err(Error::unprocessable("empty_file", "the file is empty"));
        }
        let id = AttachmentId::new();
        let lifetime = self.options.url_lifetime;
        // To a staging key: a PUT may come again while the URL works, and
        // must never replace checked bytes (see `complete_direct`).
        let url = self
            .blobs
            .upload_url(&blob_key(&id, Blob::Staging), lifetime)
            .await
            .map_err(storage_error)?
            .ok_or_else(|| {
                Error::conflict(
                    "direct_upload_unavailable",
                    "this server keeps files on its own disk: send the bytes to \
                     POST /api/chat/rooms/{id}/attachments instead",
                )
            })?;
        let now = Timestamp::now().unix_ms();
        let until = Timestamp::from_unix_ms(now + lifetime.as_millis() as i64);
        // The row before any byte, as for an upload through us: one never
        // completed is swept with the others, its staging object once its
        // URL has expired.
        self.store
            .attachments()
            .begin_upload(caller, room, &id, &clean_name(name), Some(until))
            .await?;
        Ok(DirectUpload {
            id,
            url,
            expires_at: until.unix_ms() / 1000,
        })
    }

    /// Checks what the client PUT to the bucket, as an upload through us
    /// is checked (its size, its sniffed type, an image's thumbnail), and
    /// makes it an attachment; a file that fails is deleted. The bytes are
    /// copied from the staging key first and checked there, so a PUT that
    /// comes after changes nothing; the staging object is deleted once
    /// its URL has expired.
    pub async fn complete_direct(&self, caller: &Caller, id: &AttachmentId) -> Result<Attachment> {
        let upload = self.store.attachments().pending_upload(caller, id).await?;
        let staging = blob_key(id, Blob::Staging);
        let original = blob_key(id, Blob::Original);
        match self.blobs.copy(&staging, &original).await {
            Ok(()) => {}
            Err(BlobError::NotFound) => {
                return Err(Error::conflict(
                    "upload_not_received",
                    "the bucket has no bytes for this upload yet: PUT them to its uploadUrl first",
                ));
            }
            Err(error) => return Err(storage_error(error)),
        }
        if let Some(until) = upload.direct_until {
            self.store
                .attachments()
                .queue_blob_deletion(&staging, until)
                .await?;
        }
        let checked = self.check_stored(id, upload.attachment.name).await;
        self.finish(id, checked).await
    }

    /// The checks of an upload through us, on a file already stored.
    async fn check_stored(&self, id: &AttachmentId, name: String) -> Result<Attachment> {
        let head = self
            .blobs
            .get(&blob_key(id, Blob::Original), Some(0..SNIFF_BYTES as u64))
            .await
            .map_err(storage_error)?;
        let size = head.size;
        let mut bytes = Vec::new();
        let mut body = head.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| storage_error(BlobError::Store(e.to_string())))?;
            bytes.extend_from_slice(&chunk);
        }
        if size > self.options.max_bytes {
            return Err(Error::FileTooLarge(self.options.max_bytes));
        }
        let content_type = sniff(&bytes, size <= SNIFF_BYTES as u64);
        if !self.options.types.contains(&content_type) {
            return Err(Error::TypeNotAllowed(content_type));
        }
        let mut attachment = Attachment {
            id: id.clone(),
            name,
            size: size as i64,
            content_type,
            width: None,
            height: None,
            thumbnail: None,
        };
        if is_raster_image(&attachment.content_type) {
            self.measure(&mut attachment).await?;
        }
        Ok(attachment)
    }

    async fn store_bytes(
        &self,
        id: &AttachmentId,
        name: &str,
        len: u64,
        body: ByteStream,
    ) -> Result<Attachment> {
        let mut body = checked(body, len, self.options.max_bytes, self.options.idle);
        let mut head = BytesMut::new();
        let mut ended = false;
        while head.len() < SNIFF_BYTES {
            match body.next().await {
                Some(Ok(chunk)) => head.extend_from_slice(&chunk),
                Some(Err(error)) => return Err(upload_error(error, self.options.max_bytes)),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        let content_type = sniff(&head, ended);
        if !self.options.types.contains(&content_type) {
            self.drain(body).await;
            return Err(Error::TypeNotAllowed(content_type));
        }
        let headers = BlobHeaders {
            content_disposition: disposition(&content_type, name),
            content_type: content_type.clone(),
        };
        let head: Bytes = head.freeze();
        let whole = futures::stream::once(async move { Ok(head) })
            .chain(body)
            .boxed();
        self.blobs
            .put(&Variant::Original.key(id), whole, len, &headers)
            .await
            .map_err(|error| match error {
                BlobError::Upload(error) => upload_error(error, self.options.max_bytes),
                error => storage_error(error),
            })?;
        let mut attachment = Attachment {
            id: id.clone(),
            name: name.to_owned(),
            size: len as i64,
            content_type,
            width: None,
            height: None,
            thumbnail: None,
        };
        if is_raster_image(&attachment.content_type) {
            self.measure(&mut attachment).await?;
        }
        Ok(attachment)
    }

    /// An image's size, and its thumbnail stored beside it.
    async fn measure(&self, attachment: &mut Attachment) -> Result<()> {
        // Held until the decoding ends, in its task: a client that leaves
        // meanwhile frees no room for another decode beside it. (The read
        // is inside too: it is the other large buffer.)
        let turn = self
            .thumbnails
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::internal_from("the thumbnail queue closed", e))?;
        let read = self
            .blobs
            .get(&Variant::Original.key(&attachment.id), None)
            .await
            .map_err(storage_error)?;
        if read.size > self.options.max_bytes {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(read.size as usize);
        let mut body = read.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| storage_error(BlobError::Store(e.to_string())))?;
            if bytes.len() + chunk.len() > self.options.max_bytes as usize {
                return Ok(());
            }
            bytes.extend_from_slice(&chunk);
        }
        let max_pixels = self.options.max_pixels;
        let made = tokio::task::spawn_blocking(move || {
            let made = thumbnail::thumbnail(&bytes, max_pixels);
            drop(turn);
            made
        })
        .await
        .map_err(|e| Error::internal_from("the thumbnail task failed", e))?;
        let Some(made) = made else {
            return Ok(());
        };
        attachment.width = Some(made.width);
        attachment.height = Some(made.height);
        if let Some((png, width, height)) = made.thumbnail {
            let headers = BlobHeaders {
                content_type: "image/png".to_owned(),
                content_disposition: disposition("image/png", &attachment.name),
            };
            let len = png.len() as u64;
            let body = futures::stream::once(async move { Ok(Bytes::from(png)) }).boxed();
            let key = Variant::Thumbnail.key(&attachment.id);
            // Without one, the file is still the file.
            match self.blobs.put(&key, body, len, &headers).await {
                Ok(()) => attachment.thumbnail = Some(Thumbnail { width, height }),
                Err(error) => tracing::warn!(%error, "could not store a thumbnail"),
            }
        }
        Ok(())
    }

    /// Reads what is left of a refused upload (up to twice the limit),
    /// so the client, still sending, reads our answer rather than a reset
    /// connection: a browser reports a refused upload only so.
    async fn drain(&self, mut body: ByteStream) {
        let cap = self.options.max_bytes.saturating_mul(2);
        let mut read: u64 = 0;
        while read <= cap {
            match tokio::time::timeout(self.options.idle, body.next()).await {
                Ok(Some(Ok(chunk))) => read += chunk.len() as u64,
                _ => return,
            }
        }
    }

    /// The upload, if the caller may read it.
    pub async fn find(&self, caller: &Caller, id: &AttachmentId) -> Result<Upload> {
        self.store.attachments().attachment(caller, id).await
    }

    /// The upload a valid signed link names.
    pub async fn find_linked(
        &self,
        id: &AttachmentId,
        variant: Variant,
        expires: i64,
        signature: &str,
    ) -> Result<Upload> {
        let now = Timestamp::now().unix_ms() / 1000;
        let longest = self
            .options
            .url_lifetime
            .max(self.options.webhook_link_lifetime);
        // Compared in constant time, by the MAC itself. No link we make
        // lasts longer than `longest`: one that claims to was not ours.
        let valid = expires >= now
            && expires <= now + longest.as_secs() as i64
            && URL_SAFE_NO_PAD.decode(signature).is_ok_and(|signature| {
                self.mac(id, variant, expires)
                    .verify_slice(&signature)
                    .is_ok()
            });
        if !valid {
            return Err(Error::forbidden(
                "invalid_link",
                "this download link is invalid or has expired: ask for a new one",
            ));
        }
        self.store.attachments().linked_attachment(id).await
    }

    /// A link to `variant` of `id` that needs no token, valid for
    /// `attachment_url_lifetime`: the path and query, and when it expires
    /// (Unix seconds).
    pub fn signed_link(&self, id: &AttachmentId, variant: Variant) -> (String, i64) {
        self.signed_link_for(id, variant, self.options.url_lifetime)
    }

    /// The same for a webhook delivery: valid for as long as it may be
    /// retried, and an hour more.
    pub fn webhook_link(&self, id: &AttachmentId, variant: Variant) -> (String, i64) {
        self.signed_link_for(id, variant, self.options.webhook_link_lifetime)
    }

    fn signed_link_for(
        &self,
        id: &AttachmentId,
        variant: Variant,
        lifetime: Duration,
    ) -> (String, i64) {
        let now = Timestamp::now().unix_ms() / 1000;
        let expires = now + lifetime.as_secs() as i64;
        let signature =
            URL_SAFE_NO_PAD.encode(self.mac(id, variant, expires).finalize().into_bytes());
        (
            format!(
                "/api/chat/attachments/{id}/content?variant={}&expires={expires}&signature={signature}",
                variant.name()
            ),
            expires,
        )
    }

    /// The MAC of a link to `variant` of `id` until `expires`.
    fn mac(&self, id: &AttachmentId, variant: Variant, expires: i64) -> Hmac<Sha256> {
        let mut mac = self.link_mac.clone();
        mac.update(format!("{id}\n{}\n{expires}", variant.name()).as_bytes());
        mac
    }

    /// What a download of `variant` of `upload` answers: a redirect to the
    /// bucket, or the bytes of `range`.
    pub async fn download(
        &self,
        upload: &Upload,
        variant: Variant,
        range: Option<Range<u64>>,
    ) -> Result<Download> {
        let attachment = &upload.attachment;
        let headers = match variant {
            Variant::Original => BlobHeaders {
                content_type: attachment.content_type.clone(),
                content_disposition: disposition(&attachment.content_type, &attachment.name),
            },
            Variant::Thumbnail if attachment.thumbnail.is_some() => BlobHeaders {
                content_type: "image/png".to_owned(),
                content_disposition: disposition("image/png", &attachment.name),
            },
            Variant::Thumbnail => return Err(Error::NotFound("attachment")),
        };
        let key = variant.key(&attachment.id);
        if let Some(url) = self
            .blobs
            .download_url(&key, self.options.url_lifetime, &headers)
            .await
            .map_err(storage_error)?
        {
            return Ok(Download::Redirect(url));
        }
        let read = self
            .blobs
            .get(&key, range)
            .await
            .map_err(|error| match error {
                BlobError::NotFound => Error::NotFound("attachment"),
                error => storage_error(error),
            })?;
        Ok(Download::Bytes { read, headers })
    }

    /// How many blobs are stored (for tests and checks).
    pub async fn blob_count(&self) -> Result<usize> {
        self.blobs.count().await.map_err(storage_error)
    }
}

fn s3_options(config: &Config) -> S3Options {
    S3Options {
        bucket: config.s3_bucket.clone().unwrap_or_default(),
        endpoint: config.s3_endpoint.clone(),
        region: config.s3_region.clone(),
        access_key_id: config.s3_access_key_id.clone().unwrap_or_default(),
        secret_access_key: config
            .s3_secret_access_key
            .as_ref()
            .map(|secret| secret.expose().to_owned())
            .unwrap_or_default(),
        allow_http: config.s3_allow_http,
    }
}

/// The slowest an upload may come on the whole (a trickle of a byte a
/// pause would hold a connection and a row for ever): 25 MB in under 7
/// minutes, after `idle` to begin.
const SLOWEST_UPLOAD_BYTES_PER_SECOND: u64 = 64 * 1024;

/// The upload's bytes, failing as soon as they pass `max` (or the
/// declared `len`), fall short of `len`, stop coming for `idle`, or come
/// slower than `SLOWEST_UPLOAD_BYTES_PER_SECOND` on the whole.
fn checked(body: ByteStream, len: u64, max: u64, idle: Duration) -> ByteStream {
    let limit = len.min(max);
    let deadline = tokio::time::Instant::now()
        + idle
        + Duration::from_secs(len / SLOWEST_UPLOAD_BYTES_PER_SECOND);
    async_stream::stream! {
        let mut body = body;
        let mut seen: u64 = 0;
        loop {
            let wait = idle.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            match tokio::time::timeout(wait, body.next()).await {
                Err(_) => {
                    yield Err(io::Error::new(io::ErrorKind::TimedOut, "the upload stalled"));
                    return;
                }
                Ok(None) => {
                    if seen < len {
                        yield Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the upload was cut off"));
                    }
                    return;
                }
                Ok(Some(Err(error))) => {
                    yield Err(error);
                    return;
                }
                Ok(Some(Ok(chunk))) => {
                    seen += chunk.len() as u64;
                    if seen > limit {
                        yield Err(io::Error::new(io::ErrorKind::FileTooLarge, "past the limit"));
                        return;
                    }
                    yield Ok(chunk);
                }
            }
        }
    }
    .boxed()
}

/// Why an upload's own stream failed, as the client is told.
fn upload_error(error: io::Error, max: u64) -> Error {
    match error.kind() {
        io::ErrorKind::FileTooLarge => Error::FileTooLarge(max),
        io::ErrorKind::TimedOut => Error::RequestTimeout,
        _ => Error::bad_request(
            "upload_incomplete",
            "the upload ended before the length its Content-Length gave",
        ),
    }
}

fn storage_error(error: BlobError) -> Error {
    tracing::warn!(%error, "the blob store failed");
    Error::StorageUnavailable(error.to_string())
}
