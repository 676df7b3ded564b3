//! Typed, zero-copy views over protocol headers, the packet buffer, and the in-place edits
//! that datapath actions make to frames.
//!
//! Every view follows one pattern: `new_checked` verifies, once, that the buffer is long
//! enough for every field its getters read; after that no getter can panic. Setters on
//! `T: AsMut<[u8]>` views write only inside the checked range. Unknown EtherTypes and IP
//! protocols are values (`Unknown(n)`), never errors. Headers we build (Ethernet, IPv4,
//! UDP, VXLAN) have a small `Repr` that `emit`s into a buffer of exactly `buffer_len()`
//! bytes.

pub mod arp;
pub mod checksum;
pub mod eth;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod modify;
pub mod packet;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod vxlan;

pub use packet::Packet;

/// A header did not fit in the bytes given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated;

impl core::fmt::Display for Truncated {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("header truncated")
    }
}

impl std::error::Error for Truncated {}

/// Big-endian `u16` at `at`, or `None` when `b` is too short.
#[inline(always)]
pub(crate) fn get_be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

/// Big-endian `u32` at `at`, or `None` when `b` is too short.
#[inline(always)]
pub(crate) fn get_be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// `N` bytes at `at`, or `None` when `b` is too short.
#[inline(always)]
pub(crate) fn get_array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    let s = b.get(at..at.checked_add(N)?)?;
    let mut out = [0u8; N];
    out.copy_from_slice(s);
    Some(out)
}

/// Big-endian `u16` from a 2-byte slice. Callers pass slices of checked length.
#[inline(always)]
pub(crate) fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Big-endian `u32` from a 4-byte slice. Callers pass slices of checked length.
#[inline(always)]
pub(crate) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Big-endian 24-bit value from a 3-byte slice. Callers pass slices of checked length.
#[inline(always)]
pub(crate) fn be24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}
