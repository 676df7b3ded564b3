//! The ovs-ofctl flow text parser: `add-flow` / `add-flows` / `del-flows` lines into
//! `FlowMod`s, with the matches, actions and checks of Open vSwitch 3.1.
//!
//! Invariants and conventions:
//! - Parsing never panics, whatever the input (the `ofctl` fuzz target checks this).
//! - A parsed `Match` is pre-masked (`key & mask == key`), and holds what OVS keeps
//!   internally: `dl_vlan=0xffff` is `vlan_tci=0x0000/0xffff`, `nw_tos` is the TOS byte under
//!   mask `0xfc`, `nw_src` under `arp` is the ARP SPA (the same storage).
//! - A match field whose prerequisites the match does not guarantee (`nw_src` without `ip`,
//!   `tp_dst` without `tcp`/`udp`/...) is an error here. OVS drops such a field with a log
//!   message, which silently turns the flow into a wider one; refusing it is clearer.
//! - Action checks follow `ofpacts_check()`: `set_field`, `load` and `move` need their
//!   fields' prerequisites (tracking `push_vlan` / `pop_vlan` / `mod_vlan_vid` as OVS
//!   does), `ct` needs IP, `goto_table` must go forward and come last. Actions OVS accepts
//!   only over OpenFlow 1.0 (`strip_vlan` without a VLAN match, `dec_ttl` or `mod_nw_*`
//!   without `ip`) are accepted, as `ovs-ofctl add-flow` without `-O` does.
//! - Stats keys of dump-flows output (`duration`, `n_packets`, `n_bytes`, `idle_age`,
//!   `hard_age`) are ignored, so dump output can be pasted back in.
//! - Error columns are 1-based character positions in the line; `line` is 1-based in
//!   `parse_flows` and 0 when unknown.

use super::action::{
    port, Action, CtAction, CtZone, FlowMod, FlowModCommand, LearnPart, LearnSpec, NatKind,
    NatSpec, Spelling,
};
use crate::flow::field::{Fmt, Prereq, FIELDS};
use crate::flow::key::{ct_state, nw_frag, VLAN_CFI};
use crate::flow::{Field, FieldId, FlowKey, Subfield};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Port names of one bridge, so that `in_port=vm1` and `output:patch-tun` resolve.
pub trait PortNames {
    fn port_no(&self, name: &str) -> Option<u32>;
    fn port_name(&self, no: u32) -> Option<String>;
}

/// No named ports: only numbers and reserved names (`LOCAL`, `NORMAL`, ...) resolve.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoNames;

impl PortNames for NoNames {
    fn port_no(&self, _name: &str) -> Option<u32> {
        None
    }
    fn port_name(&self, _no: u32) -> Option<String> {
        None
    }
}

/// Flows of an add-flows file, each with its 1-based line number.
pub type Flows = Vec<(usize, FlowMod)>;

/// A parse error: where and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,   // 1-based; 0 if unknown
    pub column: usize, // 1-based character position of the offending token; 0 if unknown
    pub message: String,
    /// A suggestion (`did you mean "nw_src"?`), printed after the position.
    pub hint: Option<String>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match (self.line, self.column) {
            (0, 0) => {}
            (0, c) => write!(f, " (column {c})")?,
            (l, 0) => write!(f, " (line {l})")?,
            (l, c) => write!(f, " (line {l}, column {c})")?,
        }
        if let Some(h) = &self.hint {
            write!(f, "; {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// An error located by byte offset in the line being parsed.
#[derive(Debug)]
struct PErr {
    off: usize,
    msg: String,
    hint: Option<String>,
}

type R<T> = Result<T, PErr>;

fn err<T>(off: usize, msg: impl Into<String>) -> R<T> {
    Err(PErr { off, msg: msg.into(), hint: None })
}

fn to_parse_error(line_text: &str, e: PErr) -> ParseError {
    let off = e.off.min(line_text.len());
    let column =
        if line_text.is_char_boundary(off) { line_text[..off].chars().count() + 1 } else { 0 };
    ParseError { line: 0, column, message: e.msg, hint: e.hint }
}

/// Parses one flow. A leading `add`, `modify`, `modify_strict`, `delete` or `delete_strict`
/// overrides `cmd`.
pub fn parse_flow(
    text: &str,
    cmd: FlowModCommand,
    ports: &dyn PortNames,
) -> Result<FlowMod, ParseError> {
    parse_line(text, cmd, ports).map_err(|e| to_parse_error(text, e))
}

/// Parses an `add-flows` file: one flow per line, `#` comments and blank lines skipped.
/// Returns each flow with its 1-based line number.
pub fn parse_flows(text: &str, ports: &dyn PortNames) -> Result<Flows, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line, FlowModCommand::Add, ports) {
            Ok(fm) => out.push((i + 1, fm)),
            Err(e) => {
                let mut pe = to_parse_error(line, e);
                pe.line = i + 1;
                return Err(pe);
            }
        }
    }
    Ok(out)
}

/// The part of a line before a `#` comment.
fn strip_comment(line: &str) -> &str {
    match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    }
}

const COMMANDS: [(&str, FlowModCommand); 5] = [
    ("add", FlowModCommand::Add),
    ("modify", FlowModCommand::Modify),
    ("modify_strict", FlowModCommand::ModifyStrict),
    ("delete", FlowModCommand::Delete),
    ("delete_strict", FlowModCommand::DeleteStrict),
];

fn parse_line(text: &str, mut cmd: FlowModCommand, ports: &dyn PortNames) -> R<FlowMod> {
    let lead = text.len() - text.trim_start().len();
    let rest = &text[lead..];
    let word_end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let mut body_off = 0;
    if word_end < rest.len() {
        if let Some((_, c)) = COMMANDS.iter().find(|(w, _)| *w == &rest[..word_end]) {
            cmd = *c;
            body_off = lead + word_end;
        }
    }
    let (match_end, actions) = find_actions(text, body_off);
    let mut p = FlowParser::new(cmd, ports);
    p.parse_match(&text[body_off..match_end], body_off)?;
    let is_delete = matches!(cmd, FlowModCommand::Delete | FlowModCommand::DeleteStrict);
    match actions {
        None if !is_delete => return err(text.len(), "must specify an action (actions=...)"),
        None => {}
        Some(_) if is_delete => return err(match_end, "actions are not allowed when deleting"),
        Some(aoff) => {
            let acts = p.parse_action_list(&text[aoff..], aoff)?;
            p.fm.actions = acts;
        }
    }
    Ok(p.fm)
}

/// Finds `actions=` (or `action=`) after `from`: returns where the match part ends and
/// where the action text starts.
fn find_actions(text: &str, from: usize) -> (usize, Option<usize>) {
    let bytes = text.as_bytes();
    let mut i = from;
    while let Some(rel) = text[i..].find("action") {
        let at = i + rel;
        let boundary = at == 0 || matches!(bytes[at - 1], b',' | b' ' | b'\t');
        let mut j = at + "action".len();
        if j < bytes.len() && bytes[j] == b's' {
            j += 1;
        }
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        if boundary && j < bytes.len() && (bytes[j] == b'=' || bytes[j] == b':') {
            return (at, Some(j + 1));
        }
        i = at + 1;
    }
    (text.len(), None)
}

/// Splits `s` (found at byte offset `base` of the line) at commas and white space outside
/// parentheses. Checks that parentheses balance.
fn split_list(s: &str, base: usize) -> R<Vec<(usize, &str)>> {
    let mut out = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut start = None;
    let mut quoted = false; // inside a "quoted port name"
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                if start.is_none() {
                    start = Some(i);
                }
                continue;
            }
            '(' => open.push(i),
            ')' if open.pop().is_none() => {
                return err(base + i, "unbalanced parentheses: unexpected ')'");
            }
            _ => {}
        }
        let delim = open.is_empty() && (c == ',' || c.is_whitespace());
        if delim {
            if let Some(st) = start.take() {
                out.push((base + st, &s[st..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(&o) = open.first() {
        return err(base + o, "unbalanced parentheses: '(' is never closed");
    }
    if let Some(st) = start {
        out.push((base + st, &s[st..]));
    }
    Ok(out)
}

/// `key=value` or `key:value` (match and learn syntax) into (key, value offset, value).
fn key_value(tok: &str) -> (&str, Option<(usize, &str)>) {
    match tok.find(['=', ':']) {
        Some(i) => (&tok[..i], Some((i + 1, &tok[i + 1..]))),
        None => (tok, None),
    }
}

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

/// An unsigned integer in decimal or `0x` hex.
pub(crate) fn parse_uint(s: &str) -> Option<u128> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if h.is_empty() || h.len() > 32 {
            return None;
        }
        u128::from_str_radix(h, 16).ok()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

fn parse_mac(s: &str) -> Option<u128> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut v: u128 = 0;
    for p in parts {
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        v = (v << 8) | u128::from(u8::from_str_radix(p, 16).ok()?);
    }
    Some(v)
}

fn prefix_mask(bits: u32, width: u32) -> u128 {
    let ones = if width >= 128 { u128::MAX } else { (1u128 << width) - 1 };
    if bits == 0 {
        0
    } else {
        (ones << (width - bits)) & ones
    }
}

/// `IP[/prefix|/mask]` for IPv4 (`width` 32) or IPv6 (128).
fn parse_ip_masked(s: &str, v6: bool) -> Result<(u128, u128), String> {
    let width = if v6 { 128 } else { 32 };
    let kind = if v6 { "IPv6" } else { "IPv4" };
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let addr = |t: &str| -> Option<u128> {
        if v6 {
            t.parse::<Ipv6Addr>().ok().map(u128::from)
        } else {
            t.parse::<Ipv4Addr>().ok().map(|x| u128::from(u32::from(x)))
        }
    };
    let v = addr(a).ok_or_else(|| format!("\"{a}\" is not a valid {kind} address"))?;
    let mask = match m {
        None => prefix_mask(width, width),
        Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) => {
            let n: u32 = m.parse().unwrap_or(u32::MAX);
            if n > width {
                return Err(format!("{kind} prefix length /{m} is out of range (0..{width})"));
            }
            prefix_mask(n, width)
        }
        Some(m) => addr(m).ok_or_else(|| format!("\"{m}\" is not a valid {kind} mask"))?,
    };
    Ok((v & mask, mask))
}

/// A flag word: `+a-b` (masked), `a|b` (exact), or a number with an optional mask.
fn parse_flags(s: &str, names: &[(&str, u32)], all: u32, what: &str) -> Result<Flags, String> {
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        let (v, m) = match s.split_once('/') {
            Some((v, m)) => (parse_uint(v), parse_uint(m)),
            None => (parse_uint(s), Some(u128::from(all))),
        };
        return match (v, m) {
            (Some(v), Some(m)) if v <= u128::from(all) && m <= u128::from(all) => {
                Ok(((v & m) as u32, m as u32))
            }
            _ => Err(format!("\"{s}\" is not a valid {what} value")),
        };
    }
    let lookup = |n: &str| -> Result<u32, String> {
        names.iter().find(|(x, _)| *x == n).map(|(_, b)| *b).ok_or_else(|| {
            let list: Vec<&str> = names.iter().map(|(x, _)| *x).collect();
            format!("unknown {what} flag \"{n}\" (known: {})", list.join(" "))
        })
    };
    if s.starts_with(['+', '-']) {
        let (mut v, mut m) = (0u32, 0u32);
        let mut rest = s;
        while !rest.is_empty() {
            let plus = rest.starts_with('+');
            if !plus && !rest.starts_with('-') {
                return Err(format!("\"{s}\": expected '+' or '-' before each {what} flag"));
            }
            rest = &rest[1..];
            let end = rest.find(['+', '-']).unwrap_or(rest.len());
            let bit = lookup(&rest[..end])?;
            if m & bit != 0 {
                return Err(format!("{what} flag \"{}\" is given twice", &rest[..end]));
            }
            m |= bit;
            if plus {
                v |= bit;
            }
            rest = &rest[end..];
        }
        return Ok((v, m));
    }
    let mut v = 0;
    for n in s.split('|') {
        v |= lookup(n)?;
    }
    Ok((v, all))
}

/// A flag value and its mask.
type Flags = (u32, u32);

const CT_FLAGS: [(&str, u32); 8] = [
    ("new", ct_state::NEW as u32),
    ("est", ct_state::EST as u32),
    ("rel", ct_state::REL as u32),
    ("rpl", ct_state::RPL as u32),
    ("inv", ct_state::INV as u32),
    ("trk", ct_state::TRK as u32),
    ("snat", ct_state::SNAT as u32),
    ("dnat", ct_state::DNAT as u32),
];

const TCP_FLAGS: [(&str, u32); 12] = [
    ("fin", 0x001),
    ("syn", 0x002),
    ("rst", 0x004),
    ("psh", 0x008),
    ("ack", 0x010),
    ("urg", 0x020),
    ("ece", 0x040),
    ("cwr", 0x080),
    ("ns", 0x100),
    ("[200]", 0x200),
    ("[400]", 0x400),
    ("[800]", 0x800),
];

/// Parses an OpenFlow port: a number, a reserved name (`LOCAL`, `in_port`, ...) or a
/// named port of the bridge.
pub(crate) fn parse_port(s: &str, ports: &dyn PortNames) -> Option<u32> {
    let s = s.trim();
    let unescaped;
    let unq = match s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(q) => {
            unescaped = q.replace("\\\"", "\"").replace("\\\\", "\\");
            unescaped.as_str()
        }
        None => s,
    };
    if !unq.is_empty() && unq.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = unq.parse().ok()?;
        return match n {
            n if n < u64::from(port::MAX) => Some(n as u32),
            n if (u64::from(port::IN_PORT)..=u64::from(port::NONE)).contains(&n) => Some(n as u32),
            // OpenFlow 1.1+ reserved numbers (0xfffffff8..) map to the 1.0 values.
            n if (0xffff_fff8..=0xffff_ffff).contains(&n) => Some((n - 0xffff_0000) as u32),
            _ => None,
        };
    }
    port::by_reserved_name(unq).or_else(|| ports.port_no(unq))
}

