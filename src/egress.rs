//! Where outbound connections may go (P25). With `air_gapped = true`
//! every destination must be on loopback, in a private range, or on the
//! `egress_allow` list; otherwise anything configured may be reached. The
//! rule is checked twice: on the configured URLs at start-up (an address
//! written in the URL, or a name `config check` resolves), and on every
//! connection after name resolution, so a name that resolves to a public
//! address is refused when it is dialled, whatever it resolved to before.
//!
//! Both programs use it (the appliance for the IdP and the model, the
//! kernel for its appliance), so it depends on nothing of the crate.
//! Every outbound HTTP client is built by [`Egress::client_builder`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// One entry of `egress_allow`: a host name (exact, any letter case) or an
/// address range (`203.0.113.7`, `203.0.113.0/24`, `2001:db8::/32`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    Host(String),
    Net(IpNet),
}

impl Allowed {
    /// Parses one `egress_allow` entry.
    ///
    /// # Errors
    /// A message naming what is wrong with the entry.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let e = entry.trim();
        if let Ok(net) = e.parse::<IpNet>() {
            return Ok(Self::Net(net));
        }
        if let Ok(ip) = e.parse::<IpAddr>() {
            return Ok(Self::Net(IpNet::from(ip)));
        }
        let valid_name = !e.is_empty()
            && e.len() <= 253
            && e.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if valid_name {
            Ok(Self::Host(e.to_ascii_lowercase()))
        } else {
            Err(format!(
                "`{entry}` is neither a host name (e.g. \"idp.example.com\") nor an address or range (e.g. \"203.0.113.0/24\")"
            ))
        }
    }
}

/// Addresses that stay inside the customer's network: loopback, the
/// private ranges of RFC 1918, and IPv6 unique local addresses. Link-local
/// addresses are not among them (169.254.169.254 is a cloud's metadata
/// service), nor is the carrier-grade NAT range; list them in
/// `egress_allow` when they are meant.
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_local(IpAddr::V4(v4)),
            None => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        },
    }
}

/// A destination the rule refuses, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "air_gapped: {host} {what}, which is neither on loopback, in a private range nor in egress_allow; add it to egress_allow if the appliance is meant to reach it, or point the setting at a destination inside your network"
)]
pub struct Refused {
    pub host: String,
    /// "is the public address 8.8.8.8", "resolves only to public addresses (...)".
    pub what: String,
}

/// Looks a host name up; a parameter so tests can resolve a name to a
/// public address without touching the machine's resolver.
pub type Lookup = Arc<dyn Fn(String) -> LookupFuture + Send + Sync>;

/// What a [`Lookup`] returns.
pub type LookupFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;

/// The rule for outbound connections.
#[derive(Clone)]
pub struct Egress {
    air_gapped: bool,
    allow: Vec<Allowed>,
    lookup: Lookup,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("air_gapped", &self.air_gapped)
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Egress {
    fn eq(&self, other: &Self) -> bool {
        self.air_gapped == other.air_gapped && self.allow == other.allow
    }
}

fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    })
}

impl Default for Egress {
    fn default() -> Self {
        Self::open()
    }
}

impl Egress {
    /// Not air-gapped: any configured destination may be reached.
    pub fn open() -> Self {
        Self {
            air_gapped: false,
            allow: Vec::new(),
            lookup: system_lookup(),
        }
    }

    /// Air-gapped, with these exceptions.
    pub fn air_gapped(allow: Vec<Allowed>) -> Self {
        Self {
            air_gapped: true,
            allow,
            lookup: system_lookup(),
        }
    }

    /// The same rule, resolving names with `lookup` (tests).
    #[must_use]
    pub fn with_lookup(mut self, lookup: Lookup) -> Self {
        self.lookup = lookup;
        self
    }

    pub fn is_air_gapped(&self) -> bool {
        self.air_gapped
    }

    pub fn allowed(&self) -> &[Allowed] {
        &self.allow
    }

