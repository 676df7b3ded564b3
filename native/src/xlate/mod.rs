//! Translation: the slow path. Given the datapath key of a packet that missed the caches,
//! walk the OpenFlow pipeline of the node — tables, resubmits, patch ports into other
//! bridges, NORMAL, learn, conntrack, tunnel output through the underlay — and produce the
//! datapath actions of one megaflow plus the mask of every key bit that was read.
//!
//! Invariants (the megaflow contract):
//! - every bit of the datapath key that influenced the result is set in `XlateOut::wc`;
//!   the classifier, NORMAL, prerequisite checks and actions that read fields all add theirs.
//! - the datapath actions, executed on any packet that matches `key & wc`, do exactly what
//!   this translation did: field changes are committed as `set(...)` actions only when they
//!   differ from what the packet already holds (`base`), in Open vSwitch's commit order
//!   (Ethernet, L3, L4, ICMP, VLAN).
//! - side effects (MAC learning, `learn()`) happen only when `side_effects` is set, so
//!   revalidation can re-translate safely.
//!
//! The structure follows ofproto-dpif-xlate.c of Open vSwitch 3.1; behaviour that users can
//! see cites it at the line that depends on it.

pub mod netns;
pub mod normal;
pub mod trace;
pub mod tunnel;

use crate::dpif::odp::{DpAction, DropReason, TnlPush};
use crate::flow::key::{ct_state as cts, nw_frag, tun_flags, VLAN_CFI, VLAN_VID_MASK};
use crate::flow::{FieldId, FlowKey, Subfield};
use crate::ofproto::action::{
    port, Action, CtAction, CtZone, FlowMod, FlowModCommand, LearnPart, LearnSpec, Match, Spelling,
};
use crate::ofproto::format::{format_match, ActionStyle};
use crate::ofproto::parse::PortNames;
use crate::ofproto::table::{Rule, Tables};
use normal::MacTable;
use std::collections::HashMap;
use std::sync::Arc;
use trace::{NodeType, Trace};
use tunnel::TunnelConfig;

/// How a table lookup was reached, which decides whether it counts against the translation
/// limits (xlate_table_action(): resource check, `resubmits`, and `depth` only for a lookup
/// in the same or an earlier table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lookup {
    /// The first lookup of a translation (or of a thawed one): no limits.
    Top,
    /// resubmit, goto_table, a patch port, a tunnel's underlay bridge.
    Nested,
}

/// Open vSwitch's limits: translation depth and total resubmits.
pub const MAX_DEPTH: u32 = 64;
pub const MAX_RESUBMITS: u32 = 64 * 64;

/// What a bridge port is.
#[derive(Clone, Debug)]
pub enum PortKind {
    /// A port with a datapath port behind it (VM, NIC, internal port).
    Netdev,
    /// The bridge's own internal port (65534).
    Local,
    /// A patch port: output continues in `peer_bridge` as if received on `peer_ofport`.
    Patch { peer_bridge: usize, peer_ofport: u32 },
    /// A VXLAN tunnel port.
    Vxlan(TunnelConfig),
    /// A port carrying interface `iface` of emulated namespace `ns` (a qr-, sg-, qg- or fg-
    /// port): frames sent to it enter the namespace, in the same translation.
    NsIface { ns: usize, iface: String },
}

/// One port of a bridge.
#[derive(Clone, Debug)]
pub struct BridgePort {
    pub name: String,
    pub ofport: u32,
    pub kind: PortKind,
    pub dp_port: Option<u32>, // None for patch and tunnel ports
    pub tag: Option<u16>,     // access VLAN (ovs-vsctl `tag`)
    pub trunks: Vec<u16>,     // allowed VLANs when trunking; empty = all
}

/// One bridge: its ports, OpenFlow tables and MAC learning table.
pub struct Bridge {
    pub name: String,
    pub mac: [u8; 6],
    pub ip: Option<(u32, u8)>, // underlay address and prefix length (native tunnelling)
    pub standalone: bool,
    pub ports: Vec<BridgePort>,
    pub by_ofport: HashMap<u32, usize>,
    pub tables: Tables,
    pub mac_table: MacTable,
}

impl Bridge {
    /// The port with OpenFlow number `ofport`.
    #[inline]
    pub fn port(&self, ofport: u32) -> Option<&BridgePort> {
        self.by_ofport.get(&ofport).map(|i| &self.ports[*i])
    }

    /// The port named `name`.
    pub fn port_by_name(&self, name: &str) -> Option<&BridgePort> {
        self.ports.iter().find(|p| p.name == name)
    }
}

impl PortNames for Bridge {
    fn port_no(&self, name: &str) -> Option<u32> {
        self.port_by_name(name).map(|p| p.ofport)
    }
    fn port_name(&self, no: u32) -> Option<String> {
        self.port(no).map(|p| p.name.clone())
    }
}

/// What a datapath port number stands for.
#[derive(Clone, Debug)]
pub enum DpPortKind {
    /// A bridge port with a netdev (including LOCAL).
    Bridge { bridge: usize, ofport: u32 },
    /// The tunnel vport that decapsulated packets arrive on (`vxlan_sys_4789`).
    TunnelVport { dst_port: u16 },
    /// A multi-node scenario's underlay NIC.
    Underlay,
    /// A number no port has (datapath port numbers are sparse, as OVS picks them).
    Unused,
}

/// One datapath port.
#[derive(Clone, Debug)]
pub struct DpPort {
    pub name: String,
    pub kind: DpPortKind,
}

/// A route for native tunnelling (`ovs/route/add PREFIX BRIDGE [GW]`).
#[derive(Clone, Debug)]
pub struct Route {
    pub prefix: u32,
    pub plen: u8,
    pub bridge: usize,
    pub gw: Option<u32>,
}

/// How tunnel packets reach the wire on this node.
#[derive(Clone, Debug, Default)]
pub struct Underlay {
    /// One-node scenarios: routes and neighbours over underlay bridges (OVS native tunnels).
    pub routes: Vec<Route>,
    pub neighbors: HashMap<(usize, u32), [u8; 6]>, // (bridge, ip) -> mac
    /// Multi-node scenarios: the node's own underlay NIC.
    pub node: Option<NodeUnderlay>,
}

/// A node's underlay NIC in a multi-node scenario.
#[derive(Clone, Debug)]
pub struct NodeUnderlay {
    pub ip: u32,
    pub mac: [u8; 6],
    pub dp_port: u32,
    /// Underlay IP -> MAC of every other node (the emulated fabric's ARP table).
    pub peers: HashMap<u32, [u8; 6]>,
}

/// The state frozen at a recirculation (`ct(table=N)`), restored when the packet comes back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frozen {
    pub bridge: usize,
    pub table: u8,
    pub in_port: u32, // OpenFlow port
    pub regs: [u32; 8],
    pub metadata: u64,
    pub tun_id: u64,
    pub tun_src: u32,
    pub tun_dst: u32,
    pub tun_flags: u8,
    /// For a controller continuation: the rule whose remaining actions are frozen (0 for a
    /// conntrack recirculation).
    pub continuation: u64,
    /// A namespace's conntrack recirculation: where it resumes.
    pub ns: Option<NsResume>,
}

