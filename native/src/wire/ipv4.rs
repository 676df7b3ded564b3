//! IPv4 headers, and the IP protocol numbers shared with IPv6.
//!
//! `Ipv4Packet::new_checked` guarantees at least 20 bytes, an IHL of at least 5 and a
//! header (options included) that fits the buffer; after it, no getter or setter panics.
//! It does not require the total length to fit: callers that need OVS's exact sanity rules
//! (`flow::extract`) apply them on top.

use super::checksum;
use super::{be16, Truncated};

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// "More fragments" flag.
pub const MF: u16 = 0x2000;
/// "Don't fragment" flag.
pub const DF: u16 = 0x4000;
/// Fragment offset mask (units of 8 bytes).
pub const OFFSET_MASK: u16 = 0x1fff;

/// IP protocol / IPv6 next-header values this crate knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    HopByHop,
    Icmp,
    Igmp,
    Tcp,
    Udp,
    Ipv6Route,
    Ipv6Frag,
    Esp,
    Ah,
    Icmpv6,
    Ipv6NoNxt,
    Ipv6Opts,
    Sctp,
    Unknown(u8),
}

impl IpProtocol {
    pub const HOPOPTS: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IGMP: u8 = 2;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NONXT: u8 = 59;
    pub const DSTOPTS: u8 = 60;
    pub const SCTP: u8 = 132;
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> IpProtocol {
        match v {
            IpProtocol::HOPOPTS => IpProtocol::HopByHop,
            IpProtocol::ICMP => IpProtocol::Icmp,
            IpProtocol::IGMP => IpProtocol::Igmp,
            IpProtocol::TCP => IpProtocol::Tcp,
            IpProtocol::UDP => IpProtocol::Udp,
            IpProtocol::ROUTING => IpProtocol::Ipv6Route,
            IpProtocol::FRAGMENT => IpProtocol::Ipv6Frag,
            IpProtocol::ESP => IpProtocol::Esp,
            IpProtocol::AH => IpProtocol::Ah,
            IpProtocol::ICMPV6 => IpProtocol::Icmpv6,
            IpProtocol::NONXT => IpProtocol::Ipv6NoNxt,
            IpProtocol::DSTOPTS => IpProtocol::Ipv6Opts,
            IpProtocol::SCTP => IpProtocol::Sctp,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::HopByHop => IpProtocol::HOPOPTS,
            IpProtocol::Icmp => IpProtocol::ICMP,
            IpProtocol::Igmp => IpProtocol::IGMP,
            IpProtocol::Tcp => IpProtocol::TCP,
            IpProtocol::Udp => IpProtocol::UDP,
            IpProtocol::Ipv6Route => IpProtocol::ROUTING,
            IpProtocol::Ipv6Frag => IpProtocol::FRAGMENT,
            IpProtocol::Esp => IpProtocol::ESP,
            IpProtocol::Ah => IpProtocol::AH,
            IpProtocol::Icmpv6 => IpProtocol::ICMPV6,
            IpProtocol::Ipv6NoNxt => IpProtocol::NONXT,
            IpProtocol::Ipv6Opts => IpProtocol::DSTOPTS,
            IpProtocol::Sctp => IpProtocol::SCTP,
            IpProtocol::Unknown(v) => v,
        }
    }
}

/// A view of an IPv4 header at the start of `buf`.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buf` after checking the header, options included, fits.
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        let b = buf.as_ref();
        let ihl_len = match b.first() {
            Some(v) => usize::from(v & 0x0f) * 4,
            None => return Err(Truncated),
        };
        if b.len() < HEADER_LEN || ihl_len < HEADER_LEN || b.len() < ihl_len {
            return Err(Truncated);
        }
        Ok(Ipv4Packet { buf })
    }

    /// IP version (4 for a well-formed header; not checked).
    pub fn version(&self) -> u8 {
        self.buf.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4; at least 20).
    pub fn header_len(&self) -> usize {
        usize::from(self.buf.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The whole TOS byte: DSCP (high 6 bits) and ECN (low 2 bits).
    pub fn tos(&self) -> u8 {
        self.buf.as_ref()[field::TOS]
    }

    /// Total length field (header and payload).
    pub fn total_len(&self) -> u16 {
        be16(&self.buf.as_ref()[field::LENGTH])
    }

    pub fn ident(&self) -> u16 {
        be16(&self.buf.as_ref()[field::IDENT])
    }

    /// Flags and fragment offset, as on the wire.
    pub fn frag_field(&self) -> u16 {
        be16(&self.buf.as_ref()[field::FLG_OFF])
    }

    /// True when the packet is a fragment (MF set or offset non-zero).
    pub fn is_fragment(&self) -> bool {
        self.frag_field() & (MF | OFFSET_MASK) != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u32 {
        u32::from(self.frag_field() & OFFSET_MASK) * 8
    }

    pub fn ttl(&self) -> u8 {
        self.buf.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buf.as_ref()[field::PROTOCOL])
    }

    pub fn checksum(&self) -> u16 {
        be16(&self.buf.as_ref()[field::CHECKSUM])
    }

    pub fn src(&self) -> [u8; 4] {
        self.addr(field::SRC)
    }

    pub fn dst(&self) -> [u8; 4] {
        self.addr(field::DST)
    }

    fn addr(&self, r: core::ops::Range<usize>) -> [u8; 4] {
        let mut a = [0; 4];
        a.copy_from_slice(&self.buf.as_ref()[r]);
        a
    }

    /// True when the header checksum (options included) is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.buf.as_ref()[..self.header_len()]) == 0
    }

    /// The bytes after the header, up to the end of the buffer (padding included).
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    pub fn set_tos(&mut self, v: u8) {
        self.buf.as_mut()[field::TOS] = v;
    }

    pub fn set_ttl(&mut self, v: u8) {
        self.buf.as_mut()[field::TTL] = v;
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.buf.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_src(&mut self, a: [u8; 4]) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&a);
    }

    pub fn set_dst(&mut self, a: [u8; 4]) {
        self.buf.as_mut()[field::DST].copy_from_slice(&a);
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(&self.buf.as_ref()[..self.header_len()]);
        self.set_checksum(c);
    }
}

