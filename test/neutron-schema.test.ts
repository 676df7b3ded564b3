/**
 * Neutron topology checking: every shape and semantic mistake is one line with the file,
 * position and JSON path and what was expected; and the address helpers the compiler relies
 * on (RFC 5952 text, EUI-64, the integer values Neutron numbers its tables with).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ScenarioError } from '../src/errors.js';
import {
  canonicalIp,
  eui64,
  formatIp,
  ip,
  ipv4Int,
  linkLocal,
  parsePrefix,
} from '../src/neutron/addr.js';
import { compile } from '../src/neutron/compile.js';
import { tunnelPortName } from '../src/neutron/plan.js';
import { isTopology } from '../src/neutron/schema.js';
import { loadTopologyText } from '../src/neutron/topology.js';
import { errorOf } from './helpers.js';

/** A small valid topology, as an object to vary. */
function base(): Record<string, any> {
  return {
    nodes: [
      { name: 'nn', agent_mode: 'dvr_snat', tunnel_ip: '10.1.1.1', dvr_mac: 'fa:16:3f:00:00:01' },
      { name: 'cn', agent_mode: 'dvr', tunnel_ip: '10.1.1.2' },
      { name: 'lg', agent_mode: 'legacy', tunnel_ip: '10.1.1.3' },
    ],
    networks: [
      {
        name: 'net',
        vni: 7,
        subnets: [{ name: 'sn', cidr: '10.5.0.0/24', gateway_ip: '10.5.0.1' }],
      },
      {
        name: 'lan',
        vni: 8,
        subnets: [{ name: 'lsn', cidr: '10.6.0.0/24', gateway_ip: '10.6.0.1' }],
      },
      {
        name: 'ext',
        external: true,
        subnets: [{ name: 'ext-sn', cidr: '192.0.2.0/24', gateway_ip: '192.0.2.1' }],
      },
    ],
    routers: [
      { name: 'r', snat_node: 'nn', gateway: { network: 'ext' }, interfaces: [{ subnet: 'sn' }] },
    ],
    vms: [
      { name: 'a', node: 'cn', network: 'net', ip: '10.5.0.10' },
      { name: 'b', node: 'lg', network: 'lan', ip: '10.6.0.5' },
    ],
    floating_ips: [{ ip: '192.0.2.50', vm: 'a' }],
  };
}

/** The message for a topology changed by `change`, written as JSON (two-space indents). */
function failure(change: (t: Record<string, any>) => void): string {
  const t = base();
  change(t);
  const e = errorOf(() => compile(loadTopologyText(JSON.stringify(t, null, 2), 'topo.json')));
  assert.equal(e.name, 'ScenarioError');
  assert.equal(e.code, 'E_SCENARIO');
  return e.message;
}

/** Asserts the message without its position: `topo.json:L:C: PATH: what`. */
function assertFails(change: (t: Record<string, any>) => void, expected: string) {
  const m = failure(change);
  assert.match(m, /^topo\.json:\d+:\d+: /, m);
  assert.equal(m.replace(/^topo\.json:\d+:\d+: /, ''), expected);
}

