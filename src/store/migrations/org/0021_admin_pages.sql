-- The admin pages of issue 18: the audit log filtered by actor, action or
-- target, newest first, and the members directory searched and paged at
-- 100,000 people without scanning the table.

-- Audit filters walk (column, at) newest first instead of every row.
CREATE INDEX IF NOT EXISTS audit_log_actor ON audit_log (actor, at);
CREATE INDEX IF NOT EXISTS audit_log_action ON audit_log (action, at);
CREATE INDEX IF NOT EXISTS audit_log_target ON audit_log (target, at);

-- Deactivated people and directly granted admins, in user-name order:
-- the status and role filters walk these (few rows) rather than the table.
CREATE INDEX IF NOT EXISTS users_inactive_name ON users (user_name COLLATE NOCASE)
    WHERE active = 0 AND deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS users_admin_name ON users (user_name COLLATE NOCASE)
    WHERE admin_granted = 1;

-- The members search: one trigram full-text row per user (rowid =
-- users.rowid) holding their user name, display name and email addresses,
-- so a search for any part of one (three characters or more) is an index
-- lookup. Kept by the triggers below; nothing else writes it. Like the
-- rest of the file it is encrypted by SQLCipher.
CREATE VIRTUAL TABLE IF NOT EXISTS member_search USING fts5 (text, tokenize = 'trigram');

CREATE TRIGGER member_search_insert AFTER INSERT ON users
BEGIN
    INSERT INTO member_search (rowid, text) VALUES (NEW.rowid,
        NEW.user_name || ' ' || NEW.display_name || ' ' || coalesce(
            (SELECT group_concat(json_extract(e.value, '$.value'), ' ')
             FROM json_each(NEW.emails) e), ''));
END;

CREATE TRIGGER member_search_update AFTER UPDATE OF user_name, display_name, emails ON users
BEGIN
    DELETE FROM member_search WHERE rowid = OLD.rowid;
    INSERT INTO member_search (rowid, text) VALUES (NEW.rowid,
        NEW.user_name || ' ' || NEW.display_name || ' ' || coalesce(
            (SELECT group_concat(json_extract(e.value, '$.value'), ' ')
             FROM json_each(NEW.emails) e), ''));
END;

CREATE TRIGGER member_search_delete AFTER DELETE ON users
BEGIN
    DELETE FROM member_search WHERE rowid = OLD.rowid;
END;

INSERT INTO member_search (rowid, text)
SELECT u.rowid, u.user_name || ' ' || u.display_name || ' ' || coalesce(
    (SELECT group_concat(json_extract(e.value, '$.value'), ' ') FROM json_each(u.emails) e), '')
FROM users u;
