//! Reading capture files: one streaming reader for classic pcap and pcapng, chosen by the
//! first four bytes, and a helper that turns other link types into Ethernet frames.
//!
//! [`CaptureReader::next_record`] hands out one [`Record`] at a time, borrowing its bytes
//! from the reader: from the caller's slice when reading from memory (no copy at all), or
//! from one internal buffer when reading from a [`std::io::Read`]. That buffer starts at
//! 64 KiB and only grows to hold the largest record or pcapng block seen, which is bounded
//! (256 KiB for a pcap record, 16 MiB for a pcapng block), so memory stays bounded and
//! there is no allocation per record.
//!
//! Errors say where (byte offset of the record or block, and the 1-based record number),
//! what, and what was expected. A file cut short inside a record is an error reported after
//! every complete record before it; a file that ends cleanly after its header has zero
//! records. After an error the reader is finished: further calls return `Ok(None)`.
//!
//! What is a corrupt record (the checks that protect memory and replay):
//! - classic pcap: captured length above the snapshot length (or above 262144 when the
//!   header says 0 or more), or above the original length (tcpreplay refuses those too);
//! - pcapng: a block whose length is below the minimum, not a multiple of 4, above 16 MiB
//!   for a block we read, or not repeated in the trailer; options or packet data that run
//!   past their block; a packet for an interface the section has not described; captured
//!   length above the original length. The IDB snapshot length is not enforced: the
//!   block length already bounds the data, and Wireshark does not enforce it either.
//!
//! Timestamps are nanoseconds since the epoch in a `u64`, clamped to its range (a pcapng
//! timestamp before 1970 or after 2554 becomes 0 or `u64::MAX`). A Simple Packet Block has
//! no timestamp; it gets the timestamp of the record before it (0 if none) so that replay
//! pacing and merging by time keep working.
//!
//! Invariants: no input bytes can make the reader panic or allocate more than the bounds
//! above; every `Record::data` has exactly the captured length its header declared.

use std::fmt;
use std::io::{self, Read};

use super::pcap::{self, PcapHeader};
use super::pcapng::{self, Interface};

/// Link type numbers (the low 16 bits of a pcap link type field, or a pcapng IDB's).
pub mod linktype {
    /// BSD loopback: a 4-byte address family in the capturing host's byte order.
    pub const NULL: u32 = 0;
    /// Ethernet (`EN10MB`).
    pub const ETHERNET: u32 = 1;
    /// Raw IPv4 or IPv6, told apart by the version nibble.
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: like NULL, but the family is big-endian.
    pub const LOOP: u32 = 108;
    /// Linux cooked capture v1 (16-byte header).
    pub const LINUX_SLL: u32 = 113;
    /// Raw IPv4.
    pub const IPV4: u32 = 228;
    /// Raw IPv6.
    pub const IPV6: u32 = 229;
    /// Linux cooked capture v2 (20-byte header).
    pub const LINUX_SLL2: u32 = 276;
}

/// The link type proper: the low 16 bits of the field.
pub fn linktype_base(linktype: u32) -> u32 {
    linktype & 0xffff
}

/// Bytes of frame check sequence at the end of every frame, from the link type's FCS bits:
/// bit 26 says the length is known, bits 28–31 give it in 16-bit units (libpcap's
/// `LT_FCS_LENGTH`). 0 when unknown or absent.
pub fn fcs_len(linktype: u32) -> usize {
    if linktype & 0x0400_0000 != 0 {
        ((linktype >> 28) & 0xf) as usize * 2
    } else {
        0
    }
}

/// The container format of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap,
    Pcapng,
}

/// One captured packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub ts_ns: u64,     // nanoseconds since the epoch
    pub data: &'a [u8], // the captured bytes (may be shorter than orig_len)
    pub orig_len: u32,  // length on the wire
    pub linktype: u32,  // link type in the low 16 bits, pcap-style FCS bits above
    pub interface: u32, // pcapng interface id within its section; 0 for classic pcap
}

impl<'a> Record<'a> {
    /// This record as an Ethernet frame; see [`to_ethernet`].
    pub fn to_ethernet<'b>(&self, scratch: &'b mut Vec<u8>) -> Result<&'b [u8], ToEthernetError>
    where
        'a: 'b,
    {
        to_ethernet(self.linktype, self.data, self.orig_len, scratch)
    }
}

/// Where in a file an error was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// The very first bytes: magic or classic pcap file header.
    FileHeader,
    /// A classic pcap record, numbered from 1.
    Record(u64),
    /// A pcapng packet block (EPB, SPB, PB): the record number it would have had.
    PacketBlock(u64, &'static str),
    /// Any other pcapng block, by name.
    Block(&'static str),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::FileHeader => f.write_str("pcap file header"),
            Location::Record(n) => write!(f, "record {n}"),
            Location::PacketBlock(n, name) => write!(f, "record {n} ({name})"),
            Location::Block(name) => f.write_str(name),
        }
    }
}

/// What is wrong, without the location.
#[derive(Debug)]
pub enum CaptureErrorKind {
    /// Fewer than 4 bytes in the whole file.
    TooShortForMagic { have: usize },
    /// The first 4 bytes (read big-endian) are no known magic.
    BadMagic { magic: u32 },
    /// pcap major version other than 2, or pcapng other than 1.
    UnsupportedVersion { major: u16, minor: u16, expected: &'static str },
    /// A header (file, record or block header) cut off by the end of the file.
    TruncatedHeader { need: u64, have: u64 },
    /// Record or block data cut off by the end of the file; `need` is what the header says.
    TruncatedData { need: u64, have: u64 },
    /// Captured length above the file's snapshot length.
    CaplenOverSnaplen { caplen: u32, snaplen: u32 },
    /// Captured length above the largest record we accept (when snaplen is 0 or huge).
    CaplenOverMax { caplen: u32, max: u32 },
    /// Captured length above the original length.
    CaplenOverOrigLen { caplen: u32, orig_len: u32 },
    /// A pcapng block length that cannot be right.
    BadBlockLength { len: u32, why: &'static str },
    /// A pcapng block whose trailing length differs from its leading one.
    TrailerMismatch { head: u32, tail: u32 },
    /// An SHB whose byte-order magic is neither order of `1a2b3c4d`.
    BadByteOrderMagic { magic: u32 },
    /// A pcapng block body shorter than its fixed part.
    BlockTooShort { need: usize, have: usize },
    /// An option (code `None`: an option header) longer than what is left of the list.
    OptionOverrun { code: Option<u16>, len: usize, left: usize },
    /// Packet data longer than the room left in its block.
    CaplenOverrunsBlock { caplen: u32, room: usize },
    /// A packet for an interface that the section has not described.
    UnknownInterface { id: u32, count: usize },
    /// More interfaces in one section than we keep.
    TooManyInterfaces { max: usize },
    /// The underlying reader failed.
    Io(io::Error),
}

impl fmt::Display for CaptureErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CaptureErrorKind as K;
        match self {
            K::TooShortForMagic { have: 0 } => f.write_str("the file is empty"),
            K::TooShortForMagic { have } => {
                write!(f, "only {have} bytes (expected at least a 4-byte magic)")
            }
            K::BadMagic { magic } => write!(f, "magic 0x{magic:08x}"),
            K::UnsupportedVersion { major, minor, expected } => {
                write!(f, "unsupported version {major}.{minor} (expected {expected})")
            }
            K::TruncatedHeader { need, have } => {
                write!(f, "header needs {need} bytes, {have} left in the file")
            }
            K::TruncatedData { need, have } => {
                write!(f, "header says {need} bytes, {have} left in the file")
            }
            K::CaplenOverSnaplen { caplen, snaplen } => {
                write!(f, "captured length {caplen} exceeds the snapshot length {snaplen}")
            }
            K::CaplenOverMax { caplen, max } => {
                write!(f, "captured length {caplen} exceeds the maximum record size {max}")
            }
            K::CaplenOverOrigLen { caplen, orig_len } => {
                write!(f, "captured length {caplen} exceeds the original length {orig_len}")
            }
            K::BadBlockLength { len, why } => write!(f, "block length {len} {why}"),
            K::TrailerMismatch { head, tail } => write!(
                f,
                "block length {head} is not repeated at the end of the block (found {tail})"
            ),
            K::BadByteOrderMagic { magic } => {
                write!(f, "byte-order magic 0x{magic:08x} (expected 1a2b3c4d or 4d3c2b1a)")
            }
            K::BlockTooShort { need, have } => {
                write!(f, "block body has {have} bytes, its fixed part needs {need}")
            }
            K::OptionOverrun { code: Some(code), len, left } => {
                write!(f, "option {code} of length {len} overruns its block ({left} bytes left)")
            }
            K::OptionOverrun { code: None, len, left } => {
                write!(f, "option header needs {len} bytes, {left} left in the block")
            }
            K::CaplenOverrunsBlock { caplen, room } => {
                write!(f, "captured length {caplen} overruns the block ({room} bytes of room)")
            }
            K::UnknownInterface { id, count } => {
                write!(f, "interface {id} is not described (the section has {count} interfaces)")
            }
            K::TooManyInterfaces { max } => {
                write!(f, "more than {max} interfaces in one section")
            }
            K::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

/// An error while reading a capture: where, and what.
#[derive(Debug)]
pub struct CaptureError {
    pub offset: u64, // byte offset of the record, block or header at fault
    pub location: Location,
    pub kind: CaptureErrorKind,
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (loc, off) = (self.location, self.offset);
        match &self.kind {
            CaptureErrorKind::BadMagic { .. } | CaptureErrorKind::TooShortForMagic { .. } => {
                write!(f, "not a pcap or pcapng file: {}", self.kind)?;
                if let CaptureErrorKind::BadMagic { .. } = self.kind {
                    write!(
                        f,
                        " at byte {off} (expected a1b2c3d4, a1b23c4d, a1b2cd34, 0a0d0d0a \
                         or their byte swaps)"
                    )?;
                }
                Ok(())
            }
            CaptureErrorKind::TruncatedHeader { .. } | CaptureErrorKind::TruncatedData { .. } => {
                write!(f, "truncated {loc} at byte {off}: {}", self.kind)
            }
            _ => write!(f, "{loc} at byte {off}: {}", self.kind),
        }
    }
}

impl std::error::Error for CaptureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            CaptureErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a record cannot be turned into an Ethernet frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToEthernetError {
    /// A link type with no well-defined Ethernet equivalent (for example 253, NETLINK).
    UnsupportedLinkType(u32),
    /// The link-layer header is cut short.
    Truncated { need: usize, have: usize },
    /// The link-layer header names a payload we cannot give an EtherType (an unknown
    /// address family or IP version, an 802.2 LLC frame in a cooked capture, ...).
    UnknownPayload { linktype: u32, value: u32 },
}

impl fmt::Display for ToEthernetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToEthernetError::UnsupportedLinkType(lt) => {
                write!(f, "link type {lt} cannot be replayed as Ethernet")
            }
            ToEthernetError::Truncated { need, have } => {
                write!(f, "link-layer header needs {need} bytes, the record has {have}")
            }
            ToEthernetError::UnknownPayload { linktype, value } => {
                write!(f, "link type {linktype}: payload type 0x{value:x} has no EtherType")
            }
        }
    }
}

