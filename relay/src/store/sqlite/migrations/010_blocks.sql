-- Block lists: `blocker` refuses what `blocked` sends to its devices, hides its presence from them, and cannot be
-- added by them to a group (src/service/blocks.ts). Gone with either user.
CREATE TABLE blocks (
  blocker    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
  blocked    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (blocker, blocked)
) STRICT, WITHOUT ROWID;
-- A send looks up the recipients who block its sender.
CREATE INDEX blocks_by_blocked ON blocks (blocked, blocker);
