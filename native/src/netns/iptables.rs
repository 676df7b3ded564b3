//! iptables tables as `iptables -t nat|mangle|raw -S` writes them: policies, chains and
//! rules with the matches and targets Neutron's L3 agent uses.
//!
//! Invariants:
//! - A parsed table has every built-in chain of its kind, in hook order, then the user
//!   chains sorted by name in byte order, as libiptc keeps them; `-S` prints them so.
//! - Every `-j`/`-g` names a built-in target or an existing user chain, no chain reaches
//!   itself, and a NAT, MARK or CT target is only reachable from the hooks where the kernel
//!   accepts it (`checkentry`). So evaluation never meets an unknown chain or a loop.
//! - `format_iptables(parse_iptables(t))` is `t` for text written by `iptables -S` (and by
//!   `iptables -S -v`, whose `-c PACKETS BYTES` are read into the counters).

use super::text::{one_of, parse_mark, parse_net, tokenize, Ipv4Net, ParseError, Tok};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// The tables the namespace contract carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IptTable {
    Nat,
    Mangle,
    Raw,
}

impl IptTable {
    pub fn name(self) -> &'static str {
        match self {
            IptTable::Nat => "nat",
            IptTable::Mangle => "mangle",
            IptTable::Raw => "raw",
        }
    }

    /// The JSON field of the contract that holds the table, used in errors.
    pub fn source(self) -> &'static str {
        match self {
            IptTable::Nat => "iptables_nat",
            IptTable::Mangle => "iptables_mangle",
            IptTable::Raw => "iptables_raw",
        }
    }

    /// Built-in chains in hook order.
    pub fn builtins(self) -> &'static [&'static str] {
        match self {
            IptTable::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
            IptTable::Mangle => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
            IptTable::Raw => &["PREROUTING", "OUTPUT"],
        }
    }
}

/// `-m conntrack --ctstate` bits, as `xt_conntrack.h` numbers them.
pub mod ctstate {
    pub const INVALID: u32 = 1 << 0;
    pub const ESTABLISHED: u32 = 1 << 1;
    pub const RELATED: u32 = 1 << 2;
    pub const NEW: u32 = 1 << 3;
    pub const SNAT: u32 = 1 << 6;
    pub const DNAT: u32 = 1 << 7;
    pub const UNTRACKED: u32 = 1 << 8;
    /// In the order libxt_conntrack prints them.
    pub const NAMES: &[(u32, &str)] = &[
        (INVALID, "INVALID"),
        (NEW, "NEW"),
        (RELATED, "RELATED"),
        (ESTABLISHED, "ESTABLISHED"),
        (UNTRACKED, "UNTRACKED"),
        (SNAT, "SNAT"),
        (DNAT, "DNAT"),
    ];
}

/// Packet and byte counters of a rule or a policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// A `--sport`/`--dport` value: one port or `MIN:MAX`, maybe negated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortMatch {
    pub invert: bool,
    pub min: u16,
    pub max: u16,
}

impl PortMatch {
    pub fn matches(&self, port: u16) -> bool {
        (self.min..=self.max).contains(&port) != self.invert
    }
}

/// A `-m` match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// `-m tcp` (`udp: false`) or `-m udp`.
    Ports { udp: bool, sport: Option<PortMatch>, dport: Option<PortMatch> },
    /// `-m conntrack [!] --ctstate S,...`.
    Conntrack { invert: bool, states: u32 },
    /// `-m mark [!] --mark V[/M]`.
    Mark { invert: bool, value: u32, mask: u32 },
    /// `-m comment --comment TEXT`.
    Comment(String),
}

/// The address and port range of a DNAT or SNAT target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatRange {
    pub addrs: Option<(Ipv4Addr, Ipv4Addr)>, // None: keep the address (`:PORT` alone)
    pub ports: Option<(u16, u16)>,
    pub random: bool,
    pub random_fully: bool,
    pub persistent: bool,
}

/// What a matching rule does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// No `-j`: the rule only counts.
    Continue,
    Accept,
    Drop,
    Return,
    Jump(String),
    Goto(String),
    Dnat(NatRange),
    Snat(NatRange),
    Masquerade {
        ports: Option<(u16, u16)>,
        random: bool,
        random_fully: bool,
    },
    Redirect {
        ports: Option<(u16, u16)>,
        random: bool,
    },
    /// `MARK --set-xmark V/M`: mark = (mark & !M) ^ V.
    Mark {
        value: u32,
        mask: u32,
    },
    /// `CT --notrack`.
    CtNotrack,
}

/// One `-A` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IptRule {
    pub src: Option<(bool, Ipv4Net)>, // (negated, prefix)
    pub dst: Option<(bool, Ipv4Net)>,
    pub iif: Option<(bool, String)>, // a name ending in `+` matches every name it begins
    pub oif: Option<(bool, String)>,
    pub proto: Option<(bool, u8)>,
    pub matches: Vec<Match>,
    pub target: Target,
    pub counters: Counters,
    pub line: usize,
}

/// Built-in chain policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Accept,
    Drop,
}

/// A chain: built-in (with a policy) or user-defined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub policy: Option<Policy>, // Some for a built-in chain
    pub policy_counters: Counters,
    pub rules: Vec<IptRule>,
}

/// One table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iptables {
    pub table: IptTable,
    pub chains: Vec<Chain>,
}

impl Iptables {
    /// The table of a new namespace: built-in chains with policy ACCEPT, no rules.
    pub fn empty(table: IptTable) -> Iptables {
        let chains = table
            .builtins()
            .iter()
            .map(|n| Chain {
                name: n.to_string(),
                policy: Some(Policy::Accept),
                policy_counters: Counters::default(),
                rules: Vec::new(),
            })
            .collect();
        Iptables { table, chains }
    }

