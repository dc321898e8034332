-- Key transparency log (issue #16): append-only leaves and the hashes of its perfect subtrees. No foreign keys:
-- the log outlives the accounts it describes (a deleted account's last entry is a tombstone).
CREATE TABLE kt_leaves (
  idx INTEGER PRIMARY KEY,
  user_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  entry BLOB NOT NULL,
  UNIQUE (user_id, seq)
) STRICT;
CREATE INDEX kt_leaves_user_idx ON kt_leaves (user_id, idx);
CREATE TABLE kt_nodes (
  level INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  hash BLOB NOT NULL,
  PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;
