//! Connection tracking with NAT, after Open vSwitch 3.1's userspace conntrack
//! (`lib/conntrack.c`, `conntrack-tcp.c`, `conntrack-other.c`, `conntrack-icmp.c`,
//! `conntrack-tp.c`, `ct-dpif.c`), because dvrlab's packets, `ct_state` bits and
//! `dpctl/dump-conntrack` lines are compared byte for byte with OVS's.
//!
//! One [`Conntrack`] holds the connections of every zone. A connection has two keys: the
//! original direction (as the first packet was seen) and the reply direction (the reverse,
//! translated when NAT was set up). Both are indexed, so a packet finds its connection and
//! learns its direction with one lookup. [`Conntrack::execute`] is the datapath's `ct()`
//! action for one packet: it sets `ct_state`, `ct_zone` and `ct_mark` in the flow key,
//! creates the connection on `commit`, and rewrites the frame for NAT.
//!
//! Invariants:
//! - No packet byte can make this module panic: parsing goes through checked reads
//!   (`key.rs`), rewriting through bounds-checked writes (`nat.rs`); a packet that cannot be
//!   parsed is `+trk+inv`, as in OVS.
//! - Only committed connections are remembered. The table never holds more than
//!   `CtConfig::max_entries` connections: at the limit a commit is refused (counted in
//!   `refused_full`), the packet stays `+new` and untranslated, and existing connections
//!   keep working (OVS's `conntrack_full`).
//! - A connection whose `expiration` has passed is invisible to lookups and dumps at once,
//!   and its memory goes at the next [`Conntrack::expire`] (OVS's sweeper thread).
//! - Everything is deterministic for a given input and clock: dumps list connections in
//!   creation order, and NAT choices use fixed hashes and a seeded generator (see `nat.rs`).
//!
//! Differences from OVS 3.1, all of them outside what Neutron's flows use:
//! - No fragment reassembly (OVS's `ipf`): IPv4 and IPv6 fragments are `+inv`.
//! - No ALGs (FTP/TFTP helpers), no `ct_label`, no zone limits or timeout policies (the
//!   default policy's timeouts apply, configurable in [`CtTimeouts`]).
//! - No per-packet connection cache (OVS's `md.conn` "fast path" for a second `ct()` in the
//!   same zone without NAT): such a packet is looked up again, which runs the protocol update
//!   a second time. For UDP and ICMP this gives the same state; for TCP it can only matter
//!   for window tracking of retransmissions.
//! - No `ct_orig_tuple` metadata (`check_orig_tuple`); a packet NATted in the same zone is
//!   still found through its translated key, as in OVS's usual path.
//! - Address and port choice inside an explicit range is deterministic (see `nat.rs`); OVS
//!   seeds it randomly per process, so no two OVS runs need agree either.
//! - IPv6 NAT is supported as OVS does it (addresses and ports, checksums updated); IPv6
//!   address ranges are limited to 2^32 addresses as in OVS.

mod csum;
mod format;
mod key;
mod nat;
pub mod tcp;

pub use format::{format_conn, ipv6_ntop};

use crate::flow::key::ct_state;
use crate::flow::FlowKey;
use crate::ofproto::action::{NatKind, NatSpec};
use key::{ConnKey, Extracted, ETH_TYPE_IP, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use nat::{Hdrs, NatInfo};
use std::collections::HashMap;

/// The tables are hashed by foldhash, seeded at random per table: several times faster than
/// the standard SipHash on these small keys, and still not predictable from outside.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// OVS's `DEFAULT_N_CONN_LIMIT`.
pub const DEFAULT_MAX_ENTRIES: usize = 3_000_000;

/// Timeouts in seconds, named after OVS's timeout policy attributes; the defaults are
/// `ct_dpif_netdev_tp_def[]` of `lib/conntrack-tp.c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtTimeouts {
    pub tcp_syn_sent: u32,
    pub tcp_syn_recv: u32,
    pub tcp_established: u32,
    pub tcp_fin_wait: u32,
    pub tcp_time_wait: u32,
    pub tcp_close: u32,
    pub udp_first: u32,
    pub udp_single: u32,
    pub udp_multiple: u32,
    pub icmp_first: u32,
    pub icmp_reply: u32,
}

impl Default for CtTimeouts {
    fn default() -> Self {
        CtTimeouts {
            tcp_syn_sent: 30,
            tcp_syn_recv: 30,
            tcp_established: 24 * 60 * 60,
            tcp_fin_wait: 15 * 60,
            tcp_time_wait: 45,
            tcp_close: 30,
            udp_first: 60,
            udp_single: 60,
            udp_multiple: 30,
            icmp_first: 60,
            icmp_reply: 30,
        }
    }
}

/// The timeouts the protocol state machines select (`enum ct_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timeout {
    TcpFirstPacket,
    TcpOpening,
    TcpEstablished,
    TcpClosing,
    TcpFinWait,
    TcpClosed,
    OtherFirst,
    OtherMultiple,
    OtherBidir,
    IcmpFirst,
    IcmpReply,
}

impl CtTimeouts {
    /// `tm_to_ct_dpif_tp`: which policy attribute each state uses.
    fn seconds(&self, t: Timeout) -> u32 {
        match t {
            Timeout::TcpFirstPacket => self.tcp_syn_sent,
            Timeout::TcpOpening => self.tcp_syn_recv,
            Timeout::TcpEstablished => self.tcp_established,
            Timeout::TcpClosing => self.tcp_fin_wait,
            Timeout::TcpFinWait => self.tcp_time_wait,
            Timeout::TcpClosed => self.tcp_close,
            Timeout::OtherFirst => self.udp_first,
            // OVS maps "multiple packets one way" to UDP_SINGLE and "both ways" to
            // UDP_MULTIPLE.
            Timeout::OtherMultiple => self.udp_single,
            Timeout::OtherBidir => self.udp_multiple,
            Timeout::IcmpFirst => self.icmp_first,
            Timeout::IcmpReply => self.icmp_reply,
        }
    }
}

/// Tracker configuration.
#[derive(Clone, Copy, Debug)]
pub struct CtConfig {
    /// Most connections tracked at once, all zones together.
    pub max_entries: usize,
    pub timeouts: CtTimeouts,
    /// TCP sequence window checking (`dpctl/ct-enable-tcp-seq-chk`, on by default).
    pub tcp_seq_check: bool,
    /// Seed of the generator used when a NAT port search restarts at a random point.
    pub seed: u64,
}

impl Default for CtConfig {
    fn default() -> Self {
        CtConfig {
            max_entries: DEFAULT_MAX_ENTRIES,
            timeouts: CtTimeouts::default(),
            tcp_seq_check: true,
            seed: 0x5eed_c0de_1234_5678,
        }
    }
}

/// The arguments of one `ct()` action.
#[derive(Clone, Copy, Debug, Default)]
pub struct CtParams<'a> {
    pub zone: u16,
    pub commit: bool,
    pub force: bool,
    pub nat: Option<&'a NatSpec>,
    /// `exec(set_field:V/M->ct_mark)`: value and mask.
    pub mark: Option<(u32, u32)>,
    /// For an existing connection, apply only its source (or destination) manip.
    pub nat_only: Option<NatKind>,
}

/// Why a committed packet did not get a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtRefusal {
    /// The table holds `max_entries` connections.
    TableFull,
    /// NAT found no free tuple in its range.
    NatExhausted,
}

/// What `execute` did to one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtVerdict {
    /// The packet's new `ct_state` (also written into the key).
    pub ct_state: u8,
    /// True when NAT rewrote the frame.
    pub rewritten: bool,
    /// Set when `commit` could not create the connection.
    pub refused: Option<CtRefusal>,
}

/// Tracker counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtStats {
    /// Connections in the table now (expired ones included until `expire` runs).
    pub entries: usize,
    pub created: u64,
    pub refused_full: u64,
    pub nat_exhausted: u64,
    /// Connections removed by `expire`.
    pub expired: u64,
    /// Packets that left `ct()` with `+inv`.
    pub invalid: u64,
}

/// One direction of a connection, as `dump-conntrack` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtTuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16, // 0 for ICMP and protocols without ports
    pub dport: u16,
    pub icmp_id: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
}

/// A connection, as `dpctl/dump-conntrack` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnView {
    pub proto: u8,
    pub orig: CtTuple,
    pub reply: CtTuple,
    pub zone: u16,
    pub mark: u32,
    /// Whole seconds left before expiry, rounded down, 0 when due.
    pub timeout: u32,
    /// TCP only: the originator's and responder's states (`tcp::state`).
    pub tcp_state: Option<(u8, u8)>,
}

/// Per-protocol tracking state.
#[derive(Clone, Copy, Debug)]
enum L4 {
    Tcp(tcp::TcpConn),
    /// `conntrack-other.c`: 0 = first, 1 = multiple (one way), 2 = both ways.
    Other(u8),
    /// `conntrack-icmp.c`: true once a reply was seen.
    Icmp(bool),
}

#[derive(Clone, Debug)]
struct Conn {
    fwd: ConnKey,
    rev: ConnKey,
    nat_action: u8, // `nat::SRC` / `nat::DST` (+ port bits); 0 = no translation
    mark: u32,
    expiration: u64, // ms, on the caller's clock
    l4: L4,
    seq: u64, // creation order, for dumps
}

