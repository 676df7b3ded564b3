//! `dvrlab trace`: one packet through the real datapath with a recorder on every
//! translation, printed in the `ovs-appctl ofproto/trace` layout.
//!
//! The packet is composed from a flow written by hand (or given as bytes), received on its
//! port, and processed exactly as a replay would process it — every recirculation, every
//! decapsulation, and with `follow` every node it reaches over the underlay — except that each
//! pass bypasses the caches and is translated afresh with a recorder attached. So a trace shows
//! what the forwarding code does, never a re-implementation of it, and a trace taken during a
//! replay (`--trace-packet N`) sees the conntrack entries, learned MACs and learned flows the
//! replay had built by then.

use super::Engine;
use crate::dpif::odp::{format_actions, DpPortNames};
use crate::dpif::{Origin, PassKind, PassTrace, Sink};
use crate::flow::compose::compose;
use crate::flow::{FieldId, FlowKey};
use crate::ofproto::action::FlowModCommand;
use crate::ofproto::dump::{format_trace_flow, format_trace_megaflow};
use crate::ofproto::parse::parse_flow;
use crate::wire::Packet;
use crate::xlate::trace::{NodeType, TraceNode};
use crate::xlate::PortKind;
use serde::Deserialize;
use std::collections::VecDeque;

/// What to trace.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct TraceOptions {
    /// `NODE/BRIDGE` or, in a one-node scenario, `BRIDGE`.
    pub bridge: String,
    /// ovs-ofctl flow syntax; with `packet`, only `in_port` is read from it.
    pub flow: String,
    /// The packet's bytes (from `--packet HEX` or a capture), instead of a composed one.
    #[serde(default)]
    pub packet: Option<Vec<u8>>,
    /// A capture and the 1-based index of the packet in it to trace.
    #[serde(default)]
    pub pcap: Option<std::path::PathBuf>,
    #[serde(default)]
    pub index: Option<u64>,
    /// Continue across tunnels and nodes.
    #[serde(default)]
    pub follow: bool,
    #[serde(default)]
    pub names: bool,
    /// Say, for each field of the megaflow, which step made translation read it.
    #[serde(default)]
    pub explain: bool,
}

/// One pass of a traced packet, on one node.
#[derive(Debug, Clone)]
pub struct TracedPass {
    pub node: usize,
    pub pass: PassTrace,
}

/// Everything a trace found.
#[derive(Debug, Clone, Default)]
pub struct TraceReport {
    pub passes: Vec<TracedPass>,
    /// Where frames left: canonical port reference and the frame.
    pub outputs: Vec<(String, Vec<u8>)>,
    pub follow: bool,
    pub one_node: bool,
    pub node_names: Vec<String>,
    pub names: bool,
    pub explain: bool,
}

struct TraceSink<'a> {
    node: usize,
    refs: &'a [Option<String>],
    outputs: &'a mut Vec<(String, Vec<u8>)>,
    fabric: &'a mut VecDeque<(usize, u32, Packet, Origin)>,
    underlay: &'a super::Underlay,
}

impl Sink for TraceSink<'_> {
    fn output(&mut self, port: u32, pkt: &Packet, origin: Origin) -> bool {
        let r = self.refs.get(port as usize).cloned().flatten().unwrap_or_else(|| port.to_string());
        self.outputs.push((r, pkt.data().to_vec()));
        if let Some((n, p)) = self.underlay.hop(self.node, port, pkt.data()) {
            self.fabric.push_back((n, p, pkt.clone(), origin));
            return true;
        }
        false
    }
}

impl Engine {
    /// Finds `NODE/BRIDGE` (or `BRIDGE` in a one-node scenario).
    pub(crate) fn resolve_bridge(&self, r: &str) -> Result<(usize, usize), String> {
        let (node, bridge) = match r.split_once('/') {
            Some((n, b)) if !self.one_node => (n, b),
            _ if self.one_node => ("", r),
            _ => return Err(format!("\"{r}\" is not NODE/BRIDGE")),
        };
        let ni = self
            .nodes
            .iter()
            .position(|n| n.name == node)
            .ok_or_else(|| format!("no node named \"{node}\""))?;
        let bi = self.nodes[ni].dp.of.bridges.iter().position(|b| b.name == bridge).ok_or_else(
            || {
                let known: Vec<_> =
                    self.nodes[ni].dp.of.bridges.iter().map(|b| b.name.clone()).collect();
                format!("no bridge named \"{bridge}\" (bridges: {})", known.join(", "))
            },
        )?;
        Ok((ni, bi))
    }

