/**
 * The router namespaces the Ocata L3 agent builds on each node (reference §3), in the text
 * form of the namespace contract: `ip rule show`, `ip route show table all` (IPv4),
 * `ip neigh show` and `iptables -t nat -S` / `-t raw -S`, as a user would copy them.
 *
 * - `qrouter-<router id>` of a distributed router, on every node hosting it: the qr- ports,
 *   permanent neighbours for every other port of their subnets, the SNAT redirect (one rule
 *   and table per IPv4 qr- port, numbered by the qr- address) when the router has a gateway,
 *   and, on a node with floating IPs, the rfp- end of the FIP link, table 16 and one
 *   `from FIXED lookup 16` rule per floating IP, with DNAT and float-snat rules.
 * - `snat-<router id>` on the snat node: the sg- and qg- ports, the default route, SNAT.
 * - `fip-<external network id>` on a node with floating IPs: the fg- port with proxy ARP, the
 *   fpr- ends, a `from all iif fpr-X` rule numbered by the fpr- address, and a /32 route per
 *   floating IP.
 * - `qrouter-<router id>` of a legacy router, on its node: qr- and qg- ports, the default
 *   route in the main table, SNAT, and floating IPs as /32 addresses on qg-.
 *
 * Invariants: the output depends only on the topology; connected routes are written for every
 * IPv4 address of an interface; rules are sorted by priority; route tables are listed in the
 * kernel's dump order (table id modulo 256, then id), main-table routes by prefix.
 */
import {
  formatIp,
  ip,
  ipv4Int,
  parsePrefix,
  network as networkOf,
  seededLocalMac,
} from './addr.js';
import type { NodePlan } from './plan.js';
import type { FloatingIp, Port, Router, Topology } from './topology.js';

/** One interface of a namespace, as the contract writes it. */
export interface NamespaceInterface {
  name: string;
  bridge?: string;
  port?: string;
  veth?: { namespace: string; interface: string };
  mac: string;
  addresses: string[];
  mtu?: number;
}

/** One namespace, as the contract writes it. */
export interface Namespace {
  name: string;
  interfaces: NamespaceInterface[];
  sysctl: Record<string, string>;
  ip_rule: string;
  ip_route: string;
  ip_neigh: string;
  iptables_nat: string;
  iptables_raw?: string;
}

const WRAP = 'neutron-l3-agent';
const SNAT_COMMENT = '"Perform source NAT on outgoing traffic."';
/** The FIP rules' table (dvr_fip_ns.FIP_RT_TBL). */
export const FIP_TABLE = 16;
/** The pool of FIP rule priorities starts here (dvr_fip_ns.FIP_PR_START). */
export const FIP_PRIORITY_START = 32768;
/** The link-local range of the FIP veth pairs. */
const FIP_LL_SUBNET = '169.254.64.0/18';

/** A route of `ip route show table all`. */
interface Route {
  table: number; // 254 = main
  dst: string; // `default` or a prefix; a /32 prints without its length
  text: string; // the rest: `via ... dev ...`
}

const MAIN = 254;

function formatRoutes(routes: Route[]): string {
  const key = (r: Route) => (r.dst === 'default' ? [0n, 0] : prefixKey(r.dst));
  const sorted = [...routes].sort((a, b) => {
    const ta = a.table % 256;
    const tb = b.table % 256;
    if (ta !== tb) return ta - tb;
    if (a.table !== b.table) return a.table - b.table;
    const [va, la] = key(a);
    const [vb, lb] = key(b);
    return va < vb ? -1 : va > vb ? 1 : (la as number) - (lb as number);
  });
  return lines(
    sorted.map((r) => `${r.dst} ${r.text}${r.table === MAIN ? '' : ` table ${r.table}`}`),
  );
}

function prefixKey(dst: string): [bigint, number] {
  const p = dst.includes('/') ? parsePrefix(dst)! : { ip: ip(dst), len: 32 };
  return [networkOf(p).value, p.len];
}

