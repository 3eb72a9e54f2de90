-- Webhooks: endpoints the application registers to be told what happened.
-- Each reads the event log after its own cursor (the last event it
-- acknowledged) and the unseen notices after another, so nothing is skipped
-- across crashes; one instance at a time delivers to it, under a lease.
CREATE TABLE webhooks (
    id               TEXT    PRIMARY KEY NOT NULL,
    url              TEXT    NOT NULL,
    -- a JSON array of the event types it wants, never empty
    event_types      TEXT    NOT NULL,
    -- a JSON array of room ids, or NULL for every room
    room_ids         TEXT,
    secret           TEXT    NOT NULL,
    -- the secret before the last rotation, signed with too until previous_until
    previous_secret  TEXT,
    previous_until   INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    event_cursor     INTEGER NOT NULL,
    notice_cursor    INTEGER NOT NULL,
    -- 'active', or 'failing': retries gave up, skipped until resumed
    state            TEXT    NOT NULL,
    -- the first failed attempt at the delivery now due, and how many since
    failing_since    INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    delivered_at     INTEGER,
    -- the instance that delivers to it, until when (Unix ms)
    lease_owner      TEXT,
    lease_until      INTEGER NOT NULL DEFAULT 0
);

-- "Unseen" notices: a message a member neither read nor was online for
-- within the delay. At most one per message and member. Ids are taken
-- while the sweep's row below is locked (on SQLite, the one write lock), so
-- they commit in order, as a cursor needs.
CREATE TABLE unseen_notices (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id     TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    message_id  TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (message_id, user_id)
);
CREATE INDEX unseen_notices_by_time ON unseen_notices (created_at);

-- One row: the last event the unseen sweep has looked at. Sweeps move it
-- by compare-and-set, so of two instances' sweeps of the same events one
-- wins and the other's notices are never written.
CREATE TABLE unseen_sweep (
    only_row       INTEGER PRIMARY KEY NOT NULL CHECK (only_row = 1),
    last_event_id  INTEGER NOT NULL
);
INSERT INTO unseen_sweep (only_row, last_event_id) SELECT 1, last_id FROM event_counter;

-- When each user last went offline: whoever went offline after a message
-- came was online in the meantime, and gets no unseen notice of it.
CREATE TABLE presence_offline (
    user_id     TEXT    PRIMARY KEY NOT NULL,
    offline_at  INTEGER NOT NULL
);
