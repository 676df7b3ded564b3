//! Capture I/O with no forwarding, for `dvrlab bench`:
//!
//! - `load_bench_frames` reads captures into memory, merged in timestamp order as a replay
//!   merges its inputs, and packs their frames as `Engine::bench_frames` takes them;
//!   `Engine::load_mapped_frames` does the same after mapping every record onto a Neutron
//!   topology as `replay --map` does, and splits the frames by the node they enter;
//! - `null_replay` is the file I/O ceiling of a replay: it reads captures and writes their
//!   frames to a pcap file, as `dvrlab replay` reads and writes, with no datapath in
//!   between. A file replay cannot go faster than this.
//!
//! Both read through the replay's own reader (`open_input`: pcap and pcapng, read in 64 KiB
//! chunks) and turn every record into an Ethernet frame with `to_ethernet`. A record that
//! cannot be one (an unsupported link type, a cut link-layer header), a frame shorter than an
//! Ethernet header or longer than a benchmark frame can be (65535 bytes) is left out and
//! counted under its reason, so `records == frames + skipped`. A capture that cannot be read
//! to its end is an error naming the file and the record.

use super::map::MapSpec;
use super::{open_input, Engine};
use crate::port::capture::{to_ethernet, ToEthernetError};
use crate::port::pcap::PcapWriter;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

/// Shortest frame the datapath takes: an Ethernet header.
const MIN_FRAME: usize = 14;
/// Longest frame a benchmark record can hold (`Engine::bench_frames`).
const MAX_FRAME: usize = 65535;

/// Why a record was left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Skip {
    UnsupportedLinktype,
    Runt,
    TooLong,
}

/// Records of one capture, and what became of them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InputCounts {
    pub records: u64,
    pub frames: u64,
    pub bytes: u64, // of the frames kept
    pub unsupported_linktype: u64,
    pub runt: u64,
    pub too_long: u64,
}

impl InputCounts {
    fn skip(&mut self, s: Skip) {
        match s {
            Skip::UnsupportedLinktype => self.unsupported_linktype += 1,
            Skip::Runt => self.runt += 1,
            Skip::TooLong => self.too_long += 1,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "records": self.records, "frames": self.frames, "bytes": self.bytes,
            "skipped": {
                "unsupported_linktype": self.unsupported_linktype,
                "runt": self.runt,
                "too_long": self.too_long,
            },
        })
    }
}

/// The Ethernet frame of a record, or why it has none.
fn frame_of<'b>(
    linktype: u32,
    data: &'b [u8],
    orig_len: u32,
    scratch: &'b mut Vec<u8>,
) -> Result<&'b [u8], Skip> {
    let f = to_ethernet(linktype, data, orig_len, scratch).map_err(|e| match e {
        ToEthernetError::Truncated { .. } => Skip::Runt,
        _ => Skip::UnsupportedLinktype,
    })?;
    if f.len() < MIN_FRAME {
        Err(Skip::Runt)
    } else if f.len() > MAX_FRAME {
        Err(Skip::TooLong)
    } else {
        Ok(f)
    }
}

/// One capture to load, and the index of its port in the benchmark's port list.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadInput {
    pub path: PathBuf,
    pub port: u16,
}

/// Options of `load_bench_frames`.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadOptions {
    pub inputs: Vec<LoadInput>,
}

/// Frames packed for `Engine::bench_frames`, and the counts of each input.
#[derive(Debug, Default)]
pub struct Loaded {
    pub data: Vec<u8>,
    pub inputs: Vec<InputCounts>,
}

impl Loaded {
    pub fn to_json(&self) -> serde_json::Value {
        let frames: u64 = self.inputs.iter().map(|i| i.frames).sum();
        serde_json::json!({
            "frames": frames,
            "inputs": self.inputs.iter().map(InputCounts::to_json).collect::<Vec<_>>(),
        })
    }
}

/// A record read ahead of the merge.
struct Pending {
    ts_ns: u64,
    linktype: u32,
    orig_len: u32,
    data: Vec<u8>,
}

