/**
 * `dvrlab replay --map`: the endpoints a capture's hosts can become, read from a Neutron
 * topology and handed to the engine once per run as a `NativeMapSpec`. The engine keeps the
 * host table and rewrites every frame (native/src/engine/map.rs, which states the mapping
 * rules); this side only says, for every VM, its port, MAC and fixed IPs, the router
 * interface (qr-) of each of its subnets, and how the outside reaches it: through its
 * floating IP (the uplink of the node whose fip namespace, or legacy router, answers ARP
 * for it) or its router's SNAT address (qg- on the SNAT node).
 */
import { existsSync, readFileSync } from 'node:fs';
import { ScenarioError, UsageError } from '../errors.js';
import { EXTERNAL_GW_MAC } from '../demo/capture.js';
import { describeFsError } from '../scenario/load.js';
import { detectFormat, parseText } from '../scenario/parse.js';
import type { NativeScenario } from '../native.js';
import { contains, formatIp, lastAddress, parseIp, type Prefix } from './addr.js';
import { DEVSTACK_DVR, DEVSTACK_DVR_YAML } from './devstack-dvr.js';
import { isTopology } from './schema.js';
import { type FixedIp, type Router, resolveTopology, type Topology, type Vm } from './topology.js';

/** An address and the MAC that answers for it. */
export interface NativeMapGateway {
  ip?: string;
  mac: string;
}

/** Where a frame from outside the cloud enters it for one VM. */
export interface NativeMapIngress {
  ip: string; // the floating IP, or the router's SNAT address
  mac: string; // the MAC that answers ARP for it (fg-, or qg-)
  arpIp: string; // the address of the interface that asks the external gateway's MAC
  node: string;
  port: string; // the node's uplink (a port reference; canonical once planned)
}

export interface NativeMapVm {
  name: string;
  node: string;
  port: string; // the VM's port (a port reference; canonical once planned)
  mac: string;
  network: string;
  ipv4?: string;
  ipv6?: string;
  broadcast4?: string;
  gateway4?: NativeMapGateway;
  gateway6?: NativeMapGateway;
  fip?: NativeMapIngress;
  snat?: NativeMapIngress;
}

/** What the engine's mapper is built from (`engine::map::MapSpec`). */
export interface NativeMapSpec {
  vms: NativeMapVm[];
  externalGateway?: NativeMapGateway;
  externalIpv6: boolean;
  cloudPrefixes: string[];
}

/** What the mapper did: stats.json `map` (records = mapped + the skipped counts). */
export interface MapStatsJson {
  records: number; // capture records read
  mapped: number; // records rewritten and injected (packets_in)
  skipped: Record<string, number>; // reason -> records not injected
  checksums_fixed: number; // mapped frames whose checksum was wrong in the capture, recomputed
  hosts: number;
  host_table: { vm: Record<string, number>; outside: number; outside_remapped: number };
}

/** One line of DIR/map.json: a host of the capture and the endpoint it became. */
export interface MapHostJson {
  host: string; // the capture's address (IPv4, IPv6) or MAC
  kind: 'vm' | 'outside';
  name: string; // the VM, or "outside"
  node: string | null; // null for an outside host: it enters on the uplink serving its peer
  port: string | null;
  mac: string;
  ip: string | null; // the address its frames carry (null: a MAC host)
  remapped?: boolean; // outside hosts: moved into 198.18.0.0/15 (2001:2::/48)
  first_packet: number; // the capture record (1-based) it first appeared in
}

/**
 * The topology of a `--map` replay: `devstack-dvr` or a topology file. Anything else (a raw
 * or one-node scenario) is a usage error, since only a topology says what a VM is.
 */
export function loadMapTopology(file: string): Topology {
  let text: string;
  if (file === DEVSTACK_DVR && !existsSync(file)) {
    text = DEVSTACK_DVR_YAML;
  } else {
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ScenarioError(`${file}: cannot read scenario: ${describeFsError(e)}`);
    }
  }
  const parsed = parseText(text, file, detectFormat(file, text));
  if (!isTopology(parsed.value)) {
    throw new UsageError(
      `--map: ${file} is a raw scenario; --map needs a Neutron topology ` +
        `(devstack-dvr, or a file with networks[] and vms[]) to know the VMs`,
    );
  }
  const topo = resolveTopology(parsed.value, file, parsed.locate);
  if (topo.vms.length === 0) {
    throw new UsageError(`--map: ${file} has no VM to map the capture's hosts onto`);
  }
  return topo;
}

/** The router with an interface on `ip`'s subnet, and that interface's qr- port. */
function routerOf(topo: Topology, ip: FixedIp) {
  for (const r of topo.routers) {
    const itf = r.interfaces.find((i) => i.subnet === ip.subnet);
    if (itf) return { router: r, qr: itf.qr };
  }
  return undefined;
}

function v4Of(ips: FixedIp[]): string | undefined {
  return ips.find((f) => f.subnet.family === 4)?.ip;
}

function snatOf(r: Router): NativeMapIngress | undefined {
  const qg = r.gateway;
  const ip = qg && v4Of(qg.fixedIps);
  if (!qg || !ip || r.snatNode === undefined) return undefined;
  return { ip, mac: qg.mac, arpIp: ip, node: r.snatNode, port: `${r.snatNode}/uplink` };
}

