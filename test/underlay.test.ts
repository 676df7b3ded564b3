/**
 * One node per process on a real UDP underlay, against a Linux kernel VXLAN device acting as
 * the remote VTEP: a namespace behind dvrlab's TAP and a namespace behind the kernel's
 * vxlan0 exchange ping and checksum-verified TCP in both directions. The same run is driven
 * through its control socket (flows dumped, deleted and added back, with traffic following
 * at once; megaflows, trace, conntrack and stats), and a tunnel peer nobody answers for is
 * reported. Needs root (CI has it); skipped otherwise.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from './helpers.js';
import {
  ADDON,
  CLI,
  ROOTED,
  has,
  type Running,
  inNs,
  ping,
  sh,
  startDvrlab,
  stopDvrlab,
  transfer,
} from './netns.js';

const VM_NS = 'dl-ut-vm';
const VTEP_NS = 'dl-ut-vtep';

function skipReason(): string | false {
  if (!ADDON) return 'the addon is not built';
  if (!ROOTED || !has('ethtool')) return 'needs root, /dev/net/tun, ip, ping and ethtool';
  if ([VM_NS, VTEP_NS].some((n) => existsSync(`/run/netns/${n}`))) return 'namespaces exist';
  return false;
}

/** node "dvr" runs here; "kvtep" is the kernel VXLAN device; "gone" is nobody. */
const SCENARIO = {
  nodes: [
    {
      name: 'dvr',
      underlay: { ip: '10.99.0.1', mac: '02:99:00:00:00:01' },
      bridges: [
        {
          name: 'br-int',
          ports: [
            { name: 'tap-vm', ofport: 1, type: 'internal', vm: 'vm' },
            {
              name: 'vx-kernel',
              ofport: 2,
              type: 'vxlan',
              options: { remote_ip: '10.99.0.2', key: '5000', local_ip: '10.99.0.1' },
            },
            {
              name: 'vx-gone',
              ofport: 3,
              type: 'vxlan',
              options: { remote_ip: '10.99.0.3', key: '5000', local_ip: '10.99.0.1' },
            },
          ],
          flows: [
            'priority=40000,in_port=1,udp,tp_dst=9,actions=output:3',
            'in_port=1,actions=output:2',
            'in_port=2,actions=output:1',
          ],
        },
      ],
    },
    { name: 'kvtep', underlay: { ip: '10.99.0.2', mac: '02:99:00:00:00:02' }, bridges: [] },
    { name: 'gone', underlay: { ip: '10.99.0.3', mac: '02:99:00:00:00:03' }, bridges: [] },
  ],
};

function ctl(sock: string, ...args: string[]) {
  return spawnSync(process.execPath, [CLI, 'ctl', sock, ...args], { encoding: 'utf8' });
}

