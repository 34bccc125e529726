//! The test sign-in of the setup checklist: an admin runs the real OIDC
//! flow against the org's configured IdP (PKCE, state, nonce, full ID-token
//! validation, as at every sign-in) and sees the claims that came back,
//! what each maps to, and whether the person would be signed in or
//! refused, and why. No session and no user is created: the sign-in rules
//! run in a transaction that is rolled back (`users::signin::preview`).
//! Each test is audited as `sso.test_sign_in` with its verdict.
//!
//! A test uses the org's registered redirect URI, so nothing more has to be
//! registered at the IdP; its state lives in its own table, bound to the
//! admin who started it, and the callback hands it here.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{Sso, SsoError, Verified};
use crate::audit::Context;
use crate::clock::to_millis;
use crate::config::OrgSettings;
use crate::secrets::SecretHash;
use crate::store::setup::{self as sql, TestLoginRow};
use crate::store::{OrgDb, StoreError};
use crate::users::Role;
use crate::users::signin::preview;

/// How long a started test may take.
const TTL: chrono::Duration = chrono::Duration::minutes(10);

/// Longest claim value shown.
const MAX_VALUE: usize = 300;

/// One claim of the ID token and what the appliance uses it for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimLine {
    pub name: String,
    pub value: String,
    pub used_for: String,
}

/// One thing the appliance works out from the claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub field: &'static str,
    pub value: String,
}

/// What a test found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `would_sign_in`, `would_be_refused` or `failed`.
    pub verdict: &'static str,
    /// Why, in a sentence.
    pub reason: String,
    /// What to change, when something is wrong.
    pub advice: Option<String>,
    pub claims: Vec<ClaimLine>,
    pub mapped: Vec<Mapped>,
}

impl Report {
    /// A test that ended before a verdict: why, and what to check.
    pub fn failed(reason: String, advice: Option<String>) -> Self {
        Self {
            verdict: "failed",
            reason,
            advice,
            claims: Vec::new(),
            mapped: Vec::new(),
        }
    }

    pub fn verdict_text(&self) -> &'static str {
        match self.verdict {
            "would_sign_in" => "Would sign in",
            "would_be_refused" => "Would be refused",
            _ => "The test sign-in failed",
        }
    }
}

/// Starts a test sign-in for `admin_id`: the IdP's authorization URL, with
/// `prompt=login` so any account can be tried.
///
/// # Errors
/// [`SsoError::NotConfigured`], [`SsoError::IdpUnavailable`], store errors.
pub async fn start(
    sso: &Sso,
    db: &OrgDb,
    org: &OrgSettings,
    redirect: &url::Url,
    admin_id: &str,
    now: DateTime<Utc>,
) -> Result<url::Url, SsoError> {
    let auth = sso.authorization(org, redirect, true).await?;
    let row = TestLoginRow {
        state_hash: SecretHash::of(&auth.state).0.to_vec(),
        nonce: auth.nonce,
        pkce_verifier: auth.pkce_verifier,
        admin_id: admin_id.to_string(),
        created_at: to_millis(now),
        expires_at: to_millis(now + TTL),
    };
    db.db
        .write(|tx| sql::insert_test_login(tx, &row).map_err(|e| SsoError::Store(e.into())))?;
    Ok(auth.url)
}

/// Whether a callback's `state` is a test sign-in's (then the callback is
/// handed to [`finish`]).
///
/// # Errors
/// Store errors.
pub fn is_test(db: &OrgDb, state: &str) -> Result<bool, StoreError> {
    let hash = SecretHash::of(state).0;
    db.db
        .read(|c| sql::is_test_login(c, &hash).map_err(StoreError::from))
}

/// What came back to the callback.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: String,
    /// The IdP's error code; its free-text `error_description` is never
    /// read (P7: the IdP's words are not repeated).
    pub error: Option<String>,
}