/// Where a namespace's conntrack recirculation resumes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NsResume {
    /// Routing (after the destination manips of PREROUTING) of a packet received on `iif`.
    Route { ns: usize, iif: String },
    /// Transmission out of `oif`, the destination MAC set (a packet released from a
    /// neighbour queue, an ARP request the namespace sends).
    Transmit { ns: usize, oif: String },
    /// Output to `next_hop` through `oif`: the neighbour is looked up (after the source
    /// manips of POSTROUTING, or for an ICMP error the namespace generated).
    Output { ns: usize, oif: String, next_hop: u32 },
}

/// Recirculation ids, one per distinct frozen state, numbered from 1 as OVS does.
#[derive(Default)]
pub struct RecircTable {
    by_state: HashMap<Frozen, u32>,
    states: Vec<Frozen>,
}

impl RecircTable {
    /// The id for `f`, allocating one the first time.
    pub fn id_for(&mut self, f: Frozen) -> u32 {
        if let Some(id) = self.by_state.get(&f) {
            return *id;
        }
        self.states.push(f.clone());
        let id = self.states.len() as u32;
        self.by_state.insert(f, id);
        id
    }

    /// The state for `id`.
    pub fn get(&self, id: u32) -> Option<&Frozen> {
        self.states.get((id as usize).checked_sub(1)?)
    }
}

/// All that translation reads and learns, for one node.
pub struct Ofproto {
    pub bridges: Vec<Bridge>,
    pub dp_ports: Vec<DpPort>,
    pub recirc: RecircTable,
    pub next_rule_id: u64,
    pub underlay: Underlay,
    pub now_ms: u64, // the datapath clock (replay: capture time)
    /// How actions print in traces and dumps: OpenFlow 1.5 normalised, or as installed over
    /// OpenFlow 1.0.
    pub action_style: ActionStyle,
    /// Emulated router namespaces (qrouter-, snat-, fip-).
    pub namespaces: Vec<crate::netns::Namespace>,
}

/// A MAC-learning entry: (bridge index, VLAN, MAC).
pub type MacDep = (usize, u16, [u8; 6]);

/// The result of one translation.
#[derive(Debug, Default)]
pub struct XlateOut {
    pub actions: Vec<DpAction>,
    /// The fields translation examined (what ofproto/trace prints as `Megaflow:`).
    pub wc: FlowKey,
    /// The mask the datapath installs: `wc`, plus an exact match on "no tag" for each VLAN
    /// tag the packet does not have (as the datapath key format implies: a flow key without
    /// a vlan() attribute matches untagged packets only).
    pub dp_mask: FlowKey,
    /// Rules the packet went through (their counters get the megaflow's statistics), each
    /// with the bytes its packets carry beyond the input packet (the VXLAN header, for the
    /// underlay bridge's rules).
    pub rules: Vec<(Arc<Rule>, u16)>,
    /// Set when the actions output nothing: why.
    pub drop: Option<DropReason>,
    /// The OpenFlow tables changed (learn): cached megaflows must be revalidated.
    pub tables_changed: bool,
    /// A namespace's neighbour table changed: cached megaflows must be revalidated.
    pub macs_changed: bool,
    /// The MAC-learning entries NORMAL looked up for the destination (hit or miss): the
    /// decision depends on them, so the megaflow is revalidated when one of them changes.
    pub mac_deps: Vec<MacDep>,
    /// The MAC-learning entries this translation learned or moved.
    pub macs_learned: Vec<MacDep>,
    /// Flows installed by `learn()` (bridge, flow-mod): packets that later hit this megaflow
    /// refresh them, as OVS's xlate cache does for learn actions.
    pub learned: Vec<(usize, FlowMod)>,
    /// Recirculation ids this translation freezes (ct with a table), in order.
    pub recircs: Vec<u32>,
    /// OVS would run this flow in its userspace slow path (it rewrites ARP fields, which its
    /// datapath cannot): dumps show `userspace(pid=0,slow_path(action))` as its actions.
    pub slow_path: bool,
    /// When tracing: which step made translation read which key bits (`--explain`), as
    /// (the bits that step added to the megaflow mask, the step).
    pub explain: Vec<(FlowKey, String)>,
    /// The flow as the pipeline first saw it (OpenFlow in_port, thawed registers), and as it
    /// was when translation ended (the trace's `Flow:` and `Final flow:`).
    pub initial_flow: FlowKey,
    pub final_flow: FlowKey,
}

/// Options of one translation.
#[derive(Clone, Copy, Debug)]
pub struct XlateIn {
    /// Apply side effects (MAC learning, learn()): true for real packets, false for
    /// revalidation.
    pub side_effects: bool,
}

pub(crate) struct Ctx<'a> {
    pub(crate) of: &'a mut Ofproto,
    pub(crate) flow: FlowKey,
    pub(crate) base: FlowKey,
    pub(crate) wc: FlowKey,
    pub(crate) bridge: usize,
    pub(crate) odp: Vec<DpAction>,
    depth: u32,
    resubmits: u32,
    exit: bool,
    /// A translation error (too deep, too many resubmits): the packet is dropped whole.
    error: Option<DropReason>,
    side_effects: bool,
    table_id: u8,
    outputs: u32,
    pub(crate) out: XlateOut,
    dp_in_port: u32,
    /// The recorder, when tracing; every hook costs one `if let` otherwise.
    pub(crate) trace: Option<&'a mut Trace>,
    /// Print port names instead of numbers in the trace.
    names: bool,
    /// `dec_ttl` hit a TTL of 0 or 1: the rest of the current action list is skipped.
    ttl_stop: bool,
    /// The key the upcall was made with.
    upcall: FlowKey,
    /// The match of the rule whose actions run (OVS prints some actions according to it).
    rule_match: Match,
    /// Bytes the packet carries beyond the input packet while in this part of the pipeline
    /// (50 inside a tunnel's underlay bridge).
    extra_bytes: u16,
    /// The rule whose actions run: id and cookie.
    rule_id: u64,
    rule_cookie: u64,
}

/// Translates a packet with datapath key `key` (in_port = datapath port).
pub fn translate(of: &mut Ofproto, key: &FlowKey, xin: XlateIn) -> XlateOut {
    translate_traced(of, key, xin, None, false)
}

/// As `translate`, recording every step into `trace` when given.
pub fn translate_traced(
    of: &mut Ofproto,
    key: &FlowKey,
    xin: XlateIn,
    trace: Option<&mut Trace>,
    names: bool,
) -> XlateOut {
    let mut ctx = Ctx {
        of,
        flow: *key,
        base: *key,
        wc: FlowKey::ZERO,
        bridge: 0,
        odp: Vec::new(),
        depth: 0,
        resubmits: 0,
        exit: false,
        error: None,
        side_effects: xin.side_effects,
        table_id: 0,
        outputs: 0,
        out: XlateOut::default(),
        dp_in_port: key.in_port,
        trace,
        names,
        ttl_stop: false,
        upcall: *key,
        rule_match: Match::catchall(),
        extra_bytes: 0,
        rule_id: 0,
        rule_cookie: 0,
    };
    ctx.wc_init();
    ctx.run();
    ctx.finish()
}

impl<'a> Ctx<'a> {
    /// Appends a node to the trace, if tracing.
    #[inline]
    pub(crate) fn report(&mut self, ty: NodeType, text: impl FnOnce() -> String) {
        if let Some(t) = self.trace.as_deref_mut() {
            t.report(ty, text());
        }
    }

