-- Presence is who holds streams (user_streams, on live instances). Each
-- change an instance announces takes a number from here after what it saw
-- committed, so that clients, keeping the highest, end on the latest truth
-- whichever instance's news arrives first.
CREATE SEQUENCE presence_versions;

-- The users of an instance that stopped (it had streams of theirs just
-- before): due for a look once the grace has passed, by whichever instance
-- takes the row first; offline then, unless they came back somewhere.
CREATE UNLOGGED TABLE presence_departures (
    user_id text NOT NULL,
    due_at timestamptz NOT NULL
);
CREATE INDEX presence_departures_by_due ON presence_departures (due_at);
