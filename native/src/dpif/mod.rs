//! The fast path of one node: exact-match cache → megaflow cache → upcall (translation),
//! and the execution of datapath actions on packets in place.
//!
//! Invariants:
//! - a packet is forwarded by a megaflow only if translation, run now on that packet, would
//!   give the same actions: every flow-mod and every MAC-learning change revalidates the
//!   cache before the next packet is looked up (`revalidate`);
//! - every packet that enters `receive` is either output at least once or counted under one
//!   `DropReason` (the last one met, across recirculations and decapsulations);
//! - rule counters see every packet: the upcall credits its rules at once, megaflow hits are
//!   pushed into the rules by `push_stats` (as OVS's revalidators do).

pub mod dump;
pub mod emc;
pub mod exec;
pub mod generated;
pub mod megaflow;
pub mod odp;

use crate::conntrack::Conntrack;
use crate::flow::extract::{extract_layers, Layers, OVS_DEFAULT_VLAN_LIMIT};
use crate::flow::key::STAGE_ENDS;
use crate::flow::FlowKey;
use crate::ofproto::table::Rule;
use crate::wire::Packet;
use crate::xlate::{translate, MacDep, Ofproto, XlateIn};
use emc::Emc;
use megaflow::MegaflowCache;
use odp::{DpAction, DpActions, DropReason};
use std::collections::HashMap;
use std::sync::Arc;

/// Open vSwitch's limit on recirculations of one packet (MAX_RECIRC_DEPTH).
pub const MAX_RECIRC_DEPTH: u32 = 6;

/// What a megaflow does. `repr(C)`: what a hit reads comes first, the drop reason, then the
/// actions, whose single output (`DpActions::single_output`) ends in the slot's first line.
#[derive(Debug)]
#[repr(C)]
pub struct DpFlow {
    pub drop: Option<DropReason>,
    pub actions: DpActions,
    pub rules: Vec<(Arc<Rule>, u16)>, // with the extra bytes per packet (see XlateOut)
    /// Shown as OVS's slow-path action in dumps (see XlateOut::slow_path).
    pub slow_path: bool,
    /// Flows its packets learn; refreshed when it is hit.
    pub learned: Vec<(usize, crate::ofproto::action::FlowMod)>,
    /// The key of the packet that created it (re-translated on revalidation).
    pub key: FlowKey,
    pub pushed_packets: u64,
    pub pushed_bytes: u64,
    /// The MAC-learning entries its translation looked up (see XlateOut::mac_deps).
    pub mac_deps: Vec<MacDep>,
    /// When it was installed (datapath clock, ms): its age until a packet uses it.
    pub created_ms: u64,
}

/// Most packets `receive_batch` works on at once (larger bursts are split).
pub const MAX_BURST: usize = 64;

/// Most spare packet buffers kept.
const MAX_POOL: usize = 64;

/// Per-burst scratch space of the fast path.
struct Burst {
    keys: [FlowKey; MAX_BURST],
    hashes: [u32; MAX_BURST],
    layers: [crate::flow::extract::Layers; MAX_BURST],
    emc_pos: [u16; MAX_BURST], // of an EMC candidate (`Emc::candidate`)
    ids: [Option<u32>; MAX_BURST],
    tier: [u8; MAX_BURST], // 0: EMC hit; n: megaflow hit in the n-th subtable searched
    subtable: [u32; MAX_BURST], // of a megaflow hit
    miss: [u8; MAX_BURST],
}

impl Default for Burst {
    fn default() -> Self {
        Burst {
            keys: [FlowKey::ZERO; MAX_BURST],
            hashes: [0; MAX_BURST],
            layers: [crate::flow::extract::Layers::NONE; MAX_BURST],
            emc_pos: [0; MAX_BURST],
            ids: [None; MAX_BURST],
            tier: [0; MAX_BURST],
            subtable: [0; MAX_BURST],
            miss: [0; MAX_BURST],
        }
    }
}

/// Why a pass through the datapath happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassKind {
    /// The packet arrived on a port.
    Received,
    /// It came back from conntrack (`recirc(id)`), with this conntrack state.
    Recirculated { id: u32, ct_state: u8, ct_zone: u16 },
    /// It was decapsulated (`tnl_pop`) and arrived on the tunnel vport.
    Decapsulated { tun_id: u64, tun_src: u32, tun_dst: u32 },
    /// A namespace generated it (an ARP request, an ICMP error); it resumes as `id`.
    Generated { id: u32 },
    /// It waited for a neighbour and was released: it resumes as `id`.
    Released { id: u32 },
}

/// One traced pass: the translation of one packet through one datapath.
#[derive(Clone, Debug)]
pub struct PassTrace {
    pub kind: PassKind,
    /// The datapath key of the pass (in_port is the datapath port).
    pub key: FlowKey,
    pub tree: crate::xlate::trace::Trace,
    pub actions: Vec<DpAction>,
    pub wc: FlowKey,
    pub drop: Option<DropReason>,
    pub initial_flow: FlowKey,
    pub final_flow: FlowKey,
    /// The bridge whose pipeline the pass started in.
    pub bridge: Option<usize>,
    /// Which step added which bits to the megaflow mask.
    pub explain: Vec<(FlowKey, String)>,
}

/// Whose packet a pass carries, for the accounting of inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    /// The input being received (or a copy of it): its outputs and drops are the input's.
    #[default]
    Input,
    /// A packet of input `seq` that waited for a neighbour and was released later.
    Deferred(u64),
    /// A packet the datapath made itself (an ARP request, an ICMP error).
    Generated,
}

/// Per-packet metadata that survives recirculation and decapsulation.
#[derive(Clone, Copy, Debug, Default)]
pub struct PacketMd {
    pub in_port: u32,
    pub recirc_id: u32,
    pub tun_id: u64,
    pub tun_src: u32,
    pub tun_dst: u32,
    pub tun_flags: u8,
    /// `ct_state`, `ct_zone`, `ct_mark`, and the token of the connection key conntrack
    /// keeps for this packet (0 once an action changes the packet from its IP header on).
    pub ct: crate::conntrack::CtMeta,
    pub depth: u32,
    /// OVS's RSS hash of the packet (hash of the 5-tuple), computed on first need.
    pub rss_hash: Option<u32>,
    pub origin: Origin,
    /// This pass starts a generated packet, or one released from a neighbour queue.
    pub start: PassStart,
}

/// How a packet's life in the datapath started, when not by arriving on a port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PassStart {
    #[default]
    Port,
    Generated,
    Released,
}

impl PacketMd {
    /// Fresh metadata for a packet received on `in_port`.
    pub fn new(in_port: u32) -> PacketMd {
        PacketMd { in_port, ..PacketMd::default() }
    }

    /// The packet's RSS hash: the one it got on its first pass, or else the hash of `key`'s
    /// 5-tuple, kept from now on (`key` is the key of its first pass whenever nothing needed
    /// the hash before: a recirculation keeps it).
    #[inline(always)]
    pub fn rss(&mut self, key: &FlowKey) -> u32 {
        *self.rss_hash.get_or_insert_with(|| exec::rss_hash_5tuple(key))
    }

    fn load_into(&self, key: &mut FlowKey) {
        let w = key.words_mut();
        for x in w[..STAGE_ENDS[0]].iter_mut() {
            *x = 0;
        }
        key.in_port = self.in_port;
        key.recirc_id = self.recirc_id;
        key.tun_id = self.tun_id;
        key.tun_src = self.tun_src;
        key.tun_dst = self.tun_dst;
        key.tun_flags = self.tun_flags;
        key.ct_state = self.ct.ct_state;
        key.ct_zone = self.ct.ct_zone;
        key.ct_mark = self.ct.ct_mark;
    }
}

/// Where output packets go.
pub trait Sink {
    /// `port` transmitted `pkt`, a packet of `origin`. Returns true when the frame went on
    /// to another node (the emulated underlay carried it): a hop, not an output of the cloud.
    fn output(&mut self, port: u32, pkt: &Packet, origin: Origin) -> bool;
}

