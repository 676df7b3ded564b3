//! The engine: every node of a scenario, the emulated underlay between them, and the replay
//! loop that carries each input frame to completion before the next one enters.
//!
//! Accounting invariant, checked at the end of every run: each input packet is delivered
//! (emitted on at least one port, anywhere; a frame the underlay carries to another node is
//! a hop, and the packet's fate is decided there), still queued (waiting in a namespace for a
//! neighbour; none at the end of a replay) or counted under exactly one drop reason;
//! `packets_in == delivered + sum(dropped) + queued`. Frames the datapath generates (ARP
//! requests, ICMP errors) are outputs of no input: they are counted in `generated`.

pub mod bench;
pub mod ctl;
pub mod iface;
pub mod live;
pub mod map;
pub mod nullio;
pub mod scenario;
pub mod tap;
pub mod trace;
pub mod udp;

#[cfg(test)]
mod limits_tests;

use crate::dpif::generated::Resolution;
use crate::dpif::odp::DropReason;
use crate::dpif::{Origin, Sink};
use crate::port::capture::{to_ethernet, CaptureReader};
use crate::port::pcap::{PcapWriter, TsResolution};
use crate::wire::Packet;
use scenario::{build, NativeScenario, Node, ScenarioError};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The last instant a classic pcap record can hold (32-bit seconds).
const MAX_PCAP_TS_NS: u64 = u32::MAX as u64 * 1_000_000_000 + 999_999_999;

/// An IP 5-tuple (protocol, source, destination, ports), IPv4 in the first four bytes.
type FiveTuple = (u8, [u8; 16], [u8; 16], u16, u16);

/// The hash of the replay's per-packet tables (ports, outputs, flows seen): keys come from
/// the scenario and from the captures the user replays, not from a network peer.
type FastHash = foldhash::fast::RandomState;
/// (node, datapath port) to something.
type PortMap<V> = HashMap<(usize, u32), V, FastHash>;

/// Spare packet buffers kept for the next input frames.
const SPARE_PACKETS: usize = 64;

/// Packets a single input may cause across nodes before the engine calls it a loop.
const MAX_HOPS_PER_INPUT: usize = 4096;

/// All nodes of a scenario.
pub struct Engine {
    pub nodes: Vec<Node>,
    pub one_node: bool,
    refs: HashMap<String, (usize, u32)>,
    underlay: Underlay,
}

/// The emulated underlay between the nodes of one process.
struct Underlay {
    /// Underlay IP -> the node that owns it.
    owner: HashMap<u32, usize>,
    /// Each node's underlay datapath port.
    ports: Vec<Option<u32>>,
}

impl Underlay {
    /// Where a frame `node` sends out of `port` goes next: the node that owns its IPv4
    /// destination and that node's underlay port, when `port` is `node`'s underlay port and
    /// the owner is another node of the process.
    fn hop(&self, node: usize, port: u32, frame: &[u8]) -> Option<(usize, u32)> {
        if self.ports.get(node).copied().flatten() != Some(port) {
            return None;
        }
        if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
            return None;
        }
        let dst = u32::from_be_bytes([frame[30], frame[31], frame[32], frame[33]]);
        let n = *self.owner.get(&dst).filter(|&&n| n != node)?;
        Some((n, self.ports[n]?))
    }
}

/// How fast to replay.
#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub struct Speed {
    pub mode: SpeedMode,
    #[serde(default)]
    pub value: f64,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum SpeedMode {
    Topspeed,
    Multiplier,
    Pps,
}

#[derive(Deserialize, Debug, Clone)]
pub struct PortPath {
    pub port: String,
    pub path: PathBuf,
}

/// `NativeReplayOptions`.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ReplayOptions {
    pub inputs: Vec<PortPath>,
    #[serde(default)]
    pub outputs: Vec<PortPath>,
    #[serde(rename = "loop", default = "one")]
    pub loops: u32,
    pub speed: Speed,
    #[serde(default)]
    pub nsec: bool,
    #[serde(default)]
    pub limit: Option<u64>,
    /// Trace the Nth input packet (1-based) with the state the run had built by then.
    #[serde(default)]
    pub trace_packet: Option<u64>,
    /// Print port names in that trace.
    #[serde(default)]
    pub trace_names: bool,
    /// Trace each of these input packets (1-based) too, in the same run; each trace comes
    /// back with the packet's fate (`ReplayStats::traces`).
    #[serde(default)]
    pub trace_packets: Vec<u64>,
    /// Return the megaflows left at the end in dpctl/dump-flows form (`Some(verbose)`).
    #[serde(default)]
    pub dump_megaflows: Option<bool>,
    /// Write `DIR/[NODE/]BRIDGE.flows` with the run's counters into this directory.
    #[serde(default)]
    pub flows_dir: Option<PathBuf>,
    /// `--map`: rewrite every frame for this topology and inject it at its source host's
    /// port (see `map`); the inputs then have no port.
    #[serde(default)]
    pub map: Option<map::MapSpec>,
}