impl std::error::Error for ToEthernetError {}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Linux `ARPHRD_NETLINK`: a cooked capture of netlink messages, not of packets.
const ARPHRD_NETLINK: u16 = 824;

/// Turns a record of a supported link type into an Ethernet frame.
///
/// - Ethernet (1) is returned as is, without copying.
/// - Linux SLL (113) and SLL2 (276), raw IP (101, 228, 229) and BSD loopback (0, and
///   OpenBSD's 108) get a synthetic 14-byte Ethernet header written into `scratch`: both
///   MAC addresses zero and the EtherType taken from the packet (the cooked header's
///   protocol, the IP version nibble, or the loopback address family), so that they can be
///   replayed into the datapath. Cooked captures of VLAN-tagged frames keep the tag, which
///   then follows the synthetic header as it would follow a real one.
/// - Every other link type is refused.
///
/// When the link type's FCS bits say frames end with a frame check sequence and the record
/// is complete (captured length = original length), the FCS is removed first.
pub fn to_ethernet<'b>(
    linktype: u32,
    data: &'b [u8],
    orig_len: u32,
    scratch: &'b mut Vec<u8>,
) -> Result<&'b [u8], ToEthernetError> {
    let fcs = fcs_len(linktype);
    let data = if fcs > 0 && data.len() as u64 == u64::from(orig_len) && data.len() >= fcs {
        &data[..data.len() - fcs]
    } else {
        data
    };
    let base = linktype_base(linktype);
    let need = |n: usize| -> Result<(), ToEthernetError> {
        if data.len() < n {
            Err(ToEthernetError::Truncated { need: n, have: data.len() })
        } else {
            Ok(())
        }
    };
    let be16 = |at: usize| u16::from_be_bytes([data[at], data[at + 1]]);
    let unknown = |value: u32| ToEthernetError::UnknownPayload { linktype: base, value };
    let (ethertype, payload) = match base {
        linktype::ETHERNET => return Ok(data),
        linktype::NULL | linktype::LOOP => {
            need(4)?;
            let raw = [data[0], data[1], data[2], data[3]];
            let mut family = if base == linktype::LOOP {
                u32::from_be_bytes(raw)
            } else {
                u32::from_le_bytes(raw)
            };
            // NULL uses the capturing host's byte order; families are small numbers, so
            // a value with high bits set was written in the other order.
            if family & 0xffff_0000 != 0 {
                family = family.swap_bytes();
            }
            // AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD, OpenBSD), 28 (FreeBSD),
            // 30 (macOS) or 10 (Linux).
            let ethertype = match family {
                2 => ETHERTYPE_IPV4,
                10 | 24 | 28 | 30 => ETHERTYPE_IPV6,
                other => return Err(unknown(other)),
            };
            (ethertype, &data[4..])
        }
        linktype::RAW => {
            need(1)?;
            let ethertype = match data[0] >> 4 {
                4 => ETHERTYPE_IPV4,
                6 => ETHERTYPE_IPV6,
                other => return Err(unknown(u32::from(other))),
            };
            (ethertype, data)
        }
        linktype::IPV4 => (ETHERTYPE_IPV4, data),
        linktype::IPV6 => (ETHERTYPE_IPV6, data),
        linktype::LINUX_SLL | linktype::LINUX_SLL2 => {
            // SLL: type u16, ARPHRD u16, addr len u16, addr [8], protocol u16.
            // SLL2: protocol u16, reserved u16, ifindex u32, ARPHRD u16, type u8,
            // addr len u8, addr [8].
            let (header_len, proto_at, hatype_at) =
                if base == linktype::LINUX_SLL { (16, 14, 2) } else { (20, 0, 8) };
            need(header_len)?;
            let proto = be16(proto_at);
            if be16(hatype_at) == ARPHRD_NETLINK || proto < 0x0600 {
                // Below 0x0600 the field is a Linux ETH_P_* pseudo-protocol (802.3, LLC,
                // CAN, ...), not an EtherType.
                return Err(unknown(u32::from(proto)));
            }
            (proto, &data[header_len..])
        }
        other => return Err(ToEthernetError::UnsupportedLinkType(other)),
    };
    scratch.clear();
    scratch.extend_from_slice(&[0u8; 12]);
    scratch.extend_from_slice(&ethertype.to_be_bytes());
    scratch.extend_from_slice(payload);
    Ok(&scratch[..])
}

/// Initial size of the buffer of a streaming reader.
const STREAM_BUF_LEN: usize = 64 * 1024;
/// Most interfaces kept per pcapng section (PB interface ids are 16-bit).
const MAX_INTERFACES: usize = 65_536;

/// A run of bytes handed out by [`Source::take`], valid until the next `take` or `skip`.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    len: usize,
}

/// Where bytes come from: a slice (zero copy) or a reader behind one reusable buffer.
enum Source<'a> {
    Slice {
        data: &'a [u8],
        pos: usize, // next unread byte; pos <= data.len()
    },
    Stream {
        inner: Box<dyn Read + 'a>,
        buf: Vec<u8>,
        start: usize, // unread bytes are buf[start..end]
        end: usize,
        eof: bool, // the reader returned 0
    },
}

impl Source<'_> {
    /// Consumes up to `n` bytes; fewer only at the end of the input.
    fn take(&mut self, n: usize) -> io::Result<Span> {
        match self {
            Source::Slice { data, pos } => {
                let len = n.min(data.len() - *pos);
                let span = Span { start: *pos, len };
                *pos += len;
                Ok(span)
            }
            Source::Stream { inner, buf, start, end, eof } => {
                if *end - *start < n && !*eof {
                    buf.copy_within(*start..*end, 0);
                    *end -= *start;
                    *start = 0;
                    if buf.len() < n {
                        buf.resize(n, 0);
                    }
                    while *end < n {
                        match inner.read(&mut buf[*end..]) {
                            Ok(0) => {
                                *eof = true;
                                break;
                            }
                            Ok(k) => *end += k,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                let len = n.min(*end - *start);
                let span = Span { start: *start, len };
                *start += len;
                Ok(span)
            }
        }
    }

    /// The bytes of the last span taken.
    fn bytes(&self, span: Span) -> &[u8] {
        match self {
            Source::Slice { data, .. } => &data[span.start..span.start + span.len],
            Source::Stream { buf, .. } => &buf[span.start..span.start + span.len],
        }
    }

    /// Consumes up to `n` bytes without keeping them; returns how many there were.
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        match self {
            Source::Slice { data, pos } => {
                let len = n.min((data.len() - *pos) as u64);
                *pos += len as usize;
                Ok(len)
            }
            Source::Stream { inner, start, end, eof, .. } => {
                let buffered = n.min((*end - *start) as u64);
                *start += buffered as usize;
                let rest = n - buffered;
                if rest == 0 || *eof {
                    return Ok(buffered);
                }
                let skipped = io::copy(&mut inner.as_mut().take(rest), &mut io::sink())?;
                if skipped < rest {
                    *eof = true;
                }
                Ok(buffered + skipped)
            }
        }
    }
}

/// State of a pcapng file: the current section.
struct NgState {
    big_endian: bool,
    interfaces: Vec<Interface>,
    sections: u64,   // sections started so far
    last_ts_ns: u64, // timestamp of the last record, given to SPBs
}

/// The format-specific state.
enum State {
    Pcap(PcapHeader),
    Pcapng(NgState),
}

/// A packet found by the pcapng block loop, to be turned into a [`Record`].
struct Found {
    span: Span,
    data_start: usize,
    caplen: usize,
    ts_ns: u64,
    orig_len: u32,
    linktype: u32,
    interface: u32,
}

/// A streaming reader of classic pcap and pcapng files.
pub struct CaptureReader<'a> {
    src: Source<'a>,
    offset: u64,  // file offset of the next unread byte
    records: u64, // records delivered so far
    state: State,
    finished: bool, // end of file or an error was reported
}

