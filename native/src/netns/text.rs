//! Shared pieces of the namespace text parsers: located errors, a tokenizer that remembers
//! each token's column, and the address and MAC syntax of iproute2 and iptables.
//!
//! Invariants:
//! - Columns are 1-based character positions in the line (tabs count as one character), so
//!   an error points at the first character of the offending token.
//! - Nothing here panics on any input text; every parser returns a `ParseError` instead.

use crate::wire::eth::Mac;
use std::fmt;
use std::net::Ipv4Addr;

/// A located error in one of a namespace's texts (or in one of its JSON fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// What was being read: `ip_rule`, `ip_route`, `ip_neigh`, `iptables_nat`, ... or a JSON
    /// field such as `interfaces[1].addresses[0]`.
    pub source: String,
    pub line: usize,   // 1-based; 0 for a JSON field
    pub column: usize, // 1-based character position of the offending token; 0 if none
    pub message: String,
}

impl ParseError {
    pub fn new(source: &str, line: usize, column: usize, message: impl Into<String>) -> Self {
        ParseError { source: source.to_string(), line, column, message: message.into() }
    }

    /// An error about a JSON field rather than a line of text.
    pub fn field(source: impl Into<String>, message: impl Into<String>) -> Self {
        ParseError { source: source.into(), line: 0, column: 0, message: message.into() }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}: {}", self.source, self.message),
            (l, 0) => write!(f, "{} line {l}: {}", self.source, self.message),
            (l, c) => write!(f, "{} line {l}, column {c}: {}", self.source, self.message),
        }
    }
}

impl std::error::Error for ParseError {}

/// One whitespace-separated word of a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tok {
    pub text: String,
    pub col: usize, // 1-based
}

/// Splits a line into words. With `quotes`, a word may be a double-quoted string with
/// backslash escapes, as `iptables -S` writes comments; an unterminated quote is an error
/// (returned as the column of the opening quote).
pub(crate) fn tokenize(line: &str, quotes: bool) -> Result<Vec<Tok>, (usize, String)> {
    let chars: Vec<char> = line.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let col = i + 1;
        let mut text = String::new();
        if quotes && chars[i] == '"' {
            i += 1;
            let mut closed = false;
            while i < chars.len() {
                match chars[i] {
                    '\\' if i + 1 < chars.len() => {
                        text.push(chars[i + 1]);
                        i += 2;
                    }
                    '"' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    c => {
                        text.push(c);
                        i += 1;
                    }
                }
            }
            if !closed {
                return Err((col, "unterminated quoted string".to_string()));
            }
            if i < chars.len() && !chars[i].is_whitespace() {
                return Err((i + 1, "expected a space after the closing quote".to_string()));
            }
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                text.push(chars[i]);
                i += 1;
            }
        }
        toks.push(Tok { text, col });
    }
    Ok(toks)
}

/// An IPv4 prefix. The address is kept as written: `ip rule` accepts host bits
/// (`from 10.0.0.1/26`) and matches under the mask, as the kernel does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub len: u8, // 0..=32
}

impl Ipv4Net {
    pub const ALL: Ipv4Net = Ipv4Net { addr: Ipv4Addr::UNSPECIFIED, len: 0 };

    pub fn new(addr: Ipv4Addr, len: u8) -> Ipv4Net {
        Ipv4Net { addr, len: len.min(32) }
    }

    /// The netmask as a host-order integer.
    pub fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len.min(32)))
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.mask() == 0
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The directed broadcast address of the prefix.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn has_host_bits(&self) -> bool {
        u32::from(self.addr) & !self.mask() != 0
    }

    /// How many leading bits of `ip` must be known to tell whether this prefix matches it:
    /// the prefix length when it matches, else up to and including the first differing bit.
    /// Every address that agrees with `ip` on those bits gets the same answer, which is what
    /// a megaflow mask needs.
    pub fn bits_to_decide(&self, ip: Ipv4Addr) -> u8 {
        let diff = (u32::from(ip) ^ u32::from(self.addr)) & self.mask();
        if diff == 0 {
            self.len
        } else {
            diff.leading_zeros() as u8 + 1
        }
    }
}

