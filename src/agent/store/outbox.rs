//! The outbox and what comes back: own deltas queued for the appliance in
//! the wire format (`sync::wire` on the server side: id, concept,
//! transition, at, grade; nothing else exists to send), and the deltas
//! pulled from the engineer's other devices with the pull cursor.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use super::super::error::AgentError;
use super::{LocalStore, SET_META, fold};
use crate::skill::delta::Transition;
use crate::skill::state::Fact;

/// One delta as it is sent and pulled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDelta {
    pub id: String,
    pub concept: String,
    pub transition: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grade: Option<u8>,
}

/// A push body: `{"deltas": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WireBatch {
    pub deltas: Vec<WireDelta>,
}

const OUTBOX: &str = "SELECT o.seq, d.id, d.concept, d.transition, d.at, d.grade
     FROM outbox o JOIN deltas d ON d.id = o.id WHERE o.seq > ?2 ORDER BY o.seq LIMIT ?1";
const OUTBOX_LEN: &str = "SELECT count(*) FROM outbox";
const OUTBOX_LAST: &str = "SELECT coalesce(max(seq), 0) FROM outbox";
const UNQUEUE: &str = "DELETE FROM outbox WHERE id = ?1";
const REFUSE: &str = "INSERT OR REPLACE INTO refused (id, reason) VALUES (?1, ?2)";
const REFUSED_LEN: &str = "SELECT count(*) FROM refused";
const INSERT_PULLED: &str =
    "INSERT OR IGNORE INTO deltas (id, concept, transition, at, grade, origin)
     VALUES (?1, ?2, ?3, ?4, ?5, 'pulled')";
const COUNT_DELTAS: &str = "SELECT count(*) FROM deltas";

/// The meta key of the pull cursor.
pub const PULL_CURSOR: &str = "pull_cursor";

impl LocalStore {
    /// The first `limit` queued deltas, oldest first, exactly as they
    /// will be sent.
    ///
    /// # Errors
    /// Store errors.
    pub fn outbox(&self, limit: usize) -> Result<Vec<WireDelta>, AgentError> {
        Ok(self
            .outbox_rows(0, limit)?
            .into_iter()
            .map(|(_, d)| d)
            .collect())
    }

