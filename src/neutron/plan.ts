/**
 * What each node of a topology holds once every agent has done its work: the Neutron ports
 * bound on its br-int with their ofports and local VLANs, its tunnel ports, its br-ex ports,
 * and the routers it hosts. The flow and namespace generators read only this plan.
 *
 * The rules, from the reference (§2.4, §3):
 * - A distributed router is instantiated on every node that has a DVR-serviced port (a VM or
 *   a DHCP port) on one of its subnets, and on its snat node; there it has one qr- port per
 *   interface, with the same MAC and address everywhere. The snat node also has the sg- ports
 *   and the qg- port. A legacy router lives on its snat node only.
 * - A node with a floating IP of a distributed router for one of its VMs has one fg- port.
 * - Every node has br-int, br-tun and (when the topology has an external network) br-ex.
 * - Ofports: the value given, else int-br-ex 1 and patch-tun 2 (1 without br-ex), patch-int 1,
 *   the uplink 1 and phy-br-ex 2 when free, then the lowest free number in this order: DHCP
 *   ports, router ports (router by router: qr-, sg-, qg-), VM ports, the fg- port; tunnels in
 *   node order.
 * - The order ports were bound in is their br-int ofport order. Local VLANs are handed out
 *   1, 2, 3... in the order the node first bound a port of each network, unless given.
 * - With l2population, a node has a tunnel to each node that shares a tunnelled network with
 *   it (a port of any kind, qr- included, counts).
 */
import type { PathSeg } from '../scenario/parse.js';
import type { Network, Node, Port, Router, Topology } from './topology.js';

/** A Neutron port bound on one node's br-int. */
export interface BoundPort {
  port: Port;
  ofport: number;
  lv: number; // the local VLAN of the port's network on this node
}

export interface TunnelPort {
  peer: Node;
  name: string; // vxlan-<remote IPv4 as 8 hex digits>
  ofport: number;
}

export interface NodePlan {
  node: Node;
  dvr: boolean; // the L2 agent runs with enable_distributed_routing
  ports: BoundPort[]; // in ofport (bind) order
  intBrEx?: number; // br-int side of the br-ex link
  patchTun: number;
  patchInt: number;
  tunnels: TunnelPort[];
  brEx?: { phy: number; uplink: { name: string; ofport: number } };
  lv: Map<Network, number>;
  hosted: Router[]; // routers with a qrouter namespace here
}

/** The nodes a distributed router is instantiated on. */
export function routerHosts(topo: Topology, r: Router): Set<string> {
  const hosts = new Set<string>();
  if (!r.distributed) {
    if (r.snatNode !== undefined) hosts.add(r.snatNode);
    return hosts;
  }
  const subnets = new Set(r.interfaces.map((i) => i.subnet));
  for (const p of [...topo.vms.map((v) => v.port), ...topo.dhcpPorts]) {
    if (p.fixedIps.some((f) => subnets.has(f.subnet))) hosts.add(p.node!);
  }
  if (r.snatNode !== undefined) hosts.add(r.snatNode);
  return hosts;
}

/** The tunnel port name Neutron gives a remote IPv4 address. */
export function tunnelPortName(remoteIp: string): string {
  return `vxlan-${remoteIp
    .split('.')
    .map((x) => Number(x).toString(16).padStart(2, '0'))
    .join('')}`;
}

/** Assigns ofports on one bridge: explicit ones, then preferred defaults, then the lowest free. */
class OfportAllocator {
  private readonly taken = new Map<number, string>();
  private readonly result = new Map<string, number>();

  constructor(
    private readonly topo: Topology,
    private readonly bridge: string,
  ) {}

  explicit(name: string, ofport: number, at: readonly PathSeg[]): void {
    const prev = this.taken.get(ofport);
    if (prev !== undefined) {
      this.topo.fail(at, `ofport ${ofport} on ${this.bridge} is also port ${prev}'s`);
    }
    this.taken.set(ofport, name);
    this.result.set(name, ofport);
  }

  preferred(name: string, ofport: number): void {
    if (this.result.has(name) || this.taken.has(ofport)) return;
    this.taken.set(ofport, name);
    this.result.set(name, ofport);
  }

  next(name: string): void {
    if (this.result.has(name)) return;
    let n = 1;
    while (this.taken.has(n)) n++;
    this.taken.set(n, name);
    this.result.set(name, n);
  }

  get(name: string): number {
    return this.result.get(name)!;
  }
}

