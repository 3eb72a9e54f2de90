-- What the instances on one database share so that per-user limits hold for
-- the whole cluster, not once per instance: each instance's heartbeat, the
-- streams each user holds on each instance, and one rate budget per user and
-- kind of write.
--
-- UNLOGGED: all of it is soon-stale state, rewritten as it is used. A crash
-- of the database empties these tables; instances register again at their
-- next heartbeat and write their streams again, and until then the limits
-- are lenient.

-- Each instance says how long it may stay silent before it counts as gone
-- (three of its heartbeats), so instances with different heartbeats judge
-- each other right.
CREATE UNLOGGED TABLE instances (
    id text PRIMARY KEY,
    seen_at timestamptz NOT NULL,
    lapse interval NOT NULL
);

CREATE UNLOGGED TABLE user_streams (
    user_id text NOT NULL,
    instance_id text NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    streams integer NOT NULL,
    PRIMARY KEY (user_id, instance_id)
);
-- The cascade from an instance that is gone.
CREATE INDEX user_streams_by_instance ON user_streams (instance_id);

-- A GCRA bucket: full_at is when it would be full again (its "theoretical
-- arrival time"); a row whose full_at has passed is a full bucket and may go.
CREATE UNLOGGED TABLE rate_budgets (
    bucket text PRIMARY KEY,
    full_at timestamptz NOT NULL
);

-- Spends one unit of `bucket_key` (one every `emission`, `tolerance` ahead at
-- most: a burst of tolerance / emission + 1). Returns 0 when spent, else the
-- seconds until it could be.
CREATE FUNCTION chat_spend(bucket_key text, emission interval, tolerance interval)
RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    arrival timestamptz := clock_timestamp();
    due timestamptz;
BEGIN
    INSERT INTO rate_budgets AS b (bucket, full_at)
    VALUES (bucket_key, arrival + emission)
    ON CONFLICT (bucket) DO UPDATE
        SET full_at = GREATEST(b.full_at, arrival) + emission
        WHERE GREATEST(b.full_at, arrival) - tolerance <= arrival
    RETURNING b.full_at INTO due;
    IF due IS NOT NULL THEN
        RETURN 0;
    END IF;
    SELECT GREATEST(b.full_at, arrival) - tolerance INTO due
    FROM rate_budgets AS b WHERE b.bucket = bucket_key;
    RETURN GREATEST(EXTRACT(EPOCH FROM due - arrival), 0);
END
$$;

-- chat_spend for many buckets at once, in the order given (a batch of
-- concurrent writes: one round trip for all of them); the waits in that
-- order. Callers sort by bucket, so that two batches lock rows in one order.
CREATE FUNCTION chat_spend_many(bucket_keys text[], emissions interval[], tolerances interval[])
RETURNS double precision[]
LANGUAGE plpgsql AS $$
DECLARE
    waits double precision[] := '{}';
BEGIN
    FOR i IN 1 .. COALESCE(array_length(bucket_keys, 1), 0) LOOP
        waits := waits || chat_spend(bucket_keys[i], emissions[i], tolerances[i]);
    END LOOP;
    RETURN waits;
END
$$;

-- Counts one more stream of each of `members` on `instance`, in order,
-- unless the live instances already hold that member's `max_streams`;
-- whether each was counted. NULL when `instance` is not registered (it
-- lapsed, and another instance deleted it): it must register again first.
CREATE FUNCTION chat_claim_streams(instance text, members text[], max_streams integer[])
RETURNS boolean[]
LANGUAGE plpgsql AS $$
DECLARE
    claimed boolean[] := '{}';
BEGIN
    -- The instance's row before any of its claims' rows, as a cascading
    -- delete of the instance takes them: no deadlock between the two.
    PERFORM 1 FROM instances WHERE id = instance FOR KEY SHARE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- One claim per user at a time, so two instances cannot both take the
    -- last place (class 1 of the two-key advisory locks: user streams); all
    -- of the batch's locks first, in key order, so batches cannot deadlock.
    PERFORM pg_advisory_xact_lock(1, key)
    FROM (SELECT DISTINCT hashtext(m) AS key FROM unnest(members) AS m ORDER BY 1) AS keys;
    FOR n IN 1 .. COALESCE(array_length(members, 1), 0) LOOP
        IF (SELECT COALESCE(SUM(GREATEST(s.streams, 0)), 0)
            FROM user_streams AS s JOIN instances AS live ON live.id = s.instance_id
            WHERE s.user_id = members[n]
              AND live.seen_at > clock_timestamp() - live.lapse) >= max_streams[n] THEN
            claimed := claimed || false;
        ELSE
            INSERT INTO user_streams AS s (user_id, instance_id, streams)
            VALUES (members[n], instance, 1)
            ON CONFLICT (user_id, instance_id) DO UPDATE SET streams = s.streams + 1;
            claimed := claimed || true;
        END IF;
    END LOOP;
    RETURN claimed;
END
$$;