    /// Traces one packet (see the module doc).
    pub fn trace(&mut self, o: &TraceOptions) -> Result<TraceReport, String> {
        let (ni, bi) = self.resolve_bridge(&o.bridge)?;
        let fm = {
            let b = &self.nodes[ni].dp.of.bridges[bi];
            parse_flow(&o.flow, FlowModCommand::Delete, b).map_err(|e| format!("flow: {e}"))?
        };
        let mut key = fm.mat.key;
        let ofport = key.in_port;
        let b = &self.nodes[ni].dp.of.bridges[bi];
        let port = b.port(ofport).ok_or_else(|| {
            format!("in_port {ofport} is not a port of bridge {} (give in_port=N)", b.name)
        })?;
        let dp_port = match (&port.kind, port.dp_port) {
            (_, Some(p)) => p,
            (PortKind::Patch { .. }, _) => {
                return Err(format!(
                    "in_port {} is a patch port: trace from the bridge at its other end",
                    port.name
                ))
            }
            _ => {
                return Err(format!(
                    "in_port {} is a tunnel port: trace the encapsulated packet on the underlay",
                    port.name
                ))
            }
        };
        key.in_port = 0;
        let frame = match (&o.packet, &o.pcap) {
            (Some(p), _) => p.clone(),
            (None, Some(path)) => read_nth(path, o.index.unwrap_or(1))?,
            (None, None) => compose(&key),
        };
        if frame.len() < 14 {
            return Err(format!(
                "the packet has {} bytes, less than an Ethernet header",
                frame.len()
            ));
        }
        for (i, n) in self.nodes.iter_mut().enumerate() {
            n.dp.tracing = (i == ni || o.follow).then(Vec::new);
            n.dp.trace_names = o.names;
        }
        if o.packet.is_none() && o.pcap.is_none() {
            self.nodes[ni].dp.trace_key = Some(key);
        }
        let mut report = TraceReport {
            follow: o.follow,
            one_node: self.one_node,
            names: o.names,
            explain: o.explain,
            node_names: self.nodes.iter().map(|n| n.name.clone()).collect(),
            ..TraceReport::default()
        };
        let mut fabric: VecDeque<(usize, u32, Packet, Origin)> = VecDeque::new();
        fabric.push_back((ni, dp_port, Packet::from_slice(&frame), Origin::Input));
        let mut hops = 0;
        while let Some((n, p, mut pkt, origin)) = fabric.pop_front() {
            hops += 1;
            if hops > 64 {
                break;
            }
            let node = &mut self.nodes[n];
            let mut sink = TraceSink {
                node: n,
                refs: &node.port_refs,
                outputs: &mut report.outputs,
                fabric: &mut fabric,
                underlay: &self.underlay,
            };
            node.dp.receive_as(&mut pkt, p, origin, 0, &mut sink);
            if let Some(t) = node.dp.tracing.as_mut() {
                report.passes.extend(t.drain(..).map(|pass| TracedPass { node: n, pass }));
            }
            if !o.follow {
                fabric.clear();
            }
        }
        for n in &mut self.nodes {
            n.dp.tracing = None;
        }
        Ok(report)
    }
}

/// The `index`-th (1-based) packet of a capture, as an Ethernet frame.
fn read_nth(path: &std::path::Path, index: u64) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut r = crate::port::capture::CaptureReader::new(std::io::BufReader::new(f))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut n = 0;
    let mut scratch = Vec::new();
    while let Some(rec) = r.next_record().map_err(|e| format!("{}: {e}", path.display()))? {
        n += 1;
        if n == index {
            return crate::port::capture::to_ethernet(
                rec.linktype,
                rec.data,
                rec.orig_len,
                &mut scratch,
            )
            .map(|e| e.to_vec())
            .map_err(|e| format!("{}: packet {index}: {e}", path.display()));
        }
    }
    Err(format!("{}: has {n} packets, no packet {index}", path.display()))
}

struct NodePorts<'a>(&'a crate::xlate::Ofproto);

impl DpPortNames for NodePorts<'_> {
    fn dp_port_name(&self, port: u32) -> Option<String> {
        self.0.dp_ports.get(port as usize).filter(|p| !p.name.is_empty()).map(|p| p.name.clone())
    }
}