fn one() -> u32 {
    1
}

/// Progress shared with the caller while a replay runs.
#[derive(Default, Debug)]
pub struct Progress {
    pub done: AtomicU64,
    pub total: AtomicU64,
    pub cancel: AtomicBool,
    /// Reports of a live run for the user (tunnel peers silent or unreachable), drained by
    /// the caller while the run goes on.
    pub events: std::sync::Mutex<Vec<String>>,
}

#[derive(Default, Clone, Copy, Debug)]
struct PortCount {
    rx: u64,
    tx: u64,
    rx_bytes: u64,
    tx_bytes: u64,
}

/// Per-run results (serialised to stats.json by the CLI).
#[derive(Debug, Default)]
pub struct ReplayStats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub delivered: u64,
    pub dropped: BTreeMap<&'static str, u64>,
    /// Input packets waiting for a neighbour at the end of the run.
    pub queued: u64,
    /// Frames the datapath generated (ARP requests, ICMP errors) that were output.
    pub generated: u64,
    /// Faults met by a live run (a device that went away, a write that failed), in order.
    pub errors: Vec<String>,
    /// Frames (not generated ones) the underlay carried to another node: hops of a packet,
    /// written to the underlay pcap and counted in `packets_out`, but not where it ended.
    pub carried: u64,
    pub seconds: f64,
    pub emc_hits: u64,
    /// Of `megaflow_hits`, those of bursts that left the EMC out, as it did not pay.
    pub emc_bypassed: u64,
    pub megaflow_hits: u64,
    pub upcalls: u64,
    pub megaflows: u64,
    pub per_port: BTreeMap<String, (u64, u64)>,
    /// Frames a live run's port output that its device did not take (gone, down, full), by
    /// port; stats.json shows them as the port's `tx_dropped`.
    pub tx_dropped: BTreeMap<String, u64>,
    pub inputs: Vec<(String, String, u64, u64)>,
    pub flows: u64,
    pub flow_packets: u64,
    pub non_flow_packets: u64,
    pub conntrack_entries: u64,
    /// The trace of `trace_packet`, when asked for.
    pub trace: Option<trace::TraceReport>,
    /// The traces of `trace_packets`, in input order.
    pub traces: Vec<PacketTrace>,
    /// A live run's UDP underlay: its socket, peers and counters.
    pub underlay: Option<serde_json::Value>,
    /// The table limits and what they did: megaflows refused (cache full) and expired
    /// (idle), conntrack commits refused (table full) and connections expired, summed over
    /// the nodes.
    pub limits: Limits,
    /// Set when an input could not be read to its end: the run stopped at that record, and
    /// its counters and outputs cover only what came before (stats.json `complete: false`).
    pub read_error: Option<String>,
    /// `--map`: the mapper's counters and host table summary (stats.json `map`), and its
    /// host table (`map_hosts`, which the CLI writes to map.json).
    pub map: Option<serde_json::Value>,
    pub map_hosts: Option<serde_json::Value>,
}

/// Table limits and their counters (stats.json `limits`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Limits {
    pub megaflow_limit: u64,
    pub max_idle_ms: Option<u64>,
    pub conntrack_limit: u64,
    pub megaflows_refused: u64,
    pub megaflows_expired: u64,
    pub conntrack_refused: u64,
    pub conntrack_expired: u64,
}

/// The trace of one input packet of a run, and what became of it.
#[derive(Debug)]
pub struct PacketTrace {
    pub packet: u64,              // 1-based index in the run
    pub port: String,             // the input port (canonical reference)
    pub drop: Option<DropReason>, // None when it was emitted somewhere
    pub report: trace::TraceReport,
}

/// Inputs waiting for a neighbour: seq -> (their packets still queued, whether one was
/// delivered, the drop reason of the last one dropped).
type Pending = HashMap<u64, (u32, bool, DropReason)>;

impl ReplayStats {
    /// Accounts input `seq` once it has gone as far as it goes: delivered when it was output
    /// somewhere, pending while some of it waits for a neighbour, else dropped.
    fn account_input(
        &mut self,
        pending: &mut Pending,
        seq: u64,
        outputs: u64,
        queued: u32,
        drop: Option<DropReason>,
    ) {
        if outputs > 0 {
            self.delivered += 1;
        } else if queued > 0 {
            pending.insert(seq, (queued, false, DropReason::NsNoNeighbor));
            self.queued += 1;
        } else {
            let d = drop.unwrap_or(DropReason::ActionDrop);
            *self.dropped.entry(d.name()).or_default() += 1;
        }
    }

    /// The accounting invariant: in = delivered + dropped + queued.
    pub fn check_invariant(&self) -> Result<(), String> {
        let dropped: u64 = self.dropped.values().sum();
        if self.delivered + dropped + self.queued != self.packets_in {
            return Err(format!(
                "accounting mismatch: {} in, {} delivered, {} dropped, {} queued (internal error)",
                self.packets_in, self.delivered, dropped, self.queued
            ));
        }
        Ok(())
    }

