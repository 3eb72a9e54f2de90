-- An admin may close a room: it takes no new messages until reopened.
ALTER TABLE rooms ADD COLUMN closed_at INTEGER;
ALTER TABLE rooms ADD COLUMN closed_by TEXT;
