//! The match fields users name in flows (`dl_src`, `nw_dst`, `tun_id`, `reg0`, `ct_state`,
//! `NXM_OF_ETH_SRC`, `OXM_OF_VLAN_VID`, ...), and how each one is stored in a `FlowKey`.
//!
//! A field is a window of `width` bits, `shift` bits up, inside one storage slot of the key
//! (an integer in host order, or a network-order byte array). Several fields can share a
//! slot: `dl_vlan`, `dl_vlan_pcp`, `vlan_vid` and `vlan_tci` are all views of `vlan_tci`;
//! `nw_tos`, `ip_dscp` and `nw_ecn` are views of the TOS byte; `tcp_src`, `udp_src` and
//! `icmp_type` are all `tp_src`. Values cross this module as `u128`, so 48-bit MACs and
//! 128-bit IPv6 addresses fit.
//!
//! Reading or writing through `get` / `set` never panics: every descriptor is checked against
//! the key's layout by the tests below.

use super::key::FlowKey;
use core::mem::offset_of;

/// How a value prints and parses in ovs-ofctl syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fmt {
    Dec,
    Hex,
    Mac,
    Ipv4,
    Ipv6,
    /// OpenFlow port: a number, a port name, or a reserved name (`LOCAL`, `IN_PORT`, ...).
    Port,
    /// `+trk+est` flags.
    CtState,
    /// `no|yes|first|later|not_later`.
    Frag,
    /// `+syn+ack` flags, or hex.
    TcpFlags,
}

/// What a packet must carry for the field to exist (OVS's `mf_prereqs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prereq {
    None,
    /// A VLAN tag is present.
    Vlan,
    /// IPv4 or IPv6.
    IpAny,
    Ipv4,
    Ipv6,
    Arp,
    Tcp,
    Udp,
    Sctp,
    Icmp4,
    Icmp6,
    /// ICMPv6 neighbour discovery (type 135 or 136).
    Nd,
    /// ICMPv6 neighbour solicitation (135).
    NdSolicit,
    /// ICMPv6 neighbour advertisement (136).
    NdAdvert,
    /// TCP over IPv4 or IPv6.
    TcpAny,
}

/// Every field. The numbering is internal; names are in `FIELDS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum FieldId {
    TunId,
    TunSrc,
    TunDst,
    Metadata,
    Reg0,
    Reg1,
    Reg2,
    Reg3,
    Reg4,
    Reg5,
    Reg6,
    Reg7,
    InPort,
    InPortOxm,
    RecircId,
    CtMark,
    CtZone,
    CtState,
    DlDst,
    DlSrc,
    DlType,
    VlanTci,
    DlVlan,
    DlVlanPcp,
    VlanVid,
    VlanPcp,
    NwSrc,
    NwDst,
    ArpSpa,
    ArpTpa,
    Ipv6Src,
    Ipv6Dst,
    Ipv6Label,
    NwFrag,
    NwTos,
    IpDscp,
    NwEcn,
    NwTtl,
    NwProto,
    ArpOp,
    NdTarget,
    ArpSha,
    ArpTha,
    NdSll,
    NdTll,
    TcpFlags,
    TcpSrc,
    TcpDst,
    UdpSrc,
    UdpDst,
    SctpSrc,
    SctpDst,
    IcmpType,
    IcmpCode,
    Icmpv6Type,
    Icmpv6Code,
}

/// The description of one field.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub id: FieldId,
    /// The ovs-ofctl (OpenFlow 1.0 style) name, as dump-flows prints it.
    pub name: &'static str,
    /// Other names accepted in match and action text (OXM, NXM, ...).
    pub aliases: &'static [&'static str],
    /// The NXM/OXM name used in `load:`/`move:`/`learn(...)` subfields, as OVS prints it.
    pub nxm: &'static str,
    off: usize,    // byte offset of the storage slot in FlowKey
    size: u8,      // storage slot size in bytes: 1, 2, 4, 8 (host order) or 6, 16 (network order)
    net: bool,     // true for byte arrays in network order
    pub shift: u8, // bit position of the field inside the slot
    pub width: u8, // field width in bits
    pub fmt: Fmt,
    pub prereq: Prereq,
    /// May be written by `set_field`, `load` and `move`.
    pub writable: bool,
}

