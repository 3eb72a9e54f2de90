-- Full-text search of messages (store/search.rs): an FTS5 index whose
-- content is the messages table's own (nothing stored twice), kept in step
-- by triggers, so inside the transaction of every insert, edit, deletion
-- or erasure (an empty body). Words fold case and lose their diacritics.
CREATE VIRTUAL TABLE messages_search USING fts5(
    body, content = 'messages', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO messages_search (messages_search) VALUES ('rebuild');
CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_search (rowid, body) VALUES (new.rowid, new.body);
END;
CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_search (messages_search, rowid, body)
        VALUES ('delete', old.rowid, old.body);
END;
CREATE TRIGGER messages_search_update AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO messages_search (messages_search, rowid, body)
        VALUES ('delete', old.rowid, old.body);
    INSERT INTO messages_search (rowid, body) VALUES (new.rowid, new.body);
END;
