-- Whether a webhook asks for message.unseen notices: a column, where three
-- queries matched the JSON text of its event types.
ALTER TABLE webhooks ADD COLUMN wants_unseen BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE webhooks SET wants_unseen = TRUE WHERE event_types LIKE '%"message.unseen"%';
