-- Comprehension checks the kernel offered (in the terminal or to the
-- coding agent over MCP), for the daily limit, the cool-down and the
-- answer an MCP check waits for. Concept ids, check ids, times and grades
-- only: never an answer the engineer gave.
CREATE TABLE checks_offered (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    concept  TEXT NOT NULL,
    check_id TEXT NOT NULL,
    -- When it was offered, milliseconds since the epoch.
    at       INTEGER NOT NULL,
    via      TEXT NOT NULL CHECK (via IN ('terminal', 'mcp')),
    -- The check as served (question, options, answer key, explanation)
    -- while its answer is awaited; NULL once answered or given up.
    pending  TEXT,
    -- The grade recorded for it (1 to 4), once answered.
    grade    INTEGER CHECK (grade BETWEEN 1 AND 4)
) STRICT;
CREATE INDEX checks_offered_at ON checks_offered (at);
CREATE INDEX checks_offered_pending ON checks_offered (check_id) WHERE pending IS NOT NULL;
