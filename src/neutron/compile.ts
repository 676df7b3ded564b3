/**
 * The Neutron topology compiler: a checked topology in, the raw multi-node scenario out
 * (nodes with their underlay NIC, br-int / br-tun / br-ex with ports and flows, and the router
 * namespaces), in the file format src/scenario/ loads.
 *
 * The output is meant to be read and diffed by a person against a real node: ports are listed
 * by ofport, flows are one per line in `ovs-ofctl dump-flows` form (cookie, table, priority,
 * match, actions, without durations and counters), namespaces in the text `ip` and `iptables`
 * print. Compiling is deterministic: the same topology gives the same bytes.
 */
import { stringify } from 'yaml';
import { type NodeFlows, nodeFlows } from './flows.js';
import { type Namespace, nodeNamespaces } from './namespaces.js';
import { type NodePlan, planNodes } from './plan.js';
import type { Topology } from './topology.js';

/** A port of a raw scenario bridge. */
export interface RawPort {
  name: string;
  ofport: number;
  type?: 'patch' | 'vxlan' | 'uplink';
  peer?: string;
  tag?: number;
  vm?: string;
  options?: Record<string, string>;
}

export interface RawBridge {
  name: string;
  ports: RawPort[];
  flows: string;
}

export interface RawNode {
  name: string;
  underlay: { ip: string; mac: string };
  bridges: RawBridge[];
  namespaces: Namespace[];
}

/** A raw multi-node scenario, as written to a file. */
export interface RawScenario {
  comment: string;
  nodes: RawNode[];
}

/** Compiles a topology into a raw multi-node scenario. */
export function compile(topo: Topology): RawScenario {
  const plans = planNodes(topo);
  return {
    comment:
      `Compiled by dvrlab compile from ${topo.file}: ` +
      'what the Neutron Ocata OVS and L3 agents install.',
    nodes: plans.map((plan) => rawNode(topo, plan, nodeFlows(topo, plan, plans))),
  };
}

function byOfport(ports: RawPort[]): RawPort[] {
  return [...ports].sort((a, b) => a.ofport - b.ofport);
}

function flowText(lines: string[]): string {
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

function rawNode(topo: Topology, plan: NodePlan, flows: NodeFlows): RawNode {
  const node = plan.node;
  const intPorts: RawPort[] = [
    { name: 'patch-tun', ofport: plan.patchTun, type: 'patch', peer: 'patch-int' },
  ];
  if (plan.intBrEx !== undefined) {
    intPorts.push({ name: 'int-br-ex', ofport: plan.intBrEx, type: 'patch', peer: 'phy-br-ex' });
  }
  for (const b of plan.ports) {
    const port: RawPort = { name: b.port.device, ofport: b.ofport, tag: b.lv };
    if (b.port.vm) port.vm = b.port.vm.name;
    intPorts.push(port);
  }
  const tunPorts: RawPort[] = [
    { name: 'patch-int', ofport: plan.patchInt, type: 'patch', peer: 'patch-tun' },
  ];
  for (const t of plan.tunnels) {
    // As the OVS agent creates them (dst_port is set only when it is not 4789).
    tunPorts.push({
      name: t.name,
      ofport: t.ofport,
      type: 'vxlan',
      options: {
        remote_ip: t.peer.tunnelIp,
        local_ip: node.tunnelIp,
        in_key: 'flow',
        out_key: 'flow',
        df_default: 'true',
      },
    });
  }
  const bridges: RawBridge[] = [
    { name: 'br-int', ports: byOfport(intPorts), flows: flowText(flows.brInt.lines()) },
    { name: 'br-tun', ports: byOfport(tunPorts), flows: flowText(flows.brTun.lines()) },
  ];
  if (plan.brEx && flows.brEx) {
    bridges.push({
      name: 'br-ex',
      ports: byOfport([
        { name: plan.brEx.uplink.name, ofport: plan.brEx.uplink.ofport, type: 'uplink' },
        { name: 'phy-br-ex', ofport: plan.brEx.phy, type: 'patch', peer: 'int-br-ex' },
      ]),
      flows: flowText(flows.brEx.lines()),
    });
  }
  return {
    name: node.name,
    underlay: { ip: node.tunnelIp, mac: node.underlayMac },
    bridges,
    namespaces: nodeNamespaces(topo, plan),
  };
}

/** Writes a raw scenario as YAML (block strings for flows and namespace texts) or JSON. */
export function formatRawScenario(raw: RawScenario, format: 'yaml' | 'json'): string {
  if (format === 'json') return `${JSON.stringify(raw, null, 2)}\n`;
  return stringify(raw, { lineWidth: 0, blockQuote: 'literal' });
}
