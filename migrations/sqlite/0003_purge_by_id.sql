-- The retention purge deletes by id, oldest first (a prefix of the log), so
-- nothing reads events by their time any more.
DROP INDEX events_by_time;
