//! Live mode: TAP devices attached to ports of the scenario, and optionally a UDP underlay
//! (this process runs one node; the others are reached over real VXLAN) and a control socket,
//! all served by one I/O loop (poll, then up to `BATCH` frames read per device per wake-up),
//! with the datapath clock on the wall clock. Every frame read is carried to completion
//! across the nodes of the process, as in a replay; what a port with a TAP sends is written
//! to it, what the node sends out of its underlay goes to the UDP underlay when there is
//! one, and what other ports send is counted.
//!
//! Accounting is the replay's: each frame read is delivered, queued (waiting for a
//! namespace's neighbour) or dropped under one reason. A frame output to a device that does
//! not take it (deleted, down, its queue full) or to the UDP underlay when the kernel refuses
//! the datagram is not transmitted: the port counts it in `tx_dropped`, and an input none of
//! whose outputs was transmitted is dropped as `tx_failed`.
//!
//! Faults never end the run: a device deleted under it (`ip link del`, its namespace
//! deleted) is reported once and no longer polled, one that is down is reported when it goes
//! down and when it takes frames again, and the other ports keep forwarding. Reports go to
//! `Progress::events` as they happen; the faults among them are kept in the stats' `errors`.

use super::ctl::Ctl;
use super::iface::Iface;
use super::tap::{Tap, TxFail};
use super::udp::UdpUnderlay;
use super::{Engine, Pending, Progress, ReplayStats};
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
/// The drop reason of an input none of whose outputs a device took.
pub const TX_FAILED: &str = "tx_failed";
/// An interface that fails is polled again after this long.
const IFACE_RETRY_MS: u64 = 1000;

/// What a live run forwards between.
#[derive(Default)]
pub struct LiveSetup {
    /// TAP device, node, datapath port, port reference.
    pub taps: Vec<(Tap, usize, u32, String)>,
    /// Interface (libpcap), node, datapath port, port reference.
    pub ifaces: Vec<(Iface, usize, u32, String)>,
    pub udp: Option<UdpUnderlay>,
    pub ctl: Option<Ctl>,
}

/// The counters and queues of a live run.
#[derive(Default)]
struct LiveState {
    tap_of: HashMap<(usize, u32), usize>,
    iface_of: HashMap<(usize, u32), usize>,
    tx: HashMap<(usize, u32), u64>,
    rx: HashMap<(usize, u32), u64>,
    stats: ReplayStats,
    health: Health,
    fabric: VecDeque<(usize, u32, Packet, Origin)>,
    pending: Pending,
    now_ms: u64,
}

/// What a device can do now.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
enum DevState {
    #[default]
    Up,
    /// Refuses frames (a TAP that is down, an interface that fails); may come back.
    Down,
    /// Deleted under the run: never polled or written again.
    Gone,
}

/// The devices' state, what they refused, and the reports of their changes.
#[derive(Default)]
struct Health {
    taps: Vec<DevState>,
    ifaces: Vec<(DevState, u64)>, // state, and until when (ms) a failing one is not polled
    tx_dropped: HashMap<(usize, u32), u64>,
    /// Outputs of the input being carried that no device took.
    failed: u64,
    /// Reports for the user: (is a fault, text).
    events: Vec<(bool, String)>,
}

impl Health {
    fn tap(&mut self, i: usize, dev: &(Tap, usize, u32, String), to: DevState, why: &str) {
        let Some(s) = self.taps.get_mut(i) else { return };
        if *s == to || *s == DevState::Gone {
            return;
        }
        *s = to;
        let (name, port) = (&dev.0.name, &dev.3);
        self.events.push(match to {
            DevState::Gone => (
                true,
                format!(
                    "TAP {name} ({port}) went away ({why}); what the port sends is dropped, \
                     the other ports go on"
                ),
            ),
            DevState::Down => (
                true,
                format!("TAP {name} ({port}) is down ({why}); what the port sends is dropped"),
            ),
            DevState::Up => (false, format!("TAP {name} ({port}) takes frames again")),
        });
    }

