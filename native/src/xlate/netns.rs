//! Translation through an emulated router namespace (qrouter-, snat-, fip-), inside the same
//! pass as the bridges around it, so that one megaflow carries everything the node does to a
//! packet: the frame leaves a bridge on a port bound to a namespace interface, the namespace
//! decides as Linux would (ARP for its own and proxied addresses, local delivery, the policy
//! rules and routes, the TTL, the neighbour), and the frame it sends continues in the bridge
//! of its output interface, or in the namespace at the other end of a veth pair.
//!
//! Decisions come from `crate::netns`; this module turns them into flow edits (committed as
//! datapath set actions) and mask bits. The decisions report which bits of the source and
//! destination addresses they examined, and those are exactly what the megaflow matches.
//!
//! iptables NAT runs on the datapath's connection tracker, as the kernel's runs on its own:
//! a namespace with NAT rules sends each IPv4 packet through `ct(zone=Z,nat)` (one zone per
//! namespace) and recirculates; the thawed translation then knows the connection state and
//! the existing mapping has been applied. The first packet of a connection walks the nat
//! table: a DNAT/REDIRECT verdict in PREROUTING or an SNAT/MASQUERADE verdict in POSTROUTING
//! becomes `ct(commit,zone=Z,nat(...))`, and every other new connection is committed plain,
//! so that its replies are `+est`.
//!
//! Packets the namespace makes itself are actions too, executed by the datapath: a packet
//! to a next hop without a neighbour entry waits in the neighbour's queue while an ARP
//! request goes out of the interface (`neigh_queue`), and a packet that cannot be forwarded
//! is answered with an ICMP error (`icmp_error`). Both continue as recirculations that
//! resume here: the request and the released packets at transmission, the error at output
//! routing; the datapath releases the queue once the namespace has learned the neighbour.

use super::trace::NodeType;
use super::{Ctx, Frozen, NsResume};
use crate::dpif::odp::{DpAction, DropReason};
use crate::flow::key::{ct_state as cts, nw_frag};
use crate::fmt::mac as mac_str;
use crate::netns::netfilter::{CtInfo, NfDeps, Pkt5};
use crate::netns::{Binding, NatVerdict, RouteDecision};
use crate::ofproto::action::{NatKind, NatSpec};
use std::net::Ipv4Addr;

/// The conntrack zone of namespace `ns` (zones above 0xfe00 are left to namespaces).
pub fn ns_zone(ns: usize) -> u16 {
    0xfe00u16.wrapping_add(ns as u16)
}

fn mask_bits(bits: u8) -> u32 {
    if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits.min(32) as u32)
    }
}

