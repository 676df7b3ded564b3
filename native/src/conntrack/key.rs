//! Connection keys, and their extraction from packet bytes (OVS `conn_key_extract()` and the
//! `extract_l3_*` / `extract_l4_*` helpers of `lib/conntrack.c`).
//!
//! Invariants:
//! - Extraction never panics: every read goes through a length check first, and any
//!   malformation makes `extract` return `None` (the packet is then `+inv`, as in OVS).
//! - An IPv4 address sits in the first 4 bytes of `Endpoint::addr`, the rest zero, so a key
//!   compares and hashes the same way whatever the family.
//! - `port` doubles as the ICMP id, as in OVS's `struct ct_endpoint` union; `icmp_type` and
//!   `icmp_code` are zero for other protocols.

use super::csum;

pub(crate) const ETH_TYPE_IP: u16 = 0x0800;
pub(crate) const ETH_TYPE_IPV6: u16 = 0x86dd;
pub(crate) const PROTO_ICMP: u8 = 1;
pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;
pub(crate) const PROTO_ICMPV6: u8 = 58;

const ICMP_HEADER_LEN: usize = 8;
const ICMP_ERROR_DATA_L4_LEN: usize = 8;
const TCP_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;
const IPV6_HEADER_LEN: usize = 40;

/// One side of a connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub(crate) struct Endpoint {
    pub addr: [u8; 16],
    pub port: u16, // L4 port, or ICMP id
    pub icmp_type: u8,
    pub icmp_code: u8,
}

/// A connection key in one direction (`struct conn_key`). Aligned to 16 bytes: copies of a
/// key then move the same 16-byte pieces, so a copy of a copy reads what a single earlier
/// store wrote (a load spanning two smaller stores waits for them to reach the cache).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(C, align(16))]
pub(crate) struct ConnKey {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub dl_type: u16,
    pub zone: u16,
    pub nw_proto: u8,
}

/// Every field, packed into six words: hashed field by field, the key cost more than the
/// table lookup it is for.
impl core::hash::Hash for ConnKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        let half = |a: &[u8; 16], i: usize| {
            u64::from_ne_bytes(a[i..i + 8].try_into().expect("8 bytes of 16"))
        };
        let ends = |e: &Endpoint| {
            u64::from(e.port) << 16 | u64::from(e.icmp_type) << 8 | u64::from(e.icmp_code)
        };
        state.write_u64(half(&self.src.addr, 0));
        state.write_u64(half(&self.src.addr, 8));
        state.write_u64(half(&self.dst.addr, 0));
        state.write_u64(half(&self.dst.addr, 8));
        state.write_u64(ends(&self.src) << 32 | ends(&self.dst));
        state.write_u64(
            u64::from(self.dl_type) << 32 | u64::from(self.zone) << 16 | u64::from(self.nw_proto),
        );
    }
}

impl ConnKey {
    /// The same key seen from the other side (`conn_key_reverse`).
    pub fn reverse(&self) -> ConnKey {
        ConnKey { src: self.dst, dst: self.src, ..*self }
    }

    pub fn is_ipv4(&self) -> bool {
        self.dl_type == ETH_TYPE_IP
    }
}

/// The TCP fields conntrack's state machine reads from a segment.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TcpSeg {
    pub flags: u16, // low 12 bits of the flags word
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    pub payload_len: u32,
    pub wscale: u8, // `tcp_get_wscale()`: 0x80 | shift when the option is present
}

/// Where the headers of the tracked packet are, and what was read from them.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub(crate) struct Extracted {
    pub key: ConnKey,
    /// An ICMP error whose embedded header gave the key (`icmp_related`).
    pub related: bool,
    pub l3: usize,
    pub l4: usize,
    /// End of the IP packet in the frame (Ethernet padding excluded).
    pub end: usize,
    /// Top-level TCP segment (not for related packets).
    pub tcp: Option<TcpSeg>,
    /// Top-level ICMP / ICMPv6 type.
    pub icmp_type: u8,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*b.get(at)?, *b.get(at + 1)?, *b.get(at + 2)?, *b.get(at + 3)?]))
}

fn v4_addr(b: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&b[..4]);
    a
}

