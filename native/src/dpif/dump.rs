//! Megaflows as `ovs-appctl dpctl/dump-flows` prints them for OVS 3.1's userspace datapath:
//! the match in datapath key syntax (`recirc_id(0),in_port(1),packet_type(ns=0,id=0),
//! eth(...),eth_type(0x0800),ipv4(...),udp(...)`), then the statistics and the actions.
//!
//! How OVS decides what to print, and what this module keeps of it:
//! - The key is a list of attributes chosen from the *key* (not the mask), in the order of
//!   `odp_flow_key_from_flow()`: `tunnel` (only for a packet that came through a tunnel),
//!   `ct_state`, `ct_zone`, `ct_mark`, `recirc_id`, `in_port`, `packet_type`, `eth`, then
//!   `eth_type` + `vlan` + `encap(...)` for a tagged frame, `eth_type`, the L3 attribute
//!   (`ipv4`, `ipv6`, `arp`) for that EtherType, and the L4 one (`tcp` + `tcp_flags`, `udp`,
//!   `sctp`, `icmp`, `icmpv6` + `nd`) for that protocol unless the packet is a later fragment.
//! - Without `-m`, an attribute whose mask is all zeros is left out, except the nested ones
//!   (`tunnel`, `encap`); inside an attribute, a field with a zero mask is left out, an exact
//!   one prints its value and a partial one `value/mask`. Values are printed as the key holds
//!   them: OVS keeps the first packet's unmasked key, so a caller that wants identical output
//!   for partial masks passes that key rather than the masked one.
//! - `recirc_id`, `in_port` and `packet_type` are always exact in the userspace datapath,
//!   and print so whatever the mask says.
//! - With `-m` (`verbose`) every attribute and field prints, with `/0` masks, including the
//!   ones dvrlab has no state for (`skb_priority(0/0)`, `skb_mark(0/0)`, `ct_label(0/0)`,
//!   `dp_hash(0/0)`). Not printed, because the flow key does not hold them: the `ufid:`
//!   prefix, `ct_tuple4(...)`, the tunnel's outer `ttl`, `tp_src` and `tp_dst`, and the
//!   trailing `dp-extra-info:miniflow_bits(..)`.
//!
//! Every function here is pure and never panics.

use super::megaflow::FlowStats;
use super::odp::{format_actions, DpAction, DpPortNames};
use crate::flow::key::{nw_frag, tun_flags, FlowKey, VLAN_CFI};
use crate::fmt::{c_hex, flags, flags_masked, ipv6, mac, CT_NAMES, TCP_NAMES, TUN_NAMES};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// The line OVS prints before the flows of the (single) PMD thread.
pub const DPCTL_DUMP_HEADER: &str = "flow-dump from pmd on cpu core: 1";

/// The fields of one attribute, joined by commas.
struct Fields {
    parts: Vec<String>,
    verbose: bool,
}

impl Fields {
    fn new(verbose: bool) -> Fields {
        Fields { parts: Vec::new(), verbose }
    }

    fn shown(&self, mask_zero: bool) -> bool {
        self.verbose || !mask_zero
    }

    fn ipv4(&mut self, name: &str, v: u32, m: u32) {
        if self.shown(m == 0) {
            let mut s = format!("{name}={}", Ipv4Addr::from(v));
            if m != u32::MAX {
                let _ = write!(s, "/{}", Ipv4Addr::from(m));
            }
            self.parts.push(s);
        }
    }

    fn ipv6(&mut self, name: &str, v: &[u8; 16], m: &[u8; 16]) {
        if self.shown(*m == [0; 16]) {
            let mut s = format!("{name}={}", ipv6(v));
            if *m != [0xff; 16] {
                let _ = write!(s, "/{}", ipv6(m));
            }
            self.parts.push(s);
        }
    }

    fn eth(&mut self, name: &str, v: &[u8; 6], m: &[u8; 6]) {
        if self.shown(*m == [0; 6]) {
            if *m == [0xff; 6] {
                self.parts.push(format!("{name}={}", mac(v)));
            } else {
                self.parts.push(format!("{name}={}/{}", mac(v), mac(m)));
            }
        }
    }

    /// `format_u8u`: decimal value, hex mask.
    fn u8u(&mut self, name: &str, v: u8, m: u8) {
        if self.shown(m == 0) {
            let mut s = format!("{name}={v}");
            if m != u8::MAX {
                let _ = write!(s, "/{}", c_hex(m.into()));
            }
            self.parts.push(s);
        }
    }

    /// `format_u8x`: hex value, hex mask.
    fn u8x(&mut self, name: &str, v: u8, m: u8) {
        if self.shown(m == 0) {
            let mut s = format!("{name}={}", c_hex(v.into()));
            if m != u8::MAX {
                let _ = write!(s, "/{}", c_hex(m.into()));
            }
            self.parts.push(s);
        }
    }

    /// `format_be16`: decimal value, hex mask.
    fn u16d(&mut self, name: &str, v: u16, m: u16) {
        if self.shown(m == 0) {
            let mut s = format!("{name}={v}");
            if m != u16::MAX {
                let _ = write!(s, "/{}", c_hex(m.into()));
            }
            self.parts.push(s);
        }
    }

    /// `format_frag`: an enumeration; only an exact mask prints, even with `-m`.
    fn frag(&mut self, key: u8, mask: u8) {
        if odp_frag_mask(mask) != 0 {
            self.parts.push(format!("frag={}", odp_frag_name(key)));
        }
    }

    fn push(&mut self, s: String) {
        self.parts.push(s);
    }

    fn finish(self) -> String {
        self.parts.join(",")
    }
}

/// The datapath's `frag` mask: all ones when "is a fragment" is matched, else zero.
fn odp_frag_mask(m: u8) -> u8 {
    if m & nw_frag::ANY != 0 {
        0xff
    } else {
        0
    }
}

fn odp_frag_name(k: u8) -> &'static str {
    if k & nw_frag::ANY == 0 {
        "no"
    } else if k & nw_frag::LATER != 0 {
        "later"
    } else {
        "first"
    }
}

