-- Attachment blobs (issue #15): the metadata of each upload; the bytes are a file under DATA_DIR/blobs/<2>/<id>
-- (src/store/sqlite/blobs.ts). `received` counts the bytes that are durably in the file; the SHA-256 is checked on
-- completion by hashing the file. Gone with the owner (the files by the store's deleteUser).
CREATE TABLE blobs (
  blob_id      TEXT PRIMARY KEY,
  owner        TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
  size         INTEGER NOT NULL,
  received     INTEGER NOT NULL DEFAULT 0,
  sha256       TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  completed_at INTEGER,
  expires_at   INTEGER NOT NULL
) STRICT;
-- The quota sums an owner's sizes; account deletion lists them.
CREATE INDEX blobs_by_owner ON blobs (owner);
CREATE INDEX blobs_by_expiry ON blobs (expires_at);

-- The stored messages that refer to a blob (a send's `blobs`): once none of their mailbox entries is left, the
-- blob's expiry is brought forward to the grace period.
CREATE TABLE blob_links (
  blob_id    TEXT NOT NULL REFERENCES blobs (blob_id) ON DELETE CASCADE,
  message_id TEXT NOT NULL,
  ts         INTEGER NOT NULL,
  PRIMARY KEY (blob_id, message_id, ts)
) STRICT, WITHOUT ROWID;
