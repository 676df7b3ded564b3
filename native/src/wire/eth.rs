//! Ethernet II headers: destination, source, EtherType.
//!
//! `EthernetFrame::new_checked` guarantees `HEADER_LEN` bytes; after it, no getter or setter
//! panics. The EtherType read here is the one right after the source address (a VLAN TPID
//! when the frame is tagged; see `vlan`). Values below 0x0600 are 802.3 length fields.

use super::{be16, Truncated};

/// Byte ranges of the fields.
mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
}

/// Length of an Ethernet header without tags.
pub const HEADER_LEN: usize = 14;

/// A MAC address in network order.
pub type Mac = [u8; 6];

/// Smallest value that is an EtherType rather than an 802.3 length (OVS `ETH_TYPE_MIN`).
pub const ETH_TYPE_MIN: u16 = 0x0600;

/// OVS's `dl_type` for frames without an Ethernet II type (`FLOW_DL_TYPE_NONE`).
pub const DL_TYPE_NONE: u16 = 0x05ff;

/// EtherType values this crate knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EtherType {
    Ipv4,
    Arp,
    Rarp,
    /// 802.1Q customer tag.
    Vlan,
    /// 802.1ad service tag.
    QinQ,
    Ipv6,
    MplsUnicast,
    MplsMulticast,
    Nsh,
    Unknown(u16),
}

impl EtherType {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const RARP: u16 = 0x8035;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
    pub const MPLS: u16 = 0x8847;
    pub const MPLS_MCAST: u16 = 0x8848;
    pub const NSH: u16 = 0x894f;

    /// True for the two TPIDs OVS treats as VLAN tags (`eth_type_vlan`).
    #[inline(always)]
    pub fn is_vlan_tpid(v: u16) -> bool {
        v == Self::VLAN || v == Self::QINQ
    }
}

impl From<u16> for EtherType {
    fn from(v: u16) -> EtherType {
        match v {
            EtherType::IPV4 => EtherType::Ipv4,
            EtherType::ARP => EtherType::Arp,
            EtherType::RARP => EtherType::Rarp,
            EtherType::VLAN => EtherType::Vlan,
            EtherType::QINQ => EtherType::QinQ,
            EtherType::IPV6 => EtherType::Ipv6,
            EtherType::MPLS => EtherType::MplsUnicast,
            EtherType::MPLS_MCAST => EtherType::MplsMulticast,
            EtherType::NSH => EtherType::Nsh,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(t: EtherType) -> u16 {
        match t {
            EtherType::Ipv4 => EtherType::IPV4,
            EtherType::Arp => EtherType::ARP,
            EtherType::Rarp => EtherType::RARP,
            EtherType::Vlan => EtherType::VLAN,
            EtherType::QinQ => EtherType::QINQ,
            EtherType::Ipv6 => EtherType::IPV6,
            EtherType::MplsUnicast => EtherType::MPLS,
            EtherType::MplsMulticast => EtherType::MPLS_MCAST,
            EtherType::Nsh => EtherType::NSH,
            EtherType::Unknown(v) => v,
        }
    }
}

/// A view of an Ethernet header at the start of `buf`.
#[derive(Clone, Copy, Debug)]
pub struct EthernetFrame<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buf` after checking it holds a whole header.
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(Truncated);
        }
        Ok(EthernetFrame { buf })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Destination MAC.
    pub fn dst(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buf.as_ref()[field::DST]);
        m
    }

    /// Source MAC.
    pub fn src(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buf.as_ref()[field::SRC]);
        m
    }

    /// The raw EtherType / TPID / length field.
    pub fn ethertype_raw(&self) -> u16 {
        be16(&self.buf.as_ref()[field::ETHERTYPE])
    }

    /// The EtherType field as a value.
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(self.ethertype_raw())
    }

    /// Everything after the 14-byte header.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC.
    pub fn set_dst(&mut self, mac: Mac) {
        self.buf.as_mut()[field::DST].copy_from_slice(&mac);
    }

    /// Sets the source MAC.
    pub fn set_src(&mut self, mac: Mac) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&mac);
    }

    /// Sets the EtherType field.
    pub fn set_ethertype(&mut self, t: EtherType) {
        self.buf.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(t).to_be_bytes());
    }
}

/// An untagged Ethernet header to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetRepr {
    pub dst: Mac,
    pub src: Mac,
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Reads the header of a checked frame.
    pub fn parse<T: AsRef<[u8]>>(f: &EthernetFrame<T>) -> EthernetRepr {
        EthernetRepr { dst: f.dst(), src: f.src(), ethertype: f.ethertype() }
    }

    /// Bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into `buf`, which must be exactly `buffer_len()` bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Truncated> {
        if buf.len() != HEADER_LEN {
            return Err(Truncated);
        }
        buf[field::DST].copy_from_slice(&self.dst);
        buf[field::SRC].copy_from_slice(&self.src);
        buf[field::ETHERTYPE].copy_from_slice(&u16::from(self.ethertype).to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: [u8; 16] = [
        0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01, // destination fa:16:3e:00:00:01
        0xfa, 0x16, 0x3e, 0x00, 0x00, 0x02, // source fa:16:3e:00:00:02
        0x08, 0x00, // EtherType IPv4
        0x45, 0x00, // start of the payload
    ];

    #[test]
    fn parse_fields() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst(), [0xfa, 0x16, 0x3e, 0, 0, 1]);
        assert_eq!(f.src(), [0xfa, 0x16, 0x3e, 0, 0, 2]);
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn short_buffer_is_rejected() {
        assert_eq!(EthernetFrame::new_checked(&FRAME[..13]).unwrap_err(), Truncated);
        assert!(EthernetFrame::new_checked(&FRAME[..14]).is_ok());
    }

    #[test]
    fn unknown_ethertype_is_a_value() {
        assert_eq!(EtherType::from(0x1234), EtherType::Unknown(0x1234));
        assert_eq!(u16::from(EtherType::Unknown(0x1234)), 0x1234);
        for v in [0x0800, 0x0806, 0x8035, 0x8100, 0x88a8, 0x86dd, 0x8847, 0x8848, 0x894f] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
    }

    #[test]
    fn repr_round_trip_and_setters() {
        let repr = EthernetRepr::parse(&EthernetFrame::new_checked(&FRAME[..]).unwrap());
        let mut out = [0u8; HEADER_LEN];
        repr.emit(&mut out).unwrap();
        assert_eq!(out, FRAME[..14]);
        assert!(repr.emit(&mut [0u8; 15]).is_err());
        let mut f = EthernetFrame::new_checked(&mut out[..]).unwrap();
        f.set_src([1, 2, 3, 4, 5, 6]);
        f.set_dst([7, 8, 9, 10, 11, 12]);
        f.set_ethertype(EtherType::Arp);
        assert_eq!(out, [7, 8, 9, 10, 11, 12, 1, 2, 3, 4, 5, 6, 0x08, 0x06]);
    }
}