/// Appends `name(content)`.
fn attr(out: &mut Vec<String>, name: &str, content: String) {
    out.push(format!("{name}({content})"));
}

/// A 32-bit metadata attribute (`recirc_id`, `ct_mark`): `%#x`, then `/%#x` unless exact.
fn u32_attr(v: u32, m: u32) -> String {
    if m == u32::MAX {
        c_hex(v.into())
    } else {
        format!("{}/{}", c_hex(v.into()), c_hex(m.into()))
    }
}

fn is_nd(k: &FlowKey) -> bool {
    k.is_ipv6() && k.nw_proto == 58 && k.tp_dst == 0 && (k.tp_src == 135 || k.tp_src == 136)
}

fn is_vlan_type(t: u16) -> bool {
    matches!(t, 0x8100 | 0x88a8 | 0x9100)
}

/// The tunnel attribute (`format_odp_tun_attr`).
fn tunnel_attr(k: &FlowKey, m: &FlowKey, verbose: bool) -> String {
    let mut f = Fields::new(verbose);
    // OVS flag bits: OAM 1, DF 2, CSUM 4, KEY 8.
    let mut key_flags = 0u32;
    let mut mask_flags = 0u32;
    if k.tun_id != 0 || k.tun_flags & tun_flags::KEY != 0 {
        if f.shown(m.tun_id == 0) {
            let mut s = format!("tun_id=0x{:x}", k.tun_id);
            if m.tun_id != u64::MAX {
                let _ = write!(s, "/{}", c_hex(m.tun_id));
            }
            f.push(s);
        }
        key_flags |= 8;
        // The mask attribute always exists, so the key bit always counts as matched.
        mask_flags |= 8;
    }
    if k.tun_src != 0 {
        f.ipv4("src", k.tun_src, m.tun_src);
    }
    if k.tun_dst != 0 {
        f.ipv4("dst", k.tun_dst, m.tun_dst);
    }
    if k.tun_flags & tun_flags::DF != 0 {
        key_flags |= 2;
    }
    if k.tun_flags & tun_flags::CSUM != 0 {
        key_flags |= 4;
    }
    if m.tun_flags & tun_flags::DF != 0 {
        mask_flags |= 2;
    }
    if m.tun_flags & tun_flags::CSUM != 0 {
        mask_flags |= 4;
    }
    if verbose || mask_flags != 0 {
        f.push(format!("flags({})", flags_masked(&TUN_NAMES, key_flags, mask_flags, 0xf)));
    }
    f.finish()
}

