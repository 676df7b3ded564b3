/**
 * Faults in live mode, with real kernels (root): a TAP deleted and a namespace deleted under
 * a running lab, a node process killed and started again with its recorded command line, and
 * control-socket clients that send garbage, send nothing, do not read or go away in the middle
 * of an answer. Each time the instance keeps forwarding what it still can, reports the fault
 * in one line on stderr (and the recovery, when there is one), and stops cleanly. Also: `run
 * --tap` as an unprivileged user is one clear line and exit 1. Skipped without root.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from './helpers.js';
import {
  ADDON,
  CLI,
  ROOTED,
  type Running,
  has,
  inNs,
  ping,
  sh,
  startDvrlab,
  stopDvrlab,
} from './netns.js';

const LAB_NS = ['test01', 'test02', 'test03', 'test04', 'test05', 'outside'];
const LAB_STATE = '/run/dvrlab/lab-devstack-dvr.json';

function skipReason(): string | false {
  if (!ADDON) return 'the addon is not built';
  if (!ROOTED) return 'needs root, /dev/net/tun, ip and ping';
  if (LAB_NS.some((n) => existsSync(`/run/netns/${n}`))) return 'lab namespaces exist already';
  return false;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `text()` matches `pattern`; fails with the text after `ms`. */
async function waitFor(text: () => string, pattern: RegExp, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pattern.test(text())) {
    if (Date.now() > deadline) assert.fail(`no ${pattern} within ${ms} ms in:\n${text()}`);
    await sleep(100);
  }
}

function count(text: string, pattern: RegExp): number {
  return text.split('\n').filter((l) => pattern.test(l)).length;
}

/** CPU time (user + system, in clock ticks) a process has used. */
function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** Asserts that `pid` is alive and not spinning (less than a third of a core over 1 s). */
async function idleAndAlive(pid: number): Promise<void> {
  const t0 = cpuTicks(pid);
  await sleep(1000);
  const used = cpuTicks(pid) - t0;
  assert.ok(used < 33, `the process used ${used} of 100 clock ticks in a quiet second`);
}

/** Pings until one answer comes back (ARP and flows may need a moment after a change). */
async function pingSoon(ns: string, dst: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = inNs(ns, ['ping', '-c', '1', '-W', '1', dst]);
    if (r.status === 0) return;
    if (Date.now() > deadline) assert.fail(`ping ${dst} from ${ns}: ${r.stdout}${r.stderr}`);
  }
}

