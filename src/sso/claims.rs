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
    /// The org's `link_claim` (for linking by SCIM `externalId`).
    pub link_value: Option<String>,
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
        let link_value = match oidc.link_claim.as_str() {
            "sub" => Some(subject.clone()),
            claim => extra.get(claim).and_then(Value::as_str).map(str::to_string),
        };
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
            link_value,
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

    /// The IdP authentication time a session keeps: a token without
    /// `auth_time` counts as authenticated long ago (stale, so admin
    /// actions re-authenticate), and one claimed in the future as now.
    pub fn session_auth_time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.auth_time
            .map_or(DateTime::<Utc>::UNIX_EPOCH, |t| t.min(now))
    }

    /// Whether the sign-in used more than one factor: an `amr` value the
    /// org lists in `mfa_amr` (by default only `mfa` itself), two `amr`
    /// values of different factor types (RFC 8176 §2, see [`factor_type`]),
    /// or an `acr` the org lists. One factor alone (`otp`, `sms`, `hwk`,
    /// `swk`, `fpt`, `face`, ...) is not enough, nor two of one type.
    pub fn has_mfa(&self, oidc: &OidcSettings) -> bool {
        let listed = self
            .amr
            .iter()
            .any(|a| oidc.mfa_amr.iter().any(|m| m.eq_ignore_ascii_case(a)));
        let mut types: Vec<Factor> = self.amr.iter().filter_map(|a| factor_type(a)).collect();
        types.sort_unstable();
        types.dedup();
        listed
            || types.len() >= 2
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
            link_value: self.link_value.clone(),
        }
    }
}

/// The three types of authentication factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Factor {
    /// Something you know.
    Knowledge,
    /// Something you have.
    Possession,
    /// Something you are.
    Inherence,
}

/// The factor type of an RFC 8176 `amr` value; `None` for values that are
/// not a factor by themselves (`mfa`, `mca`, `rba`, `geo`, `user`, `wia`,
/// unknown ones).
pub fn factor_type(amr: &str) -> Option<Factor> {
    match amr.to_ascii_lowercase().as_str() {
        "pwd" | "pin" | "kba" => Some(Factor::Knowledge),
        "otp" | "hwk" | "swk" | "sms" | "tel" | "sc" | "pop" => Some(Factor::Possession),
        "fpt" | "face" | "iris" | "retina" | "vbm" | "bio" => Some(Factor::Inherence),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(mfa_amr: &[&str], mfa_acr: &[&str]) -> OidcSettings {
        OidcSettings {
            issuer: "https://idp.example".into(),
            client_id: "c".into(),
            client_secret: crate::config::Secret::new("s".into()),
            scopes: vec!["openid".into()],
            groups_claim: "groups".into(),
            username_claim: "preferred_username".into(),
            use_userinfo: false,
            mfa_amr: mfa_amr.iter().map(|s| (*s).to_string()).collect(),
            mfa_acr: mfa_acr.iter().map(|s| (*s).to_string()).collect(),
            link_by: crate::config::LinkBy::Email,
            link_claim: "sub".into(),
        }
    }

    fn signed_in_with(amr: &[&str], acr: Option<&str>) -> Verified {
        Verified {
            issuer: "https://idp.example".into(),
            subject: "s".into(),
            user_name: "u".into(),
            display_name: String::new(),
            email: None,
            email_verified: false,
            groups: None,
            auth_time: None,
            amr: amr.iter().map(|s| (*s).to_string()).collect(),
            acr: acr.map(str::to_string),
            link_value: None,
        }
    }

    #[test]
    fn one_factor_alone_is_not_mfa_under_the_default_list() {
        let defaults = crate::config::RawOidc::default();
        let mfa_amr: Vec<&str> = defaults.mfa_amr.iter().map(String::as_str).collect();
        let o = oidc(&mfa_amr, &[]);
        for single in [
            "otp", "sms", "hwk", "swk", "fpt", "face", "pwd", "iris", "sc", "pop",
        ] {
            assert!(
                !signed_in_with(&[single], None).has_mfa(&o),
                "{single} alone"
            );
            assert!(
                !signed_in_with(&[single, single], None).has_mfa(&o),
                "{single} twice"
            );
        }
        // Two of one type are one factor: a password and a PIN, an OTP and an SMS code.
        assert!(!signed_in_with(&["pwd", "pin"], None).has_mfa(&o));
        assert!(!signed_in_with(&["otp", "sms"], None).has_mfa(&o));
        assert!(!signed_in_with(&["pwd", "rba", "geo"], None).has_mfa(&o));
        assert!(!signed_in_with(&[], Some("urn:aiwl:acr:mfa")).has_mfa(&o));
        // `mfa` itself, or two factor types.
        for ok in [
            &["mfa"][..],
            &["pwd", "mfa"],
            &["pwd", "otp"],
            &["pwd", "sms"],
            &["hwk", "pin"],
            &["swk", "fpt"],
            &["PWD", "HWK"],
        ] {
            assert!(signed_in_with(ok, None).has_mfa(&o), "{ok:?}");
        }
    }

    #[test]
    fn an_org_may_list_its_own_amr_and_acr_values() {
        let o = oidc(&["mfa", "hwk"], &["urn:aiwl:acr:mfa"]);
        assert!(signed_in_with(&["hwk"], None).has_mfa(&o));
        assert!(signed_in_with(&["pwd"], Some("urn:aiwl:acr:mfa")).has_mfa(&o));
        assert!(!signed_in_with(&["pwd"], Some("urn:aiwl:acr:pwd")).has_mfa(&o));
    }

    #[test]
    fn a_missing_auth_time_is_stale_and_a_future_one_is_now() {
        let now = Utc::now();
        let mut v = signed_in_with(&["pwd"], None);
        assert_eq!(v.session_auth_time(now), DateTime::<Utc>::UNIX_EPOCH);
        v.auth_time = Some(now + chrono::Duration::hours(1));
        assert_eq!(v.session_auth_time(now), now);
        let earlier = now - chrono::Duration::minutes(3);
        v.auth_time = Some(earlier);
        assert_eq!(v.session_auth_time(now), earlier);
    }
}