impl<'a> CaptureReader<'a> {
    /// Opens a capture from a reader and reads its header (classic pcap) or first section
    /// header (pcapng). The reader is read in large chunks, so it need not be buffered.
    pub fn new<R: Read + 'a>(reader: R) -> Result<CaptureReader<'a>, CaptureError> {
        CaptureReader::open(Source::Stream {
            inner: Box::new(reader),
            buf: vec![0; STREAM_BUF_LEN],
            start: 0,
            end: 0,
            eof: false,
        })
    }

    /// Opens a capture held in memory; records borrow from `data` without copying.
    pub fn from_bytes(data: &'a [u8]) -> Result<CaptureReader<'a>, CaptureError> {
        CaptureReader::open(Source::Slice { data, pos: 0 })
    }

    fn open(src: Source<'a>) -> Result<CaptureReader<'a>, CaptureError> {
        let mut r = CaptureReader {
            src,
            offset: 0,
            records: 0,
            state: State::Pcap(PcapHeader::for_writing(pcap::TsResolution::Micro)),
            finished: false,
        };
        let head = r.take(4, Location::FileHeader, 0)?;
        let b = r.src.bytes(head);
        if b.len() < 4 {
            return Err(r.error(
                0,
                Location::FileHeader,
                CaptureErrorKind::TooShortForMagic { have: b.len() },
            ));
        }
        let magic = [b[0], b[1], b[2], b[3]];
        let magic_le = u32::from_le_bytes(magic);
        if magic_le == pcapng::BLOCK_SHB {
            r.state = State::Pcapng(NgState {
                big_endian: false,
                interfaces: Vec::new(),
                sections: 0,
                last_ts_ns: 0,
            });
            let len = r.take(4, Location::Block(pcapng::block_name(magic_le)), 0)?;
            let lb = r.src.bytes(len);
            if lb.len() < 4 {
                return Err(r.error(
                    0,
                    Location::Block("section header block"),
                    CaptureErrorKind::TruncatedHeader { need: 8, have: 4 + lb.len() as u64 },
                ));
            }
            let len_raw = [lb[0], lb[1], lb[2], lb[3]];
            r.block(0, magic, len_raw)?;
        } else if pcap::is_pcap_magic(magic_le) {
            let rest = r.take(pcap::FILE_HEADER_LEN - 4, Location::FileHeader, 0)?;
            let rb = r.src.bytes(rest);
            if rb.len() < pcap::FILE_HEADER_LEN - 4 {
                return Err(r.error(
                    0,
                    Location::FileHeader,
                    CaptureErrorKind::TruncatedHeader {
                        need: pcap::FILE_HEADER_LEN as u64,
                        have: 4 + rb.len() as u64,
                    },
                ));
            }
            let mut h = [0u8; pcap::FILE_HEADER_LEN];
            h[..4].copy_from_slice(&magic);
            h[4..].copy_from_slice(rb);
            let header = PcapHeader::parse(&h).map_err(|k| r.error(0, Location::FileHeader, k))?;
            r.state = State::Pcap(header);
        } else {
            let magic = u32::from_be_bytes(magic);
            return Err(r.error(0, Location::FileHeader, CaptureErrorKind::BadMagic { magic }));
        }
        Ok(r)
    }

    /// The container format.
    pub fn format(&self) -> Format {
        match self.state {
            State::Pcap(_) => Format::Pcap,
            State::Pcapng(_) => Format::Pcapng,
        }
    }

    /// The file header of a classic pcap file (byte order, resolution, snaplen, link type).
    pub fn pcap_header(&self) -> Option<&PcapHeader> {
        match &self.state {
            State::Pcap(h) => Some(h),
            State::Pcapng(_) => None,
        }
    }

    /// Number of pcapng sections seen so far (0 for classic pcap).
    pub fn sections(&self) -> u64 {
        match &self.state {
            State::Pcap(_) => 0,
            State::Pcapng(ng) => ng.sections,
        }
    }

    /// Number of records delivered so far.
    pub fn records_read(&self) -> u64 {
        self.records
    }

    /// Byte offset of the next unread byte.
    pub fn byte_offset(&self) -> u64 {
        self.offset
    }

    /// The next record, `Ok(None)` at the end of the file. The record borrows the reader's
    /// buffer (or the input slice) until the next call.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, CaptureError> {
        if self.finished {
            return Ok(None);
        }
        let found = match self.next_found() {
            Ok(Some(f)) => f,
            Ok(None) => {
                self.finished = true;
                return Ok(None);
            }
            Err(e) => {
                self.finished = true;
                return Err(e);
            }
        };
        self.records += 1;
        let bytes = self.src.bytes(found.span);
        Ok(Some(Record {
            ts_ns: found.ts_ns,
            data: &bytes[found.data_start..found.data_start + found.caplen],
            orig_len: found.orig_len,
            linktype: found.linktype,
            interface: found.interface,
        }))
    }

    fn next_found(&mut self) -> Result<Option<Found>, CaptureError> {
        match self.state {
            State::Pcap(header) => self.next_pcap(&header),
            State::Pcapng(_) => loop {
                let start = self.offset;
                let loc = Location::Block("block");
                let head = self.take(8, loc, start)?;
                let hb = self.src.bytes(head);
                if hb.is_empty() {
                    return Ok(None);
                }
                if hb.len() < 8 {
                    let have = hb.len() as u64;
                    return Err(self.error(
                        start,
                        loc,
                        CaptureErrorKind::TruncatedHeader { need: 8, have },
                    ));
                }
                let type_raw = [hb[0], hb[1], hb[2], hb[3]];
                let len_raw = [hb[4], hb[5], hb[6], hb[7]];
                if let Some(found) = self.block(start, type_raw, len_raw)? {
                    return Ok(Some(found));
                }
            },
        }
    }

    fn next_pcap(&mut self, header: &PcapHeader) -> Result<Option<Found>, CaptureError> {
        let start = self.offset;
        let loc = Location::Record(self.records + 1);
        let hlen = header.record_header_len();
        let span = self.take(hlen, loc, start)?;
        let hb = self.src.bytes(span);
        if hb.is_empty() {
            return Ok(None);
        }
        let Ok(fixed) = <[u8; pcap::RECORD_HEADER_LEN]>::try_from(&hb[..hb.len().min(16)]) else {
            let have = hb.len() as u64;
            return Err(self.error(
                start,
                loc,
                CaptureErrorKind::TruncatedHeader { need: hlen as u64, have },
            ));
        };
        if hb.len() < hlen {
            let have = hb.len() as u64;
            return Err(self.error(
                start,
                loc,
                CaptureErrorKind::TruncatedHeader { need: hlen as u64, have },
            ));
        }
        let rec = header.parse_record(&fixed);
        let limit = header.record_limit();
        if rec.caplen > limit {
            let kind = if limit == header.snaplen {
                CaptureErrorKind::CaplenOverSnaplen { caplen: rec.caplen, snaplen: limit }
            } else {
                CaptureErrorKind::CaplenOverMax { caplen: rec.caplen, max: limit }
            };
            return Err(self.error(start, loc, kind));
        }
        if rec.caplen > rec.orig_len {
            return Err(self.error(
                start,
                loc,
                CaptureErrorKind::CaplenOverOrigLen { caplen: rec.caplen, orig_len: rec.orig_len },
            ));
        }
        let caplen = rec.caplen as usize;
        let span = self.take(caplen, loc, start)?;
        if span.len < caplen {
            return Err(self.error(
                start,
                loc,
                CaptureErrorKind::TruncatedData {
                    need: u64::from(rec.caplen),
                    have: span.len as u64,
                },
            ));
        }
        Ok(Some(Found {
            span,
            data_start: 0,
            caplen,
            ts_ns: header.ts_ns(&rec),
            orig_len: rec.orig_len,
            linktype: header.linktype,
            interface: 0,
        }))
    }

    /// Reads the rest of a pcapng block whose 8-byte header starts at `start`: updates the
    /// section state for an SHB or IDB, returns the packet of an EPB, SPB or PB, skips
    /// anything else.
    fn block(
        &mut self,
        start: u64,
        type_raw: [u8; 4],
        len_raw: [u8; 4],
    ) -> Result<Option<Found>, CaptureError> {
        let State::Pcapng(ng) = &self.state else {
            return Ok(None);
        };
        let mut big_endian = ng.big_endian;
        let rd = |raw: [u8; 4], be: bool| {
            if be {
                u32::from_be_bytes(raw)
            } else {
                u32::from_le_bytes(raw)
            }
        };
        let block_type = rd(type_raw, big_endian);
        let name = pcapng::block_name(block_type);
        let is_packet =
            matches!(block_type, pcapng::BLOCK_EPB | pcapng::BLOCK_SPB | pcapng::BLOCK_PB);
        let loc = if is_packet {
            Location::PacketBlock(self.records + 1, name)
        } else {
            Location::Block(name)
        };
        let mut consumed = 8u32;
        if block_type == pcapng::BLOCK_SHB {
            // The byte-order magic comes before we can read the length.
            let span = self.take(4, loc, start)?;
            let b = self.src.bytes(span);
            if b.len() < 4 {
                let have = 8 + b.len() as u64;
                return Err(self.error(
                    start,
                    loc,
                    CaptureErrorKind::TruncatedHeader { need: 12, have },
                ));
            }
            let magic = [b[0], b[1], b[2], b[3]];
            big_endian = pcapng::byte_order(magic).ok_or_else(|| {
                let magic = u32::from_be_bytes(magic);
                self.error(start, loc, CaptureErrorKind::BadByteOrderMagic { magic })
            })?;
            consumed = 12;
        }
        let total_len = rd(len_raw, big_endian);
        let min = if block_type == pcapng::BLOCK_SHB {
            pcapng::MIN_SHB_LEN
        } else {
            pcapng::MIN_BLOCK_LEN
        };
        let bad_len = |why| CaptureErrorKind::BadBlockLength { len: total_len, why };
        if total_len < min {
            let why = if min == pcapng::MIN_SHB_LEN {
                "is below the minimum of 28 for a section header"
            } else {
                "is below the minimum of 12"
            };
            return Err(self.error(start, loc, bad_len(why)));
        }
        if !total_len.is_multiple_of(4) {
            return Err(self.error(start, loc, bad_len("is not a multiple of 4")));
        }
        let rest = (total_len - consumed) as usize; // body after what we read, plus trailer
        let keep = is_packet || matches!(block_type, pcapng::BLOCK_SHB | pcapng::BLOCK_IDB);
        if !keep {
            let skipped = self.skip(rest as u64 - 4, loc, start)?;
            let tail = self.take(4, loc, start)?;
            let got = skipped + tail.len as u64;
            if got < rest as u64 {
                return Err(self.error(
                    start,
                    loc,
                    CaptureErrorKind::TruncatedData {
                        need: u64::from(total_len),
                        have: u64::from(consumed) + got,
                    },
                ));
            }
            let tb = self.src.bytes(tail);
            let tail_len = rd([tb[0], tb[1], tb[2], tb[3]], big_endian);
            if tail_len != total_len {
                return Err(self.error(
                    start,
                    loc,
                    CaptureErrorKind::TrailerMismatch { head: total_len, tail: tail_len },
                ));
            }
            return Ok(None);
        }
        if total_len > pcapng::MAX_BLOCK_LEN {
            return Err(self.error(start, loc, bad_len("is above the 16 MiB limit")));
        }
        let span = self.take(rest, loc, start)?;
        if span.len < rest {
            return Err(self.error(
                start,
                loc,
                CaptureErrorKind::TruncatedData {
                    need: u64::from(total_len),
                    have: u64::from(consumed) + span.len as u64,
                },
            ));
        }
        let all = self.src.bytes(span);
        let body = &all[..rest - 4];
        let t = &all[rest - 4..];
        let tail_len = rd([t[0], t[1], t[2], t[3]], big_endian);
        let State::Pcapng(ng) = &mut self.state else {
            return Ok(None);
        };
        // Decode first, then check the trailer: a broken option says more than the length
        // mismatch that usually comes with it.
        let decoded: Result<Option<Found>, CaptureErrorKind> = match block_type {
            pcapng::BLOCK_SHB => pcapng::parse_shb(body, big_endian).map(|_| {
                ng.big_endian = big_endian;
                ng.interfaces.clear();
                ng.sections += 1;
                None
            }),
            pcapng::BLOCK_IDB => match pcapng::parse_idb(body, big_endian) {
                Ok(_) if ng.interfaces.len() >= MAX_INTERFACES => {
                    Err(CaptureErrorKind::TooManyInterfaces { max: MAX_INTERFACES })
                }
                Ok(iface) => {
                    ng.interfaces.push(iface);
                    Ok(None)
                }
                Err(e) => Err(e),
            },
            _ => packet(ng, block_type, body, big_endian).map(|(p, ts_ns, iface)| {
                Some(Found {
                    span,
                    data_start: p.data_start,
                    caplen: p.caplen as usize,
                    ts_ns,
                    orig_len: p.orig_len,
                    linktype: iface.linktype,
                    interface: p.interface,
                })
            }),
        };
        let decoded = decoded.and_then(|d| {
            if tail_len != total_len {
                Err(CaptureErrorKind::TrailerMismatch { head: total_len, tail: tail_len })
            } else {
                Ok(d)
            }
        });
        let found = decoded.map_err(|k| self.error(start, loc, k))?;
        if let (Some(f), State::Pcapng(ng)) = (&found, &mut self.state) {
            ng.last_ts_ns = f.ts_ns;
        }
        Ok(found)
    }

    /// `take` with I/O errors located; advances the offset.
    fn take(&mut self, n: usize, loc: Location, start: u64) -> Result<Span, CaptureError> {
        match self.src.take(n) {
            Ok(span) => {
                self.offset += span.len as u64;
                Ok(span)
            }
            Err(e) => Err(self.error(start, loc, CaptureErrorKind::Io(e))),
        }
    }

    /// `skip` with I/O errors located; advances the offset.
    fn skip(&mut self, n: u64, loc: Location, start: u64) -> Result<u64, CaptureError> {
        match self.src.skip(n) {
            Ok(k) => {
                self.offset += k;
                Ok(k)
            }
            Err(e) => Err(self.error(start, loc, CaptureErrorKind::Io(e))),
        }
    }

    fn error(&self, offset: u64, location: Location, kind: CaptureErrorKind) -> CaptureError {
        CaptureError { offset, location, kind }
    }
}

/// Decodes a packet block against the section's interfaces: the packet, its timestamp in
/// ns and its interface.
fn packet(
    ng: &NgState,
    block_type: u32,
    body: &[u8],
    big_endian: bool,
) -> Result<(pcapng::PacketBlock, u64, Interface), CaptureErrorKind> {
    let count = ng.interfaces.len();
    let p = if block_type == pcapng::BLOCK_SPB {
        let first = ng.interfaces.first();
        let first = first.ok_or(CaptureErrorKind::UnknownInterface { id: 0, count })?;
        pcapng::parse_spb(body, big_endian, first.snaplen)?
    } else {
        pcapng::parse_epb_or_pb(block_type, body, big_endian)?
    };
    let iface = *ng
        .interfaces
        .get(p.interface as usize)
        .ok_or(CaptureErrorKind::UnknownInterface { id: p.interface, count })?;
    if p.caplen > p.orig_len {
        return Err(CaptureErrorKind::CaplenOverOrigLen { caplen: p.caplen, orig_len: p.orig_len });
    }
    let ts_ns = p.ts_ticks.map_or(ng.last_ts_ns, |t| iface.ts_ns(t));
    Ok((p, ts_ns, iface))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::pcap::{PcapWriter, TsResolution};

    /// Reads every record of a capture held in memory, in memory and through a reader that
    /// returns 7 bytes at a time; checks both agree and returns the records (owned) and the
    /// final error, if any.
    /// A record, owned: ts_ns, data, orig_len, linktype, interface.
    type Owned = (u64, Vec<u8>, u32, u32, u32);

    fn read_all(bytes: &[u8]) -> (Vec<Owned>, Option<String>) {
        let mut out = Vec::new();
        let mut err = None;
        match CaptureReader::from_bytes(bytes) {
            Err(e) => err = Some(e.to_string()),
            Ok(mut r) => loop {
                match r.next_record() {
                    Ok(Some(rec)) => out.push((
                        rec.ts_ns,
                        rec.data.to_vec(),
                        rec.orig_len,
                        rec.linktype,
                        rec.interface,
                    )),
                    Ok(None) => break,
                    Err(e) => {
                        err = Some(e.to_string());
                        // Fused: an error ends the stream.
                        assert!(r.next_record().unwrap().is_none());
                        break;
                    }
                }
            },
        }
        let mut streamed = Vec::new();
        let mut serr = None;
        match CaptureReader::new(Trickle { data: bytes, pos: 0 }) {
            Err(e) => serr = Some(e.to_string()),
            Ok(mut r) => loop {
                match r.next_record() {
                    Ok(Some(rec)) => streamed.push((
                        rec.ts_ns,
                        rec.data.to_vec(),
                        rec.orig_len,
                        rec.linktype,
                        rec.interface,
                    )),
                    Ok(None) => break,
                    Err(e) => {
                        serr = Some(e.to_string());
                        break;
                    }
                }
            },
        }
        assert_eq!(out, streamed, "streaming and in-memory reads differ");
        assert_eq!(err, serr, "streaming and in-memory errors differ");
        (out, err)
    }

    /// A reader that hands out at most 7 bytes per call, to exercise buffer refills.
    struct Trickle<'a> {
        data: &'a [u8],
        pos: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(7).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    /// Builds a classic pcap file.
    struct PcapFile {
        be: bool,
        kuznetzov: bool,
        bytes: Vec<u8>,
    }

    impl PcapFile {
        fn new(magic: u32, be: bool, snaplen: u32, linktype: u32) -> PcapFile {
            let mut f = PcapFile { be, kuznetzov: magic == pcap::MAGIC_KUZNETZOV, bytes: vec![] };
            f.u32(magic);
            f.u16(2);
            f.u16(4);
            f.u32(0); // thiszone
            f.u32(0); // sigfigs
            f.u32(snaplen);
            f.u32(linktype);
            f
        }
        fn u32(&mut self, v: u32) {
            let b = if self.be { v.to_be_bytes() } else { v.to_le_bytes() };
            self.bytes.extend_from_slice(&b);
        }
        fn u16(&mut self, v: u16) {
            let b = if self.be { v.to_be_bytes() } else { v.to_le_bytes() };
            self.bytes.extend_from_slice(&b);
        }
        fn record(&mut self, sec: u32, frac: u32, data: &[u8], orig_len: u32) -> &mut Self {
            self.u32(sec);
            self.u32(frac);
            self.u32(data.len() as u32);
            self.u32(orig_len);
            if self.kuznetzov {
                self.bytes.extend_from_slice(&[0, 0, 0, 3, 0x08, 0x00, 0, 0]);
            }
            self.bytes.extend_from_slice(data);
            self
        }
    }

    #[test]
    fn pcap_every_magic_in_both_byte_orders() {
        let cases =
            [(pcap::MAGIC_USEC, 1_000u64), (pcap::MAGIC_NSEC, 1), (pcap::MAGIC_KUZNETZOV, 1_000)];
        for (magic, unit) in cases {
            for be in [false, true] {
                let mut f = PcapFile::new(magic, be, 65535, 1);
                f.record(10, 20, &[1, 2, 3], 3).record(11, 999_999, &[4; 60], 64);
                let (recs, err) = read_all(&f.bytes);
                assert_eq!(err, None, "magic {magic:x} be {be}");
                assert_eq!(recs.len(), 2);
                assert_eq!(recs[0], (10_000_000_000 + 20 * unit, vec![1, 2, 3], 3, 1, 0));
                assert_eq!(recs[1].0, 11_000_000_000 + 999_999 * unit);
                assert_eq!((recs[1].1.len(), recs[1].2), (60, 64));
                let r = CaptureReader::from_bytes(&f.bytes).unwrap();
                assert_eq!(r.format(), Format::Pcap);
                let h = r.pcap_header().unwrap();
                assert_eq!((h.big_endian, h.snaplen, h.linktype), (be, 65535, 1));
            }
        }
    }

    #[test]
    fn header_only_is_zero_records_and_empty_file_is_an_error() {
        let f = PcapFile::new(pcap::MAGIC_USEC, false, 0, 1);
        assert_eq!(read_all(&f.bytes), (vec![], None));
        let (_, err) = read_all(&[]);
        assert_eq!(err.unwrap(), "not a pcap or pcapng file: the file is empty");
        let (_, err) = read_all(&[0xd4, 0xc3]);
        assert_eq!(
            err.unwrap(),
            "not a pcap or pcapng file: only 2 bytes (expected at least a 4-byte magic)"
        );
        let (_, err) = read_all(&f.bytes[..10]);
        assert_eq!(
            err.unwrap(),
            "truncated pcap file header at byte 0: header needs 24 bytes, 10 left in the file"
        );
    }

    #[test]
    fn bad_magic_message() {
        let (_, err) = read_all(&[0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0]);
        assert_eq!(
            err.unwrap(),
            "not a pcap or pcapng file: magic 0x12345678 at byte 0 (expected a1b2c3d4, \
             a1b23c4d, a1b2cd34, 0a0d0d0a or their byte swaps)"
        );
    }

    #[test]
    fn oversize_records_are_errors_after_the_good_ones() {
        let mut f = PcapFile::new(pcap::MAGIC_USEC, false, 65535, 1);
        f.record(1, 0, &[0; 20], 20);
        let mut bad = f.bytes.clone();
        // Record 2 at byte 60 claims 70000 bytes.
        let mut g = PcapFile { be: false, kuznetzov: false, bytes: vec![] };
        g.u32(2);
        g.u32(0);
        g.u32(70_000);
        g.u32(70_000);
        bad.extend_from_slice(&g.bytes);
        let (recs, err) = read_all(&bad);
        assert_eq!(recs.len(), 1);
        assert_eq!(
            err.unwrap(),
            "record 2 at byte 60: captured length 70000 exceeds the snapshot length 65535"
        );
        // snaplen 0: the limit is 262144.
        let mut f = PcapFile::new(pcap::MAGIC_USEC, false, 0, 1);
        f.u32(0);
        f.u32(0);
        f.u32(300_000);
        f.u32(300_000);
        let (_, err) = read_all(&f.bytes);
        assert_eq!(
            err.unwrap(),
            "record 1 at byte 24: captured length 300000 exceeds the maximum record size 262144"
        );
        // caplen > orig_len.
        let mut f = PcapFile::new(pcap::MAGIC_USEC, false, 0, 1);
        f.record(1, 0, &[0; 20], 19);
        let (recs, err) = read_all(&f.bytes);
        assert!(recs.is_empty());
        assert_eq!(
            err.unwrap(),
            "record 1 at byte 24: captured length 20 exceeds the original length 19"
        );
    }

    #[test]
    fn cut_short_files_deliver_what_precedes_the_cut() {
        let mut f = PcapFile::new(pcap::MAGIC_USEC, false, 65535, 1);
        for i in 0..4u8 {
            f.record(u32::from(i), 0, &[i; 98], 98);
        }
        // Records are 114 bytes from byte 24: record 5 would start at byte 480.
        f.record(9, 0, &[9; 98], 98);
        let cut = &f.bytes[..480 + 16 + 40];
        let (recs, err) = read_all(cut);
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[3].1, vec![3; 98]);
        assert_eq!(
            err.unwrap(),
            "truncated record 5 at byte 480: header says 98 bytes, 40 left in the file"
        );
        let (recs, err) = read_all(&f.bytes[..480 + 7]);
        assert_eq!(recs.len(), 4);
        assert_eq!(
            err.unwrap(),
            "truncated record 5 at byte 480: header needs 16 bytes, 7 left in the file"
        );
    }