    /// stats.json, as DESIGN.md specifies it.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let per_port: serde_json::Map<String, serde_json::Value> = self
            .per_port
            .iter()
            .map(|(k, (rx, tx))| {
                let mut v = json!({"rx": rx, "tx": tx});
                if let Some(d) = self.tx_dropped.get(k) {
                    v["tx_dropped"] = json!(d);
                }
                (k.clone(), v)
            })
            .collect();
        let dropped: serde_json::Map<String, serde_json::Value> =
            self.dropped.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let pps = if self.seconds > 0.0 { self.packets_in as f64 / self.seconds } else { 0.0 };
        let mut v = json!({
            "packets_in": self.packets_in,
            "packets_out": self.packets_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "delivered": self.delivered,
            "dropped": dropped,
            "queued": self.queued,
            "generated": self.generated,
            "carried": self.carried,
            "errors": self.errors,
            "seconds": self.seconds,
            "pps": pps,
            "emc_hits": self.emc_hits,
            "emc_bypassed": self.emc_bypassed,
            "megaflow_hits": self.megaflow_hits,
            "upcalls": self.upcalls,
            "megaflows": self.megaflows,
            "conntrack_entries": self.conntrack_entries,
            "per_port": per_port,
            "inputs": self.inputs.iter().map(|(p, f, n, b)| json!({"port": p, "path": f, "packets": n, "bytes": b})).collect::<Vec<_>>(),
            "flows": self.flows,
            "unique_flow_packets": self.flow_packets,
            "non_flow_packets": self.non_flow_packets,
        });
        if let Some(u) = &self.underlay {
            v["underlay"] = u.clone();
        }
        if let Some(m) = &self.map {
            v["map"] = m.clone();
        }
        if let Some(h) = &self.map_hosts {
            v["map_hosts"] = h.clone();
        }
        v["complete"] = json!(self.read_error.is_none());
        if let Some(e) = &self.read_error {
            v["error"] = json!(e);
        }
        let l = &self.limits;
        v["limits"] = json!({
            "megaflow_limit": l.megaflow_limit,
            "max_idle_ms": l.max_idle_ms,
            "conntrack_limit": l.conntrack_limit,
            "megaflows_refused": l.megaflows_refused,
            "megaflows_expired": l.megaflows_expired,
            "conntrack_refused": l.conntrack_refused,
            "conntrack_expired": l.conntrack_expired,
        });
        v
    }

    /// The counters alone (no traces, no inputs): a snapshot of a run in progress.
    pub fn counters(&self) -> ReplayStats {
        ReplayStats {
            packets_in: self.packets_in,
            bytes_in: self.bytes_in,
            packets_out: self.packets_out,
            bytes_out: self.bytes_out,
            delivered: self.delivered,
            dropped: self.dropped.clone(),
            queued: self.queued,
            generated: self.generated,
            errors: self.errors.clone(),
            carried: self.carried,
            seconds: self.seconds,
            per_port: self.per_port.clone(),
            tx_dropped: self.tx_dropped.clone(),
            underlay: self.underlay.clone(),
            limits: self.limits,
            ..ReplayStats::default()
        }
    }
}

/// Output side of a run: pcap files, counters, and the queue of frames crossing the underlay.
struct RunSink<'a> {
    node: usize,
    ts_ns: u64,
    nsec: bool,
    writers: &'a mut PortMap<Option<PcapWriter<File>>>,
    paths: &'a PortMap<PathBuf>,
    counts: &'a mut PortMap<PortCount>,
    fabric: &'a mut VecDeque<(usize, u32, Packet, Origin)>,
    generated: u64,
    underlay_hops: u64,
    underlay: &'a Underlay,
    error: &'a mut Option<String>,
    packets_out: u64,
    bytes_out: u64,
    /// When tracing a packet: every frame it made leave, with its (node, port).
    record: Option<&'a mut Vec<(usize, u32, Vec<u8>)>>,
}

impl Sink for RunSink<'_> {
    fn output(&mut self, port: u32, pkt: &Packet, origin: Origin) -> bool {
        let k = (self.node, port);
        if origin == Origin::Generated {
            self.generated += 1;
        }
        let c = self.counts.entry(k).or_default();
        c.tx += 1;
        c.tx_bytes += pkt.len() as u64;
        self.packets_out += 1;
        self.bytes_out += pkt.len() as u64;
        if let Some(r) = self.record.as_deref_mut() {
            r.push((self.node, port, pkt.data().to_vec()));
        }
        if let Some(path) = self.paths.get(&k) {
            let w = self.writers.entry(k).or_insert(None);
            if w.is_none() {
                if let Some(dir) = path.parent() {
                    if let Err(e) = std::fs::create_dir_all(dir) {
                        *self.error = Some(format!("{}: {e}", dir.display()));
                    }
                }
                match File::create(path) {
                    Ok(f) => match PcapWriter::with_resolution(
                        f,
                        if self.nsec { TsResolution::Nano } else { TsResolution::Micro },
                    ) {
                        Ok(pw) => *w = Some(pw),
                        Err(e) => *self.error = Some(format!("{}: {e}", path.display())),
                    },
                    Err(e) => *self.error = Some(format!("{}: {e}", path.display())),
                }
            }
            if let Some(pw) = w {
                if let Err(e) = pw.write(self.ts_ns.min(MAX_PCAP_TS_NS), pkt.data()) {
                    *self.error = Some(format!("{}: {e}", path.display()));
                }
            }
        }
        // A frame leaving a node's underlay NIC crosses the emulated fabric to the node that
        // owns its destination IP.
        if let Some((n, up)) = self.underlay.hop(self.node, port, pkt.data()) {
            self.fabric.push_back((n, up, pkt.clone(), origin));
            if origin != Origin::Generated {
                self.underlay_hops += 1;
            }
            return true;
        }
        false
    }
}

