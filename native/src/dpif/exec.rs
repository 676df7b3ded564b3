//! Execution of datapath actions on one packet, in place.
//!
//! Header edits go through `wire::modify`, which keeps checksums right. Actions that change
//! the header layout (VLAN push/pop, tunnel push) re-derive the layer offsets afterwards.
//! Recirculation and decapsulation queue the packet for another pass through the caches.

use super::odp::{DpAction, DropReason, TnlPush};
use super::{PacketMd, Sink};
use crate::conntrack::{Conntrack, CtParams};
use crate::flow::extract::Layers;
use crate::flow::key::tun_flags;
use crate::flow::FlowKey;
use crate::wire::{checksum, modify, Packet};

pub(crate) struct ExecCtx<'a> {
    pub ct: &'a mut Conntrack,
    pub now_ms: u64,
    pub sink: &'a mut dyn Sink,
    pub work: &'a mut Vec<(Packet, PacketMd)>,
    /// Spare packet buffers: a packet handed on whole (recirculated, decapsulated, queued)
    /// leaves one of these in its place, so that no buffer is allocated per packet.
    pub pool: &'a mut Vec<Packet>,
    pub gen: &'a mut super::generated::Generated,
    pub outputs: u32,
    /// Outputs the sink carried on to another node.
    pub carried: u32,
    pub drop: Option<DropReason>,
}

// OVS's hash primitives (lib/hash.h), used so that the outer UDP source port of a VXLAN
// packet is the one Open vSwitch's userspace datapath picks for the same inner packet.
#[inline]
fn mhash_add(hash: u32, data: u32) -> u32 {
    let mut d = data.wrapping_mul(0xcc9e_2d51);
    d = d.rotate_left(15);
    d = d.wrapping_mul(0x1b87_3593);
    let h = (hash ^ d).rotate_left(13);
    h.wrapping_mul(5).wrapping_add(0xe654_6b64)
}