/// Connections by id: a slab whose ids are indices, reused after removal (the key index is
/// cleaned of an id before the id is given again), so that finding a connection from the
/// index costs no hashing.
#[derive(Debug, Default)]
struct Slab {
    items: Vec<Option<Conn>>,
    free: Vec<u64>,
    len: usize,
}

impl Slab {
    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn get(&self, id: u64) -> Option<&Conn> {
        self.items.get(id as usize)?.as_ref()
    }

    #[inline]
    fn get_mut(&mut self, id: u64) -> Option<&mut Conn> {
        self.items.get_mut(id as usize)?.as_mut()
    }

    fn insert(&mut self, c: Conn) -> u64 {
        self.len += 1;
        match self.free.pop() {
            Some(id) => {
                self.items[id as usize] = Some(c);
                id
            }
            None => {
                self.items.push(Some(c));
                (self.items.len() - 1) as u64
            }
        }
    }

    fn remove(&mut self, id: u64) -> Option<Conn> {
        let c = self.items.get_mut(id as usize)?.take()?;
        self.len -= 1;
        self.free.push(id);
        Some(c)
    }

    fn iter(&self) -> impl Iterator<Item = (u64, &Conn)> + '_ {
        self.items.iter().enumerate().filter_map(|(i, c)| c.as_ref().map(|c| (i as u64, c)))
    }
}

/// The connection tracker: every zone's connections.
#[derive(Debug)]
pub struct Conntrack {
    cfg: CtConfig,
    conns: Slab,
    /// Both keys of every connection → (connection, key is the reply direction).
    index: FastMap<ConnKey, (u64, bool)>,
    next_seq: u64,
    rng: u64,
    stats: CtStats,
    /// The last connection key extracted, for the next `ct` of the same unchanged packet.
    memo: Memo,
    next_memo: u64,
    /// Counts the changes of `index`.
    index_epoch: u64,
}

/// A connection key extracted from a packet, with the token the packet carries for it
/// (`CtMeta::memo`). The extraction is a function of the packet's bytes from its IP header
/// on, so while they have not changed, another `ct` on the packet (typically the `ct(commit)`
/// after a recirculation) reads the key here instead of parsing and validating the headers
/// again. The zone is not part of what is kept: each `ct` sets its own.
#[derive(Clone, Copy, Debug)]
struct Memo {
    token: u64,
    l3: usize,
    l4: usize,
    /// The extraction, written in place (copies of a key just written field by field wait
    /// for those writes); meaningful when `ok`.
    ext: Extracted,
    ok: bool,
    /// What the index gave for the key in a zone: (zone, connection, reply direction,
    /// `index_epoch` then). Good while the index has not changed since.
    found: Option<(u16, u64, bool, u64)>,
}

/// The packet metadata `ct` reads and writes, as OVS keeps it in `struct pkt_metadata`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtMeta {
    pub ct_state: u8,
    pub ct_zone: u16,
    pub ct_mark: u32,
    /// Non-zero: the token of the connection key conntrack extracted from this packet. The
    /// executor sets it to 0 whenever it changes the packet from its IP header on.
    pub memo: u64,
}

/// Which protocol handler OVS picks: by IP protocol alone (`l4_protos[]`).
fn proto_class(nw_proto: u8) -> u8 {
    match nw_proto {
        PROTO_TCP => PROTO_TCP,
        PROTO_ICMP => PROTO_ICMP,
        PROTO_ICMPV6 => PROTO_ICMPV6,
        _ => 0,
    }
}

impl Conntrack {
    pub fn new(cfg: CtConfig) -> Self {
        Conntrack {
            cfg,
            conns: Slab::default(),
            index: FastMap::default(),
            next_seq: 0,
            rng: cfg.seed | 1,
            stats: CtStats::default(),
            memo: Memo {
                token: 0,
                l3: 0,
                l4: 0,
                ext: Extracted::default(),
                ok: false,
                found: None,
            },
            next_memo: 0,
            index_epoch: 0,
        }
    }

    /// Changes the table bound (`dpctl/ct-set-maxconns`); existing entries stay.
    /// The most connections the table holds.
    pub fn max_entries(&self) -> usize {
        self.cfg.max_entries
    }

    pub fn set_max_entries(&mut self, n: usize) {
        self.cfg.max_entries = n;
    }