macro_rules! f {
    ($id:ident, $name:expr, [$($alias:expr),*], $nxm:expr, $slot:ident, $size:expr, $net:expr,
     $shift:expr, $width:expr, $fmt:ident, $pre:ident, $w:expr) => {
        Field {
            id: FieldId::$id,
            name: $name,
            aliases: &[$($alias),*],
            nxm: $nxm,
            off: offset_of!(FlowKey, $slot),
            size: $size,
            net: $net,
            shift: $shift,
            width: $width,
            fmt: Fmt::$fmt,
            prereq: Prereq::$pre,
            writable: $w,
        }
    };
}

const fn reg_off(i: usize) -> usize {
    offset_of!(FlowKey, regs) + 4 * i
}

macro_rules! reg {
    ($id:ident, $i:expr, $name:expr, $nxm:expr, $oxm:expr) => {
        Field {
            id: FieldId::$id,
            name: $name,
            aliases: &[$nxm, $oxm],
            nxm: $nxm,
            off: reg_off($i),
            size: 4,
            net: false,
            shift: 0,
            width: 32,
            fmt: Fmt::Hex,
            prereq: Prereq::None,
            writable: true,
        }
    };
}

/// All fields, indexed by `FieldId as usize`.
pub static FIELDS: [Field; 56] = [
    f!(
        TunId,
        "tun_id",
        ["tunnel_id", "NXM_NX_TUN_ID", "OXM_OF_TUNNEL_ID"],
        "NXM_NX_TUN_ID",
        tun_id,
        8,
        false,
        0,
        64,
        Hex,
        None,
        true
    ),
    f!(
        TunSrc,
        "tun_src",
        ["NXM_NX_TUN_IPV4_SRC"],
        "NXM_NX_TUN_IPV4_SRC",
        tun_src,
        4,
        false,
        0,
        32,
        Ipv4,
        None,
        true
    ),
    f!(
        TunDst,
        "tun_dst",
        ["NXM_NX_TUN_IPV4_DST"],
        "NXM_NX_TUN_IPV4_DST",
        tun_dst,
        4,
        false,
        0,
        32,
        Ipv4,
        None,
        true
    ),
    f!(
        Metadata,
        "metadata",
        ["OXM_OF_METADATA"],
        "OXM_OF_METADATA",
        metadata,
        8,
        false,
        0,
        64,
        Hex,
        None,
        true
    ),
    reg!(Reg0, 0, "reg0", "NXM_NX_REG0", "OXM_OF_PKT_REG0"),
    reg!(Reg1, 1, "reg1", "NXM_NX_REG1", "NXM_NX_REG1_"),
    reg!(Reg2, 2, "reg2", "NXM_NX_REG2", "NXM_NX_REG2_"),
    reg!(Reg3, 3, "reg3", "NXM_NX_REG3", "NXM_NX_REG3_"),
    reg!(Reg4, 4, "reg4", "NXM_NX_REG4", "NXM_NX_REG4_"),
    reg!(Reg5, 5, "reg5", "NXM_NX_REG5", "NXM_NX_REG5_"),
    reg!(Reg6, 6, "reg6", "NXM_NX_REG6", "NXM_NX_REG6_"),
    reg!(Reg7, 7, "reg7", "NXM_NX_REG7", "NXM_NX_REG7_"),
    f!(
        InPort,
        "in_port",
        ["NXM_OF_IN_PORT"],
        "NXM_OF_IN_PORT",
        in_port,
        4,
        false,
        0,
        16,
        Port,
        None,
        true
    ),
    f!(
        InPortOxm,
        "in_port_oxm",
        ["OXM_OF_IN_PORT"],
        "OXM_OF_IN_PORT",
        in_port,
        4,
        false,
        0,
        32,
        Port,
        None,
        true
    ),
    f!(RecircId, "recirc_id", [], "NXM_NX_RECIRC_ID", recirc_id, 4, false, 0, 32, Hex, None, false),
    f!(
        CtMark,
        "ct_mark",
        ["NXM_NX_CT_MARK"],
        "NXM_NX_CT_MARK",
        ct_mark,
        4,
        false,
        0,
        32,
        Hex,
        None,
        true
    ),
    f!(
        CtZone,
        "ct_zone",
        ["NXM_NX_CT_ZONE"],
        "NXM_NX_CT_ZONE",
        ct_zone,
        2,
        false,
        0,
        16,
        Hex,
        None,
        false
    ),
    f!(
        CtState,
        "ct_state",
        ["NXM_NX_CT_STATE"],
        "NXM_NX_CT_STATE",
        ct_state,
        1,
        false,
        0,
        8,
        CtState,
        None,
        false
    ),
    f!(
        DlDst,
        "dl_dst",
        ["eth_dst", "NXM_OF_ETH_DST", "OXM_OF_ETH_DST"],
        "NXM_OF_ETH_DST",
        dl_dst,
        6,
        true,
        0,
        48,
        Mac,
        None,
        true
    ),
    f!(
        DlSrc,
        "dl_src",
        ["eth_src", "NXM_OF_ETH_SRC", "OXM_OF_ETH_SRC"],
        "NXM_OF_ETH_SRC",
        dl_src,
        6,
        true,
        0,
        48,
        Mac,
        None,
        true
    ),
    f!(
        DlType,
        "dl_type",
        ["eth_type", "NXM_OF_ETH_TYPE", "OXM_OF_ETH_TYPE"],
        "NXM_OF_ETH_TYPE",
        dl_type,
        2,
        false,
        0,
        16,
        Hex,
        None,
        false
    ),
    f!(
        VlanTci,
        "vlan_tci",
        ["NXM_OF_VLAN_TCI"],
        "NXM_OF_VLAN_TCI",
        vlan_tci,
        2,
        false,
        0,
        16,
        Hex,
        None,
        true
    ),
    f!(DlVlan, "dl_vlan", [], "OXM_OF_VLAN_VID", vlan_tci, 2, false, 0, 12, Dec, Vlan, true),
    f!(DlVlanPcp, "dl_vlan_pcp", [], "OXM_OF_VLAN_PCP", vlan_tci, 2, false, 13, 3, Dec, Vlan, true),
    f!(
        VlanVid,
        "vlan_vid",
        ["OXM_OF_VLAN_VID"],
        "OXM_OF_VLAN_VID",
        vlan_tci,
        2,
        false,
        0,
        13,
        Dec,
        None,
        true
    ),
    f!(
        VlanPcp,
        "vlan_pcp",
        ["OXM_OF_VLAN_PCP"],
        "OXM_OF_VLAN_PCP",
        vlan_tci,
        2,
        false,
        13,
        3,
        Dec,
        Vlan,
        true
    ),
    f!(
        NwSrc,
        "nw_src",
        ["ip_src", "ipv4_src", "NXM_OF_IP_SRC", "OXM_OF_IPV4_SRC"],
        "NXM_OF_IP_SRC",
        nw_src,
        4,
        false,
        0,
        32,
        Ipv4,
        Ipv4,
        true
    ),
    f!(
        NwDst,
        "nw_dst",
        ["ip_dst", "ipv4_dst", "NXM_OF_IP_DST", "OXM_OF_IPV4_DST"],
        "NXM_OF_IP_DST",
        nw_dst,
        4,
        false,
        0,
        32,
        Ipv4,
        Ipv4,
        true
    ),
    f!(
        ArpSpa,
        "arp_spa",
        ["NXM_OF_ARP_SPA", "OXM_OF_ARP_SPA"],
        "NXM_OF_ARP_SPA",
        nw_src,
        4,
        false,
        0,
        32,
        Ipv4,
        Arp,
        true
    ),
    f!(
        ArpTpa,
        "arp_tpa",
        ["NXM_OF_ARP_TPA", "OXM_OF_ARP_TPA"],
        "NXM_OF_ARP_TPA",
        nw_dst,
        4,
        false,
        0,
        32,
        Ipv4,
        Arp,
        true
    ),
    f!(
        Ipv6Src,
        "ipv6_src",
        ["NXM_NX_IPV6_SRC", "OXM_OF_IPV6_SRC"],
        "NXM_NX_IPV6_SRC",
        ipv6_src,
        16,
        true,
        0,
        128,
        Ipv6,
        Ipv6,
        true
    ),
    f!(
        Ipv6Dst,
        "ipv6_dst",
        ["NXM_NX_IPV6_DST", "OXM_OF_IPV6_DST"],
        "NXM_NX_IPV6_DST",
        ipv6_dst,
        16,
        true,
        0,
        128,
        Ipv6,
        Ipv6,
        true
    ),
    f!(
        Ipv6Label,
        "ipv6_label",
        ["NXM_NX_IPV6_LABEL", "OXM_OF_IPV6_FLABEL"],
        "NXM_NX_IPV6_LABEL",
        ipv6_label,
        4,
        false,
        0,
        20,
        Hex,
        Ipv6,
        true
    ),
    f!(
        NwFrag,
        "nw_frag",
        ["ip_frag", "NXM_NX_IP_FRAG"],
        "NXM_NX_IP_FRAG",
        nw_frag,
        1,
        false,
        0,
        2,
        Frag,
        IpAny,
        false
    ),
    // `nw_tos` is the whole TOS byte with the ECN bits excluded (values are multiples of 4,
    // as OVS prints them); the parser and `mod_nw_tos` apply the 0xfc mask.
    f!(
        NwTos,
        "nw_tos",
        ["NXM_OF_IP_TOS"],
        "NXM_OF_IP_TOS",
        nw_tos,
        1,
        false,
        0,
        8,
        Dec,
        IpAny,
        true
    ),
    f!(
        IpDscp,
        "ip_dscp",
        ["OXM_OF_IP_DSCP"],
        "OXM_OF_IP_DSCP",
        nw_tos,
        1,
        false,
        2,
        6,
        Dec,
        IpAny,
        true
    ),
    f!(
        NwEcn,
        "nw_ecn",
        ["ip_ecn", "NXM_NX_IP_ECN", "OXM_OF_IP_ECN"],
        "NXM_NX_IP_ECN",
        nw_tos,
        1,
        false,
        0,
        2,
        Dec,
        IpAny,
        true
    ),
    f!(
        NwTtl,
        "nw_ttl",
        ["NXM_NX_IP_TTL"],
        "NXM_NX_IP_TTL",
        nw_ttl,
        1,
        false,
        0,
        8,
        Dec,
        IpAny,
        true
    ),
    f!(
        NwProto,
        "nw_proto",
        ["ip_proto", "NXM_OF_IP_PROTO", "OXM_OF_IP_PROTO"],
        "NXM_OF_IP_PROTO",
        nw_proto,
        1,
        false,
        0,
        8,
        Dec,
        IpAny,
        false
    ),
    f!(
        ArpOp,
        "arp_op",
        ["NXM_OF_ARP_OP", "OXM_OF_ARP_OP"],
        "NXM_OF_ARP_OP",
        nw_proto,
        1,
        false,
        0,
        8,
        Dec,
        Arp,
        true
    ),
    f!(
        NdTarget,
        "nd_target",
        ["NXM_NX_ND_TARGET", "OXM_OF_IPV6_ND_TARGET"],
        "NXM_NX_ND_TARGET",
        nd_target,
        16,
        true,
        0,
        128,
        Ipv6,
        Nd,
        true
    ),
    f!(
        ArpSha,
        "arp_sha",
        ["NXM_NX_ARP_SHA", "OXM_OF_ARP_SHA"],
        "NXM_NX_ARP_SHA",
        arp_sha,
        6,
        true,
        0,
        48,
        Mac,
        Arp,
        true
    ),
    f!(
        ArpTha,
        "arp_tha",
        ["NXM_NX_ARP_THA", "OXM_OF_ARP_THA"],
        "NXM_NX_ARP_THA",
        arp_tha,
        6,
        true,
        0,
        48,
        Mac,
        Arp,
        true
    ),
    f!(
        NdSll,
        "nd_sll",
        ["NXM_NX_ND_SLL", "OXM_OF_IPV6_ND_SLL"],
        "NXM_NX_ND_SLL",
        arp_sha,
        6,
        true,
        0,
        48,
        Mac,
        NdSolicit,
        true
    ),
    f!(
        NdTll,
        "nd_tll",
        ["NXM_NX_ND_TLL", "OXM_OF_IPV6_ND_TLL"],
        "NXM_NX_ND_TLL",
        arp_tha,
        6,
        true,
        0,
        48,
        Mac,
        NdAdvert,
        true
    ),
    f!(
        TcpFlags,
        "tcp_flags",
        ["NXM_NX_TCP_FLAGS", "OXM_OF_TCP_FLAGS"],
        "NXM_NX_TCP_FLAGS",
        tcp_flags,
        2,
        false,
        0,
        12,
        TcpFlags,
        TcpAny,
        false
    ),
    f!(
        TcpSrc,
        "tcp_src",
        ["NXM_OF_TCP_SRC", "OXM_OF_TCP_SRC"],
        "NXM_OF_TCP_SRC",
        tp_src,
        2,
        false,
        0,
        16,
        Dec,
        Tcp,
        true
    ),
    f!(
        TcpDst,
        "tcp_dst",
        ["NXM_OF_TCP_DST", "OXM_OF_TCP_DST"],
        "NXM_OF_TCP_DST",
        tp_dst,
        2,
        false,
        0,
        16,
        Dec,
        Tcp,
        true
    ),
    f!(
        UdpSrc,
        "udp_src",
        ["NXM_OF_UDP_SRC", "OXM_OF_UDP_SRC"],
        "NXM_OF_UDP_SRC",
        tp_src,
        2,
        false,
        0,
        16,
        Dec,
        Udp,
        true
    ),
    f!(
        UdpDst,
        "udp_dst",
        ["NXM_OF_UDP_DST", "OXM_OF_UDP_DST"],
        "NXM_OF_UDP_DST",
        tp_dst,
        2,
        false,
        0,
        16,
        Dec,
        Udp,
        true
    ),
    f!(
        SctpSrc,
        "sctp_src",
        ["OXM_OF_SCTP_SRC"],
        "OXM_OF_SCTP_SRC",
        tp_src,
        2,
        false,
        0,
        16,
        Dec,
        Sctp,
        true
    ),
    f!(
        SctpDst,
        "sctp_dst",
        ["OXM_OF_SCTP_DST"],
        "OXM_OF_SCTP_DST",
        tp_dst,
        2,
        false,
        0,
        16,
        Dec,
        Sctp,
        true
    ),
    f!(
        IcmpType,
        "icmp_type",
        ["icmpv4_type", "NXM_OF_ICMP_TYPE", "OXM_OF_ICMPV4_TYPE"],
        "NXM_OF_ICMP_TYPE",
        tp_src,
        2,
        false,
        0,
        8,
        Dec,
        Icmp4,
        true
    ),
    f!(
        IcmpCode,
        "icmp_code",
        ["icmpv4_code", "NXM_OF_ICMP_CODE", "OXM_OF_ICMPV4_CODE"],
        "NXM_OF_ICMP_CODE",
        tp_dst,
        2,
        false,
        0,
        8,
        Dec,
        Icmp4,
        true
    ),
    f!(
        Icmpv6Type,
        "icmpv6_type",
        ["NXM_NX_ICMPV6_TYPE", "OXM_OF_ICMPV6_TYPE"],
        "NXM_NX_ICMPV6_TYPE",
        tp_src,
        2,
        false,
        0,
        8,
        Dec,
        Icmp6,
        true
    ),
    f!(
        Icmpv6Code,
        "icmpv6_code",
        ["NXM_NX_ICMPV6_CODE", "OXM_OF_ICMPV6_CODE"],
        "NXM_NX_ICMPV6_CODE",
        tp_dst,
        2,
        false,
        0,
        8,
        Dec,
        Icmp6,
        true
    ),
];

