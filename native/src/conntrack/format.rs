//! `ovs-appctl dpctl/dump-conntrack [-s]` lines, as OVS 3.1's `ct_dpif_format_entry()`
//! (lib/ct-dpif.c) prints them for the userspace datapath, and IPv6 addresses as glibc's
//! `inet_ntop()` writes them.

use super::tcp::STATE_NAMES;
use super::{ConnView, CtTuple};
use std::fmt::Write;
use std::net::{IpAddr, Ipv6Addr};

/// `ct_dpif_format_ipproto`: a name for the protocols OVS knows, else the number.
fn proto_name(p: u8) -> Option<&'static str> {
    Some(match p {
        1 => "icmp",
        58 => "icmpv6",
        6 => "tcp",
        17 => "udp",
        132 => "sctp",
        136 => "udplite",
        33 => "dccp",
        2 => "igmp",
        _ => return None,
    })
}

/// An IPv6 address as glibc's `inet_ntop` prints it: the longest run of two or more zero
/// groups (the first on a tie) becomes `::`, and IPv4-mapped (`::ffff:a.b.c.d`) or
/// IPv4-compatible (`::a.b.c.d`, six zero groups first) addresses end in dotted quad.
pub fn ipv6_ntop(a: &Ipv6Addr) -> String {
    let w = a.segments();
    let (mut best, mut best_len) = (usize::MAX, 0usize);
    let mut i = 0;
    while i < 8 {
        if w[i] == 0 {
            let start = i;
            while i < 8 && w[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best = usize::MAX;
    }
    let mut s = String::new();
    let mut i = 0;
    while i < 8 {
        if i == best {
            s.push(':');
            i += best_len;
            if i == 8 {
                s.push(':');
            }
            continue;
        }
        if i != 0 {
            s.push(':');
        }
        // glibc also lists a run of 7 here, but index 6 is then inside the run and never
        // reached, so `::2` prints as `::2`.
        let embedded_v4 =
            i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff));
        if embedded_v4 {
            let o = a.octets();
            let _ = write!(s, "{}.{}.{}.{}", o[12], o[13], o[14], o[15]);
            break;
        }
        let _ = write!(s, "{:x}", w[i]);
        i += 1;
    }
    s
}

fn put_addr(s: &mut String, a: &IpAddr) {
    match a {
        IpAddr::V4(v4) => {
            let _ = write!(s, "{v4}");
        }
        IpAddr::V6(v6) => s.push_str(&ipv6_ntop(v6)),
    }
}

/// `ct_dpif_format_tuple`.
fn put_tuple(s: &mut String, t: &CtTuple, proto: u8) {
    s.push_str("src=");
    put_addr(s, &t.src);
    s.push_str(",dst=");
    put_addr(s, &t.dst);
    if proto == 1 || proto == 58 {
        let _ = write!(s, ",id={},type={},code={}", t.icmp_id, t.icmp_type, t.icmp_code);
    } else {
        let _ = write!(s, ",sport={},dport={}", t.sport, t.dport);
    }
}

/// One `dpctl/dump-conntrack` line (without the newline). `print_stats` is `-s`: it adds
/// `timeout=`. The userspace datapath keeps no per-connection counters or timestamps, so
/// those never print; `zone=` and `mark=` print when nonzero, and TCP always prints its
/// coalesced state (`protoinfo=(state=...)`), with or without `-s`.
pub fn format_conn(v: &ConnView, print_stats: bool) -> String {
    let mut s = String::with_capacity(160);
    match proto_name(v.proto) {
        Some(n) => s.push_str(n),
        None => {
            let _ = write!(s, "{}", v.proto);
        }
    }
    s.push_str(",orig=(");
    put_tuple(&mut s, &v.orig, v.proto);
    s.push_str("),reply=(");
    put_tuple(&mut s, &v.reply, v.proto);
    s.push(')');
    if v.zone != 0 {
        let _ = write!(s, ",zone={}", v.zone);
    }
    if print_stats {
        let _ = write!(s, ",timeout={}", v.timeout);
    }
    if v.mark != 0 {
        let _ = write!(s, ",mark={}", v.mark);
    }
    if let Some((orig, reply)) = v.tcp_state {
        // ct_dpif_format_protoinfo_tcp: the larger of the two states, with FIN_WAIT_2
        // shown as TIME_WAIT and SYN_RECV as ESTABLISHED, as the kernel would.
        let st = match orig.max(reply) {
            9 => 10,
            3 => 4,
            x => x,
        };
        s.push_str(",protoinfo=(state=");
        match STATE_NAMES.get(usize::from(st)) {
            Some(n) => s.push_str(n),
            None => {
                let _ = write!(s, "[{st}]");
            }
        }
        s.push(')');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_like_glibc() {
        let cases = [
            ("2001:db8::1", "2001:db8::1"),
            ("::1", "::1"),
            ("::", "::"),
            ("fe80::", "fe80::"),
            ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"),
            ("2001:0:0:1:0:0:1:1", "2001::1:0:0:1:1"),
            ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
            ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
            ("::2", "::2"),
            ("::1.2.3.4", "::1.2.3.4"),
        ];
        for (inp, want) in cases {
            let a: Ipv6Addr = inp.parse().unwrap();
            assert_eq!(ipv6_ntop(&a), want, "{inp}");
        }
    }
}
