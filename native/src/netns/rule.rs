//! Policy routing rules: the `ip rule show` text and the kernel's rule selectors
//! (`fib_rule_match()` and `fib4_rule_match()` of Linux `net/core/fib_rules.c` and
//! `net/ipv4/fib_rules.c`).
//!
//! Invariants:
//! - `parse_ip_rule` returns the rules sorted by priority, keeping the text's order among
//!   equal priorities, which is the order the kernel walks them in.
//! - `format_ip_rule(parse_ip_rule(t))` is `t` for text written by `ip rule show` (a
//!   trailing space at the end of a line, as older iproute2 versions print, is dropped).

use super::text::{format_host_or_net, one_of, parse_mark, parse_net, tokenize, Ipv4Net};
use super::text::{parse_u32, ParseError};
use std::net::Ipv4Addr;

/// Reserved routing table ids (`rtnetlink.h`).
pub const TABLE_DEFAULT: u32 = 253;
pub const TABLE_MAIN: u32 = 254;
pub const TABLE_LOCAL: u32 = 255;

/// The table names iproute2 prints (`/etc/iproute2/rt_tables` defaults) or the number.
pub fn table_name(id: u32) -> String {
    match id {
        TABLE_DEFAULT => "default".into(),
        TABLE_MAIN => "main".into(),
        TABLE_LOCAL => "local".into(),
        n => n.to_string(),
    }
}

/// `main`, `local`, `default` or a number (decimal or `0x` hex), never 0.
pub fn parse_table(s: &str) -> Option<u32> {
    match s {
        "default" => Some(TABLE_DEFAULT),
        "main" => Some(TABLE_MAIN),
        "local" => Some(TABLE_LOCAL),
        _ => parse_u32(s).filter(|&n| n != 0),
    }
}

/// What a rule does when its selectors match (`FR_ACT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleAction {
    /// Look the destination up in this table; a miss or a `throw` route goes on to the next
    /// rule.
    Lookup(u32),
    /// Continue at the first rule with this priority.
    Goto(u32),
    Nop,
    /// Fail with "network unreachable".
    Unreachable,
    /// Drop silently.
    Blackhole,
    /// Fail with "administratively prohibited".
    Prohibit,
}

/// One `ip rule`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub priority: u32,
    pub invert: bool, // `not`: the rule applies when the selectors do not all match
    pub from: Option<Ipv4Net>, // None = `from all`
    pub to: Option<Ipv4Net>,
    pub fwmark: Option<(u32, u32)>, // value, mask
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub action: RuleAction,
    pub line: usize, // 1-based line of the text; 0 for an implied default rule
}

impl Rule {
    /// The three rules of a new network namespace: 0 local, 32766 main, 32767 default.
    pub fn defaults() -> Vec<Rule> {
        [(0, TABLE_LOCAL), (32766, TABLE_MAIN), (32767, TABLE_DEFAULT)]
            .into_iter()
            .map(|(priority, t)| Rule {
                priority,
                invert: false,
                from: None,
                to: None,
                fwmark: None,
                iif: None,
                oif: None,
                action: RuleAction::Lookup(t),
                line: 0,
            })
            .collect()
    }

    /// Whether the selectors accept a packet (`fib_rule_match`), before `not`. `iif` is the
    /// input interface (`lo` for locally generated packets); `oif` the output interface a
    /// locally generated packet is bound to, if any.
    pub fn selectors_match(
        &self,
        iif: &str,
        oif: Option<&str>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mark: u32,
    ) -> bool {
        if self.iif.as_deref().is_some_and(|i| i != iif) {
            return false;
        }
        if let Some(o) = &self.oif {
            if oif != Some(o.as_str()) {
                return false;
            }
        }
        if let Some((v, m)) = self.fwmark {
            if (v ^ mark) & m != 0 {
                return false;
            }
        }
        if self.from.is_some_and(|n| !n.contains(src)) {
            return false;
        }
        if self.to.is_some_and(|n| !n.contains(dst)) {
            return false;
        }
        true
    }

