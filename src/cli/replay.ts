/**
 * `dvrlab replay`: loads a scenario, resolves the `--in` port references, runs the engine and
 * writes `DIR/stats.json` plus one pcap per port that emitted.
 *
 * Everything that can be checked without the engine (scenario, port references, input files,
 * the output directory) is checked first, so a user mistake costs no engine start. Output
 * files left by an earlier run at the paths this run uses are removed first: a port that
 * emits nothing this time must not leave last run's capture behind.
 */
import { accessSync, constants, existsSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { FileError, PortRefError, UsageError } from '../errors.js';
import { makeDirs } from '../fsutil.js';
import {
  applyLimits,
  Engine,
  type NativeReplayOptions,
  type NativeScenario,
  type PortFile,
  type Progress,
  type StatsJson,
} from '../native.js';
import { loadScenarioOrTopology } from '../neutron/load.js';
import { knowEndpoints, loadMapTopology, type MapHostJson, mapSpecFor } from '../neutron/map.js';
import { describeFsError } from '../scenario/load.js';
import { PortIndex } from '../scenario/ports.js';
import { startProgress } from './progress.js';
import { checkInvariant, formatReplaySummary } from './summary.js';

/** Where a command writes. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Whether stderr is a terminal (progress bars are drawn only then). */
  stderrIsTTY: boolean;
}

/** The parsed options of `dvrlab replay`. */
export interface ReplayArgs {
  in: string[];
  out: string;
  loop: number;
  topspeed?: boolean;
  multiplier?: number;
  pps?: number;
  limit?: number;
  nsec?: boolean;
  json?: boolean;
  progress: boolean;
  quiet?: boolean;
  tracePacket?: number;
  names?: boolean;
  flowLimit?: number;
  maxIdle?: number;
  ctMax?: number;
  map?: boolean;
}

/** Raised when the engine's statistics break the replay invariant: a bug, not a user error. */
export class InvariantViolation extends Error {
  constructor(problems: string[]) {
    super(`replay invariant violated: ${problems.join('; ')}`);
    this.name = 'InvariantViolation';
  }
}

/** Splits `PORTREF=FILE` at the first '='. */
export function splitInput(spec: string): { ref: string; file: string } {
  const eq = spec.indexOf('=');
  if (eq <= 0 || eq === spec.length - 1) {
    throw new UsageError(`--in ${spec}: expected PORTREF=FILE`);
  }
  return { ref: spec.slice(0, eq), file: spec.slice(eq + 1) };
}

/** The engine's speed setting for the options given; capture timing is not the default. */
export function speedOf(args: ReplayArgs): NativeReplayOptions['speed'] {
  if (args.multiplier !== undefined) return { mode: 'multiplier', value: args.multiplier };
  if (args.pps !== undefined) return { mode: 'pps', value: args.pps };
  return { mode: 'topspeed', value: 0 };
}

/** Everything a replay needs, checked; no engine involved. */
export interface ReplayPlan {
  scenarioFile: string;
  warnings: string[];
  engineScenario: NativeScenario;
  options: NativeReplayOptions;
  outDir: string;
}

/** Checks the arguments against the scenario and the file system and builds the run. */
export function planReplay(scenarioFile: string, args: ReplayArgs): ReplayPlan {
  // --map needs the topology itself (what a VM is), not only its compiled scenario.
  const topology = args.map ? loadMapTopology(scenarioFile) : undefined;
  const loaded = loadScenarioOrTopology(scenarioFile);
  applyLimits(loaded.scenario, args);
  const index = new PortIndex(loaded.scenario);
  const warnings = [...loaded.warnings];

  const inputs: PortFile[] = args.in.map((spec) => {
    let ref: string;
    let file: string;
    if (args.map) {
      // With --map every frame enters at its source host's port: FILE alone, and a PORTREF
      // given anyway is ignored (a file whose name has a '=' is taken whole).
      const split = spec.indexOf('=') > 0 && !existsSync(spec) ? splitInput(spec) : undefined;
      if (split)
        warnings.push(
          `--in ${spec}: with --map, frames enter at their source host's port; ` +
            `${split.ref} is ignored`,
        );
      ref = 'map';
      file = split ? split.file : spec;
    } else {
      ({ ref, file } = splitInput(spec));
    }
    let port = { ref };
    if (!args.map) {
      try {
        port = index.resolveInput(ref);
      } catch (e) {
        if (e instanceof PortRefError) throw new PortRefError(`--in ${spec}: ${e.message}`);
        throw e;
      }
    }
    try {
      accessSync(file, constants.R_OK);
      if (!statSync(file).isFile()) throw Object.assign(new Error(), { code: 'EISDIR' });
    } catch (e) {
      throw new FileError(`--in ${spec}: cannot read ${file}: ${describeFsError(e)}`);
    }
    return { port: port.ref, path: file };
  });

  const options: NativeReplayOptions = {
    inputs,
    outputs: index.outputs(args.out),
    loop: args.loop,
    speed: speedOf(args),
    nsec: args.nsec ?? false,
    flowsDir: args.out,
  };
  if (args.limit !== undefined) options.limit = args.limit;
  if (topology) {
    options.map = mapSpecFor(topology, (ref) => index.resolveInput(ref).ref);
    knowEndpoints(loaded.scenario, topology);
  }
  if (args.tracePacket !== undefined) {
    options.tracePacket = args.tracePacket;
    options.traceNames = args.names ?? false;
  }
  return {
    scenarioFile,
    warnings,
    engineScenario: loaded.scenario,
    options,
    outDir: args.out,
  };
}