/// The attributes from `eth_type` on (also the content of `encap(...)`).
fn l2_5_attrs(out: &mut Vec<String>, k: &FlowKey, m: &FlowKey, verbose: bool, inner: bool) {
    let show = |mask_zero: bool| verbose || !mask_zero;
    if !inner && k.vlan_tci & VLAN_CFI != 0 {
        let tpid = if k.vlan_tpid == 0 { 0x8100 } else { k.vlan_tpid };
        // The TPID's mask is always exact.
        attr(out, "eth_type", format!("0x{tpid:04x}"));
        if show(m.vlan_tci == 0) {
            attr(out, "vlan", vlan_tci(k.vlan_tci, m.vlan_tci, verbose));
        }
        let mut enc = Vec::new();
        l2_5_attrs(&mut enc, k, m, verbose, true);
        attr(out, "encap", enc.join(","));
        return;
    }
    if !inner && k.vlan_tci == 0 && is_vlan_type(k.dl_type) {
        // A truncated tag: the TPID is the EtherType, with an empty tag and encapsulation.
        attr(out, "eth_type", format!("0x{:04x}", k.dl_type));
        if show(m.vlan_tci == 0) {
            attr(out, "vlan", vlan_tci(0, m.vlan_tci, verbose));
        }
        attr(out, "encap", String::new());
        return;
    }
    if k.dl_type < 0x0600 {
        return;
    }
    if show(m.dl_type == 0) {
        let mut s = format!("0x{:04x}", k.dl_type);
        if m.dl_type != u16::MAX {
            let _ = write!(s, "/0x{:04x}", m.dl_type);
        }
        attr(out, "eth_type", s);
    }
    if is_vlan_type(k.dl_type) {
        return;
    }
    if k.is_ipv4() {
        let wild = m.nw_src == 0
            && m.nw_dst == 0
            && m.nw_proto == 0
            && m.nw_tos == 0
            && m.nw_ttl == 0
            && odp_frag_mask(m.nw_frag) == 0;
        if show(wild) {
            let mut f = Fields::new(verbose);
            f.ipv4("src", k.nw_src, m.nw_src);
            f.ipv4("dst", k.nw_dst, m.nw_dst);
            f.u8u("proto", k.nw_proto, m.nw_proto);
            f.u8x("tos", k.nw_tos, m.nw_tos);
            f.u8u("ttl", k.nw_ttl, m.nw_ttl);
            f.frag(k.nw_frag, m.nw_frag);
            attr(out, "ipv4", f.finish());
        }
    } else if k.is_ipv6() {
        let label_m = m.ipv6_label & 0xfffff;
        let wild = m.ipv6_src == [0; 16]
            && m.ipv6_dst == [0; 16]
            && label_m == 0
            && m.nw_proto == 0
            && m.nw_tos == 0
            && m.nw_ttl == 0
            && odp_frag_mask(m.nw_frag) == 0;
        if show(wild) {
            let mut f = Fields::new(verbose);
            f.ipv6("src", &k.ipv6_src, &m.ipv6_src);
            f.ipv6("dst", &k.ipv6_dst, &m.ipv6_dst);
            if f.shown(m.ipv6_label == 0) {
                let mut s = format!("label={}", c_hex(k.ipv6_label.into()));
                if label_m != 0xfffff {
                    let _ = write!(s, "/{}", c_hex(m.ipv6_label.into()));
                }
                f.push(s);
            }
            f.u8u("proto", k.nw_proto, m.nw_proto);
            f.u8x("tclass", k.nw_tos, m.nw_tos);
            f.u8u("hlimit", k.nw_ttl, m.nw_ttl);
            f.frag(k.nw_frag, m.nw_frag);
            attr(out, "ipv6", f.finish());
        }
    } else if k.is_arp() {
        // `get_arp_key`: the opcode is the low byte of nw_proto, 255 standing for all ones.
        let op = |p: u8| if p == u8::MAX { u16::MAX } else { u16::from(p) };
        let wild = m.nw_src == 0
            && m.nw_dst == 0
            && m.nw_proto == 0
            && m.arp_sha == [0; 6]
            && m.arp_tha == [0; 6];
        if show(wild) {
            let mut f = Fields::new(verbose);
            f.ipv4("sip", k.nw_src, m.nw_src);
            f.ipv4("tip", k.nw_dst, m.nw_dst);
            f.u16d("op", op(k.nw_proto), op(m.nw_proto));
            f.eth("sha", &k.arp_sha, &m.arp_sha);
            f.eth("tha", &k.arp_tha, &m.arp_tha);
            attr(out, "arp", f.finish());
        }
    }
    if !k.is_ip_any() || k.nw_frag & nw_frag::LATER != 0 {
        return;
    }
    let ports = |out: &mut Vec<String>, name: &str| {
        if show(m.tp_src == 0 && m.tp_dst == 0) {
            let mut f = Fields::new(verbose);
            f.u16d("src", k.tp_src, m.tp_src);
            f.u16d("dst", k.tp_dst, m.tp_dst);
            attr(out, name, f.finish());
        }
    };
    match k.nw_proto {
        6 => {
            ports(out, "tcp");
            let (v, fm) = (u32::from(k.tcp_flags & 0x0fff), u32::from(m.tcp_flags & 0x0fff));
            if show(m.tcp_flags == 0) {
                let s = if fm == 0x0fff {
                    flags(&TCP_NAMES, v)
                } else {
                    flags_masked(&TCP_NAMES, v, fm, 0x0fff)
                };
                attr(out, "tcp_flags", s);
            }
        }
        17 => ports(out, "udp"),
        132 => ports(out, "sctp"),
        1 | 58 if (k.nw_proto == 1) == k.is_ipv4() => {
            // ICMP type and code are 8 bits wide in the datapath key.
            let (t, tm) = (k.tp_src as u8, m.tp_src as u8);
            let (c, cm) = (k.tp_dst as u8, m.tp_dst as u8);
            if show(tm == 0 && cm == 0) {
                let mut f = Fields::new(verbose);
                f.u8u("type", t, tm);
                f.u8u("code", c, cm);
                attr(out, if k.nw_proto == 1 { "icmp" } else { "icmpv6" }, f.finish());
            }
            if k.nw_proto == 58 && is_nd(k) {
                // The mask has an `nd` attribute only when type and code are exact.
                let exact = tm == 0xff && cm == 0xff;
                let zero16 = [0u8; 16];
                let zero6 = [0u8; 6];
                let (tgt, sll, tll) = if exact {
                    (&m.nd_target, &m.arp_sha, &m.arp_tha)
                } else {
                    (&zero16, &zero6, &zero6)
                };
                let wild = *tgt == zero16 && *sll == zero6 && *tll == zero6;
                if show(wild) {
                    let mut f = Fields::new(verbose);
                    f.ipv6("target", &k.nd_target, tgt);
                    f.eth("sll", &k.arp_sha, sll);
                    f.eth("tll", &k.arp_tha, tll);
                    attr(out, "nd", f.finish());
                }
            }
        }
        _ => {}
    }
}

/// `format_vlan_tci`.
fn vlan_tci(tci: u16, mask: u16, verbose: bool) -> String {
    let mut f = Fields::new(verbose);
    let (vid, vid_m) = (tci & 0x0fff, mask & 0x0fff);
    let (pcp, pcp_m) = (tci >> 13, mask >> 13);
    if verbose || vid != 0 || vid_m != 0 {
        let mut s = format!("vid={vid}");
        if vid_m != 0x0fff {
            let _ = write!(s, "/0x{vid_m:x}");
        }
        f.push(s);
    }
    if verbose || pcp != 0 || pcp_m != 0 {
        let mut s = format!("pcp={pcp}");
        if pcp_m != 7 {
            let _ = write!(s, "/0x{pcp_m:x}");
        }
        f.push(s);
    }
    if tci & VLAN_CFI == 0 {
        f.push("cfi=0".into());
    }
    f.finish()
}

/// A megaflow's match in `dpctl/dump-flows` syntax (`-m` when `verbose`). `key` holds the
/// datapath in_port in `in_port`; `names` turns port numbers into names (`--names`, and
/// always with `-m`, as OVS does).
pub fn format_megaflow_match(
    key: &FlowKey,
    mask: &FlowKey,
    names: Option<&dyn DpPortNames>,
    verbose: bool,
) -> String {
    let (k, m) = (key, mask);
    let mut out: Vec<String> = Vec::new();
    if verbose {
        out.push("skb_priority(0/0)".into());
    }
    if k.tun_flags & tun_flags::PRESENT != 0 {
        attr(&mut out, "tunnel", tunnel_attr(k, m, verbose));
    }
    if verbose {
        out.push("skb_mark(0/0)".into());
    }
    if verbose {
        let mut s = c_hex(k.ct_state.into());
        // The datapath's ct_state is 32 bits wide, so it is never exact.
        let _ = write!(s, "/{}", c_hex(m.ct_state.into()));
        attr(&mut out, "ct_state", s);
    } else if m.ct_state != 0 {
        let s = flags_masked(&CT_NAMES, k.ct_state.into(), m.ct_state.into(), u32::MAX);
        attr(&mut out, "ct_state", s);
    }
    if verbose || m.ct_zone != 0 {
        let mut s = c_hex(k.ct_zone.into());
        if m.ct_zone != u16::MAX {
            let _ = write!(s, "/{}", c_hex(m.ct_zone.into()));
        }
        attr(&mut out, "ct_zone", s);
    }
    if verbose || m.ct_mark != 0 {
        attr(&mut out, "ct_mark", u32_attr(k.ct_mark, m.ct_mark));
    }
    if verbose {
        out.push("ct_label(0/0)".into());
    }
    attr(&mut out, "recirc_id", c_hex(k.recirc_id.into()));
    if verbose {
        out.push("dp_hash(0/0)".into());
    }
    let port = names.and_then(|n| n.dp_port_name(k.in_port));
    attr(&mut out, "in_port", port.unwrap_or_else(|| k.in_port.to_string()));
    out.push("packet_type(ns=0,id=0)".into());
    if verbose || m.dl_src != [0; 6] || m.dl_dst != [0; 6] {
        let mut f = Fields::new(verbose);
        f.eth("src", &k.dl_src, &m.dl_src);
        f.eth("dst", &k.dl_dst, &m.dl_dst);
        attr(&mut out, "eth", f.finish());
    }
    l2_5_attrs(&mut out, k, m, verbose, false);
    out.join(",")
}