/// One input file being read.
struct Input {
    port: String,
    path: PathBuf,
    node: usize,
    dp_port: u32,
    reader: CaptureReader<'static>,
    next: Option<(u64, Vec<u8>, u32, u32)>, // ts_ns, frame, linktype, original length
    spare: Vec<u8>,                         // the buffer of the next frame read
    packets: u64,
    bytes: u64,
}

impl Input {
    fn advance(&mut self) -> Result<(), String> {
        self.next = match self.reader.next_record() {
            Ok(Some(r)) => {
                let mut data = std::mem::take(&mut self.spare);
                data.clear();
                data.extend_from_slice(r.data);
                Some((r.ts_ns, data, r.linktype, r.orig_len))
            }
            Ok(None) => None,
            Err(e) => return Err(format!("{}: {e}", self.path.display())),
        };
        Ok(())
    }
}

fn open_input(path: &PathBuf) -> Result<CaptureReader<'static>, String> {
    let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    CaptureReader::new(f).map_err(|e| format!("{}: {e}", path.display()))
}

fn count_records(path: &PathBuf) -> u64 {
    let Ok(mut r) = open_input(path) else { return 0 };
    let mut n = 0;
    while let Ok(Some(_)) = r.next_record() {
        n += 1;
    }
    n
}

/// OVS's default other_config:max-idle, which live runs use.
pub const LIVE_MAX_IDLE_MS: u64 = 10_000;
/// How often, at most, a live run revalidates after learned state changed.
pub const LIVE_REVALIDATE_INTERVAL_MS: u64 = 10;

impl Engine {
    /// Builds the engine from `NativeScenario` JSON text.
    pub fn from_json(text: &str) -> Result<Engine, ScenarioError> {
        let sc: NativeScenario = serde_json::from_str(text)
            .map_err(|e| ScenarioError(format!("internal scenario format: {e}")))?;
        let nodes = build(&sc)?;
        let mut refs = HashMap::new();
        let mut owner = HashMap::new();
        for (ni, n) in nodes.iter().enumerate() {
            for (dp, r) in n.port_refs.iter().enumerate() {
                if let Some(r) = r {
                    refs.insert(r.clone(), (ni, dp as u32));
                }
            }
            if let Some(ip) = n.underlay_ip {
                owner.insert(ip, ni);
            }
        }
        let ports = nodes.iter().map(|n| n.underlay_dp_port).collect();
        let underlay = Underlay { owner, ports };
        Ok(Engine { nodes, one_node: sc.one_node, refs, underlay })
    }

    /// What a live run changes in the defaults: megaflows idle for 10 s are removed (OVS's
    /// default max-idle), unless the scenario says otherwise, and revalidation after learned
    /// state changes runs at most every 10 ms (see `Datapath::revalidate_interval_ms`).
    pub fn live_defaults(&mut self) {
        for n in &mut self.nodes {
            n.dp.max_idle_ms.get_or_insert(LIVE_MAX_IDLE_MS);
            n.dp.revalidate_interval_ms = LIVE_REVALIDATE_INTERVAL_MS;
        }
    }

    /// The engine's clock: the latest of its nodes' datapath clocks, in milliseconds.
    pub fn clock_ms(&self) -> u64 {
        self.nodes.iter().map(|n| n.dp.of.now_ms).max().unwrap_or(0)
    }

    /// Sets every node's datapath clock.
    fn set_clock(&mut self, now_ms: u64) {
        for n in &mut self.nodes {
            n.dp.of.now_ms = now_ms;
        }
    }

    /// The (node, datapath port) of a canonical port reference.
    pub fn resolve(&self, r: &str) -> Option<(usize, u32)> {
        self.refs.get(r).copied()
    }

