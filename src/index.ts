/**
 * dvrlab as a library: scenario loading and checking, port references, the Neutron topology
 * compiler, the native engine wrapper and the replay summary formatters. The `dvrlab` command
 * is built from these.
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
export { compile, formatRawScenario, type RawScenario } from './neutron/compile.js';
export {
  loadTopology,
  loadTopologyText,
  resolveTopology,
  type Topology,
} from './neutron/topology.js';
export { compileArgument, loadScenarioOrTopology } from './neutron/load.js';
export { DEVSTACK_DVR, DEVSTACK_DVR_YAML } from './neutron/devstack-dvr.js';
export { run } from './cli/main.js';