/// Finishes a test sign-in (`key` is the org's configuration key,
/// `orgs.<i>`, named in advice): consumes its state (only for the admin who
/// started it), redeems the code, and reports claims, mapping and verdict.
/// Audited in the org as `sso.test_sign_in` under `ctx` (the admin).
///
/// # Errors
/// Store errors only; every sign-in problem is a `failed` report.
#[allow(clippy::too_many_arguments)]
pub async fn finish(
    sso: &Sso,
    db: &OrgDb,
    org: &OrgSettings,
    key: &str,
    redirect: &url::Url,
    cb: &Callback,
    ctx: &Context,
    admin_id: &str,
    now: DateTime<Utc>,
) -> Result<Report, StoreError> {
    let report = run(sso, db, org, key, redirect, cb, admin_id, now).await?;
    let mut details = json!({ "verdict": report.verdict, "reason": report.reason });
    if let Some(u) = report.mapped.iter().find(|m| m.field == "user name") {
        details["user_name"] = Value::String(u.value.clone());
    }
    db.db
        .write(|tx| ctx.record(tx, "sso.test_sign_in", None, &details, now))?;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    sso: &Sso,
    db: &OrgDb,
    org: &OrgSettings,
    key: &str,
    redirect: &url::Url,
    cb: &Callback,
    admin_id: &str,
    now: DateTime<Utc>,
) -> Result<Report, StoreError> {
    let hash = SecretHash::of(&cb.state).0;
    let Some(row) = db
        .db
        .write(|tx| sql::take_test_login(tx, &hash, to_millis(now)).map_err(StoreError::from))?
    else {
        return Ok(Report::failed(
            "this test sign-in expired (10 minutes) or was already used".into(),
            Some("start a new test sign-in from the admin page".into()),
        ));
    };
    if row.admin_id != admin_id {
        return Ok(Report::failed(
            "this test sign-in was started by another admin or in another browser".into(),
            Some("start the test from the admin page in this browser".into()),
        ));
    }
    if let Some(e) = &cb.error {
        // Only the code, in the characters RFC 6749 allows it.
        let what: String = e
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        return Ok(Report::failed(
            format!(
                "the identity provider refused the sign-in: {}",
                what.chars().take(300).collect::<String>()
            ),
            Some("check that the account may use this application at the IdP (assignment, group policy), then try again".into()),
        ));
    }
    let Some(code) = &cb.code else {
        return Ok(Report::failed(
            "the identity provider sent neither a code nor an error".into(),
            None,
        ));
    };
    match sso
        .redeem_code(org, redirect, code, &row.pkce_verifier, &row.nonce, now)
        .await
    {
        Ok((verified, claims)) => verdict(db, org, key, &verified, &claims, now),
        Err(e) => Ok(Report::failed(
            e.to_string(),
            Some(advice(&e, key, redirect)),
        )),
    }
}

/// What to check for each way the code redemption fails.
fn advice(e: &SsoError, key: &str, redirect: &url::Url) -> String {
    match e {
        SsoError::Exchange(_) => format!(
            "the IdP's token endpoint refused us: check that {key}.oidc.client_id and the secret in {key}.oidc.client_secret_file are the ones the IdP issued for this application, and that {redirect} is registered there exactly"
        ),
        SsoError::IdpUnavailable(_) => {
            format!("check {key}.oidc.issuer, that this host can reach it, and its TLS certificate")
        }
        SsoError::InvalidToken(_) => {
            format!("check {key}.oidc.issuer and {key}.oidc.client_id, and this host's clock (NTP)")
        }
        _ => "start a new test sign-in".into(),
    }
}

fn show(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > MAX_VALUE {
        format!("{}…", s.chars().take(MAX_VALUE).collect::<String>())
    } else {
        s
    }
}

fn used_for(name: &str, org: &OrgSettings) -> String {
    let oidc = org.oidc.as_ref();
    if oidc.is_some_and(|o| o.username_claim == name) {
        return "user name (username_claim)".into();
    }
    if oidc.is_some_and(|o| o.groups_claim == name) {
        return "groups: teams, and the admin role through admin_groups (groups_claim)".into();
    }
    match name {
        "iss" => "identity (with sub); must be the configured issuer",
        "sub" => "identity: the person's permanent id at the IdP",
        "aud" | "azp" => "checked: issued to this application",
        "exp" | "iat" => "checked: token lifetime",
        "nonce" => "checked: belongs to this sign-in",
        "auth_time" => "when the person authenticated (admin re-authentication)",
        "amr" | "acr" => "multi-factor authentication (require_mfa, mfa_amr, mfa_acr)",
        "email" => "email (allowed_email_domains)",
        "email_verified" => "email verified (needed with allowed_email_domains)",
        "name" => "display name",
        "preferred_username" => "user name when username_claim is absent",
        _ => "not used",
    }
    .into()
}

