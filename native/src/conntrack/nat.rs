//! NAT for conntrack: choosing the translated tuple of a new connection
//! (`nat_get_unique_tuple()` in OVS `lib/conntrack.c`) and rewriting packets
//! (`nat_packet()`, `nat_inner_packet()`, `pat_packet()`, and `packet_set_*` of
//! `lib/packets.c`), checksums included.
//!
//! Invariants:
//! - Rewrites never index outside the frame: every write is behind a bounds check, and a
//!   checksum field that lies outside the IP packet (a truncated header inside an ICMP error)
//!   is left alone.
//! - Checksums are updated incrementally with OVS's exact arithmetic (RFC 1624), so the bytes
//!   match OVS's; a UDP checksum of 0 ("none", RFC 768) stays 0, and an update that yields 0
//!   is sent as 0xffff.
//! - Tuple choice is deterministic: where OVS hashes with a per-process random basis (address
//!   ranges, port ranges) we hash with a fixed one, and where OVS draws a random port after
//!   128 collisions we draw from the tracker's seeded generator. For an explicit port range,
//!   the original port is kept when it lies in the range and is free (as Linux does; OVS
//!   starts at a random point of the range), so translations are predictable.

use super::key::{ConnKey, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use super::{csum, key};
use crate::ofproto::action::{NatKind, NatSpec};
use std::net::IpAddr;

/// `NAT_ACTION_*` bits of OVS's `conntrack.h`.
pub(crate) const SRC: u8 = 1 << 0;
pub(crate) const SRC_PORT: u8 = 1 << 1;
pub(crate) const DST: u8 = 1 << 2;
pub(crate) const DST_PORT: u8 = 1 << 3;

/// The NAT request of one `ct()` action, as the datapath sees it (`nat_action_info_t`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NatInfo {
    pub action: u8,
    pub min_addr: [u8; 16],
    pub max_addr: [u8; 16],
    pub min_port: u16,
    pub max_port: u16,
}

fn addr_bytes(a: &IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

impl NatInfo {
    /// What `put_ct_nat()` (ofproto-dpif-xlate.c) encodes and `dp_execute_cb()`
    /// (dpif-netdev.c) decodes for a `nat(...)` spec. A bare `nat` gives action 0.
    pub(crate) fn from_spec(spec: &NatSpec) -> NatInfo {
        let mut ni = NatInfo::default();
        let flag = match spec.kind {
            NatKind::Any => return ni,
            NatKind::Src => SRC,
            NatKind::Dst => DST,
        };
        ni.action = flag;
        if let Some((min, max)) = &spec.addrs {
            ni.min_addr = addr_bytes(min);
            let max_b = addr_bytes(max);
            // The maximum is only encoded when above the minimum.
            ni.max_addr = if max_b > ni.min_addr { max_b } else { ni.min_addr };
            // Ports are only encoded together with an address range.
            if spec.ports.0 != 0 {
                ni.min_port = spec.ports.0;
                ni.max_port = spec.ports.1.max(spec.ports.0);
                ni.action |= if flag == SRC { SRC_PORT } else { DST_PORT };
            }
        }
        ni
    }
}

/// `nat_action_reverse`: what un-NATs the other direction.
pub(crate) fn reverse_action(a: u8) -> u8 {
    if a & SRC != 0 {
        (a ^ SRC) | DST
    } else if a & DST != 0 {
        (a ^ DST) | SRC
    } else {
        a
    }
}

/// A fixed-basis hash of the NAT range and the original tuple (OVS's `nat_range_hash`
/// covers the same inputs with a random basis).
fn range_hash(fwd: &ConnKey, ni: &NatInfo) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(&ni.min_addr);
    eat(&ni.max_addr);
    eat(&ni.min_port.to_be_bytes());
    eat(&ni.max_port.to_be_bytes());
    for ep in [&fwd.src, &fwd.dst] {
        eat(&ep.addr);
        eat(&ep.port.to_be_bytes());
        eat(&[ep.icmp_type, ep.icmp_code]);
    }
    eat(&fwd.dl_type.to_be_bytes());
    eat(&[fwd.nw_proto]);
    eat(&fwd.zone.to_be_bytes());
    (h ^ (h >> 32)) as u32
}

