//! Fold checkpoints (`fold_checkpoints`, migration 0018): the state of an
//! engineer's concept after every [`EVERY`]-th fact in (`at`, `id`) order.
//! A fact that sorts before a stored state's cursor makes its concept fold
//! again, from the last checkpoint before that fact rather than from the
//! concept's first fact; so a fact late by a second (a random id in the
//! same second as the cursor, another device's clock) costs at most
//! [`EVERY`] facts read again, whatever the engineer's history. Checkpoints
//! after a late fact no longer hold (its position moved every later fact
//! along), so they are laid again by the fold that follows.
//!
//! The facts themselves are kept with the folds (migration 0024): each
//! checkpoint holds the facts of its interval (`span`), each stored state
//! those it folded since its last checkpoint (`tail`, [`Position::tail`]),
//! packed (`skill::packed`), and a concept queued for the refold worker
//! keeps its newer facts in `fold_pending`. Every fact of a concept is in
//! exactly one of the three, so a refold reads the facts after a
//! checkpoint from the rows after it, in the table's key order, and the
//! deltas need no index by concept (whose pages were two thirds of what a
//! push wrote). `super::states` keeps them; `docs/skill-graph.md` explains
//! the choice.

use rusqlite::{Connection, params};

use crate::clock::{from_millis, to_millis};
use crate::skill::Transition;
use crate::skill::fsrs::{Card, MemoryState};
use crate::skill::state::{ConceptState, Fact, Level};

/// Facts folded between two checkpoints of a concept.
pub const EVERY: u64 = 16;

/// The last fact folded into a state: (`at` in Unix ms, `id`).
pub type Cursor = (i64, String);

/// A fold of one concept's first `facts` facts, ending at `cursor`.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub state: ConceptState,
    pub cursor: Option<Cursor>,
    pub facts: u64,
    /// The facts folded since the last checkpoint (at most the interval;
    /// none at a checkpoint).
    pub tail: Vec<Fact>,
}

impl Position {
    /// Before any fact.
    pub fn start() -> Self {
        Self {
            state: ConceptState::unseen(),
            cursor: None,
            facts: 0,
            tail: Vec::new(),
        }
    }
}

/// The columns of a fold, in the order [`fold_row`] reads them from
/// column 1 on (`concept_states` and `fold_checkpoints` both have them).
pub const FOLD_COLUMNS: &str = "level, first_seen_at, first_demonstrated, checks_passed,
    checks_failed, late_checks, late_passed, stability, difficulty, last_review, reps, lapses,
    last_at, last_id, facts";

/// The last checkpoint of (user `?1`, concept `?2`) before (`?3`, `?4`).
const BEFORE: &str = "SELECT concept, level, first_seen_at, first_demonstrated, checks_passed,
    checks_failed, late_checks, late_passed, stability, difficulty, last_review, reps, lapses,
    last_at, last_id, facts
    FROM fold_checkpoints WHERE user_id = ?1 AND concept = ?2 AND (last_at, last_id) < (?3, ?4)
    ORDER BY last_at DESC, last_id DESC LIMIT 1";

/// The checkpoint of (user `?1`, concept `?2`) at (`?3`, `?4`), or the
/// last before it.
const AT_OR_BEFORE: &str = "SELECT concept, level, first_seen_at, first_demonstrated,
    checks_passed, checks_failed, late_checks, late_passed, stability, difficulty, last_review,
    reps, lapses, last_at, last_id, facts
    FROM fold_checkpoints WHERE user_id = ?1 AND concept = ?2 AND (last_at, last_id) <= (?3, ?4)
    ORDER BY last_at DESC, last_id DESC LIMIT 1";

/// Forgets the checkpoints of (user `?1`, concept `?2`) after (`?3`, `?4`).
const FORGET_AFTER: &str = "DELETE FROM fold_checkpoints
    WHERE user_id = ?1 AND concept = ?2 AND (last_at, last_id) > (?3, ?4)";

/// Forgets the checkpoints of (user `?1`, concept `?2`) after (`?3`, `?4`)
/// up to (`?5`, `?6`).
const FORGET_BETWEEN: &str = "DELETE FROM fold_checkpoints
    WHERE user_id = ?1 AND concept = ?2 AND (last_at, last_id) > (?3, ?4)
      AND (last_at, last_id) <= (?5, ?6)";

const PUT: &str = "INSERT OR REPLACE INTO fold_checkpoints
    (user_id, concept, last_at, last_id, facts, level, first_seen_at, first_demonstrated,
     checks_passed, checks_failed, late_checks, late_passed, stability, difficulty,
     last_review, reps, lapses, span)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