/// Reads every capture record by record, merged in timestamp order (ties go to the input
/// given first, as in a replay), and hands each to `f` with the index of its input.
fn for_each_merged(
    paths: &[&PathBuf],
    mut f: impl FnMut(usize, &Pending) -> Result<(), String>,
) -> Result<(), String> {
    let mut readers = Vec::with_capacity(paths.len());
    for p in paths {
        readers.push(open_input(p)?);
    }
    let read = |k: usize, r: &mut crate::port::capture::CaptureReader<'static>| {
        r.next_record()
            .map(|rec| {
                rec.map(|rec| Pending {
                    ts_ns: rec.ts_ns,
                    linktype: rec.linktype,
                    orig_len: rec.orig_len,
                    data: rec.data.to_vec(),
                })
            })
            .map_err(|e| format!("{}: {e}", paths[k].display()))
    };
    let mut pending: Vec<Option<Pending>> = Vec::with_capacity(readers.len());
    for (k, r) in readers.iter_mut().enumerate() {
        pending.push(read(k, r)?);
    }
    while let Some(k) = (0..pending.len())
        .filter(|&k| pending[k].is_some())
        .min_by_key(|&k| (pending[k].as_ref().map(|p| p.ts_ns), k))
    {
        let p = pending[k].take().expect("checked");
        f(k, &p)?;
        pending[k] = read(k, &mut readers[k])?;
    }
    Ok(())
}

/// Appends one record `[u16 LE port][u16 0][u32 LE length][frame]`.
fn push_record(data: &mut Vec<u8>, port: u16, frame: &[u8]) {
    data.extend_from_slice(&port.to_le_bytes());
    data.extend_from_slice(&[0, 0]);
    data.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    data.extend_from_slice(frame);
}

/// Reads every input into memory, merged in timestamp order, as records for
/// `Engine::bench_frames`, each on its input's port.
pub fn load_bench_frames(o: &LoadOptions) -> Result<Loaded, String> {
    let paths: Vec<&PathBuf> = o.inputs.iter().map(|i| &i.path).collect();
    let mut out = Loaded { data: Vec::new(), inputs: vec![InputCounts::default(); paths.len()] };
    let mut scratch = Vec::new();
    for_each_merged(&paths, |k, p| {
        let counts = &mut out.inputs[k];
        counts.records += 1;
        match frame_of(p.linktype, &p.data, p.orig_len, &mut scratch) {
            Ok(f) => {
                counts.frames += 1;
                counts.bytes += f.len() as u64;
                push_record(&mut out.data, o.inputs[k].port, f);
            }
            Err(s) => counts.skip(s),
        }
        Ok(())
    })?;
    Ok(out)
}

/// Options of `Engine::load_mapped_frames`.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadMappedOptions {
    pub inputs: Vec<PathBuf>,
    pub map: MapSpec,
}

/// The mapped frames that enter one node.
#[derive(Debug, Default)]
pub struct NodeFrames {
    pub node: String,
    /// Canonical references of the ports frames enter by; records name them by index.
    pub ports: Vec<String>,
    pub data: Vec<u8>,
    pub frames: u64,
    pub bytes: u64,
}

/// Captures mapped onto a topology: the frames of each node that receives some, in node
/// order, and what the mapper did.
#[derive(Debug, Default)]
pub struct MappedLoad {
    pub nodes: Vec<NodeFrames>,
    /// Mapped frames longer than a benchmark frame can be, left out.
    pub too_long: u64,
    pub map: serde_json::Value,
}

impl MappedLoad {
    pub fn to_json(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "node": n.node, "ports": n.ports, "frames": n.frames, "bytes": n.bytes,
                })
            })
            .collect();
        serde_json::json!({"nodes": nodes, "too_long": self.too_long, "map": self.map})
    }
}

