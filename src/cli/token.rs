//! `aiworklab token create|list|revoke`: API tokens for SCIM and MCP. The
//! secret is printed once, at creation; every change is audited with the
//! operator as actor.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::{Failure, settings};
use crate::clock::{Clock, SystemClock};
use crate::store::{OpenMode, Store};
use crate::tokens::{self, TokenInfo, TokenKind};
use crate::users::AdminCtx;

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token and print its secret once.
    Create {
        #[arg(long)]
        org: String,
        /// scim (identity provider provisioning) or mcp (AI clients).
        #[arg(long, value_parser = parse_kind)]
        kind: TokenKind,
        /// A name to recognise it by, e.g. "okta".
        #[arg(long)]
        name: Option<String>,
        /// Expiry: a duration (90d, 12h, 2w) or a date (2027-06-30). Default: never.
        #[arg(long)]
        expires: Option<String>,
        /// Print JSON (id, secret, ...) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        org: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token at once.
    Revoke {
        #[arg(long)]
        org: String,
        /// The token id shown by `token list`.
        id: String,
    },
}

fn parse_kind(s: &str) -> Result<TokenKind, String> {
    s.parse().map_err(|e: tokens::TokenError| e.to_string())
}

pub fn run(path: Option<&Path>, cmd: TokenCmd) -> Result<ExitCode, Failure> {
    let settings = settings(path)?;
    let store = Store::open(&settings, OpenMode::Existing, &SystemClock)?;
    let now = SystemClock.now();
    match cmd {
        TokenCmd::Create {
            org,
            kind,
            name,
            expires,
            json,
        } => {
            let org = store.org(&org)?;
            let expires = expires.map(|e| tokens::parse_expiry(&e, now)).transpose()?;
            let name = name.unwrap_or_else(|| format!("{} token", kind.as_str()));
            let (info, secret) =
                tokens::create(org, kind, &name, expires, &AdminCtx::operator(), now)?;
            if json {
                let v = json!({ "token": info, "secret": secret.expose(), "org": org.slug });
                println!("{v}");
            } else {
                eprintln!(
                    "Created {} token {} ({}) for org {}, expires {}.",
                    kind.as_str(),
                    info.id,
                    info.name,
                    org.slug,
                    info.expires_at.map_or("never".into(), |e| e.to_rfc3339())
                );
                eprintln!("The secret is shown this once; store it now:");
                println!("{}", secret.expose());
            }
        }
        TokenCmd::List { org, json } => {
            let org = store.org(&org)?;
            let list = tokens::list(org)?;
            if json {
                println!("{}", serde_json::to_string(&list).unwrap_or_default());
            } else {
                print_table(&list, now);
            }
        }
        TokenCmd::Revoke { org, id } => {
            let org = store.org(&org)?;
            let info = tokens::revoke(org, &id, &AdminCtx::operator(), now)?;
            println!(
                "revoked {} token {} ({})",
                info.kind.as_str(),
                info.id,
                info.name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(list: &[TokenInfo], now: chrono::DateTime<chrono::Utc>) {
    let day = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("-".to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string())
    };
    println!(
        "{:<36}  {:<4}  {:<20}  {:<16}  {:<16}  {:<16}  STATE",
        "ID", "KIND", "NAME", "CREATED", "LAST USED", "EXPIRES"
    );
    for t in list {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if t.is_live(now) {
            "active"
        } else {
            "expired"
        };
        println!(
            "{:<36}  {:<4}  {:<20}  {:<16}  {:<16}  {:<16}  {}",
            t.id,
            t.kind.as_str(),
            t.name.chars().take(20).collect::<String>(),
            day(Some(t.created_at)),
            day(t.last_used_at),
            day(t.expires_at),
            state
        );
    }
}
