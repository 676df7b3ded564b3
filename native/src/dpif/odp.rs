//! Datapath actions: what a megaflow does to a packet, in the vocabulary of OVS's datapath
//! (`set(eth(...))`, `push_vlan(...)`, `tnl_push(...)`, `ct(...)`, `recirc(...)`, port
//! numbers), and how they print.
//!
//! Translation produces these once per megaflow; the fast path only executes them.

use crate::fmt::{c_hex, ipv6, mac};
use crate::ofproto::action::{NatKind, NatSpec};
use std::fmt::Write as _;

/// Why a packet went nowhere. Every input packet that is not emitted is counted under
/// exactly one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Shorter than an Ethernet header.
    Runt,
    /// Captured shorter than it was on the wire (an interface's frame beyond the snapshot
    /// length): forwarding a part would be forwarding a different packet.
    Truncated,
    /// The capture's link type cannot be turned into Ethernet.
    UnsupportedLinktype,
    /// No rule matched in a table (OpenFlow table miss, no controller).
    NoMatch,
    /// The actions chose to drop (`drop`, an empty action list, or no output).
    ActionDrop,
    /// `dec_ttl` on a TTL of 0 or 1.
    TtlExpired,
    /// Translation went deeper than 64 resubmits / patch ports.
    RecursionTooDeep,
    /// Too many resubmits in one translation.
    TooManyResubmits,
    /// NORMAL: the destination was learned on the input port.
    NormalLearnedOnInput,
    /// NORMAL: reserved multicast (01:80:c2:00:00:0x) is not forwarded.
    NormalReservedMulticast,
    /// NORMAL: a VLAN tag the input port does not allow.
    NormalVlanNotAllowed,
    /// An output to the input port was skipped and nothing else was sent.
    OutputToInPort,
    /// A tunnel output found no route to the remote IP.
    TunnelNoRoute,
    /// A tunnel output found no neighbour (MAC) for the next hop.
    TunnelNoNeighbor,
    /// A tunnelled packet arrived that no tunnel port accepts (VNI, remote, port).
    TunnelNoPort,
    /// A VXLAN packet with bad flags or a short header.
    BadVxlan,
    /// A tunnel packet whose outer UDP checksum is wrong.
    BadTunnelChecksum,
    /// Conntrack refused a new connection because the table is full.
    CtTableFull,
    /// More than `MAX_RECIRC_DEPTH` (6) recirculations of one packet, as OVS limits them.
    RecirculationTooDeep,
    /// An output to a port that does not exist.
    NoSuchPort,
    /// A namespace interface got a frame not addressed to it.
    NsNotForUs,
    /// A namespace got a frame it does not handle (not ARP or IPv4).
    NsUnsupported,
    /// A namespace took the frame for itself (an ARP reply, local traffic with no listener).
    NsConsumed,
    /// A namespace got an IPv4 packet whose header cannot be parsed (shorter than 20 bytes, a
    /// total length beyond the frame): Linux's ip_rcv drops it (InHdrErrors/InTruncatedPkts).
    NsMalformed,
    /// A namespace's ARP requests for the next hop went unanswered (three, one second
    /// apart, as Linux sends them), or the run ended while the packet waited for an answer.
    NsNoNeighbor,
    /// A namespace found no route, or its nat table dropped the packet (an ICMP error is
    /// sent where Linux sends one).
    NsUnreachable,
    /// A namespace's queue of packets waiting for one neighbour was full: the oldest is
    /// dropped, as Linux drops it (`unres_qlen_bytes`).
    NsNeighQueueFull,
}