    /// A reader that fails after `ok` bytes.
    struct Failing {
        data: Vec<u8>,
        pos: usize,
        ok: usize,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pos >= self.ok {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.ok - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn io_errors_are_located_and_chained() {
        let mut f = PcapFile::new(pcap::MAGIC_USEC, false, 65535, 1);
        f.record(1, 0, &[1; 30], 30).record(2, 0, &[2; 30], 30);
        let mut r = CaptureReader::new(Failing { data: f.bytes, pos: 0, ok: 24 + 46 + 5 }).unwrap();
        assert_eq!(r.next_record().unwrap().unwrap().data, &[1; 30]);
        let e = r.next_record().unwrap_err();
        assert_eq!(e.to_string(), "record 2 at byte 70: read error: disk on fire");
        assert!(std::error::Error::source(&e).is_some());
    }

    /// Builds a pcapng file, one block at a time, in the byte order of the current section.
    struct NgFile {
        be: bool,
        bytes: Vec<u8>,
    }

    impl NgFile {
        fn new() -> NgFile {
            NgFile { be: false, bytes: vec![] }
        }
        fn w32(&self, v: u32) -> [u8; 4] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn w16(&self, v: u16) -> [u8; 2] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn block(&mut self, block_type: u32, body: &[u8]) -> &mut Self {
            let mut body = body.to_vec();
            while !body.len().is_multiple_of(4) {
                body.push(0);
            }
            let len = self.w32(body.len() as u32 + 12);
            let ty = self.w32(block_type);
            self.bytes.extend_from_slice(&ty);
            self.bytes.extend_from_slice(&len);
            self.bytes.extend_from_slice(&body);
            self.bytes.extend_from_slice(&len);
            self
        }
        fn shb(&mut self, be: bool) -> &mut Self {
            self.be = be;
            let mut body = self.w32(pcapng::BYTE_ORDER_MAGIC).to_vec();
            body.extend_from_slice(&self.w16(1));
            body.extend_from_slice(&self.w16(0));
            body.extend_from_slice(&[0xff; 8]); // section length -1
            body.extend_from_slice(&self.w16(4)); // shb_userappl
            body.extend_from_slice(&self.w16(5));
            body.extend_from_slice(b"test\0\0\0\0");
            body.extend_from_slice(&[0; 4]); // opt_endofopt
            self.block(pcapng::BLOCK_SHB, &body)
        }
        fn idb(&mut self, linktype: u16, snaplen: u32, tsresol: Option<u8>) -> &mut Self {
            let mut body = self.w16(linktype).to_vec();
            body.extend_from_slice(&[0, 0]);
            body.extend_from_slice(&self.w32(snaplen));
            if let Some(r) = tsresol {
                body.extend_from_slice(&self.w16(9));
                body.extend_from_slice(&self.w16(1));
                body.extend_from_slice(&[r, 0, 0, 0]);
            }
            self.block(pcapng::BLOCK_IDB, &body)
        }
        fn epb(&mut self, iface: u32, ticks: u64, data: &[u8], orig: u32) -> &mut Self {
            let mut body = self.w32(iface).to_vec();
            body.extend_from_slice(&self.w32((ticks >> 32) as u32));
            body.extend_from_slice(&self.w32(ticks as u32));
            body.extend_from_slice(&self.w32(data.len() as u32));
            body.extend_from_slice(&self.w32(orig));
            body.extend_from_slice(data);
            self.block(pcapng::BLOCK_EPB, &body)
        }
    }

    #[test]
    fn pcapng_sections_interfaces_and_resolutions() {
        let mut f = NgFile::new();
        f.shb(false).idb(1, 0, None).idb(113, 128, Some(9)).idb(1, 0, Some(0x80 | 10));
        f.epb(0, 1_500_000, &[1; 14], 14); // µs
        f.epb(1, 7, &[2; 20], 20); // ns
        f.epb(2, 3 * 1024 + 512, &[3; 15], 15); // 2^-10 s
        f.block(pcapng::BLOCK_NRB, &[0; 4]);
        f.block(pcapng::BLOCK_ISB, &[0; 12]);
        f.block(pcapng::BLOCK_DSB, &[0; 9]);
        f.block(0x0bad_1dea, &[1, 2, 3]);
        let spb_body = [f.w32(40).to_vec(), vec![4; 16]].concat();
        // 16 bytes of room for 40 bytes on the wire.
        f.block(pcapng::BLOCK_SPB, &spb_body);
        // Obsolete PB: interface u16, drops u16, ts, caplen, origlen, data.
        let mut pb = [f.w16(1), f.w16(0)].concat();
        for v in [0, 99, 5, 5] {
            pb.extend_from_slice(&f.w32(v));
        }
        pb.extend_from_slice(&[5; 5]);
        f.block(pcapng::BLOCK_PB, &pb);
        // A big-endian section: interface ids restart at 0.
        f.shb(true).idb(276, 0, Some(3));
        f.epb(0, 42, &[6; 21], 30);
        let (recs, err) = read_all(&f.bytes);
        assert_eq!(err, None);
        let summary: Vec<_> = recs.iter().map(|r| (r.0, r.1.len(), r.2, r.3, r.4)).collect();
        assert_eq!(
            summary,
            vec![
                (1_500_000_000, 14, 14, 1, 0),
                (7, 20, 20, 113, 1),
                (3_500_000_000, 15, 15, 1, 2),
                (3_500_000_000, 16, 40, 1, 0), // SPB: previous timestamp, room-limited
                (99, 5, 5, 113, 1),
                (42_000_000, 21, 30, 276, 0),
            ]
        );
        assert_eq!(recs[5].1, vec![6; 21]);
        let mut r = CaptureReader::from_bytes(&f.bytes).unwrap();
        assert_eq!(r.format(), Format::Pcapng);
        while r.next_record().unwrap().is_some() {}
        assert_eq!(r.sections(), 2);
        assert_eq!(r.records_read(), 6);
        assert_eq!(r.byte_offset(), f.bytes.len() as u64);
    }

    #[test]
    fn pcapng_spb_respects_interface_snaplen() {
        let mut f = NgFile::new();
        f.shb(false).idb(1, 10, None);
        f.block(pcapng::BLOCK_SPB, &[[64, 0, 0, 0].to_vec(), vec![7; 64]].concat());
        let (recs, err) = read_all(&f.bytes);
        assert_eq!(err, None);
        assert_eq!((recs[0].1.len(), recs[0].2), (10, 64));
    }

    #[test]
    fn pcapng_errors_are_located() {
        let mut base = NgFile::new();
        base.shb(false).idb(1, 0, None).epb(0, 1, &[1; 8], 8);
        let good = base.bytes.clone();
        assert_eq!(good.len(), 44 + 20 + 40);

        // A packet for interface 3.
        let mut f = NgFile { be: false, bytes: good.clone() };
        f.epb(3, 1, &[1; 8], 8);
        let (recs, err) = read_all(&f.bytes);
        assert_eq!(recs.len(), 1);
        assert_eq!(
            err.unwrap(),
            "record 2 (enhanced packet block) at byte 104: interface 3 is not described \
             (the section has 1 interfaces)"
        );

        // Trailer differs from the leading length.
        let mut bytes = good.clone();
        let n = bytes.len();
        bytes[n - 4] = 0x30;
        let (recs, err) = read_all(&bytes);
        assert!(recs.is_empty());
        assert_eq!(
            err.unwrap(),
            "record 1 (enhanced packet block) at byte 64: block length 40 is not repeated at \
             the end of the block (found 48)"
        );

        // Block length not a multiple of 4, and below 12.
        let mut bytes = good.clone();
        bytes.extend_from_slice(&[5, 0, 0, 0, 13, 0, 0, 0]);
        let (recs, err) = read_all(&bytes);
        assert_eq!(recs.len(), 1);
        assert_eq!(
            err.unwrap(),
            "interface statistics block at byte 104: block length 13 is not a multiple of 4"
        );
        let mut bytes = good.clone();
        bytes.extend_from_slice(&[0x99, 0, 0, 0, 8, 0, 0, 0]);
        assert_eq!(
            read_all(&bytes).1.unwrap(),
            "block at byte 104: block length 8 is below the minimum of 12"
        );

        // Cut inside a packet block, inside a skipped block, inside a block header.
        let mut f = NgFile { be: false, bytes: good.clone() };
        f.epb(0, 2, &[2; 40], 40);
        let (recs, err) = read_all(&f.bytes[..104 + 30]);
        assert_eq!(recs.len(), 1);
        assert_eq!(
            err.unwrap(),
            "truncated record 2 (enhanced packet block) at byte 104: header says 72 bytes, \
             30 left in the file"
        );
        let mut f = NgFile { be: false, bytes: good.clone() };
        f.block(pcapng::BLOCK_NRB, &[0; 100]);
        assert_eq!(
            read_all(&f.bytes[..154]).1.unwrap(),
            "truncated name resolution block at byte 104: header says 112 bytes, 50 left in \
             the file"
        );
        let mut bytes = good.clone();
        bytes.extend_from_slice(&[6, 0, 0]);
        assert_eq!(
            read_all(&bytes).1.unwrap(),
            "truncated block at byte 104: header needs 8 bytes, 3 left in the file"
        );

        // A second section with a broken byte-order magic.
        let mut bytes = good.clone();
        bytes.extend_from_slice(&[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 1, 2, 3, 4]);
        assert_eq!(
            read_all(&bytes).1.unwrap(),
            "section header block at byte 104: byte-order magic 0x01020304 (expected \
             1a2b3c4d or 4d3c2b1a)"
        );

        // Captured length above the original length.
        let mut f = NgFile { be: false, bytes: good[..64].to_vec() };
        f.epb(0, 1, &[1; 8], 4);
        assert_eq!(
            read_all(&f.bytes).1.unwrap(),
            "record 1 (enhanced packet block) at byte 64: captured length 8 exceeds the \
             original length 4"
        );

        // A packet before any interface, and an SPB with no interface 0.
        let mut f = NgFile::new();
        f.shb(false).block(pcapng::BLOCK_SPB, &[4, 0, 0, 0, 1, 2, 3, 4]);
        assert_eq!(
            read_all(&f.bytes).1.unwrap(),
            "record 1 (simple packet block) at byte 44: interface 0 is not described (the \
             section has 0 interfaces)"
        );

        // An unsupported pcapng version.
        let mut f = NgFile::new();
        f.shb(false);
        f.bytes[12] = 2;
        assert_eq!(
            read_all(&f.bytes).1.unwrap(),
            "section header block at byte 0: unsupported version 2.0 (expected 1.0)"
        );
    }

    #[test]
    fn every_prefix_and_corruption_of_a_small_file_is_handled() {
        let mut f = NgFile::new();
        f.shb(false).idb(1, 0, Some(9)).epb(0, 5, &[1; 9], 9);
        f.block(pcapng::BLOCK_SPB, &[3, 0, 0, 0, 1, 2, 3]);
        let mut p = PcapFile::new(pcap::MAGIC_KUZNETZOV, true, 100, 1);
        p.record(1, 2, &[3; 10], 10).record(3, 4, &[5; 7], 9);
        for file in [f.bytes, p.bytes] {
            for cut in 0..file.len() {
                // Never panics, and the two read paths agree (checked inside read_all).
                let _ = read_all(&file[..cut]);
            }
            for i in 0..file.len() {
                for v in [0x00, 0xff, 0x80, 0x01] {
                    let mut b = file.clone();
                    b[i] = v;
                    let _ = read_all(&b);
                }
            }
        }
    }

    #[test]
    fn to_ethernet_synthesizes_headers() {
        let ip4 = [0x45u8, 0, 0, 20];
        let ip6 = [0x60u8, 0, 0, 0];
        let mut s = Vec::new();
        let eth = |et: [u8; 2], payload: &[u8]| {
            let mut v = vec![0u8; 12];
            v.extend_from_slice(&et);
            v.extend_from_slice(payload);
            v
        };
        assert_eq!(to_ethernet(101, &ip4, 4, &mut s).unwrap(), eth([8, 0], &ip4));
        assert_eq!(to_ethernet(101, &ip6, 4, &mut s).unwrap(), eth([0x86, 0xdd], &ip6));
        assert_eq!(to_ethernet(228, &ip6, 4, &mut s).unwrap(), eth([8, 0], &ip6));
        assert_eq!(to_ethernet(229, &ip4, 4, &mut s).unwrap(), eth([0x86, 0xdd], &ip4));
        assert_eq!(
            to_ethernet(101, &[0x50], 1, &mut s),
            Err(ToEthernetError::UnknownPayload { linktype: 101, value: 5 })
        );
        assert_eq!(
            to_ethernet(101, &[], 0, &mut s),
            Err(ToEthernetError::Truncated { need: 1, have: 0 })
        );
        // NULL: AF_INET written little-endian and big-endian, AF_INET6 as on FreeBSD.
        for (family, et) in [
            ([2, 0, 0, 0], [8, 0]),
            ([0, 0, 0, 2], [8, 0]),
            ([28, 0, 0, 0], [0x86, 0xdd]),
            ([0, 0, 0, 30], [0x86, 0xdd]),
        ] {
            let rec = [&family[..], &ip4[..]].concat();
            assert_eq!(to_ethernet(0, &rec, 8, &mut s).unwrap(), eth(et, &ip4));
        }
        assert_eq!(to_ethernet(108, &[0, 0, 0, 2, 0x45], 5, &mut s).unwrap(), eth([8, 0], &[0x45]));
        assert_eq!(
            to_ethernet(0, &[7, 0, 0, 0], 4, &mut s),
            Err(ToEthernetError::UnknownPayload { linktype: 0, value: 7 })
        );
        // SLL: outgoing, ARPHRD_ETHER, 6-byte address, protocol 0x0806.
        let mut sll = vec![0, 4, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x06];
        sll.extend_from_slice(&[0xaa; 28]);
        assert_eq!(to_ethernet(113, &sll, 44, &mut s).unwrap(), eth([8, 6], &[0xaa; 28]));
        sll[14..16].copy_from_slice(&[0, 4]); // ETH_P_802_2: LLC, no EtherType
        assert_eq!(
            to_ethernet(113, &sll, 44, &mut s),
            Err(ToEthernetError::UnknownPayload { linktype: 113, value: 4 })
        );
        // SLL2: protocol 0x86dd, ifindex 2, ARPHRD_ETHER.
        let mut sll2 = vec![0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
        sll2.extend_from_slice(&ip6);
        assert_eq!(to_ethernet(276, &sll2, 24, &mut s).unwrap(), eth([0x86, 0xdd], &ip6));
        sll2[8..10].copy_from_slice(&824u16.to_be_bytes()); // ARPHRD_NETLINK
        assert!(to_ethernet(276, &sll2, 24, &mut s).is_err());
        assert_eq!(
            to_ethernet(276, &sll2[..19], 19, &mut s),
            Err(ToEthernetError::Truncated { need: 20, have: 19 })
        );
        assert_eq!(
            to_ethernet(253, &[0; 20], 20, &mut s),
            Err(ToEthernetError::UnsupportedLinkType(253))
        );
        assert_eq!(
            ToEthernetError::UnsupportedLinkType(253).to_string(),
            "link type 253 cannot be replayed as Ethernet"
        );
    }

    #[test]
    fn to_ethernet_strips_a_declared_fcs_from_complete_frames() {
        let frame: Vec<u8> = (0..64).collect();
        let mut s = Vec::new();
        let with_fcs = 1 | 0x0400_0000 | (2 << 28); // Ethernet, 4-byte FCS
        assert_eq!(fcs_len(with_fcs), 4);
        assert_eq!(linktype_base(with_fcs), 1);
        assert_eq!(to_ethernet(with_fcs, &frame, 64, &mut s).unwrap(), &frame[..60]);
        // A truncated record does not contain the FCS: leave it alone.
        assert_eq!(to_ethernet(with_fcs, &frame, 1500, &mut s).unwrap(), &frame[..]);
        // Without the FCS bits, nothing is removed; bit 26 clear means "unknown".
        assert_eq!(to_ethernet(1, &frame, 64, &mut s).unwrap(), &frame[..]);
        assert_eq!(to_ethernet(1 | (2 << 28), &frame, 64, &mut s).unwrap(), &frame[..]);
        // Raw IP with a 2-byte FCS.
        let raw = [0x45, 1, 2, 3, 0xee, 0xee];
        let lt = 101 | 0x0400_0000 | (1 << 28);
        assert_eq!(&to_ethernet(lt, &raw, 6, &mut s).unwrap()[12..], &[8, 0, 0x45, 1, 2, 3]);
        let rec = Record { ts_ns: 0, data: &frame, orig_len: 64, linktype: with_fcs, interface: 0 };
        assert_eq!(rec.to_ethernet(&mut s).unwrap().len(), 60);
    }

    #[test]
    fn writer_round_trip() {
        let frames: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 14 + usize::from(i) * 31]).collect();
        for resolution in [TsResolution::Micro, TsResolution::Nano] {
            let mut w = PcapWriter::with_resolution(Vec::new(), resolution).unwrap();
            for (i, f) in frames.iter().enumerate() {
                w.write(1_700_000_000_123_456_789 + i as u64 * 1_001, f).unwrap();
            }
            w.flush().unwrap();
            let bytes = w.finish().unwrap();
            let (recs, err) = read_all(&bytes);
            assert_eq!(err, None);
            assert_eq!(recs.len(), frames.len());
            for (i, (r, f)) in recs.iter().zip(&frames).enumerate() {
                let ts = 1_700_000_000_123_456_789 + i as u64 * 1_001;
                let want = match resolution {
                    TsResolution::Micro => ts / 1_000 * 1_000,
                    TsResolution::Nano => ts,
                };
                assert_eq!(r, &(want, f.clone(), f.len() as u32, 1, 0));
            }
        }
    }

