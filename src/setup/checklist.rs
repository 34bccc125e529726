//! The setup checklist: for one org, each thing a working installation
//! needs (identity provider, a test sign-in, SCIM, backups, privacy, TLS),
//! whether it is done, what state it is in, and the exact configuration key
//! or command that does it. The admin page and `aiworklab config check`
//! both render [`items`], so they cannot disagree. Configuration stays in
//! the TOML file and the environment; the checklist only reads it.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::from_millis;
use crate::config::{OrgSettings, Provisioning, Settings};
use crate::store::setup as sql;
use crate::store::{OrgDb, StoreError};
use crate::tokens::{self, TokenKind};

/// Whether an item is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Done,
    Todo,
    /// Not needed with this configuration (SCIM for a `jit` org).
    Optional,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Todo => "to do",
            Self::Optional => "optional",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Stable id (`idp`, `test_sign_in`, `scim`, `backups`, `privacy`, `transport`).
    pub id: &'static str,
    pub title: &'static str,
    pub status: Status,
    /// What is the case now.
    pub state: String,
    /// The key to set or the command to run; `None` when nothing is left.
    pub fix: Option<String>,
}

/// The outcome of the last test sign-in, as its audit row records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOutcome {
    /// `would_sign_in`, `would_be_refused` or `failed`.
    pub verdict: String,
    /// Why, in a few words.
    pub reason: String,
}

/// The last restore drill on this machine, as `aiworklab drill` records it
/// beside the archives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillRecord {
    pub at: DateTime<Utc>,
    pub archive: String,
    pub passed: bool,
}

/// The file `aiworklab drill` writes in the backup directory.
pub const DRILL_FILE: &str = "last-drill.json";

/// What the store and the backup directory say (the configuration says the rest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub scim_tokens_live: usize,
    pub scim_last_request: Option<DateTime<Utc>>,
    pub last_backup: Option<DateTime<Utc>>,
    pub last_drill: Option<DrillRecord>,
    pub last_test: Option<(DateTime<Utc>, TestOutcome)>,
}

/// Gathers the facts of one org.
///
/// # Errors
/// Store errors. An unreadable backup directory or drill record counts as
/// none (the item then says so).
pub fn facts(settings: &Settings, org: &OrgDb, now: DateTime<Utc>) -> Result<Facts, StoreError> {
    let held = tokens::list(org).map_err(|e| match e {
        tokens::TokenError::Store(s) => s,
        other => StoreError::Io {
            path: "api_tokens".into(),
            source: std::io::Error::other(other.to_string()),
        },
    })?;
    let scim: Vec<_> = held.iter().filter(|t| t.kind == TokenKind::Scim).collect();
    let last_test = org
        .db
        .read(|c| sql::last_test(c).map_err(StoreError::from))?
        .and_then(|(at, details)| {
            serde_json::from_str::<TestOutcome>(&details)
                .ok()
                .map(|o| (from_millis(at), o))
        });
    Ok(Facts {
        scim_tokens_live: scim.iter().filter(|t| t.is_live(now)).count(),
        scim_last_request: scim.iter().filter_map(|t| t.last_used_at).max(),
        last_backup: crate::backup::list(&settings.backup.dir)
            .ok()
            .and_then(|l| {
                l.into_iter()
                    .filter(|a| a.org.is_none())
                    .map(|a| a.created_at)
                    .max()
            }),
        last_drill: read_drill(&settings.backup.dir),
        last_test,
    })
}