#[inline]
pub(crate) fn mhash_finish(hash: u32, final_: u32) -> u32 {
    let mut h = hash ^ final_;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// miniflow_hash_5tuple(flow, 0): the RSS hash the userspace datapath gives a packet that
/// arrives without one. Fields are hashed as the 32-bit words OVS keeps in network order.
#[inline(always)]
pub fn rss_hash_5tuple(key: &FlowKey) -> u32 {
    let mut hash = 0u32;
    let word = |b: [u8; 4]| u32::from_ne_bytes(b);
    if key.is_ipv6() {
        for chunk in key.ipv6_src.chunks(4).chain(key.ipv6_dst.chunks(4)) {
            hash = mhash_add(hash, word([chunk[0], chunk[1], chunk[2], chunk[3]]));
        }
    } else if key.is_ipv4() || key.dl_type == 0x0806 {
        hash = mhash_add(hash, word(key.nw_src.to_be_bytes()));
        hash = mhash_add(hash, word(key.nw_dst.to_be_bytes()));
    } else {
        return mhash_finish(hash, 42);
    }
    let proto = key.nw_proto;
    hash = mhash_add(hash, proto as u32);
    if matches!(proto, 6 | 17 | 132 | 1 | 58) {
        let s = key.tp_src.to_be_bytes();
        let d = key.tp_dst.to_be_bytes();
        hash = mhash_add(hash, word([s[0], s[1], d[0], d[1]]));
    }
    mhash_finish(hash, 42)
}

/// The outer UDP source port OVS derives from the RSS hash (netdev_tnl_get_src_port).
pub fn tunnel_src_port(hash: u32, min: u16, max: u16) -> u16 {
    let range = (max as u64).saturating_sub(min as u64);
    (((hash as u64 * range) >> 32) + min as u64) as u16
}

impl ExecCtx<'_> {
    /// Counts a frame the sink took: carried on to another node, or an output.
    #[inline(always)]
    fn count_output(&mut self, carried: bool) {
        if carried {
            self.carried += 1;
        } else {
            self.outputs += 1;
        }
    }

    pub fn execute(
        &mut self,
        pkt: &mut Packet,
        md: &mut PacketMd,
        key: &FlowKey,
        mut layers: Layers,
        actions: &[DpAction],
    ) {
        let last = actions.len().saturating_sub(1);
        let mut steps = actions.iter().enumerate();
        while let Some((i, a)) = steps.next() {
            match a {
                // No controller is connected: the packet-in goes nowhere.
                DpAction::Controller { .. } => {}
                DpAction::Output(p) => {
                    let carried = self.sink.output(*p, pkt, md.origin);
                    self.count_output(carried);
                }
                DpAction::SetEth { src, dst } => {
                    if let Some(m) = src {
                        modify::set_eth_src(pkt, *m);
                    }
                    if let Some(m) = dst {
                        modify::set_eth_dst(pkt, *m);
                    }
                }
                DpAction::PushVlan { tpid, tci } => {
                    if let [DpAction::Output(p), DpAction::PopVlan, ..] = &actions[i + 1..] {
                        let origin = md.origin;
                        let sink = &mut *self.sink;
                        let tagged = |t: &Packet| sink.output(*p, t, origin);
                        if let Some(carried) = modify::with_vlan(pkt, *tpid, *tci, tagged) {
                            self.count_output(carried);
                            steps.nth(1);
                            continue;
                        }
                    }
                    modify::push_vlan(pkt, &mut layers, *tpid, *tci);
                }
                DpAction::PopVlan => {
                    modify::pop_vlan(pkt, &mut layers);
                }
                DpAction::SetIpv4 { src, dst, tos, ttl, .. } => {
                    md.ct.memo = 0;
                    if let Some(v) = src {
                        modify::set_ipv4_src(pkt, &layers, *v);
                    }
                    if let Some(v) = dst {
                        modify::set_ipv4_dst(pkt, &layers, *v);
                    }
                    if let Some(v) = tos {
                        modify::set_ipv4_tos(pkt, &layers, *v);
                    }
                    if let Some(v) = ttl {
                        modify::set_ipv4_ttl(pkt, &layers, *v);
                    }
                }
                DpAction::SetIpv6 { src, dst, tclass, hlimit, label, .. } => {
                    md.ct.memo = 0;
                    if let Some(v) = src {
                        modify::set_ipv6_src(pkt, &layers, v);
                    }
                    if let Some(v) = dst {
                        modify::set_ipv6_dst(pkt, &layers, v);
                    }
                    if let Some(v) = tclass {
                        modify::set_ipv6_tclass(pkt, &layers, *v);
                    }
                    if let Some(v) = hlimit {
                        modify::set_ipv6_hlimit(pkt, &layers, *v);
                    }
                    if let Some(v) = label {
                        modify::set_ipv6_label(pkt, &layers, *v);
                    }
                }
                DpAction::SetPorts { src, dst, .. } => {
                    md.ct.memo = 0;
                    if let Some(v) = src {
                        modify::set_tp_src(pkt, &layers, *v);
                    }
                    if let Some(v) = dst {
                        modify::set_tp_dst(pkt, &layers, *v);
                    }
                }
                DpAction::SetIcmp { typ, code, .. } => {
                    md.ct.memo = 0;
                    if let Some(v) = typ {
                        modify::set_icmp_type(pkt, &layers, *v);
                    }
                    if let Some(v) = code {
                        modify::set_icmp_code(pkt, &layers, *v);
                    }
                }
                DpAction::SetArp { op, sip, tip, sha, tha } => {
                    md.ct.memo = 0;
                    if let Some(v) = op {
                        modify::set_arp_op(pkt, &layers, *v);
                    }
                    if let Some(v) = sip {
                        modify::set_arp_spa(pkt, &layers, *v);
                    }
                    if let Some(v) = tip {
                        modify::set_arp_tpa(pkt, &layers, *v);
                    }
                    if let Some(v) = sha {
                        modify::set_arp_sha(pkt, &layers, *v);
                    }
                    if let Some(v) = tha {
                        modify::set_arp_tha(pkt, &layers, *v);
                    }
                }
                DpAction::TnlPush(t) => {
                    push_vxlan(pkt, t, md.rss(key));
                    layers = VXLAN_LAYERS;
                    // The pushed packet is a new packet on the underlay: no tunnel metadata.
                    md.tun_flags = 0;
                    md.ct.memo = 0;
                }
                DpAction::TnlPop(vport) => {
                    match pop_vxlan(pkt, &layers) {
                        Ok(t) => {
                            let mut nmd = PacketMd::new(*vport);
                            nmd.tun_id = t.vni as u64;
                            nmd.tun_src = t.src;
                            nmd.tun_dst = t.dst;
                            nmd.tun_flags = tun_flags::PRESENT | tun_flags::KEY | t.flags;
                            nmd.depth = md.depth + 1;
                            let inner = if i == last {
                                std::mem::replace(pkt, self.pool.pop().unwrap_or_default())
                            } else {
                                pkt.clone()
                            };
                            self.work.push((inner, nmd));
                            // Counted as output when the inner packet is emitted.
                        }
                        Err(r) => self.drop = Some(r),
                    }
                    if i == last {
                        return;
                    }
                }
                DpAction::Ct { zone, commit, force, nat, mark, nat_only } => {
                    let params = CtParams {
                        zone: *zone,
                        commit: *commit,
                        force: *force,
                        nat: nat.as_deref(),
                        mark: *mark,
                        nat_only: *nat_only,
                    };
                    let (l3, l4) = (layers.l3 as usize, layers.l4 as usize);
                    // The recirculated pass extracts the NATted fields from the frame again.
                    let _ = self.ct.execute_meta(
                        pkt.data_mut(),
                        l3,
                        l4,
                        key.dl_type,
                        key.nw_frag,
                        &mut md.ct,
                        &params,
                        self.now_ms,
                    );
                }
                DpAction::Recirc(id) => {
                    // The packet keeps the RSS hash of its first pass, as OVS keeps a packet's.
                    let mut nmd = PacketMd { rss_hash: Some(md.rss(key)), ..*md };
                    nmd.start = super::PassStart::Port;
                    nmd.recirc_id = *id;
                    nmd.depth = md.depth + 1;
                    let p = if i == last {
                        std::mem::replace(pkt, self.pool.pop().unwrap_or_default())
                    } else {
                        pkt.clone()
                    };
                    self.work.push((p, nmd));
                    if i == last {
                        return;
                    }
                }
                DpAction::Clone(inner) => {
                    let mut cmd = *md;
                    if i == last {
                        // Nothing comes after: the clone may have the packet itself.
                        self.execute(pkt, &mut cmd, key, layers, inner);
                    } else {
                        let mut copy = pkt.clone();
                        self.execute(&mut copy, &mut cmd, key, layers, inner);
                    }
                }
                DpAction::NeighQueue(q) => {
                    let mut qmd = PacketMd { rss_hash: Some(md.rss(key)), ..*md };
                    qmd.start = super::PassStart::Port;
                    qmd.recirc_id = q.resume;
                    qmd.depth = md.depth + 1;
                    let p = if i == last {
                        std::mem::replace(pkt, self.pool.pop().unwrap_or_default())
                    } else {
                        pkt.clone()
                    };
                    if let Some(arp) = self.gen.enqueue(q, p, qmd, self.now_ms) {
                        let mut amd = PacketMd::new(md.in_port);
                        amd.recirc_id = q.resume;
                        amd.origin = super::Origin::Generated;
                        amd.start = super::PassStart::Generated;
                        self.work.push((Packet::from_slice(&arp), amd));
                    }
                    if i == last {
                        return;
                    }
                }
                DpAction::IcmpError { ns, typ, code, src, resume } => {
                    let l3 = layers.l3 as usize;
                    let Some(ip) = pkt.data().get(l3..).filter(|_| layers.l3 != u16::MAX) else {
                        continue;
                    };
                    if ip.len() < 20 {
                        continue;
                    }
                    let dst = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
                    if !self.gen.icmp_allow(*ns, dst, self.now_ms) {
                        continue;
                    }
                    let id = self.gen.next_ip_id(*ns);
                    if let Some(f) = super::generated::icmp_error(ip, *typ, *code, *src, id) {
                        self.gen.frames += 1;
                        let mut emd = PacketMd::new(md.in_port);
                        emd.recirc_id = *resume;
                        emd.origin = super::Origin::Generated;
                        emd.start = super::PassStart::Generated;
                        self.work.push((Packet::from_slice(&f), emd));
                    }
                }
            }
        }
    }
}