/// `get_addr_in_range`: `min + hash % (max - min + 1)`; IPv6 deltas are capped at 32 bits.
fn addr_in_range(min: &[u8; 16], max: &[u8; 16], hash: u32, ipv4: bool) -> [u8; 16] {
    let mut out = [0u8; 16];
    if ipv4 {
        let lo = u32::from_be_bytes([min[0], min[1], min[2], min[3]]);
        let hi = u32::from_be_bytes([max[0], max[1], max[2], max[3]]);
        let range = hi.wrapping_sub(lo).wrapping_add(1);
        let off = if range == 0 { hash } else { hash % range };
        out[..4].copy_from_slice(&lo.wrapping_add(off).to_be_bytes());
    } else {
        let lo = u128::from_be_bytes(*min);
        let hi = u128::from_be_bytes(*max);
        let delta = if hi >= lo { (hi - lo).min(0xffff_fffe) } else { 0xffff_fffe } as u32;
        let off = hash % (delta + 1);
        out = lo.saturating_add(u128::from(off)).to_be_bytes();
    }
    out
}

/// Port search range of the source port, and where to start (`set_sport_range`).
fn sport_range(ni: &NatInfo, fwd: &ConnKey, hash: u32) -> (u16, u16, u16) {
    if ni.action & (SRC | SRC_PORT) == SRC || ni.action & DST != 0 {
        let curr = fwd.src.port;
        // Keep the port in its class: privileged-low, privileged-high, ephemeral.
        let (min, max) = if curr < 512 {
            (1, 511)
        } else if curr < 1024 {
            (600, 1023)
        } else {
            (1024, 65535)
        };
        (curr, min, max)
    } else {
        let (min, max) = (ni.min_port, ni.max_port);
        let curr = if (min..=max).contains(&fwd.src.port) {
            fwd.src.port
        } else {
            min.wrapping_add((hash % (u32::from(max - min) + 1)) as u16)
        };
        (curr, min, max)
    }
}

/// `set_dport_range`.
fn dport_range(ni: &NatInfo, fwd: &ConnKey, hash: u32) -> (u16, u16, u16) {
    if ni.action & DST_PORT != 0 {
        let (min, max) = (ni.min_port, ni.max_port);
        let curr = if (min..=max).contains(&fwd.dst.port) {
            fwd.dst.port
        } else {
            min.wrapping_add((hash % (u32::from(max - min) + 1)) as u16)
        };
        (curr, min, max)
    } else {
        (fwd.dst.port, fwd.dst.port, fwd.dst.port)
    }
}

/// A small deterministic generator for the "another round" restarts of the port search.
pub(crate) fn next_random(state: &mut u64) -> u32 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
}

#[derive(Clone, Copy)]
enum PortSel {
    RevSrc,
    RevDst,
}

fn port_mut(k: &mut ConnKey, sel: PortSel) -> &mut u16 {
    match sel {
        PortSel::RevSrc => &mut k.src.port,
        PortSel::RevDst => &mut k.dst.port,
    }
}

/// `nat_get_unique_l4`: walks the range from `curr`, at most 128 tries, then restarts at a
/// random point with half as many tries while that is still 16 or more.
fn unique_l4(
    rev: &mut ConnKey,
    sel: PortSel,
    mut curr: u16,
    min: u16,
    max: u16,
    exists: &mut dyn FnMut(&ConnKey) -> bool,
    rng: &mut u64,
) -> bool {
    let range = max.wrapping_sub(min).wrapping_add(1);
    let mut attempts = u32::from(range).min(128);
    let orig = curr;
    loop {
        let in_range = (min..=max).contains(&curr);
        // N_PORT_ATTEMPTS, kept in 16 bits as OVS does.
        let n = if in_range {
            max.wrapping_sub(min).wrapping_add(1)
        } else {
            max.wrapping_sub(min).wrapping_add(2)
        };
        // The walk stops after `attempts` tries or one lap, whichever comes first.
        for _ in 0..u32::from(n).min(attempts) {
            *port_mut(rev, sel) = curr;
            if !exists(rev) {
                return true;
            }
            curr = if !(min..=max).contains(&curr) || curr == max { min } else { curr + 1 };
        }
        if attempts < u32::from(range) && attempts >= 16 {
            attempts /= 2;
            curr = min.wrapping_add((next_random(rng) % u32::from(range)) as u16);
            continue;
        }
        break;
    }
    *port_mut(rev, sel) = orig;
    false
}