/// Whether OVS accepts a `/mask` on this field in a match.
fn maskable(id: FieldId) -> bool {
    use FieldId::*;
    !matches!(
        id,
        InPort
            | InPortOxm
            | RecircId
            | CtZone
            | DlType
            | DlVlan
            | DlVlanPcp
            | VlanPcp
            | NwTos
            | IpDscp
            | NwEcn
            | NwTtl
            | NwProto
            | ArpOp
            | IcmpType
            | IcmpCode
            | Icmpv6Type
            | Icmpv6Code
    )
}

/// Parses a value of field `f` (as in a match or a `set_field`): `(value, mask)`, both in
/// field units; `mask` is all ones when none was given.
fn parse_value(f: &Field, s: &str, ports: &dyn PortNames) -> Result<(u128, u128), String> {
    let ones = f.all_ones();
    let has_mask = s.contains('/');
    if has_mask && !maskable(f.id) {
        return Err(format!("field {} does not accept a mask", f.name));
    }
    let (v, m) = match f.fmt {
        Fmt::Dec | Fmt::Hex => {
            let (v, m) = match s.split_once('/') {
                Some((v, m)) => (v, Some(m)),
                None => (s, None),
            };
            let val = parse_uint(v)
                .ok_or_else(|| format!("\"{v}\" is not a valid number for {}", f.name))?;
            let mask = match m {
                Some(m) => parse_uint(m)
                    .ok_or_else(|| format!("\"{m}\" is not a valid mask for {}", f.name))?,
                None => ones,
            };
            if val > ones || mask > ones {
                let bad = if val > ones { v } else { m.unwrap_or(v) };
                return Err(format!(
                    "value {bad} is out of range for {} (0..{}, {} bits)",
                    f.name, ones, f.width
                ));
            }
            (val, mask)
        }
        Fmt::Mac => {
            let (v, m) = match s.split_once('/') {
                Some((v, m)) => (v, Some(m)),
                None => (s, None),
            };
            let val = parse_mac(v).ok_or_else(|| {
                format!("\"{v}\" is not a valid Ethernet address (expected xx:xx:xx:xx:xx:xx)")
            })?;
            let mask = match m {
                Some(m) => {
                    parse_mac(m).ok_or_else(|| format!("\"{m}\" is not a valid Ethernet mask"))?
                }
                None => ones,
            };
            (val, mask)
        }
        Fmt::Ipv4 => parse_ip_masked(s, false)?,
        Fmt::Ipv6 => parse_ip_masked(s, true)?,
        Fmt::Port => {
            let p = parse_port(s, ports).ok_or_else(|| {
                format!(
                    "\"{s}\" is not a valid port for {} (number, LOCAL, or a port name)",
                    f.name
                )
            })?;
            (u128::from(p), ones)
        }
        Fmt::CtState => {
            let (v, m) = parse_flags(s, &CT_FLAGS, 0xff, "ct_state")?;
            (u128::from(v), u128::from(m))
        }
        Fmt::TcpFlags => {
            let (v, m) = parse_flags(s, &TCP_FLAGS, 0xfff, "tcp_flags")?;
            (u128::from(v), u128::from(m))
        }
        Fmt::Frag => {
            let (any, later) = (u128::from(nw_frag::ANY), u128::from(nw_frag::LATER));
            match s {
                "no" => (0, any),
                "yes" => (any, any),
                "first" => (any, any | later),
                "later" => (any | later, any | later),
                "not_later" => (0, later),
                _ => {
                    return Err(format!(
                        "\"{s}\" is not a valid nw_frag (no, yes, first, later, not_later)"
                    ))
                }
            }
        }
    };
    Ok((v & m, m))
}

// ---------------------------------------------------------------------------------------
// Prerequisites
// ---------------------------------------------------------------------------------------

const ETH_IP: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_ARP: u16 = 0x0806;
const ETH_RARP: u16 = 0x8035;

fn is_ip_any(k: &FlowKey) -> bool {
    k.dl_type == ETH_IP || k.dl_type == ETH_IPV6
}

/// Whether a flow whose (masked) values are `k` meets `p`, as OVS's `mf_are_prereqs_ok`.
pub fn prereq_ok(p: Prereq, k: &FlowKey) -> bool {
    let icmp6 = k.dl_type == ETH_IPV6 && k.nw_proto == 58;
    match p {
        Prereq::None => true,
        Prereq::Vlan => k.vlan_tci & VLAN_CFI != 0,
        Prereq::IpAny => is_ip_any(k),
        Prereq::Ipv4 => k.dl_type == ETH_IP,
        Prereq::Ipv6 => k.dl_type == ETH_IPV6,
        Prereq::Arp => k.dl_type == ETH_ARP || k.dl_type == ETH_RARP,
        Prereq::Tcp => is_ip_any(k) && k.nw_proto == 6,
        Prereq::Udp => is_ip_any(k) && k.nw_proto == 17,
        Prereq::Sctp => is_ip_any(k) && k.nw_proto == 132,
        Prereq::Icmp4 => k.dl_type == ETH_IP && k.nw_proto == 1,
        Prereq::Icmp6 => icmp6,
        Prereq::Nd => icmp6 && k.tp_dst == 0 && (k.tp_src == 135 || k.tp_src == 136),
        Prereq::NdSolicit => icmp6 && k.tp_dst == 0 && k.tp_src == 135,
        Prereq::NdAdvert => icmp6 && k.tp_dst == 0 && k.tp_src == 136,
        Prereq::TcpAny => is_ip_any(k) && k.nw_proto == 6,
    }
}

/// How to write what a prerequisite asks for, for error messages.
fn prereq_text(p: Prereq) -> &'static str {
    match p {
        Prereq::None => "nothing",
        Prereq::Vlan => "a VLAN tag (dl_vlan=, vlan_tci=0x1000/0x1000 or push_vlan)",
        Prereq::IpAny => "\"ip\" or \"ipv6\"",
        Prereq::Ipv4 => "\"ip\" (dl_type=0x0800)",
        Prereq::Ipv6 => "\"ipv6\" (dl_type=0x86dd)",
        Prereq::Arp => "\"arp\" or \"rarp\"",
        Prereq::Tcp => "\"tcp\" or \"tcp6\"",
        Prereq::Udp => "\"udp\" or \"udp6\"",
        Prereq::Sctp => "\"sctp\" or \"sctp6\"",
        Prereq::Icmp4 => "\"icmp\"",
        Prereq::Icmp6 => "\"icmp6\"",
        Prereq::Nd => "\"icmp6\" with icmp_type=135 or 136 and icmp_code=0",
        Prereq::NdSolicit => "\"icmp6\" with icmp_type=135 and icmp_code=0",
        Prereq::NdAdvert => "\"icmp6\" with icmp_type=136 and icmp_code=0",
        Prereq::TcpAny => "\"tcp\" or \"tcp6\"",
    }
}

/// Whether a match field's prerequisites hold in the finished match. OVS's OpenFlow 1.0
/// aliases are honoured: `nw_src`/`nw_dst`/`nw_proto` mean the ARP fields under `arp`, and
/// `icmp_type`/`icmp_code` the ICMPv6 ones under `icmp6`.
fn match_prereq_ok(id: FieldId, k: &FlowKey) -> bool {
    let arp = prereq_ok(Prereq::Arp, k);
    match id {
        FieldId::NwSrc | FieldId::NwDst => prereq_ok(Prereq::Ipv4, k) || arp,
        FieldId::NwProto => prereq_ok(Prereq::IpAny, k) || arp,
        FieldId::IcmpType | FieldId::IcmpCode => {
            prereq_ok(Prereq::Icmp4, k) || prereq_ok(Prereq::Icmp6, k)
        }
        _ => prereq_ok(id.field().prereq, k),
    }
}

/// `tp_src` / `tp_dst` need a transport protocol OVS knows.
fn tp_prereq_ok(k: &FlowKey) -> bool {
    [Prereq::Tcp, Prereq::Udp, Prereq::Sctp, Prereq::Icmp4, Prereq::Icmp6]
        .iter()
        .any(|p| prereq_ok(*p, k))
}

// ---------------------------------------------------------------------------------------
// Names and suggestions
// ---------------------------------------------------------------------------------------

const SHORTHANDS: [(&str, u16, Option<u8>); 14] = [
    ("ip", ETH_IP, None),
    ("ipv4", ETH_IP, None),
    ("ipv6", ETH_IPV6, None),
    ("icmp", ETH_IP, Some(1)),
    ("icmp6", ETH_IPV6, Some(58)),
    ("tcp", ETH_IP, Some(6)),
    ("tcp6", ETH_IPV6, Some(6)),
    ("udp", ETH_IP, Some(17)),
    ("udp6", ETH_IPV6, Some(17)),
    ("sctp", ETH_IP, Some(132)),
    ("sctp6", ETH_IPV6, Some(132)),
    ("arp", ETH_ARP, None),
    ("rarp", ETH_RARP, None),
    ("mpls", 0x8847, None),
];

const MATCH_KEYWORDS: [&str; 23] = [
    "table",
    "priority",
    "cookie",
    "idle_timeout",
    "hard_timeout",
    "importance",
    "send_flow_rem",
    "check_overlap",
    "reset_counts",
    "no_packet_counts",
    "no_byte_counts",
    "out_port",
    "duration",
    "n_packets",
    "n_bytes",
    "idle_age",
    "hard_age",
    "tp_src",
    "tp_dst",
    "mplsm",
    "actions",
    "dl_vlan",
    "vlan_tci",
];

const ACTION_NAMES: [&str; 35] = [
    "output",
    "drop",
    "goto_table",
    "resubmit",
    "mod_dl_src",
    "mod_dl_dst",
    "mod_nw_src",
    "mod_nw_dst",
    "mod_nw_tos",
    "mod_nw_ecn",
    "mod_nw_ttl",
    "mod_tp_src",
    "mod_tp_dst",
    "set_field",
    "load",
    "move",
    "push_vlan",
    "pop_vlan",
    "strip_vlan",
    "mod_vlan_vid",
    "mod_vlan_pcp",
    "dec_ttl",
    "set_tunnel",
    "set_tunnel64",
    "ct",
    "ct_clear",
    "learn",
    "note",
    "exit",
    "controller",
    "normal",
    "flood",
    "all",
    "local",
    "in_port",
];

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let lw = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &str)> = None;
    let len = lw.chars().count();
    for c in candidates {
        // The distance is at least the difference in length: most candidates need no
        // computing (this runs on every unknown word, so it must stay cheap on long ones).
        if c.len().abs_diff(len) > limit {
            continue;
        }
        let d = edit_distance(&lw, &c.to_ascii_lowercase());
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| format!("did you mean \"{c}\"?"))
}