/** Connected route text of an address `a/len` on `dev`. */
function connected(dev: string, cidr: string): Route {
  const p = parsePrefix(cidr)!;
  const net = `${formatIp(networkOf(p))}/${p.len}`;
  return {
    table: MAIN,
    dst: net,
    text: `dev ${dev} proto kernel scope link src ${formatIp(p.ip)}`,
  };
}

function lines(xs: string[]): string {
  return xs.length === 0 ? '' : `${xs.join('\n')}\n`;
}

/** `ip rule show` with the three default rules and the given ones, sorted by priority. */
function formatRules(extra: { priority: number; text: string }[]): string {
  const all = [
    { priority: 0, text: 'from all lookup local' },
    { priority: 32766, text: 'from all lookup main' },
    { priority: 32767, text: 'from all lookup default' },
    ...extra,
  ].sort((a, b) => a.priority - b.priority);
  return lines(all.map((r) => `${r.priority}:\t${r.text}`));
}

/**
 * `iptables -t nat -S` of a namespace whose iptables manager wraps PREROUTING, OUTPUT and
 * POSTROUTING: policies, user chains by name, the built-in chains' jumps, then the rules of
 * each wrapped chain with the chains in byte order of their names.
 */
function formatNat(rules: { chain: string; rule: string }[]): string {
  const chains = [
    `${WRAP}-OUTPUT`,
    `${WRAP}-POSTROUTING`,
    `${WRAP}-PREROUTING`,
    `${WRAP}-float-snat`,
    `${WRAP}-snat`,
    'neutron-postrouting-bottom',
  ].sort(byteOrder);
  const out = [
    '-P PREROUTING ACCEPT',
    '-P INPUT ACCEPT',
    '-P OUTPUT ACCEPT',
    '-P POSTROUTING ACCEPT',
    ...chains.map((c) => `-N ${c}`),
    `-A PREROUTING -j ${WRAP}-PREROUTING`,
    `-A OUTPUT -j ${WRAP}-OUTPUT`,
    `-A POSTROUTING -j ${WRAP}-POSTROUTING`,
    '-A POSTROUTING -j neutron-postrouting-bottom',
  ];
  const all = [
    ...rules.map((r) => ({ chain: `${WRAP}-${r.chain}`, rule: r.rule })),
    {
      chain: 'neutron-postrouting-bottom',
      rule: `-m comment --comment ${SNAT_COMMENT} -j ${WRAP}-snat`,
    },
  ];
  for (const c of chains) {
    for (const r of all) if (r.chain === c) out.push(`-A ${c} ${r.rule}`);
  }
  return lines(out);
}

function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The metadata proxy redirect every qrouter gets (metadata driver, port 9697). */
const METADATA = {
  chain: 'PREROUTING',
  rule: '-d 169.254.169.254/32 -i qr-+ -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9697',
};

function addresses(p: Port): string[] {
  return p.fixedIps.map((f) => `${f.ip}/${f.subnet.prefix.len}`);
}

function bridgeInterface(p: Port): NamespaceInterface {
  return {
    name: p.device,
    bridge: 'br-int',
    port: p.device,
    mac: p.mac,
    addresses: addresses(p),
    mtu: p.network.mtu,
  };
}

function connectedRoutes(itfs: NamespaceInterface[]): Route[] {
  return itfs.flatMap((i) =>
    i.addresses
      .filter((a) => !a.includes(':') && !a.endsWith('/32'))
      .map((a) => connected(i.name, a)),
  );
}

/** The FIP link of a router on a node: rfp- (even) and fpr- (odd) addresses of a /31. */
export interface FipLinkPlan {
  rfpName: string;
  fprName: string;
  rfp: string; // address
  fpr: string;
  rfpMac: string;
  fprMac: string;
}