/// OVS's `packet_format_tcp_flags` (`S`, `F`, `P`, `R`, `U`, `.` for ACK, `E`, `C`, `N`).
pub fn format_tcp_flags_short(f: u16) -> String {
    if f == 0 {
        return "none".into();
    }
    let mut s = String::new();
    for (bit, c) in [
        (0x002, "S"),
        (0x001, "F"),
        (0x008, "P"),
        (0x004, "R"),
        (0x020, "U"),
        (0x010, "."),
        (0x040, "E"),
        (0x080, "C"),
        (0x100, "N"),
        (0x200, "[200]"),
        (0x400, "[400]"),
        (0x800, "[800]"),
    ] {
        if f & bit != 0 {
            s.push_str(c);
        }
    }
    s
}

/// `packets:N, bytes:N, used:X.XXXs|never[, flags:..]` (`dpif_flow_stats_format`).
/// `used_ms` of 0 means never; times are in the caller's clock, in milliseconds.
pub fn format_flow_stats(stats: &FlowStats, now_ms: u64) -> String {
    let mut s = format!("packets:{}, bytes:{}, used:", stats.packets, stats.bytes);
    if stats.used_ms == 0 {
        s.push_str("never");
    } else {
        let ago = now_ms.saturating_sub(stats.used_ms);
        let _ = write!(s, "{}.{:03}s", ago / 1000, ago % 1000);
    }
    if stats.tcp_flags != 0 {
        let _ = write!(s, ", flags:{}", format_tcp_flags_short(stats.tcp_flags));
    }
    s
}

/// One line of `dpctl/dump-flows` (`-m` when `verbose`, without the `ufid:` prefix and the
/// `dp-extra-info:` suffix).
pub fn format_dpctl_flow(
    key: &FlowKey,
    mask: &FlowKey,
    stats: &FlowStats,
    actions: &[DpAction],
    now_ms: u64,
    names: Option<&dyn DpPortNames>,
    verbose: bool,
) -> String {
    let mut s = format_megaflow_match(key, mask, names, verbose);
    s.push_str(", ");
    s.push_str(&format_flow_stats(stats, now_ms));
    if verbose {
        s.push_str(", dp:ovs");
    }
    s.push_str(", actions:");
    s.push_str(&format_actions(actions, names));
    s
}

#[cfg(test)]
mod tests {
    //! Expected strings are real Open vSwitch 3.1 output (`dpctl/dump-flows`, with `-m`
    //! without its `ufid:` prefix and `dp-extra-info:` suffix), from the oracle runs of the
    //! examples and of test/oracle/scenarios.
    use super::*;
    use crate::dpif::odp::TnlPush;
    use crate::flow::key::ct_state as cs;

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

    fn ip6(s: &str) -> [u8; 16] {
        s.parse::<std::net::Ipv6Addr>().unwrap().octets()
    }

    struct Names;
    impl DpPortNames for Names {
        fn dp_port_name(&self, port: u32) -> Option<String> {
            match port {
                1 => Some("p1".into()),
                2 => Some("p2".into()),
                4789 => Some("vxlan_sys_4789".into()),
                _ => None,
            }
        }
    }

    /// A key and mask with what every megaflow matches: recirc_id, in_port, and for IP the
    /// EtherType and the fragment bits.
    fn base(in_port: u32, dl_type: u16) -> (FlowKey, FlowKey) {
        let (mut k, mut m) = (FlowKey::ZERO, FlowKey::ZERO);
        k.in_port = in_port;
        m.in_port = u32::MAX;
        m.recirc_id = u32::MAX;
        k.dl_type = dl_type;
        m.dl_type = 0xffff;
        if dl_type == 0x0800 || dl_type == 0x86dd {
            m.nw_frag = nw_frag::MASK;
        }
        (k, m)
    }

    /// The first packet of the l2-rewrite example: UDP 10.0.0.1:1000 -> 10.0.0.2:5000.
    fn udp_packet(k: &mut FlowKey) {
        k.dl_src = mac("52:54:00:00:00:01");
        k.dl_dst = mac("52:54:00:00:00:02");
        k.nw_src = ip("10.0.0.1");
        k.nw_dst = ip("10.0.0.2");
        k.nw_proto = 17;
        k.nw_ttl = 64;
        k.tp_src = 1000;
        k.tp_dst = 5000;
    }

    fn stats(packets: u64, bytes: u64, used_ago_ms: Option<u64>, tcp_flags: u16) -> FlowStats {
        let used_ms = used_ago_ms.map_or(0, |a| 100_000 - a);
        FlowStats { packets, bytes, used_ms, tcp_flags, unpushed: false }
    }

    const NOW: u64 = 100_000;

