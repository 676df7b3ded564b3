//! Neighbours: the `ip neigh show` text and the states of Linux's neighbour table
//! (`NUD_*` of `include/uapi/linux/neighbour.h`).
//!
//! Invariants:
//! - IPv6 lines are kept verbatim (`NeighLine::Other`) and printed back unchanged.
//! - `format_ip_neigh(parse_ip_neigh(t))` is `t` for text written by `ip neigh show` (the
//!   double space iproute2 leaves where a missing `lladdr` would be is written as one).

use super::text::{format_mac, one_of, parse_ipv4, parse_mac, tokenize, ParseError};
use crate::wire::eth::Mac;
use std::net::Ipv4Addr;

/// A neighbour entry's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NudState {
    Incomplete,
    Reachable,
    Stale,
    Delay,
    Probe,
    Failed,
    Noarp,
    Permanent,
    None,
}

const STATES: &[(NudState, &str)] = &[
    (NudState::Incomplete, "INCOMPLETE"),
    (NudState::Reachable, "REACHABLE"),
    (NudState::Stale, "STALE"),
    (NudState::Delay, "DELAY"),
    (NudState::Probe, "PROBE"),
    (NudState::Failed, "FAILED"),
    (NudState::Noarp, "NOARP"),
    (NudState::Permanent, "PERMANENT"),
    (NudState::None, "NONE"),
];

impl NudState {
    pub fn name(self) -> &'static str {
        STATES.iter().find(|(s, _)| *s == self).map_or("NONE", |(_, n)| n)
    }

    /// `NUD_VALID`: the link-layer address can be used to send.
    pub fn is_valid(self) -> bool {
        matches!(
            self,
            NudState::Reachable
                | NudState::Stale
                | NudState::Delay
                | NudState::Probe
                | NudState::Noarp
                | NudState::Permanent
        )
    }
}

/// One IPv4 neighbour entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    pub ip: Ipv4Addr,
    pub dev: String,
    pub lladdr: Option<Mac>,
    pub router: bool,
    pub state: NudState,
    pub line: usize, // 1-based line of the text; 0 for an entry learned at run time
}

/// A line of `ip neigh show`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NeighLine {
    V4(Neighbor),
    /// An IPv6 neighbour, kept as written.
    Other {
        line: usize,
        text: String,
    },
}

const NEIGH_WORDS: &[&str] = &["dev", "lladdr", "router", "PERMANENT", "REACHABLE", "STALE", "..."];

/// Parses `ip neigh show` output. IPv6 lines are kept as `NeighLine::Other`.
pub fn parse_ip_neigh(text: &str) -> Result<Vec<NeighLine>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains(':') && first.parse::<std::net::Ipv6Addr>().is_ok() {
            out.push(NeighLine::Other { line: i + 1, text: line.trim_end().to_string() });
        } else {
            out.push(NeighLine::V4(parse_neigh_line(line, i + 1)?));
        }
    }
    Ok(out)
}

/// Parses one IPv4 line of `ip neigh show`.
pub fn parse_neigh_line(line: &str, line_no: usize) -> Result<Neighbor, ParseError> {
    let e = |col: usize, msg: String| ParseError::new("ip_neigh", line_no, col, msg);
    let toks = tokenize(line, false).map_err(|(c, m)| e(c, m))?;
    let Some(first) = toks.first() else {
        return Err(e(0, "empty line".into()));
    };
    let ip = parse_ipv4(&first.text)
        .ok_or_else(|| e(first.col, format!("bad address \"{}\"", first.text)))?;
    let mut dev = None;
    let mut lladdr = None;
    let mut router = false;
    let mut state = None;
    let mut k = 1;
    while k < toks.len() {
        let t = &toks[k];
        match t.text.as_str() {
            "dev" | "lladdr" => {
                let a = toks
                    .get(k + 1)
                    .ok_or_else(|| e(t.col, format!("\"{}\" needs a value", t.text)))?;
                if t.text == "dev" {
                    dev = Some(a.text.clone());
                } else {
                    lladdr = Some(
                        parse_mac(&a.text)
                            .ok_or_else(|| e(a.col, format!("bad lladdr \"{}\"", a.text)))?,
                    );
                }
                k += 1;
            }
            "router" => router = true,
            w => match STATES.iter().find(|(_, n)| *n == w) {
                Some((s, _)) if state.is_none() => state = Some(*s),
                Some(_) => return Err(e(t.col, format!("a second state \"{w}\""))),
                None => {
                    return Err(e(
                        t.col,
                        format!("unknown keyword \"{w}\"; expected one of {}", one_of(NEIGH_WORDS)),
                    ))
                }
            },
        }
        k += 1;
    }
    let dev = dev.ok_or_else(|| e(0, "missing \"dev\"".into()))?;
    let state = state.ok_or_else(|| e(0, "missing state (PERMANENT, REACHABLE, ...)".into()))?;
    Ok(Neighbor { ip, dev, lladdr, router, state, line: line_no })
}