    /// Runs a replay to completion.
    pub fn replay(
        &mut self,
        opts: &ReplayOptions,
        progress: &Progress,
    ) -> Result<ReplayStats, String> {
        let mut paths: PortMap<PathBuf> = PortMap::default();
        for o in &opts.outputs {
            match self.resolve(&o.port) {
                Some(k) => {
                    paths.insert(k, o.path.clone());
                }
                None if self.nodes.iter().any(|n| n.virtual_refs.contains(&o.port)) => {}
                None => {
                    return Err(format!("output port \"{}\" is not a port of the scenario", o.port))
                }
            }
        }
        let mut total = 0;
        for i in &opts.inputs {
            total += count_records(&i.path);
        }
        let loops = opts.loops.max(1) as u64;
        progress.total.store(opts.limit.map_or(total * loops, |l| l.min(total * loops)), Relaxed);
        let mut writers: PortMap<Option<PcapWriter<File>>> = PortMap::default();
        let mut counts: PortMap<PortCount> = PortMap::default();
        let mut stats = ReplayStats::default();
        let mut flows_seen: HashSet<FiveTuple, FastHash> = HashSet::default();
        let mut spare_packets: Vec<Packet> = Vec::new();
        let mut fabric: VecDeque<(usize, u32, Packet, Origin)> = VecDeque::new();
        // Inputs waiting for a neighbour: seq -> (their packets still queued, delivered).
        let mut pending = Pending::new();
        let mut error: Option<String> = None;
        let mut read_error: Option<String> = None;
        let start = Instant::now();
        let mut first_ts: Option<u64> = None;
        let mut sent: u64 = 0;
        let mut last_expire_ms = 0u64;
        let mut time_base = 0u64; // added to capture time on later loops, so the clock moves on
        let clock0 = self.clock_ms();
        let mut input_stats: Vec<(String, String, u64, u64)> = Vec::new();
        let mut scratch: Vec<u8> = Vec::new();
        let mut mapper = match &opts.map {
            Some(spec) => Some(map::Mapper::new(spec, |r| self.resolve(r))?),
            None => None,
        };
        let mut mapped: Vec<u8> = Vec::new();
        let mut skipped = 0u64; // records --map could not map (not injected)
        'outer: for lp in 0..loops {
            let mut inputs = Vec::new();
            for i in &opts.inputs {
                // With --map, frames enter at their source host's port.
                let (node, dp_port) = match mapper {
                    Some(_) => (0, 0),
                    None => self.resolve(&i.port).ok_or_else(|| {
                        format!("input port \"{}\" is not a port of the scenario", i.port)
                    })?,
                };
                let mut inp = Input {
                    port: i.port.clone(),
                    path: i.path.clone(),
                    node,
                    dp_port,
                    reader: open_input(&i.path)?,
                    next: None,
                    spare: Vec::new(),
                    packets: 0,
                    bytes: 0,
                };
                inp.advance()?;
                inputs.push(inp);
            }
            // Raw capture time span of this pass (captures are not always in order).
            let (mut loop_first_ts, mut loop_last_ts) = (u64::MAX, 0u64);
            loop {
                if progress.cancel.load(Relaxed) {
                    break 'outer;
                }
                if opts.limit.is_some_and(|l| sent >= l) {
                    break 'outer;
                }
                // The earliest pending frame; ties go to the input given first.
                let Some(ix) = (0..inputs.len())
                    .filter(|&k| inputs[k].next.is_some())
                    .min_by_key(|&k| (inputs[k].next.as_ref().map(|n| n.0), k))
                else {
                    break;
                };
                let (ts, frame, linktype, orig_len) = inputs[ix].next.take().expect("checked");
                // Timestamps a classic pcap cannot hold (before 1970, after 2106) are clamped,
                // so every frame can be written and the clock stays finite.
                let ts = ts.min(MAX_PCAP_TS_NS);
                // A record that cannot be read ends the run after this frame: what came
                // before is forwarded and written, and the run reports itself incomplete.
                if let Err(e) = inputs[ix].advance() {
                    read_error = Some(e);
                }
                inputs[ix].packets += 1;
                inputs[ix].bytes += frame.len() as u64;
                loop_first_ts = loop_first_ts.min(ts);
                loop_last_ts = loop_last_ts.max(ts);
                let ts_run = ts + time_base;
                let mut target = (inputs[ix].node, inputs[ix].dp_port);
                let (mut frame, mut linktype) = (frame, linktype);
                if let Some(m) = mapper.as_mut() {
                    match m.map_record(linktype, &frame, orig_len, &mut scratch, &mut mapped) {
                        Ok(t) => {
                            std::mem::swap(&mut frame, &mut mapped);
                            linktype = 1; // Ethernet
                            target = (t.node, t.dp_port);
                        }
                        Err(_) => {
                            skipped += 1;
                            progress.done.store(sent + skipped, Relaxed);
                            if read_error.is_some() {
                                break 'outer;
                            }
                            continue;
                        }
                    }
                }
                // Pacing.
                let t0 = *first_ts.get_or_insert(ts_run);
                match opts.speed.mode {
                    SpeedMode::Topspeed => {}
                    SpeedMode::Multiplier if opts.speed.value > 0.0 => {
                        let due = (ts_run.saturating_sub(t0)) as f64 / opts.speed.value;
                        let el = start.elapsed().as_nanos() as f64;
                        if due > el {
                            std::thread::sleep(Duration::from_nanos((due - el) as u64));
                        }
                    }
                    SpeedMode::Pps if opts.speed.value > 0.0 => {
                        let due = sent as f64 * 1e9 / opts.speed.value;
                        let el = start.elapsed().as_nanos() as f64;
                        if due > el {
                            std::thread::sleep(Duration::from_nanos((due - el) as u64));
                        }
                    }
                    _ => {}
                }
                sent += 1;
                stats.packets_in += 1;
                stats.bytes_in += frame.len() as u64;
                let (node, dp_port) = target;
                {
                    let c = counts.entry((node, dp_port)).or_default();
                    c.rx += 1;
                    c.rx_bytes += frame.len() as u64;
                }
                // The datapath clock runs with the capture: it starts where it was and advances
                // by the capture's time since the run's first packet.
                let now_ms = clock0 + ts_run.saturating_sub(t0) / 1_000_000;
                self.set_clock(now_ms);
                if now_ms >= last_expire_ms + 1000 {
                    last_expire_ms = now_ms;
                    for n in &mut self.nodes {
                        n.dp.expire(now_ms);
                    }
                }
                let eth = match to_ethernet(linktype, &frame, orig_len, &mut scratch) {
                    Ok(e) => e,
                    Err(_) => {
                        *stats
                            .dropped
                            .entry(DropReason::UnsupportedLinktype.name())
                            .or_default() += 1;
                        progress.done.store(sent + skipped, Relaxed);
                        continue;
                    }
                };
                if eth.len() < 14 {
                    *stats.dropped.entry(DropReason::Runt.name()).or_default() += 1;
                    progress.done.store(sent + skipped, Relaxed);
                    continue;
                }
                note_flow(eth, &mut flows_seen, &mut stats);
                let tracing = opts.trace_packet == Some(sent) || opts.trace_packets.contains(&sent);
                if tracing {
                    for n in &mut self.nodes {
                        n.dp.tracing = Some(Vec::new());
                        n.dp.trace_names = opts.trace_names;
                    }
                }
                // Carry the frame to completion across nodes.
                let mut first = spare_packets.pop().unwrap_or_default();
                first.set_from_slice(eth);
                fabric.push_back((node, dp_port, first, Origin::Input));
                inputs[ix].spare = frame; // its buffer holds the input's next frame
                let mut outputs = 0u64;
                let mut queued = 0u32;
                let mut traced_out: Vec<(usize, u32, Vec<u8>)> = Vec::new();
                let mut traced: Option<trace::TraceReport> = None;
                let mut last_drop: Option<DropReason> = None;
                let mut hops = 0;
                while let Some((n, p, pkt, origin)) = fabric.pop_front() {
                    hops += 1;
                    if hops > MAX_HOPS_PER_INPUT {
                        fabric.clear();
                        last_drop = Some(DropReason::RecursionTooDeep);
                        break;
                    }
                    if n != node || p != dp_port || hops > 1 {
                        let c = counts.entry((n, p)).or_default();
                        if hops > 1 {
                            c.rx += 1;
                            c.rx_bytes += pkt.len() as u64;
                        }
                    }
                    let mut sink = RunSink {
                        node: n,
                        ts_ns: ts_run,
                        nsec: opts.nsec,
                        writers: &mut writers,
                        paths: &paths,
                        counts: &mut counts,
                        fabric: &mut fabric,
                        generated: 0,
                        underlay_hops: 0,
                        underlay: &self.underlay,
                        error: &mut error,
                        packets_out: 0,
                        bytes_out: 0,
                        record: tracing.then_some(&mut traced_out),
                    };
                    let dp = &mut self.nodes[n].dp;
                    let mut pkt = pkt;
                    let o = dp.receive_as(&mut pkt, p, origin, sent, &mut sink);
                    if spare_packets.len() < SPARE_PACKETS {
                        spare_packets.push(pkt);
                    }
                    if let Some(t) = dp.tracing.as_mut() {
                        let rep = traced.get_or_insert_with(trace::TraceReport::default);
                        rep.passes
                            .extend(t.drain(..).map(|pass| trace::TracedPass { node: n, pass }));
                    }
                    stats.packets_out += sink.packets_out;
                    stats.bytes_out += sink.bytes_out;
                    stats.generated += sink.generated;
                    stats.carried += sink.underlay_hops;
                    if origin == Origin::Input {
                        outputs += o.outputs as u64;
                        queued += o.queued;
                        if let Some(d) = o.drop {
                            last_drop = Some(d);
                        }
                    }
                }
                if tracing {
                    for n in &mut self.nodes {
                        n.dp.tracing = None;
                    }
                    let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
                    let mut rep = traced.take().unwrap_or_default();
                    rep.one_node = self.one_node;
                    rep.node_names = names;
                    rep.follow = true;
                    rep.names = opts.trace_names;
                    for (n, p, f) in traced_out.drain(..) {
                        let r = self.nodes[n].port_refs.get(p as usize).cloned().flatten();
                        rep.outputs.push((r.unwrap_or_else(|| p.to_string()), f));
                    }
                    if opts.trace_packets.contains(&sent) {
                        let drop =
                            (outputs == 0).then(|| last_drop.unwrap_or(DropReason::ActionDrop));
                        let port = inputs[ix].port.clone();
                        let report = if opts.trace_packet == Some(sent) {
                            rep.clone()
                        } else {
                            std::mem::take(&mut rep)
                        };
                        stats.traces.push(PacketTrace { packet: sent, port, drop, report });
                    }
                    if opts.trace_packet == Some(sent) {
                        stats.trace = Some(rep);
                    }
                }
                if let Some(e) = error.take() {
                    return Err(e);
                }
                stats.account_input(&mut pending, sent, outputs, queued, last_drop);
                self.settle(&mut pending, &mut stats);
                progress.done.store(sent + skipped, Relaxed);
                if read_error.is_some() {
                    break 'outer;
                }
            }
            for i in &inputs {
                if lp == 0 {
                    input_stats.push((
                        i.port.clone(),
                        i.path.display().to_string(),
                        i.packets,
                        i.bytes,
                    ));
                } else if let Some(s) = input_stats
                    .iter_mut()
                    .find(|s| s.0 == i.port && s.1 == i.path.display().to_string())
                {
                    s.2 += i.packets;
                    s.3 += i.bytes;
                }
            }
            // The next pass starts 1 ms after this one ended, so the clock keeps moving forward.
            time_base += loop_last_ts.saturating_sub(loop_first_ts) + 1_000_000;
        }
        // The replay's clock stops with its last packet: what still waits for a neighbour
        // is dropped.
        for n in &mut self.nodes {
            n.dp.flush_neighbors();
        }
        self.settle(&mut pending, &mut stats);
        for (_, w) in writers.iter_mut() {
            if let Some(w) = w {
                w.flush().map_err(|e| e.to_string())?;
            }
        }
        stats.seconds = start.elapsed().as_secs_f64();
        self.add_datapath_totals(&mut stats);
        for ((n, p), c) in &counts {
            if let Some(Some(r)) = self.nodes[*n].port_refs.get(*p as usize) {
                stats.per_port.insert(r.clone(), (c.rx, c.tx));
            }
        }
        stats.inputs = input_stats;
        stats.flows = flows_seen.len() as u64;
        if let Some(d) = &opts.flows_dir {
            self.write_flows(d)?;
        }
        if let Some(m) = &mapper {
            stats.map = Some(m.summary_json());
            stats.map_hosts = Some(m.hosts_json());
        }
        stats.check_invariant()?;
        stats.read_error = read_error;
        Ok(stats)
    }

    /// Adds every node's cache and conntrack counters to `stats` (after pushing megaflow
    /// hits into the rules).
    fn add_datapath_totals(&mut self, stats: &mut ReplayStats) {
        for n in &mut self.nodes {
            n.dp.push_stats();
            stats.emc_hits += n.dp.stats.emc_hits;
            stats.emc_bypassed += n.dp.stats.emc_bypassed;
            stats.megaflow_hits += n.dp.stats.megaflow_hits;
            stats.upcalls += n.dp.stats.upcalls;
            stats.megaflows += n.dp.megaflows.len() as u64;
            let ct = n.dp.ct.stats();
            stats.conntrack_entries += ct.entries as u64;
            let l = &mut stats.limits;
            l.megaflow_limit = l.megaflow_limit.max(n.dp.megaflows.capacity() as u64);
            l.max_idle_ms = n.dp.max_idle_ms;
            l.conntrack_limit = l.conntrack_limit.max(n.dp.ct.max_entries() as u64);
            l.megaflows_refused += n.dp.megaflows.stats().refused_full;
            l.megaflows_expired += n.dp.stats.megaflows_expired;
            l.conntrack_refused += ct.refused_full;
            l.conntrack_expired += ct.expired;
        }
    }

    /// Accounts the deferred inputs whose queued packets were released or dropped: an input
    /// is settled when the last of its packets is, delivered if any of them was.
    fn settle(
        &mut self,
        pending: &mut HashMap<u64, (u32, bool, DropReason)>,
        st: &mut ReplayStats,
    ) {
        for n in &mut self.nodes {
            for (seq, r) in n.dp.gen.resolved.drain(..) {
                let Some(p) = pending.get_mut(&seq) else { continue };
                p.0 = p.0.saturating_sub(1);
                match r {
                    Resolution::Delivered => p.1 = true,
                    Resolution::Dropped(d) => p.2 = d,
                }
                if p.0 == 0 {
                    let (_, delivered, d) = pending.remove(&seq).expect("present");
                    st.queued -= 1;
                    if delivered {
                        st.delivered += 1;
                    } else {
                        *st.dropped.entry(d.name()).or_default() += 1;
                    }
                }
            }
        }
    }
}