impl DropReason {
    /// The name used in stats.json.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Runt => "runt",
            DropReason::Truncated => "truncated",
            DropReason::UnsupportedLinktype => "unsupported_linktype",
            DropReason::NoMatch => "no_match",
            DropReason::ActionDrop => "action_drop",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::RecursionTooDeep => "recursion_too_deep",
            DropReason::TooManyResubmits => "too_many_resubmits",
            DropReason::NormalLearnedOnInput => "normal_learned_on_input_port",
            DropReason::NormalReservedMulticast => "normal_reserved_multicast",
            DropReason::NormalVlanNotAllowed => "normal_vlan_not_allowed",
            DropReason::OutputToInPort => "output_to_input_port",
            DropReason::TunnelNoRoute => "tunnel_no_route",
            DropReason::TunnelNoNeighbor => "tunnel_no_neighbor",
            DropReason::TunnelNoPort => "tunnel_no_port",
            DropReason::BadVxlan => "bad_vxlan",
            DropReason::BadTunnelChecksum => "bad_tunnel_checksum",
            DropReason::CtTableFull => "ct_table_full",
            DropReason::RecirculationTooDeep => "recirculation_too_deep",
            DropReason::NoSuchPort => "no_such_port",
            DropReason::NsNotForUs => "namespace_not_for_us",
            DropReason::NsUnsupported => "namespace_unsupported",
            DropReason::NsConsumed => "namespace_consumed",
            DropReason::NsMalformed => "namespace_malformed",
            DropReason::NsNoNeighbor => "namespace_no_neighbor",
            DropReason::NsUnreachable => "namespace_unreachable",
            DropReason::NsNeighQueueFull => "namespace_neigh_queue_full",
        }
    }
}

/// A VXLAN-over-IPv4 header to push, built once at translation time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TnlPush {
    /// Outer Ethernet + IPv4 + UDP + VXLAN, 50 bytes. The IPv4 total length and checksum
    /// and the UDP length and source port are filled per packet.
    pub header: [u8; 50],
    pub tnl_port: u32, // the tunnel vport (OVS `tnl_port(4789)`)
    pub out_port: u32, // the datapath port the outer packet is sent from (OVS `out_port`)
    /// Outer UDP source port range (OVS `tnl/egress_port_range`, default 32768-61000).
    pub sport_min: u16,
    pub sport_max: u16,
    pub csum: bool, // fill the outer UDP checksum
}

/// A megaflow's actions. A list of one is kept inline: with many flows each hit is a miss to
/// memory, and a flow whose one action is an output then reads it from the flow's own cache
/// lines instead of following a pointer to another. Longer lists are in `list` (`one` is
/// then `None`). `repr(C)`: `output`, which says that the list is exactly `output:N` (the
/// commonest flow of a busy table), comes first, so that such a flow is executed from the
/// first cache line of its slot alone.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct DpActions {
    output: u32, // N when the list is exactly `output:N`, else NO_OUTPUT
    one: Option<DpAction>,
    list: Box<[DpAction]>, // a pointer and a length: `one` and it end the slot's second line
}

/// `DpActions::output` of a list that is not a single output.
const NO_OUTPUT: u32 = u32::MAX;

impl Default for DpActions {
    fn default() -> Self {
        DpActions { output: NO_OUTPUT, one: None, list: Box::default() }
    }
}

impl DpActions {
    pub fn from_vec(mut v: Vec<DpAction>) -> DpActions {
        if v.len() == 1 {
            let output = match v[0] {
                DpAction::Output(p) if p != NO_OUTPUT => p,
                _ => NO_OUTPUT,
            };
            DpActions { output, list: Box::default(), one: v.pop() }
        } else {
            DpActions { output: NO_OUTPUT, list: v.into_boxed_slice(), one: None }
        }
    }

    /// N when the actions are exactly `output:N`.
    #[inline(always)]
    pub fn single_output(&self) -> Option<u32> {
        (self.output != NO_OUTPUT).then_some(self.output)
    }

    /// The first action when it is kept out of line (a list of two or more), to prefetch.
    #[inline(always)]
    pub fn out_of_line_head(&self) -> Option<&DpAction> {
        if self.one.is_some() {
            None
        } else {
            self.list.first()
        }
    }
}

impl std::ops::Deref for DpActions {
    type Target = [DpAction];

    #[inline(always)]
    fn deref(&self) -> &[DpAction] {
        match &self.one {
            Some(a) => std::slice::from_ref(a),
            None => &self.list,
        }
    }
}