    /// Tests over the shared capture corpus, read in place; skipped when it is absent.
    mod corpus {
        use super::*;
        use std::fs::File;

        const CAPTURES: &str = "/work/shared/captures";

        /// One file of `manifest.json`.
        struct Entry {
            name: String,
            packets: Option<u64>, // as counted by capinfos; null for unreadable files
            capinfos_ok: bool,
        }

        /// The manifest's file entries. The file is generated with one field per line, so
        /// a line scan is enough and keeps the crate free of a JSON dependency.
        fn manifest() -> Option<Vec<Entry>> {
            let text = std::fs::read_to_string(format!("{CAPTURES}/manifest.json")).ok()?;
            let mut entries: Vec<Entry> = Vec::new();
            for line in text.lines() {
                let line = line.trim().trim_end_matches(',');
                if let Some(v) = line.strip_prefix("\"name\": ") {
                    let name = v.trim_matches('"').to_string();
                    entries.push(Entry { name, packets: None, capinfos_ok: false });
                } else if let (Some(v), Some(e)) =
                    (line.strip_prefix("\"packets\": "), entries.last_mut())
                {
                    e.packets = v.parse().ok();
                } else if let (Some(v), Some(e)) =
                    (line.strip_prefix("\"capinfos_ok\": "), entries.last_mut())
                {
                    e.capinfos_ok = v == "true";
                }
            }
            Some(entries)
        }