    /// `selectors_match` with `not` applied: whether the rule's action runs.
    pub fn matches(
        &self,
        iif: &str,
        oif: Option<&str>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        mark: u32,
    ) -> bool {
        self.selectors_match(iif, oif, src, dst, mark) != self.invert
    }
}

const RULE_WORDS: &[&str] = &[
    "not",
    "from",
    "to",
    "fwmark",
    "iif",
    "oif",
    "lookup",
    "goto",
    "nop",
    "unreachable",
    "blackhole",
    "prohibit",
];

/// Parses `ip rule show` output (IPv4).
pub fn parse_ip_rule(text: &str) -> Result<Vec<Rule>, ParseError> {
    let mut rules = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        rules.push(parse_rule_line(line, i + 1)?);
    }
    rules.sort_by_key(|r| r.priority);
    Ok(rules)
}

/// Parses one line of `ip rule show`; `line_no` is used in errors and kept in the rule.
pub fn parse_rule_line(line: &str, line_no: usize) -> Result<Rule, ParseError> {
    let e = |col: usize, msg: String| ParseError::new("ip_rule", line_no, col, msg);
    let toks = tokenize(line, false).map_err(|(c, m)| e(c, m))?;
    let Some(first) = toks.first() else {
        return Err(e(0, "empty line".into()));
    };
    let Some(prio) = first.text.strip_suffix(':') else {
        return Err(e(first.col, format!("expected \"PRIORITY:\", found \"{}\"", first.text)));
    };
    let priority = prio
        .parse::<u32>()
        .ok()
        .filter(|_| prio.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| e(first.col, format!("bad priority \"{prio}\"")))?;
    let mut rule = Rule {
        priority,
        invert: false,
        from: None,
        to: None,
        fwmark: None,
        iif: None,
        oif: None,
        action: RuleAction::Nop,
        line: line_no,
    };
    let mut action = None;
    let mut seen_from = false;
    let mut k = 1;
    while k < toks.len() {
        let t = &toks[k];
        let arg = |what: &str| {
            toks.get(k + 1).ok_or_else(|| e(t.col, format!("\"{}\" needs {what}", t.text)))
        };
        let mut set_action = |a: RuleAction| {
            if action.is_some() {
                return Err(e(t.col, format!("a second action \"{}\"", t.text)));
            }
            action = Some(a);
            Ok(())
        };
        match t.text.as_str() {
            "not" if k == 1 => rule.invert = true,
            "from" | "to" => {
                let a = arg("a prefix or \"all\"")?;
                let net = if a.text == "all" {
                    None
                } else {
                    let n = parse_net(&a.text)
                        .ok_or_else(|| e(a.col, format!("bad prefix \"{}\"", a.text)))?;
                    (n.len > 0).then_some(n)
                };
                if t.text == "from" {
                    seen_from = true;
                    rule.from = net;
                } else {
                    rule.to = net;
                }
                k += 1;
            }
            "fwmark" => {
                let a = arg("a mark")?;
                rule.fwmark = Some(
                    parse_mark(&a.text)
                        .ok_or_else(|| e(a.col, format!("bad fwmark \"{}\"", a.text)))?,
                );
                k += 1;
            }
            "iif" | "oif" => {
                let a = arg("an interface name")?;
                if t.text == "iif" {
                    rule.iif = Some(a.text.clone());
                } else {
                    rule.oif = Some(a.text.clone());
                }
                k += 1;
            }
            "lookup" | "table" => {
                let a = arg("a table")?;
                let id = parse_table(&a.text)
                    .ok_or_else(|| e(a.col, format!("bad table \"{}\"", a.text)))?;
                set_action(RuleAction::Lookup(id))?;
                k += 1;
            }
            "goto" => {
                let a = arg("a priority")?;
                let target =
                    a.text.parse::<u32>().ok().filter(|&g| g > priority).ok_or_else(|| {
                        e(
                            a.col,
                            format!(
                                "goto target \"{}\" must be a priority above {priority}",
                                a.text
                            ),
                        )
                    })?;
                set_action(RuleAction::Goto(target))?;
                k += 1;
            }
            "nop" => set_action(RuleAction::Nop)?,
            "unreachable" => set_action(RuleAction::Unreachable)?,
            "blackhole" => set_action(RuleAction::Blackhole)?,
            "prohibit" => set_action(RuleAction::Prohibit)?,
            w => {
                return Err(e(
                    t.col,
                    format!("unknown keyword \"{w}\"; expected one of {}", one_of(RULE_WORDS)),
                ))
            }
        }
        k += 1;
    }
    if !seen_from {
        return Err(e(0, "missing \"from\" (ip rule show always prints it)".into()));
    }
    rule.action = action
        .ok_or_else(|| e(0, "missing action (lookup, goto, nop, unreachable, ...)".into()))?;
    Ok(rule)
}

