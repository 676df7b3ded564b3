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

pub mod emc;
pub mod exec;
pub mod megaflow;
pub mod odp;

use crate::conntrack::Conntrack;
use crate::flow::extract::{extract_with_vlan_limit, OVS_DEFAULT_VLAN_LIMIT};
use crate::flow::key::STAGE_ENDS;
use crate::flow::FlowKey;
use crate::ofproto::table::Rule;
use crate::wire::Packet;
use crate::xlate::{translate, Ofproto, XlateIn};
use emc::Emc;
use megaflow::MegaflowCache;
use odp::{DpAction, DropReason};
use std::sync::Arc;

/// Open vSwitch's limit on recirculations of one packet (MAX_RECIRC_DEPTH).
pub const MAX_RECIRC_DEPTH: u32 = 6;

/// What a megaflow does.
#[derive(Debug)]
pub struct DpFlow {
    pub actions: Vec<DpAction>,
    pub drop: Option<DropReason>,
    pub rules: Vec<Arc<Rule>>,
    /// The key of the packet that created it (re-translated on revalidation).
    pub key: FlowKey,
    pub pushed_packets: u64,
    pub pushed_bytes: u64,
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
    pub ct_state: u8,
    pub ct_zone: u16,
    pub ct_mark: u32,
    pub depth: u32,
    /// OVS's RSS hash of the packet (hash of the 5-tuple), computed on first need.
    pub rss_hash: Option<u32>,
}

impl PacketMd {
    /// Fresh metadata for a packet received on `in_port`.
    pub fn new(in_port: u32) -> PacketMd {
        PacketMd { in_port, ..PacketMd::default() }
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
        key.ct_state = self.ct_state;
        key.ct_zone = self.ct_zone;
        key.ct_mark = self.ct_mark;
    }
}

/// Where output packets go.
pub trait Sink {
    /// `port` transmitted `pkt`.
    fn output(&mut self, port: u32, pkt: &Packet);
}

/// Counters of one datapath.
#[derive(Debug, Default, Clone, Copy)]
pub struct DpStats {
    pub packets: u64, // passes through the datapath (recirculations count again)
    pub emc_hits: u64,
    pub megaflow_hits: u64,
    pub upcalls: u64,
    pub upcall_failures: u64, // megaflow table full: executed without caching
    pub revalidations: u64,
    pub megaflows_removed: u64,
}

/// The outcome of one packet.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub outputs: u32,
    pub drop: Option<DropReason>,
}

