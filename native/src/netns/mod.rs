//! Emulated Linux router namespaces (Neutron's qrouter-, snat- and fip-): interfaces,
//! policy routing (`ip rule` + route tables), neighbours, ARP and proxy ARP, and the
//! iptables nat/mangle/raw tables, built from the text users copy from a real node (see the
//! namespace contract) and queried with pure decision functions.
//!
//! The decisions follow Linux:
//! - `route` is `ip_route_input_slow()` / `ip_route_output_key()`: martian checks, the
//!   rules in priority order (`fib_rules_lookup()`), longest prefix match per table with
//!   route types (`local` delivers, `unreachable`/`prohibit` fail with an ICMP code,
//!   `blackhole` drops, `throw` and a miss go on to the next rule), the forwarding switch of
//!   the input interface, the source check of `fib_validate_source()`, ICMP redirects.
//! - `forward` adds `ip_forward()`'s TTL check.
//! - `arp_reply` is `arp_process()`: own addresses (with `arp_ignore`), proxy ARP when the
//!   target is routed out of another interface and `proxy_arp` is on for the input one.
//! - `nat_*`, `mangle_prerouting` and `notrack` walk the tables for the first packet of a
//!   connection, as `nf_nat_inet_fn()` only does for new connections; later packets use the
//!   conntrack mapping (the caller's conntrack).
//!
//! Invariants:
//! - A `Namespace` is validated once, when it is built: every interface named by a rule,
//!   route or neighbour exists; routes' gateways are on a connected subnet of their device
//!   (or `onlink`); every address has its connected route and every `proto kernel` link
//!   route its address; the kernel's own table-local entries exist (they are implied when
//!   the text leaves them out, and not printed back). So decisions never meet a dangling
//!   name and never panic.
//! - Every decision reports what it read (`DecisionDeps`, `NfDeps`): leading address bits,
//!   whether the input interface mattered, the mark bits. Two packets that agree on those
//!   get the same decision, which is the megaflow contract.
//! - Decisions take `&self`; rule counters change only through `credit`.

pub mod iptables;
pub mod neigh;
pub mod netfilter;
pub mod route;
pub mod rule;
pub mod text;

#[cfg(test)]
mod seed_tests;

use crate::ofproto::action::{NatKind, NatSpec};
use crate::wire::eth::Mac;
use iptables::{format_iptables, parse_iptables, IptTable, Iptables, NatRange, Target};
use neigh::{format_ip_neigh, parse_ip_neigh, NeighLine, Neighbor, NudState};
use netfilter::{walk, CtInfo, HookInput, NfDeps, Pkt5, RuleHit, Terminal};
use route::{format_ip_route, parse_ip_route, Route, RouteLine, RouteType};
use route::{PROTO_KERNEL, SCOPE_HOST, SCOPE_LINK, SCOPE_UNIVERSE};
use rule::{format_ip_rule, parse_ip_rule, Rule, RuleAction, TABLE_LOCAL, TABLE_MAIN};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use text::{parse_mac, parse_net, Ipv4Net, ParseError};

/// ICMP destination-unreachable codes a router sends.
pub const ICMP_NET_UNREACH: u8 = 0;
pub const ICMP_HOST_UNREACH: u8 = 1;
pub const ICMP_PKT_FILTERED: u8 = 13; // "communication administratively prohibited"

// ---------------------------------------------------------------------------------------
// The contract's JSON.

/// One namespace of a raw scenario node, as the contract writes it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct NamespaceSpec {
    pub name: String,
    #[serde(default)]
    pub interfaces: Vec<InterfaceSpec>,
    #[serde(default)]
    pub sysctl: BTreeMap<String, SysctlValue>,
    #[serde(default)]
    pub ip_rule: String,
    #[serde(default)]
    pub ip_route: String,
    #[serde(default)]
    pub ip_neigh: String,
    #[serde(default)]
    pub iptables_nat: String,
    #[serde(default)]
    pub iptables_mangle: String,
    #[serde(default)]
    pub iptables_raw: String,
}

/// A sysctl value: the contract writes strings (`"1"`); numbers are accepted too.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SysctlValue {
    Text(String),
    Number(i64),
}

impl SysctlValue {
    fn text(&self) -> String {
        match self {
            SysctlValue::Text(s) => s.trim().to_string(),
            SysctlValue::Number(n) => n.to_string(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct InterfaceSpec {
    pub name: String,
    /// The bridge holding the `internal` port that carries the interface's frames.
    pub bridge: Option<String>,
    pub port: Option<String>,
    /// The other end of a veth pair.
    pub veth: Option<VethSpec>,
    pub mac: String,
    /// `A.B.C.D/LEN` (and IPv6 `X::Y/LEN`, kept but not routed).
    #[serde(default)]
    pub addresses: Vec<String>,
    pub mtu: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct VethSpec {
    pub namespace: String,
    pub interface: String,
}

// ---------------------------------------------------------------------------------------
// The built namespace.

/// What carries an interface's frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// An `internal` port of a bridge of the same node.
    Port { bridge: String, port: String },
    /// The other end of a veth pair, in another namespace of the same node.
    Veth { namespace: String, interface: String },
    /// `lo`, which every namespace has.
    Loopback,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub binding: Binding,
    pub mac: Mac,
    /// IPv4 addresses in order; one whose subnet an earlier one already covers is secondary.
    pub addresses: Vec<Ipv4Net>,
    pub addresses_v6: Vec<(Ipv6Addr, u8)>,
    pub mtu: u32,
}

impl Interface {
    /// Primary addresses (the kernel's `IFA_F_SECONDARY` clear).
    pub fn primary_addresses(&self) -> impl Iterator<Item = &Ipv4Net> {
        self.addresses.iter().enumerate().filter_map(|(i, a)| {
            let secondary =
                self.addresses[..i].iter().any(|p| p.len == a.len && p.contains(a.addr));
            (!secondary).then_some(a)
        })
    }
}

/// A namespace error: which namespace, and where in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetnsError {
    pub namespace: String,
    pub error: ParseError,
}

impl fmt::Display for NetnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.namespace, self.error)
    }
}

impl std::error::Error for NetnsError {}

/// An emulated router namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    /// `lo` first, then the contract's interfaces in order.
    pub interfaces: Vec<Interface>,
    pub sysctl: BTreeMap<String, String>,
    /// Sorted by priority; the three default rules (line 0) when the text is empty.
    pub rules: Vec<Rule>,
    /// The text's lines, then the implied table-local entries (line 0).
    pub routes: Vec<RouteLine>,
    /// The text's lines, then entries learned at run time (line 0).
    pub neighbors: Vec<NeighLine>,
    pub nat: Iptables,
    pub mangle: Iptables,
    pub raw: Iptables,
    custom_rules: bool, // rules other than the three defaults (`fib4_has_custom_rules`)
}

