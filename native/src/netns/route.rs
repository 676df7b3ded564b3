//! Routes: the `ip route show table all` text, and longest-prefix-match lookup in one table
//! (`fib_table_lookup()` of Linux `net/ipv4/fib_trie.c`).
//!
//! Invariants:
//! - A parsed IPv4 route has a destination without host bits, and a unicast, local or
//!   broadcast route names its device; error routes (`unreachable`, `blackhole`, `prohibit`,
//!   `throw`) carry no next hop.
//! - IPv6 lines are kept verbatim (`RouteLine::Other`) and printed back unchanged; they take
//!   no part in IPv4 lookups.
//! - `format_ip_route(parse_ip_route(t))` is `t` for text written by `ip route show table
//!   all`: fields come out in iproute2's order (type, destination, via, dev, table, proto,
//!   scope, src, metric, flags), and defaults it leaves out (table main, proto boot, scope
//!   global, type unicast) are left out.
//! - A lookup reports, with its result, how many leading destination bits decided it (see
//!   `Ipv4Net::bits_to_decide`): every destination that agrees on those bits gets the same
//!   route from the same table.

use super::rule::{parse_table, table_name, TABLE_LOCAL, TABLE_MAIN};
use super::text::ParseError;
use super::text::{format_host_or_net, one_of, parse_ipv4, parse_net, tokenize, Ipv4Net};
use std::net::Ipv4Addr;

/// Route types (`RTN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteType {
    Unicast,
    Local,
    Broadcast,
    Unreachable,
    Blackhole,
    Prohibit,
    Throw,
}

impl RouteType {
    fn name(self) -> &'static str {
        match self {
            RouteType::Unicast => "unicast",
            RouteType::Local => "local",
            RouteType::Broadcast => "broadcast",
            RouteType::Unreachable => "unreachable",
            RouteType::Blackhole => "blackhole",
            RouteType::Prohibit => "prohibit",
            RouteType::Throw => "throw",
        }
    }

    fn from_name(s: &str) -> Option<RouteType> {
        Some(match s {
            "unicast" => RouteType::Unicast,
            "local" => RouteType::Local,
            "broadcast" => RouteType::Broadcast,
            "unreachable" => RouteType::Unreachable,
            "blackhole" => RouteType::Blackhole,
            "prohibit" => RouteType::Prohibit,
            "throw" => RouteType::Throw,
            _ => return None,
        })
    }

    /// Error routes have no next hop.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            RouteType::Unreachable | RouteType::Blackhole | RouteType::Prohibit | RouteType::Throw
        )
    }
}

/// Route scopes (`RT_SCOPE_*`).
pub const SCOPE_UNIVERSE: u8 = 0;
pub const SCOPE_SITE: u8 = 200;
pub const SCOPE_LINK: u8 = 253;
pub const SCOPE_HOST: u8 = 254;
pub const SCOPE_NOWHERE: u8 = 255;

/// Route protocols (`RTPROT_*`) that iproute2 prints by name.
pub const PROTO_BOOT: u8 = 3;
pub const PROTO_KERNEL: u8 = 2;
const PROTO_NAMES: &[(u8, &str)] = &[
    (0, "unspec"),
    (1, "redirect"),
    (2, "kernel"),
    (3, "boot"),
    (4, "static"),
    (8, "gated"),
    (9, "ra"),
    (10, "mrt"),
    (11, "zebra"),
    (12, "bird"),
    (13, "dnrouted"),
    (14, "xorp"),
    (15, "ntk"),
    (16, "dhcp"),
    (18, "keepalived"),
    (42, "babel"),
    (186, "bgp"),
    (187, "isis"),
    (188, "ospf"),
    (189, "rip"),
    (192, "eigrp"),
];

fn scope_name(s: u8) -> String {
    match s {
        SCOPE_UNIVERSE => "global".into(),
        SCOPE_SITE => "site".into(),
        SCOPE_LINK => "link".into(),
        SCOPE_HOST => "host".into(),
        SCOPE_NOWHERE => "nowhere".into(),
        n => n.to_string(),
    }
}

