-- Edits and deletions. A message keeps its row and its seq (no gap appears);
-- a deleted one keeps who deleted it and when, and loses its body.
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
ALTER TABLE messages ADD COLUMN deleted_at INTEGER;
ALTER TABLE messages ADD COLUMN deleted_by TEXT;
-- Unread counts subtract the deleted messages past a cursor: few, and found
-- here without reading the others.
CREATE INDEX messages_deleted ON messages (room_id, seq) WHERE deleted_at IS NOT NULL;

-- The events that carry a message (its own, and room events that show it as
-- the room's last): an edit or a deletion rewrites them, so the log never
-- keeps a body its author replaced or removed.
ALTER TABLE events ADD COLUMN message_id TEXT;
UPDATE events SET message_id = json_extract(data, '$.message.id')
    WHERE data LIKE '{"type":"message"%';
-- A room event shows its room's last message: it carries that one.
UPDATE events SET message_id = json_extract(data, '$.room.lastMessage.id')
    WHERE data LIKE '{"type":"room"%';
CREATE INDEX events_by_message ON events (message_id) WHERE message_id IS NOT NULL;
