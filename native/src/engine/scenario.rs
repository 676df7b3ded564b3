//! Building the emulated nodes from a normalised scenario (the JSON the TypeScript loader
//! produces; see `NativeScenario` in src/native.ts): bridges, ports, datapath port numbers,
//! tunnel vports, patch peers, the underlay, and the flows parsed and installed.
//!
//! Every mistake in the scenario becomes one `ScenarioError` line that says where (node,
//! bridge, port, or flow file and line) and what was expected.

use crate::conntrack::{Conntrack, CtConfig};
use crate::dpif::Datapath;
use crate::flow::FlowKey;
use crate::ofproto::action::{port, FlowModCommand};
use crate::ofproto::parse::parse_flow;
use crate::ofproto::table::Tables;
use crate::xlate::normal::MacTable;
use crate::xlate::tunnel::TunnelConfig;
use crate::xlate::{
    Bridge, BridgePort, DpPort, DpPortKind, NodeUnderlay, Ofproto, PortKind, RecircTable, Route,
    Underlay,
};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::Ipv4Addr;

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct NativeScenario {
    pub one_node: bool,
    pub nodes: Vec<NativeNode>,
    #[serde(default)]
    pub megaflow_limit: Option<usize>,
    #[serde(default)]
    pub conntrack_limit: Option<usize>,
    /// Megaflows unused for this many milliseconds are removed (OVS's max-idle).
    #[serde(default)]
    pub max_idle: Option<u64>,
    /// Flows were installed over OpenFlow 1.0 only: actions print as installed.
    #[serde(default)]
    pub openflow10: bool,
    /// OVS's other_config:emc-insert-inv-prob: a megaflow hit enters the exact-match cache
    /// with probability 1/N; 0 disables the EMC. None keeps OVS's default (100).
    #[serde(default)]
    pub emc_insert_inv_prob: Option<u32>,
    /// Whether bursts leave the exact-match cache out while it does not pay (fewer than
    /// half of its probes hit). None keeps the default, true; false probes it for every
    /// packet, as OVS does.
    #[serde(default)]
    pub emc_adaptive: Option<bool>,
}

#[derive(Deserialize, Debug)]
pub struct NativeUnderlay {
    pub ip: String,
    pub mac: String,
}

#[derive(Deserialize, Debug)]
pub struct NativeNode {
    pub name: String,
    #[serde(default)]
    pub underlay: Option<NativeUnderlay>,
    pub bridges: Vec<NativeBridge>,
    #[serde(default)]
    pub routes: Vec<NativeRoute>,
    #[serde(default)]
    pub neighbors: Vec<NativeNeighbor>,
    /// Emulated router namespaces, in the contract's form (crate::netns::NamespaceSpec).
    #[serde(default)]
    pub namespaces: Vec<serde_json::Value>,
}

#[derive(Deserialize, Debug)]
pub struct NativeRoute {
    pub prefix: String,
    pub dev: String,
    #[serde(default)]
    pub gw: Option<String>,
}