/// Counts the IP 5-tuples of the inputs for the tcpreplay-style `Flows:` line.
fn note_flow(eth: &[u8], seen: &mut HashSet<FiveTuple, FastHash>, stats: &mut ReplayStats) {
    let mut k = crate::flow::FlowKey::ZERO;
    crate::flow::extract::extract(eth, &mut k);
    if !k.is_ip_any() {
        stats.non_flow_packets += 1;
        return;
    }
    let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
    if k.is_ipv4() {
        s[..4].copy_from_slice(&k.nw_src.to_be_bytes());
        d[..4].copy_from_slice(&k.nw_dst.to_be_bytes());
    } else {
        s = k.ipv6_src;
        d = k.ipv6_dst;
    }
    seen.insert((k.nw_proto, s, d, k.tp_src, k.tp_dst));
    stats.flow_packets += 1;
}

/// Options of an in-memory benchmark run.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct BenchOptions {
    pub port: String,
    pub path: PathBuf,
    /// Passes over the capture (the first one warms the caches and is not timed).
    #[serde(default = "one")]
    pub passes: u32,
}

/// Results of an in-memory benchmark run (timed passes only).
#[derive(Debug, Default, Clone)]
pub struct BenchStats {
    pub packets: u64,
    pub bytes: u64,
    pub outputs: u64,
    pub seconds: f64,
    pub emc_hits: u64,
    pub emc_bypassed: u64,
    pub megaflow_hits: u64,
    pub upcalls: u64,
    pub megaflows: u64,
    pub dropped: u64,
}