/// Counters of one datapath.
#[derive(Debug, Default, Clone, Copy)]
pub struct DpStats {
    pub packets: u64, // passes through the datapath (recirculations count again)
    pub emc_hits: u64,
    /// Megaflow hits of bursts that left the EMC out, as it did not pay (`Emc::probe_burst`).
    pub emc_bypassed: u64,
    pub megaflow_hits: u64,
    pub upcalls: u64,
    pub upcall_failures: u64, // megaflow table full: executed without caching
    pub revalidations: u64,
    /// Megaflows translated again by revalidation (full or after MAC-learning changes).
    pub retranslations: u64,
    pub megaflows_removed: u64,
    /// Megaflows removed because no packet used them for `max_idle_ms`.
    pub megaflows_expired: u64,
}

/// The outcome of one packet.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub outputs: u32,
    pub drop: Option<DropReason>,
    /// Packets of the input left waiting for a namespace's neighbour (deferred).
    pub queued: u32,
    /// Frames carried to another node by the underlay: hops, not outputs.
    pub carried: u32,
}

/// One node's datapath.
pub struct Datapath {
    pub of: Ofproto,
    pub ct: Conntrack,
    pub megaflows: MegaflowCache<DpFlow>,
    pub emc: Emc,
    pub stats: DpStats,
    need_revalidate: bool,
    /// MAC-learning entries learned or moved since the last revalidation: only the megaflows
    /// that looked them up are revalidated (a flood of new source MACs costs one lookup in
    /// `mac_index` each, not a pass over the whole cache).
    macs_learned: Vec<MacDep>,
    /// Megaflow ids by the MAC-learning entries they depend on. Ids of removed flows linger
    /// until the entry is next revalidated or the index is rebuilt (when it holds more than
    /// twice as many ids as there are megaflows).
    mac_index: HashMap<MacDep, Vec<u32>, foldhash::fast::RandomState>,
    mac_index_ids: usize,
    work: Vec<(Packet, PacketMd)>,
    /// ARP requests, ICMP errors and the packets waiting for a neighbour.
    pub gen: generated::Generated,
    /// When set, every pass is translated afresh (bypassing the caches) with a recorder, and
    /// its trace appended here.
    pub tracing: Option<Vec<PassTrace>>,
    /// Megaflows unused for this long are removed by `expire` (OVS's other_config:max-idle,
    /// 10 s by default there). None keeps them until the cache is full: a replay at top
    /// speed, as the OVS oracle runs one, never reaches the idle time.
    pub max_idle_ms: Option<u64>,
    /// Revalidation after changes of learned state (learn() actions, MAC learning, namespace
    /// neighbours) waits until this many ms of datapath clock have passed since the last one;
    /// 0 revalidates before the next packet (replays, for determinism). OVS's revalidators
    /// run beside the forwarding threads; here they share the thread, and this bounds their
    /// share under a flood of new flows. Flow-mods always revalidate before returning.
    pub revalidate_interval_ms: u64,
    last_revalidation_ms: u64,
    /// Port names instead of numbers in traces.
    pub trace_names: bool,
    /// Scratch space of `receive_batch`.
    burst: Option<Box<Burst>>,
    /// Spare packet buffers (see `exec::ExecCtx::pool`).
    pool: Vec<Packet>,
    /// A key to translate the next traced pass with instead of the one extracted from the
    /// packet: tracing a hand-written flow translates that flow, as ofproto/trace does, while
    /// the packet built from it carries on.
    pub trace_key: Option<FlowKey>,
}

impl Datapath {
    pub fn new(of: Ofproto, ct: Conntrack, megaflow_limit: usize) -> Datapath {
        Datapath {
            of,
            ct,
            megaflows: MegaflowCache::new(megaflow_limit),
            emc: Emc::new(100, 0x5eed),
            stats: DpStats::default(),
            need_revalidate: false,
            macs_learned: Vec::new(),
            mac_index: HashMap::default(),
            mac_index_ids: 0,
            work: Vec::new(),
            gen: generated::Generated::default(),
            tracing: None,
            max_idle_ms: None,
            revalidate_interval_ms: 0,
            last_revalidation_ms: 0,
            trace_names: false,
            trace_key: None,
            burst: Some(Box::default()),
            pool: Vec::new(),
        }
    }

    /// Processes one packet received on datapath port `in_port` to completion (through
    /// every recirculation and decapsulation on this node).
    pub fn receive(&mut self, pkt: &mut Packet, in_port: u32, sink: &mut dyn Sink) -> Outcome {
        self.receive_as(pkt, in_port, Origin::Input, 0, sink)
    }

    /// `receive` for a packet of `origin`; `seq` names the input when its packets are left
    /// waiting for a neighbour (they become `Origin::Deferred(seq)`). Packets released from
    /// neighbour queues and the packets the datapath generates are processed too; only the
    /// passes of `origin` make up the outcome. A deferred packet (released here, or arriving
    /// from another node) is resolved in `gen.resolved` once its fate is known here.
    pub fn receive_as(
        &mut self,
        pkt: &mut Packet,
        in_port: u32,
        origin: Origin,
        seq: u64,
        sink: &mut dyn Sink,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        if !self.gen.waits.is_empty() {
            self.neighbor_timers(origin, sink);
        }
        let mut md = PacketMd::new(in_port);
        md.origin = origin;
        self.pass(pkt, md, sink, &mut outcome);
        self.run_work(sink, origin, &mut outcome);
        if !self.gen.waits.is_empty() || origin != Origin::Input {
            self.neighbors_after(origin, seq, sink, &mut outcome);
        }
        if outcome.outputs > 0 || outcome.queued > 0 || outcome.carried > 0 {
            outcome.drop = None;
        } else if outcome.drop.is_none() {
            outcome.drop = Some(DropReason::ActionDrop);
        }
        outcome
    }

    /// Processes a burst of packets received on `in_port`, each to completion, with the
    /// outcome `receive` would give each one after the other (`outcomes[i]` is packet
    /// `i`'s). The fast path works stage by stage over the burst, as OVS's PMD does: flow
    /// keys and hashes for all packets (prefetching their EMC entries), then the EMC, then
    /// the megaflow cache for the EMC misses, then the actions in arrival order. A packet
    /// that misses every cache, or anything that changes the caches or leaves packets waiting
    /// for a neighbour, sends the rest of the burst through `receive` one by one, so the
    /// results never depend on the burst size.
    pub fn receive_batch(
        &mut self,
        pkts: &mut [Packet],
        in_port: u32,
        sink: &mut dyn Sink,
        outcomes: &mut [Outcome],
    ) {
        let n = pkts.len().min(outcomes.len());
        let mut done = 0;
        while done < n {
            let m = (n - done).min(MAX_BURST);
            let (p, o) = (&mut pkts[done..done + m], &mut outcomes[done..done + m]);
            if self.tracing.is_some() || !self.gen.waits.is_empty() {
                for (p, o) in p.iter_mut().zip(o.iter_mut()) {
                    *o = self.receive(p, in_port, sink);
                }
            } else {
                self.fast_burst(p, in_port, sink, o);
            }
            done += m;
        }
    }

    /// Something that can make an earlier lookup stale: a megaflow installed or removed, or
    /// a revalidation.
    #[inline(always)]
    fn cache_epoch(&self) -> u64 {
        let s = self.megaflows.stats();
        s.inserted + s.removed + self.stats.revalidations + self.stats.upcalls
    }