fn field_names() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().flat_map(|f| std::iter::once(f.name).chain(f.aliases.iter().copied()))
}

fn unknown_field(off: usize, name: &str) -> PErr {
    if let Some(n) = name.strip_prefix("reg").and_then(|n| n.parse::<u32>().ok()) {
        return PErr {
            off,
            msg: format!("unknown field \"{name}\""),
            hint: Some(format!("registers are reg0..reg7, not reg{n}")),
        };
    }
    let cands =
        field_names().chain(SHORTHANDS.iter().map(|s| s.0)).chain(MATCH_KEYWORDS.iter().copied());
    PErr { off, msg: format!("unknown field \"{name}\""), hint: suggest(name, cands) }
}

/// Finds a field by name for subfield syntax (`NXM_NX_REG0`, `reg0`, `eth_src`, ...).
fn field_by_name(name: &str) -> Option<&'static Field> {
    Field::by_name(name).or_else(|| match name {
        "eth_type" => Some(FieldId::DlType.field()),
        "ip_src" => Some(FieldId::NwSrc.field()),
        "ip_dst" => Some(FieldId::NwDst.field()),
        _ => None,
    })
}

/// Parses `FIELD[]`, `FIELD[a..b]`, `FIELD[n]` or a bare `FIELD` (the whole field).
fn parse_subfield(s: &str, off: usize) -> R<Subfield> {
    let (name, bits) = match s.find('[') {
        Some(i) => {
            let Some(inner) = s[i + 1..].strip_suffix(']') else {
                return err(off + i, format!("\"{s}\": subfield must end with ']'"));
            };
            (&s[..i], Some((off + i + 1, inner)))
        }
        None => (s, None),
    };
    let Some(f) = field_by_name(name) else {
        let mut e = unknown_field(off, name);
        e.msg = format!("unknown field \"{name}\" in subfield \"{s}\"");
        return Err(e);
    };
    let (ofs, n_bits) = match bits {
        None | Some((_, "")) => (0u32, u32::from(f.width)),
        Some((boff, inner)) => {
            let (a, b) = match inner.split_once("..") {
                Some((a, b)) => (a.parse::<u32>().ok(), b.parse::<u32>().ok()),
                None => (inner.parse::<u32>().ok(), inner.parse::<u32>().ok()),
            };
            let (Some(a), Some(b)) = (a, b) else {
                return err(boff, format!("\"{s}\": bad bit range (expected [a..b] or [n])"));
            };
            if a > b || b >= u32::from(f.width) {
                return err(
                    boff,
                    format!(
                        "\"{s}\": bits {a}..{b} do not fit in {} ({} bits wide)",
                        name, f.width
                    ),
                );
            }
            (a, b - a + 1)
        }
    };
    Ok(Subfield { field: f.id, ofs: ofs as u8, n_bits: n_bits as u8 })
}

// ---------------------------------------------------------------------------------------
// The flow parser
// ---------------------------------------------------------------------------------------

/// What a match field needs checked once the whole match is known.
enum Check {
    Field(FieldId),
    Tp,
}

struct FlowParser<'p> {
    fm: FlowMod,
    ports: &'p dyn PortNames,
    checks: Vec<(usize, String, Check)>,
}

impl<'p> FlowParser<'p> {
    fn new(cmd: FlowModCommand, ports: &'p dyn PortNames) -> Self {
        FlowParser { fm: FlowMod { command: cmd, ..FlowMod::default() }, ports, checks: Vec::new() }
    }

    fn parse_match(&mut self, s: &str, base: usize) -> R<()> {
        for (off, tok) in split_list(s, base)? {
            self.match_token(off, tok)?;
        }
        let k = self.fm.mat.key;
        for (off, name, c) in &self.checks {
            let (ok, need) = match c {
                Check::Field(id) => (match_prereq_ok(*id, &k), prereq_text(id.field().prereq)),
                Check::Tp => (tp_prereq_ok(&k), "tcp, udp, sctp, icmp or icmp6 (or their 6 forms)"),
            };
            let icmp = prereq_ok(Prereq::Icmp4, &k) || prereq_ok(Prereq::Icmp6, &k);
            if ok && icmp && matches!(c, Check::Tp) {
                // Under icmp, tp_src/tp_dst are the ICMP type/code: one exact byte, as they
                // print back (`icmp_type=N`).
                let (v, m) = if name == "tp_src" {
                    (k.tp_src, self.fm.mat.mask.tp_src)
                } else {
                    (k.tp_dst, self.fm.mat.mask.tp_dst)
                };
                if v > 255 || m != 0xffff {
                    let what = if name == "tp_src" { "type" } else { "code" };
                    return err(
                        *off,
                        format!("{name} under icmp is the ICMP {what}: 0..255, no mask"),
                    );
                }
            }
            if !ok {
                return Err(PErr {
                    off: *off,
                    msg: format!("field {name} needs {need} in the match"),
                    hint: Some(format!("OVS would drop {name} and match more packets")),
                });
            }
        }
        Ok(())
    }

    fn num<T: TryFrom<u128>>(&self, off: usize, key: &str, v: Option<&str>, max: u128) -> R<T> {
        let Some(v) = v else {
            return err(off, format!("{key} needs a value ({key}=N)"));
        };
        match parse_uint(v) {
            Some(n) if n <= max => T::try_from(n).or_else(|_| err(off, "value out of range")),
            Some(_) => err(off, format!("{key}={v} is out of range (0..{max})")),
            None => err(off, format!("{key}={v}: \"{v}\" is not a number")),
        }
    }

    fn match_token(&mut self, off: usize, tok: &str) -> R<()> {
        let (key, val) = key_value(tok);
        let voff = val.map_or(off, |(i, _)| off + i);
        let v = val.map(|(_, v)| v);
        let is_mod = !matches!(self.fm.command, FlowModCommand::Add);
        match key {
            "table" => {
                let t: u16 = self.num(voff, key, v, 255)?;
                if t == 255 && !is_mod {
                    return err(voff, "table=255 is not a table (0..254)");
                }
                self.fm.table = if t == 255 { None } else { Some(t as u8) };
            }
            "priority" => self.fm.priority = self.num(voff, key, v, 65535)?,
            "idle_timeout" => self.fm.idle_timeout = self.num(voff, key, v, 65535)?,
            "hard_timeout" => self.fm.hard_timeout = self.num(voff, key, v, 65535)?,
            "importance" => self.fm.importance = self.num(voff, key, v, 65535)?,
            "send_flow_rem" => self.fm.flags.send_flow_rem = true,
            "check_overlap" => self.fm.flags.check_overlap = true,
            "reset_counts" => self.fm.flags.reset_counts = true,
            "no_packet_counts" => self.fm.flags.no_packet_counts = true,
            "no_byte_counts" => self.fm.flags.no_byte_counts = true,
            "duration" | "n_packets" | "n_bytes" | "idle_age" | "hard_age" => {}
            "cookie" => self.cookie(voff, v)?,
            "out_port" => {
                let v = v.unwrap_or("");
                let p = parse_port(v, self.ports).ok_or_else(|| PErr {
                    off: voff,
                    msg: format!("out_port={v}: unknown port"),
                    hint: None,
                })?;
                self.fm.out_port = Some(p);
            }
            "tp_src" | "tp_dst" => {
                let id = if key == "tp_src" { FieldId::TcpSrc } else { FieldId::TcpDst };
                let Some(v) = v else {
                    return err(off, format!("{key} needs a value"));
                };
                let (val, mask) = parse_value(id.field(), v, self.ports).map_err(|m| PErr {
                    off: voff,
                    msg: m.replace("tcp_", "tp_"),
                    hint: None,
                })?;
                self.fm.mat.set_field_masked(id, val, mask);
                let name = if key == "tp_src" { "tp_src" } else { "tp_dst" };
                self.checks.push((off, name.into(), Check::Tp));
            }
            _ => {
                if let Some((_, dl, proto)) = SHORTHANDS.iter().find(|s| s.0 == key) {
                    if v.is_some() {
                        return err(
                            off,
                            format!("\"{key}\" is a protocol shorthand and takes no value"),
                        );
                    }
                    self.fm.mat.set_field(FieldId::DlType, u128::from(*dl));
                    if let Some(p) = proto {
                        self.fm.mat.set_field(FieldId::NwProto, u128::from(*p));
                    }
                    return Ok(());
                }
                if key == "mplsm" {
                    self.fm.mat.set_field(FieldId::DlType, 0x8848);
                    return Ok(());
                }
                let Some(f) = field_by_name(key) else {
                    return Err(unknown_field(off, key));
                };
                let Some(v) = v else {
                    return err(off, format!("field {key} needs a value ({key}=...)"));
                };
                self.match_field(f, key, off, voff, v)?;
            }
        }
        Ok(())
    }

    fn cookie(&mut self, voff: usize, v: Option<&str>) -> R<()> {
        let Some(v) = v else {
            return err(voff, "cookie needs a value (cookie=0x...)");
        };
        let num = |s: &str, at: usize| -> R<u64> {
            if s == "-1" {
                return Ok(u64::MAX);
            }
            match parse_uint(s) {
                Some(n) if n <= u128::from(u64::MAX) => Ok(n as u64),
                _ => err(at, format!("\"{s}\" is not a valid 64-bit cookie")),
            }
        };
        match v.split_once('/') {
            Some((c, m)) => {
                if self.fm.command == FlowModCommand::Add {
                    return err(voff, "flow additions cannot use a cookie mask");
                }
                self.fm.cookie = num(c, voff)?;
                self.fm.cookie_mask = num(m, voff + c.len() + 1)?;
            }
            None => {
                if matches!(self.fm.command, FlowModCommand::Delete | FlowModCommand::DeleteStrict)
                {
                    return Err(PErr {
                        off: voff,
                        msg: "cannot set a cookie when deleting".into(),
                        hint: Some(format!("to select by cookie, write cookie={v}/-1")),
                    });
                }
                self.fm.cookie = num(v, voff)?;
            }
        }
        Ok(())
    }

