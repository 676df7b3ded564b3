//! Printers for what users read from the OpenFlow side, exactly as Open vSwitch 3.1 prints
//! it: the `Flow:` / `Final flow:` and `Megaflow:` lines of `ofproto/trace`, the lines of
//! `ovs-ofctl -O OpenFlow15 dump-flows` (with the order and filters of a dump), and
//! `ovs-ofctl show` / `ovs-vsctl show`.
//!
//! Conventions:
//! - Trace lines follow OVS's `match_format()` without the OpenFlow round trip that
//!   `format::format_match` models: a flow prints as `flow_format()` does (every field the
//!   packet has, zero-valued metadata left out), a megaflow as the match of the datapath
//!   flow (`recirc_id=0,eth,` first, masked values, ICMP type and code masked to 8 bits as
//!   `xlate_wc_finish()` does).
//! - The key given to the trace printers holds the OpenFlow port of the traced bridge in
//!   `in_port`. The flow key has no outer TOS, TTL or UDP ports of a tunnel: trace lines
//!   print `tun_tos=0` and, for a flow, `tun_ttl=64` (what OVS and Linux put on VXLAN).
//! - Dump order is OVS's classifier order: table by table; in a table, the rules of one
//!   subtable (one mask) together, subtables by their highest priority and then by age;
//!   in a subtable, by age (OVS uses its hash order there, which no one can rely on).
//! - Every function is pure: times come in as arguments, nothing is read or written.

use super::action::{port, FlowMod, Match};
use super::format::{
    format_actions_with_match, format_match, format_port, proto_shorthand, shorthand_is_l3,
    ActionStyle,
};
use super::parse::{NoNames, PortNames};
use super::table::{Rule, Tables};
use crate::flow::key::{nw_frag, tun_flags, FlowKey, VLAN_CFI};
use crate::fmt::{c_hex, flags, flags_masked, ipv6, mac, CT_NAMES, TCP_NAMES, TUN_NAMES};
use crate::xlate::{Bridge, PortKind};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// The pieces of a match, comma-separated, each `name=value`.
struct Out(String);

impl Out {
    fn put(&mut self, name: &str, v: impl AsRef<str>) {
        let _ = write!(self.0, "{name}={},", v.as_ref());
    }
    fn word(&mut self, w: &str) {
        self.0.push_str(w);
        self.0.push(',');
    }
    /// `format_uint32_masked` / `format_be64_masked`: `%#x[/%#x]`.
    fn hex(&mut self, name: &str, v: u64, m: u64, full: u64) {
        if m != 0 {
            let mut s = c_hex(v & m);
            if m != full {
                let _ = write!(s, "/{}", c_hex(m));
            }
            self.put(name, s);
        }
    }
    /// `format_be16_masked`: decimal when exact, `0x%x/0x%x` otherwise.
    fn be16(&mut self, name: &str, v: u16, m: u16) {
        if m == u16::MAX {
            self.put(name, v.to_string());
        } else if m != 0 {
            self.put(name, format!("0x{:x}/0x{m:x}", v & m));
        }
    }
    /// `format_ip_netmask`.
    fn ip(&mut self, name: &str, v: u32, m: u32) {
        if m == 0 {
            return;
        }
        let v = Ipv4Addr::from(v & m);
        if m == u32::MAX {
            self.put(name, v.to_string());
        } else if m.leading_ones() + m.trailing_zeros() == 32 {
            self.put(name, format!("{v}/{}", m.leading_ones()));
        } else {
            self.put(name, format!("{v}/{}", Ipv4Addr::from(m)));
        }
    }
    /// `format_ipv6_netmask`.
    fn ip6(&mut self, name: &str, v: &[u8; 16], m: &[u8; 16]) {
        let (vv, mm) = (u128::from_be_bytes(*v), u128::from_be_bytes(*m));
        if mm == 0 {
            return;
        }
        let masked = (vv & mm).to_be_bytes();
        if mm == u128::MAX {
            self.put(name, ipv6(&masked));
        } else if mm.leading_ones() + mm.trailing_zeros() == 128 {
            self.put(name, format!("{}/{}", ipv6(&masked), mm.leading_ones()));
        } else {
            self.put(name, format!("{}/{}", ipv6(&masked), ipv6(m)));
        }
    }
    /// `format_eth_masked`.
    fn eth(&mut self, name: &str, v: &[u8; 6], m: &[u8; 6]) {
        if *m == [0; 6] {
            return;
        }
        let mut masked = *v;
        for (b, mb) in masked.iter_mut().zip(m.iter()) {
            *b &= *mb;
        }
        if *m == [0xff; 6] {
            self.put(name, mac(&masked));
        } else {
            self.put(name, format!("{}/{}", mac(&masked), mac(m)));
        }
    }
}

/// How the tunnel metadata prints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tun {
    /// No tunnel fields.
    None,
    /// A megaflow of a tunnelled packet: id, addresses, TOS, flags (masked).
    Megaflow,
    /// A tunnelled packet: every tunnel field `flow_format` shows.
    Flow,
}

/// OVS's tunnel flag bits of our `tun_flags`.
fn ovs_tun_flags(f: u8) -> u32 {
    let mut o = 0;
    if f & tun_flags::DF != 0 {
        o |= 2;
    }
    if f & tun_flags::CSUM != 0 {
        o |= 4;
    }
    if f & tun_flags::KEY != 0 {
        o |= 8;
    }
    o
}