    /// Opens a node whose children become the current list, if tracing.
    #[inline]
    fn enter(&mut self, ty: NodeType, text: impl FnOnce() -> String) -> Option<Vec<usize>> {
        let flow = &self.flow;
        self.trace.as_deref_mut().map(|t| {
            // A bridge (or namespace) keeps the flow it was entered with.
            let entered = (ty == NodeType::Bridge).then(|| Box::new(*flow));
            t.enter_with_flow(ty, text(), entered)
        })
    }

    #[inline]
    fn leave(&mut self, saved: Option<Vec<usize>>) {
        if let (Some(t), Some(s)) = (self.trace.as_deref_mut(), saved) {
            t.leave(s);
        }
    }

    /// When tracing, attributes the mask bits added since `before` (less those that steps
    /// recorded since `since` already claimed) to `why`.
    fn note_wc(&mut self, before: &FlowKey, since: usize, why: impl FnOnce(&Self) -> String) {
        if self.trace.is_none() {
            return;
        }
        let mut delta = FlowKey::ZERO;
        {
            let (d, w, b) = (delta.words_mut(), self.wc.words(), before.words());
            for i in 0..d.len() {
                d[i] = w[i] & !b[i];
            }
        }
        for (claimed, _) in &self.out.explain[since..] {
            let (d, c) = (delta.words_mut(), claimed.words());
            for i in 0..d.len() {
                d[i] &= !c[i];
            }
        }
        if !delta.is_zero() {
            let text = why(self);
            self.out.explain.push((delta, text));
        }
    }

    fn where_(&self) -> String {
        format!("bridge(\"{}\") table {}", self.of.bridges[self.bridge].name, self.table_id)
    }

    fn action_text(&self, a: &Action) -> String {
        let b = &self.of.bridges[self.bridge];
        crate::ofproto::format::format_actions_with_match(
            std::slice::from_ref(a),
            &self.rule_match,
            b,
            self.names,
            self.of.action_style,
        )
    }

    fn wc_init(&mut self) {
        // xlate_wc_init(): in_port, dl_type and recirc_id are always examined; nw_frag for IP.
        self.wc.in_port = u32::MAX;
        self.wc.recirc_id = u32::MAX;
        self.wc.dl_type = u16::MAX;
        if self.flow.is_ip_any() {
            self.wc.nw_frag |= nw_frag::MASK;
        }
        // tnl_wc_init(): a tunnelled packet matches its tunnel id, addresses and flags.
        if self.flow.tun_flags & tun_flags::PRESENT != 0 {
            self.wc.tun_id = u64::MAX;
            self.wc.tun_src = u32::MAX;
            self.wc.tun_dst = u32::MAX;
            self.wc.tun_flags =
                tun_flags::PRESENT | tun_flags::KEY | tun_flags::DF | tun_flags::CSUM;
        }
    }

    fn run(&mut self) {
        self.note_wc(&FlowKey::ZERO, 0, |_| {
            "always examined: the input port, the recirculation id, the EtherType, the fragment \
             bits of IP and the tunnel metadata of a tunnelled packet"
                .to_string()
        });
        // Fragment handling "normal" (the default): transport ports of every fragment, the
        // first included, are treated as unavailable (xlate_actions(), OFPUTIL_FRAG_NORMAL).
        if self.flow.is_ip_any() && self.flow.nw_frag & nw_frag::ANY != 0 {
            self.flow.tp_src = 0;
            self.flow.tp_dst = 0;
            self.base.tp_src = 0;
            self.base.tp_dst = 0;
        }
        let in_port = self.flow.in_port;
        self.out.initial_flow = self.flow;
        if self.flow.recirc_id != 0 {
            let Some(fz) = self.of.recirc.get(self.flow.recirc_id).cloned() else {
                self.out.drop = Some(DropReason::NoMatch);
                return;
            };
            self.bridge = fz.bridge;
            self.flow.in_port = fz.in_port;
            self.flow.regs = fz.regs;
            self.flow.metadata = fz.metadata;
            self.flow.tun_id = fz.tun_id;
            self.flow.tun_src = fz.tun_src;
            self.flow.tun_dst = fz.tun_dst;
            self.flow.tun_flags = fz.tun_flags;
            self.base = self.flow;
            self.table_id = fz.table;
            self.out.initial_flow = self.flow;
            if let Some(resume) = &fz.ns {
                self.ns_thaw(resume);
                return;
            }
            let name = self.of.bridges[self.bridge].name.clone();
            let b = self.enter(NodeType::Bridge, || format!("bridge(\"{name}\")"));
            let th = self.enter(NodeType::Thaw, || "thaw".to_string());
            self.report(NodeType::Thaw, || format!("Resuming from table {}", fz.table));
            self.leave(th);
            self.xlate_table_top(fz.table);
            self.leave(b);
            return;
        }
        let Some(dp) = self.of.dp_ports.get(in_port as usize).cloned() else {
            self.out.drop = Some(DropReason::NoSuchPort);
            return;
        };
        match dp.kind {
            DpPortKind::Bridge { bridge, ofport } => {
                self.bridge = bridge;
                self.flow.in_port = ofport;
                self.base.in_port = ofport;
                self.out.initial_flow = self.flow;
                let name = self.of.bridges[bridge].name.clone();
                let b = self.enter(NodeType::Bridge, || format!("bridge(\"{name}\")"));
                self.xlate_table_top(0);
                self.leave(b);
            }
            DpPortKind::TunnelVport { dst_port } => {
                let Some((bridge, ofport)) = tunnel::receive_port(self.of, &self.flow, dst_port)
                else {
                    self.out.drop = Some(DropReason::TunnelNoPort);
                    return;
                };
                self.bridge = bridge;
                self.flow.in_port = ofport;
                self.base.in_port = ofport;
                self.out.initial_flow = self.flow;
                let name = self.of.bridges[bridge].name.clone();
                let b = self.enter(NodeType::Bridge, || format!("bridge(\"{name}\")"));
                self.xlate_table_top(0);
                self.leave(b);
            }
            DpPortKind::Unused => {
                self.out.drop = Some(DropReason::NoSuchPort);
            }
            DpPortKind::Underlay => {
                // A multi-node underlay NIC: VXLAN to our address is decapsulated, anything
                // else has nowhere to go.
                match tunnel::underlay_terminate(self.of, &self.flow, &mut self.wc) {
                    Some(vport) => {
                        self.odp.push(DpAction::TnlPop(vport));
                        self.outputs += 1;
                    }
                    None => self.out.drop = Some(DropReason::TunnelNoPort),
                }
            }
        }
    }