/// The megaflow fields `--explain` reports, each with the key slot it covers.
const EXPLAINED: &[(&str, FieldId)] = &[
    ("tun_id", FieldId::TunId),
    ("tun_src", FieldId::TunSrc),
    ("tun_dst", FieldId::TunDst),
    ("recirc_id", FieldId::RecircId),
    ("in_port", FieldId::InPortOxm),
    ("ct_state", FieldId::CtState),
    ("ct_zone", FieldId::CtZone),
    ("ct_mark", FieldId::CtMark),
    ("dl_src", FieldId::DlSrc),
    ("dl_dst", FieldId::DlDst),
    ("dl_type", FieldId::DlType),
    ("vlan_tci", FieldId::VlanTci),
    ("nw_src", FieldId::NwSrc),
    ("nw_dst", FieldId::NwDst),
    ("ipv6_src", FieldId::Ipv6Src),
    ("ipv6_dst", FieldId::Ipv6Dst),
    ("ipv6_label", FieldId::Ipv6Label),
    ("nw_proto", FieldId::NwProto),
    ("nw_tos", FieldId::NwTos),
    ("nw_ttl", FieldId::NwTtl),
    ("nw_frag", FieldId::NwFrag),
    ("arp_sha", FieldId::ArpSha),
    ("arp_tha", FieldId::ArpTha),
    ("nd_target", FieldId::NdTarget),
    ("tcp_flags", FieldId::TcpFlags),
    ("tp_src", FieldId::TcpSrc),
    ("tp_dst", FieldId::TcpDst),
];

/// `--explain`: for each field of the megaflow, the steps that made translation read it.
fn format_explain(wc: &FlowKey, explain: &[(FlowKey, String)]) -> String {
    let mut out = String::from("Megaflow fields explained:\n");
    for (name, id) in EXPLAINED {
        let f = id.field();
        let bits = f.get(wc);
        if bits == 0 {
            continue;
        }
        let why: Vec<&str> =
            explain.iter().filter(|(d, _)| f.get(d) & bits != 0).map(|(_, w)| w.as_str()).collect();
        if why.is_empty() {
            out.push_str(&format!("  {name}: (read by the datapath's own parsing)\n"));
        }
        for w in why {
            out.push_str(&format!("  {name}: {w}\n"));
        }
    }
    out
}

const RULE: &str =
    "===============================================================================";

fn ct_state_text(s: u8) -> String {
    use crate::flow::key::ct_state as c;
    let names = [
        (c::NEW, "new"),
        (c::EST, "est"),
        (c::REL, "rel"),
        (c::RPL, "rpl"),
        (c::INV, "inv"),
        (c::TRK, "trk"),
        (c::SNAT, "snat"),
        (c::DNAT, "dnat"),
    ];
    let v: Vec<&str> = names.iter().filter(|(b, _)| s & b != 0).map(|(_, n)| *n).collect();
    v.join("|")
}

