//! `dvrlab replay --map`: pushes any capture through a Neutron topology, as tcprewrite
//! pushes a capture through another network. Each distinct host of the capture becomes an
//! endpoint of the topology, a VM or a host outside the cloud behind the external gateway,
//! and every frame is rewritten to travel between those endpoints the way a frame between
//! them would travel in a real OpenStack, then injected on the port of its source endpoint.
//!
//! The rules (README, `dvrlab replay`, says the same for users):
//! - A host is an IPv4 or IPv6 address in IP frames (ARP: the sender and target protocol
//!   addresses), else a MAC address; an IP frame from the unspecified address (DHCP, DAD)
//!   is its Ethernet source's. A capture of a loopback interface (one address at both
//!   ends) has two hosts, told apart by port: the lower port is the server's side. Hosts
//!   are numbered in order of first appearance, source before destination, so a mapping
//!   depends on the capture alone.
//! - A private address (RFC 1918, 100.64/10, 169.254/16, loopback, fc00::/7, fe80::/10)
//!   and a MAC
//!   become a VM, round robin over the VMs that have an address of the family, never the
//!   VM of the host it is first seen talking to when another one is possible. A private host
//!   first seen as the destination of an outside host takes a VM with a floating IP, from
//!   its own round robin. Link-local IPv6 and MAC hosts (which only reach their own L2
//!   segment) prefer a VM on the network of the host they are first seen with.
//! - A public address is an outside host and keeps its address, unless the address falls in
//!   one of the cloud's subnets (or was handed out by a remapping), then it takes the next
//!   free one of 198.18.0.0/15 (2001:2::/48 for IPv6), the benchmarking ranges.
//! - VM to VM: MACs of both VMs on one network, else the destination MAC is the router's
//!   gateway (qr-) MAC of the source's subnet; the VMs' fixed IPs. VM to outside: the gateway
//!   MAC, the outside address. Outside to VM: from the external gateway's MAC, into the uplink
//!   of the node that serves the VM's floating IP, to the MAC that answers ARP for it there
//!   (the fg- port's with DVR) and to the floating IP; a VM without one is reached as a reply
//!   to its SNAT'ed traffic: to the router's SNAT address (qg-) on the SNAT node, ports
//!   unchanged. ARP follows: a VM asks for (and answers) its gateway for anything off its
//!   network; the outside world asks for a floating IP or the SNAT address as the external
//!   gateway does.
//! - VLAN tags are removed. The IPv4 header checksum and the TCP, UDP, ICMP and ICMPv6
//!   checksums are updated incrementally (RFC 1624) for exactly the bytes that change, so a
//!   frame cut by a snap length keeps the relation its checksums had. The IP header quoted
//!   in an ICMP error and the target and link-layer options of neighbour discovery are
//!   rewritten with the same table.
//!
//! Frames that cannot be mapped are not injected; each is counted under one `Skip` reason,
//! so `records == mapped + skipped`. Per frame, `Mapper::map` reads the frame once, writes
//! the rewritten copy into a caller's buffer and never allocates, except when a new host
//! enters the table. No input bytes can make it panic: every read is bounds-checked.

use crate::port::capture::{to_ethernet, ToEthernetError};
use crate::wire::checksum::{
    add, finish, l4_checksum, pseudo_header_v4, pseudo_header_v6, update16,
};
use crate::wire::ipv6::is_ext_header;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};

/// An Ethernet address.
pub type Mac = [u8; 6];

/// The external gateway's MAC when the spec gives none (`EXTERNAL_GW_MAC` of the demo).
const DEFAULT_EXTERNAL_GW_MAC: Mac = [0x02, 0x24, 0x04, 0x00, 0x00, 0x01];

/// The topology as the mapper needs it (`NativeMapSpec` in src/native.ts), built by the
/// TypeScript side from a Neutron topology.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct MapSpec {
    pub vms: Vec<VmSpec>,
    /// The external network's gateway (the outside world's router into the cloud).
    #[serde(default)]
    pub external_gateway: Option<GatewaySpec>,
    /// The external network has an IPv6 subnet.
    #[serde(default)]
    pub external_ipv6: bool,
    /// Every subnet of the topology (CIDR), tenant and external: an outside address inside
    /// one is remapped.
    #[serde(default)]
    pub cloud_prefixes: Vec<String>,
}

/// One VM of the topology.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct VmSpec {
    pub name: String,
    pub node: String,
    /// The canonical reference of the VM's port.
    pub port: String,
    pub mac: String,
    pub network: String,
    #[serde(default)]
    pub ipv4: Option<String>,
    #[serde(default)]
    pub ipv6: Option<String>,
    /// The broadcast address of the IPv4 subnet.
    #[serde(default)]
    pub broadcast4: Option<String>,
    /// The router interface (qr-) on the VM's IPv4 subnet.
    #[serde(default)]
    pub gateway4: Option<GatewaySpec>,
    /// The router interface (qr-) on the VM's IPv6 subnet.
    #[serde(default)]
    pub gateway6: Option<GatewaySpec>,
    /// How the outside reaches the VM's floating IP.
    #[serde(default)]
    pub fip: Option<IngressSpec>,
    /// How the outside reaches the VM's router's SNAT address (qg-).
    #[serde(default)]
    pub snat: Option<IngressSpec>,
}

/// An address and the MAC that answers for it.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    #[serde(default)]
    pub ip: Option<String>,
    pub mac: String,
}

/// Where and how a frame from outside the cloud enters it for one VM.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// The address the outside sends to (the floating IP, or the SNAT address).
    pub ip: String,
    /// The MAC that answers ARP for it (the fg- port's, or the qg- port's).
    pub mac: String,
    /// The address of the interface that asks the external gateway's MAC (fg- or qg-).
    pub arp_ip: String,
    pub node: String,
    /// The canonical reference of the node's uplink port.
    pub port: String,
}

/// Where a mapped frame enters: a node and one of its datapath ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Target {
    pub node: usize,
    pub dp_port: u32,
}

/// Why a capture record was not injected. The names are stats.json's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Skip {
    /// The capture's link type cannot carry Ethernet.
    UnsupportedLinktype,
    /// Shorter than an Ethernet header (after the VLAN tags).
    Runt,
    /// The IP or ARP header is cut before the addresses.
    Truncated,
    /// The source is no host (multicast, broadcast, loopback, reserved, zero MAC), or the
    /// destination is no address a host can have.
    BadAddress,
    /// Both ends are outside the cloud: the cloud never sees the frame.
    OutsideOnly,
    /// A broadcast or multicast from outside the cloud, which no router forwards into it.
    OutsideBroadcast,
    /// Both ends of the frame are hosts mapped onto one VM (a VM does not put traffic to
    /// itself on the wire).
    SameVm,
    /// The frame must be routed and the VM's subnet has no router interface.
    NoRouter,
    /// From outside to a VM that has no floating IP and no router gateway.
    NoExternalRoute,
    /// A link-local (MAC, fe80::) conversation between VMs on different networks.
    L2AcrossNetworks,
    /// No VM has an address of the host's family (IPv4).
    NoVm,
    /// An IPv6 host for a topology whose VMs have no IPv6 address.
    NoIpv6Vm,
    /// A public IPv6 host while the external network has no IPv6 subnet.
    NoIpv6Outside,
}

impl Skip {
    pub const COUNT: usize = 13;
    pub const ALL: [Skip; Skip::COUNT] = [
        Skip::UnsupportedLinktype,
        Skip::Runt,
        Skip::Truncated,
        Skip::BadAddress,
        Skip::OutsideOnly,
        Skip::OutsideBroadcast,
        Skip::SameVm,
        Skip::NoRouter,
        Skip::NoExternalRoute,
        Skip::L2AcrossNetworks,
        Skip::NoVm,
        Skip::NoIpv6Vm,
        Skip::NoIpv6Outside,
    ];

    /// The reason's name in stats.json.
    pub fn name(self) -> &'static str {
        match self {
            Skip::UnsupportedLinktype => "unsupported_linktype",
            Skip::Runt => "runt",
            Skip::Truncated => "truncated",
            Skip::BadAddress => "bad_address",
            Skip::OutsideOnly => "outside_only",
            Skip::OutsideBroadcast => "outside_broadcast",
            Skip::SameVm => "same_vm",
            Skip::NoRouter => "no_router",
            Skip::NoExternalRoute => "no_external_route",
            Skip::L2AcrossNetworks => "l2_across_networks",
            Skip::NoVm => "no_vm",
            Skip::NoIpv6Vm => "no_ipv6_vm",
            Skip::NoIpv6Outside => "no_ipv6_outside",
        }
    }
}

/// What identifies a host of the capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HostKey {
    V4([u8; 4]),
    V6([u8; 16]),
    Mac(Mac),
    /// One side of a conversation between two processes of one host over its loopback
    /// interface: the address (IPv4 as ::ffff:a.b.c.d) and whether it is the server's side.
    Loopback([u8; 16], bool),
}

/// An address a mapped frame carries; `None` leaves the frame's own (the unspecified
/// source of a DHCP or DAD frame, a group destination).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addr {
    None,
    V4([u8; 4]),
    V6([u8; 16]),
}

/// The endpoint a host became.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// VM number `vm` of the spec, with the address the host's frames carry: its fixed IP
    /// of the family, its IPv6 link-local address, or none for a MAC host. `l2_only` hosts
    /// (MAC, fe80::) reach their own network only.
    Vm { vm: u16, addr: Addr, l2_only: bool },
    /// A host outside the cloud with its address (`remapped` when it had to change).
    Outside { addr: Addr, remapped: bool },
}

/// One host of the table, in order of first appearance.
#[derive(Clone, Copy, Debug)]
pub struct Host {
    pub key: HostKey,
    pub endpoint: Endpoint,
    pub first_record: u64, // 1-based record number of the capture (across loops)
}

/// The mapper's counters: `records == mapped + skipped.iter().sum()`.
#[derive(Clone, Debug, Default)]
pub struct MapStats {
    pub records: u64,
    pub mapped: u64,
    pub skipped: [u64; Skip::COUNT],
    /// Mapped frames with a checksum that was wrong in the capture (the IPv4 header's, or a
    /// complete segment's) and was computed anew.
    pub checksums_fixed: u64,
}

/// FNV-1a: host keys are a few bytes, and SipHash would cost more than the rewrite.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvBuild = BuildHasherDefault<Fnv>;

#[derive(Clone, Copy, Debug)]
struct Gateway {
    ip4: [u8; 4],
    ip6: [u8; 16],
    mac: Mac,
}

#[derive(Clone, Copy, Debug)]
struct Ingress {
    ip: [u8; 4],
    mac: Mac,
    arp_ip: [u8; 4],
    target: Target,
}

#[derive(Clone, Debug)]
struct Vm {
    name: String,
    node: String,
    port: String,
    target: Target,
    mac: Mac,
    network: u32,
    ip4: Option<[u8; 4]>,
    ip6: Option<[u8; 16]>,
    ll6: [u8; 16], // fe80::EUI-64 of the MAC
    bcast4: Option<[u8; 4]>,
    gw4: Option<Gateway>,
    gw6: Option<Gateway>,
    fip: Option<Ingress>,
    snat: Option<Ingress>,
}

/// How an address is used, for the mapping rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Private,
    LinkLocal6,
    Public,
    Group,
    Unspecified,
    Invalid,
}

const LOOPBACK6: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