#[derive(Deserialize, Debug)]
pub struct NativeNeighbor {
    pub dev: String,
    pub ip: String,
    pub mac: String,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct NativeBridge {
    pub name: String,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub fail_mode: Option<String>,
    pub ports: Vec<NativePort>,
    #[serde(default)]
    pub flows: Vec<NativeFlow>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct NativePort {
    pub name: String,
    pub ofport: u32,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub peer: Option<String>,
    #[serde(default)]
    pub options: HashMap<String, String>,
    #[serde(default)]
    pub tag: Option<u16>,
    #[serde(default)]
    pub trunks: Vec<u16>,
    #[serde(default)]
    pub vm: Option<String>,
}

#[derive(Deserialize, Debug)]
pub struct NativeFlow {
    pub text: String,
    pub source: String,
    pub line: usize,
}

/// One clear line about what is wrong with a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: String) -> Result<T, ScenarioError> {
    Err(ScenarioError(msg))
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        m[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

fn parse_ip(s: &str) -> Option<u32> {
    s.parse::<Ipv4Addr>().ok().map(u32::from)
}

fn parse_cidr(s: &str) -> Option<(u32, u8)> {
    let (ip, plen) = match s.split_once('/') {
        Some((a, b)) => (a, b.parse::<u8>().ok()?),
        None => (s, 32),
    };
    if plen > 32 {
        return None;
    }
    Some((parse_ip(ip)?, plen))
}

/// A node as built: its datapath and the names of its datapath ports.
pub struct Node {
    pub name: String,
    pub dp: Datapath,
    /// Canonical port reference of each datapath port (`node/bridge/port`, `bridge/port`,
    /// `node/underlay`); tunnel vports have none.
    pub port_refs: Vec<Option<String>>,
    pub underlay_ip: Option<u32>,
    pub underlay_dp_port: Option<u32>,
    /// References of ports without a datapath port (patch and tunnel ports): they never
    /// transmit or receive frames themselves.
    pub virtual_refs: Vec<String>,
}

fn tunnel_config(node: &str, br: &str, p: &NativePort) -> Result<TunnelConfig, ScenarioError> {
    let at =
        format!("{node}{}bridge {br}, port {}", if node.is_empty() { "" } else { ": " }, p.name);
    let mut cfg = TunnelConfig::default();
    let key = |v: &str| -> Result<Option<u64>, ScenarioError> {
        if v == "flow" {
            return Ok(None);
        }
        let n = if let Some(h) = v.strip_prefix("0x") {
            u64::from_str_radix(h, 16).ok()
        } else {
            v.parse::<u64>().ok()
        };
        match n {
            Some(n) if n < (1 << 24) => Ok(Some(n)),
            _ => err(format!("{at}: key \"{v}\" is not \"flow\" or a VNI from 0 to 16777215")),
        }
    };
    for (k, v) in &p.options {
        match k.as_str() {
            "remote_ip" => {
                cfg.remote_ip = if v == "flow" {
                    None
                } else {
                    Some(parse_ip(v).ok_or_else(|| {
                        ScenarioError(format!("{at}: remote_ip \"{v}\" is not an IPv4 address"))
                    })?)
                }
            }
            "local_ip" => {
                cfg.local_ip = if v == "flow" { None } else { parse_ip(v) };
            }
            "key" => {
                cfg.in_key = key(v)?;
                cfg.out_key = cfg.in_key;
            }
            "in_key" => cfg.in_key = key(v)?,
            "out_key" => cfg.out_key = key(v)?,
            "dst_port" => {
                cfg.dst_port = v.parse().map_err(|_| {
                    ScenarioError(format!("{at}: dst_port \"{v}\" is not a UDP port number"))
                })?
            }
            "tos" => cfg.tos = v.parse().unwrap_or(0),
            "ttl" => cfg.ttl = v.parse().unwrap_or(64),
            "df_default" => cfg.df = v != "false",
            "csum" => cfg.csum = v == "true",
            _ => {}
        }
    }
    if !p.options.contains_key("remote_ip") {
        return err(format!(
            "{at}: a vxlan port needs options.remote_ip (an IPv4 address or \"flow\")"
        ));
    }
    // The local_ip of a one-node scenario is not used for routing: the outer source comes
    // from the route's bridge address, as the ovs-oracle runs OVS (see OVS-ORACLE.md).
    cfg.local_ip = None;
    Ok(cfg)
}

/// Datapath port numbers as Open vSwitch's dummy datapath picks them (dpif-netdev
/// `choose_port`): a port whose name holds a number gets that number (plus 100 when the name
/// starts with "br"), if free and not 0; otherwise the lowest free number from 1. Ports are
/// added bridge by bridge, each bridge's ports in order and then its LOCAL port, then the
/// tunnel vports. This makes `Datapath actions:` and dpctl dumps print the numbers real OVS
/// prints for the same scenario.
#[derive(Default)]
struct DpAlloc {
    ports: Vec<DpPort>,
    refs: Vec<Option<String>>,
}

impl DpAlloc {
    fn taken(&self, no: u32) -> bool {
        self.ports.get(no as usize).is_some_and(|p| !matches!(p.kind, DpPortKind::Unused))
            || (no == 0 && !self.ports.is_empty())
    }

    fn place(&mut self, no: u32, port: DpPort, r: Option<String>) {
        let i = no as usize;
        if self.ports.len() <= i {
            self.ports.resize(i + 1, DpPort { name: String::new(), kind: DpPortKind::Unused });
            self.refs.resize(i + 1, None);
        }
        self.ports[i] = port;
        self.refs[i] = r;
    }

    fn add(&mut self, port: DpPort, r: Option<String>) -> u32 {
        let name = &port.name;
        let start = if name.starts_with("br") { 100u64 } else { 0 };
        let mut no = None;
        if let Some(pos) = name.find(|c: char| c.is_ascii_digit()) {
            let digits: String = name[pos..].chars().take_while(|c| c.is_ascii_digit()).collect();
            if let Ok(n) = digits.parse::<u64>() {
                let p = start + n;
                if p > 0 && p < 65535 && !self.taken(p as u32) {
                    no = Some(p as u32);
                }
            }
        }
        let no = no.unwrap_or_else(|| (1..).find(|p| !self.taken(*p)).unwrap_or(65534));
        self.place(no, port, r);
        no
    }
}

/// Builds every node of a scenario.
pub fn build(sc: &NativeScenario) -> Result<Vec<Node>, ScenarioError> {
    let mut nodes = Vec::new();
    // Underlay addresses of all nodes, for the fabric's ARP table.
    let mut peers: HashMap<u32, [u8; 6]> = HashMap::new();
    for n in &sc.nodes {
        if let Some(u) = &n.underlay {
            let ip = parse_ip(&u.ip).ok_or_else(|| {
                ScenarioError(format!(
                    "node {}: underlay.ip \"{}\" is not an IPv4 address",
                    n.name, u.ip
                ))
            })?;
            let mac = parse_mac(&u.mac).ok_or_else(|| {
                ScenarioError(format!(
                    "node {}: underlay.mac \"{}\" is not a MAC address",
                    n.name, u.mac
                ))
            })?;
            if peers.insert(ip, mac).is_some() {
                return err(format!(
                    "node {}: underlay IP {} is used by another node",
                    n.name, u.ip
                ));
            }
        }
    }
    for n in &sc.nodes {
        nodes.push(build_node(sc, n, &peers)?);
    }
    Ok(nodes)
}

fn build_node(
    sc: &NativeScenario,
    n: &NativeNode,
    peers: &HashMap<u32, [u8; 6]>,
) -> Result<Node, ScenarioError> {
    let prefix = if sc.one_node { String::new() } else { format!("{}/", n.name) };
    let mut namespaces = Vec::new();
    for (i, v) in n.namespaces.iter().enumerate() {
        let spec: crate::netns::NamespaceSpec = serde_json::from_value(v.clone())
            .map_err(|e| ScenarioError(format!("{prefix}namespaces[{i}]: {e}")))?;
        let ns = crate::netns::Namespace::from_spec(&spec)
            .map_err(|e| ScenarioError(format!("{prefix}namespaces[{i}]: {e}")))?;
        namespaces.push(ns);
    }
    crate::netns::validate_veths(&namespaces)
        .map_err(|e| ScenarioError(format!("{prefix}namespaces: {e}")))?;
    // Bridge ports that carry a namespace interface: (bridge, port) -> (namespace, interface).
    let mut ns_ports: HashMap<(String, String), (usize, String)> = HashMap::new();
    for (ni, ns) in namespaces.iter().enumerate() {
        for i in &ns.interfaces {
            if let crate::netns::Binding::Port { bridge, port } = &i.binding {
                ns_ports.insert((bridge.clone(), port.clone()), (ni, i.name.clone()));
            }
        }
    }
    let mut bridges: Vec<Bridge> = Vec::new();
    let mut dps = DpAlloc::default();
    // Datapath port 0 is the datapath's own internal port, as in OVS.
    dps.place(0, DpPort { name: "ovs-dummy".into(), kind: DpPortKind::Unused }, None);
    let mut tunnel_dst_ports: Vec<u16> = Vec::new();
    let mut virtual_refs: Vec<String> = Vec::new();
    for (bi, b) in n.bridges.iter().enumerate() {
        let mac = match &b.mac {
            Some(m) => parse_mac(m).ok_or_else(|| {
                ScenarioError(format!(
                    "{prefix}bridge {}: mac \"{m}\" is not a MAC address",
                    b.name
                ))
            })?,
            // A deterministic locally administered address derived from the name.
            None => {
                let h = crate::flow::key::hash_words(FlowKey::ZERO.words(), b.name.len() as u64)
                    ^ b.name.bytes().fold(0u64, |a, c| a.wrapping_mul(31).wrapping_add(c as u64));
                let x = h.to_be_bytes();
                [0x02, x[1], x[2], x[3], x[4], x[5]]
            }
        };
        let ip = match &b.ip {
            Some(s) => Some(parse_cidr(s).ok_or_else(|| {
                ScenarioError(format!(
                    "{prefix}bridge {}: ip \"{s}\" is not an IPv4 address/prefix",
                    b.name
                ))
            })?),
            None => None,
        };
        let mut ports = Vec::new();
        for p in &b.ports {
            if p.ofport == 0 || p.ofport >= port::MAX {
                return err(format!(
                    "{prefix}bridge {}, port {}: ofport {} is out of range (1-65279)",
                    b.name, p.name, p.ofport
                ));
            }
            let kind = match p.kind.as_str() {
                "patch" => PortKind::Patch { peer_bridge: usize::MAX, peer_ofport: 0 },
                "vxlan" => {
                    let cfg = tunnel_config(&n.name, &b.name, p)?;
                    if !tunnel_dst_ports.contains(&cfg.dst_port) {
                        tunnel_dst_ports.push(cfg.dst_port);
                    }
                    PortKind::Vxlan(cfg)
                }
                "geneve" | "gre" | "stt" | "lisp" | "erspan" => {
                    return err(format!(
                    "{prefix}bridge {}, port {}: tunnel type \"{}\" is not supported (vxlan is)",
                    b.name, p.name, p.kind
                ))
                }
                _ => match ns_ports.get(&(b.name.clone(), p.name.clone())) {
                    Some((ns, iface)) => PortKind::NsIface { ns: *ns, iface: iface.clone() },
                    None => PortKind::Netdev,
                },
            };
            let dp_port = if matches!(kind, PortKind::Netdev) {
                Some(dps.add(
                    DpPort {
                        name: p.name.clone(),
                        kind: DpPortKind::Bridge { bridge: bi, ofport: p.ofport },
                    },
                    Some(format!("{prefix}{}/{}", b.name, p.name)),
                ))
            } else {
                virtual_refs.push(format!("{prefix}{}/{}", b.name, p.name));
                None
            };
            ports.push(BridgePort {
                name: p.name.clone(),
                ofport: p.ofport,
                kind,
                dp_port,
                tag: p.tag,
                trunks: p.trunks.clone(),
            });
        }
        let local_no = dps.add(
            DpPort {
                name: b.name.clone(),
                kind: DpPortKind::Bridge { bridge: bi, ofport: port::LOCAL },
            },
            Some(format!("{prefix}{}/{}", b.name, b.name)),
        );
        ports.push(BridgePort {
            name: b.name.clone(),
            ofport: port::LOCAL,
            kind: PortKind::Local,
            dp_port: Some(local_no),
            tag: None,
            trunks: Vec::new(),
        });
        let by_ofport = ports.iter().enumerate().map(|(i, p)| (p.ofport, i)).collect();
        bridges.push(Bridge {
            name: b.name.clone(),
            mac,
            ip,
            standalone: b.fail_mode.as_deref() == Some("standalone"),
            ports,
            by_ofport,
            tables: Tables::new(),
            mac_table: MacTable::default(),
        });
    }
    // Patch peers.
    let names: Vec<(usize, String, u32)> = bridges
        .iter()
        .enumerate()
        .flat_map(|(bi, b)| b.ports.iter().map(move |p| (bi, p.name.clone(), p.ofport)))
        .collect();
    for (bi, b) in n.bridges.iter().enumerate() {
        for (pi, p) in b.ports.iter().enumerate() {
            if p.kind != "patch" {
                continue;
            }
            let peer = p.peer.as_deref().or(p.options.get("peer").map(|s| s.as_str()));
            let Some(peer) = peer else {
                return err(format!(
                    "{prefix}bridge {}, port {}: a patch port needs a peer",
                    b.name, p.name
                ));
            };
            let Some((pb, _, pof)) = names.iter().find(|(_, nm, _)| nm == peer) else {
                return err(format!(
                    "{prefix}bridge {}, port {}: patch peer \"{peer}\" is not a port of this node",
                    b.name, p.name
                ));
            };
            bridges[bi].ports[pi].kind = PortKind::Patch { peer_bridge: *pb, peer_ofport: *pof };
        }
    }
    for d in &tunnel_dst_ports {
        dps.add(
            DpPort {
                name: format!("vxlan_sys_{d}"),
                kind: DpPortKind::TunnelVport { dst_port: *d },
            },
            None,
        );
    }
    let mut underlay = Underlay::default();
    let mut underlay_ip = None;
    let mut underlay_dp_port = None;
    if let Some(u) = &n.underlay {
        let ip = parse_ip(&u.ip).unwrap_or(0);
        let mac = parse_mac(&u.mac).unwrap_or([0; 6]);
        let no = dps.add(
            DpPort { name: "underlay".into(), kind: DpPortKind::Underlay },
            Some(format!("{}/underlay", n.name)),
        );
        let mut others = peers.clone();
        others.remove(&ip);
        underlay.node = Some(NodeUnderlay { ip, mac, dp_port: no, peers: others });
        underlay_ip = Some(ip);
        underlay_dp_port = Some(no);
    }
    let bridge_index = |dev: &str| bridges.iter().position(|b| b.name == dev);
    for (i, r) in n.routes.iter().enumerate() {
        let (prefix_ip, plen) = parse_cidr(&r.prefix).ok_or_else(|| {
            ScenarioError(format!("routes[{i}]: prefix \"{}\" is not an IPv4 prefix", r.prefix))
        })?;
        let bridge = bridge_index(&r.dev).ok_or_else(|| {
            ScenarioError(format!("routes[{i}]: dev \"{}\" is not a bridge", r.dev))
        })?;
        let gw = match &r.gw {
            Some(g) => Some(parse_ip(g).ok_or_else(|| {
                ScenarioError(format!("routes[{i}]: gw \"{g}\" is not an IPv4 address"))
            })?),
            None => None,
        };
        let mask = if plen == 0 { 0 } else { u32::MAX << (32 - plen as u32) };
        underlay.routes.push(Route { prefix: prefix_ip & mask, plen, bridge, gw });
    }
    for (i, nb) in n.neighbors.iter().enumerate() {
        let bridge = bridge_index(&nb.dev).ok_or_else(|| {
            ScenarioError(format!("neighbors[{i}]: dev \"{}\" is not a bridge", nb.dev))
        })?;
        let ip = parse_ip(&nb.ip).ok_or_else(|| {
            ScenarioError(format!("neighbors[{i}]: ip \"{}\" is not an IPv4 address", nb.ip))
        })?;
        let mac = parse_mac(&nb.mac).ok_or_else(|| {
            ScenarioError(format!("neighbors[{i}]: mac \"{}\" is not a MAC address", nb.mac))
        })?;
        underlay.neighbors.insert((bridge, ip), mac);
    }
    let DpAlloc { ports: dp_ports, refs: port_refs } = dps;
    let mut of = Ofproto {
        bridges,
        dp_ports,
        recirc: RecircTable::default(),
        next_rule_id: 1,
        underlay,
        now_ms: 0,
        namespaces,
        action_style: if sc.openflow10 {
            crate::ofproto::format::ActionStyle::Installed
        } else {
            crate::ofproto::format::ActionStyle::Normalized
        },
    };
    // Flows.
    for (bi, b) in n.bridges.iter().enumerate() {
        for fl in &b.flows {
            let mut fm = {
                parse_flow(&fl.text, FlowModCommand::Add, &of.bridges[bi])
                    .map_err(|e| ScenarioError(format!("{}:{}: {}", fl.source, fl.line, e)))?
            };
            if sc.openflow10 {
                // An OpenFlow 1.0 flow_mod resets counters when it replaces a flow; OVS keeps
                // that as the flow's `reset_counts` flag.
                fm.flags.reset_counts = true;
            }
            let t = &mut of.bridges[bi].tables;
            t.apply(&fm, &mut of.next_rule_id, 0)
                .map_err(|e| ScenarioError(format!("{}:{}: {e}", fl.source, fl.line)))?;
        }
    }
    let mut cfg = CtConfig::default();
    if let Some(l) = sc.conntrack_limit {
        cfg.max_entries = l;
    }
    let mut dp = Datapath::new(of, Conntrack::new(cfg), sc.megaflow_limit.unwrap_or(1 << 20));
    dp.max_idle_ms = sc.max_idle;
    if let Some(p) = sc.emc_insert_inv_prob {
        dp.emc.set_insert_inv_prob(p);
    }
    if let Some(a) = sc.emc_adaptive {
        dp.emc.set_adaptive(a);
    }
    Ok(Node { name: n.name.clone(), dp, port_refs, underlay_ip, underlay_dp_port, virtual_refs })
}