impl Engine {
    /// Prints a trace in the ofproto/trace layout. Without `follow`, only the passes of the
    /// node the trace started on that OVS's ofproto/trace shows (the packet as received, and
    /// its conntrack recirculations).
    pub fn format_trace(&self, r: &TraceReport) -> String {
        let mut out = String::new();
        let start = r.passes.first().map(|p| p.node);
        for (i, tp) in r.passes.iter().enumerate() {
            let p = &tp.pass;
            if !r.follow
                && (Some(tp.node) != start || matches!(p.kind, PassKind::Decapsulated { .. }))
            {
                continue;
            }
            let of = &self.nodes[tp.node].dp.of;
            let bridge = p.bridge.map(|b| &of.bridges[b]);
            let names =
                bridge.filter(|_| r.names).map(|b| b as &dyn crate::ofproto::parse::PortNames);
            if i > 0 {
                out.push('\n');
                out.push_str(RULE);
                out.push('\n');
                let node =
                    if r.one_node { String::new() } else { format!("{}: ", r.node_names[tp.node]) };
                match p.kind {
                    PassKind::Recirculated { id, ct_state, ct_zone } => out.push_str(&format!(
                        "{node}recirc({id:#x}) - resume conntrack with ct_state={} ct_zone={ct_zone} \
                         (from the connection tracker)\n",
                        ct_state_text(ct_state)
                    )),
                    PassKind::Decapsulated { tun_id, tun_src, tun_dst } => out.push_str(&format!(
                        "{node}tnl_pop - decapsulated: tun_id={tun_id:#x},tun_src={},tun_dst={}\n",
                        std::net::Ipv4Addr::from(tun_src),
                        std::net::Ipv4Addr::from(tun_dst)
                    )),
                    PassKind::Received => out.push_str(&format!("{node}received\n")),
                    PassKind::Generated { id } => out.push_str(&format!(
                        "{node}recirc({id:#x}) - a packet the namespace generated\n"
                    )),
                    PassKind::Released { id } => out.push_str(&format!(
                        "{node}recirc({id:#x}) - released: the neighbour it waited for is known\n"
                    )),
                }
                out.push_str(RULE);
                out.push_str("\n\n");
            } else if !r.one_node && r.follow {
                out.push_str(&format!("node {}\n", r.node_names[tp.node]));
            }
            out.push_str(&format!("Flow: {}\n", format_trace_flow(&p.initial_flow, names)));
            out.push_str(&p.tree.print());
            out.push('\n');
            if p.final_flow == p.initial_flow {
                out.push_str("Final flow: unchanged\n");
            } else {
                out.push_str(&format!("Final flow: {}\n", format_trace_flow(&p.final_flow, names)));
            }
            let mut mf = p.initial_flow;
            // The megaflow is printed with the OpenFlow view of the packet (ports as the
            // trace's flow has them).
            mf.regs = [0; 8];
            mf.metadata = 0;
            out.push_str(&format!("Megaflow: {}\n", format_trace_megaflow(&mf, &p.wc, names)));
            let dpn = NodePorts(of);
            let dp_names = r.names.then_some(&dpn as &dyn DpPortNames);
            out.push_str(&format!("Datapath actions: {}\n", format_actions(&p.actions, dp_names)));
            if r.explain {
                out.push_str(&format_explain(&p.wc, &p.explain));
            }
        }
        if r.follow {
            out.push('\n');
            out.push_str(RULE);
            out.push('\n');
            if r.outputs.is_empty() {
                out.push_str("The packet left no port.\n");
            } else {
                for (port, frame) in &r.outputs {
                    out.push_str(&format!("Emitted on {port}: {} bytes\n", frame.len()));
                }
            }
        }
        out
    }

