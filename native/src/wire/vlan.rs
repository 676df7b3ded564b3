//! 802.1Q / 802.1ad VLAN tags.
//!
//! On the wire a tag is the TPID (in the Ethernet header's EtherType position) followed by
//! the 4 bytes this view covers: the TCI and the encapsulated EtherType. `VlanTag::new_checked`
//! guarantees those 4 bytes; after it, no getter or setter panics.

use super::eth::EtherType;
use super::{be16, Truncated};

mod field {
    use core::ops::Range;
    pub const TCI: Range<usize> = 0..2;
    pub const ETHERTYPE: Range<usize> = 2..4;
}

/// Bytes a tag adds to a frame (TPID + TCI).
pub const TAG_LEN: usize = 4;
/// Bytes this view covers (TCI + inner EtherType).
pub const HEADER_LEN: usize = 4;

/// Priority code point mask within a TCI.
pub const PCP_MASK: u16 = 0xe000;
/// Drop eligible indicator (the old CFI bit). OVS reuses it as "tag present" in flow keys.
pub const DEI: u16 = 0x1000;
/// VLAN identifier mask.
pub const VID_MASK: u16 = 0x0fff;

/// A view of the 4 bytes after a TPID.
#[derive(Clone, Copy, Debug)]
pub struct VlanTag<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps `buf` after checking it holds a whole tag body.
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(Truncated);
        }
        Ok(VlanTag { buf })
    }

    /// The whole tag control information.
    pub fn tci(&self) -> u16 {
        be16(&self.buf.as_ref()[field::TCI])
    }

    /// Priority (3 bits).
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci() & DEI != 0
    }

    /// VLAN identifier (12 bits).
    pub fn vid(&self) -> u16 {
        self.tci() & VID_MASK
    }

    /// The EtherType (or next TPID) after the tag.
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(be16(&self.buf.as_ref()[field::ETHERTYPE]))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Sets the TCI.
    pub fn set_tci(&mut self, tci: u16) {
        self.buf.as_mut()[field::TCI].copy_from_slice(&tci.to_be_bytes());
    }

    /// Sets the encapsulated EtherType.
    pub fn set_ethertype(&mut self, t: EtherType) {
        self.buf.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(t).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: [u8; 4] = [
        0xa0, 0x64, // TCI: PCP 5, DEI 0, VID 100
        0x08, 0x00, // inner EtherType IPv4
    ];

    #[test]
    fn parse_fields() {
        let t = VlanTag::new_checked(&TAG[..]).unwrap();
        assert_eq!(t.tci(), 0xa064);
        assert_eq!(t.pcp(), 5);
        assert!(!t.dei());
        assert_eq!(t.vid(), 100);
        assert_eq!(t.ethertype(), EtherType::Ipv4);
        assert!(VlanTag::new_checked(&TAG[..3]).is_err());
    }

    #[test]
    fn setters() {
        let mut b = TAG;
        let mut t = VlanTag::new_checked(&mut b[..]).unwrap();
        t.set_tci(0x1fff);
        t.set_ethertype(EtherType::Vlan);
        assert!(t.dei());
        assert_eq!(t.vid(), 0xfff);
        assert_eq!(b, [0x1f, 0xff, 0x81, 0x00]);
    }
}
