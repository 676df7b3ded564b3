//! The NORMAL action: an L2 learning switch per bridge and VLAN, with Open vSwitch's port
//! VLAN semantics (`tag` = access port, `trunks` = allowed VLANs, neither = trunk of all).
//!
//! Learning is a side effect: when the MAC table changes, the caller revalidates cached
//! megaflows (OVS's REV_MAC_LEARNING), so a flow cached while a destination was unknown
//! (flooded) stops flooding once the destination is learned.

use super::trace::NodeType;
use super::{Ctx, PortKind};
use crate::dpif::odp::DropReason;
use crate::flow::key::{VLAN_CFI, VLAN_VID_MASK};
use std::collections::HashMap;

/// Learned (VLAN, MAC) -> OpenFlow port.
#[derive(Default, Debug, Clone)]
pub struct MacTable {
    entries: HashMap<(u16, [u8; 6]), u32>,
}

impl MacTable {
    /// Records `mac` on `port` in `vlan`. Returns true when the table changed.
    pub fn learn(&mut self, vlan: u16, mac: [u8; 6], port: u32) -> bool {
        self.entries.insert((vlan, mac), port) != Some(port)
    }

    /// The port `mac` was learned on in `vlan`.
    pub fn lookup(&self, vlan: u16, mac: &[u8; 6]) -> Option<u32> {
        self.entries.get(&(vlan, *mac)).copied()
    }

    /// Every entry, for `fdb/show`.
    pub fn iter(&self) -> impl Iterator<Item = (u16, [u8; 6], u32)> + '_ {
        self.entries.iter().map(|((v, m), p)| (*v, *m, *p))
    }

    /// Forgets everything.
    pub fn flush(&mut self) {
        self.entries.clear();
    }
}

fn is_multicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0
}

