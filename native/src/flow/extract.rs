//! Flow key extraction: fills the L2, L3 and L4 stages of a `FlowKey` from frame bytes,
//! exactly as Open vSwitch 3.1's `miniflow_extract` (lib/flow.c) fills a `struct flow` for an
//! Ethernet packet, so that rules and megaflows match here what they match in OVS.
//!
//! Invariants:
//! - `extract` never panics and never reads outside `frame`: every read is bound-checked.
//! - It first zeroes the key from word `STAGE_ENDS[0]` to the end, then fills what the frame
//!   carries. The metadata stage (tunnel, `in_port`, `recirc_id`, registers, `ct_*`) belongs
//!   to the caller and is never touched.
//! - Where OVS gives up on a header it leaves the fields it had not yet written at zero, and
//!   so do we: a frame shorter than 14 bytes yields an all-zero L2+ key; an IPv4 header that
//!   fails OVS's sanity checks leaves every L3 and L4 field zero (but `dl_type` and the L3
//!   offset are set); an IPv6 packet whose extension headers are truncated keeps its
//!   addresses but not its label, TOS, TTL, protocol or fragment bits.
//! - `Layers` offsets are byte offsets into `frame`; `ABSENT` (`u16::MAX`) marks a layer that
//!   is not there (or whose offset does not fit in 16 bits).

use super::key::{nw_frag, FlowKey, STAGE_ENDS, VLAN_CFI};
use crate::wire::eth::{EtherType, DL_TYPE_NONE, ETH_TYPE_MIN};
use crate::wire::icmp;
use crate::wire::ipv4::IpProtocol;
use crate::wire::ipv6;
use crate::wire::{get_array, get_be16, get_be32};

/// Marks an absent layer in `Layers`.
pub const ABSENT: u16 = u16::MAX;

/// Most VLAN tags OVS's userspace datapath parses (`FLOW_MAX_VLAN_HEADERS`).
pub const MAX_VLAN_HEADERS: usize = 2;

/// OVS 3.1's default `other_config:vlan-limit` (`LEGACY_MAX_VLAN_HEADERS`): a bridge that
/// does not set it parses one tag, so a QinQ frame has `dl_type=0x8100` (checked against
/// ovs-vswitchd 3.1.0). Pass it to `extract_with_vlan_limit` to behave as a default OVS.
pub const OVS_DEFAULT_VLAN_LIMIT: usize = 1;

/// Where each layer of a frame starts, and what a caller needs to edit it in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layers {
    pub l2_5: u16, // the EtherType / length field after the VLAN tags (12 + 4 * tags)
    pub l3: u16,   // network header (after the EtherType, LLC/SNAP and MPLS labels)
    pub l4: u16,   // transport header, after IPv6 extension headers; set for later
    //                  fragments too, as OVS does, though they carry no transport header
    pub l7: u16, // after the transport header, when it was parsed (ports or type read)
    pub l2_pad: u16, // Ethernet padding after the end of the IP datagram
    pub dl_type: u16,
    pub nw_proto: u8, // final IP protocol (44 for a later IPv6 fragment)
    pub nw_frag: u8,  // `flow::key::nw_frag` bits
}

impl Layers {
    /// Every layer absent.
    pub const NONE: Layers = Layers {
        l2_5: ABSENT,
        l3: ABSENT,
        l4: ABSENT,
        l7: ABSENT,
        l2_pad: 0,
        dl_type: 0,
        nw_proto: 0,
        nw_frag: 0,
    };

    /// Offset of a layer, if present.
    #[inline(always)]
    pub fn get(ofs: u16) -> Option<usize> {
        (ofs != ABSENT).then_some(usize::from(ofs))
    }

    /// True when the frame carried an IPv4 or IPv6 header OVS accepted.
    #[inline(always)]
    pub fn has_ip(&self) -> bool {
        self.l4 != ABSENT && (self.dl_type == EtherType::IPV4 || self.dl_type == EtherType::IPV6)
    }

    /// True when the transport header was parsed: not a later fragment, and long enough
    /// for the fields OVS reads.
    #[inline(always)]
    pub fn has_l4_header(&self) -> bool {
        self.l7 != ABSENT && self.nw_frag & nw_frag::LATER == 0
    }

    /// End of the IP datagram in a frame of `frame_len` bytes (the padding excluded).
    #[inline(always)]
    pub fn l3_end(&self, frame_len: usize) -> usize {
        frame_len.saturating_sub(usize::from(self.l2_pad))
    }

    /// Offset of the transport checksum field (TCP, UDP, ICMP, ICMPv6), when the frame
    /// has one that can be updated; `None` for later fragments and other protocols.
    pub fn l4_checksum_offset(&self) -> Option<usize> {
        if !self.has_l4_header() {
            return None;
        }
        let l4 = Self::get(self.l4)?;
        match self.nw_proto {
            IpProtocol::TCP => Some(l4 + 16),
            IpProtocol::UDP => Some(l4 + 6),
            IpProtocol::ICMP | IpProtocol::ICMPV6 => Some(l4 + 2),
            _ => None,
        }
    }
}