/// One datapath action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DpAction {
    Output(u32),
    /// `userspace(...controller(...))`: a packet-in for the controller (dec_ttl on an expired
    /// TTL). There is no controller, so executing it does nothing; it is kept so that the
    /// datapath actions print as OVS's.
    Controller {
        reason: u8,
        recirc_id: u32,
        cookie: u64,
    },
    /// `set(eth(src=..,dst=..))`: only the fields given change.
    SetEth {
        src: Option<[u8; 6]>,
        dst: Option<[u8; 6]>,
    },
    PushVlan {
        tpid: u16,
        tci: u16,
    },
    PopVlan,
    /// `set(ipv4(src,dst,tos,ttl))` with checksums fixed.
    SetIpv4 {
        src: Option<u32>,
        dst: Option<u32>,
        tos: Option<u8>,
        ttl: Option<u8>,
        /// The bits of `tos` the translation read or wrote (OVS prints the set as
        /// `tos=V/M` unless this is 0xff); 0 is taken as 0xff.
        tos_mask: u8,
    },
    SetIpv6 {
        src: Option<[u8; 16]>,
        dst: Option<[u8; 16]>,
        tclass: Option<u8>,
        hlimit: Option<u8>,
        label: Option<u32>,
        /// As `tos_mask`, for the traffic class.
        tclass_mask: u8,
    },
    /// `set(tcp(..))` / `set(udp(..))` / `set(sctp(..))`: proto says which.
    SetPorts {
        proto: u8,
        src: Option<u16>,
        dst: Option<u16>,
    },
    SetIcmp {
        v6: bool,
        typ: Option<u8>,
        code: Option<u8>,
    },
    SetArp {
        op: Option<u16>,
        sip: Option<u32>,
        tip: Option<u32>,
        sha: Option<[u8; 6]>,
        tha: Option<[u8; 6]>,
    },
    TnlPush(Box<TnlPush>),
    TnlPop(u32),
    Ct {
        zone: u16,
        commit: bool,
        force: bool,
        nat: Option<Box<NatSpec>>,
        mark: Option<(u32, u32)>, // value, mask
        /// Applies only the source or only the destination part of an existing
        /// connection's NAT: a namespace's netfilter does destination manips before routing
        /// and source manips after it. `None` (all OpenFlow `ct()` actions) applies both.
        nat_only: Option<NatKind>,
    },
    Recirc(u32),
    /// Runs the nested actions on a copy of the packet.
    Clone(Vec<DpAction>),
    /// A namespace has no neighbour entry for the next hop: the packet waits in the
    /// neighbour's queue and, unless a request is already out, an ARP request is sent.
    NeighQueue(Box<NeighQueue>),
    /// A namespace answers the packet with an ICMP error (time exceeded, unreachable),
    /// which is generated as a new packet and routed by the namespace.
    IcmpError {
        ns: u16,
        typ: u8,
        code: u8,
        src: u32,
        /// Recirculation that routes the error out of the namespace.
        resume: u32,
    },
}

/// Where a packet waits for a namespace's neighbour, and the ARP request that asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighQueue {
    pub ns: u16,
    pub oif: String,
    pub next_hop: u32,
    /// The request's sender hardware and protocol address (the interface's MAC, and the
    /// address Linux picks: the packet's source when it is local, else one on the link).
    pub sha: [u8; 6],
    pub spa: u32,
    /// Recirculation that sends a frame out of `oif` (the request, and each queued
    /// packet once the neighbour is known).
    pub resume: u32,
}

/// Port-number-to-name lookup for printing with `--names`.
pub trait DpPortNames {
    fn dp_port_name(&self, port: u32) -> Option<String>;
}

fn ip4(v: u32) -> String {
    std::net::Ipv4Addr::from(v).to_string()
}

fn port_str(p: u32, names: Option<&dyn DpPortNames>) -> String {
    names.and_then(|n| n.dp_port_name(p)).unwrap_or_else(|| p.to_string())
}