    fn iface(&mut self, i: usize, dev: &(Iface, usize, u32, String), error: Option<&str>) {
        let Some(s) = self.ifaces.get_mut(i) else { return };
        let (name, port) = (&dev.0.name, &dev.3);
        match error {
            Some(e) if s.0 == DevState::Up => {
                s.0 = DevState::Down;
                self.events.push((
                    true,
                    format!("interface {name} ({port}) fails: {e}; what the port sends is dropped"),
                ));
            }
            None if s.0 == DevState::Down => {
                s.0 = DevState::Up;
                self.events.push((false, format!("interface {name} ({port}) works again")));
            }
            _ => {}
        }
    }
}

struct LiveSink<'a> {
    node: usize,
    tap_of: &'a HashMap<(usize, u32), usize>,
    devs: &'a [(Tap, usize, u32, String)],
    iface_of: &'a HashMap<(usize, u32), usize>,
    ifaces: &'a [(Iface, usize, u32, String)],
    udp: Option<&'a mut UdpUnderlay>,
    fabric: &'a mut VecDeque<(usize, u32, Packet, Origin)>,
    underlay: &'a super::Underlay,
    tx: &'a mut HashMap<(usize, u32), u64>,
    stats: &'a mut ReplayStats,
    health: &'a mut Health,
    now_ms: u64,
}

impl LiveSink<'_> {
    /// `port` transmitted `pkt`.
    fn sent(&mut self, port: u32, pkt: &Packet, origin: Origin) {
        *self.tx.entry((self.node, port)).or_default() += 1;
        self.stats.packets_out += 1;
        self.stats.bytes_out += pkt.len() as u64;
        if origin == Origin::Generated {
            self.stats.generated += 1;
        }
    }

    /// `port`'s device did not take the frame.
    fn refused(&mut self, port: u32, origin: Origin) {
        *self.health.tx_dropped.entry((self.node, port)).or_default() += 1;
        if origin == Origin::Input {
            self.health.failed += 1;
        }
    }
}

impl Sink for LiveSink<'_> {
    fn output(&mut self, port: u32, pkt: &Packet, origin: Origin) -> bool {
        let k = (self.node, port);
        if let Some(u) = self.udp.as_deref_mut() {
            if u.node == self.node && u.port == port {
                // Out of this process: sent, and the packet's fate is the peer's to decide.
                // A datagram the kernel refuses is reported by the underlay, per peer.
                match u.send(pkt.data(), self.now_ms) {
                    Ok(_) => self.sent(port, pkt, origin),
                    Err(_) => self.refused(port, origin),
                }
                return false;
            }
        }
        if let Some((n, up)) = self.underlay.hop(self.node, port, pkt.data()) {
            self.sent(port, pkt, origin);
            self.fabric.push_back((n, up, pkt.clone(), origin));
            if origin != Origin::Generated {
                self.stats.carried += 1;
            }
            return true;
        }
        if let Some(&i) = self.tap_of.get(&k) {
            let dev = &self.devs[i];
            if self.health.taps.get(i) == Some(&DevState::Gone) {
                self.refused(port, origin);
                return false;
            }
            match dev.0.send(pkt.data()) {
                Ok(()) => {
                    self.health.tap(i, dev, DevState::Up, "");
                    self.sent(port, pkt, origin);
                }
                Err((why, e)) => {
                    match why {
                        TxFail::Full => {}
                        TxFail::Down => self.health.tap(i, dev, DevState::Down, &e.to_string()),
                        TxFail::Gone => self.health.tap(i, dev, DevState::Gone, &e.to_string()),
                    }
                    self.refused(port, origin);
                }
            }
        } else if let Some(&i) = self.iface_of.get(&k) {
            let dev = &self.ifaces[i];
            match dev.0.send(pkt.data()) {
                Ok(()) => {
                    self.health.iface(i, dev, None);
                    self.sent(port, pkt, origin);
                }
                Err(e) => {
                    self.health.iface(i, dev, Some(&e));
                    self.refused(port, origin);
                }
            }
        } else {
            // A port with no device: counted as transmitted, as a replay writes no file.
            self.sent(port, pkt, origin);
        }
        false
    }
}

/// What `open_live` is asked for (the CLI's options, resolved to canonical port references).
#[derive(serde::Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LiveSpec {
    #[serde(default)]
    pub taps: Vec<TapSpec>,
    /// Existing interfaces attached through libpcap.
    #[serde(default)]
    pub ifaces: Vec<TapSpec>,
    /// The node this process runs (the others are reached over the UDP underlay).
    #[serde(default)]
    pub node: Option<String>,
    /// Where this node's UDP underlay listens (default: its tunnel address, port 4789).
    #[serde(default)]
    pub bind: Option<String>,
    /// Where other nodes' underlays are (default: their tunnel address, port 4789).
    #[serde(default)]
    pub peers: Vec<PeerSpec>,
    #[serde(default)]
    pub ctl: Option<std::path::PathBuf>,
}

