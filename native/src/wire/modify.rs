//! In-place edits that datapath actions make to a frame: MAC addresses, VLAN push / pop,
//! IPv4 and IPv6 header fields, transport ports, ICMP type / code and ARP fields.
//!
//! Every function takes the `Layers` that `flow::extract` returned for the frame (push and
//! pop keep them up to date) and returns whether it applied. None of them trusts `Layers`
//! blindly: each checks the header it edits is where `Layers` says and fits in the frame,
//! so no input can make one panic or write out of bounds.
//!
//! Checksums are updated incrementally with the arithmetic and order OVS uses
//! (`packet_set_ipv4_addr`, `packet_set_ipv6`, `packet_set_port`, `packet_set_icmp` in
//! lib/packets.c), so the resulting bytes are OVS's. Two deliberate choices:
//! - Later fragments carry no transport header, so their payload is never touched (the Linux
//!   kernel datapath behaves so; OVS 3.1's userspace datapath rewrites the bytes where a
//!   transport checksum would be).
//! - A UDP checksum of 0 means "none" and stays 0; an update that computes 0 writes 0xffff
//!   (RFC 768).

use super::arp::ArpPacket;
use super::checksum::{update128, update16, update32};
use super::eth::{EtherType, EthernetFrame, Mac};
use super::ipv4::{IpProtocol, Ipv4Packet, OFFSET_MASK};
use super::ipv6::{self, Ipv6Packet};
use super::packet::Packet;
use super::vlan;
use crate::flow::extract::{Layers, ABSENT};
use crate::flow::key::nw_frag;

/// Sets the Ethernet source address (frames of at least 14 bytes).
pub fn set_eth_src(pkt: &mut Packet, mac: Mac) -> bool {
    with_eth(pkt, |e| e.set_src(mac))
}

/// Sets the Ethernet destination address (frames of at least 14 bytes).
pub fn set_eth_dst(pkt: &mut Packet, mac: Mac) -> bool {
    with_eth(pkt, |e| e.set_dst(mac))
}

fn with_eth(pkt: &mut Packet, f: impl FnOnce(&mut EthernetFrame<&mut [u8]>)) -> bool {
    match EthernetFrame::new_checked(pkt.data_mut()) {
        Ok(mut e) => {
            f(&mut e);
            true
        }
        Err(_) => false,
    }
}

/// Inserts a VLAN tag (`tpid`, `tci`) right after the MAC addresses, outside any existing
/// tag. As OVS's `eth_push_vlan`, the CFI/DEI bit of `tci` is written as 0 (in flow keys
/// that bit means "tag present"). Shifts the offsets in `layers`.
pub fn push_vlan(pkt: &mut Packet, layers: &mut Layers, tpid: u16, tci: u16) -> bool {
    if pkt.len() < super::eth::HEADER_LEN {
        return false;
    }
    let [t0, t1] = tpid.to_be_bytes();
    let [c0, c1] = (tci & !vlan::DEI).to_be_bytes();
    pkt.insert_tag([t0, t1, c0, c1]);
    for o in [&mut layers.l2_5, &mut layers.l3, &mut layers.l4, &mut layers.l7] {
        // ABSENT stays ABSENT, and so does an offset pushed to it or past it.
        *o = if *o >= ABSENT - vlan::TAG_LEN as u16 { ABSENT } else { *o + vlan::TAG_LEN as u16 };
    }
    true
}

/// `push_vlan`, then `f` on the tagged frame, then `pop_vlan`: what an output through a VLAN
/// trunk (`push_vlan,P,pop_vlan`) does, without shifting the layer offsets twice, as the
/// frame after is the frame before. `None` (and nothing done) when `push_vlan` would not push
/// or `pop_vlan` would not recognise the tag.
#[inline]
pub fn with_vlan<R>(
    pkt: &mut Packet,
    tpid: u16,
    tci: u16,
    f: impl FnOnce(&Packet) -> R,
) -> Option<R> {
    if pkt.len() < super::eth::HEADER_LEN || !EtherType::is_vlan_tpid(tpid) {
        return None;
    }
    let [t0, t1] = tpid.to_be_bytes();
    let [c0, c1] = (tci & !vlan::DEI).to_be_bytes();
    pkt.insert_tag([t0, t1, c0, c1]);
    let r = f(pkt);
    pkt.remove_tag();
    Some(r)
}

/// Removes the outermost VLAN tag, if the frame has one (OVS `eth_pop_vlan`). Shifts the
/// offsets in `layers`.
pub fn pop_vlan(pkt: &mut Packet, layers: &mut Layers) -> bool {
    let d = pkt.data();
    let tagged = d.len() >= 12 + vlan::TAG_LEN + 2
        && super::get_be16(d, 12).is_some_and(EtherType::is_vlan_tpid);
    if !tagged {
        return false;
    }
    pkt.remove_tag();
    for o in [&mut layers.l2_5, &mut layers.l3, &mut layers.l4, &mut layers.l7] {
        if *o != ABSENT {
            *o = o.saturating_sub(vlan::TAG_LEN as u16).max(12);
        }
    }
    true
}

