//! TCP headers.
//!
//! `TcpPacket::new_checked` guarantees a header whose data offset is at least 5 and whose
//! whole length (options included) fits the buffer, OVS's condition for extracting ports
//! and flags; after it, no getter or setter panics.

use super::checksum;
use super::{be16, be32, Truncated};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const CTL: Range<usize> = 12..14;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Offset of the checksum within the header.
pub const CHECKSUM_OFFSET: usize = 16;

/// Flag bits, as in the low 12 bits of the data-offset/flags word.
pub mod flags {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
    pub const ECE: u16 = 0x040;
    pub const CWR: u16 = 0x080;
    pub const NS: u16 = 0x100;
    /// The 12 bits OVS keeps in `tcp_flags`.
    pub const MASK: u16 = 0x0fff;
}

/// A view of a TCP header at the start of `buf` (the segment runs to the buffer's end).
#[derive(Clone, Copy, Debug)]
pub struct TcpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buf` after checking the data offset is at least 5 and the header fits.
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Truncated);
        }
        let hlen = usize::from(b[12] >> 4) * 4;
        if hlen < HEADER_LEN || b.len() < hlen {
            return Err(Truncated);
        }
        Ok(TcpPacket { buf })
    }

    pub fn src_port(&self) -> u16 {
        be16(&self.buf.as_ref()[field::SRC_PORT])
    }

    pub fn dst_port(&self) -> u16 {
        be16(&self.buf.as_ref()[field::DST_PORT])
    }

    pub fn seq(&self) -> u32 {
        be32(&self.buf.as_ref()[field::SEQ])
    }

    pub fn ack(&self) -> u32 {
        be32(&self.buf.as_ref()[field::ACK])
    }

    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buf.as_ref()[field::CTL.start] >> 4) * 4
    }

    /// The 12 flag bits (`flags::*`).
    pub fn flags(&self) -> u16 {
        be16(&self.buf.as_ref()[field::CTL]) & flags::MASK
    }

    pub fn window(&self) -> u16 {
        be16(&self.buf.as_ref()[field::WINDOW])
    }

    pub fn checksum(&self) -> u16 {
        be16(&self.buf.as_ref()[field::CHECKSUM])
    }

    pub fn urgent(&self) -> u16 {
        be16(&self.buf.as_ref()[field::URGENT])
    }

    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..]
    }

    /// The checksum this segment should carry, given its pseudo-header sum.
    pub fn compute_checksum(&self, pseudo: u32) -> u16 {
        checksum::l4_checksum(pseudo, self.buf.as_ref(), CHECKSUM_OFFSET)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        self.buf.as_mut()[field::SRC_PORT].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_dst_port(&mut self, v: u16) {
        self.buf.as_mut()[field::DST_PORT].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.buf.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: [u8; 24] = [
        0xc0, 0x01, 0x00, 0x50, // source port 49153, destination port 80
        0x00, 0x00, 0x00, 0x01, // sequence number 1
        0x00, 0x00, 0x00, 0x00, // acknowledgement number 0
        0x60, 0x02, 0xff, 0xff, // data offset 6, flags SYN, window 65535
        0x00, 0x00, 0x00, 0x00, // checksum, urgent pointer
        0x02, 0x04, 0x05, 0xb4, // option: MSS 1460
    ];

    #[test]
    fn parse_fields() {
        let t = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (49153, 80));
        assert_eq!((t.seq(), t.ack()), (1, 0));
        assert_eq!(t.header_len(), 24);
        assert_eq!(t.flags(), flags::SYN);
        assert_eq!(t.window(), 65535);
        assert_eq!((t.checksum(), t.urgent()), (0, 0));
        assert!(t.payload().is_empty());
    }

    #[test]
    fn rejects_short_and_bad_offsets() {
        assert!(TcpPacket::new_checked(&SYN[..23]).is_err()); // options cut off
        let mut b = SYN;
        b[12] = 0x40; // data offset 4
        assert!(TcpPacket::new_checked(&b[..]).is_err());
        b[12] = 0x5f; // data offset 5 with every flag bit set
        b[13] = 0xff;
        assert_eq!(TcpPacket::new_checked(&b[..]).unwrap().flags(), 0xfff);
    }

    #[test]
    fn checksum_and_setters() {
        let mut b = SYN;
        let pseudo = checksum::pseudo_header_v4([1, 1, 1, 1], [2, 2, 2, 2], 6, 24);
        let mut t = TcpPacket::new_checked(&mut b[..]).unwrap();
        t.set_src_port(1000);
        t.set_dst_port(2000);
        let c = t.compute_checksum(pseudo);
        t.set_checksum(c);
        assert_eq!(checksum::finish(checksum::add(pseudo, &b)), 0);
        assert_eq!(&b[..4], &[0x03, 0xe8, 0x07, 0xd0]);
    }
}
