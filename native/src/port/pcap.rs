//! Classic libpcap files: the 24-byte file header, the per-record header, and a writer.
//!
//! Reading is split in two: this file decodes headers from byte slices that the caller has
//! already read (pure functions, no I/O), and `capture.rs` drives them over a byte stream,
//! checks lengths against what is left in the file and says where a problem is.
//!
//! Facts honoured (see `cli-conventions.md` §7):
//! - magic `a1b2c3d4` means µs timestamps, `a1b23c4d` ns, `a1b2cd34` is Kuznetzov's patched
//!   libpcap (µs, record header 8 bytes longer); read byte-swapped, each means "the other
//!   byte order" and every field is swapped;
//! - only version 2.x exists (libpcap and Wireshark reject 1.x);
//! - the link type's low 16 bits are the type; bit 26 says the FCS length is known and
//!   bits 28–31 hold it in 16-bit units.
//!
//! Invariants: decoders take fixed-size arrays, so they cannot index out of bounds; the
//! writer never emits a record whose captured length exceeds its snapshot length.

use std::io::{self, BufWriter, Write};

use super::capture::CaptureErrorKind;

/// Length of the file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Length of a record header in a standard file.
pub const RECORD_HEADER_LEN: usize = 16;
/// Length of a record header in a Kuznetzov file (ifindex u32, protocol u16, pkt_type u8, pad).
pub const KUZNETZOV_RECORD_HEADER_LEN: usize = 24;

/// Magic of a microsecond file, as read in the writer's byte order.
pub const MAGIC_USEC: u32 = 0xa1b2_c3d4;
/// Magic of a nanosecond file.
pub const MAGIC_NSEC: u32 = 0xa1b2_3c4d;
/// Magic of Alexey Kuznetzov's patched libpcap (microseconds, longer record headers).
pub const MAGIC_KUZNETZOV: u32 = 0xa1b2_cd34;

/// The snapshot length we write, and the largest record we accept when a file's own
/// snapshot length is 0 or larger (libpcap's and Wireshark's maximum, 256 KiB).
pub const MAX_SNAPLEN: u32 = 262_144;

/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// Timestamp resolution of a classic pcap file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TsResolution {
    /// Microseconds (magic `a1b2c3d4`), the default.
    #[default]
    Micro,
    /// Nanoseconds (magic `a1b23c4d`, `--nsec`).
    Nano,
}

/// A decoded file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcapHeader {
    pub big_endian: bool,
    pub resolution: TsResolution,
    pub kuznetzov: bool, // record headers are 24 bytes instead of 16
    pub version_major: u16,
    pub version_minor: u16,
    pub snaplen: u32,  // 0 is read as "no limit" (we then use MAX_SNAPLEN)
    pub linktype: u32, // raw field: type in the low 16 bits, FCS bits above
}

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub ts_sec: u32,
    pub ts_frac: u32,  // µs or ns depending on the file
    pub caplen: u32,   // bytes stored in the file
    pub orig_len: u32, // bytes on the wire
}

/// Reads a `u32` in the given byte order.
fn u32_at(b: &[u8; 4], big_endian: bool) -> u32 {
    if big_endian {
        u32::from_be_bytes(*b)
    } else {
        u32::from_le_bytes(*b)
    }
}

/// Splits a fixed array into fixed-size pieces without bounds checks that could fail.
fn word(b: &[u8], at: usize) -> [u8; 4] {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    w
}

/// True when `magic` (read little-endian from the first four bytes) is a classic pcap magic
/// in either byte order.
pub fn is_pcap_magic(magic_le: u32) -> bool {
    [MAGIC_USEC, MAGIC_NSEC, MAGIC_KUZNETZOV]
        .iter()
        .any(|&m| m == magic_le || m.swap_bytes() == magic_le)
}

impl PcapHeader {
    /// Decodes a file header. Errors: unknown magic, version other than 2.x.
    pub fn parse(b: &[u8; FILE_HEADER_LEN]) -> Result<PcapHeader, CaptureErrorKind> {
        let magic_le = u32::from_le_bytes(word(b, 0));
        let (big_endian, magic) = if is_pcap_magic(magic_le) && is_native_magic(magic_le) {
            (false, magic_le)
        } else if is_pcap_magic(magic_le) {
            (true, magic_le.swap_bytes())
        } else {
            return Err(CaptureErrorKind::BadMagic { magic: magic_le.swap_bytes() });
        };
        let u16_at = |at: usize| {
            let w = [b[at], b[at + 1]];
            if big_endian {
                u16::from_be_bytes(w)
            } else {
                u16::from_le_bytes(w)
            }
        };
        let version_major = u16_at(4);
        let version_minor = u16_at(6);
        if version_major != 2 {
            return Err(CaptureErrorKind::UnsupportedVersion {
                major: version_major,
                minor: version_minor,
                expected: "2.4",
            });
        }
        Ok(PcapHeader {
            big_endian,
            resolution: if magic == MAGIC_NSEC { TsResolution::Nano } else { TsResolution::Micro },
            kuznetzov: magic == MAGIC_KUZNETZOV,
            version_major,
            version_minor,
            snaplen: u32_at(&word(b, 16), big_endian),
            linktype: u32_at(&word(b, 20), big_endian),
        })
    }

