/**
 * Port references and output file names, for one-node and multi-node scenarios.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NativeScenario } from '../src/native.js';
import { loadScenarioText } from '../src/scenario/load.js';
import { PortIndex } from '../src/scenario/ports.js';
import { errorOf } from './helpers.js';

function index(obj: unknown): PortIndex {
  return new PortIndex(loadScenarioText(JSON.stringify(obj), 'scenario.json').scenario);
}

const ONE_NODE = {
  bridges: [
    {
      name: 'br-int',
      ports: [
        { name: 'vm1', ofport: 1 },
        { name: 'patch-tun', ofport: 2, type: 'patch', options: { peer: 'patch-int' } },
      ],
    },
    {
      name: 'br-tun',
      ports: [
        { name: 'patch-int', ofport: 1, type: 'patch', options: { peer: 'patch-tun' } },
        { name: 'vxlan0', ofport: 2, type: 'vxlan', options: { remote_ip: '192.168.1.13' } },
      ],
    },
    { name: 'br-phy', ip: '192.168.1.12/24', ports: [{ name: 'eth0', ofport: 1 }] },
  ],
};

const MULTI_NODE = {
  nodes: ['node1', 'node2'].map((name, i) => ({
    name,
    underlay: { ip: `192.168.1.1${i + 1}`, mac: `02:00:00:00:01:1${i + 1}` },
    bridges: [
      {
        name: 'br-int',
        ports: [
          { name: `qvo${i + 1}`, ofport: 1, vm: `test0${i + 1}` },
          { name: 'qvo-shared', ofport: 3 },
          { name: `qr-${i + 1}`, ofport: 4 },
          { name: 'patch-tun', ofport: 2, type: 'patch', peer: 'patch-int' },
        ],
      },
      {
        name: 'br-tun',
        ports: [{ name: 'patch-int', ofport: 1, type: 'patch', peer: 'patch-tun' }],
      },
      ...(i === 0
        ? [{ name: 'br-ex', ports: [{ name: 'eth1', ofport: 1, type: 'uplink' }] }]
        : []),
    ],
  })),
};

describe('one-node port references', () => {
  const idx = index(ONE_NODE);

  it('resolves BRIDGE/PORT, BRIDGE (LOCAL) and a unique port name', () => {
    assert.equal(idx.resolve('br-int/vm1').ref, 'br-int/vm1');
    assert.equal(idx.resolve('vm1').ref, 'br-int/vm1');
    assert.equal(idx.resolve('eth0').ref, 'br-phy/eth0');
    const local = idx.resolve('br-phy');
    assert.equal(local.ref, 'br-phy/br-phy');
    assert.equal(local.kind, 'local');
    assert.equal(idx.resolve('br-phy/br-phy').ref, 'br-phy/br-phy');
  });

  it('lists candidates for an unknown port, with a guess', () => {
    assert.equal(
      errorOf(() => idx.resolve('vm2')).message,
      'unknown port "vm2" (did you mean "vm1"?); ports are: vm1, patch-tun, br-int, patch-int, ' +
        'vxlan0, br-tun, eth0, br-phy',
    );
    assert.equal(
      errorOf(() => idx.resolve('br-int/eth0')).message,
      'unknown port "br-int/eth0"; ports of br-int are: br-int/vm1, br-int/patch-tun, br-int',
    );
    assert.equal(
      errorOf(() => idx.resolve('br-itn/vm1')).message,
      'unknown bridge "br-itn" in "br-itn/vm1" (did you mean "br-int"?); bridges are: br-int, ' +
        'br-tun, br-phy',
    );
    assert.equal(errorOf(() => idx.resolve('vm2')).code, 'E_PORTREF');
  });

  it('rejects malformed references', () => {
    assert.equal(
      errorOf(() => idx.resolve('a/b/c')).message,
      '"a/b/c" is not a port reference of a one-node scenario; use BRIDGE/PORT, BRIDGE or PORT',
    );
    assert.equal(
      errorOf(() => idx.resolve('br-int/')).message,
      '"br-int/" is not a port reference',
    );
    assert.equal(errorOf(() => idx.resolve('')).message, '"" is not a port reference');
  });

  it('refuses to inject on patch and tunnel ports', () => {
    assert.equal(
      errorOf(() => idx.resolveInput('patch-tun')).message,
      'cannot inject on patch port br-int/patch-tun: frames enter it only from its peer',
    );
    assert.equal(
      errorOf(() => idx.resolveInput('br-tun/vxlan0')).message,
      'cannot inject on vxlan port br-tun/vxlan0: inject the encapsulated frames on the ' +
        "underlay bridge's NIC",
    );
    assert.equal(idx.resolveInput('eth0').ref, 'br-phy/eth0');
  });

  it('names outputs DIR/PORT.pcap, and DIR/BRIDGE.pcap for LOCAL', () => {
    assert.deepEqual(
      idx.outputs('out').map((o) => `${o.port} ${o.path}`),
      [
        'br-int/vm1 out/vm1.pcap',
        'br-int/patch-tun out/patch-tun.pcap',
        'br-int/br-int out/br-int.pcap',
        'br-tun/patch-int out/patch-int.pcap',
        'br-tun/vxlan0 out/vxlan0.pcap',
        'br-tun/br-tun out/br-tun.pcap',
        'br-phy/eth0 out/eth0.pcap',
        'br-phy/br-phy out/br-phy.pcap',
      ],
    );
  });
});

describe('multi-node port references', () => {
  const idx = index(MULTI_NODE);

  it('resolves every accepted form', () => {
    const cases: [string, string][] = [
      ['node1/br-int/qvo1', 'node1/br-int/qvo1'],
      ['test02', 'node2/br-int/qvo2'],
      ['node1/underlay', 'node1/underlay'],
      ['node1/uplink', 'node1/br-ex/eth1'],
      ['node2/br-tun', 'node2/br-tun/br-tun'],
      ['node2/br-tun/br-tun', 'node2/br-tun/br-tun'],
      ['node2/qvo-shared', 'node2/br-int/qvo-shared'],
      ['qr-2', 'node2/br-int/qr-2'],
      ['eth1', 'node1/br-ex/eth1'],
    ];
    for (const [user, canonical] of cases) assert.equal(idx.resolve(user).ref, canonical, user);
    assert.equal(idx.resolve('node1/underlay').kind, 'underlay');
  });

  it('reports ambiguous and unknown names with candidates', () => {
    assert.equal(
      errorOf(() => idx.resolve('qvo-shared')).message,
      'port name "qvo-shared" is ambiguous: node1/br-int/qvo-shared, node2/br-int/qvo-shared',
    );
    assert.equal(
      errorOf(() => idx.resolve('test03')).message,
      'unknown port "test03" (did you mean "test01"?); ports are: test01, ' +
        'node1/br-int/qvo-shared, ' +
        'node1/br-int/qr-1, node1/br-int/patch-tun, node1/br-int, node1/br-tun/patch-int, ' +
        'node1/br-tun, node1/uplink, node1/br-ex, node1/underlay, test02, ' +
        'node2/br-int/qvo-shared, ... (6 more)',
    );
    assert.equal(
      errorOf(() => idx.resolve('node3/underlay')).message,
      'unknown node "node3" in "node3/underlay" (did you mean "node1"?); nodes are: node1, node2',
    );
    assert.equal(
      errorOf(() => idx.resolve('node2/uplink')).message,
      'node "node2" has no port of type uplink',
    );
    assert.equal(
      errorOf(() => idx.resolve('node1/br-int/qvo9')).message,
      'unknown port "node1/br-int/qvo9" (did you mean "node1/br-int/qvo1"?); ports of ' +
        'node1/br-int are: node1/br-int/qvo1, node1/br-int/qvo-shared, node1/br-int/qr-1, ' +
        'node1/br-int/patch-tun, node1/br-int/br-int',
    );
    assert.equal(
      errorOf(() => idx.resolve('node1/br-nt/qvo1')).message,
      'unknown bridge "br-nt" on node "node1" in "node1/br-nt/qvo1" (did you mean "br-int"?); ' +
        'bridges are: br-int, br-tun, br-ex',
    );
    assert.equal(
      errorOf(() => idx.resolve('node1')).message,
      '"node1" is a node; name one of its ports: node1/underlay, node1/uplink, ' +
        'node1/BRIDGE/PORT or a VM name',
    );
    assert.equal(
      errorOf(() => idx.resolve('a/b/c/d')).message,
      '"a/b/c/d" is not a port reference; use NODE/BRIDGE/PORT, NODE/underlay, NODE/uplink or ' +
        'a VM name',
    );
  });

  it('a node without an underlay has no NODE/underlay', () => {
    const obj = structuredClone(MULTI_NODE) as { nodes: Record<string, unknown>[] };
    delete obj.nodes[1].underlay;
    const i2 = index(obj);
    assert.equal(
      errorOf(() => i2.resolve('node2/underlay')).message,
      'node "node2" has no underlay in the scenario',
    );
    assert.equal(i2.get('node2/underlay'), undefined);
  });

  it('names outputs DIR/NODE/NAME.pcap: VM, uplink, underlay, LOCAL, else the port', () => {
    const byRef = new Map(idx.outputs('out').map((o) => [o.port, o.path]));
    assert.equal(byRef.get('node1/br-int/qvo1'), 'out/node1/test01.pcap');
    assert.equal(byRef.get('node2/br-int/qvo2'), 'out/node2/test02.pcap');
    assert.equal(byRef.get('node1/br-ex/eth1'), 'out/node1/uplink.pcap');
    assert.equal(byRef.get('node1/underlay'), 'out/node1/underlay.pcap');
    assert.equal(byRef.get('node2/underlay'), 'out/node2/underlay.pcap');
    assert.equal(byRef.get('node1/br-int/br-int'), 'out/node1/br-int.pcap');
    assert.equal(byRef.get('node2/br-int/qr-2'), 'out/node2/qr-2.pcap');
    assert.equal(byRef.get('node1/br-tun/patch-int'), 'out/node1/patch-int.pcap');
    // Every port of the scenario, LOCAL ports and underlays included.
    const ports = 2 * (4 + 1 + 1 + 1) + (1 + 1) + 2;
    assert.equal(byRef.size, ports);
  });

  it('refuses two ports that would write the same file', () => {
    const obj = structuredClone(MULTI_NODE) as any;
    obj.nodes[0].bridges[0].ports.push({ name: 'uplink', ofport: 9 });
    const scenario: NativeScenario = loadScenarioText(JSON.stringify(obj), 's.json').scenario;
    assert.equal(
      errorOf(() => new PortIndex(scenario)).message,
      'ports node1/br-int/uplink and node1/br-ex/eth1 would both be written to ' +
        'node1/uplink.pcap; rename one',
    );
    const vmPort = structuredClone(MULTI_NODE) as any;
    vmPort.nodes[0].bridges[0].ports[2].name = 'test01';
    assert.equal(
      errorOf(() => index(vmPort)).message,
      'ports node1/br-int/qvo1 and node1/br-int/test01 would both be written to ' +
        'node1/test01.pcap; rename one',
    );
  });
});
