-- Files uploaded into rooms. The row comes before the first byte is
-- stored (stored_at NULL until the last one is), so that an upload a crash
-- cut short leaves a row the orphan sweep finds, never a file nobody knows.
CREATE TABLE attachments (
    id            TEXT    PRIMARY KEY NOT NULL,
    room_id       TEXT    NOT NULL,
    uploader_id   TEXT    NOT NULL,
    -- The message it went out with; NULL until then (an orphan after
    -- attachment_orphan_ttl).
    message_id    TEXT,
    name          TEXT    NOT NULL,
    content_type  TEXT,
    size          INTEGER,
    width         INTEGER,
    height        INTEGER,
    thumb_width   INTEGER,
    thumb_height  INTEGER,
    created_at    INTEGER NOT NULL,
    stored_at     INTEGER,
    -- A direct upload's: until when its presigned PUT works (a PUT may
    -- come until then, so its staging object is deleted only after).
    direct_until  INTEGER
);
CREATE INDEX attachments_by_message ON attachments (message_id) WHERE message_id IS NOT NULL;
-- The orphan sweep's, and an erasure's of what a user uploaded and never sent.
CREATE INDEX attachments_unsent ON attachments (created_at) WHERE message_id IS NULL;
CREATE INDEX attachments_unsent_by_uploader ON attachments (uploader_id)
    WHERE message_id IS NULL;
CREATE INDEX attachments_by_room ON attachments (room_id);
-- Each message's attachments, as its events carry them: a JSON array,
-- NULL for none (and for a deleted message).
ALTER TABLE messages ADD COLUMN attachments TEXT;
-- Blobs to delete (an attachment's file, its thumbnail, a direct upload's
-- staging object), by key: the rows go in with the change that orphans
-- them, the blobs go after, retried until gone, so a crash between the two
-- never leaks a file.
CREATE TABLE blob_deletions (
    blob_key      TEXT    PRIMARY KEY NOT NULL,
    -- When a worker may take it (again): a claim pushes it forward by a
    -- lease, so an instance killed mid-deletion leaves it to another.
    due_at        INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX blob_deletions_due ON blob_deletions (due_at);
-- Keys the instances share, made once by whichever asks first: the one
-- that signs attachments' download links.
CREATE TABLE server_keys (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
