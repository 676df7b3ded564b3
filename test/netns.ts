/**
 * Helpers of the live tests (root): commands in network namespaces, ping, a TCP transfer
 * whose payload is checked by SHA-256, and a dvrlab process that is waited on until "ready".
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './helpers.js';

export const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
export const ADDON = existsSync(path.join(ROOT, 'native', 'index.js'));
export const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
export const ROOTED =
  process.getuid?.() === 0 && existsSync('/dev/net/tun') && has('ip') && has('ping');

/** Runs a command that must succeed. */
export function sh(cmd: string[]): void {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd.join(' ')}: ${r.stderr}`);
}

export function inNs(ns: string, cmd: string[], timeout = 30_000) {
  return spawnSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', timeout });
}

export function ping(ns: string, dst: string): string {
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
export async function transfer(
  serverNs: string,
  listen: string,
  connect: string,
  clientNs: string,
) {
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

/** A dvrlab process started in the background. */
export interface Running {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

/** Starts `dvrlab ARGS` and resolves once it prints "ready". */
export async function startDvrlab(args: string[], timeoutMs = 30_000): Promise<Running> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT });
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(
      () => reject(new Error(`no "ready" in ${timeoutMs} ms: ${out}`)),
      timeoutMs,
    );
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (/^ready$/m.test(out)) {
        clearTimeout(t);
        resolve();
      }
    });
    void exited.then((c) => reject(new Error(`dvrlab ${args[0]} exited ${c}: ${out}`)));
  });
  return { child, out: () => out, exited };
}

/** Stops a dvrlab process with SIGTERM; resolves with its exit code. */
export async function stopDvrlab(r: Running | undefined): Promise<number | null> {
  if (!r) return null;
  if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGTERM');
  return r.exited;
}