/** Assigns every node's FIP links and FIP rule priorities (explicit first, then the pool). */
function planFipLinks(
  topo: Topology,
  plan: NodePlan,
): {
  links: Map<Router, FipLinkPlan>;
  priorities: Map<FloatingIp, number>;
} {
  const node = plan.node.name;
  const fips = topo.floatingIps.filter((f) => f.vm.node === node && f.router.distributed);
  const routers = [...new Set(fips.map((f) => f.router))];
  const taken = new Set<bigint>();
  for (const r of routers) {
    const given = r.fipLinks.get(node)?.rfp;
    if (given) taken.add(parsePrefix(given)!.ip.value);
  }
  const base = networkOf(parsePrefix(FIP_LL_SUBNET)!).value;
  const links = new Map<Router, FipLinkPlan>();
  for (const r of routers) {
    const link = r.fipLinks.get(node);
    let rfp: bigint;
    if (link?.rfp) rfp = parsePrefix(link.rfp)!.ip.value;
    else {
      rfp = base;
      while (taken.has(rfp)) rfp += 2n;
      taken.add(rfp);
    }
    const short = r.id.slice(0, 10);
    links.set(r, {
      rfpName: `rfp-${short}`,
      fprName: `fpr-${short}`,
      rfp: formatIp({ family: 4, value: rfp }),
      fpr: formatIp({ family: 4, value: rfp + 1n }),
      rfpMac: link?.rfpMac ?? seededLocalMac(`rfp:${node}:${r.id}`),
      fprMac: link?.fprMac ?? seededLocalMac(`fpr:${node}:${r.id}`),
    });
  }
  const priorities = new Map<FloatingIp, number>();
  const usedPrio = new Set(fips.map((f) => f.rulePriority).filter((p) => p !== undefined));
  let next = FIP_PRIORITY_START;
  for (const f of fips) {
    if (f.rulePriority !== undefined) {
      priorities.set(f, f.rulePriority);
      continue;
    }
    while (usedPrio.has(next)) next++;
    usedPrio.add(next);
    priorities.set(f, next);
  }
  return { links, priorities };
}

/** Every namespace of one node. */
export function nodeNamespaces(topo: Topology, plan: NodePlan): Namespace[] {
  const { links, priorities } = planFipLinks(topo, plan);
  const fg = topo.fipGateways.get(plan.node.name);
  const ext = topo.networks.find((n) => n.external);
  const fipName = ext ? `fip-${ext.id}` : '';
  const out: Namespace[] = [];
  for (const r of plan.hosted) {
    if (r.distributed) {
      out.push(dvrRouter(topo, plan, r, links.get(r), priorities, fipName));
      if (r.snatNode === plan.node.name && r.gateway) out.push(snatNamespace(r));
    } else {
      out.push(legacyRouter(topo, r));
    }
  }
  if (fg && ext) out.push(fipNamespace(topo, plan, fg, fipName, links));
  return out;
}

/** The permanent neighbours of a qr- port: every other port of its subnets, router ports aside. */
function neighbours(topo: Topology, qr: Port): string[] {
  const subnets = new Set(qr.fixedIps.map((f) => f.subnet));
  const ports: Port[] = [...topo.dhcpPorts, ...topo.vms.map((v) => v.port)];
  for (const r of topo.routers) for (const i of r.interfaces) if (i.sg) ports.push(i.sg);
  const out: string[] = [];
  for (const p of ports) {
    for (const f of p.fixedIps) {
      if (subnets.has(f.subnet)) out.push(`${f.ip} dev ${qr.device} lladdr ${p.mac} PERMANENT`);
    }
  }
  return out;
}

