//! UDP headers.
//!
//! `UdpPacket::new_checked` guarantees the 8-byte header; after it, no getter or setter
//! panics. The length field is not checked against the buffer: OVS does not either.
//! RFC 768: a checksum of 0 means "none"; a computed 0 is sent as 0xffff.

use super::checksum;
use super::{be16, Truncated};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// Length of the header.
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum within the header.
pub const CHECKSUM_OFFSET: usize = 6;
/// The IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;

/// A view of a UDP header at the start of `buf` (the datagram runs to the buffer's end).
#[derive(Clone, Copy, Debug)]
pub struct UdpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buf` after checking the header fits.
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(Truncated);
        }
        Ok(UdpPacket { buf })
    }

    pub fn src_port(&self) -> u16 {
        be16(&self.buf.as_ref()[field::SRC_PORT])
    }

    pub fn dst_port(&self) -> u16 {
        be16(&self.buf.as_ref()[field::DST_PORT])
    }

    /// The length field (header and payload, as the sender wrote it).
    pub fn len_field(&self) -> u16 {
        be16(&self.buf.as_ref()[field::LENGTH])
    }

    pub fn checksum(&self) -> u16 {
        be16(&self.buf.as_ref()[field::CHECKSUM])
    }

    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }

    /// The checksum this datagram should carry, given its pseudo-header sum, covering the
    /// whole buffer. A computed 0 is returned as 0xffff (RFC 768).
    pub fn compute_checksum(&self, pseudo: u32) -> u16 {
        match checksum::l4_checksum(pseudo, self.buf.as_ref(), CHECKSUM_OFFSET) {
            0 => 0xffff,
            c => c,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        self.buf.as_mut()[field::SRC_PORT].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_dst_port(&mut self, v: u16) {
        self.buf.as_mut()[field::DST_PORT].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_len_field(&mut self, v: u16) {
        self.buf.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.buf.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
}

/// A UDP header to build. The checksum is written as 0 ("none"), as OVS's VXLAN encap
/// does unless the tunnel asks for checksums; use `UdpPacket::compute_checksum` to add one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: u16, // bytes after the 8-byte header
}

impl UdpRepr {
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into `buf` of exactly `buffer_len()` bytes. Fails when the length
    /// field would exceed 65535.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Truncated> {
        let len = usize::from(self.payload_len) + HEADER_LEN;
        if buf.len() != HEADER_LEN || len > usize::from(u16::MAX) {
            return Err(Truncated);
        }
        buf[field::SRC_PORT].copy_from_slice(&self.src_port.to_be_bytes());
        buf[field::DST_PORT].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[field::LENGTH].copy_from_slice(&(len as u16).to_be_bytes());
        buf[field::CHECKSUM].copy_from_slice(&[0, 0]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DGRAM: [u8; 12] = [
        0xd4, 0x31, 0x00, 0x35, // source port 54321, destination port 53
        0x00, 0x0c, 0x00, 0x00, // length 12, checksum (none)
        0x01, 0x02, 0x03, 0x04, // payload
    ];

    #[test]
    fn parse_and_checksum() {
        let u = UdpPacket::new_checked(&DGRAM[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len_field()), (54321, 53, 12));
        assert_eq!(u.checksum(), 0);
        assert_eq!(u.payload(), &[1, 2, 3, 4]);
        let pseudo = checksum::pseudo_header_v4([10, 0, 0, 1], [10, 0, 0, 2], 17, 12);
        let c = u.compute_checksum(pseudo);
        let mut b = DGRAM;
        b[6..8].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum::finish(checksum::add(pseudo, &b)), 0);
        assert!(UdpPacket::new_checked(&DGRAM[..7]).is_err());
    }

    #[test]
    fn repr_and_setters() {
        let r = UdpRepr { src_port: 49152, dst_port: VXLAN_PORT, payload_len: 50 };
        let mut b = [0xffu8; HEADER_LEN];
        r.emit(&mut b).unwrap();
        assert_eq!(b, [0xc0, 0x00, 0x12, 0xb5, 0x00, 0x3a, 0x00, 0x00]);
        let mut u = UdpPacket::new_checked(&mut b[..]).unwrap();
        u.set_src_port(1);
        u.set_dst_port(2);
        u.set_len_field(8);
        u.set_checksum(0xabcd);
        assert_eq!(b, [0, 1, 0, 2, 0, 8, 0xab, 0xcd]);
        assert!(UdpRepr { payload_len: 65530, ..r }.emit(&mut b).is_err());
    }
}