    #[test]
    fn l2_rewrite_plain_and_verbose() {
        let (mut k, mut m) = base(1, 0x0800);
        udp_packet(&mut k);
        m.dl_src = [0xff; 6];
        let acts = [
            DpAction::SetEth { src: Some(mac("02:00:00:00:00:aa")), dst: None },
            DpAction::Output(2),
        ];
        let st = stats(9, 540, Some(1030), 0);
        assert_eq!(
            format_dpctl_flow(&k, &m, &st, &acts, NOW, None, false),
            "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth(src=52:54:00:00:00:01),\
             eth_type(0x0800),ipv4(frag=no), packets:9, bytes:540, used:1.030s, \
             actions:set(eth(src=02:00:00:00:00:aa)),2"
        );
        assert_eq!(
            format_dpctl_flow(&k, &m, &st, &acts, NOW, Some(&Names), true),
            "skb_priority(0/0),skb_mark(0/0),ct_state(0/0),ct_zone(0/0),ct_mark(0/0),\
             ct_label(0/0),recirc_id(0),dp_hash(0/0),in_port(p1),packet_type(ns=0,id=0),\
             eth(src=52:54:00:00:00:01,dst=52:54:00:00:00:02/00:00:00:00:00:00),\
             eth_type(0x0800),ipv4(src=10.0.0.1/0.0.0.0,dst=10.0.0.2/0.0.0.0,proto=17/0,\
             tos=0/0,ttl=64/0,frag=no),udp(src=1000/0,dst=5000/0), packets:9, bytes:540, \
             used:1.030s, dp:ovs, actions:set(eth(src=02:00:00:00:00:aa)),p2"
        );
    }

    #[test]
    fn conntrack_states_zones_marks() {
        // snat-ct: ct_state(+est+trk) and ct_state(-est+trk), only trk|est matched.
        let (mut k, mut m) = base(2, 0x0800);
        k.recirc_id = 2;
        k.ct_state = cs::TRK | cs::EST;
        m.ct_state = cs::TRK | cs::EST;
        k.dl_src = mac("fa:16:3e:00:00:fe");
        k.dl_dst = mac("fa:16:3e:00:00:01");
        m.dl_src = [0xff; 6];
        m.dl_dst = [0xff; 6];
        let acts = [
            DpAction::SetEth {
                src: Some(mac("fa:16:3e:00:00:02")),
                dst: Some(mac("52:54:00:00:00:01")),
            },
            DpAction::Output(1),
        ];
        assert_eq!(
            format_dpctl_flow(&k, &m, &stats(2, 120, Some(1022), 0), &acts, NOW, None, false),
            "ct_state(+est+trk),recirc_id(0x2),in_port(2),packet_type(ns=0,id=0),\
             eth(src=fa:16:3e:00:00:fe,dst=fa:16:3e:00:00:01),eth_type(0x0800),ipv4(frag=no), \
             packets:2, bytes:120, used:1.022s, actions:set(eth(src=fa:16:3e:00:00:02,\
             dst=52:54:00:00:00:01)),1"
        );
        let (mut k, mut m) = base(2, 0x0800);
        k.recirc_id = 2;
        k.ct_state = cs::TRK | cs::NEW;
        m.ct_state = cs::TRK | cs::EST;
        assert_eq!(
            format_dpctl_flow(&k, &m, &stats(0, 0, None, 0), &[], NOW, None, false),
            "ct_state(-est+trk),recirc_id(0x2),in_port(2),packet_type(ns=0,id=0),\
             eth_type(0x0800),ipv4(frag=no), packets:0, bytes:0, used:never, actions:drop"
        );
        // ct-tcp: zone and mark matched; TCP flags seen.
        let (mut k, mut m) = base(2, 0x0800);
        k.recirc_id = 2;
        k.ct_state = cs::TRK | cs::EST | cs::RPL;
        m.ct_state = cs::TRK | cs::EST | cs::NEW;
        k.ct_zone = 5;
        m.ct_zone = 0xffff;
        k.ct_mark = 7;
        m.ct_mark = u32::MAX;
        k.nw_proto = 6;
        m.nw_proto = 0xff;
        k.tcp_flags = 0x002;
        let st = stats(2, 120, Some(1030), 0x019);
        assert_eq!(
            format_dpctl_flow(&k, &m, &st, &[DpAction::Output(1)], NOW, None, false),
            "ct_state(-new+est+trk),ct_zone(0x5),ct_mark(0x7),recirc_id(0x2),in_port(2),\
             packet_type(ns=0,id=0),eth_type(0x0800),ipv4(proto=6,frag=no), packets:2, \
             bytes:120, used:1.030s, flags:FP., actions:1"
        );
        let v = format_megaflow_match(&k, &m, Some(&Names), true);
        assert!(
            v.starts_with(
                "skb_priority(0/0),skb_mark(0/0),ct_state(0x2a/0x23),ct_zone(0x5),\
                 ct_mark(0x7),ct_label(0/0),recirc_id(0x2),dp_hash(0/0),in_port(p2),"
            ),
            "{v}"
        );
        assert!(v.ends_with("frag=no),tcp(src=0/0,dst=0/0),tcp_flags(0/0)"), "{v}");
        // An exact ct_mark of 0, and ct_state bits across the whole byte.
        let (mut k, mut m) = base(2, 0x0800);
        k.recirc_id = 2;
        k.ct_state = cs::TRK | cs::NEW;
        m.ct_state = cs::TRK | cs::NEW | cs::EST | cs::INV;
        m.ct_zone = 0xffff;
        k.ct_zone = 5;
        m.ct_mark = u32::MAX;
        k.dl_dst = mac("52:54:00:00:00:01");
        m.dl_dst = [0xff; 6];
        assert_eq!(
            format_megaflow_match(&k, &m, None, false),
            "ct_state(+new-est-inv+trk),ct_zone(0x5),ct_mark(0),recirc_id(0x2),in_port(2),\
             packet_type(ns=0,id=0),eth(dst=52:54:00:00:00:01),eth_type(0x0800),ipv4(frag=no)"
        );
        let (mut k, mut m) = base(2, 0x0800);
        k.recirc_id = 4;
        k.ct_state = cs::TRK | cs::EST | cs::RPL;
        m.ct_state = cs::TRK | cs::EST | cs::NEW | cs::RPL | cs::DNAT;
        m.ct_zone = 0xffff;
        k.ct_zone = 9;
        assert_eq!(
            format_megaflow_match(&k, &m, None, false),
            "ct_state(-new+est+rpl+trk-dnat),ct_zone(0x9),recirc_id(0x4),in_port(2),\
             packet_type(ns=0,id=0),eth_type(0x0800),ipv4(frag=no)"
        );
    }