/// Prints actions in `dpctl/dump-flows` / `Datapath actions:` syntax, as OVS 3.1's
/// `format_odp_actions` does. An empty list prints `drop`.
///
/// A `clone(...)` in last position prints as its contents: Open vSwitch does not emit a
/// clone for the last action of a translation (`is_last_action`), and running a clone's
/// actions on the packet itself is the same when nothing follows.
pub fn format_actions(actions: &[DpAction], names: Option<&dyn DpPortNames>) -> String {
    if actions.is_empty() {
        return "drop".to_string();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut list = actions;
    while let Some((last, init)) = list.split_last() {
        for a in init {
            parts.push(format_one(a, names));
        }
        match last {
            DpAction::Clone(inner) => list = inner,
            a => {
                parts.push(format_one(a, names));
                break;
            }
        }
    }
    if parts.is_empty() {
        return "drop".to_string();
    }
    parts.join(",")
}

/// `field=value` for the fields that are set, joined by commas.
fn opt_list(parts: &[(&str, Option<String>)]) -> String {
    let v: Vec<String> =
        parts.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))).collect();
    v.join(",")
}

/// A masked 8-bit field of a set action: `%#x`, then `/%#x` unless the mask is full.
fn masked_u8(v: u8, m: u8) -> String {
    let m = if m == 0 { 0xff } else { m };
    if m == 0xff {
        c_hex(v.into())
    } else {
        format!("{}/{}", c_hex((v & m).into()), c_hex(m.into()))
    }
}

/// `format_vlan_tci` with a full mask, as `push_vlan` uses it.
fn vlan_tci(tci: u16) -> String {
    let mut s = format!("vid={},pcp={}", tci & 0x0fff, tci >> 13);
    if tci & 0x1000 == 0 {
        s.push_str(",cfi=0");
    }
    s
}

/// `format_odp_ct_nat`: the datapath's NAT, flags in its order (persistent, hash, random),
/// IPv6 addresses in brackets only when a port follows.
fn format_nat(n: &NatSpec) -> String {
    use crate::ofproto::action::NatKind;
    use std::net::IpAddr;
    let kind = match n.kind {
        NatKind::Any => return "nat".to_string(),
        NatKind::Src => "src",
        NatKind::Dst => "dst",
    };
    let mut s = format!("nat({kind}");
    if let Some((a, b)) = n.addrs {
        let port = n.ports.0 != 0;
        let fmt_ip = |ip: IpAddr| match ip {
            IpAddr::V4(v) => v.to_string(),
            IpAddr::V6(v) if port => format!("[{v}]"),
            IpAddr::V6(v) => v.to_string(),
        };
        s.push('=');
        s.push_str(&fmt_ip(a));
        if b != a {
            s.push('-');
            s.push_str(&fmt_ip(b));
        }
        if port {
            let _ = write!(s, ":{}", n.ports.0);
            if n.ports.1 != 0 && n.ports.1 != n.ports.0 {
                let _ = write!(s, "-{}", n.ports.1);
            }
        }
    }
    for (flag, on) in [("persistent", n.persistent), ("hash", n.hash), ("random", n.random)] {
        if on {
            s.push(',');
            s.push_str(flag);
        }
    }
    s.push(')');
    s
}