    /// Connections in the table.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.len() == 0
    }

    pub fn stats(&self) -> CtStats {
        CtStats { entries: self.conns.len(), ..self.stats }
    }

    /// `conn_key_lookup`: the live connection with this key in either direction.
    fn lookup(&self, k: &ConnKey, now: u64) -> Option<(u64, bool)> {
        self.live(self.index.get(k).copied(), now)
    }

    /// The index's answer if its connection is still live: an expired entry is ignored
    /// until swept (`conn_expired()`).
    fn live(&self, found: Option<(u64, bool)>, now: u64) -> Option<(u64, bool)> {
        let (id, reply) = found?;
        let c = self.conns.get(id)?;
        (now < c.expiration).then_some((id, reply))
    }

    /// `lookup` of the key extracted for the packet whose token is `token`, in its zone: the
    /// index's answer is kept with the extraction, and is the same while the index is.
    fn lookup_kept(&mut self, k: &ConnKey, token: u64, now: u64) -> Option<(u64, bool)> {
        let kept = token != 0 && token == self.memo.token;
        let epoch = self.index_epoch;
        let found = match self.memo.found {
            Some((zone, id, reply, at)) if kept && zone == k.zone && at == epoch => {
                Some((id, reply))
            }
            _ => {
                let r = self.index.get(k).copied();
                if kept {
                    self.memo.found = r.map(|(id, reply)| (k.zone, id, reply, epoch));
                }
                r
            }
        };
        self.live(found, now)
    }

    fn remove(&mut self, id: u64) {
        self.index_epoch += 1;
        if let Some(c) = self.conns.remove(id) {
            for k in [c.fwd, c.rev] {
                if self.index.get(&k).map(|e| e.0) == Some(id) {
                    self.index.remove(&k);
                }
            }
        }
    }

    fn arm(&self, c: &mut Conn, t: Timeout, now: u64) {
        c.expiration = now + u64::from(self.cfg.timeouts.seconds(t)) * 1000;
    }

    /// Tracks one packet, as OVS's `conntrack_execute()` for a batch of one.
    ///
    /// `l3` and `l4` are the offsets of the IP and transport headers in `frame`. The key
    /// gives `dl_type` and `nw_frag`, and, on entry, the packet's conntrack metadata from a
    /// previous `ct()` (`ct_state`, `ct_zone`), which OVS also reads. On return the key holds
    /// the new `ct_state`, `ct_zone` and `ct_mark`, and the NATted addresses and ports; the
    /// frame is rewritten with its checksums fixed. `now_ms` is the caller's clock.
    pub fn execute(
        &mut self,
        frame: &mut [u8],
        l3: usize,
        l4: usize,
        key: &mut FlowKey,
        p: &CtParams,
        now_ms: u64,
    ) -> CtVerdict {
        let mut m =
            CtMeta { ct_state: key.ct_state, ct_zone: key.ct_zone, ct_mark: key.ct_mark, memo: 0 };
        let (verdict, h) =
            self.execute_meta(frame, l3, l4, key.dl_type, key.nw_frag, &mut m, p, now_ms);
        key.ct_state = m.ct_state;
        key.ct_zone = m.ct_zone;
        key.ct_mark = m.ct_mark;
        if let (true, Some(h)) = (verdict.rewritten, h) {
            refresh_key(frame, h, key);
        }
        verdict
    }

    /// Puts the connection key of the packet in `self.memo.ext`: the one kept for it
    /// (`m.memo`) if it is still this packet's at these offsets, or else extracted now.
    /// False when the packet has none (it is invalid).
    #[allow(clippy::too_many_arguments)]
    fn extract_memo(
        &mut self,
        frame: &[u8],
        l3: usize,
        l4: usize,
        dl_type: u16,
        nw_frag: u8,
        zone: u16,
        m: &mut CtMeta,
    ) -> bool {
        let kept = &self.memo;
        if m.memo != 0 && m.memo == kept.token && kept.l3 == l3 && kept.l4 == l4 {
            // The kept key's zone is the first `ct`'s: the caller puts its own in its copy.
            return kept.ok;
        }
        self.next_memo = self.next_memo.wrapping_add(1).max(1);
        let memo = &mut self.memo;
        memo.ok = key::extract_into(&mut memo.ext, frame, l3, l4, dl_type, nw_frag, zone).is_some();
        (memo.token, memo.l3, memo.l4, memo.found) = (self.next_memo, l3, l4, None);
        m.memo = self.next_memo;
        memo.ok
    }

    /// `execute` on the packet metadata alone: `dl_type` and `nw_frag` come from the flow
    /// key, `m` is read and written as the key's conntrack fields are. Returns where the
    /// headers are when the packet was tracked, for the caller to re-read what NAT rewrote.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn execute_meta(
        &mut self,
        frame: &mut [u8],
        l3: usize,
        l4: usize,
        dl_type: u16,
        nw_frag: u8,
        m: &mut CtMeta,
        p: &CtParams,
        now_ms: u64,
    ) -> (CtVerdict, Option<Hdrs>) {
        let zone = p.zone;
        let mut verdict = CtVerdict { ct_state: 0, rewritten: false, refused: None };
        if !self.extract_memo(frame, l3, l4, dl_type, nw_frag, zone, m) {
            // conntrack_execute(): an unparsable packet is invalid, with no connection.
            let st = ct_state::INV | ct_state::TRK;
            self.stats.invalid += 1;
            m.ct_state = st;
            m.ct_zone = zone;
            m.ct_mark = 0;
            verdict.ct_state = st;
            return (verdict, None);
        }
        let ext = self.memo.ext;
        let ni = p.nat.map(NatInfo::from_spec);
        let h = Hdrs { l3: ext.l3, l4: ext.l4, end: ext.end };

        // process_one(): reset ct_state whenever entering a new zone.
        let prev_zone = m.ct_zone;
        let mut st = m.ct_state;
        if st != 0 && prev_zone != zone {
            st = 0;
        }
        let natted = st & (ct_state::SNAT | ct_state::DNAT) != 0;

        // initial_conn_lookup(): a packet NATted earlier is found through its reverse key.
        let mut ck = ext.key;
        if ck.zone != zone {
            // (Only when it differs: a key compared right after a narrow store to it would
            // wait for that store.)
            ck.zone = zone;
        }
        let mut reply = false;
        let mut conn = None;
        if natted {
            if let Some((id, r)) = self.lookup(&ck.reverse(), now_ms) {
                reply = !r;
                conn = Some(id);
                if let Some(c) = self.conns.get(id) {
                    ck = if reply { c.rev } else { c.fwd };
                }
            }
        } else if let Some((id, r)) = self.lookup_kept(&ck, m.memo, now_ms) {
            conn = Some(id);
            reply = r;
        }

        // 'force' deletes an entry found in the reply direction, then commits anew.
        if p.force && reply {
            if let Some(id) = conn.take() {
                self.remove(id);
            }
        }

        let mut create_new = false;
        if let Some(id) = conn {
            create_new = self.update_state(id, &ext, reply, &mut st, now_ms);
            if create_new {
                conn = None;
            } else if ni.is_some() {
                let related = ext.related;
                let only = p.nat_only;
                verdict.rewritten =
                    self.handle_nat(frame, h, id, reply, related, prev_zone, zone, only, &mut st);
            }
        } else if ext.related {
            // An ICMP error for an unknown connection never creates one.
            st = ct_state::INV;
        } else {
            create_new = true;
        }

        if create_new && self.lookup(&ck, now_ms).is_none() {
            let r = self.conn_not_found(frame, h, &ext, ck, p.commit, ni, &mut st, now_ms);
            match r {
                Ok(id) => {
                    verdict.rewritten =
                        id.and_then(|i| self.conns.get(i)).is_some_and(|c| c.nat_action != 0);
                    conn = id;
                }
                Err(why) => verdict.refused = Some(why),
            }
        }

        // write_ct_md().
        st |= ct_state::TRK;
        m.ct_state = st;
        m.ct_zone = zone;
        m.ct_mark = conn.and_then(|id| self.conns.get(id)).map_or(0, |c| c.mark);
        if let (Some(id), Some((val, mask))) = (conn, p.mark) {
            // set_mark().
            let mark = val | (m.ct_mark & !mask);
            m.ct_mark = mark;
            if let Some(c) = self.conns.get_mut(id) {
                c.mark = mark;
            }
        }
        if verdict.rewritten {
            // The key kept for the packet is not its key any more.
            m.memo = 0;
        }
        if st & ct_state::INV != 0 {
            self.stats.invalid += 1;
        }
        verdict.ct_state = st;
        (verdict, Some(h))
    }

    /// `conn_update_state()`: runs the protocol's state machine and sets the state bits.
    /// Returns true when the connection must be replaced by a new one.
    fn update_state(
        &mut self,
        id: u64,
        ext: &Extracted,
        reply: bool,
        st: &mut u8,
        now: u64,
    ) -> bool {
        if ext.related {
            *st |= ct_state::REL;
            if reply {
                *st |= ct_state::RPL;
            }
            return false;
        }
        let seq_check = self.cfg.tcp_seq_check;
        let timeouts = &self.cfg.timeouts;
        let Some(c) = self.conns.get_mut(id) else {
            return false;
        };
        let (res, tm) = match &mut c.l4 {
            L4::Tcp(t) => match &ext.tcp {
                Some(seg) => t.update(seg, reply, seq_check),
                None => (tcp::Update::Invalid, None),
            },
            // other_conn_update().
            L4::Other(s) => {
                if reply && *s != 2 {
                    *s = 2;
                } else if *s == 0 {
                    *s = 1;
                }
                let tm = [Timeout::OtherFirst, Timeout::OtherMultiple, Timeout::OtherBidir]
                    [usize::from(*s)];
                let res = if *s == 2 { tcp::Update::Valid } else { tcp::Update::ValidNew };
                (res, Some(tm))
            }
            // icmp_conn_update().
            L4::Icmp(replied) => {
                let mut res = tcp::Update::Valid;
                if reply && !*replied {
                    *replied = true;
                } else if !*replied {
                    res = tcp::Update::ValidNew;
                }
                let tm = if *replied { Timeout::IcmpReply } else { Timeout::IcmpFirst };
                (res, Some(tm))
            }
        };
        if let Some(t) = tm {
            c.expiration = now + u64::from(timeouts.seconds(t)) * 1000;
        }
        let replace = res == tcp::Update::New;
        match res {
            tcp::Update::Valid => {
                *st |= ct_state::EST;
                *st &= !ct_state::NEW;
                if reply {
                    *st |= ct_state::RPL;
                }
            }
            tcp::Update::Invalid => *st = ct_state::INV,
            tcp::Update::New => self.remove(id),
            tcp::Update::ValidNew => *st |= ct_state::NEW,
        }
        replace
    }

    /// `handle_nat()`: applies an existing connection's NAT, unless the packet was already
    /// translated in this zone. Returns true when the frame changed.
    #[allow(clippy::too_many_arguments)]
    fn handle_nat(
        &mut self,
        frame: &mut [u8],
        h: Hdrs,
        id: u64,
        reply: bool,
        related: bool,
        prev_zone: u16,
        zone: u16,
        only: Option<NatKind>,
        st: &mut u8,
    ) -> bool {
        let Some(c) = self.conns.get(id) else {
            return false;
        };
        let nat_bits = ct_state::SNAT | ct_state::DNAT;
        if c.nat_action == 0 || (*st & nat_bits != 0 && zone == prev_zone) {
            return false;
        }
        let (k, action) =
            if reply { (c.fwd, nat::reverse_action(c.nat_action)) } else { (c.rev, c.nat_action) };
        let wanted = match only {
            Some(NatKind::Src) => nat::SRC,
            Some(NatKind::Dst) => nat::DST,
            _ => nat::SRC | nat::DST,
        };
        if action & wanted == 0 {
            return false;
        }
        *st &= !nat_bits;
        *st |= nat::nat_packet(frame, h, &k, action, related);
        action & (nat::SRC | nat::DST) != 0
    }

    /// `valid_new()`: may this packet start a connection?
    fn valid_new(ext: &Extracted) -> bool {
        match proto_class(ext.key.nw_proto) {
            PROTO_TCP => ext.tcp.as_ref().is_some_and(tcp::valid_new),
            // icmp4_valid_new: echo, information and timestamp requests.
            PROTO_ICMP => matches!(ext.icmp_type, 8 | 15 | 13),
            // icmp6_valid_new: echo request.
            PROTO_ICMPV6 => ext.icmp_type == 128,
            _ => true,
        }
    }

    /// `conn_not_found()`: a packet without a connection is `+new` (or `+inv` when it may
    /// not start one); with `commit`, the connection is created and NAT set up.
    #[allow(clippy::too_many_arguments)]
    fn conn_not_found(
        &mut self,
        frame: &mut [u8],
        h: Hdrs,
        ext: &Extracted,
        ck: ConnKey,
        commit: bool,
        ni: Option<NatInfo>,
        st: &mut u8,
        now: u64,
    ) -> Result<Option<u64>, CtRefusal> {
        if !Self::valid_new(ext) {
            *st = ct_state::INV;
            return Ok(None);
        }
        *st = ct_state::NEW;
        if !commit {
            return Ok(None);
        }
        if self.conns.len() >= self.cfg.max_entries {
            self.stats.refused_full += 1;
            return Err(CtRefusal::TableFull);
        }
        let (l4, tm) = match proto_class(ck.nw_proto) {
            PROTO_TCP => match &ext.tcp {
                Some(seg) => (L4::Tcp(tcp::new_conn(seg)), Timeout::TcpFirstPacket),
                None => return Ok(None),
            },
            PROTO_ICMP | PROTO_ICMPV6 => (L4::Icmp(false), Timeout::IcmpFirst),
            _ => (L4::Other(0), Timeout::OtherFirst),
        };
        let mut c = Conn {
            fwd: ck,
            rev: ck.reverse(),
            nat_action: 0,
            mark: 0,
            expiration: 0,
            l4,
            seq: self.next_seq,
        };
        self.arm(&mut c, tm, now);
        if let Some(ni) = ni {
            c.nat_action = ni.action;
            let mut rng = self.rng;
            let ok = {
                let mut exists = |k: &ConnKey| self.lookup(k, now).is_some();
                nat::unique_tuple(&c.fwd, &mut c.rev, &ni, &mut exists, &mut rng)
            };
            self.rng = rng;
            if !ok {
                self.stats.nat_exhausted += 1;
                return Err(CtRefusal::NatExhausted);
            }
            let action = c.nat_action;
            *st |= nat::nat_packet(frame, h, &c.rev, action, ext.related);
        }
        self.next_seq += 1;
        let (fwd, rev) = (c.fwd, c.rev);
        let id = self.conns.insert(c);
        // When keys collide (possible only through odd NAT set-ups), the older entry keeps
        // the index slot.
        self.index.entry(fwd).or_insert((id, false));
        self.index.entry(rev).or_insert((id, true));
        self.index_epoch += 1;
        self.stats.created += 1;
        Ok(Some(id))
    }

    /// Removes every connection whose timeout has passed (OVS's `ct_clean` sweep).
    pub fn expire(&mut self, now_ms: u64) {
        let due: Vec<u64> =
            self.conns.iter().filter(|(_, c)| now_ms >= c.expiration).map(|(id, _)| id).collect();
        self.stats.expired += due.len() as u64;
        for id in due {
            self.remove(id);
        }
    }

    /// `dpctl/flush-conntrack [zone=N]`.
    pub fn flush(&mut self, zone: Option<u16>) {
        let ids: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| zone.is_none_or(|z| c.fwd.zone == z))
            .map(|(id, _)| id)
            .collect();
        for id in ids {
            self.remove(id);
        }
    }

    /// The live connections at `now_ms`, in creation order (`dpctl/dump-conntrack`).
    pub fn dump(&self, now_ms: u64) -> Vec<ConnView> {
        let mut live: Vec<&Conn> =
            self.conns.iter().map(|(_, c)| c).filter(|c| now_ms < c.expiration).collect();
        live.sort_by_key(|c| c.seq);
        live.into_iter()
            .map(|c| ConnView {
                proto: c.fwd.nw_proto,
                orig: tuple(&c.fwd),
                reply: tuple(&c.rev),
                zone: c.fwd.zone,
                mark: c.mark,
                timeout: ((c.expiration - now_ms) / 1000) as u32,
                tcp_state: match &c.l4 {
                    L4::Tcp(t) => Some((t.peer[0].state, t.peer[1].state)),
                    _ => None,
                },
            })
            .collect()
    }
}