/// The fields a routing decision read (for a megaflow mask): leading bits of the source
/// and destination addresses, whether the input interface mattered, and the mark bits.
/// Values copied from the packet count as read: when the next hop is the destination itself
/// (a connected route) `dst_bits` is 32, and when an ICMP error goes straight to the sender
/// `src_bits` is 32, so the whole decision (next hop included) is the same for every packet
/// that agrees on these bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecisionDeps {
    pub src_bits: u8,
    pub dst_bits: u8,
    pub iif: bool,
    pub mark_mask: u32,
}

impl DecisionDeps {
    fn src(&mut self, n: Ipv4Net, ip: Ipv4Addr) {
        self.src_bits = self.src_bits.max(n.bits_to_decide(ip));
    }

    fn dst(&mut self, n: Ipv4Net, ip: Ipv4Addr) {
        self.dst_bits = self.dst_bits.max(n.bits_to_decide(ip));
    }
}

/// Where an ICMP error a router sends goes, and the source address Linux gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpSource {
    pub src: Ipv4Addr,
    pub oif: String,
    pub next_hop: Ipv4Addr,
}

/// Why a packet is dropped without an ICMP error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteDrop {
    /// A `blackhole` route or rule.
    Blackhole,
    /// Not local, and forwarding is off on the input interface.
    ForwardingDisabled,
    MartianSource,
    MartianDestination,
    /// A multicast destination: no multicast routing here.
    Multicast,
}

/// The outcome of a routing decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteDecision {
    /// Send out of `oif` to `next_hop` (the gateway, or the destination itself on a
    /// connected route).
    Forward {
        oif: String,
        next_hop: Ipv4Addr,
        gateway: bool,
        /// The route's preferred source (`src`), or the address Linux selects for it: what
        /// a locally generated packet would carry and what MASQUERADE uses.
        src: Option<Ipv4Addr>,
        rule: u32,  // priority of the rule that found the route
        table: u32, // the table it was found in
        /// Linux also sends an ICMP redirect (the packet leaves by the interface it came in
        /// on, towards a next hop on the sender's subnet, with `send_redirects` on).
        redirect: bool,
        deps: DecisionDeps,
    },
    /// Deliver to the namespace itself (a `local` route, or a broadcast).
    Local { broadcast: bool, rule: Option<u32>, table: Option<u32>, deps: DecisionDeps },
    /// No route, an `unreachable`/`prohibit` route or rule: drop, and send ICMP destination
    /// unreachable with `code` (`ICMP_NET_UNREACH`, `ICMP_HOST_UNREACH`,
    /// `ICMP_PKT_FILTERED`) via `icmp` (None: Linux sends nothing, e.g. no route back, or
    /// the packet is locally generated and the error goes to the socket).
    Unreachable {
        code: u8,
        rule: Option<u32>,
        table: Option<u32>,
        icmp: Option<IcmpSource>,
        deps: DecisionDeps,
    },
    /// Forwarding with TTL <= 1: drop, and send ICMP time exceeded via `icmp`. (The decision
    /// also depends on the TTL.)
    TtlExceeded { icmp: Option<IcmpSource>, deps: DecisionDeps },
    /// Drop silently.
    Drop { reason: RouteDrop, rule: Option<u32>, table: Option<u32>, deps: DecisionDeps },
}

impl RouteDecision {
    pub fn deps(&self) -> DecisionDeps {
        match self {
            RouteDecision::Forward { deps, .. }
            | RouteDecision::Local { deps, .. }
            | RouteDecision::Unreachable { deps, .. }
            | RouteDecision::TtlExceeded { deps, .. }
            | RouteDecision::Drop { deps, .. } => *deps,
        }
    }
}

/// A NAT decision for the first packet of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NatVerdict {
    /// No translation (a null binding).
    Accept,
    /// Drop (a DROP policy, or MASQUERADE/REDIRECT without an address to use).
    Drop,
    Dnat(NatRange),
    Snat(NatRange),
    /// SNAT to the output interface's address.
    Masquerade {
        addr: Ipv4Addr,
        ports: Option<(u16, u16)>,
        random: bool,
    },
    /// DNAT to the input interface's first address (127.0.0.1 for local packets).
    Redirect {
        addr: Ipv4Addr,
        ports: Option<(u16, u16)>,
        random: bool,
    },
}

impl NatVerdict {
    /// The equivalent `ct(nat(...))` request (None for Accept and Drop). A DNAT to a port
    /// alone keeps the packet's destination address.
    pub fn nat_spec(&self, pkt: &Pkt5) -> Option<NatSpec> {
        let spec = |kind, addrs: Option<(Ipv4Addr, Ipv4Addr)>, ports: Option<(u16, u16)>| NatSpec {
            kind,
            addrs: addrs.map(|(a, b)| (a.into(), b.into())),
            ports: ports.unwrap_or((0, 0)),
            random: false,
            hash: false,
            persistent: false,
        };
        let mut s = match self {
            NatVerdict::Accept | NatVerdict::Drop => return None,
            NatVerdict::Dnat(r) => {
                let mut s = spec(NatKind::Dst, r.addrs.or(Some((pkt.dst, pkt.dst))), r.ports);
                (s.random, s.persistent) = (r.random || r.random_fully, r.persistent);
                s
            }
            NatVerdict::Snat(r) => {
                let mut s = spec(NatKind::Src, r.addrs.or(Some((pkt.src, pkt.src))), r.ports);
                (s.random, s.persistent) = (r.random || r.random_fully, r.persistent);
                s
            }
            NatVerdict::Masquerade { addr, ports, .. } => {
                spec(NatKind::Src, Some((*addr, *addr)), *ports)
            }
            NatVerdict::Redirect { addr, ports, .. } => {
                spec(NatKind::Dst, Some((*addr, *addr)), *ports)
            }
        };
        if let NatVerdict::Masquerade { random, .. } | NatVerdict::Redirect { random, .. } = self {
            s.random = *random;
        }
        Some(s)
    }
}

/// A mangle decision: the packet's mark afterwards, and whether it is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MangleVerdict {
    pub mark: u32,
    pub drop: bool,
}

/// A hook's decision with what it read and the rules it hit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookResult<V> {
    pub verdict: V,
    pub deps: NfDeps,
    pub hits: Vec<RuleHit>,
}

