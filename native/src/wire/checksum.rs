//! The Internet checksum: RFC 1071 one's-complement sums, RFC 1624 incremental updates, and
//! the IPv4 / IPv6 pseudo-headers that TCP, UDP and ICMPv6 checksums cover.
//!
//! Values are `u16` as they read in network order (`0x4500` for bytes `45 00`). Partial sums
//! are `u32` values kept below 2^17 after every block, so no input length can overflow them.
//! The incremental updates use the same arithmetic and the same order of 16-bit steps as
//! Open vSwitch (`recalc_csum16/32/128` in lib/csum.c), so an edited packet carries the
//! same checksum bytes OVS would write, including the choice between 0x0000 and 0xffff.

/// Folds carries back into 16 bits (end-around carry), in a fixed number of steps: 64 to
/// 33 bits, then three 16-bit folds (below 3 * 2^16, then at most 0x10001, then at most
/// 0xffff). Each step keeps the value modulo 0xffff and never turns a non-zero sum into zero,
/// so the result is the one folding until it fits gives.
#[inline(always)]
fn fold(sum: u64) -> u32 {
    let s = (sum & 0xffff_ffff) + (sum >> 32);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u32
}

/// Adds the bytes of `data`, as big-endian 16-bit words, to the partial sum `partial`.
/// An odd last byte counts as the high byte of a word whose low byte is zero (RFC 1071).
///
/// The words are summed 32 bits at a time: as 2^16 is 1 modulo 0xffff, a 32-bit word adds
/// the same as its two halves once folded, in half the additions. The folded sum differs
/// from a sum of halves only by multiples of 0xffff and is zero only when that sum is, so
/// every checksum comes out the same.
pub fn add(partial: u32, data: &[u8]) -> u32 {
    let mut sum = u64::from(partial);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let mut halves = words.remainder().chunks_exact(2);
    for h in &mut halves {
        sum += u64::from(u16::from_be_bytes([h[0], h[1]]));
    }
    if let [last] = halves.remainder() {
        sum += u64::from(*last) << 8;
    }
    fold(sum)
}

/// Adds one 16-bit value to a partial sum.
#[inline(always)]
pub fn add16(partial: u32, v: u16) -> u32 {
    fold(u64::from(partial) + u64::from(v))
}

/// The checksum (one's complement of the folded sum) of a partial sum.
#[inline(always)]
pub fn finish(partial: u32) -> u16 {
    !(fold(u64::from(partial)) as u16)
}

/// The RFC 1071 checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    finish(add(0, data))
}

/// Partial sum of the IPv4 pseudo-header (RFC 793 / RFC 768): addresses, protocol and the
/// L4 length.
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u16) -> u32 {
    let s = add(0, &src);
    let s = add(s, &dst);
    let s = add16(s, u16::from(proto));
    add16(s, l4_len)
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 section 8.1): addresses, the 32-bit
/// upper-layer length and the next header value.
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], proto: u8, l4_len: u32) -> u32 {
    let s = add(0, src);
    let s = add(s, dst);
    let s = add(s, &l4_len.to_be_bytes());
    add16(s, u16::from(proto))
}

/// RFC 1624 eqn. 3: the checksum after a 16-bit word of the covered data changed from
/// `old` to `new`: `HC' = ~(~HC + ~m + m')`.
#[inline(always)]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let sum = u64::from(!csum) + u64::from(!old) + u64::from(new);
    !(fold(sum) as u16)
}

/// The checksum after 4 bytes of covered data (at an even offset) changed; the first
/// word is updated first, as OVS does.
pub fn update32(csum: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let c =
        update16(csum, u16::from_be_bytes([old[0], old[1]]), u16::from_be_bytes([new[0], new[1]]));
    update16(c, u16::from_be_bytes([old[2], old[3]]), u16::from_be_bytes([new[2], new[3]]))
}

/// The checksum after 16 bytes of covered data (an IPv6 address) changed.
pub fn update128(csum: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    let mut c = csum;
    for i in 0..4 {
        let o = [old[4 * i], old[4 * i + 1], old[4 * i + 2], old[4 * i + 3]];
        let n = [new[4 * i], new[4 * i + 1], new[4 * i + 2], new[4 * i + 3]];
        c = update32(c, o, n);
    }
    c
}

