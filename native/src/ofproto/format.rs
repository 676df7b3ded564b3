//! The ovs-ofctl flow printer: matches and actions as OVS 3.1 prints them in
//! `ovs-ofctl -O OpenFlow15 dump-flows` and `ofproto/trace`.
//!
//! Conventions:
//! - `format_match` follows OVS's `match_format()` field for field, in its order, after the
//!   OpenFlow 1.5 round trip a dump goes through: a VLAN match is carried as OXM
//!   `vlan_vid` (CFI and VID bits) plus an exact `vlan_pcp` only when a tag is required, so
//!   `dl_vlan=0xffff` (`vlan_tci=0x0000/0xffff` inside) prints `vlan_tci=0x0000/0x1fff`.
//! - `ActionStyle::Installed` prints actions as they were written (`mod_dl_src:`, `load:`,
//!   `strip_vlan`, `set_tunnel:`), as dump-flows over OpenFlow 1.0 shows them.
//!   `ActionStyle::Normalized` prints what OVS prints over OpenFlow 1.5 and in traces
//!   (`set_field:M->eth_src`, `set_field:0x42->tun_id`, `pop_vlan`,
//!   `push_vlan:0x8100,set_field:4097->vlan_vid`).
//! - Printing never panics and output of the parser's input parses back to the same flow.

use super::action::{port, Action, CtZone, FlowMod, FlowModCommand, LearnPart, Match, NatKind};
use super::action::{LearnSpec, NatSpec, Spelling};
use super::parse::PortNames;
use crate::flow::field::Fmt;
use crate::flow::key::{nw_frag, VLAN_CFI};
use crate::flow::{FieldId, FlowKey, Subfield};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

/// How actions print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionStyle {
    /// As written when installed (`mod_dl_src:M`, `load:V->F[]`, `strip_vlan`).
    Installed,
    /// As OVS 3.1 prints them over OpenFlow 1.5 and in `ofproto/trace`.
    Normalized,
}

/// A port as ovs-ofctl prints it: reserved name, port name (with `names`), or number.
pub fn format_port(p: u32, ports: &dyn PortNames, names: bool) -> String {
    if let Some(r) = port::reserved_name(p) {
        return r.to_string();
    }
    if names {
        if let Some(n) = ports.port_name(p) {
            return quote_name(&n);
        }
    }
    p.to_string()
}

/// Quotes a port name when it would not parse back as a plain name.
fn quote_name(n: &str) -> String {
    // namemap_put_name(): a name is printed plain only when it starts with a letter and has
    // nothing but letters and digits; anything else is quoted (JSON string escaping).
    let plain = n.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && n.bytes().all(|b| b.is_ascii_alphanumeric())
        && port::by_reserved_name(n).is_none();
    if plain {
        return n.to_string();
    }
    let mut s = String::from("\"");
    for c in n.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// `{:#x}`, but `0` for zero (OVS's `ds_put_hex` and `%#x`).
fn hex(v: u128) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v:#x}")
    }
}