fn class4(a: [u8; 4]) -> Class {
    match a {
        [0, 0, 0, 0] => Class::Unspecified,
        [0, ..] => Class::Invalid,
        [127, ..] => Class::Private, // a loopback capture's host
        [255, 255, 255, 255] => Class::Group,
        [224..=239, ..] => Class::Group,
        [240..=255, ..] => Class::Invalid,
        [10, ..] | [192, 168, ..] | [169, 254, ..] => Class::Private,
        [172, b, ..] if (16..32).contains(&b) => Class::Private,
        [100, b, ..] if (64..128).contains(&b) => Class::Private,
        _ => Class::Public,
    }
}

fn class6(a: &[u8; 16]) -> Class {
    if *a == [0; 16] {
        return Class::Unspecified;
    }
    if *a == LOOPBACK6 {
        return Class::Private; // a loopback capture's host
    }
    match a[0] {
        0xff => Class::Group,
        0xfe if a[1] & 0xc0 == 0x80 => Class::LinkLocal6,
        0xfc | 0xfd => Class::Private,
        _ => Class::Public,
    }
}

/// The destination of a frame.
#[derive(Clone, Copy, Debug)]
enum Dst {
    Host(Endpoint),
    /// Broadcast or multicast: the group MAC and the IP destination (`Addr::None` keeps it).
    Group {
        mac: Mac,
        addr: Addr,
    },
}

/// What a frame becomes.
#[derive(Clone, Copy, Debug)]
struct Plan {
    target: Target,
    dl_src: Mac,
    dl_dst: Mac,
    nw_src: Addr,
    nw_dst: Addr,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
    Any,
}

/// A checksum field to keep in step with an edit: where it is, and whether 0 means "no
/// checksum" (UDP over IPv4, RFC 768), which an edit keeps.
#[derive(Clone, Copy)]
struct Csum {
    at: usize,
    udp: bool,
}

fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Writes `new` over the bytes at `at` (an even offset within each checksummed region) and
/// updates every checksum of `csums` that lies inside the frame, RFC 1624 style, for exactly
/// the words that changed. Bytes beyond the frame's end are neither written nor counted:
/// they were not captured, so the checksum still covers their original value. A checksum
/// field the frame holds only half of is left as captured: its new value depends on the
/// byte that was lost.
fn patch(b: &mut [u8], at: usize, new: &[u8], csums: &[Option<Csum>]) {
    let end = (at + new.len()).min(b.len());
    if at >= end {
        return;
    }
    let n = (end - at) & !1; // whole words only; every patched field has an even length
    for c in csums.iter().flatten() {
        if c.at + 2 > b.len() {
            continue;
        }
        let mut v = rd16(b, c.at);
        if c.udp && v == 0 {
            continue;
        }
        for i in (0..n).step_by(2) {
            v = update16(v, rd16(b, at + i), u16::from_be_bytes([new[i], new[i + 1]]));
        }
        if c.udp && v == 0 {
            v = 0xffff; // RFC 768: a computed 0 is sent as all ones
        }
        b[c.at..c.at + 2].copy_from_slice(&v.to_be_bytes());
    }
    b[at..at + n].copy_from_slice(&new[..n]);
}

/// A capture taken on a loopback interface shows one address at both ends; its two ends
/// are two hosts here, told apart by their ports: the lower port is the server's side. `l4`
/// is where the transport header starts; `None` when the frame is no such conversation.
fn loopback_sides(
    out: &[u8],
    a: [u8; 16],
    l4: Option<(usize, u8)>,
) -> Result<(HostKey, HostKey), Skip> {
    let ports = l4.filter(|&(at, p)| matches!(p, 6 | 17 | 33 | 132) && at + 4 <= out.len());
    let Some((at, _)) = ports else { return Err(Skip::SameVm) };
    let (sp, dp) = (rd16(out, at), rd16(out, at + 2));
    if sp == dp {
        return Err(Skip::SameVm);
    }
    Ok((HostKey::Loopback(a, sp < dp), HostKey::Loopback(a, dp < sp)))
}

fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[10] = 0xff;
    m[11] = 0xff;
    m[12..].copy_from_slice(&a);
    m
}

fn is_group(m: &[u8]) -> bool {
    m[0] & 1 != 0
}

fn eui64_ll(mac: Mac) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[8] = mac[0] ^ 0x02;
    a[9] = mac[1];
    a[10] = mac[2];
    a[11] = 0xff;
    a[12] = 0xfe;
    a[13] = mac[3];
    a[14] = mac[4];
    a[15] = mac[5];
    a
}

fn group_mac_v4(a: [u8; 4]) -> Mac {
    if a == [255; 4] {
        [0xff; 6]
    } else {
        [0x01, 0x00, 0x5e, a[1] & 0x7f, a[2], a[3]]
    }
}

fn group_mac_v6(a: &[u8; 16]) -> Mac {
    [0x33, 0x33, a[12], a[13], a[14], a[15]]
}

fn fmt_mac(m: &Mac) -> String {
    crate::fmt::mac(m)
}

fn fmt_addr(a: Addr) -> Option<String> {
    match a {
        Addr::None => None,
        Addr::V4(v) => Some(Ipv4Addr::from(v).to_string()),
        Addr::V6(v) => Some(Ipv6Addr::from(v).to_string()),
    }
}

fn fmt_key(k: &HostKey) -> String {
    match k {
        HostKey::V4(v) => Ipv4Addr::from(*v).to_string(),
        HostKey::V6(v) => Ipv6Addr::from(*v).to_string(),
        HostKey::Mac(m) => fmt_mac(m),
        HostKey::Loopback(a, server) => {
            let ip = if a[..12] == v4_mapped([0; 4])[..12] {
                Ipv4Addr::new(a[12], a[13], a[14], a[15]).to_string()
            } else {
                Ipv6Addr::from(*a).to_string()
            };
            format!("{ip} ({} side)", if *server { "server" } else { "client" })
        }
    }
}

/// Where the L4 header of an IPv6 packet starts, its protocol, and whether the pseudo-header
/// destination is the packet's (not when a routing header still has segments left: then it
/// is the last segment's, which the mapping does not change). `None` when the extension
/// headers are cut or the packet is a later fragment.
fn ipv6_l4(b: &[u8], l3: usize) -> Option<(usize, u8, bool)> {
    ipv6_walk(b, l3).map(|w| (w.0, w.1, w.2))
}

/// `ipv6_l4`, and whether the packet is a fragment (its L4 checksum then covers more than
/// this packet).
fn ipv6_walk(b: &[u8], l3: usize) -> Option<(usize, u8, bool, bool)> {
    let mut proto = b[l3 + 6];
    let mut at = l3 + 40;
    let mut dst_in_pseudo = true;
    let mut fragment = false;
    let mut hops = 0;
    while is_ext_header(proto) {
        hops += 1;
        if hops > 16 || at + 8 > b.len() {
            return None;
        }
        let len = match proto {
            51 => (usize::from(b[at + 1]) + 2) * 4, // AH counts 4-byte words
            44 => 8,
            _ => (usize::from(b[at + 1]) + 1) * 8,
        };
        if proto == 44 {
            let offlg = rd16(b, at + 2);
            if offlg & 0xfff8 != 0 {
                return None; // a later fragment carries no L4 header
            }
            fragment |= offlg & 1 != 0;
        }
        if proto == 43 && b[at + 3] != 0 {
            dst_in_pseudo = false;
        }
        proto = b[at];
        at += len;
    }
    Some((at, proto, dst_in_pseudo, fragment))
}

/// Where a transport protocol keeps its checksum, and the shortest header that has it.
fn l4_csum_field(proto: u8) -> Option<(usize, usize)> {
    match proto {
        6 => Some((16, 20)),
        17 => Some((6, 8)),
        1 | 58 => Some((2, 4)),
        _ => None,
    }
}

