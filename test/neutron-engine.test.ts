/**
 * Compiled topologies on the real loader and engine: the devstack-dvr scenario (and the other
 * topologies of the tests) load with src/scenario/ and build in the engine, so every flow the
 * compiler writes parses in the Rust flow parser; `dvrlab compile` writes YAML or JSON; and
 * the same-subnet cross-node path of reference §5.1 (test02 on node2 to test05 on node3)
 * replays end to end, header field by header field.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { Engine } from '../src/native.js';
import { compile, formatRawScenario } from '../src/neutron/compile.js';
import { DEVSTACK_DVR_YAML } from '../src/neutron/devstack-dvr.js';
import { loadScenarioOrTopology } from '../src/neutron/load.js';
import { loadTopologyText } from '../src/neutron/topology.js';
import { loadScenarioText } from '../src/scenario/load.js';
import { ROOT, tempDir } from './helpers.js';
import { ETH_ARP, arp, eth, icmpFrame, readPcap, writePcap } from './oracle/packets.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const ADDON = existsSync(path.join(ROOT, 'native', 'index.js'));

function dvrlab(args: string[], cwd = ROOT) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SMALL = `
nodes:
  - {name: nn, agent_mode: dvr_snat, tunnel_ip: 10.1.1.1}
  - {name: cn, agent_mode: dvr, tunnel_ip: 10.1.1.2}
  - {name: lg, agent_mode: legacy, tunnel_ip: 10.1.1.3}
networks:
  - {name: net, vni: 7, subnets: [{name: sn, cidr: 10.5.0.0/24, gateway_ip: 10.5.0.1}]}
  - {name: lan, vni: 8, subnets: [{name: lsn, cidr: 10.6.0.0/24, gateway_ip: 10.6.0.1}]}
  - {name: ext, external: true, subnets: [{name: ext-sn, cidr: 192.0.2.0/24, gateway_ip: 192.0.2.1}]}
routers:
  - {name: r, snat_node: nn, gateway: {network: ext}, interfaces: [{subnet: sn}]}
  - {name: old, distributed: false, snat_node: nn, gateway: {network: ext}, interfaces: [{subnet: lsn}]}
vms:
  - {name: a, node: nn, network: net, ip: 10.5.0.10}
  - {name: b, node: cn, network: net, ip: 10.5.0.11}
  - {name: c, node: lg, network: lan, ip: 10.6.0.5}
floating_ips:
  - {ip: 192.0.2.50, vm: b}
  - {ip: 192.0.2.51, vm: c}
`;

describe('compiled scenarios on the loader and the engine', () => {
  it('devstack-dvr loads as a raw scenario, with its namespaces kept', () => {
    const raw = compile(loadTopologyText(DEVSTACK_DVR_YAML, 'devstack-dvr'));
    for (const format of ['yaml', 'json'] as const) {
      const loaded = loadScenarioText(formatRawScenario(raw, format), `seed.${format}`);
      assert.equal(loaded.scenario.oneNode, false);
      assert.deepEqual(
        loaded.scenario.nodes.map((n) => [
          n.name,
          n.bridges.map((b) => b.name),
          n.namespaces?.length,
        ]),
        [
          ['node1', ['br-int', 'br-tun', 'br-ex'], 2],
          ['node2', ['br-int', 'br-tun', 'br-ex'], 2],
          ['node3', ['br-int', 'br-tun', 'br-ex'], 1],
        ],
      );
      const flows = loaded.scenario.nodes.flatMap((n) => n.bridges.flatMap((b) => b.flows));
      assert.equal(flows.length, 235);
      const test02 = loaded.scenario.nodes[1].bridges[0].ports.find((p) => p.vm === 'test02')!;
      assert.deepEqual(test02, {
        name: 'qvo28e6e267-f3',
        ofport: 3,
        type: 'internal',
        options: {},
        tag: 1,
        vm: 'test02',
      });
    }
  });

  it(
    'every compiled flow parses in the engine',
    { skip: !ADDON && 'the addon is not built' },
    () => {
      const seed = loadScenarioOrTopology('devstack-dvr');
      assert.doesNotThrow(() => new Engine(seed.scenario));
      const dir = tempDir({ 'small.yaml': SMALL });
      const small = loadScenarioOrTopology(path.join(dir, 'small.yaml'));
      assert.doesNotThrow(() => new Engine(small.scenario));
      assert.deepEqual(
        small.scenario.nodes.map((n) =>
          (n.namespaces as { name: string }[]).map((x) => x.name.split('-')[0]),
        ),
        [['qrouter', 'snat', 'qrouter'], ['qrouter', 'fip'], []],
      );
    },
  );
});

describe('dvrlab compile', () => {
  it('writes the built-in topology as YAML on stdout, the same as the library', () => {
    const r = dvrlab(['compile', 'devstack-dvr']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const raw = compile(loadTopologyText(DEVSTACK_DVR_YAML, 'devstack-dvr'));
    assert.equal(r.stdout, formatRawScenario(raw, 'yaml'));
    // The flows read as dump-flows lines.
    assert.match(
      r.stdout,
      /^ {10}cookie=0x[0-9a-f]{16}, table=20, priority=2,dl_vlan=1,dl_dst=fa:16:3e:96:e2:a4 actions=strip_vlan,load:0x42->NXM_NX_TUN_ID\[\],output:3$/m,
    );
    assert.deepEqual(parse(r.stdout), JSON.parse(JSON.stringify(raw)));
  });

  it('-o picks YAML or JSON by extension, and the output replays as a scenario file', () => {
    const dir = tempDir({ 'small.yaml': SMALL });
    for (const name of ['out.json', 'out.yml']) {
      const file = path.join(dir, name);
      const r = dvrlab(['compile', path.join(dir, 'small.yaml'), '-o', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '');
      const text = readFileSync(file, 'utf8');
      assert.equal(text.startsWith('{'), name.endsWith('.json'));
      const loaded = loadScenarioText(text, file);
      assert.equal(loaded.scenario.nodes.length, 3);
    }
    const bad = dvrlab(['compile', path.join(dir, 'small.yaml'), '-o', path.join(dir, 'out.txt')]);
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr,
      `dvrlab: -o ${path.join(dir, 'out.txt')}: expected a file name ending in .yaml, .yml or .json\n`,
    );
  });

  it('reports a topology mistake as one line with file, line, column and path', () => {
    const dir = tempDir({
      'bad.yaml': SMALL.replace('node: cn, network: net', 'node: cx, network: net'),
    });
    const r = dvrlab(['compile', 'bad.yaml'], dir);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'dvrlab: bad.yaml:15:21: vms[1].node: no node named "cx" (known: nn, cn, lg)\n',
    );
    assert.equal(r.stdout, '');
  });

  it('refuses a raw scenario and a missing file', () => {
    const dir = tempDir({ 'raw.json': JSON.stringify({ bridges: [] }) });
    const raw = dvrlab(['compile', 'raw.json'], dir);
    assert.equal(raw.code, 1);
    assert.equal(
      raw.stderr,
      'dvrlab: raw.json: expected a Neutron topology (top-level "networks"), got a raw scenario\n',
    );
    const missing = dvrlab(['compile', 'nope.yaml'], dir);
    assert.equal(missing.stderr, 'dvrlab: nope.yaml: cannot read topology: no such file\n');
  });
});

/** §5.1 in the seed: test02 (node2) → test05 (node3), 10.0.0.8 → 10.0.0.4, same subnet. */
describe(
  'replay of the same-subnet cross-node path (reference §5.1)',
  { skip: !ADDON && 'the addon is not built' },
  () => {
    const T2 = 'fa:16:3e:76:47:75';
    const T5 = 'fa:16:3e:96:e2:a4';
    const request = eth(
      { dst: 'ff:ff:ff:ff:ff:ff', src: T2, type: ETH_ARP },
      arp({ op: 1, sha: T2, spa: '10.0.0.8', tha: '00:00:00:00:00:00', tpa: '10.0.0.4' }),
    );
    const ping = icmpFrame(
      { src: T2, dst: T5 },
      { src: '10.0.0.8', dst: '10.0.0.4', id: 0x1234, ttl: 64 },
      { type: 8, rest: (7 << 16) | 1, payload: Buffer.from('dvrlab same subnet') },
    );
    const pong = icmpFrame(
      { src: T5, dst: T2 },
      { src: '10.0.0.4', dst: '10.0.0.8', id: 0x4321, ttl: 64 },
      { type: 0, rest: (7 << 16) | 1, payload: Buffer.from('dvrlab same subnet') },
    );

    const dir = tempDir();
    const t0 = 1_700_000_000_000_000n;
    writePcap(path.join(dir, 'test02.pcap'), [
      { tsUsec: t0, data: request },
      { tsUsec: t0 + 1000n, data: ping },
    ]);
    writePcap(path.join(dir, 'test05.pcap'), [{ tsUsec: t0 + 2000n, data: pong }]);
    const out = path.join(dir, 'out');
    const run = () =>
      dvrlab([
        'replay',
        'devstack-dvr',
        '--in',
        `test02=${path.join(dir, 'test02.pcap')}`,
        '--in',
        `test05=${path.join(dir, 'test05.pcap')}`,
        '--out',
        out,
        '--json',
      ]);
    let result: ReturnType<typeof run> | undefined;
    const replay = () => (result ??= run());
    const frames = (p: string) => readPcap(path.join(out, p)).map((r) => r.data);

    it('runs on the built-in topology, namespaces included', () => {
      const r = replay();
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      const stats = JSON.parse(r.stdout);
      assert.equal(stats.packets_in, 3);
      assert.equal(stats.delivered, 3);
      assert.deepEqual(stats.per_port['node2/underlay'], { rx: 1, tx: 1 });
      assert.deepEqual(stats.per_port['node3/underlay'], { rx: 1, tx: 1 });
    });

    it("step 0: br-tun's ARP responder answers for test05 on node2; nothing goes on the wire", () => {
      replay();
      const got = frames('node2/test02.pcap');
      const reply = got[0];
      assert.equal(reply.subarray(0, 6).toString('hex'), T2.replace(/:/g, ''), 'eth dst = test02');
      assert.equal(
        reply.subarray(6, 12).toString('hex'),
        T5.replace(/:/g, ''),
        'eth src = test05',
      );
      assert.equal(reply.readUInt16BE(12), ETH_ARP, 'untagged ARP');
      assert.equal(reply.readUInt16BE(20), 2, 'arp_op = reply');
      assert.equal(
        reply.subarray(22, 28).toString('hex'),
        T5.replace(/:/g, ''),
        'arp_sha = test05',
      );
      assert.equal(reply.subarray(28, 32).toString('hex'), '0a000004', 'arp_spa = 10.0.0.4');
      assert.equal(
        reply.subarray(32, 38).toString('hex'),
        T2.replace(/:/g, ''),
        'arp_tha = test02',
      );
      assert.equal(reply.subarray(38, 42).toString('hex'), '0a000008', 'arp_tpa = 10.0.0.8');
      // The request reached node2's own VLAN-1 ports: the qr- port is the qrouter namespace's
      // interface, which ignores a request for an address it does not have; nothing goes on
      // the wire but the ICMP frame.
      assert.equal(existsSync(path.join(out, 'node2', 'qr-aae8ab78-22.pcap')), false);
      assert.equal(frames('node2/underlay.pcap').length, 1, 'only the ICMP frame leaves node2');
      void request;
    });

    it('steps 1-3: the frame leaves node2 as VXLAN VNI 66, 192.168.1.12 → .13, inner unchanged', () => {
      replay();
      const [o] = frames('node2/underlay.pcap');
      assert.equal(o.subarray(0, 6).toString('hex'), '080027aad428', 'outer dst = node3');
      assert.equal(o.subarray(6, 12).toString('hex'), '0800278ba713', 'outer src = node2');
      assert.equal(o.readUInt16BE(12), 0x0800);
      assert.equal(o[14], 0x45);
      assert.equal(o.readUInt16BE(20) & 0x4000, 0x4000, 'DF set');
      assert.equal(o[23], 17, 'UDP');
      assert.equal(o.subarray(26, 30).toString('hex'), 'c0a8010c', 'outer src 192.168.1.12');
      assert.equal(o.subarray(30, 34).toString('hex'), 'c0a8010d', 'outer dst 192.168.1.13');
      assert.equal(o.readUInt16BE(36), 4789, 'UDP dport 4789');
      assert.equal(o[42], 0x08, 'VXLAN flags: VNI valid');
      assert.equal(o.readUIntBE(46, 3), 66, 'VNI 66');
      const inner = o.subarray(50);
      assert.deepEqual(inner, ping, 'inner frame unchanged: T2 → T5, 10.0.0.8 → 10.0.0.4');
      assert.equal(inner[14 + 8], 64, 'inner TTL 64');
      // The inner source stays test02's MAC, not node2's DVR MAC: nothing is routed.
      assert.equal(o.subarray(56, 62).toString('hex'), T2.replace(/:/g, ''));
    });

    it('steps 4-5: node3 decapsulates (t4: VNI 66 → VLAN 2, t9, t10 learn) and delivers to test05', () => {
      replay();
      const delivered = frames('node3/test05.pcap');
      assert.equal(delivered.length, 1);
      assert.deepEqual(delivered[0], ping);
      // The private network is VLAN 2 on node3: its VLAN-1 ports (private2) see nothing.
      assert.equal(existsSync(path.join(out, 'node3', 'test04.pcap')), false);
      assert.equal(existsSync(path.join(out, 'node3', 'qr-2909fe1f-46.pcap')), false);
    });

    it('the reply is symmetric: node3 t20 → VNI 66 → node2 t4 (VLAN 1) → t9 → t10 → test02', () => {
      replay();
      const [o] = frames('node3/underlay.pcap');
      assert.equal(o.subarray(0, 6).toString('hex'), '0800278ba713', 'outer dst = node2');
      assert.equal(o.subarray(6, 12).toString('hex'), '080027aad428', 'outer src = node3');
      assert.equal(o.subarray(26, 34).toString('hex'), 'c0a8010dc0a8010c', '.13 → .12');
      assert.equal(o.readUIntBE(46, 3), 66);
      assert.deepEqual(o.subarray(50), pong);
      const got = frames('node2/test02.pcap');
      assert.equal(got.length, 2);
      assert.deepEqual(got[1], pong);
    });
  },
);