/// `nat_get_unique_tuple`: fills the translated reply key `rev` (initially the reverse of
/// `fwd`) so that no tracked connection uses it in either direction. False on exhaustion.
pub(crate) fn unique_tuple(
    fwd: &ConnKey,
    rev: &mut ConnKey,
    ni: &NatInfo,
    exists: &mut dyn FnMut(&ConnKey) -> bool,
    rng: &mut u64,
) -> bool {
    let pat_proto = fwd.nw_proto == PROTO_TCP || fwd.nw_proto == PROTO_UDP;
    let hash = range_hash(fwd, ni);

    // find_addr: an all-zero minimum (no address given) keeps the packet's own address.
    let addr = if ni.min_addr == [0u8; 16] {
        if ni.action & SRC != 0 {
            fwd.src.addr
        } else if ni.action & DST != 0 {
            fwd.dst.addr
        } else {
            // A bare `nat` on a new connection: OVS 3.1 stores the zero address into the
            // reply key (store_addr_to_key below), so replies do not match it.
            [0u8; 16]
        }
    } else {
        addr_in_range(&ni.min_addr, &ni.max_addr, hash, fwd.is_ipv4())
    };
    let (curr_sport, min_sport, max_sport) = sport_range(ni, fwd, hash);
    let (curr_dport, min_dport, max_dport) = dport_range(ni, fwd, hash);

    if pat_proto {
        rev.src.port = curr_dport;
        rev.dst.port = curr_sport;
    }
    // store_addr_to_key.
    if ni.action & SRC != 0 {
        rev.dst.addr = addr;
    } else {
        rev.src.addr = addr;
    }

    if !pat_proto {
        // ICMP ids and other protocols are not translated in OVS 3.1: the tuple is taken
        // as is, or refused when it collides.
        return !exists(rev);
    }
    let mut found = false;
    if ni.action & DST_PORT != 0 {
        found = unique_l4(rev, PortSel::RevSrc, curr_dport, min_dport, max_dport, exists, rng);
    }
    if !found {
        found = unique_l4(rev, PortSel::RevDst, curr_sport, min_sport, max_sport, exists, rng);
    }
    found
}

/// Header offsets of the packet being rewritten: `end` is the end of the IP packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hdrs {
    pub l3: usize,
    pub l4: usize,
    pub end: usize,
}

impl Hdrs {
    fn l4_size(&self) -> usize {
        self.end.saturating_sub(self.l4)
    }
}

fn get16(f: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]))
}