impl FieldId {
    /// The field's description.
    #[inline(always)]
    pub fn field(self) -> &'static Field {
        &FIELDS[self as usize]
    }
}

impl Field {
    /// Finds a field by its ovs-ofctl name or any alias (case-sensitive for the lowercase
    /// names, as OVS; NXM/OXM names match in any case).
    pub fn by_name(name: &str) -> Option<&'static Field> {
        FIELDS.iter().find(|f| {
            f.name == name
                || f.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
                || (!f.nxm.is_empty() && f.nxm.eq_ignore_ascii_case(name))
        })
    }

    /// A mask of `width` ones.
    #[inline(always)]
    pub fn all_ones(&self) -> u128 {
        if self.width >= 128 {
            u128::MAX
        } else {
            (1u128 << self.width) - 1
        }
    }

    #[inline(always)]
    fn slot_get(&self, key: &FlowKey) -> u128 {
        let b = &key.bytes()[self.off..self.off + self.size as usize];
        let mut v: u128 = 0;
        if self.net {
            for x in b {
                v = (v << 8) | *x as u128;
            }
        } else {
            // Host-order integer: assemble in native byte order.
            let mut buf = [0u8; 16];
            let n = b.len();
            if cfg!(target_endian = "little") {
                buf[..n].copy_from_slice(b);
                v = u128::from_le_bytes(buf);
            } else {
                buf[16 - n..].copy_from_slice(b);
                v = u128::from_be_bytes(buf);
            }
        }
        v
    }

    #[inline(always)]
    fn slot_set(&self, key: &mut FlowKey, v: u128) {
        let n = self.size as usize;
        let b = &mut key.bytes_mut()[self.off..self.off + n];
        if self.net {
            for (i, x) in b.iter_mut().enumerate() {
                *x = (v >> (8 * (n - 1 - i))) as u8;
            }
        } else if cfg!(target_endian = "little") {
            b.copy_from_slice(&v.to_le_bytes()[..n]);
        } else {
            b.copy_from_slice(&v.to_be_bytes()[16 - n..]);
        }
    }

    /// The field's value in `key`.
    #[inline(always)]
    pub fn get(&self, key: &FlowKey) -> u128 {
        (self.slot_get(key) >> self.shift) & self.all_ones()
    }

    /// Writes the bits of `value` selected by `mask` (both in field units) into `key`.
    #[inline(always)]
    pub fn set_masked(&self, key: &mut FlowKey, value: u128, mask: u128) {
        let m = (mask & self.all_ones()) << self.shift;
        let old = self.slot_get(key);
        self.slot_set(key, (old & !m) | ((value << self.shift) & m));
    }

    /// Writes the whole field.
    #[inline(always)]
    pub fn set(&self, key: &mut FlowKey, value: u128) {
        self.set_masked(key, value, u128::MAX);
    }

    /// In a mask key: marks the bits of `bits` (field units) as matched.
    #[inline(always)]
    pub fn unwildcard(&self, mask: &mut FlowKey, bits: u128) {
        let m = (bits & self.all_ones()) << self.shift;
        let old = self.slot_get(mask);
        self.slot_set(mask, old | m);
    }

    /// In a mask key: marks the whole field as matched.
    #[inline(always)]
    pub fn unwildcard_all(&self, mask: &mut FlowKey) {
        self.unwildcard(mask, u128::MAX);
    }

    /// Byte range of the storage slot inside the key (for word-level bookkeeping).
    pub fn slot_range(&self) -> core::ops::Range<usize> {
        self.off..self.off + self.size as usize
    }
}

