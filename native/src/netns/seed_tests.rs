//! The seed devstack's namespaces (reference §3, §4) making the decisions of the four
//! packet paths (§5): node2's qrouter and fip namespace, node3's qrouter, node1's snat
//! namespace. Values the seed does not show (the fg- port's address and MAC, the fpr- MAC,
//! the FIP rule's priority) are the first the code would pick, as the reference says.

use super::iptables::{ctstate, IptTable, NatRange, Target};
use super::netfilter::{CtInfo, Pkt5};
use super::text::parse_mac;
use super::*;

const QR1: &str = "qr-aae8ab78-22"; // 10.0.0.1/26, private
const QR2: &str = "qr-2909fe1f-46"; // 10.1.0.1/24, private2
const QR6: &str = "qr-12fa6289-8f"; // fda0:6cec:a994::1/64
const RFP: &str = "rfp-bd7982cb-b";
const FPR: &str = "fpr-bd7982cb-b";
const FG: &str = "fg-07ec92fd-de";
const QROUTER: &str = "qrouter-bd7982cb-bb78-4cc6-b3f0-f8a828947718";
const FIPNS: &str = "fip-6f83ddde-6be3-40d3-a1ec-f5241e7aca3d";
const SNATNS: &str = "snat-bd7982cb-bb78-4cc6-b3f0-f8a828947718";

const QROUTER_RULES: &str = "0:\tfrom all lookup local\n\
    32766:\tfrom all lookup main\n\
    32767:\tfrom all lookup default\n\
    32768:\tfrom 10.0.0.8 lookup 16\n\
    167772161:\tfrom 10.0.0.1/26 lookup 167772161\n\
    167837697:\tfrom 10.1.0.1/24 lookup 167837697\n";

const NODE2_ROUTES: &str = "default via 10.0.0.3 dev qr-aae8ab78-22 table 167772161\n\
    default via 10.1.0.6 dev qr-2909fe1f-46 table 167837697\n\
    default via 169.254.106.115 dev rfp-bd7982cb-b table 16\n\
    10.0.0.0/26 dev qr-aae8ab78-22 proto kernel scope link src 10.0.0.1\n\
    10.1.0.0/24 dev qr-2909fe1f-46 proto kernel scope link src 10.1.0.1\n\
    169.254.106.114/31 dev rfp-bd7982cb-b proto kernel scope link src 169.254.106.114\n\
    broadcast 10.0.0.0 dev qr-aae8ab78-22 table local proto kernel scope link src 10.0.0.1\n\
    local 10.0.0.1 dev qr-aae8ab78-22 table local proto kernel scope host src 10.0.0.1\n\
    broadcast 10.0.0.63 dev qr-aae8ab78-22 table local proto kernel scope link src 10.0.0.1\n";

const QROUTER_NEIGH: &str = "10.0.0.8 dev qr-aae8ab78-22 lladdr fa:16:3e:76:47:75 PERMANENT\n\
    10.0.0.4 dev qr-aae8ab78-22 lladdr fa:16:3e:96:e2:a4 PERMANENT\n\
    10.0.0.3 dev qr-aae8ab78-22 lladdr fa:16:3e:47:34:80 PERMANENT\n\
    10.0.0.7 dev qr-aae8ab78-22 lladdr fa:16:3e:5a:6e:54 PERMANENT\n\
    10.1.0.10 dev qr-2909fe1f-46 lladdr fa:16:3e:23:c5:28 PERMANENT\n\
    10.1.0.6 dev qr-2909fe1f-46 lladdr fa:16:3e:a9:a2:19 PERMANENT\n";

const NODE2_NAT: &str = "-P PREROUTING ACCEPT\n\
    -P INPUT ACCEPT\n\
    -P OUTPUT ACCEPT\n\
    -P POSTROUTING ACCEPT\n\
    -N neutron-l3-agent-OUTPUT\n\
    -N neutron-l3-agent-POSTROUTING\n\
    -N neutron-l3-agent-PREROUTING\n\
    -N neutron-l3-agent-float-snat\n\
    -N neutron-l3-agent-snat\n\
    -N neutron-postrouting-bottom\n\
    -A PREROUTING -j neutron-l3-agent-PREROUTING\n\
    -A OUTPUT -j neutron-l3-agent-OUTPUT\n\
    -A POSTROUTING -j neutron-l3-agent-POSTROUTING\n\
    -A POSTROUTING -j neutron-postrouting-bottom\n\
    -A neutron-l3-agent-POSTROUTING ! -i rfp-bd7982cb-b ! -o rfp-bd7982cb-b \
    -m conntrack ! --ctstate DNAT -j ACCEPT\n\
    -A neutron-l3-agent-PREROUTING -d 169.254.169.254/32 -i qr-+ -p tcp -m tcp --dport 80 \
    -j REDIRECT --to-ports 9697\n\
    -A neutron-l3-agent-PREROUTING -d 172.24.4.12/32 -i rfp-bd7982cb-b \
    -j DNAT --to-destination 10.0.0.8\n\
    -A neutron-l3-agent-float-snat -s 10.0.0.8/32 -j SNAT --to-source 172.24.4.12\n\
    -A neutron-l3-agent-snat -j neutron-l3-agent-float-snat\n\
    -A neutron-postrouting-bottom -m comment \
    --comment \"Perform source NAT on outgoing traffic.\" -j neutron-l3-agent-snat\n";

const QROUTER_MANGLE: &str = "-P PREROUTING ACCEPT\n\
    -P INPUT ACCEPT\n\
    -P FORWARD ACCEPT\n\
    -P OUTPUT ACCEPT\n\
    -P POSTROUTING ACCEPT\n\
    -N neutron-l3-agent-PREROUTING\n\
    -N neutron-l3-agent-mark\n\
    -A PREROUTING -j neutron-l3-agent-PREROUTING\n\
    -A neutron-l3-agent-PREROUTING -j neutron-l3-agent-mark\n\
    -A neutron-l3-agent-PREROUTING -d 169.254.169.254/32 -i qr-+ -p tcp -m tcp --dport 80 \
    -j MARK --set-xmark 0x1/0xffff\n";

fn qr_iface(name: &str, mac: &str, addr: &str) -> InterfaceSpec {
    InterfaceSpec {
        name: name.into(),
        bridge: Some("br-int".into()),
        port: Some(name.into()),
        veth: None,
        mac: mac.into(),
        addresses: vec![addr.into()],
        mtu: Some(1450),
    }
}

fn veth(name: &str, mac: &str, addr: &str, ns: &str, peer: &str) -> InterfaceSpec {
    InterfaceSpec {
        name: name.into(),
        bridge: None,
        port: None,
        veth: Some(VethSpec { namespace: ns.into(), interface: peer.into() }),
        mac: mac.into(),
        addresses: vec![addr.into()],
        mtu: None,
    }
}

