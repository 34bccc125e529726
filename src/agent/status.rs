//! What the engineer sees: `agent status` (the graph by domain and state,
//! recall, last sync, what is queued), `agent outbox` (exactly what the
//! next sync sends, in the wire format) and `agent doctor` (the install
//! checked: the store, the pairing, the appliance, the token and each
//! harness's hook, each problem with its fix).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::checks::{self, due::Plan, due::Why};
use super::error::AgentError;
use super::harness::Harness;
use super::home::Home;
use super::install::{self, CodexMode, inspect};
use super::store::{KeyLocation, LocalStore, OrgConcept, WireBatch};
use super::sync::{self, MAX_BATCH, Pairing, keys};

/// One concept's state as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConceptLine {
    pub concept: String,
    pub title: String,
    pub domain: String,
    /// unseen, seen, explained, demonstrated, retained or decaying.
    pub state: &'static str,
    /// Predicted recall now, once a check was graded.
    pub recall: Option<f64>,
    pub last_activity: Option<DateTime<Utc>>,
}

/// The engineer's view of this install.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub pairing: Option<Pairing>,
    pub last_sync: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Deltas waiting to be sent.
    pub queued: usize,
    /// Deltas the appliance refused for good.
    pub refused: usize,
    /// Deltas held, own and pulled.
    pub deltas: usize,
    /// Per domain, how many concepts are in each state.
    pub domains: BTreeMap<String, BTreeMap<&'static str, usize>>,
    /// Mean predicted recall over the concepts with a graded check.
    pub mean_recall: Option<f64>,
    pub concepts: Vec<ConceptLine>,
    /// The org's own concepts this kernel tags with, with their matchers
    /// (from the catalogue copy of the last sync).
    pub org_concepts: Vec<OrgConcept>,
    /// Comprehension checks: what is due, and whether one may be asked.
    pub checks: Plan,
}

fn millis(v: Option<String>) -> Option<DateTime<Utc>> {
    v.and_then(|v| v.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis)
}

/// The status at `now`.
///
/// # Errors
/// Store errors.
pub fn status(store: &LocalStore, now: DateTime<Utc>) -> Result<Status, AgentError> {
    let catalogue = store.catalogue()?;
    let mut domains: BTreeMap<String, BTreeMap<&'static str, usize>> = BTreeMap::new();
    let mut concepts = Vec::new();
    for row in store.states()? {
        let (title, domain) = catalogue.get(&row.concept).map_or_else(
            || (row.concept.clone(), "(not in the catalogue)".to_string()),
            |c| (c.title.clone(), c.domain.clone()),
        );
        let state = row.state.label(now);
        *domains
            .entry(domain.clone())
            .or_default()
            .entry(state)
            .or_default() += 1;
        concepts.push(ConceptLine {
            concept: row.concept,
            title,
            domain,
            state,
            recall: row.state.recall(now),
            last_activity: row.state.last_activity,
        });
    }
    let recalls: Vec<f64> = concepts.iter().filter_map(|c| c.recall).collect();
    let mean_recall =
        (!recalls.is_empty()).then(|| recalls.iter().sum::<f64>() / recalls.len() as f64);
    Ok(Status {
        pairing: sync::pairing(store)?,
        last_sync: millis(store.meta(keys::LAST_SYNC)?),
        last_error: store.meta(keys::LAST_ERROR)?,
        queued: store.outbox_len()?,
        refused: store.refused_len()?,
        deltas: store.delta_count()?,
        domains,
        mean_recall,
        concepts,
        org_concepts: store.org_concepts()?,
        checks: checks::plan(store, now)?,
    })
}

