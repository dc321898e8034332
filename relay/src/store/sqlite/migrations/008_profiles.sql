-- Profiles (issue #14): each user's profile (display name and picture) sealed with its profile key; opaque here.

ALTER TABLE users ADD COLUMN profile BLOB;
