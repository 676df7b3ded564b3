/**
 * What a differential scenario declares: its scenario JSON (the very file both real
 * Open vSwitch and dvrlab load), the frames it injects on which ports, and what real
 * Open vSwitch 3.1 is known to emit for them.
 *
 * Expectations are checked against both outputs, so a scenario fails when OVS does not
 * do what the scenario claims (the scenario is wrong) and when dvrlab agrees with OVS on
 * something the scenario says should not happen.
 */

/** Where the runner found things: the repository root and the shared directory. */
export interface Locations {
  repoRoot: string;
  shared: string;
}

/** Frames for one injection port, built by the scenario. */
export interface FrameInput {
  port: string; // interface name, as `--in PORT=FILE` takes it
  frames: Buffer[];
}

/** An existing capture to inject (used by the shared oracle examples). */
export interface PcapInput {
  port: string;
  pcap: (loc: Locations) => string;
}

export type InputSpec = FrameInput | PcapInput;

/**
 * Output frames by port, keyed the way dvrlab names its pcaps in a one-node
 * scenario: the port name, or the bridge name for a bridge's LOCAL port.
 */
export type PortFrames = Record<string, Buffer[]>;

export interface Expectation {
  /** Frames per port; every port not named here must emit nothing. */
  ports: Record<string, number>;
  /** Input frames shorter than 14 bytes, which the oracle cannot inject. */
  skippedShort?: number;
}

export interface OracleScenario {
  name: string;
  /**
   * Compare the megaflows left after the run with OVS's (default true). Set to false, with
   * the reason next to it, only for a known and documented difference.
   */
  compareMegaflows?: boolean;
  /** One line: what the scenario exercises. */
  summary: string;
  /** Absolute path of the scenario JSON. */
  config: (loc: Locations) => string;
  inputs: (loc: Locations) => InputSpec[];
  expect: Expectation;
  /**
   * Extra assertions on the output (run on the oracle's and on dvrlab's). They throw
   * (node:assert) with a message saying which claim failed. `inputs` holds the
   * injected frames, one array per input in the order of `inputs()`.
   */
  check?: (out: PortFrames, inputs: Buffer[][]) => void;
  /** Facts worth knowing when reading a failure: malformed inputs, OVS quirks. */
  notes?: string[];
}
