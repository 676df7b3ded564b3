//! Text formats shared by every printer of OVS-style output (`dump-flows`, `dpctl`,
//! datapath actions, traces): C's `%#x`, MAC and IPv6 addresses as OVS prints them, and
//! OVS's flag lists.

use std::net::{Ipv4Addr, Ipv6Addr};

/// C's `%#x`: `0` for zero, `0x..` otherwise.
pub(crate) fn c_hex(v: u64) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v:#x}")
    }
}

pub(crate) fn mac(m: &[u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

/// An IPv6 address as glibc's `inet_ntop` writes it (`::a.b.c.d` for IPv4-compatible).
pub(crate) fn ipv6(a: &[u8; 16]) -> String {
    let v = u128::from_be_bytes(*a);
    let addr = Ipv6Addr::from(v);
    let w = addr.segments();
    if w[..6].iter().all(|x| *x == 0) && w[6] != 0 {
        return format!("::{}", Ipv4Addr::from(v as u32));
    }
    addr.to_string()
}

/// `ct_state` bit names, in OVS's bit order.
pub(crate) const CT_NAMES: [&str; 8] = ["new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"];
/// TCP flag names, in OVS's bit order.
pub(crate) const TCP_NAMES: [&str; 12] =
    ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns", "[200]", "[400]", "[800]"];
/// OVS's tunnel flag bits, in its order: oam (1), df (2), csum (4), key (8).
pub(crate) const TUN_NAMES: [&str; 4] = ["oam", "df", "csum", "key"];

/// OVS's `format_flags`: names joined by `|`, `0` for none, unknown bits in hex.
pub(crate) fn flags(names: &[&str], v: u32) -> String {
    if v == 0 {
        return "0".into();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut bad = 0u32;
    for bit in 0..32 {
        if v & (1 << bit) != 0 {
            match names.get(bit) {
                Some(n) => parts.push((*n).to_string()),
                None => bad |= 1 << bit,
            }
        }
    }
    if bad != 0 {
        parts.push(format!("0x{bad:x}"));
    }
    parts.join("|")
}

/// OVS's `format_flags_masked`: `a|b` under the full mask, `0/0` under none, else `+a-b`.
pub(crate) fn flags_masked(names: &[&str], v: u32, m: u32, full: u32) -> String {
    if m == full {
        return flags(names, v);
    }
    if m == 0 {
        return "0/0".into();
    }
    let mut s = String::new();
    for bit in 0..32 {
        if m & (1 << bit) != 0 {
            s.push(if v & (1 << bit) != 0 { '+' } else { '-' });
            s.push_str(names.get(bit).copied().unwrap_or("[unknown]"));
        }
    }
    s
}
