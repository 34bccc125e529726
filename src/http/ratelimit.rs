//! Rate limits with a separate budget per endpoint class (SECURITY.md P17).
//! Each capability router layers [`enforce`] with its class, which charges
//! the client IP; a request is counted against exactly one class. Classes
//! that know who is calling charge that caller too, once it is known:
//! export per user, sync per device (or user, from a browser), refresh per
//! device, checks per device, sign-in per account, SCIM per token. For those, the class's
//! `requests` is the caller's budget and `ip_requests` each address's
//! ceiling across every caller behind it, so one engineer behind a shared
//! NAT address cannot spend another's budget, and one with many addresses
//! is still limited. Over budget, the answer is 429 with `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AppState;
use super::cost::CostBudget;
use super::forwarded::ClientInfo;
use crate::config::{RateLimit, RateLimits};
use crate::error::AppError;
use crate::metrics::ClassLabels;

/// The endpoint classes, each with its own budget in `[rate_limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    General,
    SignIn,
    Sync,
    Scim,
    Export,
    Pairing,
    Refresh,
    /// The question service (`/api/v1/checks/*`), per paired device.
    Checks,
}

impl RouteClass {
    pub const ALL: [RouteClass; 8] = [
        Self::General,
        Self::SignIn,
        Self::Sync,
        Self::Scim,
        Self::Export,
        Self::Pairing,
        Self::Refresh,
        Self::Checks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::General => "general",
            Self::SignIn => "sign_in",
            Self::Sync => "sync",
            Self::Scim => "scim",
            Self::Export => "export",
            Self::Pairing => "pairing",
            Self::Refresh => "refresh",
            Self::Checks => "checks",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn limit(self, cfg: &RateLimits) -> RateLimit {
        match self {
            Self::General => cfg.general,
            Self::SignIn => cfg.sign_in,
            Self::Sync => cfg.sync,
            Self::Scim => cfg.scim,
            Self::Export => cfg.export,
            Self::Pairing => cfg.pairing,
            Self::Refresh => cfg.refresh,
            Self::Checks => cfg.checks,
        }
    }
}

/// Who a keyed budget belongs to. Ids are scoped by org, so equal ids in
/// two orgs never share a budget.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A person (export; sync from a browser).
    User { org: String, id: String },
    /// A paired device (sync, refresh).
    Device { org: String, id: String },
    /// The account a sign-in ends in.
    Account { org: String, id: String },
    /// A SCIM token.
    Token(uuid::Uuid),
}

impl Caller {
    /// The caller of the JSON API: its device, or the person signed in on
    /// the web.
    pub fn of_api(c: &super::extract::ApiCaller) -> Self {
        match &c.device_id {
            Some(d) => Self::Device {
                org: c.org.clone(),
                id: d.clone(),
            },
            None => Self::User {
                org: c.org.clone(),
                id: c.user_id.clone(),
            },
        }
    }

    /// The person behind an API caller, whichever device they use.
    pub fn person_of_api(c: &super::extract::ApiCaller) -> Self {
        Self::User {
            org: c.org.clone(),
            id: c.user_id.clone(),
        }
    }
}

/// Per class: a limiter keyed by client IP (the budget, or for keyed
/// classes the ceiling) and one keyed by [`Caller`].
pub struct RateLimiters {
    ip: Vec<DefaultKeyedRateLimiter<IpAddr>>,
    callers: Vec<DefaultKeyedRateLimiter<Caller>>,
    /// Facts a caller's pushes folded again (`rate_limits.refold`).
    refold: CostBudget<Caller>,
    clock: DefaultClock,
}

fn limiter<K: Clone + Eq + std::hash::Hash>(
    requests: u32,
    window: Duration,
) -> DefaultKeyedRateLimiter<K> {
    let burst = NonZeroU32::new(requests).unwrap_or(NonZeroU32::MIN);
    // `requests` per `window`, refilled evenly: one cell every window/requests.
    let period = window / burst.get();
    let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
        .expect("a period of at least 1 ns is non-zero")
        .allow_burst(burst);
    RateLimiter::keyed(quota)
}

