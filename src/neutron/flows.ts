/**
 * The OpenFlow rules the Neutron OVS agent of Ocata (with l2population, the ARP responder and,
 * on dvr and dvr_snat nodes, distributed routing) installs on br-int, br-tun and br-ex, as
 * `ovs-ofctl dump-flows` prints them on OVS 2.5 over OpenFlow 1.0 (reference §2 and §4):
 * `cookie=0x..., table=T, priority=P,MATCH actions=ACTIONS`, with ports as numbers and the
 * match fields in the order OVS prints them.
 *
 * Invariants: every rule is one line that `ovs-ofctl add-flow` accepts; the rules of a bridge
 * come sorted by table, then by descending priority, then in the order the agent installs
 * them; two rules never share table, priority and match (a later write replaces an earlier
 * one, as OVS does).
 */
import { formatIp, ipv4Hex, linkLocal, macHex } from './addr.js';
import type { BoundPort, NodePlan } from './plan.js';
import type { Network, Port, Topology } from './topology.js';

/** br-int tables (OC names). */
export const INT = {
  LOCAL_SWITCHING: 0,
  DVR_TO_SRC_MAC: 1,
  DVR_TO_SRC_MAC_VLAN: 2,
  CANARY: 23,
  ARP_SPOOF: 24,
  MAC_SPOOF: 25,
} as const;

/** br-tun tables. */
export const TUN = {
  DISPATCH: 0,
  DVR_PROCESS: 1,
  PATCH_LV_TO_TUN: 2,
  GRE_TUN_TO_LV: 3,
  VXLAN_TUN_TO_LV: 4,
  GENEVE_TUN_TO_LV: 6,
  DVR_NOT_LEARN: 9,
  LEARN_FROM_TUN: 10,
  UCAST_TO_TUN: 20,
  ARP_RESPONDER: 21,
  FLOOD_TO_TUN: 22,
} as const;

/** br-ex tables. */
export const PHYS = {
  LOCAL: 0,
  DVR_PROCESS_VLAN: 1,
  LOCAL_VLAN_TRANSLATION: 2,
  DVR_NOT_LEARN_VLAN: 3,
} as const;

interface Rule {
  table: number;
  priority: number;
  match: string; // comma-separated, in OVS print order; '' for none
  actions: string;
  seq: number;
}

/** The rules of one bridge, keyed as OVS keys them (table, priority, match). */
export class FlowTable {
  private readonly rules = new Map<string, Rule>();
  private seq = 0;

  constructor(readonly cookie: string) {}

  /** Adds a rule, replacing one with the same table, priority and match. */
  add(table: number, priority: number, match: string[], actions: string): void {
    const m = match.join(',');
    const key = `${table}/${priority}/${m}`;
    const prev = this.rules.get(key);
    this.rules.set(key, { table, priority, match: m, actions, seq: prev?.seq ?? this.seq++ });
  }

  /** The rules as `ovs-ofctl dump-flows` lines without durations and counters. */
  lines(): string[] {
    return [...this.rules.values()]
      .sort((a, b) => a.table - b.table || b.priority - a.priority || a.seq - b.seq)
      .map(
        (r) =>
          `cookie=${this.cookie}, table=${r.table}, priority=${r.priority}` +
          `${r.match === '' ? '' : `,${r.match}`} actions=${r.actions}`,
      );
  }
}

/** `resubmit(,N)`: OF1.0's print of goto_table. */
const goto = (t: number) => `resubmit(,${t})`;
const hex = (n: number) => `0x${n.toString(16)}`;

/** The learn action of br-tun table 10 (the seed's text, with this bridge's cookie). */
export function learnAction(cookie: string, patchInt: number): string {
  return (
    `learn(table=${TUN.UCAST_TO_TUN},hard_timeout=300,priority=1,cookie=${cookie},` +
    'NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:0->NXM_OF_VLAN_TCI[],' +
    'load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],output:OXM_OF_IN_PORT[])' +
    `,output:${patchInt}`
  );
}

