//! The flow key: every header field and metadata value a rule or a megaflow can match,
//! in one fixed-size, 8-byte-aligned struct.
//!
//! Invariants:
//! - `FlowKey` has no padding the compiler chooses: every byte belongs to a named field or
//!   to an explicit `pad*` field that is always zero. So the key can be viewed as
//!   `[u64; KEY_WORDS]`, hashed and masked word by word.
//! - A mask is a `FlowKey` too: a 1 bit means "this bit is matched", a 0 bit "wildcarded".
//! - Integer fields are stored in host byte order; MAC addresses and IPv6 addresses are byte
//!   arrays in network order. `flow::field` reads and writes both kinds as `u128` values.
//! - The words are grouped in the four stages of Open vSwitch's staged lookup, in this order:
//!   metadata (tunnel, registers, ports, conntrack), L2, L3, L4. `STAGE_ENDS` gives the
//!   boundaries; the classifier un-wildcards one stage at a time.
//! - Fields that OVS keeps in the same place keep the same meaning here: for ARP, `nw_src` /
//!   `nw_dst` hold SPA / TPA and `nw_proto` the opcode (low 8 bits); for ICMP and ICMPv6,
//!   `tp_src` / `tp_dst` hold type / code.

/// Number of 64-bit words in a key.
pub const KEY_WORDS: usize = 23;

/// End (exclusive) of each lookup stage, in words: metadata, L2, L3, L4.
pub const STAGE_ENDS: [usize; 4] = [9, 12, 18, 23];

/// Conntrack state bits, as OVS numbers them (`ct_state`).
pub mod ct_state {
    pub const NEW: u8 = 0x01;
    pub const EST: u8 = 0x02;
    pub const REL: u8 = 0x04;
    pub const RPL: u8 = 0x08;
    pub const INV: u8 = 0x10;
    pub const TRK: u8 = 0x20;
    pub const SNAT: u8 = 0x40;
    pub const DNAT: u8 = 0x80;
}

/// Tunnel flag bits kept in `tun_flags` (the datapath's `flags(df|csum|key)`).
pub mod tun_flags {
    pub const DF: u8 = 0x01;
    pub const CSUM: u8 = 0x02;
    pub const KEY: u8 = 0x04;
    /// Set when the packet arrived through a tunnel (the tunnel metadata is valid).
    pub const PRESENT: u8 = 0x80;
}

/// `nw_frag` bits, as OVS: "any fragment" and "not the first fragment".
pub mod nw_frag {
    pub const ANY: u8 = 0x01;
    pub const LATER: u8 = 0x02;
    pub const MASK: u8 = 0x03;
}

/// The VLAN "tag present" bit in `vlan_tci` (OVS's CFI bit).
pub const VLAN_CFI: u16 = 0x1000;
pub const VLAN_VID_MASK: u16 = 0x0fff;
pub const VLAN_PCP_MASK: u16 = 0xe000;

/// A flow key, or a mask over one.
#[repr(C, align(8))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    // --- stage 0: metadata (words 0..9) ---
    pub tun_id: u64,  // word 0
    pub tun_src: u32, // word 1
    pub tun_dst: u32,
    pub metadata: u64,  // word 2
    pub regs: [u32; 8], // words 3..7
    pub in_port: u32,   // word 7: OpenFlow port in rules, datapath port in megaflows
    pub recirc_id: u32,
    pub ct_mark: u32, // word 8
    pub ct_zone: u16,
    pub ct_state: u8,
    pub tun_flags: u8, // `tun_flags::*`
    // --- stage 1: L2 (words 9..12) ---
    pub dl_dst: [u8; 6], // words 9..10
    pub dl_src: [u8; 6],
    pub dl_type: u16, // EtherType after all VLAN tags; 0x05ff for non-Ethernet-II frames
    pub vlan_tci: u16, // outer tag: PCP(3) CFI=present(1) VID(12); 0 = untagged
    pub vlan_tpid: u16, // word 11: outer tag's TPID (0x8100 or 0x88a8), 0 if untagged
    pub vlan2_tci: u16, // inner tag, same layout
    pub vlan2_tpid: u16,
    pub pad0: u16,
    // --- stage 2: L3 (words 12..18) ---
    pub nw_src: u32,        // word 12: IPv4 source, or ARP SPA
    pub nw_dst: u32,        // IPv4 destination, or ARP TPA
    pub ipv6_src: [u8; 16], // words 13..14
    pub ipv6_dst: [u8; 16], // words 15..16
    pub ipv6_label: u32,    // word 17: 20-bit flow label
    pub nw_frag: u8,        // `nw_frag::*`
    pub nw_tos: u8,         // DSCP (high 6 bits) and ECN (low 2 bits), as in the IP header
    pub nw_ttl: u8,
    pub nw_proto: u8, // IP protocol, or low 8 bits of the ARP opcode
    // --- stage 3: L4 (words 18..23) ---
    pub nd_target: [u8; 16], // words 18..19
    pub arp_sha: [u8; 6],    // words 20..21 (also ND source / target link-layer address)
    pub arp_tha: [u8; 6],
    pub tcp_flags: u16, // low 12 bits of the TCP flags
    pub pad1: u16,
    pub tp_src: u16, // word 22: L4 source port, or ICMP type
    pub tp_dst: u16, // L4 destination port, or ICMP code
    pub pad2: u32,
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == KEY_WORDS * 8);
const _: () = assert!(core::mem::align_of::<FlowKey>() == 8);

