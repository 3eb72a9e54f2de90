-- Erasing a user finds their messages that are not tombstones yet.
CREATE INDEX messages_by_author ON messages (author_id, room_id, seq) WHERE deleted_at IS NULL;
