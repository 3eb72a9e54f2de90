-- Who works on each conversation, and the times response metrics are made
-- of. Existing rooms start unassigned, their conversation begun now (their
-- past is not the inbox's to measure).
ALTER TABLE rooms ADD COLUMN assignee_id TEXT;
-- When the assignee got it (auto-assignment's reassign_after counts from it).
ALTER TABLE rooms ADD COLUMN assigned_at BIGINT;
-- When this conversation began: the room's creation, or the moment it
-- left `resolved`. NULL (a room an instance older than this migration
-- created) reads as the room's creation.
ALTER TABLE rooms ADD COLUMN started_at BIGINT;
UPDATE rooms SET started_at = CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT);
-- The first agent message after a customer's, in this conversation.
ALTER TABLE rooms ADD COLUMN first_response_at BIGINT;
ALTER TABLE rooms ADD COLUMN last_customer_message_at BIGINT;
-- The oldest customer message no agent has answered yet; NULL once one has.
ALTER TABLE rooms ADD COLUMN waiting_since BIGINT;
-- The inbox's views, newest activity first as the listing pages: by
-- status, by assignee, and by both. Nobody's rooms have their own (a NULL
-- is no equality to order by): each room is in three of these five.
CREATE INDEX rooms_by_status ON rooms (status, activity);
CREATE INDEX rooms_by_assignee ON rooms (assignee_id, activity)
    WHERE assignee_id IS NOT NULL;
CREATE INDEX rooms_by_assignee_status ON rooms (assignee_id, status, activity)
    WHERE assignee_id IS NOT NULL;
CREATE INDEX rooms_unassigned ON rooms (activity) WHERE assignee_id IS NULL;
CREATE INDEX rooms_unassigned_by_status ON rooms (status, activity) WHERE assignee_id IS NULL;
-- The inbox's counts read an agent's cursors at once (its cursor moves
-- touch no indexed column: they stay in-place updates).
CREATE INDEX read_cursors_by_user ON read_cursors (user_id);
-- Auto-assignment's queue: the open conversations whose customer waits
-- and no agent has, the longest waiting first; and (for reassign_after)
-- those an agent has, by when they got them.
CREATE INDEX rooms_waiting ON rooms (waiting_since)
    WHERE status = 'open' AND waiting_since IS NOT NULL AND assignee_id IS NULL
      AND deleted_at IS NULL;
CREATE INDEX rooms_waiting_assigned ON rooms (assigned_at)
    WHERE status = 'open' AND waiting_since IS NOT NULL AND assignee_id IS NOT NULL
      AND deleted_at IS NULL;

-- Agents as the server learns them: each user who authenticated with the
-- admin role, with the name their token gave.
CREATE TABLE agents (
    user_id     TEXT    PRIMARY KEY NOT NULL,
    name        TEXT,
    first_seen_at BIGINT NOT NULL,
    -- When auto-assignment last gave them a conversation: of agents with
    -- as few open, the one waiting longest is next.
    last_assigned_at BIGINT
);