fn format_one(a: &DpAction, names: Option<&dyn DpPortNames>) -> String {
    match a {
        DpAction::Output(p) => port_str(*p, names),
        DpAction::Controller { reason, recirc_id, cookie } => format!(
            "userspace(pid=0,controller(reason={reason},dont_send=0,continuation=0,\
             recirc_id={recirc_id},rule_cookie={},controller_id=0,max_len=65535))",
            c_hex(*cookie)
        ),
        // Set actions are masked sets in the userspace datapath: only the fields that
        // change print.
        DpAction::SetEth { src, dst } => {
            let f = opt_list(&[("src", src.as_ref().map(mac)), ("dst", dst.as_ref().map(mac))]);
            format!("set(eth({f}))")
        }
        DpAction::PushVlan { tpid, tci } => {
            let mut s = String::from("push_vlan(");
            if *tpid != 0x8100 {
                let _ = write!(s, "tpid=0x{tpid:04x},");
            }
            let _ = write!(s, "{})", vlan_tci(*tci));
            s
        }
        DpAction::PopVlan => "pop_vlan".to_string(),
        DpAction::SetIpv4 { src, dst, tos, ttl, tos_mask } => {
            let f = opt_list(&[
                ("src", src.map(ip4)),
                ("dst", dst.map(ip4)),
                ("tos", tos.map(|t| masked_u8(t, *tos_mask))),
                ("ttl", ttl.map(|t| t.to_string())),
            ]);
            format!("set(ipv4({f}))")
        }
        DpAction::SetIpv6 { src, dst, tclass, hlimit, label, tclass_mask } => {
            let f = opt_list(&[
                ("src", src.map(|a| ipv6(&a))),
                ("dst", dst.map(|a| ipv6(&a))),
                ("label", label.map(|l| c_hex(l.into()))),
                ("tclass", tclass.map(|t| masked_u8(t, *tclass_mask))),
                ("hlimit", hlimit.map(|t| t.to_string())),
            ]);
            format!("set(ipv6({f}))")
        }
        DpAction::SetPorts { proto, src, dst } => {
            let name = match proto {
                6 => "tcp",
                17 => "udp",
                _ => "sctp",
            };
            let f = opt_list(&[
                ("src", src.map(|p| p.to_string())),
                ("dst", dst.map(|p| p.to_string())),
            ]);
            format!("set({name}({f}))")
        }
        DpAction::SetIcmp { v6, typ, code } => {
            let f = opt_list(&[
                ("type", typ.map(|t| t.to_string())),
                ("code", code.map(|c| c.to_string())),
            ]);
            format!("set({}({f}))", if *v6 { "icmpv6" } else { "icmp" })
        }
        DpAction::SetArp { op, sip, tip, sha, tha } => {
            let f = opt_list(&[
                ("sip", sip.map(ip4)),
                ("tip", tip.map(ip4)),
                ("op", op.map(|o| o.to_string())),
                ("sha", sha.as_ref().map(mac)),
                ("tha", tha.as_ref().map(mac)),
            ]);
            format!("set(arp({f}))")
        }
        DpAction::TnlPush(t) => {
            let h = &t.header;
            let eth_dst: [u8; 6] = h[0..6].try_into().unwrap_or([0; 6]);
            let eth_src: [u8; 6] = h[6..12].try_into().unwrap_or([0; 6]);
            let src = u32::from_be_bytes([h[26], h[27], h[28], h[29]]);
            let dst = u32::from_be_bytes([h[30], h[31], h[32], h[33]]);
            let frag = u16::from_be_bytes([h[20], h[21]]);
            let dport = u16::from_be_bytes([h[36], h[37]]);
            let vni = u32::from_be_bytes([0, h[46], h[47], h[48]]);
            let flags = u32::from_be_bytes([h[42], h[43], h[44], h[45]]);
            format!(
                "tnl_push(tnl_port({}),header(size=50,type=4,eth(dst={},src={},dl_type=0x0800),\
                 ipv4(src={},dst={},proto=17,tos={},ttl={},frag={:#x}),\
                 udp(src=0,dst={},csum={:#x}),vxlan(flags={:#x},vni={:#x})),out_port({}))",
                port_str(t.tnl_port, names),
                mac(&eth_dst),
                mac(&eth_src),
                ip4(src),
                ip4(dst),
                c_hex(h[15] as u64),
                h[22],
                frag,
                dport,
                if t.csum { 0xffff } else { 0 },
                flags,
                vni,
                port_str(t.out_port, names),
            )
        }
        DpAction::TnlPop(p) => format!("tnl_pop({})", port_str(*p, names)),
        DpAction::Ct { zone, commit, force, nat, mark, nat_only } => {
            // `format_odp_conntrack_action`: `ct` alone when nothing is set.
            let mut parts: Vec<String> = Vec::new();
            if *commit {
                parts.push("commit".into());
            }
            if *force {
                parts.push("force_commit".into());
            }
            if *zone != 0 {
                parts.push(format!("zone={zone}"));
            }
            if let Some((v, m)) = mark {
                parts.push(format!("mark={}/{}", c_hex((*v).into()), c_hex((*m).into())));
            }
            match (nat, nat_only) {
                (Some(_), Some(NatKind::Src)) => parts.push("nat(src)".into()),
                (Some(_), Some(NatKind::Dst)) => parts.push("nat(dst)".into()),
                (Some(n), _) => parts.push(format_nat(n)),
                (None, _) => {}
            }
            if parts.is_empty() {
                "ct".to_string()
            } else {
                format!("ct({})", parts.join(","))
            }
        }
        DpAction::Recirc(id) => format!("recirc({})", c_hex((*id).into())),
        DpAction::Clone(inner) => {
            let body = if inner.is_empty() {
                String::new()
            } else {
                let v: Vec<String> = inner.iter().map(|a| format_one(a, names)).collect();
                v.join(",")
            };
            format!("clone({body})")
        }
        DpAction::NeighQueue(q) => format!(
            "neigh_queue(ns={},dev={},via={},arp(sha={},spa={}),recirc({}))",
            q.ns,
            q.oif,
            ip4(q.next_hop),
            mac(&q.sha),
            ip4(q.spa),
            c_hex(q.resume.into())
        ),
        DpAction::IcmpError { ns, typ, code, src, resume } => format!(
            "icmp_error(ns={ns},type={typ},code={code},src={},recirc({}))",
            ip4(*src),
            c_hex((*resume).into())
        ),
    }
}