impl Default for Layers {
    fn default() -> Layers {
        Layers::NONE
    }
}

/// A 16-bit offset, or `ABSENT` when it does not fit.
#[inline(always)]
fn ofs(x: usize) -> u16 {
    if x < usize::from(ABSENT) {
        x as u16
    } else {
        ABSENT
    }
}

/// Extracts the L2..L4 stages of `key` from `frame`, parsing up to two VLAN tags (OVS's
/// datapath maximum, i.e. `other_config:vlan-limit=0` or `2`).
pub fn extract(frame: &[u8], key: &mut FlowKey) -> Layers {
    extract_with_vlan_limit(frame, key, MAX_VLAN_HEADERS)
}

/// As `extract`, with OVS's `other_config:vlan-limit` semantics: 0 means the datapath
/// maximum (2), other values are capped at 2. OVS 3.1's default is 1: with it, the inner
/// tag of a QinQ frame is payload and `dl_type` is its TPID.
pub fn extract_with_vlan_limit(frame: &[u8], key: &mut FlowKey, vlan_limit: usize) -> Layers {
    let mut l = Layers::NONE;
    extract_layers(frame, key, vlan_limit, &mut l);
    l
}

/// `extract_with_vlan_limit`, writing the layers into `l` (the fast path's burst keeps them
/// there): a caller that copied a returned `Layers` right after its fields were written one
/// by one would wait for those writes.
pub fn extract_layers(frame: &[u8], key: &mut FlowKey, vlan_limit: usize, l: &mut Layers) {
    key.words_mut()[STAGE_ENDS[0]..].fill(0);
    *l = Layers::NONE;
    let (Some(dst), Some(src)) = (get_array::<6>(frame, 0), get_array::<6>(frame, 6)) else {
        return;
    };
    if frame.len() < crate::wire::eth::HEADER_LEN {
        return;
    }
    key.dl_dst = dst;
    key.dl_src = src;

    // VLAN tags (OVS `parse_vlan`): a tag is taken only when the tag and the EtherType
    // after it are present, and the stored TCI gets the CFI bit as "tag present".
    let limit = if vlan_limit == 0 { MAX_VLAN_HEADERS } else { vlan_limit.min(MAX_VLAN_HEADERS) };
    let mut at = 12usize;
    let mut n = 0;
    while n < limit {
        let Some(tpid) = get_be16(frame, at) else { break };
        if !EtherType::is_vlan_tpid(tpid) || frame.len() - at < 6 {
            break;
        }
        let tci = get_be16(frame, at + 2).unwrap_or(0) | VLAN_CFI;
        if n == 0 {
            (key.vlan_tpid, key.vlan_tci) = (tpid, tci);
        } else {
            (key.vlan2_tpid, key.vlan2_tci) = (tpid, tci);
        }
        at += 4;
        n += 1;
    }
    l.l2_5 = ofs(at);

    // EtherType, or 802.2 LLC with SNAP (OVS `parse_ethertype`).
    let proto = get_be16(frame, at).unwrap_or(0);
    at += 2;
    let dl_type = if proto >= ETH_TYPE_MIN {
        proto
    } else {
        match get_array::<8>(frame, at) {
            Some([0xaa, 0xaa, 0x03, 0, 0, 0, hi, lo]) => {
                at += 8;
                let snap_type = u16::from_be_bytes([hi, lo]);
                if snap_type >= ETH_TYPE_MIN {
                    snap_type
                } else {
                    DL_TYPE_NONE
                }
            }
            _ => DL_TYPE_NONE,
        }
    };
    key.dl_type = dl_type;
    l.dl_type = dl_type;

    // MPLS label stack (no key fields here; it moves the L3 offset, as in OVS).
    if dl_type == EtherType::MPLS || dl_type == EtherType::MPLS_MCAST {
        while let Some(lse) = get_be32(frame, at) {
            at += 4;
            if lse & 0x100 != 0 {
                break;
            }
        }
    }
    l.l3 = ofs(at);
    let rest = frame.get(at..).unwrap_or(&[]);

    let (payload, l4_at) = match dl_type {
        EtherType::IPV4 => match ipv4_l3(rest, key, l) {
            Some((ip_len, tot)) => (&rest[ip_len..tot], at + ip_len),
            None => return,
        },
        EtherType::IPV6 => match ipv6_l3(rest, key, l) {
            Some((start, end)) => (&rest[start..end], at + start),
            None => return,
        },
        EtherType::ARP | EtherType::RARP => {
            arp(rest, key);
            return;
        }
        _ => return,
    };

    l.l4 = ofs(l4_at);
    l.nw_proto = key.nw_proto;
    l.nw_frag = key.nw_frag;
    if key.nw_frag & nw_frag::LATER == 0 {
        if let Some(hlen) = transport(payload, key) {
            l.l7 = if l.l4 == ABSENT { ABSENT } else { ofs(l4_at + hlen) };
        }
    }
}