/// A subfield `FIELD[a..b]` as written in `load`, `move`, `learn` and `output:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subfield {
    pub field: FieldId,
    pub ofs: u8,    // first bit
    pub n_bits: u8, // number of bits
}

impl Subfield {
    /// The whole field.
    pub fn whole(field: FieldId) -> Subfield {
        Subfield { field, ofs: 0, n_bits: field.field().width }
    }

    /// The bits this subfield covers, in field units.
    #[inline(always)]
    pub fn bits(&self) -> u128 {
        let ones = if self.n_bits >= 128 { u128::MAX } else { (1u128 << self.n_bits) - 1 };
        ones << self.ofs
    }

    /// Reads the subfield (right-aligned).
    #[inline(always)]
    pub fn get(&self, key: &FlowKey) -> u128 {
        (self.field.field().get(key) & self.bits()) >> self.ofs
    }

    /// Writes a right-aligned value into the subfield.
    #[inline(always)]
    pub fn set(&self, key: &mut FlowKey, value: u128) {
        self.field.field().set_masked(key, value << self.ofs, self.bits());
    }

    /// Marks the subfield as matched in a mask.
    #[inline(always)]
    pub fn unwildcard(&self, mask: &mut FlowKey) {
        self.field.field().unwildcard(mask, self.bits());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::KEY_WORDS;

    #[test]
    fn table_is_indexed_by_id_and_in_bounds() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert_eq!(f.id as usize, i, "{}", f.name);
            assert!(f.off + f.size as usize <= KEY_WORDS * 8, "{}", f.name);
            assert!((f.shift as u32 + f.width as u32) <= f.size as u32 * 8, "{}", f.name);
        }
    }

    #[test]
    fn views_share_storage() {
        let mut k = FlowKey::ZERO;
        FieldId::VlanTci.field().set(&mut k, 0x3064);
        assert_eq!(FieldId::DlVlan.field().get(&k), 100);
        assert_eq!(FieldId::DlVlanPcp.field().get(&k), 1);
        assert_eq!(FieldId::VlanVid.field().get(&k), 0x1064);
        FieldId::DlSrc.field().set(&mut k, 0xfa163e000001);
        assert_eq!(k.dl_src, [0xfa, 0x16, 0x3e, 0, 0, 1]);
        k.nw_tos = 0xb9;
        assert_eq!(FieldId::NwEcn.field().get(&k), 1);
        assert_eq!(FieldId::IpDscp.field().get(&k), 0x2e);
        let sf = Subfield { field: FieldId::Reg0, ofs: 4, n_bits: 8 };
        sf.set(&mut k, 0x1ff);
        assert_eq!(k.regs[0], 0xff0);
        assert_eq!(sf.get(&k), 0xff);
        let mut m = FlowKey::ZERO;
        sf.unwildcard(&mut m);
        assert_eq!(m.regs[0], 0xff0);
        assert!(Field::by_name("NXM_OF_ETH_SRC").is_some());
        assert!(Field::by_name("nxm_nx_tun_id").is_some());
    }
}
