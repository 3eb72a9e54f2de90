-- Each room is a support conversation, with a status agents (admins) set:
-- open, pending (waiting on the customer), resolved, or snoozed until
-- snoozed_until. Existing rooms start open.
ALTER TABLE rooms ADD COLUMN status TEXT NOT NULL DEFAULT 'open'
    CHECK (status IN ('open', 'pending', 'resolved', 'snoozed'));
ALTER TABLE rooms ADD COLUMN snoozed_until INTEGER;
ALTER TABLE rooms ADD COLUMN resolved_at INTEGER;
-- What the snooze schedule looks for, once a second on every instance.
CREATE INDEX rooms_snoozed ON rooms (snoozed_until) WHERE status = 'snoozed';