/// Start of the IPv4 header, when `layers` says the frame has one and it is there.
fn ipv4_at(data: &[u8], layers: &Layers) -> Option<usize> {
    if layers.dl_type != EtherType::IPV4 || layers.l4 == ABSENT {
        return None;
    }
    let l3 = Layers::get(layers.l3)?;
    Ipv4Packet::new_checked(data.get(l3..)?).ok()?;
    Some(l3)
}

/// Start of the IPv6 header, when `layers` says the frame has one and it is there.
fn ipv6_at(data: &[u8], layers: &Layers) -> Option<usize> {
    if layers.dl_type != EtherType::IPV6 || layers.l4 == ABSENT {
        return None;
    }
    let l3 = Layers::get(layers.l3)?;
    Ipv6Packet::new_checked(data.get(l3..)?).ok()?;
    Some(l3)
}

/// Offset of the transport checksum that a pseudo-header change affects, when OVS would
/// update it: TCP with at least 20 bytes of L4, UDP with at least 8 (`udp` = true), ICMPv6
/// with at least 4 (IPv6 only).
fn pseudo_csum_at(data: &[u8], layers: &Layers, proto: u8, v6: bool) -> Option<(usize, bool)> {
    let l4 = Layers::get(layers.l4)?;
    let l4_size = layers.l3_end(data.len()).checked_sub(l4)?;
    match proto {
        IpProtocol::TCP if l4_size >= 20 => Some((l4 + 16, false)),
        IpProtocol::UDP if l4_size >= 8 => Some((l4 + 6, true)),
        IpProtocol::ICMPV6 if v6 && l4_size >= 4 => Some((l4 + 2, false)),
        _ => None,
    }
}

fn read16(data: &[u8], at: usize) -> Option<u16> {
    super::get_be16(data, at)
}