/// The result of `fib_lookup()`.
enum Fib<'a> {
    Route { route: &'a Route, rule: u32, table: u32 },
    Err { errno: FibErr, rule: Option<u32>, table: Option<u32> },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FibErr {
    NetUnreach,  // -ENETUNREACH
    HostUnreach, // -EHOSTUNREACH
    Prohibited,  // -EACCES
    Blackhole,   // -EINVAL
}

const LOOPBACK: Ipv4Net = Ipv4Net { addr: Ipv4Addr::new(127, 0, 0, 0), len: 8 };
const ZERONET: Ipv4Net = Ipv4Net { addr: Ipv4Addr::UNSPECIFIED, len: 8 };
const MULTICAST: Ipv4Net = Ipv4Net { addr: Ipv4Addr::new(224, 0, 0, 0), len: 4 };
const LBCAST: Ipv4Net = Ipv4Net { addr: Ipv4Addr::BROADCAST, len: 32 };
const ZERO: Ipv4Net = Ipv4Net { addr: Ipv4Addr::UNSPECIFIED, len: 32 };

impl Namespace {
    /// Builds and validates a namespace from the contract's JSON text.
    pub fn from_json(json: &str) -> Result<Namespace, NetnsError> {
        let spec: NamespaceSpec = serde_json::from_str(json).map_err(|e| NetnsError {
            namespace: "namespace".into(),
            error: ParseError::new("json", e.line(), e.column(), e.to_string()),
        })?;
        Namespace::from_spec(&spec)
    }

    /// Builds and validates a namespace from the contract's structure.
    pub fn from_spec(spec: &NamespaceSpec) -> Result<Namespace, NetnsError> {
        build(spec).map_err(|error| NetnsError { namespace: spec.name.clone(), error })
    }

    pub fn iface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// The interface carried by internal port `port` of bridge `bridge`.
    pub fn iface_for_port(&self, bridge: &str, port: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| {
            matches!(&i.binding, Binding::Port { bridge: b, port: p }
                if b == bridge && p == port)
        })
    }

    /// The interface whose veth peer is `interface` in namespace `namespace`.
    pub fn iface_for_veth(&self, namespace: &str, interface: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| {
            matches!(&i.binding, Binding::Veth { namespace: n, interface: p }
                if n == namespace && p == interface)
        })
    }

    /// A sysctl's value as an integer (None when unset or not a number).
    pub fn sysctl_int(&self, key: &str) -> Option<i64> {
        self.sysctl.get(key).and_then(|v| v.parse().ok())
    }

    fn conf(&self, dev: &str, key: &str) -> Option<i64> {
        self.sysctl_int(&format!("net.ipv4.conf.{dev}.{key}"))
    }

    /// `IN_DEV_ORCONF`: on when on for `all` or for the device (default: `dflt`).
    fn conf_or(&self, dev: &str, key: &str, dflt: bool) -> bool {
        let all = self.conf("all", key).map_or(dflt, |v| v != 0);
        let d = self.conf(dev, key).or_else(|| self.conf("default", key)).map_or(dflt, |v| v != 0);
        all || d
    }

    /// `IN_DEV_FORWARD`: the device's own setting, else the last global one
    /// (`net.ipv4.ip_forward` and `conf.all.forwarding` write every device). Off in a new
    /// namespace.
    pub fn forwarding(&self, dev: &str) -> bool {
        self.conf(dev, "forwarding")
            .or_else(|| self.conf("all", "forwarding"))
            .or_else(|| self.sysctl_int("net.ipv4.ip_forward"))
            .or_else(|| self.conf("default", "forwarding"))
            .is_some_and(|v| v != 0)
    }

    /// `IN_DEV_PROXY_ARP`.
    pub fn proxy_arp(&self, dev: &str) -> bool {
        self.conf_or(dev, "proxy_arp", false)
    }

    fn forwarding_varies(&self) -> bool {
        let mut it = self.interfaces.iter().map(|i| self.forwarding(&i.name));
        let first = it.next();
        it.any(|f| Some(f) != first)
    }

    fn table_routes(&self, table: u32) -> impl Iterator<Item = &Route> {
        self.routes.iter().filter_map(move |l| match l {
            RouteLine::V4(r) if r.table == table => Some(r),
            _ => None,
        })
    }

    /// Whether `ip` is one of the namespace's addresses (`inet_addr_type() == RTN_LOCAL`:
    /// a `local` route of table local).
    pub fn is_local(&self, ip: Ipv4Addr) -> bool {
        route::lookup(self.table_routes(TABLE_LOCAL), ip)
            .route
            .is_some_and(|r| r.rtype == RouteType::Local)
    }

    /// The source address Linux picks on `dev` towards `dst` (`inet_select_addr()`): the
    /// first primary address of the device whose subnet holds `dst`, else its first one
    /// within `scope`, else the first global address of any interface.
    pub fn select_src(&self, dev: &str, dst: Option<Ipv4Addr>, scope: u8) -> Option<Ipv4Addr> {
        let addr_scope = |i: &Interface| {
            if i.binding == Binding::Loopback {
                SCOPE_HOST
            } else {
                SCOPE_UNIVERSE
            }
        };
        let mut first = None;
        if let Some(i) = self.iface(dev) {
            if addr_scope(i) <= scope {
                for a in i.primary_addresses() {
                    if dst.is_none_or(|d| a.contains(d)) {
                        return Some(a.addr);
                    }
                    first = first.or(Some(a.addr));
                }
            }
        }
        first.or_else(|| {
            self.interfaces
                .iter()
                .filter(|i| addr_scope(i) != SCOPE_LINK && addr_scope(i) <= scope)
                .find_map(|i| i.primary_addresses().next().map(|a| a.addr))
        })
    }

    /// The neighbour entry's MAC for `ip` on `dev`, if it is usable (`NUD_VALID`).
    pub fn neighbor(&self, dev: &str, ip: Ipv4Addr) -> Option<Mac> {
        self.neighbors.iter().find_map(|l| match l {
            NeighLine::V4(n) if n.dev == dev && n.ip == ip && n.state.is_valid() => n.lladdr,
            _ => None,
        })
    }

    /// Records a MAC learned from ARP, as `neigh_update()` does without admin rights: a
    /// PERMANENT or NOARP entry is left alone, anything else becomes STALE with this MAC.
    pub fn neigh_update(&mut self, dev: &str, ip: Ipv4Addr, mac: Mac) {
        for l in &mut self.neighbors {
            if let NeighLine::V4(n) = l {
                if n.dev == dev && n.ip == ip {
                    if !matches!(n.state, NudState::Permanent | NudState::Noarp) {
                        n.lladdr = Some(mac);
                        n.state = NudState::Stale;
                    }
                    return;
                }
            }
        }
        self.neighbors.push(NeighLine::V4(Neighbor {
            ip,
            dev: dev.to_string(),
            lladdr: Some(mac),
            router: false,
            state: NudState::Stale,
            line: 0,
        }));
    }

    /// `fib_rules_lookup()` with `fib4_rule_action()`: walks the rules, looking tables up.
    fn fib_lookup(
        &self,
        iif: &str,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mark: u32,
        d: &mut DecisionDeps,
    ) -> Fib<'_> {
        let mut i = 0;
        let mut steps = 0;
        while let Some(r) = self.rules.get(i) {
            steps += 1;
            if steps > 4 * self.rules.len() + 4 {
                break; // gotos only go forward; this is a guard, not a behaviour
            }
            // fib_rule_match(): iif, oif, mark, then src and dst, stopping at a mismatch.
            let mut sel = true;
            if r.iif.is_some() {
                d.iif = true;
                sel = r.iif.as_deref() == Some(iif);
            }
            if sel && r.oif.is_some() {
                sel = false; // no output interface is bound here
            }
            if let (true, Some((v, m))) = (sel, r.fwmark) {
                d.mark_mask |= m;
                sel = (v ^ mark) & m == 0;
            }
            if let (true, Some(n)) = (sel, r.from) {
                d.src(n, src);
                sel = n.contains(src);
            }
            if let (true, Some(n)) = (sel, r.to) {
                d.dst(n, dst);
                sel = n.contains(dst);
            }
            if sel == r.invert {
                i += 1;
                continue;
            }
            let p = Some(r.priority);
            match r.action {
                RuleAction::Goto(target) => {
                    match self.rules.iter().position(|x| x.priority == target) {
                        Some(j) => i = j,
                        None => i += 1,
                    }
                }
                RuleAction::Nop => i += 1,
                RuleAction::Unreachable => {
                    return Fib::Err { errno: FibErr::NetUnreach, rule: p, table: None }
                }
                RuleAction::Prohibit => {
                    return Fib::Err { errno: FibErr::Prohibited, rule: p, table: None }
                }
                RuleAction::Blackhole => {
                    return Fib::Err { errno: FibErr::Blackhole, rule: p, table: None }
                }
                RuleAction::Lookup(t) => {
                    let hit = route::lookup(self.table_routes(t), dst);
                    d.dst_bits = d.dst_bits.max(hit.dst_bits);
                    let Some(route) = hit.route else {
                        i += 1;
                        continue;
                    };
                    let errno = match route.rtype {
                        RouteType::Throw => {
                            i += 1;
                            continue;
                        }
                        RouteType::Unreachable => FibErr::HostUnreach,
                        RouteType::Prohibit => FibErr::Prohibited,
                        RouteType::Blackhole => FibErr::Blackhole,
                        RouteType::Unicast | RouteType::Local | RouteType::Broadcast => {
                            return Fib::Route { route, rule: r.priority, table: t }
                        }
                    };
                    return Fib::Err { errno, rule: p, table: Some(t) };
                }
            }
        }
        Fib::Err { errno: FibErr::NetUnreach, rule: None, table: None }
    }

    /// The route's preferred source (`FIB_RES_PREFSRC`).
    fn prefsrc(&self, r: &Route) -> Option<Ipv4Addr> {
        r.src.or_else(|| self.select_src(r.dev.as_deref()?, r.via, r.scope))
    }

    /// The routing decision for a packet from `src` to `dst` that came in on `iif` (None:
    /// generated by the namespace itself, `iif lo` for the rules), with mark `mark`.
    pub fn route(
        &self,
        iif: Option<&str>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mark: u32,
    ) -> RouteDecision {
        let mut d = DecisionDeps::default();
        let Some(iif) = iif else {
            return self.route_output(src, dst, mark, d);
        };
        let drop = |reason, d| RouteDecision::Drop { reason, rule: None, table: None, deps: d };
        // Martians, in the order of ip_route_input_rcu() and ip_route_input_slow().
        d.dst(MULTICAST, dst);
        if MULTICAST.contains(dst) {
            return drop(RouteDrop::Multicast, d);
        }
        d.src(MULTICAST, src);
        d.src(LBCAST, src);
        if MULTICAST.contains(src) || src == Ipv4Addr::BROADCAST {
            return drop(RouteDrop::MartianSource, d);
        }
        d.dst(LBCAST, dst);
        d.src(ZERO, src);
        if src.is_unspecified() {
            d.dst(ZERO, dst);
        }
        if dst == Ipv4Addr::BROADCAST || (src.is_unspecified() && dst.is_unspecified()) {
            if !ZERONET.contains(src) && self.martian_source(iif, src, dst, None, &mut d) {
                return drop(RouteDrop::MartianSource, d);
            }
            return RouteDecision::Local { broadcast: true, rule: None, table: None, deps: d };
        }
        d.src(ZERONET, src);
        d.dst(ZERONET, dst);
        d.dst(LOOPBACK, dst);
        let localnet = self.conf_or(iif, "route_localnet", false);
        if ZERONET.contains(src) {
            return drop(RouteDrop::MartianSource, d);
        }
        if ZERONET.contains(dst) || (LOOPBACK.contains(dst) && !localnet) {
            return drop(RouteDrop::MartianDestination, d);
        }
        d.src(LOOPBACK, src);
        if LOOPBACK.contains(src) && !localnet {
            return drop(RouteDrop::MartianSource, d);
        }
        let fwd = self.forwarding(iif);
        d.iif |= self.forwarding_varies();
        match self.fib_lookup(iif, src, dst, mark, &mut d) {
            Fib::Err { errno, rule, table } => {
                if !fwd {
                    return RouteDecision::Drop {
                        reason: RouteDrop::ForwardingDisabled,
                        rule,
                        table,
                        deps: d,
                    };
                }
                let code = match errno {
                    FibErr::Blackhole => {
                        return RouteDecision::Drop {
                            reason: RouteDrop::Blackhole,
                            rule,
                            table,
                            deps: d,
                        }
                    }
                    FibErr::NetUnreach => ICMP_NET_UNREACH,
                    FibErr::HostUnreach => ICMP_HOST_UNREACH,
                    FibErr::Prohibited => ICMP_PKT_FILTERED,
                };
                let icmp = self.icmp_source(iif, src, &mut d);
                RouteDecision::Unreachable { code, rule, table, icmp, deps: d }
            }
            Fib::Route { route, rule, table } => match route.rtype {
                RouteType::Local | RouteType::Broadcast => {
                    if self.martian_source(iif, src, dst, None, &mut d) {
                        return RouteDecision::Drop {
                            reason: RouteDrop::MartianSource,
                            rule: Some(rule),
                            table: Some(table),
                            deps: d,
                        };
                    }
                    RouteDecision::Local {
                        broadcast: route.rtype == RouteType::Broadcast,
                        rule: Some(rule),
                        table: Some(table),
                        deps: d,
                    }
                }
                _ => {
                    if !fwd {
                        let (rule, table) = (Some(rule), Some(table));
                        return RouteDecision::Drop {
                            reason: RouteDrop::ForwardingDisabled,
                            rule,
                            table,
                            deps: d,
                        };
                    }
                    let oif = route.dev.clone().unwrap_or_default();
                    let mut redirect = false;
                    if self.martian_source(iif, src, dst, Some((&oif, &mut redirect)), &mut d) {
                        return RouteDecision::Drop {
                            reason: RouteDrop::MartianSource,
                            rule: Some(rule),
                            table: Some(table),
                            deps: d,
                        };
                    }
                    if redirect {
                        // __mkroute_input(): shared media, or sender and gateway on-link.
                        let gw = route.via;
                        let onlink = self.iface(&oif).is_some_and(|i| {
                            i.addresses.iter().any(|a| {
                                d.src(*a, src);
                                a.contains(src) && gw.is_none_or(|g| a.contains(g))
                            })
                        });
                        redirect = self.conf_or(&oif, "shared_media", true) || onlink;
                    }
                    if route.via.is_none() {
                        d.dst_bits = 32; // the next hop is the destination itself
                    }
                    RouteDecision::Forward {
                        next_hop: route.via.unwrap_or(dst),
                        gateway: route.via.is_some(),
                        src: self.prefsrc(route),
                        oif,
                        rule,
                        table,
                        redirect,
                        deps: d,
                    }
                }
            },
        }
    }

    /// `fib_validate_source()` without reverse-path filtering: whether the source is
    /// martian. With `out` (forwarding out of that interface), also decides whether the
    /// kernel would consider an ICMP redirect (the packet leaves by its input interface,
    /// `send_redirects` is on, and the sender is directly reachable there).
    fn martian_source(
        &self,
        iif: &str,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        out: Option<(&str, &mut bool)>,
        d: &mut DecisionDeps,
    ) -> bool {
        let same_dev = out.as_ref().is_some_and(|(o, _)| *o == iif);
        let tx_redirects = self.conf_or(iif, "send_redirects", true);
        let full = self.custom_rules || (same_dev && tx_redirects);
        if !full {
            // inet_lookup_ifaddr_rcu(): a packet claiming one of our addresses.
            let mut local = false;
            for a in self.interfaces.iter().flat_map(|i| &i.addresses) {
                d.src(Ipv4Net::new(a.addr, 32), src);
                local |= a.addr == src;
            }
            return local;
        }
        // __fib_validate_source(): look the source up as a destination, from the output
        // interface (lo for local delivery).
        let rev_iif = match &out {
            Some((o, _)) => *o,
            None => "lo",
        };
        let mut rd = DecisionDeps::default();
        let res = self.fib_lookup(rev_iif, dst, src, 0, &mut rd);
        d.src_bits = d.src_bits.max(rd.dst_bits);
        d.dst_bits = d.dst_bits.max(rd.src_bits);
        d.iif |= rd.iif;
        let Fib::Route { route, .. } = res else {
            return false; // last_resort: accepted without reverse-path filtering
        };
        if route.rtype != RouteType::Unicast {
            return true;
        }
        if let Some((_, redirect)) = out {
            let direct_here = route.dev.as_deref() == Some(iif) && route.via.is_none();
            let connected_here = self.iface(iif).is_some_and(|i| {
                i.addresses.iter().any(|a| {
                    d.src(*a, src);
                    a.contains(src)
                })
            });
            *redirect = same_dev && tx_redirects && (direct_here || connected_here);
        }
        false
    }

    /// Where Linux sends an ICMP error about a packet from `orig_src` that came in on
    /// `iif`, and with which source (`__icmp_send()`): the route back to the sender, from
    /// the namespace itself, with the route's preferred source, or the input interface's
    /// address with `icmp_errors_use_inbound_ifaddr`.
    fn icmp_source(
        &self,
        iif: &str,
        orig_src: Ipv4Addr,
        d: &mut DecisionDeps,
    ) -> Option<IcmpSource> {
        let inbound =
            self.sysctl_int("net.ipv4.icmp_errors_use_inbound_ifaddr").is_some_and(|v| v != 0);
        let saddr = if inbound { self.select_src(iif, Some(orig_src), SCOPE_LINK) } else { None };
        let mut rd = DecisionDeps::default();
        let res =
            self.fib_lookup("lo", saddr.unwrap_or(Ipv4Addr::UNSPECIFIED), orig_src, 0, &mut rd);
        d.src_bits = d.src_bits.max(rd.dst_bits);
        if inbound {
            // The inbound address depends on which of iif's subnets holds the sender.
            if let Some(i) = self.iface(iif) {
                for a in &i.addresses {
                    d.src(*a, orig_src);
                }
            }
        }
        match res {
            Fib::Route { route, .. } if route.rtype == RouteType::Unicast => {
                if route.via.is_none() {
                    d.src_bits = 32; // the error goes to the sender itself
                }
                Some(IcmpSource {
                    src: saddr.or_else(|| self.prefsrc(route))?,
                    oif: route.dev.clone()?,
                    next_hop: route.via.unwrap_or(orig_src),
                })
            }
            _ => None,
        }
    }

    /// `ip_route_output_key()` for a packet the namespace sends itself.
    fn route_output(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mark: u32,
        mut d: DecisionDeps,
    ) -> RouteDecision {
        match self.fib_lookup("lo", src, dst, mark, &mut d) {
            Fib::Err { errno: FibErr::Blackhole, rule, table } => {
                RouteDecision::Drop { reason: RouteDrop::Blackhole, rule, table, deps: d }
            }
            Fib::Err { errno, rule, table } => {
                let code = match errno {
                    FibErr::HostUnreach => ICMP_HOST_UNREACH,
                    FibErr::Prohibited => ICMP_PKT_FILTERED,
                    _ => ICMP_NET_UNREACH,
                };
                RouteDecision::Unreachable { code, rule, table, icmp: None, deps: d }
            }
            Fib::Route { route, rule, table } => match route.rtype {
                RouteType::Local | RouteType::Broadcast => RouteDecision::Local {
                    broadcast: route.rtype == RouteType::Broadcast,
                    rule: Some(rule),
                    table: Some(table),
                    deps: d,
                },
                _ => RouteDecision::Forward {
                    deps: DecisionDeps {
                        dst_bits: if route.via.is_none() { 32 } else { d.dst_bits },
                        ..d
                    },
                    oif: route.dev.clone().unwrap_or_default(),
                    next_hop: route.via.unwrap_or(dst),
                    gateway: route.via.is_some(),
                    src: if src.is_unspecified() { self.prefsrc(route) } else { Some(src) },
                    rule,
                    table,
                    redirect: false,
                },
            },
        }
    }

    /// `route` for a packet to be forwarded, then `ip_forward()`'s TTL check: a packet
    /// that would be forwarded with TTL <= 1 becomes `TtlExceeded`.
    pub fn forward(
        &self,
        iif: &str,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
        mark: u32,
    ) -> RouteDecision {
        let dec = self.route(Some(iif), src, dst, mark);
        match dec {
            RouteDecision::Forward { mut deps, .. } if ttl <= 1 => {
                let icmp = self.icmp_source(iif, src, &mut deps);
                RouteDecision::TtlExceeded { icmp, deps }
            }
            other => other,
        }
    }

    /// `arp_ignore`: whether a request for our address `tpa` from `spa` goes unanswered.
    fn arp_ignore(&self, iif: &str, spa: Ipv4Addr, tpa: Ipv4Addr) -> bool {
        let level = self
            .conf("all", "arp_ignore")
            .unwrap_or(0)
            .max(self.conf(iif, "arp_ignore").unwrap_or(0));
        let on_iif = |need_spa: bool| {
            self.iface(iif).is_some_and(|i| {
                i.addresses.iter().any(|a| {
                    a.addr == tpa && (!need_spa || spa.is_unspecified() || a.contains(spa))
                })
            })
        };
        match level {
            1 => !on_iif(false),
            2 => !on_iif(true),
            8 => true,
            _ => false,
        }
    }

    /// The MAC to answer an ARP request for `tpa` from `spa` arriving on `iif` with
    /// (`arp_process()`): the input interface's MAC when `tpa` is ours (subject to
    /// `arp_ignore`), or when forwarding and `proxy_arp` are on for `iif` and `tpa` is
    /// routed out of another interface. None: no reply.
    pub fn arp_reply(&self, iif: &str, spa: Ipv4Addr, tpa: Ipv4Addr) -> Option<Mac> {
        let dev = self.iface(iif)?;
        if dev.binding == Binding::Loopback || MULTICAST.contains(tpa) {
            return None;
        }
        if LOOPBACK.contains(tpa) && !self.conf_or(iif, "route_localnet", false) {
            return None;
        }
        if spa.is_unspecified() {
            // Duplicate address detection probes.
            return (self.is_local(tpa) && !self.arp_ignore(iif, spa, tpa)).then_some(dev.mac);
        }
        match self.route(Some(iif), spa, tpa, 0) {
            RouteDecision::Local { broadcast: false, .. } => {
                (!self.arp_ignore(iif, spa, tpa)).then_some(dev.mac)
            }
            RouteDecision::Forward { oif, .. } => {
                // arp_fwd_proxy(): another interface, proxy_arp on the input one
                // (medium_id 0, the default; -1 turns it off).
                let medium = self.conf(iif, "medium_id").unwrap_or(0);
                let proxy = oif != iif && self.proxy_arp(iif) && medium != -1;
                (proxy && self.forwarding(iif)).then_some(dev.mac)
            }
            _ => None,
        }
    }

    fn nat_verdict(
        &self,
        w: &netfilter::Walk,
        iif: Option<&str>,
        oif: Option<&str>,
        next_hop: Option<Ipv4Addr>,
    ) -> NatVerdict {
        match w.terminal {
            Terminal::Accept => NatVerdict::Accept,
            Terminal::Drop => NatVerdict::Drop,
            Terminal::Nat(t) => match t {
                Target::Dnat(r) => NatVerdict::Dnat(*r),
                Target::Snat(r) => NatVerdict::Snat(*r),
                Target::Masquerade { ports, random, random_fully } => {
                    // masquerade_tg(): the output device's address towards the next hop.
                    match oif.and_then(|o| self.select_src(o, next_hop, SCOPE_UNIVERSE)) {
                        Some(addr) => NatVerdict::Masquerade {
                            addr,
                            ports: *ports,
                            random: *random || *random_fully,
                        },
                        None => NatVerdict::Drop,
                    }
                }
                Target::Redirect { ports, random } => {
                    // redirect_tg4(): 127.0.0.1 for local packets, else the first address of
                    // the input device.
                    let addr = match iif {
                        None => Some(Ipv4Addr::LOCALHOST),
                        Some(i) => self.iface(i).and_then(|i| i.addresses.first()).map(|a| a.addr),
                    };
                    match addr {
                        Some(addr) => NatVerdict::Redirect { addr, ports: *ports, random: *random },
                        None => NatVerdict::Drop,
                    }
                }
                _ => NatVerdict::Accept,
            },
        }
    }

    fn nat_hook(
        &self,
        hook: &str,
        inp: &HookInput,
        next_hop: Option<Ipv4Addr>,
    ) -> HookResult<NatVerdict> {
        // nf_nat_inet_fn(): untracked and invalid packets never see the nat table.
        if inp.ct.state & (iptables::ctstate::UNTRACKED | iptables::ctstate::INVALID) != 0 {
            return HookResult {
                verdict: NatVerdict::Accept,
                deps: NfDeps::default(),
                hits: Vec::new(),
            };
        }
        let w = walk(&self.nat, hook, inp);
        let verdict = self.nat_verdict(&w, inp.iif, inp.oif, next_hop);
        let mut deps = w.deps;
        match verdict {
            // The address comes from the input interface, or the output one (with the next
            // hop, which the routing decision's deps cover).
            NatVerdict::Redirect { .. } => deps.iif = true,
            NatVerdict::Masquerade { .. } => deps.oif = true,
            _ => {}
        }
        HookResult { verdict, deps, hits: w.hits }
    }

    /// nat PREROUTING for the first packet of a connection arriving on `iif` (DNAT,
    /// REDIRECT). `mark` is the mark after mangle PREROUTING.
    pub fn nat_prerouting(
        &self,
        iif: &str,
        pkt: &Pkt5,
        ct: CtInfo,
        mark: u32,
    ) -> HookResult<NatVerdict> {
        let inp = HookInput { iif: Some(iif), oif: None, pkt: *pkt, ct, mark };
        self.nat_hook("PREROUTING", &inp, None)
    }

    /// nat OUTPUT for the first packet of a connection the namespace sends out of `oif`.
    pub fn nat_output(
        &self,
        oif: &str,
        pkt: &Pkt5,
        ct: CtInfo,
        mark: u32,
    ) -> HookResult<NatVerdict> {
        let inp = HookInput { iif: None, oif: Some(oif), pkt: *pkt, ct, mark };
        self.nat_hook("OUTPUT", &inp, None)
    }

    /// nat POSTROUTING for the first packet of a connection leaving by `oif` towards
    /// `next_hop` (the routing decision's; MASQUERADE picks its address with it). `iif` is
    /// the input interface of a forwarded packet (None for a local one). `pkt` is the packet
    /// after PREROUTING's DNAT, and `ct` carries `DNAT` when that translated it.
    pub fn nat_postrouting(
        &self,
        iif: Option<&str>,
        oif: &str,
        next_hop: Ipv4Addr,
        pkt: &Pkt5,
        ct: CtInfo,
        mark: u32,
    ) -> HookResult<NatVerdict> {
        let inp = HookInput { iif, oif: Some(oif), pkt: *pkt, ct, mark };
        self.nat_hook("POSTROUTING", &inp, Some(next_hop))
    }

    /// mangle PREROUTING for every packet arriving on `iif`: the new mark.
    pub fn mangle_prerouting(
        &self,
        iif: &str,
        pkt: &Pkt5,
        ct: CtInfo,
        mark: u32,
    ) -> HookResult<MangleVerdict> {
        let inp = HookInput { iif: Some(iif), oif: None, pkt: *pkt, ct, mark };
        let w = walk(&self.mangle, "PREROUTING", &inp);
        let verdict = MangleVerdict { mark: w.mark, drop: w.terminal == Terminal::Drop };
        HookResult { verdict, deps: w.deps, hits: w.hits }
    }

    /// raw PREROUTING for a packet arriving on `iif`: whether `CT --notrack` exempts it from
    /// connection tracking (and so from NAT).
    pub fn notrack(&self, iif: &str, pkt: &Pkt5) -> HookResult<bool> {
        let inp = HookInput { iif: Some(iif), oif: None, pkt: *pkt, ct: CtInfo::NEW, mark: 0 };
        let w = walk(&self.raw, "PREROUTING", &inp);
        HookResult { verdict: w.notrack, deps: w.deps, hits: w.hits }
    }

    /// Adds `packets` and `bytes` to the counters of the rules (and policies) hit.
    pub fn credit(&mut self, hits: &[RuleHit], packets: u64, bytes: u64) {
        for h in hits {
            let t = match h.table {
                IptTable::Nat => &mut self.nat,
                IptTable::Mangle => &mut self.mangle,
                IptTable::Raw => &mut self.raw,
            };
            let Some(c) = t.chains.get_mut(h.chain as usize) else { continue };
            let counters = match h.rule {
                None => &mut c.policy_counters,
                Some(r) => match c.rules.get_mut(r as usize) {
                    Some(r) => &mut r.counters,
                    None => continue,
                },
            };
            counters.packets += packets;
            counters.bytes += bytes;
        }
    }

    /// `ip rule show` (the implied default rules are not written).
    pub fn format_ip_rule(&self) -> String {
        let given: Vec<Rule> = self.rules.iter().filter(|r| r.line != 0).cloned().collect();
        format_ip_rule(&given)
    }

    /// `ip route show table all` as given (implied table-local entries are not written).
    pub fn format_ip_route(&self) -> String {
        format_ip_route(&self.routes)
    }

    /// `ip neigh show`, learned entries included.
    pub fn format_ip_neigh(&self) -> String {
        format_ip_neigh(&self.neighbors)
    }

    /// `iptables -t TABLE -S` (`-S -v` with `counters`).
    pub fn format_iptables(&self, table: IptTable, counters: bool) -> String {
        let t = match table {
            IptTable::Nat => &self.nat,
            IptTable::Mangle => &self.mangle,
            IptTable::Raw => &self.raw,
        };
        format_iptables(t, counters)
    }
}