impl BenchStats {
    pub fn to_json(&self) -> serde_json::Value {
        let pps = if self.seconds > 0.0 { self.packets as f64 / self.seconds } else { 0.0 };
        let ns = if self.packets > 0 { self.seconds * 1e9 / self.packets as f64 } else { 0.0 };
        let rate = |n: u64| if self.packets > 0 { n as f64 / self.packets as f64 } else { 0.0 };
        serde_json::json!({
            "packets": self.packets, "bytes": self.bytes, "outputs": self.outputs,
            "seconds": self.seconds, "pps": pps, "ns_per_packet": ns,
            "emc_hits": self.emc_hits, "emc_bypassed": self.emc_bypassed,
            "megaflow_hits": self.megaflow_hits,
            "upcalls": self.upcalls, "megaflows": self.megaflows, "dropped": self.dropped,
            "emc_hit_rate": rate(self.emc_hits), "megaflow_hit_rate": rate(self.megaflow_hits),
            "upcall_rate": rate(self.upcalls),
        })
    }
}

/// A sink that only counts: the benchmark measures forwarding, not file writing.
struct CountSink {
    outputs: u64,
}

impl Sink for CountSink {
    fn output(&mut self, _port: u32, _pkt: &Packet, _origin: Origin) -> bool {
        self.outputs += 1;
        false
    }
}