    fn finish(mut self) -> XlateOut {
        self.out.final_flow = self.flow;
        // xlate_wc_finish(): registers and metadata are not packet fields.
        self.wc.regs = [0; 8];
        self.wc.metadata = 0;
        // ICMP type and code are 8 bits in the datapath.
        let u = self.upcall;
        if (u.is_ipv4() && u.nw_proto == 1) || (u.is_ipv6() && u.nw_proto == 58) {
            self.wc.tp_src &= 0xff;
            self.wc.tp_dst &= 0xff;
        }
        // A matched TCI always matches the "present" bit; a tag the packet does not have is
        // not matched at all.
        for (tci, tpid, ptci) in [
            (&mut self.wc.vlan_tci, &mut self.wc.vlan_tpid, u.vlan_tci),
            (&mut self.wc.vlan2_tci, &mut self.wc.vlan2_tpid, u.vlan2_tci),
        ] {
            if ptci & VLAN_CFI == 0 {
                *tci = 0;
                *tpid = 0;
            } else if *tci != 0 {
                *tci |= VLAN_CFI;
            }
        }
        // Later fragments have no ports, whatever the classifier looked at.
        if u.nw_frag & nw_frag::LATER != 0 {
            self.wc.tp_src = 0;
            self.wc.tp_dst = 0;
        }
        self.wc.in_port = u32::MAX;
        // Keep only what the datapath key can hold: tunnel fields only for tunnelled packets.
        if self.flow_was_tunnelled() {
            self.wc.tun_flags |= tun_flags::PRESENT;
        } else {
            self.wc.tun_id = 0;
            self.wc.tun_src = 0;
            self.wc.tun_dst = 0;
            self.wc.tun_flags = tun_flags::PRESENT;
        }
        self.wc.in_port = u32::MAX;
        let _ = self.dp_in_port;
        if let Some(e) = self.error {
            // "Translation failed (...), packet is dropped."
            self.odp.clear();
            self.outputs = 0;
            self.out.drop = Some(e);
        }
        if self.outputs == 0 && self.out.drop.is_none() {
            self.out.drop = Some(DropReason::ActionDrop);
        }
        if self.outputs > 0 {
            self.out.drop = None;
        }
        self.out.actions = std::mem::take(&mut self.odp);
        self.out.wc = self.wc;
        let mut dp = self.wc;
        if u.vlan_tci & VLAN_CFI == 0 {
            dp.vlan_tci = 0xffff;
            dp.vlan_tpid = 0xffff;
        } else if u.vlan2_tci & VLAN_CFI == 0 {
            dp.vlan2_tci = 0xffff;
            dp.vlan2_tpid = 0xffff;
        }
        self.out.dp_mask = dp;
        self.out
    }

    fn flow_was_tunnelled(&self) -> bool {
        self.wc.tun_id != 0 || self.wc.tun_src != 0 || self.wc.tun_dst != 0
    }

    #[inline]
    fn bridge(&self) -> &Bridge {
        &self.of.bridges[self.bridge]
    }

    fn note_drop(&mut self, r: DropReason) {
        self.out.drop = Some(r);
    }

    /// Looks up `table` and runs the winning rule's actions.
    fn xlate_table(&mut self, table: u8) {
        self.xlate_table_from(table, Lookup::Nested, None)
    }

    /// The first lookup of a translation.
    fn xlate_table_top(&mut self, table: u8) {
        self.xlate_table_from(table, Lookup::Top, None)
    }

    /// As `xlate_table`, looking up with `lookup_port` as the input port when given.
    fn xlate_table_from(&mut self, table: u8, how: Lookup, lookup_port: Option<u32>) {
        if self.error.is_some() {
            return;
        }
        let nested = how == Lookup::Nested;
        // xlate_recursively(): only a lookup in the same or an earlier table goes deeper.
        let deepens = nested && table <= self.table_id;
        if nested && self.depth >= MAX_DEPTH {
            // "over max translation depth 64": translation fails, the packet is dropped.
            self.error = Some(DropReason::RecursionTooDeep);
            self.exit = true;
            return;
        }
        if nested && self.resubmits >= MAX_RESUBMITS {
            self.error = Some(DropReason::TooManyResubmits);
            self.exit = true;
            return;
        }
        let real_port = self.flow.in_port;
        if let Some(p) = lookup_port {
            self.flow.in_port = p;
        }
        let wc_before = self.wc;
        let since = self.out.explain.len();
        let rule = {
            let b = &self.of.bridges[self.bridge];
            b.tables.lookup(table, &self.flow, Some(&mut self.wc)).cloned()
        };
        self.flow.in_port = real_port;
        if self.trace.is_some() {
            let bname = self.of.bridges[self.bridge].name.clone();
            let what = match &rule {
                Some(r) => {
                    let m = format_match(&r.mat, r.priority, &self.of.bridges[self.bridge], false);
                    format!("lookup, matched \"{m}\"")
                }
                None => "lookup, no match".to_string(),
            };
            self.note_wc(&wc_before, since, |_| {
                format!("bridge(\"{bname}\") table {table} {what}")
            });
        }
        let Some(rule) = rule else {
            // Table miss: with no controller, OVS drops (secure fail mode) — a standalone
            // bridge with no flows at all acts as a NORMAL switch.
            if self.bridge().standalone && self.bridge().tables.is_empty() {
                self.xlate_normal();
            } else {
                let t = self.enter(NodeType::Table, || format!("{table:2}. No match."));
                self.report(NodeType::Action, || "drop".to_string());
                self.leave(t);
                self.note_drop(DropReason::NoMatch);
            }
            return;
        };
        let tnode = if self.trace.is_some() {
            let b = &self.of.bridges[self.bridge];
            let mut s = format!("{table:2}. ");
            s.push_str(&format_match(&rule.mat, 32768, b, self.names));
            if !s.ends_with(' ') {
                s.push_str(", ");
            }
            s.push_str(&format!("priority {}", rule.priority));
            if rule.cookie != 0 {
                s.push_str(&format!(", cookie {:#x}", rule.cookie));
            }
            self.enter(NodeType::Table, || s)
        } else {
            None
        };
        self.out.rules.push((rule.clone(), self.extra_bytes));
        if nested {
            self.resubmits += 1;
        }
        if deepens {
            self.depth += 1;
        }
        let old_table = self.table_id;
        self.table_id = table;
        let old_match = std::mem::replace(&mut self.rule_match, rule.mat);
        let old_rule = (self.rule_id, self.rule_cookie);
        (self.rule_id, self.rule_cookie) = (rule.id, rule.cookie);
        self.do_actions(&rule.actions);
        (self.rule_id, self.rule_cookie) = old_rule;
        self.rule_match = old_match;
        if rule.actions.is_empty() {
            self.report(NodeType::Action, || "drop".to_string());
        }
        self.table_id = old_table;
        if deepens {
            self.depth -= 1;
        }
        self.leave(tnode);
    }

    fn do_actions(&mut self, actions: &[Action]) {
        for a in actions {
            if self.exit {
                break;
            }
            let explain_from = if self.trace.is_some() {
                let text = self.action_text(a);
                self.report(NodeType::Action, || text);
                Some((self.wc, self.out.explain.len(), self.where_()))
            } else {
                None
            };
            self.do_action(a);
            if let Some((before, since, at)) = explain_from {
                let text = self.action_text(a);
                self.note_wc(&before, since, |_| format!("{at}: action {text}"));
            }
            if self.ttl_stop {
                self.ttl_stop = false;
                return;
            }
        }
    }

