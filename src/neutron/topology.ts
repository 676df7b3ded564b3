/**
 * Loading a Neutron topology: parse (JSON or YAML, with positions), check the shape with the
 * zod schema, then check the references and the address plan, and resolve every Neutron port
 * the agents would bind (VM ports, DHCP ports, the routers' qr-, sg- and qg- ports and the
 * nodes' fg- ports) with its id, device name, MAC and fixed IPs.
 *
 * Every error is a `ScenarioError` of one line, `FILE:LINE:COLUMN: PATH: what`, as for raw
 * scenarios. Checks: unique names, tunnel IPs and MACs; unique device names (port ids that
 * differ in their first 11 characters, one DHCP port per network and node); known nodes,
 * networks, subnets, VMs; a network is either tunnelled (`vni`) or external; subnets that
 * overlap within a network or on one router; addresses inside their subnet and used once; the
 * agent mode each router needs; floating IPs on an external network, for a VM whose subnet a
 * router connects to that network. What passes compiles to a scenario src/scenario/ accepts.
 *
 * Defaults are deterministic: ids, MACs and cookies derive from names, free addresses are
 * taken from the low end of the subnet, in the order the topology lists things.
 */
import { readFileSync } from 'node:fs';
import { ScenarioError } from '../errors.js';
import { describeFsError } from '../scenario/load.js';
import {
  detectFormat,
  formatPath,
  parseText,
  type PathSeg,
  type SourcePos,
} from '../scenario/parse.js';
import { reportIssue } from '../scenario/schema.js';
import {
  type Ip,
  type Prefix,
  addIp,
  canonicalIp,
  canonicalMac,
  contains,
  eui64,
  formatIp,
  formatNetwork,
  ip,
  lastAddress,
  network as networkOf,
  overlaps,
  parsePrefix,
  seededCookie,
  seededMac,
  seededUuid,
} from './addr.js';
import { type TopologyFile, topologySchema } from './schema.js';

export type AgentMode = 'dvr' | 'dvr_snat' | 'legacy';

export interface Subnet {
  name: string;
  id: string;
  prefix: Prefix;
  cidr: string; // the network in canonical form, `10.0.0.0/26`
  family: 4 | 6;
  gatewayIp?: string;
  network: Network;
}

export interface Network {
  name: string;
  id: string;
  vni?: number; // tunnelled (VXLAN) network
  external: boolean; // flat provider network on br-ex
  mtu: number;
  subnets: Subnet[];
}

export interface FixedIp {
  subnet: Subnet;
  ip: string; // canonical text
}

/** The kinds of Neutron ports the agents bind on br-int. */
export type PortKind = 'vm' | 'dhcp' | 'qr' | 'sg' | 'qg' | 'fg';

const DEVICE_PREFIX: Record<PortKind, string> = {
  vm: 'qvo',
  dhcp: 'tap',
  qr: 'qr-',
  sg: 'sg-',
  qg: 'qg-',
  fg: 'fg-',
};

/** A Neutron port. A qr- port of a distributed router is bound on several nodes at once. */
export interface Port {
  kind: PortKind;
  id: string;
  device: string; // 3-character prefix + the first 11 characters of the id
  network: Network;
  mac: string;
  fixedIps: FixedIp[];
  router?: Router;
  vm?: Vm;
  node?: string; // the one node a non-distributed port is bound on
  ofport?: number; // an explicit ofport (VM ports)
}

export interface Node {
  name: string;
  mode: AgentMode;
  tunnelIp: string;
  underlayMac: string;
  dvrMac?: string; // dvr and dvr_snat nodes
  uplink: { name: string; ofport?: number };
  ofports: Map<string, number>;
  localVlans: Map<string, number>;
  cookies: { brInt: string; brTun: string; brEx: string };
  index: number;
}

export interface RouterInterface {
  subnet: Subnet;
  qr: Port;
  sg?: Port; // distributed router with a gateway
}

export interface FipLink {
  rfp?: string; // `169.254.106.114/31`
  rfpMac?: string;
  fprMac?: string;
}

export interface Router {
  name: string;
  id: string;
  distributed: boolean;
  snatNode?: string;
  gateway?: Port; // the qg- port
  gatewayNetwork?: Network;
  interfaces: RouterInterface[];
  fipLinks: Map<string, FipLink>;
}

export interface Vm {
  name: string;
  node: string;
  network: Network;
  port: Port;
}

export interface FloatingIp {
  ip: string;
  vm: Vm;
  fixedIp: string; // the VM's IPv4 address
  router: Router;
  network: Network; // the external network
  rulePriority?: number;
}

