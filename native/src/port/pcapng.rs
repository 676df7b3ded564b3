//! pcapng blocks: section headers, interface descriptions, and the three packet blocks.
//!
//! A pcapng file is a sequence of blocks `type u32, total_len u32, body, total_len u32`,
//! grouped into sections. Each section starts with a Section Header Block whose byte-order
//! magic sets the endianness of every block up to the next section, and interface ids
//! count the section's Interface Description Blocks from 0, starting again in each section.
//!
//! As with `pcap.rs`, this file only decodes block bodies that the caller has read; the
//! stream, the block framing (lengths, trailer) and error locations live in `capture.rs`.
//!
//! Facts honoured (see `cli-conventions.md` §7):
//! - SHB: byte-order magic `1a2b3c4d`, version 1.x, options checked to lie in the block;
//! - IDB: link type (16 bits), snaplen (0 = none), `if_tsresol` (9: high bit clear = 10^-n,
//!   set = 2^-n, default µs), `if_tsoffset` (14: seconds added to every timestamp),
//!   `if_fcslen` (13, in bits) folded into the pcap-style FCS bits of the link type;
//! - EPB: interface, 64-bit timestamp in `if_tsresol` units, caplen, origlen, data;
//! - SPB: origlen and data only; interface 0, no timestamp, caplen = min(origlen, snaplen,
//!   room in the block);
//! - PB (obsolete): like an EPB with a 16-bit interface id and a drop count. libpcap and
//!   Wireshark still deliver its packets, so we do too rather than lose them.
//! - Everything else (NRB, ISB, DSB, custom, unknown) is skipped by its length.
//!
//! Invariants: decoders work on a body slice and check every length against it before
//! slicing, so no input can make them panic; a decoded packet's data range lies inside the
//! body.

use super::capture::CaptureErrorKind;

/// Section Header Block (palindromic, so it reads the same in both byte orders).
pub const BLOCK_SHB: u32 = 0x0a0d_0d0a;
/// Interface Description Block.
pub const BLOCK_IDB: u32 = 0x0000_0001;
/// Packet Block (obsolete).
pub const BLOCK_PB: u32 = 0x0000_0002;
/// Simple Packet Block.
pub const BLOCK_SPB: u32 = 0x0000_0003;
/// Name Resolution Block.
pub const BLOCK_NRB: u32 = 0x0000_0004;
/// Interface Statistics Block.
pub const BLOCK_ISB: u32 = 0x0000_0005;
/// Enhanced Packet Block.
pub const BLOCK_EPB: u32 = 0x0000_0006;
/// Decryption Secrets Block.
pub const BLOCK_DSB: u32 = 0x0000_000a;
/// The SHB byte-order magic as the writer wrote it.
pub const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;

/// The largest block we read into memory (libpcap's and Wireshark's limit). Skipped blocks
/// may be longer: they are read past, never stored.
pub const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;
/// Smallest block: type, length and the trailing length.
pub const MIN_BLOCK_LEN: u32 = 12;
/// Smallest SHB: 12 bytes of framing, magic, version, section length.
pub const MIN_SHB_LEN: u32 = 28;

const OPT_ENDOFOPT: u16 = 0;
const OPT_IF_FCSLEN: u16 = 13;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// Human name of a block type, for error messages.
pub fn block_name(block_type: u32) -> &'static str {
    match block_type {
        BLOCK_SHB => "section header block",
        BLOCK_IDB => "interface description block",
        BLOCK_PB => "packet block",
        BLOCK_SPB => "simple packet block",
        BLOCK_NRB => "name resolution block",
        BLOCK_ISB => "interface statistics block",
        BLOCK_EPB => "enhanced packet block",
        BLOCK_DSB => "decryption secrets block",
        _ => "block",
    }
}

/// Reads a `u32` at `at`; the caller has checked `at + 4 <= b.len()`.
fn u32_at(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big_endian {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    }
}

/// Reads a `u16` at `at`; the caller has checked `at + 2 <= b.len()`.
fn u16_at(b: &[u8], at: usize, big_endian: bool) -> u16 {
    let w = [b[at], b[at + 1]];
    if big_endian {
        u16::from_be_bytes(w)
    } else {
        u16::from_le_bytes(w)
    }
}

/// Reads a `u64` at `at`; the caller has checked `at + 8 <= b.len()`.
fn u64_at(b: &[u8], at: usize, big_endian: bool) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    if big_endian {
        u64::from_be_bytes(w)
    } else {
        u64::from_le_bytes(w)
    }
}

/// Rounds a length up to the 4-byte padding of pcapng (in u64, so it cannot overflow).
fn pad4(n: u32) -> u64 {
    (u64::from(n) + 3) & !3
}

