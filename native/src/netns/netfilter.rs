//! Walking an iptables table for one packet, as `ipt_do_table()` of Linux
//! `net/ipv4/netfilter/ip_tables.c` does: rules in order, `ip_packet_match()` then each
//! match, jumps pushing a return point, gotos not, `RETURN` popping, the built-in chain's
//! policy at the bottom. Non-terminating targets (`MARK`, `CT --notrack`, no target) continue.
//!
//! Invariants:
//! - A walk only reads fields it records in `NfDeps`: a field a rule never had to look at
//!   (because an earlier selector of that rule failed, or no rule got that far) is not
//!   marked, so a caller's megaflow can leave it wildcarded.
//! - A walk never mutates the table; it returns the rules it hit so that the caller credits
//!   counters (`Namespace::credit`) once per packet, or once per connection for `nat`.
//! - Tables come from `parse_iptables`, which rejects loops and unknown chains; a walk still
//!   stops after `MAX_STEPS` rules and drops, so no input can make it spin.

use super::iptables::{ctstate, iface_matches, IptRule, IptTable, Iptables, Match, Policy, Target};
use std::net::Ipv4Addr;

/// The 5-tuple of a packet as the hooks see it. For ICMP, ports are 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pkt5 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
}

impl Pkt5 {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, sport: u16, dport: u16) -> Pkt5 {
        Pkt5 { src, dst, proto, sport, dport }
    }
}

/// What conntrack says about the packet, for `-m conntrack --ctstate`: one of `NEW`,
/// `ESTABLISHED`, `RELATED`, `INVALID`, `UNTRACKED` of `iptables::ctstate`, plus `SNAT` and
/// `DNAT` when the connection's source or destination has been translated (for a new
/// connection in POSTROUTING, `DNAT` is set when PREROUTING translated the destination).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtInfo {
    pub state: u32,
}

impl CtInfo {
    /// The first packet of a connection, before any NAT.
    pub const NEW: CtInfo = CtInfo { state: ctstate::NEW };
    /// A packet of a connection marked `CT --notrack`.
    pub const UNTRACKED: CtInfo = CtInfo { state: ctstate::UNTRACKED };

    /// The same state with `DNAT` added (the destination was translated in PREROUTING).
    pub fn with_dnat(self) -> CtInfo {
        CtInfo { state: self.state | ctstate::DNAT }
    }

    /// The same state with `SNAT` added.
    pub fn with_snat(self) -> CtInfo {
        CtInfo { state: self.state | ctstate::SNAT }
    }
}

/// The packet fields a walk examined (for a megaflow mask).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NfDeps {
    pub src_bits: u8, // leading bits of the source address
    pub dst_bits: u8,
    pub iif: bool,
    pub oif: bool,
    pub proto: bool,
    pub sport: bool,
    pub dport: bool,
    pub mark_mask: u32,
    pub ct_state: bool,
}

/// A rule (or a built-in chain's policy) a packet hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleHit {
    pub table: IptTable,
    pub chain: u16,
    pub rule: Option<u16>, // None: the chain's policy
}

/// The packet and its context at one hook.
#[derive(Clone, Copy, Debug)]
pub struct HookInput<'a> {
    pub iif: Option<&'a str>, // None: locally generated
    pub oif: Option<&'a str>, // None: not routed yet (PREROUTING)
    pub pkt: Pkt5,
    pub ct: CtInfo,
    pub mark: u32,
}

/// How a walk ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminal<'a> {
    Accept,
    Drop,
    /// A terminating NAT target (DNAT, SNAT, MASQUERADE, REDIRECT).
    Nat(&'a Target),
}

/// The outcome of walking a table from one built-in chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk<'a> {
    pub terminal: Terminal<'a>,
    pub mark: u32,     // after any MARK targets
    pub notrack: bool, // a `CT --notrack` target was hit
    pub hits: Vec<RuleHit>,
    pub deps: NfDeps,
}

/// More rules than any real table visits for one packet.
const MAX_STEPS: usize = 100_000;

