/**
 * `dvrlab lab up devstack-dvr` with real kernels at both ends: every VM is a network namespace
 * attached by TAP, and `outside` holds the external gateway and 8.8.8.8. Ping and a TCP
 * transfer whose payload is checked by SHA-256 cross the emulated cloud on the four kinds of
 * path: different nodes and subnets, the same subnet across nodes, SNAT through node1 without
 * a floating IP, and inbound to a floating IP. It runs twice: all nodes in one process, and
 * one process per node (`--processes`) exchanging real VXLAN over UDP. SIGTERM then removes
 * everything the lab made. Needs root and /dev/net/tun (CI has both); skipped otherwise.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  ADDON,
  CLI,
  ROOTED,
  type Running,
  inNs,
  ping,
  startDvrlab,
  stopDvrlab,
  transfer,
} from './netns.js';

const LAB_NS = ['test01', 'test02', 'test03', 'test04', 'test05', 'outside'];

function skipReason(): string | false {
  if (!ADDON) return 'the addon is not built';
  if (!ROOTED) return 'needs root, /dev/net/tun, ip and ping';
  if (LAB_NS.some((n) => existsSync(`/run/netns/${n}`))) return 'lab namespaces exist already';
  return false;
}

for (const processes of [false, true]) {
  const how = processes ? 'one process per node, VXLAN over UDP' : 'one process';
  describe(`dvrlab lab up devstack-dvr (${how})`, { skip: skipReason() }, () => {
    let lab: Running | undefined;

    before(async () => {
      const args = ['lab', 'up', 'devstack-dvr', ...(processes ? ['--processes'] : [])];
      lab = await startDvrlab(args);
    });

    after(async () => {
      await stopDvrlab(lab);
      spawnSync(process.execPath, [CLI, 'lab', 'down', 'devstack-dvr']);
    });

    it('gives every VM its namespace with its address, MTU and route', () => {
      const r = inNs('test02', ['ip', '-o', 'addr', 'show', 'dev', 'eth0']);
      assert.match(r.stdout, /inet 10\.0\.0\.8\/26/);
      const l = inNs('test02', ['ip', '-o', 'link', 'show', 'dev', 'eth0']);
      assert.match(l.stdout, /mtu 1450/);
      assert.match(l.stdout, /fa:16:3e:76:47:75/);
      assert.match(inNs('test04', ['ip', 'route']).stdout, /default via 10\.1\.0\.1 dev eth0/);
    });

    it('test02 reaches test04: different subnets, across nodes, routed once (TTL 63)', async () => {
      assert.match(ping('test02', '10.1.0.10'), /ttl=63/);
      await transfer('test04', '10.1.0.10', '10.1.0.10', 'test02');
    });

    it('test02 reaches test05: the same subnet across nodes, not routed (TTL 64)', () => {
      assert.match(ping('test02', '10.0.0.4'), /ttl=64/);
    });

    it('test05 (no floating IP) reaches 8.8.8.8 through SNAT on node1', async () => {
      assert.match(ping('test05', '8.8.8.8'), /ttl=63/);
      await transfer('outside', '8.8.8.8', '8.8.8.8', 'test05');
    });

    it('an outside host reaches test02 at its floating IP 172.24.4.12', async () => {
      assert.match(ping('outside', '172.24.4.12'), /ttl=62/);
      await transfer('test02', '10.0.0.8', '172.24.4.12', 'outside');
    });

    it('SIGTERM stops it, prints the counters and removes every namespace it made', async () => {
      const code = await stopDvrlab(lab);
      const out = lab!.out();
      assert.equal(code, 0, out);
      if (processes) {
        for (const n of ['node1', 'node2', 'node3']) {
          assert.match(out, new RegExp(`^${n}: stopped: \\d+ frames in, \\d+ delivered`, 'm'));
        }
        // test02 (node2) -> test04 (node3) crossed as datagrams between the processes, and
        // every peer that was sent to answered.
        const m =
          /^node2: {5}peer node3 \(192\.168\.1\.13\) at 127\.0\.1\.3:4789: sent (\d+), received (\d+)$/m.exec(
            out,
          );
        assert.ok(m, out);
        assert.ok(Number(m[1]) > 1000 && Number(m[2]) > 100, m[0]);
        assert.doesNotMatch(out, /not answering|does not answer|unreachable/);
      } else {
        assert.match(out, /^stopped: \d+ frames in, \d+ delivered/m);
      }
      assert.match(out, /^removed test01, test02, test03, test04, test05, outside$/m);
      for (const n of LAB_NS) assert.equal(existsSync(`/run/netns/${n}`), false, n);
      assert.equal(spawnSync('ip', ['link', 'show', 'dl-up-node1']).status, 1, 'TAP gone');
    });
  });
}
