/**
 * Where a command takes a SCENARIO, it also takes a Neutron topology file or the name of the
 * built-in topology (`devstack-dvr`): a document with a top-level `networks` or `vms` is a
 * topology, and is compiled before it is loaded as a raw scenario. A file of that name, when
 * one exists, wins over the built-in.
 */
import { existsSync, readFileSync } from 'node:fs';
import { ScenarioError } from '../errors.js';
import { describeFsError, type LoadedScenario, loadScenarioText } from '../scenario/load.js';
import { detectFormat, parseText } from '../scenario/parse.js';
import { compile, formatRawScenario, type RawScenario } from './compile.js';
import { DEVSTACK_DVR, DEVSTACK_DVR_YAML } from './devstack-dvr.js';
import { isTopology } from './schema.js';
import { resolveTopology, type Topology } from './topology.js';

/** The text of a topology or scenario argument: a built-in name or a file. */
function readArgument(file: string, what: string): string {
  if (file === DEVSTACK_DVR && !existsSync(file)) return DEVSTACK_DVR_YAML;
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new ScenarioError(`${file}: cannot read ${what}: ${describeFsError(e)}`);
  }
}

/** Loads a topology from a file or the built-in name. */
export function loadTopologyArgument(file: string): Topology {
  return loadTopologyArgumentText(readArgument(file, 'topology'), file);
}

/** As `loadTopologyArgument`, for text already read; `file` names it in messages. */
export function loadTopologyArgumentText(text: string, file: string): Topology {
  const parsed = parseText(text, file, detectFormat(file, text));
  const v = parsed.value;
  if (!isTopology(v) && v !== null && typeof v === 'object' && ('bridges' in v || 'nodes' in v)) {
    throw new ScenarioError(
      `${file}: expected a Neutron topology (top-level "networks"), got a raw scenario`,
    );
  }
  return resolveTopology(v, file, parsed.locate);
}

/** Compiles a topology argument into a raw scenario. */
export function compileArgument(file: string): RawScenario {
  return compile(loadTopologyArgument(file));
}

/** Loads a raw scenario, or compiles a topology (file or built-in name) and loads the result. */
export function loadScenarioOrTopology(file: string): LoadedScenario {
  return loadScenarioOrTopologyText(readArgument(file, 'scenario'), file);
}

/**
 * As `loadScenarioOrTopology`, for text already read; `file` names it in messages and anchors
 * the flows file names of a raw scenario.
 */
export function loadScenarioOrTopologyText(text: string, file: string): LoadedScenario {
  const parsed = parseText(text, file, detectFormat(file, text));
  if (!isTopology(parsed.value)) return loadScenarioText(text, file);
  const raw = compile(resolveTopology(parsed.value, file, parsed.locate));
  const name = `${file} (compiled)`;
  const loaded = loadScenarioText(formatRawScenario(raw, 'json'), name);
  // Positions in the compiled text mean nothing to the user: keep the JSON path only.
  const warnings = loaded.warnings.map((w) =>
    w.startsWith(`${name}:`) ? `${name}${w.slice(name.length).replace(/^:\d+:\d+/, '')}` : w,
  );
  return { ...loaded, file, warnings };
}