    fn host_listed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allow
            .iter()
            .any(|a| matches!(a, Allowed::Host(h) if *h == host))
    }

    fn addr_ok(&self, ip: IpAddr) -> bool {
        is_local(ip)
            || self
                .allow
                .iter()
                .any(|a| matches!(a, Allowed::Net(n) if n.contains(&ip)))
    }

    /// Checks an address that will be dialled for `host`.
    ///
    /// # Errors
    /// [`Refused`] when air-gapped and the address is not allowed.
    pub fn check_addr(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        if !self.air_gapped || self.host_listed(host) || self.addr_ok(ip) {
            return Ok(());
        }
        Err(Refused {
            host: host.to_string(),
            what: format!("is the public address {ip}"),
        })
    }

    /// Checks a URL without resolving it: an address written in the URL
    /// must be allowed; a name is checked when it is resolved (or by
    /// [`Egress::check_url_resolved`]). `localhost` counts as loopback.
    ///
    /// # Errors
    /// [`Refused`] for an address (or a URL without a host) that is not allowed.
    pub fn check_url(&self, url: &url::Url) -> Result<(), Refused> {
        if !self.air_gapped {
            return Ok(());
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_addr(&ip.to_string(), IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_addr(&ip.to_string(), IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err(Refused {
                host: url.to_string(),
                what: "names no host".into(),
            }),
        }
    }

    /// [`Egress::check_url`], and for a name, its resolution now: refused
    /// when it resolves only to addresses that are not allowed. A name
    /// that does not resolve now is not refused here (it is checked again
    /// at every connection); the lookup error is returned beside.
    ///
    /// # Errors
    /// [`Refused`] as above.
    pub async fn check_url_resolved(
        &self,
        url: &url::Url,
    ) -> Result<Option<std::io::Error>, Refused> {
        self.check_url(url)?;
        let (true, Some(url::Host::Domain(name))) = (self.air_gapped, url.host()) else {
            return Ok(None);
        };
        match self.resolve(name).await {
            Ok(_) => Ok(None),
            Err(ResolveError::Refused(r)) => Err(r),
            Err(ResolveError::Lookup(e)) => Ok(Some(e)),
        }
    }

    /// Resolves `host` and keeps the addresses the rule allows.
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if self.air_gapped && name == "localhost" {
            return Ok(vec![IpAddr::from([127, 0, 0, 1])]);
        }
        let found = (self.lookup)(name.clone())
            .await
            .map_err(ResolveError::Lookup)?;
        if !self.air_gapped || self.host_listed(&name) {
            return Ok(found);
        }
        let kept: Vec<IpAddr> = found
            .iter()
            .copied()
            .filter(|ip| self.addr_ok(*ip))
            .collect();
        if kept.is_empty() {
            let list: Vec<String> = found.iter().map(ToString::to_string).collect();
            return Err(ResolveError::Refused(Refused {
                host: name,
                what: format!("resolves only to public addresses ({})", list.join(", ")),
            }));
        }
        Ok(kept)
    }

    /// A `reqwest` client builder that keeps to the rule: air-gapped, every
    /// name is resolved through the rule (public addresses dropped, a name
    /// with none left refused) and no proxy from the environment is used
    /// (a proxy would dial what the rule refuses). Callers still check
    /// URLs with [`Egress::check_url`]: an address written in a URL is
    /// dialled without resolution.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder();
        if !self.air_gapped {
            return builder;
        }
        builder
            .no_proxy()
            .dns_resolver(Arc::new(Guarded(self.clone())))
    }
}

enum ResolveError {
    Refused(Refused),
    Lookup(std::io::Error),
}

/// The resolver an air-gapped client dials through.
struct Guarded(Egress);

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            match egress.resolve(&host).await {
                Ok(ips) => {
                    let addrs: reqwest::dns::Addrs =
                        Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
                    Ok(addrs)
                }
                Err(ResolveError::Refused(r)) => {
                    tracing::warn!(error = %r, "outbound connection refused");
                    Err(Box::new(r) as Box<dyn std::error::Error + Send + Sync>)
                }
                Err(ResolveError::Lookup(e)) => {
                    Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(ips: &'static [&'static str]) -> Lookup {
        Arc::new(move |_| {
            Box::pin(async move { Ok(ips.iter().map(|s| s.parse().unwrap()).collect()) })
        })
    }

    #[test]
    fn local_means_loopback_private_and_unique_local_only() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_local(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "169.254.169.254",
            "100.64.0.1",
            "172.32.0.1",
            "2001:db8::1",
            "fe80::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_local(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn allow_entries_parse_or_say_what_is_wrong() {
        assert_eq!(
            Allowed::parse("IdP.Example.com").unwrap(),
            Allowed::Host("idp.example.com".into())
        );
        assert!(matches!(
            Allowed::parse("203.0.113.0/24").unwrap(),
            Allowed::Net(_)
        ));
        assert!(matches!(
            Allowed::parse("2001:db8::1").unwrap(),
            Allowed::Net(_)
        ));
        let err = Allowed::parse("https://idp.example.com").unwrap_err();
        assert!(err.contains("neither a host name"), "{err}");
    }

    #[test]
    fn addresses_in_urls_are_checked_without_resolving() {
        let e = Egress::air_gapped(vec![Allowed::parse("203.0.113.0/24").unwrap()]);
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert!(e.check_url(&url("https://10.0.0.5/realms/acme")).is_ok());
        assert!(e.check_url(&url("https://[::1]:8443/")).is_ok());
        assert!(e.check_url(&url("https://203.0.113.9/")).is_ok());
        let r = e.check_url(&url("https://8.8.8.8/")).unwrap_err();
        assert!(
            r.to_string().contains("8.8.8.8") && r.to_string().contains("egress_allow"),
            "{r}"
        );
        assert!(Egress::open().check_url(&url("https://8.8.8.8/")).is_ok());
    }

    #[tokio::test]
    async fn a_name_resolving_to_public_addresses_is_refused_unless_listed() {
        let public = Egress::air_gapped(vec![]).with_lookup(fixed(&["93.184.216.34"]));
        let url = url::Url::parse("https://idp.example.com/").unwrap();
        let r = public.check_url_resolved(&url).await.unwrap_err();
        assert!(
            r.to_string()
                .contains("resolves only to public addresses (93.184.216.34)"),
            "{r}"
        );
        let listed = Egress::air_gapped(vec![Allowed::parse("idp.example.com").unwrap()])
            .with_lookup(fixed(&["93.184.216.34"]));
        assert!(listed.check_url_resolved(&url).await.unwrap().is_none());
        // Mixed answers keep only the local addresses.
        let mixed = Egress::air_gapped(vec![]).with_lookup(fixed(&["93.184.216.34", "10.0.0.7"]));
        let kept = mixed.resolve("idp.example.com").await.ok().unwrap();
        assert_eq!(kept, vec!["10.0.0.7".parse::<IpAddr>().unwrap()]);
        // Not air-gapped: anything goes.
        let open = Egress::open().with_lookup(fixed(&["93.184.216.34"]));
        assert!(open.check_url_resolved(&url).await.unwrap().is_none());
    }
}
