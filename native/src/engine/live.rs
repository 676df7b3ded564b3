//! Live mode: TAP devices attached to ports of the scenario, forwarded in real time by one
//! I/O loop (poll, then up to `BATCH` frames read per device per wake-up), with the datapath
//! clock on the wall clock. Every frame a device delivers is carried to completion across the
//! nodes of the process, as in a replay; what a port with a TAP sends is written to it, and
//! what other ports send is counted.
//!
//! Accounting is the replay's: each frame read is delivered, queued (waiting for a
//! namespace's neighbour) or dropped under one reason.

use super::tap::Tap;
use super::{Engine, Progress, ReplayStats};
use crate::dpif::odp::DropReason;
use crate::dpif::{Origin, Sink};
use crate::wire::Packet;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// Frames read from one device before the others get their turn.
const BATCH: usize = 64;
/// Frames larger than this are not read whole (the TAP MTU is far below).
const FRAME_MAX: usize = 65_550;

/// The TAP devices of a live run, attached to scenario ports.
pub struct LiveTaps {
    pub taps: Vec<(Tap, usize, u32, String)>, // device, node, datapath port, port reference
}

struct LiveSink<'a> {
    node: usize,
    taps: &'a HashMap<(usize, u32), usize>,
    devs: &'a [(Tap, usize, u32, String)],
    fabric: &'a mut VecDeque<(usize, u32, Packet, Origin)>,
    underlay: &'a super::Underlay,
    tx: &'a mut HashMap<(usize, u32), u64>,
    stats: &'a mut ReplayStats,
    errors: &'a mut Vec<String>,
}

impl Sink for LiveSink<'_> {
    fn output(&mut self, port: u32, pkt: &Packet, origin: Origin) -> bool {
        let k = (self.node, port);
        *self.tx.entry(k).or_default() += 1;
        self.stats.packets_out += 1;
        self.stats.bytes_out += pkt.len() as u64;
        if origin == Origin::Generated {
            self.stats.generated += 1;
        }
        if let Some((n, up)) = self.underlay.hop(self.node, port, pkt.data()) {
            self.fabric.push_back((n, up, pkt.clone(), origin));
            if origin != Origin::Generated {
                self.stats.carried += 1;
            }
            return true;
        }
        if let Some(&i) = self.taps.get(&k) {
            let (dev, ..) = &self.devs[i];
            if let Err(e) = dev.send(pkt.data()) {
                self.errors.push(format!("{}: {e}", dev.name));
            }
        }
        false
    }
}

impl Engine {
    /// Opens a TAP device named `ifname` on port `portref`.
    pub fn open_tap(&self, portref: &str, ifname: &str) -> Result<(Tap, usize, u32), String> {
        let (node, port) = self
            .resolve(portref)
            .ok_or_else(|| format!("--tap {portref}={ifname}: no such port in the scenario"))?;
        let tap = Tap::open(ifname)?;
        Ok((tap, node, port))
    }