#[derive(serde::Deserialize, Debug)]
pub struct TapSpec {
    pub port: String,
    pub ifname: String,
}

#[derive(serde::Deserialize, Debug)]
pub struct PeerSpec {
    pub node: String,
    pub address: String,
}

/// The VXLAN port number IANA assigned, Linux's and OVS's default.
pub const VXLAN_PORT: u16 = 4789;

fn socket_addr(
    what: &str,
    text: &str,
    default_ip: Option<u32>,
) -> Result<std::net::SocketAddrV4, String> {
    use std::net::{Ipv4Addr, SocketAddrV4};
    if let Ok(a) = text.parse::<SocketAddrV4>() {
        return Ok(a);
    }
    if let Ok(ip) = text.parse::<Ipv4Addr>() {
        return Ok(SocketAddrV4::new(ip, VXLAN_PORT));
    }
    if let (Ok(port), Some(ip)) = (text.parse::<u16>(), default_ip) {
        return Ok(SocketAddrV4::new(Ipv4Addr::from(ip), port));
    }
    Err(format!(
        "{what} \"{text}\": expected IPv4:PORT, an IPv4 address (port {VXLAN_PORT}) or a port"
    ))
}

impl Engine {
    /// Opens what a live run forwards between: the TAP devices, the UDP underlay of
    /// `spec.node` and the control socket. Nothing stays open on an error.
    pub fn open_live(&self, spec: &LiveSpec) -> Result<LiveSetup, String> {
        let local = match &spec.node {
            Some(name) => {
                Some(self.nodes.iter().position(|n| &n.name == name).ok_or_else(|| {
                    let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
                    format!("--node {name}: no such node (the scenario has {})", names.join(", "))
                })?)
            }
            None => None,
        };
        let underlay = spec.bind.is_some() || !spec.peers.is_empty();
        if local.is_none() && underlay && self.nodes.len() != 1 {
            return Err("--underlay: say which node this process runs with --node".into());
        }
        let local = local.or(underlay.then_some(0));
        // Every port checked before any device is opened.
        let mut ports: Vec<(bool, &TapSpec, usize, u32)> = Vec::new();
        for (is_tap, t) in
            spec.taps.iter().map(|t| (true, t)).chain(spec.ifaces.iter().map(|t| (false, t)))
        {
            let flag = if is_tap { "--tap" } else { "--iface" };
            let at = format!("{flag} {}={}", t.port, t.ifname);
            let (node, port) = self
                .resolve(&t.port)
                .ok_or_else(|| format!("{at}: no such port in the scenario"))?;
            if let Some(l) = local.filter(|&l| l != node) {
                return Err(format!(
                    "{at}: the port is on node {}; this process runs node {}",
                    self.nodes[node].name, self.nodes[l].name
                ));
            }
            if ports.iter().any(|p| (p.2, p.3) == (node, port)) {
                return Err(format!("{at}: the port has a device attached already"));
            }
            ports.push((is_tap, t, node, port));
        }
        let mut setup = LiveSetup::default();
        for (is_tap, t, node, port) in ports {
            let r = self.nodes[node].port_refs.get(port as usize).cloned().flatten();
            let r = r.unwrap_or_else(|| t.port.clone());
            if is_tap {
                let tap = Tap::open(&t.ifname)
                    .map_err(|e| format!("--tap {}={}: {e}", t.port, t.ifname))?;
                setup.taps.push((tap, node, port, r));
            } else {
                setup.ifaces.push((Iface::open(&t.ifname)?, node, port, r));
            }
        }
        if let Some(l) = local {
            setup.udp = Some(self.open_underlay(l, spec)?);
        }
        if let Some(path) = &spec.ctl {
            setup.ctl = Some(Ctl::open(path)?);
        }
        Ok(setup)
    }

