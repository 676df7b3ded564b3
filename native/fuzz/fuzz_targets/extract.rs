//! Fuzz target: flow extraction and every in-place edit on arbitrary bytes.
//!
//! Input layout: the first 16 bytes choose the values the edits write; the rest is the
//! frame. Invariants checked on every input:
//! - `extract` does not panic, leaves the metadata stage of the key alone, copies the MAC
//!   addresses, and reports offsets inside the frame (padding excluded for L4 and L7);
//! - extraction is deterministic;
//! - every edit keeps the frame length (push / pop change it by exactly 4 bytes), and a
//!   push followed by a pop gives the original frame back;
//! - an IPv4 header checksum that was right stays right after IPv4 edits;
//! - a TCP / UDP checksum that was right stays right after address and port edits (IPv4, and
//!   IPv6 without extension headers);
//! - an edit that applied is visible in the key extracted afterwards.

#![no_main]

use dvrlab_native::flow::extract::{extract, Layers, ABSENT};
use dvrlab_native::flow::key::STAGE_ENDS;
use dvrlab_native::flow::FlowKey;
use dvrlab_native::wire::checksum;
use dvrlab_native::wire::modify::*;
use dvrlab_native::wire::Packet;
use libfuzzer_sys::fuzz_target;

fn metadata_key() -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.words_mut().fill(0xa5a5_a5a5_a5a5_a5a5);
    k
}

fn check_extract(frame: &[u8]) -> (FlowKey, Layers) {
    let mut k = metadata_key();
    let l = extract(frame, &mut k);
    let m = metadata_key();
    assert_eq!(k.words()[..STAGE_ENDS[0]], m.words()[..STAGE_ENDS[0]]);
    if frame.len() < 14 {
        assert_eq!(l, Layers::NONE);
        assert!(k.words()[STAGE_ENDS[0]..].iter().all(|w| *w == 0));
    } else {
        assert_eq!(&k.dl_dst[..], &frame[..6]);
        assert_eq!(&k.dl_src[..], &frame[6..12]);
    }
    let end = l.l3_end(frame.len());
    for o in [l.l2_5, l.l3] {
        assert!(o == ABSENT || usize::from(o) <= frame.len());
    }
    for o in [l.l4, l.l7] {
        assert!(o == ABSENT || usize::from(o) <= end);
    }
    let mut again = metadata_key();
    assert_eq!(extract(frame, &mut again), l);
    assert_eq!(again, k);
    (k, l)
}

/// The IPv4 header checksum is right (None when there is no accepted IPv4 header).
fn ipv4_csum_ok(f: &[u8], l: &Layers) -> Option<bool> {
    if l.dl_type != 0x0800 || l.l4 == ABSENT {
        return None;
    }
    let h = f.get(usize::from(l.l3)..usize::from(l.l4))?;
    Some(checksum::checksum(h) == 0)
}

/// The TCP / UDP checksum is right, for the cases the invariant covers.
fn l4_csum_ok(f: &[u8], l: &Layers) -> Option<bool> {
    if !l.has_l4_header() || (l.nw_proto != 6 && l.nw_proto != 17) {
        return None;
    }
    let (l3, l4, end) = (usize::from(l.l3), usize::from(l.l4), l.l3_end(f.len()));
    let seg = f.get(l4..end)?;
    let csum_at = l.l4_checksum_offset()? - l4;
    let stored = u16::from_be_bytes([*seg.get(csum_at)?, *seg.get(csum_at + 1)?]);
    if l.nw_proto == 17 && stored == 0 {
        return None;
    }
    let pseudo = match l.dl_type {
        0x0800 => {
            let (s, d) = (f.get(l3 + 12..l3 + 16)?, f.get(l3 + 16..l3 + 20)?);
            let seg_len = u16::try_from(seg.len()).ok()?;
            checksum::pseudo_header_v4(s.try_into().ok()?, d.try_into().ok()?, l.nw_proto, seg_len)
        }
        0x86dd if l4 == l3 + 40 => {
            let (s, d) = (f.get(l3 + 8..l3 + 24)?, f.get(l3 + 24..l3 + 40)?);
            let (s, d): (&[u8; 16], &[u8; 16]) = (s.try_into().ok()?, d.try_into().ok()?);
            checksum::pseudo_header_v6(s, d, l.nw_proto, seg.len() as u32)
        }
        _ => return None,
    };
    let sum = checksum::add(pseudo, seg);
    // A valid segment, checksum field included, sums to 0xffff.
    Some(checksum::finish(sum) == 0)
}

