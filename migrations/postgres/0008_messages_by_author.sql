-- Erasing a user finds their messages that are not tombstones yet, and the
-- message retention the oldest of them.
CREATE INDEX messages_by_author ON messages (author_id, room_id, seq) WHERE deleted_at IS NULL;
CREATE INDEX messages_by_time ON messages (created_at) WHERE deleted_at IS NULL;
