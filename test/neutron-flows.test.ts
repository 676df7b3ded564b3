/**
 * The compiled devstack-dvr seed against the reference's worked example (§4): node2's br-tun,
 * br-int and br-ex flow for flow (every flow §4 lists, with what its annotations say stated
 * here, and nothing else), node3's and node1's listed flows, and the namespace state §4
 * describes. Then what the seed does not cover: a legacy router, a dvr_snat node that also
 * hosts VMs, and defaults (local VLANs in bind order, ofports, addresses).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { compile, type RawScenario } from '../src/neutron/compile.js';
import { DEVSTACK_DVR_YAML } from '../src/neutron/devstack-dvr.js';
import { resolveTopology, loadTopologyText, type Topology } from '../src/neutron/topology.js';
import {
  codeBlocks,
  normalise,
  referenceFlows,
  referenceText,
  section,
} from './neutron-reference.js';

const seed = (): Topology => loadTopologyText(DEVSTACK_DVR_YAML, 'devstack-dvr');

function bridgeOf(raw: RawScenario, node: string, bridge: string) {
  const n = raw.nodes.find((x) => x.name === node);
  const b = n?.bridges.find((x) => x.name === bridge);
  if (!b) throw new Error(`no ${node}/${bridge}`);
  return b;
}

function flowsOf(raw: RawScenario, node: string, bridge: string): string[] {
  return bridgeOf(raw, node, bridge)
    .flows.split('\n')
    .filter((l) => l !== '')
    .map(normalise);
}

function portOf(raw: RawScenario, node: string, bridge: string, port: string) {
  const p = bridgeOf(raw, node, bridge).ports.find((x) => x.name === port);
  if (!p) throw new Error(`no port ${node}/${bridge}/${port}`);
  return p;
}

function namespace(raw: RawScenario, node: string, prefix: string) {
  const ns = raw.nodes
    .find((x) => x.name === node)!
    .namespaces.find((x) => x.name.startsWith(prefix));
  if (!ns) throw new Error(`no ${prefix}* namespace on ${node}`);
  return ns;
}

/** The reference's TUN(x,p) and ARP(M,IP) actions, for the flows stated inline. */
const tun = (vni: string, port: number) =>
  `strip_vlan,load:${vni}->NXM_NX_TUN_ID[],output:${port}`;
const arp = (mac: string, ip: string) => {
  const hexIp = ip
    .split('.')
    .reduce((a, x) => a * 256 + Number(x), 0)
    .toString(16);
  return (
    'load:0x2->NXM_OF_ARP_OP[],move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],' +
    'move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],' +
    `load:0x${mac.replace(/:/g, '')}->NXM_NX_ARP_SHA[],load:0x${hexIp}->NXM_OF_ARP_SPA[],` +
    `move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:${mac},IN_PORT`
  );
};

const topo = seed();
const raw = compile(topo);
const vm = (name: string) => topo.vms.find((v) => v.name === name)!;
const dhcp = (net: string) => topo.dhcpPorts.find((p) => p.network.name === net)!;
const D1 = topo.nodes.find((n) => n.name === 'node1')!.dvrMac!;
const T3 = vm('test03').port.mac;

/** The values of the reference's placeholders, as the seed fixes them. */
const VALUES: Record<string, string> = {
  D1,
  Lp2: String(portOf(raw, 'node2', 'br-int', 'fg-07ec92fd-de').tag),
  test03: T3,
  'int-br-ex': String(portOf(raw, 'node1', 'br-int', 'int-br-ex').ofport),
  'p2 LV': String(portOf(raw, 'node1', 'br-int', 'qr-2909fe1f-46').tag),
  sg6: String(portOf(raw, 'node1', 'br-int', 'sg-39996102-8b').ofport),
  sg2: String(portOf(raw, 'node1', 'br-int', 'sg-bb562f9c-59').ofport),
};

const S4 = section(
  referenceText(),
  "## 4. Worked example: the seed's topology (OC, ovs-ofctl OF1.0 format)",
);
const listing = (heading: string, label = '') => {
  const blocks = codeBlocks(section(S4, heading)).filter((b) => label === '' || b.label === label);
  assert.ok(blocks.length > 0, `the reference has a listing under ${heading} ${label}`);
  return referenceFlows(blocks[0].lines, VALUES).map((f) => f.flow);
};

function assertSameFlows(actual: string[], expected: string[]) {
  const a = new Set(actual);
  const e = new Set(expected);
  assert.deepEqual(
    [...e].filter((f) => !a.has(f)),
    [],
    'expected flows that were not compiled',
  );
  assert.deepEqual(
    [...a].filter((f) => !e.has(f)),
    [],
    'compiled flows the reference does not list',
  );
  assert.equal(actual.length, a.size, 'no flow is compiled twice');
}

function assertIncludes(actual: string[], expected: string[]) {
  const a = new Set(actual);
  assert.deepEqual(
    expected.filter((f) => !a.has(f)),
    [],
    'expected flows that were not compiled',
  );
}