/// `extract_l3_ipv4`: fills addresses and protocol, returns the header length. `ip` runs to
/// the end of the L3 data. Fragments are refused (OVS reassembles them first; we do not).
pub(crate) fn l3_ipv4(key: &mut ConnKey, ip: &[u8], validate_checksum: bool) -> Option<usize> {
    if ip.len() < 20 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ihl < 20 || ip.len() < ihl {
        return None;
    }
    // IP_IS_FRAGMENT: MF set or a nonzero offset.
    if be16(ip, 6)? & 0x3fff != 0 {
        return None;
    }
    if validate_checksum && csum::checksum(&ip[..ihl]) != 0 {
        return None;
    }
    key.src.addr = v4_addr(&ip[12..16]);
    key.dst.addr = v4_addr(&ip[16..20]);
    key.nw_proto = ip[9];
    Some(ihl)
}

/// `extract_l3_ipv6` (with `parse_ipv6_ext_hdrs`): returns the offset of the upper layer.
pub(crate) fn l3_ipv6(key: &mut ConnKey, ip6: &[u8]) -> Option<usize> {
    if ip6.len() < IPV6_HEADER_LEN {
        return None;
    }
    let mut proto = ip6[6];
    let mut off = IPV6_HEADER_LEN;
    loop {
        match proto {
            // Hop-by-hop, routing, destination options.
            0 | 43 | 60 => {
                let len = (usize::from(*ip6.get(off + 1)?) + 1) * 8;
                proto = *ip6.get(off)?;
                off += len;
            }
            // Authentication header: length in 4-octet units, minus 2.
            51 => {
                let len = (usize::from(*ip6.get(off + 1)?) + 2) * 4;
                proto = *ip6.get(off)?;
                off += len;
            }
            // A fragment header makes it a fragment: refused, as in OVS.
            44 => return None,
            _ => break,
        }
        if off > ip6.len() {
            return None;
        }
    }
    key.src.addr.copy_from_slice(&ip6[8..24]);
    key.dst.addr.copy_from_slice(&ip6[24..40]);
    key.nw_proto = proto;
    Some(off)
}

fn reverse_icmp_type(t: u8) -> u8 {
    match t {
        8 => 0,
        0 => 8,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        _ => t,
    }
}

fn reverse_icmp6_type(t: u8) -> u8 {
    match t {
        128 => 129,
        129 => 128,
        _ => t,
    }
}

/// `checksum_valid`: the L4 checksum over `data` with the pseudo-header of `l3`.
fn l4_checksum_valid(key: &ConnKey, l3: &[u8], data: &[u8]) -> bool {
    if key.is_ipv4() {
        csum::finish(csum::add_bytes(csum::pseudo_v4(l3), data)) == 0
    } else {
        csum::finish(csum::add_bytes(csum::pseudo_v6(l3, key.nw_proto, data.len()), data)) == 0
    }
}

/// `extract_l4`. `related` is `Some` at the top level and `None` inside an ICMP error, where
/// checksums and full-header lengths are not checked (`chk_len` is the minimum L4 size then).
fn l4(
    key: &mut ConnKey,
    l3: &[u8],
    data: &[u8],
    related: Option<&mut bool>,
    chk_len: Option<usize>,
) -> bool {
    let top = related.is_some();
    match key.nw_proto {
        PROTO_TCP => {
            if top {
                // check_l4_tcp: a full header whose data offset fits, and a good checksum.
                if data.len() < TCP_HEADER_LEN {
                    return false;
                }
                let tcp_len = usize::from(data[12] >> 4) * 4;
                if tcp_len < TCP_HEADER_LEN || tcp_len > data.len() {
                    return false;
                }
                if !l4_checksum_valid(key, l3, data) {
                    return false;
                }
            }
            if data.len() < chk_len.unwrap_or(TCP_HEADER_LEN) || data.len() < 4 {
                return false;
            }
            key.src.port = u16::from_be_bytes([data[0], data[1]]);
            key.dst.port = u16::from_be_bytes([data[2], data[3]]);
            // OVS: "Port 0 is invalid".
            key.src.port != 0 && key.dst.port != 0
        }
        PROTO_UDP => {
            if top {
                if data.len() < UDP_HEADER_LEN {
                    return false;
                }
                let udp_len = usize::from(u16::from_be_bytes([data[4], data[5]]));
                if udp_len < UDP_HEADER_LEN || udp_len > data.len() {
                    return false;
                }
                // check_l4_udp: a zero checksum on IPv4 means "none" (RFC 768).
                let none = data[6] == 0 && data[7] == 0 && key.is_ipv4();
                if !none && !l4_checksum_valid(key, l3, data) {
                    return false;
                }
            }
            if data.len() < chk_len.unwrap_or(UDP_HEADER_LEN) || data.len() < 4 {
                return false;
            }
            key.src.port = u16::from_be_bytes([data[0], data[1]]);
            key.dst.port = u16::from_be_bytes([data[2], data[3]]);
            key.src.port != 0 && key.dst.port != 0
        }
        PROTO_ICMP if key.is_ipv4() => {
            if top && csum::checksum(data) != 0 {
                return false;
            }
            l4_icmp(key, data, related, chk_len)
        }
        PROTO_ICMPV6 if !key.is_ipv4() => {
            if top && !l4_checksum_valid(key, l3, data) {
                return false;
            }
            l4_icmp6(key, data, related)
        }
        // Other protocols have no L4 key: ports stay zero.
        _ => true,
    }
}

