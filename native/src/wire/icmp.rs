//! ICMPv4 and ICMPv6 headers, and IPv6 neighbour discovery (RFC 4861) as OVS reads it.
//!
//! `Icmpv4Packet::new_checked` guarantees the 8-byte ICMPv4 header; `Icmpv6Packet::new_checked`
//! the 4-byte type/code/checksum part (the 4-byte message body is read with a bound check).
//! After either, no getter or setter panics. `parse_nd` follows Open vSwitch's
//! `parse_icmpv6`: the target address, then 8-byte-aligned options, of which the first
//! source (type 1) and target (type 2) link-layer address options of length 1 count.

use super::eth::Mac;
use super::{be16, get_array, get_be32, Truncated};

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST: Range<usize> = 4..8;
}

/// Length of an ICMPv4 header (OVS `ICMP_HEADER_LEN`).
pub const ICMPV4_HEADER_LEN: usize = 8;
/// Length of the ICMPv6 type/code/checksum part.
pub const ICMPV6_BASE_LEN: usize = 4;
/// Length of the ICMPv6 header with its 4-byte body word (OVS `icmp6_data_header`).
pub const ICMPV6_DATA_LEN: usize = 8;
/// Offset of the checksum in both.
pub const CHECKSUM_OFFSET: usize = 2;

/// ICMPv6 types of neighbour discovery.
pub const ND_NEIGHBOR_SOLICIT: u8 = 135;
pub const ND_NEIGHBOR_ADVERT: u8 = 136;
/// ND option types.
pub const ND_OPT_SOURCE_LINKADDR: u8 = 1;
pub const ND_OPT_TARGET_LINKADDR: u8 = 2;

/// A view of an ICMPv4 header at the start of `buf`.
#[derive(Clone, Copy, Debug)]
pub struct Icmpv4Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps `buf` after checking the 8-byte header fits.
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        if buf.as_ref().len() < ICMPV4_HEADER_LEN {
            return Err(Truncated);
        }
        Ok(Icmpv4Packet { buf })
    }

    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[field::TYPE]
    }

    pub fn code(&self) -> u8 {
        self.buf.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        be16(&self.buf.as_ref()[field::CHECKSUM])
    }

    /// Identifier of an echo request / reply (first half of the rest-of-header).
    pub fn echo_ident(&self) -> u16 {
        be16(&self.buf.as_ref()[field::REST][..2])
    }

    /// Sequence number of an echo request / reply.
    pub fn echo_seq(&self) -> u16 {
        be16(&self.buf.as_ref()[field::REST][2..])
    }

    /// True when the checksum over the whole buffer is correct.
    pub fn verify_checksum(&self) -> bool {
        super::checksum::checksum(self.buf.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        self.buf.as_mut()[field::TYPE] = v;
    }

    pub fn set_code(&mut self, v: u8) {
        self.buf.as_mut()[field::CODE] = v;
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.buf.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Recomputes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        let c = super::checksum::l4_checksum(0, self.buf.as_ref(), CHECKSUM_OFFSET);
        self.set_checksum(c);
    }
}

/// A view of an ICMPv6 message at the start of `buf`.
#[derive(Clone, Copy, Debug)]
pub struct Icmpv6Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps `buf` after checking type, code and checksum fit.
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        if buf.as_ref().len() < ICMPV6_BASE_LEN {
            return Err(Truncated);
        }
        Ok(Icmpv6Packet { buf })
    }

    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[field::TYPE]
    }

    pub fn code(&self) -> u8 {
        self.buf.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        be16(&self.buf.as_ref()[field::CHECKSUM])
    }

    /// The 4-byte message body word (ND: the R/S/O flags and reserved bits), if present.
    pub fn data_word(&self) -> Option<u32> {
        get_be32(self.buf.as_ref(), field::REST.start)
    }

    /// The checksum this message should carry, given its pseudo-header sum.
    pub fn compute_checksum(&self, pseudo: u32) -> u16 {
        super::checksum::l4_checksum(pseudo, self.buf.as_ref(), CHECKSUM_OFFSET)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        self.buf.as_mut()[field::TYPE] = v;
    }

    pub fn set_code(&mut self, v: u8) {
        self.buf.as_mut()[field::CODE] = v;
    }

    pub fn set_checksum(&mut self, v: u16) {
        self.buf.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
}

/// What a neighbour solicitation or advertisement carries, as OVS extracts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NdInfo {
    /// The target address; `None` when truncated, or when an option was duplicated (OVS
    /// then discards the target and both link-layer addresses).
    pub target: Option<[u8; 16]>,
    pub sll: Mac,     // source link-layer address option, or zero
    pub tll: Mac,     // target link-layer address option, or zero
    pub opt_type: u8, // type of the first link-layer option seen (1 or 2), or 0
    pub rso: u32,     // the R/S/O flags word
}

