-- Nested groups (RFC 7643 §4.2: a group's member may be a group).
--
-- group_direct holds what the identity provider says: each group's direct
-- members, users and groups. group_members, from here on, holds the
-- *effective* membership: every user who is a member of the group directly
-- or through any group nested in it. It is derived from group_direct by
-- crate::store::groups::refresh, the one place it is computed, on every
-- change of group_direct. Everything that asks who is in a team (the
-- admin role from admin_groups, team scopes, the aggregate totals and their
-- triggers of migrations 0009 and 0012) reads group_members, so all of it
-- sees the effective membership, and the triggers keep the totals right as
-- rows come and go. Cycles are refused before they are written.

CREATE TABLE group_direct (
    group_id    TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member_id   TEXT NOT NULL,              -- users.id or groups.id
    member_type TEXT NOT NULL CHECK (member_type IN ('User', 'Group')),
    PRIMARY KEY (group_id, member_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX group_direct_member ON group_direct (member_id, member_type);

-- Every membership held so far was a direct one of a user.
INSERT INTO group_direct (group_id, member_id, member_type)
SELECT group_id, user_id, 'User' FROM group_members;

-- A user or group removed leaves no direct membership naming it (the
-- store refreshes the effective membership of the groups concerned).
CREATE TRIGGER users_delete_direct BEFORE DELETE ON users
BEGIN
    DELETE FROM group_direct WHERE member_id = OLD.id AND member_type = 'User';
END;

CREATE TRIGGER groups_delete_direct BEFORE DELETE ON groups
BEGIN
    DELETE FROM group_direct WHERE group_id = OLD.id;
    DELETE FROM group_direct WHERE member_id = OLD.id AND member_type = 'Group';
END;