/// The layers of a frame that starts with the 50-byte header `push_vxlan` writes (Ethernet,
/// IPv4 without options, UDP, VXLAN): known without parsing it again.
const VXLAN_LAYERS: Layers = Layers {
    l2_5: 12,
    l3: 14,
    l4: 34,
    l7: 42,
    l2_pad: 0,
    dl_type: 0x0800,
    nw_proto: 17,
    nw_frag: 0,
};

/// Pushes the 50-byte VXLAN header, filling lengths, the IPv4 checksum and the source port.
fn push_vxlan(pkt: &mut Packet, t: &TnlPush, hash: u32) {
    let inner_len = pkt.len();
    let h = pkt.push_front(50);
    h.copy_from_slice(&t.header);
    let ip_len = (inner_len + 36) as u16;
    h[16..18].copy_from_slice(&ip_len.to_be_bytes());
    // Summed from the template and the length, not from the header just written: reading
    // its words back right after the narrower writes would wait for them.
    let ip = &t.header[14..34];
    let sum = checksum::add(checksum::add(0, &ip[0..2]), &ip[4..20]);
    let csum = checksum::finish(checksum::add16(sum, ip_len));
    h[24..26].copy_from_slice(&csum.to_be_bytes());
    let sport = tunnel_src_port(hash, t.sport_min, t.sport_max);
    h[34..36].copy_from_slice(&sport.to_be_bytes());
    let udp_len = (inner_len + 16) as u16;
    h[38..40].copy_from_slice(&udp_len.to_be_bytes());
    if t.csum {
        // RFC 768 over the pseudo-header, UDP header, VXLAN header and inner frame.
        let d = pkt.data();
        let mut sum = checksum::pseudo_header_v4(
            [d[26], d[27], d[28], d[29]],
            [d[30], d[31], d[32], d[33]],
            17,
            udp_len,
        );
        sum = checksum::add(sum, &d[34..]);
        let mut c = checksum::finish(sum);
        if c == 0 {
            c = 0xffff;
        }
        pkt.data_mut()[40..42].copy_from_slice(&c.to_be_bytes());
    }
}