fn sysctl(pairs: &[(&str, &str)]) -> BTreeMap<String, SysctlValue> {
    pairs.iter().map(|(k, v)| (k.to_string(), SysctlValue::Text(v.to_string()))).collect()
}

fn qrouter_sysctl() -> BTreeMap<String, SysctlValue> {
    sysctl(&[
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv4.conf.qr-aae8ab78-22.send_redirects", "0"),
        ("net.ipv4.conf.qr-2909fe1f-46.send_redirects", "0"),
        ("net.ipv4.conf.qr-12fa6289-8f.send_redirects", "0"),
    ])
}

fn node2_qrouter_spec() -> NamespaceSpec {
    NamespaceSpec {
        name: QROUTER.into(),
        interfaces: vec![
            qr_iface(QR1, "fa:16:3e:9c:cf:de", "10.0.0.1/26"),
            qr_iface(QR2, "fa:16:3e:5c:3d:f9", "10.1.0.1/24"),
            qr_iface(QR6, "fa:16:3e:5e:30:73", "fda0:6cec:a994::1/64"),
            veth(RFP, "7e:e1:14:3d:7b:95", "169.254.106.114/31", FIPNS, FPR),
        ],
        sysctl: qrouter_sysctl(),
        ip_rule: QROUTER_RULES.into(),
        ip_route: NODE2_ROUTES.into(),
        ip_neigh: QROUTER_NEIGH.into(),
        iptables_nat: NODE2_NAT.into(),
        iptables_mangle: QROUTER_MANGLE.into(),
        iptables_raw: String::new(),
    }
}

fn node2_qrouter() -> Namespace {
    Namespace::from_spec(&node2_qrouter_spec()).unwrap()
}

const FIP_RAW: &str = "-P PREROUTING ACCEPT\n\
    -P OUTPUT ACCEPT\n\
    -N neutron-l3-agent-OUTPUT\n\
    -N neutron-l3-agent-PREROUTING\n\
    -A PREROUTING -j neutron-l3-agent-PREROUTING\n\
    -A OUTPUT -j neutron-l3-agent-OUTPUT\n\
    -A neutron-l3-agent-PREROUTING -j CT --notrack\n";

fn node2_fip() -> Namespace {
    Namespace::from_spec(&NamespaceSpec {
        name: FIPNS.into(),
        interfaces: vec![
            qr_iface(FG, "fa:16:3e:d1:4a:3c", "172.24.4.5/24"),
            veth(FPR, "b2:4c:7f:10:9e:21", "169.254.106.115/31", QROUTER, RFP),
        ],
        sysctl: sysctl(&[
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.ip_nonlocal_bind", "1"),
            ("net.ipv4.conf.fg-07ec92fd-de.proxy_arp", "1"),
        ]),
        ip_rule: "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n\
                  32767:\tfrom all lookup default\n\
                  2852022899:\tfrom all iif fpr-bd7982cb-b lookup 2852022899\n"
            .into(),
        ip_route: "default via 172.24.4.1 dev fg-07ec92fd-de table 2852022899\n\
                   169.254.106.114/31 dev fpr-bd7982cb-b proto kernel scope link \
                   src 169.254.106.115\n\
                   172.24.4.0/24 dev fg-07ec92fd-de proto kernel scope link src 172.24.4.5\n\
                   172.24.4.12 via 169.254.106.114 dev fpr-bd7982cb-b\n"
            .into(),
        ip_neigh: String::new(),
        iptables_nat: String::new(),
        iptables_mangle: String::new(),
        iptables_raw: FIP_RAW.into(),
    })
    .unwrap()
}

fn node3_qrouter() -> Namespace {
    let mut spec = node2_qrouter_spec();
    spec.interfaces.truncate(3);
    spec.ip_rule = QROUTER_RULES.replace("32768:\tfrom 10.0.0.8 lookup 16\n", "");
    spec.ip_route =
        NODE2_ROUTES.lines().filter(|l| !l.contains("rfp-")).map(|l| format!("{l}\n")).collect();
    spec.iptables_nat = NODE3_NAT.into();
    Namespace::from_spec(&spec).unwrap()
}

const NODE3_NAT: &str = "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n\
    -P POSTROUTING ACCEPT\n\
    -N neutron-l3-agent-OUTPUT\n-N neutron-l3-agent-POSTROUTING\n-N neutron-l3-agent-PREROUTING\n\
    -N neutron-l3-agent-snat\n-N neutron-postrouting-bottom\n\
    -A PREROUTING -j neutron-l3-agent-PREROUTING\n-A OUTPUT -j neutron-l3-agent-OUTPUT\n\
    -A POSTROUTING -j neutron-l3-agent-POSTROUTING\n-A POSTROUTING -j neutron-postrouting-bottom\n\
    -A neutron-l3-agent-PREROUTING -d 169.254.169.254/32 -i qr-+ -p tcp -m tcp --dport 80 \
    -j REDIRECT --to-ports 9697\n\
    -A neutron-postrouting-bottom -m comment \
    --comment \"Perform source NAT on outgoing traffic.\" -j neutron-l3-agent-snat\n";

const SNAT_NAT: &str = "-P PREROUTING ACCEPT\n\
    -P INPUT ACCEPT\n\
    -P OUTPUT ACCEPT\n\
    -P POSTROUTING ACCEPT\n\
    -N neutron-l3-agent-OUTPUT\n\
    -N neutron-l3-agent-POSTROUTING\n\
    -N neutron-l3-agent-PREROUTING\n\
    -N neutron-l3-agent-float-snat\n\
    -N neutron-l3-agent-snat\n\
    -N neutron-postrouting-bottom\n\
    -A PREROUTING -j neutron-l3-agent-PREROUTING\n\
    -A OUTPUT -j neutron-l3-agent-OUTPUT\n\
    -A POSTROUTING -j neutron-l3-agent-POSTROUTING\n\
    -A POSTROUTING -j neutron-postrouting-bottom\n\
    -A neutron-l3-agent-POSTROUTING ! -i qg-242f9c7b-c1 ! -o qg-242f9c7b-c1 \
    -m conntrack ! --ctstate DNAT -j ACCEPT\n\
    -A neutron-l3-agent-snat -o qg-242f9c7b-c1 -j SNAT --to-source 172.24.4.3\n\
    -A neutron-l3-agent-snat -m mark ! --mark 0x2/0xffff -m conntrack --ctstate DNAT \
    -j SNAT --to-source 172.24.4.3\n\
    -A neutron-postrouting-bottom -m comment \
    --comment \"Perform source NAT on outgoing traffic.\" -j neutron-l3-agent-snat\n";

