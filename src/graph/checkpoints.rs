//! Fold checkpoints (`fold_checkpoints`, migration 0018): the state of an
//! engineer's concept after every [`EVERY`]-th fact in (`at`, `id`) order.
//! A fact that sorts before a stored state's cursor makes its concept fold
//! again, from the last checkpoint before that fact rather than from the
//! concept's first fact; so a fact late by a second (a random id in the
//! same second as the cursor, another device's clock) costs at most
//! [`EVERY`] facts read again, whatever the engineer's history. Checkpoints
//! after a late fact no longer hold (its position moved every later fact
//! along), so they are laid again by the fold that follows.
//! `super::states` keeps them; `docs/skill-graph.md` explains the choice.

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
}

impl Position {
    /// Before any fact.
    pub fn start() -> Self {
        Self {
            state: ConceptState::unseen(),
            cursor: None,
            facts: 0,
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

/// Forgets the checkpoints of (user `?1`, concept `?2`) after (`?3`, `?4`).
const FORGET_AFTER: &str = "DELETE FROM fold_checkpoints
    WHERE user_id = ?1 AND concept = ?2 AND (last_at, last_id) > (?3, ?4)";

const PUT: &str = "INSERT OR REPLACE INTO fold_checkpoints
    (user_id, concept, last_at, last_id, facts, level, first_seen_at, first_demonstrated,
     checks_passed, checks_failed, late_checks, late_passed, stability, difficulty,
     last_review, reps, lapses)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

/// The facts of (user `?1`, concept `?2`) dated from `?3` on (through the
/// index of migration 0018).
const FACTS_FROM: &str = "SELECT id, transition, at, grade FROM deltas
    INDEXED BY deltas_user_concept
    WHERE user_id = ?1 AND concept = ?2 AND at >= ?3";

/// The first `?5` facts of (user `?1`, concept `?2`) after (`?3`, `?4`) in
/// (`at`, `id`) order (one user's (`at`, `id`) is unique: migration 0022).
/// Through the per-concept index by name: left to itself the planner
/// walks `(user_id, at, id)`, in the right order but over every concept's
/// facts after the cursor (a slice of a week-old refold then read the
/// engineer's whole week).
const FACTS_SLICE: &str = "SELECT id, transition, at, grade FROM deltas
    INDEXED BY deltas_user_concept
    WHERE user_id = ?1 AND concept = ?2 AND at >= ?3 AND (at, id) > (?3, ?4)
    ORDER BY at, id LIMIT ?5";

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
        },
        facts,
    ))
}

/// The last checkpoint of (`user_id`, `concept`) before `from`, or the
/// start; nothing is forgotten (see [`restart_before`]).
///
/// # Errors
/// SQLite errors.
pub fn checkpoint_before(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    from: &Cursor,
) -> rusqlite::Result<Position> {
    use rusqlite::OptionalExtension;
    let found = conn
        .prepare_cached(BEFORE)?
        .query_row(params![user_id, concept, from.0, from.1], fold_row)
        .optional()?;
    Ok(found.map_or_else(Position::start, |(p, _)| p))
}

/// Where a refold of (`user_id`, `concept`) starts for a first new fact at
/// `from`: the last checkpoint before it (or the start), once the
/// checkpoints after that one are forgotten.
///
/// # Errors
/// SQLite errors.
pub fn restart_before(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    from: &Cursor,
) -> rusqlite::Result<Position> {
    let start = checkpoint_before(conn, user_id, concept, from)?;
    forget_after(conn, user_id, concept, &start)?;
    Ok(start)
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
    let (at, id) = start.cursor.clone().unwrap_or((i64::MIN, String::new()));
    conn.prepare_cached(FORGET_AFTER)?
        .execute(params![user_id, concept, at, id])?;
    Ok(())
}

/// A fact from a row of (`id`, `transition`, `at`, `grade`); `None` for a
/// transition this build does not know (the table's CHECK admits none).
fn fact_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Fact>> {
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

/// The facts of (`user_id`, `concept`) after `cursor` (all of them without
/// one), sorted in fold order.
///
/// # Errors
/// SQLite errors.
pub fn facts_after(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    cursor: Option<&Cursor>,
) -> rusqlite::Result<Vec<Fact>> {
    let from = cursor.map_or(i64::MIN, |c| c.0);
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(FACTS_FROM)?;
    let mut rows = stmt.query(params![user_id, concept, from])?;
    while let Some(r) = rows.next()? {
        let Some(f) = fact_of(r)? else { continue };
        if let Some((c_at, c_id)) = cursor
            && (to_millis(f.at), f.id.as_str()) <= (*c_at, c_id.as_str())
        {
            continue;
        }
        out.push(f);
    }
    out.sort_by(crate::skill::state::fact_order);
    Ok(out)
}

/// The first `limit` facts of (`user_id`, `concept`) after `cursor` (from
/// the first without one), in fold order: a slice of a refold
/// (`super::refold`).
///
/// # Errors
/// SQLite errors.
pub fn facts_slice(
    conn: &Connection,
    user_id: &str,
    concept: &str,
    cursor: Option<&Cursor>,
    limit: usize,
) -> rusqlite::Result<Vec<Fact>> {
    let (at, id) = cursor.cloned().unwrap_or((i64::MIN, String::new()));
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(FACTS_SLICE)?;
    let mut rows = stmt.query(params![user_id, concept, at, id, limit])?;
    while let Some(r) = rows.next()? {
        if let Some(f) = fact_of(r)? {
            out.push(f);
        }
    }
    Ok(out)
}

/// Folds `facts` (sorted, all after `at`'s cursor) on from `at`, storing a
/// checkpoint at every multiple of `every` facts.
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
        at.cursor = Some((to_millis(f.at), f.id.clone()));
        if at.facts.is_multiple_of(every.max(1)) {
            put(conn, user_id, concept, &at)?;
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
    ])?;
    Ok(())
}
