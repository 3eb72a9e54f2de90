-- Erasing what a user wrote runs as a durable job, in batches, on one
-- instance at a time (the one holding its lease), resumed by any instance
-- after a crash. Its count moves in the same transaction as the
-- tombstones it counts. At most one job per user runs.
CREATE TABLE erasure_jobs (
    id            TEXT    PRIMARY KEY NOT NULL,
    user_id       TEXT    NOT NULL,
    requested_by  TEXT    NOT NULL,
    -- 'running' or 'done'
    state         TEXT    NOT NULL,
    erased        BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    lease_owner   TEXT,
    lease_until   BIGINT
);
CREATE UNIQUE INDEX erasure_jobs_running ON erasure_jobs (user_id) WHERE state = 'running';
CREATE INDEX erasure_jobs_by_user ON erasure_jobs (user_id, created_at);

-- An erasure deletes the unseen notices meant for its user.
CREATE INDEX unseen_notices_by_user ON unseen_notices (user_id);
