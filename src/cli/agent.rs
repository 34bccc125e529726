//! `aiworklab agent …`: the teaching kernel on an engineer's machine. None
//! of these commands reads the appliance's configuration file; the
//! kernel's own directory is found by `agent::home` (or
//! `$AIWORKLAB_AGENT_HOME`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::Failure;
use crate::agent::AgentError;
use crate::agent::checks::{self, due, present};
use crate::agent::harness::Harness;
use crate::agent::home::Home;
use crate::agent::status;
use crate::agent::store::LocalStore;
use crate::agent::store::Via;
use crate::agent::sync::{self, SyncOptions};
use crate::agent::{hook, install};

#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    /// Pair this machine with the org's appliance, using a single-use code.
    Pair {
        /// The appliance's address, e.g. https://skills.example.com (http:// only to this machine).
        #[arg(long)]
        server: String,
        /// The pairing code from your account page or `aiworklab device pairing-code`.
        #[arg(long, env = "AIWORKLAB_PAIRING_CODE", hide_env_values = true)]
        code: String,
        /// A name for this device, shown on your account page. Default: the host name.
        #[arg(long)]
        name: Option<String>,
        /// PEM file of the private CA that signed the appliance's certificate (the system roots are trusted too).
        #[arg(long, value_name = "PEM")]
        ca_file: Option<PathBuf>,
    },
    /// Forget this device's credentials, and revoke it on the appliance when reachable.
    Unpair,
    /// Send queued concept-level facts and fetch those of your other devices.
    Sync,
    /// Your skill graph by domain and state, recall, last sync, queue.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Exactly what the next sync sends, in the wire format.
    Outbox {
        #[arg(long)]
        json: bool,
    },
    /// Check the install and say how to fix each problem.
    Doctor,
    /// Answer one comprehension check in the terminal: the most pressing due concept, or --concept.
    Check {
        /// The concept to be asked about (a slug, as `agent status` lists them); without it, the most pressing due one.
        #[arg(long)]
        concept: Option<String>,
        /// Answer without a prompt: an option's number or letter, or a short answer in your words.
        #[arg(long)]
        answer: Option<String>,
        /// Only the question bank in this binary: no request to the appliance (answers in your own words cannot be graded).
        #[arg(long)]
        offline: bool,
        /// The check and its result as JSON (the question goes to stderr).
        #[arg(long)]
        json: bool,
    },
    /// Hold comprehension checks for a while: 30m, 2h, 1d (at most 30d), or `off`.
    Snooze {
        #[arg(value_name = "LENGTH")]
        length: String,
    },
    /// Show or change the kernel's settings.
    Settings {
        /// Checks offered in any 24 hours (0 to 50; 0 offers none, `agent check --concept` still works).
        #[arg(long)]
        daily_limit: Option<u32>,
    },
    /// MCP server on stdin/stdout for the coding agent (registered by `agent install`): skill_profile, tag_concepts.
    Mcp,
    /// Run by the coding agent on each event (installed by `agent install`): silent, always exits 0.
    #[command(hide = true)]
    Hook {
        /// claude-code, codex or opencode.
        #[arg(long)]
        harness: String,
        /// Codex's `notify` passes its event as the last argument.
        payload: Option<String>,
    },
    /// Started by the hook when none runs: reads the session records the hooks signalled, then exits.
    #[command(hide = true)]
    Ingest,
    /// Add the kernel's hook (and, for Claude Code and Codex, its MCP server) to a coding agent's settings (idempotent; keeps a backup).
    Install {
        #[arg(long, value_parser = ["claude-code", "codex", "opencode"])]
        harness: String,
        /// user: your own settings; project: the current repository's.
        #[arg(long, default_value = "user", value_parser = ["user", "project"])]
        scope: String,
        /// For Codex: hooks.json (Codex 0.124 or later) or, for older releases, notify in config.toml.
        #[arg(long, default_value = "hooks", value_parser = ["hooks", "notify"])]
        codex_mode: String,
    },
    /// Remove what `agent install` added; the rest of the settings stays as it was.
    Uninstall {
        #[arg(long, value_parser = ["claude-code", "codex", "opencode"])]
        harness: String,
        #[arg(long, default_value = "user", value_parser = ["user", "project"])]
        scope: String,
        #[arg(long, default_value = "hooks", value_parser = ["hooks", "notify"])]
        codex_mode: String,
    },
}