/** The ARP responder's reply-in-place actions for `mac` owning `addr`. */
export function arpResponderActions(mac: string, addr: string): string {
  return (
    'load:0x2->NXM_OF_ARP_OP[],move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],' +
    'move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],' +
    `load:${macHex(mac)}->NXM_NX_ARP_SHA[],load:${ipv4Hex(addr)}->NXM_OF_ARP_SPA[],` +
    `move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:${mac},IN_PORT`
  );
}

/** Strip the local VLAN, set the VNI and send to one or more tunnel ports. */
export function tunnelActions(vni: number, ofports: number[]): string {
  const outputs = ofports.map((p) => `output:${p}`).join(',');
  return `strip_vlan,load:${hex(vni)}->NXM_NX_TUN_ID[],${outputs}`;
}

/** The generated rules of one node. */
export interface NodeFlows {
  brInt: FlowTable;
  brTun: FlowTable;
  brEx?: FlowTable;
}

/** Ports of distributed routers (qr-) count for tunnels but get no l2pop fdb entries. */
function isDistributedPort(p: Port): boolean {
  return p.kind === 'qr' && p.router!.distributed;
}

/** The DVR MACs of the other nodes that run a DVR agent, in node order. */
function remoteDvrMacs(topo: Topology, plan: NodePlan): string[] {
  return topo.nodes.filter((n) => n !== plan.node && n.mode !== 'legacy').map((n) => n.dvrMac!);
}

/** The local qr- ports of distributed routers, bound on this node. */
function localDvrInterfaces(plan: NodePlan): BoundPort[] {
  return plan.ports.filter((b) => b.port.kind === 'qr' && b.port.router!.distributed);
}

/** Generates every rule of one node. */
export function nodeFlows(topo: Topology, plan: NodePlan, plans: NodePlan[]): NodeFlows {
  const c = plan.node.cookies;
  const out: NodeFlows = {
    brInt: new FlowTable(c.brInt),
    brTun: new FlowTable(c.brTun),
    brEx: plan.brEx ? new FlowTable(c.brEx) : undefined,
  };
  brInt(topo, plan, out.brInt);
  brTun(topo, plan, plans, out.brTun);
  if (out.brEx) brEx(topo, plan, out.brEx);
  return out;
}