function dvrRouter(
  topo: Topology,
  plan: NodePlan,
  r: Router,
  link: FipLinkPlan | undefined,
  priorities: Map<FloatingIp, number>,
  fipName: string,
): Namespace {
  const name = `qrouter-${r.id}`;
  const itfs = r.interfaces.map((i) => bridgeInterface(i.qr));
  if (link) {
    itfs.push({
      name: link.rfpName,
      veth: { namespace: fipName, interface: link.fprName },
      mac: link.rfpMac,
      addresses: [`${link.rfp}/31`],
    });
  }
  const sysctl: Record<string, string> = {
    'net.ipv4.ip_forward': '1',
    'net.ipv4.conf.all.send_redirects': '0',
  };
  const rules: { priority: number; text: string }[] = [];
  const routes: Route[] = connectedRoutes(itfs);
  // SNAT redirect: traffic from each IPv4 subnet goes to its sg- port on the snat node.
  if (r.gateway) {
    for (const i of r.interfaces) {
      if (!i.sg || i.subnet.family !== 4) continue;
      const qrIp = i.qr.fixedIps[0].ip;
      const n = ipv4Int(qrIp);
      rules.push({ priority: n, text: `from ${qrIp}/${i.subnet.prefix.len} lookup ${n}` });
      routes.push({
        table: n,
        dst: 'default',
        text: `via ${i.sg.fixedIps[0].ip} dev ${i.qr.device}`,
      });
      sysctl[`net.ipv4.conf.${i.qr.device}.send_redirects`] = '0';
    }
  }
  const nat: { chain: string; rule: string }[] = [METADATA];
  const fips = topo.floatingIps.filter((f) => f.router === r && f.vm.node === plan.node.name);
  if (link && fips.length > 0) {
    routes.push({ table: FIP_TABLE, dst: 'default', text: `via ${link.fpr} dev ${link.rfpName}` });
    for (const f of fips) {
      rules.push({ priority: priorities.get(f)!, text: `from ${f.fixedIp} lookup ${FIP_TABLE}` });
      nat.push({
        chain: 'PREROUTING',
        rule: `-d ${f.ip}/32 -i ${link.rfpName} -j DNAT --to-destination ${f.fixedIp}`,
      });
      nat.push({ chain: 'float-snat', rule: `-s ${f.fixedIp}/32 -j SNAT --to-source ${f.ip}` });
    }
    nat.push({ chain: 'snat', rule: `-j ${WRAP}-float-snat` });
    nat.push({
      chain: 'POSTROUTING',
      rule: `! -i ${link.rfpName} ! -o ${link.rfpName} -m conntrack ! --ctstate DNAT -j ACCEPT`,
    });
  }
  return {
    name,
    interfaces: itfs,
    sysctl,
    ip_rule: formatRules(rules),
    ip_route: formatRoutes(routes),
    ip_neigh: lines(r.interfaces.flatMap((i) => neighbours(topo, i.qr))),
    iptables_nat: formatNat(nat),
  };
}

/** The external gateway address of a router's gateway subnet, if it has one. */
function externalGateway(r: Router): string | undefined {
  return r.gateway!.fixedIps[0].subnet.gatewayIp;
}

function snatNamespace(r: Router): Namespace {
  const qg = r.gateway!;
  const qgIp = qg.fixedIps[0].ip;
  const itfs = [
    ...r.interfaces.flatMap((i) => (i.sg ? [bridgeInterface(i.sg)] : [])),
    bridgeInterface(qg),
  ];
  const routes = connectedRoutes(itfs);
  const gw = externalGateway(r);
  if (gw) routes.push({ table: MAIN, dst: 'default', text: `via ${gw} dev ${qg.device}` });
  return {
    name: `snat-${r.id}`,
    interfaces: itfs,
    sysctl: { 'net.ipv4.ip_forward': '1' },
    ip_rule: formatRules([]),
    ip_route: formatRoutes(routes),
    ip_neigh: '',
    iptables_nat: formatNat(snatRules(qg.device, qgIp)),
  };
}

/** The gateway SNAT rules of §3.3 (router_info external_gateway_nat_*_rules). */
function snatRules(qg: string, qgIp: string): { chain: string; rule: string }[] {
  return [
    {
      chain: 'POSTROUTING',
      rule: `! -i ${qg} ! -o ${qg} -m conntrack ! --ctstate DNAT -j ACCEPT`,
    },
    { chain: 'snat', rule: `-o ${qg} -j SNAT --to-source ${qgIp}` },
    {
      chain: 'snat',
      rule: `-m mark ! --mark 0x2/0xffff -m conntrack --ctstate DNAT -j SNAT --to-source ${qgIp}`,
    },
  ];
}

