//! IPv6 headers and the extension-header walk.
//!
//! `Ipv6Packet::new_checked` guarantees the 40-byte fixed header; after it, no getter or
//! setter panics. `walk_ext_headers` follows Open vSwitch's `parse_ipv6_ext_hdrs`: it steps
//! over hop-by-hop (0), routing (43), destination options (60), AH (51) and fragment (44)
//! headers; anything else (ESP 50, no-next-header 59, TCP, unknown values) ends the walk and
//! is the upper-layer protocol. A non-first fragment stops the walk with protocol 44.

use super::ipv4::IpProtocol;
use super::{be16, be32, Truncated};
use crate::flow::key::nw_frag;

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Flow label mask within the first word.
pub const LABEL_MASK: u32 = 0x000f_ffff;
/// Fragment offset mask within the fragment header's offset/flags word (`IP6F_OFF_MASK`).
pub const FRAG_OFF_MASK: u16 = 0xfff8;
/// "More fragments" flag within that word.
pub const FRAG_MORE: u16 = 0x0001;

/// A view of an IPv6 fixed header at the start of `buf`.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buf` after checking the fixed header fits.
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(Truncated);
        }
        Ok(Ipv6Packet { buf })
    }

    fn word0(&self) -> u32 {
        be32(&self.buf.as_ref()[field::VER_TC_FLOW])
    }

    pub fn version(&self) -> u8 {
        (self.word0() >> 28) as u8
    }

    /// Traffic class (DSCP and ECN), the IPv6 counterpart of the IPv4 TOS byte.
    pub fn traffic_class(&self) -> u8 {
        (self.word0() >> 20) as u8
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        self.word0() & LABEL_MASK
    }

    /// Payload length (everything after the fixed header).
    pub fn payload_len(&self) -> u16 {
        be16(&self.buf.as_ref()[field::LENGTH])
    }

    /// The first next-header value.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buf.as_ref()[field::NXT_HDR])
    }

    pub fn hop_limit(&self) -> u8 {
        self.buf.as_ref()[field::HOP_LIMIT]
    }

    pub fn src(&self) -> [u8; 16] {
        self.addr(field::SRC)
    }

    pub fn dst(&self) -> [u8; 16] {
        self.addr(field::DST)
    }

    fn addr(&self, r: core::ops::Range<usize>) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buf.as_ref()[r]);
        a
    }

    /// The bytes after the fixed header, to the end of the buffer.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn set_word0(&mut self, w: u32) {
        self.buf.as_mut()[field::VER_TC_FLOW].copy_from_slice(&w.to_be_bytes());
    }

    pub fn set_traffic_class(&mut self, tc: u8) {
        let w = (self.word0() & 0xf00f_ffff) | (u32::from(tc) << 20);
        self.set_word0(w);
    }

    /// Sets the flow label; bits above the low 20 are ignored.
    pub fn set_flow_label(&mut self, label: u32) {
        let w = (self.word0() & !LABEL_MASK) | (label & LABEL_MASK);
        self.set_word0(w);
    }

    pub fn set_hop_limit(&mut self, v: u8) {
        self.buf.as_mut()[field::HOP_LIMIT] = v;
    }

    pub fn set_src(&mut self, a: &[u8; 16]) {
        self.buf.as_mut()[field::SRC].copy_from_slice(a);
    }

    pub fn set_dst(&mut self, a: &[u8; 16]) {
        self.buf.as_mut()[field::DST].copy_from_slice(a);
    }
}

/// Where the extension-header walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtWalk {
    pub proto: u8,     // upper-layer protocol; 44 for a non-first fragment
    pub offset: usize, // bytes of extension headers walked over
    pub nw_frag: u8,   // `flow::key::nw_frag` bits
}

/// True for the next-header values the walk steps over.
#[inline(always)]
pub fn is_ext_header(nh: u8) -> bool {
    matches!(
        nh,
        IpProtocol::HOPOPTS
            | IpProtocol::ROUTING
            | IpProtocol::DSTOPTS
            | IpProtocol::AH
            | IpProtocol::FRAGMENT
    )
}

