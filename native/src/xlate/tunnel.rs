//! VXLAN tunnel ports: which port a decapsulated packet belongs to, when a packet sent to a
//! bridge's own address is a tunnel packet to decapsulate, and how a tunnel output is routed
//! and what outer header it gets.
//!
//! Two underlays are supported. One-node scenarios use Open vSwitch native tunnelling: an
//! underlay bridge with an IP address, `routes` and `neighbors`; the outer packet is sent
//! through that bridge's pipeline from its LOCAL port. Multi-node scenarios give each node
//! an underlay NIC; the outer packet leaves on it, addressed to the node that owns the
//! remote IP.

use super::{DpPortKind, Ofproto, PortKind};
use crate::dpif::odp::DropReason;
use crate::flow::key::{nw_frag, tun_flags};
use crate::flow::FlowKey;
use crate::ofproto::action::port;

/// The options of a VXLAN port (`ovs-vsctl ... type=vxlan options:...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelConfig {
    pub remote_ip: Option<u32>, // None = `remote_ip=flow`
    pub local_ip: Option<u32>,
    pub in_key: Option<u64>,  // None = `key=flow` / `in_key=flow`
    pub out_key: Option<u64>, // None = `key=flow` / `out_key=flow`
    pub dst_port: u16,        // default 4789
    pub tos: u8,              // `tos` option (0 by default; ECN is always inherited)
    pub ttl: u8,              // `ttl` option, default 64
    pub df: bool,             // `df_default`, default true
    pub csum: bool,           // `csum`: compute the outer UDP checksum
}

impl Default for TunnelConfig {
    fn default() -> Self {
        TunnelConfig {
            remote_ip: None,
            local_ip: None,
            in_key: Some(0),
            out_key: Some(0),
            dst_port: 4789,
            tos: 0,
            ttl: 64,
            df: true,
            csum: false,
        }
    }
}

/// The datapath port of the tunnel vport for `dst_port`.
pub fn vport_for(of: &Ofproto, dst_port: u16) -> Option<u32> {
    of.dp_ports
        .iter()
        .position(|p| matches!(p.kind, DpPortKind::TunnelVport { dst_port: d } if d == dst_port))
        .map(|i| i as u32)
}

/// tnl_find(): the tunnel port that receives a decapsulated packet. A port with a fixed
/// remote IP and key is preferred over one that takes them from the flow.
pub fn receive_port(of: &Ofproto, flow: &FlowKey, dst_port: u16) -> Option<(usize, u32)> {
    let mut best: Option<(u32, usize, u32)> = None;
    for (bi, b) in of.bridges.iter().enumerate() {
        for p in &b.ports {
            let PortKind::Vxlan(cfg) = &p.kind else { continue };
            if cfg.dst_port != dst_port {
                continue;
            }
            if cfg.local_ip.is_some_and(|l| l != flow.tun_dst) {
                continue;
            }
            let mut score = 0;
            match cfg.remote_ip {
                Some(r) if r == flow.tun_src => score += 2,
                Some(_) => continue,
                None => {}
            }
            match cfg.in_key {
                Some(k) if k == flow.tun_id => score += 1,
                Some(_) => continue,
                None => {}
            }
            if best.is_none_or(|(s, _, _)| score > s) {
                best = Some((score, bi, p.ofport));
            }
        }
    }
    best.map(|(_, b, p)| (b, p))
}

fn tunnel_ports(of: &Ofproto) -> impl Iterator<Item = u16> + '_ {
    of.bridges.iter().flat_map(|b| {
        b.ports.iter().filter_map(|p| match &p.kind {
            PortKind::Vxlan(c) => Some(c.dst_port),
            _ => None,
        })
    })
}

/// The match of one tunnel termination point (tnl-ports.c map_insert): destination MAC,
/// EtherType IPv4, untagged, destination IP, UDP, not a fragment, UDP destination port.
fn termination_match(mac: &[u8; 6], ip: u32, dst_port: u16) -> crate::ofproto::action::Match {
    use crate::flow::FieldId as F;
    let mut m = crate::ofproto::action::Match::catchall();
    m.set_field(
        F::DlDst,
        u128::from_be_bytes({
            let mut b = [0u8; 16];
            b[10..].copy_from_slice(mac);
            b
        }),
    );
    m.set_field(F::DlType, 0x0800);
    m.set_field(F::VlanTci, 0);
    m.set_field(F::NwDst, ip as u128);
    m.set_field(F::NwProto, 17);
    m.set_field_masked(F::NwFrag, 0, nw_frag::MASK as u128);
    m.set_field(F::UdpDst, dst_port as u128);
    m
}

/// tnl_port_map_lookup(): the tunnel vport a packet sent to (`mac`, `ip`) terminates on, by a
/// lookup in a classifier of every (address, tunnel UDP port) pair, so that exactly the bits
/// OVS's staged lookup examines are un-wildcarded.
fn terminate_at(
    of: &Ofproto,
    mac: &[u8; 6],
    ip: u32,
    flow: &FlowKey,
    wc: &mut FlowKey,
) -> Option<u32> {
    let mut cls = crate::ofproto::classifier::Classifier::without_prefixes();
    let mut seen = Vec::new();
    for dst_port in tunnel_ports(of) {
        if !seen.contains(&dst_port) {
            seen.push(dst_port);
            cls.insert(termination_match(mac, ip, dst_port), 0, dst_port);
        }
    }
    let dst_port = cls.lookup(flow, Some(wc)).map(|e| e.value)?;
    vport_for(of, dst_port)
}