const SNAT_MANGLE: &str = "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P FORWARD ACCEPT\n\
    -P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n\
    -N neutron-l3-agent-PREROUTING\n-N neutron-l3-agent-mark\n\
    -A PREROUTING -j neutron-l3-agent-PREROUTING\n\
    -A neutron-l3-agent-PREROUTING -j neutron-l3-agent-mark\n\
    -A neutron-l3-agent-mark -i qg-242f9c7b-c1 -j MARK --set-xmark 0x2/0xffff\n";

const QG: &str = "qg-242f9c7b-c1";
const SG1: &str = "sg-adafc8f8-1e";
const SG2: &str = "sg-bb562f9c-59";

fn node1_snat() -> Namespace {
    Namespace::from_spec(&NamespaceSpec {
        name: SNATNS.into(),
        interfaces: vec![
            qr_iface(SG1, "fa:16:3e:47:34:80", "10.0.0.3/26"),
            qr_iface("sg-39996102-8b", "fa:16:3e:69:37:93", "fda0:6cec:a994::5/64"),
            qr_iface(SG2, "fa:16:3e:a9:a2:19", "10.1.0.6/24"),
            qr_iface(QG, "fa:16:3e:af:c7:ce", "172.24.4.3/24"),
        ],
        sysctl: sysctl(&[("net.ipv4.ip_forward", "1")]),
        ip_rule: String::new(),
        ip_route: "default via 172.24.4.1 dev qg-242f9c7b-c1\n\
                   10.0.0.0/26 dev sg-adafc8f8-1e proto kernel scope link src 10.0.0.3\n\
                   10.1.0.0/24 dev sg-bb562f9c-59 proto kernel scope link src 10.1.0.6\n\
                   172.24.4.0/24 dev qg-242f9c7b-c1 proto kernel scope link src 172.24.4.3\n"
            .into(),
        ip_neigh: String::new(),
        iptables_nat: SNAT_NAT.into(),
        iptables_mangle: SNAT_MANGLE.into(),
        iptables_raw: String::new(),
    })
    .unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn mac(s: &str) -> Mac {
    parse_mac(s).unwrap()
}

/// (oif, next hop, gateway?, rule, table) of a Forward decision.
fn fwd(d: &RouteDecision) -> (&str, Ipv4Addr, bool, u32, u32) {
    match d {
        RouteDecision::Forward { oif, next_hop, gateway, rule, table, .. } => {
            (oif.as_str(), *next_hop, *gateway, *rule, *table)
        }
        other => panic!("expected Forward, got {other:?}"),
    }
}

fn single(a: &str) -> NatRange {
    NatRange {
        addrs: Some((ip(a), ip(a))),
        ports: None,
        random: false,
        random_fully: false,
        persistent: false,
    }
}

#[test]
fn east_west_goes_out_of_the_other_qr_port_via_main() {
    // §5.2 step 3: test02 → test04, main table, connected route, next hop = destination.
    let ns = node2_qrouter();
    let d = ns.forward(QR1, ip("10.0.0.8"), ip("10.1.0.10"), 64, 0);
    assert_eq!(fwd(&d), (QR2, ip("10.1.0.10"), false, 32766, TABLE_MAIN));
    let RouteDecision::Forward { src, redirect, deps, .. } = &d else { unreachable!() };
    assert_eq!(*src, Some(ip("10.1.0.1")));
    assert!(!redirect);
    assert_eq!(deps.dst_bits, 32); // the next hop is the destination
    assert_eq!(ns.neighbor(QR2, ip("10.1.0.10")), Some(mac("fa:16:3e:23:c5:28")));
    // The reply, routed on node3 (§5.2): qr-2909 → qr-aae8 with the neighbour T2.
    let n3 = node3_qrouter();
    let back = n3.route(Some(QR2), ip("10.1.0.10"), ip("10.0.0.8"), 0);
    assert_eq!(fwd(&back), (QR1, ip("10.0.0.8"), false, 32766, TABLE_MAIN));
    assert_eq!(n3.neighbor(QR1, ip("10.0.0.8")), Some(mac("fa:16:3e:76:47:75")));
    // The POSTROUTING ACCEPT rule keeps east-west traffic from being NATed.
    let pkt = Pkt5::new(ip("10.0.0.8"), ip("10.1.0.10"), 1, 0, 0);
    let nat = ns.nat_postrouting(Some(QR1), QR2, ip("10.1.0.10"), &pkt, CtInfo::NEW, 0);
    assert_eq!(nat.verdict, NatVerdict::Accept);
    let accept = ns.nat.chain_index("neutron-l3-agent-POSTROUTING").unwrap() as u16;
    assert!(nat.hits.iter().any(|h| h.chain == accept && h.rule == Some(0)));
    assert!(nat.deps.iif && nat.deps.oif && nat.deps.ct_state);
}

#[test]
fn snat_without_fip_takes_the_redirect_rule_on_node3() {
    // §5.3 step 2: test05 → 8.8.8.8: no main/default/FIP match, rule 167772161 → SG1.
    let ns = node3_qrouter();
    let d = ns.forward(QR1, ip("10.0.0.4"), ip("8.8.8.8"), 64, 0);
    assert_eq!(fwd(&d), (QR1, ip("10.0.0.3"), true, 167772161, 167772161));
    let RouteDecision::Forward { redirect, deps, .. } = &d else { unreachable!() };
    // It leaves by the qr- port it came in on; send_redirects=0 keeps Linux quiet.
    assert!(!redirect);
    // The rule's `from 10.0.0.1/26` needs 26 bits; the source check (is it 10.0.0.1, our
    // own address?) needs 30.
    assert_eq!(deps.src_bits, 30);
    assert!(deps.dst_bits < 32);
    assert_eq!(ns.neighbor(QR1, ip("10.0.0.3")), Some(mac("fa:16:3e:47:34:80")));
    // No NAT in node3's qrouter: POSTROUTING has no rules that match.
    let pkt = Pkt5::new(ip("10.0.0.4"), ip("8.8.8.8"), 1, 0, 0);
    let nat = ns.nat_postrouting(Some(QR1), QR1, ip("10.0.0.3"), &pkt, CtInfo::NEW, 0);
    assert_eq!(nat.verdict, NatVerdict::Accept);
    // Without Neutron's send_redirects=0, Linux would also send an ICMP redirect.
    let mut spec = node2_qrouter_spec();
    spec.sysctl = sysctl(&[("net.ipv4.ip_forward", "1")]);
    let chatty = Namespace::from_spec(&spec).unwrap();
    let d = chatty.route(Some(QR1), ip("10.0.0.4"), ip("8.8.8.8"), 0);
    assert!(matches!(d, RouteDecision::Forward { redirect: true, .. }));
    // test02 (with its FIP) leaves by rfp-, not the interface it came in on: no redirect.
    let d = chatty.route(Some(QR1), ip("10.0.0.8"), ip("8.8.8.8"), 0);
    assert!(matches!(d, RouteDecision::Forward { redirect: false, .. }));
}

#[test]
fn fip_traffic_leaves_by_table_16_and_is_snated() {
    // §5.4 outbound step 2.
    let ns = node2_qrouter();
    let d = ns.forward(QR1, ip("10.0.0.8"), ip("8.8.8.8"), 64, 0);
    assert_eq!(fwd(&d), (RFP, ip("169.254.106.115"), true, 32768, 16));
    assert_eq!(d.deps().src_bits, 32); // `from 10.0.0.8` decided it
    let pkt = Pkt5::new(ip("10.0.0.8"), ip("8.8.8.8"), 17, 5000, 53);
    let nat = ns.nat_postrouting(Some(QR1), RFP, ip("169.254.106.115"), &pkt, CtInfo::NEW, 0);
    assert_eq!(nat.verdict, NatVerdict::Snat(single("172.24.4.12")));
    let float = ns.nat.chain_index("neutron-l3-agent-float-snat").unwrap() as u16;
    assert!(nat.hits.iter().any(|h| h.chain == float && h.rule == Some(0)));
    assert_eq!(nat.deps.src_bits, 32);
    assert!(!nat.deps.sport && !nat.deps.dport);
    let spec = nat.verdict.nat_spec(&pkt).unwrap();
    assert_eq!(spec.kind, NatKind::Src);
    assert_eq!(spec.addrs, Some((ip("172.24.4.12").into(), ip("172.24.4.12").into())));
    // Another VM of the subnet has no FIP: the SNAT redirect rule, no NAT here.
    let d = ns.route(Some(QR1), ip("10.0.0.7"), ip("8.8.8.8"), 0);
    assert_eq!(fwd(&d), (QR1, ip("10.0.0.3"), true, 167772161, 167772161));
}

#[test]
fn fip_namespace_forwards_by_iif_rule_and_proxies_arp() {
    let fip = node2_fip();
    // §5.4 outbound step 4: `iif fpr-` → table 2852022899 → default via 172.24.4.1 dev fg-.
    let d = fip.forward(FPR, ip("172.24.4.12"), ip("8.8.8.8"), 63, 0);
    assert_eq!(fwd(&d), (FG, ip("172.24.4.1"), true, 2852022899, 2852022899));
    assert!(d.deps().iif);
    // No conntrack in the fip namespace.
    let pkt = Pkt5::new(ip("172.24.4.12"), ip("8.8.8.8"), 1, 0, 0);
    assert!(fip.notrack(FPR, &pkt).verdict);
    // Inbound step 2: the FIP's /32 in main → fpr-.
    let d = fip.forward(FG, ip("8.8.8.8"), ip("172.24.4.12"), 64, 0);
    assert_eq!(fwd(&d), (FPR, ip("169.254.106.114"), true, 32766, TABLE_MAIN));
    // The same destination from fg- must not use the iif rule (it would loop to fg-).
    // Inbound step 1: proxy ARP on fg- for the FIP, with fg-'s MAC.
    let fg_mac = mac("fa:16:3e:d1:4a:3c");
    assert_eq!(fip.arp_reply(FG, ip("172.24.4.1"), ip("172.24.4.12")), Some(fg_mac));
    // fg-'s own address; an address routed back out of fg- itself gets no answer.
    assert_eq!(fip.arp_reply(FG, ip("172.24.4.1"), ip("172.24.4.5")), Some(fg_mac));
    assert_eq!(fip.arp_reply(FG, ip("172.24.4.1"), ip("172.24.4.99")), None);
    // proxy_arp is off on fpr-.
    assert_eq!(fip.arp_reply(FPR, ip("169.254.106.114"), ip("172.24.4.1")), None);
    // With forwarding off, proxy ARP stops too (arp_process needs IN_DEV_FORWARD).
    let mut off = fip.clone();
    off.sysctl.insert("net.ipv4.ip_forward".into(), "0".into());
    assert_eq!(off.arp_reply(FG, ip("172.24.4.1"), ip("172.24.4.12")), None);
    assert!(matches!(
        off.route(Some(FG), ip("8.8.8.8"), ip("172.24.4.12"), 0),
        RouteDecision::Drop { reason: RouteDrop::ForwardingDisabled, .. }
    ));
}

#[test]
fn inbound_fip_is_dnated_on_rfp_only() {
    // §5.4 inbound step 3.
    let ns = node2_qrouter();
    let pkt = Pkt5::new(ip("8.8.8.8"), ip("172.24.4.12"), 6, 40000, 22);
    let pre = ns.nat_prerouting(RFP, &pkt, CtInfo::NEW, 0);
    assert_eq!(pre.verdict, NatVerdict::Dnat(single("10.0.0.8")));
    assert_eq!(pre.deps.dst_bits, 32);
    assert!(pre.deps.iif);
    // The same packet arriving on a qr- port is not translated.
    let other = ns.nat_prerouting(QR1, &pkt, CtInfo::NEW, 0);
    assert_eq!(other.verdict, NatVerdict::Accept);
    // After DNAT the packet is routed to test02 on qr-aae8.
    let d = ns.forward(RFP, ip("8.8.8.8"), ip("10.0.0.8"), 63, 0);
    assert_eq!(fwd(&d), (QR1, ip("10.0.0.8"), false, 32766, TABLE_MAIN));
    assert_eq!(ns.neighbor(QR1, ip("10.0.0.8")), Some(mac("fa:16:3e:76:47:75")));
    // POSTROUTING: the ACCEPT rule does not match (it came in on rfp-, and it is DNATed);
    // float-snat does not match the source; no NAT.
    let after = Pkt5 { dst: ip("10.0.0.8"), ..pkt };
    let post =
        ns.nat_postrouting(Some(RFP), QR1, ip("10.0.0.8"), &after, CtInfo::NEW.with_dnat(), 0);
    assert_eq!(post.verdict, NatVerdict::Accept);
    let accept = ns.nat.chain_index("neutron-l3-agent-POSTROUTING").unwrap() as u16;
    assert!(!post.hits.iter().any(|h| h.chain == accept && h.rule == Some(0)));
    let postrouting = ns.nat.chain_index("POSTROUTING").unwrap() as u16;
    assert_eq!(post.hits.last().map(|h| (h.chain, h.rule)), Some((postrouting, None)));
}

#[test]
fn snat_namespace_snats_out_of_qg() {
    // §5.3 step 8.
    let ns = node1_snat();
    let d = ns.forward(SG1, ip("10.0.0.4"), ip("8.8.8.8"), 63, 0);
    assert_eq!(fwd(&d), (QG, ip("172.24.4.1"), true, 32766, TABLE_MAIN));
    let pkt = Pkt5::new(ip("10.0.0.4"), ip("8.8.8.8"), 1, 0, 0);
    let nat = ns.nat_postrouting(Some(SG1), QG, ip("172.24.4.1"), &pkt, CtInfo::NEW, 0);
    assert_eq!(nat.verdict, NatVerdict::Snat(single("172.24.4.3")));
    // The ACCEPT rule was examined and did not match (-o qg-).
    let accept = ns.nat.chain_index("neutron-l3-agent-POSTROUTING").unwrap() as u16;
    assert!(!nat.hits.iter().any(|h| h.chain == accept));
    // Between two sg- ports the ACCEPT rule wins.
    let ew = Pkt5::new(ip("10.0.0.4"), ip("10.1.0.10"), 1, 0, 0);
    let d = ns.route(Some(SG1), ew.src, ew.dst, 0);
    assert_eq!(fwd(&d), (SG2, ip("10.1.0.10"), false, 32766, TABLE_MAIN));
    let nat = ns.nat_postrouting(Some(SG1), SG2, ip("10.1.0.10"), &ew, CtInfo::NEW, 0);
    assert_eq!(nat.verdict, NatVerdict::Accept);
    assert!(nat.hits.iter().any(|h| h.chain == accept && h.rule == Some(0)));
    // DNATed traffic towards an sg- port is SNATed unless it came from qg- (mark 0x2).
    let dn = CtInfo::NEW.with_dnat();
    let nat = ns.nat_postrouting(Some(SG2), SG1, ip("10.0.0.4"), &ew, dn, 0);
    assert_eq!(nat.verdict, NatVerdict::Snat(single("172.24.4.3")));
    assert_eq!(nat.deps.mark_mask, 0xffff);
    let marked = ns.mangle_prerouting(QG, &ew, CtInfo::NEW, 0).verdict;
    assert_eq!(marked, MangleVerdict { mark: 2, drop: false });
    let nat = ns.nat_postrouting(Some(QG), SG1, ip("10.0.0.4"), &ew, dn, marked.mark);
    assert_eq!(nat.verdict, NatVerdict::Accept);
    // The printed table is the seed's.
    assert_eq!(ns.format_iptables(IptTable::Nat, false), SNAT_NAT);
}

#[test]
fn masquerade_takes_the_output_address_towards_the_next_hop() {
    let mut spec = node2_qrouter_spec();
    spec.iptables_nat = "-A POSTROUTING -o qr-2909fe1f-46 -j MASQUERADE --random\n\
                         -A POSTROUTING -o rfp-bd7982cb-b -j MASQUERADE --to-ports 1024-2047\n\
                         -A PREROUTING -i qr-aae8ab78-22 -j REDIRECT\n"
        .into();
    let ns = Namespace::from_spec(&spec).unwrap();
    let pkt = Pkt5::new(ip("10.0.0.8"), ip("10.1.0.10"), 17, 1, 2);
    let m = ns.nat_postrouting(Some(QR1), QR2, ip("10.1.0.10"), &pkt, CtInfo::NEW, 0);
    let want = NatVerdict::Masquerade { addr: ip("10.1.0.1"), ports: None, random: true };
    assert_eq!(m.verdict, want);
    assert!(m.deps.oif);
    let m = ns.nat_postrouting(Some(QR1), RFP, ip("169.254.106.115"), &pkt, CtInfo::NEW, 0);
    let want = NatVerdict::Masquerade {
        addr: ip("169.254.106.114"),
        ports: Some((1024, 2047)),
        random: false,
    };
    assert_eq!(m.verdict, want);
    let spec = m.verdict.nat_spec(&pkt).unwrap();
    assert_eq!((spec.kind, spec.ports), (NatKind::Src, (1024, 2047)));
    // No IPv4 address on the output interface: inet_select_addr() takes the first global
    // address of the namespace (lo's is host scope).
    let mut spec2 = node2_qrouter_spec();
    spec2.iptables_nat = "-A POSTROUTING -j MASQUERADE\n".into();
    let all = Namespace::from_spec(&spec2).unwrap();
    let m = all.nat_postrouting(Some(QR1), QR6, ip("10.1.0.10"), &pkt, CtInfo::NEW, 0);
    let want = NatVerdict::Masquerade { addr: ip("10.0.0.1"), ports: None, random: false };
    assert_eq!(m.verdict, want);
    // REDIRECT without ports keeps the port; from the namespace itself it goes to 127.0.0.1.
    let r = ns.nat_prerouting(QR1, &pkt, CtInfo::NEW, 0);
    assert_eq!(
        r.verdict,
        NatVerdict::Redirect { addr: ip("10.0.0.1"), ports: None, random: false }
    );
    assert!(r.deps.iif);
    let out = ns.nat_output(QR1, &pkt, CtInfo::NEW, 0);
    assert_eq!(out.verdict, NatVerdict::Accept);
}

#[test]
fn metadata_requests_are_redirected_and_marked() {
    let ns = node2_qrouter();
    let pkt = Pkt5::new(ip("10.0.0.8"), ip("169.254.169.254"), 6, 40000, 80);
    let m = ns.mangle_prerouting(QR1, &pkt, CtInfo::NEW, 0);
    assert_eq!(m.verdict.mark, 1);
    let pre = ns.nat_prerouting(QR1, &pkt, CtInfo::NEW, m.verdict.mark);
    assert_eq!(
        pre.verdict,
        NatVerdict::Redirect { addr: ip("10.0.0.1"), ports: Some((9697, 9697)), random: false }
    );
    assert!(pre.deps.iif && pre.deps.proto && pre.deps.dport && !pre.deps.sport);
    assert_eq!(pre.deps.dst_bits, 32);
    let spec = pre.verdict.nat_spec(&pkt).unwrap();
    assert_eq!((spec.kind, spec.ports), (NatKind::Dst, (9697, 9697)));
    // Then delivered locally (to the metadata proxy).
    let d = ns.route(Some(QR1), ip("10.0.0.8"), ip("10.0.0.1"), 1);
    assert!(matches!(
        d,
        RouteDecision::Local { broadcast: false, rule: Some(0), table: Some(TABLE_LOCAL), .. }
    ));
    // Port 443, or from rfp-: not redirected.
    let https = Pkt5 { dport: 443, ..pkt };
    assert_eq!(ns.nat_prerouting(QR1, &https, CtInfo::NEW, 0).verdict, NatVerdict::Accept);
    assert_eq!(ns.nat_prerouting(RFP, &pkt, CtInfo::NEW, 0).verdict, NatVerdict::Accept);
    // Untracked packets never see the nat table.
    let un = ns.nat_prerouting(QR1, &pkt, CtInfo::UNTRACKED, 0);
    assert_eq!((un.verdict, un.hits.len()), (NatVerdict::Accept, 0));
}

#[test]
fn icmp_errors_a_router_sends() {
    let ns = node2_qrouter();
    // TTL exceeded when forwarding with TTL 1, from the address of the route back.
    let d = ns.forward(QR1, ip("10.0.0.8"), ip("10.1.0.10"), 1, 0);
    let RouteDecision::TtlExceeded { icmp, deps } = d else { panic!("{d:?}") };
    let want = IcmpSource { src: ip("10.0.0.1"), oif: QR1.into(), next_hop: ip("10.0.0.8") };
    assert_eq!(icmp, Some(want));
    assert_eq!(deps.src_bits, 32);
    // TTL 1 to a local address is delivered.
    let d = ns.forward(QR1, ip("10.0.0.8"), ip("10.0.0.1"), 1, 0);
    assert!(matches!(d, RouteDecision::Local { .. }));
    // No route: net unreachable, from the fg- address towards the sender.
    let fip = node2_fip();
    let d = fip.forward(FG, ip("172.24.4.1"), ip("10.9.9.9"), 64, 0);
    let RouteDecision::Unreachable { code, icmp, rule, .. } = d else { panic!("{d:?}") };
    assert_eq!((code, rule), (ICMP_NET_UNREACH, None));
    let want = IcmpSource { src: ip("172.24.4.5"), oif: FG.into(), next_hop: ip("172.24.4.1") };
    assert_eq!(icmp, Some(want.clone()));
    // With icmp_errors_use_inbound_ifaddr the source is the input interface's address
    // (here the sender sits behind the other qr- port).
    let d = ns.forward(QR1, ip("10.1.0.10"), ip("10.0.0.4"), 1, 0);
    let normal = IcmpSource { src: ip("10.1.0.1"), oif: QR2.into(), next_hop: ip("10.1.0.10") };
    assert!(matches!(d, RouteDecision::TtlExceeded { icmp: Some(i), .. } if i == normal));
    let mut inbound = ns.clone();
    inbound.sysctl.insert("net.ipv4.icmp_errors_use_inbound_ifaddr".into(), "1".into());
    let d = inbound.forward(QR1, ip("10.1.0.10"), ip("10.0.0.4"), 1, 0);
    let want = IcmpSource { src: ip("10.0.0.1"), ..normal };
    assert!(matches!(d, RouteDecision::TtlExceeded { icmp: Some(i), .. } if i == want));
    // No route back to the sender: Linux sends nothing.
    let d = ns.route(Some(RFP), ip("8.8.8.8"), ip("10.2.0.1"), 0);
    assert!(matches!(d, RouteDecision::Unreachable { code: ICMP_NET_UNREACH, icmp: None, .. }));
}

#[test]
fn route_types_rules_and_martians() {
    let mut spec = node2_qrouter_spec();
    spec.ip_rule.push_str(
        "100:\tfrom all to 192.0.2.0/24 unreachable\n\
         101:\tfrom all to 198.51.100.0/24 blackhole\n\
         102:\tfrom all fwmark 0x4/0x4 goto 110\n\
         103:\tfrom all to 203.0.113.0/24 prohibit\n\
         110:\tfrom all lookup 50\n",
    );
    spec.ip_route.push_str(
        "unreachable 10.50.0.0/16 table 50\n\
         prohibit 10.51.0.0/16 table 50\n\
         blackhole 10.52.0.0/16 table 50\n\
         throw 10.53.0.0/16 table 50\n\
         10.54.0.0/16 via 10.1.0.6 dev qr-2909fe1f-46 table 50\n",
    );
    let ns = Namespace::from_spec(&spec).unwrap();
    let from = ip("10.1.0.10");
    let r = |dst: &str, mark| ns.route(Some(QR2), from, ip(dst), mark);
    assert!(matches!(
        r("192.0.2.1", 0),
        RouteDecision::Unreachable { code: 0, rule: Some(100), table: None, .. }
    ));
    assert!(matches!(
        r("198.51.100.1", 0),
        RouteDecision::Drop { reason: RouteDrop::Blackhole, rule: Some(101), .. }
    ));
    assert!(matches!(
        r("203.0.113.1", 0),
        RouteDecision::Unreachable { code: 13, rule: Some(103), .. }
    ));
    // The goto skips rule 103.
    assert_eq!(fwd(&r("203.0.113.1", 4)), (QR2, ip("10.1.0.6"), true, 167837697, 167837697));
    assert!(matches!(
        r("10.50.1.1", 0),
        RouteDecision::Unreachable { code: 1, table: Some(50), .. }
    ));
    assert!(matches!(
        r("10.51.1.1", 0),
        RouteDecision::Unreachable { code: 13, table: Some(50), .. }
    ));
    assert!(matches!(r("10.52.1.1", 0), RouteDecision::Drop { reason: RouteDrop::Blackhole, .. }));
    // throw: on to the next rules, which send it to the SNAT gateway.
    assert_eq!(fwd(&r("10.53.1.1", 0)), (QR2, ip("10.1.0.6"), true, 167837697, 167837697));
    assert_eq!(fwd(&r("10.54.1.1", 0)), (QR2, ip("10.1.0.6"), true, 110, 50));
    assert_eq!(r("10.54.1.1", 0).deps().mark_mask, 4);
    // Local and broadcast delivery; martians.
    assert!(matches!(r("10.1.0.1", 0), RouteDecision::Local { broadcast: false, .. }));
    assert!(matches!(r("10.0.0.63", 0), RouteDecision::Local { broadcast: true, .. }));
    assert!(matches!(
        r("255.255.255.255", 0),
        RouteDecision::Local { broadcast: true, rule: None, .. }
    ));
    let martian = |s: &str, d: &str| match ns.route(Some(QR1), ip(s), ip(d), 0) {
        RouteDecision::Drop { reason, .. } => Some(reason),
        _ => None,
    };
    assert_eq!(martian("10.0.0.1", "10.1.0.10"), Some(RouteDrop::MartianSource)); // our own
    assert_eq!(martian("127.0.0.1", "10.1.0.10"), Some(RouteDrop::MartianSource));
    assert_eq!(martian("0.1.2.3", "10.1.0.10"), Some(RouteDrop::MartianSource));
    assert_eq!(martian("224.0.0.5", "10.1.0.10"), Some(RouteDrop::MartianSource));
    assert_eq!(martian("10.0.0.8", "127.0.0.1"), Some(RouteDrop::MartianDestination));
    assert_eq!(martian("10.0.0.8", "0.0.0.1"), Some(RouteDrop::MartianDestination));
    assert_eq!(martian("10.0.0.8", "239.1.1.1"), Some(RouteDrop::Multicast));
    // Locally generated: rules see iif lo, the source is chosen from the route.
    let out = ns.route(None, Ipv4Addr::UNSPECIFIED, ip("10.1.0.10"), 0);
    assert!(matches!(&out, RouteDecision::Forward { src: Some(s), .. } if *s == ip("10.1.0.1")));
    assert!(ns.is_local(ip("10.0.0.1")) && ns.is_local(ip("169.254.106.114")));
    assert!(ns.is_local(ip("127.0.0.1")) && !ns.is_local(ip("10.0.0.63")));
}

#[test]
fn route_decisions_depend_only_on_their_deps() {
    // For random packets, randomizing every bit outside the reported deps must not change
    // the decision: that is what a megaflow built from them relies on.
    let namespaces = [(node2_qrouter(), [QR1, QR2, RFP]), (node2_fip(), [FG, FPR, FG])];
    let pool = [
        "10.0.0.8",
        "10.0.0.4",
        "10.0.0.1",
        "10.1.0.10",
        "8.8.8.8",
        "172.24.4.12",
        "172.24.4.1",
        "169.254.106.115",
        "10.0.0.63",
        "127.0.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
    ];
    let mut seed = 0x9e37_79b9u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let strip = |d: &RouteDecision| {
        let mut d = d.clone();
        match &mut d {
            RouteDecision::Forward { deps, .. }
            | RouteDecision::Local { deps, .. }
            | RouteDecision::Unreachable { deps, .. }
            | RouteDecision::TtlExceeded { deps, .. }
            | RouteDecision::Drop { deps, .. } => *deps = DecisionDeps::default(),
        }
        d
    };
    for _ in 0..3000 {
        let (ns, ifs) = &namespaces[next() as usize % 2];
        let iif = ifs[next() as usize % 3];
        let pick = |r: u32| {
            let base = u32::from(ip(pool[r as usize % pool.len()]));
            // Flip a few low bits half of the time.
            Ipv4Addr::from(if r & 0x100 != 0 { base ^ (r >> 9) & 0xff } else { base })
        };
        let (src, dst) = (pick(next()), pick(next()));
        let ttl = (next() % 3) as u8;
        let d = ns.forward(iif, src, dst, ttl, 0);
        let deps = d.deps();
        let r = next();
        let keep_s = Ipv4Net::new(src, deps.src_bits).mask();
        let keep_d = Ipv4Net::new(dst, deps.dst_bits).mask();
        let src2 = Ipv4Addr::from(u32::from(src) & keep_s | r & !keep_s);
        let dst2 = Ipv4Addr::from(u32::from(dst) & keep_d | r.rotate_left(11) & !keep_d);
        let d2 = ns.forward(iif, src2, dst2, ttl, 0);
        assert_eq!(strip(&d), strip(&d2), "seed {seed:#x}: {iif} {src}->{dst} vs {src2}->{dst2}");
    }
}

#[test]
fn printers_give_back_the_seed_text() {
    let ns = node2_qrouter();
    assert_eq!(ns.format_ip_rule(), QROUTER_RULES);
    assert_eq!(ns.format_ip_route(), NODE2_ROUTES);
    assert_eq!(ns.format_ip_neigh(), QROUTER_NEIGH);
    assert_eq!(ns.format_iptables(IptTable::Nat, false), NODE2_NAT);
    assert_eq!(ns.format_iptables(IptTable::Mangle, false), QROUTER_MANGLE);
    assert_eq!(node2_fip().format_iptables(IptTable::Raw, false), FIP_RAW);
    // Empty texts print empty: the implied default rules and local routes are not written.
    let snat = node1_snat();
    assert_eq!(snat.format_ip_rule(), "");
    assert_eq!(snat.rules.len(), 3);
    assert!(snat.is_local(ip("172.24.4.3")));
    // An empty raw table prints its policies.
    assert_eq!(
        snat.format_iptables(IptTable::Raw, false),
        "-P PREROUTING ACCEPT\n-P OUTPUT ACCEPT\n"
    );
}

#[test]
fn counters_are_credited_and_dumped() {
    let mut ns = node2_qrouter();
    let pkt = Pkt5::new(ip("10.0.0.8"), ip("8.8.8.8"), 17, 5000, 53);
    let nat = ns.nat_postrouting(Some(QR1), RFP, ip("169.254.106.115"), &pkt, CtInfo::NEW, 0);
    ns.credit(&nat.hits, 1, 60);
    ns.credit(&nat.hits, 1, 60);
    let dump = ns.format_iptables(IptTable::Nat, true);
    assert!(
        dump.contains("-A neutron-l3-agent-float-snat -s 10.0.0.8/32 -c 2 120 -j SNAT"),
        "{dump}"
    );
    assert!(dump.contains("-P POSTROUTING ACCEPT -c 0 0\n"));
    assert!(dump.contains("! --ctstate DNAT -c 0 0 -j ACCEPT\n"));
    // The -v dump reads back with its counters.
    let again = iptables::parse_iptables(IptTable::Nat, &dump).unwrap();
    assert_eq!(iptables::format_iptables(&again, true), dump);
    assert_eq!(again, ns.nat);
}

#[test]
fn interfaces_ports_veths_and_neighbours() {
    let mut q = node2_qrouter();
    let fip = node2_fip();
    assert_eq!(q.iface_for_port("br-int", QR1).map(|i| i.name.as_str()), Some(QR1));
    assert_eq!(q.iface_for_port("br-tun", QR1), None);
    assert_eq!(q.iface_for_veth(FIPNS, FPR).map(|i| i.name.as_str()), Some(RFP));
    assert_eq!(q.iface(QR1).unwrap().mtu, 1450);
    assert_eq!(q.iface(QR6).unwrap().addresses_v6.len(), 1);
    validate_veths(&[q.clone(), fip.clone()]).unwrap();
    let e = validate_veths(std::slice::from_ref(&q)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{QROUTER}: interfaces[3].veth: no namespace \"{FIPNS}\" on this node")
    );
    // Learning: a new entry becomes STALE; a PERMANENT one is kept.
    let m = mac("fa:16:3e:00:00:01");
    q.neigh_update(QR1, ip("10.0.0.20"), m);
    assert_eq!(q.neighbor(QR1, ip("10.0.0.20")), Some(m));
    q.neigh_update(QR1, ip("10.0.0.8"), m);
    assert_eq!(q.neighbor(QR1, ip("10.0.0.8")), Some(mac("fa:16:3e:76:47:75")));
    assert!(q
        .format_ip_neigh()
        .ends_with("10.0.0.20 dev qr-aae8ab78-22 lladdr fa:16:3e:00:00:01 STALE\n"));
    // ARP for the gateway is answered by the qr- port; with arp_ignore=1 only on its own port.
    let gw1 = mac("fa:16:3e:9c:cf:de");
    assert_eq!(q.arp_reply(QR1, ip("10.0.0.8"), ip("10.0.0.1")), Some(gw1));
    assert_eq!(q.arp_reply(QR1, ip("10.0.0.8"), ip("10.1.0.1")), Some(gw1));
    q.sysctl.insert("net.ipv4.conf.all.arp_ignore".into(), "1".into());
    assert_eq!(q.arp_reply(QR1, ip("10.0.0.8"), ip("10.1.0.1")), None);
    assert_eq!(q.arp_reply(QR1, ip("10.0.0.8"), ip("10.0.0.1")), Some(gw1));
    // A duplicate address probe for our address is answered; for another one not.
    assert_eq!(q.arp_reply(QR1, Ipv4Addr::UNSPECIFIED, ip("10.0.0.1")), Some(gw1));
    assert_eq!(q.arp_reply(QR1, Ipv4Addr::UNSPECIFIED, ip("10.0.0.9")), None);
    // No proxy ARP in the qrouter: the target is routed out of the same port.
    assert_eq!(q.arp_reply(QR1, ip("10.0.0.8"), ip("10.0.0.4")), None);
}

