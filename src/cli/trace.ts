/**
 * `dvrlab trace`: one packet through the scenario's real datapath, printed in the layout of
 * `ovs-appctl ofproto/trace`. The flow is written in ovs-ofctl syntax (unspecified fields are
 * zero), or the packet is given as hex or taken from a capture. `--follow` continues across
 * tunnels and nodes.
 */
import { Engine } from '../native.js';
import { UsageError } from '../errors.js';
import { loadScenarioOrTopology as loadScenario } from '../neutron/load.js';
import type { CliIo } from './replay.js';

export interface TraceArgs {
  packet?: string;
  pcap?: string;
  index?: number;
  follow?: boolean;
  names?: boolean;
  explain?: boolean;
  json?: boolean;
}

/** Parses `--packet` hex (spaces, colons and a 0x prefix allowed). */
export function parseHex(text: string): number[] {
  const clean = text.replace(/^0x/i, '').replace(/[\s:]/g, '');
  if (clean.length === 0 || clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) {
    throw new UsageError('--packet: expected an even number of hex digits');
  }
  const out: number[] = [];
  for (let i = 0; i < clean.length; i += 2) out.push(parseInt(clean.slice(i, i + 2), 16));
  return out;
}

export function traceCommand(
  scenarioFile: string,
  bridge: string,
  flow: string,
  args: TraceArgs,
  io: CliIo,
): number {
  if (args.packet !== undefined && args.pcap !== undefined) {
    throw new UsageError('--packet and --pcap exclude each other');
  }
  if (args.index !== undefined && args.pcap === undefined) {
    throw new UsageError('--index needs --pcap');
  }
  const loaded = loadScenario(scenarioFile);
  for (const w of loaded.warnings) io.stderr.write(`dvrlab: warning: ${w}\n`);
  const engine = new Engine(loaded.scenario);
  const result = engine.trace({
    bridge,
    flow,
    packet: args.packet !== undefined ? parseHex(args.packet) : undefined,
    pcap: args.pcap,
    index: args.index,
    follow: args.follow ?? false,
    names: args.names ?? false,
    explain: args.explain ?? false,
  });
  if (args.json) {
    io.stdout.write(`${JSON.stringify(result.trace, null, 2)}\n`);
  } else {
    io.stdout.write(result.text);
  }
  return 0;
}
