-- PQXDH: each device's signed ML-KEM-768 prekeys. One-time ones (last_resort = 0) are handed out once; the one
-- last-resort key (last_resort = 1) is handed out when none is left and replaced by the device, never deleted on use.

CREATE TABLE kem_prekeys (
  device_id   TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
  last_resort INTEGER NOT NULL,
  key_id      INTEGER NOT NULL,
  public_key  BLOB NOT NULL,
  signature   BLOB NOT NULL,
  PRIMARY KEY (device_id, last_resort, key_id)
) STRICT, WITHOUT ROWID;
