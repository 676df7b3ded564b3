//! Building a frame from a flow key (OVS's `flow_compose`), so that a flow written by hand
//! (`dvrlab trace br0 'in_port=1,udp,nw_dst=10.0.0.2,tp_dst=53'`) can be pushed through the
//! real datapath and followed across bridges, namespaces, tunnels and nodes.
//!
//! The frame carries every field of the key that a packet can carry, with correct lengths and
//! checksums, and enough payload to reach the 60-byte Ethernet minimum. Extracting the result
//! gives back the key's L2-L4 fields (tested below).

use super::key::{nw_frag, FlowKey, VLAN_CFI};
use crate::wire::checksum;

fn l4_for(key: &FlowKey, v6: bool, src: &[u8], dst: &[u8]) -> Vec<u8> {
    let pseudo = |proto: u8, len: usize| -> u32 {
        if v6 {
            let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
            s.copy_from_slice(src);
            d.copy_from_slice(dst);
            checksum::pseudo_header_v6(&s, &d, proto, len as u32)
        } else {
            checksum::pseudo_header_v4(
                [src[0], src[1], src[2], src[3]],
                [dst[0], dst[1], dst[2], dst[3]],
                proto,
                len as u16,
            )
        }
    };
    match key.nw_proto {
        6 => {
            let mut t = vec![0u8; 20];
            t[0..2].copy_from_slice(&key.tp_src.to_be_bytes());
            t[2..4].copy_from_slice(&key.tp_dst.to_be_bytes());
            let flags = key.tcp_flags & 0x0fff;
            t[12..14].copy_from_slice(&((5u16 << 12) | flags).to_be_bytes());
            t[14..16].copy_from_slice(&65535u16.to_be_bytes());
            let c = checksum::l4_checksum(pseudo(6, t.len()), &t, 16);
            t[16..18].copy_from_slice(&c.to_be_bytes());
            t
        }
        17 => {
            let mut u = vec![0u8; 8];
            u[0..2].copy_from_slice(&key.tp_src.to_be_bytes());
            u[2..4].copy_from_slice(&key.tp_dst.to_be_bytes());
            u[4..6].copy_from_slice(&8u16.to_be_bytes());
            let mut c = checksum::l4_checksum(pseudo(17, 8), &u, 6);
            if c == 0 {
                c = 0xffff; // RFC 768: a computed zero is sent as all ones.
            }
            u[6..8].copy_from_slice(&c.to_be_bytes());
            u
        }
        1 if !v6 => {
            let mut i = vec![key.tp_src as u8, key.tp_dst as u8, 0, 0, 0, 0, 0, 0];
            let c = checksum::l4_checksum(0, &i, 2);
            i[2..4].copy_from_slice(&c.to_be_bytes());
            i
        }
        58 if v6 => {
            let mut i = vec![key.tp_src as u8, key.tp_dst as u8, 0, 0, 0, 0, 0, 0];
            if key.tp_src == 135 || key.tp_src == 136 {
                i.extend_from_slice(&key.nd_target);
                let (opt, mac) =
                    if key.tp_src == 135 { (1u8, key.arp_sha) } else { (2u8, key.arp_tha) };
                if mac != [0; 6] {
                    i.extend_from_slice(&[opt, 1]);
                    i.extend_from_slice(&mac);
                }
            }
            let c = checksum::l4_checksum(pseudo(58, i.len()), &i, 2);
            i[2..4].copy_from_slice(&c.to_be_bytes());
            i
        }
        132 => {
            let mut s = vec![0u8; 12];
            s[0..2].copy_from_slice(&key.tp_src.to_be_bytes());
            s[2..4].copy_from_slice(&key.tp_dst.to_be_bytes());
            s
        }
        _ => Vec::new(),
    }
}