#[cfg(test)]
mod tests {
    //! Expected strings are real `Datapath actions:` / `actions:` output of Open vSwitch 3.1
    //! (oracle runs of test/oracle/scenarios and the shared examples).
    use super::*;
    use crate::ofproto::action::NatKind;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn mac(s: &str) -> [u8; 6] {
        let mut m = [0u8; 6];
        for (i, p) in s.split(':').enumerate() {
            m[i] = u8::from_str_radix(p, 16).unwrap();
        }
        m
    }

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    fn set4(src: Option<&str>, dst: Option<&str>, tos: Option<(u8, u8)>) -> DpAction {
        DpAction::SetIpv4 {
            src: src.map(ip),
            dst: dst.map(ip),
            tos: tos.map(|t| t.0),
            ttl: None,
            tos_mask: tos.map_or(0, |t| t.1),
        }
    }

    fn ttl(t: u8) -> DpAction {
        DpAction::SetIpv4 { src: None, dst: None, tos: None, ttl: Some(t), tos_mask: 0 }
    }

    fn nat(kind: NatKind, addrs: Option<(&str, &str)>, ports: (u16, u16)) -> NatSpec {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        NatSpec {
            kind,
            addrs: addrs.map(|(x, y)| (a(x), a(y))),
            ports,
            random: false,
            hash: false,
            persistent: false,
        }
    }

    fn tnl_push(dst_mac: &str, dst_ip: &str, vni: u8, csum: bool) -> DpAction {
        let mut h = [0u8; 50];
        h[0..6].copy_from_slice(&mac(dst_mac));
        h[6..12].copy_from_slice(&mac("aa:55:aa:55:00:12"));
        h[12] = 0x08;
        h[14] = 0x45;
        h[20] = 0x40;
        h[22] = 64;
        h[23] = 17;
        h[26..30].copy_from_slice(&ip("192.168.1.12").to_be_bytes());
        h[30..34].copy_from_slice(&ip(dst_ip).to_be_bytes());
        h[36..38].copy_from_slice(&4789u16.to_be_bytes());
        h[42] = 0x08;
        h[48] = vni;
        DpAction::TnlPush(Box::new(TnlPush {
            header: h,
            tnl_port: 4789,
            out_port: 6,
            sport_min: 32768,
            sport_max: 61000,
            csum,
        }))
    }