/// The checkpoints of (user `?1`, concept `?2`) after (`?3`, `?4`), in
/// order: each one's cursor and the facts of its interval.
const SPANS_AFTER: &str = "SELECT last_at, last_id, span FROM fold_checkpoints
    WHERE user_id = ?1 AND concept = ?2 AND (last_at, last_id) > (?3, ?4)
    ORDER BY last_at, last_id";

/// The facts of (user `?1`, concept `?2`) waiting for the refold worker
/// after (`?3`, `?4`), in fold order, at most `?5`.
const PENDING_AFTER: &str = "SELECT id, transition, at, grade FROM fold_pending
    WHERE user_id = ?1 AND concept = ?2 AND (at, id) > (?3, ?4)
    ORDER BY at, id LIMIT ?5";

const PENDING_PUT: &str = "INSERT OR IGNORE INTO fold_pending
    (user_id, concept, at, id, transition, grade) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Drops the waiting facts of (user `?1`, concept `?2`) up to (`?3`, `?4`).
const PENDING_DROP_THROUGH: &str = "DELETE FROM fold_pending
    WHERE user_id = ?1 AND concept = ?2 AND (at, id) <= (?3, ?4)";

/// The facts a stored state folded since its last checkpoint.
const TAIL: &str = "SELECT tail FROM concept_states WHERE user_id = ?1 AND concept = ?2";

/// Before every fact: where a cursor-less fold starts.
pub fn before_all() -> Cursor {
    (i64::MIN, String::new())
}

/// The number stored for a level (`Unseen` is never stored).
pub fn level_number(level: Level) -> Option<i64> {
    match level {
        Level::Unseen => None,
        Level::Seen => Some(1),
        Level::Explained => Some(2),
        Level::Demonstrated => Some(3),
        Level::Retained => Some(4),
    }
}

fn level_of(n: i64) -> Level {
    match n {
        1 => Level::Seen,
        2 => Level::Explained,
        3 => Level::Demonstrated,
        _ => Level::Retained,
    }
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A fold from a row whose column 0 is the concept and columns 1 to 15 are
/// [`FOLD_COLUMNS`]. `facts` is `None` for rows folded before migration
/// 0018 (they are folded again before use).
///
/// # Errors
/// SQLite errors.
pub fn fold_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Position, Option<u64>)> {
    let card = match (
        r.get::<_, Option<f64>>(8)?,
        r.get::<_, Option<f64>>(9)?,
        r.get::<_, Option<i64>>(10)?,
    ) {
        (Some(stability_days), Some(difficulty), Some(last_review)) => Some(Card {
            memory: MemoryState {
                stability_days,
                difficulty,
            },
            last_review: from_millis(last_review),
            reps: count(r.get::<_, Option<i64>>(11)?.unwrap_or(0)),
            lapses: count(r.get::<_, Option<i64>>(12)?.unwrap_or(0)),
        }),
        _ => None,
    };
    let last_at: Option<i64> = r.get(13)?;
    let cursor = match (last_at, r.get::<_, Option<String>>(14)?) {
        (Some(at), Some(id)) => Some((at, id)),
        _ => None,
    };
    let facts = r
        .get::<_, Option<i64>>(15)?
        .and_then(|n| u64::try_from(n).ok());
    let state = ConceptState {
        level: level_of(r.get(1)?),
        first_seen: Some(from_millis(r.get(2)?)),
        first_demonstrated: r.get::<_, Option<i64>>(3)?.map(from_millis),
        last_activity: last_at.map(from_millis),
        card,
        checks_passed: count(r.get(4)?),
        checks_failed: count(r.get(5)?),
        late_checks: count(r.get(6)?),
        late_passed: count(r.get(7)?),
    };
    Ok((
        Position {
            state,
            cursor,
            facts: facts.unwrap_or(0),
            tail: Vec::new(),
        },
        facts,
    ))
}

/// The last checkpoint of (`user_id`, `concept`) before `from`, or the
/// start.
///
/// # Errors
/// SQLite errors.
pub fn checkpoint_before(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    from: &Cursor,
) -> rusqlite::Result<Position> {
    checkpoint_by(conn, BEFORE, user_id, concept, from)
}

/// The checkpoint of (`user_id`, `concept`) at `at` (or the last before
/// it), or the start: where a queued refold starts again.
///
/// # Errors
/// SQLite errors.
pub fn checkpoint_at(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    at: &Cursor,
) -> rusqlite::Result<Position> {
    checkpoint_by(conn, AT_OR_BEFORE, user_id, concept, at)
}