fn mac(v: u128) -> String {
    let b = (v as u64).to_be_bytes();
    crate::fmt::mac(&[b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn ipv4(v: u32) -> String {
    Ipv4Addr::from(v).to_string()
}

fn ipv6(v: u128) -> String {
    crate::fmt::ipv6(&v.to_be_bytes())
}

fn ipv4_masked(v: u32, m: u32) -> String {
    if m == u32::MAX {
        ipv4(v)
    } else if m.leading_ones() + m.trailing_zeros() == 32 {
        format!("{}/{}", ipv4(v), m.leading_ones())
    } else {
        format!("{}/{}", ipv4(v), ipv4(m))
    }
}

fn ipv6_masked(v: u128, m: u128) -> String {
    if m == u128::MAX {
        ipv6(v)
    } else if m.leading_ones() + m.trailing_zeros() == 128 {
        format!("{}/{}", ipv6(v), m.leading_ones())
    } else {
        format!("{}/{}", ipv6(v), ipv6(m))
    }
}

fn mac_masked(v: u128, m: u128) -> String {
    if m == 0xffff_ffff_ffff {
        mac(v)
    } else {
        format!("{}/{}", mac(v), mac(m))
    }
}

const CT_NAMES: [&str; 8] = ["new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"];
const TCP_NAMES: [&str; 12] =
    ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns", "[200]", "[400]", "[800]"];

/// OVS's `format_flags_masked`: `a|b` under the full mask, `+a-b` otherwise.
fn flags_masked(names: &[&str], v: u32, m: u32, full: u32) -> String {
    let mut s = String::new();
    if m == full {
        if v == 0 {
            return "0".into();
        }
        for (i, n) in names.iter().enumerate() {
            if v & (1 << i) != 0 {
                if !s.is_empty() {
                    s.push('|');
                }
                s.push_str(n);
            }
        }
        return s;
    }
    if m == 0 {
        return "0/0".into();
    }
    for (i, n) in names.iter().enumerate() {
        if m & (1 << i) != 0 {
            s.push(if v & (1 << i) != 0 { '+' } else { '-' });
            s.push_str(n);
        }
    }
    s
}

/// The name OVS gives a field in `set_field` and `learn` (its `mf_field` name).
pub fn mf_name(id: FieldId) -> &'static str {
    match id {
        FieldId::DlSrc => "eth_src",
        FieldId::DlDst => "eth_dst",
        FieldId::DlType => "eth_type",
        FieldId::NwSrc => "ip_src",
        FieldId::NwDst => "ip_dst",
        FieldId::NwFrag => "ip_frag",
        _ => id.field().name,
    }
}

/// A subfield as OVS prints it: `NAME[]`, `NAME[n]` or `NAME[a..b]`.
pub fn format_subfield(sf: &Subfield) -> String {
    let f = sf.field.field();
    if sf.ofs == 0 && sf.n_bits == f.width {
        format!("{}[]", f.nxm)
    } else if sf.n_bits == 1 {
        format!("{}[{}]", f.nxm, sf.ofs)
    } else {
        format!("{}[{}..{}]", f.nxm, sf.ofs, u32::from(sf.ofs) + u32::from(sf.n_bits) - 1)
    }
}

/// A field value (and mask, unless it is all ones) as OVS's `mf_format` writes it.
pub fn format_value(id: FieldId, v: u128, m: u128, ports: &dyn PortNames, names: bool) -> String {
    let f = id.field();
    let ones = f.all_ones();
    // `nw_tos` is written under mask 0xfc: that is the whole field.
    let full = m & ones == ones || (id == FieldId::NwTos && m == 0xfc);
    match f.fmt {
        Fmt::Port if full => format_port(v as u32, ports, names),
        Fmt::Mac => mac_masked(v, if full { 0xffff_ffff_ffff } else { m }),
        Fmt::Ipv4 => ipv4_masked(v as u32, if full { u32::MAX } else { m as u32 }),
        Fmt::Ipv6 => ipv6_masked(v, if full { u128::MAX } else { m }),
        Fmt::CtState => flags_masked(&CT_NAMES, v as u32, if full { 0xff } else { m as u32 }, 0xff),
        Fmt::TcpFlags => {
            flags_masked(&TCP_NAMES, v as u32, if full { 0xfff } else { m as u32 }, 0xfff)
        }
        Fmt::Frag => frag_name(v as u8, if full { 3 } else { m as u8 }).to_string(),
        Fmt::Hex => {
            if full {
                hex(v)
            } else {
                format!("{}/{}", hex(v), hex(m))
            }
        }
        Fmt::Dec | Fmt::Port => {
            if full {
                v.to_string()
            } else {
                format!("{}/{}", v, hex(m))
            }
        }
    }
}

fn frag_name(v: u8, m: u8) -> &'static str {
    let (any, later) = (nw_frag::ANY, nw_frag::LATER);
    match m & nw_frag::MASK {
        x if x == any | later => match (v & any != 0, v & later != 0) {
            (true, true) => "later",
            (true, false) => "first",
            (false, false) => "no",
            (false, true) => "<error>",
        },
        x if x == any => {
            if v & any != 0 {
                "yes"
            } else {
                "no"
            }
        }
        x if x == later => {
            if v & later != 0 {
                "later"
            } else {
                "not_later"
            }
        }
        _ => "",
    }
}

/// The VLAN match after the OpenFlow 1.5 round trip (OXM `vlan_vid` + `vlan_pcp`).
fn oxm_vlan(tci: u16, mask: u16) -> (u16, u16) {
    let vid_cfi = 0x1fff;
    let mut m = mask & vid_cfi;
    if tci & vid_cfi != 0 && mask & 0xe000 != 0 {
        m |= 0xe000;
    }
    (tci & m, m)
}

/// A match as OVS prints it (`priority=N,` first unless it is 32768), in OVS's order.
pub fn format_match(m: &Match, priority: u16, ports: &dyn PortNames, names: bool) -> String {
    let (k, w) = (&m.key, &m.mask);
    let mut s = String::new();
    let put = |s: &mut String, name: &str, val: String| {
        let _ = write!(s, "{name}={val},");
    };
    if priority != 32768 {
        put(&mut s, "priority", priority.to_string());
    }
    if w.recirc_id != 0 {
        put(&mut s, "recirc_id", u32_masked(k.recirc_id, w.recirc_id));
    }
    if w.ct_state != 0 {
        let v = flags_masked(&CT_NAMES, u32::from(k.ct_state), u32::from(w.ct_state), 0xff);
        put(&mut s, "ct_state", v);
    }
    if w.ct_zone != 0 {
        put(&mut s, "ct_zone", u16_masked(k.ct_zone, w.ct_zone));
    }
    if w.ct_mark != 0 {
        put(&mut s, "ct_mark", u32_masked(k.ct_mark, w.ct_mark));
    }
    let dl_type = k.dl_type;
    let mut skip_type = false;
    let mut skip_proto = false;
    if w.dl_type != 0 {
        let proto = (w.nw_proto != 0).then_some(k.nw_proto);
        let word = proto_shorthand(dl_type, proto).unwrap_or("");
        skip_type = !word.is_empty();
        if skip_type {
            skip_proto = !shorthand_is_l3(word);
            s.push_str(word);
            s.push(',');
        }
    }
    for i in 0..8 {
        if w.regs[i] != 0 {
            put(&mut s, &format!("reg{i}"), u32_masked(k.regs[i], w.regs[i]));
        }
    }
    if w.tun_id != 0 {
        put(&mut s, "tun_id", u64_masked(k.tun_id, w.tun_id));
    }
    if w.tun_src != 0 {
        put(&mut s, "tun_src", ipv4_masked(k.tun_src, w.tun_src));
    }
    if w.tun_dst != 0 {
        put(&mut s, "tun_dst", ipv4_masked(k.tun_dst, w.tun_dst));
    }
    if w.metadata != 0 {
        put(&mut s, "metadata", u64_masked(k.metadata, w.metadata));
    }
    if w.in_port != 0 {
        put(&mut s, "in_port", format_port(k.in_port, ports, names));
    }
    let (tci, tmask) = oxm_vlan(k.vlan_tci, w.vlan_tci);
    if tmask != 0 {
        let vid_mask = tmask & 0x0fff;
        let pcp_mask = tmask & 0xe000;
        let cfi = tmask & VLAN_CFI;
        if cfi != 0
            && tci & VLAN_CFI != 0
            && (vid_mask == 0 || vid_mask == 0x0fff)
            && (pcp_mask == 0 || pcp_mask == 0xe000)
            && (vid_mask != 0 || pcp_mask != 0)
        {
            if vid_mask != 0 {
                put(&mut s, "dl_vlan", (tci & 0x0fff).to_string());
            }
            if pcp_mask != 0 {
                put(&mut s, "dl_vlan_pcp", (tci >> 13).to_string());
            }
        } else if tmask == 0xffff {
            put(&mut s, "vlan_tci", format!("0x{tci:04x}"));
        } else {
            put(&mut s, "vlan_tci", format!("0x{tci:04x}/0x{tmask:04x}"));
        }
    }
    let mac_of = |b: &[u8; 6]| b.iter().fold(0u128, |a, x| (a << 8) | u128::from(*x));
    if w.dl_src != [0; 6] {
        put(&mut s, "dl_src", mac_masked(mac_of(&k.dl_src), mac_of(&w.dl_src)));
    }
    if w.dl_dst != [0; 6] {
        put(&mut s, "dl_dst", mac_masked(mac_of(&k.dl_dst), mac_of(&w.dl_dst)));
    }
    if !skip_type && w.dl_type != 0 {
        put(&mut s, "dl_type", format!("0x{dl_type:04x}"));
    }
    let arp = dl_type == 0x0806 || dl_type == 0x8035;
    if dl_type == 0x86dd {
        let (sv, sm) = (u128::from_be_bytes(k.ipv6_src), u128::from_be_bytes(w.ipv6_src));
        let (dv, dm) = (u128::from_be_bytes(k.ipv6_dst), u128::from_be_bytes(w.ipv6_dst));
        if sm != 0 {
            put(&mut s, "ipv6_src", ipv6_masked(sv, sm));
        }
        if dm != 0 {
            put(&mut s, "ipv6_dst", ipv6_masked(dv, dm));
        }
        if w.ipv6_label != 0 {
            let v = if w.ipv6_label == 0xfffff {
                format!("0x{:05x}", k.ipv6_label)
            } else {
                format!("0x{:05x}/0x{:05x}", k.ipv6_label, w.ipv6_label)
            };
            put(&mut s, "ipv6_label", v);
        }
    } else {
        let (sn, dn) = if arp { ("arp_spa", "arp_tpa") } else { ("nw_src", "nw_dst") };
        if w.nw_src != 0 {
            put(&mut s, sn, ipv4_masked(k.nw_src, w.nw_src));
        }
        if w.nw_dst != 0 {
            put(&mut s, dn, ipv4_masked(k.nw_dst, w.nw_dst));
        }
    }
    if !skip_proto && w.nw_proto != 0 {
        put(&mut s, if arp { "arp_op" } else { "nw_proto" }, k.nw_proto.to_string());
    }
    if arp {
        if w.arp_sha != [0; 6] {
            put(&mut s, "arp_sha", mac_masked(mac_of(&k.arp_sha), mac_of(&w.arp_sha)));
        }
        if w.arp_tha != [0; 6] {
            put(&mut s, "arp_tha", mac_masked(mac_of(&k.arp_tha), mac_of(&w.arp_tha)));
        }
    }
    if w.nw_tos & 0xfc != 0 {
        put(&mut s, "nw_tos", (k.nw_tos & 0xfc).to_string());
    }
    if w.nw_tos & 0x03 != 0 {
        put(&mut s, "nw_ecn", (k.nw_tos & 0x03).to_string());
    }
    if w.nw_ttl != 0 {
        put(&mut s, "nw_ttl", k.nw_ttl.to_string());
    }
    if w.nw_frag & nw_frag::MASK != 0 {
        put(&mut s, "nw_frag", frag_name(k.nw_frag, w.nw_frag).to_string());
    }
    let icmp4 = dl_type == 0x0800 && k.nw_proto == 1;
    let icmp6 = dl_type == 0x86dd && k.nw_proto == 58;
    if icmp4 || icmp6 {
        if w.tp_src != 0 {
            put(&mut s, "icmp_type", u16_masked(k.tp_src, w.tp_src));
        }
        if w.tp_dst != 0 {
            put(&mut s, "icmp_code", u16_masked(k.tp_dst, w.tp_dst));
        }
        if icmp6 {
            let (tv, tm) = (u128::from_be_bytes(k.nd_target), u128::from_be_bytes(w.nd_target));
            if tm != 0 {
                put(&mut s, "nd_target", ipv6_masked(tv, tm));
            }
            if w.arp_sha != [0; 6] {
                put(&mut s, "nd_sll", mac_masked(mac_of(&k.arp_sha), mac_of(&w.arp_sha)));
            }
            if w.arp_tha != [0; 6] {
                put(&mut s, "nd_tll", mac_masked(mac_of(&k.arp_tha), mac_of(&w.arp_tha)));
            }
        }
    } else {
        if w.tp_src != 0 {
            put(&mut s, "tp_src", u16_masked(k.tp_src, w.tp_src));
        }
        if w.tp_dst != 0 {
            put(&mut s, "tp_dst", u16_masked(k.tp_dst, w.tp_dst));
        }
    }
    let ip_any = dl_type == 0x0800 || dl_type == 0x86dd;
    if ip_any && k.nw_proto == 6 && w.tcp_flags & 0x0fff != 0 {
        let v = flags_masked(
            &TCP_NAMES,
            u32::from(k.tcp_flags & 0xfff),
            u32::from(w.tcp_flags & 0xfff),
            0xfff,
        );
        put(&mut s, "tcp_flags", v);
    }
    if s.ends_with(',') {
        s.pop();
    }
    s
}

/// OVS's `format_uint16_masked` (decimal exact, `0x..` masked).
fn u16_masked(v: u16, m: u16) -> String {
    if m == u16::MAX {
        v.to_string()
    } else {
        format!("{v:#x}/{m:#x}").replace("0x0/", "0/").replace("/0x0", "/0")
    }
}

/// OVS's `format_uint32_masked` (`%#x`).
fn u32_masked(v: u32, m: u32) -> String {
    if m == u32::MAX {
        hex(u128::from(v))
    } else {
        format!("{}/{}", hex(u128::from(v)), hex(u128::from(m)))
    }
}

fn u64_masked(v: u64, m: u64) -> String {
    if m == u64::MAX {
        hex(u128::from(v))
    } else {
        format!("{}/{}", hex(u128::from(v)), hex(u128::from(m)))
    }
}

/// Actions, with no match to refer to (a flow that matches no VLAN).
pub fn format_actions(
    actions: &[Action],
    ports: &dyn PortNames,
    names: bool,
    style: ActionStyle,
) -> String {
    format_actions_with_match(actions, &Match::catchall(), ports, names, style)
}

/// Actions of a flow with match `m`. The match matters only for `Normalized`:
/// `mod_vlan_vid` prints a `push_vlan:0x8100` first when the packet may have no tag,
/// as OVS does when it encodes the action for OpenFlow 1.1+.
pub fn format_actions_with_match(
    actions: &[Action],
    m: &Match,
    ports: &dyn PortNames,
    names: bool,
    style: ActionStyle,
) -> String {
    if actions.is_empty() {
        return "drop".into();
    }
    let mut p = Printer { ports, names, style, key: m.key, out: String::new() };
    p.list(actions);
    p.out
}

struct Printer<'a> {
    ports: &'a dyn PortNames,
    names: bool,
    style: ActionStyle,
    key: FlowKey, // tracks whether a VLAN tag is present, as `ofpacts_check`
    out: String,
}