describe('topology checks', () => {
  it('the base topology is valid', () => {
    const raw = compile(loadTopologyText(JSON.stringify(base()), 'topo.json'));
    assert.equal(raw.nodes.length, 3);
  });

  it('reports the position of the value at fault', () => {
    assert.equal(
      failure((t) => (t.vms[0].node = 'cx')),
      'topo.json:72:15: vms[0].node: no node named "cx" (known: nn, cn, lg)',
    );
    const yaml = 'nodes: []\nnetworks:\n  - {name: n, vni: 0x1000000, subnets: []}\n';
    const e = errorOf(() => loadTopologyText(yaml, 't.yaml'));
    assert.equal(
      e.message,
      't.yaml:3:20: networks[0].vni: expected a number from 1 to 16777215, got 16777216',
    );
  });

  it('rejects mistakes in the shape', () => {
    assertFails(
      (t) => (t.nodes[0].agent_mod = 'dvr'),
      'nodes[0].agent_mod: unknown key "agent_mod" (did you mean "agent_mode"?)',
    );
    assertFails(
      (t) => (t.nodes[1].agent_mode = 'dvrr'),
      'nodes[1].agent_mode: expected dvr, dvr_snat or legacy, got "dvrr"',
    );
    assertFails(
      (t) => (t.nodes[1].tunnel_ip = 'fd00::1'),
      'nodes[1].tunnel_ip: expected an IPv4 address like 192.168.1.12, got "fd00::1"',
    );
    assertFails(
      (t) => (t.vms[0].mac = 'fa:16'),
      'vms[0].mac: expected a MAC address like fa:16:3e:76:47:75, got "fa:16"',
    );
    assertFails(
      (t) => (t.networks[0].subnets[0].cidr = '10.5.0.0'),
      'networks[0].subnets[0].cidr: expected a prefix like 10.0.0.0/26, got "10.5.0.0"',
    );
    assertFails(
      (t) => (t.vms[0].port_id = 'xyz'),
      'vms[0].port_id: expected a port id (a UUID, or its first 11 characters like 28e6e267-f3), got "xyz"',
    );
    assertFails(
      (t) => (t.nodes[0].ofports = { 'patch-tun': 0 }),
      'nodes[0].ofports.patch-tun: expected a number from 1 to 65279, got 0',
    );
    assertFails(
      (t) => (t.nodes[0].cookies = { 'br-int': '12' }),
      'nodes[0].cookies.br-int: expected a cookie like 0x9c6f4b1c3e2a11d0, got "12"',
    );
    assertFails(
      (t) => delete t.vms[0].ip,
      'vms[0].ip: missing (expected an IP address like 10.0.0.8)',
    );
    const e = errorOf(() => loadTopologyText('{"nodes": [], "vms": []}', 'topo.json'));
    assert.equal(e.message, 'topo.json:1:1: networks: missing (expected an array)');
  });

  it('rejects duplicates', () => {
    assertFails((t) => (t.nodes[1].name = 'nn'), 'nodes[1].name: duplicate node name "nn"');
    assertFails(
      (t) => (t.nodes[1].tunnel_ip = '10.1.1.1'),
      'nodes[1].tunnel_ip: tunnel IP 10.1.1.1 is also node "nn"\'s',
    );
    assertFails((t) => (t.networks[1].vni = 7), 'networks[1].vni: VNI 7 is also network "net"\'s');
    assertFails(
      (t) => (t.networks[1].subnets[0].name = 'sn'),
      'networks[1].subnets[0].name: duplicate subnet name "sn"',
    );
    assertFails((t) => (t.vms[1].name = 'a'), 'vms[1].name: duplicate VM name "a"');
    assertFails((t) => (t.vms[1].name = 'cn'), 'vms[1].name: VM name "cn" is also a node name');
    assertFails(
      (t) => t.vms.push({ name: 'c', node: 'cn', network: 'net', ip: '10.5.0.10' }),
      'vms[2].ip: 10.5.0.10 is already used by VM a',
    );
    assertFails(
      (t) => (t.vms[0].mac = 'FA:16:3F:00:00:01'),
      'vms[0].mac: MAC fa:16:3f:00:00:01 is already used by the DVR MAC of nn',
    );
    assertFails(
      (t) => (t.routers[0].interfaces[0].ip = '10.5.0.10'),
      'routers[0].interfaces[0].ip: 10.5.0.10 is already used by VM a',
    );
    assertFails(
      (t) =>
        (t.floating_ips = [
          { ip: '192.0.2.50', vm: 'a' },
          { ip: '192.0.2.50', vm: 'b' },
        ]),
      'floating_ips[1].vm: no router connects subnet "lsn" of VM b to external network "ext"',
    );
    assertFails(
      (t) => (t.nodes[1].ofports = { 'patch-tun': 5, 'int-br-ex': 5 }),
      "nodes[1].ofports.patch-tun: ofport 5 on br-int is also port int-br-ex's",
    );
    assertFails((t) => {
      t.vms[0].port_id = '11111111-22';
      t.vms[0].ofport = 4;
      t.nodes[1].ofports = { 'qvo11111111-22': 5 };
    }, 'vms[0].ofport: ofport 4 differs from node "cn"\'s ofports (5)');
    assertFails(
      (t) => (t.nodes[1].local_vlans = { net: 3, ext: 3 }),
      'nodes[1].local_vlans.ext: local VLAN 3 is also "net"\'s',
    );
  });

  it('rejects addresses outside their subnet and overlapping subnets', () => {
    assertFails(
      (t) => (t.vms[0].ip = '10.9.9.9'),
      'vms[0].ip: 10.9.9.9 is in no subnet of network "net" (subnets: 10.5.0.0/24)',
    );
    assertFails(
      (t) => (t.vms[0].ip = '10.5.0.255'),
      'vms[0].ip: 10.5.0.255 is the network or broadcast address of 10.5.0.0/24',
    );
    assertFails(
      (t) => (t.networks[0].subnets[0].gateway_ip = '10.6.0.1'),
      'networks[0].subnets[0].gateway_ip: 10.6.0.1 is not in 10.5.0.0/24',
    );
    assertFails(
      (t) => t.networks[0].subnets.push({ name: 'sn2', cidr: '10.5.0.128/25' }),
      'networks[0].subnets[1].cidr: 10.5.0.128/25 overlaps subnet "sn" (10.5.0.0/24) of the same network',
    );
    assertFails((t) => {
      t.networks[1].subnets[0].cidr = '10.5.0.0/16';
      t.networks[1].subnets[0].gateway_ip = '10.5.1.1';
      t.vms[1].ip = '10.5.1.5';
      t.routers[0].interfaces.push({ subnet: 'lsn' });
    }, 'routers[0].interfaces[1].subnet: 10.5.0.0/16 overlaps subnet "sn" on router "r"');
    assertFails(
      (t) => (t.routers[0].gateway.ip = '10.5.0.20'),
      'routers[0].gateway.ip: 10.5.0.20 is in no subnet of network "ext" (subnets: 192.0.2.0/24)',
    );
    assertFails(
      (t) => (t.routers[0].fip_links = { cn: { rfp: '169.254.64.1/31' } }),
      'routers[0].fip_links.cn.rfp: expected the even address of a /31 (the rfp- end), got "169.254.64.1/31"',
    );
  });

  it('rejects unknown references', () => {
    assertFails(
      (t) => (t.vms[0].network = 'nett'),
      'vms[0].network: no network named "nett" (known: net, lan, ext)',
    );
    assertFails(
      (t) => (t.routers[0].interfaces[0].subnet = 'x'),
      'routers[0].interfaces[0].subnet: no subnet named "x" (known: sn, lsn, ext-sn)',
    );
    assertFails(
      (t) => (t.routers[0].snat_node = 'zz'),
      'routers[0].snat_node: no node named "zz" (known: nn, cn, lg)',
    );
    assertFails(
      (t) => (t.floating_ips[0].vm = 'zz'),
      'floating_ips[0].vm: no VM named "zz" (known: a, b)',
    );
    assertFails(
      (t) => (t.nodes[0].local_vlans = { nope: 1 }),
      'nodes[0].local_vlans.nope: no network named "nope"',
    );
    assertFails(
      (t) => (t.nodes[1].ofports = { 'qvo-nothing': 9 }),
      'nodes[1].ofports.qvo-nothing: node "cn" has no port named "qvo-nothing" (ports: int-br-ex, patch-tun, ' +
        `${portNames('cn')}, patch-int, vxlan-0a010101, uplink, phy-br-ex)`,
    );
    assertFails(
      (t) => (t.nodes[1].local_vlans = { lan: 1 }),
      'nodes[1].local_vlans.lan: network "lan" has no port on node "cn"',
    );
  });

  it('rejects floating IPs that Neutron would refuse', () => {
    assertFails(
      (t) => (t.floating_ips[0].ip = '10.5.0.99'),
      'floating_ips[0].ip: 10.5.0.99 is on network "net", which is not external',
    );
    assertFails(
      (t) => (t.floating_ips[0].ip = '198.51.100.1'),
      'floating_ips[0].ip: 198.51.100.1 is in no subnet of an external network',
    );
    assertFails(
      (t) => (t.floating_ips[0].vm = 'b'),
      'floating_ips[0].vm: no router connects subnet "lsn" of VM b to external network "ext"',
    );
    assertFails(
      (t) => (t.floating_ips[0].ip = '192.0.2.1'),
      'floating_ips[0].ip: 192.0.2.1 is the gateway_ip of subnet "ext-sn"',
    );
  });

  it('rejects networks, routers and agent modes that do not fit', () => {
    assertFails(
      (t) => delete t.networks[0].vni,
      'networks[0]: missing (expected a vni for a tunnelled network, or external: true)',
    );
    assertFails(
      (t) => (t.networks[2].vni = 9),
      'networks[2].vni: an external network is flat on br-ex and has no vni',
    );
    assertFails(
      (t) => t.networks.push({ name: 'ext2', external: true, subnets: [] }),
      'networks[3].external: only one external network is supported (also "ext")',
    );
    assertFails(
      (t) => (t.routers[0].gateway.network = 'net'),
      'routers[0].gateway.network: network "net" is not external',
    );
    assertFails(
      (t) => (t.routers[0].interfaces[0].subnet = 'ext-sn'),
      'routers[0].interfaces[0].subnet: subnet "ext-sn" is on external network "ext" (use gateway)',
    );
    assertFails(
      (t) => (t.routers[0].snat_node = 'cn'),
      'routers[0].snat_node: node "cn" runs agent_mode dvr, not dvr_snat',
    );
    assertFails(
      (t) => delete t.routers[0].snat_node,
      'routers[0]: missing snat_node (a distributed router with a gateway needs a dvr_snat node)',
    );
    assertFails(
      (t) => t.routers[0].interfaces.push({ subnet: 'lsn' }),
      'routers[0]: distributed router "r" serves VM b on node "lg", whose agent_mode is legacy',
    );
    assertFails(
      (t) =>
        t.routers.push({
          name: 'old',
          distributed: false,
          snat_node: 'cn',
          interfaces: [{ subnet: 'lsn' }],
        }),
      'routers[1].snat_node: node "cn" runs agent_mode dvr, which hosts only distributed routers',
    );
    assertFails(
      (t) => t.routers.push({ name: 'r2', interfaces: [{ subnet: 'sn' }] }),
      'routers[1].interfaces[0].subnet: subnet "sn" is already attached to router "r"',
    );
    assertFails(
      (t) => (t.nodes[2].dvr_mac = 'fa:16:3f:00:00:03'),
      'nodes[2].dvr_mac: only dvr and dvr_snat nodes have a DVR MAC',
    );
    assertFails(
      (t) => (t.nodes[0].fip_gateway = { ip: '192.0.2.9' }),
      'nodes[0].fip_gateway: node "nn" hosts no floating IP of a distributed router, so it has no fg- port',
    );
    assertFails(
      (t) =>
        (t.routers[0].interfaces[0].snat = { ip: '10.5.0.3' }) &&
        (t.routers[0].distributed = false),
      'routers[0].interfaces[0].snat: only a distributed router with a gateway has SNAT (sg-) ports',
    );
  });

  it('tells a topology from a raw scenario', () => {
    assert.equal(isTopology({ networks: [] }), true);
    assert.equal(isTopology({ vms: [] }), true);
    assert.equal(isTopology({ nodes: [] }), false);
    assert.equal(isTopology([]), false);
    assert.ok(new ScenarioError('x') instanceof Error);
  });
});