/** A checked, resolved topology. */
export interface Topology {
  file: string;
  nodes: Node[];
  networks: Network[];
  routers: Router[];
  vms: Vm[];
  dhcpPorts: Port[];
  floatingIps: FloatingIp[];
  /** The fg- port of each node that hosts a floating IP of a distributed router. */
  fipGateways: Map<string, Port>;
  /** Reports a mistake found later (for example by the compiler) at a path of the file. */
  fail(path: readonly PathSeg[], message: string): never;
}

/** Reads and checks a topology file. */
export function loadTopology(file: string): Topology {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ScenarioError(`${file}: cannot read topology: ${describeFsError(e)}`);
  }
  return loadTopologyText(text, file);
}

/** As `loadTopology`, for text already read; `file` names it in messages. */
export function loadTopologyText(text: string, file: string): Topology {
  const parsed = parseText(text, file, detectFormat(file, text));
  return resolveTopology(parsed.value, file, parsed.locate);
}

/** Checks a parsed topology document; `locate` gives source positions for messages. */
export function resolveTopology(
  value: unknown,
  file: string,
  locate: (path: readonly PathSeg[]) => SourcePos | undefined = () => undefined,
): Topology {
  return new Resolver(file, locate).resolve(value);
}

/** The first 11 characters of a port id, as device names use them. */
function idPrefix(id: string): string {
  return id.slice(0, 11);
}

class Resolver {
  private readonly macs = new Map<string, string>(); // MAC -> what uses it
  private readonly reserved = new Set<string>(); // every MAC the topology gives
  private readonly used = new Map<Subnet, Map<string, string>>(); // subnet -> IP -> user
  private readonly devices = new Map<string, string>(); // device name -> the port's user

  constructor(
    private readonly file: string,
    private readonly locate: (path: readonly PathSeg[]) => SourcePos | undefined,
  ) {}

  readonly fail: (p: readonly PathSeg[], message: string) => never = (p, message) => {
    const pos = this.locate(p);
    const where = pos ? `${this.file}:${pos.line}:${pos.column}` : this.file;
    throw new ScenarioError(`${p.length > 0 ? `${where}: ${formatPath(p)}` : where}: ${message}`);
  };

  resolve(value: unknown): Topology {
    const result = topologySchema.safeParse(value);
    if (!result.success) {
      const { path, message } = reportIssue(topologySchema, result.error.issues, value);
      return this.fail(path, message);
    }
    const data = result.data;
    // Defaults must not take a MAC the topology gives to a port listed later.
    const given = [
      ...data.nodes.flatMap((n) => [n.dvr_mac, n.underlay_mac, n.fip_gateway?.mac]),
      ...(data.vms ?? []).map((v) => v.mac),
      ...(data.dhcp_ports ?? []).map((d) => d.mac),
      ...(data.routers ?? []).flatMap((r) => [
        r.gateway?.mac,
        ...r.interfaces.flatMap((i) => [i.mac, i.snat?.mac]),
      ]),
    ];
    for (const m of given) if (m !== undefined) this.reserved.add(canonicalMac(m));
    const nodes = this.nodes(data);
    const networks = this.networks(data);
    const subnets = new Map<string, Subnet>();
    data.networks.forEach((n, ni) =>
      n.subnets.forEach((s, si) => {
        const sub = networks[ni].subnets[si];
        if (subnets.has(s.name)) {
          this.fail(['networks', ni, 'subnets', si, 'name'], `duplicate subnet name "${s.name}"`);
        }
        subnets.set(s.name, sub);
      }),
    );
    const nodeByName = new Map(nodes.map((n) => [n.name, n]));
    const netByName = new Map(networks.map((n) => [n.name, n]));
    this.checkNodeRefs(data, netByName);

    const vms = this.vms(data, nodeByName, netByName);
    const dhcpPorts = this.dhcp(data, nodeByName, netByName);
    const routers = this.routers(data, nodeByName, netByName, subnets);
    this.checkAgentModes(nodes, routers, vms, dhcpPorts);
    const floatingIps = this.floatingIps(data, vms, routers, networks);
    // Explicit fg- addresses and MACs are claimed before any default is chosen.
    const fgSpecs = data.nodes.map((n, i) => {
      const g = n.fip_gateway;
      const here = ['nodes', i, 'fip_gateway'];
      const mac = g?.mac === undefined ? undefined : canonicalMac(g.mac);
      if (mac) this.claimMac(mac, `the fg- port of ${n.name}`, [...here, 'mac']);
      let addr: FixedIp | undefined;
      if (g?.ip !== undefined) {
        const ext = networks.find((x) => x.external);
        if (!ext) return this.fail([...here, 'ip'], 'there is no external network');
        const a = canonicalIp(g.ip);
        addr = { subnet: this.subnetOf(ext, a, [...here, 'ip']), ip: a };
        this.claimIp(addr.subnet, a, `the fg- port of ${n.name}`, [...here, 'ip']);
      }
      return { portId: g?.port_id, mac, addr };
    });
    this.allocate();
    const fipGateways = this.fipGateways(data, nodes, floatingIps, fgSpecs);
    return {
      file: this.file,
      nodes,
      networks,
      routers,
      vms,
      dhcpPorts,
      floatingIps,
      fipGateways,
      fail: this.fail,
    };
  }