impl Ctx<'_> {
    /// The frame arrives on interface `iface` of namespace `ns`.
    pub(crate) fn ns_receive(&mut self, ns: usize, iface: &str) {
        if self.depth >= super::MAX_DEPTH {
            self.error = Some(DropReason::RecursionTooDeep);
            return;
        }
        self.depth += 1;
        let name = self.of.namespaces[ns].name.clone();
        let node = self.enter(NodeType::Bridge, || format!("namespace(\"{name}\")"));
        self.report(NodeType::Detail, || format!("received on {iface}"));
        self.ns_input(ns, iface);
        self.leave(node);
        self.depth -= 1;
    }

    fn ns_drop(&mut self, r: DropReason, why: &str) {
        self.report(NodeType::Warn, || why.to_string());
        if self.outputs == 0 {
            self.note_drop(r);
        }
    }

    fn ns_input(&mut self, ns: usize, iface: &str) {
        let Some(dev) = self.of.namespaces[ns].iface(iface).cloned() else {
            self.ns_drop(DropReason::NoSuchPort, "no such interface in the namespace");
            return;
        };
        // A NIC takes frames for its own address, broadcast and multicast.
        self.wc.dl_dst = [0xff; 6];
        let dst = self.flow.dl_dst;
        if dst != dev.mac && dst[0] & 1 == 0 {
            self.ns_drop(DropReason::NsNotForUs, "frame not addressed to the interface");
            return;
        }
        if self.flow.is_arp() {
            self.ns_arp(ns, &dev.name, dev.mac);
        } else if self.flow.is_ipv4() {
            // A header the datapath could not parse (too short, a total length beyond the
            // frame, a header length under 20 bytes) leaves the key's IPv4 fields zero; Linux's
            // ip_rcv drops such a packet before routing. A real header never has TTL 0,
            // protocol 0 and both addresses 0.
            self.wc.nw_ttl = 0xff;
            self.wc.nw_proto = 0xff;
            if self.flow.nw_ttl == 0 && self.flow.nw_proto == 0 {
                self.wc.nw_src = u32::MAX;
                self.wc.nw_dst = u32::MAX;
                if self.flow.nw_src == 0 && self.flow.nw_dst == 0 {
                    self.ns_drop(DropReason::NsMalformed, "malformed IPv4 header: dropped");
                    return;
                }
            }
            self.ns_ipv4(ns, &dev.name, dev.mac);
        } else {
            self.ns_drop(
                DropReason::NsUnsupported,
                "not ARP or IPv4: not handled by the namespace",
            );
        }
    }

    fn ns_arp(&mut self, ns: usize, iif: &str, mac: [u8; 6]) {
        self.wc.nw_proto = 0xff;
        self.wc.nw_src = u32::MAX;
        self.wc.nw_dst = u32::MAX;
        self.wc.arp_sha = [0xff; 6];
        let (op, spa, tpa, sha) =
            (self.flow.nw_proto, self.flow.nw_src, self.flow.nw_dst, self.flow.arp_sha);
        // The kernel learns the sender of an ARP request for one of its addresses, and of a
        // reply (neigh_event_ns / arp_process).
        let learn = |ctx: &mut Self| {
            if ctx.side_effects && spa != 0 {
                let n = &mut ctx.of.namespaces[ns];
                let before = n.neighbor(iif, Ipv4Addr::from(spa));
                n.neigh_update(iif, Ipv4Addr::from(spa), sha);
                if before != Some(sha) {
                    ctx.out.macs_changed = true;
                }
            }
        };
        match op {
            1 => {
                let reply =
                    self.of.namespaces[ns].arp_reply(iif, Ipv4Addr::from(spa), Ipv4Addr::from(tpa));
                let Some(answer) = reply else {
                    self.ns_drop(DropReason::NsNotForUs, "ARP request for an address not here");
                    return;
                };
                // arp_process(): answering, for itself or as a proxy, the kernel records the
                // sender (neigh_event_ns).
                learn(self);
                let tpa_ip = Ipv4Addr::from(tpa);
                self.report(NodeType::Detail, || {
                    format!("ARP reply: {tpa_ip} is at {}", mac_str(&answer))
                });
                // The reply is the request turned around.
                self.wc.dl_src = [0xff; 6];
                self.flow.dl_dst = self.flow.dl_src;
                self.flow.dl_src = mac;
                self.flow.nw_proto = 2;
                self.flow.arp_tha = sha;
                self.flow.arp_sha = answer;
                self.flow.nw_src = tpa;
                self.flow.nw_dst = spa;
                self.ns_transmit(ns, iif);
            }
            2 => {
                learn(self);
                self.report(NodeType::Detail, || "ARP reply: neighbour learned".to_string());
                if self.outputs == 0 {
                    self.note_drop(DropReason::NsConsumed);
                }
            }
            _ => self.ns_drop(DropReason::NsUnsupported, "ARP opcode not handled"),
        }
    }

    fn pkt5(&self) -> Pkt5 {
        let f = &self.flow;
        let ports = matches!(f.nw_proto, 6 | 17 | 132) && f.nw_frag & nw_frag::LATER == 0;
        Pkt5::new(
            Ipv4Addr::from(f.nw_src),
            Ipv4Addr::from(f.nw_dst),
            f.nw_proto,
            if ports { f.tp_src } else { 0 },
            if ports { f.tp_dst } else { 0 },
        )
    }

    fn nf_mask(&mut self, d: &NfDeps) {
        self.wc.nw_src |= mask_bits(d.src_bits);
        self.wc.nw_dst |= mask_bits(d.dst_bits);
        if d.proto {
            self.wc.nw_proto = 0xff;
        }
        if d.sport {
            self.wc.tp_src = 0xffff;
        }
        if d.dport {
            self.wc.tp_dst = 0xffff;
        }
    }

    /// IPv4 in a namespace: through the connection tracker first when the namespace has NAT
    /// rules (recirculating back into `ns_route`), else straight to routing.
    fn ns_ipv4(&mut self, ns: usize, iif: &str, mac: [u8; 6]) {
        let n = &self.of.namespaces[ns];
        let has_nat = n.nat.chains.iter().any(|c| !c.rules.is_empty());
        let notrack = n.notrack(iif, &self.pkt5());
        let tracked = has_nat && !notrack.verdict;
        if has_nat {
            self.nf_mask(&notrack.deps);
        }
        if !tracked {
            return self.ns_route(ns, iif, mac, None);
        }
        // ct(zone=Z,nat(dst)): PREROUTING's destination manips, then routing resumes in this
        // namespace after recirculation.
        let resume = NsResume::Route { ns, iif: iif.to_string() };
        self.ns_conntrack(ns, NatKind::Dst, resume, "resume routing in the namespace");
    }

    /// Runs the namespace's conntrack zone with the existing connections' `manip` (source or
    /// destination) NAT, and recirculates to `resume`.
    fn ns_conntrack(&mut self, ns: usize, manip: NatKind, resume: NsResume, what: &str) {
        self.commit();
        let zone = ns_zone(ns);
        let any = NatSpec {
            kind: NatKind::Any,
            addrs: None,
            ports: (0, 0),
            random: false,
            hash: false,
            persistent: false,
        };
        self.odp.push(DpAction::Ct {
            zone,
            commit: false,
            force: false,
            nat: Some(Box::new(any)),
            mark: None,
            nat_only: Some(manip),
        });
        let fz = self.ns_frozen(resume);
        let id = self.of.recirc.id_for(fz);
        self.odp.push(DpAction::Recirc(id));
        self.report(NodeType::Detail, || {
            format!("conntrack zone {zone}: recirculates as {id:#x} to {what}")
        });
        self.out.recircs.push(id);
        self.outputs += 1;
    }

    /// Resumes a namespace's IPv4 processing after conntrack or for a packet the datapath
    /// generated or released (a thawed recirculation).
    pub(crate) fn ns_thaw(&mut self, resume: &NsResume) {
        let (NsResume::Route { ns, iif: dev }
        | NsResume::Transmit { ns, oif: dev }
        | NsResume::Output { ns, oif: dev, .. }) = resume;
        let (ns, dev) = (*ns, dev.clone());
        let name = self.of.namespaces[ns].name.clone();
        let Some(mac) = self.of.namespaces[ns].iface(&dev).map(|d| d.mac) else { return };
        let node = self.enter(NodeType::Bridge, || format!("namespace(\"{name}\")"));
        let st = self.flow.ct_state;
        match resume {
            NsResume::Route { .. } => {
                self.report(NodeType::Detail, || {
                    format!("resumed after conntrack on {dev}, ct_state={st:#x}")
                });
                self.ns_route(ns, &dev, mac, Some(st));
            }
            NsResume::Transmit { .. } => {
                self.report(NodeType::Detail, || format!("resumed to send out of {dev}"));
                self.ns_transmit(ns, &dev);
            }
            NsResume::Output { next_hop, .. } => {
                self.report(NodeType::Detail, || {
                    format!("resumed to send to {} on {dev}", Ipv4Addr::from(*next_hop))
                });
                self.wc.dl_src = [0xff; 6];
                self.flow.dl_src = mac;
                self.ns_neigh_output(ns, &dev, Ipv4Addr::from(*next_hop));
            }
        }
        self.leave(node);
    }

    /// Sends the current frame (source MAC set) to `next_hop` out of `oif`: with the
    /// neighbour's MAC when the namespace knows it, else into the neighbour's queue while
    /// an ARP request asks for it.
    fn ns_neigh_output(&mut self, ns: usize, oif: &str, next_hop: Ipv4Addr) {
        let known = {
            let n = &self.of.namespaces[ns];
            n.neighbor(oif, next_hop).or_else(|| {
                // Across a veth pair, ARP is answered at once by the other end.
                let out = n.iface(oif)?;
                let Binding::Veth { namespace, interface } = &out.binding else { return None };
                let peer = self.of.namespaces.iter().find(|p| &p.name == namespace)?;
                let src = out.addresses.first().map(|a| a.addr)?;
                peer.arp_reply(interface, src, next_hop)
            })
        };
        if let Some(nmac) = known {
            self.report(NodeType::Detail, || format!("{next_hop} is at {}", mac_str(&nmac)));
            self.flow.dl_dst = nmac;
            self.ns_transmit(ns, oif);
            return;
        }
        let n = &self.of.namespaces[ns];
        let Some(sha) = n.iface(oif).map(|d| d.mac) else { return };
        // arp_solicit(): the packet's source when it is ours, else an address of the link.
        let src = Ipv4Addr::from(self.flow.nw_src);
        let spa = if n.is_local(src) {
            src
        } else {
            n.select_src(oif, Some(next_hop), 253).unwrap_or(Ipv4Addr::UNSPECIFIED)
        };
        self.wc.nw_src = u32::MAX;
        self.commit();
        let fz = self.ns_frozen(NsResume::Transmit { ns, oif: oif.to_string() });
        let id = self.of.recirc.id_for(fz);
        self.report(NodeType::Detail, || {
            format!(
                "no neighbour entry for {next_hop} on {oif}: queued, ARP request who-has \
                 {next_hop} tell {spa}; both resume as {id:#x}"
            )
        });
        self.odp.push(DpAction::NeighQueue(Box::new(crate::dpif::odp::NeighQueue {
            ns: ns as u16,
            oif: oif.to_string(),
            next_hop: u32::from(next_hop),
            sha,
            spa: u32::from(spa),
            resume: id,
        })));
        self.out.recircs.push(id);
        self.outputs += 1;
    }

    /// The frozen state of a recirculation that resumes in a namespace.
    fn ns_frozen(&self, resume: NsResume) -> Frozen {
        Frozen {
            bridge: self.bridge,
            table: 0,
            in_port: self.flow.in_port,
            regs: [0; 8],
            metadata: 0,
            tun_id: 0,
            tun_src: 0,
            tun_dst: 0,
            tun_flags: 0,
            continuation: 0,
            ns: Some(resume),
        }
    }

    /// Answers the current packet with ICMP `typ`/`code` from `icmp.src`, unless Linux
    /// would not (`icmp_send()`): the packet is itself an ICMP error, or a fragment other
    /// than the first.
    fn ns_icmp_error(&mut self, ns: usize, typ: u8, code: u8, icmp: &crate::netns::IcmpSource) {
        self.wc.nw_frag |= nw_frag::MASK;
        self.wc.nw_proto = 0xff;
        if self.flow.nw_frag & nw_frag::LATER != 0 {
            self.report(NodeType::Detail, || "not the first fragment: no ICMP error".into());
            return;
        }
        if self.flow.nw_proto == 1 {
            self.wc.tp_src = 0xff;
            if matches!(self.flow.tp_src, 3 | 4 | 5 | 11 | 12) {
                self.report(NodeType::Detail, || "an ICMP error: no ICMP error about it".into());
                return;
            }
        }
        self.commit();
        let fz = self.ns_frozen(NsResume::Output {
            ns,
            oif: icmp.oif.clone(),
            next_hop: u32::from(icmp.next_hop),
        });
        let id = self.of.recirc.id_for(fz);
        let src = icmp.src;
        self.report(NodeType::Detail, || {
            format!("ICMP type {typ} code {code} from {src} via {}: resumes as {id:#x}", icmp.oif)
        });
        self.odp.push(DpAction::IcmpError {
            ns: ns_zone(ns),
            typ,
            code,
            src: u32::from(src),
            resume: id,
        });
        self.out.recircs.push(id);
    }

    /// Commits the connection, with `nat` when given; the datapath applies it to the packet,
    /// so the flow and the committed base both take the translated addresses.
    fn ns_commit(&mut self, ns: usize, nat: Option<NatSpec>) {
        self.commit();
        let zone = ns_zone(ns);
        if let Some(n) = &nat {
            if let Some((std::net::IpAddr::V4(v4), _)) = n.addrs {
                let v = u32::from(v4);
                match n.kind {
                    NatKind::Src => {
                        self.flow.nw_src = v;
                        self.base.nw_src = v;
                    }
                    NatKind::Dst => {
                        self.flow.nw_dst = v;
                        self.base.nw_dst = v;
                    }
                    NatKind::Any => {}
                }
            }
            if n.ports.0 != 0 && n.kind == NatKind::Dst {
                self.flow.tp_dst = n.ports.0;
                self.base.tp_dst = n.ports.0;
            }
            let text = crate::ofproto::action::format_nat(n);
            self.report(NodeType::Detail, || format!("commits the connection with {text}"));
        } else {
            self.report(NodeType::Detail, || "commits the connection".to_string());
        }
        self.odp.push(DpAction::Ct {
            zone,
            commit: true,
            force: false,
            nat: nat.map(Box::new),
            mark: None,
            nat_only: None,
        });
    }

    fn ns_route(&mut self, ns: usize, iif: &str, mac: [u8; 6], ct: Option<u8>) {
        // The first packet of a connection walks the nat table (NEW, not yet established).
        let new = ct.is_some_and(|s| s & cts::NEW != 0 && s & cts::EST == 0);
        if ct.is_some() {
            self.wc.ct_state |= cts::TRK | cts::NEW | cts::EST;
        }
        let mut dnat = false;
        if new {
            let pre = self.of.namespaces[ns].nat_prerouting(iif, &self.pkt5(), CtInfo::NEW, 0);
            self.nf_mask(&pre.deps);
            if matches!(pre.verdict, NatVerdict::Dnat(_) | NatVerdict::Redirect { .. }) {
                let spec = pre.verdict.nat_spec(&self.pkt5());
                self.ns_commit(ns, spec);
                dnat = true;
            } else if pre.verdict == NatVerdict::Drop {
                self.ns_drop(DropReason::NsUnreachable, "dropped by the nat table");
                return;
            }
        }
        let established = ct.is_some() && !new;
        self.ns_forward(ns, iif, mac, new, dnat, established);
    }

    fn ns_forward(
        &mut self,
        ns: usize,
        iif: &str,
        mac: [u8; 6],
        new: bool,
        dnat: bool,
        established: bool,
    ) {
        let (src, dst, ttl) = (self.flow.nw_src, self.flow.nw_dst, self.flow.nw_ttl);
        let (dec, out) = {
            let n = &self.of.namespaces[ns];
            let dec = n.forward(iif, Ipv4Addr::from(src), Ipv4Addr::from(dst), ttl, 0);
            let out = match &dec {
                RouteDecision::Forward { oif, .. } => n.iface(oif).cloned(),
                _ => None,
            };
            (dec, out)
        };
        let deps = dec.deps();
        self.wc.nw_src |= mask_bits(deps.src_bits);
        self.wc.nw_dst |= mask_bits(deps.dst_bits);
        self.wc.nw_ttl = 0xff;
        match dec {
            RouteDecision::Forward { oif, next_hop, rule, table, .. } => {
                let Some(out) = out else {
                    self.ns_drop(DropReason::NsUnreachable, "route to an unknown interface");
                    return;
                };
                self.report(NodeType::Detail, || {
                    format!("ip rule {rule}: table {table}: via {next_hop} dev {oif}")
                });
                if new && !dnat {
                    let ctinfo = CtInfo::NEW;
                    let post = self.of.namespaces[ns].nat_postrouting(
                        Some(iif),
                        &oif,
                        next_hop,
                        &self.pkt5(),
                        ctinfo,
                        0,
                    );
                    self.nf_mask(&post.deps);
                    match post.verdict {
                        NatVerdict::Snat(_) | NatVerdict::Masquerade { .. } => {
                            let spec = post.verdict.nat_spec(&self.pkt5());
                            self.ns_commit(ns, spec);
                        }
                        NatVerdict::Drop => {
                            self.ns_drop(DropReason::NsUnreachable, "dropped by the nat table");
                            return;
                        }
                        _ => self.ns_commit(ns, None),
                    }
                }
                self.report(NodeType::Detail, || format!("TTL {ttl} -> {}", ttl - 1));
                self.flow.nw_ttl = ttl - 1;
                self.flow.dl_src = out.mac;
                if established {
                    // POSTROUTING: the connection's source manips, after routing.
                    let resume = NsResume::Output {
                        ns,
                        oif: out.name.clone(),
                        next_hop: u32::from(next_hop),
                    };
                    self.ns_conntrack(ns, NatKind::Src, resume, "send it out");
                    return;
                }
                self.ns_neigh_output(ns, &out.name, next_hop);
            }
            RouteDecision::Local { .. } => {
                if new && !dnat {
                    self.ns_commit(ns, None);
                }
                self.ns_local(ns, iif, mac)
            }
            RouteDecision::TtlExceeded { icmp, .. } => {
                if let Some(icmp) = &icmp {
                    self.ns_icmp_error(ns, 11, 0, icmp);
                }
                self.ns_drop(DropReason::TtlExpired, "TTL exceeded");
            }
            RouteDecision::Unreachable { code, icmp, .. } => {
                if let Some(icmp) = &icmp {
                    self.ns_icmp_error(ns, 3, code, icmp);
                }
                self.ns_drop(DropReason::NsUnreachable, &format!("unreachable (code {code})"));
            }
            RouteDecision::Drop { reason, .. } => {
                self.ns_drop(DropReason::NsUnreachable, &format!("dropped by routing: {reason:?}"));
            }
        }
    }

    /// Local delivery: ICMP echo requests to a namespace address are answered; anything else
    /// has no listener.
    fn ns_local(&mut self, ns: usize, iif: &str, mac: [u8; 6]) {
        self.wc.nw_proto = 0xff;
        let is_echo = self.flow.nw_proto == 1 && self.flow.nw_frag & nw_frag::ANY == 0 && {
            self.wc.tp_src = 0xff;
            self.wc.nw_frag |= nw_frag::MASK;
            self.flow.tp_src == 8
        };
        if !is_echo {
            self.ns_drop(DropReason::NsConsumed, "delivered locally: no listener");
            return;
        }
        // icmp_echo(): the reply goes back to the sender, from the address it pinged.
        self.wc.dl_src = [0xff; 6];
        let (src, dst) = (self.flow.nw_src, self.flow.nw_dst);
        self.report(NodeType::Detail, || {
            format!("ICMP echo reply from {} to {}", Ipv4Addr::from(dst), Ipv4Addr::from(src))
        });
        self.flow.nw_src = dst;
        self.flow.nw_dst = src;
        self.flow.nw_ttl = 64;
        self.flow.tp_src = 0;
        self.flow.dl_dst = self.flow.dl_src;
        self.flow.dl_src = mac;
        let _ = ns;
        self.ns_transmit(ns, iif);
    }

    /// Sends the current frame out of `iface` of namespace `ns`.
    fn ns_transmit(&mut self, ns: usize, iface: &str) {
        let Some(dev) = self.of.namespaces[ns].iface(iface).cloned() else { return };
        match dev.binding {
            Binding::Port { bridge, port } => {
                let Some(bi) = self.of.bridges.iter().position(|b| b.name == bridge) else {
                    return;
                };
                let Some(ofport) = self.of.bridges[bi].port_by_name(&port).map(|p| p.ofport) else {
                    return;
                };
                self.report(NodeType::Detail, || format!("sent out of {iface}"));
                // As a patch port: the bridge sees a new packet from that port.
                let old_flow = self.flow;
                let old_bridge = self.bridge;
                let old_table = self.table_id;
                self.flow.in_port = ofport;
                self.flow.metadata = 0;
                self.flow.regs = [0; 8];
                self.flow.ct_state = 0;
                self.flow.ct_zone = 0;
                self.flow.ct_mark = 0;
                self.bridge = bi;
                let b = self.enter(NodeType::Bridge, || format!("bridge(\"{bridge}\")"));
                self.xlate_table(0);
                self.leave(b);
                self.flow = old_flow;
                self.bridge = old_bridge;
                self.table_id = old_table;
                self.exit = self.error.is_some();
            }
            Binding::Veth { namespace, interface } => {
                let Some(peer) = self.of.namespaces.iter().position(|n| n.name == namespace) else {
                    return;
                };
                self.report(NodeType::Detail, || format!("sent out of {iface} (veth)"));
                self.ns_receive(peer, &interface);
            }
            Binding::Loopback => {}
        }
    }
}