    fn do_action(&mut self, a: &Action) {
        {
            match a {
                Action::Output { port: p, .. } => self.xlate_output(*p),
                Action::OutputReg(sf) => {
                    sf.unwildcard(&mut self.wc);
                    let p = sf.get(&self.flow) as u32;
                    self.xlate_output(p);
                }
                Action::GotoTable(t) => {
                    self.xlate_table(*t);
                }
                Action::Resubmit { in_port, table, ct } => {
                    let _ = ct;
                    // xlate_table_action(): the other port is used for the lookup only; the
                    // actions run with the real in_port, so NORMAL and IN_PORT behave.
                    let lookup_port = in_port.filter(|p| *p != port::IN_PORT);
                    let t = table.unwrap_or(self.table_id);
                    self.xlate_table_from(t, Lookup::Nested, lookup_port);
                }
                Action::SetField { field, value, mask, spelling } => {
                    self.set_field(*field, *value, *mask, *spelling);
                }
                Action::Move { src, dst } => {
                    src.unwildcard(&mut self.wc);
                    dst.unwildcard(&mut self.wc);
                    let v = src.get(&self.flow);
                    dst.set(&mut self.flow, v);
                    if self.trace.is_some() {
                        // xlate_report_subfield(): the whole field prints as its type, a
                        // part of it as hex.
                        let f = dst.field.field();
                        let value = if dst.ofs == 0 && dst.n_bits >= f.width {
                            let b = &self.of.bridges[self.bridge];
                            crate::ofproto::format::format_value(
                                dst.field,
                                f.get(&self.flow),
                                f.all_ones(),
                                b,
                                self.names,
                            )
                        } else {
                            format!("{:#x}", dst.get(&self.flow))
                        };
                        let name = crate::ofproto::format::format_subfield(dst);
                        self.report(NodeType::Detail, || format!("{name} is now {value}"));
                    }
                }
                Action::PushVlan(tpid) => {
                    // OFPACT_PUSH_VLAN: the outer tags shift in; the new one has VID 0.
                    if self.flow.vlan_tci & VLAN_CFI != 0 {
                        self.wc.vlan_tci |= VLAN_CFI;
                        if self.flow.vlan2_tci & VLAN_CFI != 0 {
                            self.wc.vlan2_tci |= VLAN_CFI;
                        }
                    } else {
                        self.wc.vlan_tci |= VLAN_CFI;
                    }
                    self.flow.vlan2_tci = self.flow.vlan_tci;
                    self.flow.vlan2_tpid = self.flow.vlan_tpid;
                    self.flow.vlan_tpid = *tpid;
                    self.flow.vlan_tci = VLAN_CFI;
                }
                Action::PopVlan { .. } => {
                    // flow_pop_vlan(): the inner tag becomes the outer one.
                    self.wc.vlan_tci |= VLAN_CFI | VLAN_VID_MASK | 0xe000;
                    self.wc.vlan2_tci |= VLAN_CFI;
                    self.flow.vlan_tci = self.flow.vlan2_tci;
                    self.flow.vlan_tpid = self.flow.vlan2_tpid;
                    self.flow.vlan2_tci = 0;
                    self.flow.vlan2_tpid = 0;
                }
                Action::ModVlanVid(vid) => {
                    // OFPACT_SET_VLAN_VID with push_vlan_if_needed (OpenFlow 1.0 semantics).
                    self.wc.vlan_tci |= VLAN_VID_MASK | VLAN_CFI;
                    if self.flow.vlan_tpid == 0 {
                        self.flow.vlan_tpid = 0x8100;
                    }
                    self.flow.vlan_tci =
                        (self.flow.vlan_tci & !VLAN_VID_MASK) | (vid & VLAN_VID_MASK) | VLAN_CFI;
                }
                Action::ModVlanPcp(pcp) => {
                    self.wc.vlan_tci |= 0xe000 | VLAN_CFI;
                    if self.flow.vlan_tpid == 0 {
                        self.flow.vlan_tpid = 0x8100;
                    }
                    self.flow.vlan_tci =
                        (self.flow.vlan_tci & !0xe000) | ((*pcp as u16 & 7) << 13) | VLAN_CFI;
                }
                Action::DecTtl => {
                    if self.flow.is_ip_any() {
                        self.wc.nw_ttl = 0xff;
                        if self.flow.nw_ttl > 1 {
                            self.flow.nw_ttl -= 1;
                        } else {
                            // compose_dec_ttl(): the packet would go to the controller with
                            // reason "invalid TTL"; there is none, so processing stops.
                            if self.outputs == 0 {
                                self.note_drop(DropReason::TtlExpired);
                            }
                            // execute_controller_action(): pending changes are committed
                            // and a packet-in with reason "invalid TTL" (2) is composed,
                            // its continuation frozen.
                            self.commit();
                            self.wc.nw_proto = 0xff;
                            let fz = Frozen {
                                bridge: self.bridge,
                                table: self.table_id,
                                in_port: self.flow.in_port,
                                regs: self.flow.regs,
                                metadata: self.flow.metadata,
                                tun_id: self.flow.tun_id,
                                tun_src: self.flow.tun_src,
                                tun_dst: self.flow.tun_dst,
                                tun_flags: self.flow.tun_flags,
                                // A packet-in freezes no actions: one state per table and
                                // metadata, told apart from conntrack's by this marker.
                                continuation: 1,
                                ns: None,
                            };
                            let id = self.of.recirc.id_for(fz);
                            self.odp.push(DpAction::Controller {
                                reason: 2,
                                recirc_id: id,
                                cookie: self.rule_cookie,
                            });
                            let v = if self.flow.is_ipv4() { 4 } else { 6 };
                            self.report(NodeType::Warn, || {
                                format!("IPv{v} decrement TTL exception")
                            });
                            // "Stop processing for current table."
                            self.ttl_stop = true;
                        }
                    }
                }
                Action::Ct(ct) => self.compose_ct(ct),
                Action::CtClear => {
                    self.flow.ct_state = 0;
                    self.flow.ct_zone = 0;
                    self.flow.ct_mark = 0;
                }
                Action::Learn(spec) => self.xlate_learn(spec),
                Action::Note(_) => {}
                Action::Exit => {
                    self.exit = true;
                }
                Action::Drop => {}
            }
        }
    }

    fn prereqs_ok(&mut self, field: FieldId) -> bool {
        use crate::flow::field::Prereq as P;
        let f = &self.flow;
        let w = &mut self.wc;
        let ip_proto = |w: &mut FlowKey, f: &FlowKey, proto: u8| {
            w.nw_proto = 0xff;
            f.is_ip_any() && f.nw_proto == proto
        };
        match field.field().prereq {
            P::None => true,
            P::Vlan => {
                w.vlan_tci |= VLAN_CFI;
                f.vlan_tci & VLAN_CFI != 0
            }
            P::IpAny => f.is_ip_any(),
            P::Ipv4 => f.is_ipv4(),
            P::Ipv6 => f.is_ipv6(),
            P::Arp => f.is_arp(),
            P::Tcp => ip_proto(w, f, 6),
            P::TcpAny => ip_proto(w, f, 6),
            P::Udp => ip_proto(w, f, 17),
            P::Sctp => ip_proto(w, f, 132),
            P::Icmp4 => {
                w.nw_proto = 0xff;
                f.is_ipv4() && f.nw_proto == 1
            }
            P::Icmp6 | P::Nd | P::NdSolicit | P::NdAdvert => {
                w.nw_proto = 0xff;
                f.is_ipv6() && f.nw_proto == 58
            }
        }
    }

