-- Listing every user over SCIM (RFC 7644 §3.4.2.4: startIndex and count)
-- at the size of a large enterprise. Users deleted over SCIM keep their
-- row (30-day hold), so a page of live users filtered on deleted_at had to
-- read every table row it skipped, and counting them read the whole table.
-- With these two partial indexes a page skips through index entries only,
-- and the live count is the table's count minus the (few) deleted rows.
CREATE INDEX users_live_created ON users (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX users_deleted ON users (deleted_at) WHERE deleted_at IS NOT NULL;
