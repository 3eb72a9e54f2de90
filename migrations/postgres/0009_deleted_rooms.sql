-- An admin may delete a room. Its messages, read cursors and events go; its
-- row and its members stay as a tombstone with the one event that says it
-- was deleted, so that a stream resuming from before learns of it (a
-- member's replay finds the rooms they were in through room_members). The
-- tombstone goes once the event log's retention has purged that event.
ALTER TABLE rooms ADD COLUMN deleted_at BIGINT;
ALTER TABLE rooms ADD COLUMN deleted_by TEXT;
CREATE INDEX rooms_deleted ON rooms (id) WHERE deleted_at IS NOT NULL;
