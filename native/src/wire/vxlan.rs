//! VXLAN headers (RFC 7348).
//!
//! Layout: flags (1 byte; 0x08 is the I flag, "VNI valid"), 24 reserved bits, the 24-bit VNI
//! and 8 more reserved bits. `Vxlan::new_checked` guarantees the 8 bytes; after it, no
//! getter or setter panics. Open vSwitch accepts a header only when the first word is
//! exactly 0x08000000 and the last byte is zero (`is_valid`): reserved bits must be zero.

use super::{be24, Truncated};

mod field {
    use core::ops::Range;
    pub const FLAGS: usize = 0;
    pub const RESERVED1: Range<usize> = 1..4;
    pub const VNI: Range<usize> = 4..7;
    pub const RESERVED2: usize = 7;
}

/// Length of the header.
pub const HEADER_LEN: usize = 8;
/// The I flag: the VNI is valid.
pub const FLAG_I: u8 = 0x08;
/// Largest VNI.
pub const VNI_MAX: u32 = 0x00ff_ffff;

/// A view of a VXLAN header at the start of `buf`.
#[derive(Clone, Copy, Debug)]
pub struct Vxlan<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Vxlan<T> {
    /// Wraps `buf` after checking the header fits.
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(Truncated);
        }
        Ok(Vxlan { buf })
    }

    /// The flags byte.
    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[field::FLAGS]
    }

    /// True when the I flag is set.
    pub fn vni_valid(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// VXLAN Network Identifier (24 bits).
    pub fn vni(&self) -> u32 {
        be24(&self.buf.as_ref()[field::VNI])
    }

    /// The 24 reserved bits after the flags.
    pub fn reserved1(&self) -> u32 {
        be24(&self.buf.as_ref()[field::RESERVED1])
    }

    /// The 8 reserved bits after the VNI.
    pub fn reserved2(&self) -> u8 {
        self.buf.as_ref()[field::RESERVED2]
    }

    /// OVS's acceptance test: flags exactly I, every reserved bit zero.
    pub fn is_valid(&self) -> bool {
        self.flags() == FLAG_I && self.reserved1() == 0 && self.reserved2() == 0
    }

    /// The encapsulated frame.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Vxlan<T> {
    /// Sets the VNI (only the low 24 bits are used).
    pub fn set_vni(&mut self, vni: u32) {
        let b = vni.to_be_bytes();
        self.buf.as_mut()[field::VNI].copy_from_slice(&b[1..]);
    }
}

/// A VXLAN header to build: I flag set, reserved bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VxlanRepr {
    pub vni: u32, // low 24 bits used
}

impl VxlanRepr {
    /// Reads a header that `is_valid`; `None` otherwise.
    pub fn parse<T: AsRef<[u8]>>(v: &Vxlan<T>) -> Option<VxlanRepr> {
        v.is_valid().then(|| VxlanRepr { vni: v.vni() })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into `buf` of exactly `buffer_len()` bytes. Fails when the VNI
    /// does not fit in 24 bits.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Truncated> {
        if buf.len() != HEADER_LEN || self.vni > VNI_MAX {
            return Err(Truncated);
        }
        buf.copy_from_slice(&[FLAG_I, 0, 0, 0, 0, 0, 0, 0]);
        buf[field::VNI].copy_from_slice(&self.vni.to_be_bytes()[1..]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HDR: [u8; 10] = [
        0x08, 0x00, 0x00, 0x00, // flags I, reserved
        0x00, 0x04, 0xd2, 0x00, // VNI 1234, reserved
        0xfa, 0x16, // inner frame starts
    ];

    #[test]
    fn parse_fields() {
        let v = Vxlan::new_checked(&HDR[..]).unwrap();
        assert_eq!(v.flags(), FLAG_I);
        assert!(v.vni_valid());
        assert_eq!(v.vni(), 1234);
        assert!(v.is_valid());
        assert_eq!(v.payload(), &[0xfa, 0x16]);
        assert_eq!(VxlanRepr::parse(&v), Some(VxlanRepr { vni: 1234 }));
        assert!(Vxlan::new_checked(&HDR[..7]).is_err());
    }

    #[test]
    fn reserved_bits_make_it_invalid() {
        for (i, bit) in [(1usize, 0x80u8), (3, 0x01), (7, 0x01), (0, 0x01)] {
            let mut b = HDR;
            b[i] |= bit;
            let v = Vxlan::new_checked(&b[..]).unwrap();
            assert!(!v.is_valid(), "byte {i}");
            assert_eq!(VxlanRepr::parse(&v), None);
        }
        let mut b = HDR;
        b[0] = 0; // I flag clear
        assert!(!Vxlan::new_checked(&b[..]).unwrap().vni_valid());
    }

    #[test]
    fn repr_emit() {
        let mut b = [0xffu8; 8];
        VxlanRepr { vni: 0xabcdef }.emit(&mut b).unwrap();
        assert_eq!(b, [0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
        assert!(VxlanRepr { vni: 0x100_0000 }.emit(&mut b).is_err());
        let mut v = Vxlan::new_checked(&mut b[..]).unwrap();
        v.set_vni(7);
        assert_eq!(v.vni(), 7);
    }
}