/// IPv4 (OVS `ipv4_sanity_check` and what follows). Returns the header length and the
/// total length, both within `rest`.
fn ipv4_l3(rest: &[u8], key: &mut FlowKey, l: &mut Layers) -> Option<(usize, usize)> {
    let h: [u8; 20] = get_array(rest, 0)?;
    let ip_len = usize::from(h[0] & 0x0f) * 4;
    if ip_len < 20 || rest.len() < ip_len {
        return None;
    }
    let tot = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if tot > rest.len() || ip_len > tot || rest.len() - tot > usize::from(u16::MAX) {
        return None;
    }
    l.l2_pad = (rest.len() - tot) as u16;
    key.nw_src = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
    key.nw_dst = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
    key.nw_tos = h[1];
    key.nw_ttl = h[8];
    key.nw_proto = h[9];
    let frag = u16::from_be_bytes([h[6], h[7]]);
    if frag & (crate::wire::ipv4::MF | crate::wire::ipv4::OFFSET_MASK) != 0 {
        key.nw_frag = nw_frag::ANY;
        if frag & crate::wire::ipv4::OFFSET_MASK != 0 {
            key.nw_frag |= nw_frag::LATER;
        }
    }
    Some((ip_len, tot))
}

/// IPv6 (OVS `ipv6_sanity_check` and the extension-header walk). Returns the range of the
/// upper-layer data within `rest`.
fn ipv6_l3(rest: &[u8], key: &mut FlowKey, l: &mut Layers) -> Option<(usize, usize)> {
    let h: [u8; 40] = get_array(rest, 0)?;
    let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let end = plen + ipv6::HEADER_LEN;
    if end > rest.len() || rest.len() - end > usize::from(u16::MAX) {
        return None;
    }
    l.l2_pad = (rest.len() - end) as u16;
    key.ipv6_src.copy_from_slice(&h[8..24]);
    key.ipv6_dst.copy_from_slice(&h[24..40]);
    let walk = ipv6::walk_ext_headers(&rest[ipv6::HEADER_LEN..end], h[6])?;
    let tc_flow = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    key.ipv6_label = tc_flow & ipv6::LABEL_MASK;
    key.nw_tos = (tc_flow >> 20) as u8;
    key.nw_ttl = h[7];
    key.nw_proto = walk.proto;
    key.nw_frag = walk.nw_frag;
    Some((ipv6::HEADER_LEN + walk.offset, end))
}

/// ARP and RARP: only the Ethernet / IPv4 form fills fields.
fn arp(rest: &[u8], key: &mut FlowKey) {
    let Some(a) = get_array::<28>(rest, 0) else { return };
    if a[0..2] != [0, 1] || a[2..4] != [0x08, 0x00] || a[4] != 6 || a[5] != 4 {
        return;
    }
    key.nw_src = u32::from_be_bytes([a[14], a[15], a[16], a[17]]);
    key.nw_dst = u32::from_be_bytes([a[24], a[25], a[26], a[27]]);
    // OVS matches only the low 8 bits of the opcode, and only when it fits in them.
    let op = u16::from_be_bytes([a[6], a[7]]);
    if op <= 0xff {
        key.nw_proto = op as u8;
    }
    key.arp_sha.copy_from_slice(&a[8..14]);
    key.arp_tha.copy_from_slice(&a[18..24]);
}