fn install_target(
    harness: &str,
    scope: &str,
    codex_mode: &str,
) -> Result<install::Target, Failure> {
    let harness = Harness::parse(harness)
        .ok_or_else(|| Failure::new(format!("unknown harness {harness}"), None))?;
    let scope = install::Scope::parse(scope).unwrap_or(install::Scope::User);
    let mode = if codex_mode == "notify" {
        install::CodexMode::Notify
    } else {
        install::CodexMode::Hooks
    };
    install::Target::from_env(harness, scope, mode).map_err(|e| Failure::new(e.to_string(), None))
}

impl From<AgentError> for Failure {
    fn from(e: AgentError) -> Self {
        let code = match e {
            AgentError::Unreachable { .. } | AgentError::RateLimited { .. } => 75,
            AgentError::Revoked(_) | AgentError::NotPaired => 3,
            _ => 1,
        };
        Self {
            message: e.to_string(),
            fix: None,
            code,
        }
    }
}

fn open(home: &Home) -> Result<LocalStore, Failure> {
    let mut store = LocalStore::open(home)?;
    if let Some(w) = store.take_warning() {
        eprintln!("warning: {w}");
    }
    Ok(store)
}

/// [`open`], then the hooks' pending signals read into the store
/// (waiting for a running ingest worker), so what is shown or sent is
/// up to date. A failure to read them is a warning: the store shows what
/// it holds.
fn open_current(home: &Home) -> Result<LocalStore, Failure> {
    let mut store = open(home)?;
    if let Err(e) = crate::agent::ingest::catch_up(&mut store) {
        eprintln!(
            "warning: the coding agent's latest events could not be read yet ({e}); what follows may lag behind them"
        );
    }
    Ok(store)
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the network runtime: {e}"), None))
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, Failure> {
    serde_json::to_string_pretty(v).map_err(|e| Failure::new(e.to_string(), None))
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "aiworklab agent".into())
}

/// `agent doctor`'s harness checks, for the user's and the current
/// project's settings.
fn hook_checks() -> Vec<status::Check> {
    let bases: Result<Vec<_>, _> = Harness::ALL
        .into_iter()
        .map(|h| install::Target::from_env(h, install::Scope::User, install::CodexMode::Hooks))
        .collect();
    match bases {
        Ok(bases) => status::hook_checks(&bases, status::codex_version),
        Err(e) => vec![status::Check::fail(
            "hooks",
            e.to_string(),
            "run it as the engineer, with HOME set and from a directory that exists",
        )],
    }
}

