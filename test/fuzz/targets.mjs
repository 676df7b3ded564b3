// The fuzz targets of the TypeScript loader: each takes the bytes of a file a user could name
// as a SCENARIO or a topology argument and runs it through the in-memory entry points the CLI
// uses. The contract (src/errors.ts): a mistake in the input is a `DvrlabError` of one line;
// any other exception is a bug, and so is a `DvrlabError` that spans lines, holds control
// characters or says nothing.
// A target throws `FuzzFailure` (or lets a non-`DvrlabError` through) to report a bug; the
// engine (fuzz.mjs) also counts a hang or a run longer than its -timeout as one.
//
// Needs the TypeScript build (`npm run build`). Flows given as a file name are read relative
// to the engine's working directory, a sandbox the engine creates; see fuzz.mjs.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// The engine runs an instrumented copy of dist/src (instrument.mjs) and says where it is.
const src = globalThis.__dvrlabFuzzSrc ?? path.join(root, 'dist/src');
const dist = (p) => import(path.join(src, p));
const { DvrlabError } = await dist('errors.js');
const { loadScenarioOrTopologyText, loadTopologyArgumentText } = await dist('neutron/load.js');
const { compile, formatRawScenario } = await dist('neutron/compile.js');
const { loadScenarioText } = await dist('scenario/load.js');

/** A broken promise of the loader that is not an exception of its own. */
export class FuzzFailure extends Error {
  constructor(message, cause) {
    super(message, { cause });
    this.name = 'FuzzFailure';
  }
}

/** The name the input is given: it picks the syntax, as a file's extension does. */
function fileName(text) {
  return /^\uFEFF?\s*\{/.test(text) ? 'fuzz.json' : 'fuzz.yaml';
}

/**
 * Runs `fn`; a `DvrlabError` with a one-line message is the expected way to refuse an input
 * and gives false; success gives true; anything else propagates.
 */
function accepted(fn) {
  try {
    fn();
    return true;
  } catch (e) {
    if (!(e instanceof DvrlabError)) throw e;
    // One line, printable: no line breaks, no control characters a terminal would act on.
    if (e.message === '' || /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/.test(e.message)) {
      throw new FuzzFailure(`${e.name} message is not one line: ${JSON.stringify(e.message)}`, e);
    }
    return false;
  }
}

/** A topology (`dvrlab compile`): accepted ones compile to YAML and JSON the loader accepts. */
function topology(data) {
  const text = data.toString('utf8');
  const file = fileName(text);
  let topo;
  if (!accepted(() => (topo = loadTopologyArgumentText(text, file)))) return;
  let raw;
  // The compiler reports what the resolver could not see (ofports, local VLANs) with
  // `topo.fail`, a `DvrlabError` like the others.
  if (!accepted(() => (raw = compile(topo)))) return;
  for (const format of ['yaml', 'json']) {
    const out = formatRawScenario(raw, format);
    try {
      loadScenarioText(out, `compiled.${format}`);
    } catch (e) {
      throw new FuzzFailure(`the compiled ${format} does not load: ${e.message}`, e);
    }
  }
}

/** A SCENARIO argument (`replay`, `run`, `trace`, ...): a raw scenario or a topology. */
function scenarioFile(data) {
  const text = data.toString('utf8');
  accepted(() => loadScenarioOrTopologyText(text, fileName(text)));
}

export const targets = { topology, 'scenario-file': scenarioFile };