  /**
   * Marks a device name used. Names are the kind's prefix and 11 characters of the port id,
   * so two ports whose given ids share those would be one port in the compiled scenario.
   */
  private claimDevice(device: string, user: string, p: readonly PathSeg[]): void {
    const prev = this.devices.get(device);
    if (prev !== undefined) this.fail(p, `port ${device} is already ${prev}`);
    this.devices.set(device, user);
  }

  private claimMac(mac: string, user: string, p: readonly PathSeg[]): void {
    const prev = this.macs.get(mac);
    if (prev !== undefined) this.fail(p, `MAC ${mac} is already used by ${prev}`);
    this.macs.set(mac, user);
  }

  /** A MAC for `seed` that nothing uses yet. */
  private freshMac(prefix: string, seed: string, user: string): string {
    for (let i = 0; ; i++) {
      const m = seededMac(prefix, i === 0 ? seed : `${seed}#${i}`);
      if (!this.macs.has(m) && !this.reserved.has(m)) {
        this.macs.set(m, user);
        return m;
      }
    }
  }

  /** Marks an address used; only a router interface may take its subnet's gateway_ip. */
  private claimIp(
    subnet: Subnet,
    addr: string,
    user: string,
    p: readonly PathSeg[],
    gateway = false,
  ): void {
    if (addr === subnet.gatewayIp && !gateway) {
      this.fail(p, `${addr} is the gateway_ip of subnet "${subnet.name}"`);
    }
    let m = this.used.get(subnet);
    if (!m) this.used.set(subnet, (m = new Map()));
    const prev = m.get(addr);
    if (prev !== undefined) this.fail(p, `${addr} is already used by ${prev}`);
    m.set(addr, user);
  }

  /** The lowest free host address of a subnet, after the gateway. */
  private freeIp(subnet: Subnet, user: string, p: readonly PathSeg[]): string {
    let m = this.used.get(subnet);
    if (!m) this.used.set(subnet, (m = new Map()));
    const last = lastAddress(subnet.prefix);
    for (let a: Ip = addIp(networkOf(subnet.prefix), 2n); a.value < last.value; a = addIp(a, 1n)) {
      const text = formatIp(a);
      if (!m.has(text) && text !== subnet.gatewayIp) {
        m.set(text, user);
        return text;
      }
    }
    return this.fail(
      p,
      `subnet "${subnet.name}" (${subnet.cidr}) has no free address for ${user}`,
    );
  }

  private nodes(data: TopologyFile): Node[] {
    const names = new Set<string>();
    const tunnelIps = new Map<string, string>();
    return data.nodes.map((n, i) => {
      const here = ['nodes', i];
      if (names.has(n.name)) this.fail([...here, 'name'], `duplicate node name "${n.name}"`);
      names.add(n.name);
      const prev = tunnelIps.get(n.tunnel_ip);
      if (prev)
        this.fail([...here, 'tunnel_ip'], `tunnel IP ${n.tunnel_ip} is also node "${prev}"'s`);
      tunnelIps.set(n.tunnel_ip, n.name);
      let dvrMac: string | undefined;
      if (n.agent_mode === 'legacy') {
        if (n.dvr_mac !== undefined) {
          this.fail([...here, 'dvr_mac'], 'only dvr and dvr_snat nodes have a DVR MAC');
        }
      } else if (n.dvr_mac !== undefined) {
        dvrMac = canonicalMac(n.dvr_mac);
        this.claimMac(dvrMac, `the DVR MAC of ${n.name}`, [...here, 'dvr_mac']);
      }
      let underlayMac: string;
      if (n.underlay_mac !== undefined) {
        underlayMac = canonicalMac(n.underlay_mac);
        this.claimMac(underlayMac, `the underlay NIC of ${n.name}`, [...here, 'underlay_mac']);
      } else {
        // A locally administered MAC made of the tunnel IP: 02:00:c0:a8:01:0c for .12.
        const b = n.tunnel_ip.split('.').map((x) => Number(x).toString(16).padStart(2, '0'));
        underlayMac = `02:00:${b.join(':')}`;
        this.claimMac(underlayMac, `the underlay NIC of ${n.name}`, [...here, 'tunnel_ip']);
      }
      return {
        name: n.name,
        mode: n.agent_mode,
        tunnelIp: n.tunnel_ip,
        underlayMac,
        dvrMac,
        uplink: { name: n.uplink?.name ?? 'uplink', ofport: n.uplink?.ofport },
        ofports: new Map(Object.entries(n.ofports ?? {})),
        localVlans: new Map(Object.entries(n.local_vlans ?? {})),
        cookies: {
          brInt: cookieText(n.cookies?.['br-int']) ?? seededCookie(`${n.name}/br-int`),
          brTun: cookieText(n.cookies?.['br-tun']) ?? seededCookie(`${n.name}/br-tun`),
          brEx: cookieText(n.cookies?.['br-ex']) ?? seededCookie(`${n.name}/br-ex`),
        },
        index: i,
      };
    });
  }

