-- SCIM 2.0 provisioning (RFC 7643, RFC 7644). Times are Unix ms, UTC.

-- scim_version counts SCIM-visible changes of a resource: its ETag is
-- W/"<scim_version>" (RFC 7644 §3.14). scim_attrs keeps the attributes of
-- the core User schema and the enterprise extension that have no column of
-- their own (name, title, phoneNumbers, department, manager, ...), as the
-- identity provider sent them. deleted_at marks a user deleted over SCIM:
-- they are gone from SCIM, inactive (so they cannot sign in), and their
-- data is in the 30-day deletion hold; their user name is freed.
ALTER TABLE users ADD COLUMN scim_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN scim_attrs TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(scim_attrs));
ALTER TABLE users ADD COLUMN deleted_at INTEGER;
CREATE INDEX users_external_id ON users (external_id);
CREATE INDEX users_created ON users (created_at, id);

ALTER TABLE groups ADD COLUMN scim_version INTEGER NOT NULL DEFAULT 1;
CREATE INDEX groups_external_id ON groups (external_id);
CREATE INDEX groups_created ON groups (created_at, id);