fuzz_target!(|data: &[u8]| {
    let (params, frame) = data.split_at(data.len().min(16));
    let mut p = [0u8; 16];
    p[..params.len()].copy_from_slice(params);
    let u32_at = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    let u16_at = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
    let mac = [p[0], p[1], p[2], p[3], p[4], p[5]];
    let mut v6 = [0u8; 16];
    v6.copy_from_slice(&p);

    let (key, layers) = check_extract(frame);
    let ip_ok = ipv4_csum_ok(frame, &layers) == Some(true);
    let l4_ok = l4_csum_ok(frame, &layers) == Some(true);

    // Edits that keep the length, one at a time from the original frame.
    type Edit = (&'static str, fn(&mut Packet, &Layers, &[u8; 16]) -> bool);
    let edits: [Edit; 22] = [
        ("eth_src", |k, _, p| set_eth_src(k, [p[0], p[1], p[2], p[3], p[4], p[5]])),
        ("eth_dst", |k, _, p| set_eth_dst(k, [p[0], p[1], p[2], p[3], p[4], p[5]])),
        ("ipv4_src", |k, l, p| set_ipv4_src(k, l, u32::from_be_bytes([p[0], p[1], p[2], p[3]]))),
        ("ipv4_dst", |k, l, p| set_ipv4_dst(k, l, u32::from_be_bytes([p[4], p[5], p[6], p[7]]))),
        ("ipv4_tos", |k, l, p| set_ipv4_tos(k, l, p[8])),
        ("ipv4_ttl", |k, l, p| set_ipv4_ttl(k, l, p[9])),
        ("ipv6_src", |k, l, p| set_ipv6_src(k, l, p)),
        ("ipv6_dst", |k, l, p| set_ipv6_dst(k, l, p)),
        ("ipv6_tclass", |k, l, p| set_ipv6_tclass(k, l, p[10])),
        ("ipv6_hlimit", |k, l, p| set_ipv6_hlimit(k, l, p[11])),
        ("ipv6_label", |k, l, p| {
            set_ipv6_label(k, l, u32::from_be_bytes([p[0], p[1], p[2], p[3]]))
        }),
        ("tp_src", |k, l, p| set_tp_src(k, l, u16::from_be_bytes([p[12], p[13]]))),
        ("tp_dst", |k, l, p| set_tp_dst(k, l, u16::from_be_bytes([p[14], p[15]]))),
        ("icmp", |k, l, p| set_icmp(k, l, p[0], p[1])),
        ("icmp_type", |k, l, p| set_icmp_type(k, l, p[2])),
        ("icmp_code", |k, l, p| set_icmp_code(k, l, p[3])),
        ("arp_op", |k, l, p| set_arp_op(k, l, u16::from_be_bytes([p[0], p[1]]))),
        ("arp_spa", |k, l, p| set_arp_spa(k, l, u32::from_be_bytes([p[0], p[1], p[2], p[3]]))),
        ("arp_tpa", |k, l, p| set_arp_tpa(k, l, u32::from_be_bytes([p[4], p[5], p[6], p[7]]))),
        ("arp_sha", |k, l, p| set_arp_sha(k, l, [p[0], p[1], p[2], p[3], p[4], p[5]])),
        ("arp_tha", |k, l, p| set_arp_tha(k, l, [p[6], p[7], p[8], p[9], p[10], p[11]])),
        ("nothing", |_, _, _| false),
    ];
    for (name, edit) in edits {
        let mut pkt = Packet::from_slice(frame);
        let applied = edit(&mut pkt, &layers, &p);
        assert_eq!(pkt.len(), frame.len(), "{name} changed the length");
        if !applied {
            assert_eq!(pkt.data(), frame, "{name} did not apply but wrote");
            continue;
        }
        let (k2, l2) = check_extract(pkt.data());
        if name.starts_with("ipv4") && ip_ok {
            assert_eq!(ipv4_csum_ok(pkt.data(), &l2), Some(true), "{name}: IPv4 checksum");
        }
        let pseudo_or_port = matches!(name, "ipv4_src" | "ipv4_dst" | "tp_src" | "tp_dst")
            || matches!(name, "ipv6_src" | "ipv6_dst");
        if pseudo_or_port && l4_ok {
            assert_eq!(l4_csum_ok(pkt.data(), &l2), Some(true), "{name}: L4 checksum");
        }
        match name {
            "eth_src" => assert_eq!(k2.dl_src, mac),
            "ipv4_src" => assert_eq!(k2.nw_src, u32_at(0)),
            "ipv4_dst" => assert_eq!(k2.nw_dst, u32_at(4)),
            "ipv4_ttl" => assert_eq!(k2.nw_ttl, p[9]),
            "ipv6_src" => assert_eq!(k2.ipv6_src, v6),
            "ipv6_label" => assert_eq!(k2.ipv6_label, u32_at(0) & 0xfffff),
            "tp_src" => assert_eq!(k2.tp_src, u16_at(12)),
            "tp_dst" => assert_eq!(k2.tp_dst, u16_at(14)),
            _ => {}
        }
        // Only the edited fields change structure-wise: the layers stay put.
        if name != "eth_dst" && name != "eth_src" && !name.starts_with("arp") {
            assert_eq!((l2.l3, l2.l4), (layers.l3, layers.l4), "{name} moved layers");
        }
    }

    // Push then pop restores the frame; pop then push restores it up to the CFI bit.
    let mut pkt = Packet::from_slice(frame);
    let mut l = layers;
    if push_vlan(&mut pkt, &mut l, if p[0] & 1 == 0 { 0x8100 } else { 0x88a8 }, u16_at(2)) {
        assert_eq!(pkt.len(), frame.len() + 4);
        let (_, lx) = check_extract(pkt.data());
        if key.vlan2_tci == 0 {
            // Below the two-tag limit the pushed tag is parsed and everything shifts by 4.
            assert_eq!((lx.l3, lx.l4), (l.l3, l.l4), "push_vlan layers");
        }
        assert!(pop_vlan(&mut pkt, &mut l));
        assert_eq!(pkt.data(), frame);
        assert_eq!((l.l3, l.l4, l.l7), (layers.l3, layers.l4, layers.l7));
    }
    let mut pkt = Packet::from_slice(frame);
    let mut l = layers;
    if pop_vlan(&mut pkt, &mut l) {
        assert_eq!(pkt.len() + 4, frame.len());
        check_extract(pkt.data());
    }
});
