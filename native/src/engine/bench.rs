//! In-memory benchmarks of one node's datapath: a workload of frames held in memory is pushed
//! through the node again and again, and the fast path, the slow path and the I/O ceiling
//! are timed separately.
//!
//! - `forward`: one untimed warm-up pass fills the caches, then passes are timed until
//!   `min_seconds` have gone by (at least `passes`). Outputs are counted, not written.
//! - `setup`: the megaflow cache, the EMC and conntrack are emptied before each timed pass,
//!   so every distinct flow of the workload costs an upcall: slow-path setups per second,
//!   and new conntrack connections per second when the path commits connections.
//! - The timed loop is one function, `bench_timed_loop`, never inlined, so that callgrind can
//!   count its instructions alone (`--toggle-collect=*bench_timed_loop*`).
//!
//! Frames go through `Datapath::receive_batch` in bursts of `BATCH` packets, as a poll-mode
//! driver hands them over; frames of a burst that arrive on different ports are split into
//! runs of one port each.
//!
//! With `threads` above one, the workload is split by the RSS hash of each frame's 5-tuple
//! (as a NIC spreads flows over receive queues, so a flow stays on one thread) and each
//! thread runs its share through a datapath of its own, built from the same scenario: as
//! each PMD thread of OVS has its own exact-match cache and megaflow table. The threads warm
//! up, wait for each other, then time their passes over the same window; the rate is the
//! sum of theirs.

use super::Engine;
use crate::dpif::{Datapath, Origin, Outcome, Sink};
use crate::wire::Packet;
use std::sync::Barrier;
use std::time::Instant;

/// Most threads a benchmark runs.
pub const MAX_THREADS: u32 = 64;

/// Packets handed to the datapath at once.
pub const BATCH: usize = 32;

/// A workload: frames, each with the datapath port of one node it arrives on.
#[derive(Default, Clone)]
pub struct Workload {
    pub node: usize,
    data: Vec<u8>,
    frames: Vec<(u32, u32, u32)>, // (port, offset, length)
}

impl Workload {
    pub fn new(node: usize) -> Workload {
        Workload { node, ..Workload::default() }
    }

    pub fn push(&mut self, port: u32, frame: &[u8]) {
        self.frames.push((port, self.data.len() as u32, frame.len() as u32));
        self.data.extend_from_slice(frame);
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.frames.iter().map(|f| u64::from(f.2)).sum()
    }

    /// The workload split into `n` by the RSS hash of each frame's 5-tuple, in order.
    pub fn split(&self, n: usize) -> Vec<Workload> {
        let n = n.max(1);
        let mut out = vec![Workload::new(self.node); n];
        for i in 0..self.len() {
            let (port, f) = self.frame(i);
            let mut key = crate::flow::FlowKey::ZERO;
            crate::flow::extract::extract(f, &mut key);
            let hash = crate::dpif::exec::rss_hash_5tuple(&key);
            out[hash as usize % n].push(port, f);
        }
        out
    }

    fn frame(&self, i: usize) -> (u32, &[u8]) {
        let (port, off, len) = self.frames[i];
        (port, &self.data[off as usize..(off + len) as usize])
    }
}

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchMode {
    Forward,
    Setup,
}

/// Figures of the timed passes of one run.
#[derive(Debug, Default, Clone)]
pub struct BenchFigures {
    pub packets: u64,
    pub bytes: u64,
    pub outputs: u64,
    pub dropped: u64,
    pub seconds: f64,
    pub passes: u32,
    pub emc_hits: u64,
    /// Of `megaflow_hits`, those of bursts that left the EMC out, as it did not pay.
    pub emc_bypassed: u64,
    pub megaflow_hits: u64,
    pub upcalls: u64,
    pub megaflows: u64,
    pub subtables: u64,
    pub conntrack: u64,
    /// Connections conntrack created during the timed passes.
    pub conntrack_new: u64,
    /// Several threads: each one's figures (the fields above add them up, `seconds` is the
    /// longest, and the rates are the sums of theirs).
    pub threads: Vec<BenchFigures>,
}