/// The last drill recorded in `backup_dir`, if any.
pub fn read_drill(backup_dir: &Path) -> Option<DrillRecord> {
    let text = std::fs::read_to_string(backup_dir.join(DRILL_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Records a drill's outcome in `backup_dir` (mode 0600, replaced atomically).
///
/// # Errors
/// I/O errors.
pub fn record_drill(backup_dir: &Path, record: &DrillRecord) -> std::io::Result<()> {
    let json = serde_json::to_string(record).map_err(std::io::Error::other)?;
    crate::fsperm::replace_private_file(&backup_dir.join(DRILL_FILE), json.as_bytes())
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The redirect URI to register at the org's identity provider.
pub fn redirect_uri(settings: &Settings, org: &OrgSettings) -> String {
    let base = settings.server.public_url.as_str().trim_end_matches('/');
    format!("{base}/o/{}/oidc/callback", org.slug)
}

/// The checklist of `org`. `facts` is `None` where only the configuration
/// is known (`config check` before the first start); those items then say
/// so instead of guessing.
pub fn items(settings: &Settings, org: &OrgSettings, facts: Option<&Facts>) -> Vec<Item> {
    let i = settings
        .orgs
        .iter()
        .position(|o| o.slug == org.slug)
        .unwrap_or(0);
    vec![
        idp(settings, org, i),
        test_sign_in(org, facts),
        scim(org, i, facts),
        backups(settings, facts),
        privacy(settings),
        transport(settings),
    ]
}

fn idp(settings: &Settings, org: &OrgSettings, i: usize) -> Item {
    let uri = redirect_uri(settings, org);
    match &org.oidc {
        Some(o) => Item {
            id: "idp",
            title: "Identity provider",
            status: Status::Done,
            state: format!(
                "issuer {}, client id {}, client secret set; redirect URI registered at the IdP must be {uri}",
                o.issuer, o.client_id
            ),
            fix: None,
        },
        None => Item {
            id: "idp",
            title: "Identity provider",
            status: Status::Todo,
            state: format!(
                "not configured: nobody can sign in with SSO. Redirect URI to register at the IdP: {uri}"
            ),
            fix: Some(format!(
                "set orgs.{i}.oidc.issuer, orgs.{i}.oidc.client_id and orgs.{i}.oidc.client_secret_file (a file of mode 0600) in the configuration file, then restart"
            )),
        },
    }
}

fn test_sign_in(org: &OrgSettings, facts: Option<&Facts>) -> Item {
    let title = "Test sign-in";
    if org.oidc.is_none() {
        return Item {
            id: "test_sign_in",
            title,
            status: Status::Todo,
            state: "needs the identity provider first".into(),
            fix: Some(
                "configure the identity provider (above), then use Test sign-in on the admin page"
                    .into(),
            ),
        };
    }
    let Some(facts) = facts else {
        return Item {
            id: "test_sign_in",
            title,
            status: Status::Todo,
            state: "unknown here (the installation's data could not be read)".into(),
            fix: Some("use Test sign-in on the admin page".into()),
        };
    };
    match &facts.last_test {
        Some((at, o)) if o.verdict == "would_sign_in" => Item {
            id: "test_sign_in",
            title,
            status: Status::Done,
            state: format!("last test {}: would sign in ({})", when(*at), o.reason),
            fix: None,
        },
        Some((at, o)) => Item {
            id: "test_sign_in",
            title,
            status: Status::Todo,
            state: format!(
                "last test {}: {} ({})",
                when(*at),
                o.verdict.replace('_', " "),
                o.reason
            ),
            fix: Some("fix what the test reported, then use Test sign-in on the admin page again".into()),
        },
        None => Item {
            id: "test_sign_in",
            title,
            status: Status::Todo,
            state: "not tried yet".into(),
            fix: Some("use Test sign-in on the admin page: it runs a real sign-in and shows what the IdP sends, without signing anyone in".into()),
        },
    }
}

fn scim(org: &OrgSettings, i: usize, facts: Option<&Facts>) -> Item {
    let needed = org.provisioning == Provisioning::ScimOnly;
    let fix = Some(format!(
        "create a token in the SCIM section of the admin page, or run `aiworklab token create --org {} --kind scim --name okta`, and give it to the IdP's SCIM settings",
        org.slug
    ));
    let Some(facts) = facts else {
        return Item {
            id: "scim",
            title: "SCIM provisioning",
            status: if needed {
                Status::Todo
            } else {
                Status::Optional
            },
            state: "unknown here (the installation's data could not be read)".into(),
            fix,
        };
    };
    let last = facts.scim_last_request.map_or_else(|| "never".into(), when);
    if facts.scim_tokens_live > 0 {
        return Item {
            id: "scim",
            title: "SCIM provisioning",
            status: Status::Done,
            state: format!(
                "{} active token(s); last request {last}",
                facts.scim_tokens_live
            ),
            fix: None,
        };
    }
    Item {
        id: "scim",
        title: "SCIM provisioning",
        status: if needed {
            Status::Todo
        } else {
            Status::Optional
        },
        state: if needed {
            format!(
                "no active token, and orgs.{i}.provisioning = \"scim_only\": only provisioned people can sign in"
            )
        } else {
            format!(
                "no active token; people are created at first sign-in (orgs.{i}.provisioning = \"jit\")"
            )
        },
        fix,
    }
}

fn backups(settings: &Settings, facts: Option<&Facts>) -> Item {
    let b = &settings.backup;
    let title = "Backups";
    if b.recipients.is_empty() {
        return Item {
            id: "backups",
            title,
            status: Status::Todo,
            state: "off: backup.recipients is empty".into(),
            fix: Some("make a key pair with `aiworklab backup keygen --out backup.key`, keep backup.key offline, and set backup.recipients = [\"age1…\"] to its public key".into()),
        };
    }
    let Some(facts) = facts else {
        return Item {
            id: "backups",
            title,
            status: Status::Todo,
            state: format!(
                "{} recipient(s), daily at {} UTC into {}; last backup and drill unknown here",
                b.recipients.len(),
                b.schedule.format("%H:%M"),
                b.dir.display()
            ),
            fix: None,
        };
    };
    let backup = facts.last_backup.map_or_else(|| "none yet".into(), when);
    let drill = facts.last_drill.as_ref().map_or_else(
        || "none recorded".into(),
        |d| {
            format!(
                "{} ({})",
                when(d.at),
                if d.passed { "passed" } else { "FAILED" }
            )
        },
    );
    let state = format!(
        "{} recipient(s), daily at {} UTC into {}; last backup {backup}; last drill {drill}",
        b.recipients.len(),
        b.schedule.format("%H:%M"),
        b.dir.display()
    );
    let fix = if facts.last_backup.is_none() {
        Some("wait for the daily backup (backup.schedule), or run `aiworklab backup create`".into())
    } else if !facts.last_drill.as_ref().is_some_and(|d| d.passed) {
        Some("run `aiworklab drill --identity backup.key` where the identity is kept: it restores the newest archive into a throwaway instance and tests it".into())
    } else {
        None
    };
    Item {
        id: "backups",
        title,
        status: if fix.is_none() {
            Status::Done
        } else {
            Status::Todo
        },
        state,
        fix,
    }
}

fn privacy(settings: &Settings) -> Item {
    Item {
        id: "privacy",
        title: "Privacy",
        status: Status::Done,
        state: format!(
            "privacy.min_cohort = {}: a concept or team with fewer engineers is never shown",
            settings.min_cohort
        ),
        fix: None,
    }
}

fn transport(settings: &Settings) -> Item {
    let s = &settings.server;
    let title = "TLS or trusted proxy";
    if s.tls.is_some() {
        return Item {
            id: "transport",
            title,
            status: Status::Done,
            state: format!("HTTPS served directly at {}", s.public_url),
            fix: None,
        };
    }
    if !s.trusted_proxies.is_empty() {
        let proxies: Vec<String> = s.trusted_proxies.iter().map(ToString::to_string).collect();
        return Item {
            id: "transport",
            title,
            status: Status::Done,
            state: format!(
                "behind the reverse proxy {} (it terminates TLS); public URL {}",
                proxies.join(", "),
                s.public_url
            ),
            fix: None,
        };
    }
    Item {
        id: "transport",
        title,
        status: Status::Todo,
        state: format!(
            "plain HTTP on {} only: fine to try it out, not reachable by others",
            s.bind
        ),
        fix: Some("set server.tls_cert_file and server.tls_key_file, or put a reverse proxy in front and list it in server.trusted_proxies; then set server.public_url to the address people use, with https".into()),
    }
}

/// The checklist as text, for `config check`: one line per item and its fix.
pub fn render_text(org: &OrgSettings, items: &[Item]) -> String {
    use std::fmt::Write;
    let mut out = format!("setup checklist of org `{}` ({}):\n", org.slug, org.name);
    for it in items {
        let _ = writeln!(out, "  [{}] {}: {}", it.status.label(), it.title, it.state);
        if let Some(fix) = &it.fix {
            let _ = writeln!(out, "        fix: {fix}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::config::{RawConfig, RawOidc, RawOrg};

    fn settings(tweak: impl FnOnce(&mut RawConfig)) -> Settings {
        let mut raw = RawConfig {
            orgs: vec![RawOrg {
                slug: "acme".into(),
                name: "Acme".into(),
                ..RawOrg::default()
            }],
            ..RawConfig::default()
        };
        tweak(&mut raw);
        crate::config::from_raw(&raw).expect("valid test configuration")
    }

    fn item<'a>(items: &'a [Item], id: &str) -> &'a Item {
        items.iter().find(|i| i.id == id).expect("item")
    }

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, h, 0, 0)
            .single()
            .expect("time")
    }

    fn drill(h: u32, passed: bool) -> DrillRecord {
        DrillRecord {
            at: at(h),
            archive: "aiworklab-x.tar.age".into(),
            passed,
        }
    }

    fn outcome(verdict: &str) -> TestOutcome {
        TestOutcome {
            verdict: verdict.into(),
            reason: "why".into(),
        }
    }

    #[test]
    fn a_fresh_installation_names_each_key_to_set() {
        let s = settings(|_| {});
        let items = items(&s, &s.orgs[0], Some(&Facts::default()));
        let idp = item(&items, "idp");
        assert_eq!(idp.status, Status::Todo);
        assert!(
            idp.state
                .contains("http://127.0.0.1:8080/o/acme/oidc/callback"),
            "{idp:?}"
        );
        assert!(
            idp.fix
                .as_deref()
                .is_some_and(|f| f.contains("orgs.0.oidc.client_secret_file"))
        );
        assert_eq!(item(&items, "test_sign_in").status, Status::Todo);
        assert_eq!(
            item(&items, "scim").status,
            Status::Optional,
            "jit needs no SCIM"
        );
        let backups = item(&items, "backups");
        assert_eq!(backups.status, Status::Todo);
        assert!(backups.state.contains("backup.recipients is empty"));
        assert_eq!(item(&items, "privacy").status, Status::Done);
        assert!(
            item(&items, "privacy")
                .state
                .contains("privacy.min_cohort = 5")
        );
        let transport = item(&items, "transport");
        assert_eq!(transport.status, Status::Todo);
        assert!(
            transport
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("server.trusted_proxies"))
        );
    }

    #[test]
    fn facts_and_configuration_turn_items_done() {
        let s = settings(|raw| {
            raw.server.trusted_proxies = vec!["10.0.0.5".into()];
            raw.backup.recipients = vec![age::x25519::Identity::generate().to_public().to_string()];
            raw.orgs[0].provisioning = "scim_only".into();
            raw.orgs[0].oidc = Some(RawOidc {
                issuer: "https://login.acme.test".into(),
                client_id: "aiwl".into(),
                client_secret: "s".into(),
                ..RawOidc::default()
            });
        });
        let org = &s.orgs[0];
        let none = items(&s, org, Some(&Facts::default()));
        assert_eq!(
            item(&none, "scim").status,
            Status::Todo,
            "scim_only needs a token"
        );
        assert_eq!(item(&none, "idp").status, Status::Done);
        assert_eq!(item(&none, "transport").status, Status::Done);
        assert!(
            item(&none, "backups")
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("backup create"))
        );

        let mut facts = Facts {
            scim_tokens_live: 1,
            scim_last_request: Some(at(9)),
            last_backup: Some(at(2)),
            last_drill: Some(drill(3, false)),
            last_test: Some((at(10), outcome("would_be_refused"))),
        };
        let got = items(&s, org, Some(&facts));
        assert_eq!(item(&got, "scim").status, Status::Done);
        assert!(item(&got, "scim").state.contains("2026-01-15 09:00 UTC"));
        assert_eq!(
            item(&got, "backups").status,
            Status::Todo,
            "a failed drill is not done"
        );
        assert!(item(&got, "backups").state.contains("FAILED"));
        assert_eq!(item(&got, "test_sign_in").status, Status::Todo);
        facts.last_drill = Some(drill(4, true));
        facts.last_test = Some((at(11), outcome("would_sign_in")));
        let got = items(&s, org, Some(&facts));
        assert_eq!(item(&got, "backups").status, Status::Done);
        assert_eq!(item(&got, "test_sign_in").status, Status::Done);
        // Without the data, nothing is guessed.
        let unknown = items(&s, org, None);
        assert!(item(&unknown, "scim").state.contains("unknown here"));
    }

    #[test]
    fn drills_are_recorded_privately_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_drill(dir.path()), None);
        let r = drill(5, true);
        record_drill(dir.path(), &r).expect("record");
        record_drill(dir.path(), &r).expect("replace");
        assert_eq!(read_drill(dir.path()), Some(r));
        let mode = std::fs::metadata(dir.path().join(DRILL_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
