//! Packets the datapath makes itself, on behalf of an emulated namespace: ARP requests for
//! a next hop it does not know (with the packets waiting for the answer), and ICMP errors.
//!
//! Linux's behaviour, with its defaults:
//! - a packet to a neighbour without an entry waits in that neighbour's queue
//!   (`unres_qlen_bytes` = 212992 bytes of socket-buffer truesize; when full the oldest is
//!   dropped); the first ARP request goes at once, then one per `retrans_time` (1 s) up to
//!   `mcast_solicit` (3); one second after the last unanswered request the entry fails and
//!   the queue is dropped;
//! - an ICMP error goes to the same peer at most once per `icmp_ratelimit` (1000 ms) after a
//!   burst of six (`inet_peer_xrlim_allow`, XRLIM_BURST_FACTOR); it carries as much of the
//!   offending packet as fits in 576 bytes, TOS `(tos & 0x1e) | 0xc0`, TTL 64.
//!
//! Invariants:
//! - a queued packet belongs to exactly one wait entry until it is released (its neighbour
//!   was learned), dropped (queue full, resolution failed, flushed at the end of a run);
//! - every packet of an input that leaves the queue other than by release is reported once
//!   in `resolved` when its input's accounting is still open.

use super::odp::{DropReason, NeighQueue};
use super::{Origin, PacketMd};
use crate::wire::checksum::checksum as csum;
use crate::wire::Packet;
use std::collections::{HashMap, VecDeque};

/// `retrans_time` and `mcast_solicit` of a Linux neighbour table (ARP).
pub const RETRANS_MS: u64 = 1000;
pub const MCAST_SOLICIT: u32 = 3;
/// `unres_qlen_bytes`.
pub const UNRES_QLEN_BYTES: usize = 212_992;
/// What a queued packet costs against `unres_qlen_bytes`: its length plus the socket
/// buffer's overhead (SKB_TRUESIZE's sk_buff and skb_shared_info, 576 bytes on x86_64).
pub fn truesize(len: usize) -> usize {
    len + 576
}
/// `icmp_ratelimit` and the burst `inet_peer_xrlim_allow` allows.
pub const ICMP_RATELIMIT_MS: u64 = 1000;
pub const ICMP_BURST: u64 = 6;
/// The most an ICMP error carries: 576 bytes in all (`icmp_send`).
pub const ICMP_ERROR_MAX: usize = 576;

/// One neighbour being resolved, and what waits for it.
pub struct NeighWait {
    pub req: NeighQueue,
    pub started_ms: u64,
    pub last_probe_ms: u64,
    pub probes: u32,
    pub queue: VecDeque<(Packet, PacketMd)>,
    pub bytes: usize,
}

/// How a deferred input's packet left the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Released and sent on (at least one output).
    Delivered,
    Dropped(DropReason),
}

/// The generated-packet state of one datapath.
#[derive(Default)]
pub struct Generated {
    pub waits: Vec<NeighWait>,
    /// (zone of the namespace, destination) -> (tokens in ms, last refill in ms).
    icmp_peers: HashMap<(u16, u32), (u64, u64)>,
    /// Per namespace: the next IPv4 identification of the packets it generates.
    ip_id: HashMap<u16, u16>,
    /// Deferred inputs' packets that left the queue, for the caller's accounting.
    pub resolved: Vec<(u64, Resolution)>,
    /// Frames generated (ARP requests, ICMP errors) and ICMP errors not sent for the rate
    /// limit.
    pub frames: u64,
    pub icmp_rate_limited: u64,
    /// The current input's packets dropped from a full queue in this receive.
    pub input_dropped: Option<DropReason>,
}

/// An ARP request (42 bytes) from `sha`/`spa` for `tpa`, broadcast.
pub fn arp_request(sha: [u8; 6], spa: u32, tpa: u32) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.to_be_bytes());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa.to_be_bytes());
    f
}

/// The ICMP error `typ`/`code` from `src` about the IPv4 packet `ip` (from its header on),
/// with zero Ethernet addresses for the namespace's routing to fill. None when `ip` is not
/// an IPv4 packet.
pub fn icmp_error(ip: &[u8], typ: u8, code: u8, src: u32, id: u16) -> Option<Vec<u8>> {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let total = (u16::from_be_bytes([ip[2], ip[3]]) as usize).clamp(20, ip.len());
    let room = total.min(ICMP_ERROR_MAX - 28);
    let len = 28 + room;
    let mut f = Vec::with_capacity(14 + len);
    f.extend_from_slice(&[0; 12]);
    f.extend_from_slice(&[0x08, 0x00]);
    let tos = (ip[1] & 0x1e) | 0xc0;
    f.extend_from_slice(&[0x45, tos]);
    f.extend_from_slice(&(len as u16).to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&[0, 0, 64, 1, 0, 0]);
    f.extend_from_slice(&src.to_be_bytes());
    f.extend_from_slice(&ip[12..16]);
    let c = csum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&[typ, code, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&ip[..room]);
    let c = csum(&f[34..]);
    f[36..38].copy_from_slice(&c.to_be_bytes());
    Some(f)
}

