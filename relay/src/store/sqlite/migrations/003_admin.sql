-- Operator tools: a deactivated account cannot sign in (its sessions are revoked when it is deactivated), and the
-- invite tokens an operator hands out (only their SHA-256 is stored).

ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;

CREATE TABLE invite_tokens (
  token_hash BLOB PRIMARY KEY,
  expires_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