  /** DVR MACs left out get defaults once every explicit MAC is known. */
  private defaultDvrMacs(nodes: Node[]): void {
    for (const n of nodes) {
      if (n.mode !== 'legacy' && n.dvrMac === undefined) {
        n.dvrMac = this.freshMac('fa:16:3f', `dvr:${n.name}`, `the DVR MAC of ${n.name}`);
      }
    }
  }

  private networks(data: TopologyFile): Network[] {
    const names = new Set<string>();
    const vnis = new Map<number, string>();
    let external: string | undefined;
    return data.networks.map((n, ni) => {
      const here = ['networks', ni];
      if (names.has(n.name)) this.fail([...here, 'name'], `duplicate network name "${n.name}"`);
      names.add(n.name);
      const isExternal = n.external === true;
      if (isExternal && n.vni !== undefined) {
        this.fail([...here, 'vni'], 'an external network is flat on br-ex and has no vni');
      }
      if (!isExternal && n.vni === undefined) {
        this.fail(here, 'missing (expected a vni for a tunnelled network, or external: true)');
      }
      if (isExternal) {
        if (external) {
          this.fail(
            [...here, 'external'],
            `only one external network is supported (also "${external}")`,
          );
        }
        external = n.name;
      } else {
        const prev = vnis.get(n.vni!);
        if (prev) this.fail([...here, 'vni'], `VNI ${n.vni} is also network "${prev}"'s`);
        vnis.set(n.vni!, n.name);
      }
      const net: Network = {
        name: n.name,
        id: n.id ?? seededUuid(`network:${n.name}`),
        vni: n.vni,
        external: isExternal,
        mtu: n.mtu ?? (isExternal ? 1500 : 1450),
        subnets: [],
      };
      n.subnets.forEach((s, si) => {
        const sp = [...here, 'subnets', si];
        const prefix = parsePrefix(s.cidr)!;
        const sub: Subnet = {
          name: s.name,
          id: s.id ?? seededUuid(`subnet:${s.name}`),
          prefix: { ip: networkOf(prefix), len: prefix.len },
          cidr: formatNetwork(prefix),
          family: prefix.ip.family,
          network: net,
        };
        for (const other of net.subnets) {
          if (overlaps(other.prefix, sub.prefix)) {
            this.fail(
              [...sp, 'cidr'],
              `${sub.cidr} overlaps subnet "${other.name}" (${other.cidr}) of the same network`,
            );
          }
        }
        if (s.gateway_ip !== undefined) {
          const gw = ip(s.gateway_ip);
          if (!contains(sub.prefix, gw)) {
            this.fail([...sp, 'gateway_ip'], `${s.gateway_ip} is not in ${sub.cidr}`);
          }
          sub.gatewayIp = formatIp(gw);
        }
        net.subnets.push(sub);
      });
      return net;
    });
  }

  private checkNodeRefs(data: TopologyFile, nets: Map<string, Network>): void {
    data.nodes.forEach((n, i) => {
      const seen = new Map<number, string>();
      for (const [net, lv] of Object.entries(n.local_vlans ?? {})) {
        if (!nets.has(net))
          this.fail(['nodes', i, 'local_vlans', net], `no network named "${net}"`);
        const prev = seen.get(lv);
        if (prev)
          this.fail(['nodes', i, 'local_vlans', net], `local VLAN ${lv} is also "${prev}"'s`);
        seen.set(lv, net);
      }
    });
  }

  /** The subnet of `net` holding `addr`, or a failure at `p`. */
  private subnetOf(net: Network, addr: string, p: readonly PathSeg[]): Subnet {
    const a = ip(addr);
    const sub = net.subnets.find((s) => contains(s.prefix, a));
    if (!sub) {
      const list = net.subnets.map((s) => s.cidr).join(', ') || 'none';
      return this.fail(p, `${addr} is in no subnet of network "${net.name}" (subnets: ${list})`);
    }
    if (
      sub.family === 4 &&
      (a.value === sub.prefix.ip.value || a.value === lastAddress(sub.prefix).value)
    ) {
      this.fail(p, `${addr} is the network or broadcast address of ${sub.cidr}`);
    }
    return sub;
  }