impl Generated {
    /// Whether an ICMP error from namespace zone `zone` to `dst` may go now (and takes its
    /// token).
    pub fn icmp_allow(&mut self, zone: u16, dst: u32, now_ms: u64) -> bool {
        let cap = ICMP_BURST * ICMP_RATELIMIT_MS;
        let e = self.icmp_peers.entry((zone, dst)).or_insert((cap, now_ms));
        let tokens = (e.0 + now_ms.saturating_sub(e.1)).min(cap);
        e.1 = now_ms;
        if tokens >= ICMP_RATELIMIT_MS {
            e.0 = tokens - ICMP_RATELIMIT_MS;
            true
        } else {
            e.0 = tokens;
            self.icmp_rate_limited += 1;
            false
        }
    }

    /// The IPv4 identification for the next packet namespace zone `zone` generates.
    pub fn next_ip_id(&mut self, zone: u16) -> u16 {
        let id = self.ip_id.entry(zone).or_insert(1);
        let v = *id;
        *id = id.wrapping_add(1);
        v
    }

    /// Queues `pkt` for the neighbour `q` names. Returns the ARP request to send when this
    /// starts a resolution.
    pub fn enqueue(
        &mut self,
        q: &NeighQueue,
        pkt: Packet,
        md: PacketMd,
        now_ms: u64,
    ) -> Option<Vec<u8>> {
        let at = self
            .waits
            .iter()
            .position(|w| w.req.ns == q.ns && w.req.next_hop == q.next_hop && w.req.oif == q.oif);
        let (w, request) = match at {
            Some(i) => (&mut self.waits[i], None),
            None => {
                self.waits.push(NeighWait {
                    req: q.clone(),
                    started_ms: now_ms,
                    last_probe_ms: now_ms,
                    probes: 1,
                    queue: VecDeque::new(),
                    bytes: 0,
                });
                let w = self.waits.last_mut().expect("pushed");
                (w, Some(arp_request(q.sha, q.spa, q.next_hop)))
            }
        };
        let size = truesize(pkt.len());
        while !w.queue.is_empty() && w.bytes + size > UNRES_QLEN_BYTES {
            let (old, omd) = w.queue.pop_front().expect("not empty");
            w.bytes -= truesize(old.len());
            match omd.origin {
                Origin::Deferred(seq) => {
                    self.resolved.push((seq, Resolution::Dropped(DropReason::NsNeighQueueFull)))
                }
                Origin::Input => self.input_dropped = Some(DropReason::NsNeighQueueFull),
                _ => {}
            }
        }
        w.bytes += size;
        w.queue.push_back((pkt, md));
        if request.is_some() {
            self.frames += 1;
        }
        request
    }

    /// Timers at `now_ms`: the ARP requests due again, as (resume recirculation, frame); the
    /// entries whose last request went unanswered for `RETRANS_MS` fail, dropping their queue.
    pub fn tick(&mut self, now_ms: u64) -> Vec<(u32, Vec<u8>)> {
        let mut send = Vec::new();
        let mut i = 0;
        while i < self.waits.len() {
            let w = &mut self.waits[i];
            if now_ms >= w.last_probe_ms + RETRANS_MS {
                if w.probes >= MCAST_SOLICIT {
                    let w = self.waits.remove(i);
                    self.fail(w, DropReason::NsNoNeighbor);
                    continue;
                }
                w.probes += 1;
                w.last_probe_ms = now_ms;
                send.push((w.req.resume, arp_request(w.req.sha, w.req.spa, w.req.next_hop)));
                self.frames += 1;
            }
            i += 1;
        }
        send
    }

    fn fail(&mut self, w: NeighWait, reason: DropReason) {
        for (_, md) in w.queue {
            if let Origin::Deferred(seq) = md.origin {
                self.resolved.push((seq, Resolution::Dropped(reason)));
            }
        }
    }

    /// Drops everything still waiting (the end of a replay: its clock stops with the last
    /// packet, before the requests could be answered or time out).
    pub fn flush(&mut self) {
        for w in std::mem::take(&mut self.waits) {
            self.fail(w, DropReason::NsNoNeighbor);
        }
    }