/// 01:80:c2:00:00:00 through 01:80:c2:00:00:0f (eth_addr_is_reserved): STP, LACP, ...
fn is_reserved(mac: &[u8; 6]) -> bool {
    mac[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && mac[5] & 0xf0 == 0
}

/// True when a port carries `vlan` (xbundle_includes_vlan).
fn includes_vlan(tag: Option<u16>, trunks: &[u16], vlan: u16) -> bool {
    match tag {
        Some(t) => t == vlan,
        None => trunks.is_empty() || trunks.contains(&vlan),
    }
}

impl Ctx<'_> {
    /// xlate_normal().
    pub(crate) fn xlate_normal(&mut self) {
        self.wc.dl_src = [0xff; 6];
        self.wc.dl_dst = [0xff; 6];
        self.wc.vlan_tci |= VLAN_VID_MASK | VLAN_CFI;
        let in_ofport = self.flow.in_port;
        let Some(inp) = self.bridge().port(in_ofport).cloned() else {
            self.note_drop(DropReason::NoSuchPort);
            return;
        };
        // is_admissible(): reserved multicast is not forwarded (no forward_bpdu).
        if is_reserved(&self.flow.dl_dst) {
            if self.outputs == 0 {
                self.note_drop(DropReason::NormalReservedMulticast);
            }
            return;
        }
        // Input VLAN (xvlan_input_translate / input_vid_is_valid).
        let vid =
            if self.flow.vlan_tci & VLAN_CFI != 0 { self.flow.vlan_tci & VLAN_VID_MASK } else { 0 };
        let vlan = match inp.tag {
            Some(t) => {
                if vid != 0 {
                    if self.outputs == 0 {
                        self.note_drop(DropReason::NormalVlanNotAllowed);
                    }
                    return;
                }
                t
            }
            None => {
                if !inp.trunks.is_empty() && !inp.trunks.contains(&vid) {
                    if self.outputs == 0 {
                        self.note_drop(DropReason::NormalVlanNotAllowed);
                    }
                    return;
                }
                vid
            }
        };
        // is_gratuitous_arp(): learning looks at whether an ARP is gratuitous.
        if self.flow.is_arp() && self.flow.dl_dst == [0xff; 6] {
            self.wc.nw_proto = 0xff;
            if self.flow.nw_proto == 1 {
                self.wc.nw_src = u32::MAX;
                self.wc.nw_dst = u32::MAX;
            }
        }
        let src = self.flow.dl_src;
        if self.side_effects && !is_multicast(&src) {
            let b = &mut self.of.bridges[self.bridge];
            if b.mac_table.learn(vlan, src, in_ofport) {
                self.out.macs_learned.push((self.bridge, vlan, src));
            }
        }
        let dst = self.flow.dl_dst;
        if !is_multicast(&dst) {
            self.out.mac_deps.push((self.bridge, vlan, dst));
            if let Some(p) = self.bridge().mac_table.lookup(vlan, &dst) {
                if p == in_ofport {
                    self.report(NodeType::Detail, || "learned port is input port, dropping".into());
                    if self.outputs == 0 {
                        self.note_drop(DropReason::NormalLearnedOnInput);
                    }
                } else {
                    self.report(NodeType::Detail, || "forwarding to learned port".into());
                    self.output_normal(p, vlan);
                }
                return;
            }
        }
        // Without multicast snooping, broadcast and multicast are never learned either.
        self.report(NodeType::Detail, || "no learned MAC for destination, flooding".into());
        // Flood within the VLAN.
        // xlate_normal_flood() walks the bridge's bundles, newest first: the LOCAL port, then
        // the ports from the last added to the first.
        let targets: Vec<u32> = self
            .bridge()
            .ports
            .iter()
            .rev()
            .filter(|p| p.ofport != in_ofport && includes_vlan(p.tag, &p.trunks, vlan))
            .map(|p| p.ofport)
            .collect();
        for p in targets {
            self.output_normal(p, vlan);
        }
        if self.outputs == 0 && self.out.drop.is_none() {
            self.note_drop(DropReason::ActionDrop);
        }
    }

    /// output_normal(): tag or untag for the output port, send, restore.
    fn output_normal(&mut self, ofport: u32, vlan: u16) {
        let Some(p) = self.bridge().port(ofport).cloned() else { return };
        if !includes_vlan(p.tag, &p.trunks, vlan) {
            return;
        }
        let saved = (self.flow.vlan_tci, self.flow.vlan_tpid);
        let pcp = self.flow.vlan_tci & 0xe000;
        if p.tag.is_some() || vlan == 0 {
            self.flow.vlan_tci = 0;
            self.flow.vlan_tpid = 0;
        } else {
            self.flow.vlan_tci = vlan | VLAN_CFI | pcp;
            if self.flow.vlan_tpid == 0 {
                self.flow.vlan_tpid = 0x8100;
            }
        }
        let _ = matches!(p.kind, PortKind::Patch { .. });
        self.compose_output(ofport);
        (self.flow.vlan_tci, self.flow.vlan_tpid) = saved;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_multicast() {
        assert!(is_reserved(&[0x01, 0x80, 0xc2, 0, 0, 0x0e]));
        assert!(!is_reserved(&[0x01, 0x80, 0xc2, 0, 0, 0x10]));
        assert!(is_multicast(&[0xff; 6]));
        assert!(!is_multicast(&[0x52, 0x54, 0, 0, 0, 1]));
    }

    #[test]
    fn vlan_membership() {
        assert!(includes_vlan(Some(5), &[], 5));
        assert!(!includes_vlan(Some(5), &[], 6));
        assert!(includes_vlan(None, &[], 100));
        assert!(includes_vlan(None, &[1, 2], 2));
        assert!(!includes_vlan(None, &[1, 2], 3));
    }

    #[test]
    fn learning_reports_changes() {
        let mut t = MacTable::default();
        let m = [0x52, 0x54, 0, 0, 0, 1];
        assert!(t.learn(1, m, 3));
        assert!(!t.learn(1, m, 3));
        assert!(t.learn(1, m, 4));
        assert_eq!(t.lookup(1, &m), Some(4));
        assert_eq!(t.lookup(2, &m), None);
    }
}
