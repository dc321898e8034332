-- Witness cosignatures of key transparency checkpoints (issue #16): kept in the store so that a restart or another
-- node serves them too. One row per witness and tree size; the relay keeps only each witness's newest few.
CREATE TABLE kt_cosignatures (
  key_id TEXT NOT NULL,
  size INTEGER NOT NULL,
  root BLOB NOT NULL,
  timestamp INTEGER NOT NULL,
  line TEXT NOT NULL,
  PRIMARY KEY (key_id, size)
) STRICT, WITHOUT ROWID;