/// Walks the extension headers in `buf` (the bytes after the fixed header, limited to the
/// payload length), starting with next-header value `first`. Returns `None` when a header
/// is truncated (OVS: fewer than 8 bytes left, or a declared length past the end), which
/// OVS treats as a parse failure of the whole L3 header.
pub fn walk_ext_headers(buf: &[u8], first: u8) -> Option<ExtWalk> {
    let mut proto = first;
    let mut at = 0usize;
    let mut frag = 0u8;
    while is_ext_header(proto) {
        // Every extension header is at least 8 bytes; only those 8 are read.
        let h: [u8; 8] = super::get_array(buf, at)?;
        let len = match proto {
            IpProtocol::AH => (usize::from(h[1]) + 2) * 4,
            IpProtocol::FRAGMENT => 8,
            _ => (usize::from(h[1]) + 1) * 8,
        };
        if buf.len() - at < len {
            return None;
        }
        let was_frag = proto == IpProtocol::FRAGMENT;
        proto = h[0];
        at += len;
        if was_frag {
            let offlg = u16::from_be_bytes([h[2], h[3]]);
            // OVS: any non-zero offset/flags word (reserved bits included) marks a
            // fragment; only the first fragment carries the upper-layer header.
            if offlg != 0 {
                frag = nw_frag::ANY;
                if offlg & FRAG_OFF_MASK != 0 {
                    return Some(ExtWalk {
                        proto: IpProtocol::FRAGMENT,
                        offset: at,
                        nw_frag: nw_frag::ANY | nw_frag::LATER,
                    });
                }
            }
        }
    }
    Some(ExtWalk { proto, offset: at, nw_frag: frag })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HDR: [u8; 40] = [
        0x6b, 0x81, 0x23, 0x45, // version 6, traffic class 0xb8, flow label 0x12345
        0x00, 0x10, 0x00, 0x40, // payload length 16, next header hop-by-hop, hop limit 64
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // source fe80::1
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // destination ff02::2
    ];

    #[test]
    fn parse_fixed_header() {
        let p = Ipv6Packet::new_checked(&HDR[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 16);
        assert_eq!(p.next_header(), IpProtocol::HopByHop);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src()[15], 1);
        assert_eq!(p.dst()[..2], [0xff, 0x02]);
        assert!(Ipv6Packet::new_checked(&HDR[..39]).is_err());
    }

    #[test]
    fn setters_keep_neighbouring_bits() {
        let mut b = HDR;
        let mut p = Ipv6Packet::new_checked(&mut b[..]).unwrap();
        p.set_traffic_class(0x01);
        assert_eq!((p.version(), p.traffic_class(), p.flow_label()), (6, 0x01, 0x12345));
        p.set_flow_label(0xfff_ffff);
        assert_eq!((p.version(), p.traffic_class(), p.flow_label()), (6, 0x01, 0xfffff));
        p.set_hop_limit(1);
        p.set_src(&[0xaa; 16]);
        p.set_dst(&[0xbb; 16]);
        assert_eq!(p.hop_limit(), 1);
        assert_eq!(&b[8..40], &[[0xaa; 16], [0xbb; 16]].concat()[..]);
    }

    #[test]
    fn walk_chain_to_tcp() {
        let chain = [
            43, 0, 0, 0, 0, 0, 0, 0, // hop-by-hop, next routing, 8 bytes
            60, 1, 0, 0, 0, 0, 0, 0, // routing, next dst-opts, 16 bytes
            0, 0, 0, 0, 0, 0, 0, 0, //   (routing, second 8 bytes)
            51, 0, 0, 0, 0, 0, 0, 0, // dst-opts, next AH, 8 bytes
            44, 1, 0, 0, 0, 0, 0, 0, // AH, next fragment, (1 + 2) * 4 = 12 bytes
            0, 0, 0, 0, //              (AH, last 4 bytes)
            6, 0, 0, 0, 0, 0, 0, 0, //  fragment, next TCP, offset 0, no MF: not a fragment
            0x12, 0x34, // TCP starts
        ];
        let w = walk_ext_headers(&chain, 0).unwrap();
        assert_eq!(w, ExtWalk { proto: 6, offset: 52, nw_frag: 0 });
        // A truncated routing header fails the walk.
        assert_eq!(walk_ext_headers(&chain[..20], 0), None);
        assert_eq!(walk_ext_headers(&chain[..7], 0), None);
        // ESP and no-next-header end the walk.
        assert_eq!(walk_ext_headers(&chain, 50).unwrap().proto, 50);
        assert_eq!(
            walk_ext_headers(&[], 59).unwrap(),
            ExtWalk { proto: 59, offset: 0, nw_frag: 0 }
        );
    }

    #[test]
    fn walk_fragments() {
        let first = [17, 0, 0x00, 0x01, 0, 0, 0, 1]; // fragment, next UDP, offset 0, MF
        let w = walk_ext_headers(&first, 44).unwrap();
        assert_eq!(w, ExtWalk { proto: 17, offset: 8, nw_frag: nw_frag::ANY });
        let later = [17, 0, 0x05, 0x00, 0, 0, 0, 1]; // fragment, next UDP, offset 160, no MF
        let w = walk_ext_headers(&later, 44).unwrap();
        let any_later = nw_frag::ANY | nw_frag::LATER;
        assert_eq!(w, ExtWalk { proto: 44, offset: 8, nw_frag: any_later });
        let reserved = [17, 0, 0x00, 0x02, 0, 0, 0, 1]; // only a reserved bit set
        assert_eq!(walk_ext_headers(&reserved, 44).unwrap().nw_frag, nw_frag::ANY);
    }
}
