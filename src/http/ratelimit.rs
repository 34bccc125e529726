//! Per-IP rate limits with a separate budget per endpoint class
//! (SECURITY.md P17). Each capability router layers [`enforce`] with its
//! class; a request is counted against exactly one budget. Over budget, the
//! answer is 429 with `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AppState;
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
}

impl RouteClass {
    pub const ALL: [RouteClass; 6] = [
        Self::General,
        Self::SignIn,
        Self::Sync,
        Self::Scim,
        Self::Export,
        Self::Pairing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::General => "general",
            Self::SignIn => "sign_in",
            Self::Sync => "sync",
            Self::Scim => "scim",
            Self::Export => "export",
            Self::Pairing => "pairing",
        }
    }
}

/// One keyed limiter per class.
pub struct RateLimiters {
    general: DefaultKeyedRateLimiter<IpAddr>,
    sign_in: DefaultKeyedRateLimiter<IpAddr>,
    sync: DefaultKeyedRateLimiter<IpAddr>,
    scim: DefaultKeyedRateLimiter<IpAddr>,
    export: DefaultKeyedRateLimiter<IpAddr>,
    pairing: DefaultKeyedRateLimiter<IpAddr>,
    /// The scim budget again, per SCIM token: an identity provider that
    /// calls from many addresses still shares one budget.
    scim_tokens: DefaultKeyedRateLimiter<uuid::Uuid>,
    clock: DefaultClock,
}

fn limiter<K: Clone + Eq + std::hash::Hash>(limit: RateLimit) -> DefaultKeyedRateLimiter<K> {
    let burst = NonZeroU32::new(limit.requests).unwrap_or(NonZeroU32::MIN);
    // `requests` per `window`, refilled evenly: one cell every window/requests.
    let period = limit.window / burst.get();
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
        Self {
            general: limiter(cfg.general),
            sign_in: limiter(cfg.sign_in),
            sync: limiter(cfg.sync),
            scim: limiter(cfg.scim),
            export: limiter(cfg.export),
            pairing: limiter(cfg.pairing),
            scim_tokens: limiter(cfg.scim),
            clock: DefaultClock::default(),
        }
    }

    fn of(&self, class: RouteClass) -> &DefaultKeyedRateLimiter<IpAddr> {
        match class {
            RouteClass::General => &self.general,
            RouteClass::SignIn => &self.sign_in,
            RouteClass::Sync => &self.sync,
            RouteClass::Scim => &self.scim,
            RouteClass::Export => &self.export,
            RouteClass::Pairing => &self.pairing,
        }
    }

    /// Takes one request from `ip`'s budget for `class`.
    ///
    /// # Errors
    /// The whole seconds to wait (at least 1) when the budget is spent.
    pub fn check(&self, class: RouteClass, ip: IpAddr) -> Result<(), u64> {
        self.of(class)
            .check_key(&key(ip))
            .map_err(|not_until| self.seconds_until(&not_until))
    }

    /// Takes one request from the SCIM token's own budget (`rate_limits.scim`).
    ///
    /// # Errors
    /// The whole seconds to wait (at least 1) when the budget is spent.
    pub fn check_scim_token(&self, token: uuid::Uuid) -> Result<(), u64> {
        self.scim_tokens
            .check_key(&token)
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

    /// Forgets clients whose budgets are full again, bounding memory.
    pub fn retain_recent(&self) {
        for class in RouteClass::ALL {
            let l = self.of(class);
            l.retain_recent();
            l.shrink_to_fit();
        }
        self.scim_tokens.retain_recent();
        self.scim_tokens.shrink_to_fit();
    }
}

/// Middleware: charges the request to its class's budget.
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

/// Charges a request to its SCIM token's own budget (checked once the
/// token is known, after [`admit`] charged the address).
///
/// # Errors
/// [`AppError::TooManyRequests`] over budget.
pub fn admit_scim_token(state: &AppState, token: uuid::Uuid) -> Result<(), AppError> {
    state
        .limits
        .check_scim_token(token)
        .map_err(|retry_after_secs| rejected(state, RouteClass::Scim, retry_after_secs))
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
        };
        let cfg = RateLimits {
            general: one,
            sign_in: one,
            sync: one,
            scim: one,
            export: one,
            pairing: one,
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
