//! What a verified ID token (and, when configured, userinfo) says about the
//! person, in the shape the sign-in rules need. Claims outside the OIDC
//! core set (groups, a custom user-name claim) are read from the token's
//! payload after its signature was verified over exactly those bytes.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use openidconnect::core::{CoreGenderClaim, CoreIdTokenClaims};
use openidconnect::{AdditionalClaims, UserInfoClaims};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::SsoError;
use crate::config::OidcSettings;
use crate::users::signin::Identity;

/// Every claim not in the OIDC core set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExtraClaims(pub HashMap<String, Value>);

impl AdditionalClaims for ExtraClaims {}

/// The JSON payload of a compact JWT (already verified by the caller).
///
/// # Errors
/// [`SsoError::InvalidToken`] when it is not a JWT with a JSON object payload.
pub fn payload(jwt: &str) -> Result<Map<String, Value>, SsoError> {
    let bad = || SsoError::InvalidToken("the ID token payload is not a JSON object".into());
    let part = jwt.split('.').nth(1).ok_or_else(bad)?;
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| bad())?;
    match serde_json::from_slice(&bytes).map_err(|_| bad())? {
        Value::Object(m) => Ok(m),
        _ => Err(bad()),
    }
}

/// A verified sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub issuer: String,
    pub subject: String,
    pub user_name: String,
    pub display_name: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub groups: Option<Vec<String>>,
    pub auth_time: Option<DateTime<Utc>>,
    pub amr: Vec<String>,
    pub acr: Option<String>,
}

fn string_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
        ),
        Value::String(s) => Some(vec![s.clone()]),
        _ => None,
    }
}

impl Verified {
    pub fn from_claims(
        c: &CoreIdTokenClaims,
        extra: &Map<String, Value>,
        oidc: &OidcSettings,
    ) -> Self {
        let email = c.email().map(|e| e.as_str().to_string());
        let subject = c.subject().as_str().to_string();
        let user_name = extra
            .get(&oidc.username_claim)
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| c.preferred_username().map(|u| u.as_str().to_string()))
            .or_else(|| email.clone())
            .unwrap_or_else(|| subject.clone());
        Self {
            issuer: c.issuer().as_str().to_string(),
            subject,
            user_name,
            display_name: c
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_string())
                .unwrap_or_default(),
            email,
            email_verified: c.email_verified().unwrap_or(false),
            groups: extra.get(&oidc.groups_claim).and_then(string_list),
            auth_time: c.auth_time(),
            amr: c
                .auth_method_refs()
                .map(|v| v.iter().map(|a| a.as_str().to_string()).collect())
                .unwrap_or_default(),
            acr: c.auth_context_ref().map(|a| a.as_str().to_string()),
        }
    }

    /// Fills what the ID token left out from the userinfo response.
    pub fn merge_userinfo(
        &mut self,
        info: &UserInfoClaims<ExtraClaims, CoreGenderClaim>,
        oidc: &OidcSettings,
    ) {
        if self.email.is_none() {
            self.email = info.email().map(|e| e.as_str().to_string());
            self.email_verified = info.email_verified().unwrap_or(false);
        }
        if self.display_name.is_empty()
            && let Some(n) = info.name().and_then(|n| n.get(None))
        {
            self.display_name = n.as_str().to_string();
        }
        if self.groups.is_none() {
            self.groups = info
                .additional_claims()
                .0
                .get(&oidc.groups_claim)
                .and_then(string_list);
        }
    }

    /// Whether the sign-in used more than one factor (RFC 8176 `amr`
    /// values, or an `acr` the org lists).
    pub fn has_mfa(&self, oidc: &OidcSettings) -> bool {
        self.amr
            .iter()
            .any(|a| oidc.mfa_amr.iter().any(|m| m.eq_ignore_ascii_case(a)))
            || self
                .acr
                .as_ref()
                .is_some_and(|a| oidc.mfa_acr.iter().any(|m| m == a))
    }

    pub fn identity(&self) -> Identity {
        Identity {
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
            user_name: self.user_name.clone(),
            display_name: self.display_name.clone(),
            email: self.email.clone(),
            email_verified: self.email_verified,
            groups: self.groups.clone(),
        }
    }
}