/// Checks that veth peers name each other across the namespaces of one node.
pub fn validate_veths(namespaces: &[Namespace]) -> Result<(), NetnsError> {
    for ns in namespaces {
        for (i, iface) in ns.interfaces.iter().enumerate() {
            let Binding::Veth { namespace, interface } = &iface.binding else { continue };
            let err = |msg: String| NetnsError {
                namespace: ns.name.clone(),
                error: ParseError::field(format!("interfaces[{}].veth", i - 1), msg),
            };
            let peer_ns = namespaces
                .iter()
                .find(|n| &n.name == namespace)
                .ok_or_else(|| err(format!("no namespace \"{namespace}\" on this node")))?;
            let peer = peer_ns.iface(interface).ok_or_else(|| {
                err(format!("namespace \"{namespace}\" has no interface \"{interface}\""))
            })?;
            let back = matches!(&peer.binding, Binding::Veth { namespace: n, interface: p }
                if *n == ns.name && *p == iface.name);
            if !back {
                return Err(err(format!(
                    "\"{interface}\" in \"{namespace}\" is not the veth peer of \"{}\"",
                    iface.name
                )));
            }
        }
    }
    Ok(())
}

/// The column of the word after `key` on line `line` of `text` (0 if not found).
fn col_after(text: &str, line: usize, key: &str) -> usize {
    let Some(l) = text.lines().nth(line.wrapping_sub(1)) else { return 0 };
    let toks = text::tokenize(l, false).unwrap_or_default();
    toks.windows(2).find(|w| w[0].text == key).map_or(0, |w| w[1].col)
}

