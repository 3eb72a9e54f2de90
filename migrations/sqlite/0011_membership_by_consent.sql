-- Who left a room, or was removed from it, and is not back: only an admin
-- may put them back, even where members may add others (members_add_others).
-- A row goes when its user is a member again, and with its room.
CREATE TABLE room_departures (
    room_id  TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id  TEXT    NOT NULL,
    left_at  INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- Those who left before: as far as the event log still tells.
INSERT INTO room_departures (room_id, user_id, left_at)
SELECT e.room_id, e.subject_id, MAX(e.created_at)
FROM events e
WHERE e.subject_id IS NOT NULL
  AND e.data LIKE '%"change":"member_removed"%'
  AND EXISTS (SELECT 1 FROM rooms r WHERE r.id = e.room_id)
  AND NOT EXISTS (SELECT 1 FROM room_members m
                  WHERE m.room_id = e.room_id AND m.user_id = e.subject_id)
GROUP BY e.room_id, e.subject_id;
