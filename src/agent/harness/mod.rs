//! Harness adapters: what a coding agent's hook payload says, and what
//! its own session record holds since the kernel last read it. Each
//! adapter turns both into steps (code written, a command run, an
//! explanation said, a turn ended), and `fold` turns steps into
//! observations with the tagger. Pure functions over bytes and files;
//! the hook entry (`agent::hook`) stores what they return.
//!
//! Session records are read incrementally from a cursor (a byte offset
//! for JSONL files, a row position for OpenCode's database), so a missed
//! hook loses nothing: the next one reads what it missed. A partial last
//! line is left for the next read. An assistant's text becomes
//! `explained` only once it is known to end its turn (a later prompt, a
//! turn-end record, or a Stop event); until then the cursor stays before
//! it so it is read again.

pub mod claude;
pub mod codex;
pub mod opencode;
mod patch;

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::agent::observe::Observation;
use crate::agent::tag::Tag;
use crate::skill::delta::Transition;

/// The coding agents the kernel listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Harness {
    #[serde(rename = "claude-code")]
    ClaudeCode,
    #[serde(rename = "codex")]
    Codex,
    #[serde(rename = "opencode")]
    OpenCode,
}

impl Harness {
    pub const ALL: [Harness; 3] = [Self::ClaudeCode, Self::Codex, Self::OpenCode];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClaudeCode => "claude-code",
            Self::Codex => "codex",
            Self::OpenCode => "opencode",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.as_str() == s)
    }
}

impl std::fmt::Display for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the harnesses keep their files (from the environment, or set by
/// tests).
#[derive(Debug, Clone, Default)]
pub struct Places {
    /// `$CODEX_HOME`, else `~/.codex`.
    pub codex_home: Option<PathBuf>,
    /// OpenCode's database: `$OPENCODE_SQLITE_DB`, else
    /// `$XDG_DATA_HOME/opencode/opencode.db`, else
    /// `~/.local/share/opencode/opencode.db`.
    pub opencode_db: Option<PathBuf>,
}

impl Places {
    pub fn from_env() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let codex_home = std::env::var_os("CODEX_HOME")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".codex")));
        let opencode_db = std::env::var_os("OPENCODE_SQLITE_DB")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_DATA_HOME")
                    .map(PathBuf::from)
                    .or_else(|| home.as_ref().map(|h| h.join(".local/share")))
                    .map(|d| d.join("opencode/opencode.db"))
            });
        Self {
            codex_home,
            opencode_db,
        }
    }
}

/// Observations to store under one cursor, in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Names the record read (harness and a hash of its path: never the
    /// path itself).
    pub source: String,
    pub cursor: String,
    pub observations: Vec<Observation>,
}

/// What one hook event amounts to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub batches: Vec<Batch>,
    /// The turn or session ended: time to sync.
    pub turn_ended: bool,
    /// Whether the agent is working in the event's session (no check
    /// interrupts a running turn: `checks::turn`).
    pub turn: crate::agent::checks::turn::Signal,
}

/// A session record to read from its stored cursor: what an event
/// signals (`agent::ingest` keeps it, sealed, until the ingest worker or
/// a command that shows the graph has read it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub harness: Harness,
    /// The record: a transcript or rollout file, OpenCode's database.
    pub path: PathBuf,
    /// The record is complete for now (a turn ended): trailing text is a
    /// final answer.
    pub last: bool,
    /// How long a JSONL record was when the event came: it is read up to
    /// there, as the hook would have read it then (`None`: all of it).
    pub upto: Option<u64>,
    /// When the event came (the time of lines that carry none).
    pub at: DateTime<Utc>,
}

impl Record {
    /// The record's source name (its cursor's key).
    pub fn source(&self) -> String {
        source_for(self.harness, &self.path)
    }

    /// Reads the record from `cursor` and tags what is new. `None` when
    /// the record cannot be read (gone, or not the harness's).
    pub(crate) fn ingest(&self, tagger: &mut dyn Tag, cursor: Option<&str>) -> Option<Batch> {
        let parse: LineParser = match self.harness {
            Harness::ClaudeCode => claude::transcript_line,
            Harness::Codex => codex::rollout_line,
            Harness::OpenCode => {
                return opencode::ingest(tagger, &self.path, &self.source(), cursor).ok();
            }
        };
        ingest_jsonl(
            self.harness,
            tagger,
            &self.path,
            cursor,
            self.last,
            self.upto,
            self.at,
            parse,
        )
    }
}

/// What one hook event asks for, before anything is read or tagged:
/// the record to read, else the payload's own steps, and what the hook
/// must do at once (the turn stamp, a sync at a turn's end).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub harness: Harness,
    pub read: Option<Record>,
    /// The payload's own steps, when it names no record that exists.
    pub(crate) payload: Vec<Step>,
    /// The turn or session ended: time to sync.
    pub turn_ended: bool,
    /// Whether the agent is working in the event's session.
    pub turn: crate::agent::checks::turn::Signal,
}