/// The status as text.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    match &s.pairing {
        None => out.push_str("Not paired: run `aiworklab agent pair --server URL --code CODE`.\n"),
        Some(p) => {
            out.push_str(&format!(
                "Paired with {} as device \"{}\" ({}).\n",
                p.server, p.device_name, p.device_id
            ));
            if let Some(r) = &p.revoked {
                out.push_str(&format!("REVOKED: {r}. Pair again to sync.\n"));
            }
        }
    }
    out.push_str(&match s.last_sync {
        Some(t) => format!("Last sync: {}.\n", t.to_rfc3339()),
        None => "Last sync: never.\n".to_string(),
    });
    if let Some(e) = &s.last_error {
        out.push_str(&format!("Last sync failed: {e}\n"));
    }
    out.push_str(&format!(
        "Queued to send: {} delta(s) (see `aiworklab agent outbox`); held: {}; refused by the appliance: {}.\n",
        s.queued, s.deltas, s.refused
    ));
    if let Some(r) = s.mean_recall {
        out.push_str(&format!("Mean predicted recall: {:.0}%.\n", r * 100.0));
    }
    if s.domains.is_empty() {
        out.push_str("No concepts yet.\n");
    }
    for (domain, states) in &s.domains {
        let parts: Vec<String> = states.iter().map(|(k, v)| format!("{v} {k}")).collect();
        out.push_str(&format!("\n{domain}: {}\n", parts.join(", ")));
        for c in s.concepts.iter().filter(|c| &c.domain == domain) {
            let recall = c
                .recall
                .map(|r| format!("  recall {:.0}%", r * 100.0))
                .unwrap_or_default();
            out.push_str(&format!("  {:<40} {}{recall}\n", c.concept, c.state));
        }
    }
    render_checks_due(&s.checks, &mut out);
    render_org_concepts(&s.org_concepts, &mut out);
    out
}

/// What is due for a check, and whether one may be asked now.
fn render_checks_due(p: &Plan, out: &mut String) {
    out.push_str(&format!(
        "\nComprehension checks: {} offered in the last 24 hours (limit {}).\n",
        p.offered_today, p.daily_limit
    ));
    if p.due.is_empty() {
        out.push_str("  Nothing is due.\n");
    }
    for d in &p.due {
        let why = match &d.why {
            Why::Review { recall, .. } => {
                format!("review due, recall {:.0}%", recall * 100.0)
            }
            Why::WorthAsking { met } => format!("met {met} times, never checked"),
        };
        out.push_str(&format!("  {:<40} {why}\n", d.concept));
    }
    match &p.hold {
        Some(h) => out.push_str(&format!("  No check now: {h}.\n")),
        None if !p.due.is_empty() => {
            out.push_str("  `aiworklab agent check` asks the first one.\n")
        }
        None => {}
    }
}

/// The org's own concepts and exactly what the kernel looks for: an
/// engineer sees every keyword their kernel tags with.
fn render_org_concepts(concepts: &[OrgConcept], out: &mut String) {
    if concepts.is_empty() {
        out.push_str(
            "\nYour org has no concepts of its own; the kernel tags only the shipped catalogue.\n",
        );
        return;
    }
    out.push_str(&format!(
        "\nYour org's own concepts ({}), tagged by this kernel like the shipped ones; every engineer of the org sees this list:\n",
        concepts.len()
    ));
    for c in concepts {
        out.push_str(&format!("  {:<40} {} ({})\n", c.slug, c.title, c.domain));
        let m = &c.matchers;
        for (what, list) in [
            ("keywords", &m.keywords),
            ("imports", &m.imports),
            ("APIs", &m.apis),
            ("file extensions", &m.extensions),
        ] {
            if !list.is_empty() {
                out.push_str(&format!("    {what}: {}\n", list.join(", ")));
            }
        }
    }
}

/// Everything queued, in the batches the next sync sends, each exactly the
/// body of `POST /api/v1/sync/deltas`.
///
/// # Errors
/// Store errors.
pub fn outbox(store: &LocalStore) -> Result<Vec<WireBatch>, AgentError> {
    let all = store.outbox(usize::MAX)?;
    Ok(all
        .chunks(MAX_BATCH)
        .map(|c| WireBatch { deltas: c.to_vec() })
        .collect())
}