    /// A little-endian header as this crate writes it: version 2.4, Ethernet.
    pub fn for_writing(resolution: TsResolution) -> PcapHeader {
        PcapHeader {
            big_endian: false,
            resolution,
            kuznetzov: false,
            version_major: 2,
            version_minor: 4,
            snaplen: MAX_SNAPLEN,
            linktype: LINKTYPE_ETHERNET,
        }
    }

    /// Encodes the header in its own byte order (thiszone and sigfigs are written as 0).
    pub fn to_bytes(&self) -> [u8; FILE_HEADER_LEN] {
        let magic = match (self.kuznetzov, self.resolution) {
            (true, _) => MAGIC_KUZNETZOV,
            (false, TsResolution::Micro) => MAGIC_USEC,
            (false, TsResolution::Nano) => MAGIC_NSEC,
        };
        let be = self.big_endian;
        let w32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut out = [0u8; FILE_HEADER_LEN];
        out[0..4].copy_from_slice(&w32(magic));
        out[4..6].copy_from_slice(&w16(self.version_major));
        out[6..8].copy_from_slice(&w16(self.version_minor));
        out[16..20].copy_from_slice(&w32(self.snaplen));
        out[20..24].copy_from_slice(&w32(self.linktype));
        out
    }

    /// Length of each record header in this file.
    pub fn record_header_len(&self) -> usize {
        if self.kuznetzov {
            KUZNETZOV_RECORD_HEADER_LEN
        } else {
            RECORD_HEADER_LEN
        }
    }

    /// The largest captured length a record may have: the snapshot length, or
    /// [`MAX_SNAPLEN`] when the header says 0 or more than that.
    pub fn record_limit(&self) -> u32 {
        if self.snaplen == 0 || self.snaplen > MAX_SNAPLEN {
            MAX_SNAPLEN
        } else {
            self.snaplen
        }
    }

    /// Decodes the first 16 bytes of a record header (the Kuznetzov extension that may
    /// follow is ignored).
    pub fn parse_record(&self, b: &[u8; RECORD_HEADER_LEN]) -> RecordHeader {
        let be = self.big_endian;
        RecordHeader {
            ts_sec: u32_at(&word(b, 0), be),
            ts_frac: u32_at(&word(b, 4), be),
            caplen: u32_at(&word(b, 8), be),
            orig_len: u32_at(&word(b, 12), be),
        }
    }

    /// Nanoseconds since the epoch of a record. Cannot overflow: `u32::MAX * 10^9` plus
    /// `u32::MAX * 1000` is below `u64::MAX`. An out-of-range fraction (≥ 1 s) is kept as
    /// is, as libpcap does.
    pub fn ts_ns(&self, rec: &RecordHeader) -> u64 {
        let frac = match self.resolution {
            TsResolution::Micro => u64::from(rec.ts_frac) * 1_000,
            TsResolution::Nano => u64::from(rec.ts_frac),
        };
        u64::from(rec.ts_sec) * 1_000_000_000 + frac
    }
}

/// True when the magic, read little-endian, is one written by a little-endian writer.
fn is_native_magic(magic_le: u32) -> bool {
    [MAGIC_USEC, MAGIC_NSEC, MAGIC_KUZNETZOV].contains(&magic_le)
}

/// Writes a classic little-endian pcap file with Ethernet link type and snapshot length
/// 262144, buffered. The file header is written by [`PcapWriter::new`].
///
/// Frames longer than the snapshot length are stored truncated, with their real length as
/// the original length, as a capture would. Timestamps in µs files are truncated (not
/// rounded) to the microsecond.
pub struct PcapWriter<W: Write> {
    out: BufWriter<W>,
    resolution: TsResolution,
    records: u64, // written so far
}

impl<W: Write> PcapWriter<W> {
    /// Starts a file with µs timestamps and writes its header.
    pub fn new(inner: W) -> io::Result<PcapWriter<W>> {
        PcapWriter::with_resolution(inner, TsResolution::Micro)
    }

    /// Starts a file with the given timestamp resolution and writes its header.
    pub fn with_resolution(inner: W, resolution: TsResolution) -> io::Result<PcapWriter<W>> {
        let mut out = BufWriter::with_capacity(64 * 1024, inner);
        out.write_all(&PcapHeader::for_writing(resolution).to_bytes())?;
        Ok(PcapWriter { out, resolution, records: 0 })
    }