/// Writes one entry as `ip neigh show` does.
pub fn format_neighbor(n: &Neighbor) -> String {
    let mut s = format!("{} dev {}", n.ip, n.dev);
    if let Some(m) = &n.lladdr {
        s.push_str(&format!(" lladdr {}", format_mac(m)));
    }
    if n.router {
        s.push_str(" router");
    }
    s.push(' ');
    s.push_str(n.state.name());
    s
}

/// Writes the lines as `ip neigh show` does, entries learned at run time included.
pub fn format_ip_neigh(lines: &[NeighLine]) -> String {
    let mut s = String::new();
    for l in lines {
        match l {
            NeighLine::V4(n) => s.push_str(&format_neighbor(n)),
            NeighLine::Other { text, .. } => s.push_str(text),
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_round_trips() {
        let text = "10.0.0.8 dev qr-aae8ab78-22 lladdr fa:16:3e:76:47:75 PERMANENT\n\
            10.0.0.3 dev qr-aae8ab78-22 lladdr fa:16:3e:47:34:80 router STALE\n\
            10.0.0.9 dev qr-aae8ab78-22 FAILED\n\
            10.0.0.10 dev qr-aae8ab78-22  INCOMPLETE\n\
            fe80::f816:3eff:fe76:4775 dev qr-12fa6289-8f lladdr fa:16:3e:76:47:75 STALE\n";
        let lines = parse_ip_neigh(text).unwrap();
        let NeighLine::V4(n) = &lines[0] else { panic!("not IPv4") };
        assert_eq!(n.lladdr, parse_mac("fa:16:3e:76:47:75"));
        assert_eq!(n.state, NudState::Permanent);
        assert!(n.state.is_valid());
        let NeighLine::V4(n) = &lines[1] else { panic!("not IPv4") };
        assert!(n.router);
        let NeighLine::V4(n) = &lines[3] else { panic!("not IPv4") };
        assert_eq!((n.lladdr, n.state, n.line), (None, NudState::Incomplete, 4));
        assert!(!n.state.is_valid());
        assert!(matches!(lines[4], NeighLine::Other { line: 5, .. }));
        let printed = format_ip_neigh(&lines);
        assert_eq!(printed, text.replace("  INCOMPLETE", " INCOMPLETE"));
        assert_eq!(format_ip_neigh(&parse_ip_neigh(&printed).unwrap()), printed);
    }

    #[test]
    fn errors_say_where_and_what() {
        let cases = [
            ("10.0.0.x dev a STALE", "ip_neigh line 1, column 1: bad address \"10.0.0.x\""),
            (
                "10.0.0.1 dev a lladdr fa:16 STALE",
                "ip_neigh line 1, column 23: bad lladdr \"fa:16\"",
            ),
            ("10.0.0.1 dev", "ip_neigh line 1, column 10: \"dev\" needs a value"),
            (
                "10.0.0.1 dev a STALE FAILED",
                "ip_neigh line 1, column 22: a second state \"FAILED\"",
            ),
            (
                "10.0.0.1 dev a stale",
                "ip_neigh line 1, column 16: unknown keyword \"stale\"; \
              expected one of dev, lladdr, router, PERMANENT, REACHABLE, STALE, ...",
            ),
            ("10.0.0.1 lladdr fa:16:3e:76:47:75 STALE", "ip_neigh line 1: missing \"dev\""),
            ("10.0.0.1 dev a", "ip_neigh line 1: missing state (PERMANENT, REACHABLE, ...)"),
        ];
        for (text, want) in cases {
            assert_eq!(parse_ip_neigh(text).unwrap_err().to_string(), want, "{text}");
        }
    }
}