    /// The input's packets still queued become deferred under `seq`; returns how many.
    pub fn defer_input(&mut self, seq: u64) -> u32 {
        let mut n = 0;
        for w in &mut self.waits {
            for (_, md) in w.queue.iter_mut() {
                if md.origin == Origin::Input {
                    md.origin = Origin::Deferred(seq);
                    n += 1;
                }
            }
        }
        n
    }

    /// Packets of `origin` queued now.
    pub fn count(&self, origin: Origin) -> usize {
        self.waits.iter().flat_map(|w| w.queue.iter()).filter(|(_, md)| md.origin == origin).count()
    }

    /// Packets queued now.
    pub fn queued(&self) -> usize {
        self.waits.iter().map(|w| w.queue.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_request_layout() {
        let f = arp_request([2, 0, 0, 0, 0, 1], 0x0a00_0001, 0x0a00_0004);
        assert_eq!(f.len(), 42);
        assert_eq!(&f[..6], &[0xff; 6]);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[28..32], &[10, 0, 0, 1]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &[10, 0, 0, 4]);
    }

    #[test]
    fn icmp_error_quotes_at_most_548_bytes_and_checksums() {
        let mut ip = vec![0u8; 1000];
        ip[0] = 0x45;
        ip[1] = 0x2e;
        ip[2..4].copy_from_slice(&1000u16.to_be_bytes());
        ip[8] = 1;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 4]);
        ip[16..20].copy_from_slice(&[8, 8, 8, 8]);
        let f = icmp_error(&ip, 11, 0, 0x0a00_0001, 7).unwrap();
        assert_eq!(f.len(), 14 + 576);
        assert_eq!(f[15], 0xce); // (0x2e & 0x1e) | 0xc0
        assert_eq!(f[22], 64);
        assert_eq!(&f[26..30], &[10, 0, 0, 1]);
        assert_eq!(&f[30..34], &[10, 0, 0, 4]);
        assert_eq!(csum(&f[14..34]), 0);
        assert_eq!(csum(&f[34..]), 0);
        assert_eq!(&f[42..62], &ip[..20]);
        // A short packet is quoted whole, by its IP length and not the frame's padding.
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        let f = icmp_error(&ip, 3, 1, 1, 1).unwrap();
        assert_eq!(f.len(), 14 + 28 + 40);
    }

    #[test]
    fn rate_limit_allows_a_burst_of_six_then_one_per_second() {
        let mut g = Generated::default();
        let sent = (0..10).filter(|_| g.icmp_allow(1, 9, 5000)).count();
        assert_eq!(sent, 6);
        assert!(!g.icmp_allow(1, 9, 5999));
        assert!(g.icmp_allow(1, 9, 6001));
        assert!(g.icmp_allow(1, 10, 6001), "another peer has its own bucket");
    }

    fn q() -> NeighQueue {
        NeighQueue {
            ns: 0,
            oif: "qr-x".into(),
            next_hop: 5,
            sha: [2, 0, 0, 0, 0, 1],
            spa: 1,
            resume: 3,
        }
    }

    #[test]
    fn three_requests_then_the_queue_fails() {
        let mut g = Generated::default();
        let mut md = PacketMd::new(1);
        md.origin = Origin::Deferred(42);
        assert!(g.enqueue(&q(), Packet::from_slice(&[0; 60]), md, 0).is_some());
        assert!(g.enqueue(&q(), Packet::from_slice(&[0; 60]), md, 10).is_none());
        assert!(g.tick(999).is_empty());
        assert_eq!(g.tick(1000).len(), 1);
        assert_eq!(g.tick(2000).len(), 1);
        assert!(g.tick(2999).is_empty());
        assert!(g.resolved.is_empty());
        assert!(g.tick(3000).is_empty());
        assert_eq!(g.resolved, vec![(42, Resolution::Dropped(DropReason::NsNoNeighbor)); 2]);
        assert_eq!(g.queued(), 0);
        assert_eq!(g.frames, 3);
    }

    #[test]
    fn a_full_queue_drops_the_oldest() {
        let mut g = Generated::default();
        let per = truesize(1500);
        let fit = UNRES_QLEN_BYTES / per;
        for i in 0..=fit as u64 {
            let mut md = PacketMd::new(1);
            md.origin = Origin::Deferred(i);
            g.enqueue(&q(), Packet::from_slice(&[0; 1500]), md, 0);
        }
        assert_eq!(g.queued(), fit);
        assert_eq!(g.resolved, vec![(0, Resolution::Dropped(DropReason::NsNeighQueueFull))]);
    }
}