/// Writes one rule as `ip rule show` does.
pub fn format_rule(r: &Rule) -> String {
    let mut s = format!("{}:\t", r.priority);
    if r.invert {
        s.push_str("not ");
    }
    match &r.from {
        Some(n) => s.push_str(&format!("from {}", format_host_or_net(n))),
        None => s.push_str("from all"),
    }
    if let Some(n) = &r.to {
        s.push_str(&format!(" to {}", format_host_or_net(n)));
    }
    if let Some((v, m)) = r.fwmark {
        if m == u32::MAX {
            s.push_str(&format!(" fwmark {v:#x}"));
        } else {
            s.push_str(&format!(" fwmark {v:#x}/{m:#x}"));
        }
    }
    if let Some(i) = &r.iif {
        s.push_str(&format!(" iif {i}"));
    }
    if let Some(o) = &r.oif {
        s.push_str(&format!(" oif {o}"));
    }
    match r.action {
        RuleAction::Lookup(t) => s.push_str(&format!(" lookup {}", table_name(t))),
        RuleAction::Goto(g) => s.push_str(&format!(" goto {g}")),
        RuleAction::Nop => s.push_str(" nop"),
        RuleAction::Unreachable => s.push_str(" unreachable"),
        RuleAction::Blackhole => s.push_str(" blackhole"),
        RuleAction::Prohibit => s.push_str(" prohibit"),
    }
    s
}