    /// Appends one frame. Fails with `InvalidInput` when the timestamp's seconds do not fit
    /// in the 32-bit field (after 2106-02-07), and never writes a partial record in that case.
    pub fn write(&mut self, ts_ns: u64, frame: &[u8]) -> io::Result<()> {
        let sec = u32::try_from(ts_ns / 1_000_000_000).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("timestamp {ts_ns} ns is past the last second a pcap file can hold"),
            )
        })?;
        let sub_ns = (ts_ns % 1_000_000_000) as u32;
        let frac = match self.resolution {
            TsResolution::Micro => sub_ns / 1_000,
            TsResolution::Nano => sub_ns,
        };
        let orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let caplen = orig_len.min(MAX_SNAPLEN);
        let mut hdr = [0u8; RECORD_HEADER_LEN];
        hdr[0..4].copy_from_slice(&sec.to_le_bytes());
        hdr[4..8].copy_from_slice(&frac.to_le_bytes());
        hdr[8..12].copy_from_slice(&caplen.to_le_bytes());
        hdr[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.out.write_all(&hdr)?;
        self.out.write_all(&frame[..caplen as usize])?;
        self.records += 1;
        Ok(())
    }

    /// Number of records written so far.
    pub fn records_written(&self) -> u64 {
        self.records
    }

    /// Pushes buffered records to the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the underlying writer. Prefer this to dropping the writer, which
    /// flushes too but cannot report an error.
    pub fn finish(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_in_both_byte_orders() {
        for big_endian in [false, true] {
            for resolution in [TsResolution::Micro, TsResolution::Nano] {
                let h = PcapHeader { big_endian, ..PcapHeader::for_writing(resolution) };
                let parsed = PcapHeader::parse(&h.to_bytes()).unwrap();
                assert_eq!(parsed, h);
            }
        }
        let k = PcapHeader { kuznetzov: true, ..PcapHeader::for_writing(TsResolution::Micro) };
        let parsed = PcapHeader::parse(&k.to_bytes()).unwrap();
        assert!(parsed.kuznetzov);
        assert_eq!(parsed.record_header_len(), 24);
    }

    #[test]
    fn big_endian_nsec_magic_is_detected() {
        let mut b = [0u8; 24];
        // Magic a1b23c4d written big-endian, version 2.4, snaplen 65535, linktype 1.
        b[0..4].copy_from_slice(&[0xa1, 0xb2, 0x3c, 0x4d]);
        b[4..8].copy_from_slice(&[0, 2, 0, 4]);
        b[16..20].copy_from_slice(&65535u32.to_be_bytes());
        b[20..24].copy_from_slice(&1u32.to_be_bytes());
        let h = PcapHeader::parse(&b).unwrap();
        assert!(h.big_endian);
        assert_eq!(h.resolution, TsResolution::Nano);
        assert_eq!((h.snaplen, h.linktype), (65535, 1));
        let rec = h.parse_record(&[0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 60, 0, 0, 0, 60]);
        assert_eq!(h.ts_ns(&rec), 2_000_000_007);
        assert_eq!((rec.caplen, rec.orig_len), (60, 60));
    }

    #[test]
    fn bad_magic_and_version_are_rejected() {
        let mut b = PcapHeader::for_writing(TsResolution::Micro).to_bytes();
        b[4] = 1;
        assert!(matches!(
            PcapHeader::parse(&b),
            Err(CaptureErrorKind::UnsupportedVersion { major: 1, minor: 4, .. })
        ));
        b[0..4].copy_from_slice(&[0x12, 0x34, 0x56, 0x78]);
        assert!(matches!(
            PcapHeader::parse(&b),
            Err(CaptureErrorKind::BadMagic { magic: 0x1234_5678 })
        ));
    }

    #[test]
    fn record_limit_uses_snaplen_or_the_maximum() {
        let mut h = PcapHeader::for_writing(TsResolution::Micro);
        h.snaplen = 68;
        assert_eq!(h.record_limit(), 68);
        h.snaplen = 0;
        assert_eq!(h.record_limit(), MAX_SNAPLEN);
        h.snaplen = u32::MAX;
        assert_eq!(h.record_limit(), MAX_SNAPLEN);
    }

    #[test]
    fn writer_emits_header_and_records() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write(1_500_000_123_456, &[0xaa; 60]).unwrap();
        assert_eq!(w.records_written(), 1);
        let out = w.finish().unwrap();
        assert_eq!(out.len(), 24 + 16 + 60);
        assert_eq!(&out[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&out[16..24], &[0, 0, 4, 0, 1, 0, 0, 0]);
        // ts 1500.000123456 s -> 1500 s, 123 µs (truncated), caplen = orig_len = 60.
        assert_eq!(&out[24..40], &[220, 5, 0, 0, 123, 0, 0, 0, 60, 0, 0, 0, 60, 0, 0, 0]);
    }

    #[test]
    fn writer_truncates_oversize_frames_and_rejects_far_future() {
        let mut w = PcapWriter::with_resolution(Vec::new(), TsResolution::Nano).unwrap();
        let big = vec![7u8; MAX_SNAPLEN as usize + 10];
        w.write(5, &big).unwrap();
        let err = w.write(u64::from(u32::MAX) * 1_000_000_000 + 1_000_000_000, &[1]);
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let out = w.finish().unwrap();
        assert_eq!(&out[0..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        let caplen = u32::from_le_bytes([out[32], out[33], out[34], out[35]]);
        let orig = u32::from_le_bytes([out[36], out[37], out[38], out[39]]);
        assert_eq!((caplen, orig), (MAX_SNAPLEN, MAX_SNAPLEN + 10));
        assert_eq!(out.len(), 24 + 16 + MAX_SNAPLEN as usize);
    }
}