  /** Adds the SLAAC (EUI-64) address of every IPv6 subnet not already covered. */
  private slaac(port: Port, p: readonly PathSeg[]): void {
    for (const s of port.network.subnets) {
      if (s.family !== 6 || port.fixedIps.some((f) => f.subnet === s)) continue;
      const a = formatIp(eui64(s.prefix, port.mac));
      this.claimIp(s, a, `${port.device} (SLAAC)`, p);
      port.fixedIps.push({ subnet: s, ip: a });
    }
  }

  private vms(data: TopologyFile, nodes: Map<string, Node>, nets: Map<string, Network>): Vm[] {
    const names = new Set<string>();
    const vms = (data.vms ?? []).map((v, i): Vm => {
      const here = ['vms', i];
      if (names.has(v.name)) this.fail([...here, 'name'], `duplicate VM name "${v.name}"`);
      if (nodes.has(v.name))
        this.fail([...here, 'name'], `VM name "${v.name}" is also a node name`);
      names.add(v.name);
      if (!nodes.has(v.node))
        this.fail([...here, 'node'], this.unknown('node', v.node, [...nodes.keys()]));
      const net = nets.get(v.network);
      if (!net)
        return this.fail(
          [...here, 'network'],
          this.unknown('network', v.network, [...nets.keys()]),
        );
      let id = v.port_id;
      if (v.port !== undefined) {
        const fromName = v.port.slice(3);
        if (id !== undefined && idPrefix(id) !== fromName) {
          this.fail(
            [...here, 'port'],
            `port ${v.port} does not match port_id ${id} (expected qvo${idPrefix(id)})`,
          );
        }
        id ??= fromName;
      }
      if (v.ofport !== undefined) {
        const node = nodes.get(v.node)!;
        const given = node.ofports.get(`qvo${idPrefix(id ?? '')}`);
        if (id !== undefined && given !== undefined && given !== v.ofport) {
          this.fail(
            [...here, 'ofport'],
            `ofport ${v.ofport} differs from node "${v.node}"'s ofports (${given})`,
          );
        }
      }
      id ??= seededUuid(`port:vm:${v.name}`);
      const device = `qvo${idPrefix(id)}`;
      if (this.devices.has(device))
        this.fail([...here, 'port_id'], `port ${device} is used by another VM`);
      this.devices.set(device, `VM ${v.name}'s`);
      const addr = canonicalIp(v.ip);
      const sub = this.subnetOf(net, addr, [...here, 'ip']);
      this.claimIp(sub, addr, `VM ${v.name}`, [...here, 'ip']);
      const mac = v.mac === undefined ? undefined : canonicalMac(v.mac);
      if (mac) this.claimMac(mac, `VM ${v.name}`, [...here, 'mac']);
      const port: Port = {
        kind: 'vm',
        id,
        device,
        network: net,
        mac: mac ?? this.freshMac('fa:16:3e', `vm:${v.name}`, `VM ${v.name}`),
        fixedIps: [{ subnet: sub, ip: addr }],
        node: v.node,
        ofport: v.ofport,
      };
      this.slaac(port, [...here, 'mac']);
      const vm: Vm = { name: v.name, node: v.node, network: net, port };
      port.vm = vm;
      return vm;
    });
    return vms;
  }

  private dhcp(data: TopologyFile, nodes: Map<string, Node>, nets: Map<string, Network>): Port[] {
    const placed = new Map<string, number>(); // network and node -> index
    return (data.dhcp_ports ?? []).map((d, i) => {
      const here = ['dhcp_ports', i];
      // One DHCP agent per node serves a network, with one port.
      const key = JSON.stringify([d.network, d.node]);
      const prev = placed.get(key);
      if (prev !== undefined) {
        this.fail(
          [...here, 'node'],
          `network "${d.network}" already has a DHCP port on node "${d.node}" ` +
            `(dhcp_ports[${prev}])`,
        );
      }
      placed.set(key, i);
      if (!nodes.has(d.node))
        this.fail([...here, 'node'], this.unknown('node', d.node, [...nodes.keys()]));
      const net = nets.get(d.network);
      if (!net)
        return this.fail(
          [...here, 'network'],
          this.unknown('network', d.network, [...nets.keys()]),
        );
      const id = d.port_id ?? seededUuid(`port:dhcp:${d.network}:${d.node}`);
      const mac = d.mac === undefined ? undefined : canonicalMac(d.mac);
      const user = `the DHCP port of ${d.network}`;
      if (mac) this.claimMac(mac, user, [...here, 'mac']);
      const fixedIps = d.ips.map((a, j) => {
        const addr = canonicalIp(a);
        const sub = this.subnetOf(net, addr, [...here, 'ips', j]);
        this.claimIp(sub, addr, user, [...here, 'ips', j]);
        return { subnet: sub, ip: addr };
      });
      const device = `tap${idPrefix(id)}`;
      this.claimDevice(device, `the DHCP port of ${d.network} on ${d.node}`, [
        ...here,
        d.port_id !== undefined ? 'port_id' : 'node',
      ]);
      const port: Port = {
        kind: 'dhcp',
        id,
        device,
        network: net,
        mac: mac ?? this.freshMac('fa:16:3e', `dhcp:${d.network}:${d.node}`, user),
        fixedIps,
        node: d.node,
      };
      this.slaac(port, [...here, 'mac']);
      return port;
    });
  }