impl Engine {
    /// Replays a capture held in memory `passes` times through one node, timing all but the
    /// first pass. Output frames are counted, not written.
    pub fn bench(&mut self, o: &BenchOptions) -> Result<BenchStats, String> {
        let (node, dp_port) = self
            .resolve(&o.port)
            .ok_or_else(|| format!("input port \"{}\" is not a port of the scenario", o.port))?;
        let mut reader = open_input(&o.path)?;
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let mut scratch: Vec<u8> = Vec::new();
        loop {
            match reader.next_record() {
                Ok(Some(r)) => {
                    if let Ok(e) = to_ethernet(r.linktype, r.data, r.orig_len, &mut scratch) {
                        if e.len() >= 14 {
                            frames.push(e.to_vec());
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(format!("{}: {e}", o.path.display())),
            }
        }
        let dp = &mut self.nodes[node].dp;
        let mut sink = CountSink { outputs: 0 };
        let mut pkt = Packet::with_capacity(2048);
        // Warm-up pass: fills the caches (upcalls happen here).
        for f in &frames {
            pkt.set_from_slice(f);
            dp.receive(&mut pkt, dp_port, &mut sink);
        }
        let before = dp.stats;
        let mut st = BenchStats::default();
        sink.outputs = 0;
        let passes = o.passes.max(2) - 1;
        let start = Instant::now();
        for _ in 0..passes {
            for f in &frames {
                pkt.set_from_slice(f);
                let out = dp.receive(&mut pkt, dp_port, &mut sink);
                if out.outputs == 0 {
                    st.dropped += 1;
                }
                st.bytes += f.len() as u64;
            }
        }
        st.seconds = start.elapsed().as_secs_f64();
        st.packets = frames.len() as u64 * passes as u64;
        st.outputs = sink.outputs;
        st.emc_hits = dp.stats.emc_hits - before.emc_hits;
        st.emc_bypassed = dp.stats.emc_bypassed - before.emc_bypassed;
        st.megaflow_hits = dp.stats.megaflow_hits - before.megaflow_hits;
        st.upcalls = dp.stats.upcalls - before.upcalls;
        st.megaflows = dp.megaflows.len() as u64;
        Ok(st)
    }
}