impl FlowKey {
    /// The all-zero key; as a mask, "match everything".
    pub const ZERO: FlowKey = FlowKey {
        tun_id: 0,
        tun_src: 0,
        tun_dst: 0,
        metadata: 0,
        regs: [0; 8],
        in_port: 0,
        recirc_id: 0,
        ct_mark: 0,
        ct_zone: 0,
        ct_state: 0,
        tun_flags: 0,
        dl_dst: [0; 6],
        dl_src: [0; 6],
        dl_type: 0,
        vlan_tci: 0,
        vlan_tpid: 0,
        vlan2_tci: 0,
        vlan2_tpid: 0,
        pad0: 0,
        nw_src: 0,
        nw_dst: 0,
        ipv6_src: [0; 16],
        ipv6_dst: [0; 16],
        ipv6_label: 0,
        nw_frag: 0,
        nw_tos: 0,
        nw_ttl: 0,
        nw_proto: 0,
        nd_target: [0; 16],
        arp_sha: [0; 6],
        arp_tha: [0; 6],
        tcp_flags: 0,
        pad1: 0,
        tp_src: 0,
        tp_dst: 0,
        pad2: 0,
    };

    /// The key as 64-bit words.
    #[inline(always)]
    pub fn words(&self) -> &[u64; KEY_WORDS] {
        // SAFETY: FlowKey is repr(C, align(8)), exactly KEY_WORDS * 8 bytes (asserted above),
        // and made only of integer fields and byte arrays, so every bit pattern is valid for
        // both types and the alignment of [u64; N] is satisfied.
        unsafe { &*(self as *const FlowKey as *const [u64; KEY_WORDS]) }
    }

    /// The key as mutable 64-bit words.
    #[inline(always)]
    pub fn words_mut(&mut self) -> &mut [u64; KEY_WORDS] {
        // SAFETY: as in `words`; any u64 bit pattern is a valid FlowKey.
        unsafe { &mut *(self as *mut FlowKey as *mut [u64; KEY_WORDS]) }
    }

    /// The key as bytes.
    #[inline(always)]
    pub fn bytes(&self) -> &[u8; KEY_WORDS * 8] {
        // SAFETY: as in `words`; u8 has no alignment requirement.
        unsafe { &*(self as *const FlowKey as *const [u8; KEY_WORDS * 8]) }
    }

    /// The key as mutable bytes.
    #[inline(always)]
    pub fn bytes_mut(&mut self) -> &mut [u8; KEY_WORDS * 8] {
        // SAFETY: as in `words`; any byte pattern is a valid FlowKey.
        unsafe { &mut *(self as *mut FlowKey as *mut [u8; KEY_WORDS * 8]) }
    }

    /// `self & mask`, word by word.
    #[inline(always)]
    pub fn masked(&self, mask: &FlowKey) -> FlowKey {
        let mut out = FlowKey::ZERO;
        let (a, m, o) = (self.words(), mask.words(), out.words_mut());
        for i in 0..KEY_WORDS {
            o[i] = a[i] & m[i];
        }
        out
    }

    /// `self |= other`, word by word (used to widen a mask).
    #[inline(always)]
    pub fn or_assign(&mut self, other: &FlowKey) {
        let (a, b) = (self.words_mut(), other.words());
        for i in 0..KEY_WORDS {
            a[i] |= b[i];
        }
    }