/// One check of `agent doctor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What to do when it failed.
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(name: &str, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The store's checks, and whether the store opened (the network checks
/// need it).
pub fn store_checks(home: &Home, opened: &Result<LocalStore, AgentError>) -> Vec<Check> {
    let mut checks = Vec::new();
    match opened {
        Ok(s) => {
            checks.push(Check::pass(
                "store",
                format!("{} opens", s.path().display()),
            ));
            checks.push(match s.key_location() {
                KeyLocation::Keychain => Check::pass("key", "in the OS keychain"),
                KeyLocation::File(p) => Check::pass(
                    "key",
                    format!("in {} (mode 0600; no usable OS keychain)", p.display()),
                ),
            });
        }
        Err(e) => checks.push(Check::fail(
            "store",
            format!("{} does not open: {e}", home.store_path().display()),
            "follow the message above; `aiworklab agent doctor` again afterwards",
        )),
    }
    checks
}

/// Reads the signals the hooks left (`agent::ingest::catch_up`) and says
/// whether that worked: a failure here is why the ingest worker fails.
pub fn ingest_check(store: &mut LocalStore) -> Check {
    match crate::agent::ingest::catch_up(store) {
        Ok(d) if d.signals == 0 && d.dropped == 0 => {
            Check::pass("ingest", "no signal of the hooks waiting")
        }
        Ok(d) => Check::pass(
            "ingest",
            format!(
                "read {} signal(s) the hooks left ({} dropped: sealed to another store's key)",
                d.signals, d.dropped
            ),
        ),
        Err(e) => Check::fail(
            "ingest",
            format!("the hooks' signals cannot be read: {e}"),
            "see the `ingest:` lines in kernel.log; `aiworklab agent status` reads them again",
        ),
    }
}

/// The pairing and network checks: paired, appliance reachable, token valid.
pub async fn network_checks(store: &mut LocalStore) -> Vec<Check> {
    let mut checks = Vec::new();
    let p = match sync::pairing(store) {
        Ok(Some(p)) => p,
        Ok(None) => {
            checks.push(Check::fail(
                "paired",
                "not paired with an appliance",
                "aiworklab agent pair --server URL --code CODE (a code from your account page)",
            ));
            return checks;
        }
        Err(e) => {
            checks.push(Check::fail("paired", e.to_string(), "see the message"));
            return checks;
        }
    };
    if let Some(r) = &p.revoked {
        checks.push(Check::fail(
            "paired",
            r.clone(),
            "aiworklab agent unpair, then aiworklab agent pair --server URL --code CODE",
        ));
        return checks;
    }
    checks.push(Check::pass(
        "paired",
        format!("device \"{}\" with {}", p.device_name, p.server),
    ));
    let reachable = match super::client::Server::new(
        &p.server,
        store.meta(keys::CA_PEM).ok().flatten().as_deref(),
    ) {
        Ok(server) => server.health().await.map_err(|e| match e {
            super::client::ApiError::Agent(a) => a.to_string(),
            other => format!("{other:?}"),
        }),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = reachable {
        checks.push(Check::fail(
            "server",
            e,
            "check the network, VPN or proxy, and that the appliance runs; a private CA was given at pairing with --ca-file",
        ));
        return checks;
    }
    checks.push(Check::pass("server", format!("{} answers", p.server)));
    let token = match sync::Session::start(store).await {
        Ok(mut s) => s.check().await,
        Err(e) => Err(e),
    };
    checks.push(match token {
        Ok(()) => Check::pass("token", "the device's token is accepted"),
        Err(e) => Check::fail(
            "token",
            e.to_string(),
            "aiworklab agent unpair, then pair again with a new code",
        ),
    });
    checks
}

/// The checks as text, each failure with its fix.
pub fn render_checks(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!(
            "[{}] {}: {}\n",
            if c.ok { " ok " } else { "FAIL" },
            c.name,
            c.detail
        ));
        if let Some(f) = &c.fix {
            out.push_str(&format!("       fix: {f}\n"));
        }
    }
    out
}

/// The first Codex release with hooks (`hooks.json`); older ones only
/// run a `notify` program.
pub const CODEX_HOOKS_SINCE: (u64, u64) = (0, 124);

/// The harness checks: for each harness in `bases` (one target per
/// harness, from the environment), whether the kernel's hook is
/// installed for the user and in the current project, whether it runs a
/// binary that exists, and what install would still add. `codex_version`
/// says what `codex --version` prints when `codex` is on PATH (asked only
/// when the kernel is installed for Codex): a Codex without hooks with the
/// kernel in `hooks.json` is a failure. A harness without the hook is not,
/// unless none has it.
pub fn hook_checks(
    bases: &[install::Target],
    codex_version: impl FnOnce() -> Option<String>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut any = false;
    let mut codex_version = Some(codex_version);
    for base in bases {
        let h = base.harness;
        let name = format!("hook {h}");
        let mut found = Vec::new();
        let mut files = Vec::new();
        let mut unreadable = false;
        for t in inspect::targets(base) {
            // Run from the home directory, the project's settings are the user's.
            if files.contains(&t.file()) {
                continue;
            }
            files.push(t.file());
            match inspect::inspect(&t) {
                Ok(Some(i)) => found.push(i),
                Ok(None) => {}
                Err(e) => {
                    unreadable = true;
                    checks.push(Check::fail(
                        &name,
                        e.to_string(),
                        format!(
                            "fix the file, or move it away and run `aiworklab agent install --harness {h}`"
                        ),
                    ));
                }
            }
        }
        any |= !found.is_empty() || unreadable;
        if found.is_empty() && !unreadable {
            checks.push(Check::pass(
                &name,
                format!("not installed (`aiworklab agent install --harness {h}` adds it)"),
            ));
        }
        for i in &found {
            checks.push(installed_check(&name, i));
        }
        if h == Harness::Codex && !found.is_empty() {
            let hooks = found.iter().any(|i| i.codex_mode == CodexMode::Hooks);
            let version = codex_version.take().and_then(|f| f());
            checks.push(codex_check(version.as_deref(), hooks));
        }
    }
    if !any && !bases.is_empty() {
        checks.push(Check::fail(
            "hooks",
            "no coding agent runs the kernel's hook, so nothing is recorded",
            "aiworklab agent install --harness claude-code (or codex, opencode)",
        ));
    }
    checks
}