    pub fn chain_index(&self, name: &str) -> Option<usize> {
        self.chains.iter().position(|c| c.name == name)
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }
}

/// Interface name matching of `ip_packet_match()`: a trailing `+` makes a prefix.
pub fn iface_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('+') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

const PROTOS: &[(u8, &str)] = &[
    (1, "icmp"),
    (6, "tcp"),
    (17, "udp"),
    (50, "esp"),
    (51, "ah"),
    (132, "sctp"),
    (136, "udplite"),
];

fn proto_name(p: u8) -> String {
    PROTOS.iter().find(|(n, _)| *n == p).map_or_else(|| p.to_string(), |(_, s)| s.to_string())
}

const MATCHES: &[&str] = &["tcp", "udp", "conntrack", "mark", "comment"];
const TARGETS: &[&str] =
    &["ACCEPT", "DROP", "RETURN", "DNAT", "SNAT", "MASQUERADE", "REDIRECT", "MARK", "CT"];

type PResult<T> = Result<T, (usize, String)>;

fn perr<T>(col: usize, msg: impl Into<String>) -> PResult<T> {
    Err((col, msg.into()))
}

/// Parses `iptables -t TABLE -S` output.
pub fn parse_iptables(table: IptTable, text: &str) -> Result<Iptables, ParseError> {
    let source = table.source();
    let mut t = Iptables::empty(table);
    let mut user: Vec<Chain> = Vec::new();
    // (chain name, rule index, line, column of the target) of each jump, checked at the end.
    let mut jumps: Vec<(String, usize, usize, usize)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let e = |(col, msg): (usize, String)| ParseError::new(source, line_no, col, msg);
        let toks = tokenize(line, true).map_err(e)?;
        let Some(cmd) = toks.first() else { continue };
        let name =
            toks.get(1).ok_or_else(|| e((cmd.col, format!("\"{}\" needs a chain", cmd.text))))?;
        let builtin = table.builtins().contains(&name.text.as_str());
        match cmd.text.as_str() {
            "-P" => {
                if !builtin {
                    return Err(e((name.col, not_builtin(table, &name.text))));
                }
                let p = toks.get(2).ok_or_else(|| e((name.col, "\"-P\" needs a policy".into())))?;
                let policy = match p.text.as_str() {
                    "ACCEPT" => Policy::Accept,
                    "DROP" if table != IptTable::Nat => Policy::Drop,
                    _ => return Err(e((p.col, format!("bad policy \"{}\"", p.text)))),
                };
                let mut counters = Counters::default();
                let rest = &toks[3..];
                match rest {
                    [] => {}
                    [c, p, b] if c.text == "-c" => counters = parse_counters(p, b).map_err(e)?,
                    [x, ..] => return Err(e((x.col, format!("unexpected \"{}\"", x.text)))),
                }
                let c = t.chains.iter_mut().find(|c| c.name == name.text);
                if let Some(c) = c {
                    c.policy = Some(policy);
                    c.policy_counters = counters;
                }
            }
            "-N" => {
                if builtin || user.iter().any(|c| c.name == name.text) {
                    return Err(e((name.col, format!("chain \"{}\" already exists", name.text))));
                }
                if TARGETS.contains(&name.text.as_str()) || !plain_name(&name.text, 28) {
                    return Err(e((name.col, format!("bad chain name \"{}\"", name.text))));
                }
                if let Some(x) = toks.get(2) {
                    return Err(e((x.col, format!("unexpected \"{}\"", x.text))));
                }
                user.push(Chain {
                    name: name.text.clone(),
                    policy: None,
                    policy_counters: Counters::default(),
                    rules: Vec::new(),
                });
            }
            "-A" => {
                let rule = parse_rule(table, &toks[2..], line_no).map_err(e)?;
                let chain = if builtin {
                    t.chains.iter_mut().find(|c| c.name == name.text)
                } else {
                    user.iter_mut().find(|c| c.name == name.text)
                };
                let Some(chain) = chain else {
                    return Err(e((
                        name.col,
                        format!("no chain \"{}\" (a \"-N\" line)", name.text),
                    )));
                };
                if let Target::Jump(j) | Target::Goto(j) = &rule.target {
                    let col = toks.iter().rev().find(|t| t.text == *j).map_or(0, |t| t.col);
                    jumps.push((name.text.clone(), chain.rules.len(), line_no, col));
                }
                chain.rules.push(rule);
            }
            w => {
                return Err(e((
                    cmd.col,
                    format!("unknown command \"{w}\"; expected one of -P, -N, -A"),
                )))
            }
        }
    }
    user.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    t.chains.extend(user);
    check_jumps(&t, &jumps)?;
    Ok(t)
}

/// A chain or interface name iptables can print back as one word: at most `max` bytes,
/// no white space or quotes, not an option or `!`.
fn plain_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && !s.starts_with(['-', '!'])
        && !s.chars().any(|c| c.is_whitespace() || c == '"' || c == '\\')
}

fn not_builtin(table: IptTable, name: &str) -> String {
    format!(
        "\"{name}\" is not a built-in chain of table {}; expected one of {}",
        table.name(),
        one_of(table.builtins())
    )
}

fn parse_counters(p: &Tok, b: &Tok) -> PResult<Counters> {
    let n =
        |t: &Tok| t.text.parse::<u64>().map_err(|_| (t.col, format!("bad counter \"{}\"", t.text)));
    Ok(Counters { packets: n(p)?, bytes: n(b)? })
}

/// Where option words go after `-m NAME` or `-j NAME`.
enum Ctx {
    Base,
    Match(usize),
    Target,
}