/// OVS's `match_format()` over a key and mask (`eth` says whether `eth,` prints: only for
/// megaflows, whose packet type is matched).
fn match_format(
    k: &FlowKey,
    m: &FlowKey,
    ports: &dyn PortNames,
    names: bool,
    eth: bool,
    tun: Tun,
) -> String {
    let mut o = Out(String::new());
    o.hex("recirc_id", k.recirc_id.into(), m.recirc_id.into(), u32::MAX.into());
    if m.ct_state != 0 {
        let v = if m.ct_state == 0xff {
            flags(&CT_NAMES, k.ct_state.into())
        } else {
            flags_masked(&CT_NAMES, k.ct_state.into(), m.ct_state.into(), 0xff)
        };
        o.put("ct_state", v);
    }
    if m.ct_zone == u16::MAX {
        o.put("ct_zone", k.ct_zone.to_string());
    } else if m.ct_zone != 0 {
        o.put("ct_zone", format!("0x{:x}/0x{:x}", k.ct_zone & m.ct_zone, m.ct_zone));
    }
    o.hex("ct_mark", k.ct_mark.into(), m.ct_mark.into(), u32::MAX.into());
    if eth {
        o.word("eth");
    }
    let dl_type = k.dl_type;
    let (mut skip_type, mut skip_proto) = (false, false);
    if m.dl_type != 0 {
        skip_type = true;
        let proto = (m.nw_proto != 0).then_some(k.nw_proto);
        let w = proto_shorthand(dl_type, proto).unwrap_or("");
        if w.is_empty() {
            skip_type = false;
        } else {
            skip_proto = !shorthand_is_l3(w);
            o.word(w);
        }
    }
    for i in 0..8 {
        o.hex(&format!("reg{i}"), k.regs[i].into(), m.regs[i].into(), u32::MAX.into());
    }
    match tun {
        Tun::None => {
            o.hex("tun_id", k.tun_id, m.tun_id, u64::MAX);
        }
        Tun::Megaflow | Tun::Flow => {
            o.hex("tun_id", k.tun_id, m.tun_id, u64::MAX);
            o.ip("tun_src", k.tun_src, m.tun_src);
            o.ip("tun_dst", k.tun_dst, m.tun_dst);
            if tun == Tun::Flow {
                o.put("tun_ipv6_src", "::");
                o.put("tun_ipv6_dst", "::");
                o.put("tun_gbp_id", "0");
                o.put("tun_gbp_flags", "0");
            }
            o.put("tun_tos", "0");
            if tun == Tun::Flow {
                o.put("tun_ttl", "64");
                o.put("tun_erspan_ver", "0");
                o.put("gtpu_flags", "0");
                o.put("gtpu_msgtype", "0");
            }
            let fm = if tun == Tun::Flow { 0xf } else { ovs_tun_flags(m.tun_flags) };
            if fm != 0 {
                o.put("tun_flags", flags_masked(&TUN_NAMES, ovs_tun_flags(k.tun_flags), fm, 0xf));
            }
        }
    }
    o.hex("metadata", k.metadata, m.metadata, u64::MAX);
    if m.in_port != 0 {
        o.put("in_port", format_port(k.in_port, ports, names));
    }
    for (i, (tci, tm)) in
        [(k.vlan_tci, m.vlan_tci), (k.vlan2_tci, m.vlan2_tci)].into_iter().enumerate()
    {
        if tm == 0 {
            break;
        }
        let sfx = if i == 0 { String::new() } else { i.to_string() };
        let (vid_m, pcp_m, cfi) = (tm & 0x0fff, tm & 0xe000, tm & VLAN_CFI);
        if cfi != 0
            && tci & VLAN_CFI != 0
            && (vid_m == 0 || vid_m == 0x0fff)
            && (pcp_m == 0 || pcp_m == 0xe000)
            && (vid_m != 0 || pcp_m != 0)
        {
            if vid_m != 0 {
                o.put(&format!("dl_vlan{sfx}"), (tci & 0x0fff).to_string());
            }
            if pcp_m != 0 {
                o.put(&format!("dl_vlan_pcp{sfx}"), (tci >> 13).to_string());
            }
        } else if tm == 0xffff {
            o.put(&format!("vlan_tci{sfx}"), format!("0x{tci:04x}"));
        } else {
            o.put(&format!("vlan_tci{sfx}"), format!("0x{:04x}/0x{tm:04x}", tci & tm));
        }
    }
    o.eth("dl_src", &k.dl_src, &m.dl_src);
    o.eth("dl_dst", &k.dl_dst, &m.dl_dst);
    if !skip_type && m.dl_type != 0 {
        o.put("dl_type", format!("0x{dl_type:04x}"));
    }
    let arp = dl_type == 0x0806 || dl_type == 0x8035;
    if dl_type == 0x86dd {
        o.ip6("ipv6_src", &k.ipv6_src, &m.ipv6_src);
        o.ip6("ipv6_dst", &k.ipv6_dst, &m.ipv6_dst);
        if m.ipv6_label == u32::MAX {
            o.put("ipv6_label", format!("0x{:05x}", k.ipv6_label));
        } else if m.ipv6_label != 0 {
            let v = format!("0x{:05x}/0x{:05x}", k.ipv6_label & m.ipv6_label, m.ipv6_label);
            o.put("ipv6_label", v);
        }
    } else if arp {
        o.ip("arp_spa", k.nw_src, m.nw_src);
        o.ip("arp_tpa", k.nw_dst, m.nw_dst);
    } else {
        o.ip("nw_src", k.nw_src, m.nw_src);
        o.ip("nw_dst", k.nw_dst, m.nw_dst);
    }
    if !skip_proto && m.nw_proto != 0 {
        o.put(if arp { "arp_op" } else { "nw_proto" }, k.nw_proto.to_string());
    }
    if arp {
        o.eth("arp_sha", &k.arp_sha, &m.arp_sha);
        o.eth("arp_tha", &k.arp_tha, &m.arp_tha);
    }
    if m.nw_tos & 0xfc != 0 {
        o.put("nw_tos", (k.nw_tos & 0xfc).to_string());
    }
    if m.nw_tos & 0x03 != 0 {
        o.put("nw_ecn", (k.nw_tos & 0x03).to_string());
    }
    if m.nw_ttl != 0 {
        o.put("nw_ttl", k.nw_ttl.to_string());
    }
    let (any, later) = (k.nw_frag & nw_frag::ANY != 0, k.nw_frag & nw_frag::LATER != 0);
    match m.nw_frag & nw_frag::MASK {
        3 => o.put(
            "nw_frag",
            match (any, later) {
                (true, true) => "later",
                (true, false) => "first",
                (false, true) => "<error>",
                (false, false) => "no",
            },
        ),
        1 => o.put("nw_frag", if any { "yes" } else { "no" }),
        2 => o.put("nw_frag", if later { "later" } else { "not_later" }),
        _ => {}
    }
    let icmp6 = dl_type == 0x86dd && k.nw_proto == 58;
    if (dl_type == 0x0800 && k.nw_proto == 1) || icmp6 {
        o.be16("icmp_type", k.tp_src, m.tp_src);
        o.be16("icmp_code", k.tp_dst, m.tp_dst);
        if icmp6 {
            o.ip6("nd_target", &k.nd_target, &m.nd_target);
            o.eth("nd_sll", &k.arp_sha, &m.arp_sha);
            o.eth("nd_tll", &k.arp_tha, &m.arp_tha);
        }
    } else {
        o.be16("tp_src", k.tp_src, m.tp_src);
        o.be16("tp_dst", k.tp_dst, m.tp_dst);
    }
    let ip_any = dl_type == 0x0800 || dl_type == 0x86dd;
    if ip_any && k.nw_proto == 6 && m.tcp_flags & 0x0fff != 0 {
        let v = flags_masked(
            &TCP_NAMES,
            (k.tcp_flags & 0x0fff).into(),
            (m.tcp_flags & 0x0fff).into(),
            0x0fff,
        );
        o.put("tcp_flags", v);
    }
    let mut s = o.0;
    if s.ends_with(',') {
        s.pop();
    }
    s
}

fn no_names() -> &'static NoNames {
    &NoNames
}

/// The `Megaflow:` line of `ofproto/trace` (without the `Megaflow: ` prefix): the match of
/// the datapath flow, with `key.in_port` the OpenFlow port of the traced bridge. `names`
/// prints port names (`--names`).
pub fn format_trace_megaflow(
    key: &FlowKey,
    mask: &FlowKey,
    names: Option<&dyn PortNames>,
) -> String {
    let mut m = *mask;
    // The datapath always matches these (dpif-netdev and xlate_wc_init()).
    m.recirc_id = u32::MAX;
    m.in_port = u32::MAX;
    m.dl_type = u16::MAX;
    // xlate_wc_finish(): ICMP type and code are 8 bits wide in the datapath.
    let icmp = (key.is_ipv4() && key.nw_proto == 1) || (key.is_ipv6() && key.nw_proto == 58);
    if icmp {
        if m.tp_src != 0 {
            m.tp_src = 0xff;
        }
        if m.tp_dst != 0 {
            m.tp_dst = 0xff;
        }
    }
    let tunnelled = key.tun_flags & tun_flags::PRESENT != 0 && key.tun_dst != 0;
    let tun = if tunnelled { Tun::Megaflow } else { Tun::None };
    if !tunnelled {
        m.tun_id = 0;
        m.tun_src = 0;
        m.tun_dst = 0;
        m.tun_flags = 0;
    }
    let k = key.masked(&m);
    let ports = names.unwrap_or(no_names());
    match_format(&k, &m, ports, names.is_some(), true, tun)
}