  private unknown(what: string, name: string, known: string[]): string {
    const list = known.length > 0 ? `known: ${known.join(', ')}` : `no ${what}s defined`;
    return `no ${what} named "${name}" (${list})`;
  }

  /** Router ports whose address or MAC is left out; filled in by `allocate`. */
  private readonly pending: {
    port: Port;
    subnet: Subnet;
    needIp: boolean;
    needMac: boolean;
    seed: string;
    p: PathSeg[];
  }[] = [];

  private routerPort(
    kind: PortKind,
    spec: { ip?: string; mac?: string; port_id?: string },
    subnet: Subnet,
    seed: string,
    user: string,
    p: PathSeg[],
    defaultIp?: string,
  ): Port {
    const id = spec.port_id ?? seededUuid(`port:${seed}`);
    const device = `${DEVICE_PREFIX[kind]}${idPrefix(id)}`;
    this.claimDevice(device, user, spec.port_id !== undefined ? [...p, 'port_id'] : p);
    const port: Port = {
      kind,
      id,
      device,
      network: subnet.network,
      mac: '',
      fixedIps: [],
    };
    const addr = spec.ip !== undefined ? canonicalIp(spec.ip) : defaultIp;
    if (addr !== undefined) {
      const a = ip(addr);
      if (!contains(subnet.prefix, a)) {
        this.fail([...p, 'ip'], `${addr} is not in subnet "${subnet.name}" (${subnet.cidr})`);
      }
      this.claimIp(subnet, addr, user, [...p, 'ip'], kind === 'qr');
      port.fixedIps.push({ subnet, ip: addr });
    }
    if (spec.mac !== undefined) {
      port.mac = canonicalMac(spec.mac);
      this.claimMac(port.mac, user, [...p, 'mac']);
    }
    this.pending.push({
      port,
      subnet,
      needIp: addr === undefined,
      needMac: spec.mac === undefined,
      seed,
      p,
    });
    return port;
  }