    /// The trace as JSON for scripts: every pass with its tree and its results.
    pub fn trace_json(&self, r: &TraceReport) -> serde_json::Value {
        use serde_json::json;
        fn node(n: &TraceNode) -> serde_json::Value {
            let ty = match n.ty {
                NodeType::Bridge => "bridge",
                NodeType::Table => "table",
                NodeType::Thaw => "thaw",
                NodeType::Action => "action",
                NodeType::Detail => "detail",
                NodeType::Warn => "warn",
                NodeType::Error => "error",
            };
            let mut v = json!({"type": ty, "text": n.text,
                "children": n.subs.iter().map(node).collect::<Vec<_>>()});
            if let Some(f) = &n.flow {
                v["flow"] = flow_fields(f);
            }
            if !n.emitted.is_empty() {
                v["emitted"] = n
                    .emitted
                    .iter()
                    .map(|(port, f)| json!({"port": port, "flow": flow_fields(f)}))
                    .collect();
            }
            v
        }
        let passes: Vec<_> = r
            .passes
            .iter()
            .map(|tp| {
                let p = &tp.pass;
                let of = &self.nodes[tp.node].dp.of;
                let kind = match p.kind {
                    PassKind::Received => json!({"kind": "received"}),
                    PassKind::Generated { id } => json!({"kind": "generated", "recirc_id": id}),
                    PassKind::Released { id } => json!({"kind": "released", "recirc_id": id}),
                    PassKind::Recirculated { id, ct_state, ct_zone } => json!({
                        "kind": "recirculated", "recirc_id": id,
                        "ct_state": ct_state_text(ct_state), "ct_zone": ct_zone}),
                    PassKind::Decapsulated { tun_id, tun_src, tun_dst } => json!({
                        "kind": "decapsulated", "tun_id": tun_id,
                        "tun_src": std::net::Ipv4Addr::from(tun_src).to_string(),
                        "tun_dst": std::net::Ipv4Addr::from(tun_dst).to_string()}),
                };
                let mut mf = p.initial_flow;
                mf.regs = [0; 8];
                mf.metadata = 0;
                json!({
                    "node": r.node_names[tp.node],
                    "pass": kind,
                    "flow": format_trace_flow(&p.initial_flow, None),
                    "final_flow": format_trace_flow(&p.final_flow, None),
                    "megaflow": format_trace_megaflow(&mf, &p.wc, None),
                    "datapath_actions": format_actions(&p.actions, None),
                    "datapath_actions_names": format_actions(&p.actions, Some(&NodePorts(of))),
                    "drop": p.drop.map(|d| d.name()),
                    "explain": p.explain.iter().map(|(_, w)| w.clone()).collect::<Vec<_>>(),
                    "trace": p.tree.root.iter().map(node).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "passes": passes,
            "outputs": r.outputs.iter().map(|(p, f)| json!({"port": p, "bytes": f.len(),
                "hex": f.iter().map(|b| format!("{b:02x}")).collect::<String>()})).collect::<Vec<_>>(),
        })
    }
}

/// The header fields of a flow that a reader follows from hop to hop, as JSON: Ethernet
/// addresses, the outer VLAN (`null` when untagged), the IPv4 or ARP addresses, TTL, protocol
/// (or ARP opcode), L4 ports (or ICMP type and code) and the tunnel metadata.
fn flow_fields(k: &FlowKey) -> serde_json::Value {
    use std::net::Ipv4Addr;
    let mac = |m: &[u8; 6]| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    let vlan = (k.vlan_tci & crate::flow::key::VLAN_CFI != 0).then_some(k.vlan_tci & 0xfff);
    let tunnelled = k.tun_flags & crate::flow::key::tun_flags::PRESENT != 0;
    serde_json::json!({
        "in_port": k.in_port,
        "dl_src": mac(&k.dl_src),
        "dl_dst": mac(&k.dl_dst),
        "dl_vlan": vlan,
        "dl_type": k.dl_type,
        "nw_src": Ipv4Addr::from(k.nw_src).to_string(),
        "nw_dst": Ipv4Addr::from(k.nw_dst).to_string(),
        "nw_ttl": k.nw_ttl,
        "nw_proto": k.nw_proto,
        "tp_src": k.tp_src,
        "tp_dst": k.tp_dst,
        "arp_sha": mac(&k.arp_sha),
        "arp_tha": mac(&k.arp_tha),
        "tun_id": tunnelled.then_some(k.tun_id),
        "tun_src": tunnelled.then(|| Ipv4Addr::from(k.tun_src).to_string()),
        "tun_dst": tunnelled.then(|| Ipv4Addr::from(k.tun_dst).to_string()),
        "ct_state": ct_state_text(k.ct_state),
    })
}

impl Engine {
    /// `dpctl/dump-flows` of every node's megaflow cache (one section per node in a
    /// multi-node scenario).
    pub fn dump_megaflows(&self, verbose: bool, names: bool) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            if !self.one_node {
                out.push_str(&format!("{}:\n", n.name));
            }
            let dp = &n.dp;
            let pn = NodePorts(&dp.of);
            let pn = (names || verbose).then_some(&pn as &dyn DpPortNames);
            for (_, m) in dp.megaflows.iter() {
                // The first packet's whole key, as OVS prints it (masked-out bits show as
                // `value/0` with `-m`).
                let mut line = crate::dpif::dump::format_dpctl_flow(
                    &m.actions.key,
                    &m.mask,
                    &m.stats,
                    &m.actions.actions,
                    dp.of.now_ms,
                    pn,
                    verbose,
                );
                if m.actions.slow_path {
                    if let Some(i) = line.find(", actions:") {
                        line.truncate(i);
                        line.push_str(", actions:userspace(pid=0,slow_path(action))");
                    }
                }
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }
}

/// Options of `dump-flows`.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DumpFlowsOptions {
    pub bridge: String,
    #[serde(default)]
    pub filter: String,
    #[serde(default = "yes")]
    pub stats: bool,
    #[serde(default)]
    pub names: bool,
}

fn yes() -> bool {
    true
}

impl Engine {
    /// `ovs-ofctl dump-flows BRIDGE [FILTER]` as OVS 3.1 prints it over OpenFlow 1.5, and the
    /// same flows as JSON records.
    pub fn dump_flows(&self, o: &DumpFlowsOptions) -> Result<(String, serde_json::Value), String> {
        use crate::ofproto::dump::{dump_flows, dump_order, DumpFilter};
        use crate::ofproto::format::{format_actions, format_match};
        let (ni, bi) = self.resolve_bridge(&o.bridge)?;
        let of = &self.nodes[ni].dp.of;
        let b = &of.bridges[bi];
        let fm =
            parse_flow(&o.filter, FlowModCommand::Delete, b).map_err(|e| format!("filter: {e}"))?;
        let filter = DumpFilter::from_flow_mod(&fm);
        // Dumped over OpenFlow 1.5, as the oracle does: actions in their normalised form.
        let style = crate::ofproto::format::ActionStyle::Normalized;
        let lines = dump_flows(&b.tables, &filter, of.now_ms, b, o.names, style, o.stats);
        let mut text = String::new();
        for l in &lines {
            text.push_str(l);
            text.push('\n');
        }
        use std::sync::atomic::Ordering::Relaxed;
        let json: Vec<serde_json::Value> = dump_order(&b.tables, &filter)
            .iter()
            .map(|r| {
                serde_json::json!({
                    "table": r.table,
                    "priority": r.priority,
                    "cookie": format!("{:#x}", r.cookie),
                    "match": format_match(&r.mat, 32768, b, o.names),
                    "actions": format_actions(&r.actions, b, o.names, style),
                    "n_packets": r.n_packets.load(Relaxed),
                    "n_bytes": r.n_bytes.load(Relaxed),
                    "idle_timeout": r.idle_timeout,
                    "hard_timeout": r.hard_timeout,
                })
            })
            .collect();
        Ok((text, serde_json::Value::Array(json)))
    }