fn parse_scope(s: &str) -> Option<u8> {
    match s {
        "global" | "universe" => Some(SCOPE_UNIVERSE),
        "site" => Some(SCOPE_SITE),
        "link" => Some(SCOPE_LINK),
        "host" => Some(SCOPE_HOST),
        "nowhere" => Some(SCOPE_NOWHERE),
        n => n.parse().ok(),
    }
}

fn proto_name(p: u8) -> String {
    PROTO_NAMES.iter().find(|(n, _)| *n == p).map_or_else(|| p.to_string(), |(_, s)| s.to_string())
}

fn parse_proto(s: &str) -> Option<u8> {
    PROTO_NAMES.iter().find(|(_, n)| *n == s).map(|(p, _)| *p).or_else(|| s.parse().ok())
}

/// One IPv4 route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub rtype: RouteType,
    pub dst: Ipv4Net,
    pub via: Option<Ipv4Addr>,
    pub dev: Option<String>,
    pub table: u32,
    pub proto: u8,
    pub scope: u8,
    pub src: Option<Ipv4Addr>, // the preferred source (`src`)
    pub metric: u32,           // 0 when not printed
    pub onlink: bool,
    pub linkdown: bool,
    pub line: usize, // 1-based line of the text; 0 for a route implied by an address
}

impl Route {
    /// A route with the defaults of `ip route add` (unicast, table main, proto boot).
    pub fn new(rtype: RouteType, dst: Ipv4Net) -> Route {
        Route {
            rtype,
            dst,
            via: None,
            dev: None,
            table: TABLE_MAIN,
            proto: PROTO_BOOT,
            scope: SCOPE_UNIVERSE,
            src: None,
            metric: 0,
            onlink: false,
            linkdown: false,
            line: 0,
        }
    }
}

/// A line of `ip route show table all`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteLine {
    V4(Route),
    /// An IPv6 route, kept as written.
    Other {
        line: usize,
        text: String,
    },
}

const ROUTE_WORDS: &[&str] = &["via", "dev", "proto", "scope", "src", "metric", "table"];

/// Parses `ip route show table all` output. IPv6 lines are kept as `RouteLine::Other`.
pub fn parse_ip_route(text: &str) -> Result<Vec<RouteLine>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if is_ipv6_route(line) {
            out.push(RouteLine::Other { line: i + 1, text: line.trim_end().to_string() });
        } else {
            out.push(RouteLine::V4(parse_route_line(line, i + 1)?));
        }
    }
    Ok(out)
}

/// An IPv6 route names an IPv6 destination or gateway, or an IPv6-only attribute.
fn is_ipv6_route(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    let start = usize::from(words.first().and_then(|w| RouteType::from_name(w)).is_some());
    let v6 = |w: &str| {
        w.contains(':')
            && w.split('/').next().is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
    };
    words.get(start).is_some_and(|w| v6(w))
        || words.windows(2).any(|p| p[0] == "via" && v6(p[1]))
        || words.contains(&"pref")
}