impl Engine {
    /// Reads every input, merged in timestamp order, and maps each record onto the topology
    /// as `replay --map` does (`map::Mapper`, the same host table for the whole run): each
    /// mapped frame is kept for the node and port its source host enters by.
    pub fn load_mapped_frames(&self, o: &LoadMappedOptions) -> Result<MappedLoad, String> {
        let mut mapper = self.mapper(&o.map)?;
        let paths: Vec<&PathBuf> = o.inputs.iter().collect();
        let mut by_node: BTreeMap<usize, (NodeFrames, HashMap<u32, u16>)> = BTreeMap::new();
        let (mut scratch, mut mapped) = (Vec::new(), Vec::new());
        let mut too_long = 0u64;
        for_each_merged(&paths, |_, p| {
            let Ok(t) =
                mapper.map_record(p.linktype, &p.data, p.orig_len, &mut scratch, &mut mapped)
            else {
                return Ok(());
            };
            if mapped.len() > MAX_FRAME {
                too_long += 1;
                return Ok(());
            }
            let node = &self.nodes[t.node];
            let (frames, ports) = by_node.entry(t.node).or_insert_with(|| {
                (NodeFrames { node: node.name.clone(), ..NodeFrames::default() }, HashMap::new())
            });
            let idx = match ports.get(&t.dp_port) {
                Some(&i) => i,
                None => {
                    let r = node.port_refs.get(t.dp_port as usize).cloned().flatten().ok_or_else(
                        || format!("map: datapath port {} of {} has no name", t.dp_port, node.name),
                    )?;
                    frames.ports.push(r);
                    let i = u16::try_from(frames.ports.len() - 1)
                        .map_err(|_| "map: frames enter by more than 65536 ports".to_string())?;
                    ports.insert(t.dp_port, i);
                    i
                }
            };
            frames.frames += 1;
            frames.bytes += mapped.len() as u64;
            push_record(&mut frames.data, idx, &mapped);
            Ok(())
        })?;
        Ok(MappedLoad {
            nodes: by_node.into_values().map(|(n, _)| n).collect(),
            too_long,
            map: mapper.summary_json(),
        })
    }
}

/// Options of `null_replay`.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NullOptions {
    /// Captures, read one after the other.
    pub inputs: Vec<PathBuf>,
    /// The pcap written (truncated at each pass).
    pub out: PathBuf,
    /// Passes (at least this many; default 1).
    #[serde(default)]
    pub passes: Option<u32>,
    /// Keep timing passes until this many seconds have gone by (default 0).
    #[serde(default)]
    pub min_seconds: Option<f64>,
}

/// What the timed passes of a null replay did.
#[derive(Debug, Default, Clone)]
pub struct NullFigures {
    pub passes: u32,
    pub records: u64,
    pub packets: u64,    // frames written
    pub bytes: u64,      // bytes of the frames written
    pub file_bytes: u64, // bytes read from the captures (headers included)
    pub seconds: f64,
}

impl NullFigures {
    pub fn to_json(&self) -> serde_json::Value {
        let per_s = |n: f64| if self.seconds > 0.0 { n / self.seconds } else { 0.0 };
        serde_json::json!({
            "passes": self.passes, "records": self.records, "packets": self.packets,
            "bytes": self.bytes, "file_bytes": self.file_bytes, "seconds": self.seconds,
            "pps": per_s(self.packets as f64),
            "mb_per_second": per_s(self.bytes as f64 / 1e6),
            "file_mb_per_second": per_s(self.file_bytes as f64 / 1e6),
        })
    }
}