    fn set_field(&mut self, field: FieldId, value: u128, mask: u128, spelling: Spelling) {
        let f = field.field();
        let mut mask = mask & f.all_ones();
        match field {
            // The mod_* actions of OpenFlow 1.0 each have their own guard in OVS
            // (OFPACT_SET_L4_*_PORT, OFPACT_SET_IPV4_*, OFPACT_SET_IP_DSCP ...).
            FieldId::TcpSrc | FieldId::TcpDst | FieldId::UdpSrc | FieldId::UdpDst
                if spelling == Spelling::Mod =>
            {
                if !self.flow.is_ip_any() || self.flow.nw_frag & nw_frag::LATER != 0 {
                    return;
                }
                self.wc.nw_proto = 0xff;
                let is_src = matches!(field, FieldId::TcpSrc | FieldId::UdpSrc);
                match self.flow.nw_proto {
                    6 | 17 | 132 => {
                        if is_src {
                            self.wc.tp_src = 0xffff;
                            self.flow.tp_src = value as u16;
                        } else {
                            self.wc.tp_dst = 0xffff;
                            self.flow.tp_dst = value as u16;
                        }
                    }
                    _ => {}
                }
                return;
            }
            FieldId::NwTos => mask &= 0xfc,
            FieldId::TunId | FieldId::TunSrc | FieldId::TunDst => {
                // Tunnel metadata is not a packet field; setting it marks it valid.
                f.set_masked(&mut self.flow, value, mask);
                return;
            }
            _ => {}
        }
        if !self.prereqs_ok(field) {
            return;
        }
        // mf_mask_field_masked(): the datapath set action needs the whole field.
        f.unwildcard(&mut self.wc, mask);
        f.set_masked(&mut self.flow, value, mask);
        if matches!(field, FieldId::VlanVid | FieldId::VlanTci)
            && self.flow.vlan_tci & VLAN_CFI != 0
            && self.flow.vlan_tpid == 0
        {
            self.flow.vlan_tpid = 0x8100;
        }
    }

    /// `output:P` and the reserved ports.
    fn xlate_output(&mut self, p: u32) {
        let in_port = self.flow.in_port;
        match p {
            port::IN_PORT => self.compose_output(in_port),
            port::NORMAL => self.xlate_normal(),
            port::FLOOD | port::ALL => self.flood(p == port::ALL),
            port::CONTROLLER | port::TABLE | port::NONE => {}
            _ => {
                if p != in_port {
                    self.compose_output(p);
                } else {
                    self.report(NodeType::Warn, || "skipping output to input port".to_string());
                    if self.outputs == 0 {
                        self.note_drop(DropReason::OutputToInPort);
                    }
                }
            }
        }
    }

    /// FLOOD and ALL: every port but the input one, in the order OVS visits its port hash map
    /// (flood_packets() walks `xbridge->xports`), so the datapath actions list the ports as
    /// OVS lists them.
    fn flood(&mut self, all: bool) {
        let _ = all;
        let in_port = self.flow.in_port;
        let ports: Vec<u32> = self.bridge().ports.iter().map(|p| p.ofport).collect();
        for p in hmap_order(&ports) {
            if p != in_port {
                self.compose_output(p);
            }
        }
    }

    /// compose_output_action__(): output to one OpenFlow port of the current bridge.
    pub(crate) fn compose_output(&mut self, ofport: u32) {
        let Some(bp) = self.bridge().port(ofport).cloned() else {
            if self.outputs == 0 {
                self.note_drop(DropReason::NoSuchPort);
            }
            return;
        };
        match bp.kind {
            PortKind::Patch { peer_bridge, peer_ofport } => {
                self.patch_output(peer_bridge, peer_ofport);
            }
            PortKind::NsIface { ns, iface } => {
                let old_flow = self.flow;
                self.ns_receive(ns, &iface);
                self.flow = old_flow;
            }
            PortKind::Vxlan(cfg) => {
                let saved_tos = self.flow.nw_tos;
                self.tunnel_output(&cfg);
                self.flow.nw_tos = saved_tos;
            }
            PortKind::Netdev | PortKind::Local => {
                let Some(dp) = bp.dp_port else { return };
                self.commit();
                // terminate_native_tunnel(): a tunnel packet sent to a bridge's own address
                // is decapsulated instead of delivered.
                if let Some(vport) =
                    tunnel::terminate(self.of, self.bridge, &bp, &self.flow, &mut self.wc)
                {
                    self.odp.push(DpAction::TnlPop(vport));
                } else {
                    self.odp.push(DpAction::Output(dp));
                    if let Some(t) = self.trace.as_deref_mut() {
                        t.note_emitted(bp.name.clone(), self.flow);
                    }
                }
                self.outputs += 1;
            }
        }
    }

    /// patch_port_output(): continue in the peer bridge with a fresh pipeline state.
    fn patch_output(&mut self, peer_bridge: usize, peer_ofport: u32) {
        let old_flow = self.flow;
        let old_bridge = self.bridge;
        let old_table = self.table_id;
        let old_tun_wc = (self.wc.tun_id, self.wc.tun_src, self.wc.tun_dst, self.wc.tun_flags);
        self.flow.in_port = peer_ofport;
        self.flow.metadata = 0;
        self.flow.regs = [0; 8];
        self.flow.tun_id = 0;
        self.flow.tun_src = 0;
        self.flow.tun_dst = 0;
        self.flow.tun_flags = 0;
        // clear_conntrack()
        self.flow.ct_state = 0;
        self.flow.ct_zone = 0;
        self.flow.ct_mark = 0;
        self.bridge = peer_bridge;
        let name = self.of.bridges[peer_bridge].name.clone();
        let b = self.enter(NodeType::Bridge, || format!("bridge(\"{name}\")"));
        self.xlate_table(0);
        self.leave(b);
        self.flow = old_flow;
        self.bridge = old_bridge;
        self.table_id = old_table;
        (self.wc.tun_id, self.wc.tun_src, self.wc.tun_dst, self.wc.tun_flags) = old_tun_wc;
        // The peer bridge exiting does not end this one (an error still ends everything).
        self.exit = self.error.is_some();
    }