/// terminate_native_tunnel(): output to a port that holds an IP (the LOCAL port of an
/// underlay bridge) of a VXLAN packet for that IP becomes `tnl_pop(vport)`.
pub fn terminate(
    of: &Ofproto,
    bridge: usize,
    bp: &super::BridgePort,
    flow: &FlowKey,
    wc: &mut FlowKey,
) -> Option<u32> {
    let b = &of.bridges[bridge];
    if bp.ofport != port::LOCAL {
        return None;
    }
    let (ip, _) = b.ip?;
    terminate_at(of, &b.mac, ip, flow, wc)
}

/// A packet received on a multi-node underlay NIC: VXLAN for this node is decapsulated.
pub fn underlay_terminate(of: &Ofproto, flow: &FlowKey, wc: &mut FlowKey) -> Option<u32> {
    let node = of.underlay.node.as_ref()?;
    terminate_at(of, &node.mac, node.ip, flow, wc)
}

/// How a tunnel output leaves the node.
pub struct OutputPlan {
    pub header: [u8; 50],
    pub tnl_port: u32,
    pub out_dp_port: u32,
    /// One-node: the underlay bridge whose pipeline forwards the outer packet.
    pub via_bridge: Option<usize>,
    /// The outer packet's flow, entering `via_bridge` on its LOCAL port.
    pub outer: FlowKey,
}

/// tnl_port_send() + tnl_route_lookup + tnl_neigh_lookup + the header build of
/// native_tunnel_output().
pub fn plan_output(
    of: &Ofproto,
    cfg: &TunnelConfig,
    flow: &FlowKey,
    wc: &mut FlowKey,
) -> Result<OutputPlan, DropReason> {
    let remote = cfg.remote_ip.unwrap_or(flow.tun_dst);
    let vni = cfg.out_key.unwrap_or(flow.tun_id);
    let mut tos = cfg.tos & 0xfc;
    if flow.is_ip_any() {
        // "ECN fields are always inherited"; CE becomes ECT(0) on the outer header.
        wc.nw_tos |= 0x03;
        let ecn = flow.nw_tos & 0x03;
        tos |= if ecn == 0x03 { 0x02 } else { ecn };
    }
    let tnl_port = vport_for(of, cfg.dst_port).ok_or(DropReason::TunnelNoRoute)?;
    let (src_mac, src_ip, dst_mac, out_dp_port, via_bridge) = if let Some(node) = &of.underlay.node
    {
        let dmac = *node.peers.get(&remote).ok_or(DropReason::TunnelNoNeighbor)?;
        (node.mac, node.ip, dmac, node.dp_port, None)
    } else {
        let route = of
            .underlay
            .routes
            .iter()
            .filter(|r| r.plen == 0 || (remote ^ r.prefix) >> (32 - r.plen as u32) == 0)
            .max_by_key(|r| r.plen)
            .ok_or(DropReason::TunnelNoRoute)?;
        let b = &of.bridges[route.bridge];
        let (src_ip, _) = b.ip.ok_or(DropReason::TunnelNoRoute)?;
        let nh = route.gw.unwrap_or(remote);
        let dmac =
            *of.underlay.neighbors.get(&(route.bridge, nh)).ok_or(DropReason::TunnelNoNeighbor)?;
        let local_dp = b.port(port::LOCAL).and_then(|p| p.dp_port).unwrap_or(0);
        (b.mac, src_ip, dmac, local_dp, Some(route.bridge))
    };
    let mut h = [0u8; 50];
    h[0..6].copy_from_slice(&dst_mac);
    h[6..12].copy_from_slice(&src_mac);
    h[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    h[14] = 0x45;
    h[15] = tos;
    // [16..18] total length, per packet. [18..20] id 0.
    if cfg.df {
        h[20..22].copy_from_slice(&0x4000u16.to_be_bytes());
    }
    h[22] = cfg.ttl;
    h[23] = 17;
    // [24..26] checksum, per packet.
    h[26..30].copy_from_slice(&src_ip.to_be_bytes());
    h[30..34].copy_from_slice(&remote.to_be_bytes());
    // [34..36] source port and [38..40] length, per packet; checksum 0.
    h[36..38].copy_from_slice(&cfg.dst_port.to_be_bytes());
    h[42] = 0x08; // I flag: the VNI is valid.
    let vni_bytes = ((vni as u32) << 8).to_be_bytes();
    h[46..50].copy_from_slice(&vni_bytes);

    let mut outer = FlowKey::ZERO;
    outer.in_port = port::LOCAL;
    outer.dl_dst = dst_mac;
    outer.dl_src = src_mac;
    outer.dl_type = 0x0800;
    outer.nw_src = src_ip;
    outer.nw_dst = remote;
    outer.nw_proto = 17;
    outer.nw_tos = tos;
    outer.nw_ttl = cfg.ttl;
    outer.tp_dst = cfg.dst_port;
    Ok(OutputPlan { header: h, tnl_port, out_dp_port, via_bridge, outer })
}

/// The tunnel flags a decapsulated VXLAN packet carries.
pub const DECAP_FLAGS: u8 = tun_flags::PRESENT | tun_flags::KEY;