/// The mask `flow_format()` prints a packet's flow with: every field the packet has, and
/// the metadata that is not zero.
fn flow_mask(k: &FlowKey) -> FlowKey {
    let mut m = FlowKey::ZERO;
    let tunnelled = k.tun_flags & tun_flags::PRESENT != 0 && k.tun_dst != 0;
    if tunnelled {
        if k.tun_flags & tun_flags::KEY != 0 {
            m.tun_id = u64::MAX;
        }
        m.tun_src = u32::MAX;
        m.tun_dst = u32::MAX;
    } else if k.tun_id != 0 {
        m.tun_id = u64::MAX;
    }
    let nz = |v: u64| if v != 0 { u64::MAX } else { 0 };
    m.metadata = nz(k.metadata);
    for i in 0..8 {
        m.regs[i] = nz(k.regs[i].into()) as u32;
    }
    m.in_port = nz(k.in_port.into()) as u32;
    m.recirc_id = nz(k.recirc_id.into()) as u32;
    m.ct_mark = nz(k.ct_mark.into()) as u32;
    m.ct_zone = nz(k.ct_zone.into()) as u16;
    m.ct_state = nz(k.ct_state.into()) as u8;
    m.dl_src = [0xff; 6];
    m.dl_dst = [0xff; 6];
    m.dl_type = u16::MAX;
    // "Always show the first zero VLAN."
    m.vlan_tci = u16::MAX;
    if k.vlan_tci != 0 {
        m.vlan2_tci = u16::MAX;
    }
    match k.dl_type {
        0x0800 => {
            m.nw_src = u32::MAX;
            m.nw_dst = u32::MAX;
        }
        0x86dd => {
            m.ipv6_src = [0xff; 16];
            m.ipv6_dst = [0xff; 16];
            m.ipv6_label = u32::MAX;
            let nd = k.nw_proto == 58 && k.tp_dst == 0 && matches!(k.tp_src, 135 | 136);
            if nd {
                m.arp_sha = [0xff; 6];
                m.arp_tha = [0xff; 6];
                m.nd_target = [0xff; 16];
            }
        }
        0x0806 | 0x8035 => {
            m.nw_src = u32::MAX;
            m.nw_dst = u32::MAX;
            m.nw_proto = u8::MAX;
            m.arp_sha = [0xff; 6];
            m.arp_tha = [0xff; 6];
            return m;
        }
        _ => return m,
    }
    m.nw_frag = nw_frag::MASK;
    m.nw_tos = u8::MAX;
    m.nw_ttl = u8::MAX;
    m.nw_proto = u8::MAX;
    if k.nw_frag & nw_frag::LATER == 0 && matches!(k.nw_proto, 1 | 58 | 6 | 17 | 132 | 2) {
        m.tp_src = u16::MAX;
        m.tp_dst = u16::MAX;
        if k.nw_proto == 6 {
            m.tcp_flags = u16::MAX;
        }
    }
    m
}

/// The `Flow:` / `Final flow:` lines of `ofproto/trace` (without the prefix): a packet's
/// flow as `flow_format()` prints it. `key.in_port` is the OpenFlow port.
pub fn format_trace_flow(key: &FlowKey, names: Option<&dyn PortNames>) -> String {
    let m = flow_mask(key);
    let tunnelled = key.tun_flags & tun_flags::PRESENT != 0 && key.tun_dst != 0;
    let tun = if tunnelled { Tun::Flow } else { Tun::None };
    let ports = names.unwrap_or(no_names());
    match_format(key, &m, ports, names.is_some(), key.recirc_id != 0, tun)
}

/// `ofp_print_duration` for a time in milliseconds: no decimals for whole seconds, else 3.
pub fn format_duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}

/// One line of `ovs-ofctl -O OpenFlow15 dump-flows` (with its leading space), as
/// `ofputil_flow_stats_format` writes it; `stats` false is `--no-stats`. Ages are whole
/// seconds since the last packet (or install) and since the last modification.
pub fn format_flow_stats(
    rule: &Rule,
    now_ms: u64,
    ports: &dyn PortNames,
    names: bool,
    style: ActionStyle,
    stats: bool,
) -> String {
    let mut s = String::from(" ");
    if stats || rule.cookie != 0 {
        let _ = write!(s, "cookie=0x{:x}, ", rule.cookie);
    }
    let duration = now_ms.saturating_sub(rule.created_ms);
    if stats {
        let _ = write!(s, "duration={}, ", format_duration(duration));
    }
    if stats || rule.table != 0 {
        let _ = write!(s, "table={}, ", rule.table);
    }
    if stats {
        let _ = write!(
            s,
            "n_packets={}, n_bytes={}, ",
            rule.n_packets.load(Relaxed),
            rule.n_bytes.load(Relaxed)
        );
    }
    if rule.idle_timeout != 0 {
        let _ = write!(s, "idle_timeout={}, ", rule.idle_timeout);
    }
    if rule.hard_timeout != 0 {
        let _ = write!(s, "hard_timeout={}, ", rule.hard_timeout);
    }
    let f = rule.flags;
    for (on, name) in [
        (f.send_flow_rem, "send_flow_rem "),
        (f.check_overlap, "check_overlap "),
        (f.reset_counts, "reset_counts "),
        (f.no_packet_counts, "no_packet_counts "),
        (f.no_byte_counts, "no_byte_counts "),
    ] {
        if on {
            s.push_str(name);
        }
    }
    if rule.importance != 0 {
        let _ = write!(s, "importance={}, ", rule.importance);
    }
    if stats {
        let used = rule.used_ms.load(Relaxed).max(rule.created_ms);
        let modified = rule.modified_ms.load(Relaxed).max(rule.created_ms);
        let _ = write!(s, "idle_age={}, ", now_ms.saturating_sub(used) / 1000);
        let hard_age = now_ms.saturating_sub(modified) / 1000;
        if hard_age != duration / 1000 {
            let _ = write!(s, "hard_age={hard_age}, ");
        }
    }
    let m = format_match(&rule.mat, rule.priority, ports, names);
    if !m.is_empty() {
        s.push_str(&m);
        s.push(' ');
    }
    s.push_str("actions=");
    s.push_str(&format_actions_with_match(&rule.actions, &rule.mat, ports, names, style));
    s
}

/// What `ovs-ofctl dump-flows BRIDGE [FLOW]` selects: a table, a match with loose
/// semantics (a rule is shown when it is at least as specific as the filter and agrees
/// with it), `cookie=V/M`, and `out_port`.
#[derive(Clone, Debug, Default)]
pub struct DumpFilter {
    pub table: Option<u8>,
    pub mat: Option<Match>,
    pub cookie: u64,
    pub cookie_mask: u64, // 0 = any cookie
    pub out_port: Option<u32>,
}

impl DumpFilter {
    /// The filter of a parsed flow (its table, match, cookie mask and out_port).
    pub fn from_flow_mod(fm: &FlowMod) -> DumpFilter {
        let catchall = fm.mat.mask.is_zero();
        DumpFilter {
            table: fm.table,
            mat: (!catchall).then_some(fm.mat),
            cookie: fm.cookie,
            cookie_mask: fm.cookie_mask,
            out_port: fm.out_port.filter(|p| *p != port::NONE),
        }
    }