fn parse_rule(table: IptTable, toks: &[Tok], line: usize) -> PResult<IptRule> {
    let mut r = IptRule {
        src: None,
        dst: None,
        iif: None,
        oif: None,
        proto: None,
        matches: Vec::new(),
        target: Target::Continue,
        counters: Counters::default(),
        line,
    };
    let mut ctx = Ctx::Base;
    // Options still required by each match and by the target: (column of the name, option).
    let mut match_needs: Vec<Option<(usize, &str)>> = Vec::new();
    let mut target_needs: Option<(usize, &str)> = None;
    let mut has_target = false;
    let mut k = 0;
    while k < toks.len() {
        let mut invert = false;
        let mut t = &toks[k];
        if t.text == "!" {
            invert = true;
            k += 1;
            t = toks.get(k).ok_or_else(|| (t.col, "\"!\" needs an option after it".to_string()))?;
        }
        let arg = toks.get(k + 1).ok_or_else(|| (t.col, format!("\"{}\" needs a value", t.text)));
        if invert
            && matches!(
                t.text.as_str(),
                "-m" | "--match" | "-j" | "--jump" | "-g" | "--goto" | "-c"
            )
        {
            return perr(t.col, format!("\"{}\" cannot be negated", t.text));
        }
        match t.text.as_str() {
            "-s" | "--source" | "-d" | "--destination" => {
                let a = arg?;
                let net = parse_net(&a.text)
                    .ok_or_else(|| (a.col, format!("bad address \"{}\"", a.text)))?;
                if matches!(t.text.as_str(), "-s" | "--source") {
                    r.src = Some((invert, net));
                } else {
                    r.dst = Some((invert, net));
                }
                k += 2;
                ctx = Ctx::Base;
            }
            "-i" | "--in-interface" | "-o" | "--out-interface" => {
                let a = arg?;
                if !plain_name(&a.text, 15) {
                    return perr(a.col, format!("bad interface name \"{}\"", a.text));
                }
                let v = Some((invert, a.text.clone()));
                if matches!(t.text.as_str(), "-i" | "--in-interface") {
                    r.iif = v;
                } else {
                    r.oif = v;
                }
                k += 2;
                ctx = Ctx::Base;
            }
            "-p" | "--protocol" => {
                let a = arg?;
                let p = PROTOS
                    .iter()
                    .find(|(_, n)| *n == a.text)
                    .map(|(p, _)| *p)
                    .or_else(|| a.text.parse::<u8>().ok().filter(|&p| p != 0))
                    .ok_or_else(|| (a.col, format!("unknown protocol \"{}\"", a.text)))?;
                r.proto = Some((invert, p));
                k += 2;
                ctx = Ctx::Base;
            }
            "-m" | "--match" => {
                let a = arg?;
                let (m, need) = match a.text.as_str() {
                    "tcp" | "udp" => {
                        let want = if a.text == "tcp" { 6 } else { 17 };
                        if r.proto != Some((false, want)) {
                            let msg = format!("\"-m {0}\" needs \"-p {0}\" before it", a.text);
                            return perr(a.col, msg);
                        }
                        (Match::Ports { udp: want == 17, sport: None, dport: None }, None)
                    }
                    "conntrack" => {
                        (Match::Conntrack { invert: false, states: 0 }, Some("--ctstate"))
                    }
                    "mark" => (Match::Mark { invert: false, value: 0, mask: 0 }, Some("--mark")),
                    "comment" => (Match::Comment(String::new()), Some("--comment")),
                    w => {
                        let msg =
                            format!("unknown match \"{w}\"; expected one of {}", one_of(MATCHES));
                        return perr(a.col, msg);
                    }
                };
                r.matches.push(m);
                match_needs.push(need.map(|n| (a.col, n)));
                ctx = Ctx::Match(r.matches.len() - 1);
                k += 2;
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                if has_target {
                    return perr(t.col, "a second target");
                }
                has_target = true;
                let a = arg?;
                let goto = matches!(t.text.as_str(), "-g" | "--goto");
                let only = |tbl: IptTable| -> PResult<()> {
                    if table == tbl {
                        Ok(())
                    } else {
                        perr(a.col, format!("{} is only valid in table {}", a.text, tbl.name()))
                    }
                };
                let (target, need) = match a.text.as_str() {
                    _ if goto => (Target::Goto(a.text.clone()), None),
                    "ACCEPT" => (Target::Accept, None),
                    "DROP" if table == IptTable::Nat => {
                        return perr(a.col, "the nat table cannot DROP");
                    }
                    "DROP" => (Target::Drop, None),
                    "RETURN" => (Target::Return, None),
                    "DNAT" => {
                        only(IptTable::Nat)?;
                        (Target::Dnat(empty_range()), Some("--to-destination"))
                    }
                    "SNAT" => {
                        only(IptTable::Nat)?;
                        (Target::Snat(empty_range()), Some("--to-source"))
                    }
                    "MASQUERADE" => {
                        only(IptTable::Nat)?;
                        (
                            Target::Masquerade { ports: None, random: false, random_fully: false },
                            None,
                        )
                    }
                    "REDIRECT" => {
                        only(IptTable::Nat)?;
                        (Target::Redirect { ports: None, random: false }, None)
                    }
                    "MARK" => {
                        only(IptTable::Mangle)?;
                        (Target::Mark { value: 0, mask: 0 }, Some("--set-xmark"))
                    }
                    "CT" => {
                        only(IptTable::Raw)?;
                        (Target::CtNotrack, Some("--notrack"))
                    }
                    // Whether a chain of that name exists is checked once the table is read.
                    w => (Target::Jump(w.to_string()), None),
                };
                r.target = target;
                target_needs = need.map(|n| (a.col, n));
                ctx = if goto { Ctx::Base } else { Ctx::Target };
                k += 2;
            }
            "-c" => {
                let p = arg?;
                let b = toks
                    .get(k + 2)
                    .ok_or_else(|| (t.col, "\"-c\" needs two counters".to_string()))?;
                r.counters = parse_counters(p, b)?;
                k += 3;
            }
            o if o.starts_with("--") => match ctx {
                Ctx::Match(i) => {
                    k = match_option(&mut r.matches[i], toks, k, invert)?;
                    match_needs[i] = None;
                }
                Ctx::Target => {
                    if invert {
                        return perr(t.col, format!("\"{o}\" cannot be negated"));
                    }
                    k = target_option(&mut r.target, toks, k)?;
                    target_needs = target_needs.filter(|(_, n)| !(*n == o || o == "--set-mark"));
                }
                Ctx::Base => {
                    return perr(t.col, format!("option \"{o}\" outside a match or target"))
                }
            },
            w => return perr(t.col, format!("unexpected \"{w}\"")),
        }
    }
    if let Some((col, need)) = match_needs.into_iter().flatten().next().or(target_needs) {
        return perr(col, format!("needs {need}"));
    }
    Ok(r)
}