/** Creates the output directories and removes stale outputs at this run's paths. */
export function prepareOutputs(plan: ReplayPlan): void {
  const dirs = new Set<string>([plan.outDir]);
  for (const o of plan.options.outputs) dirs.add(path.dirname(o.path));
  for (const dir of dirs) {
    try {
      makeDirs(dir);
    } catch (e) {
      throw new FileError(`--out ${plan.outDir}: cannot create ${dir}: ${describeFsError(e)}`);
    }
  }
  const stale = plan.options.outputs.map((o) => o.path);
  if (plan.options.map) stale.push(path.join(plan.outDir, 'map.json'));
  for (const file of stale) {
    try {
      rmSync(file, { force: true });
    } catch (e) {
      throw new FileError(`cannot remove the old ${file}: ${describeFsError(e)}`);
    }
  }
}

/** What the replay command needs of an engine (the native `Engine`, or a test's own). */
export interface ReplayEngine {
  replay(options: NativeReplayOptions): Promise<StatsJson>;
  progress(): Progress;
}

/** Builds an engine for a scenario. */
export type EngineFactory = (scenario: NativeScenario) => ReplayEngine;

/** The native engine; loading the addon happens here, on first use. */
export const nativeEngine: EngineFactory = (scenario) => new Engine(scenario);

/** Runs `dvrlab replay` and returns the exit code. */
export async function replayCommand(
  scenarioFile: string,
  args: ReplayArgs,
  io: CliIo,
  makeEngine: EngineFactory = nativeEngine,
): Promise<number> {
  const plan = planReplay(scenarioFile, args);
  for (const w of plan.warnings) io.stderr.write(`dvrlab: warning: ${w}\n`);
  const engine = makeEngine(plan.engineScenario);
  prepareOutputs(plan);
  const showProgress = io.stderrIsTTY && args.progress && !args.quiet;
  const bar = showProgress ? startProgress(() => engine.progress(), io.stderr) : undefined;
  let stats: StatsJson;
  try {
    stats = await engine.replay(plan.options);
  } finally {
    bar?.stop();
  }

  // A trace of one packet (--trace-packet) is printed, and written next to the stats, but is
  // not part of stats.json.
  // With --map, the host table goes to DIR/map.json, not stats.json.
  const {
    trace_text: traceText,
    trace: traceJson,
    map_hosts: mapHosts,
    ...counters
  } = stats as StatsJson & {
    trace_text?: string;
    trace?: unknown;
    map_hosts?: MapHostJson[];
  };
  stats = counters as StatsJson;
  if (mapHosts !== undefined) {
    const mapPath = path.join(plan.outDir, 'map.json');
    try {
      // The fields in the order README gives them (the engine's JSON sorts them).
      const ordered = mapHosts.map((h) => ({
        host: h.host,
        kind: h.kind,
        name: h.name,
        node: h.node,
        port: h.port,
        mac: h.mac,
        ip: h.ip,
        ...(h.remapped !== undefined ? { remapped: h.remapped } : {}),
        first_packet: h.first_packet,
      }));
      writeFileSync(mapPath, `${JSON.stringify(ordered, null, 2)}\n`);
    } catch (e) {
      throw new FileError(`cannot write ${mapPath}: ${describeFsError(e)}`);
    }
  }
  if (traceText !== undefined) {
    const tracePath = path.join(plan.outDir, 'trace.txt');
    try {
      writeFileSync(tracePath, traceText);
      writeFileSync(
        path.join(plan.outDir, 'trace.json'),
        `${JSON.stringify(traceJson, null, 2)}\n`,
      );
    } catch (e) {
      throw new FileError(`cannot write ${tracePath}: ${describeFsError(e)}`);
    }
    if (!args.json) io.stdout.write(`${traceText}\n`);
  } else if (args.tracePacket !== undefined) {
    io.stderr.write(
      `dvrlab: warning: --trace-packet ${args.tracePacket}: the run had fewer packets\n`,
    );
  }

  const statsPath = path.join(plan.outDir, 'stats.json');
  try {
    writeFileSync(statsPath, `${JSON.stringify(stats, null, 2)}\n`);
  } catch (e) {
    throw new FileError(`cannot write ${statsPath}: ${describeFsError(e)}`);
  }

  // An input that could not be read to its end: stats.json says the run is incomplete and
  // why, the outputs hold what came before, and the command fails with the reader's error.
  if (stats.error !== undefined) throw new FileError(stats.error);

  if (args.json) io.stdout.write(`${JSON.stringify(stats, null, 2)}\n`);
  else if (!args.quiet) io.stdout.write(`${formatReplaySummary(stats, args.loop).join('\n')}\n`);

  const check = checkInvariant(stats, args.loop);
  if (!check.ok) throw new InvariantViolation(check.problems);
  return 0;
}
