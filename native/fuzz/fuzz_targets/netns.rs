//! Fuzzes the namespace text parsers with arbitrary UTF-8: none may panic, and whatever one
//! accepts must print and parse back to the same printed text. The input is also read as
//! the six texts of a namespace (separated by NUL bytes) with two fixed interfaces; when
//! that namespace builds, its decisions run on addresses taken from the input and must not
//! panic either.
#![no_main]

use dvrlab_native::netns::iptables::{format_iptables, parse_iptables, IptTable};
use dvrlab_native::netns::neigh::{format_ip_neigh, parse_ip_neigh};
use dvrlab_native::netns::netfilter::{CtInfo, Pkt5};
use dvrlab_native::netns::route::{format_ip_route, parse_ip_route};
use dvrlab_native::netns::rule::{format_ip_rule, parse_ip_rule};
use dvrlab_native::netns::{InterfaceSpec, Namespace, NamespaceSpec, SysctlValue};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;

fn round_trip<T>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, dvrlab_native::netns::text::ParseError>,
    print: impl Fn(&T) -> String,
) {
    let Ok(v) = parse(text) else { return };
    let printed = print(&v);
    let again = parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
    assert_eq!(print(&again), printed, "{text:?}");
}

fn iface(name: &str, addr: &str) -> InterfaceSpec {
    InterfaceSpec {
        name: name.into(),
        bridge: Some("br-int".into()),
        port: Some(name.into()),
        veth: None,
        mac: "fa:16:3e:00:00:01".into(),
        addresses: vec![addr.into()],
        mtu: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    round_trip(text, parse_ip_rule, |r| format_ip_rule(r));
    round_trip(text, parse_ip_route, |r| format_ip_route(r));
    round_trip(text, parse_ip_neigh, |n| format_ip_neigh(n));
    for t in [IptTable::Nat, IptTable::Mangle, IptTable::Raw] {
        round_trip(text, |s| parse_iptables(t, s), |x| format_iptables(x, true));
    }

    let mut parts = text.split('\0').map(str::to_string);
    let mut next = || parts.next().unwrap_or_default();
    let spec = NamespaceSpec {
        name: "ns".into(),
        interfaces: vec![iface("eth0", "10.0.0.1/24"), iface("eth1", "192.168.1.1/24")],
        sysctl: [("net.ipv4.ip_forward".to_string(), SysctlValue::Number(1))].into(),
        ip_rule: next(),
        ip_route: format!(
            "10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.1\n\
             192.168.1.0/24 dev eth1 proto kernel scope link src 192.168.1.1\n{}",
            next()
        ),
        ip_neigh: next(),
        iptables_nat: next(),
        iptables_mangle: next(),
        iptables_raw: next(),
    };
    let Ok(mut ns) = Namespace::from_spec(&spec) else { return };
    let seed = data.iter().fold(0u64, |h, &b| h.rotate_left(5) ^ u64::from(b));
    let a = |k: u32| Ipv4Addr::from((seed >> k) as u32);
    for (iif, src, dst) in [("eth0", a(0), a(32)), ("eth1", a(7), a(19)), ("lo", a(3), a(29))] {
        let d = ns.forward(iif, src, dst, (seed >> 8) as u8, (seed >> 40) as u32);
        let _ = d.deps();
        let _ = ns.route(None, src, dst, 0);
        let _ = ns.arp_reply(iif, src, dst);
        let pkt = Pkt5::new(src, dst, (seed >> 16) as u8, (seed >> 24) as u16, (seed >> 3) as u16);
        let m = ns.mangle_prerouting(iif, &pkt, CtInfo::NEW, 0);
        let pre = ns.nat_prerouting(iif, &pkt, CtInfo::NEW, m.verdict.mark);
        let post = ns.nat_postrouting(Some(iif), "eth1", dst, &pkt, CtInfo::NEW, 0);
        let out = ns.nat_output("eth0", &pkt, CtInfo::NEW, 0);
        let raw = ns.notrack(iif, &pkt);
        let _ = pre.verdict.nat_spec(&pkt);
        for hits in [&m.hits, &pre.hits, &post.hits, &out.hits, &raw.hits] {
            ns.credit(hits, 1, 64);
        }
    }
    let _ = ns.format_iptables(IptTable::Nat, true);
});
