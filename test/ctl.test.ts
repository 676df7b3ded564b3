/**
 * `dvrlab run --node` on the UDP underlay and its control socket, without TAP devices (no
 * root needed): the run listens, `dvrlab ctl` queries and changes it, and mistakes in either
 * command are one clear line with exit 1.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ctlRequest } from '../src/cli/ctl.js';
import { tempDir } from './helpers.js';
import { ADDON, CLI, type Running, startDvrlab, stopDvrlab } from './netns.js';

function dvrlab(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
}

function fails(r: ReturnType<typeof dvrlab>, pattern: RegExp): void {
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, pattern);
}

describe('ctl requests', () => {
  it('turns command lines into requests', () => {
    assert.deepEqual(ctlRequest('dump-flows', ['node1/br-int', 'table=0', '--no-stats']), {
      cmd: 'dump-flows',
      bridge: 'node1/br-int',
      filter: 'table=0',
      stats: false,
      names: false,
    });
    assert.deepEqual(ctlRequest('del-flows', ['br0', '--strict', 'in_port=1']), {
      cmd: 'del-flows',
      bridge: 'br0',
      filter: 'in_port=1',
      strict: true,
    });
    assert.deepEqual(
      ctlRequest('add-flows', ['br0', 'f.txt'], () => 'actions=drop\n'),
      {
        cmd: 'add-flow',
        bridge: 'br0',
        flows: 'actions=drop\n',
      },
    );
    assert.deepEqual(
      ctlRequest('trace', ['br0', 'in_port=1', '--packet', '00:01']).packet,
      [0, 1],
    );
  });

  it('refuses unknown commands, options and missing arguments', () => {
    assert.throws(() => ctlRequest('dump', []), /unknown command "dump" \(expected one of/);
    assert.throws(() => ctlRequest('dpctl', ['--verbose']), /unknown option --verbose/);
    assert.throws(() => ctlRequest('add-flow', ['br0']), /expected add-flow BRIDGE FLOW/);
  });
});

describe(
  'dvrlab run --node with a control socket',
  { skip: !ADDON && 'the addon is not built' },
  () => {
    let run: Running | undefined;
    const dir = tempDir({});
    const sock = path.join(dir, 'node1.sock');

    before(async () => {
      run = await startDvrlab([
        'run',
        'devstack-dvr',
        '--node',
        'node1',
        '--underlay',
        '127.0.0.1:0',
        '--underlay',
        'node2=127.0.0.1:47999',
        '--ctl',
        sock,
      ]);
    });

    after(async () => {
      await stopDvrlab(run);
    });

    it('listens on the UDP underlay and names its peers', () => {
      assert.match(
        run!.out(),
        /^node1: VXLAN over UDP on 127\.0\.0\.1:\d+; peers node2 \(192\.168\.1\.12\) at 127\.0\.0\.1:47999, node3 \(192\.168\.1\.13\) at 192\.168\.1\.13:4789$/m,
      );
      assert.equal(statSync(sock).mode & 0o777, 0o600);
    });

    it('dumps the flows of the running node, and changes them', () => {
      const before = dvrlab('ctl', sock, 'dump-flows', 'node1/br-tun', 'table=0');
      assert.equal(before.status, 0, before.stderr);
      assert.match(before.stdout, /priority=1,in_port=1 actions=resubmit\(,1\)/);
      const add = dvrlab(
        'ctl',
        sock,
        'add-flow',
        'node1/br-tun',
        'table=0,priority=7,udp,actions=drop',
      );
      assert.equal(
        add.stdout,
        '1 added, 0 modified, 0 deleted; 0 cached megaflows revalidated away\n',
      );
      const after = dvrlab('ctl', sock, 'dump-flows', 'node1/br-tun', 'table=0,udp', '--no-stats');
      assert.equal(after.stdout, ' priority=7,udp actions=drop\n');
      const del = dvrlab('ctl', sock, 'del-flows', 'node1/br-tun', 'table=0,udp');
      assert.match(del.stdout, /^0 added, 0 modified, 1 deleted;/);
    });

    it('answers stats and trace from the running state', () => {
      const s = JSON.parse(dvrlab('ctl', sock, 'stats', '--json').stdout) as {
        stats: { packets_in: number; underlay: { peers: { name: string }[] } };
      };
      assert.equal(s.stats.packets_in, 0);
      assert.deepEqual(
        s.stats.underlay.peers.map((p) => p.name),
        ['node2', 'node3'],
      );
      const t = dvrlab(
        'ctl',
        sock,
        'trace',
        'node1/br-int',
        'in_port=qvo1f5b1c3a-9e,icmp,nw_src=10.0.0.3,nw_dst=10.1.0.10',
      );
      assert.equal(t.status, 0, t.stderr);
      assert.match(t.stdout, /^Datapath actions: /m);
    });

    it('refuses a bad request with one line, and keeps serving', () => {
      fails(dvrlab('ctl', sock, 'dump-flows', 'node9/br-int'), /^dvrlab: ctl dump-flows: .*node9/);
      fails(
        dvrlab('ctl', sock, 'add-flow', 'node1/br-int', 'actions=frobnicate'),
        /^dvrlab: ctl add-flow: .*frobnicate/,
      );
      assert.equal(dvrlab('ctl', sock, 'dpctl').status, 0);
    });

    it('refuses a second instance on the same socket', () => {
      fails(
        dvrlab(
          'run',
          'devstack-dvr',
          '--node',
          'node2',
          '--underlay',
          '127.0.0.1:0',
          '--ctl',
          sock,
        ),
        /^dvrlab: --ctl .*: another instance is listening there/,
      );
    });
  },
);

describe('dvrlab run and ctl mistakes', { skip: !ADDON && 'the addon is not built' }, () => {
  it('are one clear line each', () => {
    const dir = tempDir({});
    fails(
      dvrlab('run', 'devstack-dvr', '--node', 'node7'),
      /--node node7: no such node \(the scenario has node1, node2, node3\)/,
    );
    fails(
      dvrlab('run', 'devstack-dvr', '--underlay', '127.0.0.1:0'),
      /--underlay: say which node this process runs with --node/,
    );
    fails(
      dvrlab('run', 'devstack-dvr', '--node', 'node1', '--underlay', 'nowhere'),
      /--underlay "nowhere": expected IPv4:PORT/,
    );
    fails(
      dvrlab(
        'run',
        'devstack-dvr',
        '--node',
        'node1',
        '--underlay',
        '127.0.0.1:0',
        '--tap',
        'test04=dl-x',
      ),
      /--tap .*: the port is on node node3; this process runs node node1/,
    );
    fails(
      dvrlab(
        'run',
        'devstack-dvr',
        '--node',
        'node1',
        '--underlay',
        'node5=127.0.0.1:1',
        '--underlay',
        '127.0.0.1:0',
      ),
      /--underlay node5=127\.0\.0\.1:1: no such node/,
    );
    fails(
      dvrlab('run', 'devstack-dvr', '--tap', 'test01=dl-a', '--iface', 'test01=dl-b'),
      /--iface node1\/br-int\/qvo1f5b1c3a-9e=dl-b: the port has a device attached already/,
    );
    const file = path.join(dir, 'plain');
    writeFileSync(file, 'x');
    fails(
      dvrlab('run', 'devstack-dvr', '--node', 'node1', '--underlay', '127.0.0.1:0', '--ctl', file),
      /--ctl .*plain: exists and is not a socket/,
    );
    fails(
      dvrlab('ctl', path.join(dir, 'none.sock'), 'stats'),
      /no dvrlab run --ctl is listening there/,
    );
    fails(dvrlab('ctl', path.join(dir, 'none.sock'), 'bogus'), /unknown command "bogus"/);
  });
});