/// Makes a checksum that was wrong in the capture right, when the bytes it covers are all
/// there: `data[csum_at..]` is its field, `pseudo` the pseudo-header's partial sum. Returns
/// whether it had to. (A checksum offloaded to the NIC of the host a capture was taken on is
/// still unfilled in the capture; a real NIC would have written it.)
fn fix_csum(data: &mut [u8], csum_at: usize, pseudo: u32) -> bool {
    if csum_at + 2 > data.len() || finish(add(pseudo, data)) == 0 {
        return false;
    }
    let c = l4_checksum(pseudo, data, csum_at);
    data[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Rewrites captures for a topology; see the module documentation.
pub struct Mapper {
    vms: Vec<Vm>,
    ext_gw_ip: Option<[u8; 4]>,
    ext_gw_mac: Mac,
    external_ipv6: bool,
    cloud4: Vec<(u32, u32)>,   // (network, mask)
    cloud6: Vec<(u128, u128)>, // (network, mask)
    has_ip4: bool,
    has_ip6: bool,
    has_fip: bool,
    table: HashMap<HostKey, u32, FnvBuild>,
    hosts: Vec<Host>,
    used_outside: HashSet<HostKey, FnvBuild>,
    rr: usize,
    rr_fip: usize,
    next_remap4: u32,
    next_remap6: u64,
    pub stats: MapStats,
}

fn parse4(s: &str, what: &str) -> Result<[u8; 4], String> {
    s.parse::<Ipv4Addr>().map(|a| a.octets()).map_err(|_| format!("{what}: bad IPv4 \"{s}\""))
}

fn parse6(s: &str, what: &str) -> Result<[u8; 16], String> {
    s.parse::<Ipv6Addr>().map(|a| a.octets()).map_err(|_| format!("{what}: bad IPv6 \"{s}\""))
}

fn parse_mac(s: &str, what: &str) -> Result<Mac, String> {
    super::scenario::parse_mac(s).ok_or_else(|| format!("{what}: bad MAC \"{s}\""))
}

impl Mapper {
    /// Builds a mapper from its spec; `resolve` turns a canonical port reference into the
    /// node and datapath port frames enter by (`Engine::resolve`).
    pub fn new(
        spec: &MapSpec,
        resolve: impl Fn(&str) -> Option<(usize, u32)>,
    ) -> Result<Mapper, String> {
        let port = |r: &str, what: &str| -> Result<Target, String> {
            resolve(r)
                .map(|(node, dp_port)| Target { node, dp_port })
                .ok_or_else(|| format!("map spec: {what}: \"{r}\" is not a port of the scenario"))
        };
        let mut networks: Vec<&str> = Vec::new();
        let mut vms = Vec::with_capacity(spec.vms.len());
        if spec.vms.len() > usize::from(u16::MAX) {
            return Err("map spec: more than 65535 VMs".into());
        }
        for v in &spec.vms {
            let w = |f: &str| format!("map spec: vm {}: {f}", v.name);
            let network = match networks.iter().position(|n| *n == v.network) {
                Some(i) => i,
                None => {
                    networks.push(&v.network);
                    networks.len() - 1
                }
            } as u32;
            let mac = parse_mac(&v.mac, &w("mac"))?;
            let gw = |g: &Option<GatewaySpec>, v6: bool| -> Result<Option<Gateway>, String> {
                let Some(g) = g else { return Ok(None) };
                let mut out =
                    Gateway { ip4: [0; 4], ip6: [0; 16], mac: parse_mac(&g.mac, &w("gateway"))? };
                if let Some(ip) = &g.ip {
                    if v6 {
                        out.ip6 = parse6(ip, &w("gateway6"))?;
                    } else {
                        out.ip4 = parse4(ip, &w("gateway4"))?;
                    }
                }
                Ok(Some(out))
            };
            let ingress =
                |i: &Option<IngressSpec>, what: &str| -> Result<Option<Ingress>, String> {
                    let Some(i) = i else { return Ok(None) };
                    Ok(Some(Ingress {
                        ip: parse4(&i.ip, &w(what))?,
                        mac: parse_mac(&i.mac, &w(what))?,
                        arp_ip: parse4(&i.arp_ip, &w(what))?,
                        target: port(&i.port, &w(what))?,
                    }))
                };
            vms.push(Vm {
                name: v.name.clone(),
                node: v.node.clone(),
                port: v.port.clone(),
                target: port(&v.port, &w("port"))?,
                mac,
                network,
                ip4: v.ipv4.as_deref().map(|s| parse4(s, &w("ipv4"))).transpose()?,
                ip6: v.ipv6.as_deref().map(|s| parse6(s, &w("ipv6"))).transpose()?,
                ll6: eui64_ll(mac),
                bcast4: v.broadcast4.as_deref().map(|s| parse4(s, &w("broadcast4"))).transpose()?,
                gw4: gw(&v.gateway4, false)?,
                gw6: gw(&v.gateway6, true)?,
                fip: ingress(&v.fip, "fip")?,
                snat: ingress(&v.snat, "snat")?,
            });
        }
        let (mut cloud4, mut cloud6) = (Vec::new(), Vec::new());
        for p in &spec.cloud_prefixes {
            let (a, len) = p.split_once('/').ok_or_else(|| format!("map spec: bad prefix {p}"))?;
            let len: u32 = len.parse().map_err(|_| format!("map spec: bad prefix {p}"))?;
            if let Ok(a) = a.parse::<Ipv4Addr>() {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len.min(32)) };
                cloud4.push((u32::from(a) & mask, mask));
            } else if let Ok(a) = a.parse::<Ipv6Addr>() {
                let mask = if len == 0 { 0 } else { u128::MAX << (128 - len.min(128)) };
                cloud6.push((u128::from(a) & mask, mask));
            } else {
                return Err(format!("map spec: bad prefix {p}"));
            }
        }
        let (ext_gw_ip, ext_gw_mac) = match &spec.external_gateway {
            Some(g) => (
                g.ip.as_deref().map(|s| parse4(s, "map spec: external gateway")).transpose()?,
                parse_mac(&g.mac, "map spec: external gateway")?,
            ),
            None => (None, DEFAULT_EXTERNAL_GW_MAC),
        };
        Ok(Mapper {
            has_ip4: vms.iter().any(|v| v.ip4.is_some()),
            has_ip6: vms.iter().any(|v| v.ip6.is_some()),
            has_fip: vms.iter().any(|v| v.fip.is_some()),
            vms,
            ext_gw_ip,
            ext_gw_mac,
            external_ipv6: spec.external_ipv6,
            cloud4,
            cloud6,
            table: HashMap::default(),
            hosts: Vec::new(),
            used_outside: HashSet::default(),
            rr: 0,
            rr_fip: 0,
            next_remap4: 0,
            next_remap6: 0,
            stats: MapStats::default(),
        })
    }

    /// The hosts, in order of first appearance.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Maps one record of a capture of link type `linktype` (see `map`).
    pub fn map_record(
        &mut self,
        linktype: u32,
        data: &[u8],
        orig_len: u32,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<Target, Skip> {
        match to_ethernet(linktype, data, orig_len, scratch) {
            Ok(eth) => self.map(eth, out),
            Err(e) => {
                self.stats.records += 1;
                let s = match e {
                    ToEthernetError::Truncated { .. } => Skip::Runt,
                    _ => Skip::UnsupportedLinktype,
                };
                self.stats.skipped[s as usize] += 1;
                Err(s)
            }
        }
    }

    /// Maps one Ethernet frame: on success `out` holds the rewritten frame, to be injected on
    /// the returned port; on a skip `out` holds nothing of use. Counts the frame either way.
    pub fn map(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<Target, Skip> {
        self.stats.records += 1;
        let r = self.map_frame(frame, out);
        match r {
            Ok(_) => self.stats.mapped += 1,
            Err(s) => self.stats.skipped[s as usize] += 1,
        }
        r
    }

    fn map_frame(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<Target, Skip> {
        out.clear();
        if frame.len() < 14 {
            return Err(Skip::Runt);
        }
        // Remove every VLAN tag (802.1Q, 802.1ad, and the old 0x9100 QinQ).
        let mut at = 12;
        while at + 4 <= frame.len() && matches!(rd16(frame, at), 0x8100 | 0x88a8 | 0x9100) {
            at += 4;
        }
        // A tag cut short leaves no EtherType.
        if at + 2 > frame.len() || matches!(rd16(frame, at), 0x8100 | 0x88a8 | 0x9100) {
            return Err(Skip::Runt);
        }
        out.extend_from_slice(&frame[..12]);
        out.extend_from_slice(&frame[at..]);
        match rd16(out, 12) {
            0x0800 => self.map_ipv4(out),
            0x86dd => self.map_ipv6(out),
            0x0806 if out.len() >= 14 + 8 && out[14..20] == [0, 1, 8, 0, 6, 4] => self.map_arp(out),
            _ => self.map_l2(out),
        }
    }

    // ---- the host table -------------------------------------------------------------

    fn known(&self, k: HostKey) -> Option<Endpoint> {
        self.table.get(&k).map(|&i| self.hosts[i as usize].endpoint)
    }

    /// The endpoint of host `key`, assigning one on first sight; `peer` is the endpoint of
    /// the host it is seen talking to, when known.
    fn host(
        &mut self,
        key: HostKey,
        class: Class,
        peer: Option<Endpoint>,
    ) -> Result<Endpoint, Skip> {
        if let Some(e) = self.known(key) {
            return Ok(e);
        }
        let ep = match (key, class) {
            (HostKey::V4(a), Class::Public) => {
                let (addr, remapped) = self.outside4(a);
                Endpoint::Outside { addr: Addr::V4(addr), remapped }
            }
            (HostKey::V6(a), Class::Public) => {
                if !self.external_ipv6 {
                    return Err(Skip::NoIpv6Outside);
                }
                let (addr, remapped) = self.outside6(a);
                Endpoint::Outside { addr: Addr::V6(addr), remapped }
            }
            (HostKey::Loopback(a, _), _) if a[..12] != v4_mapped([0; 4])[..12] => {
                if !self.has_ip6 {
                    return Err(Skip::NoIpv6Vm);
                }
                let vm = self.pick_vm(Family::V6, false, false, peer).ok_or(Skip::NoIpv6Vm)?;
                let addr = Addr::V6(self.vms[vm as usize].ip6.unwrap_or([0; 16]));
                Endpoint::Vm { vm, addr, l2_only: false }
            }
            (HostKey::V4(_) | HostKey::Loopback(..), _) => {
                if !self.has_ip4 {
                    return Err(Skip::NoVm);
                }
                let fip = matches!(peer, Some(Endpoint::Outside { .. })) && self.has_fip;
                let vm = self.pick_vm(Family::V4, fip, false, peer).ok_or(Skip::NoVm)?;
                let addr = Addr::V4(self.vms[vm as usize].ip4.unwrap_or([0; 4]));
                Endpoint::Vm { vm, addr, l2_only: false }
            }
            (HostKey::V6(_), Class::LinkLocal6) => {
                let vm = self.pick_vm(Family::Any, false, true, peer).ok_or(Skip::NoVm)?;
                Endpoint::Vm { vm, addr: Addr::V6(self.vms[vm as usize].ll6), l2_only: true }
            }
            (HostKey::V6(_), _) => {
                if !self.has_ip6 {
                    return Err(Skip::NoIpv6Vm);
                }
                let vm = self.pick_vm(Family::V6, false, false, peer).ok_or(Skip::NoIpv6Vm)?;
                let addr = Addr::V6(self.vms[vm as usize].ip6.unwrap_or([0; 16]));
                Endpoint::Vm { vm, addr, l2_only: false }
            }
            (HostKey::Mac(_), _) => {
                let vm = self.pick_vm(Family::Any, false, true, peer).ok_or(Skip::NoVm)?;
                Endpoint::Vm { vm, addr: Addr::None, l2_only: true }
            }
        };
        self.table.insert(key, self.hosts.len() as u32);
        self.hosts.push(Host { key, endpoint: ep, first_record: self.stats.records });
        Ok(ep)
    }

    /// The next VM of the round robin for a new host. Preferences, dropped one by one until
    /// a VM qualifies: a floating IP (when `fip`), the peer's network (when `l2_only`), not
    /// the peer's VM; the address family is required.
    fn pick_vm(
        &mut self,
        family: Family,
        fip: bool,
        l2_only: bool,
        peer: Option<Endpoint>,
    ) -> Option<u16> {
        let n = self.vms.len();
        if n == 0 {
            return None;
        }
        let (peer_vm, peer_net) = match peer {
            Some(Endpoint::Vm { vm, .. }) => {
                (Some(vm as usize), Some(self.vms[vm as usize].network))
            }
            _ => (None, None),
        };
        let start = if fip { self.rr_fip } else { self.rr };
        for tier in 0..4 {
            for k in 0..n {
                let i = (start + k) % n;
                let v = &self.vms[i];
                let family_ok = match family {
                    Family::V4 => v.ip4.is_some(),
                    Family::V6 => v.ip6.is_some(),
                    Family::Any => true,
                };
                let fip_ok = !fip || v.fip.is_some();
                let net_ok = !l2_only || peer_net.is_none_or(|p| p == v.network);
                let not_peer = peer_vm != Some(i);
                let ok = family_ok
                    && match tier {
                        0 => fip_ok && net_ok && not_peer,
                        1 => fip_ok && not_peer,
                        2 => not_peer,
                        _ => true,
                    };
                if ok {
                    if fip {
                        self.rr_fip = i + 1;
                    } else {
                        self.rr = i + 1;
                    }
                    return Some(i as u16);
                }
            }
        }
        None
    }

    fn in_cloud4(&self, a: [u8; 4]) -> bool {
        let v = u32::from_be_bytes(a);
        self.cloud4.iter().any(|&(net, mask)| v & mask == net)
    }

    fn in_cloud6(&self, a: &[u8; 16]) -> bool {
        let v = u128::from_be_bytes(*a);
        self.cloud6.iter().any(|&(net, mask)| v & mask == net)
    }

    /// An outside IPv4 host's address: its own, or the next free one of 198.18.0.0/15 when
    /// its own is inside the cloud or already given to a remapped host.
    fn outside4(&mut self, a: [u8; 4]) -> ([u8; 4], bool) {
        if !self.in_cloud4(a) && self.used_outside.insert(HostKey::V4(a)) {
            return (a, false);
        }
        loop {
            self.next_remap4 = (self.next_remap4 + 1) % (1 << 17);
            let c = (0xc612_0000u32 | self.next_remap4).to_be_bytes(); // 198.18.0.0/15
            if c[3] != 0
                && c[3] != 255
                && !self.in_cloud4(c)
                && self.used_outside.insert(HostKey::V4(c))
            {
                return (c, true);
            }
        }
    }

    /// As `outside4`, in 2001:2::/48.
    fn outside6(&mut self, a: [u8; 16]) -> ([u8; 16], bool) {
        if !self.in_cloud6(&a) && self.used_outside.insert(HostKey::V6(a)) {
            return (a, false);
        }
        loop {
            self.next_remap6 += 1;
            let mut c = [0u8; 16];
            c[..4].copy_from_slice(&[0x20, 0x01, 0x00, 0x02]);
            c[8..].copy_from_slice(&self.next_remap6.to_be_bytes());
            if !self.in_cloud6(&c) && self.used_outside.insert(HostKey::V6(c)) {
                return (c, true);
            }
        }
    }

    // ---- routing: which port, which MACs and addresses --------------------------------

    fn gateway(&self, vm: u16, family: Family) -> Result<Gateway, Skip> {
        let v = &self.vms[vm as usize];
        match family {
            Family::V6 => v.gw6,
            _ => v.gw4,
        }
        .ok_or(Skip::NoRouter)
    }

    /// Where the outside world sends to reach `vm`: its floating IP, else its router's SNAT
    /// address.
    fn ingress(&self, vm: u16) -> Result<Ingress, Skip> {
        let v = &self.vms[vm as usize];
        v.fip.or(v.snat).ok_or(Skip::NoExternalRoute)
    }

    /// The address `viewer` uses to reach `target` (the floating IP or SNAT address of a
    /// VM seen from outside).
    fn seen_from(&self, target: Endpoint, viewer: Endpoint) -> Addr {
        match (target, viewer) {
            (Endpoint::Vm { vm, addr: Addr::V4(a), .. }, Endpoint::Outside { .. }) => {
                self.ingress(vm).map_or(Addr::V4(a), |i| Addr::V4(i.ip))
            }
            (Endpoint::Vm { addr, .. }, _) | (Endpoint::Outside { addr, .. }, _) => addr,
        }
    }

    fn route(&self, s: Endpoint, d: Dst, family: Family) -> Result<Plan, Skip> {
        match (s, d) {
            (Endpoint::Outside { .. }, Dst::Group { .. }) => Err(Skip::OutsideBroadcast),
            (Endpoint::Outside { .. }, Dst::Host(Endpoint::Outside { .. })) => {
                Err(Skip::OutsideOnly)
            }
            (Endpoint::Vm { vm, addr, .. }, Dst::Group { mac, addr: g }) => {
                let v = &self.vms[vm as usize];
                Ok(Plan { target: v.target, dl_src: v.mac, dl_dst: mac, nw_src: addr, nw_dst: g })
            }
            (Endpoint::Vm { vm: a, addr: sa, l2_only: sl2 }, Dst::Host(d)) => {
                let va = &self.vms[a as usize];
                let (dl_dst, nw_dst) = match d {
                    Endpoint::Vm { vm: b, .. } if b == a => return Err(Skip::SameVm),
                    Endpoint::Vm { vm: b, addr: da, l2_only: dl2 } => {
                        let vb = &self.vms[b as usize];
                        if vb.network == va.network {
                            (vb.mac, da)
                        } else if sl2 || dl2 {
                            return Err(Skip::L2AcrossNetworks);
                        } else {
                            (self.gateway(a, family)?.mac, da)
                        }
                    }
                    Endpoint::Outside { addr: oa, .. } => (self.gateway(a, family)?.mac, oa),
                };
                Ok(Plan { target: va.target, dl_src: va.mac, dl_dst, nw_src: sa, nw_dst })
            }
            (
                Endpoint::Outside { addr: oa, .. },
                Dst::Host(Endpoint::Vm { vm: b, addr: da, .. }),
            ) => {
                let vb = &self.vms[b as usize];
                let (ing, nw_dst) = match family {
                    Family::V6 => match (vb.snat, da) {
                        (Some(i), Addr::V6(d)) if class6(&d) != Class::LinkLocal6 => (i, da),
                        _ => return Err(Skip::NoExternalRoute),
                    },
                    _ => {
                        let i = self.ingress(b)?;
                        (i, Addr::V4(i.ip))
                    }
                };
                Ok(Plan {
                    target: ing.target,
                    dl_src: self.ext_gw_mac,
                    dl_dst: ing.mac,
                    nw_src: oa,
                    nw_dst,
                })
            }
        }
    }

    // ---- the frames ----------------------------------------------------------------------

    fn map_ipv4(&mut self, out: &mut [u8]) -> Result<Target, Skip> {
        const L3: usize = 14;
        if out.len() < L3 + 20 {
            return Err(Skip::Truncated);
        }
        let src: [u8; 4] = [out[26], out[27], out[28], out[29]];
        let dst: [u8; 4] = [out[30], out[31], out[32], out[33]];
        let ver_ihl = out[L3];
        let ihl = usize::from(ver_ihl & 0x0f) * 4;
        let first_fragment = rd16(out, L3 + 6) & 0x1fff == 0;
        let proto = out[L3 + 9];
        let l4 = (ver_ihl >> 4 == 4 && ihl >= 20 && first_fragment).then_some(L3 + ihl);
        let (ks, kd) = if src == dst && src[0] == 127 {
            loopback_sides(out, v4_mapped(src), l4.map(|at| (at, proto)))?
        } else {
            (HostKey::V4(src), HostKey::V4(dst))
        };
        let s = match class4(src) {
            Class::Unspecified => self.mac_host(out)?,
            c @ (Class::Private | Class::Public) => {
                let peer = self.known(kd);
                self.host(ks, c, peer)?
            }
            _ => return Err(Skip::BadAddress),
        };
        let d = match class4(dst) {
            Class::Group => Dst::Group { mac: group_mac_v4(dst), addr: Addr::None },
            // A unicast address sent to a group MAC: a directed broadcast, which becomes the
            // broadcast of the source VM's subnet.
            Class::Private | Class::Public if is_group(&out[0..6]) => match s {
                Endpoint::Vm { vm, .. } => match self.vms[vm as usize].bcast4 {
                    Some(b) => Dst::Group { mac: [0xff; 6], addr: Addr::V4(b) },
                    None => return Err(Skip::BadAddress),
                },
                Endpoint::Outside { .. } => return Err(Skip::OutsideBroadcast),
            },
            c @ (Class::Private | Class::Public) => Dst::Host(self.host(kd, c, Some(s))?),
            _ => return Err(Skip::BadAddress),
        };
        let plan = self.route(s, d, Family::V4)?;
        write_l2(out, &plan);

        // The L4 checksum covers the addresses through the pseudo-header (TCP, UDP).
        let l4c = match (l4, proto) {
            (Some(l4), 6) => Some(Csum { at: l4 + 16, udp: false }),
            (Some(l4), 17) => Some(Csum { at: l4 + 6, udp: true }),
            _ => None,
        };
        let ipc = Some(Csum { at: L3 + 10, udp: false });
        if let Addr::V4(a) = plan.nw_src {
            patch(out, L3 + 12, &a, &[ipc, l4c]);
        }
        if let Addr::V4(a) = plan.nw_dst {
            patch(out, L3 + 16, &a, &[ipc, l4c]);
        }
        if let (Some(l4), 1) = (l4, proto) {
            self.icmp_error_inner(out, l4, false, s);
        }
        self.fix_ipv4_checksums(out);
        Ok(plan.target)
    }

    /// The IPv4 header checksum, and the L4 checksum of an unfragmented datagram whose bytes
    /// are all in the frame, made right when the capture had them wrong.
    fn fix_ipv4_checksums(&mut self, out: &mut [u8]) {
        const L3: usize = 14;
        let ihl = usize::from(out[L3] & 0x0f) * 4;
        if out[L3] >> 4 != 4 || ihl < 20 || L3 + ihl > out.len() {
            return;
        }
        let mut fixed = fix_csum(&mut out[L3..L3 + ihl], 10, 0);
        let total = usize::from(rd16(out, L3 + 2));
        let unfragmented = rd16(out, L3 + 6) & 0x3fff == 0;
        let proto = out[L3 + 9];
        if let Some((at, min)) = l4_csum_field(proto).filter(|_| proto != 58) {
            if unfragmented && total >= ihl + min && L3 + total <= out.len() {
                let seg = L3 + ihl..L3 + total;
                let pseudo = if proto == 1 {
                    0
                } else {
                    let src = [out[26], out[27], out[28], out[29]];
                    let dst = [out[30], out[31], out[32], out[33]];
                    pseudo_header_v4(src, dst, proto, (total - ihl) as u16)
                };
                // RFC 768: a UDP checksum of 0 means none.
                let none = proto == 17 && rd16(out, seg.start + at) == 0;
                if !none {
                    fixed |= fix_csum(&mut out[seg], at, pseudo);
                    if proto == 17 && rd16(out, L3 + ihl + at) == 0 {
                        out[L3 + ihl + at..L3 + ihl + at + 2].copy_from_slice(&[0xff, 0xff]);
                    }
                }
            }
        }
        self.stats.checksums_fixed += u64::from(fixed);
    }

    /// The L4 checksum of an unfragmented IPv6 packet whose bytes are all in the frame (and
    /// whose pseudo-header destination is its own), made right when the capture had it wrong.
    fn fix_ipv6_checksum(&mut self, out: &mut [u8]) {
        const L3: usize = 14;
        let plen = usize::from(rd16(out, L3 + 4));
        let Some((at, proto, true, false)) = ipv6_walk(out, L3) else { return };
        let Some((c, min)) = l4_csum_field(proto).filter(|_| proto != 1) else { return };
        let end = L3 + 40 + plen;
        if plen == 0 || end > out.len() || at + min > end {
            return;
        }
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&out[22..38]);
        dst.copy_from_slice(&out[38..54]);
        let pseudo = pseudo_header_v6(&src, &dst, proto, (end - at) as u32);
        let fixed = fix_csum(&mut out[at..end], c, pseudo);
        if proto == 17 && rd16(out, at + c) == 0 {
            out[at + c..at + c + 2].copy_from_slice(&[0xff, 0xff]);
        }
        self.stats.checksums_fixed += u64::from(fixed);
    }

    fn map_ipv6(&mut self, out: &mut [u8]) -> Result<Target, Skip> {
        const L3: usize = 14;
        if out.len() < L3 + 40 {
            return Err(Skip::Truncated);
        }
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&out[22..38]);
        dst.copy_from_slice(&out[38..54]);
        let l4 = ipv6_l4(out, L3);
        let (ks, kd) = if src == dst && src == LOOPBACK6 {
            loopback_sides(out, src, l4.map(|(at, p, _)| (at, p)))?
        } else {
            (HostKey::V6(src), HostKey::V6(dst))
        };
        let s = match class6(&src) {
            Class::Unspecified => self.mac_host(out)?,
            c @ (Class::Private | Class::Public | Class::LinkLocal6) => {
                let peer = self.known(kd);
                self.host(ks, c, peer)?
            }
            _ => return Err(Skip::BadAddress),
        };
        let d = match class6(&dst) {
            Class::Group => Dst::Group { mac: group_mac_v6(&dst), addr: Addr::None },
            c @ (Class::Private | Class::Public | Class::LinkLocal6) => {
                Dst::Host(self.host(kd, c, Some(s))?)
            }
            _ => return Err(Skip::BadAddress),
        };
        let mut plan = self.route(s, d, Family::V6)?;

        // Neighbour discovery names hosts inside the message: its target, and the link-layer
        // address options. A solicitation to a solicited-node group follows its new target.
        let mut nd_target: Option<(usize, [u8; 16])> = None;
        if let Some((at, 58, _)) = l4 {
            let ty = out.get(at).copied().unwrap_or(0);
            if (ty == 135 || ty == 136) && at + 24 <= out.len() {
                let mut t = [0u8; 16];
                t.copy_from_slice(&out[at + 8..at + 24]);
                let new_t = if HostKey::V6(t) == HostKey::V6(src) {
                    plan.nw_src
                } else {
                    self.nd_target(t, s)?
                };
                if let Addr::V6(nt) = new_t {
                    nd_target = Some((at + 8, nt));
                    let solicited = dst[..13] == [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff];
                    if ty == 135 && solicited {
                        let mut g = dst;
                        g[13..].copy_from_slice(&nt[13..]);
                        plan.nw_dst = Addr::V6(g);
                        plan.dl_dst = group_mac_v6(&g);
                    }
                }
            }
        }
        write_l2(out, &plan);
        let l4c = match l4 {
            Some((at, 6, p)) => Some((Csum { at: at + 16, udp: false }, p)),
            Some((at, 17, p)) => Some((Csum { at: at + 6, udp: false }, p)),
            Some((at, 58, p)) => Some((Csum { at: at + 2, udp: false }, p)),
            _ => None,
        };
        if let Addr::V6(a) = plan.nw_src {
            patch(out, 22, &a, &[l4c.map(|c| c.0)]);
        }
        if let Addr::V6(a) = plan.nw_dst {
            patch(out, 38, &a, &[l4c.filter(|c| c.1).map(|c| c.0)]);
        }
        if let Some((at, 58, _)) = l4 {
            let icmp_c = Some(Csum { at: at + 2, udp: false });
            if let Some((t_at, nt)) = nd_target {
                patch(out, t_at, &nt, &[icmp_c]);
            }
            let ty = out.get(at).copied().unwrap_or(0);
            if (133..=136).contains(&ty) {
                // Options start after the fixed part: RS 8, RA 16, NS and NA 24 bytes.
                let mut o = at
                    + match ty {
                        133 => 8,
                        134 => 16,
                        _ => 24,
                    };
                while o + 8 <= out.len() {
                    let (kind, len) = (out[o], usize::from(out[o + 1]) * 8);
                    if len == 0 {
                        break;
                    }
                    // Source (1) and target (2) link-layer address: the sender's own MAC.
                    if kind == 1 || kind == 2 {
                        patch(out, o + 2, &plan.dl_src, &[icmp_c]);
                    }
                    o += len;
                }
            }
            self.icmp_error_inner(out, at, true, s);
        }
        self.fix_ipv6_checksum(out);
        Ok(plan.target)
    }

    /// The new target of a neighbour solicitation or advertisement from `s`: the target
    /// host's address when it is on the sender's network, else the sender's gateway (what a
    /// VM resolves to reach anything off its network).
    fn nd_target(&mut self, t: [u8; 16], s: Endpoint) -> Result<Addr, Skip> {
        let c = class6(&t);
        if !matches!(c, Class::Private | Class::Public | Class::LinkLocal6) {
            return Ok(Addr::None);
        }
        let te = self.host(HostKey::V6(t), c, Some(s))?;
        match (s, te) {
            (Endpoint::Vm { vm: a, .. }, Endpoint::Vm { vm: b, addr, .. })
                if self.vms[a as usize].network == self.vms[b as usize].network =>
            {
                Ok(addr)
            }
            (Endpoint::Vm { vm: a, .. }, _) => Ok(Addr::V6(self.gateway(a, Family::V6)?.ip6)),
            (Endpoint::Outside { .. }, te) => Ok(self.seen_from(te, s)),
        }
    }

    /// A frame whose IP source is the unspecified address belongs to its Ethernet source.
    fn mac_host(&mut self, out: &[u8]) -> Result<Endpoint, Skip> {
        let mut m = [0u8; 6];
        m.copy_from_slice(&out[6..12]);
        if is_group(&m) || m == [0; 6] {
            return Err(Skip::BadAddress);
        }
        self.host(HostKey::Mac(m), Class::Private, None)
    }

    /// Rewrites the IP header quoted by an ICMP or ICMPv6 error at `icmp` (and the checksum
    /// of the L4 header it quotes, when captured) so that it names the mapped hosts as the
    /// packet that caused the error carried them: its source as `outer_src` saw it, its
    /// destination as that source addressed it. Left alone when a quoted host cannot be
    /// mapped.
    fn icmp_error_inner(&mut self, out: &mut [u8], icmp: usize, v6: bool, outer_src: Endpoint) {
        let Some(&ty) = out.get(icmp) else { return };
        let is_error = if v6 { (1..=4).contains(&ty) } else { matches!(ty, 3 | 4 | 5 | 11 | 12) };
        if !is_error {
            return;
        }
        let inner = icmp + 8;
        let icmp_c = Some(Csum { at: icmp + 2, udp: false });
        let (alen, src_at, dst_at, hdr) = if v6 { (16, 8, 24, 40) } else { (4, 12, 16, 20) };
        if inner + hdr > out.len() || out[inner] >> 4 != if v6 { 6 } else { 4 } {
            return;
        }
        let key = |b: &[u8], at: usize| -> (HostKey, Class) {
            if v6 {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[at..at + 16]);
                (HostKey::V6(a), class6(&a))
            } else {
                let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
                (HostKey::V4(a), class4(a))
            }
        };
        let (ks, cs) = key(out, inner + src_at);
        let (kd, cd) = key(out, inner + dst_at);
        let mappable = |c: Class| matches!(c, Class::Private | Class::Public | Class::LinkLocal6);
        if !mappable(cs) || !mappable(cd) {
            return;
        }
        let Ok(is) = self.host(ks, cs, None) else { return };
        let Ok(id) = self.host(kd, cd, Some(is)) else { return };
        let new_src = self.seen_from(is, outer_src);
        let new_dst = self.seen_from(id, is);
        // The quoted L4 checksum, when it is in the capture.
        let (l4, proto) = if v6 {
            match ipv6_l4(out, inner) {
                Some((at, p, true)) => (Some(at), p),
                _ => (None, 0),
            }
        } else {
            let ihl = usize::from(out[inner] & 0x0f) * 4;
            let first = rd16(out, inner + 6) & 0x1fff == 0;
            ((ihl >= 20 && first).then_some(inner + ihl), out[inner + 9])
        };
        let l4c = match (l4, proto) {
            (Some(at), 6) => Some(Csum { at: at + 16, udp: false }),
            (Some(at), 17) => Some(Csum { at: at + 6, udp: !v6 }),
            (Some(at), 58) if v6 => Some(Csum { at: at + 2, udp: false }),
            _ => None,
        }
        .filter(|c| c.at + 2 <= out.len());
        let ipc = (!v6).then_some(Csum { at: inner + 10, udp: false });
        let old_ipc = ipc.map(|c| rd16(out, c.at));
        let old_l4c = l4c.map(|c| rd16(out, c.at));
        for (at, a) in [(inner + src_at, new_src), (inner + dst_at, new_dst)] {
            match a {
                Addr::V4(v) if alen == 4 => patch(out, at, &v, &[ipc, l4c, icmp_c]),
                Addr::V6(v) if alen == 16 => patch(out, at, &v, &[l4c, icmp_c]),
                _ => {}
            }
        }
        // The quoted checksums are covered by the ICMP checksum too.
        for (c, old) in [(ipc, old_ipc), (l4c, old_l4c)] {
            if let (Some(c), Some(old)) = (c, old) {
                let new = rd16(out, c.at);
                out[c.at..c.at + 2].copy_from_slice(&old.to_be_bytes());
                patch(out, c.at, &new.to_be_bytes(), &[icmp_c]);
            }
        }
    }

    fn map_arp(&mut self, out: &mut [u8]) -> Result<Target, Skip> {
        const A: usize = 14;
        if out.len() < A + 28 {
            return Err(Skip::Truncated);
        }
        let op = rd16(out, A + 6);
        let mut sha = [0u8; 6];
        sha.copy_from_slice(&out[A + 8..A + 14]);
        let spa = [out[A + 14], out[A + 15], out[A + 16], out[A + 17]];
        let tha_zero = out[A + 18..A + 24] == [0; 6];
        let tpa = [out[A + 24], out[A + 25], out[A + 26], out[A + 27]];
        let s = match class4(spa) {
            // An ARP probe (RFC 5227) comes from the unspecified address.
            Class::Unspecified => {
                if is_group(&sha) || sha == [0; 6] {
                    return Err(Skip::BadAddress);
                }
                self.host(HostKey::Mac(sha), Class::Private, None)?
            }
            c @ (Class::Private | Class::Public) => {
                let peer = self.known(HostKey::V4(tpa));
                self.host(HostKey::V4(spa), c, peer)?
            }
            _ => return Err(Skip::BadAddress),
        };
        let t = match class4(tpa) {
            _ if tpa == spa => s,
            c @ (Class::Private | Class::Public) => self.host(HostKey::V4(tpa), c, Some(s))?,
            _ => return Err(Skip::BadAddress),
        };
        let unicast = !is_group(&out[0..6]);
        // (target, sender MAC and address, target MAC and address, Ethernet destination)
        let (target, sha2, spa2, tha2, tpa2): (Target, Mac, Option<[u8; 4]>, Mac, [u8; 4]);
        match (s, t) {
            (Endpoint::Vm { vm: a, addr, .. }, t) => {
                let va = &self.vms[a as usize];
                let own = match addr {
                    Addr::V4(v) => Some(v),
                    _ => None,
                };
                let (mac, ip) = match t {
                    _ if t == s => {
                        if unicast {
                            return Err(Skip::SameVm);
                        }
                        (va.mac, own.unwrap_or(tpa))
                    }
                    Endpoint::Vm { vm: b, .. } if b == a => return Err(Skip::SameVm),
                    Endpoint::Vm { vm: b, addr: Addr::V4(ip), .. }
                        if self.vms[b as usize].network == va.network =>
                    {
                        (self.vms[b as usize].mac, ip)
                    }
                    // Anything off the VM's network is reached through its gateway.
                    _ => {
                        let g = self.gateway(a, Family::V4)?;
                        (g.mac, g.ip4)
                    }
                };
                (target, sha2, spa2, tha2, tpa2) = (va.target, va.mac, own, mac, ip);
            }
            (Endpoint::Outside { .. }, Endpoint::Vm { vm: b, .. }) => {
                // Only the external gateway talks ARP on the public segment: it asks for the
                // floating IP or SNAT address, and answers the fg- or qg- interface's asking.
                let i = self.ingress(b)?;
                let gw = self.ext_gw_ip.ok_or(Skip::NoExternalRoute)?;
                let tpa2_ = if op == 2 { i.arp_ip } else { i.ip };
                (target, sha2, spa2, tha2, tpa2) =
                    (i.target, self.ext_gw_mac, Some(gw), i.mac, tpa2_);
            }
            (Endpoint::Outside { .. }, Endpoint::Outside { .. }) => return Err(Skip::OutsideOnly),
        }
        out[6..12].copy_from_slice(&sha2);
        if unicast {
            out[0..6].copy_from_slice(&tha2);
        }
        out[A + 8..A + 14].copy_from_slice(&sha2);
        if let Some(ip) = spa2 {
            out[A + 14..A + 18].copy_from_slice(&ip);
        }
        if !tha_zero && out[A + 18..A + 24] != [0xff; 6] {
            out[A + 18..A + 24].copy_from_slice(&tha2);
        }
        out[A + 24..A + 28].copy_from_slice(&tpa2);
        Ok(target)
    }

    /// Frames with no IP identity: their hosts are their MAC addresses, which become VMs of
    /// one network.
    fn map_l2(&mut self, out: &mut [u8]) -> Result<Target, Skip> {
        let mut src = [0u8; 6];
        let mut dst = [0u8; 6];
        src.copy_from_slice(&out[6..12]);
        dst.copy_from_slice(&out[0..6]);
        if is_group(&src) || src == [0; 6] {
            return Err(Skip::BadAddress);
        }
        let peer = if is_group(&dst) { None } else { self.known(HostKey::Mac(dst)) };
        let s = self.host(HostKey::Mac(src), Class::Private, peer)?;
        let d = if is_group(&dst) {
            Dst::Group { mac: dst, addr: Addr::None }
        } else {
            Dst::Host(self.host(HostKey::Mac(dst), Class::Private, Some(s))?)
        };
        let plan = self.route(s, d, Family::Any)?;
        write_l2(out, &plan);
        Ok(plan.target)
    }

    // ---- reports ------------------------------------------------------------------------

    /// stats.json's `map`: records, mapped, skipped by reason, hosts and the host table.
    pub fn summary_json(&self) -> serde_json::Value {
        use serde_json::json;
        let mut skipped = serde_json::Map::new();
        for s in Skip::ALL {
            let n = self.stats.skipped[s as usize];
            if n > 0 {
                skipped.insert(s.name().to_string(), json!(n));
            }
        }
        let mut per_vm = serde_json::Map::new();
        for v in &self.vms {
            per_vm.insert(v.name.clone(), json!(0));
        }
        let (mut outside, mut remapped) = (0u64, 0u64);
        for h in &self.hosts {
            match h.endpoint {
                Endpoint::Vm { vm, .. } => {
                    let e = per_vm.entry(self.vms[vm as usize].name.clone()).or_insert(json!(0));
                    *e = json!(e.as_u64().unwrap_or(0) + 1);
                }
                Endpoint::Outside { remapped: r, .. } => {
                    outside += 1;
                    remapped += u64::from(r);
                }
            }
        }
        json!({
            "records": self.stats.records,
            "mapped": self.stats.mapped,
            "skipped": skipped,
            "checksums_fixed": self.stats.checksums_fixed,
            "hosts": self.hosts.len(),
            "host_table": {"vm": per_vm, "outside": outside, "outside_remapped": remapped},
        })
    }

    /// map.json: every host and its endpoint, in order of first appearance.
    pub fn hosts_json(&self) -> serde_json::Value {
        use serde_json::json;
        let hosts: Vec<serde_json::Value> = self
            .hosts
            .iter()
            .map(|h| match h.endpoint {
                Endpoint::Vm { vm, addr, .. } => {
                    let v = &self.vms[vm as usize];
                    json!({
                        "host": fmt_key(&h.key), "kind": "vm", "name": v.name, "node": v.node,
                        "port": v.port, "mac": fmt_mac(&v.mac), "ip": fmt_addr(addr),
                        "first_packet": h.first_record,
                    })
                }
                Endpoint::Outside { addr, remapped } => json!({
                    "host": fmt_key(&h.key), "kind": "outside", "name": "outside",
                    "node": null, "port": null, "mac": fmt_mac(&self.ext_gw_mac),
                    "ip": fmt_addr(addr), "remapped": remapped, "first_packet": h.first_record,
                }),
            })
            .collect();
        json!(hosts)
    }
}

