/**
 * Helpers shared by the scenario definitions: where a scenario's JSON lives, and the
 * "marker" convention. A flow that wants to be recognisable in the output rewrites
 * the destination MAC to `0e:00:00:00:00:NN`; `markers()` reads NN back, so a check
 * can say which flow each emitted frame went through.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Locations } from '../scenario.js';

/** The scenario JSON of the scenario directory `name` in this repository. */
export function configOf(name: string): (loc: Locations) => string {
  return (loc) => join(loc.repoRoot, 'test', 'oracle', 'scenarios', name, 'scenario.json');
}

/** The marker MAC for flow `n` (0..255). */
export function marker(n: number): string {
  return `0e:00:00:00:00:${n.toString(16).padStart(2, '0')}`;
}

/** The marker number of each frame (the last byte of its destination MAC). */
export function markers(frames: Buffer[] | undefined): number[] {
  return (frames ?? []).map((f) => f[5] as number);
}

/** Asserts the frames of `port` went through the flows `want`, in this order. */
export function assertMarkers(out: Record<string, Buffer[]>, port: string, want: number[]): void {
  assert.deepEqual(markers(out[port]), want, `markers of the frames on ${port}`);
}

/** The frame with its destination MAC replaced, for comparing marker-rewritten output. */
export function withDst(f: Buffer, dst: Buffer): Buffer {
  return Buffer.concat([dst, f.subarray(6)]);
}