/// Decodes the byte-order magic of an SHB: `Some(big_endian)`, or `None` when it is neither
/// order of `1a2b3c4d`.
pub fn byte_order(magic_bytes: [u8; 4]) -> Option<bool> {
    match u32::from_le_bytes(magic_bytes) {
        BYTE_ORDER_MAGIC => Some(false),
        m if m == BYTE_ORDER_MAGIC.swap_bytes() => Some(true),
        _ => None,
    }
}

/// Timestamp resolution of an interface (`if_tsresol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsResol {
    /// Units of 10^-n seconds.
    Pow10(u8),
    /// Units of 2^-n seconds.
    Pow2(u8),
}

impl TsResol {
    /// Decodes the one-byte option value.
    pub fn from_option(v: u8) -> TsResol {
        if v & 0x80 == 0 {
            TsResol::Pow10(v)
        } else {
            TsResol::Pow2(v & 0x7f)
        }
    }

    /// Converts a count of units to nanoseconds, rounding down, saturating at `u64::MAX`.
    pub fn to_ns(self, ticks: u64) -> u64 {
        let t = u128::from(ticks);
        let ns = match self {
            TsResol::Pow10(n) if n <= 9 => t * 10u128.pow(9 - u32::from(n)),
            // 10^(n-9) exceeds every u64 when n - 9 > 19, so the result is 0.
            TsResol::Pow10(n) => 10u128.checked_pow(u32::from(n) - 9).map_or(0, |d| t / d),
            // t < 2^64 and 10^9 < 2^30, so the product fits in u128.
            TsResol::Pow2(n) => (t * 1_000_000_000) >> n.min(127),
        };
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

/// One interface of the current section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interface {
    pub linktype: u32, // 16-bit link type, plus pcap-style FCS bits from if_fcslen
    pub snaplen: u32,  // 0 = none
    pub tsresol: TsResol,
    pub tsoffset_s: i64, // added to every timestamp (if_tsoffset)
}

impl Interface {
    /// Nanoseconds since the epoch for a timestamp in this interface's units, clamped to
    /// the range of `u64`.
    pub fn ts_ns(&self, ticks: u64) -> u64 {
        let ns =
            i128::from(self.tsresol.to_ns(ticks)) + i128::from(self.tsoffset_s) * 1_000_000_000;
        u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
    }
}

/// Walks an option list, calling `f(code, value)` for each option before `opt_endofopt`.
/// An option whose value runs past the list, or a list that ends inside an option header,
/// is an error; a list that ends without `opt_endofopt` is accepted.
fn walk_options(
    opts: &[u8],
    big_endian: bool,
    mut f: impl FnMut(u16, &[u8]),
) -> Result<(), CaptureErrorKind> {
    let mut at = 0usize;
    while at < opts.len() {
        let left = opts.len() - at;
        if left < 4 {
            return Err(CaptureErrorKind::OptionOverrun { code: None, len: 4, left });
        }
        let code = u16_at(opts, at, big_endian);
        let len = u16_at(opts, at + 2, big_endian);
        if code == OPT_ENDOFOPT {
            return Ok(());
        }
        let value_start = at + 4;
        if usize::from(len) > opts.len() - value_start {
            return Err(CaptureErrorKind::OptionOverrun {
                code: Some(code),
                len: usize::from(len),
                left: opts.len() - value_start,
            });
        }
        f(code, &opts[value_start..value_start + usize::from(len)]);
        // The padding of the last option may be missing; treat that as the end.
        at = value_start.saturating_add(pad4(u32::from(len)) as usize);
    }
    Ok(())
}

/// What an SHB body (everything after the byte-order magic, trailer excluded) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionHeader {
    pub version_major: u16,
    pub version_minor: u16,
    pub section_len: i64, // -1 = unknown
}

/// Decodes the SHB body after the byte-order magic: version (1.x only), section length,
/// options (checked, ignored).
pub fn parse_shb(body: &[u8], big_endian: bool) -> Result<SectionHeader, CaptureErrorKind> {
    if body.len() < 12 {
        return Err(CaptureErrorKind::BlockTooShort { need: 12, have: body.len() });
    }
    let version_major = u16_at(body, 0, big_endian);
    let version_minor = u16_at(body, 2, big_endian);
    if version_major != 1 {
        return Err(CaptureErrorKind::UnsupportedVersion {
            major: version_major,
            minor: version_minor,
            expected: "1.0",
        });
    }
    let section_len = u64_at(body, 4, big_endian) as i64;
    walk_options(&body[12..], big_endian, |_, _| {})?;
    Ok(SectionHeader { version_major, version_minor, section_len })
}