/** Plans every node of a topology. */
export function planNodes(topo: Topology): NodePlan[] {
  const hosts = new Map(topo.routers.map((r) => [r, routerHosts(topo, r)]));
  const hasBrEx = topo.networks.some((n) => n.external);

  // The ports of each node, in the default allocation order.
  const portsOf = (node: Node): Port[] => {
    const out: Port[] = topo.dhcpPorts.filter((p) => p.node === node.name);
    for (const r of topo.routers) {
      if (!hosts.get(r)!.has(node.name)) continue;
      out.push(...r.interfaces.map((i) => i.qr));
      if (r.snatNode === node.name) {
        for (const i of r.interfaces) if (i.sg) out.push(i.sg);
        if (r.gateway) out.push(r.gateway);
      }
    }
    out.push(...topo.vms.filter((v) => v.node === node.name).map((v) => v.port));
    const fg = topo.fipGateways.get(node.name);
    if (fg) out.push(fg);
    return out;
  };

  const nodePorts = new Map(topo.nodes.map((n) => [n.name, portsOf(n)]));
  const netsOf = (node: Node) => new Set(nodePorts.get(node.name)!.map((p) => p.network));

  return topo.nodes.map((node) => {
    const at = (name: string): PathSeg[] => ['nodes', node.index, 'ofports', name];
    const ports = nodePorts.get(node.name)!;
    const known = new Set<string>();

    // br-int.
    const int = new OfportAllocator(topo, 'br-int');
    const intNames = [
      ...(hasBrEx ? ['int-br-ex'] : []),
      'patch-tun',
      ...ports.map((p) => p.device),
    ];
    for (const name of intNames) {
      known.add(name);
      const given = node.ofports.get(name);
      if (given !== undefined) int.explicit(name, given, at(name));
    }
    for (const p of ports) {
      if (p.ofport !== undefined && node.ofports.get(p.device) === undefined) {
        const vmIndex = topo.vms.findIndex((v) => v.port === p);
        int.explicit(p.device, p.ofport, ['vms', vmIndex, 'ofport']);
      }
    }
    if (hasBrEx) int.preferred('int-br-ex', 1);
    // The agent creates int-br-ex before patch-tun when the node has a bridge mapping.
    int.preferred('patch-tun', hasBrEx ? 2 : 1);
    for (const name of intNames) int.next(name);

    // br-tun: tunnels to the nodes sharing a tunnelled network.
    const mine = netsOf(node);
    const peers = topo.nodes.filter(
      (other) =>
        other !== node && [...netsOf(other)].some((n) => n.vni !== undefined && mine.has(n)),
    );
    const tun = new OfportAllocator(topo, 'br-tun');
    const tunNames = ['patch-int', ...peers.map((p) => tunnelPortName(p.tunnelIp))];
    for (const name of tunNames) {
      known.add(name);
      const given = node.ofports.get(name);
      if (given !== undefined) tun.explicit(name, given, at(name));
    }
    tun.preferred('patch-int', 1);
    for (const name of tunNames) tun.next(name);

    // br-ex.
    let brEx: NodePlan['brEx'];
    if (hasBrEx) {
      const ex = new OfportAllocator(topo, 'br-ex');
      const up = node.uplink.name;
      // Port names are unique on a node, and a bridge's name is its LOCAL port's.
      const taken = ['br-int', 'br-tun', 'br-ex'].includes(up)
        ? `bridge ${up} (its LOCAL port)`
        : intNames.includes(up)
          ? 'a port of br-int'
          : tunNames.includes(up)
            ? 'a port of br-tun'
            : up === 'phy-br-ex'
              ? 'the patch port of br-ex'
              : undefined;
      if (taken) {
        topo.fail(['nodes', node.index, 'uplink', 'name'], `"${up}" is taken by ${taken}`);
      }
      for (const name of [up, 'phy-br-ex']) {
        known.add(name);
        const given = node.ofports.get(name);
        if (given !== undefined) ex.explicit(name, given, at(name));
      }
      if (node.uplink.ofport !== undefined && node.ofports.get(up) === undefined) {
        ex.explicit(up, node.uplink.ofport, ['nodes', node.index, 'uplink', 'ofport']);
      }
      ex.preferred(up, 1);
      ex.preferred('phy-br-ex', 2);
      ex.next(up);
      ex.next('phy-br-ex');
      brEx = { phy: ex.get('phy-br-ex'), uplink: { name: up, ofport: ex.get(up) } };
    }

    for (const name of node.ofports.keys()) {
      if (!known.has(name)) {
        topo.fail(
          at(name),
          `node "${node.name}" has no port named "${name}" (ports: ${[...known].join(', ')})`,
        );
      }
    }

    // Local VLANs: explicit ones, then in bind order.
    const bound = ports
      .map((p) => ({ port: p, ofport: int.get(p.device) }))
      .sort((a, b) => a.ofport - b.ofport);
    const lv = new Map<Network, number>();
    const usedLv = new Set<number>();
    for (const [name, v] of node.localVlans) {
      const net = topo.networks.find((n) => n.name === name)!;
      if (!mine.has(net)) {
        topo.fail(
          ['nodes', node.index, 'local_vlans', name],
          `network "${name}" has no port on node "${node.name}"`,
        );
      }
      lv.set(net, v);
      usedLv.add(v);
    }
    for (const b of bound) {
      if (lv.has(b.port.network)) continue;
      let v = 1;
      while (usedLv.has(v)) v++;
      usedLv.add(v);
      lv.set(b.port.network, v);
    }

    return {
      node,
      dvr: node.mode !== 'legacy',
      ports: bound.map((b) => ({ ...b, lv: lv.get(b.port.network)! })),
      intBrEx: hasBrEx ? int.get('int-br-ex') : undefined,
      patchTun: int.get('patch-tun'),
      patchInt: tun.get('patch-int'),
      tunnels: peers.map((peer) => {
        const name = tunnelPortName(peer.tunnelIp);
        return { peer, name, ofport: tun.get(name) };
      }),
      brEx,
      lv,
      hosted: topo.routers.filter((r) => hosts.get(r)!.has(node.name)),
    };
  });
}
