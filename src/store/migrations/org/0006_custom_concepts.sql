-- Concepts an org adds to the shipped catalogue (see crate::catalogue::custom).
-- Times are Unix ms, UTC.
--
-- Slugs start with `x-`, a prefix the shipped catalogue never uses, so an
-- org's concept can never collide with one shipped later. A concept is
-- never deleted: engineers' deltas refer to it by slug, so it is retired
-- instead (retired_at set) and keeps its meaning and its data.
-- prerequisites and related are JSON arrays of slugs (shipped or this
-- org's); matchers is a JSON object {extensions, imports, keywords, apis}.
-- The application checks edges and acyclicity inside the write transaction.
CREATE TABLE custom_concepts (
    slug          TEXT PRIMARY KEY CHECK (slug GLOB 'x-?*' AND length(slug) <= 64),
    title         TEXT NOT NULL,
    domain        TEXT NOT NULL,
    summary       TEXT NOT NULL,
    prerequisites TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(prerequisites)),
    related       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(related)),
    matchers      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(matchers)),
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    updated_at    INTEGER NOT NULL,
    retired_at    INTEGER
) STRICT, WITHOUT ROWID;