    #[test]
    fn tunnel_and_underlay() {
        // vxlan-encap: the decapsulated packet, and the VXLAN packet on the underlay NIC.
        let (mut k, mut m) = base(4789, 0x0800);
        k.tun_id = 0x42;
        k.tun_src = ip("192.168.1.13");
        k.tun_dst = ip("192.168.1.12");
        k.tun_flags = tun_flags::PRESENT | tun_flags::KEY;
        m.tun_id = u64::MAX;
        m.tun_src = u32::MAX;
        m.tun_dst = u32::MAX;
        m.tun_flags = tun_flags::PRESENT | tun_flags::KEY | tun_flags::DF | tun_flags::CSUM;
        udp_packet(&mut k);
        let st = stats(3, 180, Some(1059), 0);
        assert_eq!(
            format_dpctl_flow(&k, &m, &st, &[DpAction::Output(1)], NOW, None, false),
            "tunnel(tun_id=0x42,src=192.168.1.13,dst=192.168.1.12,flags(-df-csum+key)),\
             recirc_id(0),in_port(4789),packet_type(ns=0,id=0),eth_type(0x0800),\
             ipv4(frag=no), packets:3, bytes:180, used:1.059s, actions:1"
        );
        let v = format_megaflow_match(&k, &m, Some(&Names), true);
        assert!(
            v.starts_with(
                "skb_priority(0/0),tunnel(tun_id=0x42,src=192.168.1.13,dst=192.168.1.12,\
                 flags(-df-csum+key)),skb_mark(0/0),ct_state(0/0),ct_zone(0/0),ct_mark(0/0),\
                 ct_label(0/0),recirc_id(0),dp_hash(0/0),in_port(vxlan_sys_4789),"
            ),
            "{v}"
        );
        k.tun_flags |= tun_flags::CSUM;
        assert!(format_megaflow_match(&k, &m, None, false).contains("flags(-df+csum+key)"));

        let (mut k, mut m) = base(4, 0x0800);
        k.dl_src = mac("aa:bb:cc:00:00:13");
        k.dl_dst = mac("aa:55:aa:55:00:12");
        m.dl_src = [0xff; 6];
        m.dl_dst = [0xff; 6];
        k.nw_src = ip("192.168.1.13");
        k.nw_dst = ip("192.168.1.12");
        m.nw_dst = u32::MAX;
        k.nw_proto = 17;
        m.nw_proto = 0xff;
        k.nw_ttl = 64;
        k.tp_src = 50000;
        k.tp_dst = 4789;
        m.tp_dst = 0xffff;
        let acts = [DpAction::TnlPop(4789)];
        assert_eq!(
            format_dpctl_flow(&k, &m, &stats(3, 330, Some(1059), 0), &acts, NOW, None, false),
            "recirc_id(0),in_port(4),packet_type(ns=0,id=0),eth(src=aa:bb:cc:00:00:13,\
             dst=aa:55:aa:55:00:12),eth_type(0x0800),ipv4(dst=192.168.1.12,proto=17,frag=no),\
             udp(dst=4789), packets:3, bytes:330, used:1.059s, actions:tnl_pop(4789)"
        );
        // The encapsulating flow matches the ECN bits only.
        let (mut k, mut m) = base(1, 0x0800);
        udp_packet(&mut k);
        m.nw_tos = 0x03;
        assert_eq!(
            format_megaflow_match(&k, &m, None, false),
            "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth_type(0x0800),\
             ipv4(tos=0/0x3,frag=no)"
        );
        let mut hdr = [0u8; 50];
        hdr[0..6].copy_from_slice(&mac("aa:bb:cc:00:00:13"));
        hdr[6..12].copy_from_slice(&mac("aa:55:aa:55:00:12"));
        hdr[12..14].copy_from_slice(&[0x08, 0x00]);
        hdr[14] = 0x45;
        hdr[20] = 0x40;
        hdr[22] = 64;
        hdr[23] = 17;
        hdr[26..30].copy_from_slice(&ip("192.168.1.12").to_be_bytes());
        hdr[30..34].copy_from_slice(&ip("192.168.1.13").to_be_bytes());
        hdr[36..38].copy_from_slice(&4789u16.to_be_bytes());
        hdr[42] = 0x08;
        hdr[48] = 0x42;
        let push = TnlPush {
            header: hdr,
            tnl_port: 4789,
            out_port: 5,
            sport_min: 32768,
            sport_max: 61000,
            csum: false,
        };
        let acts = [DpAction::TnlPush(Box::new(push)), DpAction::Output(4)];
        assert_eq!(
            format_actions(&acts, None),
            "tnl_push(tnl_port(4789),header(size=50,type=4,eth(dst=aa:bb:cc:00:00:13,\
             src=aa:55:aa:55:00:12,dl_type=0x0800),ipv4(src=192.168.1.12,dst=192.168.1.13,\
             proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=4789,csum=0x0),\
             vxlan(flags=0x8000000,vni=0x42)),out_port(5)),4"
        );
    }