    fn selects(&self, r: &Rule) -> bool {
        if self.table.is_some_and(|t| t != r.table) {
            return false;
        }
        if (r.cookie ^ self.cookie) & self.cookie_mask != 0 {
            return false;
        }
        if let Some(p) = self.out_port {
            if !r.outputs_to(p) {
                return false;
            }
        }
        if let Some(f) = &self.mat {
            let (fm, fk) = (f.mask.words(), f.key.words());
            let (rm, rk) = (r.mat.mask.words(), r.mat.key.words());
            if !(0..fm.len()).all(|i| fm[i] & !rm[i] == 0 && (rk[i] & fm[i]) == fk[i] & fm[i]) {
                return false;
            }
        }
        true
    }
}

/// The rules a dump shows, in OVS's order (see the module comment).
pub fn dump_order(tables: &Tables, filter: &DumpFilter) -> Vec<Arc<Rule>> {
    let mut rules: Vec<Arc<Rule>> = tables.rules().filter(|r| filter.selects(r)).cloned().collect();
    // Subtable of each rule: its mask. Rank subtables by (max priority desc, oldest rule).
    let mut subtables: Vec<(u8, FlowKey, u16, u64)> = Vec::new();
    for r in tables.rules() {
        let key = (r.table, r.mat.mask);
        match subtables.iter_mut().find(|s| (s.0, s.1) == key) {
            Some(s) => {
                s.2 = s.2.max(r.priority);
                s.3 = s.3.min(r.id);
            }
            None => subtables.push((r.table, r.mat.mask, r.priority, r.id)),
        }
    }
    let rank = |r: &Rule| {
        let s = subtables.iter().find(|s| s.0 == r.table && s.1 == r.mat.mask);
        let (prio, first) = s.map_or((0, 0), |s| (s.2, s.3));
        (r.table, u16::MAX - prio, first, r.id)
    };
    rules.sort_by_key(|r| rank(r));
    rules
}

/// The lines of `ovs-ofctl -O OpenFlow15 dump-flows` (each with its leading space, no
/// header), filtered and ordered as OVS does.
pub fn dump_flows(
    tables: &Tables,
    filter: &DumpFilter,
    now_ms: u64,
    ports: &dyn PortNames,
    names: bool,
    style: ActionStyle,
    stats: bool,
) -> Vec<String> {
    dump_order(tables, filter)
        .iter()
        .map(|r| format_flow_stats(r, now_ms, ports, names, style, stats))
        .collect()
}

/// The header OVS prints before an OpenFlow 1.5 flow dump.
pub const DUMP_FLOWS_HEADER: &str = "OFPST_FLOW reply (OF1.5) (xid=0x2):";

/// The MAC address `ovs-ofctl show` gives a port: the bridge's for LOCAL; for a port with a
/// datapath port, `aa:55:aa:55:00:NN` with NN its datapath number (as OVS's dummy netdevs
/// are numbered); for patch and tunnel ports (random in OVS) a fixed address derived from
/// the bridge's.
fn port_mac(bridge: &Bridge, ofport: u32, dp_port: Option<u32>) -> [u8; 6] {
    if ofport == port::LOCAL {
        return bridge.mac;
    }
    match dp_port {
        Some(n) => [0xaa, 0x55, 0xaa, 0x55, (n >> 8) as u8, n as u8],
        None => {
            let mut m = bridge.mac;
            m[0] = (m[0] | 0x02) & 0xfe;
            m[4] ^= (ofport >> 8) as u8;
            m[5] ^= ofport as u8 ^ 0x80;
            m
        }
    }
}

/// `ovs-ofctl show BRIDGE`: the features reply (dpid from the bridge's MAC), one block per
/// port in OpenFlow port order with LOCAL last, and the config reply.
pub fn format_ofctl_show(bridge: &Bridge) -> String {
    let b = bridge.mac;
    let mut s = format!(
        "OFPT_FEATURES_REPLY (xid=0x2): dpid:0000{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}\n",
        b[0], b[1], b[2], b[3], b[4], b[5]
    );
    s.push_str("n_tables:254, n_buffers:0\n");
    s.push_str("capabilities: FLOW_STATS TABLE_STATS PORT_STATS QUEUE_STATS ARP_MATCH_IP\n");
    s.push_str(
        "actions: output enqueue set_vlan_vid set_vlan_pcp strip_vlan mod_dl_src mod_dl_dst \
         mod_nw_src mod_nw_dst mod_nw_tos mod_tp_src mod_tp_dst\n",
    );
    let mut ports: Vec<(u32, &str, Option<u32>)> = bridge
        .ports
        .iter()
        .filter(|p| p.ofport != port::LOCAL && !matches!(p.kind, PortKind::Local))
        .map(|p| (p.ofport, p.name.as_str(), p.dp_port))
        .collect();
    ports.sort_by_key(|p| p.0);
    ports.push((port::LOCAL, bridge.name.as_str(), None));
    for (ofport, name, dp) in ports {
        let no = if ofport == port::LOCAL { "LOCAL".to_string() } else { ofport.to_string() };
        let _ = writeln!(s, " {no}({name}): addr:{}", mac(&port_mac(bridge, ofport, dp)));
        s.push_str("     config:     0\n");
        s.push_str("     state:      0\n");
        s.push_str("     speed: 0 Mbps now, 0 Mbps max\n");
    }
    s.push_str("OFPT_GET_CONFIG_REPLY (xid=0x4): frags=normal miss_send_len=0\n");
    s
}

/// A port of `ovs-vsctl show`: name, tag, and the interface's type and options.
type ShowPort<'a> = (&'a str, Option<u16>, Option<(&'a str, Vec<(String, String)>)>);

/// An OVSDB string as `ovs-vsctl` prints it: quoted unless it is a plain identifier.
fn ovsdb_string(v: &str) -> String {
    let mut chars = v.chars();
    let plain = match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                && v != "true"
                && v != "false"
        }
        _ => false,
    };
    if plain {
        v.to_string()
    } else {
        let mut s = String::from("\"");
        for c in v.chars() {
            if c == '"' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
        s
    }
}