/// One pass: every input read and written to `out`; returns (records, frames, bytes).
fn null_pass(o: &NullOptions) -> Result<(u64, u64, u64), String> {
    let file = File::create(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let mut w = PcapWriter::new(file).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let (mut records, mut frames, mut bytes) = (0u64, 0u64, 0u64);
    let mut scratch = Vec::new();
    for path in &o.inputs {
        let mut r = open_input(path)?;
        loop {
            let rec = match r.next_record() {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                Err(e) => return Err(format!("{}: {e}", path.display())),
            };
            records += 1;
            let ts = rec.ts_ns.min(super::MAX_PCAP_TS_NS);
            if let Ok(f) = frame_of(rec.linktype, rec.data, rec.orig_len, &mut scratch) {
                w.write(ts, f).map_err(|e| format!("{}: {e}", o.out.display()))?;
                frames += 1;
                bytes += f.len() as u64;
            }
        }
    }
    w.finish().map_err(|e| format!("{}: {e}", o.out.display()))?;
    Ok((records, frames, bytes))
}

/// Reads the inputs and writes their frames to `out`, pass after pass, timed.
pub fn null_replay(o: &NullOptions) -> Result<NullFigures, String> {
    let mut file_bytes = 0u64;
    for p in &o.inputs {
        file_bytes += std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?.len();
    }
    let passes = o.passes.unwrap_or(1).max(1);
    let min_seconds = o.min_seconds.unwrap_or(0.0);
    let mut fig = NullFigures::default();
    let start = Instant::now();
    loop {
        let (records, frames, bytes) = null_pass(o)?;
        fig.passes += 1;
        fig.records += records;
        fig.packets += frames;
        fig.bytes += bytes;
        fig.file_bytes += file_bytes;
        fig.seconds = start.elapsed().as_secs_f64();
        if fig.passes >= passes && fig.seconds >= min_seconds {
            break;
        }
    }
    Ok(fig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::pcap::PcapWriter;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dvrlab-nullio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn write_pcap(path: &PathBuf, frames: &[(u64, Vec<u8>)]) {
        let mut w = PcapWriter::new(File::create(path).unwrap()).unwrap();
        for (ts, f) in frames {
            w.write(*ts, f).unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn load_merges_by_time_and_skips_runts() {
        let a = temp("a.pcap");
        let b = temp("b.pcap");
        // A: frames at t=1 and t=3 (60 bytes), and a 10-byte runt at t=4.
        write_pcap(&a, &[(1_000, vec![1; 60]), (3_000, vec![3; 60]), (4_000, vec![4; 10])]);
        // B: one frame at t=2 (70 bytes) and one at t=3, which follows A's t=3 (a tie).
        write_pcap(&b, &[(2_000, vec![2; 70]), (3_000, vec![5; 64])]);
        let o = LoadOptions {
            inputs: vec![LoadInput { path: a, port: 0 }, LoadInput { path: b, port: 1 }],
        };
        let l = load_bench_frames(&o).unwrap();
        let mut order = Vec::new();
        let mut at = 0;
        while at < l.data.len() {
            let port = u16::from_le_bytes([l.data[at], l.data[at + 1]]);
            let len = u32::from_le_bytes(l.data[at + 4..at + 8].try_into().unwrap()) as usize;
            order.push((port, l.data[at + 8], len));
            at += 8 + len;
        }
        assert_eq!(order, vec![(0, 1, 60), (1, 2, 70), (0, 3, 60), (1, 5, 64)]);
        assert_eq!((l.inputs[0].records, l.inputs[0].frames, l.inputs[0].runt), (3, 2, 1));
        assert_eq!((l.inputs[1].records, l.inputs[1].frames, l.inputs[1].bytes), (2, 2, 134));
    }

    #[test]
    fn corrupt_capture_is_an_error_naming_the_file() {
        let p = temp("cut.pcap");
        write_pcap(&p, &[(1, vec![1; 60]), (2, vec![2; 60])]);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 7]).unwrap();
        let o = LoadOptions { inputs: vec![LoadInput { path: p.clone(), port: 0 }] };
        let e = load_bench_frames(&o).unwrap_err();
        assert!(e.starts_with(&p.display().to_string()), "{e}");
        assert!(e.contains("record 2"), "{e}");
    }

    #[test]
    fn null_replay_writes_every_frame() {
        let p = temp("in.pcap");
        let out = temp("out.pcap");
        write_pcap(&p, &[(1, vec![1; 60]), (2, vec![2; 8]), (3, vec![3; 100])]);
        let o =
            NullOptions { inputs: vec![p], out: out.clone(), passes: Some(2), min_seconds: None };
        let f = null_replay(&o).unwrap();
        assert_eq!((f.passes, f.records, f.packets, f.bytes), (2, 6, 4, 320));
        // The last pass's file: header, then two records of 60 and 100 bytes.
        assert_eq!(std::fs::metadata(&out).unwrap().len(), 24 + 16 + 60 + 16 + 100);
    }
}
