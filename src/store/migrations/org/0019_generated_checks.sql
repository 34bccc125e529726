-- Comprehension checks the org's model wrote (see crate::checks::service).
-- Times are Unix ms, UTC.
--
-- Provenance is the model's name, when, and the SHA-256 of the prompt
-- template's version (crate::model::generate::prompt_sha256); never who
-- asked: a check is generated from a concept's catalogue entry alone.
-- Checks are multiple choice: options is a JSON array of 4 or 5 strings
-- and correct the index of the right one. A check an admin retires is
-- kept (engineers' results may name its id) and no longer served.
CREATE TABLE IF NOT EXISTS generated_checks (
    id            TEXT PRIMARY KEY CHECK (id GLOB 'gen-?*'),
    concept       TEXT NOT NULL,
    prompt        TEXT NOT NULL,
    options       TEXT NOT NULL CHECK (json_valid(options) AND json_array_length(options) BETWEEN 4 AND 5),
    correct       INTEGER NOT NULL CHECK (correct >= 0 AND correct < json_array_length(options)),
    explanation   TEXT NOT NULL,
    model         TEXT NOT NULL,
    prompt_sha256 TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    retired_at    INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS generated_checks_by_concept ON generated_checks (concept, created_at);