    /// native_tunnel_output(): push the VXLAN header and send the outer packet through the
    /// underlay (the underlay bridge's pipeline from its LOCAL port, or the node's NIC).
    fn tunnel_output(&mut self, cfg: &TunnelConfig) {
        self.report(NodeType::Detail, || "output to native tunnel".to_string());
        let plan = match tunnel::plan_output(self.of, cfg, &self.flow, &mut self.wc) {
            Ok(p) => p,
            Err(r) => {
                self.report(NodeType::Warn, || match r {
                    DropReason::TunnelNoNeighbor => "neighbor cache miss".to_string(),
                    _ => "native tunnel routing failed".to_string(),
                });
                if self.outputs == 0 {
                    self.note_drop(r);
                }
                return;
            }
        };
        if self.trace.is_some() {
            let h = plan.header;
            let ip = |b: &[u8]| std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string();
            let mac = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":");
            let via = match plan.via_bridge {
                Some(ub) => self.of.bridges[ub].name.clone(),
                None => "underlay".to_string(),
            };
            let (dst_ip, src_ip) = (ip(&h[30..34]), ip(&h[26..30]));
            let (dmac, smac) = (mac(&h[0..6]), mac(&h[6..12]));
            self.report(NodeType::Detail, || format!("tunneling to {dst_ip} via {via}"));
            self.report(NodeType::Detail, || {
                format!("tunneling from {smac} {src_ip} to {dmac} {dst_ip}")
            });
        }
        self.commit();
        let push = DpAction::TnlPush(Box::new(TnlPush {
            header: plan.header,
            tnl_port: plan.tnl_port,
            out_port: plan.out_dp_port,
            sport_min: 32768,
            sport_max: 61000,
            csum: cfg.csum,
        }));
        match plan.via_bridge {
            None => {
                self.odp.push(DpAction::Clone(vec![push, DpAction::Output(plan.out_dp_port)]));
                self.outputs += 1;
                if let Some(t) = self.trace.as_deref_mut() {
                    // The inner flow, with the outer addresses it leaves with.
                    let h = &plan.header;
                    let mut f = self.flow;
                    f.tun_src = u32::from_be_bytes([h[26], h[27], h[28], h[29]]);
                    f.tun_dst = u32::from_be_bytes([h[30], h[31], h[32], h[33]]);
                    f.tun_flags |= crate::flow::key::tun_flags::PRESENT;
                    t.note_emitted("underlay".to_string(), f);
                }
            }
            Some(ub) => {
                // Translate the outer packet through the underlay bridge, with its own
                // wildcards (discarded: the megaflow matches the inner packet only).
                let saved = (self.flow, self.base, self.wc, self.bridge, self.table_id);
                let saved_odp = std::mem::take(&mut self.odp);
                let saved_outputs = self.outputs;
                let saved_drop = self.out.drop;
                self.flow = plan.outer;
                self.base = plan.outer;
                self.wc = FlowKey::ZERO;
                self.bridge = ub;
                self.outputs = 0;
                self.odp.push(push);
                let name = self.of.bridges[ub].name.clone();
                let b = self.enter(NodeType::Bridge, || format!("bridge(\"{name}\")"));
                self.extra_bytes += 50;
                self.xlate_table(0);
                self.extra_bytes -= 50;
                self.leave(b);
                let inner_outputs = self.outputs;
                let sub = std::mem::replace(&mut self.odp, saved_odp);
                (self.flow, self.base, self.wc, self.bridge, self.table_id) = saved;
                self.outputs = saved_outputs;
                self.exit = self.error.is_some();
                if inner_outputs > 0 {
                    self.odp.push(DpAction::Clone(sub));
                    self.outputs += 1;
                    self.out.drop = saved_drop;
                } else if self.outputs > 0 {
                    self.out.drop = saved_drop;
                }
            }
        }
    }

    /// `ct(...)`: commit pending changes, run conntrack in the datapath, and (with a table)
    /// recirculate to that table with the pipeline state frozen.
    fn compose_ct(&mut self, ct: &CtAction) {
        let zone = match ct.zone {
            CtZone::Imm(z) => z,
            CtZone::Field(sf) => {
                sf.unwildcard(&mut self.wc);
                sf.get(&self.flow) as u16
            }
        };
        let mut mark = None;
        for a in &ct.exec {
            if let Action::SetField { field: FieldId::CtMark, value, mask, .. } = a {
                mark = Some((*value as u32, *mask as u32));
            }
        }
        self.commit();
        self.odp.push(DpAction::Ct {
            zone,
            commit: ct.commit,
            force: ct.force,
            nat: ct.nat.clone().map(Box::new),
            mark,
            nat_only: None,
        });
        if let (Some(n), true) = (&ct.nat, self.trace.is_some()) {
            let text = crate::ofproto::action::format_nat(n);
            self.report(NodeType::Action, || text);
        }
        // The ct action leaves the packet untracked for the rest of this pass
        // ("Sets the packet to an untracked state, and clears all the conntrack fields").
        self.flow.ct_state = 0;
        self.flow.ct_zone = 0;
        self.flow.ct_mark = 0;
        if let Some(table) = ct.table {
            let fz = Frozen {
                bridge: self.bridge,
                table,
                in_port: self.flow.in_port,
                regs: self.flow.regs,
                metadata: self.flow.metadata,
                tun_id: self.flow.tun_id,
                tun_src: self.flow.tun_src,
                tun_dst: self.flow.tun_dst,
                tun_flags: self.flow.tun_flags,
                continuation: 0,
                ns: None,
            };
            let id = self.of.recirc.id_for(fz);
            self.odp.push(DpAction::Recirc(id));
            self.report(NodeType::Detail, || {
                format!(
                    "A clone of the packet is forked to recirculate. The forked pipeline \
                     will be resumed at table {table}."
                )
            });
            self.out.recircs.push(id);
            // A recirculated packet is emitted (or dropped) by its second pass.
            self.outputs += 1;
        }
        self.report(NodeType::Detail, || {
            "Sets the packet to an untracked state, and clears all the conntrack fields."
                .to_string()
        });
    }

    /// `learn(...)`: build a flow from the spec and the current packet and install it.
    fn xlate_learn(&mut self, spec: &LearnSpec) {
        let mut fm = FlowMod {
            command: FlowModCommand::Add,
            table: Some(spec.table),
            priority: spec.priority,
            cookie: spec.cookie,
            idle_timeout: spec.idle_timeout,
            hard_timeout: spec.hard_timeout,
            mat: Match::catchall(),
            ..FlowMod::default()
        };
        fm.flags.send_flow_rem = spec.send_flow_rem;
        for part in &spec.parts {
            match part {
                LearnPart::MatchField { dst, src } => {
                    src.unwildcard(&mut self.wc);
                    let v = src.get(&self.flow);
                    set_match_subfield(&mut fm.mat, dst, v);
                }
                LearnPart::MatchImm { dst, value } => set_match_subfield(&mut fm.mat, dst, *value),
                LearnPart::LoadField { src, dst } => {
                    src.unwildcard(&mut self.wc);
                    let v = src.get(&self.flow);
                    fm.actions.push(load_action(dst, v));
                }
                LearnPart::LoadImm { value, dst } => fm.actions.push(load_action(dst, *value)),
                LearnPart::OutputField { src } => {
                    src.unwildcard(&mut self.wc);
                    let p = src.get(&self.flow) as u32;
                    fm.actions.push(Action::Output { port: p, max_len: 0 });
                }
            }
        }
        if self.side_effects {
            let b = &mut self.of.bridges[self.bridge];
            if b.tables.learn(&fm, &mut self.of.next_rule_id, self.of.now_ms) {
                self.out.tables_changed = true;
            }
        }
        self.out.learned.push((self.bridge, fm));
    }

    /// commit_odp_actions(): emit set actions for every field that differs between the
    /// flow and what the packet holds, in OVS's order: Ethernet, L3, L4, ICMP, VLAN.
    pub(crate) fn commit(&mut self) {
        let (f, b) = (self.flow, self.base);
        if f.dl_src != b.dl_src || f.dl_dst != b.dl_dst {
            self.odp.push(DpAction::SetEth {
                src: (f.dl_src != b.dl_src).then_some(f.dl_src),
                dst: (f.dl_dst != b.dl_dst).then_some(f.dl_dst),
            });
        }
        if f.is_ipv4() && b.is_ipv4() {
            if f.nw_src != b.nw_src
                || f.nw_dst != b.nw_dst
                || f.nw_tos != b.nw_tos
                || f.nw_ttl != b.nw_ttl
            {
                self.odp.push(DpAction::SetIpv4 {
                    src: (f.nw_src != b.nw_src).then_some(f.nw_src),
                    dst: (f.nw_dst != b.nw_dst).then_some(f.nw_dst),
                    tos: (f.nw_tos != b.nw_tos).then_some(f.nw_tos),
                    ttl: (f.nw_ttl != b.nw_ttl).then_some(f.nw_ttl),
                    tos_mask: self.wc.nw_tos,
                });
                // Observed in OVS 3.1: a set of a whole IPv4 field (address, TTL, whole TOS)
                // makes the megaflow match the IP protocol too; a partial TOS set does not.
                if f.nw_src != b.nw_src
                    || f.nw_dst != b.nw_dst
                    || f.nw_ttl != b.nw_ttl
                    || (f.nw_tos != b.nw_tos && self.wc.nw_tos == 0xff)
                {
                    self.wc.nw_proto = 0xff;
                }
            }
        } else if f.is_ipv6() && b.is_ipv6() {
            if f.ipv6_src != b.ipv6_src
                || f.ipv6_dst != b.ipv6_dst
                || f.nw_tos != b.nw_tos
                || f.nw_ttl != b.nw_ttl
                || f.ipv6_label != b.ipv6_label
            {
                self.odp.push(DpAction::SetIpv6 {
                    src: (f.ipv6_src != b.ipv6_src).then_some(f.ipv6_src),
                    dst: (f.ipv6_dst != b.ipv6_dst).then_some(f.ipv6_dst),
                    tclass: (f.nw_tos != b.nw_tos).then_some(f.nw_tos),
                    hlimit: (f.nw_ttl != b.nw_ttl).then_some(f.nw_ttl),
                    label: (f.ipv6_label != b.ipv6_label).then_some(f.ipv6_label),
                    tclass_mask: self.wc.nw_tos,
                });
            }
        } else if f.is_arp()
            && b.is_arp()
            && (f.nw_src != b.nw_src
                || f.nw_dst != b.nw_dst
                || f.nw_proto != b.nw_proto
                || f.arp_sha != b.arp_sha
                || f.arp_tha != b.arp_tha)
        {
            self.out.slow_path = true;
            self.odp.push(DpAction::SetArp {
                op: (f.nw_proto != b.nw_proto).then_some(f.nw_proto as u16),
                sip: (f.nw_src != b.nw_src).then_some(f.nw_src),
                tip: (f.nw_dst != b.nw_dst).then_some(f.nw_dst),
                sha: (f.arp_sha != b.arp_sha).then_some(f.arp_sha),
                tha: (f.arp_tha != b.arp_tha).then_some(f.arp_tha),
            });
        }
        if f.is_ip_any() && f.nw_frag & nw_frag::LATER == 0 {
            let ports_differ = f.tp_src != b.tp_src || f.tp_dst != b.tp_dst;
            match f.nw_proto {
                6 | 17 | 132 if ports_differ => self.odp.push(DpAction::SetPorts {
                    proto: f.nw_proto,
                    src: (f.tp_src != b.tp_src).then_some(f.tp_src),
                    dst: (f.tp_dst != b.tp_dst).then_some(f.tp_dst),
                }),
                1 | 58 if ports_differ => self.odp.push(DpAction::SetIcmp {
                    v6: f.nw_proto == 58,
                    typ: (f.tp_src != b.tp_src).then_some(f.tp_src as u8),
                    code: (f.tp_dst != b.tp_dst).then_some(f.tp_dst as u8),
                }),
                _ => {}
            }
        }
        self.commit_vlan();
        self.base = self.flow;
        // The packet's metadata is not rewritten by commits.
        self.base.in_port = self.flow.in_port;
    }

    /// commit_vlan_action(): pop the tags that differ, then push the new ones.
    fn commit_vlan(&mut self) {
        let f = [
            (self.flow.vlan_tpid, self.flow.vlan_tci),
            (self.flow.vlan2_tpid, self.flow.vlan2_tci),
        ];
        let b = [
            (self.base.vlan_tpid, self.base.vlan_tci),
            (self.base.vlan2_tpid, self.base.vlan2_tci),
        ];
        let count = |v: &[(u16, u16); 2]| v.iter().take_while(|t| t.1 & VLAN_CFI != 0).count();
        let (nf, nb) = (count(&f), count(&b));
        // Tags are stored outermost first; compare from the innermost, as OVS does.
        let mut common = 0;
        while common < nf.min(nb) {
            let fi = f[nf - 1 - common];
            let bi = b[nb - 1 - common];
            let fi = (if fi.0 == 0 { 0x8100 } else { fi.0 }, fi.1);
            let bi = (if bi.0 == 0 { 0x8100 } else { bi.0 }, bi.1);
            if fi != bi {
                break;
            }
            common += 1;
        }
        for level in 0..nb - common {
            self.odp.push(DpAction::PopVlan);
            // commit_vlan_action(): a popped tag is matched whole (TPID and TCI).
            if level == 0 {
                self.wc.vlan_tci = 0xffff;
                self.wc.vlan_tpid = 0xffff;
            } else {
                self.wc.vlan2_tci = 0xffff;
                self.wc.vlan2_tpid = 0xffff;
            }
        }
        for i in (0..nf - common).rev() {
            let (tpid, tci) = f[i];
            // The datapath action carries the "present" bit, as OVS's does; the tag written on
            // the wire has CFI/DEI 0.
            self.odp.push(DpAction::PushVlan { tpid: if tpid == 0 { 0x8100 } else { tpid }, tci });
        }
    }
}

