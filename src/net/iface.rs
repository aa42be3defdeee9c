//! Local interface addresses (getifaddrs).
use std::net::IpAddr;

use nix::ifaddrs::{getifaddrs, InterfaceAddress};
use nix::net::if_::InterfaceFlags;

use super::NetError;

fn ip_of(ifa: &InterfaceAddress) -> Option<IpAddr> {
    let addr = ifa.address.as_ref()?;
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

/// Whether an address can be bound without a scope id. Link-local IPv6
/// addresses need one, which a `listen` entry cannot carry.
fn bindable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

fn up_addrs() -> Result<Vec<(String, IpAddr)>, NetError> {
    let list = getifaddrs().map_err(NetError::Interfaces)?;
    Ok(list
        .filter(|ifa| ifa.flags.contains(InterfaceFlags::IFF_UP))
        .filter_map(|ifa| {
            ip_of(&ifa)
                .filter(bindable)
                .map(|ip| (ifa.interface_name.clone(), ip))
        })
        .collect())
}

/// Every address of every interface that is up (IPv4 and IPv6, without
/// link-local IPv6), in the kernel's order, without duplicates.
pub fn interface_addrs() -> Result<Vec<IpAddr>, NetError> {
    let mut out: Vec<IpAddr> = Vec::new();
    for (_, ip) in up_addrs()? {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

/// The addresses of the interface called `name` (e.g. `lo`, `eth0`); an
/// empty list when no interface has that name.
pub fn interface_named(name: &str) -> Result<Vec<IpAddr>, NetError> {
    let mut out: Vec<IpAddr> = Vec::new();
    for (ifname, ip) in up_addrs()? {
        if ifname == name && !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed() {
        let all = interface_addrs().unwrap();
        assert!(all.contains(&IpAddr::from([127, 0, 0, 1])), "{all:?}");
        assert!(interface_named("lo")
            .unwrap()
            .contains(&IpAddr::from([127, 0, 0, 1])));
        assert!(interface_named("no-such-if0").unwrap().is_empty());
    }

    #[test]
    fn link_local_v6_is_not_bindable() {
        assert!(!bindable(&"fe80::1".parse().unwrap()));
        assert!(bindable(&"::1".parse().unwrap()));
        assert!(bindable(&"10.0.0.1".parse().unwrap()));
    }
}