  private routers(
    data: TopologyFile,
    nodes: Map<string, Node>,
    nets: Map<string, Network>,
    subnets: Map<string, Subnet>,
  ): Router[] {
    const names = new Set<string>();
    const attached = new Map<Subnet, string>();
    return (data.routers ?? []).map((r, ri) => {
      const here = ['routers', ri];
      if (names.has(r.name)) this.fail([...here, 'name'], `duplicate router name "${r.name}"`);
      names.add(r.name);
      if (r.snat_node !== undefined && !nodes.has(r.snat_node)) {
        this.fail([...here, 'snat_node'], this.unknown('node', r.snat_node, [...nodes.keys()]));
      }
      const router: Router = {
        name: r.name,
        id: r.id ?? seededUuid(`router:${r.name}`),
        distributed: r.distributed ?? true,
        snatNode: r.snat_node,
        interfaces: [],
        fipLinks: new Map(),
      };
      const prefixes: { prefix: Prefix; what: string }[] = [];
      if (r.gateway) {
        const gp = [...here, 'gateway'];
        const net = nets.get(r.gateway.network);
        if (!net)
          return this.fail(
            [...gp, 'network'],
            this.unknown('network', r.gateway.network, [...nets.keys()]),
          );
        if (!net.external) this.fail([...gp, 'network'], `network "${net.name}" is not external`);
        const sub4 = net.subnets.find((s) => s.family === 4);
        if (!sub4)
          return this.fail([...gp, 'network'], `network "${net.name}" has no IPv4 subnet`);
        const sub =
          r.gateway.ip === undefined
            ? sub4
            : this.subnetOf(net, canonicalIp(r.gateway.ip), [...gp, 'ip']);
        router.gatewayNetwork = net;
        router.gateway = this.routerPort(
          'qg',
          r.gateway,
          sub,
          `qg:${r.name}`,
          `the gateway of ${r.name}`,
          gp,
        );
        router.gateway.router = router;
        prefixes.push({ prefix: sub.prefix, what: `gateway subnet "${sub.name}"` });
      }
      r.interfaces.forEach((itf, ii) => {
        const ip_ = [...here, 'interfaces', ii];
        const sub = subnets.get(itf.subnet);
        if (!sub)
          return this.fail(
            [...ip_, 'subnet'],
            this.unknown('subnet', itf.subnet, [...subnets.keys()]),
          );
        if (sub.network.external) {
          this.fail(
            [...ip_, 'subnet'],
            `subnet "${sub.name}" is on external network "${sub.network.name}" (use gateway)`,
          );
        }
        const prev = attached.get(sub);
        if (prev)
          this.fail(
            [...ip_, 'subnet'],
            `subnet "${sub.name}" is already attached to router "${prev}"`,
          );
        attached.set(sub, r.name);
        for (const other of prefixes) {
          if (overlaps(other.prefix, sub.prefix)) {
            this.fail(
              [...ip_, 'subnet'],
              `${sub.cidr} overlaps ${other.what} on router "${r.name}"`,
            );
          }
        }
        prefixes.push({ prefix: sub.prefix, what: `subnet "${sub.name}"` });
        if (itf.ip === undefined && sub.gatewayIp === undefined) {
          this.fail(ip_, `missing ip (subnet "${sub.name}" has no gateway_ip to default to)`);
        }
        const qr = this.routerPort(
          'qr',
          itf,
          sub,
          `qr:${r.name}:${sub.name}`,
          `router ${r.name}'s interface on ${sub.name}`,
          ip_,
          sub.gatewayIp,
        );
        qr.router = router;
        let sg: Port | undefined;
        if (router.distributed && r.gateway) {
          sg = this.routerPort(
            'sg',
            itf.snat ?? {},
            sub,
            `sg:${r.name}:${sub.name}`,
            `router ${r.name}'s SNAT port on ${sub.name}`,
            [...ip_, 'snat'],
          );
          sg.router = router;
        } else if (itf.snat !== undefined) {
          this.fail(
            [...ip_, 'snat'],
            'only a distributed router with a gateway has SNAT (sg-) ports',
          );
        }
        router.interfaces.push({ subnet: sub, qr, sg });
      });
      // Ports bound on one node: the gateway and SNAT ports, and a legacy router's qr- ports.
      if (router.snatNode !== undefined) {
        if (router.gateway) router.gateway.node = router.snatNode;
        for (const itf of router.interfaces) {
          if (itf.sg) itf.sg.node = router.snatNode;
          if (!router.distributed) itf.qr.node = router.snatNode;
        }
      }
      for (const [node, link] of Object.entries(r.fip_links ?? {})) {
        const lp = [...here, 'fip_links', node];
        if (!nodes.has(node)) this.fail(lp, this.unknown('node', node, [...nodes.keys()]));
        if (link.rfp !== undefined) {
          const pre = parsePrefix(link.rfp)!;
          if (pre.len !== 31 || (pre.ip.value & 1n) !== 0n) {
            this.fail(
              [...lp, 'rfp'],
              `expected the even address of a /31 (the rfp- end), got "${link.rfp}"`,
            );
          }
        }
        router.fipLinks.set(node, {
          rfp: link.rfp,
          rfpMac: link.rfp_mac === undefined ? undefined : canonicalMac(link.rfp_mac),
          fprMac: link.fpr_mac === undefined ? undefined : canonicalMac(link.fpr_mac),
        });
      }
      return router;
    });
  }

  /** Fills in the router ports' default addresses and MACs, in the order they were listed. */
  private allocate(): void {
    for (const x of this.pending) {
      const user = x.port.device;
      if (x.needIp)
        x.port.fixedIps.push({ subnet: x.subnet, ip: this.freeIp(x.subnet, user, x.p) });
      if (x.needMac) x.port.mac = this.freshMac('fa:16:3e', x.seed, user);
    }
  }

  /**
   * One fg- port per node that hosts a VM with a floating IP behind a distributed router (at
   * OC the FIP namespace exists only there), on the external network.
   */
  private fipGateways(
    data: TopologyFile,
    nodes: Node[],
    fips: FloatingIp[],
    specs: { portId?: string; mac?: string; addr?: FixedIp }[],
  ): Map<string, Port> {
    const out = new Map<string, Port>();
    nodes.forEach((n, i) => {
      const fip = fips.find((f) => f.router.distributed && f.vm.node === n.name);
      const spec = specs[i];
      if (!fip) {
        if (data.nodes[i].fip_gateway !== undefined) {
          this.fail(
            ['nodes', i, 'fip_gateway'],
            `node "${n.name}" hosts no floating IP of a distributed router, so it has no fg- port`,
          );
        }
        return;
      }
      const ext = fip.network;
      const id = spec.portId ?? seededUuid(`port:fg:${n.name}`);
      const device = `fg-${idPrefix(id)}`;
      const gp = ['nodes', i, 'fip_gateway'];
      this.claimDevice(device, `the fg- port of ${n.name}`, spec.portId ? [...gp, 'port_id'] : gp);
      const sub = spec.addr?.subnet ?? ext.subnets.find((s) => s.family === 4)!;
      const addr = spec.addr?.ip ?? this.freeIp(sub, device, ['nodes', i]);
      out.set(n.name, {
        kind: 'fg',
        id,
        device,
        network: ext,
        mac: spec.mac ?? this.freshMac('fa:16:3e', `fg:${n.name}`, device),
        fixedIps: [{ subnet: sub, ip: addr }],
        node: n.name,
      });
    });
    return out;
  }