fn empty_range() -> NatRange {
    NatRange { addrs: None, ports: None, random: false, random_fully: false, persistent: false }
}

/// One option of the match at `r.matches[i]`; returns the index after it.
fn match_option(m: &mut Match, toks: &[Tok], k: usize, invert: bool) -> PResult<usize> {
    let t = &toks[k];
    let a = toks.get(k + 1).ok_or_else(|| (t.col, format!("\"{}\" needs a value", t.text)));
    match m {
        Match::Ports { udp, sport, dport } => {
            let which = match t.text.as_str() {
                "--sport" | "--source-port" => sport,
                "--dport" | "--destination-port" => dport,
                o => {
                    let m = if *udp { "udp" } else { "tcp" };
                    return perr(
                        t.col,
                        format!(
                            "unknown option \"{o}\" for match \"{m}\"; expected one of \
                             --sport, --dport"
                        ),
                    );
                }
            };
            let a = a?;
            *which = Some(parse_ports(a, ':').map(|(min, max)| PortMatch { invert, min, max })?);
        }
        Match::Conntrack { invert: inv, states } => {
            if t.text != "--ctstate" {
                return perr(
                    t.col,
                    format!(
                        "unknown option \"{}\" for match \"conntrack\"; expected --ctstate",
                        t.text
                    ),
                );
            }
            let a = a?;
            *inv = invert;
            *states = 0;
            for w in a.text.split(',') {
                let bit = ctstate::NAMES
                    .iter()
                    .find(|(_, n)| *n == w)
                    .map(|(b, _)| *b)
                    .ok_or_else(|| {
                        let names: Vec<&str> = ctstate::NAMES.iter().map(|(_, n)| *n).collect();
                        (
                            a.col,
                            format!("unknown ctstate \"{w}\"; expected one of {}", one_of(&names)),
                        )
                    })?;
                *states |= bit;
            }
        }
        Match::Mark { invert: inv, value, mask } => {
            if t.text != "--mark" {
                return perr(
                    t.col,
                    format!("unknown option \"{}\" for match \"mark\"; expected --mark", t.text),
                );
            }
            let a = a?;
            let (v, m) =
                parse_mark(&a.text).ok_or_else(|| (a.col, format!("bad mark \"{}\"", a.text)))?;
            (*inv, *value, *mask) = (invert, v, m);
            if v & !m != 0 {
                return perr(a.col, format!("mark \"{}\" has bits outside its mask", a.text));
            }
        }
        Match::Comment(c) => {
            if invert || t.text != "--comment" {
                return perr(
                    t.col,
                    format!(
                        "unknown option \"{}\" for match \"comment\"; expected --comment",
                        t.text
                    ),
                );
            }
            *c = a?.text.clone();
        }
    }
    Ok(k + 2)
}

/// `P` or `P<sep>Q`.
fn parse_ports(a: &Tok, sep: char) -> PResult<(u16, u16)> {
    let bad = || (a.col, format!("bad port \"{}\"", a.text));
    let p = |s: &str| s.parse::<u16>().map_err(|_| bad());
    let (min, max) = match a.text.split_once(sep) {
        Some((x, y)) => (p(x)?, p(y)?),
        None => {
            let v = p(&a.text)?;
            (v, v)
        }
    };
    if min > max {
        return Err(bad());
    }
    Ok((min, max))
}

/// `IP[-IP][:PORT[-PORT]]`.
fn parse_nat_range(a: &Tok) -> PResult<NatRange> {
    let bad = || (a.col, format!("bad NAT range \"{}\"", a.text));
    let (ips, ports) = match a.text.split_once(':') {
        Some((i, p)) => (i, Some(p)),
        None => (a.text.as_str(), None),
    };
    let mut r = empty_range();
    if !ips.is_empty() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().map_err(|_| bad());
        let (lo, hi) = match ips.split_once('-') {
            Some((x, y)) => (ip(x)?, ip(y)?),
            None => (ip(ips)?, ip(ips)?),
        };
        if u32::from(lo) > u32::from(hi) {
            return Err(bad());
        }
        r.addrs = Some((lo, hi));
    }
    if let Some(p) = ports {
        let t = Tok { text: p.to_string(), col: a.col };
        r.ports = Some(parse_ports(&t, '-').map_err(|_| bad())?);
    }
    if r.addrs.is_none() && r.ports.is_none() {
        return Err(bad());
    }
    Ok(r)
}