/// The transport fields. `payload` runs from the transport header to the end of the IP
/// datagram. Returns the length of the header parsed, when one was.
fn transport(payload: &[u8], key: &mut FlowKey) -> Option<usize> {
    let ports = |key: &mut FlowKey| {
        key.tp_src = get_be16(payload, 0).unwrap_or(0);
        key.tp_dst = get_be16(payload, 2).unwrap_or(0);
    };
    // OVS dispatches on the protocol number alone: ICMPv6 in IPv4 is parsed as ICMPv6.
    match key.nw_proto {
        IpProtocol::TCP => {
            let ctl = get_be16(payload, 12)?;
            let hlen = usize::from(ctl >> 12) * 4;
            if hlen < 20 || payload.len() < hlen {
                return None;
            }
            key.tcp_flags = ctl & 0x0fff;
            ports(key);
            Some(hlen)
        }
        IpProtocol::UDP if payload.len() >= 8 => {
            ports(key);
            Some(8)
        }
        IpProtocol::SCTP if payload.len() >= 12 => {
            ports(key);
            Some(12)
        }
        IpProtocol::ICMP | IpProtocol::IGMP if payload.len() >= 8 => {
            key.tp_src = u16::from(payload[0]);
            key.tp_dst = u16::from(payload[1]);
            Some(8)
        }
        IpProtocol::ICMPV6 if payload.len() >= icmp::ICMPV6_DATA_LEN => {
            key.tp_src = u16::from(payload[0]);
            key.tp_dst = u16::from(payload[1]);
            if let Some(nd) = icmp::parse_nd(payload) {
                key.nd_target = nd.target.unwrap_or([0; 16]);
                key.arp_sha = nd.sll;
                key.arp_tha = nd.tll;
                // OVS keeps the type of the first link-layer option in the TCP flags slot
                // (`nd_options_type`).
                key.tcp_flags = u16::from(nd.opt_type);
            }
            Some(icmp::ICMPV6_DATA_LEN)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    const ETH_IPV4: [u8; 14] = [
        0xfa, 0x16, 0x3e, 0x00, 0x00, 0x02, // destination
        0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01, // source
        0x08, 0x00, // EtherType IPv4
    ];

    const IPV4_TCP: [u8; 20] = [
        0x45, 0xb8, 0x00, 0x2c, // version 4, IHL 5, TOS 0xb8, total length 44
        0x00, 0x01, 0x40, 0x00, // id 1, DF
        0x40, 0x06, 0x00, 0x00, // TTL 64, protocol TCP, checksum (unchecked)
        0x0a, 0x00, 0x00, 0x01, // source 10.0.0.1
        0x0a, 0x00, 0x00, 0x02, // destination 10.0.0.2
    ];

    const TCP_SYN: [u8; 24] = [
        0xc0, 0x01, 0x00, 0x50, // source port 49153, destination port 80
        0x00, 0x00, 0x00, 0x01, // sequence
        0x00, 0x00, 0x00, 0x00, // acknowledgement
        0x60, 0x02, 0xff, 0xff, // data offset 6, SYN, window
        0x00, 0x00, 0x00, 0x00, // checksum, urgent pointer
        0x02, 0x04, 0x05, 0xb4, // MSS option
    ];

    fn tcp_frame() -> Vec<u8> {
        cat(&[&ETH_IPV4, &IPV4_TCP, &TCP_SYN])
    }

    /// A key whose metadata stage is set and whose L2+ stages hold stale values.
    fn dirty_key() -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.words_mut().fill(0x5a5a_5a5a_5a5a_5a5a);
        k.tun_id = 7;
        k.in_port = 3;
        k.regs[5] = 9;
        k.ct_state = 0x21;
        k
    }

    fn check_metadata(k: &FlowKey) {
        let d = dirty_key();
        assert_eq!(k.words()[..STAGE_ENDS[0]], d.words()[..STAGE_ENDS[0]]);
    }

    #[test]
    fn ipv4_tcp() {
        let f = tcp_frame();
        let mut k = dirty_key();
        let l = extract(&f, &mut k);
        check_metadata(&k);
        assert_eq!(k.dl_dst, [0xfa, 0x16, 0x3e, 0, 0, 2]);
        assert_eq!(k.dl_src, [0xfa, 0x16, 0x3e, 0, 0, 1]);
        assert_eq!((k.dl_type, k.vlan_tci, k.vlan_tpid), (0x0800, 0, 0));
        assert_eq!((k.nw_src, k.nw_dst), (0x0a00_0001, 0x0a00_0002));
        assert_eq!((k.nw_tos, k.nw_ttl, k.nw_proto, k.nw_frag), (0xb8, 64, 6, 0));
        assert_eq!((k.tp_src, k.tp_dst, k.tcp_flags), (49153, 80, 0x002));
        assert_eq!((k.ipv6_src, k.nd_target, k.arp_sha), ([0; 16], [0; 16], [0; 6]));
        assert_eq!((k.pad0, k.pad1, k.pad2), (0, 0, 0));
        assert_eq!((l.l2_5, l.l3, l.l4, l.l7, l.l2_pad), (12, 14, 34, 58, 0));
        assert_eq!(l.l4_checksum_offset(), Some(50));
        assert!(l.has_ip() && l.has_l4_header());
    }

    #[test]
    fn short_frames_leave_l2_and_up_zero() {
        let f = tcp_frame();
        for n in 0..14 {
            let mut k = dirty_key();
            assert_eq!(extract(&f[..n], &mut k), Layers::NONE);
            check_metadata(&k);
            assert!(k.words()[STAGE_ENDS[0]..].iter().all(|w| *w == 0), "len {n}");
        }
    }

    #[test]
    fn vlan_and_qinq() {
        let f = cat(&[
            &ETH_IPV4[..12],
            &[0x88, 0xa8, 0x20, 0x0a], // S-tag: TPID 802.1ad, PCP 1, VID 10
            &[0x81, 0x00, 0x00, 0x64], // C-tag: TPID 802.1Q, VID 100
            &[0x81, 0x00, 0x0f, 0xff], // third tag: beyond OVS's limit, so it is the type
            &[0x08, 0x00],
        ]);
        let mut k = FlowKey::ZERO;
        let l = extract(&f, &mut k);
        assert_eq!((k.vlan_tpid, k.vlan_tci), (0x88a8, 0x200a | VLAN_CFI));
        assert_eq!((k.vlan2_tpid, k.vlan2_tci), (0x8100, 0x0064 | VLAN_CFI));
        assert_eq!(k.dl_type, 0x8100);
        assert_eq!((l.l2_5, l.l3), (20, 22));

        // Two tags, then IPv4.
        let f2 = cat(&[&f[..20], &[0x08, 0x00], &IPV4_TCP, &TCP_SYN]);
        let l = extract(&f2, &mut k);
        assert_eq!((k.dl_type, k.nw_proto, k.tp_dst), (0x0800, 6, 80));
        assert_eq!((l.l2_5, l.l3, l.l4), (20, 22, 42));

        // OVS's default vlan-limit of 1: the C-tag is payload.
        let l = extract_with_vlan_limit(&f2, &mut k, OVS_DEFAULT_VLAN_LIMIT);
        assert_eq!((k.vlan_tci, k.vlan2_tci, k.dl_type), (0x200a | VLAN_CFI, 0, 0x8100));
        assert_eq!((l.l2_5, l.l3, l.l4), (16, 18, ABSENT));
        assert_eq!(extract_with_vlan_limit(&f2, &mut k, 0).l2_5, 20);

        // A tag cut short (no room for the inner EtherType) is not taken.
        let short = cat(&[&ETH_IPV4[..12], &[0x81, 0x00, 0x00, 0x05]]);
        let l = extract(&short, &mut k);
        assert_eq!((k.vlan_tci, k.dl_type, l.l3), (0, 0x8100, 14));
        // A TCI of zero still reads as "tag present".
        let zero = cat(&[&ETH_IPV4[..12], &[0x81, 0x00, 0x00, 0x00, 0x86, 0xdd]]);
        extract(&zero, &mut k);
        assert_eq!((k.vlan_tci, k.dl_type, k.ipv6_src), (VLAN_CFI, 0x86dd, [0; 16]));
    }

    #[test]
    fn ieee_802_3_and_snap() {
        let llc = cat(&[
            &ETH_IPV4[..12],
            &[0x00, 0x26],       // 802.3 length 38
            &[0x42, 0x42, 0x03], // LLC: STP SAPs, UI
            &[0u8; 35],
        ]);
        let mut k = FlowKey::ZERO;
        let l = extract(&llc, &mut k);
        assert_eq!((k.dl_type, l.l2_5, l.l3, l.l4), (0x05ff, 12, 14, ABSENT));

        let snap_ip = cat(&[
            &ETH_IPV4[..12],
            &[0x00, 0x3c],                         // 802.3 length
            &[0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00], // LLC SNAP, OUI 0
            &[0x08, 0x00],                         // SNAP type IPv4
            &IPV4_TCP,
            &TCP_SYN,
        ]);
        let l = extract(&snap_ip, &mut k);
        assert_eq!((k.dl_type, l.l2_5, l.l3, l.l4), (0x0800, 12, 22, 42));
        assert_eq!((k.nw_dst, k.tp_src), (0x0a00_0002, 49153));

        // Cisco OUI: not OVS's SNAP; a SNAP type below 0x600; too short for LLC/SNAP.
        let mut cisco = snap_ip.clone();
        cisco[19] = 0x0c;
        assert_eq!((extract(&cisco, &mut k).l3, k.dl_type), (14, 0x05ff));
        let mut low = snap_ip.clone();
        low[20..22].copy_from_slice(&[0x05, 0xdc]);
        assert_eq!((extract(&low, &mut k).l3, k.dl_type), (22, 0x05ff));
        assert_eq!((extract(&snap_ip[..21], &mut k).l3, k.dl_type), (14, 0x05ff));
    }

    #[test]
    fn ipv4_options_and_padding() {
        let f = cat(&[
            &ETH_IPV4,
            &[0x46, 0x00, 0x00, 0x24], // IHL 6, total length 36
            &[0x00, 0x00, 0x00, 0x00], // id, no fragment
            &[0x01, 0x11, 0x00, 0x00], // TTL 1, UDP
            &[0xc0, 0xa8, 0x00, 0x01], // 192.168.0.1
            &[0xe0, 0x00, 0x00, 0x01], // 224.0.0.1
            &[0x94, 0x04, 0x00, 0x00], // router alert option
            &[0x00, 0x44, 0x00, 0x43, 0x00, 0x0c, 0x00, 0x00], // UDP 68 -> 67
            &[1, 2, 3, 4],             // UDP payload
            &[0u8; 14],                // Ethernet padding
        ]);
        let mut k = FlowKey::ZERO;
        let l = extract(&f, &mut k);
        assert_eq!((k.nw_ttl, k.nw_proto, k.tp_src, k.tp_dst), (1, 17, 68, 67));
        assert_eq!((l.l3, l.l4, l.l7, l.l2_pad), (14, 38, 46, 14));
        assert_eq!(l.l3_end(f.len()), 50);
        assert_eq!(l.l4_checksum_offset(), Some(44));

        // Padding is never parsed: a total length that ends inside the TCP header leaves
        // the ports unset even though the frame has the bytes.
        let mut short = tcp_frame();
        short[17] = 20 + 19; // total length 39: TCP header cut by the IP length
        let l = extract(&short, &mut k);
        assert_eq!((k.nw_proto, k.tp_src, l.l4, l.l7, l.l2_pad), (6, 0, 34, ABSENT, 5));
    }

    #[test]
    fn ipv4_sanity_failures_leave_l3_unset() {
        let cases: [(usize, u8); 4] = [
            (14, 0x44), // IHL 4
            (14, 0x4f), // IHL 15: 60 bytes, more than the frame has
            (17, 60),   // total length 60 > 44 bytes present
            (17, 0x10), // total length 16 < header length
        ];
        for (at, v) in cases {
            let mut f = tcp_frame();
            f[at] = v;
            let mut k = dirty_key();
            let l = extract(&f, &mut k);
            check_metadata(&k);
            assert_eq!((k.dl_type, l.l3, l.l4, l.l7), (0x0800, 14, ABSENT, ABSENT));
            assert!(k.words()[STAGE_ENDS[1]..].iter().all(|w| *w == 0), "byte {at} = {v:#x}");
        }
        // The version nibble is not checked, as in OVS.
        let mut f = tcp_frame();
        f[14] = 0x65;
        let mut k = FlowKey::ZERO;
        assert_eq!(extract(&f, &mut k).l4, 34);
    }

    #[test]
    fn ipv4_fragments() {
        let mut first = tcp_frame();
        first[20] = 0x20; // MF, offset 0
        let mut k = FlowKey::ZERO;
        let l = extract(&first, &mut k);
        assert_eq!((k.nw_frag, k.tp_dst), (nw_frag::ANY, 80));
        assert!(l.has_l4_header());

        let mut later = tcp_frame();
        later[20..22].copy_from_slice(&[0x00, 0xb9]); // offset 185 * 8, last fragment
        let l = extract(&later, &mut k);
        assert_eq!(k.nw_frag, nw_frag::ANY | nw_frag::LATER);
        assert_eq!((k.nw_proto, k.tp_src, k.tp_dst, k.tcp_flags), (6, 0, 0, 0));
        assert_eq!((l.l4, l.l7, l.nw_frag), (34, ABSENT, 3));
        assert_eq!(l.l4_checksum_offset(), None);
    }

    const ETH_IPV6: [u8; 14] = [
        0x33, 0x33, 0xff, 0x00, 0x00, 0x02, // destination (solicited-node multicast)
        0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01, // source
        0x86, 0xdd, // EtherType IPv6
    ];

    fn ipv6_hdr(plen: u16, nxt: u8) -> Vec<u8> {
        cat(&[
            &[0x6b, 0x81, 0x23, 0x45], // version 6, traffic class 0xb8, label 0x12345
            &plen.to_be_bytes(),
            &[nxt, 0xff], // next header, hop limit 255
            &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01], // 2001:db8::1
            &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02], // 2001:db8::2
        ])
    }

    #[test]
    fn ipv6_extension_chain() {
        let ext = [
            43, 0, 1, 4, 0, 0, 0, 0, // hop-by-hop -> routing, router alert option
            60, 0, 4, 0, 0, 0, 0, 0, // routing -> dst-opts, segments left 0
            6, 0, 1, 4, 0, 0, 0, 0, //  dst-opts -> TCP
        ];
        let f = cat(&[&ETH_IPV6, &ipv6_hdr(24 + 24, 0), &ext, &TCP_SYN]);
        let mut k = dirty_key();
        let l = extract(&f, &mut k);
        check_metadata(&k);
        assert_eq!(k.dl_type, 0x86dd);
        assert_eq!((k.ipv6_src[15], k.ipv6_dst[15], k.nw_src, k.nw_dst), (1, 2, 0, 0));
        assert_eq!((k.ipv6_label, k.nw_tos, k.nw_ttl, k.nw_proto), (0x12345, 0xb8, 255, 6));
        assert_eq!((k.tp_src, k.tp_dst, k.tcp_flags, k.nw_frag), (49153, 80, 2, 0));
        assert_eq!((l.l3, l.l4, l.l7, l.l4_checksum_offset()), (14, 78, 102, Some(94)));

        // Truncated extension header: addresses only.
        let f = cat(&[&ETH_IPV6, &ipv6_hdr(12, 0), &ext[..12]]);
        let l = extract(&f, &mut k);
        assert_eq!((k.ipv6_src[15], k.ipv6_label, k.nw_proto, k.nw_ttl), (1, 0, 0, 0));
        assert_eq!((l.l3, l.l4), (14, ABSENT));

        // ESP ends the walk; no ports.
        let f = cat(&[&ETH_IPV6, &ipv6_hdr(8, 50), &[0, 0, 0, 1, 0, 0, 0, 1]]);
        let l = extract(&f, &mut k);
        assert_eq!((k.nw_proto, k.tp_src, l.l4, l.l7), (50, 0, 54, ABSENT));

        // Payload length beyond the frame fails the sanity check.
        let f = cat(&[&ETH_IPV6, &ipv6_hdr(9, 59), &[0; 8]]);
        let l = extract(&f, &mut k);
        assert_eq!((k.ipv6_src, k.nw_ttl, l.l3, l.l4), ([0; 16], 0, 14, ABSENT));
    }

    #[test]
    fn ipv6_fragments() {
        let udp = [0x14, 0xe9, 0x14, 0xe9, 0x00, 0x10, 0x12, 0x34]; // UDP 5353 -> 5353
        let first_frag = [17, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]; // -> UDP, offset 0, MF
        let f = cat(&[&ETH_IPV6, &ipv6_hdr(16, 44), &first_frag, &udp]);
        let mut k = FlowKey::ZERO;
        let l = extract(&f, &mut k);
        assert_eq!((k.nw_proto, k.nw_frag, k.tp_src), (17, nw_frag::ANY, 5353));
        assert_eq!((l.l4, l.l7), (62, 70));

        let later_frag = [17, 0, 0x00, 0xb8, 0xde, 0xad, 0xbe, 0xef]; // offset 184, no MF
        let f = cat(&[&ETH_IPV6, &ipv6_hdr(16, 44), &later_frag, &udp]);
        let l = extract(&f, &mut k);
        assert_eq!((k.nw_proto, k.nw_frag, k.tp_src), (44, nw_frag::ANY | nw_frag::LATER, 0));
        assert_eq!((l.l4, l.l7), (62, ABSENT));
    }

    #[test]
    fn ipv6_neighbour_discovery() {
        let ns = [
            0x87, 0x00, 0x00, 0x00, // neighbour solicitation, code 0, checksum
            0x00, 0x00, 0x00, 0x00, // reserved
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // target
            0x01, 0x01, 0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01, // SLL option
        ];
        let f = cat(&[&ETH_IPV6, &ipv6_hdr(32, 58), &ns]);
        let mut k = FlowKey::ZERO;
        let l = extract(&f, &mut k);
        assert_eq!((k.nw_proto, k.tp_src, k.tp_dst), (58, 135, 0));
        assert_eq!(k.nd_target[15], 2);
        assert_eq!((k.arp_sha, k.arp_tha), ([0xfa, 0x16, 0x3e, 0, 0, 1], [0; 6]));
        assert_eq!(k.tcp_flags, 1); // first option type, where OVS keeps it
        assert_eq!((l.l4, l.l4_checksum_offset()), (54, Some(56)));

        let mut na = ns;
        na[0] = 136;
        na[24] = 2; // TLL option
        let f = cat(&[&ETH_IPV6, &ipv6_hdr(32, 58), &na]);
        extract(&f, &mut k);
        assert_eq!((k.tp_src, k.arp_sha, k.arp_tha[5]), (136, [0; 6], 1));

        // Echo request: type and code only.
        let f = cat(&[&ETH_IPV6, &ipv6_hdr(8, 58), &[128, 0, 0, 0, 0, 1, 0, 1]]);
        extract(&f, &mut k);
        assert_eq!((k.tp_src, k.tp_dst, k.nd_target, k.tcp_flags), (128, 0, [0; 16], 0));
    }

    #[test]
    fn arp_and_rarp() {
        let arp = [
            0x00, 0x01, 0x08, 0x00, // Ethernet, IPv4
            0x06, 0x04, 0x00, 0x02, // lengths 6 and 4, reply
            0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01, // sender MAC
            0x0a, 0x00, 0x00, 0x01, // sender IP
            0xfa, 0x16, 0x3e, 0x00, 0x00, 0x02, // target MAC
            0x0a, 0x00, 0x00, 0x02, // target IP
        ];
        let f = cat(&[&ETH_IPV4[..12], &[0x08, 0x06], &arp, &[0; 18]]);
        let mut k = FlowKey::ZERO;
        let l = extract(&f, &mut k);
        assert_eq!(
            (k.dl_type, k.nw_proto, k.nw_src, k.nw_dst),
            (0x0806, 2, 0x0a00_0001, 0x0a00_0002)
        );
        assert_eq!((k.arp_sha[5], k.arp_tha[5], k.nw_ttl, k.tp_src), (1, 2, 0, 0));
        assert_eq!((l.l3, l.l4, l.l2_pad), (14, ABSENT, 0));

        // RARP shares the layout.
        let f = cat(&[&ETH_IPV4[..12], &[0x80, 0x35], &arp]);
        extract(&f, &mut k);
        assert_eq!((k.dl_type, k.nw_src), (0x8035, 0x0a00_0001));

        // An opcode above 0xff keeps the addresses but not the opcode.
        let mut big = arp;
        big[6] = 0x01;
        let f = cat(&[&ETH_IPV4[..12], &[0x08, 0x06], &big]);
        extract(&f, &mut k);
        assert_eq!((k.nw_proto, k.nw_src), (0, 0x0a00_0001));

        // Not Ethernet/IPv4, or truncated: no ARP fields.
        let mut other = arp;
        other[1] = 6; // IEEE 802 hardware type
        for f in [
            cat(&[&ETH_IPV4[..12], &[0x08, 0x06], &other]),
            cat(&[&ETH_IPV4[..12], &[0x08, 0x06], &arp[..27]]),
        ] {
            extract(&f, &mut k);
            assert_eq!((k.dl_type, k.nw_src, k.nw_proto, k.arp_sha), (0x0806, 0, 0, [0; 6]));
        }
    }

    #[test]
    fn icmp_sctp_and_unknown_protocols() {
        let mut f = cat(&[&ETH_IPV4, &IPV4_TCP, &[3, 4, 0, 0, 0, 0, 5, 0xdc], &[0; 16]]);
        f[23] = 1; // ICMP: destination unreachable, fragmentation needed
        let mut k = FlowKey::ZERO;
        let l = extract(&f, &mut k);
        assert_eq!((k.nw_proto, k.tp_src, k.tp_dst, l.l7), (1, 3, 4, 42));
        f[23] = 132; // SCTP
        extract(&f, &mut k);
        assert_eq!((k.tp_src, k.tp_dst), (0x0304, 0));
        f[23] = 47; // GRE: no transport fields
        let l = extract(&f, &mut k);
        assert_eq!((k.nw_proto, k.tp_src, l.l4, l.l7), (47, 0, 34, ABSENT));
        // An unknown EtherType stops at L2.
        let mut g = tcp_frame();
        g[12..14].copy_from_slice(&[0x12, 0x34]);
        let l = extract(&g, &mut k);
        assert_eq!((k.dl_type, k.nw_src, l.l3, l.l4), (0x1234, 0, 14, ABSENT));
        // MPLS: the L3 offset moves past the label stack (BOS on the second label).
        let mpls = cat(&[&ETH_IPV4[..12], &[0x88, 0x47], &[0, 1, 0, 64, 0, 2, 1, 64], &IPV4_TCP]);
        let l = extract(&mpls, &mut k);
        assert_eq!((k.dl_type, k.nw_src, l.l3, l.l4), (0x8847, 0, 22, ABSENT));
    }

    /// Sanity conditions every extraction must satisfy, whatever the bytes.
    fn check_sane(f: &[u8], k: &FlowKey, l: &Layers) {
        check_metadata(k);
        let end = l.l3_end(f.len());
        for o in [l.l2_5, l.l3, l.l4, l.l7] {
            if o != ABSENT {
                assert!(usize::from(o) <= f.len(), "offset {o} past {}", f.len());
            }
        }
        if f.len() < 14 {
            assert_eq!(*l, Layers::NONE);
            assert!(k.words()[STAGE_ENDS[0]..].iter().all(|w| *w == 0));
            return;
        }
        assert_eq!((&k.dl_dst[..], &k.dl_src[..]), (&f[..6], &f[6..12]));
        if l.l4 != ABSENT {
            assert!(usize::from(l.l4) <= end && l.l3 < l.l4);
        }
        if l.l7 != ABSENT {
            assert!(l.l4 < l.l7 && usize::from(l.l7) <= end);
        }
        if l.l4 == ABSENT {
            assert_eq!((k.tp_src, k.tp_dst, k.tcp_flags), (0, 0, 0));
        }
        assert_eq!((k.pad0, k.pad1, k.pad2), (0, 0, 0));
    }

    #[test]
    fn every_truncation_of_sample_frames() {
        let vlan_tcp =
            cat(&[&ETH_IPV4[..12], &[0x81, 0x00, 0x00, 0x0a, 0x08, 0x00], &IPV4_TCP, &TCP_SYN]);
        let ns = cat(&[
            &ETH_IPV6,
            &ipv6_hdr(40, 0),
            &[58, 0, 5, 2, 0, 0, 1, 0], // hop-by-hop -> ICMPv6, router alert
            &[135, 0, 0, 0, 0, 0, 0, 0], // neighbour solicitation
            &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9], // target
            &[1, 1, 1, 2, 3, 4, 5, 6],  // SLL option
        ]);
        for full in [tcp_frame(), vlan_tcp, ns] {
            let mut whole = dirty_key();
            extract(&full, &mut whole);
            assert!(whole.tp_src != 0, "the whole frame parses to L4");
            for n in 0..=full.len() {
                let f = &full[..n];
                let mut k = dirty_key();
                let l = extract(f, &mut k);
                check_sane(f, &k, &l);
                if n < full.len() && n >= 14 {
                    // The IP length always covers the whole sample, so a cut frame fails
                    // the L3 sanity check: no L3 or L4 field is set.
                    assert!(k.words()[STAGE_ENDS[1]..].iter().all(|w| *w == 0), "len {n}");
                }
            }
        }
    }

    /// Reads classic little-endian pcap files (microsecond or nanosecond) and returns the
    /// frames of Ethernet captures; `None` for any other file.
    fn read_pcap(bytes: &[u8]) -> Option<Vec<&[u8]>> {
        let magic = u32::from_le_bytes(get_array(bytes, 0)?);
        if magic != 0xa1b2_c3d4 && magic != 0xa1b2_3c4d {
            return None;
        }
        let linktype = u32::from_le_bytes(get_array(bytes, 20)?);
        if linktype != 1 {
            return None;
        }
        let mut frames = Vec::new();
        let mut at = 24usize;
        while let Some(rec) = get_array::<16>(bytes, at) {
            let caplen = u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]) as usize;
            let data = bytes.get(at + 16..at + 16 + caplen)?;
            frames.push(data);
            at += 16 + caplen;
        }
        Some(frames)
    }

    #[test]
    fn every_frame_of_the_shared_captures() {
        let Ok(dir) = std::fs::read_dir("/work/shared/captures") else { return };
        let mut n_frames = 0usize;
        for entry in dir.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("pcap") {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else { continue };
            let Some(frames) = read_pcap(&bytes) else { continue };
            for f in frames {
                let mut k = dirty_key();
                let l = extract(f, &mut k);
                check_sane(f, &k, &l);
                n_frames += 1;
            }
        }
        eprintln!("extracted {n_frames} frames");
    }
}
