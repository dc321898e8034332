-- The first schema of the relay's SQLite store. Binary values are BLOBs, times are milliseconds since the epoch.

CREATE TABLE users (
  user_id        TEXT PRIMARY KEY,
  username       TEXT NOT NULL UNIQUE,
  salt           BLOB NOT NULL,
  auth_hash      TEXT NOT NULL,
  identity_key   BLOB NOT NULL,
  share_presence INTEGER NOT NULL DEFAULT 1,
  last_seen      INTEGER,
  backup         BLOB,
  created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE devices (
  device_id               TEXT PRIMARY KEY,
  user_id                 TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
  signed_prekey_id        INTEGER,
  signed_prekey           BLOB,
  signed_prekey_signature BLOB,
  created_at              INTEGER NOT NULL
) STRICT;
CREATE INDEX devices_by_user ON devices (user_id);

CREATE TABLE one_time_prekeys (
  device_id  TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
  key_id     INTEGER NOT NULL,
  public_key BLOB NOT NULL,
  PRIMARY KEY (device_id, key_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE session_families (
  family_id  TEXT PRIMARY KEY,
  user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
  device_id  TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
  revoked    INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX session_families_by_device ON session_families (device_id);
CREATE INDEX session_families_by_user ON session_families (user_id);

-- Only the SHA-256 of a refresh token is stored. A spent token stays (used = 1) until it expires, so that its
-- reuse is recognised and revokes the family.
CREATE TABLE refresh_tokens (
  token_hash BLOB PRIMARY KEY,
  family_id  TEXT NOT NULL REFERENCES session_families (family_id) ON DELETE CASCADE,
  used       INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

CREATE TABLE groups (
  group_id   TEXT PRIMARY KEY,
  version    INTEGER NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE group_members (
  group_id TEXT NOT NULL REFERENCES groups (group_id) ON DELETE CASCADE,
  user_id  TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  is_admin INTEGER NOT NULL,
  PRIMARY KEY (group_id, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX group_members_by_user ON group_members (user_id);

-- One row per recipient device of a stored send; deleted when the device acknowledges it, or after the TTL.
-- seq (AUTOINCREMENT: never reused) orders a device's entries. The sender is not recorded here.
CREATE TABLE mailbox (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id  TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
  message_id TEXT NOT NULL,
  group_id   TEXT,
  ts         INTEGER NOT NULL,
  body       BLOB NOT NULL
) STRICT;
CREATE INDEX mailbox_by_device ON mailbox (device_id, seq);
CREATE INDEX mailbox_by_ts ON mailbox (ts);

-- The idempotency record of every stored send: (sending device, client message id) → ts, kept for 30 days.
-- Append-only on purpose: a B-tree keyed by the random message id would dirty one random page per send. The store
-- keeps the lookup index in memory, rebuilt from this table when it opens.
CREATE TABLE sent_messages (
  sender_device_id TEXT NOT NULL,
  message_id       TEXT NOT NULL,
  ts               INTEGER NOT NULL
) STRICT;
CREATE INDEX sent_messages_by_ts ON sent_messages (ts);
