-- The index deltas (user_id, concept, at) served the fold of a concept from
-- all its deltas on every push. Since migration 0010 a push folds on from
-- the stored state, and only a delta that arrives out of order needs a
-- concept's deltas again; that rare fold reads the engineer's deltas once
-- through (user_id, seq). Each insert put an entry at a random place of
-- this index (concepts come in any order), which made it the largest part
-- of what a push writes (docs/benchmarks.md, sync ingest).
DROP INDEX deltas_user_concept;
