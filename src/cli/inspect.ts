/**
 * The inspection commands: `dump-flows` (ovs-ofctl dump-flows), `show` (ovs-vsctl show and
 * ovs-ofctl show) and `dpctl` (the megaflows left after replaying captures, as
 * ovs-appctl dpctl/dump-flows prints them).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Engine } from '../native.js';
import { loadScenarioOrTopology as loadScenario } from '../neutron/load.js';
import { planReplay, type CliIo } from './replay.js';

function engineFor(scenarioFile: string, io: CliIo): Engine {
  const loaded = loadScenario(scenarioFile);
  for (const w of loaded.warnings) io.stderr.write(`dvrlab: warning: ${w}\n`);
  return new Engine(loaded.scenario);
}

export interface DumpFlowsArgs {
  stats: boolean;
  names?: boolean;
  json?: boolean;
}

export function dumpFlowsCommand(
  scenarioFile: string,
  bridge: string,
  filter: string | undefined,
  args: DumpFlowsArgs,
  io: CliIo,
): number {
  const engine = engineFor(scenarioFile, io);
  const r = engine.dumpFlows({
    bridge,
    filter: filter ?? '',
    stats: args.stats,
    names: args.names ?? false,
  });
  if (args.json) io.stdout.write(`${JSON.stringify(r.flows, null, 2)}\n`);
  else io.stdout.write(r.text);
  return 0;
}

export interface ShowArgs {
  ofctl?: string;
  json?: boolean;
}

export function showCommand(scenarioFile: string, args: ShowArgs, io: CliIo): number {
  const engine = engineFor(scenarioFile, io);
  const r = engine.show({ ofctl: args.ofctl });
  if (args.json) io.stdout.write(`${JSON.stringify(r.ports, null, 2)}\n`);
  else io.stdout.write(r.text);
  return 0;
}

export interface DpctlArgs {
  in: string[];
  m?: boolean;
  names?: boolean;
  json?: boolean;
}

/** Replays the inputs (writing no pcaps) and prints the megaflows the datapath cached. */
export async function dpctlCommand(
  scenarioFile: string,
  args: DpctlArgs,
  io: CliIo,
): Promise<number> {
  const scratch = mkdtempSync(path.join(tmpdir(), 'dvrlab-dpctl-'));
  try {
    const plan = planReplay(scenarioFile, {
      in: args.in,
      out: scratch,
      loop: 1,
      progress: false,
      names: args.names,
    });
    for (const w of plan.warnings) io.stderr.write(`dvrlab: warning: ${w}\n`);
    const engine = new Engine(plan.engineScenario);
    const options = {
      ...plan.options,
      outputs: [],
      flowsDir: undefined,
      dumpMegaflows: args.m ?? false,
      traceNames: args.names ?? false,
    };
    const stats = (await engine.replay(options)) as unknown as { megaflows_text: string };
    if (args.json) {
      const lines = stats.megaflows_text.split('\n').filter((l) => l !== '');
      io.stdout.write(`${JSON.stringify(lines, null, 2)}\n`);
    } else {
      io.stdout.write(stats.megaflows_text);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return 0;
}