/// `ovs-vsctl show` for the bridges of one node (`Ofproto::bridges`: patch peers are
/// looked up by their index in it). OVS prints rows in UUID order, which is
/// random: here bridges come in the given order and ports by name. `uuid` is the first
/// line (the Open_vSwitch row); `version` the `ovs_version` value (dvrlab's own).
/// Interfaces without a datapath-visible type (VM and NIC ports) print no `type:` line, as
/// system ports do in OVS.
pub fn format_vsctl_show(bridges: &[Bridge], uuid: &str, version: &str) -> String {
    let mut s = format!("{uuid}\n");
    for b in bridges {
        let _ = writeln!(s, "    Bridge {}", ovsdb_string(&b.name));
        if !b.standalone {
            s.push_str("        fail_mode: secure\n");
        }
        let mut ports: Vec<ShowPort> = Vec::new();
        ports.push((b.name.as_str(), None, Some(("internal", Vec::new()))));
        for p in &b.ports {
            let iface = match &p.kind {
                PortKind::Local => continue,
                PortKind::Netdev => None,
                PortKind::NsIface { .. } => Some(("internal", Vec::new())),
                PortKind::Patch { peer_bridge, peer_ofport } => {
                    let peer = bridges
                        .get(*peer_bridge)
                        .and_then(|pb| pb.port(*peer_ofport))
                        .map_or(String::new(), |pp| pp.name.clone());
                    Some(("patch", vec![("peer".to_string(), peer)]))
                }
                PortKind::Vxlan(c) => {
                    let mut o: Vec<(String, String)> = Vec::new();
                    let key = |k: Option<u64>| k.map_or("flow".to_string(), |v| v.to_string());
                    if c.in_key == c.out_key {
                        if c.in_key != Some(0) {
                            o.push(("key".into(), key(c.in_key)));
                        }
                    } else {
                        o.push(("in_key".into(), key(c.in_key)));
                        o.push(("out_key".into(), key(c.out_key)));
                    }
                    if c.csum {
                        o.push(("csum".into(), "true".into()));
                    }
                    if c.dst_port != 4789 {
                        o.push(("dst_port".into(), c.dst_port.to_string()));
                    }
                    if let Some(ip) = c.local_ip {
                        o.push(("local_ip".into(), Ipv4Addr::from(ip).to_string()));
                    }
                    let remote =
                        c.remote_ip.map_or("flow".into(), |ip| Ipv4Addr::from(ip).to_string());
                    o.push(("remote_ip".into(), remote));
                    Some(("vxlan", o))
                }
            };
            ports.push((p.name.as_str(), p.tag, iface));
        }
        ports.sort_by(|a, b| a.0.cmp(b.0));
        for (name, tag, iface) in ports {
            let _ = writeln!(s, "        Port {}", ovsdb_string(name));
            if let Some(t) = tag {
                let _ = writeln!(s, "            tag: {t}");
            }
            let _ = writeln!(s, "            Interface {}", ovsdb_string(name));
            if let Some((ty, mut opts)) = iface {
                let _ = writeln!(s, "                type: {ty}");
                if !opts.is_empty() {
                    opts.sort();
                    let o: Vec<String> = opts
                        .iter()
                        .map(|(k, v)| format!("{}={}", ovsdb_string(k), ovsdb_string(v)))
                        .collect();
                    let _ = writeln!(s, "                options: {{{}}}", o.join(", "));
                }
            }
        }
    }
    let _ = writeln!(s, "    ovs_version: {}", ovsdb_string(version));
    s
}

#[cfg(test)]
mod tests {
    //! Expected strings are real Open vSwitch 3.1 output: `ofproto/trace` and
    //! `ovs-ofctl -O OpenFlow15 dump-flows` / `show` from oracle runs of the shared
    //! examples and of test/oracle/scenarios.
    use super::*;
    use crate::flow::key::ct_state as cs;
    use crate::ofproto::action::FlowModCommand;
    use crate::ofproto::parse::parse_flow;
    use crate::xlate::normal::MacTable;
    use crate::xlate::tunnel::TunnelConfig;
    use crate::xlate::BridgePort;
    use std::collections::HashMap;

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