function brInt(topo: Topology, plan: NodePlan, t: FlowTable): void {
  // Agent start: setup_default_table, the canary table and the ARP spoofing table's miss.
  t.add(INT.LOCAL_SWITCHING, 0, [], 'NORMAL');
  t.add(INT.CANARY, 0, [], 'drop');
  t.add(INT.ARP_SPOOF, 0, [], 'drop');
  // Physical bridge setup: frames from br-ex are dropped unless a rule below takes them.
  if (plan.intBrEx !== undefined)
    t.add(INT.LOCAL_SWITCHING, 2, [`in_port=${plan.intBrEx}`], 'drop');

  if (plan.dvr) {
    t.add(INT.LOCAL_SWITCHING, 1, [], 'NORMAL');
    t.add(INT.DVR_TO_SRC_MAC, 1, [], 'drop');
    t.add(INT.DVR_TO_SRC_MAC_VLAN, 1, [], 'drop');
    for (const m of remoteDvrMacs(topo, plan)) {
      t.add(
        INT.LOCAL_SWITCHING,
        2,
        [`in_port=${plan.patchTun}`, `dl_src=${m}`],
        goto(INT.DVR_TO_SRC_MAC),
      );
      if (plan.intBrEx !== undefined) {
        t.add(
          INT.LOCAL_SWITCHING,
          4,
          [`in_port=${plan.intBrEx}`, `dl_src=${m}`],
          goto(INT.DVR_TO_SRC_MAC_VLAN),
        );
      }
    }
  }

  // provision_local_vlan of the flat external network: untagged frames from br-ex get its LV.
  for (const [net, lv] of plan.lv) {
    if (net.external && plan.intBrEx !== undefined) {
      t.add(
        INT.LOCAL_SWITCHING,
        3,
        [`in_port=${plan.intBrEx}`, 'vlan_tci=0x0000/0x1fff'],
        `mod_vlan_vid:${lv},NORMAL`,
      );
    }
  }

  // Port binding of VM ports (port security on, device owner compute:*): ARP and NA
  // spoofing protection (table 24) and source MAC checks (table 25).
  for (const b of plan.ports) {
    if (b.port.kind !== 'vm') continue;
    const p = b.ofport;
    const v6 = b.port.fixedIps.filter((f) => f.subnet.family === 6).map((f) => f.ip);
    v6.push(formatIp(linkLocal(b.port.mac)));
    for (const a of v6) {
      t.add(
        INT.ARP_SPOOF,
        2,
        ['icmp6', `in_port=${p}`, 'icmp_type=136', `nd_target=${a}`],
        'NORMAL',
      );
    }
    t.add(
      INT.LOCAL_SWITCHING,
      10,
      ['icmp6', `in_port=${p}`, 'icmp_type=136'],
      goto(INT.ARP_SPOOF),
    );
    for (const f of b.port.fixedIps) {
      if (f.subnet.family !== 4) continue;
      t.add(INT.ARP_SPOOF, 2, ['arp', `in_port=${p}`, `arp_spa=${f.ip}`], goto(INT.MAC_SPOOF));
    }
    t.add(INT.LOCAL_SWITCHING, 10, ['arp', `in_port=${p}`], goto(INT.ARP_SPOOF));
    t.add(INT.MAC_SPOOF, 2, [`in_port=${p}`, `dl_src=${b.port.mac}`], 'NORMAL');
    t.add(INT.LOCAL_SWITCHING, 9, [`in_port=${p}`], goto(INT.MAC_SPOOF));
  }

  if (plan.dvr) dvrToSrcMac(plan, t);
}

/**
 * br-int table 1: frames a remote DVR routed to a local port get the gateway MAC as source.
 * One rule per DVR-serviced port (VM, DHCP) on a subnet with a local qr- port, and per sg-
 * port. A port on several such subnets is written once per subnet with the same match, so the
 * last write wins: writes happen when the later of the port and the qr- port binds, and a
 * port's own bind walks its fixed IPs ordered by address string (reference §2.1, §6.11).
 */
function dvrToSrcMac(plan: NodePlan, t: FlowTable): void {
  const qrs = localDvrInterfaces(plan).filter((q) => q.port.network.vni !== undefined);
  for (const b of plan.ports) {
    if (b.port.network.vni === undefined) continue;
    if (b.port.kind === 'sg') {
      const qr = qrs.find((q) => q.port.fixedIps[0].subnet === b.port.fixedIps[0].subnet);
      if (!qr) continue;
      t.add(
        INT.DVR_TO_SRC_MAC,
        4,
        [`dl_vlan=${b.lv}`, `dl_dst=${b.port.mac}`],
        `strip_vlan,mod_dl_src:${qr.port.mac},output:${b.ofport}`,
      );
      continue;
    }
    if (b.port.kind !== 'vm' && b.port.kind !== 'dhcp') continue;
    const ips = [...b.port.fixedIps].sort((x, y) => (x.ip < y.ip ? -1 : x.ip > y.ip ? 1 : 0));
    let best: { key: [number, number]; gw: string } | undefined;
    ips.forEach((f, idx) => {
      const qr = qrs.find((q) => q.port.fixedIps[0].subnet === f.subnet);
      if (!qr) return;
      const key: [number, number] = qr.ofport > b.ofport ? [qr.ofport, 0] : [b.ofport, idx];
      if (!best || key[0] > best.key[0] || (key[0] === best.key[0] && key[1] > best.key[1])) {
        best = { key, gw: qr.port.mac };
      }
    });
    if (best) {
      t.add(
        INT.DVR_TO_SRC_MAC,
        4,
        [`dl_vlan=${b.lv}`, `dl_dst=${b.port.mac}`],
        `strip_vlan,mod_dl_src:${best.gw},output:${b.ofport}`,
      );
    }
  }
}

