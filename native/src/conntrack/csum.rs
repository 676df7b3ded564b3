//! Internet checksum helpers for conntrack: full computation (RFC 1071) and incremental
//! update (RFC 1624), with the exact arithmetic of Open vSwitch's `lib/csum.c`, so a
//! rewritten packet carries the same checksum bytes OVS would write.
//!
//! All values are 16-bit words in network order, held as host integers (`u16::from_be_bytes`).
//! One's-complement sums do not depend on byte order, so this gives the same bytes as OVS's
//! raw-memory arithmetic. Nothing here indexes out of bounds: callers pass slices.

/// Adds `data` to a running one's-complement sum (`csum_continue`); an odd trailing byte is
/// padded with a zero byte. The sum is `wire::checksum::add`'s, folded to 16 bits, so
/// callers can keep adding to it.
#[inline]
pub(crate) fn add_bytes(partial: u32, data: &[u8]) -> u32 {
    crate::wire::checksum::add(partial, data)
}

/// Folds the carries and complements (`csum_finish`).
pub(crate) fn finish(mut partial: u32) -> u16 {
    while partial >> 16 != 0 {
        partial = (partial & 0xffff) + (partial >> 16);
    }
    !(partial as u16)
}

/// The checksum of `data` alone (`csum`); 0 when `data` already holds a valid checksum.
pub(crate) fn checksum(data: &[u8]) -> u16 {
    finish(add_bytes(0, data))
}

/// RFC 1624, eqn. 3: `HC' = ~(~HC + ~m + m')`, as OVS's `recalc_csum16`.
pub(crate) fn recalc16(old_csum: u16, old: u16, new: u16) -> u16 {
    let sum = u32::from(!old_csum) + u32::from(!old) + u32::from(new);
    finish(sum)
}

/// `recalc_csum32`: the first two bytes of the value, then the last two (OVS's order).
pub(crate) fn recalc32(old_csum: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let c = recalc16(
        old_csum,
        u16::from_be_bytes([old[0], old[1]]),
        u16::from_be_bytes([new[0], new[1]]),
    );
    recalc16(c, u16::from_be_bytes([old[2], old[3]]), u16::from_be_bytes([new[2], new[3]]))
}

/// `recalc_csum128`: an IPv6 address, 32 bits at a time.
pub(crate) fn recalc128(mut csum: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    for i in 0..4 {
        let o = [old[4 * i], old[4 * i + 1], old[4 * i + 2], old[4 * i + 3]];
        let n = [new[4 * i], new[4 * i + 1], new[4 * i + 2], new[4 * i + 3]];
        csum = recalc32(csum, o, n);
    }
    csum
}

/// IPv4 pseudo-header sum (`packet_csum_pseudoheader`): addresses, protocol, and the L4
/// length taken from the IP header (total length minus header length).
pub(crate) fn pseudo_v4(ip: &[u8]) -> u32 {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let tot_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let l4_len = tot_len.wrapping_sub(ihl) as u16;
    let mut p = add_bytes(0, &ip[12..20]);
    p = p.wrapping_add(u32::from(ip[9]));
    p.wrapping_add(u32::from(l4_len))
}

/// IPv6 pseudo-header sum (`packet_csum_upperlayer6` without the payload).
pub(crate) fn pseudo_v6(ip6: &[u8], proto: u8, l4_len: usize) -> u32 {
    let mut p = add_bytes(0, &ip6[8..40]);
    p = p.wrapping_add((l4_len as u32) >> 16).wrapping_add(l4_len as u32 & 0xffff);
    p.wrapping_add(u32::from(proto))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_known_value() {
        // IPv4 header from RFC 1071 examples in the wild: 45 00 00 73 00 00 40 00 40 11
        // [b8 61] c0 a8 00 01 c0 a8 00 c7.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let c = checksum(&h);
        let new = [172, 24, 4, 10];
        let inc = recalc32(c, [0xc0, 0xa8, 0x00, 0x01], new);
        h[12..16].copy_from_slice(&new);
        assert_eq!(inc, checksum(&h));
    }

    /// The plain sum of 16-bit words, as RFC 1071 writes it.
    fn reference(data: &[u8]) -> u16 {
        let mut sum = 0u64;
        for (i, b) in data.iter().enumerate() {
            sum += u64::from(*b) << if i % 2 == 0 { 8 } else { 0 };
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn word_sums_give_the_checksum_of_halfword_sums() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for len in 0..300 {
            for fill in [None, Some(0x00), Some(0xff)] {
                let data: Vec<u8> =
                    (0..len).map(|_| fill.unwrap_or_else(|| next() as u8)).collect();
                assert_eq!(checksum(&data), reference(&data), "len {len} fill {fill:?}");
                let p = pseudo_v4(&[
                    0x45, 0, 0x05, 0xdc, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
                ]);
                let with = finish(add_bytes(p, &data));
                let mut both = vec![10, 0, 0, 1, 10, 0, 0, 2, 0, 17];
                both.extend_from_slice(&((0x5dc - 20) as u16).to_be_bytes());
                both.extend_from_slice(&data);
                if len % 2 == 0 {
                    assert_eq!(with, reference(&both), "pseudo, len {len}");
                }
            }
        }
        // Frames as large as a capture can hold.
        let big = vec![0xffu8; 262_144];
        assert_eq!(checksum(&big), reference(&big));
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(add_bytes(0, &[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }
}
