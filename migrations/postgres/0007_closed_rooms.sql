-- An admin may close a room: it takes no new messages until reopened.
ALTER TABLE rooms ADD COLUMN closed_at BIGINT;
ALTER TABLE rooms ADD COLUMN closed_by TEXT;
