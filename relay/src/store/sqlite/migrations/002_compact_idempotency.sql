-- Idempotency records that the relay can index compactly in memory (see src/store/sqlite/idempotency.ts).
-- key: a 53-bit hash of (sender device, message id), seeded with store_meta.idempotency_seed; the relay keeps only
-- (key, rowid) in memory and confirms every hit against the row. bucket: the hour of ts, which pruning deletes by.
-- Append-only: rowid follows commit order and bucket only grows, so an insert never lands on a random page.

CREATE TABLE store_meta (
  name  TEXT PRIMARY KEY,
  value BLOB NOT NULL
) STRICT;
INSERT INTO store_meta (name, value) VALUES ('idempotency_seed', randomblob(8));

CREATE TABLE sent_ids (
  bucket           INTEGER NOT NULL,
  -- NULL only on rows carried over below, until the relay computes them when it opens the database.
  key              INTEGER,
  sender_device_id TEXT NOT NULL,
  message_id       TEXT NOT NULL,
  ts               INTEGER NOT NULL
) STRICT;
CREATE INDEX sent_ids_by_bucket ON sent_ids (bucket);

INSERT INTO sent_ids (bucket, key, sender_device_id, message_id, ts)
  SELECT ts / 3600000, NULL, sender_device_id, message_id, ts FROM sent_messages ORDER BY rowid;
DROP TABLE sent_messages;