/// Parses one IPv4 line of `ip route show`.
pub fn parse_route_line(line: &str, line_no: usize) -> Result<Route, ParseError> {
    let e = |col: usize, msg: String| ParseError::new("ip_route", line_no, col, msg);
    let toks = tokenize(line, false).map_err(|(c, m)| e(c, m))?;
    let mut k = 0;
    let mut rtype = RouteType::Unicast;
    if let Some(t) = toks.first().and_then(|t| RouteType::from_name(&t.text)) {
        rtype = t;
        k = 1;
    }
    let Some(d) = toks.get(k) else {
        return Err(e(toks.last().map_or(0, |t| t.col), "missing destination".into()));
    };
    let dst = if d.text == "default" {
        Ipv4Net::ALL
    } else {
        parse_net(&d.text).ok_or_else(|| {
            e(d.col, format!("bad destination \"{}\"; expected \"default\" or a prefix", d.text))
        })?
    };
    if dst.has_host_bits() {
        return Err(e(d.col, format!("invalid prefix \"{}\": host bits are set", d.text)));
    }
    let mut r = Route::new(rtype, dst);
    r.line = line_no;
    // `local` and `broadcast` routes live in table local unless the text says otherwise.
    let mut table_given = false;
    k += 1;
    while k < toks.len() {
        let t = &toks[k];
        match t.text.as_str() {
            "onlink" => {
                r.onlink = true;
                k += 1;
                continue;
            }
            "linkdown" => {
                r.linkdown = true;
                k += 1;
                continue;
            }
            _ => {}
        }
        let Some(a) = toks.get(k + 1) else {
            if ROUTE_WORDS.contains(&t.text.as_str()) {
                return Err(e(t.col, format!("\"{}\" needs a value", t.text)));
            }
            return Err(unknown(e, t));
        };
        let bad = |what: &str| e(a.col, format!("bad {what} \"{}\"", a.text));
        match t.text.as_str() {
            "via" => r.via = Some(parse_ipv4(&a.text).ok_or_else(|| bad("gateway"))?),
            "dev" => r.dev = Some(a.text.clone()),
            "proto" => r.proto = parse_proto(&a.text).ok_or_else(|| bad("protocol"))?,
            "scope" => r.scope = parse_scope(&a.text).ok_or_else(|| bad("scope"))?,
            "src" => r.src = Some(parse_ipv4(&a.text).ok_or_else(|| bad("source address"))?),
            "metric" => r.metric = a.text.parse().map_err(|_| bad("metric"))?,
            "table" => {
                r.table = parse_table(&a.text).ok_or_else(|| bad("table"))?;
                table_given = true;
            }
            _ => return Err(unknown(e, t)),
        }
        k += 2;
    }
    if !table_given && matches!(rtype, RouteType::Local | RouteType::Broadcast) {
        // `ip route show table all` prints `table local`; a bare line is read as the
        // kernel's own entry for an address, which lives there.
        r.table = TABLE_LOCAL;
    }
    if rtype.is_error() {
        if let Some(via) = r.via {
            return Err(e(0, format!("a {} route cannot have a gateway ({via})", rtype.name())));
        }
    } else if r.dev.is_none() {
        return Err(e(0, format!("a {} route needs \"dev\"", rtype.name())));
    }
    Ok(r)
}

fn unknown(e: impl Fn(usize, String) -> ParseError, t: &super::text::Tok) -> ParseError {
    e(t.col, format!("unknown keyword \"{}\"; expected one of {}", t.text, one_of(ROUTE_WORDS)))
}

/// Writes one route as `ip route show table all` does.
pub fn format_route(r: &Route) -> String {
    let mut s = String::new();
    if r.rtype != RouteType::Unicast {
        s.push_str(r.rtype.name());
        s.push(' ');
    }
    if r.dst.len == 0 {
        s.push_str("default");
    } else {
        s.push_str(&format_host_or_net(&r.dst));
    }
    if let Some(v) = r.via {
        s.push_str(&format!(" via {v}"));
    }
    if let Some(d) = &r.dev {
        s.push_str(&format!(" dev {d}"));
    }
    if r.table != TABLE_MAIN {
        s.push_str(&format!(" table {}", table_name(r.table)));
    }
    if r.proto != PROTO_BOOT {
        s.push_str(&format!(" proto {}", proto_name(r.proto)));
    }
    if r.scope != SCOPE_UNIVERSE {
        s.push_str(&format!(" scope {}", scope_name(r.scope)));
    }
    if let Some(src) = r.src {
        s.push_str(&format!(" src {src}"));
    }
    if r.metric != 0 {
        s.push_str(&format!(" metric {}", r.metric));
    }
    if r.onlink {
        s.push_str(" onlink");
    }
    if r.linkdown {
        s.push_str(" linkdown");
    }
    s
}

/// Writes route lines as `ip route show table all` does; routes implied by addresses
/// (line 0) are not written.
pub fn format_ip_route(lines: &[RouteLine]) -> String {
    let mut s = String::new();
    for l in lines {
        match l {
            RouteLine::V4(r) if r.line == 0 => continue,
            RouteLine::V4(r) => s.push_str(&format_route(r)),
            RouteLine::Other { text, .. } => s.push_str(text),
        }
        s.push('\n');
    }
    s
}

/// The result of looking a destination up in one table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableHit<'a> {
    pub route: Option<&'a Route>, // None: no prefix matched
    pub dst_bits: u8,             // leading destination bits that decided the result
}