/// Writes rules as `ip rule show` does, one per line.
pub fn format_ip_rule(rules: &[Rule]) -> String {
    rules.iter().map(|r| format_rule(r) + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "0:\tfrom all lookup local\n\
        32766:\tfrom all lookup main\n\
        32767:\tfrom all lookup default\n\
        32768:\tfrom 10.0.0.8 lookup 16\n\
        167772161:\tfrom 10.0.0.1/26 lookup 167772161\n\
        167837697:\tfrom 10.1.0.1/24 lookup 167837697\n";

    #[test]
    fn parses_the_seed_rules() {
        let rules = parse_ip_rule(SEED).unwrap();
        assert_eq!(rules.len(), 6);
        assert_eq!(rules[0].action, RuleAction::Lookup(TABLE_LOCAL));
        assert_eq!(rules[3].from, parse_net("10.0.0.8"));
        assert_eq!(rules[3].action, RuleAction::Lookup(16));
        assert_eq!(rules[4].from, parse_net("10.0.0.1/26"));
        assert_eq!(rules[4].line, 5);
        assert_eq!(format_ip_rule(&rules), SEED);
    }

    #[test]
    fn parses_every_selector_and_action() {
        let text = "5:\tnot from 10.0.0.0/8 to 192.168.0.0/16 fwmark 0x1/0xffff iif eth0 \
                    oif eth1 lookup 100 \n\
                    2852022899:\tfrom all iif fpr-bd7982cb-b lookup 2852022899\n\
                    10:\tfrom all fwmark 0x2 goto 20\n\
                    20:\tfrom all nop\n\
                    30:\tfrom all unreachable\n\
                    31:\tfrom all blackhole\n\
                    32:\tfrom all prohibit\n";
        let rules = parse_ip_rule(text).unwrap();
        let r = &rules[0];
        assert!(r.invert);
        assert_eq!(r.fwmark, Some((1, 0xffff)));
        assert_eq!((r.iif.as_deref(), r.oif.as_deref()), (Some("eth0"), Some("eth1")));
        assert_eq!(rules[1].action, RuleAction::Goto(20));
        assert_eq!(rules[1].fwmark, Some((2, u32::MAX)));
        assert_eq!(rules[6].action, RuleAction::Lookup(2852022899));
        let printed = format_ip_rule(&rules);
        assert!(printed.starts_with(
            "5:\tnot from 10.0.0.0/8 to 192.168.0.0/16 fwmark 0x1/0xffff iif eth0 oif eth1 \
             lookup 100\n10:\tfrom all fwmark 0x2 goto 20\n"
        ));
        assert_eq!(format_ip_rule(&parse_ip_rule(&printed).unwrap()), printed);
    }

    #[test]
    fn sorts_by_priority_stably() {
        let rules =
            parse_ip_rule("9:\tfrom all lookup 1\n3:\tfrom all lookup 2\n9:\tfrom all lookup 3\n")
                .unwrap();
        let t: Vec<_> = rules.iter().map(|r| r.action).collect();
        assert_eq!(t, [RuleAction::Lookup(2), RuleAction::Lookup(1), RuleAction::Lookup(3)]);
    }

    #[test]
    fn errors_say_where_and_what() {
        let cases = [
            (
                "from all lookup main",
                "ip_rule line 1, column 1: expected \"PRIORITY:\", found \"from\"",
            ),
            ("x:\tfrom all lookup main", "ip_rule line 1, column 1: bad priority \"x\""),
            (
                "1:\tfrom all lookupp main",
                "ip_rule line 1, column 13: unknown keyword \"lookupp\"; \
              expected one of not, from, to, fwmark, iif, oif, lookup, goto, nop, unreachable, \
              blackhole, prohibit",
            ),
            ("1:\tfrom 10.0.0/8 lookup main", "ip_rule line 1, column 9: bad prefix \"10.0.0/8\""),
            ("1:\tfrom all lookup", "ip_rule line 1, column 13: \"lookup\" needs a table"),
            ("1:\tfrom all lookup mian", "ip_rule line 1, column 20: bad table \"mian\""),
            ("1:\tfrom all fwmark x lookup 3", "ip_rule line 1, column 20: bad fwmark \"x\""),
            ("1:\tfrom all lookup 3 nop", "ip_rule line 1, column 22: a second action \"nop\""),
            (
                "1:\tfrom all",
                "ip_rule line 1: missing action (lookup, goto, nop, unreachable, ...)",
            ),
            ("1:\tlookup main", "ip_rule line 1: missing \"from\" (ip rule show always prints it)"),
            (
                "9:\tfrom all goto 3",
                "ip_rule line 1, column 18: goto target \"3\" must be a \
              priority above 9",
            ),
        ];
        for (text, want) in cases {
            let got = parse_ip_rule(&format!("\n{text}\n")).unwrap_err();
            assert_eq!(got.line, 2, "{text}");
            let want = want.replace("line 1", "line 2");
            assert_eq!(got.to_string(), want, "{text}");
        }
    }

    #[test]
    fn selectors_follow_fib_rule_match() {
        let r = &parse_ip_rule("1:\tfrom 10.0.0.1/26 iif qr-a fwmark 0x1/0x1 lookup 5").unwrap()[0];
        let a = |s: [u8; 4]| Ipv4Addr::from(s);
        assert!(r.matches("qr-a", None, a([10, 0, 0, 8]), a([8, 8, 8, 8]), 3));
        assert!(!r.matches("qr-b", None, a([10, 0, 0, 8]), a([8, 8, 8, 8]), 3));
        assert!(!r.matches("qr-a", None, a([10, 0, 0, 64]), a([8, 8, 8, 8]), 3));
        assert!(!r.matches("qr-a", None, a([10, 0, 0, 8]), a([8, 8, 8, 8]), 2));
        let o = &parse_ip_rule("1:\tnot from all oif eth1 lookup 5").unwrap()[0];
        // A forwarded packet has no output interface yet, so `oif` never matches it.
        assert!(o.matches("eth0", None, a([1, 1, 1, 1]), a([2, 2, 2, 2]), 0));
        assert!(!o.matches("lo", Some("eth1"), a([1, 1, 1, 1]), a([2, 2, 2, 2]), 0));
    }
}