    /// The first `limit` queued deltas after queue position `after`, each
    /// with its position.
    fn outbox_rows(&self, after: i64, limit: usize) -> Result<Vec<(i64, WireDelta)>, AgentError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .conn
            .prepare_cached(OUTBOX)?
            .query_map([limit, after], |r| {
                Ok((
                    r.get(0)?,
                    WireDelta {
                        id: r.get(1)?,
                        concept: r.get(2)?,
                        transition: r.get(3)?,
                        at: DateTime::from_timestamp_millis(r.get(4)?)
                            .unwrap_or(DateTime::UNIX_EPOCH),
                        grade: r.get(5)?,
                    },
                ))
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// [`LocalStore::outbox`], made durable: unless every delta returned
    /// is known to be durable already, the store is checkpointed after
    /// the read (the log synced, copied into the store, the store synced),
    /// so every delta returned was committed before a checkpoint that
    /// completed. Hooks commit without syncing; a delta sent before its
    /// commit was durable could be rolled back by a power loss and then
    /// recorded again under a new id, and counted twice by the appliance.
    /// `agent sync` reads what it sends through this. A checkpoint covers
    /// the whole queue as it was before it ran, so a backlog sent in many
    /// batches syncs once, and again only for what hooks queued meanwhile.
    ///
    /// # Errors
    /// [`AgentError::Busy`] when other processes kept the checkpoint from
    /// completing for [`super::BUSY_TIMEOUT`]; store errors.
    pub fn outbox_durable(&self, limit: usize) -> Result<Vec<WireDelta>, AgentError> {
        Ok(self.outbox_durable_after(0, limit)?.0)
    }

    /// [`LocalStore::outbox_durable`] after queue position `after` (the
    /// last of a batch still in flight, `0` for the head of the queue),
    /// with the position of the last delta returned (`after` when none).
    ///
    /// # Errors
    /// As [`LocalStore::outbox_durable`].
    pub(crate) fn outbox_durable_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<(Vec<WireDelta>, i64), AgentError> {
        let rows = self.outbox_rows(after, limit)?;
        let Some(&(newest, _)) = rows.last() else {
            return Ok((Vec::new(), after));
        };
        if newest > self.durable_outbox.get() {
            // Everything queued by now, read before the checkpoint starts,
            // was committed before it.
            let queued: i64 = self.conn.query_row(OUTBOX_LAST, [], |r| r.get(0))?;
            // FULL waits for writers and for readers of older snapshots,
            // then copies every frame of the log: -1 frames means the
            // store is not in WAL mode, where each commit was synced
            // already.
            let (busy, log, copied) = self.checkpoint("FULL")?;
            if busy != 0 || copied < log {
                return Err(AgentError::Busy(self.path.clone()));
            }
            self.durable_outbox.set(queued);
        }
        Ok((rows.into_iter().map(|(_, d)| d).collect(), newest))
    }

    /// How many deltas wait to be sent.
    ///
    /// # Errors
    /// Store errors.
    pub fn outbox_len(&self) -> Result<usize, AgentError> {
        let n: i64 = self.conn.query_row(OUTBOX_LEN, [], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// How many deltas the appliance refused for good.
    ///
    /// # Errors
    /// Store errors.
    pub fn refused_len(&self) -> Result<usize, AgentError> {
        let n: i64 = self.conn.query_row(REFUSED_LEN, [], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// How many deltas the store holds, own and pulled.
    ///
    /// # Errors
    /// Store errors.
    pub fn delta_count(&self) -> Result<usize, AgentError> {
        let n: i64 = self.conn.query_row(COUNT_DELTAS, [], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Takes deltas the appliance accepted (or already held) off the queue.
    /// The commit is not synced (`synchronous=NORMAL` for it alone): a
    /// power loss that rolls it back leaves those deltas queued, and the
    /// next sync sends them again under the same ids and times, which the
    /// appliance counts as duplicates. Syncing here cost a backlog sync
    /// one log sync per batch.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) fn mark_sent(&mut self, ids: &[String]) -> Result<(), AgentError> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let unqueued = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut del = tx.prepare_cached(UNQUEUE)?;
                for id in ids {
                    del.execute([id])?;
                }
            }
            tx.commit()
        })();
        let restored = self.conn.pragma_update(
            None,
            "synchronous",
            if self.hook { "NORMAL" } else { "FULL" },
        );
        unqueued?;
        restored?;
        Ok(())
    }

    /// Takes a delta the appliance refused for good off the queue, keeping
    /// it and the reason.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) fn refuse(&mut self, id: &str, reason: &str) -> Result<(), AgentError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(UNQUEUE, [id])?;
        tx.execute(REFUSE, [id, reason])?;
        tx.commit()?;
        Ok(())
    }

    /// Stores pulled deltas (those already held are skipped), refolds
    /// their concepts and advances the pull cursor, in one transaction.
    /// Returns how many were new here.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) fn apply_pulled(
        &mut self,
        deltas: &[WireDelta],
        cursor: i64,
    ) -> Result<usize, AgentError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut touched: BTreeMap<&str, Vec<Fact>> = BTreeMap::new();
        let mut new = 0;
        {
            let mut insert = tx.prepare_cached(INSERT_PULLED)?;
            for d in deltas {
                let at = d.at.timestamp_millis();
                if insert.execute(params![d.id, d.concept, d.transition, at, d.grade])? == 1 {
                    // A transition this kernel does not know is folded as
                    // `seen`, as a refold reads it.
                    let transition = Transition::parse(&d.transition).unwrap_or(Transition::Seen);
                    touched
                        .entry(d.concept.as_str())
                        .or_default()
                        .push(fold::fact(&d.id, transition, at, d.grade));
                    new += 1;
                }
            }
        }
        for (concept, facts) in touched {
            fold::fold_in(&tx, concept, facts)?;
        }
        tx.execute(SET_META, [PULL_CURSOR, &cursor.to_string()])?;
        tx.commit()?;
        Ok(new)
    }
}