function brTun(topo: Topology, plan: NodePlan, plans: NodePlan[], t: FlowTable): void {
  const patchInt = plan.patchInt;
  // setup_default_table (OC installs goto 2 first; DVR setup replaces it with goto 1).
  t.add(
    TUN.DISPATCH,
    1,
    [`in_port=${patchInt}`],
    goto(plan.dvr ? TUN.DVR_PROCESS : TUN.PATCH_LV_TO_TUN),
  );
  t.add(TUN.DISPATCH, 0, [], 'drop');
  t.add(TUN.PATCH_LV_TO_TUN, 1, ['arp', 'dl_dst=ff:ff:ff:ff:ff:ff'], goto(TUN.ARP_RESPONDER));
  t.add(
    TUN.PATCH_LV_TO_TUN,
    0,
    ['dl_dst=00:00:00:00:00:00/01:00:00:00:00:00'],
    goto(TUN.UCAST_TO_TUN),
  );
  t.add(
    TUN.PATCH_LV_TO_TUN,
    0,
    ['dl_dst=01:00:00:00:00:00/01:00:00:00:00:00'],
    goto(TUN.FLOOD_TO_TUN),
  );
  for (const table of [TUN.GRE_TUN_TO_LV, TUN.VXLAN_TUN_TO_LV, TUN.GENEVE_TUN_TO_LV]) {
    t.add(table, 0, [], 'drop');
  }
  t.add(TUN.LEARN_FROM_TUN, 1, [], learnAction(t.cookie, patchInt));
  t.add(TUN.UCAST_TO_TUN, 0, [], goto(TUN.FLOOD_TO_TUN));
  t.add(TUN.ARP_RESPONDER, 0, [], goto(TUN.FLOOD_TO_TUN));
  t.add(TUN.FLOOD_TO_TUN, 0, [], 'drop');
  if (plan.dvr) {
    t.add(TUN.DVR_PROCESS, 0, [], goto(TUN.PATCH_LV_TO_TUN));
    t.add(TUN.DVR_NOT_LEARN, 0, [], goto(TUN.LEARN_FROM_TUN));
    for (const m of remoteDvrMacs(topo, plan)) {
      t.add(TUN.DVR_NOT_LEARN, 1, [`dl_src=${m}`], `output:${patchInt}`);
    }
  }
  for (const tp of plan.tunnels) {
    t.add(TUN.DISPATCH, 1, [`in_port=${tp.ofport}`], goto(TUN.VXLAN_TUN_TO_LV));
  }

  const tunnelTo = new Map(plan.tunnels.map((tp) => [tp.peer.name, tp.ofport]));
  for (const [net, lv] of plan.lv) {
    if (net.vni === undefined) continue;
    t.add(
      TUN.VXLAN_TUN_TO_LV,
      1,
      [`tun_id=${hex(net.vni)}`],
      `mod_vlan_vid:${lv},${goto(plan.dvr ? TUN.DVR_NOT_LEARN : TUN.LEARN_FROM_TUN)}`,
    );
    // l2pop: flood to every node with a port on the network, unicast to each remote port.
    const flood = plans
      .filter((p) => p !== plan && p.lv.has(net))
      .map((p) => tunnelTo.get(p.node.name)!)
      .sort((a, b) => a - b);
    if (flood.length > 0)
      t.add(TUN.FLOOD_TO_TUN, 1, [`dl_vlan=${lv}`], tunnelActions(net.vni, flood));
    for (const p of remotePorts(net, plan, plans)) {
      const ofport = tunnelTo.get(p.node!)!;
      t.add(
        TUN.UCAST_TO_TUN,
        2,
        [`dl_vlan=${lv}`, `dl_dst=${p.mac}`],
        tunnelActions(net.vni, [ofport]),
      );
      for (const f of p.fixedIps) {
        if (f.subnet.family !== 4) continue;
        t.add(
          TUN.ARP_RESPONDER,
          1,
          ['arp', `dl_vlan=${lv}`, `arp_tpa=${f.ip}`],
          arpResponderActions(p.mac, f.ip),
        );
      }
    }
  }

  // DVR_PROCESS: for each local qr- port of a distributed router on a tunnelled network.
  if (plan.dvr) {
    for (const q of localDvrInterfaces(plan)) {
      if (q.port.network.vni === undefined) continue;
      const f = q.port.fixedIps[0];
      if (f.subnet.family === 4) {
        t.add(TUN.DVR_PROCESS, 3, ['arp', `dl_vlan=${q.lv}`, `arp_tpa=${f.ip}`], 'drop');
      } else {
        t.add(
          TUN.DVR_PROCESS,
          3,
          ['icmp6', `dl_vlan=${q.lv}`, `dl_src=${q.port.mac}`, 'icmp_type=134'],
          'drop',
        );
      }
      t.add(TUN.DVR_PROCESS, 2, [`dl_vlan=${q.lv}`, `dl_dst=${q.port.mac}`], 'drop');
      t.add(
        TUN.DVR_PROCESS,
        1,
        [`dl_vlan=${q.lv}`, `dl_src=${q.port.mac}`],
        `mod_dl_src:${plan.node.dvrMac},${goto(TUN.PATCH_LV_TO_TUN)}`,
      );
    }
  }
}