/// `agent check`: asks one check, reads the answer (from `--answer` or
/// a line of stdin), grades and records it, then syncs.
fn check(
    home: &Home,
    concept: Option<&str>,
    answer: Option<&str>,
    offline: bool,
    as_json: bool,
) -> Result<ExitCode, Failure> {
    let mut store = open_current(home)?;
    let catalogue = store.catalogue()?;
    let builtin = crate::skill::Catalogue::builtin().map_err(|e| Failure::new(e, None))?;
    let bank =
        crate::checks::Bank::builtin(&builtin).map_err(|e| Failure::new(e.to_string(), None))?;
    let cx = checks::Context {
        bank: &bank,
        offline,
        via: Via::Terminal,
    };
    let target = concept.map_or(checks::Target::Due, checks::Target::Asked);
    let rt = runtime()?;
    let asked = match rt.block_on(checks::ask(&mut store, &cx, target, chrono::Utc::now()))? {
        checks::Ask::Asked(a) => a,
        checks::Ask::Nothing(why) => {
            if as_json {
                println!(
                    "{}",
                    json(&serde_json::json!({ "asked": null, "why": why }))?
                );
            } else {
                println!("{why}");
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    let title = catalogue
        .get(&asked.check.concept)
        .map_or(asked.check.concept.clone(), |c| c.title.clone());
    let question = present::question(&asked, &title);
    let raw = match answer {
        Some(a) => {
            if as_json {
                eprintln!("{question}{a}");
            } else {
                println!("{question}{a}");
            }
            a.to_string()
        }
        None => {
            use std::io::Write;
            if as_json {
                eprint!("{question}");
            } else {
                print!("{question}");
                let _ = std::io::stdout().flush();
            }
            read_answer(&asked.check)?
        }
    };
    if raw.trim().is_empty() {
        println!("Skipped: nothing was recorded.");
        return Ok(ExitCode::SUCCESS);
    }
    let reply = checks::parse_reply(&asked.check, &raw)?;
    let done = rt.block_on(checks::answer(
        &mut store,
        &asked.check,
        asked.offer,
        &reply,
        chrono::Utc::now(),
    ))?;
    let synced = if offline {
        Err("offline".to_string())
    } else {
        rt.block_on(sync::sync(&mut store, SyncOptions::default()))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    if as_json {
        let v = serde_json::json!({
            "asked": {
                "id": asked.check.id, "concept": asked.check.concept,
                "source": asked.check.source, "from_bank_because": asked.note,
            },
            "graded": done.graded,
            "recorded": {
                "id": done.recorded.id,
                "transition": done.recorded.transition.as_str(),
                "grade": done.recorded.grade,
            },
            "synced": synced.is_ok(),
        });
        println!("{}", json(&v)?);
    } else {
        print!("{}", present::result(&done));
        match synced {
            Ok(()) => println!("Synced to the appliance."),
            Err(e) => println!("Queued; it goes with the next `aiworklab agent sync` ({e})."),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of stdin, as the answer; end of input reads as a skip.
fn read_answer(check: &checks::ServedCheck) -> Result<String, Failure> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Failure::new(format!("cannot read the answer: {e}"), None))?;
    let _ = check;
    Ok(line)
}

/// Runs one `agent` subcommand.
///
/// # Errors
/// A [`Failure`] naming the problem and its fix.
pub fn run(cmd: AgentCmd) -> Result<ExitCode, Failure> {
    match &cmd {
        AgentCmd::Hook { harness, payload } => {
            hook::main(harness, payload.as_deref());
            return Ok(ExitCode::SUCCESS);
        }
        AgentCmd::Ingest => {
            crate::agent::ingest::main();
            return Ok(ExitCode::SUCCESS);
        }
        AgentCmd::Mcp => {
            // Stdout is the protocol's: nothing else may be printed there.
            let home = Home::locate().map_err(|e| e.to_string());
            runtime()?
                .block_on(crate::agent::mcp::serve(home))
                .map_err(|e| Failure::new(e.to_string(), None))?;
            return Ok(ExitCode::SUCCESS);
        }
        AgentCmd::Install {
            harness,
            scope,
            codex_mode,
        } => {
            let t = install_target(harness, scope, codex_mode)?;
            let reports =
                install::install_all(&t).map_err(|e| Failure::new(e.to_string(), None))?;
            reports.iter().for_each(|r| print!("{r}"));
            return Ok(ExitCode::SUCCESS);
        }
        AgentCmd::Uninstall {
            harness,
            scope,
            codex_mode,
        } => {
            let t = install_target(harness, scope, codex_mode)?;
            let reports =
                install::uninstall_all(&t).map_err(|e| Failure::new(e.to_string(), None))?;
            reports.iter().for_each(|r| print!("{r}"));
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let home = Home::locate()?;
    match cmd {
        AgentCmd::Pair {
            server,
            code,
            name,
            ca_file,
        } => {
            let ca = match &ca_file {
                Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
                    Failure::new(
                        format!("cannot read the CA file {}: {e}", p.display()),
                        Some("give a PEM file you can read with --ca-file".into()),
                    )
                })?),
                None => None,
            };
            let mut store = open(&home)?;
            let name = name.unwrap_or_else(host_name);
            let rt = runtime()?;
            let p = rt.block_on(sync::pair(&mut store, &server, &code, &name, ca.as_deref()))?;
            println!(
                "Paired with {} as device \"{}\" ({}).",
                p.server, p.device_name, p.device_id
            );
            match rt.block_on(sync::sync(&mut store, SyncOptions::default())) {
                Ok(r) => println!(
                    "First sync: {} concepts in the org's catalogue, {} delta(s) sent, {} pulled.",
                    r.concepts, r.accepted, r.pulled
                ),
                Err(e) => eprintln!("warning: paired, but the first sync failed: {e}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        AgentCmd::Unpair => {
            let mut store = open(&home)?;
            let u = runtime()?.block_on(sync::unpair(&mut store))?;
            println!("Forgot this device's credentials for {}.", u.server);
            match u.revoked_on_server {
                Ok(()) => println!("The appliance revoked the device."),
                Err(e) => eprintln!(
                    "warning: the appliance could not be told ({e}); revoke the device on your account page"
                ),
            }
            println!(
                "Your local graph and anything queued stay here; pairing again sends what is queued."
            );
            Ok(ExitCode::SUCCESS)
        }
        AgentCmd::Sync => {
            let mut store = open_current(&home)?;
            let r = runtime()?.block_on(sync::sync(&mut store, SyncOptions::default()))?;
            println!(
                "Sent {} new delta(s) ({} already held), refused {}, pulled {}; {} still queued; {} concepts in the catalogue copy.",
                r.accepted, r.duplicates, r.refused, r.pulled, r.queued, r.concepts
            );
            Ok(ExitCode::SUCCESS)
        }
        AgentCmd::Status { json: as_json } => {
            let store = open_current(&home)?;
            let s = status::status(&store, chrono::Utc::now())?;
            if as_json {
                println!("{}", json(&s)?);
            } else {
                print!("{}", status::render(&s));
            }
            Ok(ExitCode::SUCCESS)
        }
        AgentCmd::Outbox { json: as_json } => {
            let store = open_current(&home)?;
            let batches = status::outbox(&store)?;
            if as_json {
                println!("{}", json(&batches)?);
            } else {
                let n: usize = batches.iter().map(|b| b.deltas.len()).sum();
                println!(
                    "{n} delta(s) queued, sent as {} POST /api/v1/sync/deltas request(s). Every field that leaves this machine:",
                    batches.len()
                );
                for d in batches.iter().flat_map(|b| &b.deltas) {
                    let grade = d.grade.map(|g| format!(" grade {g}")).unwrap_or_default();
                    println!(
                        "  {}  {}  {}  {}{grade}",
                        d.id,
                        d.concept,
                        d.transition,
                        d.at.to_rfc3339()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AgentCmd::Doctor => {
            let opened = LocalStore::open(&home);
            let mut checks = status::store_checks(&home, &opened);
            if let Ok(mut store) = opened {
                checks.push(status::ingest_check(&mut store));
                checks.extend(runtime()?.block_on(status::network_checks(&mut store)));
            }
            checks.extend(hook_checks());
            print!("{}", status::render_checks(&checks));
            Ok(if checks.iter().all(|c| c.ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AgentCmd::Check {
            concept,
            answer,
            offline,
            json: as_json,
        } => check(
            &home,
            concept.as_deref(),
            answer.as_deref(),
            offline,
            as_json,
        ),
        AgentCmd::Snooze { length } => {
            let mut store = open(&home)?;
            let length = present::snooze_length(&length).map_err(|e| Failure::new(e, None))?;
            let until = length.map(|d| chrono::Utc::now() + d);
            store.snooze(until)?;
            match until {
                Some(t) => println!(
                    "No comprehension check is offered until {} (`aiworklab agent snooze off` ends it sooner).",
                    t.to_rfc3339()
                ),
                None => println!("Snooze off: due checks may be offered again."),
            }
            Ok(ExitCode::SUCCESS)
        }
        AgentCmd::Settings { daily_limit } => {
            let mut store = open(&home)?;
            if let Some(n) = daily_limit {
                if n > due::MAX_DAILY_LIMIT {
                    return Err(Failure::new(
                        format!(
                            "--daily-limit {n} is more than {}: checks are meant to be few; give 0 to {}",
                            due::MAX_DAILY_LIMIT,
                            due::MAX_DAILY_LIMIT
                        ),
                        None,
                    ));
                }
                store.set_daily_limit(n)?;
            }
            let s = store.check_settings()?;
            println!("Store: {}", store.path().display());
            println!(
                "Daily limit: {} comprehension check(s) offered in any 24 hours{}.",
                s.daily_limit,
                if daily_limit.is_some() { " (set)" } else { "" }
            );
            match s.snoozed_until.filter(|t| *t > chrono::Utc::now()) {
                Some(t) => println!("Snoozed until {}.", t.to_rfc3339()),
                None => println!("Not snoozed."),
            }
            Ok(ExitCode::SUCCESS)
        }
        // Handled above, before the kernel's directory is needed.
        AgentCmd::Hook { .. }
        | AgentCmd::Ingest
        | AgentCmd::Mcp
        | AgentCmd::Install { .. }
        | AgentCmd::Uninstall { .. } => Ok(ExitCode::SUCCESS),
    }
}
