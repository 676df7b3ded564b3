/**
 * Shared test helpers: temporary directories and capturing the message of a thrown error.
 */
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

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
