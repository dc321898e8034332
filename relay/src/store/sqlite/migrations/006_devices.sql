-- Devices as their owner manages them (issue #14): a sealed name (opaque to the relay), when each device was last
-- active (updated at sign-in, token refresh and socket connection, not per message), and a record of each device
-- its owner removed, so that its still-valid access tokens are answered `device_removed` rather than
-- `unauthorized`. The record goes with the account.

ALTER TABLE devices ADD COLUMN name BLOB;
ALTER TABLE devices ADD COLUMN last_active_at INTEGER;

CREATE TABLE removed_devices (
  device_id  TEXT PRIMARY KEY,
  user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
  removed_at INTEGER NOT NULL
) STRICT;
CREATE INDEX removed_devices_by_user ON removed_devices (user_id);
