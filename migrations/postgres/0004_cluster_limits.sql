-- What the instances on one database share so that per-user limits hold for
-- the whole cluster, not once per instance: each instance's heartbeat, the
-- streams each user holds on each instance, and one rate budget per user and
-- kind of write.
--
-- UNLOGGED: all of it is soon-stale state, rewritten as it is used. A crash
-- of the database empties these tables; instances register again at their
-- next heartbeat, and until then the limits are lenient, never stricter.

CREATE UNLOGGED TABLE instances (
    id text PRIMARY KEY,
    seen_at timestamptz NOT NULL
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

-- Spends one unit of `bucket` (one every `emission`, `tolerance` ahead at
-- most: a burst of tolerance / emission + 1). Returns 0 when spent, else the
-- seconds until it could be. One statement, so one round trip per write.
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

-- Counts one more stream of `member` on `instance`, unless the live
-- instances already hold `max_streams` of theirs; true when counted.
CREATE FUNCTION chat_claim_stream(instance text, member text, max_streams integer, stale interval)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    -- One claim per user at a time, so two instances cannot both take the
    -- last place (class 1 of the two-key advisory locks: user streams).
    PERFORM pg_advisory_xact_lock(1, hashtext(member));
    IF (SELECT COALESCE(SUM(s.streams), 0)
        FROM user_streams AS s JOIN instances AS i ON i.id = s.instance_id
        WHERE s.user_id = member AND i.seen_at > clock_timestamp() - stale) >= max_streams THEN
        RETURN false;
    END IF;
    INSERT INTO user_streams AS s (user_id, instance_id, streams)
    VALUES (member, instance, 1)
    ON CONFLICT (user_id, instance_id) DO UPDATE SET streams = s.streams + 1;
    RETURN true;
END
$$;

-- chat_spend for many buckets at once, in the order given (a batch of
-- concurrent writes: one round trip for all of them); the waits in that order.
-- Callers sort by bucket, so that two batches lock rows in one order.
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

-- chat_claim_stream for many opens at once, in the order given (callers sort
-- by user, so two batches take the users' locks in one order); whether each
-- was counted.
CREATE FUNCTION chat_claim_streams(instance text, members text[], max_streams integer[], stale interval)
RETURNS boolean[]
LANGUAGE plpgsql AS $$
DECLARE
    claimed boolean[] := '{}';
BEGIN
    FOR i IN 1 .. COALESCE(array_length(members, 1), 0) LOOP
        claimed := claimed || chat_claim_stream(instance, members[i], max_streams[i], stale);
    END LOOP;
    RETURN claimed;
END
$$;