/// An IPv4 header without options, to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub protocol: IpProtocol,
    pub payload_len: u16, // bytes after the 20-byte header
    pub tos: u8,
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header, checksum included, into `buf` of exactly `buffer_len()` bytes.
    /// Fails when `buf` has another size or the total length would exceed 65535.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Truncated> {
        let total = usize::from(self.payload_len) + HEADER_LEN;
        if buf.len() != HEADER_LEN || total > usize::from(u16::MAX) {
            return Err(Truncated);
        }
        buf[field::VER_IHL] = 0x45;
        buf[field::TOS] = self.tos;
        buf[field::LENGTH].copy_from_slice(&(total as u16).to_be_bytes());
        buf[field::IDENT].copy_from_slice(&self.ident.to_be_bytes());
        let flags: u16 = if self.dont_frag { DF } else { 0 };
        buf[field::FLG_OFF].copy_from_slice(&flags.to_be_bytes());
        buf[field::TTL] = self.ttl;
        buf[field::PROTOCOL] = self.protocol.into();
        buf[field::CHECKSUM].copy_from_slice(&[0, 0]);
        buf[field::SRC].copy_from_slice(&self.src);
        buf[field::DST].copy_from_slice(&self.dst);
        let c = checksum::checksum(buf);
        buf[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HDR_WITH_OPTION: [u8; 28] = [
        0x46, 0xb8, 0x00, 0x1c, // version 4, IHL 6, TOS 0xb8 (EF), total length 28
        0x12, 0x34, 0x20, 0x02, // id 0x1234, MF set, offset 2 (16 bytes)
        0x3f, 0x11, 0x00, 0x00, // TTL 63, protocol UDP, checksum (filled below)
        0x0a, 0x00, 0x00, 0x05, // source 10.0.0.5
        0xc0, 0xa8, 0x01, 0x01, // destination 192.168.1.1
        0x94, 0x04, 0x00, 0x00, // router alert option
        0xde, 0xad, 0xbe, 0xef, // payload
    ];

    #[test]
    fn parse_header_with_options() {
        let p = Ipv4Packet::new_checked(&HDR_WITH_OPTION[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.tos(), 0xb8);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.is_fragment());
        assert_eq!(p.frag_offset(), 16);
        assert_eq!(p.ttl(), 63);
        assert_eq!(p.protocol(), IpProtocol::Udp);
        assert_eq!(p.src(), [10, 0, 0, 5]);
        assert_eq!(p.dst(), [192, 168, 1, 1]);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn checks_ihl_and_length() {
        assert!(Ipv4Packet::new_checked(&HDR_WITH_OPTION[..23]).is_err());
        assert!(Ipv4Packet::new_checked(&HDR_WITH_OPTION[..24]).is_ok());
        let mut b = HDR_WITH_OPTION;
        b[0] = 0x44; // IHL 4 is below the minimum
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
        assert!(Ipv4Packet::new_checked(&[][..]).is_err());
    }

    #[test]
    fn checksum_fill_and_verify() {
        let mut b = HDR_WITH_OPTION;
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.set_ttl(1);
        assert!(!p.verify_checksum());
    }

    #[test]
    fn repr_emits_a_valid_header() {
        let r = Ipv4Repr {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            protocol: IpProtocol::Udp,
            payload_len: 58,
            tos: 0,
            ttl: 64,
            ident: 7,
            dont_frag: true,
        };
        let mut b = [0u8; HEADER_LEN];
        r.emit(&mut b).unwrap();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.total_len(), 78);
        assert_eq!(p.frag_field(), DF);
        assert!(!p.is_fragment());
        let big = Ipv4Repr { payload_len: u16::MAX, ..r };
        assert!(big.emit(&mut b).is_err());
    }

    #[test]
    fn unknown_protocol_is_a_value() {
        assert_eq!(IpProtocol::from(253), IpProtocol::Unknown(253));
        for v in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(v)), v);
        }
    }
}