#[test]
fn validation_errors_name_the_namespace_and_the_place() {
    let wrong = std::cell::RefCell::new(Vec::new());
    let check = |f: &dyn Fn(&mut NamespaceSpec), want: &str| {
        let mut spec = node2_qrouter_spec();
        f(&mut spec);
        let got = Namespace::from_spec(&spec).map_or_else(|e| e.to_string(), |_| "Ok".into());
        if got != format!("{QROUTER}: {want}") {
            wrong.borrow_mut().push(format!("got  {got}\nwant {QROUTER}: {want}"));
        }
    };
    check(
        &|s| {
            s.ip_route = s.ip_route.replace("dev qr-2909fe1f-46 table", "dev qr-2909fe1f-47 table")
        },
        "ip_route line 2, column 26: no interface \"qr-2909fe1f-47\"",
    );
    check(
        &|s| s.ip_route = s.ip_route.replace("via 10.1.0.6", "via 10.2.0.6"),
        "ip_route line 2, column 13: gateway 10.2.0.6 is not on a connected subnet of \
         qr-2909fe1f-46",
    );
    check(
        &|s| s.ip_route = s.ip_route.replace("src 10.1.0.1\n", "src 10.1.0.2\n"),
        "ip_route line 5, column 60: 10.1.0.2 is not an address of this namespace",
    );
    check(
        &|s| s.ip_route = s.ip_route.replace("10.1.0.0/24 dev", "10.1.1.0/24 dev"),
        "ip_route line 5, column 17: connected route 10.1.1.0/24 has no matching address on \
         qr-2909fe1f-46",
    );
    check(
        &|s| {
            let connected = "10.1.0.0/24 dev qr-2909fe1f-46 proto kernel scope link src 10.1.0.1\n";
            s.ip_route = s.ip_route.replace(connected, "");
        },
        "interfaces[1].addresses[0]: 10.1.0.1/24 needs its connected route \"10.1.0.0/24 dev \
         qr-2909fe1f-46 proto kernel scope link src 10.1.0.1\" in ip_route",
    );
    check(
        &|s| s.ip_route = s.ip_route.replace("table 16\n", "table 16 metrc 5\n"),
        "ip_route line 3, column 57: unknown keyword \"metrc\"; expected one of via, dev, proto, \
         scope, src, metric, table",
    );
    check(
        &|s| s.ip_rule.push_str("5:\tfrom all iif qr-nope lookup 5\n"),
        "ip_rule line 7, column 17: no interface \"qr-nope\"",
    );
    check(
        &|s| s.ip_neigh = "10.0.0.9 dev qr-nope FAILED\n".into(),
        "ip_neigh line 1, column 14: no interface \"qr-nope\"",
    );
    check(
        &|s| {
            s.iptables_nat =
                s.iptables_nat.replace("-j neutron-l3-agent-snat\n", "-j neutron-l3-agent-snatt\n")
        },
        "iptables_nat line 20, column 97: unknown target \"neutron-l3-agent-snatt\"; expected a \
         chain or one of ACCEPT, DROP, RETURN, DNAT, SNAT, MASQUERADE, REDIRECT, MARK, CT",
    );
    check(
        &|s| {
            s.iptables_nat.push_str("-A neutron-l3-agent-PREROUTING -j SNAT --to-source 1.2.3.4\n")
        },
        "iptables_nat line 21: this target is not valid in chain neutron-l3-agent-PREROUTING \
         (reached from PREROUTING); the kernel accepts it only from POSTROUTING, INPUT",
    );
    check(
        &|s| {
            s.sysctl.insert("net.ipv4.conf.qr-x.proxy_arp".into(), SysctlValue::Number(1));
        },
        "sysctl.net.ipv4.conf.qr-x.proxy_arp: no interface \"qr-x\"",
    );
    check(&|s| s.interfaces[0].mac = "fa:16".into(), "interfaces[0].mac: bad MAC \"fa:16\"");
    check(
        &|s| s.interfaces[1].addresses = vec!["10.1.0.1".into()],
        "interfaces[1].addresses[0]: bad address \"10.1.0.1\"; expected A.B.C.D/LEN",
    );
    check(
        &|s| s.interfaces[1].addresses = vec!["10.0.0.1/24".into()],
        "interfaces[1].addresses[0]: address 10.0.0.1 is used twice",
    );
    check(
        &|s| s.interfaces[1].veth = Some(VethSpec::default()),
        "interfaces[1]: needs either \"bridge\" and \"port\", or \"veth\"",
    );
    check(
        &|s| s.interfaces[1].name = QR1.into(),
        &format!("interfaces[1].name: interface \"{QR1}\" is defined twice"),
    );
    let wrong = wrong.into_inner();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn from_json_reads_the_contract() {
    let json = r#"{
      "name": "qrouter-x",
      "interfaces": [
        {"name": "qr-aae8ab78-22", "bridge": "br-int", "port": "qr-aae8ab78-22",
         "mac": "fa:16:3e:9c:cf:de", "addresses": ["10.0.0.1/26"], "mtu": 1450}
      ],
      "sysctl": {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.send_redirects": 0},
      "ip_rule": "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n",
      "ip_route": "10.0.0.0/26 dev qr-aae8ab78-22 proto kernel scope link src 10.0.0.1\n",
      "iptables_nat": "-P PREROUTING ACCEPT\n"
    }"#;
    let ns = Namespace::from_json(json).unwrap();
    assert!(ns.forwarding(QR1));
    assert_eq!(ns.sysctl_int("net.ipv4.conf.all.send_redirects"), Some(0));
    assert_eq!(ns.format_iptables(IptTable::Nat, false).lines().count(), 4);
    let e = Namespace::from_json("{\"name\": 3}").unwrap_err();
    assert!(e.to_string().starts_with("namespace: json line 1, column"), "{e}");
    let _ = ctstate::NEW;
    let _ = Target::Accept;
}