/// `extract_l4_icmp`.
fn l4_icmp(
    key: &mut ConnKey,
    data: &[u8],
    related: Option<&mut bool>,
    chk_len: Option<usize>,
) -> bool {
    if data.len() < chk_len.unwrap_or(ICMP_HEADER_LEN) || data.len() < ICMP_HEADER_LEN {
        return false;
    }
    let (ty, code) = (data[0], data[1]);
    match ty {
        // Echo, timestamp, information request and their replies: a connection of its own,
        // identified by the id.
        0 | 8 | 13 | 14 | 15 | 16 => {
            if code != 0 {
                return false;
            }
            let id = u16::from_be_bytes([data[4], data[5]]);
            key.src.port = id;
            key.dst.port = id;
            key.src.icmp_type = ty;
            key.dst.icmp_type = reverse_icmp_type(ty);
            true
        }
        // Destination unreachable, source quench, redirect, time exceeded, parameter
        // problem: part of the connection whose header is embedded.
        3 | 4 | 5 | 11 | 12 => {
            let Some(related) = related else {
                return false;
            };
            let inner_l3 = &data[ICMP_HEADER_LEN..];
            let mut inner = ConnKey { dl_type: ETH_TYPE_IP, ..ConnKey::default() };
            let Some(ihl) = l3_ipv4(&mut inner, inner_l3, false) else {
                return false;
            };
            if inner.src.addr != key.dst.addr {
                return false;
            }
            key.src = inner.src;
            key.dst = inner.dst;
            key.nw_proto = inner.nw_proto;
            let ok = l4(key, inner_l3, &inner_l3[ihl..], None, Some(ICMP_ERROR_DATA_L4_LEN));
            if ok {
                *key = key.reverse();
                *related = true;
            }
            ok
        }
        _ => false,
    }
}

/// `extract_l4_icmp6`.
fn l4_icmp6(key: &mut ConnKey, data: &[u8], related: Option<&mut bool>) -> bool {
    // All supported messages need 4 bytes after the 4-byte header.
    if data.len() < 8 {
        return false;
    }
    let (ty, code) = (data[0], data[1]);
    match ty {
        128 | 129 => {
            if code != 0 {
                return false;
            }
            let id = u16::from_be_bytes([data[4], data[5]]);
            key.src.port = id;
            key.dst.port = id;
            key.src.icmp_type = ty;
            key.dst.icmp_type = reverse_icmp6_type(ty);
            true
        }
        // Destination unreachable, packet too big, time exceeded, parameter problem.
        1..=4 => {
            let Some(related) = related else {
                return false;
            };
            let inner_l3 = &data[8..];
            let mut inner = ConnKey { dl_type: ETH_TYPE_IPV6, ..ConnKey::default() };
            let Some(off) = l3_ipv6(&mut inner, inner_l3) else {
                return false;
            };
            if inner.src.addr != key.dst.addr {
                return false;
            }
            key.src = inner.src;
            key.dst = inner.dst;
            key.nw_proto = inner.nw_proto;
            let ok = l4(key, inner_l3, &inner_l3[off..], None, None);
            if ok {
                *key = key.reverse();
                *related = true;
            }
            ok
        }
        // Everything else, neighbour discovery included, is invalid for OVS's conntrack.
        _ => false,
    }
}

/// Parses the TCP fields the state machine needs (`tcp_conn_update` reads), from a segment
/// already checked by `l4` (full header, sane data offset).
fn tcp_seg(data: &[u8]) -> Option<TcpSeg> {
    let hlen = usize::from(*data.get(12)? >> 4) * 4;
    if hlen < TCP_HEADER_LEN || hlen > data.len() {
        return None;
    }
    Some(TcpSeg {
        flags: be16(data, 12)? & 0x0fff,
        seq: be32(data, 4)?,
        ack: be32(data, 8)?,
        win: be16(data, 14)?,
        payload_len: (data.len() - hlen) as u32,
        wscale: tcp_wscale(&data[TCP_HEADER_LEN..hlen]),
    })
}