fn rule_matches(r: &IptRule, inp: &HookInput, mark: u32, d: &mut NfDeps) -> bool {
    if let Some((inv, n)) = r.src {
        d.src_bits = d.src_bits.max(n.bits_to_decide(inp.pkt.src));
        if n.contains(inp.pkt.src) == inv {
            return false;
        }
    }
    if let Some((inv, n)) = r.dst {
        d.dst_bits = d.dst_bits.max(n.bits_to_decide(inp.pkt.dst));
        if n.contains(inp.pkt.dst) == inv {
            return false;
        }
    }
    // An absent device matches as the empty name, as `nulldevname` in the kernel.
    if let Some((inv, name)) = &r.iif {
        d.iif = true;
        if iface_matches(name, inp.iif.unwrap_or("")) == *inv {
            return false;
        }
    }
    if let Some((inv, name)) = &r.oif {
        d.oif = true;
        if iface_matches(name, inp.oif.unwrap_or("")) == *inv {
            return false;
        }
    }
    if let Some((inv, p)) = r.proto {
        d.proto = true;
        if (p == inp.pkt.proto) == inv {
            return false;
        }
    }
    for m in &r.matches {
        let ok = match m {
            Match::Ports { sport, dport, .. } => {
                let s = sport.is_none_or(|p| {
                    d.sport = true;
                    p.matches(inp.pkt.sport)
                });
                s && dport.is_none_or(|p| {
                    d.dport = true;
                    p.matches(inp.pkt.dport)
                })
            }
            Match::Conntrack { invert, states } => {
                d.ct_state = true;
                (inp.ct.state & states != 0) != *invert
            }
            Match::Mark { invert, value, mask } => {
                d.mark_mask |= mask;
                ((mark & mask) == *value) != *invert
            }
            Match::Comment(_) => true,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Walks `t` from the built-in chain `hook` (which must be one of the table's built-ins;
/// an unknown name accepts without looking at anything).
pub fn walk<'a>(t: &'a Iptables, hook: &str, inp: &HookInput) -> Walk<'a> {
    let mut w = Walk {
        terminal: Terminal::Accept,
        mark: inp.mark,
        notrack: false,
        hits: Vec::new(),
        deps: NfDeps::default(),
    };
    let Some(start) = t.chains.iter().position(|c| c.name == hook && c.policy.is_some()) else {
        return w;
    };
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let (mut chain, mut idx) = (start, 0);
    for _ in 0..MAX_STEPS {
        let Some(r) = t.chains[chain].rules.get(idx) else {
            // The end of a chain: back to the caller, or the policy of the built-in chain.
            match stack.pop() {
                Some((c, i)) => (chain, idx) = (c, i),
                None => return policy(t, start, w),
            }
            continue;
        };
        if !rule_matches(r, inp, w.mark, &mut w.deps) {
            idx += 1;
            continue;
        }
        w.hits.push(RuleHit { table: t.table, chain: chain as u16, rule: Some(idx as u16) });
        match &r.target {
            Target::Continue => idx += 1,
            Target::Accept => return w,
            Target::Drop => {
                w.terminal = Terminal::Drop;
                return w;
            }
            Target::Return => match stack.pop() {
                Some((c, i)) => (chain, idx) = (c, i),
                None => return policy(t, start, w),
            },
            Target::Jump(name) | Target::Goto(name) => {
                let Some(next) = t.chain_index(name) else {
                    idx += 1;
                    continue;
                };
                if matches!(r.target, Target::Jump(_)) {
                    stack.push((chain, idx + 1));
                }
                (chain, idx) = (next, 0);
            }
            Target::Mark { value, mask } => {
                w.mark = (w.mark & !mask) ^ value;
                idx += 1;
            }
            Target::CtNotrack => {
                w.notrack = true;
                idx += 1;
            }
            Target::Dnat(_)
            | Target::Snat(_)
            | Target::Masquerade { .. }
            | Target::Redirect { .. } => {
                w.terminal = Terminal::Nat(&r.target);
                return w;
            }
        }
    }
    w.terminal = Terminal::Drop;
    w
}

fn policy<'a>(t: &'a Iptables, start: usize, mut w: Walk<'a>) -> Walk<'a> {
    w.hits.push(RuleHit { table: t.table, chain: start as u16, rule: None });
    if t.chains[start].policy == Some(Policy::Drop) {
        w.terminal = Terminal::Drop;
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::iptables::parse_iptables;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn inp<'a>(iif: Option<&'a str>, oif: Option<&'a str>, pkt: Pkt5) -> HookInput<'a> {
        HookInput { iif, oif, pkt, ct: CtInfo::NEW, mark: 0 }
    }

    const MANGLE: &str = "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P FORWARD ACCEPT\n\
        -P OUTPUT ACCEPT\n-P POSTROUTING DROP\n\
        -N a\n-N b\n-N c\n\
        -A PREROUTING -j a\n\
        -A PREROUTING -p tcp -m tcp --dport 22 -j DROP\n\
        -A PREROUTING -j MARK --set-xmark 0x10/0xf0\n\
        -A a -s 10.0.0.0/8 -j b\n\
        -A a -m mark --mark 0x1/0xffff -j ACCEPT\n\
        -A a -j MARK --set-xmark 0x1/0xffff\n\
        -A b -p udp -m udp --sport 53 -j RETURN\n\
        -A b -j MARK --set-xmark 0x2/0xffff\n\
        -A b -g c\n\
        -A c -m mark --mark 0x2/0xffff -j MARK --set-xmark 0x3/0xffff\n";

    #[test]
    fn jumps_returns_marks_and_policies() {
        let t = parse_iptables(IptTable::Mangle, MANGLE).unwrap();
        // 10/8 udp sport 53: a → b → RETURN → a marks 1 → back in PREROUTING, mark 0x11.
        let p = Pkt5::new(ip("10.0.0.1"), ip("1.1.1.1"), 17, 53, 9);
        let w = walk(&t, "PREROUTING", &inp(Some("eth0"), None, p));
        assert_eq!(w.terminal, Terminal::Accept);
        assert_eq!(w.mark, 0x11);
        let rules: Vec<_> =
            w.hits.iter().map(|h| (t.chains[h.chain as usize].name.as_str(), h.rule)).collect();
        assert_eq!(
            rules,
            [
                ("PREROUTING", Some(0)),
                ("a", Some(0)),
                ("b", Some(0)),
                ("a", Some(2)),
                ("PREROUTING", Some(2)),
                ("PREROUTING", None)
            ]
        );
        assert!(w.deps.sport && !w.deps.dport && w.deps.proto);
        assert_eq!(w.deps.src_bits, 8);
        assert_eq!(w.deps.mark_mask, 0xffff);
        // 10/8 tcp: b marks 2 and goes to c (no return point), c marks 3; c's end returns to
        // a (b's caller), which marks 1; a's end returns to PREROUTING: tcp dport 22 drops.
        let p = Pkt5::new(ip("10.0.0.1"), ip("1.1.1.1"), 6, 1000, 22);
        let w = walk(&t, "PREROUTING", &inp(Some("eth0"), None, p));
        assert_eq!(w.terminal, Terminal::Drop);
        assert_eq!(w.mark, 1);
        assert!(w.deps.dport && !w.deps.sport);
        // A policy of DROP.
        let w = walk(&t, "POSTROUTING", &inp(None, Some("eth0"), p));
        assert_eq!(w.terminal, Terminal::Drop);
        assert_eq!(w.hits, [RuleHit { table: IptTable::Mangle, chain: 4, rule: None }]);
        // A loop is refused when the table is read.
        let looped = MANGLE.replace("-A b -g c", "-A b -g a");
        assert!(parse_iptables(IptTable::Mangle, &looped).is_err());
    }

    #[test]
    fn interface_and_conntrack_matches() {
        let t = parse_iptables(
            IptTable::Nat,
            "-N p\n-A POSTROUTING -j p\n\
             -A p ! -i qg-1 ! -o qg-1 -m conntrack ! --ctstate DNAT -j ACCEPT\n\
             -A p -o qg-+ -j SNAT --to-source 172.24.4.3\n",
        )
        .unwrap();
        let p = Pkt5::new(ip("10.0.0.4"), ip("8.8.8.8"), 1, 0, 0);
        // Out of qr-: the ACCEPT rule matches (no NAT).
        let w = walk(&t, "POSTROUTING", &inp(Some("qr-a"), Some("qr-a"), p));
        assert_eq!(w.terminal, Terminal::Accept);
        assert_eq!(w.hits.len(), 2);
        assert!(w.deps.iif && w.deps.oif && w.deps.ct_state && !w.deps.proto);
        // Out of qg-: the ACCEPT rule does not match, the wildcard does.
        let w = walk(&t, "POSTROUTING", &inp(Some("qr-a"), Some("qg-1"), p));
        assert!(matches!(w.terminal, Terminal::Nat(Target::Snat(_))));
        // DNATed traffic is not accepted by the first rule.
        let mut i = inp(Some("qr-a"), Some("qr-a"), p);
        i.ct = CtInfo::NEW.with_dnat();
        let w = walk(&t, "POSTROUTING", &i);
        // The jump to p, then p's end returns and the policy applies.
        assert_eq!(w.hits.len(), 2);
        assert_eq!(w.hits[1].rule, None);
        // A locally generated packet has no input device: `! -i qg-1` matches it.
        let w = walk(&t, "POSTROUTING", &inp(None, Some("qr-a"), p));
        assert_eq!(w.terminal, Terminal::Accept);
        assert_eq!(w.hits.len(), 2);
        // A chain name that is not a built-in chain accepts without hits.
        assert!(walk(&t, "p", &inp(None, None, p)).hits.is_empty());
    }

    #[test]
    fn notrack_continues() {
        let t = parse_iptables(
            IptTable::Raw,
            "-N r\n-A PREROUTING -j r\n-A r -j CT --notrack\n-A r -d 1.2.3.4/32 -j DROP\n",
        )
        .unwrap();
        let p = Pkt5::new(ip("10.0.0.4"), ip("8.8.8.8"), 1, 0, 0);
        let w = walk(&t, "PREROUTING", &inp(Some("fg-1"), None, p));
        assert!(w.notrack);
        assert_eq!(w.terminal, Terminal::Accept);
        assert_eq!(w.deps.dst_bits, 5); // 8.x and 1.x first differ at bit 5
    }
}