    #[inline]
    fn fast_burst(
        &mut self,
        pkts: &mut [Packet],
        in_port: u32,
        sink: &mut dyn Sink,
        outcomes: &mut [Outcome],
    ) {
        let n = pkts.len();
        let mut burst = self.burst.take().unwrap_or_default();
        let b = &mut *burst;
        let md = PacketMd::new(in_port);
        for (i, pkt) in pkts.iter().enumerate() {
            let key = &mut b.keys[i];
            md.load_into(key);
            extract_layers(pkt.data(), key, OVS_DEFAULT_VLAN_LIMIT, &mut b.layers[i]);
        }
        // Lookups without side effects: hits are counted, and EMC entries inserted, when
        // the packet is processed below (a packet sent through `receive` instead counts once).
        let mut misses = 0usize;
        let probe_emc = self.emc.probe_burst();
        if probe_emc {
            // Hashed once the burst's keys are written: a key's words read right after the
            // narrower writes that made them would wait for those writes.
            for i in 0..n {
                b.hashes[i] = emc::hash_key(&b.keys[i]);
                self.emc.prefetch(b.hashes[i]);
            }
            for i in 0..n {
                // An EMC candidate is verified when its actions are about to run.
                let c = self.emc.candidate(b.hashes[i], &self.megaflows);
                b.tier[i] = 0;
                if let Some((pos, id)) = c {
                    b.ids[i] = Some(id);
                    b.emc_pos[i] = pos;
                } else {
                    b.ids[i] = None;
                    b.miss[misses] = i as u8;
                    misses += 1;
                }
            }
        } else {
            for i in 0..n {
                b.ids[i] = None;
                b.miss[i] = i as u8;
            }
            misses = n;
        }
        if misses > 0 {
            self.megaflows.probe_indexed(
                &b.keys,
                &b.miss[..misses],
                &mut b.ids,
                &mut b.tier,
                &mut b.subtable,
            );
        }
        let epoch = self.cache_epoch();
        let mut i = 0;
        while i < n {
            let Some(id) = b.ids[i] else { break };
            // Actions beyond a single output, ahead of time: four packets ahead the second
            // line of the flow, two packets ahead a list kept out of line (the first line
            // of a flow has arrived by then, and the second two packets later).
            if let Some(a) = if i + 4 < n { b.ids[i + 4] } else { None } {
                if let Some(f) = self.megaflows.get(a) {
                    if f.actions.actions.single_output().is_none() {
                        self.megaflows.prefetch_flow(a, 1);
                    }
                }
            }
            if let Some(f) =
                if i + 2 < n { b.ids[i + 2] } else { None }.and_then(|a| self.megaflows.get(a))
            {
                if f.actions.actions.single_output().is_none() {
                    if let Some(a) = f.actions.actions.out_of_line_head() {
                        crate::flow::key::prefetch(a);
                    }
                }
            }
            if self.cache_epoch() != epoch || !self.gen.waits.is_empty() {
                break;
            }
            if b.tier[i] == 0
                && !self.emc.verify(&b.keys[i], b.hashes[i], b.emc_pos[i], id, &self.megaflows)
            {
                // Not a hit after all (the entry names another key, or a removed megaflow):
                // the EMC's other place, then the megaflow cache, as `receive` would.
                let found = self.emc.probe_place(&b.keys[i], b.hashes[i], &self.megaflows);
                b.ids[i] = found.map(|(_, id)| id);
                b.emc_pos[i] = found.map_or(0, |(pos, _)| pos);
                if b.ids[i].is_none() {
                    self.megaflows.probe_indexed(
                        &b.keys,
                        &[i as u8],
                        &mut b.ids,
                        &mut b.tier,
                        &mut b.subtable,
                    );
                }
                continue;
            }
            if b.tier[i] == 0 {
                self.emc.count_hit();
                self.stats.emc_hits += 1;
            } else {
                if probe_emc {
                    self.emc.count_miss();
                } else {
                    self.stats.emc_bypassed += 1;
                }
                self.megaflows.count_hit(b.subtable[i], u32::from(b.tier[i]));
                self.stats.megaflow_hits += 1;
                let key = &b.keys[i];
                self.emc.maybe_insert(key, || emc::hash_key(key), id, &self.megaflows);
            }
            // The RSS hash, kept for a recirculated pass and a tunnel's source port.
            let md = if probe_emc { PacketMd { rss_hash: Some(b.hashes[i]), ..md } } else { md };
            self.fast_one(&mut pkts[i], md, &b.keys[i], b.layers[i], id, sink, &mut outcomes[i]);
            i += 1;
        }
        self.burst = Some(burst);
        // The first packet that needs the slow path, and everything after it, go one by one.
        for j in i..n {
            outcomes[j] = self.receive(&mut pkts[j], in_port, sink);
        }
    }

