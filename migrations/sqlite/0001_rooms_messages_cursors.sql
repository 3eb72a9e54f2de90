-- Rooms, their members, their messages and each user's read cursor.
-- Times are Unix milliseconds (UTC). Unread counts are derived, never scanned:
-- a user's own messages always sit at or below their cursor (posting moves it),
-- so unread = rooms.last_seq - read_cursors.last_read_seq.

CREATE TABLE rooms (
    id          TEXT    PRIMARY KEY NOT NULL,
    name        TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    -- rises with every activity in the room (creation, message, membership),
    -- unique across rooms: the total order of "newest activity first"
    activity    INTEGER NOT NULL,
    -- the seq of the newest message; the next message takes last_seq + 1
    last_seq    INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
);
CREATE UNIQUE INDEX rooms_by_activity ON rooms (activity);

CREATE TABLE room_members (
    room_id    TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL,
    joined_at  INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_by_user ON room_members (user_id, room_id);

CREATE TABLE messages (
    room_id     TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL CHECK (seq > 0),
    id          TEXT    NOT NULL UNIQUE,
    author_id   TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    client_id   TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (room_id, seq)
);
-- a retried send (same author, room and clientId) finds the original
CREATE UNIQUE INDEX messages_by_client_id ON messages (room_id, author_id, client_id)
    WHERE client_id IS NOT NULL;

CREATE TABLE read_cursors (
    room_id        TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id        TEXT    NOT NULL,
    last_read_seq  INTEGER NOT NULL CHECK (last_read_seq >= 0),
    PRIMARY KEY (room_id, user_id)
);