fn put16(f: &mut [u8], at: usize, v: u16) {
    if let Some(b) = f.get_mut(at..at + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

/// `packet_set_ipv4_addr`: the source (`src`) or destination address, with the IPv4 header
/// checksum and the TCP/UDP pseudo-header checksum.
fn set_ipv4_addr(f: &mut [u8], h: Hdrs, src: bool, new: [u8; 4]) {
    let at = h.l3 + if src { 12 } else { 16 };
    let Some(old) = f.get(at..at + 4).map(|o| [o[0], o[1], o[2], o[3]]) else {
        return;
    };
    let proto = f[h.l3 + 9];
    if proto == PROTO_TCP && h.l4_size() >= 20 {
        if let Some(c) = get16(f, h.l4 + 16) {
            put16(f, h.l4 + 16, csum::recalc32(c, old, new));
        }
    } else if proto == PROTO_UDP && h.l4_size() >= 8 {
        if let Some(c) = get16(f, h.l4 + 6) {
            if c != 0 {
                let n = csum::recalc32(c, old, new);
                put16(f, h.l4 + 6, if n == 0 { 0xffff } else { n });
            }
        }
    }
    if let Some(c) = get16(f, h.l3 + 10) {
        put16(f, h.l3 + 10, csum::recalc32(c, old, new));
    }
    f[at..at + 4].copy_from_slice(&new);
}

/// `packet_set_ipv6_addr` with checksum update. As in OVS, `proto` is the connection key's
/// protocol, which for an ICMPv6 error is the embedded packet's.
fn set_ipv6_addr(f: &mut [u8], h: Hdrs, proto: u8, src: bool, new: &[u8; 16]) {
    let at = h.l3 + if src { 8 } else { 24 };
    let Some(old) = f.get(at..at + 16).and_then(|o| <[u8; 16]>::try_from(o).ok()) else {
        return;
    };
    let csum_at = match proto {
        PROTO_TCP if h.l4_size() >= 20 => Some(h.l4 + 16),
        PROTO_UDP if h.l4_size() >= 8 => Some(h.l4 + 6),
        PROTO_ICMPV6 if h.l4_size() >= 4 => Some(h.l4 + 2),
        _ => None,
    };
    if let Some(ca) = csum_at {
        if let Some(c) = get16(f, ca) {
            if proto != PROTO_UDP {
                put16(f, ca, csum::recalc128(c, &old, new));
            } else if c != 0 {
                let n = csum::recalc128(c, &old, new);
                put16(f, ca, if n == 0 { 0xffff } else { n });
            }
        }
    }
    f[at..at + 16].copy_from_slice(new);
}

/// `packet_set_port`: one port, with its checksum when the checksum field is in the packet.
fn set_port(f: &mut [u8], h: Hdrs, port_at: usize, csum_at: usize, new: u16) {
    let Some(old) = get16(f, port_at) else {
        return;
    };
    if old != new {
        if csum_at + 2 <= h.end {
            if let Some(c) = get16(f, csum_at) {
                put16(f, csum_at, csum::recalc16(c, old, new));
            }
        }
        put16(f, port_at, new);
    }
}

/// `pat_packet`: source port := `key.dst.port`, destination := `key.src.port`.
fn pat_packet(f: &mut [u8], h: Hdrs, key: &ConnKey) {
    if h.l4 + 4 > h.end {
        return;
    }
    match key.nw_proto {
        PROTO_TCP => {
            set_port(f, h, h.l4, h.l4 + 16, key.dst.port);
            set_port(f, h, h.l4 + 2, h.l4 + 16, key.src.port);
        }
        PROTO_UDP => {
            let has_csum = h.l4 + 8 <= h.end && get16(f, h.l4 + 6).unwrap_or(0) != 0;
            if has_csum {
                set_port(f, h, h.l4, h.l4 + 6, key.dst.port);
                set_port(f, h, h.l4 + 2, h.l4 + 6, key.src.port);
                if get16(f, h.l4 + 6) == Some(0) {
                    put16(f, h.l4 + 6, 0xffff);
                }
            } else {
                put16(f, h.l4, key.dst.port);
                put16(f, h.l4 + 2, key.src.port);
            }
        }
        _ => {}
    }
}

/// `nat_packet_ipv4` / `nat_packet_ipv6`: one address of the header at `h`, from `key`.
fn nat_addrs(f: &mut [u8], h: Hdrs, key: &ConnKey, action: u8) {
    let v4 = |a: &[u8; 16]| [a[0], a[1], a[2], a[3]];
    if key.is_ipv4() {
        if action & SRC != 0 {
            set_ipv4_addr(f, h, true, v4(&key.dst.addr));
        } else if action & DST != 0 {
            set_ipv4_addr(f, h, false, v4(&key.src.addr));
        }
    } else if action & SRC != 0 {
        set_ipv6_addr(f, h, key.nw_proto, true, &key.dst.addr);
    } else if action & DST != 0 {
        set_ipv6_addr(f, h, key.nw_proto, false, &key.src.addr);
    }
}

/// `nat_inner_packet`: translates the header embedded in an ICMP error the opposite way, then
/// recomputes the ICMP checksum over the whole message.
fn nat_inner(f: &mut [u8], h: Hdrs, key: &ConnKey, action: u8) {
    let inner_l3 = h.l4 + 8;
    let Some(inner_bytes) = f.get(inner_l3..h.end) else {
        return;
    };
    let mut scratch = ConnKey { dl_type: key.dl_type, ..ConnKey::default() };
    let inner_l4 = if key.is_ipv4() {
        key::l3_ipv4(&mut scratch, inner_bytes, false)
    } else {
        key::l3_ipv6(&mut scratch, inner_bytes)
    };
    let Some(off) = inner_l4 else {
        return;
    };
    let inner = Hdrs { l3: inner_l3, l4: inner_l3 + off, end: h.end };
    let rev = key.reverse();
    pat_packet(f, inner, &rev);
    nat_addrs(f, inner, &rev, action);
    put16(f, h.l4 + 2, 0);
    let sum = if key.is_ipv4() {
        csum::checksum(&f[h.l4..h.end])
    } else {
        let p = csum::pseudo_v6(&f[h.l3..h.l3 + 40], PROTO_ICMPV6, h.end - h.l4);
        csum::finish(csum::add_bytes(p, &f[h.l4..h.end]))
    };
    put16(f, h.l4 + 2, sum);
}

/// `nat_packet`: translates a packet of a NATted connection. `key` is the connection's key of
/// the other direction (its reply key for an original-direction packet) and `action` the NAT
/// to apply in this direction. Returns the `ct_state` NAT bit to set.
pub(crate) fn nat_packet(f: &mut [u8], h: Hdrs, key: &ConnKey, action: u8, related: bool) -> u8 {
    let bit = if action & SRC != 0 {
        crate::flow::key::ct_state::SNAT
    } else if action & DST != 0 {
        crate::flow::key::ct_state::DNAT
    } else {
        0
    };
    nat_addrs(f, h, key, action);
    if action & (SRC | DST) != 0 {
        if related {
            nat_inner(f, h, key, reverse_action(action));
        } else {
            pat_packet(f, h, key);
        }
    }
    bit
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn udp_key(sport: u16) -> ConnKey {
        let mut k = ConnKey { dl_type: 0x0800, nw_proto: PROTO_UDP, zone: 1, ..Default::default() };
        k.src.addr[..4].copy_from_slice(&[10, 0, 0, 1]);
        k.dst.addr[..4].copy_from_slice(&[8, 8, 8, 8]);
        k.src.port = sport;
        k.dst.port = 53;
        k
    }

    fn snat(a: [u8; 4], ports: (u16, u16)) -> NatInfo {
        NatInfo::from_spec(&NatSpec {
            kind: NatKind::Src,
            addrs: Some((IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(a)))),
            ports,
            random: false,
            hash: false,
            persistent: false,
        })
    }

    #[test]
    fn spec_decoding_follows_the_datapath() {
        let ni = snat([172, 24, 4, 10], (0, 0));
        assert_eq!(ni.action, SRC);
        assert_eq!(ni.min_addr, ni.max_addr);
        let ni = snat([172, 24, 4, 10], (2000, 0));
        assert_eq!((ni.action, ni.min_port, ni.max_port), (SRC | SRC_PORT, 2000, 2000));
        let bare = NatSpec {
            kind: NatKind::Any,
            addrs: None,
            ports: (0, 0),
            random: false,
            hash: false,
            persistent: false,
        };
        assert_eq!(NatInfo::from_spec(&bare).action, 0);
        assert_eq!(reverse_action(SRC | SRC_PORT), DST | SRC_PORT);
        assert_eq!(reverse_action(DST), SRC);
    }

    #[test]
    fn snat_keeps_a_free_port_and_walks_on_collision() {
        let fwd = udp_key(1000);
        let ni = snat([172, 24, 4, 10], (0, 0));
        let mut rng = 1;
        let mut rev = fwd.reverse();
        assert!(unique_tuple(&fwd, &mut rev, &ni, &mut |_| false, &mut rng));
        assert_eq!(rev.dst.port, 1000);
        assert_eq!(&rev.dst.addr[..4], &[172, 24, 4, 10]);
        // Ports 1000 and 1001 taken: 1002 is next in the 600-1023 class.
        let mut rev = fwd.reverse();
        let mut taken = |k: &ConnKey| k.dst.port == 1000 || k.dst.port == 1001;
        assert!(unique_tuple(&fwd, &mut rev, &ni, &mut taken, &mut rng));
        assert_eq!(rev.dst.port, 1002);
        // The top of the class wraps to its bottom.
        let fwd = udp_key(1023);
        let mut rev = fwd.reverse();
        let mut taken = |k: &ConnKey| k.dst.port == 1023;
        assert!(unique_tuple(&fwd, &mut rev, &ni, &mut taken, &mut rng));
        assert_eq!(rev.dst.port, 600);
    }

    #[test]
    fn exhaustion_is_reported() {
        let fwd = udp_key(5000);
        let ni = snat([172, 24, 4, 10], (5000, 5003));
        let mut rng = 7;
        let mut rev = fwd.reverse();
        assert!(!unique_tuple(&fwd, &mut rev, &ni, &mut |_| true, &mut rng));
        // Out-of-range original port: the start is a hash of the tuple, inside the range.
        let fwd = udp_key(40000);
        let mut rev = fwd.reverse();
        assert!(unique_tuple(&fwd, &mut rev, &ni, &mut |_| false, &mut rng));
        assert!((5000..=5003).contains(&rev.dst.port));
    }

    #[test]
    fn address_ranges_stay_in_range() {
        let min = addr_bytes(&IpAddr::V4(Ipv4Addr::new(10, 1, 1, 240)));
        let max = addr_bytes(&IpAddr::V4(Ipv4Addr::new(10, 1, 1, 254)));
        for h in [0u32, 1, 14, 15, 0xffff_ffff] {
            let a = addr_in_range(&min, &max, h, true);
            assert!(a[3] >= 240 && a[3] <= 254 && a[..3] == [10, 1, 1]);
        }
        let mut v6min = [0u8; 16];
        v6min[0] = 0x20;
        let mut v6max = v6min;
        v6max[15] = 3;
        let a = addr_in_range(&v6min, &v6max, 6, false);
        assert_eq!(a[15], 2);
    }
}