impl Plan {
    /// Nothing to do (malformed input, an unknown event).
    pub(crate) fn none(harness: Harness) -> Plan {
        Plan {
            harness,
            read: None,
            payload: Vec::new(),
            turn_ended: false,
            turn: crate::agent::checks::turn::Signal::None,
        }
    }

    /// Whether the payload itself is to be tagged (it names no record).
    pub fn has_payload(&self) -> bool {
        !self.payload.is_empty()
    }

    /// Carries the plan out: reads the record from its stored cursor
    /// (`cursor` looks it up), or folds the payload's own steps at `now`.
    pub(crate) fn carry_out(
        self,
        tagger: &mut dyn Tag,
        cursor: &dyn Fn(&str) -> Option<String>,
        now: DateTime<Utc>,
    ) -> Outcome {
        let mut outcome = Outcome {
            batches: Vec::new(),
            turn_ended: self.turn_ended,
            turn: self.turn,
        };
        if let Some(read) = &self.read {
            let stored = cursor(&read.source());
            outcome
                .batches
                .extend(read.ingest(tagger, stored.as_deref()));
        } else if let Some(batch) = payload_batch(tagger, self.harness, self.payload, now) {
            outcome.batches.push(batch);
        }
        outcome
    }
}

/// The plan of one event of `harness`: its payload on stdin, or Codex's
/// `notify` argument.
pub fn plan(
    harness: Harness,
    places: &Places,
    payload: &[u8],
    notify_arg: Option<&str>,
    now: DateTime<Utc>,
) -> Plan {
    match harness {
        Harness::ClaudeCode => claude::plan(payload, now),
        Harness::Codex => codex::plan(places, payload, notify_arg, now),
        Harness::OpenCode => opencode::plan(places, payload, now),
    }
}

/// The length of a record that is a file, else `None`.
pub(crate) fn record_len(path: &Path) -> Option<u64> {
    std::fs::metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
}

/// The turn signal of an event: `running` or `ended` in the session
/// `session_id` names (with the harness, so two harnesses' ids never
/// meet); nothing without a session id.
pub(crate) fn turn_signal(
    harness: Harness,
    session_id: Option<&str>,
    running: bool,
    ended: bool,
) -> crate::agent::checks::turn::Signal {
    use crate::agent::checks::turn::Signal;
    let Some(id) = session_id.filter(|s| !s.is_empty()) else {
        return Signal::None;
    };
    let key = format!("{harness}:{id}");
    if ended {
        Signal::Ended(key)
    } else if running {
        Signal::Running(key)
    } else {
        Signal::None
    }
}

/// One thing that happened in a session.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// The agent wrote or edited a file: its path and the new text.
    Wrote { path: String, text: String },
    /// The agent ran a shell command.
    Ran(String),
    /// The agent said something to the engineer.
    Said(String),
    /// Any other tool call (the text before it was not a final answer).
    Tool,
    /// The engineer prompted: the turn before it ended.
    Prompt,
    /// The record says the turn ended.
    TurnEnd,
}

/// A step, when it happened, and the record offsets of its line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    pub step: Step,
    pub at: DateTime<Utc>,
    pub start: u64,
}

/// The most text of one step the tagger reads (a generated file or a
/// long answer beyond it adds latency to the hook, not evidence).
const MAX_STEP_TEXT: usize = 1024 * 1024;