function ctlOk(sock: string, ...args: string[]): string {
  const r = ctl(sock, ...args);
  assert.equal(r.status, 0, `ctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

describe('UDP underlay against a kernel VXLAN VTEP', { skip: skipReason() }, () => {
  let run: Running | undefined;
  const dir = tempDir({ 'cloud.json': JSON.stringify(SCENARIO) });
  const sock = path.join(dir, 'ctl.sock');

  before(async () => {
    // The kernel VTEP: 10.99.0.2 at the end of a veth, vxlan0 (VNI 5000) on 10.200.0.2.
    sh(['ip', 'netns', 'add', VTEP_NS]);
    sh(['ip', 'link', 'add', 'dl-ut0', 'type', 'veth', 'peer', 'name', 'dl-ut1']);
    sh(['ip', 'link', 'set', 'dl-ut1', 'netns', VTEP_NS]);
    sh(['ip', 'addr', 'add', '10.99.0.1/24', 'dev', 'dl-ut0']);
    sh(['ip', 'link', 'set', 'dl-ut0', 'up']);
    const n = ['ip', '-n', VTEP_NS];
    sh([...n, 'addr', 'add', '10.99.0.2/24', 'dev', 'dl-ut1']);
    sh([...n, 'link', 'set', 'dl-ut1', 'up']);
    // A veth hands locally made packets over with their checksums still to be filled in
    // (offload); a userspace receiver of the VXLAN datagrams would get the inner TCP
    // checksums unfilled. A real NIC fills them; here the kernel must.
    sh(['ip', 'netns', 'exec', VTEP_NS, 'ethtool', '-K', 'dl-ut1', 'tx', 'off']);
    sh([...n, 'link', 'set', 'lo', 'up']);
    sh([
      ...n,
      'link',
      'add',
      'vxlan0',
      'type',
      'vxlan',
      'id',
      '5000',
      'remote',
      '10.99.0.1',
      'dstport',
      '4789',
    ]);
    sh([...n, 'link', 'set', 'vxlan0', 'address', '02:00:00:00:02:02', 'mtu', '1450', 'up']);
    sh([...n, 'addr', 'add', '10.200.0.2/24', 'dev', 'vxlan0']);
    run = await startDvrlab([
      'run',
      path.join(dir, 'cloud.json'),
      '--node',
      'dvr',
      '--underlay',
      '10.99.0.1:4789',
      '--underlay',
      'gone=127.0.0.1:9',
      '--tap',
      'vm=dl-ut-tap',
      '--ctl',
      sock,
    ]);
    sh(['ip', 'netns', 'add', VM_NS]);
    sh(['ip', 'link', 'set', 'dl-ut-tap', 'netns', VM_NS]);
    const v = ['ip', '-n', VM_NS];
    sh([...v, 'link', 'set', 'dl-ut-tap', 'address', '02:00:00:00:01:01', 'mtu', '1450', 'up']);
    sh([...v, 'addr', 'add', '10.200.0.1/24', 'dev', 'dl-ut-tap']);
    sh([...v, 'link', 'set', 'lo', 'up']);
  });

  after(async () => {
    await stopDvrlab(run);
    for (const ns of [VM_NS, VTEP_NS]) spawnSync('ip', ['netns', 'del', ns]);
    spawnSync('ip', ['link', 'del', 'dl-ut0']);
  });

  it('says where it listens and who its peers are', () => {
    assert.match(
      run!.out(),
      /^dvr: VXLAN over UDP on 10\.99\.0\.1:4789; peers kvtep \(10\.99\.0\.2\) at 10\.99\.0\.2:4789, gone \(10\.99\.0\.3\) at 127\.0\.0\.1:9$/m,
    );
  });

  it('the namespace behind dvrlab and the one behind the kernel VTEP reach each other', async () => {
    ping(VM_NS, '10.200.0.2');
    ping(VTEP_NS, '10.200.0.1');
    await transfer(VTEP_NS, '10.200.0.2', '10.200.0.2', VM_NS);
    await transfer(VM_NS, '10.200.0.1', '10.200.0.1', VTEP_NS);
  });

  it('opens its control socket for its owner only', () => {
    assert.equal(statSync(sock).mode & 0o777, 0o600);
  });

  it('dump-flows, dpctl, trace, conntrack and stats show the running state', () => {
    const flows = ctlOk(sock, 'dump-flows', 'dvr/br-int');
    assert.match(flows, /n_packets=[1-9]\d*, .*in_port=1 actions=output:2/);
    assert.match(ctlOk(sock, 'dpctl'), /actions:.*tnl_push\(tnl_port\(\d+\),header\(.*vni=0x1388/);
    const trace = ctlOk(
      sock,
      'trace',
      'dvr/br-int',
      'in_port=1,icmp,nw_src=10.200.0.1,nw_dst=10.200.0.2',
    );
    assert.match(trace, /^Datapath actions: .*tnl_push/m);
    ctlOk(sock, 'conntrack');
    const stats = JSON.parse(ctlOk(sock, 'stats', '--json')) as {
      stats: {
        packets_in: number;
        underlay: { peers: { name: string; sent: number; received: number }[] };
      };
    };
    assert.ok(stats.stats.packets_in > 100);
    const k = stats.stats.underlay.peers.find((p) => p.name === 'kvtep')!;
    assert.ok(k.sent > 100 && k.received > 100, JSON.stringify(k));
  });

  it('a deleted flow stops traffic at once, and an added one brings it back', () => {
    assert.match(
      ctlOk(sock, 'del-flows', 'dvr/br-int', 'in_port=1'),
      /^0 added, 0 modified, 2 deleted; [1-9]\d* cached megaflows revalidated away$/m,
    );
    const r = inNs(VM_NS, ['ping', '-c', '2', '-i', '0.2', '-W', '1', '10.200.0.2']);
    assert.notEqual(r.status, 0, 'no flow for in_port=1: no answer');
    assert.doesNotMatch(ctlOk(sock, 'dump-flows', 'dvr/br-int'), /in_port=1/);
    const file = path.join(dir, 'flows.txt');
    writeFileSync(
      file,
      '# the two flows deleted above\n' +
        'priority=40000,in_port=1,udp,tp_dst=9,actions=output:3\n' +
        'in_port=1,actions=output:2\n',
    );
    assert.match(ctlOk(sock, 'add-flows', 'dvr/br-int', file), /^2 added, 0 modified, 0 deleted;/);
    ping(VM_NS, '10.200.0.2');
  });

  it('refuses a bad flow with one clear line and changes nothing', () => {
    const r = ctl(sock, 'add-flow', 'dvr/br-int', 'in_port=1,actions=output:bogus');
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^dvrlab: ctl add-flow: .*bogus/);
    const none = ctl(path.join(dir, 'nothing.sock'), 'stats');
    assert.equal(none.status, 1);
    assert.match(none.stderr, /no dvrlab run --ctl is listening there/);
  });

  it('reports a tunnel peer that does not answer', async () => {
    // UDP to port 9 goes to "gone", at 127.0.0.1:9 where nothing listens.
    sh([
      'ip',
      '-n',
      VM_NS,
      'neigh',
      'add',
      '10.200.0.9',
      'lladdr',
      '02:00:00:00:00:09',
      'dev',
      'dl-ut-tap',
    ]);
    const send = `require('dgram').createSocket('udp4').send('x', 9, '10.200.0.9', () => process.exit(0))`;
    assert.equal(inNs(VM_NS, [process.execPath, '-e', send]).status, 0);
    const deadline = Date.now() + 9000;
    while (Date.now() < deadline && !/does not answer/.test(run!.out())) {
      await new Promise((r) => setTimeout(r, 200));
    }
    const out = run!.out();
    assert.match(
      out,
      /^dvrlab: tunnel peer gone \(10\.99\.0\.3 at 127\.0\.0\.1:9\) is unreachable: ICMP port unreachable/m,
    );
    assert.match(
      out,
      /^dvrlab: tunnel peer gone \(10\.99\.0\.3 at 127\.0\.0\.1:9\) does not answer: nothing received for \d+ s while 1 datagrams went to it \(0 received in all\)$/m,
    );
  });

  it('stops on SIGTERM with the underlay counters and removes its socket', async () => {
    assert.equal(await stopDvrlab(run), 0);
    const out = run!.out();
    assert.match(out, /^ {2}underlay 10\.99\.0\.1:4789: \d+ datagrams out, \d+ in$/m);
    assert.match(
      out,
      /^ {4}peer gone \(10\.99\.0\.3\) at 127\.0\.0\.1:9: sent 1, received 0, not answering$/m,
    );
    assert.equal(existsSync(sock), false);
  });
});