        fn path(name: &str) -> String {
            format!("{CAPTURES}/{name}")
        }

        /// Reads a file in memory and streamed from disk in lockstep, checks that both give
        /// the same records, and returns the record count and the error message, if any.
        fn count(name: &str) -> (u64, Option<String>) {
            let bytes = std::fs::read(path(name)).unwrap();
            let file = File::open(path(name)).unwrap();
            let (mut mem, mut disk) =
                match (CaptureReader::from_bytes(&bytes), CaptureReader::new(file)) {
                    (Ok(m), Ok(d)) => (m, d),
                    (Err(m), Err(d)) => {
                        assert_eq!(m.to_string(), d.to_string());
                        return (0, Some(m.to_string()));
                    }
                    _ => panic!("{name}: memory and stream disagree on the header"),
                };
            let mut n = 0;
            loop {
                match (mem.next_record(), disk.next_record()) {
                    (Ok(Some(a)), Ok(Some(b))) => {
                        assert_eq!(a, b, "{name}: record {}", n + 1);
                        n += 1;
                    }
                    (Ok(None), Ok(None)) => return (n, None),
                    (Err(a), Err(b)) => {
                        assert_eq!(a.to_string(), b.to_string());
                        return (n, Some(a.to_string()));
                    }
                    (a, b) => panic!("{name}: record {}: {a:?} vs {b:?}", n + 1),
                }
            }
        }

