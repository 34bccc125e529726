//! The Rust part of org migration 0024: each fold checkpoint gets the
//! facts of its interval (`span`) and each stored state the facts it
//! folded since its last checkpoint (`tail`), read from the deltas
//! through the per-concept index one last time; then the index goes.
//! A concept whose stored fold does not cover exactly its deltas (one
//! queued for the refold worker, a row from before migration 0018, a
//! checkpoint that does not fall on a fact) cannot be filled that way: its
//! checkpoints are dropped, all its facts wait in `fold_pending`, and it
//! is queued from its first fact, so the worker folds it again.

use std::collections::{HashMap, HashSet};

use rusqlite::{Transaction, params};
use rusqlite_migration::HookResult;

use crate::skill::Transition;
use crate::skill::packed::pack;
use crate::skill::state::Fact;

type Key = (String, String);

/// The step (a `rusqlite_migration` hook).
pub fn fill(tx: &Transaction) -> HookResult {
    let queued: HashSet<Key> = tx
        .prepare("SELECT user_id, concept FROM refold_queue")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let counts: HashMap<Key, Option<i64>> = tx
        .prepare("SELECT user_id, concept, facts FROM concept_states")?
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut stmt = tx.prepare(
        "SELECT user_id, concept, id, transition, at, grade FROM deltas
         INDEXED BY deltas_user_concept ORDER BY user_id, concept, at, id",
    )?;
    let mut rows = stmt.query([])?;
    let mut group: Option<(Key, Vec<Fact>)> = None;
    while let Some(r) = rows.next()? {
        let key: Key = (r.get(0)?, r.get(1)?);
        let Some(transition) = Transition::parse(&r.get::<_, String>(3)?) else {
            continue;
        };
        let fact = Fact {
            id: r.get(2)?,
            transition,
            at: crate::clock::from_millis(r.get(4)?),
            grade: r
                .get::<_, Option<i64>>(5)?
                .and_then(|g| u8::try_from(g).ok()),
        };
        match &mut group {
            Some((k, facts)) if *k == key => facts.push(fact),
            _ => {
                if let Some((k, facts)) = group.replace((key, vec![fact])) {
                    settle(tx, &k, &facts, &counts, &queued)?;
                }
            }
        }
    }
    if let Some((k, facts)) = group {
        settle(tx, &k, &facts, &counts, &queued)?;
    }
    tx.execute_batch("DROP INDEX deltas_user_concept")?;
    Ok(())
}

/// Fills the spans and the tail of one concept, `facts` all of its
/// deltas in fold order, or queues it to be folded again.
fn settle(
    tx: &Transaction,
    (user_id, concept): &Key,
    facts: &[Fact],
    counts: &HashMap<Key, Option<i64>>,
    queued: &HashSet<Key>,
) -> rusqlite::Result<()> {
    let key = (user_id.clone(), concept.clone());
    let covered = !queued.contains(&key)
        && counts
            .get(&key)
            .copied()
            .flatten()
            .is_some_and(|n| usize::try_from(n).ok() == Some(facts.len()));
    if covered && let Some(spans) = spans(tx, user_id, concept, facts)? {
        let mut put = tx.prepare_cached(
            "UPDATE fold_checkpoints SET span = ?5
             WHERE user_id = ?1 AND concept = ?2 AND last_at = ?3 AND last_id = ?4",
        )?;
        let mut from = 0;
        for (at, id, to) in spans {
            put.execute(params![user_id, concept, at, id, pack(&facts[from..to])])?;
            from = to;
        }
        tx.prepare_cached(
            "UPDATE concept_states SET tail = ?3 WHERE user_id = ?1 AND concept = ?2",
        )?
        .execute(params![user_id, concept, pack(&facts[from..])])?;
        return Ok(());
    }
    tx.prepare_cached("DELETE FROM fold_checkpoints WHERE user_id = ?1 AND concept = ?2")?
        .execute(params![user_id, concept])?;
    tx.prepare_cached("UPDATE concept_states SET tail = NULL WHERE user_id = ?1 AND concept = ?2")?
        .execute(params![user_id, concept])?;
    let mut wait = tx.prepare_cached(
        "INSERT OR IGNORE INTO fold_pending (user_id, concept, at, id, transition, grade)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for f in facts {
        wait.execute(params![
            user_id,
            concept,
            f.at.timestamp_millis(),
            f.id,
            f.transition.as_str(),
            f.grade
        ])?;
    }
    tx.prepare_cached(
        "INSERT INTO refold_queue (user_id, concept, from_at, from_id, queued_at)
         VALUES (?1, ?2, ?3, '', 0)
         ON CONFLICT (user_id, concept) DO UPDATE SET from_at = ?3, from_id = ''",
    )?
    .execute(params![user_id, concept, i64::MIN])?;
    Ok(())
}

/// Each checkpoint of the concept as (`last_at`, `last_id`, facts folded
/// up to it), if every one falls on the fact its count says.
fn spans(
    tx: &Transaction,
    user_id: &str,
    concept: &str,
    facts: &[Fact],
) -> rusqlite::Result<Option<Vec<(i64, String, usize)>>> {
    let kept: Vec<(i64, String, i64)> = tx
        .prepare_cached(
            "SELECT last_at, last_id, facts FROM fold_checkpoints
             WHERE user_id = ?1 AND concept = ?2 ORDER BY last_at, last_id",
        )?
        .query_map(params![user_id, concept], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(kept.len());
    let mut before = 0;
    for (at, id, n) in kept {
        let Some(n) = usize::try_from(n).ok().filter(|n| *n > before) else {
            return Ok(None);
        };
        match facts.get(n - 1) {
            Some(f) if f.at.timestamp_millis() == at && f.id == id => {}
            _ => return Ok(None),
        }
        out.push((at, id, n));
        before = n;
    }
    Ok(Some(out))
}
