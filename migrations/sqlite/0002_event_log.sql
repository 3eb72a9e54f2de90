-- The event log: every change a live stream carries, as the JSON it is sent
-- as, numbered in commit order. Streams resume from it by id.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY NOT NULL,
    room_id     TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    -- the user a membership change is about (they see it even once removed)
    subject_id  TEXT,
    created_at  INTEGER NOT NULL,
    data        TEXT    NOT NULL
);
CREATE INDEX events_by_room ON events (room_id, id);
CREATE INDEX events_by_subject ON events (subject_id, id) WHERE subject_id IS NOT NULL;
CREATE INDEX events_by_time ON events (created_at);

-- One row: the last event id handed out. Taking the next id locks this row
-- until commit, so ids become visible in exactly the order they were given.
CREATE TABLE event_counter (
    only_row  INTEGER PRIMARY KEY NOT NULL CHECK (only_row = 1),
    last_id   INTEGER NOT NULL
);
-- The id of the room's newest event: what a snapshot of the room reflects.
ALTER TABLE rooms ADD COLUMN last_event_id INTEGER NOT NULL DEFAULT 0;

-- rooms.activity now takes the id of the room's latest event: start above
-- every activity number handed out so far.
INSERT INTO event_counter (only_row, last_id) SELECT 1, COALESCE(MAX(activity), 0) FROM rooms;