/// Decodes an IDB body (trailer excluded).
pub fn parse_idb(body: &[u8], big_endian: bool) -> Result<Interface, CaptureErrorKind> {
    if body.len() < 8 {
        return Err(CaptureErrorKind::BlockTooShort { need: 8, have: body.len() });
    }
    let mut iface = Interface {
        linktype: u32::from(u16_at(body, 0, big_endian)),
        snaplen: u32_at(body, 4, big_endian),
        tsresol: TsResol::Pow10(6),
        tsoffset_s: 0,
    };
    walk_options(&body[8..], big_endian, |code, v| match (code, v.len()) {
        (OPT_IF_TSRESOL, 1) => iface.tsresol = TsResol::from_option(v[0]),
        (OPT_IF_TSOFFSET, 8) => iface.tsoffset_s = u64_at(v, 0, big_endian) as i64,
        (OPT_IF_FCSLEN, 1) => {
            // Bits, as Wireshark reads it; pcap's field holds 16-bit units in bits 28-31.
            let units = v[0] / 16;
            if v[0] % 16 == 0 && (1..=15).contains(&units) {
                iface.linktype |= 0x0400_0000 | (u32::from(units) << 28);
            }
        }
        _ => {}
    })?;
    Ok(iface)
}

/// A packet decoded from an EPB, SPB or PB body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketBlock {
    pub interface: u32,
    pub ts_ticks: Option<u64>, // in the interface's units; None for an SPB
    pub caplen: u32,
    pub orig_len: u32,
    pub data_start: usize, // offset of the data in the body; data_start + caplen <= body.len()
}

/// Decodes an EPB (`BLOCK_EPB`) or obsolete PB (`BLOCK_PB`) body, trailer excluded.
pub fn parse_epb_or_pb(
    block_type: u32,
    body: &[u8],
    big_endian: bool,
) -> Result<PacketBlock, CaptureErrorKind> {
    if body.len() < 20 {
        return Err(CaptureErrorKind::BlockTooShort { need: 20, have: body.len() });
    }
    let interface = if block_type == BLOCK_PB {
        u32::from(u16_at(body, 0, big_endian)) // then a 16-bit drop count
    } else {
        u32_at(body, 0, big_endian)
    };
    let ts_ticks =
        (u64::from(u32_at(body, 4, big_endian)) << 32) | u64::from(u32_at(body, 8, big_endian));
    let caplen = u32_at(body, 12, big_endian);
    let orig_len = u32_at(body, 16, big_endian);
    if u64::from(caplen) > (body.len() - 20) as u64 {
        return Err(CaptureErrorKind::CaplenOverrunsBlock { caplen, room: body.len() - 20 });
    }
    let after = 20 + pad4(caplen) as usize;
    if after < body.len() {
        walk_options(&body[after..], big_endian, |_, _| {})?;
    }
    Ok(PacketBlock { interface, ts_ticks: Some(ts_ticks), caplen, orig_len, data_start: 20 })
}

