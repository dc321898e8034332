-- Quotas: invite tokens, group bodies stored once, and each mailbox entry's size for the per-device caps.

-- Only the SHA-256 of an invite token is stored; a sign-up deletes the row it spends.
CREATE TABLE invites (
  token_hash BLOB PRIMARY KEY,
  expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- A group send's body, stored once for all its recipient devices. Their mailbox rows name it by body_id (and hold
-- an empty body); refs counts those rows, and the trigger below deletes the body with the last of them (ack, expiry,
-- or the deletion of a device or user). No foreign key: a parent-side check would scan the mailbox per deletion.
CREATE TABLE bodies (
  body_id INTEGER PRIMARY KEY,
  refs    INTEGER NOT NULL,
  body    BLOB NOT NULL
) STRICT;

ALTER TABLE mailbox ADD COLUMN body_id INTEGER;
-- Bytes of the entry's body (of the shared body for a group entry): what the per-device byte cap counts.
ALTER TABLE mailbox ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE mailbox SET size = length(body);
DROP INDEX mailbox_by_device;
CREATE INDEX mailbox_by_device ON mailbox (device_id, seq, size);

CREATE TRIGGER mailbox_body_release AFTER DELETE ON mailbox WHEN OLD.body_id IS NOT NULL
BEGIN
  UPDATE bodies SET refs = refs - 1 WHERE body_id = OLD.body_id;
  DELETE FROM bodies WHERE body_id = OLD.body_id AND refs <= 0;
END;