        #[test]
        fn readable_files_have_the_manifest_counts() {
            let Some(entries) = manifest() else { return };
            let mut listed = 0;
            for e in entries.iter().filter(|e| e.capinfos_ok) {
                let (n, err) = count(&e.name);
                assert_eq!(err, None, "{}", e.name);
                assert_eq!(Some(n), e.packets, "{}", e.name);
                listed += 1;
            }
            assert!(listed >= 50, "only {listed} readable files in the manifest");
            // Every capture in the directory is in the manifest.
            for dirent in std::fs::read_dir(CAPTURES).unwrap() {
                let name = dirent.unwrap().file_name().into_string().unwrap();
                if name.ends_with(".pcap") || name.ends_with(".pcapng") {
                    assert!(entries.iter().any(|e| e.name == name), "{name} not in manifest");
                }
            }
        }

        #[test]
        fn corrupt_files_give_clear_errors() {
            let Some(entries) = manifest() else { return };
            let expected = [
                (
                    "libpcap-invalid-version.pcap",
                    0,
                    "pcap file header at byte 0: unsupported version 1.4 (expected 2.4)",
                ),
                (
                    "libpcap-shb-option-too-long.pcapng",
                    0,
                    "section header block at byte 0: option 12336 of length 12336 overruns \
                     its block (20 bytes left)",
                ),
                (
                    "suri-cut-short.pcap",
                    2696,
                    "truncated record 2697 at byte 2715459: header needs 16 bytes, 1 left in \
                     the file",
                ),
                (
                    "suri-fuzz-oversize-record.pcap",
                    1,
                    "record 2 at byte 228: captured length 1409179648 exceeds the snapshot \
                     length 65535",
                ),
            ];
            for (name, records, message) in expected {
                let (n, err) = count(name);
                assert_eq!((n, err.as_deref()), (records, Some(message)), "{name}");
            }
            // Every file capinfos could not read is among them.
            for e in entries.iter().filter(|e| !e.capinfos_ok) {
                assert!(expected.iter().any(|x| x.0 == e.name), "{} unexpected", e.name);
            }
        }