/// The TCP / UDP / ICMPv6 checksum of `segment` (header and payload) given the partial sum
/// of its pseudo-header, with the 2-byte checksum field at `csum_at` counted as zero. Pass
/// 0 as `pseudo` for ICMPv4, which has none.
pub fn l4_checksum(pseudo: u32, segment: &[u8], csum_at: usize) -> u16 {
    let split = csum_at.min(segment.len());
    let s = add(pseudo, &segment[..split]);
    let tail = segment.get(split.saturating_add(2)..).unwrap_or(&[]);
    // The field starts at an even offset in every header that has one, so skipping it keeps
    // the word alignment of what follows.
    finish(add(s, tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IPv4 header from RFC 1071's neighbour, the classic worked example:
    /// 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7.
    const IP_HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, // version/ihl, tos, total length
        0x00, 0x00, 0x40, 0x00, // id, flags/fragment offset
        0x40, 0x11, 0xb8, 0x61, // ttl, protocol, checksum
        0xc0, 0xa8, 0x00, 0x01, // source 192.168.0.1
        0xc0, 0xa8, 0x00, 0xc7, // destination 192.168.0.199
    ];

    #[test]
    fn rfc1071_sum_of_a_correct_header_is_zero() {
        assert_eq!(checksum(&IP_HDR), 0);
        let mut h = IP_HDR;
        h[10] = 0;
        h[11] = 0;
        assert_eq!(checksum(&h), 0xb861);
    }

    #[test]
    fn odd_length_pads_with_a_zero_low_byte() {
        assert_eq!(checksum(&[0x01]), !0x0100);
        assert_eq!(checksum(&[0x01, 0x02, 0x03]), !(0x0102u16 + 0x0300));
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn long_input_does_not_overflow() {
        let data = vec![0xffu8; 200_001];
        // Every full word is 0xffff (negative zero); the odd byte adds 0xff00.
        assert_eq!(checksum(&data), !0xff00);
    }

    #[test]
    fn incremental_update_matches_recomputation() {
        let mut seed = 0x1234_5678u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for _ in 0..2000 {
            let mut h = IP_HDR;
            h[12..20].copy_from_slice(&[next() as u8, 1, 2, 3, next() as u8, 5, 6, 7]);
            h[10] = 0;
            h[11] = 0;
            let c = checksum(&h);
            let old: [u8; 4] = h[12..16].try_into().unwrap();
            let new = next().to_be_bytes();
            h[12..16].copy_from_slice(&new);
            let inc = update32(c, old, new);
            // Both encodings of zero are the same sum; compare the sums.
            let full = checksum(&h);
            assert!(inc == full || (inc, full) == (0xffff, 0) || (inc, full) == (0, 0xffff));
            h[10..12].copy_from_slice(&inc.to_be_bytes());
            let verify = checksum(&h);
            assert!(verify == 0 || verify == 0xffff, "verify {verify:#x}");
        }
    }

    #[test]
    fn the_fixed_fold_is_folding_until_it_fits() {
        let by_loop = |mut s: u64| {
            while s >> 16 != 0 {
                s = (s & 0xffff) + (s >> 16);
            }
            s as u32
        };
        let mut edges = vec![0, 1, 0xfffe, 0xffff, 0x1_0000, 0x1_0001, 0x2_fffd, 0x2_ffff];
        edges.extend([0xffff_ffff, 0x1_0000_0000, 0x1_ffff_fffe, u64::MAX, u64::MAX - 1]);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            edges.push(x >> (x % 48));
        }
        for s in edges {
            assert_eq!(fold(s), by_loop(s), "{s:#x}");
        }
    }

    #[test]
    fn update16_follows_rfc1624_example() {
        // RFC 1624 section 4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
        // No change keeps the checksum.
        assert_eq!(update16(0x1234, 0xabcd, 0xabcd), 0x1234);
    }

    #[test]
    fn l4_checksum_skips_the_field() {
        let seg = [0x12, 0x34, 0xff, 0xff, 0x00, 0x01];
        assert_eq!(l4_checksum(5, &seg, 2), finish(5 + 0x1234 + 0x0001));
        assert_eq!(l4_checksum(0, &seg, 100), checksum(&seg));
    }

    #[test]
    fn pseudo_headers() {
        let v4 = pseudo_header_v4([10, 0, 0, 1], [10, 0, 0, 2], 17, 8);
        assert_eq!(v4, 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + 8);
        let mut a = [0u8; 16];
        a[15] = 1;
        let v6 = pseudo_header_v6(&a, &a, 58, 0x0001_0000);
        assert_eq!(v6, 1 + 1 + 1 + 58);
        let mut b = a;
        b[0] = 0xfe;
        assert_eq!(update128(finish(v6), &a, &b), finish(pseudo_header_v6(&b, &a, 58, 0x1_0000)));
    }
}
