/**
 * `dvrlab compile TOPOLOGY [-o FILE]`: compiles a Neutron topology (a file, or the built-in
 * `devstack-dvr`) into a raw multi-node scenario. The output is YAML on stdout, or a file whose
 * extension picks YAML (`.yaml`, `.yml`) or JSON (`.json`).
 */
import { writeFileSync } from 'node:fs';
import { FileError, UsageError } from '../errors.js';
import { compileArgument } from '../neutron/load.js';
import { formatRawScenario } from '../neutron/compile.js';
import { describeFsError } from '../scenario/load.js';
import type { CliIo } from './replay.js';

/** The output syntax for `-o FILE`. */
export function outputFormat(file: string): 'yaml' | 'json' {
  const lower = file.toLowerCase();
  if (lower.endsWith('.json')) return 'json';
  if (lower.endsWith('.yaml') || lower.endsWith('.yml')) return 'yaml';
  throw new UsageError(`-o ${file}: expected a file name ending in .yaml, .yml or .json`);
}

/** Runs `dvrlab compile` and returns the exit code. */
export function compileCommand(topology: string, opts: { output?: string }, io: CliIo): number {
  const format = opts.output === undefined ? 'yaml' : outputFormat(opts.output);
  const text = formatRawScenario(compileArgument(topology), format);
  if (opts.output === undefined) {
    io.stdout.write(text);
    return 0;
  }
  try {
    writeFileSync(opts.output, text);
  } catch (e) {
    throw new FileError(`-o ${opts.output}: cannot write: ${describeFsError(e)}`);
  }
  return 0;
}