impl Printer<'_> {
    fn list(&mut self, actions: &[Action]) {
        for (i, a) in actions.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.action(a);
        }
    }

    fn port(&self, p: u32) -> String {
        format_port(p, self.ports, self.names)
    }

    fn push(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn action(&mut self, a: &Action) {
        let norm = self.style == ActionStyle::Normalized;
        match a {
            Action::Output { port: p, max_len } => {
                if *p < port::MAX {
                    let s = format!("output:{}", self.port(*p));
                    self.push(&s);
                } else {
                    let s = self.port(*p);
                    self.push(&s);
                    if *p == port::CONTROLLER {
                        let _ = write!(self.out, ":{max_len}");
                    }
                }
            }
            Action::OutputReg(sf) => {
                let s = format!("output:{}", format_subfield(sf));
                self.push(&s);
            }
            Action::GotoTable(t) => {
                let _ = write!(self.out, "goto_table:{t}");
            }
            Action::Resubmit { in_port, table, ct } => {
                if let (Some(p), None, false) = (in_port, table, ct) {
                    let s = format!("resubmit:{}", self.port(*p));
                    self.push(&s);
                } else {
                    let p = in_port.map(|p| self.port(p)).unwrap_or_default();
                    let t = table.map(|t| t.to_string()).unwrap_or_default();
                    let c = if *ct { ",ct" } else { "" };
                    let s = format!("resubmit({p},{t}{c})");
                    self.push(&s);
                }
            }
            Action::SetField { field, value, mask, spelling } => {
                self.set_field(*field, *value, *mask, *spelling, norm);
            }
            Action::Move { src, dst } => {
                let s = format!("move:{}->{}", format_subfield(src), format_subfield(dst));
                self.push(&s);
            }
            Action::PushVlan(t) => {
                self.key.vlan_tci |= VLAN_CFI;
                let _ = write!(self.out, "push_vlan:{t:#x}");
            }
            Action::PopVlan { strip } => {
                self.key.vlan_tci = 0;
                self.push(if *strip && !norm { "strip_vlan" } else { "pop_vlan" });
            }
            Action::ModVlanVid(vid) => {
                if norm {
                    self.push_if_untagged();
                    let _ = write!(self.out, "set_field:{}->vlan_vid", u32::from(*vid) | 0x1000);
                } else {
                    let _ = write!(self.out, "mod_vlan_vid:{vid}");
                }
                self.key.vlan_tci |= VLAN_CFI;
            }
            Action::ModVlanPcp(pcp) => {
                if norm {
                    self.push_if_untagged();
                    let _ = write!(self.out, "set_field:{pcp}->vlan_pcp");
                } else {
                    let _ = write!(self.out, "mod_vlan_pcp:{pcp}");
                }
                self.key.vlan_tci |= VLAN_CFI;
            }
            Action::DecTtl => self.push("dec_ttl"),
            Action::Ct(ct) => self.ct(ct),
            Action::CtClear => self.push("ct_clear"),
            Action::Learn(l) => {
                let s = format_learn(l, self.ports, self.names);
                self.push(&s);
            }
            Action::Note(bytes) => {
                self.push("note:");
                let hexs: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
                let s = hexs.join(".");
                self.push(&s);
            }
            Action::Exit => self.push("exit"),
            Action::Drop => self.push("drop"),
        }
    }

    fn push_if_untagged(&mut self) {
        if self.key.vlan_tci & VLAN_CFI == 0 {
            self.push("push_vlan:0x8100,");
        }
    }

    fn set_field(&mut self, field: FieldId, value: u128, mask: u128, sp: Spelling, norm: bool) {
        let f = field.field();
        if field == FieldId::VlanVid && value & u128::from(VLAN_CFI) != 0 {
            self.key.vlan_tci |= VLAN_CFI;
        }
        // A mod_* action on a match without the field's prerequisites (accepted as OpenFlow
        // 1.0 accepts it) can only be shown as it was written: set_field would not parse.
        let sp_norm = if sp == Spelling::Mod
            && norm
            && !crate::ofproto::parse::prereq_ok(f.prereq, &self.key)
        {
            false
        } else {
            norm
        };
        match (sp, sp_norm) {
            (Spelling::Mod, false) => {
                let name = match field {
                    FieldId::DlSrc => "mod_dl_src",
                    FieldId::DlDst => "mod_dl_dst",
                    FieldId::NwSrc => "mod_nw_src",
                    FieldId::NwDst => "mod_nw_dst",
                    FieldId::NwTos => "mod_nw_tos",
                    FieldId::NwEcn => "mod_nw_ecn",
                    FieldId::NwTtl => "mod_nw_ttl",
                    FieldId::TcpSrc | FieldId::UdpSrc | FieldId::SctpSrc => "mod_tp_src",
                    FieldId::TcpDst | FieldId::UdpDst | FieldId::SctpDst => "mod_tp_dst",
                    _ => return self.set_field(field, value, mask, Spelling::SetField, norm),
                };
                let v = match f.fmt {
                    Fmt::Mac => mac(value),
                    Fmt::Ipv4 => ipv4(value as u32),
                    _ => value.to_string(),
                };
                let _ = write!(self.out, "{name}:{v}");
            }
            (Spelling::Mod, true) if field == FieldId::NwTtl => {
                let _ = write!(self.out, "mod_nw_ttl:{value}");
            }
            (Spelling::Mod, true) if field == FieldId::NwTos => {
                let _ = write!(self.out, "set_field:{}->ip_dscp", value >> 2);
            }
            (Spelling::Load, false) => self.load(field, value, mask),
            (Spelling::SetTunnel, false) => {
                let n = if value > u128::from(u32::MAX) { "set_tunnel64" } else { "set_tunnel" };
                let _ = write!(self.out, "{n}:{}", hex(value));
            }
            _ => {
                let v = format_value(field, value, mask, self.ports, self.names);
                let _ = write!(self.out, "set_field:{v}->{}", mf_name(field));
            }
        }
    }

    /// `load:V->F[a..b]`, one per contiguous run of mask bits (as OVS splits them).
    fn load(&mut self, field: FieldId, value: u128, mask: u128) {
        let f = field.field();
        let mut m = mask & f.all_ones();
        if field == FieldId::NwTos && m == 0xfc {
            m = 0xff; // written as NXM_OF_IP_TOS[]; OVS keeps the ECN bits
        }
        if m == 0 {
            let _ = write!(self.out, "load:0->{}[]", f.nxm);
            return;
        }
        let mut first = true;
        while m != 0 {
            let ofs = m.trailing_zeros();
            let n = (m >> ofs).trailing_ones();
            let run = if n >= 128 { u128::MAX } else { ((1u128 << n) - 1) << ofs };
            let sf = Subfield { field, ofs: ofs as u8, n_bits: n as u8 };
            if !first {
                self.out.push(',');
            }
            first = false;
            let _ =
                write!(self.out, "load:{}->{}", hex((value & run) >> ofs), format_subfield(&sf));
            m &= !run;
        }
    }

    fn ct(&mut self, ct: &super::action::CtAction) {
        let mut parts: Vec<String> = Vec::new();
        if ct.commit {
            parts.push("commit".into());
        }
        if ct.force {
            parts.push("force".into());
        }
        if let Some(t) = ct.table {
            parts.push(format!("table={t}"));
        }
        match ct.zone {
            CtZone::Field(sf) => parts.push(format!("zone={}", format_subfield(&sf))),
            CtZone::Imm(0) => {}
            CtZone::Imm(z) => parts.push(format!("zone={z}")),
        }
        if let Some(n) = &ct.nat {
            parts.push(format_nat(n));
        }
        if !ct.exec.is_empty() {
            let mut sub = Printer {
                ports: self.ports,
                names: self.names,
                style: self.style,
                key: self.key,
                out: String::new(),
            };
            sub.list(&ct.exec);
            parts.push(format!("exec({})", sub.out));
        }
        match ct.alg {
            None | Some(0) => {}
            Some(21) => parts.push("alg=ftp".into()),
            Some(69) => parts.push("alg=tftp".into()),
            Some(p) => parts.push(format!("alg={p}")),
        }
        let _ = write!(self.out, "ct({})", parts.join(","));
    }
}

