-- Who has written to whom: (from_user, to_user) once the relay stored a message from the one to a device of the
-- other (a direct envelope, or a group send while both were members). A user's presence is shared only with the
-- users they have written to (see src/service/presence.ts). Gone with either user.
CREATE TABLE contacts (
  to_user   TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
  from_user TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
  PRIMARY KEY (to_user, from_user)
) STRICT, WITHOUT ROWID;
CREATE INDEX contacts_by_from ON contacts (from_user);
