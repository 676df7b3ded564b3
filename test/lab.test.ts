/**
 * `dvrlab lab up devstack-dvr` with real kernels at both ends: every VM is a network namespace
 * attached by TAP, and `outside` holds the external gateway and 8.8.8.8. Ping and a TCP
 * transfer whose payload is checked by SHA-256 cross the emulated cloud on the four kinds of
 * path: different nodes and subnets, the same subnet across nodes, SNAT through node1 without
 * a floating IP, and inbound to a floating IP. SIGTERM then removes everything the lab made.
 * Needs root and /dev/net/tun (CI has both); skipped otherwise.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT } from './helpers.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const ADDON = existsSync(path.join(ROOT, 'native', 'index.js'));
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const ROOTED = process.getuid?.() === 0 && existsSync('/dev/net/tun') && has('ip') && has('ping');
const LAB_NS = ['test01', 'test02', 'test03', 'test04', 'test05', 'outside'];

function skipReason(): string | false {
  if (!ADDON) return 'the addon is not built';
  if (!ROOTED) return 'needs root, /dev/net/tun, ip and ping';
  if (LAB_NS.some((n) => existsSync(`/run/netns/${n}`))) return 'lab namespaces exist already';
  return false;
}

function inNs(ns: string, cmd: string[], timeout = 30_000) {
  return spawnSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', timeout });
}

function ping(ns: string, dst: string): string {
  const r = inNs(ns, ['ping', '-c', '3', '-i', '0.2', '-W', '2', dst]);
  assert.equal(r.status, 0, `ping ${dst} from ${ns}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

const SERVER = `
const net = require('node:net'), crypto = require('node:crypto');
const [host, port] = process.argv.slice(1);
const srv = net.createServer((s) => {
  const h = crypto.createHash('sha256'); let n = 0;
  s.on('data', (d) => { h.update(d); n += d.length; });
  s.on('end', () => { s.end(n + ' ' + h.digest('hex')); srv.close(); });
});
srv.listen(Number(port), host, () => process.stdout.write('listening\\n'));
setTimeout(() => process.exit(3), 60000).unref();
`;

const CLIENT = `
const net = require('node:net'), crypto = require('node:crypto');
const [host, port, size] = process.argv.slice(1);
const data = crypto.randomBytes(Number(size));
const want = data.length + ' ' + crypto.createHash('sha256').update(data).digest('hex');
const s = net.connect(Number(port), host, () => s.end(data));
let got = '';
s.on('data', (d) => { got += d; });
s.on('end', () => { process.stdout.write(got === want ? 'match\\n' : 'MISMATCH ' + got + ' != ' + want + '\\n'); });
s.on('error', (e) => { process.stdout.write('error ' + e.message + '\\n'); process.exit(2); });
`;

/** Sends `size` random bytes from `clientNs` to a server in `serverNs`; the server answers with
 * the length and SHA-256 of what it received. */
async function transfer(serverNs: string, listen: string, connect: string, clientNs: string) {
  const port = '5001';
  const server = spawn('ip', [
    'netns',
    'exec',
    serverNs,
    process.execPath,
    '-e',
    SERVER,
    listen,
    port,
  ]);
  await new Promise<void>((resolve, reject) => {
    server.stdout.on('data', (d: Buffer) => d.toString().includes('listening') && resolve());
    server.on('exit', (c) => reject(new Error(`server in ${serverNs} exited ${c}`)));
  });
  const r = inNs(
    clientNs,
    [process.execPath, '-e', CLIENT, connect, port, String(2 << 20)],
    60_000,
  );
  server.kill();
  assert.equal(r.stdout.trim(), 'match', `${clientNs} -> ${connect}: ${r.stdout}${r.stderr}`);
}

describe('dvrlab lab up devstack-dvr', { skip: skipReason() }, () => {
  let lab: ChildProcess | undefined;
  let out = '';
  let exited: Promise<number | null> | undefined;

  before(async () => {
    lab = spawn(process.execPath, [CLI, 'lab', 'up', 'devstack-dvr'], { cwd: ROOT });
    exited = new Promise((resolve) => lab!.on('exit', (code) => resolve(code)));
    lab.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no "ready" in 30 s: ${out}`)), 30_000);
      lab!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (/^ready$/m.test(out)) {
          clearTimeout(t);
          resolve();
        }
      });
      void exited!.then((c) => reject(new Error(`lab up exited ${c}: ${out}`)));
    });
  });

  after(async () => {
    if (lab && lab.exitCode === null) {
      lab.kill('SIGTERM');
      await exited;
    }
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
    lab!.kill('SIGTERM');
    const code = await exited;
    assert.equal(code, 0, out);
    assert.match(out, /^stopped: \d+ frames in, \d+ delivered/m);
    assert.match(out, /^removed test01, test02, test03, test04, test05, outside$/m);
    for (const n of LAB_NS) assert.equal(existsSync(`/run/netns/${n}`), false, n);
    assert.equal(spawnSync('ip', ['link', 'show', 'dl-up-node1']).status, 1, 'TAP gone');
  });
});