        /// The timestamps of the given records (1-based), with interface and link type.
        /// ts_ns, interface, linktype, orig_len, captured length.
        type Stamp = (u64, u32, u32, u32, usize);

        fn stamps(name: &str, wanted: &[u64]) -> Option<Vec<Stamp>> {
            let bytes = std::fs::read(path(name)).ok()?;
            let mut r = CaptureReader::from_bytes(&bytes).unwrap();
            let mut out = Vec::new();
            let mut n = 0;
            while let Some(rec) = r.next_record().unwrap() {
                n += 1;
                if wanted.contains(&n) {
                    let fields = (rec.ts_ns, rec.interface, rec.linktype, rec.orig_len);
                    out.push((fields.0, fields.1, fields.2, fields.3, rec.data.len()));
                }
            }
            Some(out)
        }

        #[test]
        fn timestamps_match_tshark() {
            // Values from `tshark -T fields -e frame.time_epoch`.
            let cases: [(&str, &[u64], &[u64]); 5] = [
                (
                    "pcpp-nsec-bigendian.pcap",
                    &[1, 2, 10],
                    &[
                        1_766_361_926_167_647_291,
                        1_766_361_926_167_658_091,
                        1_766_361_926_168_451_894,
                    ],
                ),
                (
                    "pcpp-netlink-usec-bigendian.pcap",
                    &[1, 2, 13],
                    &[
                        1_474_059_824_864_984_000,
                        1_474_059_824_869_887_000,
                        1_474_059_828_874_473_000,
                    ],
                ),
                (
                    "ndpi-telegram-nsec.pcapng",
                    &[1, 2, 889],
                    &[
                        1_648_032_334_213_648_644,
                        1_648_032_334_213_678_240,
                        1_648_032_378_336_597_885,
                    ],
                ),
                (
                    "tcpdump-sll-nsec.pcap",
                    &[1, 2, 3],
                    &[
                        1_418_145_369_924_505_488,
                        1_418_145_370_052_027_262,
                        1_418_145_370_052_115_157,
                    ],
                ),
                (
                    // Interface 0 is in ns, including one record in 2061.
                    "pcpp-pcapng-multi-if.pcapng",
                    &[1, 2, 3],
                    &[
                        1_422_527_998_578_402_281,
                        2_894_531_997_938_836_488,
                        1_422_527_998_578_455_857,
                    ],
                ),
            ];
            for (name, which, want) in cases {
                let Some(got) = stamps(name, which) else {
                    return;
                };
                let ts: Vec<u64> = got.iter().map(|g| g.0).collect();
                assert_eq!(ts, want, "{name}");
            }
            // Interface 1 of the multi-interface file is Linux SLL in µs, and its timestamps
            // are 2^64 - 505.4 s worth of µs, i.e. before 1970: they clamp to u64::MAX.
            let got = stamps("pcpp-pcapng-multi-if.pcapng", &[60, 61]).unwrap();
            assert_eq!(got[0], (u64::MAX, 1, 113, 68, 68));
            assert_eq!(got[1], (u64::MAX, 1, 113, 1444, 128));
            let got = stamps("pcpp-netlink-usec-bigendian.pcap", &[1]).unwrap();
            assert_eq!((got[0].2, got[0].3, got[0].4), (253, 1196, 1196));
        }

        #[test]
        fn cooked_and_raw_captures_become_ethernet() {
            let cases = [
                ("pcpp-sll.pcap", 113),
                ("pcpp-sll2.pcap", 276),
                ("tcpdump-sll-nsec.pcap", 113),
                ("pcpp-raw-ip.pcap", 101),
            ];
            let mut scratch = Vec::new();
            for (name, lt) in cases {
                let Ok(bytes) = std::fs::read(path(name)) else {
                    return;
                };
                let mut r = CaptureReader::from_bytes(&bytes).unwrap();
                let (mut ok, mut refused) = (0, 0);
                while let Some(rec) = r.next_record().unwrap() {
                    assert_eq!(rec.linktype, lt);
                    match rec.to_ethernet(&mut scratch) {
                        Ok(frame) => {
                            assert_eq!(&frame[..12], &[0; 12]);
                            let et = u16::from_be_bytes([frame[12], frame[13]]);
                            assert!(
                                [0x0800, 0x86dd, 0x0806, 0x8100].contains(&et),
                                "{name}: EtherType {et:#x}"
                            );
                            ok += 1;
                        }
                        Err(_) => refused += 1,
                    }
                }
                assert!(ok > 0 && refused == 0, "{name}: {ok} converted, {refused} refused");
            }
            let bytes = std::fs::read(path("pcpp-netlink-usec-bigendian.pcap")).unwrap();
            let mut r = CaptureReader::from_bytes(&bytes).unwrap();
            let rec = r.next_record().unwrap().unwrap();
            assert_eq!(
                rec.to_ethernet(&mut scratch),
                Err(ToEthernetError::UnsupportedLinkType(253))
            );
        }

        #[test]
        fn writer_reproduces_captures() {
            let Some(entries) = manifest() else { return };
            let mut identical = 0;
            for e in entries.iter().filter(|e| e.capinfos_ok) {
                let bytes = std::fs::read(path(&e.name)).unwrap();
                let mut r = CaptureReader::from_bytes(&bytes).unwrap();
                let header = r.pcap_header().copied();
                let nano = e.name.contains("nsec");
                let resolution = if nano { TsResolution::Nano } else { TsResolution::Micro };
                let mut w = PcapWriter::with_resolution(Vec::new(), resolution).unwrap();
                let mut complete = true;
                let mut originals = Vec::new();
                while let Some(rec) = r.next_record().unwrap() {
                    complete &= rec.data.len() as u32 == rec.orig_len;
                    if rec.ts_ns / 1_000_000_000 > u64::from(u32::MAX) {
                        complete = false;
                        continue;
                    }
                    w.write(rec.ts_ns, rec.data).unwrap();
                    originals.push((rec.ts_ns, rec.data.to_vec()));
                }
                let out = w.finish().unwrap();
                let mut back = CaptureReader::from_bytes(&out).unwrap();
                for (i, (ts, data)) in originals.iter().enumerate() {
                    let rec = back.next_record().unwrap().unwrap();
                    let want_ts = if nano { *ts } else { ts / 1_000 * 1_000 };
                    assert_eq!((rec.ts_ns, rec.data), (want_ts, &data[..]), "{} #{i}", e.name);
                }
                assert!(back.next_record().unwrap().is_none());
                // A little-endian Ethernet pcap with our snaplen and no truncated record is
                // rewritten byte for byte.
                let ours = PcapHeader::for_writing(resolution);
                if complete && header == Some(ours) && bytes[8..16] == [0; 8] {
                    assert_eq!(out, bytes, "{}", e.name);
                    identical += 1;
                }
            }
            assert!(identical >= 10, "only {identical} files rewritten identically");
        }
    }
}