    /// True when `self & mask == value` (value already masked).
    #[inline(always)]
    pub fn matches(&self, value: &FlowKey, mask: &FlowKey) -> bool {
        let (a, v, m) = (self.words(), value.words(), mask.words());
        let mut diff = 0u64;
        for i in 0..KEY_WORDS {
            diff |= (a[i] & m[i]) ^ v[i];
        }
        diff == 0
    }

    /// True when every bit is zero.
    pub fn is_zero(&self) -> bool {
        self.words().iter().all(|w| *w == 0)
    }

    /// True when the packet carries IPv4 (`ip`).
    #[inline(always)]
    pub fn is_ipv4(&self) -> bool {
        self.dl_type == 0x0800
    }

    /// True when the packet carries IPv6 (`ipv6`).
    #[inline(always)]
    pub fn is_ipv6(&self) -> bool {
        self.dl_type == 0x86dd
    }

    /// True for IPv4 or IPv6.
    #[inline(always)]
    pub fn is_ip_any(&self) -> bool {
        self.is_ipv4() || self.is_ipv6()
    }

    /// True for ARP (and RARP, which shares the layout).
    #[inline(always)]
    pub fn is_arp(&self) -> bool {
        self.dl_type == 0x0806 || self.dl_type == 0x8035
    }
}

impl core::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FlowKey[")?;
        for (i, w) in self.words().iter().enumerate() {
            if *w != 0 {
                write!(f, " w{i}={w:#x}")?;
            }
        }
        write!(f, " ]")
    }
}

/// 64-bit hash of a masked key (FNV-1a-style mixing of whole words, then a finaliser).
/// Used by the classifier and the megaflow cache; the same key always hashes the same.
#[inline(always)]
pub fn hash_words(words: &[u64; KEY_WORDS], basis: u64) -> u64 {
    let mut h = basis ^ 0x9e37_79b9_7f4a_7c15;
    for w in words.iter() {
        h = (h ^ *w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// Asks the CPU to start loading the cache line holding `*p` (a hint; no effect elsewhere).
#[inline(always)]
pub fn prefetch<T>(p: &T) {
    prefetch_ptr((p as *const T).cast());
}

/// `prefetch` by address: `p` may point anywhere (nothing is read).
#[inline(always)]
pub fn prefetch_ptr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch(p as *const i8, core::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// True when two keys are equal, compared word by word without early exit (the compiler
/// turns it into a few vector instructions).
#[inline(always)]
pub fn words_equal(a: &[u64; KEY_WORDS], b: &[u64; KEY_WORDS]) -> bool {
    let mut diff = 0u64;
    for i in 0..KEY_WORDS {
        diff |= a[i] ^ b[i];
    }
    diff == 0
}

/// Hash of `key & mask`, without building the masked key first.
#[inline(always)]
pub fn hash_masked(key: &FlowKey, mask: &FlowKey, basis: u64) -> u64 {
    let (k, m) = (key.words(), mask.words());
    let mut h = basis ^ 0x9e37_79b9_7f4a_7c15;
    for i in 0..KEY_WORDS {
        h = (h ^ (k[i] & m[i])).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_word_aligned_without_hidden_padding() {
        assert_eq!(core::mem::size_of::<FlowKey>(), 184);
        // Stage boundaries fall on the fields they name.
        let k = FlowKey::ZERO;
        let base = &k as *const _ as usize;
        assert_eq!((&k.dl_dst as *const _ as usize - base) / 8, STAGE_ENDS[0]);
        assert_eq!((&k.nw_src as *const _ as usize - base) / 8, STAGE_ENDS[1]);
        assert_eq!((&k.nd_target as *const _ as usize - base) / 8, STAGE_ENDS[2]);
    }

    #[test]
    fn masked_match() {
        let mut k = FlowKey::ZERO;
        k.nw_dst = 0x0a00_0005;
        let mut m = FlowKey::ZERO;
        m.nw_dst = 0xffff_ff00;
        let v = k.masked(&m);
        let mut other = FlowKey::ZERO;
        other.nw_dst = 0x0a00_0063;
        assert!(other.matches(&v, &m));
        other.nw_dst = 0x0a00_0163;
        assert!(!other.matches(&v, &m));
        assert_eq!(hash_masked(&k, &m, 1), hash_words(v.words(), 1));
    }
}