/** The ports of `net` bound on other nodes that l2pop sends fdb entries for. */
function remotePorts(net: Network, plan: NodePlan, plans: NodePlan[]): Port[] {
  const out: Port[] = [];
  const seen = new Set<Port>();
  for (const other of plans) {
    if (other === plan) continue;
    for (const b of other.ports) {
      if (b.port.network !== net || isDistributedPort(b.port) || seen.has(b.port)) continue;
      seen.add(b.port);
      out.push({ ...b.port, node: other.node.name });
    }
  }
  return out;
}

function brEx(topo: Topology, plan: NodePlan, t: FlowTable): void {
  const phy = plan.brEx!.phy;
  t.add(PHYS.LOCAL, 0, [], 'NORMAL');
  if (plan.dvr) {
    t.add(PHYS.LOCAL, 2, [`in_port=${phy}`], goto(PHYS.DVR_PROCESS_VLAN));
    t.add(PHYS.LOCAL, 1, [], goto(PHYS.DVR_NOT_LEARN_VLAN));
    t.add(PHYS.DVR_PROCESS_VLAN, 0, [], goto(PHYS.LOCAL_VLAN_TRANSLATION));
    t.add(PHYS.LOCAL_VLAN_TRANSLATION, 2, [`in_port=${phy}`], 'drop');
    t.add(PHYS.DVR_NOT_LEARN_VLAN, 1, [], 'NORMAL');
    for (const m of remoteDvrMacs(topo, plan)) {
      t.add(PHYS.DVR_NOT_LEARN_VLAN, 2, [`dl_src=${m}`], `output:${phy}`);
    }
  } else {
    t.add(PHYS.LOCAL, 2, [`in_port=${phy}`], 'drop');
  }
  // provision_local_vlan of the flat external network: strip its LV on the way out.
  for (const [net, lv] of plan.lv) {
    if (net.external)
      t.add(PHYS.LOCAL, 4, [`in_port=${phy}`, `dl_vlan=${lv}`], 'strip_vlan,NORMAL');
  }
}
