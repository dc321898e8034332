-- The mailbox without AUTOINCREMENT. SQLite kept the highest seq in sqlite_sequence and rewrote its page in every commit
-- that stored an entry: one WAL page in eight of a message at low rates. The writer now takes seqs from blocks it
-- reserves in `counters` (MailboxStatements in src/store/sqlite/mailbox.ts), one write per block: seqs still never
-- repeat and grow per device, with a gap after each start. The first block starts above every seq handed out so far.
CREATE TABLE counters (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO counters (name, value)
  SELECT 'mailbox_seq', max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'mailbox'), 0),
                            coalesce((SELECT max(seq) FROM mailbox), 0));

CREATE TABLE mailbox_new (
  seq        INTEGER PRIMARY KEY,
  device_id  TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
  message_id TEXT NOT NULL,
  group_id   TEXT,
  ts         INTEGER NOT NULL,
  body       BLOB NOT NULL,
  body_id    INTEGER,
  size       INTEGER NOT NULL DEFAULT 0
) STRICT;
INSERT INTO mailbox_new (seq, device_id, message_id, group_id, ts, body, body_id, size)
  SELECT seq, device_id, message_id, group_id, ts, body, body_id, size FROM mailbox ORDER BY seq;
-- Dropping the table fires no trigger: the group bodies' reference counts stay as they are, for the same rows.
DROP TABLE mailbox;
ALTER TABLE mailbox_new RENAME TO mailbox;
CREATE INDEX mailbox_by_device ON mailbox (device_id, seq, size);
CREATE INDEX mailbox_by_ts ON mailbox (ts);
CREATE TRIGGER mailbox_body_release AFTER DELETE ON mailbox WHEN OLD.body_id IS NOT NULL
BEGIN
  UPDATE bodies SET refs = refs - 1 WHERE body_id = OLD.body_id;
  DELETE FROM bodies WHERE body_id = OLD.body_id AND refs <= 0;
END;