/// Parses an ND message; `msg` starts at the ICMPv6 type and holds at least the 8-byte
/// header. Returns `None` for other ICMPv6 messages (type not 135/136, or code not 0), or
/// when `msg` is shorter than 8 bytes.
pub fn parse_nd(msg: &[u8]) -> Option<NdInfo> {
    let (ty, code) = (*msg.first()?, *msg.get(1)?);
    if code != 0 || (ty != ND_NEIGHBOR_SOLICIT && ty != ND_NEIGHBOR_ADVERT) {
        return None;
    }
    let mut nd = NdInfo { rso: get_be32(msg, 4)?, ..NdInfo::default() };
    let Some(target) = get_array::<16>(msg, ICMPV6_DATA_LEN) else {
        return Some(nd);
    };
    nd.target = Some(target);
    let mut opts = msg.get(ICMPV6_DATA_LEN + 16..).unwrap_or(&[]);
    while opts.len() >= 8 {
        let (opt, len) = (opts[0], usize::from(opts[1]) * 8);
        if len == 0 || len > opts.len() {
            break;
        }
        let mac = || get_array::<6>(opts, 2).unwrap_or([0; 6]);
        let slot = match (opt, len) {
            (ND_OPT_SOURCE_LINKADDR, 8) => Some(&mut nd.sll),
            (ND_OPT_TARGET_LINKADDR, 8) => Some(&mut nd.tll),
            _ => None,
        };
        if let Some(slot) = slot {
            if *slot != [0; 6] {
                // OVS: the same option twice makes the message invalid for matching.
                nd.target = None;
                nd.sll = [0; 6];
                nd.tll = [0; 6];
                return Some(nd);
            }
            *slot = mac();
            if nd.opt_type == 0 {
                nd.opt_type = opt;
            }
        }
        opts = &opts[len..];
    }
    Some(nd)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECHO: [u8; 12] = [
        0x08, 0x00, 0x00, 0x00, // type echo request, code 0, checksum (filled below)
        0x12, 0x34, 0x00, 0x07, // identifier 0x1234, sequence 7
        0x61, 0x62, 0x63, 0x64, // payload "abcd"
    ];

    #[test]
    fn icmpv4_fields_and_checksum() {
        let mut b = ECHO;
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!((p.msg_type(), p.code()), (8, 0));
        assert_eq!((p.echo_ident(), p.echo_seq()), (0x1234, 7));
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.set_msg_type(0);
        p.set_code(1);
        assert!(!p.verify_checksum());
        assert!(Icmpv4Packet::new_checked(&ECHO[..7]).is_err());
    }

    const NS: [u8; 48] = [
        0x87, 0x00, 0x00, 0x00, // type 135 (neighbour solicitation), code 0, checksum
        0x00, 0x00, 0x00, 0x00, // reserved
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // target fe80::2
        0x01, 0x01, 0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01, // SLL option fa:16:3e:00:00:01
        0x02, 0x01, 0xfa, 0x16, 0x3e, 0x00, 0x00, 0x02, // TLL option fa:16:3e:00:00:02
        0x0e, 0x01, 0, 0, 0, 0, 0, 0, // nonce option (ignored)
    ];

    #[test]
    fn nd_target_and_options() {
        let nd = parse_nd(&NS).unwrap();
        let mut t = [0u8; 16];
        t[..2].copy_from_slice(&[0xfe, 0x80]);
        t[15] = 2;
        assert_eq!(nd.target, Some(t));
        assert_eq!(nd.sll, [0xfa, 0x16, 0x3e, 0, 0, 1]);
        assert_eq!(nd.tll, [0xfa, 0x16, 0x3e, 0, 0, 2]);
        assert_eq!(nd.opt_type, ND_OPT_SOURCE_LINKADDR);
    }

    #[test]
    fn nd_edge_cases() {
        // Not ND: echo request, or ND with a non-zero code.
        assert_eq!(parse_nd(&[128, 0, 0, 0, 0, 0, 0, 0]), None);
        let mut b = NS;
        b[1] = 1;
        assert_eq!(parse_nd(&b), None);
        // Target cut off: ND without a target.
        let nd = parse_nd(&NS[..20]).unwrap();
        assert_eq!(nd, NdInfo::default());
        // Options cut mid-way keep what came before.
        let nd = parse_nd(&NS[..39]).unwrap();
        assert_eq!((nd.sll, nd.tll), ([0xfa, 0x16, 0x3e, 0, 0, 1], [0; 6]));
        // A zero-length option stops the walk.
        let mut b = NS;
        b[25] = 0;
        let nd = parse_nd(&b).unwrap();
        assert!(nd.target.is_some());
        assert_eq!((nd.sll, nd.tll, nd.opt_type), ([0; 6], [0; 6], 0));
        // A second SLL option invalidates target and addresses, not the option type.
        let mut b = NS;
        b[32] = ND_OPT_SOURCE_LINKADDR;
        let nd = parse_nd(&b).unwrap();
        assert_eq!((nd.target, nd.sll, nd.tll, nd.opt_type), (None, [0; 6], [0; 6], 1));
    }

    #[test]
    fn icmpv6_view() {
        let mut b = NS;
        let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!((p.msg_type(), p.code(), p.data_word()), (135, 0, Some(0)));
        p.set_msg_type(136);
        p.set_code(0);
        let pseudo = super::super::checksum::pseudo_header_v6(&[1; 16], &[2; 16], 58, 48);
        let c = p.compute_checksum(pseudo);
        p.set_checksum(c);
        let sum = super::super::checksum::add(pseudo, &b);
        assert_eq!(super::super::checksum::finish(sum), 0);
        assert_eq!(Icmpv6Packet::new_checked(&NS[..4]).unwrap().data_word(), None);
        assert!(Icmpv6Packet::new_checked(&NS[..3]).is_err());
    }
}