/// One node's datapath.
pub struct Datapath {
    pub of: Ofproto,
    pub ct: Conntrack,
    pub megaflows: MegaflowCache<DpFlow>,
    pub emc: Emc,
    pub stats: DpStats,
    need_revalidate: bool,
    work: Vec<(Packet, PacketMd)>,
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
            work: Vec::new(),
        }
    }

    /// Processes one packet received on datapath port `in_port` to completion (through
    /// every recirculation and decapsulation on this node).
    pub fn receive(&mut self, pkt: &mut Packet, in_port: u32, sink: &mut dyn Sink) -> Outcome {
        let mut outcome = Outcome::default();
        self.pass(pkt, PacketMd::new(in_port), sink, &mut outcome);
        while let Some((mut p, md)) = self.work.pop() {
            self.pass(&mut p, md, sink, &mut outcome);
        }
        if outcome.outputs > 0 {
            outcome.drop = None;
        } else if outcome.drop.is_none() {
            outcome.drop = Some(DropReason::ActionDrop);
        }
        outcome
    }

    fn pass(&mut self, pkt: &mut Packet, mut md: PacketMd, sink: &mut dyn Sink, out: &mut Outcome) {
        if md.depth > MAX_RECIRC_DEPTH {
            out.drop = Some(DropReason::RecirculationTooDeep);
            return;
        }
        self.stats.packets += 1;
        let mut key = FlowKey::ZERO;
        md.load_into(&mut key);
        let layers = extract_with_vlan_limit(pkt.data(), &mut key, OVS_DEFAULT_VLAN_LIMIT);
        let bytes = pkt.len() as u64;
        let tcp_flags = key.tcp_flags;
        // Exact-match cache, then megaflows, then an upcall.
        let hash = emc::hash_key(&key);
        let id = match self.emc.lookup(&key, hash, &self.megaflows) {
            Some(id) => {
                self.stats.emc_hits += 1;
                Some(id)
            }
            None => match self.megaflows.lookup(&key) {
                Some((id, _)) => {
                    self.stats.megaflow_hits += 1;
                    self.emc.maybe_insert(&key, hash, id, &self.megaflows);
                    Some(id)
                }
                None => None,
            },
        };
        let (actions, drop) = match id {
            Some(id) => {
                self.megaflows.credit(id, 1, bytes, self.of.now_ms, tcp_flags);
                let f = &self.megaflows.get(id).expect("looked up above").actions;
                (f.actions.clone(), f.drop)
            }
            None => {
                self.stats.upcalls += 1;
                let xo = translate(&mut self.of, &key, XlateIn { side_effects: true });
                for r in &xo.rules {
                    r.credit(1, bytes, self.of.now_ms);
                }
                if xo.tables_changed || xo.macs_changed {
                    self.need_revalidate = true;
                }
                let actions = xo.actions.clone();
                let flow = DpFlow {
                    actions: xo.actions,
                    drop: xo.drop,
                    rules: xo.rules,
                    key,
                    pushed_packets: 0,
                    pushed_bytes: 0,
                };
                let masked = key.masked(&xo.wc);
                if self.megaflows.insert(&masked, &xo.wc, flow).is_err() {
                    self.stats.upcall_failures += 1;
                }
                (actions, xo.drop)
            }
        };
        if let Some(d) = drop {
            out.drop = Some(d);
        }
        let mut ctx = exec::ExecCtx {
            ct: &mut self.ct,
            now_ms: self.of.now_ms,
            sink,
            work: &mut self.work,
            outputs: 0,
            drop: None,
        };
        ctx.execute(pkt, &mut md, &key, layers, &actions);
        out.outputs += ctx.outputs;
        if let Some(d) = ctx.drop {
            out.drop = Some(d);
        }
        if self.need_revalidate {
            self.revalidate();
        }
    }

    /// Re-translates every cached megaflow and removes those whose actions or mask would
    /// now differ (OVS's revalidate_ukey). Called after flow-mods and learning changes.
    pub fn revalidate(&mut self) {
        self.need_revalidate = false;
        self.stats.revalidations += 1;
        self.push_stats();
        let ids: Vec<u32> = self.megaflows.iter().map(|(id, _)| id).collect();
        let mut stale = Vec::new();
        for id in ids {
            let Some(m) = self.megaflows.get(id) else { continue };
            let key = m.actions.key;
            let mask = m.mask;
            let xo = translate(&mut self.of, &key, XlateIn { side_effects: false });
            let f = &self.megaflows.get(id).expect("present").actions;
            let narrower = xo
                .wc
                .words()
                .iter()
                .zip(mask.words().iter())
                .any(|(n, o)| n & !o != 0);
            if narrower || xo.actions != f.actions || xo.drop != f.drop {
                stale.push(id);
            } else if xo.rules.len() != f.rules.len()
                || xo.rules.iter().zip(f.rules.iter()).any(|(a, b)| !Arc::ptr_eq(a, b))
            {
                // Same behaviour, but through different rules: keep counting right.
                stale.push(id);
            }
        }
        for id in stale {
            self.megaflows.remove(id);
            self.stats.megaflows_removed += 1;
        }
        // Removed megaflows change generation, so EMC entries pointing at them are dead.
    }

    /// Pushes megaflow hit counts into the rules they went through.
    pub fn push_stats(&mut self) {
        let now = self.of.now_ms;
        let ids: Vec<u32> = self.megaflows.iter().map(|(id, _)| id).collect();
        for id in ids {
            let Some(m) = self.megaflows.get(id) else { continue };
            let (packets, bytes) = (m.stats.packets, m.stats.bytes);
            let Some(f) = self.megaflows.actions_mut(id) else { continue };
            let (dp, db) = (packets - f.pushed_packets, bytes - f.pushed_bytes);
            if dp > 0 {
                for r in &f.rules {
                    r.credit(dp, db, now);
                }
                f.pushed_packets = packets;
                f.pushed_bytes = bytes;
            }
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
        self.ct.expire(now_ms);
    }
}