/// `conn_key_to_tuple`.
fn tuple(k: &ConnKey) -> CtTuple {
    let addr = |a: &[u8; 16]| {
        if k.dl_type == ETH_TYPE_IP {
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(*a))
        }
    };
    let icmp = k.nw_proto == PROTO_ICMP || k.nw_proto == PROTO_ICMPV6;
    CtTuple {
        src: addr(&k.src.addr),
        dst: addr(&k.dst.addr),
        sport: if icmp { 0 } else { k.src.port },
        dport: if icmp { 0 } else { k.dst.port },
        icmp_id: if icmp { k.src.port } else { 0 },
        icmp_type: if icmp { k.src.icmp_type } else { 0 },
        icmp_code: if icmp { k.src.icmp_code } else { 0 },
    }
}

/// Re-reads the outer addresses and ports into the flow key after NAT, as OVS's re-parse on
/// recirculation would see them.
fn refresh_key(frame: &[u8], h: Hdrs, key: &mut FlowKey) {
    let Some(ip) = frame.get(h.l3..h.end) else {
        return;
    };
    if key.dl_type == ETH_TYPE_IP && ip.len() >= 20 {
        key.nw_src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
        key.nw_dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    } else if ip.len() >= 40 {
        key.ipv6_src.copy_from_slice(&ip[8..24]);
        key.ipv6_dst.copy_from_slice(&ip[24..40]);
    }
    if matches!(key.nw_proto, PROTO_TCP | PROTO_UDP) && h.l4 + 4 <= h.end {
        key.tp_src = u16::from_be_bytes([frame[h.l4], frame[h.l4 + 1]]);
        key.tp_dst = u16::from_be_bytes([frame[h.l4 + 2], frame[h.l4 + 3]]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ofproto::action::NatKind;

    const VM: [u8; 4] = [10, 0, 0, 1];
    const DNS: [u8; 4] = [8, 8, 8, 8];
    const FIP: [u8; 4] = [172, 24, 4, 10];

    /// Independent one's-complement sum for checking what the module wrote.
    fn sum16(data: &[u8], init: u32) -> u16 {
        let mut s = init;
        for c in data.chunks(2) {
            let w =
                if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from(c[0]) << 8 };
            s += u32::from(w);
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// Ethernet + IPv4 around `l4`, IPv4 checksum set, L4 checksum computed when `l4_csum`,
    /// padded to 60 bytes like a real minimum frame.
    fn v4(src: [u8; 4], dst: [u8; 4], proto: u8, mut l4: Vec<u8>, l4_csum: bool) -> Vec<u8> {
        let mut f = vec![0xfa, 0x16, 0x3e, 0, 0, 0xfe, 0x52, 0x54, 0, 0, 0, 1, 0x08, 0x00];
        let tot = 20 + l4.len();
        let mut ip = vec![0x45, 0, (tot >> 8) as u8, tot as u8, 0, 0, 0x40, 0, 64, proto, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let c = sum16(&ip, 0);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let at = match proto {
            6 => 16,
            17 => 6,
            _ => 2,
        };
        if l4_csum {
            let pseudo = if proto == 1 {
                0
            } else {
                let mut p = 0u32;
                for w in [&src, &dst] {
                    p += u32::from(u16::from_be_bytes([w[0], w[1]]));
                    p += u32::from(u16::from_be_bytes([w[2], w[3]]));
                }
                p + u32::from(proto) + l4.len() as u32
            };
            let c = sum16(&l4, pseudo);
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        f.extend_from_slice(&ip);
        f.extend_from_slice(&l4);
        while f.len() < 60 {
            f.push(0);
        }
        f
    }

    fn udp(
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        payload: &[u8],
        cs: bool,
    ) -> Vec<u8> {
        let mut l4 = Vec::new();
        l4.extend_from_slice(&sport.to_be_bytes());
        l4.extend_from_slice(&dport.to_be_bytes());
        l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
        l4.extend_from_slice(payload);
        v4(src, dst, 17, l4, cs)
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut l4 = Vec::new();
        l4.extend_from_slice(&sport.to_be_bytes());
        l4.extend_from_slice(&dport.to_be_bytes());
        l4.extend_from_slice(&seq.to_be_bytes());
        l4.extend_from_slice(&ack.to_be_bytes());
        l4.extend_from_slice(&[0x50, flags, 0x72, 0x10, 0, 0, 0, 0]);
        l4.extend_from_slice(payload);
        v4(src, dst, 6, l4, true)
    }

    fn icmp(src: [u8; 4], dst: [u8; 4], ty: u8, code: u8, rest: &[u8]) -> Vec<u8> {
        let mut l4 = vec![ty, code, 0, 0];
        l4.extend_from_slice(rest);
        v4(src, dst, 1, l4, true)
    }

    fn key_of(f: &[u8]) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.dl_type = u16::from_be_bytes([f[12], f[13]]);
        if k.dl_type == 0x0800 {
            k.nw_src = u32::from_be_bytes([f[26], f[27], f[28], f[29]]);
            k.nw_dst = u32::from_be_bytes([f[30], f[31], f[32], f[33]]);
            k.nw_proto = f[23];
            if k.nw_proto == 1 {
                k.tp_src = u16::from(f[34]);
                k.tp_dst = u16::from(f[35]);
            } else {
                k.tp_src = u16::from_be_bytes([f[34], f[35]]);
                k.tp_dst = u16::from_be_bytes([f[36], f[37]]);
            }
        } else if k.dl_type == 0x86dd {
            k.ipv6_src.copy_from_slice(&f[22..38]);
            k.ipv6_dst.copy_from_slice(&f[38..54]);
            k.nw_proto = f[20];
            k.tp_src = u16::from_be_bytes([f[54], f[55]]);
            k.tp_dst = u16::from_be_bytes([f[56], f[57]]);
        }
        k
    }

    /// Checks the IPv4 header checksum and the L4 checksum of a frame by recomputing them.
    fn assert_v4_checksums(f: &[u8]) {
        let ihl = usize::from(f[14] & 0xf) * 4;
        let tot = usize::from(u16::from_be_bytes([f[16], f[17]]));
        assert_eq!(sum16(&f[14..14 + ihl], 0), 0, "IPv4 header checksum");
        let l4 = &f[14 + ihl..14 + tot];
        let proto = f[23];
        let pseudo = |p: u32| {
            let mut s = p + u32::from(proto) + l4.len() as u32;
            for i in (26..34).step_by(2) {
                s += u32::from(u16::from_be_bytes([f[i], f[i + 1]]));
            }
            s
        };
        match proto {
            6 => assert_eq!(sum16(l4, pseudo(0)), 0, "TCP checksum"),
            17 if l4[6] | l4[7] != 0 => assert_eq!(sum16(l4, pseudo(0)), 0, "UDP checksum"),
            1 => assert_eq!(sum16(l4, 0), 0, "ICMP checksum"),
            _ => {}
        }
    }

    fn snat_spec(a: [u8; 4]) -> NatSpec {
        let ip = IpAddr::V4(Ipv4Addr::from(a));
        NatSpec {
            kind: NatKind::Src,
            addrs: Some((ip, ip)),
            ports: (0, 0),
            random: false,
            hash: false,
            persistent: false,
        }
    }

    fn bare_nat() -> NatSpec {
        NatSpec {
            kind: NatKind::Any,
            addrs: None,
            ports: (0, 0),
            random: false,
            hash: false,
            persistent: false,
        }
    }

    /// Runs `ct()` on a fresh packet (no previous conntrack metadata).
    fn run(ct: &mut Conntrack, f: &mut [u8], p: &CtParams, now: u64) -> (CtVerdict, FlowKey) {
        let mut k = key_of(f);
        let l4 = if k.dl_type == 0x86dd { 54 } else { 34 };
        let v = ct.execute(f, 14, l4, &mut k, p, now);
        (v, k)
    }

    fn dump_lines(ct: &Conntrack, now: u64) -> Vec<String> {
        ct.dump(now).iter().map(|v| format_conn(v, true)).collect()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    use ct_state::{DNAT, EST, INV, NEW, REL, RPL, SNAT, TRK};

    #[test]
    fn udp_snat_round_trip_matches_ovs_oracle() {
        // tools/ovs-oracle-examples/snat-ct: br-ex.flows, int0-in.pcap, ext0-in.pcap and the
        // frames OVS 3.1 emitted (L3 and up; the flows also rewrite the MACs).
        let out_ext = [
            "450000230000400040117a98ac18040a0808080803e80035000f000071756572792d30",
            "450000230000400040117a98ac18040a0808080803e90035000f000071756572792d31",
            "450000230000400040117a98ac18040a0808080803ea0035000f000071756572792d32",
        ];
        let out_int = [
            "4500002400004000401120b9080808080a000001003503e800100000616e737765722d30",
            "4500002400004000401120b9080808080a000001003503e900100000616e737765722d31",
            "4500002400004000401120b9080808080a000001003503ea00100000616e737765722d32",
        ];
        let mut ct = Conntrack::new(CtConfig::default());
        let nat = snat_spec(FIP);
        let commit = CtParams { zone: 1, commit: true, nat: Some(&nat), ..Default::default() };
        for i in 0..3u16 {
            let mut f = udp(VM, DNS, 1000 + i, 53, format!("query-{i}").as_bytes(), false);
            let (v, k) = run(&mut ct, &mut f, &commit, 0);
            assert_eq!(v.ct_state, NEW | TRK | SNAT);
            assert!(v.rewritten);
            assert_eq!(hex(&f[14..14 + 35]), out_ext[usize::from(i)]);
            assert_eq!((k.nw_src, k.tp_src, k.ct_zone), (0xac18_040a, 1000 + i, 1));
        }
        let nat = bare_nat();
        let back = CtParams { zone: 1, nat: Some(&nat), ..Default::default() };
        for i in 0..3u16 {
            let mut f = udp(DNS, FIP, 53, 1000 + i, format!("answer-{i}").as_bytes(), false);
            let (v, k) = run(&mut ct, &mut f, &back, 1000);
            assert_eq!(v.ct_state, EST | RPL | TRK | DNAT);
            assert_eq!(hex(&f[14..14 + 36]), out_int[usize::from(i)]);
            assert_eq!((k.nw_dst, k.tp_dst), (0x0a00_0001, 1000 + i));
        }
        // The unsolicited frame: new, not est, untouched, not remembered.
        let mut f = udp(DNS, FIP, 53, 4444, b"unsolicited", false);
        let before = f.clone();
        let (v, _) = run(&mut ct, &mut f, &back, 1000);
        assert_eq!(v.ct_state, NEW | TRK);
        assert_eq!(f, before);
        // out/conntrack.txt, dumped 2 s after the replies.
        let want = [
            "udp,orig=(src=10.0.0.1,dst=8.8.8.8,sport=1000,dport=53),reply=(src=8.8.8.8,\
             dst=172.24.4.10,sport=53,dport=1000),zone=1,timeout=28",
            "udp,orig=(src=10.0.0.1,dst=8.8.8.8,sport=1001,dport=53),reply=(src=8.8.8.8,\
             dst=172.24.4.10,sport=53,dport=1001),zone=1,timeout=28",
            "udp,orig=(src=10.0.0.1,dst=8.8.8.8,sport=1002,dport=53),reply=(src=8.8.8.8,\
             dst=172.24.4.10,sport=53,dport=1002),zone=1,timeout=28",
        ];
        assert_eq!(dump_lines(&ct, 3000), want);
        assert_eq!(ct.stats().created, 3);
    }

    #[test]
    fn nat_only_applies_one_side_before_and_after_routing() {
        // A namespace's netfilter: destination manips before routing, source manips after.
        let mut ct = Conntrack::new(CtConfig::default());
        let nat = snat_spec(FIP);
        let commit = CtParams { zone: 1, commit: true, nat: Some(&nat), ..Default::default() };
        let mut f = udp(VM, DNS, 1000, 53, b"query", false);
        run(&mut ct, &mut f, &commit, 0);
        let bare = bare_nat();
        let pre = CtParams {
            zone: 1,
            nat: Some(&bare),
            nat_only: Some(NatKind::Dst),
            ..Default::default()
        };
        let post = CtParams {
            zone: 1,
            nat: Some(&bare),
            nat_only: Some(NatKind::Src),
            ..Default::default()
        };

        // Reply: the un-SNAT (a destination manip) before routing, nothing after.
        let mut f = udp(DNS, FIP, 53, 1000, b"answer", false);
        let (v, _) = run(&mut ct, &mut f, &post, 20);
        assert_eq!((v.ct_state, v.rewritten), (EST | RPL | TRK, false), "no source manip");
        let (v, _) = run(&mut ct, &mut f, &pre, 20);
        assert_eq!(v.ct_state, EST | RPL | TRK | DNAT);
        assert_eq!(&f[30..34], &VM);
        let mut k2 = key_of(&f);
        k2.ct_state = v.ct_state;
        k2.ct_zone = 1;
        let after = f.clone();
        let v = ct.execute(&mut f, 14, 34, &mut k2, &post, 20);
        assert_eq!(v.ct_state, EST | RPL | TRK | DNAT, "found again through the NATted tuple");
        assert_eq!(f, after);

        // Original direction: nothing before routing, the SNAT after it.
        let mut f = udp(VM, DNS, 1000, 53, b"query", false);
        let before = f.clone();
        let (v, mut k) = run(&mut ct, &mut f, &pre, 10);
        assert_eq!((v.ct_state, v.rewritten), (EST | TRK, false));
        assert_eq!(f, before);
        let v = ct.execute(&mut f, 14, 34, &mut k, &post, 10);
        assert_eq!((v.ct_state, v.rewritten), (EST | TRK | SNAT, true));
        assert_eq!(k.nw_src, u32::from(Ipv4Addr::from(FIP)));
        assert_v4_checksums(&f);
    }

    #[test]
    fn collision_icmp_and_bare_nat_match_ovs_oracle() {
        // Frames and dump lines produced by OVS 3.1.0 (tools/ovs-oracle, userspace datapath)
        // for the same packets and `ct(commit,zone=1,nat(src=172.24.4.10))` /
        // `ct(commit,zone=2,nat)` / `ct(zone=1,nat)` flows. L3 and up.
        let mut ct = Conntrack::new(CtConfig::default());
        let nat = snat_spec(FIP);
        let snat = CtParams { zone: 1, commit: true, nat: Some(&nat), ..Default::default() };
        let bare = bare_nat();
        let commit_bare =
            CtParams { zone: 2, commit: true, nat: Some(&bare), ..Default::default() };
        let unnat = CtParams { zone: 1, nat: Some(&bare), ..Default::default() };
        let cases: [(Vec<u8>, &CtParams, &str); 5] = [
            (
                udp(VM, DNS, 33000, 53, b"q1", true),
                &snat,
                "4500001e0000400040117a9dac18040a0808080880e80035000a4d597131",
            ),
            (
                udp([10, 0, 0, 2], DNS, 33000, 53, b"q2", true),
                &snat,
                "4500001e0000400040117a9dac18040a0808080880e90035000a4d577132",
            ),
            (
                udp(VM, DNS, 1000, 54, b"bare", true),
                &commit_bare,
                "4500002000004000401120bd0a0000010808080803e80036000c0ce162617265",
            ),
            (
                icmp(VM, DNS, 8, 0, b"\x00\x07\x00\x01ping"),
                &snat,
                "450000200000400040017aabac18040a08080808080019270007000170696e67",
            ),
            (
                udp(DNS, FIP, 53, 33001, b"r2", true),
                &unnat,
                "4500001e00004000401120be080808080a000002003580e8000af2787232",
            ),
        ];
        for (mut f, p, want) in cases {
            run(&mut ct, &mut f, p, 0);
            assert_eq!(hex(&f[14..14 + want.len() / 2]), want);
        }
        let mut lines = dump_lines(&ct, 2000);
        lines.sort();
        assert_eq!(
            lines,
            [
                "icmp,orig=(src=10.0.0.1,dst=8.8.8.8,id=7,type=8,code=0),reply=(src=8.8.8.8,\
                 dst=172.24.4.10,id=7,type=0,code=0),zone=1,timeout=58",
                "udp,orig=(src=10.0.0.1,dst=8.8.8.8,sport=1000,dport=54),reply=(src=0.0.0.0,\
                 dst=10.0.0.1,sport=54,dport=0),zone=2,timeout=58",
                "udp,orig=(src=10.0.0.1,dst=8.8.8.8,sport=33000,dport=53),reply=(src=8.8.8.8,\
                 dst=172.24.4.10,sport=53,dport=33000),zone=1,timeout=58",
                "udp,orig=(src=10.0.0.2,dst=8.8.8.8,sport=33000,dport=53),reply=(src=8.8.8.8,\
                 dst=172.24.4.10,sport=53,dport=33001),zone=1,timeout=28",
            ]
        );
    }

    #[test]
    fn snat_port_collision_allocates_next_port_with_checksums() {
        let mut ct = Conntrack::new(CtConfig::default());
        let nat = snat_spec(FIP);
        let commit = CtParams { zone: 1, commit: true, nat: Some(&nat), ..Default::default() };
        let mut a = udp(VM, DNS, 33000, 53, b"a", true);
        let mut b = udp([10, 0, 0, 2], DNS, 33000, 53, b"b", true);
        run(&mut ct, &mut a, &commit, 0);
        let (v, k) = run(&mut ct, &mut b, &commit, 0);
        assert_eq!(v.ct_state, NEW | TRK | SNAT);
        assert_eq!((k.nw_src, k.tp_src), (0xac18_040a, 33001));
        assert_v4_checksums(&a);
        assert_v4_checksums(&b);
        assert_eq!(&b[26..30], &FIP);
        // The reply to the second translation goes back to 10.0.0.2:33000.
        let nat = bare_nat();
        let back = CtParams { zone: 1, nat: Some(&nat), ..Default::default() };
        let mut r = udp(DNS, FIP, 53, 33001, b"rb", true);
        let (v, k) = run(&mut ct, &mut r, &back, 5);
        assert_eq!(v.ct_state, EST | RPL | TRK | DNAT);
        assert_eq!((k.nw_dst, k.tp_dst), (0x0a00_0002, 33000));
        assert_v4_checksums(&r);
        assert_eq!(
            dump_lines(&ct, 5)[1],
            "udp,orig=(src=10.0.0.2,dst=8.8.8.8,sport=33000,dport=53),reply=(src=8.8.8.8,\
             dst=172.24.4.10,sport=53,dport=33001),zone=1,timeout=30"
        );
    }

    #[test]
    fn udp_states_without_nat() {
        let mut ct = Conntrack::new(CtConfig::default());
        let commit = CtParams { zone: 0, commit: true, ..Default::default() };
        let plain = CtParams::default();
        let mut f = udp(VM, DNS, 1000, 53, b"q", true);
        assert_eq!(run(&mut ct, &mut f.clone(), &plain, 0).0.ct_state, NEW | TRK);
        assert!(ct.is_empty(), "uncommitted connections are not remembered");
        assert_eq!(run(&mut ct, &mut f, &commit, 0).0.ct_state, NEW | TRK);
        // A second packet the same way is still new (OTHERS_MULTIPLE), 60 s.
        assert_eq!(run(&mut ct, &mut f.clone(), &plain, 1000).0.ct_state, NEW | TRK);
        assert_eq!(ct.dump(1000)[0].timeout, 60);
        let mut r = udp(DNS, VM, 53, 1000, b"r", true);
        assert_eq!(run(&mut ct, &mut r, &plain, 2000).0.ct_state, EST | RPL | TRK);
        assert_eq!(run(&mut ct, &mut f, &plain, 3000).0.ct_state, EST | TRK);
        assert_eq!(
            dump_lines(&ct, 3000),
            ["udp,orig=(src=10.0.0.1,dst=8.8.8.8,sport=1000,dport=53),reply=(src=8.8.8.8,\
              dst=10.0.0.1,sport=53,dport=1000),timeout=30"]
        );
        assert_eq!(format_conn(&ct.dump(3000)[0], false).find("timeout"), None);
    }

    #[test]
    fn tcp_handshake_states_and_protoinfo() {
        let mut ct = Conntrack::new(CtConfig::default());
        let commit = CtParams { zone: 5, commit: true, ..Default::default() };
        let plain = CtParams { zone: 5, ..Default::default() };
        let (c, s) = (VM, [10, 0, 0, 9]);
        let mut syn = tcp(c, s, 40000, 80, 0x02, 1000, 0, b"");
        assert_eq!(run(&mut ct, &mut syn, &commit, 0).0.ct_state, NEW | TRK);
        assert!(dump_lines(&ct, 0)[0].ends_with(",zone=5,timeout=30,protoinfo=(state=SYN_SENT)"));
        let mut synack = tcp(s, c, 80, 40000, 0x12, 5000, 1001, b"");
        assert_eq!(run(&mut ct, &mut synack, &plain, 1).0.ct_state, EST | RPL | TRK);
        let mut ack = tcp(c, s, 40000, 80, 0x10, 1001, 5001, b"");
        assert_eq!(run(&mut ct, &mut ack, &plain, 2).0.ct_state, EST | TRK);
        let mut data = tcp(c, s, 40000, 80, 0x18, 1001, 5001, b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(run(&mut ct, &mut data, &plain, 3).0.ct_state, EST | TRK);
        assert_eq!(
            dump_lines(&ct, 3),
            ["tcp,orig=(src=10.0.0.1,dst=10.0.0.9,sport=40000,dport=80),reply=(src=10.0.0.9,\
              dst=10.0.0.1,sport=80,dport=40000),zone=5,timeout=86400,\
              protoinfo=(state=ESTABLISHED)"]
        );
        // Far out of window: invalid, the connection is kept.
        let mut bad = tcp(c, s, 40000, 80, 0x10, 1001 + 0x4000_0000, 5001, b"x");
        assert_eq!(run(&mut ct, &mut bad, &plain, 4).0.ct_state, INV | TRK);
        // A FIN from each side and the last ACK: TIME_WAIT as dump-conntrack shows it.
        let mut fin = tcp(c, s, 40000, 80, 0x11, 1019, 5001, b"");
        assert_eq!(run(&mut ct, &mut fin, &plain, 5).0.ct_state, EST | TRK);
        let mut fin2 = tcp(s, c, 80, 40000, 0x11, 5001, 1020, b"");
        assert_eq!(run(&mut ct, &mut fin2, &plain, 6).0.ct_state, EST | RPL | TRK);
        let mut last = tcp(c, s, 40000, 80, 0x10, 1020, 5002, b"");
        run(&mut ct, &mut last, &plain, 7);
        assert!(dump_lines(&ct, 7)[0].ends_with("timeout=30,protoinfo=(state=TIME_WAIT)"));
        // A new SYN on the closed tuple replaces the connection.
        let mut syn2 = tcp(c, s, 40000, 80, 0x02, 9000, 0, b"");
        assert_eq!(run(&mut ct, &mut syn2, &commit, 8).0.ct_state, NEW | TRK);
        assert!(dump_lines(&ct, 8)[0].ends_with("protoinfo=(state=SYN_SENT)"));
        assert_eq!(ct.len(), 1);
    }

    #[test]
    fn tcp_new_connection_rules() {
        let mut ct = Conntrack::new(CtConfig::default());
        let commit = CtParams { commit: true, ..Default::default() };
        // SYN+ACK may not start a connection; no flags at all is invalid.
        let mut synack = tcp(VM, DNS, 1, 2, 0x12, 1, 1, b"");
        assert_eq!(run(&mut ct, &mut synack, &commit, 0).0.ct_state, INV | TRK);
        let mut none = tcp(VM, DNS, 1, 2, 0x00, 1, 1, b"");
        assert_eq!(run(&mut ct, &mut none, &commit, 0).0.ct_state, INV | TRK);
        assert!(ct.is_empty());
        // OVS picks up established streams: a bare ACK starts a connection.
        let mut ack = tcp(VM, DNS, 1, 2, 0x10, 1, 1, b"");
        assert_eq!(run(&mut ct, &mut ack, &commit, 0).0.ct_state, NEW | TRK);
        assert_eq!(ct.len(), 1);
        // A corrupted TCP checksum is invalid.
        let mut bad = tcp(VM, DNS, 3, 4, 0x02, 1, 0, b"");
        bad[50] ^= 0xff;
        assert_eq!(run(&mut ct, &mut bad, &commit, 0).0.ct_state, INV | TRK);
        assert_eq!(ct.stats().invalid, 3);
    }

    #[test]
    fn icmp_echo_with_snat() {
        let mut ct = Conntrack::new(CtConfig::default());
        let nat = snat_spec(FIP);
        let commit = CtParams { zone: 1, commit: true, nat: Some(&nat), ..Default::default() };
        let mut req = icmp(VM, DNS, 8, 0, &[0, 7, 0, 1, 0xaa, 0xbb]);
        let (v, _) = run(&mut ct, &mut req, &commit, 0);
        assert_eq!(v.ct_state, NEW | TRK | SNAT);
        assert_eq!(&req[26..30], &FIP);
        assert_eq!(&req[38..40], &[0, 7], "the ICMP id is kept");
        assert_v4_checksums(&req);
        let nat = bare_nat();
        let back = CtParams { zone: 1, nat: Some(&nat), ..Default::default() };
        let mut rep = icmp(DNS, FIP, 0, 0, &[0, 7, 0, 1, 0xaa, 0xbb]);
        assert_eq!(run(&mut ct, &mut rep, &back, 10).0.ct_state, EST | RPL | TRK | DNAT);
        assert_eq!(&rep[30..34], &VM);
        assert_v4_checksums(&rep);
        assert_eq!(
            dump_lines(&ct, 10),
            ["icmp,orig=(src=10.0.0.1,dst=8.8.8.8,id=7,type=8,code=0),reply=(src=8.8.8.8,\
              dst=172.24.4.10,id=7,type=0,code=0),zone=1,timeout=30"]
        );
        // An echo reply cannot start a connection; ICMP with a bad checksum is invalid.
        let mut stray = icmp(DNS, VM, 0, 0, &[0, 9, 0, 1]);
        assert_eq!(run(&mut ct, &mut stray, &back, 10).0.ct_state, INV | TRK);
        let mut bad = icmp(VM, DNS, 8, 0, &[0, 9, 0, 1]);
        bad[36] ^= 1;
        assert_eq!(run(&mut ct, &mut bad, &commit, 10).0.ct_state, INV | TRK);
    }

    /// One `ct` on a packet, with the packet's metadata as the executor carries it.
    fn step(ct: &mut Conntrack, f: &mut [u8], m: &mut CtMeta, p: &CtParams, now: u64) -> u8 {
        let k = key_of(f);
        ct.execute_meta(f, 14, 34, k.dl_type, k.nw_frag, m, p, now).0.ct_state
    }

    #[test]
    fn a_kept_key_answers_as_extracting_it_again_would() {
        // `kept` gets each packet's token back from one `ct` to the next, as the executor
        // passes it; `fresh` is never given one, so it extracts and looks up every time.
        let mut kept = Conntrack::new(CtConfig::default());
        let mut fresh = Conntrack::new(CtConfig::default());
        let look = CtParams { zone: 1, ..Default::default() };
        let commit = CtParams { zone: 1, commit: true, ..Default::default() };
        let zone2 = CtParams { zone: 2, commit: true, ..Default::default() };
        let force = CtParams { zone: 1, commit: true, force: true, ..Default::default() };
        let req = udp(VM, DNS, 1000, 53, b"query", true);
        let rep = udp(DNS, VM, 53, 1000, b"answer", true);
        let mut states = Vec::new();
        for round in 0..4u64 {
            let now = round * 10;
            let (mut ma, mut mb) = (CtMeta::default(), CtMeta::default());
            let (mut fa, mut fb) = (req.clone(), req.clone());
            for (i, p) in [&look, &commit, &zone2, &look, &commit].into_iter().enumerate() {
                mb.memo = 0;
                let a = step(&mut kept, &mut fa, &mut ma, p, now);
                let b = step(&mut fresh, &mut fb, &mut mb, p, now);
                assert_eq!((a, ma.ct_zone, ma.ct_mark), (b, mb.ct_zone, mb.ct_mark), "{round} {i}");
                assert_ne!(ma.memo, 0, "the key is kept for the packet");
                states.push(a);
                if round == 1 && i == 0 {
                    // A flush between two `ct`s of a packet: what was kept is gone too.
                    kept.flush(Some(1));
                    fresh.flush(Some(1));
                }
                if round == 2 && i == 0 {
                    // Between two `ct`s of the request, a forced reply replaces its
                    // connection by one the other way round (in the slot just freed).
                    let (mut ra, mut rb) = (rep.clone(), rep.clone());
                    let (mut na, mut nb) = (CtMeta::default(), CtMeta::default());
                    let a = step(&mut kept, &mut ra, &mut na, &force, now);
                    assert_eq!(a, step(&mut fresh, &mut rb, &mut nb, &force, now));
                }
            }
        }
        // The request committed in round 0 is established by nothing: it stays new, until
        // the forced reply makes it the reply direction of a new connection.
        assert_eq!(states[1], NEW | TRK);
        assert_eq!(states[11], EST | RPL | TRK, "round 2, second ct: {states:x?}");
        assert_eq!(kept.stats(), fresh.stats());
    }

    #[test]
    fn a_kept_key_is_for_its_packet_and_offsets_only() {
        let mut ct = Conntrack::new(CtConfig::default());
        let commit = CtParams { zone: 1, commit: true, ..Default::default() };
        let mut good = icmp(VM, DNS, 8, 0, &[0, 7, 0, 1]);
        let mut m = CtMeta::default();
        assert_eq!(step(&mut ct, &mut good, &mut m, &commit, 0), NEW | TRK);
        // Another packet with a stale token is extracted: its bad checksum is seen.
        let mut bad = icmp(VM, DNS, 8, 0, &[0, 9, 0, 1]);
        bad[36] ^= 1;
        let mut stale = CtMeta { memo: m.memo + 1, ..CtMeta::default() };
        assert_eq!(step(&mut ct, &mut bad, &mut stale, &commit, 0), INV | TRK);
        // The same token at other offsets (a VLAN tag pushed) is extracted again.
        let k = key_of(&good);
        let mut m2 = CtMeta { memo: stale.memo, ..CtMeta::default() };
        let v = ct.execute_meta(&mut bad, 14, 30, k.dl_type, k.nw_frag, &mut m2, &commit, 0);
        assert_eq!(v.0.ct_state, INV | TRK);
        // The packet itself, unchanged, gets its connection back from what was kept.
        let mut again = CtMeta { memo: m.memo, ..CtMeta::default() };
        assert_ne!(m.memo, stale.memo);
        let mut bad_meta = CtMeta { memo: stale.memo, ..CtMeta::default() };
        assert_eq!(step(&mut ct, &mut bad, &mut bad_meta, &commit, 0), INV | TRK);
        assert_eq!(step(&mut ct, &mut good, &mut again, &commit, 0), NEW | TRK);
    }

    #[test]
    fn icmp_error_is_related_and_unnatted() {
        let mut ct = Conntrack::new(CtConfig::default());
        let nat = snat_spec(FIP);
        let commit = CtParams { zone: 1, commit: true, nat: Some(&nat), ..Default::default() };
        let mut q = udp(VM, DNS, 1000, 53, b"query", true);
        run(&mut ct, &mut q, &commit, 0);
        // Port unreachable from 8.8.8.8, quoting the translated datagram.
        let quoted = &q[14..14 + 20 + 8 + 5];
        let mut rest = vec![0, 0, 0, 0];
        rest.extend_from_slice(quoted);
        let mut err = icmp(DNS, FIP, 3, 3, &rest);
        let nat = bare_nat();
        let back = CtParams { zone: 1, nat: Some(&nat), ..Default::default() };
        let (v, _) = run(&mut ct, &mut err, &back, 1);
        assert_eq!(v.ct_state, REL | RPL | TRK | DNAT);
        assert_eq!(&err[30..34], &VM, "outer destination un-NATted");
        let inner = &err[42..];
        assert_eq!(&inner[12..16], &VM, "quoted source un-NATted");
        assert_eq!(sum16(&inner[..20], 0), 0, "quoted IPv4 header checksum");
        assert_v4_checksums(&err);
        // The same error for a connection nobody tracks is invalid.
        let mut other = udp(VM, DNS, 2000, 53, b"x", true);
        let mut rest = vec![0, 0, 0, 0];
        other[26..30].copy_from_slice(&FIP);
        rest.extend_from_slice(&other[14..14 + 28]);
        let mut err2 = icmp(DNS, FIP, 3, 3, &rest);
        assert_eq!(run(&mut ct, &mut err2, &back, 1).0.ct_state, INV | TRK);
    }

    #[test]
    fn zones_are_isolated() {
        let mut ct = Conntrack::new(CtConfig::default());
        let mut f = udp(VM, DNS, 1000, 53, b"q", true);
        run(&mut ct, &mut f, &CtParams { zone: 1, commit: true, ..Default::default() }, 0);
        let mut r = udp(DNS, VM, 53, 1000, b"r", true);
        let (v, k) = run(&mut ct, &mut r.clone(), &CtParams { zone: 2, ..Default::default() }, 0);
        assert_eq!((v.ct_state, k.ct_zone), (NEW | TRK, 2));
        let (v, _) = run(&mut ct, &mut r, &CtParams { zone: 1, ..Default::default() }, 0);
        assert_eq!(v.ct_state, EST | RPL | TRK);
        ct.flush(Some(2));
        assert_eq!(ct.len(), 1);
        ct.flush(Some(1));
        assert!(ct.is_empty());
    }

    #[test]
    fn full_table_refuses_new_commits_only() {
        let cfg = CtConfig { max_entries: 2, ..CtConfig::default() };
        let mut ct = Conntrack::new(cfg);
        let commit = CtParams { commit: true, ..Default::default() };
        for p in 0..3u16 {
            let mut f = udp(VM, DNS, 1000 + p, 53, b"q", true);
            let (v, _) = run(&mut ct, &mut f, &commit, 0);
            assert_eq!(v.ct_state, NEW | TRK);
            assert_eq!(v.refused, if p == 2 { Some(CtRefusal::TableFull) } else { None });
        }
        assert_eq!((ct.len(), ct.stats().refused_full), (2, 1));
        let mut r = udp(DNS, VM, 53, 1001, b"r", true);
        assert_eq!(run(&mut ct, &mut r, &commit, 1).0.ct_state, EST | RPL | TRK);
    }

    #[test]
    fn expiry_follows_ovs_timeouts() {
        let mut ct = Conntrack::new(CtConfig::default());
        let commit = CtParams { commit: true, ..Default::default() };
        let mut f = udp(VM, DNS, 1000, 53, b"q", true);
        run(&mut ct, &mut f, &commit, 0);
        let mut r = udp(DNS, VM, 53, 1000, b"r", true);
        // Just before udp_first (60 s) runs out, the reply still finds it ...
        assert_eq!(run(&mut ct, &mut r.clone(), &commit, 59_999).0.ct_state, EST | RPL | TRK);
        // ... which re-arms it for udp_multiple (30 s): due at 89.999 s.
        assert_eq!(ct.dump(59_999)[0].timeout, 30);
        assert!(ct.dump(89_998).len() == 1 && ct.dump(89_998)[0].timeout == 0);
        assert!(ct.dump(89_999).is_empty());
        let plain = CtParams::default();
        assert_eq!(run(&mut ct, &mut r, &plain, 89_999).0.ct_state, NEW | TRK);
        ct.expire(89_998);
        assert_eq!(ct.len(), 1);
        ct.expire(89_999);
        assert_eq!((ct.len(), ct.stats().expired), (0, 1));
    }

    #[test]
    fn mark_is_stored_and_reported() {
        let mut ct = Conntrack::new(CtConfig::default());
        let p = CtParams { commit: true, mark: Some((0x5, 0xff)), ..Default::default() };
        let mut f = udp(VM, DNS, 1000, 53, b"q", true);
        let (_, k) = run(&mut ct, &mut f, &p, 0);
        assert_eq!(k.ct_mark, 5);
        let mut r = udp(DNS, VM, 53, 1000, b"r", true);
        let (_, k) = run(&mut ct, &mut r, &CtParams::default(), 0);
        assert_eq!(k.ct_mark, 5);
        assert!(dump_lines(&ct, 0)[0].ends_with(",timeout=30,mark=5"));
        // Without a connection there is no mark, whatever exec asks.
        let mut other = udp(VM, DNS, 1001, 53, b"q", true);
        let (_, k) = run(&mut ct, &mut other, &CtParams { mark: Some((9, !0)), ..p }, 0);
        assert_eq!(k.ct_mark, 9, "a committed connection takes the mark");
        let mut lone = udp(VM, DNS, 1002, 53, b"q", true);
        let (_, k) =
            run(&mut ct, &mut lone, &CtParams { mark: Some((9, !0)), ..Default::default() }, 0);
        assert_eq!(k.ct_mark, 0);
    }

    #[test]
    fn force_replaces_a_reverse_connection() {
        let mut ct = Conntrack::new(CtConfig::default());
        let commit = CtParams { commit: true, ..Default::default() };
        let mut f = udp(VM, DNS, 1000, 53, b"q", true);
        run(&mut ct, &mut f, &commit, 0);
        let mut r = udp(DNS, VM, 53, 1000, b"r", true);
        let forced = CtParams { commit: true, force: true, ..Default::default() };
        assert_eq!(run(&mut ct, &mut r, &forced, 1).0.ct_state, NEW | TRK);
        let lines = dump_lines(&ct, 1);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("udp,orig=(src=8.8.8.8,dst=10.0.0.1,sport=53,dport=1000)"));
    }

    #[test]
    fn unparsable_packets_are_invalid() {
        let mut ct = Conntrack::new(CtConfig::default());
        let commit = CtParams { zone: 3, commit: true, ..Default::default() };
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let (v, k) = run(&mut ct, &mut arp, &commit, 0);
        assert_eq!((v.ct_state, k.ct_zone), (INV | TRK, 3));
        let mut bad_ip = udp(VM, DNS, 1, 2, b"", true);
        bad_ip[24] ^= 1;
        assert_eq!(run(&mut ct, &mut bad_ip, &commit, 0).0.ct_state, INV | TRK);
        let mut port0 = udp(VM, DNS, 0, 2, b"", true);
        assert_eq!(run(&mut ct, &mut port0, &commit, 0).0.ct_state, INV | TRK);
        let mut frag = udp(VM, DNS, 1, 2, b"", false);
        frag[20] = 0x20; // MF
        let c = sum16(
            &{
                let mut h = frag[14..34].to_vec();
                h[10] = 0;
                h[11] = 0;
                h
            },
            0,
        );
        frag[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(run(&mut ct, &mut frag, &commit, 0).0.ct_state, INV | TRK);
        let mut short = udp(VM, DNS, 1, 2, b"", true);
        let mut k = key_of(&short);
        short.truncate(30);
        let v = ct.execute(&mut short, 14, 34, &mut k, &commit, 0);
        assert_eq!(v.ct_state, INV | TRK);
        // A caller whose L4 offset disagrees with the IP header gets +inv, not a panic.
        let mut f = udp(VM, DNS, 1, 2, b"", true);
        let mut k = key_of(&f);
        assert_eq!(ct.execute(&mut f, 14, 38, &mut k, &commit, 0).ct_state, INV | TRK);
        assert_eq!(ct.execute(&mut f, 900, 920, &mut k, &commit, 0).ct_state, INV | TRK);
        assert!(ct.is_empty());
    }

    #[test]
    fn bare_nat_commit_keeps_ovs_3_1_reply_key() {
        // OVS 3.1 sets up a translation even for a bare `nat` on commit: no address given
        // and no NAT type, so the zero address lands in the reply key and replies miss.
        let mut ct = Conntrack::new(CtConfig::default());
        let nat = bare_nat();
        let p = CtParams { commit: true, nat: Some(&nat), ..Default::default() };
        let mut f = udp(VM, DNS, 1000, 53, b"q", true);
        let before = f.clone();
        assert_eq!(run(&mut ct, &mut f, &p, 0).0.ct_state, NEW | TRK);
        assert_eq!(f, before);
        assert_eq!(
            dump_lines(&ct, 0),
            ["udp,orig=(src=10.0.0.1,dst=8.8.8.8,sport=1000,dport=53),reply=(src=0.0.0.0,\
              dst=10.0.0.1,sport=53,dport=0),timeout=60"]
        );
    }

    fn v6_udp(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x33, 0x33, 0, 0, 0, 1, 0x52, 0x54, 0, 0, 0, 1, 0x86, 0xdd];
        let len = 8 + payload.len();
        f.extend_from_slice(&[0x60, 0, 0, 0, (len >> 8) as u8, len as u8, 17, 64]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        let mut l4 = Vec::new();
        l4.extend_from_slice(&sport.to_be_bytes());
        l4.extend_from_slice(&dport.to_be_bytes());
        l4.extend_from_slice(&(len as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
        l4.extend_from_slice(payload);
        let c = v6_sum(&src, &dst, 17, &l4);
        l4[6..8].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&l4);
        f
    }

    fn v6_sum(src: &[u8], dst: &[u8], proto: u8, l4: &[u8]) -> u16 {
        let mut p = u32::from(proto) + l4.len() as u32;
        for a in [src, dst] {
            for c in a.chunks(2) {
                p += u32::from(u16::from_be_bytes([c[0], c[1]]));
            }
        }
        sum16(l4, p)
    }

    #[test]
    fn ipv6_snat_round_trip() {
        let vm: Ipv6Addr = "fd00::1".parse().unwrap();
        let srv: Ipv6Addr = "2001:db8::53".parse().unwrap();
        let gw: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
        let mut ct = Conntrack::new(CtConfig::default());
        let nat = NatSpec { addrs: Some((IpAddr::V6(gw), IpAddr::V6(gw))), ..snat_spec(FIP) };
        let commit = CtParams { zone: 7, commit: true, nat: Some(&nat), ..Default::default() };
        let mut f = v6_udp(vm.octets(), srv.octets(), 5000, 53, b"q6");
        let (v, k) = run(&mut ct, &mut f, &commit, 0);
        assert_eq!(v.ct_state, NEW | TRK | SNAT);
        assert_eq!(k.ipv6_src, gw.octets());
        assert_eq!(v6_sum(&f[22..38], &f[38..54], 17, &f[54..]), 0);
        let nat = bare_nat();
        let back = CtParams { zone: 7, nat: Some(&nat), ..Default::default() };
        let mut r = v6_udp(srv.octets(), gw.octets(), 53, 5000, b"r6");
        assert_eq!(run(&mut ct, &mut r, &back, 0).0.ct_state, EST | RPL | TRK | DNAT);
        assert_eq!(&r[38..54], &vm.octets());
        assert_eq!(v6_sum(&r[22..38], &r[38..54], 17, &r[54..]), 0);
        assert_eq!(
            dump_lines(&ct, 0),
            ["udp,orig=(src=fd00::1,dst=2001:db8::53,sport=5000,dport=53),reply=(\
              src=2001:db8::53,dst=2001:db8:1::10,sport=53,dport=5000),zone=7,timeout=30"]
        );
    }

    #[test]
    fn second_ct_in_same_zone_does_not_nat_twice() {
        let mut ct = Conntrack::new(CtConfig::default());
        let nat = snat_spec(FIP);
        let commit = CtParams { zone: 1, commit: true, nat: Some(&nat), ..Default::default() };
        let mut f = udp(VM, DNS, 1000, 53, b"q", true);
        let (_, mut k) = run(&mut ct, &mut f, &commit, 0);
        let snapshot = f.clone();
        // Recirculated and tracked again in the same zone with nat: found through its
        // translated key, not translated again.
        let v = ct.execute(&mut f, 14, 34, &mut k, &commit, 1);
        assert_eq!(v.ct_state, NEW | TRK | SNAT);
        assert_eq!(f, snapshot);
        assert_eq!(ct.len(), 1);
    }
}