fn installed_check(name: &str, i: &inspect::Installed) -> Check {
    let scope = match i.scope {
        install::Scope::User => "user",
        install::Scope::Project => "project",
    };
    let mut problems: Vec<String> = i
        .bins
        .iter()
        .filter(|b| !inspect::runnable(b))
        .map(|b| {
            format!(
                "it runs {}, which does not exist or is not executable",
                b.display()
            )
        })
        .collect();
    if i.bins.is_empty() {
        problems.push("its command names no binary".into());
    }
    problems.extend(i.incomplete.iter().cloned());
    let bins: Vec<String> = i.bins.iter().map(|b| b.display().to_string()).collect();
    if problems.is_empty() {
        Check::pass(
            name,
            format!("{} ({scope}) runs {}", i.file.display(), bins.join(", ")),
        )
    } else {
        Check::fail(
            name,
            format!("{} ({scope}): {}", i.file.display(), problems.join("; ")),
            i.reinstall(),
        )
    }
}

/// `major.minor` of the first version number in `codex --version`'s
/// output (`codex-cli 0.128.0`).
pub fn codex_release(output: &str) -> Option<(u64, u64)> {
    output.split_whitespace().find_map(|w| {
        let mut parts = w.trim_start_matches('v').split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    })
}

fn codex_check(codex: Option<&str>, hooks_installed: bool) -> Check {
    let Some(out) = codex else {
        return Check::pass(
            "codex version",
            "`codex` is not on PATH; its version was not checked",
        );
    };
    let shown = out.trim();
    match codex_release(out) {
        Some(v) if v < CODEX_HOOKS_SINCE && hooks_installed => Check::fail(
            "codex version",
            format!(
                "{shown} has no hooks (they came in 0.124), so the kernel's hooks.json is never run"
            ),
            "update Codex, or: aiworklab agent uninstall --harness codex, then \
             aiworklab agent install --harness codex --codex-mode notify",
        ),
        Some(_) => Check::pass("codex version", shown.to_string()),
        None => Check::pass(
            "codex version",
            format!("`codex --version` said \"{shown}\"; its version was not checked"),
        ),
    }
}

/// What `codex --version` prints, when `codex` is on PATH (`None` when it
/// is not). A Codex that does not answer within 5 s reads as unknown.
pub fn codex_version() -> Option<String> {
    let path = std::env::var_os("PATH")?;
    let bin = std::env::split_paths(&path)
        .map(|d| d.join("codex"))
        .find(|p| inspect::runnable(p))?;
    let mut child = std::process::Command::new(&bin)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Some(format!("{} did not answer", bin.display()));
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_releases_are_read_and_compared_by_number() {
        assert_eq!(codex_release("codex-cli 0.128.0"), Some((0, 128)));
        assert_eq!(codex_release("codex-cli v0.99.1\n"), Some((0, 99)));
        assert_eq!(codex_release("codex (unknown)"), None);
        // 0.99 is older than 0.124: numbers, not text.
        assert!(codex_release("codex-cli 0.99.0").expect("v") < CODEX_HOOKS_SINCE);
        assert!(codex_check(Some("codex-cli 0.99.0"), true).fix.is_some());
        assert!(
            codex_check(Some("codex-cli 0.99.0"), false).ok,
            "notify mode"
        );
        assert!(codex_check(Some("codex-cli 0.124.0"), true).ok);
        assert!(codex_check(None, true).ok, "not on PATH: not checked");
    }
}