    #[test]
    fn vlan_tags() {
        // vlan-ops and normal-vlan.
        let (mut k, mut m) = base(1, 0x0800);
        udp_packet(&mut k);
        k.dl_dst = mac("02:00:00:00:00:0a");
        m.dl_dst = [0xff; 6];
        k.vlan_tci = VLAN_CFI | (1 << 13) | 30;
        k.vlan_tpid = 0x8100;
        m.vlan_tci = 0xffff;
        assert_eq!(
            format_megaflow_match(&k, &m, None, false),
            "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth(dst=02:00:00:00:00:0a),\
             eth_type(0x8100),vlan(vid=30,pcp=1),encap(eth_type(0x0800),ipv4(frag=no))"
        );
        let v = format_megaflow_match(&k, &m, Some(&Names), true);
        assert!(
            v.ends_with(
                "eth_type(0x8100),vlan(vid=30,pcp=1),encap(eth_type(0x0800),\
                 ipv4(src=10.0.0.1/0.0.0.0,dst=10.0.0.2/0.0.0.0,proto=17/0,tos=0/0,ttl=64/0,\
                 frag=no),udp(src=1000/0,dst=5000/0))"
            ),
            "{v}"
        );
        // Only the VID (and the tag's presence) matched.
        k.vlan_tci = VLAN_CFI | 20;
        m.vlan_tci = 0x1fff;
        assert!(format_megaflow_match(&k, &m, None, false).contains(",vlan(vid=20),encap("));
        k.vlan_tci = VLAN_CFI | (3 << 13);
        m.vlan_tci = 0xffff;
        assert!(format_megaflow_match(&k, &m, None, false).contains(",vlan(vid=0,pcp=3),"));
        // A QinQ frame: only the outer tag is parsed, the inner TPID is the EtherType.
        let (mut k, mut m) = base(1, 0x8100);
        m.nw_frag = 0;
        k.dl_dst = mac("02:00:00:00:00:0c");
        m.dl_dst = [0xff; 6];
        k.vlan_tci = VLAN_CFI | 200;
        k.vlan_tpid = 0x88a8;
        m.vlan_tci = 0xffff;
        assert_eq!(
            format_megaflow_match(&k, &m, None, false),
            "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth(dst=02:00:00:00:00:0c),\
             eth_type(0x88a8),vlan(vid=200,pcp=0),encap(eth_type(0x8100))"
        );
        let acts = [
            DpAction::PushVlan { tpid: 0x88a8, tci: VLAN_CFI | 200 },
            DpAction::PushVlan { tpid: 0x8100, tci: VLAN_CFI | 100 },
            DpAction::Output(4),
            DpAction::PopVlan,
            DpAction::PushVlan { tpid: 0x8100, tci: VLAN_CFI | (7 << 13) | 4 },
            DpAction::Output(2),
        ];
        assert_eq!(
            format_actions(&acts, None),
            "push_vlan(tpid=0x88a8,vid=200,pcp=0),push_vlan(vid=100,pcp=0),4,pop_vlan,\
             push_vlan(vid=4,pcp=7),2"
        );
    }