describe('faults in live mode', { skip: skipReason() }, () => {
  describe('a TAP and a namespace deleted under lab up', () => {
    let lab: Running | undefined;

    before(async () => {
      lab = await startDvrlab(['lab', 'up', 'devstack-dvr']);
    });

    after(async () => {
      await stopDvrlab(lab);
      spawnSync(process.execPath, [CLI, 'lab', 'down', 'devstack-dvr']);
    });

    it('reports each once, does not spin, and the other VMs keep talking', async () => {
      ping('test02', '10.1.0.10');
      // Neighbours learned first: what follows goes to the deleted devices' ports unicast.
      ping('test05', '10.0.0.7');
      ping('test02', '10.1.0.12');
      sh(['ip', '-n', 'test01', 'link', 'del', 'eth0']);
      sh(['ip', 'netns', 'del', 'test03']);
      // Traffic towards both: the flood of an ARP request reaches their ports.
      inNs('test05', ['ping', '-c', '2', '-i', '0.2', '-W', '1', '10.0.0.7']);
      const tap = /^dvrlab: TAP test01\/eth0 \(node1\/br-int\/qvo1f5b1c3a-9e\) went away/m;
      const ns =
        /^dvrlab: TAP test03\/eth0 \(node2\/br-int\/qvo06557f2b-83\) went away \(its network namespace was deleted\)/m;
      await waitFor(lab!.out, ns);
      await waitFor(lab!.out, tap);
      await idleAndAlive(lab!.child.pid!);
      assert.match(ping('test02', '10.1.0.10'), /ttl=63/);
      assert.match(ping('test02', '10.0.0.4'), /ttl=64/);
      assert.match(ping('test05', '8.8.8.8'), /ttl=63/);
      inNs('test05', ['ping', '-c', '2', '-i', '0.2', '-W', '1', '10.0.0.7']);
      inNs('test02', ['ping', '-c', '2', '-i', '0.2', '-W', '1', '10.1.0.12']);
      await sleep(600);
      assert.equal(count(lab!.out(), tap), 1, lab!.out());
      assert.equal(count(lab!.out(), ns), 1, lab!.out());
      assert.equal(lab!.child.exitCode, null, 'still running');
    });

    it('stops cleanly on SIGTERM with the faults in its counters', async () => {
      const code = await stopDvrlab(lab);
      const out = lab!.out();
      assert.equal(code, 0, out);
      assert.match(out, /^stopped: \d+ frames in/m);
      assert.match(out, /^ {2}fault: TAP test01\/eth0 .* went away/m);
      // Frames for the deleted devices were not lost silently: the ports count them, and
      // the pings that had nowhere else to go are dropped under one reason.
      assert.match(out, /^ {2}node1\/br-int\/qvo1f5b1c3a-9e: rx \d+, tx \d+, tx_dropped [1-9]/m);
      assert.match(out, /^ {2}node2\/br-int\/qvo06557f2b-83: rx \d+, tx \d+, tx_dropped [1-9]/m);
      assert.match(out, /^ {2}tx_failed: [1-9]\d*$/m);
      assert.match(out, /^removed test01, test02, test04, test05, outside$/m);
      for (const n of LAB_NS) assert.equal(existsSync(`/run/netns/${n}`), false, n);
    });
  });

  describe('lab up --processes: node3 killed, then started again', () => {
    let lab: Running | undefined;
    let again: ChildProcess | undefined;

    before(async () => {
      lab = await startDvrlab(['lab', 'up', 'devstack-dvr', '--processes']);
    });

    after(async () => {
      again?.kill('SIGTERM');
      await stopDvrlab(lab);
      spawnSync(process.execPath, [CLI, 'lab', 'down', 'devstack-dvr']);
    });

    it('goes on without it, and forwards to it again once restarted', async () => {
      ping('test02', '10.1.0.10');
      const state = JSON.parse(readFileSync(LAB_STATE, 'utf8')) as {
        nodes: { node: string; pid: number; argv: string[] }[];
      };
      const node3 = state.nodes.find((n) => n.node === 'node3')!;
      assert.ok(node3 && node3.argv.includes('--node'), JSON.stringify(state));
      process.kill(node3.pid, 'SIGKILL');
      await waitFor(
        lab!.out,
        /^dvrlab: the process of node3 ended \(killed by SIGKILL\); the other nodes go on; to start it again: /m,
      );
      // node2 sends to node3 (test02 -> test04), nobody listens there any more.
      inNs('test02', ['ping', '-c', '3', '-i', '0.3', '-W', '1', '10.1.0.10']);
      await waitFor(
        lab!.out,
        /^node2: dvrlab: tunnel peer node3 \(192\.168\.1\.13 at 127\.0\.1\.3:4789\) (is unreachable|does not answer)/m,
      );
      assert.match(ping('test02', '10.0.0.7'), /ttl=64/, 'node2 <-> node1 goes on');
      assert.equal(lab!.child.exitCode, null, 'the lab still runs');

      again = spawn(node3.argv[0], node3.argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      again.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      again.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      await waitFor(() => out, /^ready$/m);
      await pingSoon('test02', '10.1.0.10');
      assert.match(ping('test02', '10.1.0.10'), /ttl=63/);
      await waitFor(lab!.out, /^node2: dvrlab: tunnel peer node3 \(.*\) answers again$/m);
    });

    it('SIGTERM stops the lab and the node started again by hand', async () => {
      const exited = new Promise((r) => again!.on('exit', r));
      assert.equal(await stopDvrlab(lab), 0, lab!.out());
      await exited;
      assert.equal(existsSync(LAB_STATE), false);
      for (const n of LAB_NS) assert.equal(existsSync(`/run/netns/${n}`), false, n);
    });
  });

  describe('control socket clients that misbehave', () => {
    const dir = tempDir({});
    const sock = path.join(dir, 'ctl.sock');
    // test02 and test03: both on node2, routed between their subnets by its DVR router.
    const vms = [
      {
        ns: 'test02',
        port: 'test02',
        mac: 'fa:16:3e:76:47:75',
        ip: '10.0.0.8/26',
        gw: '10.0.0.1',
      },
      {
        ns: 'test03',
        port: 'test03',
        mac: 'fa:16:3e:3b:8a:d1',
        ip: '10.1.0.12/26',
        gw: '10.1.0.1',
      },
    ];
    let run: Running | undefined;

    before(async () => {
      for (const v of vms) {
        sh(['ip', 'netns', 'add', v.ns]);
        sh(['ip', '-n', v.ns, 'tuntap', 'add', 'dev', 'eth0', 'mode', 'tap']);
      }
      const taps = vms.flatMap((v) => ['--tap', `${v.port}=${v.ns}/eth0`]);
      run = await startDvrlab(['run', 'devstack-dvr', ...taps, '--ctl', sock]);
      for (const v of vms) {
        sh([
          'ip',
          '-n',
          v.ns,
          'link',
          'set',
          'dev',
          'eth0',
          'address',
          v.mac,
          'mtu',
          '1450',
          'up',
        ]);
        sh(['ip', '-n', v.ns, 'addr', 'add', v.ip, 'dev', 'eth0']);
        sh(['ip', '-n', v.ns, 'route', 'add', 'default', 'via', v.gw]);
      }
      await pingSoon('test02', '10.1.0.12');
      // Enough flows for an answer far larger than a socket buffer.
      const flows = Array.from(
        { length: 20_000 },
        (_, i) => `table=60,priority=1,ip,nw_src=10.9.${i >> 8}.${i & 255},actions=drop`,
      ).join('\n');
      const add = await request(
        `${JSON.stringify({ cmd: 'add-flow', bridge: 'node2/br-int', flows })}\n`,
      );
      assert.match(add, /"ok":true/);
    });

    after(async () => {
      await stopDvrlab(run);
      for (const v of vms) spawnSync('ip', ['netns', 'del', v.ns]);
    });

    /** Sends `data` (closing our side when `end`), resolves with everything answered. */
    function request(data: Buffer | string, end = true): Promise<string> {
      return new Promise((resolve, reject) => {
        const c = net.createConnection(sock);
        let got = '';
        c.on('data', (d) => (got += d.toString()));
        c.on('end', () => resolve(got));
        c.on('error', reject);
        c.on('connect', () => (end ? c.end(data) : c.write(data)));
      });
    }

    function ctlStats(): { status: number | null; ms: number; stdout: string } {
      const t = Date.now();
      const r = spawnSync(process.execPath, [CLI, 'ctl', sock, 'stats'], { encoding: 'utf8' });
      return { status: r.status, ms: Date.now() - t, stdout: r.stdout + r.stderr };
    }

    it('answers garbage, an unterminated request and a huge line with one error line', async () => {
      const random = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 97 + 13) & 255));
      for (const [data, want] of [
        [Buffer.concat([random, Buffer.from('\n')]), /bad request/],
        [Buffer.from('{"cmd": "stats"'), /bad request: EOF/],
        [Buffer.alloc(5 << 20, 'x'), /request larger than/],
      ] as const) {
        const answer = await request(data).catch((e: Error) => e.message);
        if (/EPIPE|ECONNRESET/.test(answer)) continue; // refused while we were still writing
        assert.equal(answer.split('\n').filter(Boolean).length, 1, answer);
        const a = JSON.parse(answer) as { ok: boolean; error: string };
        assert.equal(a.ok, false);
        assert.match(a.error, want);
      }
      await waitFor(
        run!.out,
        /^dvrlab: control client \(pid \d+\): bad request: .*; answered with an error$/m,
      );
      assert.match(ping('test02', '10.1.0.12'), /ttl=63/);
    });

    it('does not stall on clients that send nothing or do not read', async () => {
      const silent = Array.from({ length: 20 }, () => net.createConnection(sock));
      const big = net.createConnection(sock);
      big.on('connect', () =>
        big.write(`${JSON.stringify({ cmd: 'dump-flows', bridge: 'node2/br-int' })}\n`),
      );
      big.pause();
      for (const c of [...silent, big]) c.on('error', () => {});
      await sleep(300);
      // Forwarding goes on at full speed meanwhile.
      const p = inNs('test02', ['ping', '-c', '10', '-i', '0.05', '-W', '1', '10.1.0.12']);
      assert.equal(p.status, 0, p.stdout);
      const rtt = /= [\d.]+\/([\d.]+)\//.exec(p.stdout);
      assert.ok(rtt && Number(rtt[1]) < 50, p.stdout);
      // More silent clients than are served at once: a new one waits for the timeout at most.
      const s = ctlStats();
      assert.equal(s.status, 0, s.stdout);
      assert.ok(s.ms < 8000, `stats took ${s.ms} ms`);
      await waitFor(
        run!.out,
        /^dvrlab: control client \(pid \d+\): no complete request .* within 5 s; answered with an error$/m,
      );
      for (const c of [...silent, big]) c.destroy();
    });

    it('survives a client that goes away in the middle of a large answer', async () => {
      await new Promise<void>((resolve) => {
        const c = net.createConnection(sock);
        c.on('connect', () =>
          c.write(`${JSON.stringify({ cmd: 'dump-flows', bridge: 'node2/br-int' })}\n`),
        );
        c.once('data', () => {
          c.destroy();
          resolve();
        });
      });
      await waitFor(
        run!.out,
        /^dvrlab: control client \(pid \d+\) went away after \d+ of the \d+ bytes of its answer/m,
      );
      assert.match(ping('test02', '10.1.0.12'), /ttl=63/);
      const s = ctlStats();
      assert.equal(s.status, 0, s.stdout);
      assert.match(s.stdout, /"packets_in"/);
      assert.equal(run!.child.exitCode, null);
    });

    it('stops cleanly afterwards', async () => {
      assert.equal(await stopDvrlab(run), 0, run!.out());
      assert.equal(existsSync(sock), false, 'socket removed');
    });
  });

  describe('privilege', () => {
    it('run --tap as an unprivileged user: one line, exit 1', () => {
      const as = has('setpriv')
        ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']
        : ['runuser', '-u', 'nobody', '--'];
      const r = spawnSync(
        as[0],
        [...as.slice(1), process.execPath, CLI, 'run', 'devstack-dvr', '--tap', 'test01=dl-f-np'],
        { encoding: 'utf8', cwd: '/' },
      );
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(
        r.stderr,
        /^dvrlab: --tap \S+=dl-f-np: TAP devices need root or CAP_NET_ADMIN \(.*\)$/m,
      );
      assert.equal(spawnSync('ip', ['link', 'show', 'dl-f-np']).status, 1, 'no device made');
    });
  });
});