/// One option of the target; returns the index after it.
fn target_option(target: &mut Target, toks: &[Tok], k: usize) -> PResult<usize> {
    let t = &toks[k];
    let o = t.text.as_str();
    let a = || toks.get(k + 1).ok_or_else(|| (t.col, format!("\"{o}\" needs a value")));
    let unknown = |name: &str, opts: &[&str]| {
        let msg =
            format!("unknown option \"{o}\" for target {name}; expected one of {}", one_of(opts));
        perr(t.col, msg)
    };
    let (name, to, n) = match target {
        Target::Dnat(n) => ("DNAT", "--to-destination", n),
        Target::Snat(n) => ("SNAT", "--to-source", n),
        Target::Masquerade { ports, random, random_fully } => {
            return match o {
                "--to-ports" => {
                    *ports = Some(parse_ports(a()?, '-')?);
                    Ok(k + 2)
                }
                "--random" => {
                    *random = true;
                    Ok(k + 1)
                }
                "--random-fully" => {
                    *random_fully = true;
                    Ok(k + 1)
                }
                _ => unknown("MASQUERADE", &["--to-ports", "--random", "--random-fully"]),
            }
        }
        Target::Redirect { ports, random } => {
            return match o {
                "--to-ports" => {
                    *ports = Some(parse_ports(a()?, '-')?);
                    Ok(k + 2)
                }
                "--random" => {
                    *random = true;
                    Ok(k + 1)
                }
                _ => unknown("REDIRECT", &["--to-ports", "--random"]),
            }
        }
        Target::Mark { value, mask } => {
            return match o {
                "--set-xmark" | "--set-mark" => {
                    let a = a()?;
                    let (v, m) = parse_mark(&a.text)
                        .ok_or_else(|| (a.col, format!("bad mark \"{}\"", a.text)))?;
                    // libxt_MARK: --set-mark V/M is --set-xmark V/(V|M).
                    (*value, *mask) = if o == "--set-mark" { (v, v | m) } else { (v, m) };
                    Ok(k + 2)
                }
                _ => unknown("MARK", &["--set-xmark", "--set-mark"]),
            };
        }
        Target::CtNotrack => {
            return match o {
                "--notrack" => Ok(k + 1),
                _ => unknown("CT", &["--notrack"]),
            }
        }
        _ => return perr(t.col, format!("unexpected option \"{o}\" for this target")),
    };
    match o {
        _ if o == to => {
            let flags = (n.random, n.random_fully, n.persistent);
            *n = parse_nat_range(a()?)?;
            (n.random, n.random_fully, n.persistent) = flags;
            return Ok(k + 2);
        }
        "--random" => n.random = true,
        "--random-fully" => n.random_fully = true,
        "--persistent" => n.persistent = true,
        _ => return unknown(name, &[to, "--random", "--random-fully", "--persistent"]),
    }
    Ok(k + 1)
}

/// Hooks (built-in chains) each chain is reachable from.
fn reachability(t: &Iptables) -> Vec<BTreeSet<usize>> {
    let mut reach: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); t.chains.len()];
    for h in 0..t.table.builtins().len() {
        let mut stack = vec![h];
        while let Some(c) = stack.pop() {
            if !reach[c].insert(h) {
                continue;
            }
            for r in &t.chains[c].rules {
                if let Target::Jump(j) | Target::Goto(j) = &r.target {
                    if let Some(i) = t.chain_index(j) {
                        stack.push(i);
                    }
                }
            }
        }
    }
    reach
}

