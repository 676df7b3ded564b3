/**
 * dvrlab as a library: scenario loading and checking, port references, the native engine
 * wrapper and the replay summary formatters. The `dvrlab` command is built from these.
 */
export * from './errors.js';
export * from './native.js';
export { loadScenario, loadScenarioText, type LoadedScenario } from './scenario/load.js';
export { PortIndex, type PortInfo, type PortKind } from './scenario/ports.js';
export { formatPath, type PathSeg } from './scenario/parse.js';
export {
  checkInvariant,
  formatReplaySummary,
  formatTcpreplayLines,
  type InvariantCheck,
  type TcpreplayCounters,
} from './cli/summary.js';
export { run } from './cli/main.js';