    fn open_underlay(&self, l: usize, spec: &LiveSpec) -> Result<UdpUnderlay, String> {
        use super::udp::Peer;
        let node = &self.nodes[l];
        let (Some(ip), Some(port), Some(nu)) =
            (node.underlay_ip, node.underlay_dp_port, node.dp.of.underlay.node.as_ref())
        else {
            return Err(format!(
                "--node {}: the node has no underlay (give it underlay {{ip, mac}})",
                node.name
            ));
        };
        let bind = match &spec.bind {
            Some(b) => socket_addr("--underlay", b, Some(ip))?,
            None => std::net::SocketAddrV4::new(ip.into(), VXLAN_PORT),
        };
        let vxlan_port = node
            .dp
            .of
            .dp_ports
            .iter()
            .find_map(|p| match p.kind {
                crate::xlate::DpPortKind::TunnelVport { dst_port } => Some(dst_port),
                _ => None,
            })
            .unwrap_or(VXLAN_PORT);
        let mut peers = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(pip) = n.underlay_ip.filter(|_| i != l) else { continue };
            let addr = match spec.peers.iter().find(|p| p.node == n.name) {
                Some(p) => socket_addr(&format!("--underlay {}", p.node), &p.address, Some(pip))?,
                None => std::net::SocketAddrV4::new(pip.into(), VXLAN_PORT),
            };
            let mac = nu.peers.get(&pip).copied().unwrap_or([0; 6]);
            peers.push(Peer::new(&n.name, pip, addr, mac));
        }
        for p in &spec.peers {
            if !self.nodes.iter().any(|n| n.name == p.node) {
                return Err(format!("--underlay {}={}: no such node", p.node, p.address));
            }
            if p.node == node.name {
                return Err(format!(
                    "--underlay {}={}: that is this process's node; give its address as \
                     --underlay IP:PORT",
                    p.node, p.address
                ));
            }
        }
        UdpUnderlay::open(l, port, bind, ip, nu.mac, vxlan_port, peers)
    }
}

impl LiveState {
    /// Hands the reports gathered since the last call to the user (`progress.events`), and
    /// keeps the faults among them in the stats' `errors` (the latest 100).
    fn report(&mut self, progress: &Progress) {
        if self.health.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.health.events);
        for (fault, e) in &events {
            if *fault {
                self.stats.errors.push(e.clone());
            }
        }
        if self.stats.errors.len() > 100 {
            let n = self.stats.errors.len() - 100;
            self.stats.errors.drain(..n);
        }
        if let Ok(mut ev) = progress.events.lock() {
            ev.extend(events.into_iter().map(|(_, e)| e));
        }
    }
}