    /// `ovs-vsctl show` (every node), or `ovs-ofctl show BRIDGE`; and the ports as records.
    pub fn show(&self, ofctl: Option<&str>) -> Result<(String, serde_json::Value), String> {
        use crate::ofproto::dump::{format_ofctl_show, format_vsctl_show};
        let mut ports = Vec::new();
        for n in &self.nodes {
            for b in &n.dp.of.bridges {
                for p in &b.ports {
                    let kind = match &p.kind {
                        PortKind::Netdev => "netdev",
                        PortKind::Local => "internal",
                        PortKind::Patch { .. } => "patch",
                        PortKind::Vxlan(_) => "vxlan",
                        PortKind::NsIface { .. } => "namespace",
                    };
                    ports.push(serde_json::json!({
                        "node": n.name, "bridge": b.name, "port": p.name, "ofport": p.ofport,
                        "type": kind, "dp_port": p.dp_port, "tag": p.tag, "trunks": p.trunks,
                    }));
                }
            }
        }
        let text = match ofctl {
            Some(r) => {
                let (ni, bi) = self.resolve_bridge(r)?;
                format_ofctl_show(&self.nodes[ni].dp.of.bridges[bi])
            }
            None => {
                let mut s = String::new();
                for (i, n) in self.nodes.iter().enumerate() {
                    if !self.one_node {
                        s.push_str(&format!("{}:\n", n.name));
                    }
                    let uuid = format!("00000000-0000-4000-8000-{:012x}", i + 1);
                    s.push_str(&format_vsctl_show(
                        &n.dp.of.bridges,
                        &uuid,
                        concat!("dvrlab ", env!("CARGO_PKG_VERSION")),
                    ));
                }
                s
            }
        };
        Ok((text, serde_json::Value::Array(ports)))
    }
}

impl Engine {
    /// After a replay: writes `DIR/[NODE/]BRIDGE.flows`, every bridge's flows with the
    /// counters the run produced, as `ovs-ofctl dump-flows` prints them.
    pub fn write_flows(&mut self, dir: &std::path::Path) -> Result<(), String> {
        use crate::ofproto::dump::{dump_flows, DumpFilter, DUMP_FLOWS_HEADER};
        for n in &mut self.nodes {
            n.dp.push_stats();
        }
        for n in &self.nodes {
            let of = &n.dp.of;
            let ndir = if self.one_node { dir.to_path_buf() } else { dir.join(&n.name) };
            std::fs::create_dir_all(&ndir).map_err(|e| format!("{}: {e}", ndir.display()))?;
            for b in &of.bridges {
                let filter = DumpFilter::from_flow_mod(&crate::ofproto::action::FlowMod::default());
                let style = crate::ofproto::format::ActionStyle::Normalized;
                let lines = dump_flows(&b.tables, &filter, of.now_ms, b, false, style, true);
                let mut text = format!("{DUMP_FLOWS_HEADER}\n");
                for l in lines {
                    text.push_str(&l);
                    text.push('\n');
                }
                let path = ndir.join(format!("{}.flows", b.name));
                std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        Ok(())
    }
}