fn verdict(
    db: &OrgDb,
    org: &OrgSettings,
    key: &str,
    v: &Verified,
    claims: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Report, StoreError> {
    let mut names: Vec<&String> = claims.keys().collect();
    names.sort();
    let lines = names
        .into_iter()
        .map(|n| ClaimLine {
            name: n.clone(),
            value: show(&claims[n]),
            used_for: used_for(n, org),
        })
        .collect();
    let mfa = org.oidc.as_ref().is_some_and(|o| v.has_mfa(o));
    let groups = v.groups.as_ref().map_or_else(
        || "none (the token has no groups claim)".to_string(),
        |g| {
            if g.is_empty() {
                "none".into()
            } else {
                g.join(", ")
            }
        },
    );
    let mut mapped = vec![
        Mapped {
            field: "user name",
            value: v.user_name.clone(),
        },
        Mapped {
            field: "display name",
            value: v.display_name.clone(),
        },
        Mapped {
            field: "email",
            value: v.email.clone().unwrap_or_else(|| "none".into()),
        },
        Mapped {
            field: "email verified",
            value: yes_no(v.email_verified).into(),
        },
        Mapped {
            field: "groups",
            value: groups,
        },
        Mapped {
            field: "multi-factor",
            value: format!(
                "{} (amr {}, acr {}){}",
                yes_no(mfa),
                if v.amr.is_empty() {
                    "none".into()
                } else {
                    v.amr.join(" ")
                },
                v.acr.as_deref().unwrap_or("none"),
                if org.require_mfa {
                    "; this org requires it"
                } else {
                    ""
                }
            ),
        },
    ];
    if org.require_mfa && !mfa {
        return Ok(Report {
            verdict: "would_be_refused",
            reason:
                "mfa_required: the sign-in did not use a second factor, and this org requires one"
                    .into(),
            advice: Some(format!(
                "sign in with a second factor, or adjust {key}.oidc.mfa_amr / {key}.oidc.mfa_acr to what the IdP sends"
            )),
            claims: lines,
            mapped,
        });
    }
    let outcome = match preview(db, org, &v.identity(), now) {
        Ok(outcome) => outcome,
        Err(crate::users::UserError::Store(s)) => return Err(s),
        // The claims make an account the store will not take (a user name
        // that is invalid or already another person's): the real sign-in
        // would fail the same way, so that is the verdict.
        Err(other) => {
            return Ok(Report {
                verdict: "would_be_refused",
                reason: format!("the account could not be made from these claims: {other}"),
                advice: Some(format!(
                    "check which claim {key}.oidc maps to the user name, or rename the account that holds it"
                )),
                claims: lines,
                mapped,
            });
        }
    };
    Ok(match outcome {
        Ok(p) => {
            let role = p.user.role(org);
            let admin = match role {
                Role::Admin if p.user.admin_granted => "admin (granted directly)".to_string(),
                Role::Admin => format!(
                    "admin (through a group in admin_groups: {})",
                    org.admin_groups.join(", ")
                ),
                Role::Viewer if p.user.viewer_granted => "viewer (granted directly)".to_string(),
                Role::Viewer => format!(
                    "viewer (through a group in viewer_groups: {})",
                    org.viewer_groups.join(", ")
                ),
                Role::Member if org.admin_groups.is_empty() => {
                    "member (admin_groups is empty)".into()
                }
                Role::Member => format!(
                    "member (in none of admin_groups: {})",
                    org.admin_groups.join(", ")
                ),
            };
            mapped.push(Mapped {
                field: "role",
                value: admin,
            });
            let account = match p.account {
                "existing" => format!("the existing account {}", p.user.user_name),
                "linked" => format!(
                    "the account {} (made by {}, not signed in before), linked to this identity",
                    p.user.user_name, p.user.provisioned_by
                ),
                _ => format!(
                    "a new account {}, created at first sign-in (provisioning = jit)",
                    p.user.user_name
                ),
            };
            mapped.push(Mapped {
                field: "account",
                value: account.clone(),
            });
            Report {
                verdict: "would_sign_in",
                reason: format!("as {account}, role {}", role.as_str()),
                advice: None,
                claims: lines,
                mapped,
            }
        }
        Err(r) => Report {
            verdict: "would_be_refused",
            reason: format!("{}: {}", r.code(), r.message()),
            advice: Some(format!(
                "the org's sign-in policy refused this person: see {key}.provisioning and {key}.allowed_email_domains, or the user list"
            )),
            claims: lines,
            mapped,
        },
    })
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