impl super::Engine {
    /// A mapper for this engine's scenario: `spec`'s port references resolved to its nodes
    /// and datapath ports (for replay and in-memory runs alike).
    pub fn mapper(&self, spec: &MapSpec) -> Result<Mapper, String> {
        Mapper::new(spec, |r| self.resolve(r))
    }
}

fn write_l2(out: &mut [u8], p: &Plan) {
    out[0..6].copy_from_slice(&p.dl_dst);
    out[6..12].copy_from_slice(&p.dl_src);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::checksum;

    const GW1: Mac = [0xfa, 0x16, 0x3e, 0x9c, 0xcf, 0xde];
    const GW2: Mac = [0xfa, 0x16, 0x3e, 0x5c, 0x3d, 0xf9];
    const QG: Mac = [0xfa, 0x16, 0x3e, 0xaf, 0xc7, 0xce];
    const FG: Mac = [0xfa, 0x16, 0x3e, 0x0f, 0x6b, 0x2e];
    const T1: Mac = [0xfa, 0x16, 0x3e, 0x5a, 0x6e, 0x54];
    const T2: Mac = [0xfa, 0x16, 0x3e, 0x76, 0x47, 0x75];
    const T4: Mac = [0xfa, 0x16, 0x3e, 0x23, 0xc5, 0x28];
    const EXT: Mac = DEFAULT_EXTERNAL_GW_MAC;
    const LAN_A: Mac = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
    const LAN_B: Mac = [0x00, 0x11, 0x22, 0x33, 0x44, 0x66];

    // Ports: test01 = (0, 3), test02 = (1, 3), test04 = (2, 3); uplinks (n, 1).
    fn resolve(r: &str) -> Option<(usize, u32)> {
        Some(match r {
            "test01" => (0, 3),
            "test02" => (1, 3),
            "test04" => (2, 3),
            "node1/uplink" => (0, 1),
            "node2/uplink" => (1, 1),
            _ => return None,
        })
    }

    fn gw(ip: &str, mac: &str) -> Option<GatewaySpec> {
        Some(GatewaySpec { ip: Some(ip.into()), mac: mac.into() })
    }

    fn snat() -> Option<IngressSpec> {
        Some(IngressSpec {
            ip: "172.24.4.3".into(),
            mac: "fa:16:3e:af:c7:ce".into(),
            arp_ip: "172.24.4.3".into(),
            node: "node1".into(),
            port: "node1/uplink".into(),
        })
    }

    /// The seed's router1 with three VMs: test01 (private, node1), test02 (private, node2,
    /// floating IP 172.24.4.12 on node2's fg- port), test04 (private2, node3).
    fn spec() -> MapSpec {
        let private = |name: &str, node: &str, mac: &str, ip: &str, ip6: &str| VmSpec {
            name: name.into(),
            node: node.into(),
            port: name.into(),
            mac: mac.into(),
            network: "private".into(),
            ipv4: Some(ip.into()),
            ipv6: Some(ip6.into()),
            broadcast4: Some("10.0.0.63".into()),
            gateway4: gw("10.0.0.1", "fa:16:3e:9c:cf:de"),
            gateway6: gw("fda0:6cec:a994::1", "fa:16:3e:5e:30:73"),
            fip: None,
            snat: snat(),
        };
        let t1 = private("test01", "node1", "fa:16:3e:5a:6e:54", "10.0.0.7", "fda0:6cec:a994::7");
        let mut t2 =
            private("test02", "node2", "fa:16:3e:76:47:75", "10.0.0.8", "fda0:6cec:a994::8");
        t2.fip = Some(IngressSpec {
            ip: "172.24.4.12".into(),
            mac: "fa:16:3e:0f:6b:2e".into(),
            arp_ip: "172.24.4.5".into(),
            node: "node2".into(),
            port: "node2/uplink".into(),
        });
        let t4 = VmSpec {
            name: "test04".into(),
            node: "node3".into(),
            port: "test04".into(),
            mac: "fa:16:3e:23:c5:28".into(),
            network: "private2".into(),
            ipv4: Some("10.1.0.10".into()),
            broadcast4: Some("10.1.0.255".into()),
            gateway4: gw("10.1.0.1", "fa:16:3e:5c:3d:f9"),
            snat: snat(),
            ..VmSpec::default()
        };
        MapSpec {
            vms: vec![t1, t2, t4],
            external_gateway: gw("172.24.4.1", "02:24:04:00:00:01"),
            external_ipv6: false,
            cloud_prefixes: vec![
                "10.0.0.0/26".into(),
                "10.1.0.0/24".into(),
                "fda0:6cec:a994::/64".into(),
                "172.24.4.0/24".into(),
                "203.0.113.0/24".into(), // a public range some clouds use
            ],
        }
    }

    fn mapper() -> Mapper {
        Mapper::new(&spec(), resolve).expect("spec")
    }

    fn ip4(s: &str) -> [u8; 4] {
        s.parse::<Ipv4Addr>().unwrap().octets()
    }

    fn ip6(s: &str) -> [u8; 16] {
        s.parse::<Ipv6Addr>().unwrap().octets()
    }

    // ---- frame builders: every checksum right -------------------------------------------

    fn eth(dst: Mac, src: Mac, ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst); // destination
        f.extend_from_slice(&src); // source
        f.extend_from_slice(&ty.to_be_bytes()); // EtherType
        f.extend_from_slice(payload);
        f
    }

    fn ipv4(src: &str, dst: &str, proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut h = vec![0x45, 0]; // version 4, IHL 5; TOS
        h.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes()); // total length
        h.extend_from_slice(&[0x12, 0x34, 0x40, 0x00]); // id, DF
        h.extend_from_slice(&[64, proto, 0, 0]); // TTL, protocol, checksum
        h.extend_from_slice(&ip4(src));
        h.extend_from_slice(&ip4(dst));
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(l4);
        h
    }

    fn tcp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]); // seq, ack
        t.extend_from_slice(&[0x50, 0x02, 0xff, 0xff]); // offset 5, SYN, window
        t.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
        t.extend_from_slice(payload);
        t
    }

    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    /// Fills the L4 checksum of an IPv4 or IPv6 frame built by these helpers.
    fn seal(mut f: Vec<u8>) -> Vec<u8> {
        if rd16(&f, 12) == 0x0800 {
            let (proto, total) = (f[23], usize::from(rd16(&f, 16)));
            let (src, dst) = (ip4_at(&f, 26), ip4_at(&f, 30));
            let pseudo =
                if proto == 1 { 0 } else { pseudo_header_v4(src, dst, proto, (total - 20) as u16) };
            let (at, _) = l4_csum_field(proto).unwrap();
            let c = l4_checksum(pseudo, &f[34..14 + total], at);
            f[34 + at..36 + at].copy_from_slice(&c.to_be_bytes());
        } else {
            let proto = f[20];
            let plen = usize::from(rd16(&f, 18));
            let (src, dst) = (ip6_at(&f, 22), ip6_at(&f, 38));
            let pseudo = pseudo_header_v6(&src, &dst, proto, plen as u32);
            let (at, _) = l4_csum_field(proto).unwrap();
            let c = l4_checksum(pseudo, &f[54..54 + plen], at);
            f[54 + at..56 + at].copy_from_slice(&c.to_be_bytes());
        }
        f
    }

    fn ipv6(src: &str, dst: &str, nh: u8, l4: &[u8]) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0]; // version 6
        h.extend_from_slice(&(l4.len() as u16).to_be_bytes()); // payload length
        h.extend_from_slice(&[nh, 64]); // next header, hop limit
        h.extend_from_slice(&ip6(src));
        h.extend_from_slice(&ip6(dst));
        h.extend_from_slice(l4);
        h
    }

    fn ip4_at(f: &[u8], at: usize) -> [u8; 4] {
        [f[at], f[at + 1], f[at + 2], f[at + 3]]
    }

    fn ip6_at(f: &[u8], at: usize) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&f[at..at + 16]);
        a
    }

    fn mac_at(f: &[u8], at: usize) -> Mac {
        let mut m = [0u8; 6];
        m.copy_from_slice(&f[at..at + 6]);
        m
    }

    /// Checks every checksum of a complete IPv4 frame by recomputing it.
    fn assert_ipv4_sums(f: &[u8]) {
        assert_eq!(checksum(&f[14..34]), 0, "IPv4 header checksum");
        let proto = f[23];
        let total = usize::from(rd16(f, 16));
        let pseudo = match proto {
            1 => 0,
            _ => pseudo_header_v4(ip4_at(f, 26), ip4_at(f, 30), proto, (total - 20) as u16),
        };
        assert_eq!(finish(add(pseudo, &f[34..14 + total])), 0, "L4 checksum of {proto}");
    }

    fn assert_ipv6_sums(f: &[u8]) {
        let (proto, plen) = (f[20], usize::from(rd16(f, 18)));
        let pseudo = pseudo_header_v6(&ip6_at(f, 22), &ip6_at(f, 38), proto, plen as u32);
        assert_eq!(finish(add(pseudo, &f[54..54 + plen])), 0, "L4 checksum of {proto}");
    }

    fn tcp4_frame(src: &str, dst: &str, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        seal(eth(LAN_B, LAN_A, 0x0800, &ipv4(src, dst, 6, &tcp(sport, dport, payload))))
    }

    fn arp(op: u16, sha: Mac, spa: &str, tha: Mac, tpa: &str) -> Vec<u8> {
        let mut a = vec![0, 1, 8, 0, 6, 4]; // Ethernet, IPv4, 6, 4
        a.extend_from_slice(&op.to_be_bytes());
        a.extend_from_slice(&sha);
        a.extend_from_slice(&ip4(spa));
        a.extend_from_slice(&tha);
        a.extend_from_slice(&ip4(tpa));
        let dst = if op == 1 { [0xff; 6] } else { tha };
        eth(dst, sha, 0x0806, &a)
    }

    // ---- the rules ----------------------------------------------------------------------

    #[test]
    fn private_to_public_goes_out_by_the_gateway_and_the_answer_comes_to_the_snat_address() {
        let mut m = mapper();
        let mut out = Vec::new();
        let syn = tcp4_frame("192.168.1.10", "93.184.216.34", 40000, 80, b"");
        let t = m.map(&syn, &mut out).unwrap();
        assert_eq!(t, Target { node: 0, dp_port: 3 }, "enters at test01's port");
        assert_eq!((mac_at(&out, 0), mac_at(&out, 6)), (GW1, T1));
        assert_eq!((ip4_at(&out, 26), ip4_at(&out, 30)), (ip4("10.0.0.7"), ip4("93.184.216.34")));
        assert_eq!((rd16(&out, 34), rd16(&out, 36)), (40000, 80), "ports unchanged");
        assert_ipv4_sums(&out);

        let answer = tcp4_frame("93.184.216.34", "192.168.1.10", 80, 40000, b"hello");
        let t = m.map(&answer, &mut out).unwrap();
        assert_eq!(t, Target { node: 0, dp_port: 1 }, "enters at the SNAT node's uplink");
        assert_eq!((mac_at(&out, 0), mac_at(&out, 6)), (QG, EXT));
        assert_eq!((ip4_at(&out, 26), ip4_at(&out, 30)), (ip4("93.184.216.34"), ip4("172.24.4.3")));
        assert_eq!((rd16(&out, 34), rd16(&out, 36)), (80, 40000));
        assert_ipv4_sums(&out);
        let hosts: Vec<_> = m.hosts().iter().map(|h| h.endpoint).collect();
        assert_eq!(
            hosts,
            [
                Endpoint::Vm { vm: 0, addr: Addr::V4(ip4("10.0.0.7")), l2_only: false },
                Endpoint::Outside { addr: Addr::V4(ip4("93.184.216.34")), remapped: false },
            ]
        );
        // Right checksums stay right by the incremental updates alone.
        assert_eq!(m.stats.checksums_fixed, 0);
    }

    #[test]
    fn a_private_host_first_reached_from_outside_takes_the_vm_with_a_floating_ip() {
        let mut m = mapper();
        let mut out = Vec::new();
        let f = tcp4_frame("8.8.8.8", "192.168.1.10", 5555, 22, b"");
        let t = m.map(&f, &mut out).unwrap();
        assert_eq!(t, Target { node: 1, dp_port: 1 }, "node2's uplink, where the FIP lives");
        assert_eq!((mac_at(&out, 0), mac_at(&out, 6)), (FG, EXT), "to the fg- port's MAC");
        assert_eq!(ip4_at(&out, 30), ip4("172.24.4.12"));
        assert_ipv4_sums(&out);
        // test02 answers from its fixed IP, through its gateway.
        let back = tcp4_frame("192.168.1.10", "8.8.8.8", 22, 5555, b"x");
        assert_eq!(m.map(&back, &mut out).unwrap(), Target { node: 1, dp_port: 3 });
        assert_eq!((mac_at(&out, 0), mac_at(&out, 6)), (GW1, T2));
        assert_eq!((ip4_at(&out, 26), ip4_at(&out, 30)), (ip4("10.0.0.8"), ip4("8.8.8.8")));
        assert_ipv4_sums(&out);
        // Right checksums stay right by the incremental updates alone.
        assert_eq!(m.stats.checksums_fixed, 0);
    }

    #[test]
    fn vm_to_vm_same_network_by_macs_other_network_by_the_gateway() {
        let mut m = mapper();
        let mut out = Vec::new();
        // Hosts .1 and .2 become test01 and test02 (one network): the VMs' MACs.
        m.map(&tcp4_frame("10.9.0.1", "10.9.0.2", 1000, 2000, b"a"), &mut out).unwrap();
        assert_eq!((mac_at(&out, 0), mac_at(&out, 6)), (T2, T1));
        assert_eq!((ip4_at(&out, 26), ip4_at(&out, 30)), (ip4("10.0.0.7"), ip4("10.0.0.8")));
        assert_ipv4_sums(&out);
        // Host .3 becomes test04 (private2): routed, to its own gateway's MAC.
        let t = m.map(&tcp4_frame("10.9.0.3", "10.9.0.1", 3000, 1000, b"b"), &mut out).unwrap();
        assert_eq!(t, Target { node: 2, dp_port: 3 });
        assert_eq!((mac_at(&out, 0), mac_at(&out, 6)), (GW2, T4));
        assert_eq!((ip4_at(&out, 26), ip4_at(&out, 30)), (ip4("10.1.0.10"), ip4("10.0.0.7")));
        assert_ipv4_sums(&out);
        // Right checksums stay right by the incremental updates alone.
        assert_eq!(m.stats.checksums_fixed, 0);
    }

    #[test]
    fn the_second_end_of_a_conversation_avoids_the_first_ends_vm() {
        let mut two = spec();
        two.vms.truncate(2);
        let mut m = Mapper::new(&two, resolve).unwrap();
        let mut out = Vec::new();
        // Hosts .1 and .2 become test01 and test02.
        m.map(&tcp4_frame("10.9.0.1", "10.9.0.2", 1, 2, b""), &mut out).unwrap();
        // The round robin is back at test01, which is the peer's: host .3 takes test02.
        m.map(&tcp4_frame("10.9.0.3", "10.9.0.1", 3, 1, b""), &mut out).unwrap();
        assert_eq!(mac_at(&out, 6), T2);
        // Two hosts of one VM talking: not put on the wire.
        assert_eq!(
            m.map(&tcp4_frame("10.9.0.3", "10.9.0.2", 3, 2, b""), &mut out),
            Err(Skip::SameVm)
        );
    }

    #[test]
    fn arp_requests_and_replies_name_the_mapped_hosts() {
        let mut m = mapper();
        let mut out = Vec::new();
        // .1 asks for .2: test01 asks for test02 (same network), broadcast kept.
        let t = m.map(&arp(1, LAN_A, "10.9.0.1", [0; 6], "10.9.0.2"), &mut out).unwrap();
        assert_eq!(t, Target { node: 0, dp_port: 3 });
        assert_eq!(out.len(), 42);
        assert_eq!((mac_at(&out, 0), mac_at(&out, 6)), ([0xff; 6], T1));
        assert_eq!(mac_at(&out, 22), T1, "SHA");
        assert_eq!(ip4_at(&out, 28), ip4("10.0.0.7"), "SPA");
        assert_eq!(mac_at(&out, 32), [0; 6], "THA stays zero");
        assert_eq!(ip4_at(&out, 38), ip4("10.0.0.8"), "TPA");
        // .2 answers: unicast to test01, THA = test01.
        m.map(&arp(2, LAN_B, "10.9.0.2", LAN_A, "10.9.0.1"), &mut out).unwrap();
        assert_eq!((mac_at(&out, 0), mac_at(&out, 6), mac_at(&out, 22)), (T1, T2, T2));
        assert_eq!(
            (ip4_at(&out, 28), mac_at(&out, 32), ip4_at(&out, 38)),
            (ip4("10.0.0.8"), T1, ip4("10.0.0.7"))
        );
        // .3 (test04, another network) asks for .1: it asks for its gateway instead.
        m.map(&arp(1, LAN_B, "10.9.0.3", [0; 6], "10.9.0.1"), &mut out).unwrap();
        assert_eq!((ip4_at(&out, 28), ip4_at(&out, 38)), (ip4("10.1.0.10"), ip4("10.1.0.1")));
        // The outside asks for a host with a floating IP as the external gateway asks for it.
        let mut f = mapper();
        f.map(&tcp4_frame("8.8.8.8", "192.168.1.10", 1, 2, b""), &mut out).unwrap();
        let t = f.map(&arp(1, LAN_A, "8.8.8.8", [0; 6], "192.168.1.10"), &mut out).unwrap();
        assert_eq!(t, Target { node: 1, dp_port: 1 });
        assert_eq!((mac_at(&out, 6), mac_at(&out, 22)), (EXT, EXT));
        assert_eq!((ip4_at(&out, 28), ip4_at(&out, 38)), (ip4("172.24.4.1"), ip4("172.24.4.12")));
    }

    #[test]
    fn vlan_tags_are_removed() {
        let mut m = mapper();
        let mut out = Vec::new();
        let plain = tcp4_frame("192.168.1.10", "93.184.216.34", 40000, 80, b"abc");
        // 802.1ad S-tag 100, then 802.1Q C-tag 200.
        let mut tagged = plain[..12].to_vec();
        tagged.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0xc8]);
        tagged.extend_from_slice(&plain[12..]);
        m.map(&tagged, &mut out).unwrap();
        assert_eq!(out.len(), plain.len());
        assert_eq!(rd16(&out, 12), 0x0800);
        let mut n = mapper();
        let mut want = Vec::new();
        n.map(&plain, &mut want).unwrap();
        assert_eq!(out, want, "a tagged frame maps as its untagged self");
        // A tag cut in the middle leaves no EtherType.
        assert_eq!(m.map(&tagged[..15], &mut out), Err(Skip::Runt));
    }

    #[test]
    fn ipv6_maps_onto_the_vms_ipv6_addresses() {
        let mut m = mapper();
        let mut out = Vec::new();
        let l4 = tcp(1234, 443, b"v6");
        let f = seal(eth(LAN_B, LAN_A, 0x86dd, &ipv6("fd00::1", "fd00::2", 6, &l4)));
        assert_eq!(m.map(&f, &mut out), Ok(Target { node: 0, dp_port: 3 }));
        assert_eq!((mac_at(&out, 0), mac_at(&out, 6)), (T2, T1));
        assert_eq!(ip6_at(&out, 22), ip6("fda0:6cec:a994::7"));
        assert_eq!(ip6_at(&out, 38), ip6("fda0:6cec:a994::8"));
        assert_ipv6_sums(&out);
        // A public IPv6 host: the external network has no IPv6.
        let f = seal(eth(LAN_B, LAN_A, 0x86dd, &ipv6("fd00::1", "2001:db8::1", 6, &l4)));
        assert_eq!(m.map(&f, &mut out), Err(Skip::NoIpv6Outside));
        // A topology without IPv6.
        let mut v4only = spec();
        for v in &mut v4only.vms {
            v.ipv6 = None;
        }
        let mut m4 = Mapper::new(&v4only, resolve).unwrap();
        let f = seal(eth(LAN_B, LAN_A, 0x86dd, &ipv6("fd00::1", "fd00::2", 6, &l4)));
        assert_eq!(m4.map(&f, &mut out), Err(Skip::NoIpv6Vm));
        assert_eq!(m4.stats.skipped[Skip::NoIpv6Vm as usize], 1);
        // Right checksums stay right by the incremental updates alone.
        assert_eq!(m.stats.checksums_fixed, 0);
    }

    #[test]
    fn neighbour_solicitation_follows_its_target() {
        let mut m = mapper();
        let mut out = Vec::new();
        // fd00::1 asks for fd00::2 (solicited-node group ff02::1:ff00:2), with its SLLA.
        let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
        ns.extend_from_slice(&ip6("fd00::2"));
        ns.extend_from_slice(&[1, 1]); // option: source link-layer address, 8 bytes
        ns.extend_from_slice(&LAN_A);
        let f = seal(eth(
            [0x33, 0x33, 0xff, 0, 0, 2],
            LAN_A,
            0x86dd,
            &ipv6("fd00::1", "ff02::1:ff00:2", 58, &ns),
        ));
        m.map(&f, &mut out).unwrap();
        let target = ip6("fda0:6cec:a994::8");
        assert_eq!(ip6_at(&out, 54 + 8), target, "target");
        assert_eq!(ip6_at(&out, 38), ip6("ff02::1:ff00:8"), "solicited-node group of the target");
        assert_eq!(mac_at(&out, 0), [0x33, 0x33, 0xff, 0, 0, 8]);
        assert_eq!(mac_at(&out, 54 + 26), T1, "source link-layer address");
        assert_ipv6_sums(&out);
        // Right checksums stay right by the incremental updates alone.
        assert_eq!(m.stats.checksums_fixed, 0);
    }

    #[test]
    fn a_frame_cut_by_the_snap_length_keeps_its_checksum_relation() {
        let payload = [0xa5u8; 300];
        let full = tcp4_frame("192.168.1.10", "93.184.216.34", 40000, 80, &payload);
        // (A snap length that cuts a checksum field in two leaves its captured byte as it
        // was: its new value depends on the lost one.)
        for snap in [34, 40, 50, 52, 54, 60, 96] {
            let (mut a, mut b) = (mapper(), mapper());
            let (mut whole, mut cut) = (Vec::new(), Vec::new());
            a.map(&full, &mut whole).unwrap();
            assert_ipv4_sums(&whole);
            assert_eq!(a.stats.checksums_fixed, 0);
            b.map(&full[..snap], &mut cut).unwrap();
            // The cut frame is the start of the whole one: the same checksums, so with the
            // bytes the capture lost, it would verify.
            assert_eq!(cut[..], whole[..snap], "snap length {snap}");
        }
        let mut m = mapper();
        let mut out = Vec::new();
        assert_eq!(m.map(&full[..33], &mut out), Err(Skip::Truncated), "addresses cut");
        assert_eq!(m.map(&full[..10], &mut out), Err(Skip::Runt));
    }

    #[test]
    fn a_checksum_wrong_in_the_capture_is_computed_when_the_segment_is_complete() {
        let mut m = mapper();
        let mut out = Vec::new();
        let mut f = tcp4_frame("192.168.1.10", "93.184.216.34", 40000, 80, b"offloaded");
        f[50] ^= 0x5a; // the TCP checksum, as a NIC would still have to fill it
        m.map(&f, &mut out).unwrap();
        assert_ipv4_sums(&out);
        assert_eq!(m.stats.checksums_fixed, 1);
        // UDP without a checksum keeps none (RFC 768).
        let mut u =
            eth(LAN_B, LAN_A, 0x0800, &ipv4("192.168.1.10", "9.9.9.9", 17, &udp(5353, 53, b"q")));
        assert_eq!(rd16(&u, 40), 0);
        m.map(&u, &mut out).unwrap();
        assert_eq!(rd16(&out, 40), 0);
        assert_eq!(m.stats.checksums_fixed, 1);
        u = seal(u);
        m.map(&u, &mut out).unwrap();
        assert_ipv4_sums(&out);
        assert_eq!(m.stats.checksums_fixed, 1, "a right checksum is only updated");
    }

    #[test]
    fn an_icmp_error_quotes_the_packet_as_its_sender_sent_it() {
        let mut m = mapper();
        let mut out = Vec::new();
        let q = ipv4("192.168.1.10", "93.184.216.34", 17, &udp(40000, 53, b"query"));
        m.map(&seal(eth(LAN_B, LAN_A, 0x0800, &q)), &mut out).unwrap();
        // The far host says port unreachable, quoting the query as it received it.
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        let mut quoted = q.clone();
        let uc = l4_checksum(
            pseudo_header_v4(ip4("192.168.1.10"), ip4("93.184.216.34"), 17, 13),
            &quoted[20..],
            6,
        );
        quoted[26..28].copy_from_slice(&uc.to_be_bytes());
        icmp.extend_from_slice(&quoted);
        let err = seal(eth(LAN_A, LAN_B, 0x0800, &ipv4("93.184.216.34", "192.168.1.10", 1, &icmp)));
        let t = m.map(&err, &mut out).unwrap();
        assert_eq!(t, Target { node: 0, dp_port: 1 });
        assert_ipv4_sums(&out);
        let inner = 14 + 20 + 8;
        assert_eq!(ip4_at(&out, inner + 12), ip4("172.24.4.3"), "quoted source: the SNAT address");
        assert_eq!(ip4_at(&out, inner + 16), ip4("93.184.216.34"));
        assert_eq!(checksum(&out[inner..inner + 20]), 0, "quoted IPv4 header checksum");
        let pseudo = pseudo_header_v4(ip4("172.24.4.3"), ip4("93.184.216.34"), 17, 13);
        assert_eq!(finish(add(pseudo, &out[inner + 20..])), 0, "quoted UDP checksum");
        assert_eq!(m.stats.checksums_fixed, 0);
    }

    #[test]
    fn frames_that_cannot_be_mapped_are_counted_by_reason() {
        let mut m = mapper();
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let frames = [
            tcp4_frame("1.1.1.1", "8.8.8.8", 1, 2, b""), // outside only
            tcp4_frame("224.0.0.5", "10.0.0.9", 1, 2, b""), // multicast source
            tcp4_frame("8.8.8.8", "255.255.255.255", 1, 2, b""), // broadcast from outside
            tcp4_frame("10.9.0.1", "8.8.4.4", 1, 2, b""), // mapped
        ];
        for f in &frames {
            let _ = m.map(f, &mut out);
        }
        let _ = m.map_record(253, &frames[0], frames[0].len() as u32, &mut scratch, &mut out);
        let s = &m.stats;
        assert_eq!(s.records, 5);
        assert_eq!(s.mapped, 1);
        assert_eq!(s.skipped[Skip::OutsideOnly as usize], 1);
        assert_eq!(s.skipped[Skip::BadAddress as usize], 1);
        assert_eq!(s.skipped[Skip::OutsideBroadcast as usize], 1);
        assert_eq!(s.skipped[Skip::UnsupportedLinktype as usize], 1);
        assert_eq!(s.records, s.mapped + s.skipped.iter().sum::<u64>());
        let j = m.summary_json();
        assert_eq!(j["skipped"]["outside_only"], 1);
        assert_eq!(j["host_table"]["outside"], 3);
    }

    #[test]
    fn an_outside_address_inside_the_cloud_is_remapped() {
        let mut m = mapper();
        let mut out = Vec::new();
        m.map(&tcp4_frame("10.9.0.1", "203.0.113.7", 1, 2, b""), &mut out).unwrap();
        assert_eq!(ip4_at(&out, 30), ip4("198.18.0.1"));
        m.map(&tcp4_frame("10.9.0.1", "198.18.0.1", 1, 2, b""), &mut out).unwrap();
        assert_eq!(ip4_at(&out, 30), ip4("198.18.0.2"), "the address was given away");
        assert_eq!(m.hosts_json()[1]["remapped"], true);
    }

    #[test]
    fn other_frames_are_mapped_by_mac() {
        let mut m = mapper();
        let mut out = Vec::new();
        let lldp = eth([0x01, 0x80, 0xc2, 0, 0, 0x0e], LAN_A, 0x88cc, &[0u8; 46]);
        assert_eq!(m.map(&lldp, &mut out), Ok(Target { node: 0, dp_port: 3 }));
        assert_eq!((mac_at(&out, 0), mac_at(&out, 6)), ([0x01, 0x80, 0xc2, 0, 0, 0x0e], T1));
        // A unicast reply takes a VM of the same network.
        let back = eth(LAN_A, LAN_B, 0x88b5, &[0u8; 46]);
        m.map(&back, &mut out).unwrap();
        assert_eq!((mac_at(&out, 0), mac_at(&out, 6)), (T1, T2));
    }

    #[test]
    fn a_loopback_capture_has_a_client_and_a_server() {
        let mut m = mapper();
        let mut out = Vec::new();
        let syn = tcp4_frame("127.0.0.1", "127.0.0.1", 37510, 7000, b"");
        assert_eq!(m.map(&syn, &mut out), Ok(Target { node: 0, dp_port: 3 }));
        assert_eq!((ip4_at(&out, 26), ip4_at(&out, 30)), (ip4("10.0.0.7"), ip4("10.0.0.8")));
        assert_ipv4_sums(&out);
        // Another connection's client is the same client; the answer comes from the server.
        let ack = tcp4_frame("127.0.0.1", "127.0.0.1", 7000, 37512, b"x");
        assert_eq!(m.map(&ack, &mut out), Ok(Target { node: 1, dp_port: 3 }));
        assert_eq!((mac_at(&out, 0), mac_at(&out, 6)), (T1, T2));
        assert_eq!(m.hosts().len(), 2);
        assert_eq!(m.hosts_json()[0]["host"], "127.0.0.1 (client side)");
        // Without ports, both ends are one host.
        let ping = seal(eth(
            LAN_B,
            LAN_A,
            0x0800,
            &ipv4("127.0.0.1", "127.0.0.1", 1, &[8, 0, 0, 0, 0, 1, 0, 1]),
        ));
        assert_eq!(m.map(&ping, &mut out), Err(Skip::SameVm));
        // Right checksums stay right by the incremental updates alone.
        assert_eq!(m.stats.checksums_fixed, 0);
    }

    #[test]
    fn the_mapping_depends_on_the_capture_alone() {
        let frames = [
            tcp4_frame("192.168.1.10", "93.184.216.34", 40000, 80, b""),
            arp(1, LAN_A, "10.9.0.1", [0; 6], "10.9.0.2"),
            tcp4_frame("8.8.8.8", "192.168.7.7", 1, 2, b""),
            tcp4_frame("10.9.0.2", "10.9.0.3", 1, 2, b""),
        ];
        let run = || {
            let mut m = mapper();
            let mut outs = Vec::new();
            for f in &frames {
                let mut out = Vec::new();
                let t = m.map(f, &mut out);
                outs.push((t, out));
            }
            (outs, m.hosts_json(), m.summary_json())
        };
        assert_eq!(run(), run());
    }
}