    #[test]
    fn masked_sets_print_only_what_changes() {
        let f = |a: &[DpAction]| format_actions(a, None);
        // rewrite-csum and regs-resubmit.
        assert_eq!(
            f(&[set4(Some("192.168.100.4"), None, Some((0x28, 0xfc))), DpAction::Output(2)]),
            "set(ipv4(src=192.168.100.4,tos=0x28/0xfc)),2"
        );
        // The flow's ECN bits are not part of a DSCP-only set.
        assert_eq!(f(&[set4(None, None, Some((0xbb, 0xfc)))]), "set(ipv4(tos=0xb8/0xfc))");
        assert_eq!(
            f(&[
                DpAction::SetEth {
                    src: Some(mac("aa:bb:cc:dd:ee:ff")),
                    dst: Some(mac("0e:00:00:00:00:0e")),
                },
                set4(None, None, Some((0x2a, 0xff))),
                DpAction::Output(2),
            ]),
            "set(eth(src=aa:bb:cc:dd:ee:ff,dst=0e:00:00:00:00:0e)),set(ipv4(tos=0x2a)),2"
        );
        assert_eq!(
            f(&[
                set4(Some("192.168.100.1"), Some("192.168.100.2"), None),
                DpAction::SetPorts { proto: 6, src: Some(1111), dst: Some(2222) },
                DpAction::Output(2),
            ]),
            "set(ipv4(src=192.168.100.1,dst=192.168.100.2)),set(tcp(src=1111,dst=2222)),2"
        );
        assert_eq!(f(&[DpAction::Output(3), ttl(4), DpAction::Output(2)]), "3,set(ipv4(ttl=4)),2");
        let v6 = |src: Option<&str>, dst: Option<&str>, hlimit: Option<u8>| DpAction::SetIpv6 {
            src: src.map(|s| s.parse::<Ipv6Addr>().unwrap().octets()),
            dst: dst.map(|s| s.parse::<Ipv6Addr>().unwrap().octets()),
            tclass: None,
            hlimit,
            label: None,
            tclass_mask: 0,
        };
        assert_eq!(
            f(&[v6(Some("fd00::99"), None, Some(63)), DpAction::Output(2)]),
            "set(ipv6(src=fd00::99,hlimit=63)),2"
        );
        assert_eq!(
            f(&[
                v6(None, Some("2001:db8::1"), None),
                DpAction::SetPorts { proto: 17, src: None, dst: Some(5353) },
                DpAction::Output(2),
            ]),
            "set(ipv6(dst=2001:db8::1)),set(udp(dst=5353)),2"
        );
        assert_eq!(
            f(&[DpAction::SetEth { src: None, dst: Some(mac("0e:00:00:00:00:80")) }]),
            "set(eth(dst=0e:00:00:00:00:80))"
        );
    }

    #[test]
    fn conntrack_and_recirculation() {
        let f = |a: &[DpAction]| format_actions(a, None);
        let ct = |zone, commit, nat: Option<NatSpec>, mark| DpAction::Ct {
            zone,
            commit,
            force: false,
            nat: nat.map(Box::new),
            mark,
            nat_only: None,
        };
        // ct-tcp and snat-ct.
        assert_eq!(
            f(&[ct(5, true, None, Some((7, u32::MAX))), DpAction::Output(2)]),
            "ct(commit,zone=5,mark=0x7/0xffffffff),2"
        );
        assert_eq!(f(&[ct(5, false, None, None), DpAction::Recirc(2)]), "ct(zone=5),recirc(0x2)");
        let any = nat(NatKind::Any, None, (0, 0));
        assert_eq!(
            f(&[ct(9, false, Some(any), None), DpAction::Recirc(4)]),
            "ct(zone=9,nat),recirc(0x4)"
        );
        let dnat = nat(NatKind::Dst, Some(("10.0.0.2", "10.0.0.2")), (8080, 8080));
        assert_eq!(
            f(&[ct(9, true, Some(dnat), None), DpAction::Recirc(3)]),
            "ct(commit,zone=9,nat(dst=10.0.0.2:8080)),recirc(0x3)"
        );
        let snat = nat(NatKind::Src, Some(("172.24.4.10", "172.24.4.10")), (0, 0));
        assert_eq!(
            f(&[ct(1, true, Some(snat), None), DpAction::Recirc(1)]),
            "ct(commit,zone=1,nat(src=172.24.4.10)),recirc(0x1)"
        );
        // format_odp_ct_nat: ranges, flags in the datapath's order, IPv6 brackets only
        // before a port.
        let mut n = nat(NatKind::Src, Some(("10.1.1.240", "10.1.1.254")), (1024, 65535));
        n.random = true;
        n.persistent = true;
        assert_eq!(
            f(&[ct(0, true, Some(n), None)]),
            "ct(commit,nat(src=10.1.1.240-10.1.1.254:1024-65535,persistent,random))"
        );
        let n6 = nat(NatKind::Dst, Some(("fd00::1", "fd00::2")), (0, 0));
        assert_eq!(f(&[ct(0, false, Some(n6), None)]), "ct(nat(dst=fd00::1-fd00::2))");
        let n6 = nat(NatKind::Dst, Some(("fd00::1", "fd00::1")), (80, 80));
        assert_eq!(f(&[ct(0, false, Some(n6), None)]), "ct(nat(dst=[fd00::1]:80))");
        assert_eq!(f(&[ct(0, false, None, None)]), "ct");
    }