impl fmt::Display for Ipv4Net {
    /// `a.b.c.d/len`, always with the length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A strict dotted quad (`10.0.0.1`).
pub(crate) fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

/// `a.b.c.d` (a /32) or `a.b.c.d/len`.
pub(crate) fn parse_net(s: &str) -> Option<Ipv4Net> {
    match s.split_once('/') {
        None => parse_ipv4(s).map(|a| Ipv4Net::new(a, 32)),
        Some((a, l)) => {
            let addr = parse_ipv4(a)?;
            if l.is_empty() || l.len() > 2 || !l.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let len: u8 = l.parse().ok()?;
            (len <= 32).then_some(Ipv4Net { addr, len })
        }
    }
}

/// Writes a prefix as iproute2 does: the address alone for a /32.
pub(crate) fn format_host_or_net(n: &Ipv4Net) -> String {
    if n.len == 32 {
        n.addr.to_string()
    } else {
        n.to_string()
    }
}

/// `fa:16:3e:93:5b:29` (either case).
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

pub fn format_mac(m: &Mac) -> String {
    crate::fmt::mac(m)
}

/// A decimal or `0x` hexadecimal u32, as iproute2 and iptables accept marks.
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if h.is_empty() || h.len() > 8 {
            return None;
        }
        u32::from_str_radix(h, 16).ok()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// `V` or `V/M` (a mask of all ones when absent).
pub(crate) fn parse_mark(s: &str) -> Option<(u32, u32)> {
    match s.split_once('/') {
        Some((v, m)) => Some((parse_u32(v)?, parse_u32(m)?)),
        None => Some((parse_u32(s)?, u32::MAX)),
    }
}

/// Joins alternatives for an error message: `via, dev, proto`.
pub(crate) fn one_of(words: &[&str]) -> String {
    words.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_columns_and_quotes() {
        let t = tokenize("-A x  -m comment --comment \"a \\\"b\\\" c\" -j y", true).unwrap();
        let words: Vec<&str> = t.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(words, ["-A", "x", "-m", "comment", "--comment", "a \"b\" c", "-j", "y"]);
        assert_eq!(t[2].col, 7);
        assert_eq!(t[5].col, 28);
        assert_eq!(tokenize("a \"open", true).unwrap_err().0, 3);
        assert!(tokenize("a \"x\"y", true).is_err());
        // Without quote handling a quote is an ordinary character.
        assert_eq!(tokenize("0:\tfrom \"x", false).unwrap()[2].text, "\"x");
    }

    #[test]
    fn prefixes() {
        let n = parse_net("10.0.0.1/26").unwrap();
        assert!(n.has_host_bits());
        assert!(n.contains(Ipv4Addr::new(10, 0, 0, 63)));
        assert!(!n.contains(Ipv4Addr::new(10, 0, 0, 64)));
        assert_eq!(n.network(), Ipv4Addr::new(10, 0, 0, 0));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 0, 0, 63));
        assert_eq!(parse_net("1.2.3.4"), Some(Ipv4Net::new(Ipv4Addr::new(1, 2, 3, 4), 32)));
        for bad in ["1.2.3.4/33", "1.2.3/8", "1.2.3.4/", "1.2.3.4/+1", "x", "01.2.3.4"] {
            assert_eq!(parse_net(bad), None, "{bad}");
        }
        assert_eq!(Ipv4Net::ALL.mask(), 0);
        assert_eq!(format_host_or_net(&parse_net("1.2.3.4/32").unwrap()), "1.2.3.4");
    }

    #[test]
    fn bits_to_decide_is_sound() {
        let n = parse_net("10.0.0.0/26").unwrap();
        assert_eq!(n.bits_to_decide(Ipv4Addr::new(10, 0, 0, 9)), 26);
        // 10.1.0.10 differs from 10.0.0.0 at bit 16 (1-based).
        assert_eq!(n.bits_to_decide(Ipv4Addr::new(10, 1, 0, 10)), 16);
        assert_eq!(n.bits_to_decide(Ipv4Addr::new(138, 0, 0, 0)), 1);
        assert_eq!(Ipv4Net::ALL.bits_to_decide(Ipv4Addr::new(1, 1, 1, 1)), 0);
    }

    #[test]
    fn macs_and_marks() {
        let m = parse_mac("FA:16:3e:93:5b:29").unwrap();
        assert_eq!(format_mac(&m), "fa:16:3e:93:5b:29");
        for bad in
            ["fa:16:3e:93:5b", "fa:16:3e:93:5b:29:00", "fa:16:3e:93:5b:2", "zz:16:3e:93:5b:29"]
        {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert_eq!(parse_mark("0x2/0xffff"), Some((2, 0xffff)));
        assert_eq!(parse_mark("7"), Some((7, u32::MAX)));
        assert_eq!(parse_mark("0x/1"), None);
        assert_eq!(parse_u32("0x123456789"), None);
    }

    #[test]
    fn error_display() {
        let e = ParseError::new("ip_route", 3, 12, "unknown keyword \"viaa\"");
        assert_eq!(e.to_string(), "ip_route line 3, column 12: unknown keyword \"viaa\"");
        assert_eq!(ParseError::new("ip_rule", 2, 0, "x").to_string(), "ip_rule line 2: x");
        assert_eq!(
            ParseError::field("interfaces[0].mac", "bad").to_string(),
            "interfaces[0].mac: bad"
        );
    }
}
