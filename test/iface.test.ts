/**
 * An existing interface attached to a port through libpcap (`dvrlab run --iface`): one end
 * of a veth pair is the port, the other end is a host in a namespace; a second host sits
 * behind a TAP on another port. Ping and checksum-verified TCP cross the bridge in both
 * directions. Needs root and ethtool (CI has both); skipped otherwise.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from './helpers.js';
import {
  ADDON,
  CLI,
  ROOTED,
  type Running,
  has,
  ping,
  sh,
  startDvrlab,
  stopDvrlab,
  transfer,
} from './netns.js';

const A = 'dl-if-a';
const B = 'dl-if-b';

function skipReason(): string | false {
  if (!ADDON) return 'the addon is not built';
  if (!ROOTED || !has('ethtool')) return 'needs root, /dev/net/tun, ip, ping and ethtool';
  if ([A, B].some((n) => existsSync(`/run/netns/${n}`))) return 'namespaces exist';
  return false;
}

const SCENARIO = {
  bridges: [
    {
      name: 'br0',
      ports: [
        { name: 'wire', ofport: 1 },
        { name: 'tapb', ofport: 2 },
      ],
      flows: ['actions=NORMAL'],
    },
  ],
};

describe('an existing interface attached through libpcap', { skip: skipReason() }, () => {
  let run: Running | undefined;
  const dir = tempDir({ 'bridge.json': JSON.stringify(SCENARIO) });

  before(async () => {
    sh(['ip', 'netns', 'add', A]);
    sh(['ip', 'link', 'add', 'dl-if0', 'type', 'veth', 'peer', 'name', 'dl-if1']);
    sh(['ip', 'link', 'set', 'dl-if1', 'netns', A]);
    sh(['ip', 'link', 'set', 'dl-if0', 'up']);
    // Frames leave the namespace whole and with their checksums filled in, as from a NIC.
    sh([
      'ip',
      'netns',
      'exec',
      A,
      'ethtool',
      '-K',
      'dl-if1',
      'tx',
      'off',
      'tso',
      'off',
      'gso',
      'off',
    ]);
    sh(['ip', '-n', A, 'addr', 'add', '10.77.0.1/24', 'dev', 'dl-if1']);
    sh(['ip', '-n', A, 'link', 'set', 'dl-if1', 'up']);
    sh(['ip', '-n', A, 'link', 'set', 'lo', 'up']);
    run = await startDvrlab([
      'run',
      path.join(dir, 'bridge.json'),
      '--iface',
      'wire=dl-if0',
      '--tap',
      'tapb=dl-if-tap',
    ]);
    sh(['ip', 'netns', 'add', B]);
    sh(['ip', 'link', 'set', 'dl-if-tap', 'netns', B]);
    sh(['ip', '-n', B, 'addr', 'add', '10.77.0.2/24', 'dev', 'dl-if-tap']);
    sh(['ip', '-n', B, 'link', 'set', 'dl-if-tap', 'up']);
    sh(['ip', '-n', B, 'link', 'set', 'lo', 'up']);
  });

  after(async () => {
    await stopDvrlab(run);
    for (const ns of [A, B]) spawnSync('ip', ['netns', 'del', ns]);
    spawnSync('ip', ['link', 'del', 'dl-if0']);
  });

  it('says which interface is on which port', () => {
    assert.match(run!.out(), /^dl-if0 \(libpcap\) -> br0\/wire$/m);
  });

  it('the host behind the veth and the one behind the TAP reach each other', async () => {
    ping(A, '10.77.0.2');
    ping(B, '10.77.0.1');
    await transfer(B, '10.77.0.2', '10.77.0.2', A);
    await transfer(A, '10.77.0.1', '10.77.0.1', B);
  });

  it('counts what crossed the interface, without taking its own injections back', async () => {
    assert.equal(await stopDvrlab(run), 0);
    const out = run!.out();
    // A device whose queue is full refuses frames: they are counted as its tx_dropped.
    const m = /^ {2}br0\/wire: rx (\d+), tx (\d+)(, tx_dropped \d+)?$/m.exec(out);
    assert.ok(m, out);
    const t = /^ {2}br0\/tapb: rx (\d+), tx (\d+)(, tx_dropped \d+)?$/m.exec(out);
    assert.ok(t, out);
    // Everything one port received went out of the other (NORMAL, two ports), and what was
    // injected on the interface did not come back in as input.
    assert.ok(Number(m[1]) > 1000, m[0]);
    assert.ok(Number(m[1]) <= Number(t[2]) + 20 && Number(t[1]) <= Number(m[2]) + 20, out);
    // Nothing is dropped but what a full device queue refused (tx_failed).
    const st = /^stopped: (\d+) frames in, (\d+) delivered, (\d+) dropped/m.exec(out);
    assert.ok(st, out);
    assert.equal(Number(st[1]), Number(st[2]) + Number(st[3]), out);
    if (Number(st[3]) > 0) assert.match(out, /tx_failed/, out);
  });
});

describe('--iface errors', { skip: !ADDON && 'the addon is not built' }, () => {
  it('an interface that does not exist is one clear line', () => {
    const dir = tempDir({ 'bridge.json': JSON.stringify(SCENARIO) });
    const r = spawnSync(
      process.execPath,
      [CLI, 'run', path.join(dir, 'bridge.json'), '--iface', 'wire=dl-nonesuch'],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^dvrlab: --iface dl-nonesuch: /);
  });
});