describe('devstack-dvr node2 against reference §4', () => {
  it('br-tun: every listed flow, the annotated ones, and nothing else', () => {
    const expected = [
      ...listing('### node2 br-tun'),
      // "; same for in_port=3"
      'table=0, priority=1,in_port=3 actions=resubmit(,4)',
      // "(also ..5e:30:73)"
      'table=1, priority=2,dl_vlan=1,dl_dst=fa:16:3e:5e:30:73 actions=drop',
      // "table=3/4/6, priority=0 actions=drop"
      'table=3, priority=0 actions=drop',
      'table=4, priority=0 actions=drop',
      'table=6, priority=0 actions=drop',
      // "; same for <D1>"
      `table=9, priority=1,dl_src=${D1} actions=output:1`,
      // "same TUN(0x42,2) for dl_dst fa:16:3e:69:37:93 (sg v6), fa:16:3e:5a:6e:54 (test01), dhcp"
      `table=20, priority=2,dl_vlan=1,dl_dst=fa:16:3e:69:37:93 actions=${tun('0x42', 2)}`,
      `table=20, priority=2,dl_vlan=1,dl_dst=fa:16:3e:5a:6e:54 actions=${tun('0x42', 2)}`,
      `table=20, priority=2,dl_vlan=1,dl_dst=${dhcp('private').mac} actions=${tun('0x42', 2)}`,
      // "; + dhcp2"
      `table=20, priority=2,dl_vlan=2,dl_dst=${dhcp('private2').mac} actions=${tun('0x5', 2)}`,
      // "likewise vlan 1: 10.0.0.3 → SG1, 10.0.0.7 → test01; vlan 2: 10.1.0.10 → T4,
      // 10.1.0.6 → SG2; plus the DHCP IPv4 addresses"
      `table=21, priority=1,arp,dl_vlan=1,arp_tpa=10.0.0.3 actions=${arp('fa:16:3e:47:34:80', '10.0.0.3')}`,
      `table=21, priority=1,arp,dl_vlan=1,arp_tpa=10.0.0.7 actions=${arp('fa:16:3e:5a:6e:54', '10.0.0.7')}`,
      `table=21, priority=1,arp,dl_vlan=2,arp_tpa=10.1.0.10 actions=${arp('fa:16:3e:23:c5:28', '10.1.0.10')}`,
      `table=21, priority=1,arp,dl_vlan=2,arp_tpa=10.1.0.6 actions=${arp('fa:16:3e:a9:a2:19', '10.1.0.6')}`,
      `table=21, priority=1,arp,dl_vlan=1,arp_tpa=10.0.0.2 actions=${arp(dhcp('private').mac, '10.0.0.2')}`,
      `table=21, priority=1,arp,dl_vlan=2,arp_tpa=10.1.0.2 actions=${arp(dhcp('private2').mac, '10.1.0.2')}`,
    ];
    assertSameFlows(flowsOf(raw, 'node2', 'br-tun'), expected);
  });

  it('br-int: every listed flow, the annotated ones, and nothing else', () => {
    const expected = [
      ...listing('### node2 br-int'),
      // "; same for 7" (test03's port)
      'table=0, priority=10,icmp6,in_port=7,icmp_type=136 actions=resubmit(,24)',
      'table=0, priority=10,arp,in_port=7 actions=resubmit(,24)',
      // "; + <D1>"
      `table=0, priority=4,in_port=1,dl_src=${D1} actions=resubmit(,2)`,
      `table=0, priority=2,in_port=2,dl_src=${D1} actions=resubmit(,1)`,
      // "+ NA for test03's LLA"
      'table=24, priority=2,icmp6,in_port=7,icmp_type=136,nd_target=fe80::f816:3eff:fe3b:8ad1 actions=NORMAL',
    ];
    assertSameFlows(flowsOf(raw, 'node2', 'br-int'), expected);
  });

  it('br-ex: every listed flow, the annotated ones, and nothing else', () => {
    const expected = [
      ...listing('### node2 br-ex'),
      // "; + <D1>"
      `table=3, priority=2,dl_src=${D1} actions=output:2`,
    ];
    assertSameFlows(flowsOf(raw, 'node2', 'br-ex'), expected);
  });

  it("OpenFlow ports and local VLANs are the table's", () => {
    const ofports = Object.fromEntries(
      bridgeOf(raw, 'node2', 'br-int').ports.map((p) => [p.name, p.ofport]),
    );
    assert.deepEqual(ofports, {
      'int-br-ex': 1,
      'patch-tun': 2,
      'qvo28e6e267-f3': 3,
      'qr-12fa6289-8f': 4,
      'qr-2909fe1f-46': 5,
      'qr-aae8ab78-22': 6,
      'qvo06557f2b-83': 7,
      'fg-07ec92fd-de': 8,
    });
    assert.equal(portOf(raw, 'node2', 'br-int', 'qvo28e6e267-f3').vm, 'test02');
    assert.equal(portOf(raw, 'node2', 'br-int', 'qvo28e6e267-f3').tag, 1);
    assert.equal(portOf(raw, 'node2', 'br-int', 'qvo06557f2b-83').tag, 2);
    assert.deepEqual(bridgeOf(raw, 'node2', 'br-tun').ports, [
      { name: 'patch-int', ofport: 1, type: 'patch', peer: 'patch-tun' },
      {
        name: 'vxlan-c0a8010b',
        ofport: 2,
        type: 'vxlan',
        options: {
          remote_ip: '192.168.1.11',
          local_ip: '192.168.1.12',
          in_key: 'flow',
          out_key: 'flow',
          df_default: 'true',
        },
      },
      {
        name: 'vxlan-c0a8010d',
        ofport: 3,
        type: 'vxlan',
        options: {
          remote_ip: '192.168.1.13',
          local_ip: '192.168.1.12',
          in_key: 'flow',
          out_key: 'flow',
          df_default: 'true',
        },
      },
    ]);
    assert.deepEqual(raw.nodes[1].underlay, { ip: '192.168.1.12', mac: '08:00:27:8b:a7:13' });
  });
});