impl BenchFigures {
    pub fn pps(&self) -> f64 {
        self.per_second(|f| f.packets)
    }

    /// `field` per second: over the timed seconds, or the sum of the threads' rates.
    fn per_second(&self, field: fn(&BenchFigures) -> u64) -> f64 {
        if !self.threads.is_empty() {
            return self.threads.iter().map(|t| t.per_second(field)).sum();
        }
        if self.seconds > 0.0 {
            field(self) as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The figures of threads that ran at once, added up.
    fn merge(parts: Vec<BenchFigures>) -> BenchFigures {
        let mut m = BenchFigures { passes: u32::MAX, ..BenchFigures::default() };
        for t in &parts {
            m.packets += t.packets;
            m.bytes += t.bytes;
            m.outputs += t.outputs;
            m.dropped += t.dropped;
            m.seconds = m.seconds.max(t.seconds);
            if t.packets > 0 {
                m.passes = m.passes.min(t.passes); // a thread with no share ran no pass
            }
            m.emc_hits += t.emc_hits;
            m.emc_bypassed += t.emc_bypassed;
            m.megaflow_hits += t.megaflow_hits;
            m.upcalls += t.upcalls;
            m.megaflows += t.megaflows;
            m.subtables += t.subtables;
            m.conntrack += t.conntrack;
            m.conntrack_new += t.conntrack_new;
        }
        if m.passes == u32::MAX {
            m.passes = 0;
        }
        m.threads = parts;
        m
    }

    pub fn to_json(&self) -> serde_json::Value {
        let per_s = |f: fn(&BenchFigures) -> u64| self.per_second(f);
        let rate = |n: u64| if self.packets > 0 { n as f64 / self.packets as f64 } else { 0.0 };
        let pps = self.pps();
        let ns = if pps > 0.0 { 1e9 / pps } else { 0.0 };
        let threads: Vec<serde_json::Value> = self
            .threads
            .iter()
            .map(|t| {
                serde_json::json!({
                    "packets": t.packets, "seconds": t.seconds, "passes": t.passes,
                    "pps": t.pps(), "upcalls": t.upcalls, "megaflows": t.megaflows,
                })
            })
            .collect();
        serde_json::json!({
            "threads": threads,
            "packets": self.packets, "bytes": self.bytes, "outputs": self.outputs,
            "dropped": self.dropped, "seconds": self.seconds, "passes": self.passes,
            "pps": pps, "ns_per_packet": ns,
            "emc_hits": self.emc_hits, "emc_bypassed": self.emc_bypassed,
            "megaflow_hits": self.megaflow_hits,
            "upcalls": self.upcalls, "emc_hit_rate": rate(self.emc_hits),
            "megaflow_hit_rate": rate(self.megaflow_hits), "upcall_rate": rate(self.upcalls),
            "upcalls_per_second": per_s(|f| f.upcalls), "megaflows": self.megaflows,
            "subtables": self.subtables, "conntrack": self.conntrack,
            "conntrack_new": self.conntrack_new,
            "conntrack_new_per_second": per_s(|f| f.conntrack_new),
        })
    }
}

/// Counts outputs; never carries a frame to another node (one node is measured).
struct CountSink {
    outputs: u64,
}

impl Sink for CountSink {
    #[inline]
    fn output(&mut self, _port: u32, _pkt: &Packet, _origin: Origin) -> bool {
        self.outputs += 1;
        false
    }
}

/// The timed passes over the workload; returns the dropped count. Kept out of line so that
/// callgrind can count its instructions alone.
#[inline(never)]
pub fn bench_timed_loop(
    dp: &mut Datapath,
    w: &Workload,
    passes: u32,
    pkts: &mut [Packet],
    outcomes: &mut [Outcome],
    sink: &mut dyn Sink,
) -> u64 {
    run_passes(dp, w, passes, pkts, outcomes, sink)
}

/// The untimed warm-up pass (not counted by callgrind's `bench_timed_loop` toggle).
#[inline(never)]
fn bench_warmup_loop(
    dp: &mut Datapath,
    w: &Workload,
    pkts: &mut [Packet],
    outcomes: &mut [Outcome],
    sink: &mut dyn Sink,
) -> u64 {
    run_passes(dp, w, 1, pkts, outcomes, sink)
}

#[inline(always)]
fn run_passes(
    dp: &mut Datapath,
    w: &Workload,
    passes: u32,
    pkts: &mut [Packet],
    outcomes: &mut [Outcome],
    sink: &mut dyn Sink,
) -> u64 {
    let mut dropped = 0u64;
    for _ in 0..passes {
        let mut i = 0;
        while i < w.len() {
            let (port, _) = w.frame(i);
            let mut n = 0;
            while n < BATCH && i + n < w.len() {
                let (p, f) = w.frame(i + n);
                if p != port {
                    break;
                }
                pkts[n].set_from_slice(f);
                n += 1;
            }
            dp.receive_batch(&mut pkts[..n], port, sink, &mut outcomes[..n]);
            dropped += outcomes[..n].iter().filter(|o| o.drop.is_some()).count() as u64;
            i += n;
        }
    }
    dropped
}

impl Engine {
    /// Runs workload `w` through its node. `Forward`: one warm-up pass, then timed passes
    /// until `min_seconds` (at least `passes`). `Setup`: `passes` cold passes, each after
    /// emptying the caches and conntrack.
    pub fn bench_workload(
        &mut self,
        w: &Workload,
        mode: BenchMode,
        passes: u32,
        min_seconds: f64,
    ) -> Result<BenchFigures, String> {
        self.bench_workload_with(w, mode, passes, min_seconds, None)
    }

    /// `bench_workload`, waiting at `start` (when given) before the timed passes, so that
    /// threads time the same window.
    fn bench_workload_with(
        &mut self,
        w: &Workload,
        mode: BenchMode,
        passes: u32,
        min_seconds: f64,
        start: Option<&Barrier>,
    ) -> Result<BenchFigures, String> {
        let dp = &mut self
            .nodes
            .get_mut(w.node)
            .ok_or_else(|| format!("node {} is not a node of the scenario", w.node))?
            .dp;
        if w.is_empty() {
            if let Some(b) = start {
                b.wait(); // a thread with no share still lets the others start
                return Ok(BenchFigures::default());
            }
            return Err("the workload has no frames".into());
        }
        let mut pkts: Vec<Packet> = (0..BATCH).map(|_| Packet::with_capacity(2048)).collect();
        let mut outcomes = vec![Outcome::default(); BATCH];
        let mut sink = CountSink { outputs: 0 };
        let mut fig = BenchFigures::default();
        let passes = passes.max(1);
        match mode {
            BenchMode::Forward => {
                bench_warmup_loop(dp, w, &mut pkts, &mut outcomes, &mut sink);
                if let Some(b) = start {
                    b.wait();
                }
                let before = (dp.stats, dp.ct.stats().created);
                sink.outputs = 0;
                let start = Instant::now();
                loop {
                    fig.dropped += bench_timed_loop(dp, w, 1, &mut pkts, &mut outcomes, &mut sink);
                    fig.passes += 1;
                    fig.seconds = start.elapsed().as_secs_f64();
                    if fig.passes >= passes && fig.seconds >= min_seconds {
                        break;
                    }
                }
                fig.emc_hits = dp.stats.emc_hits - before.0.emc_hits;
                fig.emc_bypassed = dp.stats.emc_bypassed - before.0.emc_bypassed;
                fig.megaflow_hits = dp.stats.megaflow_hits - before.0.megaflow_hits;
                fig.upcalls = dp.stats.upcalls - before.0.upcalls;
                fig.conntrack_new = dp.ct.stats().created - before.1;
            }
            BenchMode::Setup => {
                if let Some(b) = start {
                    b.wait();
                }
                for _ in 0..passes {
                    dp.flush_caches();
                    dp.ct.flush(None);
                    let before = (dp.stats, dp.ct.stats().created);
                    let start = Instant::now();
                    fig.dropped += bench_timed_loop(dp, w, 1, &mut pkts, &mut outcomes, &mut sink);
                    fig.seconds += start.elapsed().as_secs_f64();
                    fig.passes += 1;
                    fig.emc_hits += dp.stats.emc_hits - before.0.emc_hits;
                    fig.emc_bypassed += dp.stats.emc_bypassed - before.0.emc_bypassed;
                    fig.megaflow_hits += dp.stats.megaflow_hits - before.0.megaflow_hits;
                    fig.upcalls += dp.stats.upcalls - before.0.upcalls;
                    fig.conntrack_new += dp.ct.stats().created - before.1;
                }
            }
        }
        fig.packets = w.len() as u64 * u64::from(fig.passes);
        fig.bytes = w.bytes() * u64::from(fig.passes);
        fig.outputs = sink.outputs;
        fig.megaflows = dp.megaflows.len() as u64;
        fig.subtables = dp.megaflows.n_subtables() as u64;
        fig.conntrack = dp.ct.len() as u64;
        Ok(fig)
    }
}

/// Options of `Engine::bench_frames` (JSON from the control plane).
#[derive(serde::Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BenchFramesOptions {
    /// Port references; a frame names its port by index into this list.
    pub ports: Vec<String>,
    /// `forward` (default) or `setup`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Timed passes (forward: at least this many; setup: exactly this many). Default 3.
    #[serde(default)]
    pub passes: Option<u32>,
    /// Forward: keep timing passes until this many seconds have gone by. Default 1.
    #[serde(default)]
    pub min_seconds: Option<f64>,
    /// Threads, each with a datapath of its own and a share of the flows. Default 1.
    #[serde(default)]
    pub threads: Option<u32>,
}

impl Engine {
    /// Builds a workload from `data`, a sequence of records `[u16 port index (little
    /// endian)][u16 zero][u32 length (little endian)][frame]`, and runs it (see
    /// `bench_workload`). Every port must be on the same node.
    pub fn bench_frames(
        &mut self,
        o: &BenchFramesOptions,
        data: &[u8],
    ) -> Result<BenchFigures, String> {
        if o.threads.unwrap_or(1) > 1 {
            return Err("a benchmark on several threads needs the scenario (bench_threads)".into());
        }
        let (w, mode) = self.bench_workload_of(o, data)?;
        self.bench_workload(&w, mode, o.passes.unwrap_or(3), o.min_seconds.unwrap_or(1.0))
    }