/// A frame whose extracted key equals `key` in its L2-L4 fields.
pub fn compose(key: &FlowKey) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&key.dl_dst);
    f.extend_from_slice(&key.dl_src);
    for (tpid, tci) in [(key.vlan_tpid, key.vlan_tci), (key.vlan2_tpid, key.vlan2_tci)] {
        if tci & VLAN_CFI != 0 {
            let tpid = if tpid == 0 { 0x8100 } else { tpid };
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&(tci & !VLAN_CFI).to_be_bytes());
        }
    }
    f.extend_from_slice(&key.dl_type.to_be_bytes());
    if key.is_arp() {
        f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, key.nw_proto]);
        f.extend_from_slice(&key.arp_sha);
        f.extend_from_slice(&key.nw_src.to_be_bytes());
        f.extend_from_slice(&key.arp_tha);
        f.extend_from_slice(&key.nw_dst.to_be_bytes());
    } else if key.is_ipv4() {
        let (src, dst) = (key.nw_src.to_be_bytes(), key.nw_dst.to_be_bytes());
        let later = key.nw_frag & nw_frag::LATER != 0;
        let l4 = if later { vec![0u8; 8] } else { l4_for(key, false, &src, &dst) };
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[1] = key.nw_tos;
        ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        let frag: u16 = if later {
            0x0001 // a later fragment: offset 8 bytes
        } else if key.nw_frag & nw_frag::ANY != 0 {
            0x2000 // the first fragment: more fragments, offset 0
        } else {
            0
        };
        ip[6..8].copy_from_slice(&frag.to_be_bytes());
        ip[8] = key.nw_ttl;
        ip[9] = key.nw_proto;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        let c = checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&l4);
    } else if key.is_ipv6() {
        let later = key.nw_frag & nw_frag::LATER != 0;
        let fragmented = key.nw_frag & nw_frag::ANY != 0;
        let l4 = if later { Vec::new() } else { l4_for(key, true, &key.ipv6_src, &key.ipv6_dst) };
        let mut ip = vec![0u8; 40];
        let vtcfl = (6u32 << 28) | ((key.nw_tos as u32) << 20) | (key.ipv6_label & 0xfffff);
        ip[0..4].copy_from_slice(&vtcfl.to_be_bytes());
        let plen = l4.len() + if fragmented { 8 } else { 0 };
        ip[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
        ip[6] = if fragmented { 44 } else { key.nw_proto };
        ip[7] = key.nw_ttl;
        ip[8..24].copy_from_slice(&key.ipv6_src);
        ip[24..40].copy_from_slice(&key.ipv6_dst);
        f.extend_from_slice(&ip);
        if fragmented {
            let off: u16 = if later { 1 << 3 } else { 1 }; // offset 8 bytes, or offset 0 + M
            f.extend_from_slice(&[key.nw_proto, 0]);
            f.extend_from_slice(&off.to_be_bytes());
            f.extend_from_slice(&[0, 0, 0, 1]);
        }
        f.extend_from_slice(&l4);
    }
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::extract::extract;
    use crate::flow::key::STAGE_ENDS;

    fn roundtrip(k: &FlowKey) {
        let frame = compose(k);
        let mut back = FlowKey::ZERO;
        extract(&frame, &mut back);
        let (a, b) = (k.words(), back.words());
        for i in STAGE_ENDS[0]..a.len() {
            assert_eq!(a[i], b[i], "word {i} differs: {k:?} vs {back:?}");
        }
    }

    fn base(dl_type: u16) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.dl_dst = [0x52, 0x54, 0, 0, 0, 2];
        k.dl_src = [0x52, 0x54, 0, 0, 0, 1];
        k.dl_type = dl_type;
        k
    }

    #[test]
    fn udp_tcp_icmp_arp_and_vlan_round_trip() {
        let mut k = base(0x0800);
        k.nw_src = 0x0a00_0001;
        k.nw_dst = 0x0a00_0002;
        k.nw_ttl = 64;
        k.nw_tos = 0xb9;
        k.nw_proto = 17;
        k.tp_src = 1000;
        k.tp_dst = 53;
        roundtrip(&k);
        k.nw_proto = 6;
        k.tcp_flags = 0x012;
        roundtrip(&k);
        k.tcp_flags = 0;
        k.nw_proto = 1;
        k.tp_src = 8;
        k.tp_dst = 0;
        roundtrip(&k);
        k.vlan_tci = VLAN_CFI | 100;
        k.vlan_tpid = 0x8100;
        roundtrip(&k);
        let mut a = base(0x0806);
        a.nw_proto = 1;
        a.nw_src = 0x0a00_0001;
        a.nw_dst = 0x0a00_0004;
        a.arp_sha = [0x52, 0x54, 0, 0, 0, 1];
        roundtrip(&a);
    }

    #[test]
    fn fragments_and_ipv6_round_trip() {
        let mut k = base(0x0800);
        k.nw_src = 1;
        k.nw_dst = 2;
        k.nw_ttl = 9;
        k.nw_proto = 17;
        k.nw_frag = nw_frag::ANY | nw_frag::LATER;
        roundtrip(&k);
        let mut v6 = base(0x86dd);
        v6.ipv6_src[15] = 1;
        v6.ipv6_dst[15] = 2;
        v6.nw_ttl = 64;
        v6.nw_proto = 17;
        v6.tp_src = 5;
        v6.tp_dst = 6;
        v6.ipv6_label = 0x12345;
        roundtrip(&v6);
    }
}