/// Longest-prefix match of `dst` among `routes` (the routes of one table): the longest
/// matching prefix wins, then the lowest metric, then the route written first.
pub fn lookup<'a>(routes: impl IntoIterator<Item = &'a Route>, dst: Ipv4Addr) -> TableHit<'a> {
    let mut best: Option<&Route> = None;
    let mut dst_bits = 0;
    for r in routes {
        dst_bits = dst_bits.max(r.dst.bits_to_decide(dst));
        if !r.dst.contains(dst) {
            continue;
        }
        let better = match best {
            None => true,
            Some(b) => r.dst.len > b.dst.len || (r.dst.len == b.dst.len && r.metric < b.metric),
        };
        if better {
            best = Some(r);
        }
    }
    TableHit { route: best, dst_bits }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "default via 10.0.0.3 dev qr-aae8ab78-22 table 167772161\n\
        default via 10.1.0.6 dev qr-2909fe1f-46 table 167837697\n\
        default via 169.254.106.115 dev rfp-bd7982cb-b table 16\n\
        10.0.0.0/26 dev qr-aae8ab78-22 proto kernel scope link src 10.0.0.1\n\
        10.1.0.0/24 dev qr-2909fe1f-46 proto kernel scope link src 10.1.0.1\n\
        169.254.106.114/31 dev rfp-bd7982cb-b proto kernel scope link src 169.254.106.114\n\
        broadcast 10.0.0.0 dev qr-aae8ab78-22 table local proto kernel scope link src 10.0.0.1\n\
        local 10.0.0.1 dev qr-aae8ab78-22 table local proto kernel scope host src 10.0.0.1\n\
        broadcast 10.0.0.63 dev qr-aae8ab78-22 table local proto kernel scope link src 10.0.0.1\n\
        default via fda0:6cec:a994::5 dev qr-12fa6289-8f table 765853562\n\
        fda0:6cec:a994::/64 dev qr-12fa6289-8f proto kernel metric 256 pref medium\n";

    fn v4(lines: &[RouteLine]) -> Vec<&Route> {
        lines
            .iter()
            .filter_map(|l| match l {
                RouteLine::V4(r) => Some(r),
                RouteLine::Other { .. } => None,
            })
            .collect()
    }

    #[test]
    fn parses_and_prints_the_seed_routes() {
        let lines = parse_ip_route(SEED).unwrap();
        assert_eq!(lines.len(), 11);
        let r = v4(&lines);
        assert_eq!(r.len(), 9);
        assert_eq!(r[0].table, 167772161);
        assert_eq!(r[0].via, Some(Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(r[3].proto, PROTO_KERNEL);
        assert_eq!(r[3].scope, SCOPE_LINK);
        assert_eq!(r[3].src, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(r[6].rtype, RouteType::Broadcast);
        assert_eq!(r[7].rtype, RouteType::Local);
        assert_eq!(r[7].table, TABLE_LOCAL);
        assert!(matches!(&lines[9], RouteLine::Other { line: 10, .. }));
        assert_eq!(format_ip_route(&lines), SEED);
    }

    #[test]
    fn parses_types_flags_and_metrics() {
        let text = "unreachable 10.9.0.0/16 metric 5\n\
            blackhole 10.8.0.0/16 table 7\n\
            prohibit 10.7.0.0/16\n\
            throw 10.6.0.0/16 table 7\n\
            10.5.0.0/16 via 192.0.2.1 dev eth0 proto static metric 100 onlink linkdown\n\
            local 10.0.0.1 dev eth0 proto kernel scope host src 10.0.0.1\n";
        let lines = parse_ip_route(text).unwrap();
        let r = v4(&lines);
        assert_eq!(r[0].rtype, RouteType::Unreachable);
        assert_eq!(r[0].metric, 5);
        assert_eq!(r[1].table, 7);
        assert!(r[4].onlink && r[4].linkdown);
        assert_eq!(r[4].proto, 4);
        // A bare `local` line is the kernel's entry of table local.
        assert_eq!(r[5].table, TABLE_LOCAL);
        let printed = format_ip_route(&lines);
        assert!(printed.contains("local 10.0.0.1 dev eth0 table local proto kernel scope host"));
        assert_eq!(format_ip_route(&parse_ip_route(&printed).unwrap()), printed);
    }

    #[test]
    fn errors_say_where_and_what() {
        let cases = [
            (
                "10.0.0.0/8 viaa 1.2.3.4",
                "ip_route line 3, column 12: unknown keyword \"viaa\"; \
              expected one of via, dev, proto, scope, src, metric, table",
            ),
            (
                "10.0.0.0/33 dev x",
                "ip_route line 3, column 1: bad destination \"10.0.0.0/33\"; \
              expected \"default\" or a prefix",
            ),
            (
                "10.0.0.1/8 dev x",
                "ip_route line 3, column 1: invalid prefix \"10.0.0.1/8\": host \
              bits are set",
            ),
            ("default via 1.2.3 dev x", "ip_route line 3, column 13: bad gateway \"1.2.3\""),
            ("default dev x proto nope", "ip_route line 3, column 21: bad protocol \"nope\""),
            ("default dev x scope far", "ip_route line 3, column 21: bad scope \"far\""),
            ("default dev x src y", "ip_route line 3, column 19: bad source address \"y\""),
            ("default dev x metric -1", "ip_route line 3, column 22: bad metric \"-1\""),
            ("default dev x table 0", "ip_route line 3, column 21: bad table \"0\""),
            ("default dev", "ip_route line 3, column 9: \"dev\" needs a value"),
            ("default via 1.2.3.4", "ip_route line 3: a unicast route needs \"dev\""),
            (
                "blackhole default via 1.2.3.4",
                "ip_route line 3: a blackhole route cannot have a \
              gateway (1.2.3.4)",
            ),
            ("local", "ip_route line 3, column 1: missing destination"),
            (
                "default dev x bogus",
                "ip_route line 3, column 15: unknown keyword \"bogus\"; \
              expected one of via, dev, proto, scope, src, metric, table",
            ),
        ];
        for (text, want) in cases {
            let got = parse_ip_route(&format!("default dev a\n\n{text}\n")).unwrap_err();
            assert_eq!(got.to_string(), want, "{text}");
        }
    }

    #[test]
    fn longest_prefix_then_metric() {
        let lines = parse_ip_route(
            "default via 10.0.0.3 dev a\n10.0.0.0/24 dev a metric 20\n10.0.0.0/24 dev b metric 10\n\
             10.0.0.128/25 dev c\n",
        )
        .unwrap();
        let r = v4(&lines);
        let hit = lookup(r.iter().copied(), Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(hit.route.unwrap().dev.as_deref(), Some("b"));
        // 10.0.0.5 vs 10.0.0.128/25 differs at bit 25.
        assert_eq!(hit.dst_bits, 25);
        let hit = lookup(r.iter().copied(), Ipv4Addr::new(10, 0, 0, 200));
        assert_eq!(hit.route.unwrap().dev.as_deref(), Some("c"));
        assert_eq!(hit.dst_bits, 25);
        let hit = lookup(r.iter().copied(), Ipv4Addr::new(8, 8, 8, 8));
        assert_eq!(hit.route.unwrap().dst, Ipv4Net::ALL);
        assert_eq!(hit.dst_bits, 7); // 8.x vs 10.x: first difference at bit 7
        assert_eq!(lookup(std::iter::empty(), Ipv4Addr::new(1, 1, 1, 1)).route, None);
    }

    #[test]
    fn lookup_deps_are_sound() {
        // Every destination agreeing on `dst_bits` leading bits gets the same route.
        let lines = parse_ip_route(
            "default via 10.0.0.3 dev a\n10.0.0.0/24 dev b\n10.0.0.128/25 dev c\n\
             10.0.0.1 dev d\n192.168.0.0/16 dev e\n",
        )
        .unwrap();
        let r = v4(&lines);
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            // Half the destinations near 10.0.0.0, half anywhere.
            let dst = Ipv4Addr::from(if seed & 1 == 1 {
                0x0a00_0000 | (seed >> 8) & 0x1ff
            } else {
                seed
            });
            let hit = lookup(r.iter().copied(), dst);
            let keep = Ipv4Net::new(dst, hit.dst_bits).mask();
            let other = Ipv4Addr::from(u32::from(dst) & keep | seed.rotate_left(7) & !keep);
            let again = lookup(r.iter().copied(), other);
            assert_eq!(hit.route, again.route, "seed {seed:#x}: {dst} vs {other}");
        }
    }
}
