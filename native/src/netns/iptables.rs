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
                if TARGETS.contains(&name.text.as_str()) || name.text.starts_with('-') {
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
                if a.text.is_empty() || a.text.len() > 15 {
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
