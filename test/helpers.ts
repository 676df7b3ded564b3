/**
 * Shared test helpers: temporary directories and capturing the message of a thrown error.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type PcapRecord, readPcap, writePcap } from '../src/packets.js';

/** The repository root (tests run from dist/test/). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The shared directory (captures, the OVS oracle and its examples): `$DVRLAB_SHARED`, else
 * `<repo>/../shared`, else `/work/shared` — the first that exists.
 */
export function sharedDir(): string {
  const candidates = [
    process.env.DVRLAB_SHARED,
    path.resolve(ROOT, '..', 'shared'),
    '/work/shared',
  ];
  const found = candidates.find((c): c is string => !!c && existsSync(path.join(c, 'tools')));
  if (!found) {
    throw new Error(
      `no shared directory (looked in ${candidates.filter(Boolean).join(', ')}); set DVRLAB_SHARED`,
    );
  }
  return found;
}

/**
 * Creates a temporary directory holding `files` (name -> content) and returns its path; it is
 * removed when the test process exits.
 */
export function tempDir(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'dvrlab-test-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  for (const [name, content] of Object.entries(files)) {
    const full = path.join(dir, name);
    mkdirSync(path.dirname(full), { recursive: true });
    writeFileSync(full, content);
  }
  return dir;
}

/** What `dvrlab replay --json` did, with the frames of its output pcaps at hand. */
export interface ReplayRun {
  status: number | null;
  stdout: string;
  stderr: string;
  /** The frames of output pcap `file` (relative to the output directory). */
  frames(file: string): Buffer[];
}

/**
 * Writes each port's records to a pcap and returns a function that replays them all through
 * `scenario` with the CLI in one run (on its first call; later calls return the same run).
 */
export function lazyReplay(
  scenario: string,
  inputs: Record<string, PcapRecord[]>,
): () => ReplayRun {
  const dir = tempDir();
  const out = path.join(dir, 'out');
  const args = [path.join(ROOT, 'dist', 'src', 'cli.js'), 'replay', scenario];
  for (const [port, records] of Object.entries(inputs)) {
    const file = path.join(dir, `${port.replace(/\//g, '-')}.pcap`);
    writePcap(file, records);
    args.push('--in', `${port}=${file}`);
  }
  args.push('--out', out, '--json');
  let run: ReplayRun | undefined;
  return () => {
    if (!run) {
      const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8' });
      run = {
        status: r.status,
        stdout: r.stdout,
        stderr: r.stderr,
        frames: (file) => readPcap(path.join(out, file)).map((x) => x.data),
      };
    }
    return run;
  };
}

/** Runs `fn` and returns the message of what it threw; fails when it throws nothing. */
export function errorOf(fn: () => unknown): { message: string; code?: string; name: string } {
  try {
    fn();
  } catch (e) {
    const err = e as Error & { code?: string };
    return { message: err.message, code: err.code, name: err.name };
  }
  throw new Error('expected an error, but none was thrown');
}