fn check_jumps(t: &Iptables, jumps: &[(String, usize, usize, usize)]) -> Result<(), ParseError> {
    let source = t.table.source();
    for (chain, idx, line, col) in jumps {
        let Some(c) = t.chain(chain) else { continue };
        let Some(Target::Jump(j) | Target::Goto(j)) = c.rules.get(*idx).map(|r| &r.target) else {
            continue;
        };
        if t.chain_index(j).is_none_or(|i| t.chains[i].policy.is_some()) {
            return Err(ParseError::new(
                source,
                *line,
                *col,
                format!("unknown target \"{j}\"; expected a chain or one of {}", one_of(TARGETS)),
            ));
        }
    }
    // A loop: a chain that reaches itself.
    for start in 0..t.chains.len() {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(c) = stack.pop() {
            for r in &t.chains[c].rules {
                if let Target::Jump(j) | Target::Goto(j) = &r.target {
                    let Some(i) = t.chain_index(j) else { continue };
                    if i == start {
                        return Err(ParseError::new(
                            source,
                            r.line,
                            0,
                            format!("chain \"{}\" reaches itself (a loop)", t.chains[start].name),
                        ));
                    }
                    if seen.insert(i) {
                        stack.push(i);
                    }
                }
            }
        }
    }
    // Targets the kernel only accepts on some hooks.
    let reach = reachability(t);
    let names = t.table.builtins();
    for (ci, c) in t.chains.iter().enumerate() {
        for r in &c.rules {
            let allowed: &[&str] = match r.target {
                Target::Dnat(_) | Target::Redirect { .. } => &["PREROUTING", "OUTPUT"],
                Target::Snat(_) => &["POSTROUTING", "INPUT"],
                Target::Masquerade { .. } => &["POSTROUTING"],
                _ => continue,
            };
            if let Some(h) = reach[ci].iter().find(|&&h| !allowed.contains(&names[h])) {
                return Err(ParseError::new(
                    source,
                    r.line,
                    0,
                    format!(
                        "this target is not valid in chain {} (reached from {}); the kernel \
                         accepts it only from {}",
                        c.name,
                        names[*h],
                        one_of(allowed)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Writes a string as `xtables_save_string` does: bare when it is made of letters, digits,
/// `_` and `-`, else double-quoted with `"`, `\` and `'` escaped.
fn save_string(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn neg(invert: bool) -> &'static str {
    if invert {
        " !"
    } else {
        ""
    }
}

fn format_range(lo: u16, hi: u16, sep: char) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}{sep}{hi}")
    }
}

fn format_nat_range(n: &NatRange) -> String {
    let mut s = String::new();
    if let Some((lo, hi)) = n.addrs {
        s.push_str(&lo.to_string());
        if lo != hi {
            s.push_str(&format!("-{hi}"));
        }
    }
    if let Some((lo, hi)) = n.ports {
        s.push(':');
        s.push_str(&format_range(lo, hi, '-'));
    }
    s
}

/// Writes one `-A` line as `iptables -S` does (with `-c` counters when asked).
pub fn format_rule(chain: &str, r: &IptRule, counters: bool) -> String {
    let mut s = format!("-A {chain}");
    for (opt, v) in [("-s", &r.src), ("-d", &r.dst)] {
        if let Some((inv, n)) = v {
            s.push_str(&format!("{} {opt} {n}", neg(*inv)));
        }
    }
    for (opt, v) in [("-i", &r.iif), ("-o", &r.oif)] {
        if let Some((inv, n)) = v {
            s.push_str(&format!("{} {opt} {n}", neg(*inv)));
        }
    }
    if let Some((inv, p)) = r.proto {
        s.push_str(&format!("{} -p {}", neg(inv), proto_name(p)));
    }
    for m in &r.matches {
        match m {
            Match::Ports { udp, sport, dport } => {
                s.push_str(if *udp { " -m udp" } else { " -m tcp" });
                for (opt, p) in [("--sport", sport), ("--dport", dport)] {
                    if let Some(p) = p {
                        s.push_str(&format!(
                            "{} {opt} {}",
                            neg(p.invert),
                            format_range(p.min, p.max, ':')
                        ));
                    }
                }
            }
            Match::Conntrack { invert, states } => {
                let names: Vec<&str> = ctstate::NAMES
                    .iter()
                    .filter(|(b, _)| states & b != 0)
                    .map(|(_, n)| *n)
                    .collect();
                s.push_str(&format!(" -m conntrack{} --ctstate {}", neg(*invert), names.join(",")));
            }
            Match::Mark { invert, value, mask } => {
                s.push_str(&format!(
                    " -m mark{} --mark {}",
                    neg(*invert),
                    format_mark(*value, *mask)
                ));
            }
            Match::Comment(c) => s.push_str(&format!(" -m comment --comment {}", save_string(c))),
        }
    }
    if counters {
        s.push_str(&format!(" -c {} {}", r.counters.packets, r.counters.bytes));
    }
    match &r.target {
        Target::Continue => {}
        Target::Accept => s.push_str(" -j ACCEPT"),
        Target::Drop => s.push_str(" -j DROP"),
        Target::Return => s.push_str(" -j RETURN"),
        Target::Jump(c) => s.push_str(&format!(" -j {c}")),
        Target::Goto(c) => s.push_str(&format!(" -g {c}")),
        Target::Dnat(n) | Target::Snat(n) => {
            let (name, to) = match r.target {
                Target::Dnat(_) => ("DNAT", "--to-destination"),
                _ => ("SNAT", "--to-source"),
            };
            s.push_str(&format!(" -j {name} {to} {}", format_nat_range(n)));
            for (on, flag) in [
                (n.random, "--random"),
                (n.random_fully, "--random-fully"),
                (n.persistent, "--persistent"),
            ] {
                if on {
                    s.push_str(&format!(" {flag}"));
                }
            }
        }
        Target::Masquerade { ports, random, random_fully } => {
            s.push_str(" -j MASQUERADE");
            if let Some((lo, hi)) = ports {
                s.push_str(&format!(" --to-ports {}", format_range(*lo, *hi, '-')));
            }
            if *random {
                s.push_str(" --random");
            }
            if *random_fully {
                s.push_str(" --random-fully");
            }
        }
        Target::Redirect { ports, random } => {
            s.push_str(" -j REDIRECT");
            if let Some((lo, hi)) = ports {
                s.push_str(&format!(" --to-ports {}", format_range(*lo, *hi, '-')));
            }
            if *random {
                s.push_str(" --random");
            }
        }
        Target::Mark { value, mask } => {
            s.push_str(&format!(" -j MARK --set-xmark {value:#x}/{mask:#x}"))
        }
        Target::CtNotrack => s.push_str(" -j CT --notrack"),
    }
    s
}

fn format_mark(v: u32, m: u32) -> String {
    if m == u32::MAX {
        format!("{v:#x}")
    } else {
        format!("{v:#x}/{m:#x}")
    }
}

/// Writes the table as `iptables -t TABLE -S` does (`-S -v` with `counters`): policies and
/// chain declarations first, then every chain's rules.
pub fn format_iptables(t: &Iptables, counters: bool) -> String {
    let mut s = String::new();
    for c in &t.chains {
        match c.policy {
            Some(p) => {
                let p = if p == Policy::Accept { "ACCEPT" } else { "DROP" };
                s.push_str(&format!("-P {} {p}", c.name));
                if counters {
                    s.push_str(&format!(
                        " -c {} {}",
                        c.policy_counters.packets, c.policy_counters.bytes
                    ));
                }
                s.push('\n');
            }
            None => s.push_str(&format!("-N {}\n", c.name)),
        }
    }
    for c in &t.chains {
        for r in &c.rules {
            s.push_str(&format_rule(&c.name, r, counters));
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_match_and_target_and_round_trips() {
        let nat =
            "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n\
            -N X\n-N a-chain\n\
            -A PREROUTING ! -s 10.0.0.0/8 ! -d 1.2.3.4/32 ! -i qr-+ -p udp -m udp ! --sport 1:1023 \
            --dport 53 -j DNAT --to-destination 10.0.0.2-10.0.0.9:5353-5360 --random --persistent\n\
            -A PREROUTING -p tcp -m tcp --dport 8080 -j DNAT --to-destination :80\n\
            -A PREROUTING -m mark --mark 0x4 -m conntrack --ctstate \
              INVALID,NEW,RELATED,ESTABLISHED,\
            UNTRACKED,SNAT,DNAT -m comment --comment \"it\\'s \\\"quoted\\\"\" -j a-chain\n\
            -A PREROUTING -p tcp -j REDIRECT --to-ports 9697-9698 --random\n\
            -A OUTPUT -o eth0 -j X\n\
            -A POSTROUTING ! -o eth0 -j MASQUERADE --to-ports 1024-2048 --random --random-fully\n\
            -A POSTROUTING ! -p icmp -j SNAT --to-source 172.24.4.3 --random-fully\n\
            -A POSTROUTING -p 47\n\
            -A POSTROUTING -m comment --comment plain_word-1 -g a-chain\n\
            -A X -j RETURN\n\
            -A a-chain -j ACCEPT\n";
        let t = parse_iptables(IptTable::Nat, nat).unwrap();
        assert_eq!(format_iptables(&t, false), nat);
        let pre = &t.chain("PREROUTING").unwrap().rules;
        let r = &pre[0];
        assert_eq!(r.src, Some((true, parse_net("10.0.0.0/8").unwrap())));
        assert_eq!(r.iif, Some((true, "qr-+".to_string())));
        let sport = PortMatch { invert: true, min: 1, max: 1023 };
        let dport = PortMatch { invert: false, min: 53, max: 53 };
        assert_eq!(r.matches, [Match::Ports { udp: true, sport: Some(sport), dport: Some(dport) }]);
        let range = NatRange {
            addrs: Some(("10.0.0.2".parse().unwrap(), "10.0.0.9".parse().unwrap())),
            ports: Some((5353, 5360)),
            random: true,
            random_fully: false,
            persistent: true,
        };
        assert_eq!(r.target, Target::Dnat(range));
        assert_eq!(
            pre[1].target,
            Target::Dnat(NatRange { ports: Some((80, 80)), ..empty_range() })
        );
        assert_eq!(pre[2].matches[0], Match::Mark { invert: false, value: 4, mask: u32::MAX });
        assert_eq!(pre[2].matches[1], Match::Conntrack { invert: false, states: 0x1cf });
        assert_eq!(pre[2].matches[2], Match::Comment("it's \"quoted\"".into()));
        let post = &t.chain("POSTROUTING").unwrap().rules;
        assert_eq!(post[2].target, Target::Continue);
        assert_eq!(post[2].proto, Some((false, 47)));
        // The user chains are sorted in byte order (upper case first) whatever the input
        // order; rules keep their order within a chain.
        let names: Vec<&str> = t.chains.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "X", "a-chain"]);
    }

    #[test]
    fn mangle_and_raw_targets() {
        let mangle = "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n\
            -P POSTROUTING ACCEPT\n\
            -A PREROUTING -i qg-1 -j MARK --set-xmark 0x2/0xffff\n\
            -A FORWARD -m mark ! --mark 0x1/0xffff -j DROP\n";
        let t = parse_iptables(IptTable::Mangle, mangle).unwrap();
        assert_eq!(format_iptables(&t, false), mangle);
        assert_eq!(t.chains[2].policy, Some(Policy::Drop));
        // --set-mark V/M is stored as --set-xmark V/(V|M), as libxt_MARK does.
        let t = parse_iptables(IptTable::Mangle, "-A INPUT -j MARK --set-mark 0x1/0xf0\n").unwrap();
        assert_eq!(t.chains[1].rules[0].target, Target::Mark { value: 1, mask: 0xf1 });
        let raw = "-P PREROUTING ACCEPT\n-P OUTPUT ACCEPT\n-A PREROUTING -j CT --notrack\n";
        assert_eq!(format_iptables(&parse_iptables(IptTable::Raw, raw).unwrap(), false), raw);
        // Partial text: missing policies are ACCEPT and are printed.
        let t = parse_iptables(IptTable::Raw, "").unwrap();
        assert_eq!(format_iptables(&t, false), "-P PREROUTING ACCEPT\n-P OUTPUT ACCEPT\n");
        assert!(iface_matches("qr-+", "qr-aae8ab78-22") && !iface_matches("qr-+", "qg-1"));
        assert!(iface_matches("+", "") && !iface_matches("qr-1", "qr-12"));
    }

    #[test]
    fn errors_say_where_and_what() {
        let nat = |rule: &str| {
            let text = format!("-N c\n{rule}\n");
            parse_iptables(IptTable::Nat, &text).unwrap_err().to_string()
        };
        let cases = [
            (
                "-X c",
                "iptables_nat line 2, column 1: unknown command \"-X\"; expected one of -P, \
              -N, -A",
            ),
            ("-A", "iptables_nat line 2, column 1: \"-A\" needs a chain"),
            ("-A d -j ACCEPT", "iptables_nat line 2, column 4: no chain \"d\" (a \"-N\" line)"),
            ("-N c", "iptables_nat line 2, column 4: chain \"c\" already exists"),
            ("-N ACCEPT", "iptables_nat line 2, column 4: bad chain name \"ACCEPT\""),
            (
                "-P c ACCEPT",
                "iptables_nat line 2, column 4: \"c\" is not a built-in chain of table \
              nat; expected one of PREROUTING, INPUT, OUTPUT, POSTROUTING",
            ),
            ("-P INPUT DROP", "iptables_nat line 2, column 10: bad policy \"DROP\""),
            ("-P INPUT ACCEPT x", "iptables_nat line 2, column 17: unexpected \"x\""),
            ("-A c -s 10.0.0/8", "iptables_nat line 2, column 9: bad address \"10.0.0/8\""),
            ("-A c -s", "iptables_nat line 2, column 6: \"-s\" needs a value"),
            ("-A c -p gre", "iptables_nat line 2, column 9: unknown protocol \"gre\""),
            (
                "-A c -i abcdefghijklmnop",
                "iptables_nat line 2, column 9: bad interface name \
              \"abcdefghijklmnop\"",
            ),
            (
                "-A c -m tcp --dport 80",
                "iptables_nat line 2, column 9: \"-m tcp\" needs \"-p tcp\" \
              before it",
            ),
            (
                "-A c -m state --state NEW",
                "iptables_nat line 2, column 9: unknown match \"state\"; \
              expected one of tcp, udp, conntrack, mark, comment",
            ),
            (
                "-A c -p tcp -m tcp --dpor 80",
                "iptables_nat line 2, column 20: unknown option \
              \"--dpor\" for match \"tcp\"; expected one of --sport, --dport",
            ),
            (
                "-A c -p tcp -m tcp --dport 99999",
                "iptables_nat line 2, column 28: bad port \
              \"99999\"",
            ),
            ("-A c -p tcp -m tcp --dport 9:1", "iptables_nat line 2, column 28: bad port \"9:1\""),
            (
                "-A c -m conntrack --ctstate NEWISH",
                "iptables_nat line 2, column 29: unknown \
              ctstate \"NEWISH\"; expected one of INVALID, NEW, RELATED, ESTABLISHED, \
              UNTRACKED, SNAT, DNAT",
            ),
            (
                "-A c -m conntrack --state NEW",
                "iptables_nat line 2, column 19: unknown option \
              \"--state\" for match \"conntrack\"; expected --ctstate",
            ),
            ("-A c -m conntrack -j ACCEPT", "iptables_nat line 2, column 9: needs --ctstate"),
            (
                "-A c -m mark --mark 0x3/0x1",
                "iptables_nat line 2, column 21: mark \"0x3/0x1\" has \
              bits outside its mask",
            ),
            ("-A c -m mark --mark x", "iptables_nat line 2, column 21: bad mark \"x\""),
            (
                "-A c -m comment ! --comment x",
                "iptables_nat line 2, column 19: unknown option \
              \"--comment\" for match \"comment\"; expected --comment",
            ),
            (
                "-A c -m comment --comment \"x",
                "iptables_nat line 2, column 27: unterminated quoted \
              string",
            ),
            ("-A c -j DROP", "iptables_nat line 2, column 9: the nat table cannot DROP"),
            (
                "-A c -j MARK --set-xmark 1",
                "iptables_nat line 2, column 9: MARK is only valid in \
              table mangle",
            ),
            (
                "-A c -j CT --notrack",
                "iptables_nat line 2, column 9: CT is only valid in table \
              raw",
            ),
            ("-A c -j DNAT", "iptables_nat line 2, column 9: needs --to-destination"),
            (
                "-A c -j DNAT --to-destination 1.2.3.4:x",
                "iptables_nat line 2, column 31: bad NAT \
              range \"1.2.3.4:x\"",
            ),
            (
                "-A c -j DNAT --to-destination 1.2.3.9-1.2.3.4",
                "iptables_nat line 2, column 31: bad \
              NAT range \"1.2.3.9-1.2.3.4\"",
            ),
            (
                "-A c -j SNAT --to 1.2.3.4",
                "iptables_nat line 2, column 14: unknown option \"--to\" \
              for target SNAT; expected one of --to-source, --random, --random-fully, \
              --persistent",
            ),
            (
                "-A c -j REDIRECT --to-port 1",
                "iptables_nat line 2, column 18: unknown option \
              \"--to-port\" for target REDIRECT; expected one of --to-ports, --random",
            ),
            (
                "-A c -j MASQUERADE --x",
                "iptables_nat line 2, column 20: unknown option \"--x\" for \
              target MASQUERADE; expected one of --to-ports, --random, --random-fully",
            ),
            (
                "-A c -j ACCEPT --x",
                "iptables_nat line 2, column 16: unexpected option \"--x\" for \
              this target",
            ),
            ("-A c -j ACCEPT -j RETURN", "iptables_nat line 2, column 16: a second target"),
            ("-A c ! -j ACCEPT", "iptables_nat line 2, column 8: \"-j\" cannot be negated"),
            ("-A c -s 1.2.3.4 !", "iptables_nat line 2, column 17: \"!\" needs an option after it"),
            (
                "-A c --dport 80",
                "iptables_nat line 2, column 6: option \"--dport\" outside a \
              match or target",
            ),
            ("-A c foo", "iptables_nat line 2, column 6: unexpected \"foo\""),
            (
                "-A c -j nochain",
                "iptables_nat line 2, column 9: unknown target \"nochain\"; \
              expected \
              a chain or one of ACCEPT, DROP, RETURN, DNAT, SNAT, MASQUERADE, REDIRECT, MARK, CT",
            ),
            (
                "-A c -j PREROUTING",
                "iptables_nat line 2, column 9: unknown target \"PREROUTING\"; \
              expected a chain or one of ACCEPT, DROP, RETURN, DNAT, SNAT, MASQUERADE, REDIRECT, \
              MARK, CT",
            ),
            ("-A c -j c", "iptables_nat line 2: chain \"c\" reaches itself (a loop)"),
            ("-A c -c 1", "iptables_nat line 2, column 6: \"-c\" needs two counters"),
            ("-A c -c 1 x", "iptables_nat line 2, column 11: bad counter \"x\""),
            (
                "-A POSTROUTING -j REDIRECT",
                "iptables_nat line 2: this target is not valid in chain \
              POSTROUTING (reached from POSTROUTING); the kernel accepts it only from PREROUTING, \
              OUTPUT",
            ),
        ];
        let mut wrong = Vec::new();
        for (rule, want) in cases {
            let got = nat(rule);
            if got != want {
                wrong.push(format!("{rule}\n  got  {got}\n  want {want}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        let e = parse_iptables(IptTable::Raw, "-A PREROUTING -j DNAT --to-destination 1.1.1.1")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "iptables_raw line 1, column 18: DNAT is only valid in table nat"
        );
    }

    #[test]
    fn save_string_quotes_as_xtables() {
        assert_eq!(save_string("plain_word-1"), "plain_word-1");
        assert_eq!(save_string("two words"), "\"two words\"");
        assert_eq!(save_string("a'b\"c\\d"), "\"a\\'b\\\"c\\\\d\"");
        assert_eq!(save_string(""), "\"\"");
    }
}
