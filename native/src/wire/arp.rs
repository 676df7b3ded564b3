//! ARP (and RARP) packets for Ethernet / IPv4, the only kind OVS extracts fields from.
//!
//! `ArpPacket::new_checked` guarantees the fixed 8-byte header; `new_checked_eth_ipv4`
//! additionally guarantees the 28-byte Ethernet/IPv4 layout (htype 1, ptype 0x0800, hlen 6,
//! plen 4), after which the address getters and setters cannot panic. Opcodes other than
//! request and reply are values, not errors.

use super::eth::Mac;
use super::{be16, Truncated};

mod field {
    use core::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Fixed part of every ARP header.
pub const FIXED_LEN: usize = 8;
/// An Ethernet / IPv4 ARP packet (OVS `ARP_ETH_HEADER_LEN`).
pub const ETH_IPV4_LEN: usize = 28;

/// ARP operation codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(v: u16) -> Operation {
        match v {
            1 => Operation::Request,
            2 => Operation::Reply,
            other => Operation::Unknown(other),
        }
    }
}

impl From<Operation> for u16 {
    fn from(o: Operation) -> u16 {
        match o {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(v) => v,
        }
    }
}

/// A view of an ARP packet.
#[derive(Clone, Copy, Debug)]
pub struct ArpPacket<T> {
    buf: T,
    eth_ipv4: bool,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buf` after checking the fixed header is present.
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        let b = buf.as_ref();
        if b.len() < FIXED_LEN {
            return Err(Truncated);
        }
        let eth_ipv4 = b.len() >= ETH_IPV4_LEN
            && be16(&b[field::HTYPE]) == 1
            && be16(&b[field::PTYPE]) == 0x0800
            && b[field::HLEN] == 6
            && b[field::PLEN] == 4;
        Ok(ArpPacket { buf, eth_ipv4 })
    }

    /// Wraps `buf` only when it is a whole Ethernet / IPv4 ARP packet.
    pub fn new_checked_eth_ipv4(buf: T) -> Result<Self, Truncated> {
        let p = Self::new_checked(buf)?;
        if p.eth_ipv4 {
            Ok(p)
        } else {
            Err(Truncated)
        }
    }

    /// True when the packet is Ethernet / IPv4 ARP of full length.
    pub fn is_eth_ipv4(&self) -> bool {
        self.eth_ipv4
    }

    pub fn hardware_type(&self) -> u16 {
        be16(&self.buf.as_ref()[field::HTYPE])
    }

    pub fn protocol_type(&self) -> u16 {
        be16(&self.buf.as_ref()[field::PTYPE])
    }

    pub fn hardware_len(&self) -> u8 {
        self.buf.as_ref()[field::HLEN]
    }

    pub fn protocol_len(&self) -> u8 {
        self.buf.as_ref()[field::PLEN]
    }

    /// The raw 16-bit opcode.
    pub fn opcode(&self) -> u16 {
        be16(&self.buf.as_ref()[field::OPER])
    }

    pub fn operation(&self) -> Operation {
        Operation::from(self.opcode())
    }

    /// Sender hardware address; zero unless Ethernet / IPv4.
    pub fn sha(&self) -> Mac {
        self.mac(field::SHA)
    }

    /// Target hardware address; zero unless Ethernet / IPv4.
    pub fn tha(&self) -> Mac {
        self.mac(field::THA)
    }

    /// Sender protocol address; zero unless Ethernet / IPv4.
    pub fn spa(&self) -> [u8; 4] {
        self.ip(field::SPA)
    }

    /// Target protocol address; zero unless Ethernet / IPv4.
    pub fn tpa(&self) -> [u8; 4] {
        self.ip(field::TPA)
    }

    fn mac(&self, r: core::ops::Range<usize>) -> Mac {
        let mut m = [0; 6];
        if self.eth_ipv4 {
            m.copy_from_slice(&self.buf.as_ref()[r]);
        }
        m
    }

    fn ip(&self, r: core::ops::Range<usize>) -> [u8; 4] {
        let mut a = [0; 4];
        if self.eth_ipv4 {
            a.copy_from_slice(&self.buf.as_ref()[r]);
        }
        a
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the opcode.
    pub fn set_opcode(&mut self, op: u16) {
        self.buf.as_mut()[field::OPER].copy_from_slice(&op.to_be_bytes());
    }

    /// Sets the sender hardware address; returns false (and writes nothing) unless the
    /// packet is Ethernet / IPv4.
    pub fn set_sha(&mut self, mac: Mac) -> bool {
        self.put(field::SHA, &mac)
    }

    /// Sets the target hardware address (see `set_sha`).
    pub fn set_tha(&mut self, mac: Mac) -> bool {
        self.put(field::THA, &mac)
    }

    /// Sets the sender protocol address (see `set_sha`).
    pub fn set_spa(&mut self, ip: [u8; 4]) -> bool {
        self.put(field::SPA, &ip)
    }

    /// Sets the target protocol address (see `set_sha`).
    pub fn set_tpa(&mut self, ip: [u8; 4]) -> bool {
        self.put(field::TPA, &ip)
    }

    fn put(&mut self, r: core::ops::Range<usize>, v: &[u8]) -> bool {
        if self.eth_ipv4 {
            self.buf.as_mut()[r].copy_from_slice(v);
        }
        self.eth_ipv4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: [u8; 28] = [
        0x00, 0x01, // hardware type Ethernet
        0x08, 0x00, // protocol type IPv4
        0x06, 0x04, // hardware length 6, protocol length 4
        0x00, 0x01, // operation request
        0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01, // sender MAC
        0x0a, 0x00, 0x00, 0x01, // sender IP 10.0.0.1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target MAC (unknown)
        0x0a, 0x00, 0x00, 0x02, // target IP 10.0.0.2
    ];

    #[test]
    fn parse_request() {
        let p = ArpPacket::new_checked_eth_ipv4(&REQUEST[..]).unwrap();
        assert_eq!(p.operation(), Operation::Request);
        assert_eq!((p.hardware_type(), p.protocol_type()), (1, 0x0800));
        assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
        assert_eq!(p.sha(), [0xfa, 0x16, 0x3e, 0, 0, 1]);
        assert_eq!(p.spa(), [10, 0, 0, 1]);
        assert_eq!(p.tha(), [0; 6]);
        assert_eq!(p.tpa(), [10, 0, 0, 2]);
    }

    #[test]
    fn non_ethernet_ipv4_has_no_addresses() {
        let mut b = REQUEST;
        b[5] = 16; // protocol length 16 (not IPv4)
        let mut p = ArpPacket::new_checked(&mut b[..]).unwrap();
        assert!(!p.is_eth_ipv4());
        assert_eq!(p.spa(), [0; 4]);
        assert!(!p.set_spa([1, 2, 3, 4]));
        assert!(ArpPacket::new_checked_eth_ipv4(&REQUEST[..27]).is_err());
        assert!(ArpPacket::new_checked(&REQUEST[..7]).is_err());
        assert_eq!(Operation::from(9), Operation::Unknown(9));
    }

    #[test]
    fn setters() {
        let mut b = REQUEST;
        let mut p = ArpPacket::new_checked(&mut b[..]).unwrap();
        p.set_opcode(2);
        assert!(p.set_tha([1, 2, 3, 4, 5, 6]));
        assert!(p.set_tpa([192, 168, 0, 1]));
        assert_eq!(p.operation(), Operation::Reply);
        assert_eq!(&b[18..28], &[1, 2, 3, 4, 5, 6, 192, 168, 0, 1]);
    }
}