struct TunnelMd {
    vni: u32,
    src: u32,
    dst: u32,
    flags: u8,
}

/// Strips Ethernet + IPv4 + UDP + VXLAN, checking what OVS checks (netdev_vxlan_pop_header):
/// the VXLAN flags word must be exactly the I flag and the VNI's reserved byte zero.
fn pop_vxlan(pkt: &mut Packet, layers: &Layers) -> Result<TunnelMd, DropReason> {
    let d = pkt.data();
    let l3 = layers.l3 as usize;
    let l4 = layers.l4 as usize;
    if layers.l3 == u16::MAX || layers.l4 == u16::MAX || d.len() < l4 + 16 {
        return Err(DropReason::BadVxlan);
    }
    let src = u32::from_be_bytes([d[l3 + 12], d[l3 + 13], d[l3 + 14], d[l3 + 15]]);
    let dst = u32::from_be_bytes([d[l3 + 16], d[l3 + 17], d[l3 + 18], d[l3 + 19]]);
    let udp_csum = u16::from_be_bytes([d[l4 + 6], d[l4 + 7]]);
    let vx = &d[l4 + 8..l4 + 16];
    if vx[0..4] != [0x08, 0, 0, 0] || vx[7] != 0 {
        return Err(DropReason::BadVxlan);
    }
    let vni = u32::from_be_bytes([0, vx[4], vx[5], vx[6]]);
    let mut flags = 0;
    if udp_csum != 0 {
        // udp_extract_tnl_md(): a non-zero outer checksum must verify.
        let udp_len = u16::from_be_bytes([d[l4 + 4], d[l4 + 5]]) as usize;
        let seg = d.get(l4..l4 + udp_len).ok_or(DropReason::BadTunnelChecksum)?;
        let src_b = [d[l3 + 12], d[l3 + 13], d[l3 + 14], d[l3 + 15]];
        let dst_b = [d[l3 + 16], d[l3 + 17], d[l3 + 18], d[l3 + 19]];
        let sum = checksum::pseudo_header_v4(src_b, dst_b, 17, udp_len as u16);
        if checksum::finish(checksum::add(sum, seg)) != 0 {
            return Err(DropReason::BadTunnelChecksum);
        }
        flags = tun_flags::CSUM;
    }
    pkt.pull_front(l4 + 16);
    Ok(TunnelMd { vni, src, dst, flags })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::extract::{extract_with_vlan_limit, OVS_DEFAULT_VLAN_LIMIT};

    #[test]
    fn the_layers_after_a_vxlan_push_are_those_parsing_finds() {
        let mut header = [0u8; 50];
        header[12..14].copy_from_slice(&[0x08, 0x00]);
        header[14] = 0x45;
        header[22] = 64;
        header[23] = 17;
        header[26..30].copy_from_slice(&[192, 168, 1, 12]);
        header[30..34].copy_from_slice(&[192, 168, 1, 13]);
        header[36..38].copy_from_slice(&4789u16.to_be_bytes());
        header[42] = 0x08;
        let t = TnlPush {
            header,
            tnl_port: 1,
            out_port: 2,
            sport_min: 32768,
            sport_max: 61000,
            csum: true,
        };
        for inner in [60usize, 64, 1514] {
            let mut frame = vec![0u8; inner];
            frame[12..14].copy_from_slice(&[0x86, 0xdd]);
            let mut pkt = Packet::from_slice(&frame);
            push_vxlan(&mut pkt, &t, 0x1234_5678);
            let mut k = FlowKey::ZERO;
            let parsed = extract_with_vlan_limit(pkt.data(), &mut k, OVS_DEFAULT_VLAN_LIMIT);
            assert_eq!(parsed, VXLAN_LAYERS, "inner frame of {inner} bytes");
            // The outer lengths and both checksums, as a receiver verifies them.
            let d = pkt.data();
            assert_eq!(u16::from_be_bytes([d[16], d[17]]) as usize, inner + 36);
            assert_eq!(u16::from_be_bytes([d[38], d[39]]) as usize, inner + 16);
            assert_eq!(checksum::checksum(&d[14..34]), 0, "IPv4 header checksum");
            let mut pseudo = [0u8; 12];
            pseudo[..8].copy_from_slice(&d[26..34]);
            pseudo[9] = 17;
            pseudo[10..12].copy_from_slice(&d[38..40]);
            let udp = checksum::add(checksum::add(0, &pseudo), &d[34..]);
            assert_eq!(checksum::finish(udp), 0, "UDP checksum");
        }
    }

    struct Outputs(Vec<Vec<u8>>);

    impl Sink for Outputs {
        fn output(&mut self, _port: u32, pkt: &Packet, _origin: super::super::Origin) -> bool {
            self.0.push(pkt.data().to_vec());
            false
        }
    }

    /// An ICMP echo request from 10.0.0.1 to 10.0.0.2, checksums right.
    fn echo() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14..24].copy_from_slice(&[0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1]);
        f[26..34].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        let c = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[34..42].copy_from_slice(&[8, 0, 0, 0, 0, 7, 0, 1]);
        let c = checksum::checksum(&f[34..42]);
        f[36..38].copy_from_slice(&c.to_be_bytes());
        f
    }

    /// Runs `actions` on `frame`, returning the packet's conntrack state after them.
    fn run(ct: &mut Conntrack, frame: &[u8], actions: &[DpAction]) -> (u8, Vec<Vec<u8>>) {
        let mut sink = Outputs(Vec::new());
        let (mut work, mut pool) = (Vec::new(), Vec::new());
        let mut gen = super::super::generated::Generated::default();
        let mut ctx = ExecCtx {
            ct,
            now_ms: 0,
            sink: &mut sink,
            work: &mut work,
            pool: &mut pool,
            gen: &mut gen,
            outputs: 0,
            carried: 0,
            drop: None,
        };
        let mut pkt = Packet::from_slice(frame);
        let mut key = FlowKey::ZERO;
        let layers = extract_with_vlan_limit(frame, &mut key, OVS_DEFAULT_VLAN_LIMIT);
        let mut md = PacketMd::new(1);
        ctx.execute(&mut pkt, &mut md, &key, layers, actions);
        (md.ct.ct_state, sink.0)
    }

    #[test]
    fn a_ct_after_an_ip_rewrite_tracks_the_rewritten_packet() {
        use crate::flow::key::ct_state::{EST, NEW, RPL, TRK};
        let ct = |commit| DpAction::Ct {
            zone: 1,
            commit,
            force: false,
            nat: None,
            mark: None,
            nat_only: None,
        };
        let mut tracker = Conntrack::new(crate::conntrack::CtConfig::default());
        // 10.0.0.1 -> 10.0.0.2 committed; the same packet rewritten to come from .2 to .1 is
        // the reply of that connection, which only a fresh look at the packet can tell.
        let swap = DpAction::SetIpv4 {
            src: Some(0x0a00_0002),
            dst: Some(0x0a00_0001),
            tos: None,
            ttl: None,
            tos_mask: 0,
        };
        let to_reply = DpAction::SetIcmp { v6: false, typ: Some(0), code: None };
        let acts = [ct(true), swap, to_reply, ct(false), DpAction::Output(2)];
        let (st, out) = run(&mut tracker, &echo(), &acts);
        assert_eq!(st, EST | RPL | TRK);
        assert_eq!(checksum::checksum(&out[0][14..34]), 0, "IPv4 checksum fixed");
        // Without the rewrite, both see the request of the connection, replied now.
        let (st, _) = run(&mut tracker, &echo(), &[ct(false), DpAction::Output(2), ct(true)]);
        assert_eq!(st, EST | TRK);
        // A VLAN tag pushed and popped between the two leaves the same packet.
        let tag = DpAction::PushVlan { tpid: 0x8100, tci: 0x1005 };
        let acts = [ct(false), tag, DpAction::Output(3), DpAction::PopVlan, ct(true)];
        assert_eq!(run(&mut tracker, &echo(), &acts).0, EST | TRK);
        let mut fresh = Conntrack::new(crate::conntrack::CtConfig::default());
        assert_eq!(run(&mut fresh, &echo(), &[ct(true), ct(false)]).0, NEW | TRK);
    }

    #[test]
    fn a_tagged_output_is_push_output_pop() {
        let mut tracker = Conntrack::new(crate::conntrack::CtConfig::default());
        let noop = DpAction::SetEth { src: None, dst: None };
        let tagged = echo();
        let mut frames = vec![echo(), echo()[..13].to_vec(), echo()[..14].to_vec()];
        let mut qinq = tagged.clone();
        qinq.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
        frames.push(qinq);
        for frame in frames {
            for (tpid, tci) in [(0x8100, 0x1005), (0x88a8, 0x0fff), (0x0800, 0x0001)] {
                let push = DpAction::PushVlan { tpid, tci };
                let (o2, o3) = (DpAction::Output(2), DpAction::Output(3));
                let fast = [push.clone(), o2.clone(), DpAction::PopVlan, o3.clone()];
                // The same with a no-op in the middle: the general path, action by action.
                let slow = [push, o2, noop.clone(), DpAction::PopVlan, o3];
                let a = run(&mut tracker, &frame, &fast).1;
                let b = run(&mut tracker, &frame, &slow).1;
                assert_eq!(a, b, "{} bytes, tpid {tpid:#x}", frame.len());
                assert_eq!(a.len(), 2);
            }
        }
    }

    #[test]
    fn source_port_in_range() {
        for h in [0u32, 1, 0x8000_0000, u32::MAX] {
            let p = tunnel_src_port(h, 32768, 61000);
            assert!((32768..61000).contains(&p));
        }
    }
}