    /// Forwards between the TAP devices until `progress.cancel` is set; returns the run's
    /// counters. `progress.done` counts the frames read.
    pub fn run_live(
        &mut self,
        live: &LiveTaps,
        progress: &Progress,
    ) -> Result<ReplayStats, String> {
        let taps: HashMap<(usize, u32), usize> =
            live.taps.iter().enumerate().map(|(i, (_, n, p, _))| ((*n, *p), i)).collect();
        let mut stats = ReplayStats::default();
        let mut tx: HashMap<(usize, u32), u64> = HashMap::new();
        let mut rx: HashMap<(usize, u32), u64> = HashMap::new();
        let mut fabric: VecDeque<(usize, u32, Packet, Origin)> = VecDeque::new();
        let mut pending = super::Pending::new();
        let mut errors: Vec<String> = Vec::new();
        let mut fds: Vec<libc::pollfd> = live
            .taps
            .iter()
            .map(|(t, ..)| libc::pollfd { fd: t.raw_fd(), events: libc::POLLIN, revents: 0 })
            .collect();
        let mut buf = vec![0u8; FRAME_MAX];
        let start = Instant::now();
        let clock0 = self.nodes.iter().map(|n| n.dp.of.now_ms).max().unwrap_or(0);
        let mut last_tick = 0u64;
        let mut seq = 0u64;
        while !progress.cancel.load(Relaxed) {
            // SAFETY: `fds` is a valid array of pollfd for its length.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(format!("poll: {e}"));
                }
            }
            let now_ms = clock0 + start.elapsed().as_millis() as u64;
            for n in &mut self.nodes {
                n.dp.of.now_ms = now_ms;
            }
            if now_ms >= last_tick + 1000 {
                last_tick = now_ms;
                for (i, n) in self.nodes.iter_mut().enumerate() {
                    n.dp.expire(now_ms);
                    let mut sink = LiveSink {
                        node: i,
                        taps: &taps,
                        devs: &live.taps,
                        fabric: &mut fabric,
                        underlay: &self.underlay,
                        tx: &mut tx,
                        stats: &mut stats,
                        errors: &mut errors,
                    };
                    n.dp.neighbor_tick(&mut sink);
                }
                self.carry_fabric(
                    &mut fabric,
                    (&taps, &live.taps, &mut tx, &mut stats, &mut errors),
                    0,
                );
                self.settle(&mut pending, &mut stats);
            }
            for (i, pfd) in fds.iter().enumerate() {
                if pfd.revents & libc::POLLIN == 0 {
                    if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                        errors.push(format!("{}: the device went away", live.taps[i].0.name));
                    }
                    continue;
                }
                let (dev, node, port, _) = &live.taps[i];
                for _ in 0..BATCH {
                    let n = match dev.recv(&mut buf) {
                        Ok(Some(n)) => n,
                        Ok(None) => break,
                        Err(e) => {
                            errors.push(format!("{}: {e}", dev.name));
                            break;
                        }
                    };
                    seq += 1;
                    stats.packets_in += 1;
                    stats.bytes_in += n as u64;
                    *rx.entry((*node, *port)).or_default() += 1;
                    progress.done.store(seq, Relaxed);
                    if n < 14 {
                        *stats.dropped.entry(DropReason::Runt.name()).or_default() += 1;
                        continue;
                    }
                    fabric.push_back((*node, *port, Packet::from_slice(&buf[..n]), Origin::Input));
                    let (outputs, queued, drop) = self.carry_fabric(
                        &mut fabric,
                        (&taps, &live.taps, &mut tx, &mut stats, &mut errors),
                        seq,
                    );
                    stats.account_input(&mut pending, seq, outputs, queued, drop);
                    self.settle(&mut pending, &mut stats);
                }
            }
            for e in errors.drain(..) {
                stats.errors.push(e);
            }
            // Keep the fault list bounded: a device that keeps failing is reported once.
            stats.errors.dedup();
            if stats.errors.len() > 100 {
                stats.errors.drain(..stats.errors.len() - 100);
            }
        }
        stats.seconds = start.elapsed().as_secs_f64();
        self.add_datapath_totals(&mut stats);
        let mut keys: Vec<(usize, u32)> = rx.keys().chain(tx.keys()).copied().collect();
        keys.sort_unstable();
        keys.dedup();
        for k in keys {
            if let Some(Some(r)) = self.nodes[k.0].port_refs.get(k.1 as usize) {
                let v = (rx.get(&k).copied().unwrap_or(0), tx.get(&k).copied().unwrap_or(0));
                stats.per_port.insert(r.clone(), v);
            }
        }
        stats.check_invariant()?;
        Ok(stats)
    }

    /// Carries the frames in `fabric` to completion; returns the input's (outputs, packets
    /// queued, last drop).
    #[allow(clippy::type_complexity)]
    fn carry_fabric(
        &mut self,
        fabric: &mut VecDeque<(usize, u32, Packet, Origin)>,
        ctx: (
            &HashMap<(usize, u32), usize>,
            &[(Tap, usize, u32, String)],
            &mut HashMap<(usize, u32), u64>,
            &mut ReplayStats,
            &mut Vec<String>,
        ),
        seq: u64,
    ) -> (u64, u32, Option<DropReason>) {
        let (taps, devs, tx, stats, errors) = ctx;
        let (mut outputs, mut queued, mut drop) = (0u64, 0u32, None);
        let mut hops = 0;
        while let Some((n, p, mut pkt, origin)) = fabric.pop_front() {
            hops += 1;
            if hops > super::MAX_HOPS_PER_INPUT {
                fabric.clear();
                drop = Some(DropReason::RecursionTooDeep);
                break;
            }
            let mut sink = LiveSink {
                node: n,
                taps,
                devs,
                fabric,
                underlay: &self.underlay,
                tx,
                stats,
                errors,
            };
            let o = self.nodes[n].dp.receive_as(&mut pkt, p, origin, seq, &mut sink);
            if origin == Origin::Input {
                outputs += o.outputs as u64;
                queued += o.queued;
                if o.drop.is_some() {
                    drop = o.drop;
                }
            }
        }
        (outputs, queued, drop)
    }
}