/// IPv6 clients are keyed by their /64, which one host usually controls.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl RateLimiters {
    pub fn new(cfg: &RateLimits) -> Self {
        fn each<K: Clone + Eq + std::hash::Hash>(
            cfg: &RateLimits,
            requests: impl Fn(RateLimit) -> u32,
        ) -> Vec<DefaultKeyedRateLimiter<K>> {
            RouteClass::ALL
                .iter()
                .map(|c| {
                    let l = c.limit(cfg);
                    limiter(requests(l), l.window)
                })
                .collect()
        }
        Self {
            ip: each(cfg, |l| l.ip_requests),
            callers: each(cfg, |l| l.requests),
            refold: CostBudget::new(cfg.refold.requests, cfg.refold.window),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `ip`'s budget (or ceiling) for `class`.
    ///
    /// # Errors
    /// The whole seconds to wait (at least 1) when the budget is spent.
    pub fn check(&self, class: RouteClass, ip: IpAddr) -> Result<(), u64> {
        self.ip[class.index()]
            .check_key(&key(ip))
            .map_err(|not_until| self.seconds_until(&not_until))
    }

    /// Takes one request from `caller`'s own budget for `class`.
    ///
    /// # Errors
    /// The whole seconds to wait (at least 1) when the budget is spent.
    pub fn check_caller(&self, class: RouteClass, caller: &Caller) -> Result<(), u64> {
        self.callers[class.index()]
            .check_key(caller)
            .map_err(|not_until| self.seconds_until(&not_until))
    }

    fn seconds_until(
        &self,
        not_until: &governor::NotUntil<<DefaultClock as governor::clock::Clock>::Instant>,
    ) -> u64 {
        let wait = not_until.wait_time_from(self.clock.now());
        // Round up, and never tell a client to retry after 0 s.
        (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
    }

    /// Whether `caller` may push: refused while the facts its earlier
    /// pushes folded again exceed its refold budget.
    ///
    /// # Errors
    /// The whole seconds to wait (at least 1).
    pub fn check_refold(&self, caller: &Caller) -> Result<(), u64> {
        self.refold.admit(caller, std::time::Instant::now())
    }

    /// Charges `facts` folded again by a push to `caller`'s refold budget.
    pub fn charge_refold(&self, caller: &Caller, facts: u64) {
        self.refold.charge(caller, facts, std::time::Instant::now());
    }

    /// Forgets clients whose budgets are full again, bounding memory.
    pub fn retain_recent(&self) {
        self.refold.retain_recent(std::time::Instant::now());
        for l in &self.ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        for l in &self.callers {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// Middleware: charges the request to its class's budget for the client IP.
pub async fn enforce(
    State((state, class)): State<(AppState, RouteClass)>,
    req: Request,
    next: Next,
) -> Response {
    match admit(&state, class, &req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// The check [`enforce`] makes, for handlers (like the 404 fallback) that
/// are not behind a route layer.
///
/// # Errors
/// [`AppError::TooManyRequests`] over budget.
pub fn admit(state: &AppState, class: RouteClass, req: &Request) -> Result<(), AppError> {
    let ip = req
        .extensions()
        .get::<ClientInfo>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.ip);
    state
        .limits
        .check(class, ip)
        .map_err(|retry_after_secs| rejected(state, class, retry_after_secs))
}

/// Charges a request to its caller's own budget for `class`, once the
/// caller is known (after [`enforce`] charged the address).
///
/// # Errors
/// [`AppError::TooManyRequests`] over budget.
pub fn admit_caller(state: &AppState, class: RouteClass, caller: &Caller) -> Result<(), AppError> {
    state
        .limits
        .check_caller(class, caller)
        .map_err(|retry_after_secs| rejected(state, class, retry_after_secs))
}

/// Admits a push only while its caller's refold budget is above zero
/// (after [`admit_caller`] charged the request itself).
///
/// # Errors
/// [`AppError::TooManyRequests`] while in debt.
pub fn admit_refold(state: &AppState, caller: &Caller) -> Result<(), AppError> {
    state
        .limits
        .check_refold(caller)
        .map_err(|retry_after_secs| rejected(state, RouteClass::Sync, retry_after_secs))
}

/// Charges a sign-in to the account it ends in (`rate_limits.sign_in`),
/// once the identity provider has said who it is.
///
/// # Errors
/// The whole seconds to wait when the account's budget is spent (counted
/// in `/metrics`).
pub fn admit_sign_in(state: &AppState, org: &str, user_id: &str) -> Result<(), u64> {
    let account = Caller::Account {
        org: org.to_string(),
        id: user_id.to_string(),
    };
    state
        .limits
        .check_caller(RouteClass::SignIn, &account)
        .inspect_err(|&secs| {
            rejected(state, RouteClass::SignIn, secs);
        })
}

/// Charges a request to its SCIM token's own budget (`rate_limits.scim`).
///
/// # Errors
/// [`AppError::TooManyRequests`] over budget.
pub fn admit_scim_token(state: &AppState, token: uuid::Uuid) -> Result<(), AppError> {
    admit_caller(state, RouteClass::Scim, &Caller::Token(token))
}

/// Counts a rejection in `/metrics`.
fn rejected(state: &AppState, class: RouteClass, retry_after_secs: u64) -> AppError {
    state
        .metrics
        .rate_limited
        .get_or_create(&ClassLabels {
            class: class.as_str(),
        })
        .inc();
    AppError::TooManyRequests { retry_after_secs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_per_class_and_per_client() {
        let one = RateLimit {
            requests: 2,
            window: Duration::from_secs(60),
            ip_requests: 2,
        };
        let cfg = RateLimits {
            general: one,
            sign_in: one,
            sync: one,
            scim: one,
            export: one,
            pairing: one,
            refresh: one,
            refold: one,
            checks: one,
        };
        let l = RateLimiters::new(&cfg);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        assert!(l.check(RouteClass::SignIn, a).is_ok());
        assert!(l.check(RouteClass::SignIn, a).is_ok());
        let wait = l
            .check(RouteClass::SignIn, a)
            .expect_err("third is refused");
        assert!((1..=30).contains(&wait), "retry after {wait}");
        assert!(
            l.check(RouteClass::SignIn, b).is_ok(),
            "other client unaffected"
        );
        assert!(
            l.check(RouteClass::Sync, a).is_ok(),
            "other class unaffected"
        );
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(key(a), key(b));
        assert_ne!(key(a), key(c));
    }
}

#[cfg(test)]
mod caller_tests {
    use super::*;

    fn cfg(requests: u32, ip_requests: u32) -> RateLimits {
        let l = RateLimit {
            requests,
            window: Duration::from_secs(3600),
            ip_requests,
        };
        RateLimits {
            general: l,
            sign_in: l,
            sync: l,
            scim: l,
            export: l,
            pairing: l,
            refresh: l,
            refold: l,
            checks: l,
        }
    }

    fn user(id: &str) -> Caller {
        Caller::User {
            org: "acme".into(),
            id: id.into(),
        }
    }

    #[test]
    fn callers_behind_one_address_have_their_own_budgets_under_its_ceiling() {
        let l = RateLimiters::new(&cfg(3, 7));
        let nat: IpAddr = "198.51.100.7".parse().expect("ip");
        // Alice spends her 3; Bob, behind the same address, still has his.
        for _ in 0..3 {
            assert!(l.check(RouteClass::Export, nat).is_ok());
            assert!(l.check_caller(RouteClass::Export, &user("alice")).is_ok());
        }
        assert!(l.check(RouteClass::Export, nat).is_ok());
        assert!(l.check_caller(RouteClass::Export, &user("alice")).is_err());
        for _ in 0..3 {
            assert!(l.check(RouteClass::Export, nat).is_ok());
            assert!(l.check_caller(RouteClass::Export, &user("bob")).is_ok());
        }
        // The address's ceiling (7) is spent whoever comes next.
        assert!(l.check(RouteClass::Export, nat).is_err());
        // The same id in another org is another caller.
        let other = Caller::User {
            org: "other".into(),
            id: "alice".into(),
        };
        assert!(l.check_caller(RouteClass::Export, &other).is_ok());
    }

    #[test]
    fn one_caller_with_many_addresses_keeps_one_budget() {
        let l = RateLimiters::new(&cfg(3, 30));
        let device = Caller::Device {
            org: "acme".into(),
            id: "d1".into(),
        };
        for i in 0..3u8 {
            let ip = IpAddr::from([203, 0, 113, i]);
            assert!(l.check(RouteClass::Sync, ip).is_ok());
            assert!(l.check_caller(RouteClass::Sync, &device).is_ok());
        }
        assert!(
            l.check(RouteClass::Sync, IpAddr::from([203, 0, 113, 9]))
                .is_ok()
        );
        assert!(l.check_caller(RouteClass::Sync, &device).is_err());
    }
}