fn checkpoint_by(
    conn: &Connection,
    sql: &str,
    user_id: &str,
    concept: &str,
    from: &Cursor,
) -> rusqlite::Result<Position> {
    use rusqlite::OptionalExtension;
    let found = conn
        .prepare_cached(sql)?
        .query_row(params![user_id, concept, from.0, from.1], fold_row)
        .optional()?;
    Ok(found.map_or_else(Position::start, |(p, _)| p))
}

/// The cursor of a fold that ends at `f`.
pub fn cursor_of(f: &Fact) -> Cursor {
    (to_millis(f.at), f.id.clone())
}

/// A checkpoint's cursor and the facts of its interval.
pub type Span = (Cursor, Vec<Fact>);

/// Where `at` stands: its cursor, or before every fact.
pub fn cursor_or_start(at: &Position) -> Cursor {
    at.cursor.clone().unwrap_or_else(before_all)
}

/// Forgets the checkpoints of (`user_id`, `concept`) after `start`, where
/// a refold restarts: they no longer hold once it folds a late fact.
///
/// # Errors
/// SQLite errors.
pub fn forget_after(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    start: &Position,
) -> rusqlite::Result<()> {
    let (at, id) = cursor_or_start(start);
    conn.prepare_cached(FORGET_AFTER)?
        .execute(params![user_id, concept, at, id])?;
    Ok(())
}

/// Forgets the checkpoints of (`user_id`, `concept`) after `after` up to
/// `upto`.
///
/// # Errors
/// SQLite errors.
pub fn forget_between(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    after: &Cursor,
    upto: &Cursor,
) -> rusqlite::Result<()> {
    conn.prepare_cached(FORGET_BETWEEN)?
        .execute(params![user_id, concept, after.0, after.1, upto.0, upto.1])?;
    Ok(())
}

/// Facts from a packed column (`None` or empty: none).
///
/// # Errors
/// Bytes that do not unpack, as a conversion failure.
pub fn unpacked(bytes: Option<&[u8]>) -> rusqlite::Result<Vec<Fact>> {
    crate::skill::packed::unpack(bytes.unwrap_or_default()).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, e.into())
    })
}

/// The checkpoints of (`user_id`, `concept`) after `after`, in order, each
/// with the facts of its interval, until they hold at least `max_facts`
/// facts; and whether any checkpoint follows those.
///
/// # Errors
/// SQLite errors, a damaged span.
pub fn spans_after(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    after: &Cursor,
    max_facts: usize,
) -> rusqlite::Result<(Vec<Span>, bool)> {
    let mut stmt = conn.prepare_cached(SPANS_AFTER)?;
    let mut rows = stmt.query(params![user_id, concept, after.0, after.1])?;
    let (mut out, mut held) = (Vec::new(), 0usize);
    while let Some(r) = rows.next()? {
        if held >= max_facts {
            return Ok((out, true));
        }
        let facts = unpacked(r.get_ref(2)?.as_blob_or_null()?)?;
        held += facts.len();
        out.push(((r.get(0)?, r.get(1)?), facts));
    }
    Ok((out, false))
}

/// The facts of (`user_id`, `concept`) folded after `start`: those of the
/// checkpoints after it, then `tail` (the stored state's, after its last
/// checkpoint), in fold order.
///
/// # Errors
/// SQLite errors, a damaged span.
pub fn held_after(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    start: &Position,
    tail: &[Fact],
) -> rusqlite::Result<Vec<Fact>> {
    let (spans, _) = spans_after(conn, user_id, concept, &cursor_or_start(start), usize::MAX)?;
    let mut out: Vec<Fact> = spans.into_iter().flat_map(|(_, f)| f).collect();
    out.extend_from_slice(tail);
    Ok(out)
}

/// A fact from a row of (`id`, `transition`, `at`, `grade`); `None` for a
/// transition this build does not know (the tables' CHECK admits none).
pub(super) fn fact_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Fact>> {
    let Some(transition) = Transition::parse(&r.get::<_, String>(1)?) else {
        return Ok(None);
    };
    Ok(Some(Fact {
        id: r.get(0)?,
        transition,
        at: from_millis(r.get(2)?),
        grade: r
            .get::<_, Option<i64>>(3)?
            .and_then(|g| u8::try_from(g).ok()),
    }))
}