function legacyRouter(topo: Topology, r: Router): Namespace {
  const itfs = r.interfaces.map((i) => bridgeInterface(i.qr));
  const fips = topo.floatingIps.filter((f) => f.router === r);
  const nat: { chain: string; rule: string }[] = [METADATA];
  const routes: Route[] = [];
  if (r.gateway) {
    const qg = bridgeInterface(r.gateway);
    // Each floating IP is a /32 on qg-.
    qg.addresses.push(...fips.map((f) => `${f.ip}/32`));
    itfs.push(qg);
    for (const f of fips) {
      nat.push({
        chain: 'PREROUTING',
        rule: `-d ${f.ip}/32 -j DNAT --to-destination ${f.fixedIp}`,
      });
      nat.push({ chain: 'OUTPUT', rule: `-d ${f.ip}/32 -j DNAT --to-destination ${f.fixedIp}` });
      nat.push({ chain: 'float-snat', rule: `-s ${f.fixedIp}/32 -j SNAT --to-source ${f.ip}` });
    }
    // The iptables manager's own jump comes first in the snat chain.
    nat.push({ chain: 'snat', rule: `-j ${WRAP}-float-snat` });
    nat.push(...snatRules(r.gateway.device, r.gateway.fixedIps[0].ip));
    const gw = externalGateway(r);
    if (gw)
      routes.push({ table: MAIN, dst: 'default', text: `via ${gw} dev ${r.gateway.device}` });
  }
  routes.push(...connectedRoutes(itfs));
  return {
    name: `qrouter-${r.id}`,
    interfaces: itfs,
    sysctl: { 'net.ipv4.ip_forward': '1' },
    ip_rule: formatRules([]),
    ip_route: formatRoutes(routes),
    ip_neigh: '',
    iptables_nat: formatNat(nat),
  };
}

function fipNamespace(
  topo: Topology,
  plan: NodePlan,
  fg: Port,
  name: string,
  links: Map<Router, FipLinkPlan>,
): Namespace {
  const itfs: NamespaceInterface[] = [bridgeInterface(fg)];
  const rules: { priority: number; text: string }[] = [];
  const routes: Route[] = [];
  const gw = fg.fixedIps[0].subnet.gatewayIp;
  for (const [r, link] of links) {
    itfs.push({
      name: link.fprName,
      veth: { namespace: `qrouter-${r.id}`, interface: link.rfpName },
      mac: link.fprMac,
      addresses: [`${link.fpr}/31`],
    });
    // The rule and its table are numbered by the fpr- address.
    const t = ipv4Int(link.fpr);
    rules.push({ priority: t, text: `from all iif ${link.fprName} lookup ${t}` });
    if (gw) routes.push({ table: t, dst: 'default', text: `via ${gw} dev ${fg.device}` });
    for (const f of topo.floatingIps) {
      if (f.router !== r || f.vm.node !== plan.node.name) continue;
      routes.push({ table: MAIN, dst: f.ip, text: `via ${link.rfp} dev ${link.fprName}` });
    }
  }
  routes.push(...connectedRoutes(itfs));
  return {
    name,
    interfaces: itfs,
    sysctl: {
      'net.ipv4.ip_forward': '1',
      'net.ipv4.ip_nonlocal_bind': '1',
      [`net.ipv4.conf.${fg.device}.proxy_arp`]: '1',
    },
    ip_rule: formatRules(rules),
    ip_route: formatRoutes(routes),
    ip_neigh: '',
    iptables_nat: formatNat([{ chain: 'snat', rule: `-j ${WRAP}-float-snat` }]),
    iptables_raw: lines([
      '-P PREROUTING ACCEPT',
      '-P OUTPUT ACCEPT',
      `-N ${WRAP}-OUTPUT`,
      `-N ${WRAP}-PREROUTING`,
      `-A PREROUTING -j ${WRAP}-PREROUTING`,
      `-A OUTPUT -j ${WRAP}-OUTPUT`,
      `-A ${WRAP}-PREROUTING -j CT --notrack`,
    ]),
  };
}
