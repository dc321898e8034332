-- Operator tools: a deactivated account cannot sign in (its sessions are revoked when it is deactivated).

ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
