-- Idempotency records are pruned in rowid order now (PRUNE_SENT in src/store/sqlite/idempotency.ts): the rows of old
-- hours are the table's first rows. The index on the hour bucket cost every commit that stores a send one more
-- B-tree page written to the WAL, and was read only by the hourly sweep.
DROP INDEX sent_ids_by_bucket;
