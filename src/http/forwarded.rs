//! Who is on the other end of a request: the client IP (believing
//! `X-Forwarded-For` only from configured trusted proxies) and whether the
//! client's connection is HTTPS (directly, or `X-Forwarded-Proto` from a
//! trusted proxy).

use std::net::IpAddr;

use ipnet::IpNet;

/// The client of one request, in its request extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address: the peer, or the address a trusted proxy
    /// reported for it.
    pub ip: IpAddr,
    /// The TCP peer.
    pub peer: IpAddr,
    /// Whether the client reached us over HTTPS.
    pub https: bool,
}

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    proxies.iter().any(|n| n.contains(&ip))
}

/// The client address for a request from `peer` carrying `forwarded_for`
/// (the raw `X-Forwarded-For` values, in order). Walks the list from the
/// right and returns the first address that is not a trusted proxy, so a
/// client cannot forge its address by prepending entries.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], proxies: &[IpNet]) -> IpAddr {
    if !trusted(peer, proxies) {
        return peer.to_canonical();
    }
    let hops = forwarded_for
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted(ip, proxies) => continue,
            Ok(ip) => return ip.to_canonical(),
            // An unparsable hop ends what we can believe.
            Err(_) => break,
        }
    }
    peer.to_canonical()
}

/// Whether the client used HTTPS: always with direct TLS; behind a trusted
/// proxy, as its `X-Forwarded-Proto` says.
pub fn client_https(
    tls: bool,
    peer: IpAddr,
    forwarded_proto: Option<&str>,
    proxies: &[IpNet],
) -> bool {
    tls || (trusted(peer, proxies)
        && forwarded_proto.is_some_and(|p| p.trim().eq_ignore_ascii_case("https")))
}

/// Whether a plain-HTTP request from `peer` may be served: always on a
/// loopback bind; otherwise only from loopback or a trusted proxy.
pub fn plain_http_allowed(bind_loopback: bool, peer: IpAddr, proxies: &[IpNet]) -> bool {
    bind_loopback || peer.to_canonical().is_loopback() || trusted(peer, proxies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().expect("net")).collect()
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let p = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &["1.2.3.4"], &p),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("203.0.113.9"), &[], &[]), ip("203.0.113.9"));
    }

    #[test]
    fn rightmost_untrusted_hop_wins_so_prepended_entries_are_useless() {
        let p = nets(&["10.0.0.0/8"]);
        // The client forged "6.6.6.6"; the proxy appended the real address.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &["6.6.6.6, 198.51.100.7"], &p),
            ip("198.51.100.7")
        );
        // Two trusted proxies in a chain, split across headers.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &["198.51.100.7", "10.0.0.3"], &p),
            ip("198.51.100.7")
        );
        // Garbage stops the walk; the peer is used.
        assert_eq!(client_ip(ip("10.0.0.2"), &["nonsense"], &p), ip("10.0.0.2"));
        // IPv4-mapped IPv6 peers match IPv4 networks.
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.2"), &["198.51.100.7"], &p),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn https_is_believed_only_from_trusted_proxies() {
        let p = nets(&["10.0.0.0/8"]);
        assert!(client_https(true, ip("203.0.113.9"), None, &p));
        assert!(client_https(false, ip("10.1.1.1"), Some("https"), &p));
        assert!(!client_https(false, ip("203.0.113.9"), Some("https"), &p));
        assert!(!client_https(false, ip("10.1.1.1"), Some("http"), &p));
    }

    #[test]
    fn plain_http_from_strangers_is_refused_on_a_public_bind() {
        let p = nets(&["10.0.0.5/32"]);
        assert!(plain_http_allowed(true, ip("203.0.113.9"), &p));
        assert!(plain_http_allowed(false, ip("10.0.0.5"), &p));
        assert!(plain_http_allowed(false, ip("127.0.0.1"), &p));
        assert!(!plain_http_allowed(false, ip("203.0.113.9"), &p));
    }
}