    fn packet(dl_type: u16) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.in_port = 1;
        k.dl_type = dl_type;
        k
    }

    #[test]
    fn trace_flow_lines() {
        // l2-rewrite, packet 1.
        let mut k = packet(0x0800);
        k.dl_src = mac("52:54:00:00:00:01");
        k.dl_dst = mac("52:54:00:00:00:02");
        k.nw_src = ip("10.0.0.1");
        k.nw_dst = ip("10.0.0.2");
        k.nw_proto = 17;
        k.nw_ttl = 64;
        k.tp_src = 1000;
        k.tp_dst = 5000;
        assert_eq!(
            format_trace_flow(&k, None),
            "udp,in_port=1,vlan_tci=0x0000,dl_src=52:54:00:00:00:01,dl_dst=52:54:00:00:00:02,\
             nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,\
             tp_src=1000,tp_dst=5000"
        );
        // After recirculation: recirc_id, conntrack fields, and `eth`.
        let mut r = k;
        r.in_port = 2;
        r.recirc_id = 2;
        r.ct_state = cs::NEW | cs::TRK;
        r.ct_zone = 1;
        r.dl_src = mac("fa:16:3e:00:00:fe");
        r.dl_dst = mac("fa:16:3e:00:00:01");
        r.nw_src = ip("8.8.8.8");
        r.nw_dst = ip("172.24.4.10");
        r.tp_src = 53;
        r.tp_dst = 1000;
        assert_eq!(
            format_trace_flow(&r, None),
            "recirc_id=0x2,ct_state=new|trk,ct_zone=1,eth,udp,in_port=2,vlan_tci=0x0000,\
             dl_src=fa:16:3e:00:00:fe,dl_dst=fa:16:3e:00:00:01,nw_src=8.8.8.8,\
             nw_dst=172.24.4.10,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,tp_src=53,tp_dst=1000"
        );
        // A flow with no EtherType.
        let mut l2 = packet(0);
        l2.dl_src = mac("52:54:00:00:00:01");
        assert_eq!(
            format_trace_flow(&l2, None),
            "in_port=1,vlan_tci=0x0000,dl_src=52:54:00:00:00:01,dl_dst=00:00:00:00:00:00,\
             dl_type=0x0000"
        );
        // TCP ends with its flags.
        let mut t = packet(0x0800);
        t.nw_src = ip("10.0.0.1");
        t.nw_dst = ip("10.0.0.2");
        t.nw_proto = 6;
        t.tp_dst = 80;
        t.tcp_flags = 0x002;
        assert_eq!(
            format_trace_flow(&t, None),
            "tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,\
             nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,\
             tp_dst=80,tcp_flags=syn"
        );
        // ARP.
        let mut a = packet(0x0806);
        a.nw_src = ip("10.0.0.1");
        a.nw_dst = ip("10.0.0.2");
        a.nw_proto = 1;
        a.arp_sha = mac("52:54:00:00:00:01");
        assert_eq!(
            format_trace_flow(&a, None),
            "arp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,\
             arp_spa=10.0.0.1,arp_tpa=10.0.0.2,arp_op=1,arp_sha=52:54:00:00:00:01,\
             arp_tha=00:00:00:00:00:00"
        );
        // A tagged ICMP packet: the tag, then the empty second tag slot.
        let mut i = packet(0x0800);
        i.vlan_tci = VLAN_CFI | (3 << 13) | 7;
        i.vlan_tpid = 0x8100;
        i.nw_src = ip("10.0.0.1");
        i.nw_proto = 1;
        i.nw_tos = 0x29;
        i.tp_src = 8;
        assert_eq!(
            format_trace_flow(&i, None),
            "icmp,in_port=1,dl_vlan=7,dl_vlan_pcp=3,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,\
             dl_dst=00:00:00:00:00:00,nw_src=10.0.0.1,nw_dst=0.0.0.0,nw_tos=40,nw_ecn=1,\
             nw_ttl=0,nw_frag=no,icmp_type=8,icmp_code=0"
        );
        // Neighbour solicitation.
        let mut n = packet(0x86dd);
        n.vlan_tci = VLAN_CFI | 5;
        n.vlan_tpid = 0x8100;
        n.ipv6_src = ip6("fd00::1");
        n.ipv6_dst = ip6("fd00::2");
        n.nw_proto = 58;
        n.tp_src = 135;
        n.nd_target = ip6("fd00::2");
        assert_eq!(
            format_trace_flow(&n, None),
            "icmp6,in_port=1,dl_vlan=5,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,\
             dl_dst=00:00:00:00:00:00,ipv6_src=fd00::1,ipv6_dst=fd00::2,ipv6_label=0x00000,\
             nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,icmp_type=135,icmp_code=0,\
             nd_target=fd00::2,nd_sll=00:00:00:00:00:00,nd_tll=00:00:00:00:00:00"
        );
        // UDP over IPv6 with a flow label; a first fragment.
        let mut u = packet(0x86dd);
        u.ipv6_src = ip6("fd00::1");
        u.ipv6_dst = ip6("fd00::2");
        u.ipv6_label = 0x12345;
        u.nw_proto = 17;
        u.tp_src = 5;
        u.tp_dst = 6;
        assert_eq!(
            format_trace_flow(&u, None),
            "udp6,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,\
             ipv6_src=fd00::1,ipv6_dst=fd00::2,ipv6_label=0x12345,nw_tos=0,nw_ecn=0,nw_ttl=0,\
             nw_frag=no,tp_src=5,tp_dst=6"
        );
        let mut f = packet(0x0800);
        f.nw_proto = 17;
        f.nw_frag = nw_frag::ANY;
        assert_eq!(
            format_trace_flow(&f, None),
            "udp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,\
             nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=first,tp_src=0,\
             tp_dst=0"
        );
        // Conntrack, registers, metadata and tunnel metadata.
        let mut c = packet(0x0800);
        c.nw_proto = 17;
        c.ct_state = cs::EST | cs::TRK;
        c.ct_zone = 3;
        c.ct_mark = 0x10;
        c.regs[0] = 5;
        c.metadata = 9;
        c.tun_src = ip("1.1.1.1");
        c.tun_dst = ip("2.2.2.2");
        c.tun_flags = tun_flags::PRESENT;
        let s = format_trace_flow(&c, None);
        assert!(
            s.starts_with(
                "ct_state=est|trk,ct_zone=3,ct_mark=0x10,udp,reg0=0x5,tun_src=1.1.1.1,\
                 tun_dst=2.2.2.2,tun_ipv6_src=::,tun_ipv6_dst=::,tun_gbp_id=0,tun_gbp_flags=0,\
                 tun_tos=0,tun_ttl="
            ),
            "{s}"
        );
        assert!(
            s.contains(
                ",tun_erspan_ver=0,gtpu_flags=0,gtpu_msgtype=0,tun_flags=0,metadata=0x9,\
                 in_port=1,vlan_tci=0x0000,"
            ),
            "{s}"
        );
    }

    #[test]
    fn trace_megaflow_lines() {
        let full6 = [0xffu8; 6];
        // vxlan-encap, br-phy: the VXLAN packet.
        let mut k = packet(0x0800);
        k.dl_src = mac("aa:bb:cc:00:00:13");
        k.dl_dst = mac("aa:55:aa:55:00:12");
        k.nw_src = ip("192.168.1.13");
        k.nw_dst = ip("192.168.1.12");
        k.nw_proto = 17;
        k.nw_ttl = 64;
        k.tp_src = 50000;
        k.tp_dst = 4789;
        let mut m = FlowKey::ZERO;
        m.dl_src = full6;
        m.dl_dst = full6;
        m.nw_dst = u32::MAX;
        m.nw_proto = 0xff;
        m.nw_frag = nw_frag::MASK;
        m.tp_dst = 0xffff;
        m.tun_flags = tun_flags::PRESENT;
        assert_eq!(
            format_trace_megaflow(&k, &m, None),
            "recirc_id=0,eth,udp,in_port=1,dl_src=aa:bb:cc:00:00:13,dl_dst=aa:55:aa:55:00:12,\
             nw_dst=192.168.1.12,nw_frag=no,tp_dst=4789"
        );
        // vxlan-encap, br-int: only the ECN bits were read (for the outer header).
        let mut m = FlowKey::ZERO;
        m.nw_tos = 0x03;
        m.nw_frag = nw_frag::MASK;
        assert_eq!(
            format_trace_megaflow(&k, &m, None),
            "recirc_id=0,eth,ip,in_port=1,nw_ecn=0,nw_frag=no"
        );
        // l2-rewrite: a flow without an EtherType.
        let mut l2 = packet(0);
        l2.dl_src = mac("52:54:00:00:00:01");
        let mut m = FlowKey::ZERO;
        m.dl_src = full6;
        assert_eq!(
            format_trace_megaflow(&l2, &m, None),
            "recirc_id=0,eth,in_port=1,dl_src=52:54:00:00:00:01,dl_type=0x0000"
        );
        // snat-ct after recirculation.
        let mut r = k;
        r.in_port = 2;
        r.recirc_id = 2;
        r.ct_state = cs::NEW | cs::TRK;
        let mut m = FlowKey::ZERO;
        m.ct_state = cs::EST | cs::TRK;
        m.nw_frag = nw_frag::MASK;
        assert_eq!(
            format_trace_megaflow(&r, &m, None),
            "recirc_id=0x2,ct_state=-est+trk,eth,ip,in_port=2,nw_frag=no"
        );
        // arp-ipv6: prefixes, an ARP opcode, a masked THA.
        let mut a = packet(0x0806);
        a.nw_src = ip("10.0.0.1");
        a.nw_dst = ip("10.0.0.2");
        a.nw_proto = 1;
        a.arp_sha = mac("52:54:00:00:00:01");
        let mut m = FlowKey::ZERO;
        m.nw_src = 0xffff_ff00;
        m.nw_dst = u32::MAX;
        m.nw_proto = 0xff;
        m.arp_tha = mac("ff:00:00:00:00:00");
        assert_eq!(
            format_trace_megaflow(&a, &m, None),
            "recirc_id=0,eth,arp,in_port=1,arp_spa=10.0.0.0/24,arp_tpa=10.0.0.2,arp_op=1,\
             arp_tha=00:00:00:00:00:00/ff:00:00:00:00:00"
        );
        // ICMPv6 type, 8 bits wide in the datapath.
        let mut n = packet(0x86dd);
        n.ipv6_src = ip6("fd00::1");
        n.ipv6_dst = ip6("fd00::2");
        n.nw_proto = 58;
        n.tp_src = 135;
        let mut m = FlowKey::ZERO;
        m.dl_dst = full6;
        m.ipv6_src = [0xff; 16];
        m.ipv6_dst = ip6("ffff:ffff:ffff:ffff::");
        m.nw_proto = 0xff;
        m.nw_frag = nw_frag::MASK;
        m.tp_src = 0xffff;
        assert_eq!(
            format_trace_megaflow(&n, &m, None),
            "recirc_id=0,eth,icmp6,in_port=1,dl_dst=00:00:00:00:00:00,ipv6_src=fd00::1,\
             ipv6_dst=fd00::/64,nw_frag=no,icmp_type=0x87/0xff"
        );
        // A masked port with a zero value.
        n.nw_proto = 17;
        n.tp_src = 5;
        m.tp_src = 0xfe00;
        assert_eq!(
            format_trace_megaflow(&n, &m, None),
            "recirc_id=0,eth,udp6,in_port=1,dl_dst=00:00:00:00:00:00,ipv6_src=fd00::1,\
             ipv6_dst=fd00::/64,nw_frag=no,tp_src=0x0/0xfe00"
        );
        // A tunnelled packet: the tunnel fields the megaflow matches.
        let mut t = packet(0x0800);
        t.nw_proto = 17;
        t.tun_id = 0x42;
        t.tun_src = ip("1.1.1.1");
        t.tun_dst = ip("2.2.2.2");
        t.tun_flags = tun_flags::PRESENT;
        let mut m = FlowKey::ZERO;
        m.tun_id = u64::MAX;
        m.tun_src = u32::MAX;
        m.tun_dst = u32::MAX;
        m.tun_flags = tun_flags::PRESENT | tun_flags::DF | tun_flags::CSUM | tun_flags::KEY;
        m.nw_frag = nw_frag::MASK;
        assert_eq!(
            format_trace_megaflow(&t, &m, None),
            "recirc_id=0,eth,ip,tun_id=0x42,tun_src=1.1.1.1,tun_dst=2.2.2.2,tun_tos=0,\
             tun_flags=-df-csum-key,in_port=1,nw_frag=no"
        );
    }

    struct P;
    impl PortNames for P {
        fn port_no(&self, name: &str) -> Option<u32> {
            name.strip_prefix('p').and_then(|n| n.parse().ok())
        }
        fn port_name(&self, no: u32) -> Option<String> {
            Some(format!("p{no}"))
        }
    }

    /// Installs `flows` in order; `ages_ms` are the rules' real durations at `NOW`.
    fn tables(flows: &[(&str, u64, u64, u64)]) -> Tables {
        let mut t = Tables::new();
        let mut id = 1;
        for (text, age, pkts, bytes) in flows {
            let fm = parse_flow(text, FlowModCommand::Add, &NoNames).unwrap();
            t.apply(&fm, &mut id, NOW - age).unwrap();
            let r = t.rules().find(|r| r.id == id - 1).unwrap();
            r.n_packets.store(*pkts, Relaxed);
            r.n_bytes.store(*bytes, Relaxed);
        }
        t
    }

    const NOW: u64 = 100_000;

    #[test]
    fn dump_flows_snat_ct() {
        let t = tables(&[
            (
                "priority=10,ip,in_port=1,actions=ct(commit,zone=1,nat(src=172.24.4.10),table=1)",
                1008,
                3,
                180,
            ),
            ("priority=10,ip,in_port=2,actions=ct(zone=1,nat,table=2)", 1008, 4, 240),
            ("priority=0,actions=drop", 1008, 0, 0),
            (
                "table=1,priority=10,ip,actions=mod_dl_src:fa:16:3e:00:00:01,\
                 mod_dl_dst:fa:16:3e:00:00:fe,output:2",
                1008,
                3,
                180,
            ),
            (
                "table=2,priority=10,ct_state=+trk+est,ip,actions=mod_dl_src:fa:16:3e:00:00:02,\
                 mod_dl_dst:52:54:00:00:00:01,output:1",
                1008,
                3,
                180,
            ),
            ("table=2,priority=0,actions=drop", 1008, 1, 60),
        ]);
        let got = dump_flows(
            &t,
            &DumpFilter::default(),
            NOW,
            &NoNames,
            false,
            ActionStyle::Normalized,
            true,
        );
        let want = [
            " cookie=0x0, duration=1.008s, table=0, n_packets=3, n_bytes=180, idle_age=1, \
             priority=10,ip,in_port=1 actions=ct(commit,table=1,zone=1,nat(src=172.24.4.10))",
            " cookie=0x0, duration=1.008s, table=0, n_packets=4, n_bytes=240, idle_age=1, \
             priority=10,ip,in_port=2 actions=ct(table=2,zone=1,nat)",
            " cookie=0x0, duration=1.008s, table=0, n_packets=0, n_bytes=0, idle_age=1, \
             priority=0 actions=drop",
            " cookie=0x0, duration=1.008s, table=1, n_packets=3, n_bytes=180, idle_age=1, \
             priority=10,ip actions=set_field:fa:16:3e:00:00:01->eth_src,\
             set_field:fa:16:3e:00:00:fe->eth_dst,output:2",
            " cookie=0x0, duration=1.008s, table=2, n_packets=3, n_bytes=180, idle_age=1, \
             priority=10,ct_state=+est+trk,ip actions=set_field:fa:16:3e:00:00:02->eth_src,\
             set_field:52:54:00:00:00:01->eth_dst,output:1",
            " cookie=0x0, duration=1.008s, table=2, n_packets=1, n_bytes=60, idle_age=1, \
             priority=0 actions=drop",
        ];
        assert_eq!(got, want);
        // Filters: a table; a loose match; a cookie mask.
        let f = |s: &str| {
            DumpFilter::from_flow_mod(&parse_flow(s, FlowModCommand::Delete, &NoNames).unwrap())
        };
        let got =
            dump_flows(&t, &f("table=2"), NOW, &NoNames, false, ActionStyle::Normalized, false);
        assert_eq!(
            got,
            [
                " table=2, priority=10,ct_state=+est+trk,ip actions=set_field:fa:16:3e:00:00:02\
                 ->eth_src,set_field:52:54:00:00:00:01->eth_dst,output:1",
                " table=2, priority=0 actions=drop",
            ]
        );
        let got = dump_order(&t, &f("in_port=2"));
        assert_eq!(got.iter().map(|r| r.id).collect::<Vec<_>>(), [2]);
        let got = dump_order(&t, &f("ip"));
        assert_eq!(got.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2, 4, 5]);
        assert_eq!(dump_order(&t, &f("cookie=0x1/-1")).len(), 0);
        assert_eq!(dump_order(&t, &f("cookie=0x0/0x1")).len(), 6);
    }

    #[test]
    fn dump_flows_order_of_subtables() {
        // ipv4-match: OVS lists a table subtable by subtable.
        let flows = [
            ("priority=200,ip,nw_src=10.1.0.0/16,nw_dst=10.2.0.0/255.255.0.0", "01", 2, 1026),
            ("priority=190,ip,nw_dst=10.9.0.1/255.255.0.255", "02", 2, 1021),
            ("priority=180,tcp,tp_dst=0x1000/0xf000", "03", 3, 1020),
            ("priority=180,udp,tp_src=53", "04", 3, 1019),
            ("priority=178,tcp,tcp_dst=22", "05", 3, 1018),
            ("priority=178,udp,udp_dst=0x0200/0xff00", "06", 3, 1017),
            ("priority=175,ip,nw_proto=47", "07", 4, 1016),
            ("priority=170,ip,nw_tos=40", "08", 4, 1015),
            ("priority=170,ip,nw_ecn=3", "09", 4, 1014),
            ("priority=165,ip,nw_ttl=1", "0a", 4, 1013),
            ("priority=160,icmp,icmp_type=8,icmp_code=0", "0b", 2, 1012),
            ("priority=160,icmp,icmp_type=3,icmp_code=3", "0c", 2, 1011),
            ("priority=150,ip,ip_dst=10.5.5.5,ip_src=10.4.0.0/255.255.252.0", "0d", 2, 1010),
            ("priority=140,sctp,tp_dst=5000", "0e", 4, 1009),
            ("priority=0,actions=drop", "", 0, 1008),
        ];
        let texts: Vec<String> = flows
            .iter()
            .map(|(m, mk, out, _)| match *out {
                0 => m.to_string(),
                o => format!("{m},actions=mod_dl_dst:0e:00:00:00:00:{mk},output:{o}"),
            })
            .collect();
        let with_stats: Vec<(&str, u64, u64, u64)> =
            texts.iter().zip(flows.iter()).map(|(t, f)| (t.as_str(), f.3, 1, 60)).collect();
        let t = tables(&with_stats);
        let got = dump_flows(
            &t,
            &DumpFilter::default(),
            NOW,
            &NoNames,
            false,
            ActionStyle::Normalized,
            true,
        );
        let matches: Vec<String> = got
            .iter()
            .map(|l| {
                l.split(", idle_age=1, ")
                    .nth(1)
                    .unwrap()
                    .split(" actions")
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            matches,
            [
                "priority=200,ip,nw_src=10.1.0.0/16,nw_dst=10.2.0.0/16",
                "priority=190,ip,nw_dst=10.9.0.1/255.255.0.255",
                "priority=180,tcp,tp_dst=0x1000/0xf000",
                "priority=180,udp,tp_src=53",
                "priority=178,tcp,tp_dst=22",
                "priority=140,sctp,tp_dst=5000",
                "priority=178,udp,tp_dst=0x200/0xff00",
                "priority=175,ip,nw_proto=47",
                "priority=170,ip,nw_tos=40",
                "priority=170,ip,nw_ecn=3",
                "priority=165,ip,nw_ttl=1",
                "priority=160,icmp,icmp_type=8,icmp_code=0",
                "priority=160,icmp,icmp_type=3,icmp_code=3",
                "priority=150,ip,nw_src=10.4.0.0/22,nw_dst=10.5.5.5",
                "priority=0",
            ]
        );
        assert_eq!(
            got[0],
            " cookie=0x0, duration=1.026s, table=0, n_packets=1, n_bytes=60, idle_age=1, \
             priority=200,ip,nw_src=10.1.0.0/16,nw_dst=10.2.0.0/16 \
             actions=set_field:0e:00:00:00:00:01->eth_dst,output:2"
        );
    }

    #[test]
    fn flow_stats_fields() {
        let t = tables(&[(
            "cookie=0x1f,table=3,priority=32768,idle_timeout=10,hard_timeout=30,importance=5,\
             send_flow_rem,in_port=1,actions=output:2",
            5_000,
            2,
            120,
        )]);
        let r = t.rules().next().unwrap().clone();
        r.used_ms.store(NOW - 1_500, Relaxed);
        r.modified_ms.store(NOW - 3_000, Relaxed);
        assert_eq!(
            format_flow_stats(&r, NOW, &P, true, ActionStyle::Normalized, true),
            " cookie=0x1f, duration=5s, table=3, n_packets=2, n_bytes=120, idle_timeout=10, \
             hard_timeout=30, send_flow_rem importance=5, idle_age=1, hard_age=3, \
             in_port=p1 actions=output:p2"
        );
        assert_eq!(
            format_flow_stats(&r, NOW, &P, false, ActionStyle::Normalized, false),
            " cookie=0x1f, table=3, idle_timeout=10, hard_timeout=30, send_flow_rem \
             importance=5, in_port=1 actions=output:2"
        );
        assert_eq!(format_duration(1_008), "1.008s");
        assert_eq!(format_duration(61_039_306), "61039.306s");
        assert_eq!(format_duration(2_000), "2s");
    }

    fn port(name: &str, ofport: u32, kind: PortKind, dp: Option<u32>) -> BridgePort {
        BridgePort { name: name.into(), ofport, kind, dp_port: dp, tag: None, trunks: Vec::new() }
    }

    fn bridge(name: &str, mac_s: &str, ports: Vec<BridgePort>) -> Bridge {
        let by_ofport: HashMap<u32, usize> =
            ports.iter().enumerate().map(|(i, p)| (p.ofport, i)).collect();
        Bridge {
            name: name.into(),
            mac: mac(mac_s),
            ip: None,
            standalone: false,
            ports,
            by_ofport,
            tables: Tables::new(),
            mac_table: MacTable::default(),
        }
    }

    #[test]
    fn ofctl_and_vsctl_show() {
        // vxlan-encap's br-phy.
        let phy = bridge(
            "br-phy",
            "aa:55:aa:55:00:12",
            vec![
                port("eth0", 1, PortKind::Netdev, Some(4)),
                port("br-phy", port::LOCAL, PortKind::Local, Some(5)),
            ],
        );
        assert_eq!(
            format_ofctl_show(&phy),
            "OFPT_FEATURES_REPLY (xid=0x2): dpid:0000aa55aa550012\n\
             n_tables:254, n_buffers:0\n\
             capabilities: FLOW_STATS TABLE_STATS PORT_STATS QUEUE_STATS ARP_MATCH_IP\n\
             actions: output enqueue set_vlan_vid set_vlan_pcp strip_vlan mod_dl_src mod_dl_dst \
             mod_nw_src mod_nw_dst mod_nw_tos mod_tp_src mod_tp_dst\n \
             1(eth0): addr:aa:55:aa:55:00:04\n     config:     0\n     state:      0\n     \
             speed: 0 Mbps now, 0 Mbps max\n \
             LOCAL(br-phy): addr:aa:55:aa:55:00:12\n     config:     0\n     state:      0\n     \
             speed: 0 Mbps now, 0 Mbps max\n\
             OFPT_GET_CONFIG_REPLY (xid=0x4): frags=normal miss_send_len=0\n"
        );
        // vxlan-encap's br-tun and br-int, as `ovs-vsctl show` prints them (without the
        // oracle's own datapath_type and tx_pcap options); a tagged port.
        let vx = TunnelConfig {
            remote_ip: Some(ip("192.168.1.13")),
            in_key: None,
            out_key: None,
            ..TunnelConfig::default()
        };
        let tun = bridge(
            "br-tun",
            "6a:db:6d:82:1b:41",
            vec![
                port("patch-int", 1, PortKind::Patch { peer_bridge: 1, peer_ofport: 2 }, None),
                port("vxlan0", 2, PortKind::Vxlan(vx), None),
            ],
        );
        let mut vm1 = port("vm1", 1, PortKind::Netdev, Some(1));
        vm1.tag = Some(3);
        let int = bridge(
            "br-int",
            "7a:e2:e5:ba:ed:4c",
            vec![
                vm1,
                port("patch-tun", 2, PortKind::Patch { peer_bridge: 0, peer_ofport: 1 }, None),
            ],
        );
        assert_eq!(
            format_vsctl_show(&[tun, int], "7d237c09-2dc3-4478-9293-76c62ca5eb15", "0.1.0"),
            [
                "7d237c09-2dc3-4478-9293-76c62ca5eb15",
                "    Bridge br-tun",
                "        fail_mode: secure",
                "        Port br-tun",
                "            Interface br-tun",
                "                type: internal",
                "        Port patch-int",
                "            Interface patch-int",
                "                type: patch",
                "                options: {peer=patch-tun}",
                "        Port vxlan0",
                "            Interface vxlan0",
                "                type: vxlan",
                "                options: {key=flow, remote_ip=\"192.168.1.13\"}",
                "    Bridge br-int",
                "        fail_mode: secure",
                "        Port br-int",
                "            Interface br-int",
                "                type: internal",
                "        Port patch-tun",
                "            Interface patch-tun",
                "                type: patch",
                "                options: {peer=patch-int}",
                "        Port vm1",
                "            tag: 3",
                "            Interface vm1",
                "    ovs_version: \"0.1.0\"",
                "",
            ]
            .join("\n")
        );
        assert_eq!(ovsdb_string("qvo28e6e267-f3"), "qvo28e6e267-f3");
        assert_eq!(ovsdb_string("4789"), "\"4789\"");
        assert_eq!(ovsdb_string("true"), "\"true\"");
    }
}