/// The iteration order of an OVS `hmap` keyed by `hash_ofp_port()` after inserting `ofports`
/// in this order (lib/hmap.c: head insertion into `hash & mask` buckets, growing to
/// `calc_mask(n)` buckets when `n / 2 > mask`).
pub fn hmap_order(ofports: &[u32]) -> Vec<u32> {
    fn hash_int(x: u32) -> u32 {
        // hash_2words(x, 0) = hash_finish(hash_add(hash_add(x, 0), 0), 8)
        let add = |h: u32, d: u32| -> u32 {
            let d = d.wrapping_mul(0xcc9e_2d51).rotate_left(15).wrapping_mul(0x1b87_3593);
            (h ^ d).rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64)
        };
        let mut h = add(add(x, 0), 0) ^ 8;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }
    fn calc_mask(cap: usize) -> usize {
        let mut m = cap / 2;
        for s in [1, 2, 4, 8, 16, 32] {
            m |= m >> s;
        }
        m | ((m & 1) << 1)
    }
    let mut mask = 0usize;
    let mut buckets: Vec<Vec<(u32, u32)>> = vec![Vec::new()];
    for (n, &p) in ofports.iter().enumerate() {
        let h = hash_int(p);
        buckets[h as usize & mask].insert(0, (p, h));
        let n = n + 1;
        if n / 2 > mask {
            let nm = calc_mask(n);
            if nm > mask {
                let mut nb: Vec<Vec<(u32, u32)>> = vec![Vec::new(); nm + 1];
                for b in &buckets {
                    for &(q, hq) in b {
                        nb[hq as usize & nm].insert(0, (q, hq));
                    }
                }
                buckets = nb;
                mask = nm;
            }
        }
    }
    buckets.into_iter().flatten().map(|(p, _)| p).collect()
}

/// Adds `dst == value` to a learned flow's match (also its prerequisites' shorthand values
/// are given explicitly by the spec, as OVS requires).
fn set_match_subfield(m: &mut Match, dst: &Subfield, value: u128) {
    let f = dst.field.field();
    let bits = dst.bits();
    f.unwildcard(&mut m.mask, bits);
    f.set_masked(&mut m.key, value << dst.ofs, bits);
}

fn load_action(dst: &Subfield, value: u128) -> Action {
    Action::SetField {
        field: dst.field,
        value: value << dst.ofs,
        mask: dst.bits(),
        spelling: Spelling::Load,
    }
}

/// The conntrack state bits the recirculated pass sees after `ct`, for documentation of the
/// defaults used by tracing (`trk|new`).
pub const CT_DEFAULT_TRACE_STATE: u8 = cts::TRK | cts::NEW;