    fn match_field(
        &mut self,
        f: &'static Field,
        key: &str,
        off: usize,
        voff: usize,
        v: &str,
    ) -> R<()> {
        let bad = |m: String| PErr { off: voff, msg: m, hint: None };
        let m = &mut self.fm.mat;
        match f.id {
            FieldId::DlVlan => {
                let n = parse_uint(v).ok_or_else(|| bad(format!("dl_vlan={v}: not a number")))?;
                if n == 0xffff {
                    // OpenFlow 1.0 "no VLAN": untagged frames only.
                    m.set_field_masked(FieldId::VlanTci, 0, 0xffff);
                } else if n <= 4095 {
                    m.set_field_masked(FieldId::VlanTci, u128::from(VLAN_CFI) | n, 0x1fff);
                } else {
                    return Err(bad(format!("dl_vlan={v} is out of range (0..4095, or 0xffff)")));
                }
                return Ok(());
            }
            FieldId::DlVlanPcp | FieldId::VlanPcp => {
                let n = parse_uint(v).filter(|n| *n <= 7);
                let n = n.ok_or_else(|| bad(format!("{key}={v} is out of range (0..7)")))?;
                m.set_field_masked(FieldId::VlanTci, u128::from(VLAN_CFI) | (n << 13), 0xf000);
                return Ok(());
            }
            FieldId::IcmpType | FieldId::IcmpCode | FieldId::Icmpv6Type | FieldId::Icmpv6Code => {
                // OVS keeps ICMP type and code in the 16-bit transport port slots and
                // matches them exactly there.
                let (val, _) = parse_value(f, v, self.ports).map_err(bad)?;
                let slot = match f.id {
                    FieldId::IcmpType | FieldId::Icmpv6Type => FieldId::TcpSrc,
                    _ => FieldId::TcpDst,
                };
                m.set_field_masked(slot, val, 0xffff);
                self.checks.push((off, key.into(), Check::Field(f.id)));
                return Ok(());
            }
            FieldId::NwTos => {
                let (val, _) = parse_value(f, v, self.ports).map_err(bad)?;
                m.set_field_masked(FieldId::NwTos, val & 0xfc, 0xfc);
                self.checks.push((off, key.into(), Check::Field(f.id)));
                return Ok(());
            }
            _ => {}
        }
        let (val, mask) = parse_value(f, v, self.ports).map_err(bad)?;
        m.set_field_masked(f.id, val, mask);
        if f.prereq != Prereq::None || f.id == FieldId::NwProto {
            self.checks.push((off, key.into(), Check::Field(f.id)));
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------
    // Actions
    // -----------------------------------------------------------------------------------

    fn parse_action_list(&self, s: &str, base: usize) -> R<Vec<Action>> {
        let mut ctx = ActCtx { key: self.fm.mat.key, table: self.fm.table.unwrap_or(0) };
        let toks = split_list(s, base)?;
        let mut out = Vec::new();
        let mut drop_at = None;
        let mut goto_at: Option<usize> = None;
        for (off, tok) in toks {
            if let Some(g) = goto_at {
                return Err(PErr {
                    off,
                    msg: "goto_table must be the last action".into(),
                    hint: Some(format!("move the goto_table (column {}) to the end", g)),
                });
            }
            if tok.eq_ignore_ascii_case("drop") {
                drop_at = Some(off);
                continue;
            }
            let a = self.parse_action(off, tok, &mut ctx, false)?;
            if matches!(a, Action::GotoTable(_)) {
                goto_at = Some(off + 1);
            }
            out.push(a);
        }
        if let Some(d) = drop_at {
            if !out.is_empty() {
                return err(d, "\"drop\" must not be accompanied by any other action");
            }
            out.push(Action::Drop);
        }
        Ok(out)
    }

    /// Parses one action. `in_exec` restricts to what `ct(exec(...))` allows.
    fn parse_action(&self, off: usize, tok: &str, ctx: &mut ActCtx, in_exec: bool) -> R<Action> {
        let split = tok.find([':', '(', '=']);
        let (name, arg, aoff) = match split {
            Some(i) if tok.as_bytes()[i] == b'(' => {
                let Some(inner) = tok[i + 1..].strip_suffix(')') else {
                    let close = tok.rfind(')').map_or(off + tok.len(), |c| off + c + 1);
                    return err(close, format!("unexpected text after ')' in \"{tok}\""));
                };
                (&tok[..i], Some(inner), off + i + 1)
            }
            Some(i) => (&tok[..i], Some(&tok[i + 1..]), off + i + 1),
            None => (tok, None, off + tok.len()),
        };
        let lname = name.to_ascii_lowercase();
        if in_exec && !matches!(lname.as_str(), "set_field" | "load") {
            return err(
                off,
                format!(
                    "\"{name}\" is not allowed in ct(exec(...)); only set_field \
                                     and load of ct_mark are"
                ),
            );
        }
        let need = |what: &str| -> R<&str> {
            arg.ok_or_else(|| PErr {
                off: aoff,
                msg: format!("{name} needs an argument ({name}:{what})"),
                hint: None,
            })
        };
        let a = match lname.as_str() {
            "output" => {
                let a = need("PORT")?;
                if a.contains('[') {
                    Action::OutputReg(parse_subfield(a, aoff)?)
                } else {
                    self.output_port(aoff, a)?
                }
            }
            "controller" => self.controller(aoff, arg, split.map(|i| tok.as_bytes()[i]))?,
            "goto_table" => {
                let a = need("TABLE")?;
                let t = parse_uint(a).filter(|t| *t <= 254);
                let t = t.ok_or_else(|| PErr {
                    off: aoff,
                    msg: format!("goto_table:{a}: not a table number (0..254)"),
                    hint: None,
                })? as u8;
                if t <= ctx.table {
                    return err(
                        aoff,
                        format!(
                            "goto_table:{t} must go to a table after the current one ({})",
                            ctx.table
                        ),
                    );
                }
                Action::GotoTable(t)
            }
            "resubmit" => {
                self.resubmit(aoff, need("PORT")?, split.map(|i| tok.as_bytes()[i]), ctx)?
            }
            "mod_dl_src" | "mod_dl_dst" => {
                let a = need("MAC")?;
                let v = parse_mac(a).ok_or_else(|| PErr {
                    off: aoff,
                    msg: format!("\"{a}\" is not a valid Ethernet address"),
                    hint: None,
                })?;
                let field = if lname == "mod_dl_src" { FieldId::DlSrc } else { FieldId::DlDst };
                Action::SetField {
                    field,
                    value: v,
                    mask: field.field().all_ones(),
                    spelling: Spelling::Mod,
                }
            }
            "mod_nw_src" | "mod_nw_dst" => {
                let a = need("IP")?;
                let ip: Ipv4Addr = a.parse().map_err(|_| PErr {
                    off: aoff,
                    msg: format!("\"{a}\" is not a valid IPv4 address"),
                    hint: None,
                })?;
                let field = if lname == "mod_nw_src" { FieldId::NwSrc } else { FieldId::NwDst };
                let v = u128::from(u32::from(ip));
                Action::SetField { field, value: v, mask: 0xffff_ffff, spelling: Spelling::Mod }
            }
            "mod_nw_tos" => {
                let a = need("TOS")?;
                match parse_uint(a) {
                    Some(v) if v <= 255 && v & 3 == 0 => Action::SetField {
                        field: FieldId::NwTos,
                        value: v,
                        mask: 0xfc,
                        spelling: Spelling::Mod,
                    },
                    _ => {
                        return err(aoff, format!("{a}: not a valid TOS (a multiple of 4, 0..252)"))
                    }
                }
            }
            "mod_nw_ecn" => {
                let a = need("ECN")?;
                match parse_uint(a) {
                    Some(v) if v <= 3 => Action::SetField {
                        field: FieldId::NwEcn,
                        value: v,
                        mask: 3,
                        spelling: Spelling::Mod,
                    },
                    _ => return err(aoff, format!("{a}: not a valid ECN (0..3)")),
                }
            }
            "mod_nw_ttl" => {
                let a = need("TTL")?;
                match parse_uint(a) {
                    Some(v) if v <= 255 => Action::SetField {
                        field: FieldId::NwTtl,
                        value: v,
                        mask: 0xff,
                        spelling: Spelling::Mod,
                    },
                    _ => return err(aoff, format!("{a}: not a valid TTL (0..255)")),
                }
            }
            "mod_tp_src" | "mod_tp_dst" => {
                let a = need("PORT")?;
                let v = parse_uint(a).filter(|v| *v <= 65535).ok_or_else(|| PErr {
                    off: aoff,
                    msg: format!("{a}: not a valid transport port (0..65535)"),
                    hint: None,
                })?;
                let Some(f) = tp_field(lname == "mod_tp_src", &ctx.key) else {
                    return err(off, format!("{name} needs tcp, udp or sctp in the match"));
                };
                Action::SetField { field: f.id, value: v, mask: 0xffff, spelling: Spelling::Mod }
            }
            "set_field" => self.set_field(aoff, need("VALUE->FIELD")?, ctx)?,
            "load" => self.load(aoff, need("VALUE->FIELD[]")?, ctx)?,
            "move" => {
                let a = need("SRC[]->DST[]")?;
                let (src, dst) = self.move_args(aoff, a)?;
                check_sub_prereq(ctx, &src, aoff, "source")?;
                check_sub_prereq(ctx, &dst, aoff, "destination")?;
                Action::Move { src, dst }
            }
            "push_vlan" => {
                let a = need("0x8100")?;
                match parse_uint(a) {
                    Some(t @ (0x8100 | 0x88a8)) => {
                        ctx.key.vlan_tci |= VLAN_CFI;
                        Action::PushVlan(t as u16)
                    }
                    _ => {
                        return err(
                            aoff,
                            format!("push_vlan:{a}: only 0x8100 and 0x88a8 are valid"),
                        )
                    }
                }
            }
            "pop_vlan" | "strip_vlan" => {
                self.no_arg(name, arg, aoff)?;
                ctx.key.vlan_tci = 0;
                Action::PopVlan { strip: lname == "strip_vlan" }
            }
            "mod_vlan_vid" => {
                let a = need("VID")?;
                let v = parse_uint(a).filter(|v| *v <= 4095).ok_or_else(|| PErr {
                    off: aoff,
                    msg: format!("{a}: not a valid VLAN VID (0..4095)"),
                    hint: None,
                })?;
                ctx.key.vlan_tci |= VLAN_CFI;
                Action::ModVlanVid(v as u16)
            }
            "mod_vlan_pcp" => {
                let a = need("PCP")?;
                let v = parse_uint(a).filter(|v| *v <= 7).ok_or_else(|| PErr {
                    off: aoff,
                    msg: format!("{a}: not a valid VLAN PCP (0..7)"),
                    hint: None,
                })?;
                ctx.key.vlan_tci |= VLAN_CFI;
                Action::ModVlanPcp(v as u8)
            }
            "dec_ttl" => {
                self.no_arg(name, arg, aoff)?;
                Action::DecTtl
            }
            "set_tunnel" | "set_tunnel64" => {
                let a = need("TUN_ID")?;
                let max =
                    if lname == "set_tunnel" { u128::from(u32::MAX) } else { u128::from(u64::MAX) };
                let v = parse_uint(a).filter(|v| *v <= max).ok_or_else(|| PErr {
                    off: aoff,
                    msg: format!("{name}:{a}: not a valid tunnel ID (0..{max:#x})"),
                    hint: None,
                })?;
                Action::SetField {
                    field: FieldId::TunId,
                    value: v,
                    mask: u128::from(u64::MAX),
                    spelling: Spelling::SetTunnel,
                }
            }
            "ct" => self.ct(aoff, arg.unwrap_or(""), ctx, off)?,
            "ct_clear" => {
                self.no_arg(name, arg, aoff)?;
                Action::CtClear
            }
            "learn" => Action::Learn(Box::new(self.learn(aoff, arg.unwrap_or(""))?)),
            "note" => Action::Note(parse_note(aoff, arg.unwrap_or(""))?),
            "exit" => {
                self.no_arg(name, arg, aoff)?;
                Action::Exit
            }
            _ => {
                if arg.is_none() {
                    if let Some(p) = parse_port(tok, self.ports) {
                        return self.output_port(off, &p.to_string());
                    }
                }
                let cands = ACTION_NAMES.iter().copied();
                return Err(PErr {
                    off,
                    msg: format!("unknown action \"{name}\""),
                    hint: suggest(name, cands),
                });
            }
        };
        Ok(a)
    }

    fn no_arg(&self, name: &str, arg: Option<&str>, aoff: usize) -> R<()> {
        match arg {
            Some(a) if !a.is_empty() => err(aoff, format!("{name} takes no argument")),
            _ => Ok(()),
        }
    }

    fn output_port(&self, aoff: usize, a: &str) -> R<Action> {
        let p = parse_port(a, self.ports).ok_or_else(|| PErr {
            off: aoff,
            msg: format!("{a}: output to unknown port"),
            hint: None,
        })?;
        if p == port::NONE {
            return err(aoff, format!("{a}: cannot output to this port"));
        }
        let max_len = if p == port::CONTROLLER { u16::MAX } else { 0 };
        Ok(Action::Output { port: p, max_len })
    }

    /// `controller`, `controller:N`, `controller(max_len=N)`.
    fn controller(&self, aoff: usize, arg: Option<&str>, sep: Option<u8>) -> R<Action> {
        let mut max_len = u16::MAX;
        match (arg, sep) {
            (None, _) => {}
            (Some(a), Some(b':')) => {
                max_len = parse_uint(a).filter(|v| *v <= 65535).ok_or_else(|| PErr {
                    off: aoff,
                    msg: format!("controller:{a}: not a valid max_len (0..65535)"),
                    hint: None,
                })? as u16;
            }
            (Some(a), _) => {
                for (o, part) in split_list(a, aoff)? {
                    let (k, v) = key_value(part);
                    match (k, v) {
                        ("max_len", Some((_, v))) => match parse_uint(v) {
                            Some(n) if n <= 65535 => max_len = n as u16,
                            _ => return err(o, format!("max_len={v}: not 0..65535")),
                        },
                        ("reason", Some((_, "action"))) | ("id", Some((_, "0"))) => {}
                        _ => {
                            let msg = format!("controller option \"{part}\" is not supported");
                            return err(o, msg);
                        }
                    }
                }
            }
        }
        Ok(Action::Output { port: port::CONTROLLER, max_len })
    }

    fn resubmit(&self, aoff: usize, a: &str, sep: Option<u8>, ctx: &ActCtx) -> R<Action> {
        if sep == Some(b':') {
            let p = parse_port(a, self.ports).ok_or_else(|| PErr {
                off: aoff,
                msg: format!("resubmit:{a}: unknown port"),
                hint: None,
            })?;
            return Ok(Action::Resubmit { in_port: Some(p), table: None, ct: false });
        }
        let parts: Vec<&str> = a.split(',').collect();
        if parts.len() > 3 {
            return err(aoff, format!("resubmit({a}): too many arguments (PORT,TABLE[,ct])"));
        }
        let p = parts[0].trim();
        let in_port = if p.is_empty() {
            None
        } else {
            let n = parse_port(p, self.ports).ok_or_else(|| PErr {
                off: aoff,
                msg: format!("resubmit: unknown port \"{p}\""),
                hint: None,
            })?;
            (n != port::IN_PORT).then_some(n)
        };
        let toff = aoff + parts[0].len() + 1;
        let table = match parts.get(1).map(|t| t.trim()) {
            None | Some("") => None,
            Some(t) => match parse_uint(t) {
                Some(255) => None,
                Some(n) if n < 255 => Some(n as u8),
                _ => return err(toff, format!("resubmit: \"{t}\" is not a table (0..254)")),
            },
        };
        let ct = match parts.get(2).map(|t| t.trim()) {
            None => false,
            Some("ct") => {
                let k = &ctx.key;
                let valid_bits = ct_state::NEW
                    | ct_state::EST
                    | ct_state::REL
                    | ct_state::RPL
                    | ct_state::SNAT
                    | ct_state::DNAT;
                let valid = k.ct_state & ct_state::TRK != 0
                    && (k.ct_state & valid_bits != 0
                        || self.fm.mat.mask.ct_state & ct_state::INV != 0);
                if !valid {
                    return err(
                        aoff,
                        "resubmit(...,ct) needs a match on a valid tracked \
                                      connection (e.g. ct_state=+trk+est)",
                    );
                }
                true
            }
            Some(x) => return err(aoff, format!("resubmit: unknown parameter \"{x}\"")),
        };
        if in_port.is_none() && table.is_none() {
            return err(aoff, "resubmit needs a port or a table");
        }
        Ok(Action::Resubmit { in_port, table, ct })
    }

    fn set_field(&self, aoff: usize, a: &str, ctx: &mut ActCtx) -> R<Action> {
        let Some(i) = a.rfind("->") else {
            return err(aoff, format!("set_field:{a}: missing \"->FIELD\""));
        };
        let (vs, fname) = (&a[..i], &a[i + 2..]);
        let foff = aoff + i + 2;
        let f = match fname {
            "tp_src" | "tp_dst" => tp_field(fname == "tp_src", &ctx.key).ok_or_else(|| PErr {
                off: foff,
                msg: format!("set_field to {fname} needs tcp, udp or sctp in the match"),
                hint: None,
            })?,
            _ => field_by_name(fname).ok_or_else(|| unknown_field(foff, fname))?,
        };
        if !f.writable {
            return err(foff, format!("field {fname} cannot be written by set_field"));
        }
        let (mut value, mut mask) =
            parse_value(f, vs, self.ports).map_err(|m| PErr { off: aoff, msg: m, hint: None })?;
        if let Some((v, m)) = vs.split_once('/') {
            // OVS refuses 1-bits in the value outside the mask.
            if let (Some(v), Some(m)) = (parse_uint(v), parse_uint(m)) {
                if v & !m != 0 {
                    return err(aoff, format!("set_field:{vs}: value has 1-bits outside the mask"));
                }
            }
        }
        match f.id {
            FieldId::NwTos => {
                if value & 3 != 0 {
                    return err(aoff, format!("{vs} is not a valid value for field nw_tos"));
                }
                mask = 0xfc;
            }
            FieldId::VlanVid if value & u128::from(VLAN_CFI) == 0 => {
                let hint = value | 0x1000;
                return err(
                    aoff,
                    format!(
                        "{vs} is not a valid value for field vlan_vid (add 4096 for \
                         \"tag present\", e.g. {hint})"
                    ),
                );
            }
            _ => {}
        }
        value &= mask;
        check_prereq(ctx, f, foff)?;
        Ok(Action::SetField { field: f.id, value, mask, spelling: Spelling::SetField })
    }

    fn load(&self, aoff: usize, a: &str, ctx: &mut ActCtx) -> R<Action> {
        let Some(i) = a.find("->") else {
            return err(aoff, format!("load:{a}: missing \"->FIELD[]\""));
        };
        let (vs, ds) = (&a[..i], &a[i + 2..]);
        let dst = parse_subfield(ds, aoff + i + 2)?;
        let v = parse_uint(vs).ok_or_else(|| PErr {
            off: aoff,
            msg: format!("load:{vs}: not a number"),
            hint: None,
        })?;
        if dst.n_bits < 128 && v >> dst.n_bits != 0 {
            return err(aoff, format!("{a}: value {vs} does not fit into {} bits", dst.n_bits));
        }
        let f = dst.field.field();
        if !f.writable {
            return err(aoff + i + 2, format!("field {} cannot be written by load", f.nxm));
        }
        let mut mask = dst.bits();
        let value = v << dst.ofs;
        if f.id == FieldId::NwTos {
            if value & 3 != 0 {
                return err(aoff, format!("{vs} is not a valid value for field nw_tos"));
            }
            mask &= 0xfc;
        }
        check_prereq(ctx, f, aoff + i + 2)?;
        Ok(Action::SetField { field: f.id, value: value & mask, mask, spelling: Spelling::Load })
    }

    fn move_args(&self, aoff: usize, a: &str) -> R<(Subfield, Subfield)> {
        let Some(i) = a.find("->") else {
            return err(aoff, format!("move:{a}: missing \"->\""));
        };
        let src = parse_subfield(&a[..i], aoff)?;
        let dst = parse_subfield(&a[i + 2..], aoff + i + 2)?;
        if src.n_bits != dst.n_bits {
            return err(
                aoff,
                format!(
                    "{a}: source field is {} bits wide but destination is {} bits wide",
                    src.n_bits, dst.n_bits
                ),
            );
        }
        if !dst.field.field().writable {
            return err(aoff + i + 2, format!("field {} cannot be written by move", &a[i + 2..]));
        }
        Ok((src, dst))
    }

    fn ct(&self, aoff: usize, a: &str, ctx: &mut ActCtx, off: usize) -> R<Action> {
        let mut ct = CtAction {
            commit: false,
            force: false,
            zone: CtZone::Imm(0),
            table: None,
            nat: None,
            exec: Vec::new(),
            alg: None,
        };
        for (o, part) in split_list(a, aoff)? {
            let (k, v) = match part.find(['=', '(']) {
                Some(i) if part.as_bytes()[i] == b'(' => {
                    let Some(inner) = part[i + 1..].strip_suffix(')') else {
                        return err(o, format!("unexpected text after ')' in \"{part}\""));
                    };
                    (&part[..i], Some((o + i + 1, inner)))
                }
                Some(i) => (&part[..i], Some((o + i + 1, &part[i + 1..]))),
                None => (part, None),
            };
            match (k, v) {
                ("commit", None) => ct.commit = true,
                ("force", None) => ct.force = true,
                ("zone", Some((vo, z))) => {
                    ct.zone = match parse_uint(z) {
                        Some(n) if n <= 0xffff => CtZone::Imm(n as u16),
                        Some(_) => return err(vo, format!("zone={z} is out of range (0..65535)")),
                        None => {
                            let sf = parse_subfield(z, vo)?;
                            if sf.n_bits != 16 {
                                return err(
                                    vo,
                                    format!("zone={z}: a zone subfield must be 16 bits"),
                                );
                            }
                            CtZone::Field(sf)
                        }
                    }
                }
                ("table", Some((vo, t))) => match parse_uint(t) {
                    Some(n) if n < 255 => ct.table = Some(n as u8),
                    _ => return err(vo, format!("ct: table={t} is not a table (0..254)")),
                },
                ("nat", v) => ct.nat = Some(parse_nat(o, v)?),
                ("exec", Some((vo, ex))) => {
                    for (eo, etok) in split_list(ex, vo)? {
                        let act = self.parse_action(eo, etok, ctx, true)?;
                        if let Action::SetField { field, .. } = act {
                            if field != FieldId::CtMark {
                                return err(eo, "ct(exec(...)) may only set ct_mark");
                            }
                        }
                        ct.exec.push(act);
                    }
                }
                ("alg", Some((vo, al))) => {
                    ct.alg = Some(match al {
                        "ftp" => 21,
                        "tftp" => 69,
                        _ => match parse_uint(al) {
                            Some(n) if n <= 65535 => n as u16,
                            _ => return err(vo, format!("ct: unknown alg \"{al}\" (ftp, tftp)")),
                        },
                    })
                }
                _ => {
                    let cands = ["commit", "force", "zone", "table", "nat", "exec", "alg"];
                    return Err(PErr {
                        off: o,
                        msg: format!("ct: unknown argument \"{part}\""),
                        hint: suggest(k, cands.iter().copied()),
                    });
                }
            }
        }
        if ct.force && !ct.commit {
            return err(aoff, "\"force\" flag requires \"commit\" flag");
        }
        let nat_needs_commit = ct.nat.as_ref().is_some_and(|n| n.kind != NatKind::Any);
        if !ct.commit && (!ct.exec.is_empty() || nat_needs_commit) {
            return err(aoff, "ct needs \"commit\" when it sets up NAT or runs exec(...)");
        }
        if !is_ip_any(&ctx.key) {
            return err(off, "ct needs \"ip\" or \"ipv6\" in the match");
        }
        match ct.alg {
            Some(21) if !prereq_ok(Prereq::Tcp, &ctx.key) => {
                return err(aoff, "ct(alg=ftp) needs \"tcp\" in the match")
            }
            Some(69) if !prereq_ok(Prereq::Udp, &ctx.key) => {
                return err(aoff, "ct(alg=tftp) needs \"udp\" in the match")
            }
            _ => {}
        }
        Ok(Action::Ct(Box::new(ct)))
    }

    fn learn(&self, aoff: usize, a: &str) -> R<LearnSpec> {
        let mut l = LearnSpec {
            table: 1,
            priority: 32768,
            idle_timeout: 0,
            hard_timeout: 0,
            fin_idle_timeout: 0,
            fin_hard_timeout: 0,
            cookie: 0,
            send_flow_rem: false,
            delete_learned: false,
            parts: Vec::new(),
        };
        for (o, part) in split_list(a, aoff)? {
            let (k, v) = match part.find(['=', ':']) {
                Some(i) => (&part[..i], Some((o + i + 1, &part[i + 1..]))),
                None => (part, None),
            };
            let num16 = |v: Option<(usize, &str)>| -> R<u16> {
                let (vo, s) = v.ok_or_else(|| PErr {
                    off: o,
                    msg: format!("learn: {k} needs a value"),
                    hint: None,
                })?;
                match parse_uint(s) {
                    Some(n) if n <= 65535 => Ok(n as u16),
                    _ => err(vo, format!("learn: {k}={s} is out of range (0..65535)")),
                }
            };
            match k {
                "table" => {
                    let t = num16(v)?;
                    if t > 254 {
                        return err(o, format!("learn: table={t} is not a table (0..254)"));
                    }
                    l.table = t as u8;
                }
                "priority" => l.priority = num16(v)?,
                "idle_timeout" => l.idle_timeout = num16(v)?,
                "hard_timeout" => l.hard_timeout = num16(v)?,
                "fin_idle_timeout" => l.fin_idle_timeout = num16(v)?,
                "fin_hard_timeout" => l.fin_hard_timeout = num16(v)?,
                "cookie" => {
                    let (vo, s) = v.unwrap_or((o, ""));
                    l.cookie =
                        parse_uint(s).filter(|c| *c <= u128::from(u64::MAX)).ok_or_else(|| {
                            PErr { off: vo, msg: format!("learn: bad cookie \"{s}\""), hint: None }
                        })? as u64;
                }
                "send_flow_rem" => l.send_flow_rem = true,
                "delete_learned" => l.delete_learned = true,
                "load" if part.as_bytes().get(4) == Some(&b':') => {
                    let (vo, s) = v.unwrap_or((o, ""));
                    let Some(i) = s.find("->") else {
                        return err(vo, format!("learn: load:{s}: missing \"->\""));
                    };
                    let dst = parse_subfield(&s[i + 2..], vo + i + 2)?;
                    let src_s = &s[..i];
                    if let Some(imm) = parse_uint(src_s) {
                        if dst.n_bits < 128 && imm >> dst.n_bits != 0 {
                            return err(
                                vo,
                                format!(
                                    "learn: value {src_s} does not fit into {} bits",
                                    dst.n_bits
                                ),
                            );
                        }
                        l.parts.push(LearnPart::LoadImm { value: imm, dst });
                    } else {
                        let src = parse_subfield(src_s, vo)?;
                        if src.n_bits != dst.n_bits {
                            return err(
                                vo,
                                format!(
                                    "learn: load:{s}: source is {} bits wide but \
                                                    destination is {} bits wide",
                                    src.n_bits, dst.n_bits
                                ),
                            );
                        }
                        l.parts.push(LearnPart::LoadField { src, dst });
                    }
                }
                "output" if part.as_bytes().get(6) == Some(&b':') => {
                    let (vo, s) = v.unwrap_or((o, ""));
                    l.parts.push(LearnPart::OutputField { src: parse_subfield(s, vo)? });
                }
                _ => {
                    let (k, v) = match part.find('=') {
                        Some(i) => (&part[..i], Some((o + i + 1, &part[i + 1..]))),
                        None => (part, None),
                    };
                    let dst = parse_subfield(k, o)?;
                    match v {
                        None => l.parts.push(LearnPart::MatchField { dst, src: dst }),
                        Some((vo, s)) => {
                            if s.contains(|c: char| c.is_ascii_uppercase()) || s.contains('[') {
                                if let Ok(src) = parse_subfield(s, vo) {
                                    if src.n_bits != dst.n_bits {
                                        return err(
                                            vo,
                                            format!(
                                                "learn: {part}: bit widths differ \
                                                                ({} and {})",
                                                dst.n_bits, src.n_bits
                                            ),
                                        );
                                    }
                                    l.parts.push(LearnPart::MatchField { dst, src });
                                    continue;
                                }
                            }
                            let f = dst.field.field();
                            let value = if dst.ofs == 0 && dst.n_bits == f.width {
                                parse_value(f, s, self.ports)
                                    .map_err(|m| PErr {
                                        off: vo,
                                        msg: format!("learn: {m}"),
                                        hint: None,
                                    })?
                                    .0
                            } else {
                                let n = parse_uint(s).ok_or_else(|| PErr {
                                    off: vo,
                                    msg: format!(
                                        "learn: {part}: cannot parse \"{s}\" as a subfield \
                                         or a number"
                                    ),
                                    hint: None,
                                })?;
                                if dst.n_bits < 128 && n >> dst.n_bits != 0 {
                                    return err(
                                        vo,
                                        format!(
                                            "learn: value {s} does not fit into {} bits",
                                            dst.n_bits
                                        ),
                                    );
                                }
                                n
                            };
                            l.parts.push(LearnPart::MatchImm { dst, value });
                        }
                    }
                }
            }
        }
        Ok(l)
    }
}

/// The state `ofpacts_check` tracks while walking actions.
struct ActCtx {
    key: FlowKey,
    table: u8,
}

/// The transport port field `mod_tp_src` / `set_field:..->tp_src` means for this flow.
fn tp_field(src: bool, k: &FlowKey) -> Option<&'static Field> {
    let id = if prereq_ok(Prereq::Tcp, k) {
        if src {
            FieldId::TcpSrc
        } else {
            FieldId::TcpDst
        }
    } else if prereq_ok(Prereq::Udp, k) {
        if src {
            FieldId::UdpSrc
        } else {
            FieldId::UdpDst
        }
    } else if prereq_ok(Prereq::Sctp, k) {
        if src {
            FieldId::SctpSrc
        } else {
            FieldId::SctpDst
        }
    } else {
        return None;
    };
    Some(id.field())
}

fn check_prereq(ctx: &ActCtx, f: &Field, off: usize) -> R<()> {
    // OVS: writing OXM vlan_vid needs an existing VLAN header.
    let need = if f.id == FieldId::VlanVid { Prereq::Vlan } else { f.prereq };
    if prereq_ok(need, &ctx.key) {
        return Ok(());
    }
    Err(PErr {
        off,
        msg: format!("cannot write {} here: it needs {} in the match", f.name, prereq_text(need)),
        hint: None,
    })
}

fn check_sub_prereq(ctx: &ActCtx, sf: &Subfield, off: usize, role: &str) -> R<()> {
    let f = sf.field.field();
    if prereq_ok(f.prereq, &ctx.key) {
        return Ok(());
    }
    err(off, format!("{role} field {} needs {} in the match", f.nxm, prereq_text(f.prereq)))
}

/// `nat`, `nat(src)`, `nat(src=IP[-IP][:PORT[-PORT]][,random|hash|persistent])`.
fn parse_nat(off: usize, v: Option<(usize, &str)>) -> R<NatSpec> {
    let mut n = NatSpec {
        kind: NatKind::Any,
        addrs: None,
        ports: (0, 0),
        random: false,
        hash: false,
        persistent: false,
    };
    let Some((vo, inner)) = v else { return Ok(n) };
    for (o, part) in split_list(inner, vo)? {
        let (k, val) = match part.split_once('=') {
            Some((k, v)) => (k, Some((o + k.len() + 1, v))),
            None => (part, None),
        };
        match k {
            "src" | "dst" => {
                if n.kind != NatKind::Any {
                    return err(o, "nat: only one of src and dst may be given");
                }
                n.kind = if k == "src" { NatKind::Src } else { NatKind::Dst };
                if let Some((ro, r)) = val {
                    let (addrs, ports) = parse_nat_range(ro, r)?;
                    n.addrs = Some(addrs);
                    n.ports = ports;
                }
            }
            "random" => n.random = true,
            "hash" => n.hash = true,
            "persistent" => n.persistent = true,
            _ => return err(o, format!("nat: unknown argument \"{part}\"")),
        }
    }
    if n.random && n.hash {
        return err(off, "nat: both \"hash\" and \"random\" are not allowed");
    }
    Ok(n)
}

type NatRange = ((IpAddr, IpAddr), (u16, u16));

fn parse_nat_range(off: usize, s: &str) -> R<NatRange> {
    let bad = |m: String| PErr { off, msg: m, hint: None };
    // Split the address part from ":PORT[-PORT]". IPv6 addresses with ports are bracketed.
    let (addr_s, port_s) = if s.starts_with('[') {
        let close = s.rfind(']').ok_or_else(|| bad(format!("nat: \"{s}\": missing ']'")))?;
        match s[close + 1..].strip_prefix(':') {
            Some(p) => (&s[..=close], Some(p)),
            None if close + 1 == s.len() => (s, None),
            None => return Err(bad(format!("nat: \"{s}\": unexpected text after ']'"))),
        }
    } else if s.matches(':').count() == 1 {
        let (a, p) = s.split_once(':').unwrap_or((s, ""));
        (a, Some(p))
    } else {
        (s, None)
    };
    let ip = |t: &str| -> R<IpAddr> {
        let t = t.trim_start_matches('[').trim_end_matches(']');
        t.parse().map_err(|_| bad(format!("nat: \"{t}\" is not a valid IP address")))
    };
    let (lo, hi) = match addr_s.split_once("]-[") {
        Some((a, b)) => (ip(a)?, ip(b)?),
        None => match addr_s.split_once('-') {
            Some((a, b)) => (ip(a)?, ip(b)?),
            None => {
                let a = ip(addr_s)?;
                (a, a)
            }
        },
    };
    if lo.is_ipv4() != hi.is_ipv4() {
        return Err(bad(format!("nat: \"{addr_s}\" mixes IPv4 and IPv6")));
    }
    let order_ok = match (lo, hi) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a <= b,
        (IpAddr::V6(a), IpAddr::V6(b)) => a <= b,
        _ => false,
    };
    if !order_ok {
        return Err(bad(format!("nat: address range \"{addr_s}\" is reversed")));
    }
    let ports = match port_s {
        None => (0, 0),
        Some(p) => {
            let num = |t: &str| -> R<u16> {
                parse_uint(t)
                    .filter(|v| (1..=65535).contains(v))
                    .map(|v| v as u16)
                    .ok_or_else(|| bad(format!("nat: \"{t}\" is not a valid port (1..65535)")))
            };
            let (a, b) = match p.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let a = num(p)?;
                    (a, a)
                }
            };
            if a > b {
                return Err(bad(format!("nat: port range \"{p}\" is reversed")));
            }
            (a, b)
        }
    };
    Ok(((lo, hi), ports))
}

