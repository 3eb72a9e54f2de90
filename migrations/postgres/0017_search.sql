-- Full-text search of messages (store/search.rs). The vector is generated
-- from the body, so it follows every edit, deletion and erasure (an empty
-- body) in the statement that makes it. `<` and `>` read as spaces: a chat
-- is not HTML, and the default parser skips a word written inside a tag.
-- The text search configuration is the `search_language` setting: the
-- server rebuilds the column when the setting differs from the one here.
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', translate(body, '<>', '  '))) STORED;
CREATE INDEX messages_search ON messages USING gin (search);
-- An admin's search reads the newest messages in (time, id) order before
-- the full-text index (store/sql/search.rs): the id ends ties, so the
-- walk is in the order of the hits, and never sorted. (The retention reads
-- it by time, as it read the index this one replaces.)
DROP INDEX messages_by_time;
CREATE INDEX messages_by_time ON messages (created_at, id) WHERE deleted_at IS NULL;
CREATE TABLE search_language (name TEXT NOT NULL);
INSERT INTO search_language (name) VALUES ('simple');