fn format_nat(n: &NatSpec) -> String {
    let mut s = String::from("nat");
    let kind = match n.kind {
        NatKind::Any => return s,
        NatKind::Src => "src",
        NatKind::Dst => "dst",
    };
    s.push('(');
    s.push_str(kind);
    if let Some((lo, hi)) = n.addrs {
        s.push('=');
        let bracket = n.ports.0 != 0;
        let ip = |a: IpAddr| match a {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) if bracket => format!("[{}]", ipv6(u128::from(a))),
            IpAddr::V6(a) => ipv6(u128::from(a)),
        };
        s.push_str(&ip(lo));
        if hi != lo {
            s.push('-');
            s.push_str(&ip(hi));
        }
        if n.ports.0 != 0 {
            let _ = write!(s, ":{}", n.ports.0);
            if n.ports.1 != 0 && n.ports.1 != n.ports.0 {
                let _ = write!(s, "-{}", n.ports.1);
            }
        }
        if n.persistent {
            s.push_str(",persistent");
        }
        if n.hash {
            s.push_str(",hash");
        }
        if n.random {
            s.push_str(",random");
        }
    }
    s.push(')');
    s
}

/// `learn(...)` as OVS's `learn_format`.
pub fn format_learn(l: &LearnSpec, ports: &dyn PortNames, names: bool) -> String {
    let mut s = format!("learn(table={}", l.table);
    if l.idle_timeout != 0 {
        let _ = write!(s, ",idle_timeout={}", l.idle_timeout);
    }
    if l.hard_timeout != 0 {
        let _ = write!(s, ",hard_timeout={}", l.hard_timeout);
    }
    if l.fin_idle_timeout != 0 {
        let _ = write!(s, ",fin_idle_timeout={}", l.fin_idle_timeout);
    }
    if l.fin_hard_timeout != 0 {
        let _ = write!(s, ",fin_hard_timeout={}", l.fin_hard_timeout);
    }
    if l.priority != 32768 {
        let _ = write!(s, ",priority={}", l.priority);
    }
    if l.send_flow_rem {
        s.push_str(",send_flow_rem");
    }
    if l.delete_learned {
        s.push_str(",delete_learned");
    }
    if l.cookie != 0 {
        let _ = write!(s, ",cookie={:#x}", l.cookie);
    }
    for p in &l.parts {
        s.push(',');
        match p {
            LearnPart::MatchImm { dst, value } => {
                let f = dst.field.field();
                if dst.ofs == 0 && dst.n_bits == f.width {
                    let v = format_value(dst.field, *value, f.all_ones(), ports, names);
                    let _ = write!(s, "{}={v}", mf_name(dst.field));
                } else {
                    let _ = write!(s, "{}={}", format_subfield(dst), hex(*value));
                }
            }
            LearnPart::MatchField { dst, src } => {
                s.push_str(&format_subfield(dst));
                if src.field != dst.field || src.ofs != dst.ofs {
                    let _ = write!(s, "={}", format_subfield(src));
                }
            }
            LearnPart::LoadImm { value, dst } => {
                let _ = write!(s, "load:{}->{}", hex(*value), format_subfield(dst));
            }
            LearnPart::LoadField { src, dst } => {
                let _ = write!(s, "load:{}->{}", format_subfield(src), format_subfield(dst));
            }
            LearnPart::OutputField { src } => {
                let _ = write!(s, "output:{}", format_subfield(src));
            }
        }
    }
    s.push(')');
    s
}

/// A flow-mod as add-flow text that parses back to the same flow: the non-default
/// `cookie`, `table`, timeouts, `importance` and flags, the match, then `actions=`.
pub fn format_flow(fm: &FlowMod, ports: &dyn PortNames, names: bool, st: ActionStyle) -> String {
    let mut s = String::new();
    let cmd = match fm.command {
        FlowModCommand::Add => "",
        FlowModCommand::Modify => "modify ",
        FlowModCommand::ModifyStrict => "modify_strict ",
        FlowModCommand::Delete => "delete ",
        FlowModCommand::DeleteStrict => "delete_strict ",
    };
    s.push_str(cmd);
    let mut items: Vec<String> = Vec::new();
    if fm.cookie_mask != 0 {
        items.push(format!("cookie={:#x}/{:#x}", fm.cookie, fm.cookie_mask));
    } else if fm.cookie != 0 {
        items.push(format!("cookie={:#x}", fm.cookie));
    }
    if let Some(t) = fm.table {
        items.push(format!("table={t}"));
    }
    if fm.idle_timeout != 0 {
        items.push(format!("idle_timeout={}", fm.idle_timeout));
    }
    if fm.hard_timeout != 0 {
        items.push(format!("hard_timeout={}", fm.hard_timeout));
    }
    if fm.importance != 0 {
        items.push(format!("importance={}", fm.importance));
    }
    let flags = [
        (fm.flags.send_flow_rem, "send_flow_rem"),
        (fm.flags.check_overlap, "check_overlap"),
        (fm.flags.reset_counts, "reset_counts"),
        (fm.flags.no_packet_counts, "no_packet_counts"),
        (fm.flags.no_byte_counts, "no_byte_counts"),
    ];
    items.extend(flags.iter().filter(|f| f.0).map(|f| f.1.to_string()));
    if let Some(p) = fm.out_port {
        items.push(format!("out_port={}", format_port(p, ports, names)));
    }
    let m = format_match(&fm.mat, fm.priority, ports, names);
    if !m.is_empty() {
        items.push(m);
    }
    s.push_str(&items.join(","));
    let is_delete = matches!(fm.command, FlowModCommand::Delete | FlowModCommand::DeleteStrict);
    if !is_delete {
        if !items.is_empty() {
            s.push(' ');
        }
        s.push_str("actions=");
        let acts = format_actions_with_match(&fm.actions, &fm.mat, ports, names, st);
        s.push_str(&acts);
    }
    s
}