impl Engine {
    /// Forwards until `progress.cancel` is set; returns the run's counters. `progress.done`
    /// counts the frames read; reports for the user go to `progress.events` as they happen.
    pub fn run_live(
        &mut self,
        live: &mut LiveSetup,
        progress: &Progress,
    ) -> Result<ReplayStats, String> {
        let mut st = LiveState {
            tap_of: live.taps.iter().enumerate().map(|(i, (_, n, p, _))| ((*n, *p), i)).collect(),
            iface_of: live
                .ifaces
                .iter()
                .enumerate()
                .map(|(i, (_, n, p, _))| ((*n, *p), i))
                .collect(),
            ..LiveState::default()
        };
        st.health.taps = vec![DevState::Up; live.taps.len()];
        st.health.ifaces = vec![(DevState::Up, 0); live.ifaces.len()];
        let mut buf = vec![0u8; FRAME_MAX];
        let mut arena: Vec<u8> = Vec::new();
        let mut frames: Vec<(usize, usize, usize)> = Vec::new();
        let start = Instant::now();
        let clock0 = self.clock_ms();
        let mut last_tick = 0u64;
        let mut seq = 0u64;
        let mut fds: Vec<libc::pollfd> = Vec::new();
        while !progress.cancel.load(Relaxed) {
            // A device that is gone (or an interface failing, for a while) is not polled:
            // poll ignores a negative descriptor, and would report its error at once, again
            // and again.
            let now_ms = clock0 + start.elapsed().as_millis() as u64;
            fds.clear();
            for (i, (t, ..)) in live.taps.iter().enumerate() {
                let gone = st.health.taps[i] == DevState::Gone;
                fds.push(pollin(if gone { -1 } else { t.raw_fd() }));
            }
            let iface_at = fds.len();
            for (i, (d, ..)) in live.ifaces.iter().enumerate() {
                let paused = st.health.ifaces[i].1 > now_ms;
                fds.push(pollin(if paused { -1 } else { d.raw_fd() }));
            }
            let udp_at = fds.len();
            if let Some(u) = &live.udp {
                fds.push(pollin(u.raw_fd()));
            }
            let ctl_at = fds.len();
            if let Some(c) = &live.ctl {
                c.push_fds(&mut fds);
            }
            // SAFETY: `fds` is a valid array of pollfd for its length.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(format!("poll: {e}"));
                }
            }
            let now_ms = clock0 + start.elapsed().as_millis() as u64;
            st.now_ms = now_ms;
            self.set_clock(now_ms);
            if now_ms >= last_tick + 1000 {
                last_tick = now_ms;
                self.live_tick(&mut st, live);
                if let Some(u) = &mut live.udp {
                    u.check_silent(now_ms);
                }
                for i in 0..live.taps.len() {
                    if st.health.taps[i] != DevState::Gone && live.taps[i].0.netns_deleted() {
                        let why = "its network namespace was deleted";
                        st.health.tap(i, &live.taps[i], DevState::Gone, why);
                        live.taps[i].0.close();
                    }
                }
            }
            for (i, pfd) in fds[..live.taps.len()].iter().enumerate() {
                let rev = pfd.revents;
                if rev & libc::POLLIN == 0 {
                    if rev & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                        // Detached: its interface was deleted, or the namespace it was in.
                        let why = match live.taps[i].0.recv(&mut buf) {
                            Err(e) => e.to_string(),
                            _ => "poll reports an error".to_string(),
                        };
                        st.health.tap(i, &live.taps[i], DevState::Gone, &why);
                    }
                    continue;
                }
                let (node, port) = (live.taps[i].1, live.taps[i].2);
                for _ in 0..BATCH {
                    let n = match live.taps[i].0.recv(&mut buf) {
                        Ok(Some(n)) => n,
                        Ok(None) => break,
                        Err(e) => {
                            st.health.tap(i, &live.taps[i], DevState::Gone, &e.to_string());
                            break;
                        }
                    };
                    seq += 1;
                    progress.done.store(seq, Relaxed);
                    self.live_input(&mut st, live, node, port, &buf[..n], n, seq);
                }
            }
            for (i, pfd) in fds[iface_at..udp_at].iter().enumerate() {
                if pfd.revents == 0 {
                    continue;
                }
                // Copied out of libpcap's buffer first: forwarding may inject on this very
                // interface.
                arena.clear();
                frames.clear();
                let r = live.ifaces[i].0.recv(BATCH, &mut |data, wire_len| {
                    frames.push((arena.len(), data.len(), wire_len));
                    arena.extend_from_slice(data);
                });
                match r {
                    Err(e) => {
                        st.health.iface(i, &live.ifaces[i], Some(&e));
                        st.health.ifaces[i].1 = now_ms + IFACE_RETRY_MS;
                    }
                    Ok(0) if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 => {
                        let e = format!("{}: poll reports an error", live.ifaces[i].0.name);
                        st.health.iface(i, &live.ifaces[i], Some(&e));
                        st.health.ifaces[i].1 = now_ms + IFACE_RETRY_MS;
                    }
                    Ok(0) => {}
                    Ok(_) => st.health.iface(i, &live.ifaces[i], None),
                }
                let (node, port) = (live.ifaces[i].1, live.ifaces[i].2);
                for &(at, len, wire_len) in &frames {
                    seq += 1;
                    progress.done.store(seq, Relaxed);
                    self.live_input(&mut st, live, node, port, &arena[at..at + len], wire_len, seq);
                }
            }
            if live.udp.is_some() {
                let rev = fds[udp_at].revents;
                let u = live.udp.as_mut().expect("present");
                if rev & libc::POLLERR != 0 {
                    u.read_errors();
                }
                if rev & libc::POLLIN != 0 {
                    for _ in 0..BATCH {
                        let u = live.udp.as_mut().expect("present");
                        let (node, port) = (u.node, u.port);
                        let n = match u.recv(&mut buf) {
                            Ok(Some(n)) => n,
                            Ok(None) => break,
                            Err(e) => {
                                let e = format!("underlay {}: {e}", u.bind);
                                if !st.stats.errors.contains(&e) {
                                    st.health.events.push((true, e));
                                }
                                break;
                            }
                        };
                        seq += 1;
                        progress.done.store(seq, Relaxed);
                        self.live_input(&mut st, live, node, port, &buf[..n], n, seq);
                    }
                }
                let u = live.udp.as_mut().expect("present");
                st.health.events.extend(u.events.drain(..).map(|e| (false, e)));
            }
            if let Some(ctl) = live.ctl.as_mut() {
                for (id, req) in ctl.poll_requests(&fds[ctl_at..]) {
                    let st = &st;
                    let udp = &live.udp;
                    let elapsed = start.elapsed().as_secs_f64();
                    let r =
                        self.control_request(req, |e| e.live_snapshot(st, udp, elapsed).to_json());
                    let reply = r.unwrap_or_else(|e| serde_json::json!({"ok": false, "error": e}));
                    ctl.answer(id, &reply);
                }
                st.health.events.extend(ctl.events.drain(..).map(|e| (true, e)));
            }
            st.report(progress);
        }
        st.report(progress);
        let mut stats = self.live_snapshot(&st, &live.udp, start.elapsed().as_secs_f64());
        stats.check_invariant()?;
        stats.seconds = start.elapsed().as_secs_f64();
        Ok(stats)
    }

    /// The counters of a live run so far, with the datapath totals and per-port counts.
    fn live_snapshot(
        &mut self,
        st: &LiveState,
        udp: &Option<UdpUnderlay>,
        seconds: f64,
    ) -> ReplayStats {
        let mut stats = st.stats.counters();
        stats.seconds = seconds;
        self.add_datapath_totals(&mut stats);
        let dropped = &st.health.tx_dropped;
        let mut keys: Vec<(usize, u32)> =
            st.rx.keys().chain(st.tx.keys()).chain(dropped.keys()).copied().collect();
        keys.sort_unstable();
        keys.dedup();
        for k in keys {
            if let Some(Some(r)) = self.nodes[k.0].port_refs.get(k.1 as usize) {
                let v = (st.rx.get(&k).copied().unwrap_or(0), st.tx.get(&k).copied().unwrap_or(0));
                stats.per_port.insert(r.clone(), v);
                if let Some(&d) = dropped.get(&k) {
                    stats.tx_dropped.insert(r.clone(), d);
                }
            }
        }
        stats.underlay = udp.as_ref().map(|u| u.to_json());
        stats
    }

    /// Once a second: conntrack and flow expiry, neighbour retries, and the inputs they
    /// settle.
    fn live_tick(&mut self, st: &mut LiveState, live: &mut LiveSetup) {
        for i in 0..self.nodes.len() {
            let now = st.now_ms;
            self.nodes[i].dp.expire(now);
            let mut sink = LiveSink {
                node: i,
                tap_of: &st.tap_of,
                devs: &live.taps,
                iface_of: &st.iface_of,
                ifaces: &live.ifaces,
                udp: live.udp.as_mut(),
                fabric: &mut st.fabric,
                underlay: &self.underlay,
                tx: &mut st.tx,
                stats: &mut st.stats,
                health: &mut st.health,
                now_ms: now,
            };
            self.nodes[i].dp.neighbor_tick(&mut sink);
        }
        self.carry_fabric(st, live, 0);
        self.settle(&mut st.pending, &mut st.stats);
    }

    /// One frame read from a device or the underlay (`wire_len` long where it came from):
    /// carried to completion and accounted.
    #[allow(clippy::too_many_arguments)]
    fn live_input(
        &mut self,
        st: &mut LiveState,
        live: &mut LiveSetup,
        node: usize,
        port: u32,
        frame: &[u8],
        wire_len: usize,
        seq: u64,
    ) {
        st.stats.packets_in += 1;
        st.stats.bytes_in += frame.len() as u64;
        *st.rx.entry((node, port)).or_default() += 1;
        let early = if frame.len() < wire_len {
            Some(DropReason::Truncated)
        } else if frame.len() < 14 {
            Some(DropReason::Runt)
        } else {
            None
        };
        if let Some(d) = early {
            *st.stats.dropped.entry(d.name()).or_default() += 1;
            return;
        }
        st.fabric.push_back((node, port, Packet::from_slice(frame), Origin::Input));
        st.health.failed = 0;
        let (outputs, queued, drop) = self.carry_fabric(st, live, seq);
        // Outputs no device took are not deliveries; an input with nothing else is dropped.
        let failed = std::mem::take(&mut st.health.failed);
        let transmitted = outputs.saturating_sub(failed);
        if transmitted == 0 && failed > 0 && queued == 0 {
            *st.stats.dropped.entry(TX_FAILED).or_default() += 1;
        } else {
            st.stats.account_input(&mut st.pending, seq, transmitted, queued, drop);
        }
        self.settle(&mut st.pending, &mut st.stats);
    }

    /// Carries the frames in the fabric to completion; returns the input's (outputs,
    /// packets queued, last drop).
    fn carry_fabric(
        &mut self,
        st: &mut LiveState,
        live: &mut LiveSetup,
        seq: u64,
    ) -> (u64, u32, Option<DropReason>) {
        let (mut outputs, mut queued, mut drop) = (0u64, 0u32, None);
        let mut hops = 0;
        while let Some((n, p, mut pkt, origin)) = st.fabric.pop_front() {
            hops += 1;
            if hops > super::MAX_HOPS_PER_INPUT {
                st.fabric.clear();
                drop = Some(DropReason::RecursionTooDeep);
                break;
            }
            let mut sink = LiveSink {
                node: n,
                tap_of: &st.tap_of,
                devs: &live.taps,
                iface_of: &st.iface_of,
                ifaces: &live.ifaces,
                udp: live.udp.as_mut(),
                fabric: &mut st.fabric,
                underlay: &self.underlay,
                tx: &mut st.tx,
                stats: &mut st.stats,
                health: &mut st.health,
                now_ms: st.now_ms,
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

fn pollin(fd: std::os::fd::RawFd) -> libc::pollfd {
    libc::pollfd { fd, events: libc::POLLIN, revents: 0 }
}

/// Frames given from memory and carried through the whole engine exactly as a live run
/// carries frames read from devices: across every node, namespace and underlay hop of the
/// process, with the live run's accounting and once-a-second ticks (expiry, neighbour
/// retries) on a clock the caller moves. Nothing is written anywhere; outputs are counted.
/// The fuzz targets and the limit tests drive the engine through it.
pub struct MemoryRun {
    st: LiveState,
    setup: LiveSetup,
    seq: u64,
    last_tick: u64,
}

impl Engine {
    /// A run with no devices, its clock at the engine's current time.
    pub fn memory_run(&self) -> MemoryRun {
        let now = self.clock_ms();
        MemoryRun {
            st: LiveState { now_ms: now, ..LiveState::default() },
            setup: LiveSetup { taps: Vec::new(), ifaces: Vec::new(), udp: None, ctl: None },
            seq: 0,
            last_tick: now,
        }
    }

    /// Moves the run's clock to `now_ms` (never backwards), ticking once per second passed.
    pub fn advance(&mut self, run: &mut MemoryRun, now_ms: u64) {
        let now_ms = now_ms.max(run.st.now_ms);
        run.st.now_ms = now_ms;
        self.set_clock(now_ms);
        if now_ms >= run.last_tick + 1000 {
            run.last_tick = now_ms;
            self.live_tick(&mut run.st, &mut run.setup);
        }
    }

    /// Carries one frame in at `port` (a canonical port reference) to completion.
    pub fn inject(&mut self, run: &mut MemoryRun, port: &str, frame: &[u8]) -> Result<(), String> {
        let (node, dp_port) = self
            .resolve(port)
            .ok_or_else(|| format!("\"{port}\" is not a port of the scenario"))?;
        run.seq += 1;
        let seq = run.seq;
        self.live_input(&mut run.st, &mut run.setup, node, dp_port, frame, frame.len(), seq);
        Ok(())
    }

    /// The run's counters so far, datapath totals included (`check_invariant` on them is the
    /// accounting: in = delivered + dropped + queued).
    pub fn memory_stats(&mut self, run: &MemoryRun) -> ReplayStats {
        self.live_snapshot(&run.st, &None, 0.0)
    }

    /// The canonical references of every port a frame can be injected on, in a stable order.
    pub fn input_ports(&self) -> Vec<String> {
        let mut v: Vec<String> = self.refs.keys().cloned().collect();
        v.sort();
        v
    }
}
