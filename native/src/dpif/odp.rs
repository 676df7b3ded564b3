//! Datapath actions: what a megaflow does to a packet, in the vocabulary of OVS's datapath
//! (`set(eth(...))`, `push_vlan(...)`, `tnl_push(...)`, `ct(...)`, `recirc(...)`, port
//! numbers), and how they print.
//!
//! Translation produces these once per megaflow; the fast path only executes them.

use crate::ofproto::action::NatSpec;
use std::fmt::Write as _;

/// Why a packet went nowhere. Every input packet that is not emitted is counted under
/// exactly one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Shorter than an Ethernet header.
    Runt,
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
    /// The megaflow cache is full and the packet could not be cached (not used to drop:
    /// kept for accounting of refused installs).
    RecirculationTooDeep,
    /// An output to a port that does not exist.
    NoSuchPort,
}

impl DropReason {
    /// The name used in stats.json.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Runt => "runt",
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

/// One datapath action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DpAction {
    Output(u32),
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
    },
    SetIpv6 {
        src: Option<[u8; 16]>,
        dst: Option<[u8; 16]>,
        tclass: Option<u8>,
        hlimit: Option<u8>,
        label: Option<u32>,
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
    },
    Recirc(u32),
    /// Runs the nested actions on a copy of the packet.
    Clone(Vec<DpAction>),
}

/// Port-number-to-name lookup for printing with `--names`.
pub trait DpPortNames {
    fn dp_port_name(&self, port: u32) -> Option<String>;
}

fn mac(m: &[u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

fn ip4(v: u32) -> String {
    std::net::Ipv4Addr::from(v).to_string()
}

/// C's `%#x`: no `0x` prefix for zero.
fn c_alt_hex(v: u64) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    }
}

fn port_str(p: u32, names: Option<&dyn DpPortNames>) -> String {
    names.and_then(|n| n.dp_port_name(p)).unwrap_or_else(|| p.to_string())
}

/// Prints actions in `dpctl/dump-flows` / `Datapath actions:` syntax. An empty list prints
/// `drop`.
pub fn format_actions(actions: &[DpAction], names: Option<&dyn DpPortNames>) -> String {
    if actions.is_empty() {
        return "drop".to_string();
    }
    let mut s = String::new();
    for (i, a) in actions.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        format_one(&mut s, a, names);
    }
    s
}

fn opt_list(s: &mut String, parts: &[(&str, Option<String>)]) {
    let mut first = true;
    for (k, v) in parts {
        if let Some(v) = v {
            if !first {
                s.push(',');
            }
            first = false;
            let _ = write!(s, "{k}={v}");
        }
    }
}

fn format_one(s: &mut String, a: &DpAction, names: Option<&dyn DpPortNames>) {
    match a {
        DpAction::Output(p) => s.push_str(&port_str(*p, names)),
        DpAction::SetEth { src, dst } => {
            s.push_str("set(eth(");
            opt_list(s, &[("src", src.as_ref().map(mac)), ("dst", dst.as_ref().map(mac))]);
            s.push_str("))");
        }
        DpAction::PushVlan { tpid, tci } => {
            s.push_str("push_vlan(");
            if *tpid != 0x8100 {
                let _ = write!(s, "tpid=0x{tpid:x},");
            }
            let _ = write!(s, "vid={},pcp={})", tci & 0x0fff, tci >> 13);
        }
        DpAction::PopVlan => s.push_str("pop_vlan"),
        DpAction::SetIpv4 { src, dst, tos, ttl } => {
            s.push_str("set(ipv4(");
            opt_list(
                s,
                &[
                    ("src", src.map(ip4)),
                    ("dst", dst.map(ip4)),
                    ("tos", tos.map(|t| format!("0x{t:x}"))),
                    ("ttl", ttl.map(|t| t.to_string())),
                ],
            );
            s.push_str("))");
        }
        DpAction::SetIpv6 { src, dst, tclass, hlimit, label } => {
            s.push_str("set(ipv6(");
            opt_list(
                s,
                &[
                    ("src", src.map(|a| std::net::Ipv6Addr::from(a).to_string())),
                    ("dst", dst.map(|a| std::net::Ipv6Addr::from(a).to_string())),
                    ("label", label.map(|l| format!("0x{l:x}"))),
                    ("tclass", tclass.map(|t| format!("0x{t:x}"))),
                    ("hlimit", hlimit.map(|t| t.to_string())),
                ],
            );
            s.push_str("))");
        }
        DpAction::SetPorts { proto, src, dst } => {
            let name = match proto {
                6 => "tcp",
                17 => "udp",
                _ => "sctp",
            };
            let _ = write!(s, "set({name}(");
            opt_list(
                s,
                &[("src", src.map(|p| p.to_string())), ("dst", dst.map(|p| p.to_string()))],
            );
            s.push_str("))");
        }
        DpAction::SetIcmp { v6, typ, code } => {
            let _ = write!(s, "set({}(", if *v6 { "icmpv6" } else { "icmp" });
            opt_list(
                s,
                &[("type", typ.map(|t| t.to_string())), ("code", code.map(|c| c.to_string()))],
            );
            s.push_str("))");
        }
        DpAction::SetArp { op, sip, tip, sha, tha } => {
            s.push_str("set(arp(");
            opt_list(
                s,
                &[
                    ("sip", sip.map(ip4)),
                    ("tip", tip.map(ip4)),
                    ("op", op.map(|o| o.to_string())),
                    ("sha", sha.as_ref().map(mac)),
                    ("tha", tha.as_ref().map(mac)),
                ],
            );
            s.push_str("))");
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
            let _ = write!(
                s,
                "tnl_push(tnl_port({}),header(size=50,type=4,eth(dst={},src={},dl_type=0x0800),\
                 ipv4(src={},dst={},proto=17,tos={},ttl={},frag={:#x}),\
                 udp(src=0,dst={},csum={:#x}),vxlan(flags={:#x},vni={:#x})),out_port({}))",
                port_str(t.tnl_port, names),
                mac(&eth_dst),
                mac(&eth_src),
                ip4(src),
                ip4(dst),
                c_alt_hex(h[15] as u64),
                h[22],
                frag,
                dport,
                if t.csum { 0xffff } else { 0 },
                flags,
                vni,
                port_str(t.out_port, names),
            );
        }
        DpAction::TnlPop(p) => {
            let _ = write!(s, "tnl_pop({})", port_str(*p, names));
        }
        DpAction::Ct { zone, commit, force, nat, mark } => {
            s.push_str("ct(");
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
                if *m == u32::MAX {
                    parts.push(format!("mark={v:#x}"));
                } else {
                    parts.push(format!("mark={v:#x}/{m:#x}"));
                }
            }
            if let Some(n) = nat {
                parts.push(crate::ofproto::action::format_nat(n));
            }
            s.push_str(&parts.join(","));
            s.push(')');
        }
        DpAction::Recirc(id) => {
            let _ = write!(s, "recirc({id:#x})");
        }
        DpAction::Clone(inner) => {
            s.push_str("clone(");
            s.push_str(&format_actions(inner, names));
            s.push(')');
        }
    }
}