fn capped(text: &str) -> &str {
    if text.len() <= MAX_STEP_TEXT {
        return text;
    }
    let mut end = MAX_STEP_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The batch of a hook event that names no session record: its own steps,
/// all at `now`, under the harness's `hook` source.
pub(crate) fn payload_batch(
    tagger: &mut dyn Tag,
    harness: Harness,
    steps: Vec<Step>,
    now: DateTime<Utc>,
) -> Option<Batch> {
    if steps.is_empty() {
        return None;
    }
    let items = steps
        .into_iter()
        .map(|step| Item {
            step,
            at: now,
            start: 0,
        })
        .collect();
    let (observations, _) = fold(tagger, items, 0, true);
    Some(Batch {
        source: format!("{harness}:hook"),
        cursor: now.to_rfc3339(),
        observations,
    })
}

/// Turns steps into observations. `consumed` is how far the record was
/// read; `last` says whether the record is complete for now (a Stop
/// event), so trailing text is a final answer. Returns the observations
/// (one per concept and transition, at its first time) and the cursor.
pub(crate) fn fold(
    tagger: &mut dyn Tag,
    items: Vec<Item>,
    consumed: u64,
    last: bool,
) -> (Vec<Observation>, u64) {
    let mut first: BTreeMap<(String, Transition), DateTime<Utc>> = BTreeMap::new();
    let mut note = |concepts: crate::agent::tag::Concepts, t: Transition, at: DateTime<Utc>| {
        for c in concepts {
            let e = first.entry((c, t)).or_insert(at);
            if at < *e {
                *e = at;
            }
        }
    };
    let mut pending: Option<(String, DateTime<Utc>, u64)> = None;
    for item in items {
        match item.step {
            Step::Wrote { path, text } => {
                pending = None;
                note(
                    tagger.tag_file(&path, capped(&text)),
                    Transition::Seen,
                    item.at,
                );
            }
            Step::Ran(cmd) => {
                pending = None;
                note(tagger.tag_command(capped(&cmd)), Transition::Seen, item.at);
            }
            Step::Tool => pending = None,
            Step::Said(text) => match &mut pending {
                Some((t, _, _)) => {
                    t.push('\n');
                    t.push_str(&text);
                }
                None => pending = Some((text, item.at, item.start)),
            },
            Step::Prompt | Step::TurnEnd => {
                if let Some((text, at, _)) = pending.take() {
                    note(tagger.tag_prose(capped(&text)), Transition::Explained, at);
                }
            }
        }
    }
    let mut cursor = consumed;
    if let Some((text, at, start)) = pending {
        if last {
            note(tagger.tag_prose(capped(&text)), Transition::Explained, at);
        } else {
            cursor = start;
        }
    }
    let observations = first
        .into_iter()
        .map(|((concept, transition), at)| Observation {
            concept,
            transition,
            at,
        })
        .collect();
    (observations, cursor)
}

/// The complete lines of a JSONL file from `offset`, each with its start
/// offset, and the offset after the last complete line. A file shorter
/// than the offset was replaced: it is read from the start. With `upto`,
/// no further than that many bytes of the file (how long it was when a
/// hook signalled it), so a read made later reads what a read made then
/// would have.
///
/// # Errors
/// The file cannot be opened or read.
pub(crate) fn read_lines(
    path: &Path,
    offset: u64,
    upto: Option<u64>,
) -> std::io::Result<(Vec<(u64, String)>, u64)> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let offset = if offset > len { 0 } else { offset };
    let end = upto.map_or(len, |u| u.min(len));
    if offset >= end {
        return Ok((Vec::new(), offset));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.take(end - offset).read_to_end(&mut buf)?;
    let mut lines = Vec::new();
    let mut pos = 0usize;
    while let Some(nl) = buf[pos..].iter().position(|b| *b == b'\n') {
        let line = String::from_utf8_lossy(&buf[pos..pos + nl]).into_owned();
        lines.push((offset + pos as u64, line));
        pos += nl + 1;
    }
    Ok((lines, offset + pos as u64))
}

/// A record's source name: the harness and the first 16 hex digits of
/// the SHA-256 of its path, so the store never holds a path.
pub(crate) fn source_for(harness: Harness, path: &Path) -> String {
    let digest = Sha256::digest(path.to_string_lossy().as_bytes());
    format!("{harness}:{}", &hex::encode(digest)[..16])
}

/// A stored cursor as a byte offset (anything else reads from the start).
pub(crate) fn offset(cursor: Option<&str>) -> u64 {
    cursor.and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// An RFC 3339 time, else `fallback`.
pub(crate) fn time_or(value: Option<&serde_json::Value>, fallback: DateTime<Utc>) -> DateTime<Utc> {
    value
        .and_then(|v| v.as_str())
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or(fallback, |t| t.with_timezone(&Utc))
}

/// Turns one line of a record into steps, each with its time.
pub(crate) type LineParser = fn(&serde_json::Value, DateTime<Utc>) -> Vec<(Step, DateTime<Utc>)>;

/// Ingests one JSONL record with `parse` turning a line into steps, up
/// to `upto` bytes of it when given.
#[allow(clippy::too_many_arguments)]
pub(crate) fn ingest_jsonl(
    harness: Harness,
    tagger: &mut dyn Tag,
    path: &Path,
    cursor: Option<&str>,
    last: bool,
    upto: Option<u64>,
    now: DateTime<Utc>,
    parse: LineParser,
) -> Option<Batch> {
    let (lines, consumed) = read_lines(path, offset(cursor), upto).ok()?;
    let mut items = Vec::new();
    for (start, line) in lines {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        for (step, at) in parse(&value, now) {
            items.push(Item { step, at, start });
        }
    }
    let (observations, cursor) = fold(tagger, items, consumed, last);
    Some(Batch {
        source: source_for(harness, path),
        cursor: cursor.to_string(),
        observations,
    })
}

/// A string field of a JSON object.
pub(crate) fn text<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(serde_json::Value::as_str)
}

#[cfg(test)]
mod tests;