fn write16(data: &mut [u8], at: usize, v: u16) {
    if let Some(s) = data.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// Applies `f` to the transport checksum at `at` (UDP: 0 stays 0, a computed 0 is 0xffff).
fn fix_l4_csum(data: &mut [u8], at: usize, udp: bool, f: impl Fn(u16) -> u16) {
    let Some(old) = read16(data, at) else { return };
    if udp && old == 0 {
        return;
    }
    let mut new = f(old);
    if udp && new == 0 {
        new = 0xffff; // RFC 768: a computed 0 is sent as all ones.
    }
    write16(data, at, new);
}

fn set_ipv4_addr(pkt: &mut Packet, layers: &Layers, addr: u32, dst: bool) -> bool {
    let data = pkt.data_mut();
    let Some(l3) = ipv4_at(data, layers) else { return false };
    let at = l3 + if dst { 16 } else { 12 };
    let Some(old) = super::get_array::<4>(data, at) else { return false };
    let new = addr.to_be_bytes();
    if old == new {
        return true;
    }
    let (proto, frag) = (data[l3 + 9], super::get_be16(data, l3 + 6).unwrap_or(0));
    if frag & OFFSET_MASK == 0 {
        if let Some((c, udp)) = pseudo_csum_at(data, layers, proto, false) {
            fix_l4_csum(data, c, udp, |v| update32(v, old, new));
        }
    }
    let csum = read16(data, l3 + 10).unwrap_or(0);
    write16(data, l3 + 10, update32(csum, old, new));
    data[at..at + 4].copy_from_slice(&new);
    true
}

/// Sets the IPv4 source address (host-order `u32`, as in `FlowKey::nw_src`), updating the
/// header checksum and the TCP / UDP checksum.
pub fn set_ipv4_src(pkt: &mut Packet, layers: &Layers, addr: u32) -> bool {
    set_ipv4_addr(pkt, layers, addr, false)
}

/// Sets the IPv4 destination address (see `set_ipv4_src`).
pub fn set_ipv4_dst(pkt: &mut Packet, layers: &Layers, addr: u32) -> bool {
    set_ipv4_addr(pkt, layers, addr, true)
}

/// Sets the whole IPv4 TOS byte, updating the header checksum.
pub fn set_ipv4_tos(pkt: &mut Packet, layers: &Layers, tos: u8) -> bool {
    let data = pkt.data_mut();
    let Some(l3) = ipv4_at(data, layers) else { return false };
    let old = data[l3 + 1];
    if old != tos {
        let csum = read16(data, l3 + 10).unwrap_or(0);
        // OVS updates with the byte as the low half of a 16-bit word.
        write16(data, l3 + 10, update16(csum, u16::from(old), u16::from(tos)));
        data[l3 + 1] = tos;
    }
    true
}

/// Sets the IPv4 TTL, updating the header checksum.
pub fn set_ipv4_ttl(pkt: &mut Packet, layers: &Layers, ttl: u8) -> bool {
    let data = pkt.data_mut();
    let Some(l3) = ipv4_at(data, layers) else { return false };
    let old = data[l3 + 8];
    if old != ttl {
        let csum = read16(data, l3 + 10).unwrap_or(0);
        write16(data, l3 + 10, update16(csum, u16::from(old) << 8, u16::from(ttl) << 8));
        data[l3 + 8] = ttl;
    }
    true
}

/// What OVS's `packet_rh_present` finds in the IPv6 extension headers between the fixed
/// header and L4: the protocol where the walk stopped, whether transport checksums may be
/// updated (false after a fragment header unless it is a first fragment with more to
/// come), and whether a routing header with segments left is present (then the final
/// destination is not the one in the header, and a destination change leaves the checksum
/// alone).
fn ipv6_csum_policy(ext: &[u8], first: u8) -> (u8, bool, bool) {
    let (mut nh, mut at, mut recalc) = (first, 0usize, true);
    while ipv6::is_ext_header(nh) {
        let Some(h) = super::get_array::<8>(ext, at) else { return (nh, recalc, false) };
        let len = match nh {
            IpProtocol::AH => (usize::from(h[1]) + 2) * 4,
            IpProtocol::FRAGMENT => {
                let offlg = u16::from_be_bytes([h[2], h[3]]);
                recalc = offlg & ipv6::FRAG_OFF_MASK == 0 && offlg & ipv6::FRAG_MORE != 0;
                8
            }
            IpProtocol::ROUTING if h[3] > 0 => return (nh, recalc, true),
            _ => (usize::from(h[1]) + 1) * 8,
        };
        nh = h[0];
        if ext.len() - at < len {
            return (nh, recalc, false);
        }
        at += len;
    }
    (nh, recalc, false)
}

fn set_ipv6_addr(pkt: &mut Packet, layers: &Layers, addr: &[u8; 16], dst: bool) -> bool {
    let data = pkt.data_mut();
    let Some(l3) = ipv6_at(data, layers) else { return false };
    let at = l3 + if dst { 24 } else { 8 };
    let Some(old) = super::get_array::<16>(data, at) else { return false };
    if old == *addr {
        return true;
    }
    let l4 = Layers::get(layers.l4).unwrap_or(0);
    let ext = data.get(l3 + ipv6::HEADER_LEN..l4).unwrap_or(&[]);
    let (proto, recalc, rh) = ipv6_csum_policy(ext, data[l3 + 6]);
    if recalc && !(dst && rh) && layers.nw_frag & nw_frag::LATER == 0 {
        if let Some((c, udp)) = pseudo_csum_at(data, layers, proto, true) {
            fix_l4_csum(data, c, udp, |v| update128(v, &old, addr));
        }
    }
    data[at..at + 16].copy_from_slice(addr);
    true
}

/// Sets the IPv6 source address, updating the TCP / UDP / ICMPv6 checksum.
pub fn set_ipv6_src(pkt: &mut Packet, layers: &Layers, addr: &[u8; 16]) -> bool {
    set_ipv6_addr(pkt, layers, addr, false)
}

/// Sets the IPv6 destination address, updating the TCP / UDP / ICMPv6 checksum (not when a
/// routing header with segments left is present, as OVS).
pub fn set_ipv6_dst(pkt: &mut Packet, layers: &Layers, addr: &[u8; 16]) -> bool {
    set_ipv6_addr(pkt, layers, addr, true)
}

fn with_ipv6(
    pkt: &mut Packet,
    layers: &Layers,
    f: impl FnOnce(&mut Ipv6Packet<&mut [u8]>),
) -> bool {
    let data = pkt.data_mut();
    let Some(l3) = ipv6_at(data, layers) else { return false };
    match Ipv6Packet::new_checked(&mut data[l3..]) {
        Ok(mut p) => {
            f(&mut p);
            true
        }
        Err(_) => false,
    }
}

/// Sets the IPv6 traffic class (not covered by any checksum).
pub fn set_ipv6_tclass(pkt: &mut Packet, layers: &Layers, tclass: u8) -> bool {
    with_ipv6(pkt, layers, |p| p.set_traffic_class(tclass))
}

/// Sets the IPv6 hop limit.
pub fn set_ipv6_hlimit(pkt: &mut Packet, layers: &Layers, hlimit: u8) -> bool {
    with_ipv6(pkt, layers, |p| p.set_hop_limit(hlimit))
}

/// Sets the 20-bit IPv6 flow label (higher bits of `label` are ignored).
pub fn set_ipv6_label(pkt: &mut Packet, layers: &Layers, label: u32) -> bool {
    with_ipv6(pkt, layers, |p| p.set_flow_label(label))
}

/// Offset of a parsed transport header of protocol `proto`, not in a later fragment.
fn l4_at(layers: &Layers, proto: u8) -> Option<usize> {
    if !layers.has_ip() || !layers.has_l4_header() || layers.nw_proto != proto {
        return None;
    }
    Layers::get(layers.l4)
}

fn set_port(pkt: &mut Packet, layers: &Layers, port: u16, dst: bool) -> bool {
    let data = pkt.data_mut();
    let end = layers.l3_end(data.len());
    let off = if dst { 2 } else { 0 };
    for (proto, csum_off, min) in [(IpProtocol::TCP, 16, 20), (IpProtocol::UDP, 6, 8)] {
        let Some(l4) = l4_at(layers, proto) else { continue };
        if end < l4 + min || data.len() < end {
            return false;
        }
        let Some(old) = read16(data, l4 + off) else { return false };
        if old != port {
            fix_l4_csum(data, l4 + csum_off, proto == IpProtocol::UDP, |c| update16(c, old, port));
            write16(data, l4 + off, port);
        }
        return true;
    }
    if let Some(l4) = l4_at(layers, IpProtocol::SCTP) {
        return set_sctp_port(data, l4, end, off, port);
    }
    false
}

/// SCTP: ports are covered by a CRC32c; OVS patches it so that an already wrong checksum
/// stays exactly as wrong (`old ^ old_correct ^ new_correct`).
fn set_sctp_port(data: &mut [u8], l4: usize, end: usize, off: usize, port: u16) -> bool {
    let Some(seg) = data.get_mut(l4..end) else { return false };
    if seg.len() < 12 {
        return false;
    }
    let old_csum = u32::from_le_bytes([seg[8], seg[9], seg[10], seg[11]]);
    seg[8..12].fill(0);
    let old_correct = crc32c(seg);
    seg[off..off + 2].copy_from_slice(&port.to_be_bytes());
    let new_correct = crc32c(seg);
    let c = old_csum ^ old_correct ^ new_correct;
    seg[8..12].copy_from_slice(&c.to_le_bytes());
    true
}

/// CRC32c (Castagnoli, reflected), as SCTP uses (RFC 3309); the value is stored
/// little-endian on the wire.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82f6_3b78 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Sets the TCP, UDP or SCTP source port, updating the checksum.
pub fn set_tp_src(pkt: &mut Packet, layers: &Layers, port: u16) -> bool {
    set_port(pkt, layers, port, false)
}

/// Sets the TCP, UDP or SCTP destination port, updating the checksum.
pub fn set_tp_dst(pkt: &mut Packet, layers: &Layers, port: u16) -> bool {
    set_port(pkt, layers, port, true)
}

/// Sets ICMP or ICMPv6 type and code, updating the checksum (neither is in a
/// pseudo-header, so one 16-bit update serves both).
pub fn set_icmp(pkt: &mut Packet, layers: &Layers, ty: u8, code: u8) -> bool {
    let l4 = match layers.dl_type {
        EtherType::IPV4 => l4_at(layers, IpProtocol::ICMP),
        EtherType::IPV6 => l4_at(layers, IpProtocol::ICMPV6),
        _ => None,
    };
    let data = pkt.data_mut();
    let Some(l4) = l4 else { return false };
    if layers.l3_end(data.len()) < l4 + 4 {
        return false;
    }
    let Some(old) = read16(data, l4) else { return false };
    let new = u16::from_be_bytes([ty, code]);
    if old != new {
        let csum = read16(data, l4 + 2).unwrap_or(0);
        write16(data, l4 + 2, update16(csum, old, new));
        write16(data, l4, new);
    }
    true
}

/// Sets the ICMP / ICMPv6 type, keeping the code.
pub fn set_icmp_type(pkt: &mut Packet, layers: &Layers, ty: u8) -> bool {
    let code = current_icmp(pkt, layers).map(|(_, c)| c);
    code.is_some_and(|code| set_icmp(pkt, layers, ty, code))
}

/// Sets the ICMP / ICMPv6 code, keeping the type.
pub fn set_icmp_code(pkt: &mut Packet, layers: &Layers, code: u8) -> bool {
    let ty = current_icmp(pkt, layers).map(|(t, _)| t);
    ty.is_some_and(|ty| set_icmp(pkt, layers, ty, code))
}

fn current_icmp(pkt: &Packet, layers: &Layers) -> Option<(u8, u8)> {
    let l4 = Layers::get(layers.l4)?;
    let d = pkt.data();
    Some((*d.get(l4)?, *d.get(l4 + 1)?))
}

fn with_arp(
    pkt: &mut Packet,
    layers: &Layers,
    f: impl FnOnce(&mut ArpPacket<&mut [u8]>) -> bool,
) -> bool {
    if layers.dl_type != EtherType::ARP && layers.dl_type != EtherType::RARP {
        return false;
    }
    let Some(l3) = Layers::get(layers.l3) else { return false };
    let Some(buf) = pkt.data_mut().get_mut(l3..) else { return false };
    match ArpPacket::new_checked_eth_ipv4(buf) {
        Ok(mut a) => f(&mut a),
        Err(_) => false,
    }
}

/// Sets the ARP opcode (Ethernet / IPv4 ARP only).
pub fn set_arp_op(pkt: &mut Packet, layers: &Layers, op: u16) -> bool {
    with_arp(pkt, layers, |a| {
        a.set_opcode(op);
        true
    })
}

/// Sets the ARP sender protocol address (host-order `u32`, as `FlowKey::nw_src`).
pub fn set_arp_spa(pkt: &mut Packet, layers: &Layers, ip: u32) -> bool {
    with_arp(pkt, layers, |a| a.set_spa(ip.to_be_bytes()))
}

/// Sets the ARP target protocol address.
pub fn set_arp_tpa(pkt: &mut Packet, layers: &Layers, ip: u32) -> bool {
    with_arp(pkt, layers, |a| a.set_tpa(ip.to_be_bytes()))
}

/// Sets the ARP sender hardware address.
pub fn set_arp_sha(pkt: &mut Packet, layers: &Layers, mac: Mac) -> bool {
    with_arp(pkt, layers, |a| a.set_sha(mac))
}

/// Sets the ARP target hardware address.
pub fn set_arp_tha(pkt: &mut Packet, layers: &Layers, mac: Mac) -> bool {
    with_arp(pkt, layers, |a| a.set_tha(mac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::extract::extract;
    use crate::flow::FlowKey;
    use crate::wire::checksum;

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn parse(f: &[u8]) -> (Packet, Layers, FlowKey) {
        let mut k = FlowKey::ZERO;
        let l = extract(f, &mut k);
        (Packet::from_slice(f), l, k)
    }

    /// Fills the IPv4 header checksum and the transport checksum of a test frame.
    fn finish_frame(f: &mut [u8]) {
        let (_, l, k) = parse(f);
        let l3 = usize::from(l.l3);
        if k.is_ipv4() {
            Ipv4Packet::new_checked(&mut f[l3..]).unwrap().fill_checksum();
        }
        if let Some(at) = l.l4_checksum_offset() {
            f[at..at + 2].fill(0);
            let c = expected_l4_csum(f, &l).unwrap();
            f[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
    }

    /// The transport checksum computed from scratch.
    fn expected_l4_csum(f: &[u8], l: &Layers) -> Option<u16> {
        let at = l.l4_checksum_offset()?;
        let (l3, l4, end) = (usize::from(l.l3), usize::from(l.l4), l.l3_end(f.len()));
        let seg = &f[l4..end];
        let pseudo = match (l.dl_type, l.nw_proto) {
            (_, IpProtocol::ICMP) => 0,
            (EtherType::IPV4, p) => {
                let ip = Ipv4Packet::new_checked(&f[l3..]).unwrap();
                checksum::pseudo_header_v4(ip.src(), ip.dst(), p, seg.len() as u16)
            }
            (_, p) => {
                let ip = Ipv6Packet::new_checked(&f[l3..]).unwrap();
                checksum::pseudo_header_v6(&ip.src(), &ip.dst(), p, seg.len() as u32)
            }
        };
        let c = checksum::l4_checksum(pseudo, seg, at - l4);
        Some(if l.nw_proto == IpProtocol::UDP && c == 0 { 0xffff } else { c })
    }

    fn assert_checksums(p: &Packet, l: &Layers) {
        let f = p.data();
        if l.dl_type == EtherType::IPV4 {
            assert!(Ipv4Packet::new_checked(&f[usize::from(l.l3)..]).unwrap().verify_checksum());
        }
        if let Some(at) = l.l4_checksum_offset() {
            let stored = u16::from_be_bytes([f[at], f[at + 1]]);
            if !(l.nw_proto == IpProtocol::UDP && stored == 0) {
                assert_eq!(stored, expected_l4_csum(f, l).unwrap(), "L4 checksum");
            }
        }
    }

    const ETH_IPV4: [u8; 14] = [
        0xfa, 0x16, 0x3e, 0x00, 0x00, 0x02, // destination
        0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01, // source
        0x08, 0x00, // IPv4
    ];

    fn ipv4(proto: u8, payload_len: u16) -> Vec<u8> {
        let tot = (20 + payload_len).to_be_bytes();
        cat(&[
            &[0x45, 0x00, tot[0], tot[1]], // version, IHL, TOS, total length
            &[0x00, 0x01, 0x00, 0x00],     // id, no fragment
            &[0x40, proto, 0x00, 0x00],    // TTL 64, protocol, checksum
            &[0x0a, 0x00, 0x00, 0x01],     // 10.0.0.1
            &[0x0a, 0x00, 0x00, 0x02],     // 10.0.0.2
        ])
    }

    const TCP: [u8; 24] = [
        0xc0, 0x01, 0x00, 0x50, // ports 49153 -> 80
        0x00, 0x00, 0x00, 0x01, // sequence
        0x00, 0x00, 0x00, 0x00, // acknowledgement
        0x50, 0x18, 0xff, 0xff, // data offset 5, PSH+ACK, window
        0x00, 0x00, 0x00, 0x00, // checksum, urgent pointer
        0x68, 0x69, 0x21, 0x0a, // payload "hi!\n"
    ];

    const UDP: [u8; 13] = [
        0x30, 0x39, 0x00, 0x35, // ports 12345 -> 53
        0x00, 0x0d, 0x00, 0x00, // length 13, checksum
        0x61, 0x62, 0x63, 0x64, 0x65, // odd-length payload
    ];

    fn tcp4() -> Vec<u8> {
        let mut f = cat(&[&ETH_IPV4, &ipv4(6, 24), &TCP]);
        finish_frame(&mut f);
        f
    }

    #[test]
    fn ethernet_addresses() {
        let (mut p, _, _) = parse(&tcp4());
        assert!(set_eth_src(&mut p, [1; 6]));
        assert!(set_eth_dst(&mut p, [2; 6]));
        assert_eq!(&p.data()[..12], &[[2u8; 6], [1u8; 6]].concat()[..]);
        let mut short = Packet::from_slice(&[0; 13]);
        assert!(!set_eth_src(&mut short, [1; 6]) && !set_eth_dst(&mut short, [1; 6]));
    }

    #[test]
    fn ipv4_tcp_rewrites_keep_checksums_right() {
        let (mut p, l, _) = parse(&tcp4());
        assert_checksums(&p, &l);
        assert!(set_ipv4_src(&mut p, &l, 0xc0a8_0a0b));
        assert_checksums(&p, &l);
        assert!(set_ipv4_dst(&mut p, &l, 0xac18_040c));
        assert_checksums(&p, &l);
        assert!(set_ipv4_tos(&mut p, &l, 0xb9));
        assert!(set_ipv4_ttl(&mut p, &l, 63));
        assert!(set_tp_src(&mut p, &l, 1024));
        assert!(set_tp_dst(&mut p, &l, 8080));
        assert_checksums(&p, &l);
        let mut k = FlowKey::ZERO;
        extract(p.data(), &mut k);
        assert_eq!((k.nw_src, k.nw_dst, k.nw_tos, k.nw_ttl), (0xc0a8_0a0b, 0xac18_040c, 0xb9, 63));
        assert_eq!((k.tp_src, k.tp_dst), (1024, 8080));
        // Setting the value already there applies and changes nothing.
        let before = p.data().to_vec();
        assert!(set_ipv4_src(&mut p, &l, 0xc0a8_0a0b) && set_tp_dst(&mut p, &l, 8080));
        assert_eq!(p.data(), &before[..]);
        // Not ARP, not IPv6, not ICMP.
        assert!(!set_arp_op(&mut p, &l, 2) && !set_ipv6_hlimit(&mut p, &l, 1));
        assert!(!set_icmp(&mut p, &l, 0, 0));
    }

    #[test]
    fn random_ipv4_rewrites() {
        let mut seed = 0x9e37_79b9u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for i in 0..500 {
            let udp_like = i % 2 == 0;
            let mut f = if udp_like {
                cat(&[&ETH_IPV4, &ipv4(17, 13), &UDP])
            } else {
                cat(&[&ETH_IPV4, &ipv4(6, 24), &TCP])
            };
            let n = next();
            let last = f.len() - 1;
            f[last] ^= n as u8; // vary the payload
            finish_frame(&mut f);
            let (mut p, l, _) = parse(&f);
            match next() % 6 {
                0 => assert!(set_ipv4_src(&mut p, &l, next())),
                1 => assert!(set_ipv4_dst(&mut p, &l, next())),
                2 => assert!(set_tp_src(&mut p, &l, next() as u16)),
                3 => assert!(set_tp_dst(&mut p, &l, next() as u16)),
                4 => assert!(set_ipv4_ttl(&mut p, &l, next() as u8)),
                _ => assert!(set_ipv4_tos(&mut p, &l, next() as u8)),
            }
            assert_checksums(&p, &l);
        }
    }

    #[test]
    fn udp_checksum_zero_and_all_ones() {
        // Checksum 0: "none", and it stays so.
        let f = cat(&[&ETH_IPV4, &ipv4(17, 13), &UDP]);
        let mut f0 = f.clone();
        Ipv4Packet::new_checked(&mut f0[14..]).unwrap().fill_checksum();
        let (mut p, l, _) = parse(&f0);
        assert!(set_ipv4_src(&mut p, &l, 1) && set_tp_src(&mut p, &l, 7));
        assert_eq!(&p.data()[40..42], &[0, 0]);
        assert_checksums(&p, &l);

        // A port change whose update computes 0 writes 0xffff.
        let mut f1 = f.clone();
        finish_frame(&mut f1);
        let (mut p, l, _) = parse(&f1);
        let c = u16::from_be_bytes([f1[40], f1[41]]);
        let port = (0..=u16::MAX).find(|v| update16(c, 12345, *v) == 0).unwrap();
        assert!(set_tp_src(&mut p, &l, port));
        assert_eq!(&p.data()[40..42], &[0xff, 0xff]);
        assert_checksums(&p, &l);
    }

    #[test]
    fn later_fragments_keep_their_payload() {
        let mut f = tcp4();
        f[20..22].copy_from_slice(&[0x00, 0x10]); // offset 128 bytes
        Ipv4Packet::new_checked(&mut f[14..]).unwrap().fill_checksum();
        let (mut p, l, _) = parse(&f);
        assert!(set_ipv4_src(&mut p, &l, 0x0102_0304));
        assert!(set_ipv4_dst(&mut p, &l, 0x0506_0708));
        assert_eq!(&p.data()[34..], &f[34..]);
        assert!(Ipv4Packet::new_checked(&p.data()[14..]).unwrap().verify_checksum());
        assert!(!set_tp_src(&mut p, &l, 1));
        assert_eq!(&p.data()[34..], &f[34..]);

        // The first fragment is edited like a whole datagram.
        let mut first = tcp4();
        first[20] = 0x20; // MF
        finish_frame(&mut first);
        let (mut p, l, _) = parse(&first);
        assert!(set_ipv4_src(&mut p, &l, 0x0102_0304) && set_tp_dst(&mut p, &l, 1));
        assert_checksums(&p, &l);
    }

    #[test]
    fn icmp_type_and_code() {
        let echo = [8, 0, 0, 0, 0x12, 0x34, 0, 1, 0xaa, 0xbb]; // echo request, id, seq, data
        let mut f = cat(&[&ETH_IPV4, &ipv4(1, 10), &echo]);
        finish_frame(&mut f);
        let (mut p, l, _) = parse(&f);
        assert_checksums(&p, &l);
        assert!(set_icmp_type(&mut p, &l, 0));
        assert!(set_icmp_code(&mut p, &l, 3));
        assert_eq!(&p.data()[34..36], &[0, 3]);
        assert_checksums(&p, &l);
        // The IPv4 source is not in the ICMP checksum.
        let before = p.data()[36..38].to_vec();
        assert!(set_ipv4_src(&mut p, &l, 0x0a00_00fe));
        assert_eq!(p.data()[36..38], before[..]);
        assert_checksums(&p, &l);
    }

    const ETH_IPV6: [u8; 14] = [
        0xfa, 0x16, 0x3e, 0x00, 0x00, 0x02, // destination
        0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01, // source
        0x86, 0xdd, // IPv6
    ];

    fn ipv6(nxt: u8, plen: u16) -> Vec<u8> {
        cat(&[
            &[0x60, 0x00, 0x00, 0x00], // version 6, class 0, label 0
            &plen.to_be_bytes(),
            &[nxt, 64], // next header, hop limit
            &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], // 2001:db8::1
            &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], // 2001:db8::2
        ])
    }

    #[test]
    fn ipv6_rewrites() {
        let hbh = [6, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop -> TCP
        let mut f = cat(&[&ETH_IPV6, &ipv6(0, 32), &hbh, &TCP]);
        finish_frame(&mut f);
        let (mut p, l, _) = parse(&f);
        assert_checksums(&p, &l);
        assert!(set_ipv6_src(&mut p, &l, &[0xfd; 16]));
        assert!(set_ipv6_dst(&mut p, &l, &[0xfe; 16]));
        assert!(set_ipv6_tclass(&mut p, &l, 0xb8));
        assert!(set_ipv6_label(&mut p, &l, 0xabcde));
        assert!(set_ipv6_hlimit(&mut p, &l, 1));
        assert!(set_tp_dst(&mut p, &l, 443));
        assert_checksums(&p, &l);
        let mut k = FlowKey::ZERO;
        extract(p.data(), &mut k);
        assert_eq!((k.ipv6_src, k.ipv6_dst), ([0xfd; 16], [0xfe; 16]));
        assert_eq!((k.nw_tos, k.ipv6_label, k.nw_ttl, k.tp_dst), (0xb8, 0xabcde, 1, 443));
        assert!(!set_ipv4_ttl(&mut p, &l, 1));

        // ICMPv6 checksums cover the pseudo-header.
        let echo = [128, 0, 0, 0, 0, 1, 0, 1];
        let mut f = cat(&[&ETH_IPV6, &ipv6(58, 8), &echo]);
        finish_frame(&mut f);
        let (mut p, l, _) = parse(&f);
        assert!(set_ipv6_src(&mut p, &l, &[0x11; 16]) && set_icmp(&mut p, &l, 129, 0));
        assert_checksums(&p, &l);
    }

    #[test]
    fn ipv6_routing_header_and_fragments() {
        // Routing header with segments left: the destination is not the final one, so its
        // change leaves the checksum alone; OVS also stops looking for L4 there.
        let rh = [17, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut f = cat(&[&ETH_IPV6, &ipv6(43, 24 + 13), &rh, &UDP]);
        finish_frame(&mut f);
        let (mut p, l, _) = parse(&f);
        let csum_at = l.l4_checksum_offset().unwrap();
        let before = p.data()[csum_at..csum_at + 2].to_vec();
        assert!(set_ipv6_dst(&mut p, &l, &[0xee; 16]));
        assert!(set_ipv6_src(&mut p, &l, &[0xef; 16]));
        assert_eq!(p.data()[csum_at..csum_at + 2], before[..]);

        // First fragment (MF): updated. Later fragment: payload untouched.
        let frag_first = [17, 0, 0x00, 0x01, 0, 0, 0, 1];
        let mut f = cat(&[&ETH_IPV6, &ipv6(44, 8 + 13), &frag_first, &UDP]);
        finish_frame(&mut f);
        let (mut p, l, _) = parse(&f);
        assert!(set_ipv6_src(&mut p, &l, &[0xef; 16]));
        assert_checksums(&p, &l);

        let frag_later = [17, 0, 0x00, 0x08, 0, 0, 0, 1];
        let f = cat(&[&ETH_IPV6, &ipv6(44, 8 + 13), &frag_later, &UDP]);
        let (mut p, l, _) = parse(&f);
        assert!(set_ipv6_src(&mut p, &l, &[0xef; 16]));
        assert_eq!(&p.data()[62..], &f[62..]);
        assert!(!set_tp_src(&mut p, &l, 9));
    }

    #[test]
    fn vlan_push_and_pop() {
        let f = tcp4();
        let (mut p, mut l, _) = parse(&f);
        assert!(push_vlan(&mut p, &mut l, 0x8100, 0x1000 | 0x2064));
        assert_eq!(&p.data()[12..18], &[0x81, 0x00, 0x20, 0x64, 0x08, 0x00]);
        let mut k = FlowKey::ZERO;
        assert_eq!(extract(p.data(), &mut k), l);
        assert_eq!(k.vlan_tci, 0x3064); // CFI set again as "present" by extraction
        assert!(push_vlan(&mut p, &mut l, 0x88a8, 5));
        assert_eq!(extract(p.data(), &mut k), l);
        assert_eq!((k.vlan_tpid, k.vlan2_tpid), (0x88a8, 0x8100));
        // Edits after a push land in the right place.
        assert!(set_ipv4_ttl(&mut p, &l, 9) && set_tp_src(&mut p, &l, 99));
        assert_checksums(&p, &l);
        assert!(pop_vlan(&mut p, &mut l));
        assert!(pop_vlan(&mut p, &mut l));
        assert!(!pop_vlan(&mut p, &mut l));
        assert_eq!(extract(p.data(), &mut k), l);
        assert_eq!((&p.data()[..22], k.nw_ttl, k.tp_src), (&f[..22], 9, 99));
        let mut tiny = Packet::from_slice(&[0; 13]);
        let mut none = Layers::NONE;
        assert!(!push_vlan(&mut tiny, &mut none, 0x8100, 1));
    }

    #[test]
    fn arp_fields() {
        let arp = [
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // Ethernet/IPv4, request
            0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x01, // sender
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x02, // target
        ];
        let f = cat(&[&ETH_IPV4[..12], &[0x08, 0x06], &arp]);
        let (mut p, l, _) = parse(&f);
        assert!(set_arp_op(&mut p, &l, 2));
        assert!(set_arp_spa(&mut p, &l, 0x0a00_0002));
        assert!(set_arp_tpa(&mut p, &l, 0x0a00_0001));
        assert!(set_arp_sha(&mut p, &l, [2; 6]));
        assert!(set_arp_tha(&mut p, &l, [1; 6]));
        let mut k = FlowKey::ZERO;
        extract(p.data(), &mut k);
        assert_eq!((k.nw_proto, k.nw_src, k.nw_dst), (2, 0x0a00_0002, 0x0a00_0001));
        assert_eq!((k.arp_sha, k.arp_tha), ([2; 6], [1; 6]));
        assert!(!set_ipv4_src(&mut p, &l, 1) && !set_tp_src(&mut p, &l, 1));
        let (mut short, l, _) = parse(&f[..41]);
        assert!(!set_arp_op(&mut short, &l, 2));
    }

    #[test]
    fn sctp_port_keeps_crc_right() {
        let sctp = [
            0x0b, 0x59, 0x0b, 0x59, // ports 2905 -> 2905
            0x00, 0x00, 0x00, 0x01, // verification tag
            0x00, 0x00, 0x00, 0x00, // CRC32c (filled below)
            0x03, 0x00, 0x00, 0x04, // a 4-byte chunk
        ];
        let mut f = cat(&[&ETH_IPV4, &ipv4(132, 16), &sctp]);
        let crc = crc32c(&f[34..]);
        f[42..46].copy_from_slice(&crc.to_le_bytes());
        let (mut p, l, _) = parse(&f);
        assert!(set_tp_dst(&mut p, &l, 36412));
        let mut seg = p.data()[34..].to_vec();
        let stored = u32::from_le_bytes([seg[8], seg[9], seg[10], seg[11]]);
        seg[8..12].fill(0);
        assert_eq!(stored, crc32c(&seg));
        // RFC 3720 B.4 test vector: 32 bytes of zeros.
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
    }
}