/** The device names on node cn of the base topology, in ofport order (qr-, the VM, fg-). */
function portNames(node: string): string {
  const t = loadTopologyText(JSON.stringify(base()), 'topo.json');
  const raw = compile(t);
  return raw.nodes
    .find((n) => n.name === node)!
    .bridges[0].ports.filter((p) => p.type === undefined)
    .map((p) => p.name)
    .join(', ');
}

describe('addresses', () => {
  it('prints IPv6 as RFC 5952 (netaddr, iproute2 and ovs-ofctl agree)', () => {
    assert.equal(canonicalIp('FDA0:6CEC:A994:0:0:0:0:1'), 'fda0:6cec:a994::1');
    assert.equal(
      canonicalIp('fda0:6cec:a994:0:f816:3eff:fe76:4775'),
      'fda0:6cec:a994:0:f816:3eff:fe76:4775',
    );
    assert.equal(canonicalIp('1:0:0:2:0:0:0:3'), '1:0:0:2::3');
    assert.equal(canonicalIp('1:0:0:2:0:0:3:4'), '1::2:0:0:3:4');
    assert.equal(canonicalIp('::'), '::');
    assert.equal(canonicalIp('::ffff:10.0.0.1'), '::ffff:a00:1');
  });

  it('derives EUI-64 addresses as the seed shows them', () => {
    const p = parsePrefix('fda0:6cec:a994::/64')!;
    assert.equal(formatIp(eui64(p, 'fa:16:3e:76:47:75')), 'fda0:6cec:a994:0:f816:3eff:fe76:4775');
    assert.equal(formatIp(linkLocal('fa:16:3e:76:47:75')), 'fe80::f816:3eff:fe76:4775');
    assert.equal(formatIp(linkLocal('fa:16:3e:5a:6e:54')), 'fe80::f816:3eff:fe5a:6e54');
  });

  it('numbers tables as Neutron does, and names tunnel ports', () => {
    assert.equal(ipv4Int('10.0.0.1'), 167772161);
    assert.equal(ipv4Int('10.1.0.1'), 167837697);
    assert.equal(ipv4Int('169.254.106.115'), 2852022899);
    assert.equal(tunnelPortName('192.168.1.12'), 'vxlan-c0a8010c');
    assert.equal(tunnelPortName('10.1.1.1'), 'vxlan-0a010101');
    assert.equal(ip('192.168.1.13').value, 0xc0a8010dn);
  });
});