    /// The workload and mode `bench_frames` runs.
    fn bench_workload_of(
        &self,
        o: &BenchFramesOptions,
        data: &[u8],
    ) -> Result<(Workload, BenchMode), String> {
        let mut ports = Vec::with_capacity(o.ports.len());
        for r in &o.ports {
            let p = self
                .resolve(r)
                .ok_or_else(|| format!("bench port \"{r}\" is not a port of the scenario"))?;
            if let Some(&(n0, _)) = ports.first() {
                if p.0 != n0 {
                    return Err(format!(
                        "bench port \"{r}\" is on another node than \"{}\" (one node is measured)",
                        o.ports[0]
                    ));
                }
            }
            ports.push(p);
        }
        let Some(&(node, _)) = ports.first() else {
            return Err("the benchmark names no port".into());
        };
        let mut w = Workload::new(node);
        let mut at = 0usize;
        while at < data.len() {
            let Some(h) = data.get(at..at + 8) else {
                return Err(format!("bench frames: record header cut short at byte {at}"));
            };
            let idx = usize::from(u16::from_le_bytes([h[0], h[1]]));
            let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
            let Some(&(_, port)) = ports.get(idx) else {
                return Err(format!("bench frames: port index {idx} at byte {at} names no port"));
            };
            let Some(frame) = data.get(at + 8..at + 8 + len) else {
                return Err(format!("bench frames: frame at byte {at} cut short"));
            };
            if !(14..=65535).contains(&len) {
                return Err(format!(
                    "bench frames: frame at byte {at} is {len} bytes (expected 14 to 65535)"
                ));
            }
            w.push(port, frame);
            at += 8 + len;
        }
        let mode = match o.mode.as_deref() {
            None | Some("forward") => BenchMode::Forward,
            Some("setup") => BenchMode::Setup,
            Some(m) => return Err(format!("bench mode \"{m}\" (expected forward or setup)")),
        };
        Ok((w, mode))
    }
}

/// `Engine::bench_frames` on `o.threads` threads (see the module documentation), each with an
/// engine of its own from `scenario_json`.
pub fn bench_threads(
    scenario_json: &str,
    o: &BenchFramesOptions,
    data: &[u8],
) -> Result<BenchFigures, String> {
    let n = o.threads.unwrap_or(1);
    if !(1..=MAX_THREADS).contains(&n) {
        return Err(format!("threads: {n} (expected 1 to {MAX_THREADS})"));
    }
    let build = || Engine::from_json(scenario_json).map_err(|e| e.0);
    let mut engines = vec![build()?];
    let (w, mode) = engines[0].bench_workload_of(o, data)?;
    let (passes, min_seconds) = (o.passes.unwrap_or(3), o.min_seconds.unwrap_or(1.0));
    if n == 1 {
        return engines[0].bench_workload(&w, mode, passes, min_seconds);
    }
    let shards = w.split(n as usize);
    for _ in 1..n {
        engines.push(build()?);
    }
    let start = Barrier::new(n as usize);
    let results: Vec<Result<BenchFigures, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = engines
            .iter_mut()
            .zip(&shards)
            .map(|(e, shard)| {
                let start = &start;
                s.spawn(move || {
                    e.bench_workload_with(shard, mode, passes, min_seconds, Some(start))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a benchmark thread failed".into())))
            .collect()
    });
    Ok(BenchFigures::merge(results.into_iter().collect::<Result<Vec<_>, _>>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine::from_json(&scenario()).expect("scenario builds")
    }

    fn scenario() -> String {
        let flows = [
            "table=0,priority=10,ip,ct_state=-trk,actions=ct(table=1,zone=1)",
            "table=1,priority=10,ip,ct_state=+trk+new,actions=ct(commit,zone=1),NORMAL",
            "table=1,priority=10,ip,ct_state=+trk+est,actions=NORMAL",
            "table=1,priority=0,actions=drop",
            "table=0,priority=5,arp,actions=NORMAL",
            "table=0,priority=0,actions=drop",
        ];
        let flows: Vec<serde_json::Value> = flows
            .iter()
            .enumerate()
            .map(|(i, f)| serde_json::json!({"text": f, "source": "test", "line": i + 1}))
            .collect();
        let sc = serde_json::json!({
            "oneNode": true,
            "nodes": [{"name": "", "bridges": [{
                "name": "br0", "failMode": "secure",
                "ports": [
                    {"name": "p1", "ofport": 1, "type": "dummy"},
                    {"name": "p2", "ofport": 2, "type": "dummy"},
                    {"name": "p3", "ofport": 3, "type": "dummy"}
                ],
                "flows": flows
            }], "routes": [], "neighbors": []}]
        });
        sc.to_string()
    }

    /// Packs frames as `bench_frames` takes them (all on port index 0).
    fn packed(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut data = Vec::new();
        for f in frames {
            data.extend_from_slice(&[0, 0, 0, 0]);
            data.extend_from_slice(&(f.len() as u32).to_le_bytes());
            data.extend_from_slice(f);
        }
        data
    }

    #[test]
    fn threads_share_the_flows_and_add_up() {
        // 64 UDP flows (source ports) from 10.0.0.1 to 10.0.0.2, each four times.
        let frames: Vec<Vec<u8>> = (0..256u32).map(|i| udp(1, 2, 5000 + (i % 64) as u16)).collect();
        let w = {
            let mut w = Workload::new(0);
            for f in &frames {
                w.push(1, f);
            }
            w
        };
        let shards = w.split(2);
        assert_eq!(shards.iter().map(Workload::len).sum::<usize>(), 256);
        assert!(shards.iter().all(|s| s.len() > 32), "64 flows land on both threads");
        // A flow stays on one thread.
        for s in &shards {
            for i in 0..s.len() {
                let port = s.frame(i).1[34..36].to_vec();
                let elsewhere = shards
                    .iter()
                    .filter(|o| !std::ptr::eq(*o, s))
                    .any(|o| (0..o.len()).any(|j| o.frame(j).1[34..36] == port[..]));
                assert!(!elsewhere, "source port {port:?} on two threads");
            }
        }
        let o = BenchFramesOptions {
            ports: vec!["br0/p1".into()],
            mode: None,
            passes: Some(3),
            min_seconds: Some(0.0),
            threads: Some(2),
        };
        let fig = bench_threads(&scenario(), &o, &packed(&frames)).unwrap();
        assert_eq!(fig.threads.len(), 2);
        for (t, s) in fig.threads.iter().zip(&shards) {
            assert_eq!(t.packets, s.len() as u64 * u64::from(t.passes), "a thread's share");
            assert!(t.passes >= 3);
        }
        assert_eq!(fig.packets, fig.threads.iter().map(|t| t.packets).sum::<u64>());
        // Conntrack commits each flow once, on its thread; nothing is dropped.
        assert_eq!(fig.dropped, 0);
        assert_eq!(fig.conntrack, 64);
        let sum: f64 = fig.threads.iter().map(BenchFigures::pps).sum();
        assert!((fig.pps() - sum).abs() < 1e-6 * sum);
        let json = fig.to_json();
        assert_eq!(json["threads"].as_array().unwrap().len(), 2);
        // One thread is bench_frames; more than 64 is an error.
        let one = BenchFramesOptions { threads: Some(1), ..o.clone() };
        let fig1 = bench_threads(&scenario(), &one, &packed(&frames)).unwrap();
        assert!(fig1.threads.is_empty());
        assert_eq!(fig1.packets % 256, 0);
        let many = BenchFramesOptions { threads: Some(65), ..o };
        let e = bench_threads(&scenario(), &many, &packed(&frames)).unwrap_err();
        assert_eq!(e, "threads: 65 (expected 1 to 64)");
    }

    fn udp(src: u32, dst: u32, sport: u16) -> Vec<u8> {
        let mac = |n: u32| [0x52, 0x54, 0, 0, (n >> 8) as u8, n as u8];
        let mut f = Vec::new();
        f.extend_from_slice(&mac(dst));
        f.extend_from_slice(&mac(src));
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[10, 0, (src >> 8) as u8, src as u8]);
        f.extend_from_slice(&[10, 0, (dst >> 8) as u8, dst as u8]);
        let c = crate::wire::checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&[0x07, 0xd0, 0, 8, 0, 0]);
        f
    }

    #[derive(Default)]
    struct Record(Vec<(u32, Vec<u8>)>);

    impl Sink for Record {
        fn output(&mut self, port: u32, pkt: &Packet, _origin: Origin) -> bool {
            self.0.push((port, pkt.data().to_vec()));
            false
        }
    }

    /// Frames on the three ports: new and repeated conversations (MAC learning moves,
    /// conntrack recirculation, upcalls in the middle of bursts) and frames too short to
    /// parse.
    fn traffic() -> Vec<(usize, Vec<u8>)> {
        let mut v = Vec::new();
        for round in 0..6u32 {
            for i in 0..40u32 {
                let port = (i % 3) as usize;
                let (src, dst) = (1 + (i % 7) + 10 * port as u32, 1 + ((i + round) % 5));
                v.push((port, udp(src, dst, 1000 + (i % 4) as u16)));
                if i % 13 == 0 {
                    v.push((port, vec![0xff; 9]));
                }
            }
        }
        v
    }

    #[test]
    fn bursts_give_exactly_what_packets_one_by_one_give() {
        let ports = ["br0/p1", "br0/p2", "br0/p3"];
        let frames = traffic();
        let mut one = engine();
        let mut want_sink = Record::default();
        let mut want = Vec::new();
        for (p, f) in &frames {
            let (_, port) = one.resolve(ports[*p]).expect("a port");
            let mut pkt = Packet::from_slice(f);
            want.push(one.nodes[0].dp.receive(&mut pkt, port, &mut want_sink));
        }
        for burst in [1usize, 2, 7, 32, 64, 100] {
            let mut e = engine();
            let mut sink = Record::default();
            let mut got = Vec::new();
            let mut i = 0;
            while i < frames.len() {
                let p = frames[i].0;
                let mut pkts = Vec::new();
                while i < frames.len() && frames[i].0 == p && pkts.len() < burst {
                    pkts.push(Packet::from_slice(&frames[i].1));
                    i += 1;
                }
                let (_, port) = e.resolve(ports[p]).expect("a port");
                let mut out = vec![Outcome::default(); pkts.len()];
                e.nodes[0].dp.receive_batch(&mut pkts, port, &mut sink, &mut out);
                got.extend(out);
            }
            let (a, b) = (&one.nodes[0].dp, &e.nodes[0].dp);
            let fmt = |o: &[Outcome]| format!("{o:?}");
            assert_eq!(fmt(&got), fmt(&want), "outcomes, bursts of {burst}");
            assert_eq!(sink.0, want_sink.0, "outputs, bursts of {burst}");
            assert_eq!(format!("{:?}", b.stats), format!("{:?}", a.stats), "bursts of {burst}");
            assert_eq!(b.megaflows.len(), a.megaflows.len());
            assert_eq!(b.ct.len(), a.ct.len());
            assert_eq!(b.emc.stats(), a.emc.stats(), "bursts of {burst}");
            assert_eq!(b.megaflows.stats(), a.megaflows.stats(), "bursts of {burst}");
        }
        assert!(want.iter().any(|o| o.drop.is_some()) && want.iter().any(|o| o.outputs > 0));
    }

    #[test]
    fn a_benchmark_accounts_for_every_frame_and_setup_mode_starts_cold() {
        let mut e = engine();
        let mut w = Workload::new(0);
        let (_, p1) = e.resolve("br0/p1").expect("a port");
        for i in 0..50u32 {
            w.push(p1, &udp(1, 2 + i % 5, 1000 + i as u16));
        }
        let fig = e.bench_workload(&w, BenchMode::Forward, 2, 0.0).expect("runs");
        assert_eq!(fig.packets, 100);
        // Each packet takes two passes (conntrack recirculates it), both served by the caches.
        assert_eq!(fig.emc_hits + fig.megaflow_hits, fig.packets * 2);
        assert_eq!(fig.upcalls, 0);
        assert_eq!(fig.dropped, 0);
        assert!(fig.outputs >= fig.packets);
        let cold = e.bench_workload(&w, BenchMode::Setup, 2, 0.0).expect("runs");
        // Every conversation is new in each cold pass: conntrack commits all 50 again.
        assert_eq!(cold.conntrack_new, 100);
        // Each cold pass installs its megaflows again, one upcall each.
        assert!(cold.megaflows > 0);
        assert_eq!(cold.upcalls, 2 * cold.megaflows);
    }
}