function fipOf(topo: Topology, vm: Vm): NativeMapIngress | undefined {
  const fip = topo.floatingIps.find((f) => f.vm === vm);
  if (!fip) return undefined;
  if (fip.router.distributed) {
    // DVR: the VM's own node's fip namespace answers ARP for the floating IP on its fg- port.
    const fg = topo.fipGateways.get(vm.node);
    const fgIp = fg && v4Of(fg.fixedIps);
    if (!fg || !fgIp) return undefined;
    return { ip: fip.ip, mac: fg.mac, arpIp: fgIp, node: vm.node, port: `${vm.node}/uplink` };
  }
  // A legacy router holds the floating IP on its qg- port, on its node.
  const snat = snatOf(fip.router);
  return snat && { ...snat, ip: fip.ip };
}

/**
 * The mapper's view of a topology, with its port references made canonical by `canonical`
 * (`(ref) => portIndex.resolveInput(ref).ref`), ready for the engine (replay, bench).
 */
export function mapSpecFor(topo: Topology, canonical: (ref: string) => string): NativeMapSpec {
  const spec = mapSpec(topo);
  for (const vm of spec.vms) {
    vm.port = canonical(vm.port);
    for (const ingress of [vm.fip, vm.snat]) if (ingress) ingress.port = canonical(ingress.port);
  }
  return spec;
}

/** The mapper's view of a topology. Port references are the loose forms (VM name,
 * NODE/uplink); `mapSpecFor` makes them canonical. */
export function mapSpec(topo: Topology): NativeMapSpec {
  const vms = topo.vms.map((vm): NativeMapVm => {
    const ip4 = vm.port.fixedIps.find((f) => f.subnet.family === 4);
    const ip6 = vm.port.fixedIps.find((f) => f.subnet.family === 6);
    const out: NativeMapVm = {
      name: vm.name,
      node: vm.node,
      port: vm.name,
      mac: vm.port.mac,
      network: vm.network.name,
    };
    if (ip4) {
      out.ipv4 = ip4.ip;
      out.broadcast4 = formatIp(lastAddress(ip4.subnet.prefix));
      const r = routerOf(topo, ip4);
      if (r) {
        out.gateway4 = { ip: v4Of(r.qr.fixedIps), mac: r.qr.mac };
        const snat = snatOf(r.router);
        if (snat) out.snat = snat;
      }
    }
    if (ip6) {
      out.ipv6 = ip6.ip;
      const r = routerOf(topo, ip6);
      const gw = r?.qr.fixedIps.find((f) => f.subnet.family === 6)?.ip;
      if (r) out.gateway6 = { ip: gw, mac: r.qr.mac };
    }
    const fip = fipOf(topo, vm);
    if (fip) out.fip = fip;
    return out;
  });
  const external = topo.networks.find((n) => n.external);
  const extGw = external?.subnets.find((s) => s.family === 4)?.gatewayIp;
  return {
    vms,
    externalGateway: { ...(extGw !== undefined ? { ip: extGw } : {}), mac: EXTERNAL_GW_MAC },
    externalIpv6: external?.subnets.some((s) => s.family === 6) ?? false,
    cloudPrefixes: topo.networks.flatMap((n) => n.subnets.map((s) => s.cidr)),
  };
}

/**
 * Neither the VMs nor the external gateway are emulated, and a capture from elsewhere never
 * carries their ARP answers, so a namespace that must resolve one of them would wait for
 * its MAC until the end and drop what it routes there (`namespace_no_neighbor`): the snat
 * namespace for a VM on its own node (br-tun's ARP responder answers for remote ones only),
 * the snat and fip namespaces for the external gateway. For a `--map` replay every
 * namespace interface knows them from the start, as permanent neighbours: what a real
 * cloud learns from their first ARP answer. Entries the namespace has are kept.
 */
export function knowEndpoints(scenario: NativeScenario, topo: Topology): void {
  const known: { ip: string; mac: string; prefix: Prefix }[] = [];
  const external = topo.networks.find((n) => n.external)?.subnets.find((s) => s.family === 4);
  if (external?.gatewayIp !== undefined) {
    known.push({ ip: external.gatewayIp, mac: EXTERNAL_GW_MAC, prefix: external.prefix });
  }
  for (const vm of topo.vms) {
    for (const f of vm.port.fixedIps) {
      if (f.subnet.family === 4)
        known.push({ ip: f.ip, mac: vm.port.mac, prefix: f.subnet.prefix });
    }
  }
  interface Ns {
    interfaces?: { name: string; addresses?: string[] }[];
    ip_neigh?: string;
  }
  for (const node of scenario.nodes) {
    for (const ns of (node.namespaces ?? []) as Ns[]) {
      let text = ns.ip_neigh ?? '';
      const has = new Set(
        text.split('\n').map((l) => l.trim().split(/\s+/).slice(0, 3).join(' ')),
      );
      for (const itf of ns.interfaces ?? []) {
        const own = (itf.addresses ?? []).map((a) => parseIp(a.split('/')[0]!));
        for (const k of known) {
          const peer = parseIp(k.ip);
          if (!peer || !own.some((a) => a !== undefined && contains(k.prefix, a))) continue;
          if (own.some((a) => a?.value === peer.value && a.family === peer.family)) continue;
          if (has.has(`${k.ip} dev ${itf.name}`)) continue;
          if (text !== '' && !text.endsWith('\n')) text += '\n';
          text += `${k.ip} dev ${itf.name} lladdr ${k.mac} PERMANENT\n`;
        }
      }
      ns.ip_neigh = text;
    }
  }
}