/// `note:` bytes: hex pairs, optionally separated by `.`; zero-padded as OVS sends them
/// (the action is a multiple of 8 bytes, so the note is 6 + 8k bytes).
fn parse_note(off: usize, s: &str) -> R<Vec<u8>> {
    let mut out = Vec::new();
    let digits: Vec<(usize, char)> = s.char_indices().filter(|(_, c)| *c != '.').collect();
    for pair in digits.chunks(2) {
        let (i, a) = pair[0];
        let b = pair.get(1).map(|p| p.1);
        let (Some(x), Some(y)) = (a.to_digit(16), b.and_then(|b| b.to_digit(16))) else {
            return err(off + i, "bad hex digit in note (expected hex byte pairs like 01.02)");
        };
        out.push((x * 16 + y) as u8);
    }
    let total = (10 + out.len()).div_ceil(8) * 8;
    out.resize(total - 10, 0);
    Ok(out)
}

/// Neutron OVS-agent DVR flows (reference/neutron-dvr-flows.md §4, in the OVS 2.5 dump
/// form, with the abbreviations and placeholders expanded).
#[cfg(test)]
pub(crate) const NEUTRON_DVR_FLOWS: &[&str] = &[
    "table=0, priority=1,in_port=1 actions=resubmit(,1)",
    "table=0, priority=1,in_port=2 actions=resubmit(,4)",
    "table=0, priority=0 actions=drop",
    "table=1, priority=3,arp,dl_vlan=1,arp_tpa=10.0.0.1 actions=drop",
    "table=1, priority=3,icmp6,dl_vlan=1,dl_src=fa:16:3e:5e:30:73,icmp_type=134 actions=drop",
    "table=1, priority=3,arp,dl_vlan=2,arp_tpa=10.1.0.1 actions=drop",
    "table=1, priority=2,dl_vlan=1,dl_dst=fa:16:3e:9c:cf:de actions=drop",
    "table=1, priority=2,dl_vlan=2,dl_dst=fa:16:3e:5c:3d:f9 actions=drop",
    "table=1, priority=1,dl_vlan=1,\
    dl_src=fa:16:3e:9c:cf:de actions=mod_dl_src:fa:16:3f:73:c3:04,resubmit(,2)",
    "table=1, priority=1,dl_vlan=1,\
    dl_src=fa:16:3e:5e:30:73 actions=mod_dl_src:fa:16:3f:73:c3:04,resubmit(,2)",
    "table=1, priority=1,dl_vlan=2,\
    dl_src=fa:16:3e:5c:3d:f9 actions=mod_dl_src:fa:16:3f:73:c3:04,resubmit(,2)",
    "table=1, priority=0 actions=resubmit(,2)",
    "table=2, priority=1,arp,dl_dst=ff:ff:ff:ff:ff:ff actions=resubmit(,21)",
    "table=2, priority=0,dl_dst=00:00:00:00:00:00/01:00:00:00:00:00 actions=resubmit(,20)",
    "table=2, priority=0,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=resubmit(,22)",
    "table=3, priority=0 actions=drop",
    "table=4, priority=0 actions=drop",
    "table=6, priority=0 actions=drop",
    "table=4, priority=1,tun_id=0x42 actions=mod_vlan_vid:1,resubmit(,9)",
    "table=4, priority=1,tun_id=0x5 actions=mod_vlan_vid:2,resubmit(,9)",
    "table=9, priority=1,dl_src=fa:16:3f:59:35:b1 actions=output:1",
    "table=9, priority=0 actions=resubmit(,10)",
    "table=10, priority=1 actions=learn(table=20,hard_timeout=300,priority=1,\
    cookie=0x9e4b0a3c41c1d2e5,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],\
    load:0->NXM_OF_VLAN_TCI[],load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],output:OXM_OF_IN_PORT[]),\
    output:1",
    "table=20, priority=2,dl_vlan=1,dl_dst=fa:16:3e:96:e2:a4 actions=strip_vlan,\
    load:0x42->NXM_NX_TUN_ID[],output:3",
    "table=20, priority=2,dl_vlan=1,dl_dst=fa:16:3e:47:34:80 actions=strip_vlan,\
    load:0x42->NXM_NX_TUN_ID[],output:2",
    "table=20, priority=2,dl_vlan=2,dl_dst=fa:16:3e:23:c5:28 actions=strip_vlan,\
    load:0x5->NXM_NX_TUN_ID[],output:3",
    "table=20, priority=2,dl_vlan=2,dl_dst=fa:16:3e:a9:a2:19 actions=strip_vlan,\
    load:0x5->NXM_NX_TUN_ID[],output:2",
    "table=20, priority=0 actions=resubmit(,22)",
    "table=21, priority=1,arp,dl_vlan=1,arp_tpa=10.0.0.4 actions=load:0x2->NXM_OF_ARP_OP[],\
    move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],\
    load:0xfa163e96e2a4->NXM_NX_ARP_SHA[],load:0xa000004->NXM_OF_ARP_SPA[],\
    move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:fa:16:3e:96:e2:a4,IN_PORT",
    "table=21, priority=0 actions=resubmit(,22)",
    "table=22, priority=1,dl_vlan=1 actions=strip_vlan,load:0x42->NXM_NX_TUN_ID[],output:2,\
    output:3",
    "table=22, priority=1,dl_vlan=2 actions=strip_vlan,load:0x5->NXM_NX_TUN_ID[],output:2,\
    output:3",
    "table=22, priority=0 actions=drop",
    "table=0, priority=10,icmp6,in_port=3,icmp_type=136 actions=resubmit(,24)",
    "table=0, priority=10,arp,in_port=3 actions=resubmit(,24)",
    "table=0, priority=9,in_port=3 actions=resubmit(,25)",
    "table=0, priority=9,in_port=7 actions=resubmit(,25)",
    "table=0, priority=4,in_port=1,dl_src=fa:16:3f:59:35:b1 actions=resubmit(,2)",
    "table=0, priority=3,in_port=1,vlan_tci=0x0000/0x1fff actions=mod_vlan_vid:3,NORMAL",
    "table=0, priority=2,in_port=2,dl_src=fa:16:3f:59:35:b1 actions=resubmit(,1)",
    "table=0, priority=2,in_port=1 actions=drop",
    "table=0, priority=1 actions=NORMAL",
    "table=0, priority=0 actions=NORMAL",
    "table=1, priority=4,dl_vlan=1,dl_dst=fa:16:3e:76:47:75 actions=strip_vlan,\
    mod_dl_src:fa:16:3e:9c:cf:de,output:3",
    "table=1, priority=4,dl_vlan=2,dl_dst=fa:16:3e:00:00:03 actions=strip_vlan,\
    mod_dl_src:fa:16:3e:5c:3d:f9,output:7",
    "table=1, priority=1 actions=drop",
    "table=2, priority=1 actions=drop",
    "table=23, priority=0 actions=drop",
    "table=24, priority=2,arp,in_port=3,arp_spa=10.0.0.8 actions=resubmit(,25)",
    "table=24, priority=2,icmp6,in_port=3,icmp_type=136,\
    nd_target=fda0:6cec:a994:0:f816:3eff:fe76:4775 actions=NORMAL",
    "table=24, priority=2,icmp6,in_port=3,icmp_type=136,\
    nd_target=fe80::f816:3eff:fe76:4775 actions=NORMAL",
    "table=24, priority=2,arp,in_port=7,arp_spa=10.1.0.12 actions=resubmit(,25)",
    "table=24, priority=0 actions=drop",
    "table=25, priority=2,in_port=3,dl_src=fa:16:3e:76:47:75 actions=NORMAL",
    "table=25, priority=2,in_port=7,dl_src=fa:16:3e:00:00:03 actions=NORMAL",
    "table=0, priority=4,in_port=2,dl_vlan=3 actions=strip_vlan,NORMAL",
    "table=0, priority=2,in_port=2 actions=resubmit(,1)",
    "table=0, priority=1 actions=resubmit(,3)",
    "table=0, priority=0 actions=NORMAL",
    "table=1, priority=0 actions=resubmit(,2)",
    "table=2, priority=2,in_port=2 actions=drop",
    "table=3, priority=2,dl_src=fa:16:3f:59:35:b1 actions=output:2",
    "table=3, priority=1 actions=NORMAL",
    "table=0, priority=1,in_port=2 actions=resubmit(,4)",
    "table=1, priority=1,dl_vlan=2,\
    dl_src=fa:16:3e:9c:cf:de actions=mod_dl_src:fa:16:3f:59:35:b1,resubmit(,2)",
    "table=4, priority=1,tun_id=0x42 actions=mod_vlan_vid:2,resubmit(,9)",
    "table=4, priority=1,tun_id=0x5 actions=mod_vlan_vid:1,resubmit(,9)",
    "table=9, priority=1,dl_src=fa:16:3f:73:c3:04 actions=output:1",
    "table=9, priority=0 actions=resubmit(,10)",
    "table=10, priority=1 actions=learn(table=20,hard_timeout=300,priority=1,\
    cookie=0x9e4b0a3c41c1d2e5,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],\
    load:0->NXM_OF_VLAN_TCI[],load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],output:OXM_OF_IN_PORT[]),\
    output:1",
    "table=20, priority=2,dl_vlan=2,dl_dst=fa:16:3e:76:47:75 actions=strip_vlan,\
    load:0x42->NXM_NX_TUN_ID[],output:2",
    "table=20, priority=2,dl_vlan=2,dl_dst=fa:16:3e:47:34:80 actions=strip_vlan,\
    load:0x42->NXM_NX_TUN_ID[],output:3",
    "table=20, priority=2,dl_vlan=1,dl_dst=fa:16:3e:00:00:03 actions=strip_vlan,\
    load:0x5->NXM_NX_TUN_ID[],output:2",
    "table=20, priority=2,dl_vlan=1,dl_dst=fa:16:3e:a9:a2:19 actions=strip_vlan,\
    load:0x5->NXM_NX_TUN_ID[],output:3",
    "table=20, hard_timeout=300, priority=1,vlan_tci=0x0002/0x0fff,\
    dl_dst=fa:16:3e:76:47:75 actions=load:0->NXM_OF_VLAN_TCI[],load:0x42->NXM_NX_TUN_ID[],\
    output:2",
    "table=0, priority=2,in_port=2,dl_src=fa:16:3f:73:c3:04 actions=resubmit(,1)",
    "table=0, priority=4,in_port=1,dl_src=fa:16:3f:73:c3:04 actions=resubmit(,2)",
    "table=0, priority=1 actions=NORMAL",
    "table=1, priority=4,dl_vlan=1,dl_dst=fa:16:3e:23:c5:28 actions=strip_vlan,\
    mod_dl_src:fa:16:3e:5c:3d:f9,output:3",
    "table=1, priority=4,dl_vlan=2,dl_dst=fa:16:3e:96:e2:a4 actions=strip_vlan,\
    mod_dl_src:fa:16:3e:5e:30:73,output:7",
    "table=0, priority=1,in_port=2 actions=resubmit(,4)",
    "table=4, priority=1,tun_id=0x42 actions=mod_vlan_vid:1,resubmit(,9)",
    "table=9, priority=1,dl_src=fa:16:3f:73:c3:04 actions=output:1",
    "table=0, priority=1,in_port=3 actions=resubmit(,4)",
    "table=1, priority=1,dl_vlan=1,\
    dl_src=fa:16:3e:9c:cf:de actions=mod_dl_src:fa:16:3f:11:22:33,resubmit(,2)",
    "table=0, priority=2,in_port=2,dl_src=fa:16:3f:73:c3:04 actions=resubmit(,1)",
    "table=0, priority=3,in_port=1,vlan_tci=0x0000/0x1fff actions=mod_vlan_vid:2,NORMAL",
    "table=1, priority=4,dl_vlan=1,dl_dst=fa:16:3e:47:34:80 actions=strip_vlan,\
    mod_dl_src:fa:16:3e:9c:cf:de,output:5",
    "table=1, priority=4,dl_vlan=1,dl_dst=fa:16:3e:69:37:93 actions=strip_vlan,\
    mod_dl_src:fa:16:3e:5e:30:73,output:8",
    "table=1, priority=4,dl_vlan=2,dl_dst=fa:16:3e:a9:a2:19 actions=strip_vlan,\
    mod_dl_src:fa:16:3e:5c:3d:f9,output:9",
    "table=0, priority=4,in_port=2,dl_vlan=2 actions=strip_vlan,NORMAL",
    "table=0, priority=2,in_port=2 actions=resubmit(,1)",
    "table=0, priority=1 actions=resubmit(,3)",
    "table=1, priority=0 actions=resubmit(,2)",
    "table=2, priority=2,in_port=2 actions=drop",
    "table=3, priority=1 actions=NORMAL",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn pf(s: &str) -> FlowMod {
        match parse_flow(s, FlowModCommand::Add, &NoNames) {
            Ok(f) => f,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn perr(s: &str) -> String {
        match parse_flow(s, FlowModCommand::Add, &NoNames) {
            Ok(f) => panic!("{s}: parsed as {f:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn basic_flow() {
        let f = pf("table=2,priority=70,cookie=0x5,ip,nw_src=10.0.0.0/24,actions=output:2");
        assert_eq!(f.table, Some(2));
        assert_eq!(f.priority, 70);
        assert_eq!(f.cookie, 5);
        assert_eq!(f.mat.key.dl_type, 0x0800);
        assert_eq!(f.mat.key.nw_src, 0x0a00_0000);
        assert_eq!(f.mat.mask.nw_src, 0xffff_ff00);
        assert_eq!(f.actions, vec![Action::Output { port: 2, max_len: 0 }]);
    }

    #[test]
    fn commands_and_files() {
        let f = parse_flow("delete_strict in_port=1", FlowModCommand::Add, &NoNames).unwrap();
        assert_eq!(f.command, FlowModCommand::DeleteStrict);
        let text = "# comment\n\n in_port=1 actions=drop # trailing\nmodify in_port=2,actions=3\n";
        let v = parse_flows(text, &NoNames).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].0, 3);
        assert_eq!(v[1].0, 4);
        assert_eq!(v[1].1.command, FlowModCommand::Modify);
        let e =
            parse_flows("in_port=1,actions=drop\nin_port=x,actions=drop\n", &NoNames).unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.column, 9);
    }

    #[test]
    fn dump_output_pastes_back() {
        let line = " cookie=0x18f25abfba9cb2e7, duration=61039.306s, table=1, n_packets=2, \
                    n_bytes=240, idle_age=61037, priority=1,dl_vlan=1,dl_src=fa:16:3e:5e:30:73 \
                    actions=mod_dl_src:fa:16:3f:73:c3:04,resubmit(,2)";
        let f = pf(line);
        assert_eq!(f.cookie, 0x18f2_5abf_ba9c_b2e7);
        assert_eq!(f.table, Some(1));
        assert_eq!(f.mat.key.vlan_tci, 0x1001);
        assert_eq!(f.mat.mask.vlan_tci, 0x1fff);
        assert_eq!(f.actions.len(), 2);
    }

    #[test]
    fn vlan_forms() {
        let f = pf("dl_vlan=0xffff,actions=drop");
        assert_eq!((f.mat.key.vlan_tci, f.mat.mask.vlan_tci), (0, 0xffff));
        let f = pf("dl_vlan=5,dl_vlan_pcp=3,actions=drop");
        assert_eq!((f.mat.key.vlan_tci, f.mat.mask.vlan_tci), (0x7005, 0xffff));
        let f = pf("vlan_vid=0x1000/0x1000,actions=drop");
        assert_eq!((f.mat.key.vlan_tci, f.mat.mask.vlan_tci), (0x1000, 0x1000));
        let f = pf("vlan_tci=0x1064/0x1fff,actions=drop");
        assert_eq!((f.mat.key.vlan_tci, f.mat.mask.vlan_tci), (0x1064, 0x1fff));
    }

    #[test]
    fn frag_tos_flags() {
        let f = pf("ip,nw_frag=first,nw_tos=5,actions=drop");
        assert_eq!((f.mat.key.nw_frag, f.mat.mask.nw_frag), (1, 3));
        assert_eq!((f.mat.key.nw_tos, f.mat.mask.nw_tos), (4, 0xfc));
        let f = pf("ip,nw_frag=not_later,ip_dscp=3,nw_ecn=2,actions=drop");
        assert_eq!((f.mat.key.nw_frag, f.mat.mask.nw_frag), (0, 2));
        assert_eq!((f.mat.key.nw_tos, f.mat.mask.nw_tos), (14, 0xff));
        let f = pf("tcp,tcp_flags=+syn-ack,actions=drop");
        assert_eq!((f.mat.key.tcp_flags, f.mat.mask.tcp_flags), (2, 0x12));
        let f = pf("ct_state=+trk+est-new,actions=drop");
        assert_eq!((f.mat.key.ct_state, f.mat.mask.ct_state), (0x22, 0x23));
        let f = pf("ct_state=0x22/0x22,actions=drop");
        assert_eq!((f.mat.key.ct_state, f.mat.mask.ct_state), (0x22, 0x22));
    }

    #[test]
    fn tp_ports_and_aliases() {
        let f = pf("udp6,tp_dst=0x1000/0xf000,actions=drop");
        assert_eq!((f.mat.key.tp_dst, f.mat.mask.tp_dst), (0x1000, 0xf000));
        let f = pf("icmp6,icmp_type=136,nd_target=fe80::1,actions=NORMAL");
        assert_eq!(f.mat.key.tp_src, 136);
        let f = pf("arp,nw_src=10.0.0.1,nw_proto=1,actions=drop");
        assert_eq!(f.mat.key.nw_src, 0x0a00_0001);
        assert_eq!(f.mat.key.nw_proto, 1);
    }

    #[test]
    fn actions_parse() {
        let f = pf("table=10,actions=learn(table=20,hard_timeout=300,priority=1,cookie=0x42,\
                    NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],\
                    load:0->NXM_OF_VLAN_TCI[],load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],\
                    output:OXM_OF_IN_PORT[]),output:1");
        let Action::Learn(l) = &f.actions[0] else { panic!() };
        assert_eq!((l.table, l.hard_timeout, l.priority, l.cookie), (20, 300, 1, 0x42));
        assert_eq!(l.parts.len(), 5);
        assert_eq!(
            l.parts[0],
            LearnPart::MatchField {
                dst: Subfield { field: FieldId::VlanTci, ofs: 0, n_bits: 12 },
                src: Subfield { field: FieldId::VlanTci, ofs: 0, n_bits: 12 },
            }
        );
        let f = pf("actions=load:1->NXM_NX_REG0[4..7],move:NXM_NX_REG0[0..7]->NXM_NX_REG1[8..15]");
        assert_eq!(
            f.actions[0],
            Action::SetField {
                field: FieldId::Reg0,
                value: 0x10,
                mask: 0xf0,
                spelling: Spelling::Load
            }
        );
        let f = pf("ip,actions=ct(commit,zone=NXM_NX_REG0[0..15],\
                    nat(src=10.1.1.240-10.1.1.254:1024-65535,random),\
                    exec(set_field:1->ct_mark),table=3)");
        let Action::Ct(ct) = &f.actions[0] else { panic!() };
        assert!(ct.commit);
        assert_eq!(ct.table, Some(3));
        let nat = ct.nat.as_ref().unwrap();
        assert_eq!(nat.ports, (1024, 65535));
        assert!(nat.random);
        let f = pf("actions=note:01.02");
        assert_eq!(f.actions[0], Action::Note(vec![1, 2, 0, 0, 0, 0]));
        let f = pf("actions=resubmit(,4),resubmit:3,resubmit(3,4),LOCAL,controller:100,5");
        assert_eq!(f.actions[0], Action::Resubmit { in_port: None, table: Some(4), ct: false });
        assert_eq!(f.actions[1], Action::Resubmit { in_port: Some(3), table: None, ct: false });
        assert_eq!(f.actions[3], Action::Output { port: port::LOCAL, max_len: 0 });
        assert_eq!(f.actions[4], Action::Output { port: port::CONTROLLER, max_len: 100 });
        assert_eq!(f.actions[5], Action::Output { port: 5, max_len: 0 });
        assert_eq!(pf("actions=drop").actions, vec![Action::Drop]);
        assert_eq!(pf("actions=").actions, vec![]);
    }

    struct Names;
    impl PortNames for Names {
        fn port_no(&self, name: &str) -> Option<u32> {
            match name {
                "vm1" => Some(3),
                "patch-int" => Some(1),
                _ => None,
            }
        }
        fn port_name(&self, no: u32) -> Option<String> {
            match no {
                3 => Some("vm1".into()),
                1 => Some("patch-int".into()),
                _ => None,
            }
        }
    }

    #[test]
    fn port_names() {
        let f = parse_flow(
            "in_port=vm1,actions=output:patch-int,resubmit(patch-int,2),vm1",
            FlowModCommand::Add,
            &Names,
        )
        .unwrap();
        assert_eq!(f.mat.key.in_port, 3);
        assert_eq!(f.actions[0], Action::Output { port: 1, max_len: 0 });
        assert_eq!(f.actions[1], Action::Resubmit { in_port: Some(1), table: Some(2), ct: false });
        assert_eq!(f.actions[2], Action::Output { port: 3, max_len: 0 });
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            perr("ip,in_port=1,nw_sorc=10.0.0.1,actions=drop"),
            "unknown field \"nw_sorc\" (column 14); did you mean \"nw_src\"?"
        );
        assert!(perr("in_port=abc,actions=drop").contains("\"abc\" is not a valid port"));
        assert!(perr("dl_src=aa:bb:cc,actions=drop").contains("not a valid Ethernet address"));
        assert!(perr("ip,nw_src=10.0.0.300,actions=drop").contains("not a valid IPv4 address"));
        assert!(perr("priority=70000,actions=drop").contains("priority=70000 is out of range"));
        assert!(perr("table=300,actions=drop").contains("table=300 is out of range"));
        let e = perr("reg9=1,actions=drop");
        assert!(e.contains("reg0..reg7"), "{e}");
        let e = perr("nw_src=10.0.0.1,actions=drop");
        assert!(e.contains("field nw_src needs \"ip\""), "{e}");
        assert!(perr("tp_src=80,actions=drop").contains("field tp_src needs tcp"));
        assert!(perr("ip,nw_ttl=5/0xff,actions=drop").contains("does not accept a mask"));
        let e = perr("actions=outptu:1");
        assert_eq!(e, "unknown action \"outptu\" (column 9); did you mean \"output\"?");
        assert!(perr("in_port=1").contains("must specify an action"));
        let e = perr("table=3,actions=goto_table:2");
        assert!(e.contains("must go to a table after the current one (3)"), "{e}");
        let e = perr("actions=goto_table:3,output:1");
        assert!(e.contains("goto_table must be the last action"), "{e}");
        let e = perr("ip,actions=ct(commit,nat(src=10.0.0.1)");
        assert!(e.contains("unbalanced parentheses"), "{e}");
        assert!(e.contains("column 14"), "{e}");
        assert!(perr("actions=drop,output:1").contains("must not be accompanied"));
        assert!(perr("actions=set_field:4097->vlan_vid").contains("needs a VLAN tag"));
        assert!(perr("actions=load:0x1ffff->NXM_NX_REG0[0..15]").contains("does not fit into 16"));
        assert!(perr("actions=move:NXM_NX_REG0[0..7]->NXM_NX_REG1[0..15]")
            .contains("8 bits wide but destination is 16"));
        assert!(perr("actions=ct(commit)").contains("ct needs \"ip\""));
        assert!(perr("ip,actions=ct(force)").contains("requires \"commit\""));
        assert!(perr("actions=output:70000").contains("output to unknown port"));
        assert!(perr("arp,actions=set_field:1.2.3.4->nw_src").contains("cannot write nw_src"));
        assert!(perr("actions=resubmit(,4,ct)").contains("valid tracked"));
        assert!(pf("ct_state=+trk+est,ip,actions=resubmit(,4,ct)").actions.len() == 1);
        assert!(perr("ip,actions=mod_nw_tos:9").contains("not a valid TOS"));
        let e = parse_flow("delete in_port=1,actions=drop", FlowModCommand::Add, &NoNames);
        assert!(e.unwrap_err().message.contains("not allowed when deleting"));
    }

    #[test]
    fn neutron_dvr_flows_parse() {
        let mut n = 0;
        for f in NEUTRON_DVR_FLOWS {
            let fm = pf(f);
            assert!(fm.table.is_some(), "{f}");
            assert!(!fm.actions.is_empty(), "{f}");
            n += 1;
        }
        assert_eq!(n, 96);
        let learn = NEUTRON_DVR_FLOWS.iter().find(|f| f.contains("learn(")).unwrap();
        let fm = pf(learn);
        assert_eq!(fm.table, Some(10));
        let Action::Learn(l) = &fm.actions[0] else { panic!("{learn}") };
        assert_eq!(
            l.parts[1],
            LearnPart::MatchField {
                dst: Subfield::whole(FieldId::DlDst),
                src: Subfield::whole(FieldId::DlSrc),
            }
        );
        assert_eq!(
            l.parts[2],
            LearnPart::LoadImm { value: 0, dst: Subfield::whole(FieldId::VlanTci) }
        );
        assert_eq!(l.parts[4], LearnPart::OutputField { src: Subfield::whole(FieldId::InPortOxm) });
        // The ARP responder: loads into ARP fields are allowed under `arp`.
        let arp = NEUTRON_DVR_FLOWS.iter().find(|f| f.contains("ARP_OP")).unwrap();
        let fm = pf(arp);
        assert_eq!(fm.actions.len(), 8);
        assert_eq!(
            fm.actions[0],
            Action::SetField {
                field: FieldId::ArpOp,
                value: 2,
                mask: 0xff,
                spelling: Spelling::Load,
            }
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("outptu", ACTION_NAMES.iter().copied()).as_deref(),
            Some("did you mean \"output\"?")
        );
        assert_eq!(suggest("zzzzzz", ACTION_NAMES.iter().copied()), None);
        assert_eq!(edit_distance("nw_sorc", "nw_src"), 1);
        let e = parse_flow("ip,actions=ct(comit)", FlowModCommand::Add, &NoNames).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean \"commit\"?"));
        assert_eq!(e.column, 15);
    }

    /// Seeded mutations of real flows: the parser must not panic, and whatever it accepts
    /// must print and parse back to the same text (the `ofctl` fuzz target's property).
    #[test]
    fn mutated_flows_round_trip() {
        use crate::ofproto::format::{format_flow, ActionStyle};
        let alphabet: Vec<char> =
            "0123456789abcdefx:,=()[]./->+-_ \"NXM_OF_ETH_SRCipvtr".chars().collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = |n: usize| -> usize {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut accepted = 0;
        for round in 0..15 {
            for base in NEUTRON_DVR_FLOWS {
                let mut chars: Vec<char> = base.chars().collect();
                for _ in 0..1 + rnd(3) {
                    let i = rnd(chars.len() + 1);
                    match rnd(3) {
                        0 if i < chars.len() => {
                            chars.remove(i);
                        }
                        1 if i < chars.len() => chars[i] = alphabet[rnd(alphabet.len())],
                        _ => chars.insert(i, alphabet[rnd(alphabet.len())]),
                    }
                }
                let text: String = chars.into_iter().collect();
                let _ = parse_flows(&text, &NoNames);
                let Ok(fm) = parse_flow(&text, FlowModCommand::Add, &NoNames) else {
                    continue;
                };
                accepted += 1;
                for style in [ActionStyle::Installed, ActionStyle::Normalized] {
                    let printed = format_flow(&fm, &NoNames, false, style);
                    let again = parse_flow(&printed, FlowModCommand::Add, &NoNames)
                        .unwrap_or_else(|e| panic!("round {round}: {text:?} -> {printed:?}: {e}"));
                    assert_eq!(format_flow(&again, &NoNames, false, style), printed, "{text:?}");
                }
            }
        }
        assert!(accepted > 40, "{accepted}");
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "",
            ",",
            "actions",
            "actions=(",
            "actions=)",
            "a=b=c",
            "ct(",
            "ip,actions=ct(nat(src=[)",
            "actions=learn(load:->)",
            "actions=set_field:->",
            "actions=move:->",
            "actions=note:0",
            "actions=output:NXM_NX_REG0[",
            "actions=load:1->NXM_NX_REG0[99..100]",
            "in_port=\u{e9}\u{e9},actions=drop",
            "actions=resubmit(",
            "actions=\u{1F600}",
        ] {
            let _ = parse_flow(s, FlowModCommand::Add, &NoNames);
            let _ = parse_flows(s, &NoNames);
        }
    }
}