/// The ovs-ofctl shorthand for an Ethernet type and (when matched) IP protocol: `tcp`,
/// `udp6`, `arp`, ...; None when there is none.
pub fn proto_shorthand(dl_type: u16, proto: Option<u8>) -> Option<&'static str> {
    Some(match (dl_type, proto) {
        (0x0800, Some(1)) => "icmp",
        (0x0800, Some(6)) => "tcp",
        (0x0800, Some(17)) => "udp",
        (0x0800, Some(132)) => "sctp",
        (0x0800, _) => "ip",
        (0x86dd, Some(58)) => "icmp6",
        (0x86dd, Some(6)) => "tcp6",
        (0x86dd, Some(17)) => "udp6",
        (0x86dd, Some(132)) => "sctp6",
        (0x86dd, _) => "ipv6",
        (0x0806, _) => "arp",
        (0x8035, _) => "rarp",
        (0x8847, _) => "mpls",
        (0x8848, _) => "mplsm",
        _ => return None,
    })
}

/// True for the shorthands that say only the Ethernet type (`ip`, `arp`, ...), after which
/// `nw_proto` still prints.
pub fn shorthand_is_l3(word: &str) -> bool {
    matches!(word, "ip" | "ipv6" | "arp" | "rarp" | "mpls" | "mplsm")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ofproto::parse::{parse_flow, NoNames};

    fn norm(flow: &str) -> String {
        let fm = parse_flow(flow, FlowModCommand::Add, &NoNames)
            .unwrap_or_else(|e| panic!("{flow}: {e}"));
        let m = format_match(&fm.mat, fm.priority, &NoNames, false);
        let a = format_actions_with_match(
            &fm.actions,
            &fm.mat,
            &NoNames,
            false,
            ActionStyle::Normalized,
        );
        if m.is_empty() {
            format!("actions={a}")
        } else {
            format!("{m} actions={a}")
        }
    }

    #[test]
    fn flows_the_fuzzer_found_print_and_parse_back() {
        // Found by the ofctl fuzz target: OpenFlow 1.0 accepts mod_nw_tos without an IP
        // match, and its set_field form would not parse back.
        for (flow, want) in [
            ("table=212,reg6=0x33,actions=mod_nw_tos:4", "mod_nw_tos:4"),
            ("reg1=1,actions=mod_nw_src:1.2.3.4", "mod_nw_src:1.2.3.4"),
            ("ip,actions=mod_nw_tos:4", "set_field:1->ip_dscp"),
            // Also found by the fuzzer: a field whose NXM name is its only printed form.
            (
                "table=10,actions=learn(table=20,priority=1,recirc_id),output:1",
                "learn(table=20,priority=1,NXM_NX_RECIRC_ID[]),output:1",
            ),
        ] {
            let printed = norm(flow);
            assert!(printed.ends_with(want), "{flow}: {printed}");
            assert_eq!(norm(&printed), printed, "{flow}");
        }
    }

    #[test]
    fn oracle_dump_flows() {
        // From tools/ovs-oracle-examples/*/out/dump-flows.txt (OVS 3.1, OpenFlow 1.5).
        assert_eq!(
            norm("in_port=1,actions=mod_dl_src:02:00:00:00:00:aa,output:2"),
            "in_port=1 actions=set_field:02:00:00:00:00:aa->eth_src,output:2"
        );
        assert_eq!(
            norm(
                "table=0,priority=10,ip,in_port=1,\
                  actions=ct(commit,zone=1,nat(src=172.24.4.10),table=1)"
            ),
            "priority=10,ip,in_port=1 actions=ct(commit,table=1,zone=1,nat(src=172.24.4.10))"
        );
        assert_eq!(
            norm("table=2,priority=10,ct_state=+trk+est,ip,actions=mod_dl_src:fa:16:3e:00:00:02"),
            "priority=10,ct_state=+est+trk,ip actions=set_field:fa:16:3e:00:00:02->eth_src"
        );
        assert_eq!(norm("priority=0,actions=drop"), "priority=0 actions=drop");
        assert_eq!(
            norm("in_port=2,tun_id=0x42,actions=output:1"),
            "tun_id=0x42,in_port=2 actions=output:1"
        );
        assert_eq!(norm("actions=NORMAL"), "actions=NORMAL");
    }

    /// (flow as written, what `ovs-ofctl -O OpenFlow15 parse-flow` 3.1.0 prints for it).
    const OVS_NORMALIZED: &[(&str, &str)] = &[
        (
            "in_port=1,actions=mod_dl_src:02:00:00:00:00:aa,output:2",
            "in_port=1 actions=set_field:02:00:00:00:00:aa->eth_src,output:2",
        ),
        (
            "icmp6,dl_vlan=1,icmp_type=134,actions=drop",
            "icmp6,dl_vlan=1,icmp_type=134 actions=drop",
        ),
        (
            "icmp6,in_port=3,icmp_type=136,nd_target=fe80::f816:3eff:fe76:4775,actions=NORMAL",
            "icmp6,in_port=3,icmp_type=136,nd_target=fe80::f816:3eff:fe76:4775 actions=NORMAL",
        ),
        ("tcp,tp_src=80,actions=drop", "tcp,tp_src=80 actions=drop"),
        ("icmp,tp_src=3,tp_dst=1,actions=drop", "icmp,icmp_type=3,icmp_code=1 actions=drop"),
        ("udp6,tp_dst=0x1000/0xf000,actions=drop", "udp6,tp_dst=0x1000/0xf000 actions=drop"),
        ("ip,nw_frag=later,actions=drop", "ip,nw_frag=later actions=drop"),
        ("ip,nw_frag=not_later,actions=drop", "ip,nw_frag=not_later actions=drop"),
        ("ip,nw_frag=first,actions=drop", "ip,nw_frag=first actions=drop"),
        ("ip,nw_frag=yes,actions=drop", "ip,nw_frag=yes actions=drop"),
        ("ip,nw_frag=no,actions=drop", "ip,nw_frag=no actions=drop"),
        ("ip,nw_tos=5,actions=drop", "ip,nw_tos=4 actions=drop"),
        ("ip,nw_tos=8,ip_dscp=3,actions=drop", "ip,nw_tos=12 actions=drop"),
        ("ip,nw_ecn=1,nw_ttl=4,actions=drop", "ip,nw_ecn=1,nw_ttl=4 actions=drop"),
        ("tcp,tcp_flags=+syn-ack,actions=drop", "tcp,tcp_flags=+syn-ack actions=drop"),
        ("tcp,tcp_flags=0x12/0x12,actions=drop", "tcp,tcp_flags=+syn+ack actions=drop"),
        ("ct_state=+trk+est-new,actions=drop", "ct_state=-new+est+trk actions=drop"),
        (
            "ct_state=0x22/0x22,ct_zone=5,ct_mark=0x1/0xff,actions=drop",
            "ct_state=+est+trk,ct_zone=5,ct_mark=0x1/0xff actions=drop",
        ),
        (
            "table=10,priority=1,actions=learn(table=20,hard_timeout=300,priority=1,cookie=0x42,\
            NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:0->NXM_OF_VLAN_TCI[],\
            load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],output:OXM_OF_IN_PORT[]),output:1",
            "priority=1 actions=learn(table=20,hard_timeout=300,priority=1,cookie=0x42,\
            NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:0->NXM_OF_VLAN_TCI[],\
            load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],output:OXM_OF_IN_PORT[]),output:1",
        ),
        (
            "actions=learn(NXM_OF_VLAN_TCI[0..11],dl_type=0x800,idle_timeout=10,\
            fin_idle_timeout=5,fin_hard_timeout=6,send_flow_rem,delete_learned,table=3,\
            nw_dst=10.0.0.1,load:0x5->NXM_NX_REG0[0..3])",
            "actions=learn(table=3,idle_timeout=10,fin_idle_timeout=5,fin_hard_timeout=6,\
            send_flow_rem,delete_learned,NXM_OF_VLAN_TCI[0..11],eth_type=0x800,ip_dst=10.0.0.1,\
            load:0x5->NXM_NX_REG0[0..3])",
        ),
        (
            "ip,actions=ct(zone=NXM_NX_REG0[0..15],nat(dst=10.0.0.1:80,hash,persistent),force,\
            commit)",
            "ip actions=ct(commit,force,zone=NXM_NX_REG0[0..15],nat(dst=10.0.0.1:80,persistent,\
            hash))",
        ),
        (
            "ipv6,actions=ct(commit,nat(src=fe80::1-fe80::5))",
            "ipv6 actions=ct(commit,nat(src=fe80::1-fe80::5))",
        ),
        (
            "ipv6,actions=ct(commit,nat(src=[fe80::1]-[fe80::5]:10-20))",
            "ipv6 actions=ct(commit,nat(src=[fe80::1]-[fe80::5]:10-20))",
        ),
        ("ip,actions=ct(table=1,zone=1,nat)", "ip actions=ct(table=1,zone=1,nat)"),
        ("ip,actions=ct()", "ip actions=ct()"),
        ("dl_vlan=5,dl_vlan_pcp=3,actions=drop", "dl_vlan=5,dl_vlan_pcp=3 actions=drop"),
        ("vlan_tci=0x1064/0x1fff,actions=drop", "dl_vlan=100 actions=drop"),
        ("vlan_tci=0,actions=drop", "vlan_tci=0x0000/0x1fff actions=drop"),
        ("vlan_vid=4097,actions=drop", "dl_vlan=1 actions=drop"),
        ("vlan_vid=0x1000/0x1000,actions=drop", "vlan_tci=0x1000/0x1000 actions=drop"),
        ("vlan_pcp=3,actions=drop", "dl_vlan_pcp=3 actions=drop"),
        ("dl_vlan=0xffff,actions=drop", "vlan_tci=0x0000/0x1fff actions=drop"),
        (
            "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,\
            dl_src=aa:bb:cc:dd:ee:ff/ff:ff:ff:00:00:00,actions=drop",
            "dl_src=aa:bb:cc:00:00:00/ff:ff:ff:00:00:00,\
            dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=drop",
        ),
        (
            "ip,nw_src=10.0.0.0/24,nw_dst=10.0.0.0/255.255.0.255,actions=drop",
            "ip,nw_src=10.0.0.0/24,nw_dst=10.0.0.0/255.255.0.255 actions=drop",
        ),
        (
            "arp,nw_src=10.0.0.1,arp_op=1,arp_sha=aa:bb:cc:dd:ee:ff,actions=drop",
            "arp,arp_spa=10.0.0.1,arp_op=1,arp_sha=aa:bb:cc:dd:ee:ff actions=drop",
        ),
        (
            "ipv6,ipv6_src=fe80::/10,ipv6_dst=::1,ipv6_label=0x12345,actions=drop",
            "ipv6,ipv6_src=fe80::/10,ipv6_dst=::1,ipv6_label=0x12345 actions=drop",
        ),
        (
            "tun_id=0x42/0xff,tun_src=1.1.1.1,tun_dst=2.2.2.0/24,metadata=0x5/0xff,\
            reg3=0x5/0xff,reg7=9,actions=drop",
            "reg3=0x5/0xff,reg7=0x9,tun_id=0x42/0xff,tun_src=1.1.1.1,tun_dst=2.2.2.0/24,\
            metadata=0x5/0xff actions=drop",
        ),
        (
            "icmp6,icmpv6_type=135,nd_target=fe80::1,nd_sll=aa:bb:cc:dd:ee:ff,actions=drop",
            "icmp6,icmp_type=135,nd_target=fe80::1,nd_sll=aa:bb:cc:dd:ee:ff actions=drop",
        ),
        (
            "icmp6,icmpv6_type=136,nd_tll=aa:bb:cc:dd:ee:ff,actions=drop",
            "icmp6,icmp_type=136,nd_tll=aa:bb:cc:dd:ee:ff actions=drop",
        ),
        ("rarp,actions=drop", "rarp actions=drop"),
        ("sctp,tp_src=5,actions=drop", "sctp,tp_src=5 actions=drop"),
        ("dl_type=0x0800,nw_proto=6,actions=drop", "tcp actions=drop"),
        ("dl_type=0x1234,actions=drop", "dl_type=0x1234 actions=drop"),
        ("tcp6,tp_dst=22,actions=drop", "tcp6,tp_dst=22 actions=drop"),
        ("udp,udp_src=53,actions=drop", "udp,tp_src=53 actions=drop"),
        ("icmp,icmp_type=8,actions=drop", "icmp,icmp_type=8 actions=drop"),
        ("udp,actions=ct(alg=tftp)", "udp actions=ct(alg=tftp)"),
        (
            "ip,actions=ct(commit,exec(set_field:0x1/0x1->ct_mark))",
            "ip actions=ct(commit,exec(set_field:0x1/0x1->ct_mark))",
        ),
        (
            "tcp,actions=ct(commit,zone=1,nat(src=10.1.1.240-10.1.1.254:1024-65535,random),\
            exec(set_field:1->ct_mark,load:2->NXM_NX_CT_MARK[]),alg=ftp,table=3)",
            "tcp actions=ct(commit,table=3,zone=1,nat(src=10.1.1.240-10.1.1.254:1024-65535,\
            random),exec(set_field:0x1->ct_mark,set_field:0x2->ct_mark),alg=ftp)",
        ),
        ("in_port=LOCAL,actions=output:in_port", "in_port=LOCAL actions=IN_PORT"),
        ("priority=70,idle_timeout=5,actions=drop", "priority=70 actions=drop"),
        ("ip,actions=set_field:8->nw_tos", "ip actions=set_field:8->nw_tos"),
        ("ip,actions=set_field:3->ip_dscp", "ip actions=set_field:3->ip_dscp"),
        ("ip,actions=load:0x20->NXM_OF_IP_TOS[]", "ip actions=set_field:32->nw_tos"),
        ("ip,actions=set_field:1.2.3.4->nw_src", "ip actions=set_field:1.2.3.4->ip_src"),
        (
            "arp,dl_vlan=1,arp_tpa=10.0.0.4,actions=load:0x2->NXM_OF_ARP_OP[],\
            move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],\
            load:0xfa163e96e2a4->NXM_NX_ARP_SHA[],load:0xa000004->NXM_OF_ARP_SPA[],\
            move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:fa:16:3e:96:e2:a4,IN_PORT",
            "arp,dl_vlan=1,arp_tpa=10.0.0.4 actions=set_field:2->arp_op,\
            move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],\
            set_field:fa:16:3e:96:e2:a4->arp_sha,set_field:10.0.0.4->arp_spa,\
            move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:fa:16:3e:96:e2:a4->eth_src,\
            IN_PORT",
        ),
        (
            "dl_vlan=1,actions=strip_vlan,load:0x42->NXM_NX_TUN_ID[],output:2,output:3",
            "dl_vlan=1 actions=pop_vlan,set_field:0x42->tun_id,output:2,output:3",
        ),
        (
            "actions=mod_vlan_vid:5,NORMAL",
            "actions=push_vlan:0x8100,set_field:4101->vlan_vid,NORMAL",
        ),
        (
            "dl_vlan=4,actions=mod_vlan_vid:5,mod_vlan_pcp:2",
            "dl_vlan=4 actions=set_field:4101->vlan_vid,set_field:2->vlan_pcp",
        ),
        (
            "actions=mod_vlan_vid:5,mod_vlan_pcp:2",
            "actions=push_vlan:0x8100,set_field:4101->vlan_vid,set_field:2->vlan_pcp",
        ),
        (
            "vlan_tci=0x0000/0x1fff,actions=mod_vlan_vid:2,NORMAL",
            "vlan_tci=0x0000/0x1fff actions=push_vlan:0x8100,set_field:4098->vlan_vid,NORMAL",
        ),
        (
            "actions=push_vlan:0x8100,set_field:4097->vlan_vid,goto_table:9",
            "actions=push_vlan:0x8100,set_field:4097->vlan_vid,goto_table:9",
        ),
        ("tcp,actions=set_field:80->tp_src", "tcp actions=set_field:80->tcp_src"),
        ("udp,actions=mod_tp_dst:53", "udp actions=set_field:53->udp_dst"),
        ("tcp,actions=mod_tp_src:53", "tcp actions=set_field:53->tcp_src"),
        (
            "ip,actions=dec_ttl,mod_nw_ttl:5,mod_nw_tos:8,mod_nw_ecn:1,mod_nw_dst:9.8.7.6",
            "ip actions=dec_ttl,mod_nw_ttl:5,set_field:2->ip_dscp,set_field:1->nw_ecn,\
            set_field:9.8.7.6->ip_dst",
        ),
        (
            "actions=set_field:0x1->metadata,set_field:5->reg1,\
            set_field:aa:bb:cc:00:00:00/ff:ff:ff:00:00:00->eth_dst",
            "actions=set_field:0x1->metadata,set_field:0x5->reg1,\
            set_field:aa:bb:cc:00:00:00/ff:ff:ff:00:00:00->eth_dst",
        ),
        (
            "actions=load:0x3->NXM_NX_REG1[1..2],load:0xffff->NXM_NX_REG2[16..31],\
            load:1->NXM_NX_REG3[5]",
            "actions=set_field:0x6/0x6->reg1,set_field:0xffff0000/0xffff0000->reg2,\
            set_field:0x20/0x20->reg3",
        ),
        (
            "actions=move:NXM_NX_REG0[0..7]->NXM_NX_REG1[8..15],\
            move:NXM_OF_IN_PORT[]->NXM_NX_REG2[0..15]",
            "actions=move:NXM_NX_REG0[0..7]->NXM_NX_REG1[8..15],\
            move:NXM_OF_IN_PORT[]->NXM_NX_REG2[0..15]",
        ),
        (
            "actions=load:5->OXM_OF_METADATA[],load:5->NXM_OF_IN_PORT[]",
            "actions=set_field:0x5->metadata,set_field:5->in_port",
        ),
        ("actions=", "actions=drop"),
        ("actions=note:", "actions=note:00.00.00.00.00.00"),
        ("actions=note:1234567890abcdef", "actions=note:12.34.56.78.90.ab.cd.ef.00.00.00.00.00.00"),
        (
            "actions=output:NXM_NX_REG0[0..15],CONTROLLER:100,controller,LOCAL,IN_PORT,FLOOD,\
            ALL,exit,ct_clear,resubmit:3,resubmit(3,4),goto_table:5",
            "actions=output:NXM_NX_REG0[0..15],CONTROLLER:100,CONTROLLER:65535,LOCAL,IN_PORT,\
            FLOOD,ALL,exit,ct_clear,resubmit:3,resubmit(3,4),goto_table:5",
        ),
        (
            "ct_state=+trk+est,ip,actions=resubmit(,4,ct)",
            "ct_state=+est+trk,ip actions=resubmit(,4,ct)",
        ),
        (
            "actions=learn(dl_type=0x800,NXM_OF_VLAN_TCI[0..11]=5,nw_dst=10.0.0.1,\
            load:5->NXM_NX_REG0[0..7],output:NXM_NX_REG1[0..15],in_port=99,\
            NXM_NX_REG1[0..7]=NXM_NX_REG2[8..15],priority=32768,cookie=0x0)",
            "actions=learn(table=1,eth_type=0x800,NXM_OF_VLAN_TCI[0..11]=0x5,ip_dst=10.0.0.1,\
            load:0x5->NXM_NX_REG0[0..7],output:NXM_NX_REG1[0..15],in_port=99,\
            NXM_NX_REG1[0..7]=NXM_NX_REG2[8..15])",
        ),
        (
            "tcp,tp_src=0x10/0xfff0,tcp_dst=80,actions=drop",
            "tcp,tp_src=0x10/0xfff0,tp_dst=80 actions=drop",
        ),
        ("udp,tp_src=0x10/0xffff,actions=drop", "udp,tp_src=16 actions=drop"),
        ("tcp,tcp_flags=-syn,actions=drop", "tcp,tcp_flags=-syn actions=drop"),
        (
            "tcp,tcp_flags=0xfff,actions=drop",
            "tcp,tcp_flags=fin|syn|rst|psh|ack|urg|ece|cwr|ns|[200]|[400]|[800] actions=drop",
        ),
        ("ct_state=0xff,actions=drop", "ct_state=new|est|rel|rpl|inv|trk|snat|dnat actions=drop"),
        ("ct_state=0/0x20,actions=drop", "ct_state=-trk actions=drop"),
        (
            "ipv6,ipv6_src=::1.2.3.4,ipv6_dst=::ffff:1.2.3.4,actions=drop",
            "ipv6,ipv6_src=::1.2.3.4,ipv6_dst=::ffff:1.2.3.4 actions=drop",
        ),
        (
            "ipv6,ipv6_src=2001:db8::/ffff:0:ffff::,actions=drop",
            "ipv6,ipv6_src=2001::/ffff:0:ffff:: actions=drop",
        ),
        (
            "actions=set_tunnel:0x5,set_tunnel64:0x100000000",
            "actions=set_field:0x5->tun_id,set_field:0x100000000->tun_id",
        ),
        (
            "ip,actions=mod_nw_src:1.2.3.4,mod_nw_tos:252",
            "ip actions=set_field:1.2.3.4->ip_src,set_field:63->ip_dscp",
        ),
        (
            "actions=set_field:0x42->tun_id,set_field:1.2.3.4->tun_dst",
            "actions=set_field:0x42->tun_id,set_field:1.2.3.4->tun_dst",
        ),
        (
            "ip,actions=ct(commit,nat(src=10.0.0.1-10.0.0.1))",
            "ip actions=ct(commit,nat(src=10.0.0.1))",
        ),
        (
            "ip,actions=ct(commit,nat(dst=10.0.0.1:80-80))",
            "ip actions=ct(commit,nat(dst=10.0.0.1:80))",
        ),
        ("recirc_id=5,actions=drop", "recirc_id=0x5 actions=drop"),
        ("ip,nw_src=10.0.0.0/0,actions=drop", "ip actions=drop"),
        (
            "arp,arp_tha=00:00:00:00:00:01/00:00:00:00:00:ff,arp_op=2,actions=drop",
            "arp,arp_op=2,arp_tha=00:00:00:00:00:01/00:00:00:00:00:ff actions=drop",
        ),
        ("in_port=65534,actions=drop", "in_port=LOCAL actions=drop"),
        (
            "icmp,icmp_type=3,icmp_code=1,nw_tos=4,actions=drop",
            "icmp,nw_tos=4,icmp_type=3,icmp_code=1 actions=drop",
        ),
        (
            "priority=32768,cookie=0x1,metadata=0,reg0=0,tun_id=0,actions=drop",
            "reg0=0,tun_id=0,metadata=0 actions=drop",
        ),
        ("dl_vlan_pcp=7,actions=drop", "dl_vlan_pcp=7 actions=drop"),
        ("vlan_tci=0x3000/0xf000,actions=drop", "dl_vlan_pcp=1 actions=drop"),
        ("vlan_tci=0x0fff/0x0fff,actions=drop", "vlan_tci=0x0fff/0x0fff actions=drop"),
        ("vlan_tci=0x1064,actions=drop", "dl_vlan=100,dl_vlan_pcp=0 actions=drop"),
    ];

    #[test]
    fn matches_ovs_normalized_printing() {
        for (flow, ovs) in OVS_NORMALIZED {
            assert_eq!(norm(flow), *ovs, "input: {flow}");
        }
    }

    fn installed(flow: &str) -> String {
        let fm = parse_flow(flow, FlowModCommand::Add, &NoNames).unwrap();
        format_actions_with_match(&fm.actions, &fm.mat, &NoNames, false, ActionStyle::Installed)
    }

    #[test]
    fn installed_style_keeps_spelling() {
        let cases = [
            (
                "actions=mod_dl_src:fa:16:3f:73:c3:04,resubmit(,2)",
                "mod_dl_src:fa:16:3f:73:c3:04,resubmit(,2)",
            ),
            ("dl_vlan=1,actions=strip_vlan,load:0x42->NXM_NX_TUN_ID[],output:2",
             "strip_vlan,load:0x42->NXM_NX_TUN_ID[],output:2"),
            (
                "actions=mod_vlan_vid:1,mod_vlan_pcp:2,NORMAL",
                "mod_vlan_vid:1,mod_vlan_pcp:2,NORMAL",
            ),
            (
                "actions=set_tunnel:0x5,set_tunnel64:0x100000000",
                "set_tunnel:0x5,set_tunnel64:0x100000000",
            ),
            ("ip,actions=mod_nw_tos:8,mod_nw_ecn:1,mod_nw_ttl:9,mod_nw_src:1.2.3.4",
             "mod_nw_tos:8,mod_nw_ecn:1,mod_nw_ttl:9,mod_nw_src:1.2.3.4"),
            ("udp,actions=mod_tp_src:53,mod_tp_dst:54", "mod_tp_src:53,mod_tp_dst:54"),
            ("actions=load:1->NXM_NX_REG0[4..7],load:0->NXM_OF_VLAN_TCI[],load:1->NXM_NX_REG3[5]",
             "load:0x1->NXM_NX_REG0[4..7],load:0->NXM_OF_VLAN_TCI[],load:0x1->NXM_NX_REG3[5]"),
            ("ip,actions=load:0x20->NXM_OF_IP_TOS[]", "load:0x20->NXM_OF_IP_TOS[]"),
            ("actions=set_field:0x42->tun_id,pop_vlan", "set_field:0x42->tun_id,pop_vlan"),
            ("actions=", "drop"),
        ];
        for (flow, want) in cases {
            assert_eq!(installed(flow), want, "input: {flow}");
        }
    }

    /// Every flow of the OVS comparison and the Neutron set: printing and parsing back gives
    /// the same flow in both styles.
    #[test]
    fn round_trip() {
        let flows = OVS_NORMALIZED
            .iter()
            .map(|(f, _)| *f)
            .chain(crate::ofproto::parse::NEUTRON_DVR_FLOWS.iter().copied());
        let mut n = 0;
        for flow in flows {
            let a = parse_flow(flow, FlowModCommand::Add, &NoNames).unwrap();
            let text = format_flow(&a, &NoNames, false, ActionStyle::Installed);
            let b = parse_flow(&text, FlowModCommand::Add, &NoNames)
                .unwrap_or_else(|e| panic!("{flow}\n -> {text}\n: {e}"));
            // `actions=drop` and `actions=` are the same flow and print alike.
            let plain = |v: &[Action]| -> Vec<Action> {
                v.iter().filter(|x| **x != Action::Drop).cloned().collect()
            };
            assert_eq!(plain(&a.actions), plain(&b.actions), "{flow}\n -> {text}");
            assert_eq!(
                (a.table, a.priority, a.cookie, a.idle_timeout, a.hard_timeout, a.flags),
                (b.table, b.priority, b.cookie, b.idle_timeout, b.hard_timeout, b.flags),
                "{flow}"
            );
            assert_eq!(format_flow(&b, &NoNames, false, ActionStyle::Installed), text, "{flow}");
            let m1 = format_match(&a.mat, a.priority, &NoNames, false);
            assert_eq!(format_match(&b.mat, b.priority, &NoNames, false), m1, "{flow}");
            let ntext = format_flow(&a, &NoNames, false, ActionStyle::Normalized);
            let c = parse_flow(&ntext, FlowModCommand::Add, &NoNames)
                .unwrap_or_else(|e| panic!("{flow}\n -> {ntext}\n: {e}"));
            assert_eq!(format_flow(&c, &NoNames, false, ActionStyle::Normalized), ntext, "{flow}");
            n += 1;
        }
        assert!(n > 180, "{n}");
    }

    struct Names;
    impl PortNames for Names {
        fn port_no(&self, name: &str) -> Option<u32> {
            match name {
                "qvo28e6e267-f3" => Some(3),
                "patch tun" => Some(2),
                _ => None,
            }
        }
        fn port_name(&self, no: u32) -> Option<String> {
            match no {
                3 => Some("qvo28e6e267-f3".into()),
                2 => Some("patch tun".into()),
                _ => None,
            }
        }
    }

    #[test]
    fn port_names_print_and_parse() {
        let flow = "in_port=qvo28e6e267-f3,actions=output:\"patch tun\",resubmit(3,1),LOCAL,7";
        let fm = parse_flow(flow, FlowModCommand::Add, &Names).unwrap();
        // OVS quotes every name that is not a letter followed by letters and digits.
        assert_eq!(format_match(&fm.mat, fm.priority, &Names, true), "in_port=\"qvo28e6e267-f3\"");
        assert_eq!(format_match(&fm.mat, fm.priority, &Names, false), "in_port=3");
        let a = format_actions(&fm.actions, &Names, true, ActionStyle::Installed);
        assert_eq!(a, "output:\"patch tun\",resubmit(\"qvo28e6e267-f3\",1),LOCAL,output:7");
        let a = format_actions(&fm.actions, &Names, false, ActionStyle::Installed);
        assert_eq!(a, "output:2,resubmit(3,1),LOCAL,output:7");
    }

    #[test]
    fn values_and_masks() {
        assert_eq!(hex(0), "0");
        assert_eq!(hex(0x800), "0x800");
        assert_eq!(ipv4_masked(0x0a00_0000, 0xffff_ff00), "10.0.0.0/24");
        assert_eq!(ipv4_masked(0x0a00_0000, 0xffff_00ff), "10.0.0.0/255.255.0.255");
        assert_eq!(ipv6(1), "::1");
        assert_eq!(ipv6(0x0102_0304), "::1.2.3.4");
        assert_eq!(ipv6(0xffff_0102_0304), "::ffff:1.2.3.4");
        assert_eq!(oxm_vlan(0, 0xffff), (0, 0x1fff));
        assert_eq!(oxm_vlan(0x7005, 0xffff), (0x7005, 0xffff));
        assert_eq!(frag_name(1, 3), "first");
        assert_eq!(flags_masked(&CT_NAMES, 0x22, 0x23, 0xff), "-new+est+trk");
        assert_eq!(flags_masked(&CT_NAMES, 0x22, 0xff, 0xff), "est|trk");
        assert_eq!(format_value(FieldId::Reg0, 1, 0xffff, &NoNames, false), "0x1/0xffff");
        assert_eq!(format_value(FieldId::TcpSrc, 16, 0xfff0, &NoNames, false), "16/0xfff0");
    }
}