fn build(spec: &NamespaceSpec) -> Result<Namespace, ParseError> {
    if spec.name.is_empty() {
        return Err(ParseError::field("name", "a namespace needs a name"));
    }
    let mut interfaces = vec![Interface {
        name: "lo".into(),
        binding: Binding::Loopback,
        mac: [0; 6],
        addresses: vec![Ipv4Net::new(Ipv4Addr::LOCALHOST, 8)],
        addresses_v6: Vec::new(),
        mtu: 65536,
    }];
    for (i, s) in spec.interfaces.iter().enumerate() {
        let f =
            |field: &str, msg: String| ParseError::field(format!("interfaces[{i}]{field}"), msg);
        if s.name.is_empty() || s.name.len() > 15 || s.name.contains(['/', ' ', ':']) {
            return Err(f(".name", format!("bad interface name \"{}\"", s.name)));
        }
        if interfaces.iter().any(|x| x.name == s.name) {
            return Err(f(".name", format!("interface \"{}\" is defined twice", s.name)));
        }
        let binding = match (&s.bridge, &s.port, &s.veth) {
            (Some(b), Some(p), None) => Binding::Port { bridge: b.clone(), port: p.clone() },
            (None, None, Some(v)) => {
                Binding::Veth { namespace: v.namespace.clone(), interface: v.interface.clone() }
            }
            _ => {
                return Err(f("", "needs either \"bridge\" and \"port\", or \"veth\"".into()));
            }
        };
        let mac = parse_mac(&s.mac).ok_or_else(|| f(".mac", format!("bad MAC \"{}\"", s.mac)))?;
        let mut addresses = Vec::new();
        let mut addresses_v6 = Vec::new();
        for (j, a) in s.addresses.iter().enumerate() {
            let bad = || {
                f(&format!(".addresses[{j}]"), format!("bad address \"{a}\"; expected A.B.C.D/LEN"))
            };
            if a.contains(':') {
                let (ip, len) = a.split_once('/').ok_or_else(bad)?;
                let ip: Ipv6Addr = ip.parse().map_err(|_| bad())?;
                let len: u8 = len.parse().ok().filter(|&l| l <= 128).ok_or_else(bad)?;
                addresses_v6.push((ip, len));
                continue;
            }
            if !a.contains('/') {
                return Err(bad());
            }
            let n = parse_net(a).ok_or_else(bad)?;
            if n.addr.is_unspecified() || n.addr.is_multicast() || n.addr.is_broadcast() {
                return Err(bad());
            }
            if interfaces
                .iter()
                .flat_map(|x| &x.addresses)
                .chain(&addresses)
                .any(|x| x.addr == n.addr)
            {
                return Err(f(
                    &format!(".addresses[{j}]"),
                    format!("address {} is used twice", n.addr),
                ));
            }
            addresses.push(n);
        }
        interfaces.push(Interface {
            name: s.name.clone(),
            binding,
            mac,
            addresses,
            addresses_v6,
            mtu: s.mtu.unwrap_or(1500),
        });
    }
    let has = |n: &str| interfaces.iter().any(|i| i.name == n);

    let mut sysctl = BTreeMap::new();
    for (k, v) in &spec.sysctl {
        if let Some(rest) = k.strip_prefix("net.ipv4.conf.") {
            let dev = rest.rsplit_once('.').map_or(rest, |(d, _)| d);
            if !matches!(dev, "all" | "default") && !has(dev) {
                return Err(ParseError::field(
                    format!("sysctl.{k}"),
                    format!("no interface \"{dev}\""),
                ));
            }
        }
        sysctl.insert(k.clone(), v.text());
    }

    // Rules.
    let mut rules = parse_ip_rule(&spec.ip_rule)?;
    if spec.ip_rule.trim().is_empty() {
        rules = Rule::defaults();
    }
    for r in &rules {
        for (key, name) in [("iif", &r.iif), ("oif", &r.oif)] {
            if let Some(n) = name.as_deref().filter(|n| !has(n)) {
                let col = col_after(&spec.ip_rule, r.line, key);
                return Err(ParseError::new(
                    "ip_rule",
                    r.line,
                    col,
                    format!("no interface \"{n}\""),
                ));
            }
        }
    }
    let defaults = Rule::defaults();
    let custom_rules = rules.len() != defaults.len()
        || rules.iter().zip(&defaults).any(|(a, b)| Rule { line: 0, ..a.clone() } != *b);

    // Routes.
    let mut routes = parse_ip_route(&spec.ip_route)?;
    for l in &routes {
        let RouteLine::V4(r) = l else { continue };
        let e = |key: &str, msg: String| {
            ParseError::new("ip_route", r.line, col_after(&spec.ip_route, r.line, key), msg)
        };
        let Some(dev) = r.dev.as_deref() else { continue };
        let Some(iface) = interfaces.iter().find(|i| i.name == dev) else {
            return Err(e("dev", format!("no interface \"{dev}\"")));
        };
        if let Some(gw) = r.via {
            if !r.onlink && !iface.addresses.iter().any(|a| a.contains(gw)) {
                return Err(e(
                    "via",
                    format!("gateway {gw} is not on a connected subnet of {dev}"),
                ));
            }
        }
        if let Some(src) = r.src {
            if !interfaces.iter().flat_map(|i| &i.addresses).any(|a| a.addr == src) {
                return Err(e("src", format!("{src} is not an address of this namespace")));
            }
        }
        if r.rtype == RouteType::Unicast
            && r.proto == PROTO_KERNEL
            && r.scope == SCOPE_LINK
            && r.table == TABLE_MAIN
        {
            let ok =
                iface.addresses.iter().any(|a| a.len == r.dst.len && a.network() == r.dst.addr);
            if !ok {
                return Err(e(
                    "dev",
                    format!("connected route {} has no matching address on {dev}", r.dst),
                ));
            }
        }
    }
    for (ii, iface) in interfaces.iter().enumerate().skip(1) {
        for (j, a) in iface.addresses.iter().enumerate() {
            let net = Ipv4Net::new(a.network(), a.len);
            let connected = routes.iter().any(|l| {
                matches!(l, RouteLine::V4(r)
                if r.table == TABLE_MAIN && r.rtype == RouteType::Unicast && r.dst == net
                    && r.dev.as_deref() == Some(iface.name.as_str()) && r.via.is_none())
            });
            if a.len < 32 && !connected {
                return Err(ParseError::field(
                    format!("interfaces[{}].addresses[{j}]", ii - 1),
                    format!(
                        "{a} needs its connected route \"{net} dev {} proto kernel scope \
                         link src {}\" in ip_route",
                        iface.name, a.addr
                    ),
                ));
            }
        }
    }
    // The kernel's own table-local entries (fib_add_ifaddr()), where the text leaves them out.
    let mut implied = Vec::new();
    for iface in &interfaces {
        for a in iface.primary_addresses() {
            let mut add = |rtype, dst: Ipv4Net, scope| {
                let present = routes.iter().chain(&implied).any(|l| {
                    matches!(l, RouteLine::V4(r)
                    if r.table == TABLE_LOCAL && r.dst == dst && r.rtype == rtype)
                });
                if !present {
                    let mut r = Route::new(rtype, dst);
                    (r.dev, r.table, r.proto, r.scope, r.src) =
                        (Some(iface.name.clone()), TABLE_LOCAL, PROTO_KERNEL, scope, Some(a.addr));
                    implied.push(RouteLine::V4(r));
                }
            };
            add(RouteType::Local, Ipv4Net::new(a.addr, 32), SCOPE_HOST);
            if iface.binding == Binding::Loopback {
                add(RouteType::Local, Ipv4Net::new(a.network(), a.len), SCOPE_HOST);
            }
            if a.len < 31 {
                add(RouteType::Broadcast, Ipv4Net::new(a.broadcast(), 32), SCOPE_LINK);
            }
        }
        // Secondary addresses get their local entry too.
        for a in &iface.addresses {
            let dst = Ipv4Net::new(a.addr, 32);
            let present = routes.iter().chain(&implied).any(|l| {
                matches!(l, RouteLine::V4(r)
                if r.table == TABLE_LOCAL && r.dst == dst && r.rtype == RouteType::Local)
            });
            if !present {
                let mut r = Route::new(RouteType::Local, dst);
                (r.dev, r.table, r.proto, r.scope, r.src) =
                    (Some(iface.name.clone()), TABLE_LOCAL, PROTO_KERNEL, SCOPE_HOST, Some(a.addr));
                implied.push(RouteLine::V4(r));
            }
        }
    }
    routes.extend(implied);

    // Neighbours.
    let neighbors = parse_ip_neigh(&spec.ip_neigh)?;
    for l in &neighbors {
        if let NeighLine::V4(n) = l {
            if !has(&n.dev) {
                let col = col_after(&spec.ip_neigh, n.line, "dev");
                return Err(ParseError::new(
                    "ip_neigh",
                    n.line,
                    col,
                    format!("no interface \"{}\"", n.dev),
                ));
            }
        }
    }

    Ok(Namespace {
        name: spec.name.clone(),
        interfaces,
        sysctl,
        rules,
        routes,
        neighbors,
        nat: parse_iptables(IptTable::Nat, &spec.iptables_nat)?,
        mangle: parse_iptables(IptTable::Mangle, &spec.iptables_mangle)?,
        raw: parse_iptables(IptTable::Raw, &spec.iptables_raw)?,
        custom_rules,
    })
}