describe('devstack-dvr node3 and node1 against reference §4', () => {
  it('node3 br-tun holds every listed flow and the annotated ones', () => {
    assertIncludes(flowsOf(raw, 'node3', 'br-tun'), [
      ...listing('### node3', 'br-tun'),
      // "same for dl_vlan=2,dl_src=fa:16:3e:5e:30:73 and dl_vlan=1,dl_src=fa:16:3e:5c:3d:f9;
      // p2/p3 drops: 10.0.0.1 and GW1/GW6 on vlan 2, 10.1.0.1 and GW2 on vlan 1"
      'table=1, priority=1,dl_vlan=2,dl_src=fa:16:3e:5e:30:73 actions=mod_dl_src:fa:16:3f:59:35:b1,resubmit(,2)',
      'table=1, priority=1,dl_vlan=1,dl_src=fa:16:3e:5c:3d:f9 actions=mod_dl_src:fa:16:3f:59:35:b1,resubmit(,2)',
      'table=1, priority=3,arp,dl_vlan=2,arp_tpa=10.0.0.1 actions=drop',
      'table=1, priority=3,icmp6,dl_vlan=2,dl_src=fa:16:3e:5e:30:73,icmp_type=134 actions=drop',
      'table=1, priority=2,dl_vlan=2,dl_dst=fa:16:3e:9c:cf:de actions=drop',
      'table=1, priority=2,dl_vlan=2,dl_dst=fa:16:3e:5e:30:73 actions=drop',
      'table=1, priority=3,arp,dl_vlan=1,arp_tpa=10.1.0.1 actions=drop',
      'table=1, priority=2,dl_vlan=1,dl_dst=fa:16:3e:5c:3d:f9 actions=drop',
      // "; + <D1>"
      `table=9, priority=1,dl_src=${D1} actions=output:1`,
      // "; + sg6, test01, dhcp" and "; + dhcp2"
      `table=20, priority=2,dl_vlan=2,dl_dst=fa:16:3e:69:37:93 actions=${tun('0x42', 3)}`,
      `table=20, priority=2,dl_vlan=2,dl_dst=fa:16:3e:5a:6e:54 actions=${tun('0x42', 3)}`,
      `table=20, priority=2,dl_vlan=2,dl_dst=${dhcp('private').mac} actions=${tun('0x42', 3)}`,
      `table=20, priority=2,dl_vlan=1,dl_dst=${dhcp('private2').mac} actions=${tun('0x5', 3)}`,
      // "table=21: vlan 2: 10.0.0.8, 10.0.0.3, 10.0.0.7, dhcp; vlan 1: 10.1.0.12, 10.1.0.6, dhcp2"
      `table=21, priority=1,arp,dl_vlan=2,arp_tpa=10.0.0.8 actions=${arp('fa:16:3e:76:47:75', '10.0.0.8')}`,
      `table=21, priority=1,arp,dl_vlan=2,arp_tpa=10.0.0.3 actions=${arp('fa:16:3e:47:34:80', '10.0.0.3')}`,
      `table=21, priority=1,arp,dl_vlan=2,arp_tpa=10.0.0.7 actions=${arp('fa:16:3e:5a:6e:54', '10.0.0.7')}`,
      `table=21, priority=1,arp,dl_vlan=2,arp_tpa=10.0.0.2 actions=${arp(dhcp('private').mac, '10.0.0.2')}`,
      `table=21, priority=1,arp,dl_vlan=1,arp_tpa=10.1.0.12 actions=${arp(T3, '10.1.0.12')}`,
      `table=21, priority=1,arp,dl_vlan=1,arp_tpa=10.1.0.6 actions=${arp('fa:16:3e:a9:a2:19', '10.1.0.6')}`,
      `table=21, priority=1,arp,dl_vlan=1,arp_tpa=10.1.0.2 actions=${arp(dhcp('private2').mac, '10.1.0.2')}`,
      // "table=22, priority=1,dl_vlan=2 (0x42) / dl_vlan=1 (0x5) … output:2,output:3"
      'table=22, priority=1,dl_vlan=2 actions=strip_vlan,load:0x42->NXM_NX_TUN_ID[],output:2,output:3',
      'table=22, priority=1,dl_vlan=1 actions=strip_vlan,load:0x5->NXM_NX_TUN_ID[],output:2,output:3',
    ]);
  });

  it('node3 br-int holds every listed flow, the anti-spoofing of ports 3 and 7, and GW6 for test05', () => {
    assertIncludes(flowsOf(raw, 'node3', 'br-int'), [
      ...listing('### node3', 'br-int'),
      `table=0, priority=2,in_port=2,dl_src=${D1} actions=resubmit(,1)`,
      `table=0, priority=4,in_port=1,dl_src=${D1} actions=resubmit(,2)`,
      // "priority=9/10 anti-spoof flows for in_port=3 (10.1.0.10, T4) and 7 (10.0.0.4, T5)"
      'table=0, priority=9,in_port=3 actions=resubmit(,25)',
      'table=0, priority=10,arp,in_port=3 actions=resubmit(,24)',
      'table=0, priority=9,in_port=7 actions=resubmit(,25)',
      'table=0, priority=10,arp,in_port=7 actions=resubmit(,24)',
      'table=24, priority=2,arp,in_port=3,arp_spa=10.1.0.10 actions=resubmit(,25)',
      'table=24, priority=2,arp,in_port=7,arp_spa=10.0.0.4 actions=resubmit(,25)',
      'table=25, priority=2,in_port=3,dl_src=fa:16:3e:23:c5:28 actions=NORMAL',
      'table=25, priority=2,in_port=7,dl_src=fa:16:3e:96:e2:a4 actions=NORMAL',
    ]);
    // test04 (private2) has no IPv6 address besides its link-local one.
    const t24v6 = flowsOf(raw, 'node3', 'br-int').filter((f) =>
      /table=24.*in_port=3,icmp_type=136/.test(f),
    );
    assert.deepEqual(t24v6, [
      'table=24, priority=2,icmp6,in_port=3,icmp_type=136,nd_target=fe80::f816:3eff:fe23:c528 actions=NORMAL',
    ]);
  });

  it("node3 br-ex is node2's with D2 in place of D3", () => {
    const swap = (f: string) => f.replace('fa:16:3f:59:35:b1', 'fa:16:3f:73:c3:04');
    const node2 = flowsOf(raw, 'node2', 'br-ex').filter(
      (f) => !f.includes('priority=4,in_port=2,dl_vlan='),
    );
    assertSameFlows(flowsOf(raw, 'node3', 'br-ex'), node2.map(swap));
  });

  it('node1 holds every listed flow', () => {
    const flows = codeBlocks(section(S4, '### node1 (dvr_snat), partial'))[0];
    const listed = referenceFlows(flows.lines, VALUES);
    assert.ok(listed.length >= 15, 'the listing is read');
    for (const bridge of ['br-tun', 'br-int', 'br-ex']) {
      assertIncludes(
        flowsOf(raw, 'node1', bridge),
        listed.filter((f) => f.bridge === bridge).map((f) => f.flow),
      );
    }
    assertIncludes(flowsOf(raw, 'node1', 'br-tun'), [
      // "; + D3"
      'table=9, priority=1,dl_src=fa:16:3f:59:35:b1 actions=output:1',
      // "; GW6, GW2"
      `table=1, priority=1,dl_vlan=1,dl_src=fa:16:3e:5e:30:73 actions=mod_dl_src:${D1},resubmit(,2)`,
      `table=1, priority=1,dl_vlan=${VALUES['p2 LV']},dl_src=fa:16:3e:5c:3d:f9 actions=mod_dl_src:${D1},resubmit(,2)`,
      // "t20/t21: T2, T5 (vlan 1), test03, T4 (private2 LV); t22 floods to n2 and n3"
      `table=20, priority=2,dl_vlan=1,dl_dst=fa:16:3e:76:47:75 actions=${tun('0x42', 2)}`,
      `table=20, priority=2,dl_vlan=1,dl_dst=fa:16:3e:96:e2:a4 actions=${tun('0x42', 3)}`,
      `table=20, priority=2,dl_vlan=3,dl_dst=${T3} actions=${tun('0x5', 2)}`,
      `table=20, priority=2,dl_vlan=3,dl_dst=fa:16:3e:23:c5:28 actions=${tun('0x5', 3)}`,
      'table=22, priority=1,dl_vlan=1 actions=strip_vlan,load:0x42->NXM_NX_TUN_ID[],output:2,output:3',
    ]);
    // "table=1, p4 entries for test01 and each DHCP port": test01 is bound after both qr-
    // ports of private, so its last fixed IP (the fda0: one) picks GW6.
    assertIncludes(flowsOf(raw, 'node1', 'br-int'), [
      'table=1, priority=4,dl_vlan=1,dl_dst=fa:16:3e:5a:6e:54 actions=strip_vlan,mod_dl_src:fa:16:3e:5e:30:73,output:12',
      `table=1, priority=4,dl_vlan=3,dl_dst=${dhcp('private2').mac} actions=strip_vlan,mod_dl_src:fa:16:3e:5c:3d:f9,output:9`,
    ]);
  });
});

