//! Where a blob redirect may lead.
//!
//! Registries hand blobs to storage hosts with a redirect, and the upstream
//! chooses the `Location`: followed blindly, an upstream could make tufd
//! fetch from loopback services, the local network or tufd's own mirror,
//! and the mirror would hand what it got to its client. So a redirect is
//! followed only
//!
//! - to the upstream itself (same host and port as the registry asked):
//!   over https, or over plain http when that registry may be reached over
//!   plain http (loopback, or listed in `insecure_registries`); or
//! - to any other host over https, when every address its name resolves to
//!   is public: not loopback, unspecified, link-local, private (RFC 1918,
//!   shared 100.64/10, IPv6 ULA), multicast or broadcast, and not an
//!   address of this machine. Requests to such hosts go through a client
//!   whose resolver ([`PublicOnly`]) applies the same check to the
//!   addresses it hands the connector, so a name that resolves to a public
//!   address when checked and to a private one when connecting (DNS
//!   rebinding) is still refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};

/// Why a redirect target's address is refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "{host} resolves to {addr}, {why}; blob redirects lead only to public https hosts or the upstream itself"
)]
pub(crate) struct Blocked {
    /// The host named by the redirect.
    pub(crate) host: String,
    /// The refused address.
    pub(crate) addr: IpAddr,
    /// What kind of address it is.
    pub(crate) why: &'static str,
}

/// Why `ip` may not be the target of a redirect to another host, or `None`
/// when it is a public address.
pub(crate) fn forbidden(ip: IpAddr) -> Option<&'static str> {
    let ip = ip.to_canonical();
    let why = match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    };
    why.or_else(|| is_local(ip).then_some("an address of this machine"))
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_unspecified() || a == 0 {
        "an unspecified address"
    } else if ip.is_link_local() {
        "a link-local address"
    } else if ip.is_private() {
        "a private (RFC 1918) address"
    } else if a == 100 && (64..128).contains(&b) {
        "a shared (carrier-grade NAT) address"
    } else if ip.is_multicast() || ip.is_broadcast() {
        "a multicast or broadcast address"
    } else {
        return None;
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_unspecified() {
        "an unspecified address"
    } else if first & 0xffc0 == 0xfe80 {
        "a link-local address"
    } else if first & 0xfe00 == 0xfc00 {
        "a private (unique local) address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if let Some(v4) = ip.to_ipv4() {
        // IPv4-compatible (::a.b.c.d) forms of the refused ranges.
        return forbidden_v4(v4);
    } else {
        return None;
    })
}

/// True when `ip` is assigned to an interface of this machine: binding a
/// socket to it succeeds only then (covers the mirror's own public address).
fn is_local(ip: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Resolves `host` and checks every address; all of them must be public.
pub(crate) fn public_addrs(
    host: &str,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, 0)],
        Err(_) => (bare, 0).to_socket_addrs()?.collect(),
    };
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address").into());
    }
    for a in &addrs {
        if let Some(why) = forbidden(a.ip()) {
            return Err(Box::new(Blocked {
                host: host.to_owned(),
                addr: a.ip(),
                why,
            }));
        }
    }
    Ok(addrs)
}

/// The resolver of the client that follows redirects to other hosts:
/// names resolve only when every address is public ([`forbidden`]), and the
/// connector connects to exactly the addresses checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = tokio::task::spawn_blocking(move || public_addrs(&host))
                .await
                .map_err(|e| format!("address check failed: {e}"))??;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The [`Blocked`] refusal somewhere in an error's chain.
pub(crate) fn blocked_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Blocked> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(b) = e.downcast_ref::<Blocked>() {
            return Some(b);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<Blocked>())
        {
            return Some(inner);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_ranges() {
        for ip in [
            "127.0.0.1",
            "127.5.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "ff02::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(forbidden(ip).is_some(), "{ip} must be refused");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(forbidden(ip), None, "{ip} is public");
        }
    }

    #[test]
    fn names_are_resolved_and_every_address_checked() {
        let e = public_addrs("localhost").unwrap_err();
        let b = blocked_in(e.as_ref()).expect("a Blocked refusal");
        assert_eq!(b.why, "a loopback address");
        assert!(e.to_string().contains("localhost resolves to"), "{e}");
        assert!(public_addrs("[::1]").is_err());
        assert!(public_addrs("10.0.0.1").is_err());
        assert_eq!(public_addrs("1.1.1.1").unwrap().len(), 1);
    }
}