/// Keeps `facts` of (`user_id`, `concept`) for the refold worker: a
/// queued concept's new facts, and those a slice read but did not fold
/// into a checkpoint.
///
/// # Errors
/// SQLite errors.
pub fn put_pending(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    facts: &[Fact],
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(PENDING_PUT)?;
    for f in facts {
        stmt.execute(params![
            user_id,
            concept,
            to_millis(f.at),
            f.id,
            f.transition.as_str(),
            f.grade
        ])?;
    }
    Ok(())
}

/// The first `limit` facts of (`user_id`, `concept`) waiting for the
/// refold worker after `after`, in fold order.
///
/// # Errors
/// SQLite errors.
pub fn pending_after(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    after: &Cursor,
    limit: usize,
) -> rusqlite::Result<Vec<Fact>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(PENDING_AFTER)?;
    let mut rows = stmt.query(params![user_id, concept, after.0, after.1, limit])?;
    while let Some(r) = rows.next()? {
        if let Some(f) = fact_of(r)? {
            out.push(f);
        }
    }
    Ok(out)
}

/// Drops the waiting facts of (`user_id`, `concept`) up to `upto`: folded.
///
/// # Errors
/// SQLite errors.
pub fn drop_pending_through(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    upto: &Cursor,
) -> rusqlite::Result<()> {
    conn.prepare_cached(PENDING_DROP_THROUGH)?
        .execute(params![user_id, concept, upto.0, upto.1])?;
    Ok(())
}

/// The facts the stored state of (`user_id`, `concept`) folded since its
/// last checkpoint (none without a row).
///
/// # Errors
/// SQLite errors, a damaged tail.
pub fn stored_tail(conn: &Connection, user_id: &str, concept: &str) -> rusqlite::Result<Vec<Fact>> {
    use rusqlite::OptionalExtension;
    let tail: Option<Vec<u8>> = conn
        .prepare_cached(TAIL)?
        .query_row(params![user_id, concept], |r| r.get(0))
        .optional()?
        .flatten();
    unpacked(tail.as_deref())
}

/// Every fact the appliance holds about (`user_id`, `concept`), in fold
/// order: its checkpoints' intervals, its stored state's tail and what
/// waits for the refold worker. Each fact is in exactly one of them
/// (`super::states`' property test), so this equals the concept's deltas
/// without an index of deltas by concept.
///
/// # Errors
/// SQLite errors, a damaged span.
pub fn all_facts(conn: &Connection, user_id: &str, concept: &str) -> rusqlite::Result<Vec<Fact>> {
    let tail = stored_tail(conn, user_id, concept)?;
    let mut out = held_after(conn, user_id, concept, &Position::start(), &tail)?;
    out.extend(pending_after(
        conn,
        user_id,
        concept,
        &before_all(),
        usize::MAX,
    )?);
    out.sort_by(crate::skill::state::fact_order);
    Ok(out)
}

/// Folds `facts` (sorted, all after `at`'s cursor) on from `at`, storing a
/// checkpoint, with the facts of its interval, at every multiple of
/// `every` facts; the facts after the last one are the result's `tail`.
///
/// # Errors
/// SQLite errors.
pub fn fold_on(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    mut at: Position,
    facts: &[Fact],
    every: u64,
) -> rusqlite::Result<Position> {
    for f in facts {
        at.state.apply(f);
        at.facts += 1;
        at.cursor = Some(cursor_of(f));
        at.tail.push(f.clone());
        if at.facts.is_multiple_of(every.max(1)) {
            put(conn, user_id, concept, &at)?;
            at.tail.clear();
        }
    }
    Ok(at)
}

fn put(conn: &Connection, user_id: &str, concept: &str, at: &Position) -> rusqlite::Result<()> {
    let s = &at.state;
    let (Some(level), Some(first_seen), Some((last_at, last_id))) =
        (level_number(s.level), s.first_seen, at.cursor.as_ref())
    else {
        return Ok(());
    };
    let card = s.card.as_ref();
    conn.prepare_cached(PUT)?.execute(params![
        user_id,
        concept,
        last_at,
        last_id,
        i64::try_from(at.facts).unwrap_or(i64::MAX),
        level,
        to_millis(first_seen),
        s.first_demonstrated.map(to_millis),
        s.checks_passed,
        s.checks_failed,
        s.late_checks,
        s.late_passed,
        card.map(|c| c.memory.stability_days),
        card.map(|c| c.memory.difficulty),
        card.map(|c| to_millis(c.last_review)),
        card.map(|c| c.reps),
        card.map(|c| c.lapses),
        crate::skill::packed::pack(&at.tail),
    ])?;
    Ok(())
}