/** The state the reference's "Namespace state in the example" describes, line by line. */
describe('devstack-dvr namespaces against reference §4', () => {
  const state = section(S4, '### Namespace state in the example');
  const quoted = [...state.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
  const node2Qrouter = state.slice(
    state.indexOf('**node2 qrouter.**'),
    state.indexOf('**node2 fip'),
  );
  const ruleLine = (s: string) => s.replace(/^(\d+): /, '$1:\t');

  it("node2 qrouter: the seed's rules, tables and nat", () => {
    const ns = namespace(raw, 'node2', 'qrouter-');
    assert.equal(ns.name, 'qrouter-bd7982cb-bb78-4cc6-b3f0-f8a828947718');
    const rules = ns.ip_rule.split('\n');
    for (const r of quoted.filter((q) => /^\d+: from [\d.]/.test(q)))
      assert.ok(rules.includes(ruleLine(r)), r);
    for (const p of [
      '0:\tfrom all lookup local',
      '32766:\tfrom all lookup main',
      '32767:\tfrom all lookup default',
    ]) {
      assert.ok(rules.includes(p), p);
    }
    // "P ∈ [32768, 72767]: from 10.0.0.8 lookup 16"
    const fipRule = rules.find((r) => r.endsWith('\tfrom 10.0.0.8 lookup 16'));
    assert.ok(fipRule, 'the FIP rule');
    const p = Number(fipRule.split(':')[0]);
    assert.ok(p >= 32768 && p <= 72767);
    const routes = ns.ip_route.split('\n');
    const listed = [...node2Qrouter.matchAll(/`(default via [^`]+)`/g)]
      .map((m) => m[1])
      .filter((q) => !q.includes('fda0'));
    assert.equal(listed.length, 3, 'the reference lists three IPv4 routes');
    for (const r of listed) assert.ok(routes.includes(r), r);
    assert.equal(
      ns.iptables_nat,
      [
        '-P PREROUTING ACCEPT',
        '-P INPUT ACCEPT',
        '-P OUTPUT ACCEPT',
        '-P POSTROUTING ACCEPT',
        '-N neutron-l3-agent-OUTPUT',
        '-N neutron-l3-agent-POSTROUTING',
        '-N neutron-l3-agent-PREROUTING',
        '-N neutron-l3-agent-float-snat',
        '-N neutron-l3-agent-snat',
        '-N neutron-postrouting-bottom',
        '-A PREROUTING -j neutron-l3-agent-PREROUTING',
        '-A OUTPUT -j neutron-l3-agent-OUTPUT',
        '-A POSTROUTING -j neutron-l3-agent-POSTROUTING',
        '-A POSTROUTING -j neutron-postrouting-bottom',
        '-A neutron-l3-agent-POSTROUTING ! -i rfp-bd7982cb-b ! -o rfp-bd7982cb-b -m conntrack ! --ctstate DNAT -j ACCEPT',
        '-A neutron-l3-agent-PREROUTING -d 169.254.169.254/32 -i qr-+ -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9697',
        '-A neutron-l3-agent-PREROUTING -d 172.24.4.12/32 -i rfp-bd7982cb-b -j DNAT --to-destination 10.0.0.8',
        '-A neutron-l3-agent-float-snat -s 10.0.0.8/32 -j SNAT --to-source 172.24.4.12',
        '-A neutron-l3-agent-snat -j neutron-l3-agent-float-snat',
        '-A neutron-postrouting-bottom -m comment --comment "Perform source NAT on outgoing traffic." -j neutron-l3-agent-snat',
        '',
      ].join('\n'),
    );
    // Interfaces: the qr- ports on br-int with their tags, and the rfp- end of the veth.
    const rfp = ns.interfaces.find((i) => i.name === 'rfp-bd7982cb-b')!;
    assert.deepEqual(rfp.veth, {
      namespace: 'fip-6f83ddde-6be3-40d3-a1ec-f5241e7aca3d',
      interface: 'fpr-bd7982cb-b',
    });
    assert.deepEqual(rfp.addresses, ['169.254.106.114/31']);
    const qr = ns.interfaces.find((i) => i.name === 'qr-aae8ab78-22')!;
    assert.deepEqual(qr, {
      name: 'qr-aae8ab78-22',
      bridge: 'br-int',
      port: 'qr-aae8ab78-22',
      mac: 'fa:16:3e:9c:cf:de',
      addresses: ['10.0.0.1/26'],
      mtu: 1450,
    });
    // Connected routes agree with the addresses; permanent neighbours cover the subnet's ports.
    assert.ok(
      routes.includes('10.0.0.0/26 dev qr-aae8ab78-22 proto kernel scope link src 10.0.0.1'),
    );
    assert.ok(
      routes.includes(
        '169.254.106.114/31 dev rfp-bd7982cb-b proto kernel scope link src 169.254.106.114',
      ),
    );
    const neigh = ns.ip_neigh.split('\n');
    assert.ok(neigh.includes('10.0.0.4 dev qr-aae8ab78-22 lladdr fa:16:3e:96:e2:a4 PERMANENT'));
    assert.ok(neigh.includes('10.0.0.3 dev qr-aae8ab78-22 lladdr fa:16:3e:47:34:80 PERMANENT'));
    assert.ok(neigh.includes('10.1.0.10 dev qr-2909fe1f-46 lladdr fa:16:3e:23:c5:28 PERMANENT'));
    assert.ok(
      !neigh.some((l) => l.startsWith('10.0.0.1 ')),
      'no entry for the router port itself',
    );
    assert.equal(ns.sysctl['net.ipv4.ip_forward'], '1');
    assert.equal(ns.sysctl['net.ipv4.conf.qr-aae8ab78-22.send_redirects'], '0');
  });

  it('node2 fip namespace: the rule numbered by the fpr- address, its table, the FIP route', () => {
    const ns = namespace(raw, 'node2', 'fip-');
    assert.equal(ns.name, 'fip-6f83ddde-6be3-40d3-a1ec-f5241e7aca3d');
    const rule = quoted.find((q) => q.includes('iif fpr-'))!;
    assert.equal(rule, '2852022899: from all iif fpr-bd7982cb-b lookup 2852022899');
    assert.ok(ns.ip_rule.split('\n').includes(ruleLine(rule)));
    const routes = ns.ip_route.split('\n');
    assert.ok(routes.includes('default via 172.24.4.1 dev fg-07ec92fd-de table 2852022899'));
    const fipRoute = quoted.find((q) => q.startsWith('172.24.4.12 via'))!;
    assert.ok(routes.includes(fipRoute), fipRoute);
    assert.equal(ns.sysctl['net.ipv4.conf.fg-07ec92fd-de.proxy_arp'], '1');
    assert.equal(ns.sysctl['net.ipv4.ip_nonlocal_bind'], '1');
    assert.match(ns.iptables_raw ?? '', /^-A neutron-l3-agent-PREROUTING -j CT --notrack$/m);
    const fpr = ns.interfaces.find((i) => i.name === 'fpr-bd7982cb-b')!;
    assert.deepEqual(fpr.addresses, ['169.254.106.115/31']);
    assert.deepEqual(fpr.veth, {
      namespace: 'qrouter-bd7982cb-bb78-4cc6-b3f0-f8a828947718',
      interface: 'rfp-bd7982cb-b',
    });
    const fg = ns.interfaces.find((i) => i.name === 'fg-07ec92fd-de')!;
    assert.equal(fg.bridge, 'br-int');
    assert.equal(fg.port, 'fg-07ec92fd-de');
  });

  it('node3 qrouter: the same SNAT redirect, no FIP rule, no table 16, no rfp-, no fip namespace', () => {
    const n2 = namespace(raw, 'node2', 'qrouter-');
    const n3 = namespace(raw, 'node3', 'qrouter-');
    const snatRules = (t: string) => t.split('\n').filter((l) => /^1\d{8}:/.test(l));
    assert.deepEqual(snatRules(n3.ip_rule), snatRules(n2.ip_rule));
    assert.equal(snatRules(n3.ip_rule).length, 2);
    assert.ok(!n3.ip_rule.includes('lookup 16\n'));
    assert.doesNotMatch(n3.ip_route, /table 16$/m);
    assert.ok(!n3.interfaces.some((i) => i.name.startsWith('rfp-')));
    assert.ok(!raw.nodes[2].namespaces.some((n) => n.name.startsWith('fip-')));
    const wrapped = n3.iptables_nat
      .split('\n')
      .filter((l) => l.startsWith('-A neutron-l3-agent-'));
    assert.deepEqual(wrapped, [
      '-A neutron-l3-agent-PREROUTING -d 169.254.169.254/32 -i qr-+ -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9697',
    ]);
  });

  it('node1 snat namespace: the default route and the SNAT rules of §3.3 with 172.24.4.3', () => {
    const ns = namespace(raw, 'node1', 'snat-');
    assert.equal(ns.name, 'snat-bd7982cb-bb78-4cc6-b3f0-f8a828947718');
    assert.ok(ns.ip_route.split('\n').includes('default via 172.24.4.1 dev qg-242f9c7b-c1'));
    const nat = ns.iptables_nat.split('\n');
    for (const rule of [
      '-A neutron-l3-agent-POSTROUTING ! -i qg-242f9c7b-c1 ! -o qg-242f9c7b-c1 -m conntrack ! --ctstate DNAT -j ACCEPT',
      '-A neutron-l3-agent-snat -o qg-242f9c7b-c1 -j SNAT --to-source 172.24.4.3',
      '-A neutron-l3-agent-snat -m mark ! --mark 0x2/0xffff -m conntrack --ctstate DNAT -j SNAT --to-source 172.24.4.3',
    ]) {
      assert.ok(nat.includes(rule), rule);
    }
    assert.ok(
      !ns.iptables_nat.includes('-j neutron-l3-agent-float-snat'),
      'no jump to float-snat',
    );
    const names = ns.interfaces.map((i) => `${i.name} ${i.addresses.join(',')}`);
    assert.deepEqual(names, [
      'sg-adafc8f8-1e 10.0.0.3/26',
      'sg-39996102-8b fda0:6cec:a994::5/64',
      'sg-bb562f9c-59 10.1.0.6/24',
      'qg-242f9c7b-c1 172.24.4.3/24',
    ]);
    // node1 also has the router's qrouter (with the SNAT redirect), and no fip namespace.
    assert.ok(
      namespace(raw, 'node1', 'qrouter-').ip_rule.includes(
        '167772161:\tfrom 10.0.0.1/26 lookup 167772161',
      ),
    );
    assert.ok(!raw.nodes[0].namespaces.some((n) => n.name.startsWith('fip-')));
  });
});

/** A topology document to vary. */
function doc(text: string): Record<string, any> {
  return parse(text) as Record<string, any>;
}

describe('defaults', () => {
  it("local VLANs in bind order reproduce the seed's (§6.1), and compiling is deterministic", () => {
    const d = doc(DEVSTACK_DVR_YAML);
    for (const n of d.nodes) delete n.local_vlans;
    const again = compile(resolveTopology(d, 'devstack-dvr'));
    assert.deepEqual(again, raw);
  });

  it('ofports, addresses, MACs and ids are chosen deterministically when left out', () => {
    const text = `
nodes:
  - {name: cn1, agent_mode: dvr, tunnel_ip: 10.9.0.1}
  - {name: cn2, agent_mode: dvr, tunnel_ip: 10.9.0.2}
  - {name: nn, agent_mode: dvr_snat, tunnel_ip: 10.9.0.3}
networks:
  - {name: net, vni: 100, subnets: [{name: sn, cidr: 192.168.50.0/24, gateway_ip: 192.168.50.1}]}
  - {name: ext, external: true, subnets: [{name: ext-sn, cidr: 203.0.113.0/24, gateway_ip: 203.0.113.1}]}
routers:
  - {name: r, snat_node: nn, gateway: {network: ext}, interfaces: [{subnet: sn}]}
vms:
  - {name: a, node: cn1, network: net, ip: 192.168.50.10}
  - {name: b, node: cn2, network: net, ip: 192.168.50.11}
floating_ips:
  - {ip: 203.0.113.50, vm: a}
`;
    const t = loadTopologyText(text, 'small.yaml');
    const r1 = compile(t);
    assert.deepEqual(compile(loadTopologyText(text, 'small.yaml')), r1);
    const router = t.routers[0];
    assert.equal(router.interfaces[0].qr.fixedIps[0].ip, '192.168.50.1', 'qr- takes the gateway');
    assert.equal(
      router.interfaces[0].sg!.fixedIps[0].ip,
      '192.168.50.2',
      'sg- the first free address',
    );
    assert.equal(router.gateway!.fixedIps[0].ip, '203.0.113.2');
    assert.equal(t.fipGateways.get('cn1')!.fixedIps[0].ip, '203.0.113.3');
    assert.match(t.nodes[0].dvrMac!, /^fa:16:3f:/);
    assert.match(t.vms[0].port.mac, /^fa:16:3e:/);
    assert.match(t.vms[0].port.device, /^qvo[0-9a-f]{8}-[0-9a-f]{2}$/);
    // br-int of cn1: int-br-ex 1, patch-tun 2, then qr- (3), the VM (4), fg- (5).
    const names = bridgeOf(r1, 'cn1', 'br-int').ports.map(
      (p) => `${p.ofport} ${p.name.slice(0, 3)} ${p.tag ?? ''}`,
    );
    assert.deepEqual(names, ['1 int ', '2 pat ', '3 qr- 1', '4 qvo 1', '5 fg- 2']);
    assert.deepEqual(
      bridgeOf(r1, 'cn1', 'br-ex').ports.map((p) => [p.name, p.ofport, p.type]),
      [
        ['uplink', 1, 'uplink'],
        ['phy-br-ex', 2, 'patch'],
      ],
    );
    // The default FIP link is the first /31 of 169.254.64.0/18, the rule the first priority.
    const q = namespace(r1, 'cn1', 'qrouter-');
    assert.ok(q.ip_rule.includes('32768:\tfrom 192.168.50.10 lookup 16'));
    assert.ok(q.ip_route.includes('default via 169.254.64.1 dev rfp-'));
    const fip = namespace(r1, 'cn1', 'fip-');
    assert.ok(fip.ip_rule.includes('2852012033:\tfrom all iif fpr-'));
    // cn2 has no FIP: no fg- port, no fip namespace; every node has tunnels to the other two.
    assert.ok(!bridgeOf(r1, 'cn2', 'br-int').ports.some((p) => p.name.startsWith('fg-')));
    assert.equal(bridgeOf(r1, 'cn2', 'br-tun').ports.filter((p) => p.type === 'vxlan').length, 2);
  });
});

describe('a legacy router (§3.4)', () => {
  const text = `
nodes:
  - {name: net1, agent_mode: legacy, tunnel_ip: 10.0.9.1}
  - {name: cmp1, agent_mode: legacy, tunnel_ip: 10.0.9.2}
networks:
  - {name: lan, vni: 1000, subnets: [{name: lan-sn, cidr: 10.20.0.0/24, gateway_ip: 10.20.0.1}]}
  - {name: ext, external: true, subnets: [{name: ext-sn, cidr: 198.51.100.0/24, gateway_ip: 198.51.100.1}]}
routers:
  - name: r1
    distributed: false
    snat_node: net1
    gateway: {network: ext, ip: 198.51.100.10, mac: "fa:16:3e:00:00:10"}
    interfaces: [{subnet: lan-sn, mac: "fa:16:3e:00:00:01"}]
vms:
  - {name: vm1, node: cmp1, network: lan, ip: 10.20.0.5, mac: "fa:16:3e:00:00:05"}
floating_ips:
  - {ip: 198.51.100.20, vm: vm1}
`;
  const t = loadTopologyText(text, 'legacy.yaml');
  const r = compile(t);

  it('br-tun goes t0 → t2 and t4 → t10, with no DVR tables', () => {
    const tunFlows = flowsOf(r, 'cmp1', 'br-tun');
    assert.ok(tunFlows.includes('table=0, priority=1,in_port=1 actions=resubmit(,2)'));
    assert.ok(
      tunFlows.includes('table=4, priority=1,tun_id=0x3e8 actions=mod_vlan_vid:1,resubmit(,10)'),
    );
    assert.ok(!tunFlows.some((f) => /^table=(1|9),/.test(f)), 'tables 1 and 9 are unused');
    const intFlows = flowsOf(r, 'cmp1', 'br-int');
    assert.ok(
      !intFlows.some((f) => /^table=(1|2),|priority=1 actions=NORMAL/.test(f)),
      'no DVR flows',
    );
    assert.ok(flowsOf(r, 'cmp1', 'br-ex').includes('table=0, priority=2,in_port=2 actions=drop'));
    assert.ok(!flowsOf(r, 'cmp1', 'br-ex').some((f) => /^table=[123],/.test(f)));
  });

  it('the qr- port is an ordinary l2pop port: unicast and ARP responder entries on the compute node', () => {
    const tunFlows = flowsOf(r, 'cmp1', 'br-tun');
    assert.ok(
      tunFlows.includes(
        `table=20, priority=2,dl_vlan=1,dl_dst=fa:16:3e:00:00:01 actions=${tun('0x3e8', 2)}`,
      ),
    );
    assert.ok(
      tunFlows.includes(
        `table=21, priority=1,arp,dl_vlan=1,arp_tpa=10.20.0.1 actions=${arp('fa:16:3e:00:00:01', '10.20.0.1')}`,
      ),
    );
  });

  it('one qrouter on the network node with qr- and qg-, the default route, SNAT and the FIP on qg-', () => {
    assert.deepEqual(
      r.nodes.map((n) => n.namespaces.map((x) => x.name.split('-')[0])),
      [['qrouter'], []],
    );
    const ns = namespace(r, 'net1', 'qrouter-');
    assert.deepEqual(
      ns.interfaces.map((i) => [i.name.slice(0, 3), i.addresses]),
      [
        ['qr-', ['10.20.0.1/24']],
        ['qg-', ['198.51.100.10/24', '198.51.100.20/32']],
      ],
    );
    const qg = ns.interfaces[1].name;
    assert.equal(
      ns.ip_route,
      `default via 198.51.100.1 dev ${qg}\n` +
        `10.20.0.0/24 dev ${ns.interfaces[0].name} proto kernel scope link src 10.20.0.1\n` +
        `198.51.100.0/24 dev ${qg} proto kernel scope link src 198.51.100.10\n`,
    );
    assert.equal(
      ns.ip_rule,
      '0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n',
    );
    const wrapped = ns.iptables_nat.split('\n').filter((l) => l.startsWith('-A neutron-'));
    assert.deepEqual(wrapped, [
      '-A neutron-l3-agent-OUTPUT -d 198.51.100.20/32 -j DNAT --to-destination 10.20.0.5',
      `-A neutron-l3-agent-POSTROUTING ! -i ${qg} ! -o ${qg} -m conntrack ! --ctstate DNAT -j ACCEPT`,
      '-A neutron-l3-agent-PREROUTING -d 169.254.169.254/32 -i qr-+ -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9697',
      '-A neutron-l3-agent-PREROUTING -d 198.51.100.20/32 -j DNAT --to-destination 10.20.0.5',
      '-A neutron-l3-agent-float-snat -s 10.20.0.5/32 -j SNAT --to-source 198.51.100.20',
      '-A neutron-l3-agent-snat -j neutron-l3-agent-float-snat',
      `-A neutron-l3-agent-snat -o ${qg} -j SNAT --to-source 198.51.100.10`,
      '-A neutron-l3-agent-snat -m mark ! --mark 0x2/0xffff -m conntrack --ctstate DNAT -j SNAT --to-source 198.51.100.10',
      '-A neutron-postrouting-bottom -m comment --comment "Perform source NAT on outgoing traffic." -j neutron-l3-agent-snat',
    ]);
    // The network node binds qr- and qg- on br-int, with the external network's provision flows.
    assert.ok(
      flowsOf(r, 'net1', 'br-ex').includes(
        'table=0, priority=4,in_port=2,dl_vlan=2 actions=strip_vlan,NORMAL',
      ),
    );
    assert.ok(
      flowsOf(r, 'net1', 'br-int').includes(
        'table=0, priority=3,in_port=1,vlan_tci=0x0000/0x1fff actions=mod_vlan_vid:2,NORMAL',
      ),
    );
  });
});

describe('a dvr_snat node that is a compute node too', () => {
  const text = `
nodes:
  - {name: nn, agent_mode: dvr_snat, tunnel_ip: 10.1.1.1, dvr_mac: "fa:16:3f:00:00:01"}
  - {name: cn, agent_mode: dvr, tunnel_ip: 10.1.1.2, dvr_mac: "fa:16:3f:00:00:02"}
networks:
  - {name: net, vni: 7, subnets: [{name: sn, cidr: 10.5.0.0/24, gateway_ip: 10.5.0.1}]}
  - {name: ext, external: true, subnets: [{name: ext-sn, cidr: 192.0.2.0/24, gateway_ip: 192.0.2.1}]}
routers:
  - name: r
    snat_node: nn
    gateway: {network: ext, ip: 192.0.2.2}
    interfaces: [{subnet: sn, mac: "fa:16:3e:00:00:01", snat: {ip: 10.5.0.2, mac: "fa:16:3e:00:00:02"}}]
vms:
  - {name: local, node: nn, network: net, ip: 10.5.0.10, mac: "fa:16:3e:00:00:10"}
  - {name: remote, node: cn, network: net, ip: 10.5.0.11, mac: "fa:16:3e:00:00:11"}
floating_ips:
  - {ip: 192.0.2.50, vm: local}
`;
  const r = compile(loadTopologyText(text, 'combined.yaml'));

  it('hosts qrouter, snat and fip namespaces; the FIP of its own VM goes through its qrouter', () => {
    assert.deepEqual(
      r.nodes[0].namespaces.map((n) => n.name.split('-')[0]),
      ['qrouter', 'snat', 'fip'],
    );
    assert.deepEqual(
      r.nodes[1].namespaces.map((n) => n.name.split('-')[0]),
      ['qrouter'],
    );
    const q = namespace(r, 'nn', 'qrouter-');
    assert.ok(q.ip_rule.includes('32768:\tfrom 10.5.0.10 lookup 16'));
    assert.ok(q.ip_rule.includes('168099841:\tfrom 10.5.0.1/24 lookup 168099841'));
    assert.ok(q.ip_route.includes('default via 10.5.0.2 dev qr-'));
    assert.match(
      q.iptables_nat,
      /-A neutron-l3-agent-PREROUTING -d 192\.0\.2\.50\/32 -i rfp-\S+ -j DNAT --to-destination 10\.5\.0\.10/,
    );
    const fip = namespace(r, 'nn', 'fip-');
    assert.ok(fip.ip_route.includes('192.0.2.50 via 169.254.64.0 dev fpr-'));
  });

  it('br-int rewrites the source MAC for its VM and its sg- port, and has the anti-spoofing', () => {
    const f = flowsOf(r, 'nn', 'br-int');
    const ports = Object.fromEntries(
      bridgeOf(r, 'nn', 'br-int').ports.map((p) => [p.name.slice(0, 3), p.ofport]),
    );
    assert.ok(
      f.includes(
        `table=1, priority=4,dl_vlan=1,dl_dst=fa:16:3e:00:00:10 actions=strip_vlan,mod_dl_src:fa:16:3e:00:00:01,output:${ports.qvo}`,
      ),
    );
    assert.ok(
      f.includes(
        `table=1, priority=4,dl_vlan=1,dl_dst=fa:16:3e:00:00:02 actions=strip_vlan,mod_dl_src:fa:16:3e:00:00:01,output:${ports['sg-']}`,
      ),
    );
    assert.ok(
      f.includes(
        `table=25, priority=2,in_port=${ports.qvo},dl_src=fa:16:3e:00:00:10 actions=NORMAL`,
      ),
    );
    assert.ok(
      f.includes('table=0, priority=2,in_port=2,dl_src=fa:16:3f:00:00:02 actions=resubmit(,1)'),
    );
    // The compute node reaches the VM, and the sg- port, through the tunnel.
    const c = flowsOf(r, 'cn', 'br-tun');
    assert.ok(
      c.includes(
        `table=20, priority=2,dl_vlan=1,dl_dst=fa:16:3e:00:00:10 actions=${tun('0x7', 2)}`,
      ),
    );
    assert.ok(
      c.includes(
        `table=20, priority=2,dl_vlan=1,dl_dst=fa:16:3e:00:00:02 actions=${tun('0x7', 2)}`,
      ),
    );
    assert.ok(
      !c.some((x) => x.includes('dl_dst=fa:16:3e:00:00:01 actions=strip_vlan,load')),
      'no fdb entry for qr-',
    );
  });
});
