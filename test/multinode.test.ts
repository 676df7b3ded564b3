/**
 * Multi-node raw scenarios: two nodes, each with br-int and br-tun, joined by VXLAN over the
 * emulated underlay. A frame from a VM on node1 must leave node1's underlay NIC as VXLAN to
 * node2, enter node2 through its underlay NIC, be decapsulated and reach the VM there, with
 * every hop written to the pcap of the port that sent it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, tempDir } from './helpers.js';
import { readPcap, udpFrame, writePcap } from './oracle/packets.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const ADDON = existsSync(path.join(ROOT, 'native', 'index.js'));

function node(name: string, ip: string, mac: string, vm: string, peer: string) {
  return {
    name,
    underlay: { ip, mac },
    bridges: [
      {
        name: 'br-int',
        ports: [
          { name: `tap-${vm}`, ofport: 1, type: 'internal', vm },
          { name: 'patch-tun', ofport: 2, type: 'patch', peer: 'patch-int' },
        ],
        flows: ['in_port=1,actions=output:2', 'in_port=2,actions=output:1'],
      },
      {
        name: 'br-tun',
        ports: [
          { name: 'patch-int', ofport: 1, type: 'patch', peer: 'patch-tun' },
          {
            name: 'vxlan-peer',
            ofport: 2,
            type: 'vxlan',
            options: { remote_ip: peer, key: 'flow', local_ip: ip },
          },
        ],
        flows: [
          'in_port=1,actions=set_field:0x42->tun_id,output:2',
          'in_port=2,tun_id=0x42,actions=output:1',
        ],
      },
    ],
  };
}

describe('multi-node replay', { skip: !ADDON && 'the addon is not built' }, () => {
  it('carries a VM frame over the underlay to the VM on the other node', () => {
    const scenario = {
      nodes: [
        node('node1', '192.168.1.11', 'aa:55:aa:55:00:11', 'vm1', '192.168.1.12'),
        node('node2', '192.168.1.12', 'aa:55:aa:55:00:12', 'vm2', '192.168.1.11'),
      ],
    };
    const dir = tempDir({ 'cloud.json': JSON.stringify(scenario) });
    const frames = [0, 1, 2].map((i) =>
      udpFrame(
        { src: '52:54:00:00:00:01', dst: '52:54:00:00:00:02' },
        { src: '10.0.0.1', dst: '10.0.0.2', id: i },
        { sport: 1000 + i, dport: 5000, payload: Buffer.from(`hello ${i}`) },
      ),
    );
    const input = path.join(dir, 'in.pcap');
    writePcap(
      input,
      frames.map((data, i) => ({ tsUsec: 1_700_000_000_000_000n + BigInt(i), data })),
    );
    const out = path.join(dir, 'out');
    execFileSync('node', [
      CLI,
      'replay',
      path.join(dir, 'cloud.json'),
      '--in',
      `vm1=${input}`,
      '--out',
      out,
      '-q',
    ]);

    const underlay = readPcap(path.join(out, 'node1', 'underlay.pcap')).map((r) => r.data);
    assert.equal(underlay.length, 3);
    for (const [i, o] of underlay.entries()) {
      assert.equal(o.subarray(0, 6).toString('hex'), 'aa55aa550012', 'outer dst MAC = node2');
      assert.equal(o.subarray(6, 12).toString('hex'), 'aa55aa550011', 'outer src MAC = node1');
      assert.equal(
        o.subarray(26, 34).toString('hex'),
        'c0a8010bc0a8010c',
        'outer 192.168.1.11 > .12',
      );
      assert.equal(o.readUInt16BE(36), 4789);
      assert.equal(o.subarray(42, 50).toString('hex'), '0800000000004200', 'VNI 0x42');
      assert.deepEqual(o.subarray(50), frames[i]);
    }
    const delivered = readPcap(path.join(out, 'node2', 'vm2.pcap')).map((r) => r.data);
    assert.deepEqual(delivered, frames);
    assert.equal(existsSync(path.join(out, 'node2', 'underlay.pcap')), false);

    const stats = JSON.parse(readFileSync(path.join(out, 'stats.json'), 'utf8'));
    assert.equal(stats.packets_in, 3);
    assert.equal(stats.delivered, 3);
    assert.deepEqual(stats.dropped, {});
    assert.equal(stats.packets_out, 6, 'three frames on the underlay, three to vm2');
    assert.deepEqual(stats.per_port['node1/underlay'], { rx: 0, tx: 3 });
    assert.deepEqual(stats.per_port['node2/underlay'], { rx: 3, tx: 0 });
    assert.deepEqual(stats.per_port['node2/br-int/tap-vm2'], { rx: 0, tx: 3 });
  });

  it('drops VXLAN with an unknown VNI on the receiving node, under a named reason', () => {
    const scenario = {
      nodes: [
        node('node1', '192.168.1.11', 'aa:55:aa:55:00:11', 'vm1', '192.168.1.12'),
        node('node2', '192.168.1.12', 'aa:55:aa:55:00:12', 'vm2', '192.168.1.11'),
      ],
    };
    // node1 tags with VNI 0x43, which node2 does not accept.
    scenario.nodes[0]!.bridges[1]!.flows[0] = 'in_port=1,actions=set_field:0x43->tun_id,output:2';
    const dir = tempDir({ 'cloud.json': JSON.stringify(scenario) });
    const input = path.join(dir, 'in.pcap');
    const frame = udpFrame(
      { src: '52:54:00:00:00:01', dst: '52:54:00:00:00:02' },
      { src: '10.0.0.1', dst: '10.0.0.2' },
      { sport: 1000, dport: 5000, payload: Buffer.from('x') },
    );
    writePcap(input, [{ tsUsec: 1_700_000_000_000_000n, data: frame }]);
    const out = path.join(dir, 'out');
    const summary = execFileSync('node', [
      CLI,
      'replay',
      path.join(dir, 'cloud.json'),
      '--in',
      `vm1=${input}`,
      '--out',
      out,
      '--json',
    ]).toString();
    const stats = JSON.parse(summary);
    // It left node1 on the underlay, a hop; node2 dropped it, and that is where it ended.
    assert.equal(stats.delivered, 0);
    assert.deepEqual(stats.dropped, { no_match: 1 }, "node2's tunnel table has no flow for it");
    assert.equal(stats.carried, 1);
    assert.equal(stats.packets_out, 1, 'the frame on the underlay pcap');
    assert.equal(stats.per_port['node2/underlay'].rx, 1);
    assert.equal(existsSync(path.join(out, 'node2', 'vm2.pcap')), false);
  });

  it("trace --follow crosses the underlay and shows the other node's tables", () => {
    const scenario = {
      nodes: [
        node('node1', '192.168.1.11', 'aa:55:aa:55:00:11', 'vm1', '192.168.1.12'),
        node('node2', '192.168.1.12', 'aa:55:aa:55:00:12', 'vm2', '192.168.1.11'),
      ],
    };
    const dir = tempDir({ 'cloud.json': JSON.stringify(scenario) });
    const flow =
      'in_port=1,udp,dl_src=52:54:00:00:00:01,dl_dst=52:54:00:00:00:02,' +
      'nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_ttl=64,udp_dst=5000';
    const plain = execFileSync('node', [
      CLI,
      'trace',
      path.join(dir, 'cloud.json'),
      'node1/br-int',
      flow,
    ]).toString();
    // Without --follow the trace stops where OVS's would: at the tunnel push on node1.
    assert.match(
      plain,
      /^Datapath actions: .*tnl_push\(tnl_port\(\d+\),header\(size=50,type=4,eth\(dst=aa:55:aa:55:00:12,src=aa:55:aa:55:00:11/m,
    );
    assert.doesNotMatch(plain, /node2/);
    const out = execFileSync('node', [
      CLI,
      'trace',
      '--follow',
      '--names',
      path.join(dir, 'cloud.json'),
      'node1/br-int',
      flow,
    ]).toString();
    // node1: br-int, then br-tun over the patch port, then the tunnel output.
    assert.match(out, /^node node1$/m);
    assert.match(out, /bridge\("br-tun"\)/);
    assert.match(out, /-> output to native tunnel/);
    // node2: the decapsulated packet enters br-tun on its tunnel port with tun_id 0x42 ...
    assert.match(
      out,
      /^node2: tnl_pop - decapsulated: tun_id=0x42,tun_src=192\.168\.1\.11,tun_dst=192\.168\.1\.12$/m,
    );
    assert.match(out, /Flow: udp,tun_id=0x42,tun_src=192\.168\.1\.11,tun_dst=192\.168\.1\.12,/);
    assert.match(out, /tun_id=0x42,in_port="?vxlan-peer"?, priority 32768/);
    // ... and ends on vm2's port.
    assert.match(out, /^Emitted on node1\/underlay: \d+ bytes$/m);
    assert.match(out, /^Emitted on node2\/br-int\/tap-vm2: \d+ bytes$/m);
    const json = JSON.parse(
      execFileSync('node', [
        CLI,
        'trace',
        '--follow',
        '--json',
        path.join(dir, 'cloud.json'),
        'node1/br-int',
        flow,
      ]).toString(),
    );
    assert.deepEqual(
      json.passes.map((p: { node: string; pass: { kind: string } }) => `${p.node}:${p.pass.kind}`),
      ['node1:received', 'node2:received', 'node2:decapsulated'],
    );
  });
});