  private checkAgentModes(nodes: Node[], routers: Router[], vms: Vm[], dhcp: Port[]): void {
    this.defaultDvrMacs(nodes);
    const mode = new Map(nodes.map((n) => [n.name, n.mode]));
    routers.forEach((r, ri) => {
      const here = ['routers', ri];
      if (r.distributed) {
        if (r.gateway && r.snatNode === undefined) {
          this.fail(
            here,
            'missing snat_node (a distributed router with a gateway needs a dvr_snat node)',
          );
        }
        if (r.snatNode !== undefined && mode.get(r.snatNode) !== 'dvr_snat') {
          this.fail(
            [...here, 'snat_node'],
            `node "${r.snatNode}" runs agent_mode ${mode.get(r.snatNode)}, not dvr_snat`,
          );
        }
        // Every node with a port on one of the router's subnets must run a DVR L3 agent.
        const subs = new Set(r.interfaces.map((i) => i.subnet));
        for (const p of [...vms.map((v) => v.port), ...dhcp]) {
          if (!p.fixedIps.some((f) => subs.has(f.subnet))) continue;
          if (mode.get(p.node!) === 'legacy') {
            const what = p.vm ? `VM ${p.vm.name}` : `the DHCP port of ${p.network.name}`;
            this.fail(
              here,
              `distributed router "${r.name}" serves ${what} on node "${p.node}", ` +
                'whose agent_mode is legacy',
            );
          }
        }
      } else {
        if (r.snatNode === undefined) {
          this.fail(here, 'missing snat_node (the node hosting this legacy router)');
        }
        if (mode.get(r.snatNode) === 'dvr') {
          this.fail(
            [...here, 'snat_node'],
            `node "${r.snatNode}" runs agent_mode dvr, which hosts only distributed routers`,
          );
        }
        if (r.fipLinks.size > 0)
          this.fail([...here, 'fip_links'], 'only a distributed router has FIP links');
      }
    });
  }

  private floatingIps(
    data: TopologyFile,
    vms: Vm[],
    routers: Router[],
    networks: Network[],
  ): FloatingIp[] {
    const byName = new Map(vms.map((v) => [v.name, v]));
    const seenVm = new Set<string>();
    return (data.floating_ips ?? []).map((f, i) => {
      const here = ['floating_ips', i];
      const addr = canonicalIp(f.ip);
      const a = ip(addr);
      if (a.family !== 4) this.fail([...here, 'ip'], 'expected an IPv4 floating IP');
      const ext = networks.find((n) => n.external && n.subnets.some((s) => contains(s.prefix, a)));
      if (!ext) {
        const inner = networks.find((n) => n.subnets.some((s) => contains(s.prefix, a)));
        return this.fail(
          [...here, 'ip'],
          inner
            ? `${addr} is on network "${inner.name}", which is not external`
            : `${addr} is in no subnet of an external network`,
        );
      }
      const vm = byName.get(f.vm);
      if (!vm) return this.fail([...here, 'vm'], this.unknown('VM', f.vm, [...byName.keys()]));
      if (seenVm.has(vm.name))
        this.fail([...here, 'vm'], `VM ${vm.name} already has a floating IP`);
      seenVm.add(vm.name);
      const fixed = vm.port.fixedIps.find((x) => x.subnet.family === 4);
      if (!fixed) return this.fail([...here, 'vm'], `VM ${vm.name} has no IPv4 address`);
      const router = routers.find(
        (r) => r.gatewayNetwork === ext && r.interfaces.some((itf) => itf.subnet === fixed.subnet),
      );
      if (!router) {
        return this.fail(
          [...here, 'vm'],
          `no router connects subnet "${fixed.subnet.name}" of VM ${vm.name} ` +
            `to external network "${ext.name}"`,
        );
      }
      const sub = ext.subnets.find((s) => contains(s.prefix, a))!;
      this.subnetOf(ext, addr, [...here, 'ip']);
      this.claimIp(sub, addr, `floating IP of ${vm.name}`, [...here, 'ip']);
      return {
        ip: addr,
        vm,
        fixedIp: fixed.ip,
        router,
        network: ext,
        rulePriority: f.rule_priority,
      };
    });
  }
}

function cookieText(c: string | number | undefined): string | undefined {
  if (c === undefined) return undefined;
  const v = typeof c === 'number' ? BigInt(c) : BigInt(c);
  return `0x${v.toString(16)}`;
}