    #[test]
    fn arp_ipv6_icmp() {
        // arp-ipv6: a masked SPA and SHA.
        let (mut k, mut m) = base(1, 0x0806);
        k.dl_src = mac("02:11:00:00:00:01");
        k.dl_dst = mac("02:00:00:00:00:20");
        m.dl_dst = [0xff; 6];
        k.nw_src = ip("10.0.0.9");
        m.nw_src = 0xffff_ff00;
        k.nw_dst = ip("10.0.0.1");
        m.nw_dst = u32::MAX;
        k.nw_proto = 2;
        m.nw_proto = 0xff;
        k.arp_sha = mac("02:11:00:00:00:01");
        m.arp_sha = mac("ff:ff:ff:00:00:00");
        k.arp_tha = mac("02:00:00:00:00:20");
        assert_eq!(
            format_megaflow_match(&k, &m, None, false),
            "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth(dst=02:00:00:00:00:20),\
             eth_type(0x0806),arp(sip=10.0.0.9/255.255.255.0,tip=10.0.0.1,op=2,\
             sha=02:11:00:00:00:01/ff:ff:ff:00:00:00)"
        );
        assert!(format_megaflow_match(&k, &m, Some(&Names), true).ends_with(
            "eth(src=02:11:00:00:00:01/00:00:00:00:00:00,dst=02:00:00:00:00:20),\
             eth_type(0x0806),arp(sip=10.0.0.9/255.255.255.0,tip=10.0.0.1,op=2,\
             sha=02:11:00:00:00:01/ff:ff:ff:00:00:00,tha=02:00:00:00:00:20/00:00:00:00:00:00)"
        ));
        // IPv6 TCP with a prefix on the destination, SYN seen.
        let (mut k, mut m) = base(1, 0x86dd);
        k.dl_src = mac("52:54:00:00:00:01");
        k.dl_dst = mac("02:00:00:00:00:20");
        m.dl_dst = [0xff; 6];
        k.ipv6_src = ip6("fd00::1");
        m.ipv6_src = [0xff; 16];
        k.ipv6_dst = ip6("fd00::2");
        m.ipv6_dst = ip6("ffff:ffff:ffff:ffff::");
        k.nw_proto = 6;
        m.nw_proto = 0xff;
        k.nw_ttl = 64;
        k.tp_src = 33000;
        k.tp_dst = 80;
        m.tp_dst = 0xffff;
        k.tcp_flags = 0x002;
        let acts = [
            DpAction::SetEth { src: None, dst: Some(mac("0e:00:00:00:00:14")) },
            DpAction::Output(3),
        ];
        assert_eq!(
            format_dpctl_flow(&k, &m, &stats(1, 90, Some(1034), 2), &acts, NOW, None, false),
            "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth(dst=02:00:00:00:00:20),\
             eth_type(0x86dd),ipv6(src=fd00::1,dst=fd00::2/ffff:ffff:ffff:ffff::,proto=6,\
             frag=no),tcp(dst=80), packets:1, bytes:90, used:1.034s, flags:S, \
             actions:set(eth(dst=0e:00:00:00:00:14)),3"
        );
        assert!(format_megaflow_match(&k, &m, Some(&Names), true).ends_with(
            "eth_type(0x86dd),ipv6(src=fd00::1,dst=fd00::2/ffff:ffff:ffff:ffff::,label=0/0,\
             proto=6,tclass=0/0,hlimit=64/0,frag=no),tcp(src=33000/0,dst=80),tcp_flags(0/0)"
        ));
        // A later fragment has no L4 attribute; a first one has.
        k.nw_proto = 44;
        k.nw_frag = nw_frag::ANY | nw_frag::LATER;
        m.tp_dst = 0;
        assert!(format_megaflow_match(&k, &m, None, false)
            .ends_with("ipv6(src=fd00::1,dst=fd00::2/ffff:ffff:ffff:ffff::,proto=44,frag=later)"));
        k.nw_proto = 17;
        k.nw_frag = nw_frag::ANY;
        k.tp_src = 257;
        m.tp_src = 0xfe00;
        assert!(format_megaflow_match(&k, &m, None, false).ends_with(
            "ipv6(src=fd00::1,dst=fd00::2/ffff:ffff:ffff:ffff::,proto=17,frag=first),\
             udp(src=257/0xfe00)"
        ));
        // Neighbour solicitation: `nd` prints only with -m, its mask being absent.
        let (mut k, mut m) = base(1, 0x86dd);
        k.dl_src = mac("52:54:00:00:00:01");
        k.dl_dst = mac("33:33:ff:00:00:02");
        m.dl_dst = [0xff; 6];
        k.ipv6_src = ip6("fd00::1");
        m.ipv6_src = [0xff; 16];
        k.ipv6_dst = ip6("ff02::1:ff00:2");
        m.ipv6_dst = ip6("ffff:ffff:ffff:ffff::");
        k.nw_proto = 58;
        m.nw_proto = 0xff;
        k.nw_ttl = 64;
        k.tp_src = 135;
        m.tp_src = 0xffff;
        k.nd_target = ip6("fd00::2");
        k.arp_sha = mac("52:54:00:00:00:01");
        assert!(format_megaflow_match(&k, &m, None, false).ends_with(
            "ipv6(src=fd00::1,dst=ff02::1:ff00:2/ffff:ffff:ffff:ffff::,proto=58,frag=no),\
             icmpv6(type=135)"
        ));
        assert!(format_megaflow_match(&k, &m, None, true).ends_with(
            "proto=58,tclass=0/0,hlimit=64/0,frag=no),icmpv6(type=135,code=0/0),\
             nd(target=fd00::2/::,sll=52:54:00:00:00:01/00:00:00:00:00:00,\
             tll=00:00:00:00:00:00/00:00:00:00:00:00)"
        ));
        // ipv4-match: masks on addresses, TOS, ports and ICMP code.
        let (mut k, mut m) = base(1, 0x0800);
        k.dl_dst = mac("02:00:00:00:00:20");
        m.dl_dst = [0xff; 6];
        k.nw_dst = ip("10.0.0.2");
        m.nw_dst = ip("255.255.0.255");
        k.nw_proto = 17;
        m.nw_proto = 0xff;
        k.nw_tos = 0x28;
        m.nw_tos = 0xfc;
        k.tp_src = 1011;
        m.tp_src = 0xfe00;
        k.tp_dst = 2000;
        m.tp_dst = 0xfc00;
        assert!(format_megaflow_match(&k, &m, None, false).ends_with(
            "eth_type(0x0800),ipv4(dst=10.0.0.2/255.255.0.255,proto=17,tos=0x28/0xfc,\
             frag=no),udp(src=1011/0xfe00,dst=2000/0xfc00)"
        ));
        k.nw_proto = 1;
        k.nw_tos = 0;
        m.nw_tos = 0xff;
        k.nw_ttl = 64;
        m.nw_ttl = 0xff;
        k.tp_src = 3;
        m.tp_src = 0xffff;
        k.tp_dst = 1;
        m.tp_dst = 0xfffe;
        assert!(format_megaflow_match(&k, &m, None, false).ends_with(
            "ipv4(dst=10.0.0.2/255.255.0.255,proto=1,tos=0,ttl=64,frag=no),\
             icmp(type=3,code=1/0xfe)"
        ));
        // frag-malformed: a source prefix and protocol 0.
        let (mut k, mut m) = base(1, 0x0800);
        m.nw_src = 0xf800_0000;
        m.nw_proto = 0xff;
        k.nw_src = ip("0.0.0.1");
        assert!(format_megaflow_match(&k, &m, None, false)
            .ends_with("ipv4(src=0.0.0.1/248.0.0.0,proto=0,frag=no)"));
    }

    #[test]
    fn l2_only_frames() {
        // l2-match: a multicast-bit match, and LLDP (no L3 attribute).
        let (mut k, mut m) = base(1, 0x88cc);
        k.dl_dst = mac("01:80:c2:00:00:0e");
        m.dl_dst = mac("01:00:00:00:00:00");
        assert_eq!(
            format_megaflow_match(&k, &m, None, false),
            "recirc_id(0),in_port(1),packet_type(ns=0,id=0),\
             eth(dst=01:80:c2:00:00:0e/01:00:00:00:00:00),eth_type(0x88cc)"
        );
        // An 802.3 frame has no eth_type attribute at all.
        let (k, m) = base(1, 0x05ff);
        assert_eq!(
            format_megaflow_match(&k, &m, None, false),
            "recirc_id(0),in_port(1),packet_type(ns=0,id=0)"
        );
    }

    #[test]
    fn stats_and_flags() {
        assert_eq!(format_tcp_flags_short(0x019), "FP.");
        assert_eq!(format_tcp_flags_short(0x01b), "SFP.");
        assert_eq!(format_tcp_flags_short(0x010), ".");
        assert_eq!(format_tcp_flags_short(0), "none");
        let st = FlowStats { packets: 1, bytes: 2, used_ms: 5_000, tcp_flags: 0, unpushed: false };
        assert_eq!(format_flow_stats(&st, 17_345), "packets:1, bytes:2, used:12.345s");
        // A clock that went backwards prints 0, never a negative time.
        assert_eq!(format_flow_stats(&st, 4_000), "packets:1, bytes:2, used:0.000s");
    }
}