    #[test]
    fn clones_tunnels_vlans_drop() {
        // vxlan-tunnel: a flood to two tunnel ports; the last clone is not printed.
        let acts = [
            DpAction::Clone(vec![
                tnl_push("aa:bb:cc:00:00:13", "192.168.1.13", 0x77, false),
                DpAction::Output(5),
            ]),
            DpAction::Clone(vec![
                tnl_push("aa:bb:cc:00:00:14", "192.168.1.14", 0x77, true),
                DpAction::Output(5),
            ]),
        ];
        assert_eq!(
            format_actions(&acts, None),
            "clone(tnl_push(tnl_port(4789),header(size=50,type=4,eth(dst=aa:bb:cc:00:00:13,\
             src=aa:55:aa:55:00:12,dl_type=0x0800),ipv4(src=192.168.1.12,dst=192.168.1.13,\
             proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=4789,csum=0x0),\
             vxlan(flags=0x8000000,vni=0x77)),out_port(6)),5),tnl_push(tnl_port(4789),\
             header(size=50,type=4,eth(dst=aa:bb:cc:00:00:14,src=aa:55:aa:55:00:12,\
             dl_type=0x0800),ipv4(src=192.168.1.12,dst=192.168.1.14,proto=17,tos=0,ttl=64,\
             frag=0x4000),udp(src=0,dst=4789,csum=0xffff),vxlan(flags=0x8000000,vni=0x77)),\
             out_port(6)),5"
        );
        struct N;
        impl DpPortNames for N {
            fn dp_port_name(&self, p: u32) -> Option<String> {
                Some(match p {
                    4789 => "vxlan_sys_4789".into(),
                    5 => "eth0".into(),
                    6 => "br-phy".into(),
                    _ => return None,
                })
            }
        }
        assert_eq!(format_actions(&[DpAction::TnlPop(4789)], Some(&N)), "tnl_pop(vxlan_sys_4789)");
        let one = [DpAction::Clone(vec![
            tnl_push("aa:bb:cc:00:00:13", "192.168.1.13", 0x42, false),
            DpAction::Output(5),
        ])];
        let s = format_actions(&one, Some(&N));
        assert!(s.starts_with("tnl_push(tnl_port(vxlan_sys_4789),header("), "{s}");
        assert!(s.ends_with("vni=0x42)),out_port(br-phy)),eth0"), "{s}");
        // vlan-ops: TPIDs, a tag without the CFI bit.
        assert_eq!(
            format_actions(&[DpAction::PushVlan { tpid: 0x88a8, tci: 0x1000 | 200 }], None),
            "push_vlan(tpid=0x88a8,vid=200,pcp=0)"
        );
        assert_eq!(
            format_actions(&[DpAction::PushVlan { tpid: 0x8100, tci: 0x6005 }], None),
            "push_vlan(vid=5,pcp=3,cfi=0)"
        );
        assert_eq!(format_actions(&[], None), "drop");
        assert_eq!(format_actions(&[DpAction::Clone(vec![])], None), "drop");
    }
}