    /// One packet of a burst whose megaflow is known: `receive_as` without the lookups.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn fast_one(
        &mut self,
        pkt: &mut Packet,
        mut md: PacketMd,
        key: &FlowKey,
        layers: crate::flow::extract::Layers,
        id: u32,
        sink: &mut dyn Sink,
        out: &mut Outcome,
    ) {
        // Written in place: a returned outcome, copied whole right after its fields were
        // written one by one, would wait for those writes.
        *out = Outcome::default();
        self.stats.packets += 1;
        self.megaflows.credit(id, 1, pkt.len() as u64, self.of.now_ms, key.tcp_flags);
        self.execute_cached(pkt, &mut md, key, layers, id, sink, out);
        self.revalidate_if_needed();
        if !self.work.is_empty() {
            self.run_work(sink, Origin::Input, out);
        }
        if !self.gen.waits.is_empty() {
            self.neighbors_after(Origin::Input, 0, sink, out);
        }
        if out.outputs > 0 || out.queued > 0 || out.carried > 0 {
            out.drop = None;
        } else if out.drop.is_none() {
            out.drop = Some(DropReason::ActionDrop);
        }
    }

    /// Empties the megaflow cache and the EMC (the rules and learned state stay).
    pub fn flush_caches(&mut self) {
        self.push_stats();
        let n = self.megaflows.flush();
        self.stats.megaflows_removed += n as u64;
        self.emc.clear();
        self.mac_index.clear();
        self.mac_index_ids = 0;
    }

    /// Runs the neighbour timers now (an idle live run calls it every second).
    pub fn neighbor_tick(&mut self, sink: &mut dyn Sink) {
        if !self.gen.waits.is_empty() {
            self.neighbor_timers(Origin::Generated, sink);
        }
    }

    /// ARP requests due again, and neighbours that failed.
    #[cold]
    #[inline(never)]
    fn neighbor_timers(&mut self, origin: Origin, sink: &mut dyn Sink) {
        for (resume, frame) in self.gen.tick(self.of.now_ms) {
            let mut md = PacketMd::new(0);
            md.recirc_id = resume;
            md.origin = Origin::Generated;
            md.start = PassStart::Generated;
            self.work.push((Packet::from_slice(&frame), md));
        }
        self.run_work(sink, origin, &mut Outcome::default());
    }

    /// After a receive: packets whose neighbour was learned go on, until nothing more is
    /// released; the input's packets still waiting are deferred, and a deferred packet's
    /// fate here is recorded.
    #[cold]
    #[inline(never)]
    fn neighbors_after(
        &mut self,
        origin: Origin,
        seq: u64,
        sink: &mut dyn Sink,
        outcome: &mut Outcome,
    ) {
        while !self.gen.waits.is_empty() {
            let released = self.release();
            if released.is_empty() {
                break;
            }
            for (mut p, md) in released {
                if md.origin == origin || !matches!(md.origin, Origin::Deferred(_)) {
                    self.work.push((p, md));
                    continue;
                }
                // A waiting packet of an earlier input: accounted on its own.
                let mut o = Outcome::default();
                let base = self.work.len();
                self.pass(&mut p, md, sink, &mut o);
                while self.work.len() > base {
                    let (mut q, qmd) = self.work.pop().expect("above base");
                    let mut scratch = Outcome::default();
                    let to = if qmd.origin == md.origin { &mut o } else { &mut scratch };
                    self.pass(&mut q, qmd, sink, to);
                }
                self.resolve(md.origin, &o);
            }
            self.run_work(sink, origin, outcome);
        }
        if let Some(d) = self.gen.input_dropped.take() {
            outcome.drop.get_or_insert(d);
        }
        match origin {
            Origin::Input => outcome.queued = self.gen.defer_input(seq),
            Origin::Deferred(_) => self.resolve(origin, outcome),
            _ => {}
        }
    }

    /// Records the fate of a deferred packet on this node: delivered when it was output,
    /// nothing yet when it waits again or went on to another node, else dropped.
    fn resolve(&mut self, origin: Origin, o: &Outcome) {
        let Origin::Deferred(s) = origin else { return };
        if o.outputs > 0 {
            self.gen.resolved.push((s, generated::Resolution::Delivered));
        } else if o.carried == 0 && self.gen.count(origin) == 0 {
            let d = o.drop.unwrap_or(DropReason::ActionDrop);
            self.gen.resolved.push((s, generated::Resolution::Dropped(d)));
        }
    }

    /// Runs the work queue to empty; the passes of `origin` add to `outcome`.
    fn run_work(&mut self, sink: &mut dyn Sink, origin: Origin, outcome: &mut Outcome) {
        let mut other = Outcome::default();
        while let Some((mut p, md)) = self.work.pop() {
            let o = if md.origin == origin { &mut *outcome } else { &mut other };
            self.pass(&mut p, md, sink, o);
            if self.pool.len() < MAX_POOL && p.capacity() > 0 {
                self.pool.push(p);
            }
        }
    }

    /// Takes the queued packets whose neighbour is now known, with their destination MAC
    /// set, ready to be sent out of the interface they waited on.
    fn release(&mut self) -> Vec<(Packet, PacketMd)> {
        let mut out = Vec::new();
        let Datapath { gen, of, .. } = self;
        gen.waits.retain_mut(|w| {
            let Some(ns) = of.namespaces.get(w.req.ns as usize) else { return true };
            let nh = std::net::Ipv4Addr::from(w.req.next_hop);
            let Some(mac) = ns.neighbor(&w.req.oif, nh) else { return true };
            for (mut p, mut md) in w.queue.drain(..) {
                crate::wire::modify::set_eth_dst(&mut p, mac);
                md.start = PassStart::Released;
                out.push((p, md));
            }
            false
        });
        out
    }

    /// Ends the waits for neighbours (the end of a replay): the packets still queued are
    /// dropped and reported in `gen.resolved`.
    pub fn flush_neighbors(&mut self) {
        self.gen.flush();
    }

    fn pass(&mut self, pkt: &mut Packet, mut md: PacketMd, sink: &mut dyn Sink, out: &mut Outcome) {
        if md.depth > MAX_RECIRC_DEPTH {
            out.drop = Some(DropReason::RecirculationTooDeep);
            return;
        }
        self.stats.packets += 1;
        let mut key = FlowKey::ZERO;
        md.load_into(&mut key);
        let mut layers = Layers::NONE;
        extract_layers(pkt.data(), &mut key, OVS_DEFAULT_VLAN_LIMIT, &mut layers);
        let bytes = pkt.len() as u64;
        let tcp_flags = key.tcp_flags;
        if self.tracing.is_some() {
            if let Some(mut k) = self.trace_key.take() {
                k.in_port = key.in_port;
                let w = k.words_mut();
                let kw = key.words();
                w[..crate::flow::key::STAGE_ENDS[0]]
                    .copy_from_slice(&kw[..crate::flow::key::STAGE_ENDS[0]]);
                key = k;
            }
            let (actions, drop) = self.traced_upcall(&key, &md, bytes);
            return self.finish_pass(pkt, md, &key, layers, &actions, drop, sink, out);
        }
        // Exact-match cache, then megaflows, then an upcall.
        let hash = emc::hash_at(md.rss(&key), md.depth);
        let id = match self.emc.lookup(&key, hash, &self.megaflows) {
            Some(id) => {
                self.stats.emc_hits += 1;
                Some(id)
            }
            None => match self.megaflows.lookup(&key) {
                Some((id, _)) => {
                    self.stats.megaflow_hits += 1;
                    self.emc.maybe_insert(&key, || hash, id, &self.megaflows);
                    Some(id)
                }
                None => None,
            },
        };
        match id {
            Some(id) => {
                self.megaflows.credit(id, 1, bytes, self.of.now_ms, tcp_flags);
                self.execute_cached(pkt, &mut md, &key, layers, id, sink, out);
            }
            None => {
                self.stats.upcalls += 1;
                let xo = translate(&mut self.of, &key, XlateIn { side_effects: true });
                for (r, extra) in &xo.rules {
                    r.credit(1, bytes + *extra as u64, self.of.now_ms);
                }
                if self.megaflows.is_full() {
                    // Refused (counted as the cache counts a refusal): executed uncached.
                    self.megaflows.count_refused();
                    self.stats.upcall_failures += 1;
                    self.note_changes(&xo);
                    let (actions, drop) = (xo.actions, xo.drop);
                    self.finish_pass(pkt, md, &key, layers, &actions, drop, sink, out);
                    return;
                }
                // Installed first, then executed from the cache: no copy of the actions.
                match self.install(&key, xo) {
                    Ok(id) => self.execute_cached(pkt, &mut md, &key, layers, id, sink, out),
                    Err(id) => {
                        // A flow with this very match exists (not reachable after a miss,
                        // but its actions are the translation's): counted as a failure.
                        self.stats.upcall_failures += 1;
                        if let Some(id) = id {
                            self.execute_cached(pkt, &mut md, &key, layers, id, sink, out);
                        }
                    }
                }
            }
        }
        self.revalidate_if_needed();
    }

    /// Runs the actions of megaflow `id` on a packet, straight from the cache.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn execute_cached(
        &mut self,
        pkt: &mut Packet,
        md: &mut PacketMd,
        key: &FlowKey,
        layers: crate::flow::extract::Layers,
        id: u32,
        sink: &mut dyn Sink,
        out: &mut Outcome,
    ) {
        let Datapath { megaflows, ct, work, of, gen, pool, .. } = self;
        let Some(f) = megaflows.get(id).map(|m| &m.actions) else { return };
        if let Some(d) = f.drop {
            out.drop = Some(d);
        }
        // `output:N` alone, read from the slot's first line: what `execute` does with it.
        if let Some(port) = f.actions.single_output() {
            if sink.output(port, pkt, md.origin) {
                out.carried += 1;
            } else {
                out.outputs += 1;
            }
            return;
        }
        let mut ctx = exec::ExecCtx {
            ct,
            now_ms: of.now_ms,
            sink,
            work,
            pool,
            gen,
            outputs: 0,
            carried: 0,
            drop: None,
        };
        ctx.execute(pkt, md, key, layers, &f.actions);
        out.outputs += ctx.outputs;
        out.carried += ctx.carried;
        if let Some(d) = ctx.drop {
            out.drop = Some(d);
        }
    }

    /// Installs the megaflow of translation `xo` of `key`; false when the cache refused it
    /// (full). Notes what the translation changed for revalidation.
    fn install(&mut self, key: &FlowKey, xo: crate::xlate::XlateOut) -> Result<u32, Option<u32>> {
        self.note_changes(&xo);
        let flow = DpFlow {
            actions: DpActions::from_vec(xo.actions),
            drop: xo.drop,
            rules: xo.rules,
            slow_path: xo.slow_path,
            learned: xo.learned,
            key: *key,
            pushed_packets: 0,
            pushed_bytes: 0,
            mac_deps: xo.mac_deps,
            created_ms: self.of.now_ms,
        };
        let masked = key.masked(&xo.dp_mask);
        match self.megaflows.insert(&masked, &xo.dp_mask, flow) {
            Ok(id) => {
                self.index_mac_deps(id);
                Ok(id)
            }
            Err(megaflow::InsertError::Exists(id)) => Err(Some(id)),
            Err(megaflow::InsertError::Full) => Err(None),
        }
    }

    /// Notes what translation `xo` changed, for revalidation.
    fn note_changes(&mut self, xo: &crate::xlate::XlateOut) {
        if xo.tables_changed || xo.macs_changed {
            self.need_revalidate = true;
        }
        self.macs_learned.extend_from_slice(&xo.macs_learned);
    }

    fn index_mac_deps(&mut self, id: u32) {
        if self.mac_index_ids > 2 * self.megaflows.len() + 4096 {
            self.mac_index.clear();
            self.mac_index_ids = 0;
            let ids: Vec<u32> = self.megaflows.iter().map(|(id, _)| id).collect();
            for i in ids {
                for d in &self.megaflows.get(i).expect("listed").actions.mac_deps {
                    self.mac_index.entry(*d).or_default().push(i);
                    self.mac_index_ids += 1;
                }
            }
            return;
        }
        if let Some(m) = self.megaflows.get(id) {
            for d in &m.actions.mac_deps {
                self.mac_index.entry(*d).or_default().push(id);
                self.mac_index_ids += 1;
            }
        }
    }

    #[inline(always)]
    fn revalidate_if_needed(&mut self) {
        if self.need_revalidate || !self.macs_learned.is_empty() {
            self.revalidate_due();
        }
    }

    #[inline(never)]
    fn revalidate_due(&mut self) {
        if self.of.now_ms < self.last_revalidation_ms + self.revalidate_interval_ms {
            return;
        }
        self.last_revalidation_ms = self.of.now_ms;
        if self.need_revalidate {
            self.revalidate();
        } else if !self.macs_learned.is_empty() {
            self.revalidate_macs();
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_pass(
        &mut self,
        pkt: &mut Packet,
        mut md: PacketMd,
        key: &FlowKey,
        layers: crate::flow::extract::Layers,
        actions: &[DpAction],
        drop: Option<DropReason>,
        sink: &mut dyn Sink,
        out: &mut Outcome,
    ) {
        if let Some(d) = drop {
            out.drop = Some(d);
        }
        let mut ctx = exec::ExecCtx {
            ct: &mut self.ct,
            now_ms: self.of.now_ms,
            sink,
            work: &mut self.work,
            pool: &mut self.pool,
            gen: &mut self.gen,
            outputs: 0,
            carried: 0,
            drop: None,
        };
        ctx.execute(pkt, &mut md, key, layers, actions);
        out.outputs += ctx.outputs;
        out.carried += ctx.carried;
        if let Some(d) = ctx.drop {
            out.drop = Some(d);
        }
        self.revalidate_if_needed();
    }

    /// Translates a pass afresh with a trace recorder, records it, and installs the megaflow
    /// (so that traced and untraced packets leave the same cache behind).
    fn traced_upcall(
        &mut self,
        key: &FlowKey,
        md: &PacketMd,
        bytes: u64,
    ) -> (Vec<DpAction>, Option<DropReason>) {
        self.stats.upcalls += 1;
        let mut tree = crate::xlate::trace::Trace::new();
        let names = self.trace_names;
        let xo = crate::xlate::translate_traced(
            &mut self.of,
            key,
            XlateIn { side_effects: true },
            Some(&mut tree),
            names,
        );
        for (r, extra) in &xo.rules {
            r.credit(1, bytes + *extra as u64, self.of.now_ms);
        }
        let kind = if md.start == PassStart::Generated {
            PassKind::Generated { id: md.recirc_id }
        } else if md.start == PassStart::Released {
            PassKind::Released { id: md.recirc_id }
        } else if md.recirc_id != 0 {
            PassKind::Recirculated {
                id: md.recirc_id,
                ct_state: md.ct.ct_state,
                ct_zone: md.ct.ct_zone,
            }
        } else if md.tun_flags & crate::flow::key::tun_flags::PRESENT != 0 {
            PassKind::Decapsulated { tun_id: md.tun_id, tun_src: md.tun_src, tun_dst: md.tun_dst }
        } else {
            PassKind::Received
        };
        let bridge = match self.of.dp_ports.get(key.in_port as usize).map(|p| &p.kind) {
            Some(crate::xlate::DpPortKind::Bridge { bridge, .. }) => Some(*bridge),
            _ => None,
        };
        let bridge = if md.recirc_id != 0 {
            self.of.recirc.get(md.recirc_id).map(|f| f.bridge)
        } else {
            bridge.or_else(|| {
                self.of.bridges.iter().position(|b| {
                    b.ports.iter().any(|p| {
                        p.ofport == xo.initial_flow.in_port
                            && matches!(p.kind, crate::xlate::PortKind::Vxlan(_))
                    })
                })
            })
        };
        if let Some(t) = self.tracing.as_mut() {
            t.push(PassTrace {
                kind,
                key: *key,
                tree,
                actions: xo.actions.clone(),
                wc: xo.wc,
                drop: xo.drop,
                initial_flow: xo.initial_flow,
                final_flow: xo.final_flow,
                bridge,
                explain: xo.explain.clone(),
            });
        }
        let actions = xo.actions.clone();
        let drop = xo.drop;
        let _ = self.install(key, xo);
        (actions, drop)
    }

    /// Re-translates every cached megaflow and removes those whose actions or mask would
    /// now differ (OVS's revalidate_ukey). Called after flow-mods and learning changes.
    pub fn revalidate(&mut self) {
        self.need_revalidate = false;
        self.macs_learned.clear();
        self.stats.revalidations += 1;
        self.push_stats();
        let ids: Vec<u32> = self.megaflows.iter().map(|(id, _)| id).collect();
        let stale: Vec<u32> = ids.into_iter().filter(|&id| self.is_stale(id)).collect();
        for id in stale {
            self.megaflows.remove(id);
            self.stats.megaflows_removed += 1;
        }
        // Removed megaflows change generation, so EMC entries pointing at them are dead.
    }

    /// Revalidates the megaflows that looked up a MAC-learning entry learned or moved since
    /// the last revalidation: the only ones whose translation can have changed.
    fn revalidate_macs(&mut self) {
        let learned = std::mem::take(&mut self.macs_learned);
        let mut pushed = false;
        for dep in learned {
            let Some(ids) = self.mac_index.remove(&dep) else { continue };
            self.mac_index_ids -= ids.len();
            let mut keep = Vec::new();
            for id in ids {
                let depends =
                    self.megaflows.get(id).is_some_and(|m| m.actions.mac_deps.contains(&dep));
                if !depends {
                    continue;
                }
                if !pushed {
                    self.push_stats();
                    pushed = true;
                }
                if self.is_stale(id) {
                    self.megaflows.remove(id);
                    self.stats.megaflows_removed += 1;
                } else {
                    keep.push(id);
                }
            }
            if !keep.is_empty() {
                self.mac_index_ids += keep.len();
                self.mac_index.insert(dep, keep);
            }
        }
    }

    /// Whether megaflow `id`, translated again now, would differ: a narrower mask, other
    /// actions or drop reason, or other rules (same behaviour, but counting must follow).
    fn is_stale(&mut self, id: u32) -> bool {
        let Some(m) = self.megaflows.get(id) else { return false };
        self.stats.retranslations += 1;
        let key = m.actions.key;
        let mask = m.mask;
        let xo = translate(&mut self.of, &key, XlateIn { side_effects: false });
        let f = &self.megaflows.get(id).expect("present").actions;
        let narrower = xo.dp_mask.words().iter().zip(mask.words().iter()).any(|(n, o)| n & !o != 0);
        narrower
            || xo.actions[..] != f.actions[..]
            || xo.drop != f.drop
            || xo.rules.len() != f.rules.len()
            || xo.rules.iter().zip(f.rules.iter()).any(|(a, b)| !Arc::ptr_eq(&a.0, &b.0))
    }

    /// Pushes megaflow hit counts into the rules they went through.
    pub fn push_stats(&mut self) {
        let now = self.of.now_ms;
        let mut refresh = Vec::new();
        // Only flows credited since the last push have counters to push.
        for id in self.megaflows.take_credited() {
            let Some(m) = self.megaflows.get(id) else { continue };
            let (packets, bytes, used) = (m.stats.packets, m.stats.bytes, m.stats.used_ms);
            let Some(f) = self.megaflows.actions_mut(id) else { continue };
            let (dp, db) = (packets - f.pushed_packets, bytes - f.pushed_bytes);
            if dp > 0 {
                for (r, extra) in &f.rules {
                    r.credit(dp, db + dp * *extra as u64, now);
                }
                f.pushed_packets = packets;
                f.pushed_bytes = bytes;
                refresh.extend(f.learned.iter().map(|(b, fm)| (*b, fm.clone(), used)));
            }
        }
        // Learned flows used since the last push are refreshed (their hard timeout restarts),
        // as re-executing learn() would; an identical flow is not a table change.
        let mut changed = false;
        for (b, fm, used) in refresh {
            let bridge = &mut self.of.bridges[b];
            changed |= bridge.tables.learn(&fm, &mut self.of.next_rule_id, used);
        }
        if changed {
            self.need_revalidate = true;
        }
    }

    /// Applies an OpenFlow flow-mod to a bridge and revalidates the cache before returning.
    pub fn flow_mod(
        &mut self,
        bridge: usize,
        fm: &crate::ofproto::action::FlowMod,
    ) -> Result<crate::ofproto::table::FlowModResult, crate::ofproto::table::FlowModError> {
        let now = self.of.now_ms;
        let b = &mut self.of.bridges[bridge];
        let r = b.tables.apply(fm, &mut self.of.next_rule_id, now)?;
        if r.changed() {
            self.revalidate();
        }
        Ok(r)
    }

    /// Removes expired rules (idle / hard timeouts) and revalidates if any went.
    pub fn expire(&mut self, now_ms: u64) {
        self.push_stats();
        let mut n = 0;
        for b in &mut self.of.bridges {
            n += b.tables.expire(now_ms);
        }
        if n > 0 {
            self.revalidate();
        }
        if let Some(idle) = self.max_idle_ms {
            let idle_since = now_ms.saturating_sub(idle);
            let old: Vec<u32> = self
                .megaflows
                .iter()
                .filter(|(_, m)| m.stats.used_ms.max(m.actions.created_ms) < idle_since)
                .map(|(id, _)| id)
                .collect();
            for id in old {
                self.megaflows.remove(id);
                self.stats.megaflows_expired += 1;
            }
        }
        self.ct.expire(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::engine::Engine;
    use crate::ofproto::action::FlowModCommand;
    use crate::ofproto::parse::{parse_flow, NoNames};

    /// Records what each port sent.
    #[derive(Default)]
    struct Rec {
        out: Vec<(u32, Vec<u8>)>,
    }

    impl Sink for Rec {
        fn output(&mut self, port: u32, pkt: &Packet, _origin: Origin) -> bool {
            self.out.push((port, pkt.data().to_vec()));
            false
        }
    }

    fn scenario(flows: &[String], megaflow_limit: usize) -> Engine {
        let flows: Vec<serde_json::Value> = flows
            .iter()
            .enumerate()
            .map(|(i, f)| serde_json::json!({"text": f, "source": "test", "line": i + 1}))
            .collect();
        let sc = serde_json::json!({
            "oneNode": true,
            "megaflowLimit": megaflow_limit,
            "nodes": [{"name": "", "bridges": [{
                "name": "br0", "failMode": "secure",
                "ports": [
                    {"name": "p1", "ofport": 1, "type": "dummy"},
                    {"name": "p2", "ofport": 2, "type": "dummy"},
                    {"name": "p3", "ofport": 3, "type": "dummy"},
                    {"name": "p4", "ofport": 4, "type": "dummy"}
                ],
                "flows": flows
            }], "routes": [], "neighbors": []}]
        });
        Engine::from_json(&sc.to_string()).expect("scenario builds")
    }

    fn udp(dst_mac: u8, dst_ip: [u8; 4], dport: u16) -> Vec<u8> {
        let mut f = vec![0x52, 0x54, 0, 0, 0, dst_mac, 0x52, 0x54, 0, 0, 0, 0xaa, 0x08, 0x00];
        let mut ip = vec![0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1];
        ip.extend_from_slice(&dst_ip);
        let c = crate::wire::checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&1000u16.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0, 12, 0, 0, b'd', b'v', b'r', b'l']);
        f
    }

    fn send(e: &mut Engine, port: &str, frame: &[u8]) -> Rec {
        let (n, p) = e.resolve(port).expect("port");
        let mut rec = Rec::default();
        let mut pkt = Packet::from_slice(frame);
        e.nodes[n].dp.receive(&mut pkt, p, &mut rec);
        rec
    }

    fn dp_port(e: &Engine, port: &str) -> u32 {
        e.resolve(port).expect("port").1
    }

    fn eth(src: u8, dst: u8) -> Vec<u8> {
        let mut f = udp(dst, [10, 0, 0, 2], 53);
        f[6..12].copy_from_slice(&[0x52, 0x54, 0, 1, (src >> 4), src]);
        f[..6].copy_from_slice(&[0x52, 0x54, 0, 1, (dst >> 4), dst]);
        f
    }

    /// Sends `frames` into `port` in bursts of at most `MAX_BURST` (`receive_batch`), and
    /// checks that each frame went out once.
    fn send_bursts(dp: &mut Datapath, port: u32, frames: &[impl AsRef<[u8]>], rec: &mut Rec) {
        for chunk in frames.chunks(MAX_BURST) {
            let mut pkts: Vec<Packet> =
                chunk.iter().map(|f| Packet::from_slice(f.as_ref())).collect();
            let mut outcomes = vec![Outcome::default(); pkts.len()];
            dp.receive_batch(&mut pkts, port, rec, &mut outcomes);
            assert!(outcomes.iter().all(|o| o.outputs == 1 && o.drop.is_none()));
        }
    }

    fn ports_of(r: &Rec) -> Vec<u32> {
        r.out.iter().map(|(p, _)| *p).collect()
    }

    #[test]
    fn mac_learning_revalidates_only_the_flows_that_looked_the_mac_up() {
        let mut e = scenario(&["actions=NORMAL".into()], 1 << 20);
        let (p1, p2) = (dp_port(&e, "br0/p1"), dp_port(&e, "br0/p2"));
        // A -> B, B unknown: flooded, and again from the cache.
        let flood = ports_of(&send(&mut e, "br0/p1", &eth(0xa, 0xb)));
        assert!(flood.len() >= 3 && !flood.contains(&p1), "{flood:?}");
        assert_eq!(ports_of(&send(&mut e, "br0/p1", &eth(0xa, 0xb))), flood);
        // B answers from p2: B is learned, and the flooding megaflow for A -> B goes.
        assert_eq!(ports_of(&send(&mut e, "br0/p2", &eth(0xb, 0xa))), vec![p1]);
        assert_eq!(ports_of(&send(&mut e, "br0/p1", &eth(0xa, 0xb))), vec![p2]);
        let before = e.nodes[0].dp.stats;
        // 2000 new source MACs, each learned: nothing cached looked them up, so nothing is
        // translated again, however many megaflows there are.
        for i in 0..2000u32 {
            let mut f = eth(0xc, 0xb);
            f[9..12].copy_from_slice(&i.to_be_bytes()[1..]);
            assert_eq!(ports_of(&send(&mut e, "br0/p3", &f)), vec![p2]);
        }
        let after = e.nodes[0].dp.stats;
        assert_eq!(after.upcalls - before.upcalls, 2000);
        assert_eq!(after.retranslations, before.retranslations);
        assert_eq!(after.revalidations, before.revalidations);
        // B moves to p4: the flows towards B follow it.
        send(&mut e, "br0/p4", &eth(0xb, 0xa));
        let p4 = dp_port(&e, "br0/p4");
        assert_eq!(ports_of(&send(&mut e, "br0/p1", &eth(0xa, 0xb))), vec![p4]);
        assert_eq!(ports_of(&send(&mut e, "br0/p3", &eth(0xc, 0xb))), vec![p4]);
        assert!(e.nodes[0].dp.stats.retranslations - after.retranslations <= 2003);
    }

    #[test]
    fn flow_mod_revalidates_before_returning() {
        let mut e = scenario(&["in_port=1,actions=output:2".into()], 1000);
        let f = udp(2, [10, 0, 0, 2], 53);
        for _ in 0..3 {
            let r = send(&mut e, "br0/p1", &f);
            assert_eq!(r.out.len(), 1);
            assert_eq!(r.out[0].0, dp_port(&e, "br0/p2"));
        }
        assert!(e.nodes[0].dp.stats.megaflow_hits + e.nodes[0].dp.stats.emc_hits >= 2);
        // A higher-priority flow: the very next packet must follow it.
        let fm =
            parse_flow("priority=40000,in_port=1,actions=output:3", FlowModCommand::Add, &NoNames)
                .expect("parses");
        e.nodes[0].dp.flow_mod(0, &fm).expect("applies");
        let r = send(&mut e, "br0/p1", &f);
        assert_eq!(r.out.iter().map(|o| o.0).collect::<Vec<_>>(), vec![dp_port(&e, "br0/p3")]);
        // Deleting every flow: the next packet is dropped, not forwarded by a cached flow.
        let del = parse_flow("", FlowModCommand::Delete, &NoNames).expect("parses");
        e.nodes[0].dp.flow_mod(0, &del).expect("applies");
        let r = send(&mut e, "br0/p1", &f);
        assert!(r.out.is_empty());
    }

    #[test]
    fn rule_counters_include_cached_hits() {
        let mut e = scenario(&["in_port=1,actions=output:2".into()], 1000);
        let f = udp(2, [10, 0, 0, 2], 53);
        for _ in 0..5 {
            send(&mut e, "br0/p1", &f);
        }
        e.nodes[0].dp.push_stats();
        let r = e.nodes[0].dp.of.bridges[0].tables.rules().next().expect("one rule").clone();
        assert_eq!(r.n_packets.load(std::sync::atomic::Ordering::Relaxed), 5);
        assert_eq!(r.n_bytes.load(std::sync::atomic::Ordering::Relaxed), 5 * f.len() as u64);
    }

    #[test]
    fn learned_flows_stay_while_traffic_hits_the_learning_megaflow() {
        let mut e = scenario(
            &[
                "table=0,in_port=1,actions=learn(table=1,hard_timeout=2,priority=5,\
                 NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),output:2"
                    .into(),
                "table=0,in_port=2,actions=resubmit(,1)".into(),
                "table=1,priority=0,actions=output:3".into(),
            ],
            1000,
        );
        let learned = |e: &Engine| e.nodes[0].dp.of.bridges[0].tables.len();
        let f = udp(2, [10, 0, 0, 2], 53);
        // Traffic from p1 every 500 ms for 6 s: the learned flow must never expire.
        for step in 0..12u64 {
            let now = step * 500;
            e.nodes[0].dp.of.now_ms = now;
            e.nodes[0].dp.expire(now);
            send(&mut e, "br0/p1", &f);
            assert_eq!(learned(&e), 4, "at {now} ms");
        }
        // The reply goes back to p1 through the learned flow.
        let mut reply = f.clone();
        reply[0..6].copy_from_slice(&f[6..12]);
        let r = send(&mut e, "br0/p2", &reply);
        assert_eq!(r.out.iter().map(|o| o.0).collect::<Vec<_>>(), vec![dp_port(&e, "br0/p1")]);
        // Once the traffic stops, it expires after its hard timeout, and replies fall through.
        e.nodes[0].dp.of.now_ms = 9000;
        e.nodes[0].dp.expire(9000);
        assert_eq!(learned(&e), 3);
        let r = send(&mut e, "br0/p2", &reply);
        assert_eq!(r.out.iter().map(|o| o.0).collect::<Vec<_>>(), vec![dp_port(&e, "br0/p3")]);
    }

    /// The cache must agree with the slow path: a datapath with megaflows and one that
    /// translates every packet produce the same frames on the same ports, for seeded random
    /// flow tables and packets.
    #[test]
    fn cached_forwarding_equals_translation() {
        for seed in 1..=25u64 {
            let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut next = |n: u64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % n
            };
            let mut flows = Vec::new();
            for _ in 0..12 {
                let prio = 1 + next(5) * 10;
                let m = match next(8) {
                    6 => format!("dl_vlan={}", 10 + next(2)),
                    7 => "vlan_tci=0x0000/0x1000".to_string(),
                    0 => format!("in_port={}", 1 + next(2)),
                    1 => format!("dl_dst=52:54:00:00:00:{:02x}", next(4)),
                    2 => format!("ip,nw_dst=10.0.{}.0/{}", next(3), [16, 24, 30][next(3) as usize]),
                    3 => format!("udp,tp_dst={}", [53, 80, 4789][next(3) as usize]),
                    4 => format!("udp,tp_dst=0x{:x}/0xff00", next(3) << 8),
                    _ => format!("ip,nw_dst=10.0.{}.{}", next(3), next(4)),
                };
                let a = match next(7) {
                    5 => format!("strip_vlan,output:{}", 2 + next(3)),
                    6 => "NORMAL".to_string(),
                    0 => format!("output:{}", 2 + next(3)),
                    1 => format!(
                        "mod_dl_src:02:00:00:00:00:{:02x},output:{}",
                        next(255),
                        2 + next(3)
                    ),
                    2 => format!("mod_nw_dst:10.9.9.{},output:3", next(255)),
                    3 => "drop".to_string(),
                    _ => format!("output:2,output:{}", 3 + next(2)),
                };
                flows.push(format!("priority={prio},{m},actions={a}"));
            }
            let mut cached = scenario(&flows, 100_000);
            let mut slow = scenario(&flows, 0);
            for i in 0..300 {
                let mut f = udp(
                    next(4) as u8,
                    [10, 0, next(3) as u8, next(4) as u8],
                    [53, 80, 4789, 0x0102][next(4) as usize],
                );
                if next(3) == 0 {
                    // A VLAN tag (VID 10 or 11): tagged and untagged packets must never share
                    // a megaflow that treats them alike when the rules do not.
                    let vid = 10 + next(2) as u8;
                    f.splice(12..12, [0x81, 0x00, 0x00, vid]);
                }
                let port = ["br0/p1", "br0/p2"][next(2) as usize];
                let a = send(&mut cached, port, &f);
                let b = send(&mut slow, port, &f);
                assert_eq!(a.out, b.out, "seed {seed}, packet {i}, flows {flows:#?}");
            }
            assert!(cached.nodes[0].dp.stats.upcalls < 300, "seed {seed}: the cache was never hit");
        }
    }

    #[test]
    fn a_burst_tells_apart_keys_that_share_exact_match_places_and_stale_entries() {
        // Two packets with one 5-tuple (so one EMC hash and the same two places) and
        // different destination MACs, each with its own flow.
        let flows = [
            "in_port=1,dl_dst=52:54:00:00:00:02,actions=output:2".to_string(),
            "in_port=1,dl_dst=52:54:00:00:00:03,actions=output:3".to_string(),
        ];
        let (a, b) = (udp(2, [10, 0, 0, 9], 53), udp(3, [10, 0, 0, 9], 53));
        let mut e = scenario(&flows, 100_000);
        let (n, p1) = e.resolve("br0/p1").expect("port");
        let dp = &mut e.nodes[n].dp;
        dp.emc.set_insert_inv_prob(1);
        let burst = |dp: &mut Datapath, frames: &[&Vec<u8>]| {
            let mut rec = Rec::default();
            send_bursts(dp, p1, frames, &mut rec);
            ports_of(&rec)
        };
        let served = |dp: &Datapath| dp.stats.emc_hits + dp.stats.megaflow_hits + dp.stats.upcalls;
        // A is set up and cached; B's probe finds A's entry first, then its own megaflow.
        assert_eq!(burst(dp, &[&a, &a, &b, &b]), [2, 2, 3, 3]);
        let emc = dp.stats.emc_hits;
        assert_eq!(burst(dp, &[&a, &b, &a, &b]), [2, 3, 2, 3]);
        assert_eq!(dp.stats.emc_hits - emc, 4, "both keys are in the EMC, in its two places");
        assert_eq!(served(dp), 8);
        // Megaflows gone, the EMC entries are stale: every packet takes the slow path again.
        let upcalls = dp.stats.upcalls;
        dp.megaflows.flush();
        assert_eq!(burst(dp, &[&a, &b, &a, &b]), [2, 3, 2, 3]);
        assert_eq!(dp.stats.upcalls - upcalls, 2);
        assert_eq!(served(dp), 12);
    }

    #[test]
    fn bursts_leave_the_exact_match_cache_out_while_it_does_not_pay_and_forward_the_same() {
        // One megaflow per rule, thousands of exact-match keys: most EMC probes miss.
        let flows = [
            "in_port=1,ip,nw_dst=10.1.0.0/16,actions=output:3".to_string(),
            "in_port=1,ip,actions=output:2".to_string(),
        ];
        let many: Vec<Vec<u8>> = (0..20_000u32)
            .map(|i| udp(2, [10, (i % 2) as u8, (i >> 8) as u8, i as u8], 53))
            .collect();
        let few: Vec<Vec<u8>> = (0..4u8).map(|i| udp(2, [10, i % 2, 0, i], 53)).collect();
        let run = |adaptive: bool| {
            let mut e = scenario(&flows, 100_000);
            let (n, p1) = e.resolve("br0/p1").expect("port");
            let dp = &mut e.nodes[n].dp;
            dp.emc.set_adaptive(adaptive);
            let mut rec = Rec::default();
            for _ in 0..2 {
                send_bursts(dp, p1, &many, &mut rec);
            }
            let many = dp.stats;
            // The traffic narrows to four keys: the EMC pays again and is probed again.
            let repeated: Vec<Vec<u8>> = few.iter().cycle().take(10_000).cloned().collect();
            send_bursts(dp, p1, &repeated, &mut rec);
            let after_switch = dp.stats;
            send_bursts(dp, p1, &repeated, &mut rec);
            let d = dp.stats;
            assert_eq!(d.emc_hits + d.megaflow_hits + d.upcalls, 60_000, "each packet once");
            let last =
                (d.emc_hits - after_switch.emc_hits, d.emc_bypassed - after_switch.emc_bypassed);
            (ports_of(&rec), many, last)
        };
        let (ports, many, last) = run(true);
        let (ports_always, many_always, last_always) = run(false);
        assert_eq!(ports, ports_always, "the same outputs, packet by packet");
        assert_eq!(&ports[..4], &[2, 3, 2, 3]);
        // Many keys: most bursts left the EMC out (15 of 16 once it is judged not to pay).
        assert!(many.emc_bypassed > 30_000, "{} of 40000 bypassed", many.emc_bypassed);
        assert!(many.emc_hits < 4_000, "{} EMC hits", many.emc_hits);
        assert_eq!(many_always.emc_bypassed, 0);
        // Four keys: after a few probed bursts, every burst probes the EMC again.
        assert_eq!(last, (10_000, 0), "EMC hits and bypassed packets of the last 10000");
        assert_eq!(last_always.1, 0);
    }

    #[test]
    fn a_tunnel_source_port_after_snat_and_recirculation_is_the_same_whether_bursts_probe_the_emc()
    {
        // VM traffic SNATed through conntrack (a recirculation), then VXLAN: the outer
        // source port is the hash of the packet's 5-tuple as it arrived, which a burst that
        // left the EMC out has not computed on the first pass.
        let sc = serde_json::json!({"oneNode": true, "nodes": [{"name": "", "bridges": [
            {"name": "br-int", "failMode": "secure", "ports": [
                {"name": "vm1", "ofport": 1, "type": "dummy", "options": {}},
                {"name": "patch-tun", "ofport": 2, "type": "patch", "options": {},
                 "peer": "patch-int"}],
             "flows": [
                {"text": "table=0,in_port=1,ip,actions=ct(commit,zone=1,nat(src=172.24.4.10),table=1)",
                 "source": "test", "line": 1},
                {"text": "table=1,in_port=1,ip,actions=output:2", "source": "test", "line": 2}]},
            {"name": "br-tun", "failMode": "secure", "ports": [
                {"name": "patch-int", "ofport": 1, "type": "patch", "options": {},
                 "peer": "patch-tun"},
                {"name": "vxlan0", "ofport": 2, "type": "vxlan", "options": {
                    "remote_ip": "192.168.1.13", "local_ip": "192.168.1.12", "key": "flow"}}],
             "flows": [{"text": "in_port=1,actions=set_field:0x42->tun_id,output:2",
                        "source": "test", "line": 1}]},
            {"name": "br-phy", "failMode": "secure", "mac": "aa:55:aa:55:00:12",
             "ip": "192.168.1.12/24",
             "ports": [{"name": "eth0", "ofport": 1, "type": "dummy", "options": {}}],
             "flows": [{"text": "actions=NORMAL", "source": "test", "line": 1}]}],
            "routes": [{"prefix": "192.168.1.0/24", "dev": "br-phy"}],
            "neighbors": [{"dev": "br-phy", "ip": "192.168.1.13", "mac": "aa:bb:cc:00:00:13"}]}]});
        // 3000 connections, twice: many more exact-match keys than the EMC's probes hit.
        let frames: Vec<Vec<u8>> =
            (0..6000u32).map(|i| udp(2, [10, 1, 0, 1], 1000 + (i % 3000) as u16)).collect();
        let run = |adaptive: bool| {
            let mut e = Engine::from_json(&sc.to_string()).expect("scenario builds");
            let (n, p1) = e.resolve("br-int/vm1").expect("port");
            let dp = &mut e.nodes[n].dp;
            dp.emc.set_adaptive(adaptive);
            let mut rec = Rec::default();
            send_bursts(dp, p1, &frames, &mut rec);
            (rec.out, dp.stats.emc_bypassed)
        };
        let (out, bypassed) = run(true);
        let (out_always, none) = run(false);
        assert!(bypassed > 3000, "{bypassed} of 6000 bypassed");
        assert_eq!(none, 0);
        assert_eq!(out.len(), 6000);
        assert!(out == out_always, "the same frames, byte for byte");
        // SNATed inside, and the outer source ports spread by each connection's hash.
        let inner_src = &out[0].1[50 + 26..50 + 30];
        assert_eq!(inner_src, &[172, 24, 4, 10]);
        let sports: std::collections::HashSet<u16> =
            out.iter().map(|(_, f)| u16::from_be_bytes([f[34], f[35]])).collect();
        assert!(sports.len() > 1000, "{} outer source ports", sports.len());
    }

    /// A sink for which port 2 is an underlay: what goes out there is carried, not output.
    #[derive(Default)]
    struct Underlay {
        sent: Vec<u32>,
    }

    impl Sink for Underlay {
        fn output(&mut self, port: u32, _pkt: &Packet, _origin: Origin) -> bool {
            self.sent.push(port);
            port == 2
        }
    }

    #[test]
    fn a_burst_counts_outputs_and_carried_frames_as_each_packet_alone_does() {
        let flows = [
            "in_port=1,ip,nw_dst=10.0.0.2,actions=output:2".to_string(),
            "in_port=1,ip,nw_dst=10.0.0.3,actions=output:3".to_string(),
            "in_port=1,ip,nw_dst=10.0.0.4,actions=output:2,output:3".to_string(),
            "in_port=1,ip,nw_dst=10.0.0.5,actions=drop".to_string(),
        ];
        let frames: Vec<Vec<u8>> =
            [2u8, 3, 4, 5, 2, 3, 4, 5, 2].iter().map(|&d| udp(1, [10, 0, 0, d], 53)).collect();
        // Three bursts: the first sets the megaflows up, the others hit the caches.
        let mut e = scenario(&flows, 100_000);
        let (n, p1) = e.resolve("br0/p1").expect("port");
        let mut burst_sink = Underlay::default();
        let mut burst = Vec::new();
        for _ in 0..3 {
            let mut pkts: Vec<Packet> = frames.iter().map(|f| Packet::from_slice(f)).collect();
            let mut outcomes = vec![Outcome::default(); pkts.len()];
            e.nodes[n].dp.receive_batch(&mut pkts, p1, &mut burst_sink, &mut outcomes);
            burst.extend(outcomes.iter().map(|o| (o.outputs, o.carried, o.drop)));
        }
        assert!(e.nodes[n].dp.stats.emc_hits + e.nodes[n].dp.stats.megaflow_hits >= 18);
        let mut slow = scenario(&flows, 0);
        let mut one_sink = Underlay::default();
        let mut one = Vec::new();
        for _ in 0..3 {
            for f in &frames {
                let o = slow.nodes[n].dp.receive(&mut Packet::from_slice(f), p1, &mut one_sink);
                one.push((o.outputs, o.carried, o.drop));
            }
        }
        assert_eq!(burst, one);
        assert_eq!(burst_sink.sent, one_sink.sent);
        assert_eq!(
            &burst[..4],
            &[(0, 1, None), (1, 0, None), (1, 1, None), (0, 0, Some(DropReason::ActionDrop)),]
        );
    }
}
