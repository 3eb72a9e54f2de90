//! What the store keeps of attachments (migration 0016): each upload's row,
//! written before its first byte is stored; the queue of blobs to delete,
//! filled by the same transactions that orphan them (a deleted message,
//! room or user, an upload never sent); and the key download links are
//! signed with. The blobs themselves are `attachments::storage`'s. The
//! queries, for both databases, are in `sql/attachments.rs`.

use crate::error::{Error, Result};
use crate::model::{
    Attachment, AttachmentId, Caller, MessageId, RoomId, Thumbnail, Timestamp, UserId,
};
use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
pub trait AttachmentStore: Send + Sync {
    /// Notes an upload of `name` into `room` about to begin: a member's
    /// (or an admin's) into an open room. Its bytes are stored after; a
    /// direct upload's PUT works until `direct_until`.
    async fn begin_upload(
        &self,
        caller: &Caller,
        room: &RoomId,
        id: &AttachmentId,
        name: &str,
        direct_until: Option<Timestamp>,
    ) -> Result<()>;

    /// Records what the stored bytes are; until then the upload cannot be
    /// sent or read.
    async fn finish_upload(&self, attachment: &Attachment) -> Result<()>;

    /// An upload that failed (too large, a type not allowed, cut off): its
    /// row goes, and its blobs (whatever was written) to the deletion queue.
    async fn discard_upload(&self, id: &AttachmentId) -> Result<()>;

    /// The upload, if the caller may read it: in a room they may see
    /// (members, admins), and sent with a message, or their own not yet
    /// sent. `NotFound` otherwise, so nothing tells an outsider it exists.
    async fn attachment(&self, caller: &Caller, id: &AttachmentId) -> Result<Upload>;

    /// The caller's own upload whose bytes are not stored yet (a direct
    /// upload to complete); `NotFound` otherwise.
    async fn pending_upload(&self, caller: &Caller, id: &AttachmentId) -> Result<Upload>;

    /// The upload by id alone, for a signed link (which only a caller who
    /// could read it was given): stored, and its room not deleted.
    async fn linked_attachment(&self, id: &AttachmentId) -> Result<Upload>;

    /// Whether the cleanup has work: an upload never sent begun before
    /// `cutoff`, or a blob deletion due by `now`. Two index probes, read
    /// only: an idle pass takes no write lock (SQLite has one writer).
    async fn cleanup_due(&self, cutoff: Timestamp, now: Timestamp) -> Result<bool>;

    /// Moves uploads never sent and begun before `cutoff` to the deletion
    /// queue, up to `batch`; how many.
    async fn sweep_unsent(&self, cutoff: Timestamp, batch: u32) -> Result<u64>;

    /// Takes up to `batch` blob deletions due by `now`, pushing each back
    /// by `lease` (so of instances at it at once, one takes each, and a
    /// killed one's come due again).
    async fn claim_blob_deletions(
        &self,
        now: Timestamp,
        lease: Duration,
        batch: u32,
    ) -> Result<Vec<String>>;

    /// The blobs of `keys` are gone.
    async fn blobs_deleted(&self, keys: &[String]) -> Result<()>;

    /// Queues blob `key` for deletion at `due` (a completed direct
    /// upload's staging object, once its PUT can come no more).
    async fn queue_blob_deletion(&self, key: &str, due: Timestamp) -> Result<()>;

    /// The key download links are signed with: made by the first instance
    /// to ask, then shared by all.
    async fn link_key(&self, candidate: &str) -> Result<String>;
}

/// What follows an attachment's id in the keys of its thumbnail and of a
/// direct upload's staging object (the file's key is the id alone).
pub const THUMBNAIL: &str = ".thumb";
pub const STAGING: &str = ".direct";

/// Which of an attachment's blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blob {
    /// The file as uploaded.
    Original,
    /// An image's PNG thumbnail.
    Thumbnail,
    /// Where a direct upload's client PUTs the bytes, checked and copied
    /// to `Original` at completion.
    Staging,
}

/// The blob store's key of blob `blob` of attachment `id`.
pub fn blob_key(id: &AttachmentId, blob: Blob) -> String {
    match blob {
        Blob::Original => id.as_str().to_owned(),
        Blob::Thumbnail => format!("{id}{THUMBNAIL}"),
        Blob::Staging => format!("{id}{STAGING}"),
    }
}

/// Every blob attachment `id` may have, each with when it may be deleted:
/// now, but a direct upload's staging object not before its PUT expires.
pub(super) fn blob_keys(id: &str, direct_until: Option<i64>, now: i64) -> Vec<(String, i64)> {
    let mut keys = vec![(id.to_owned(), now), (format!("{id}{THUMBNAIL}"), now)];
    if let Some(until) = direct_until {
        keys.push((format!("{id}{STAGING}"), until.max(now)));
    }
    keys
}

/// An upload as the store keeps it.
#[derive(Debug, Clone)]
pub struct Upload {
    pub attachment: Attachment,
    pub room_id: RoomId,
    pub uploader_id: UserId,
    pub message_id: Option<MessageId>,
    /// Whether every byte is stored (and `attachment` complete).
    pub stored: bool,
    /// A direct upload's: until when its PUT works.
    pub direct_until: Option<Timestamp>,
}

/// An upload's row, as `ATTACHMENT_COLUMNS` reads it.
#[derive(sqlx::FromRow)]
pub(super) struct UploadRow {
    id: String,
    room_id: String,
    uploader_id: String,
    message_id: Option<String>,
    name: String,
    content_type: Option<String>,
    size: Option<i64>,
    width: Option<i64>,
    height: Option<i64>,
    thumb_width: Option<i64>,
    thumb_height: Option<i64>,
    stored_at: Option<i64>,
    direct_until: Option<i64>,
}

/// The columns of `UploadRow`.
pub(super) const UPLOAD_COLUMNS: &str = "id, room_id, uploader_id, message_id, name, \
     content_type, size, width, height, thumb_width, thumb_height, stored_at, direct_until";

impl TryFrom<UploadRow> for Upload {
    type Error = Error;

    fn try_from(row: UploadRow) -> Result<Self> {
        let pixels = |value: Option<i64>| {
            value.map(u32::try_from).transpose().map_err(|e| {
                Error::internal_from("an attachment's size in pixels is out of range", e)
            })
        };
        let thumbnail = match (pixels(row.thumb_width)?, pixels(row.thumb_height)?) {
            (Some(width), Some(height)) => Some(Thumbnail { width, height }),
            _ => None,
        };
        Ok(Self {
            attachment: Attachment {
                id: AttachmentId::from_store(row.id),
                name: row.name,
                size: row.size.unwrap_or(0),
                content_type: row.content_type.unwrap_or_default(),
                width: pixels(row.width)?,
                height: pixels(row.height)?,
                thumbnail,
            },
            room_id: RoomId::from_store(row.room_id),
            uploader_id: UserId::from_store(row.uploader_id),
            message_id: row.message_id.map(MessageId::from_store),
            stored: row.stored_at.is_some(),
            direct_until: row.direct_until.map(Timestamp::from_unix_ms),
        })
    }
}

/// A post named an attachment it may not send.
pub fn attachment_unavailable(id: &AttachmentId) -> Error {
    Error::unprocessable(
        "attachment_unavailable",
        format!(
            "attachment {id} is not an upload of yours into this room waiting to be sent: \
             it is unknown, still uploading, already sent, or expired"
        ),
    )
}