/// `tcp_get_wscale`: the window scale option, as `0x80 | min(shift, 14)`, or 0.
fn tcp_wscale(opts: &[u8]) -> u8 {
    let mut wscale = 0u8;
    let mut i = 0usize;
    while opts.len().saturating_sub(i) >= 3 {
        match opts[i] {
            0 => return wscale,
            1 => i += 1,
            kind => {
                if kind == 3 {
                    wscale = opts[i + 2].min(14) | 0x80;
                }
                let optlen = usize::from(opts[i + 1]).max(2);
                i += optlen;
            }
        }
    }
    wscale
}

/// `conn_key_extract`: the key of the packet whose L3 header is at `l3` and L4 at `l4`.
/// `nw_frag` comes from the flow key (IPv6 fragments are refused).
pub(crate) fn extract_into(
    out: &mut Extracted,
    frame: &[u8],
    l3: usize,
    l4_ofs: usize,
    dl_type: u16,
    nw_frag: u8,
    zone: u16,
) -> Option<()> {
    out.key = ConnKey { dl_type, zone, ..ConnKey::default() };
    let key = &mut out.key;
    let ip = frame.get(l3..)?;
    let (end, l4_at) = match dl_type {
        ETH_TYPE_IP => {
            if ip.len() < 20 {
                return None;
            }
            let tot_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            if tot_len > ip.len() {
                return None;
            }
            let ihl = l3_ipv4(key, &ip[..tot_len], true)?;
            (l3 + tot_len, l3 + ihl)
        }
        ETH_TYPE_IPV6 => {
            if ip.len() < IPV6_HEADER_LEN || nw_frag != 0 {
                return None;
            }
            let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            let total = IPV6_HEADER_LEN + plen;
            if total > ip.len() {
                return None;
            }
            let off = l3_ipv6(key, &ip[..total])?;
            (l3 + total, l3 + off)
        }
        _ => return None,
    };
    // The caller's L4 offset must agree with the headers.
    if l4_ofs != l4_at || l4_at > end {
        return None;
    }
    let l3_bytes = &frame[l3..end];
    let data = &frame[l4_at..end];
    let mut related = false;
    if !l4(key, l3_bytes, data, Some(&mut related), None) {
        return None;
    }
    let top_proto = if dl_type == ETH_TYPE_IP { l3_bytes[9] } else { key.nw_proto };
    let tcp = if !related && top_proto == PROTO_TCP { tcp_seg(data) } else { None };
    let icmp_type = data.first().copied().unwrap_or(0);
    (out.related, out.l3, out.l4, out.end) = (related, l3, l4_at, end);
    (out.tcp, out.icmp_type) = (tcp, icmp_type);
    Some(())
}

/// `extract_into` a new `Extracted`.
#[cfg(test)]
pub(crate) fn extract(
    frame: &[u8],
    l3: usize,
    l4_ofs: usize,
    dl_type: u16,
    nw_frag: u8,
    zone: u16,
) -> Option<Extracted> {
    let mut e = Extracted::default();
    extract_into(&mut e, frame, l3, l4_ofs, dl_type, nw_frag, zone)?;
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wscale_option_is_found_after_nops() {
        // NOP, NOP, window scale 7, then MSS.
        assert_eq!(tcp_wscale(&[1, 1, 3, 3, 7, 2, 4, 5, 0xb4]), 0x87);
        // Shift is capped at 14.
        assert_eq!(tcp_wscale(&[3, 3, 20]), 0x80 | 14);
        assert_eq!(tcp_wscale(&[2, 4, 5, 0xb4]), 0);
        // A zero length option does not loop forever.
        assert_eq!(tcp_wscale(&[9, 0, 0, 0, 0]), 0);
    }

    #[test]
    fn reverse_swaps_endpoints() {
        let mut k = ConnKey::default();
        k.src.port = 1;
        k.dst.port = 2;
        let r = k.reverse();
        assert_eq!((r.src.port, r.dst.port), (2, 1));
        assert_eq!(r.reverse(), k);
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for len in 0..120usize {
            let mut f = vec![0u8; len];
            for b in f.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            if len > 14 {
                f[14] = 0x45;
            }
            for l4 in [0, 14, 34, 54, 200] {
                let _ = extract(&f, 14, l4, ETH_TYPE_IP, 0, 0);
                let _ = extract(&f, 14, l4, ETH_TYPE_IPV6, 0, 0);
            }
        }
    }
}