/// Decodes an SPB body (trailer excluded) for interface 0 with snapshot length `snaplen`.
pub fn parse_spb(
    body: &[u8],
    big_endian: bool,
    snaplen: u32,
) -> Result<PacketBlock, CaptureErrorKind> {
    if body.len() < 4 {
        return Err(CaptureErrorKind::BlockTooShort { need: 4, have: body.len() });
    }
    let orig_len = u32_at(body, 0, big_endian);
    let room = u32::try_from(body.len() - 4).unwrap_or(u32::MAX);
    let mut caplen = orig_len.min(room);
    if snaplen != 0 {
        caplen = caplen.min(snaplen);
    }
    Ok(PacketBlock { interface: 0, ts_ticks: None, caplen, orig_len, data_start: 4 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends one option (code, value) with padding, little-endian.
    fn opt(out: &mut Vec<u8>, code: u16, value: &[u8]) {
        out.extend_from_slice(&code.to_le_bytes());
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        out.extend_from_slice(value);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }

    #[test]
    fn tsresol_converts_powers_of_ten_and_two() {
        assert_eq!(TsResol::from_option(6).to_ns(1_500_000), 1_500_000_000);
        assert_eq!(TsResol::from_option(9).to_ns(42), 42);
        assert_eq!(TsResol::from_option(3).to_ns(7), 7_000_000);
        assert_eq!(TsResol::from_option(12).to_ns(5_000), 5);
        assert_eq!(TsResol::from_option(100).to_ns(u64::MAX), 0);
        assert_eq!(TsResol::from_option(0).to_ns(u64::MAX), u64::MAX);
        // 2^-10 s: 1024 ticks = 1 s; 1 tick = 976562.5 ns, rounded down.
        assert_eq!(TsResol::from_option(0x80 | 10).to_ns(1024), 1_000_000_000);
        assert_eq!(TsResol::from_option(0x80 | 10).to_ns(1), 976_562);
        assert_eq!(TsResol::from_option(0xff).to_ns(u64::MAX), 0);
    }

    #[test]
    fn idb_reads_snaplen_tsresol_tsoffset_and_fcslen() {
        // linktype 113, reserved, snaplen 128.
        let mut body = vec![113, 0, 0, 0, 128, 0, 0, 0];
        opt(&mut body, 2, b"eth0"); // if_name
        opt(&mut body, 9, &[9]); // if_tsresol: ns
        opt(&mut body, 14, &10i64.to_le_bytes()); // if_tsoffset: +10 s
        opt(&mut body, 13, &[32]); // if_fcslen: 32 bits
        opt(&mut body, 0, &[]);
        let i = parse_idb(&body, false).unwrap();
        assert_eq!(i.linktype & 0xffff, 113);
        assert_eq!(i.linktype, 113 | 0x0400_0000 | (2 << 28));
        assert_eq!(i.snaplen, 128);
        assert_eq!(i.tsresol, TsResol::Pow10(9));
        assert_eq!(i.ts_ns(5), 10_000_000_005);
    }

    #[test]
    fn options_that_overrun_are_errors() {
        let mut body = vec![1, 0, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&[9, 0, 40, 0, 6, 0, 0, 0]); // if_tsresol claiming 40 bytes
        assert!(matches!(
            parse_idb(&body, false),
            Err(CaptureErrorKind::OptionOverrun { code: Some(9), len: 40, left: 4 })
        ));
        let body = [1, 0, 0, 0, 0, 0, 0, 0, 9, 0];
        assert!(matches!(
            parse_idb(&body, false),
            Err(CaptureErrorKind::OptionOverrun { code: None, len: 4, left: 2 })
        ));
    }

    #[test]
    fn shb_checks_version_and_reads_section_length() {
        let mut body = vec![0, 1, 0, 0];
        body.extend_from_slice(&0x1_0000_0002i64.to_be_bytes());
        let s = parse_shb(&body, true).unwrap();
        assert_eq!((s.version_major, s.version_minor, s.section_len), (1, 0, 0x1_0000_0002));
        let mut body = vec![2, 0, 0, 0];
        body.extend_from_slice(&300i64.to_le_bytes());
        assert!(matches!(
            parse_shb(&body, false),
            Err(CaptureErrorKind::UnsupportedVersion { major: 2, .. })
        ));
        body[0] = 1;
        assert_eq!(parse_shb(&body, false).unwrap().section_len, 300);
    }

    #[test]
    fn epb_pb_and_spb_bodies() {
        // EPB big-endian: interface 1, ts 0x1_00000002, caplen 5, origlen 9, data, padding.
        let mut body = vec![0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 9];
        body.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        let p = parse_epb_or_pb(BLOCK_EPB, &body, true).unwrap();
        assert_eq!((p.interface, p.ts_ticks, p.caplen, p.orig_len), (1, Some(0x1_0000_0002), 5, 9));
        assert_eq!(&body[p.data_start..p.data_start + 5], &[1, 2, 3, 4, 5]);
        // Same bytes as a PB: the interface is the first 16 bits only.
        let p = parse_epb_or_pb(BLOCK_PB, &body, true).unwrap();
        assert_eq!(p.interface, 0);
        // caplen larger than the block.
        body[15] = 9;
        assert!(matches!(
            parse_epb_or_pb(BLOCK_EPB, &body, true),
            Err(CaptureErrorKind::CaplenOverrunsBlock { caplen: 9, room: 8 })
        ));
        // SPB: origlen 100, 8 bytes of room, snaplen 6.
        let body = [100, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(parse_spb(&body, false, 6).unwrap().caplen, 6);
        assert_eq!(parse_spb(&body, false, 0).unwrap().caplen, 8);
        assert_eq!(parse_spb(&body, false, 0).unwrap().orig_len, 100);
    }

    #[test]
    fn byte_order_magic() {
        assert_eq!(byte_order([0x4d, 0x3c, 0x2b, 0x1a]), Some(false));
        assert_eq!(byte_order([0x1a, 0x2b, 0x3c, 0x4d]), Some(true));
        assert_eq!(byte_order([0x30, 0x30, 0x30, 0x30]), None);
    }
}
