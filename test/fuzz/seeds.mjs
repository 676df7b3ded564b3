// Writes the seed corpus of the TypeScript fuzz targets into test/fuzz/corpus/TARGET/
// (git-ignored): the built-in topology (YAML, and as JSON), the topologies the tests write as
// YAML, the differential scenarios of test/oracle, the compiled form of every topology seed
// (YAML and JSON, as `dvrlab compile` writes them) and, when native/fuzz/seeds.mjs has run,
// the compiled devstack the native fuzz targets load. Needs the TypeScript build
// (`npm run build`). Run from anywhere: `node test/fuzz/seeds.mjs`.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const corpus = path.join(here, 'corpus');
const dist = (p) => import(path.join(root, 'dist/src', p));
const { DEVSTACK_DVR_YAML } = await dist('neutron/devstack-dvr.js');
const { loadTopologyArgumentText } = await dist('neutron/load.js');
const { compile, formatRawScenario } = await dist('neutron/compile.js');
const { isTopology } = await dist('neutron/schema.js');

const written = {};
function seed(target, name, text) {
  const dir = path.join(corpus, target);
  fs.mkdirSync(dir, { recursive: true });
  const sum = createHash('sha1').update(text).digest('hex').slice(0, 8);
  fs.writeFileSync(path.join(dir, `seed-${name}-${sum}`), text);
  written[target] = (written[target] ?? 0) + 1;
}

// Topologies: the built-in one and every YAML topology a test writes in a template literal.
const topologies = [['devstack-dvr', DEVSTACK_DVR_YAML]];
for (const f of fs.readdirSync(path.join(root, 'test')).sort()) {
  if (!f.endsWith('.ts')) continue;
  const src = fs.readFileSync(path.join(root, 'test', f), 'utf8');
  let i = 0;
  for (const m of src.matchAll(/`([^`]*)`/g)) {
    const text = m[1].replace(/^\n/, '');
    if (text.includes('${') || !/^(nodes|networks):/m.test(text)) continue;
    let doc;
    try {
      doc = parse(text);
    } catch {
      continue;
    }
    if (isTopology(doc)) topologies.push([`${f.replace(/\.test\.ts$|\.ts$/, '')}-${i++}`, text]);
  }
}

for (const [name, text] of topologies) {
  const json = JSON.stringify(parse(text), null, 2);
  let compiled = [];
  try {
    const raw = compile(loadTopologyArgumentText(text, `${name}.yaml`));
    compiled = ['yaml', 'json'].map((format) => [format, formatRawScenario(raw, format)]);
  } catch {
    // A test may write a topology that is meant to fail; it is a seed all the same.
  }
  for (const target of ['topology', 'scenario-file']) {
    seed(target, `${name}.yaml`, text);
    seed(target, `${name}.json`, json);
  }
  for (const [format, out] of compiled) seed('scenario-file', `${name}-compiled.${format}`, out);
}

// Raw scenarios: the differential scenarios (one-node, as the OVS oracle takes them), one of
// them with its flows in a file of the fuzz sandbox, and the engine's compiled devstack.
const oracleDir = path.join(root, 'test/oracle/scenarios');
for (const d of fs.readdirSync(oracleDir).sort()) {
  const f = path.join(oracleDir, d, 'scenario.json');
  if (!fs.existsSync(f)) continue;
  const text = fs.readFileSync(f, 'utf8');
  seed('scenario-file', `${d}.json`, text);
  const doc = JSON.parse(text);
  if (d === 'l2-match' && doc.bridges?.[0]) {
    doc.bridges[0].flows = 'flows.txt';
    seed('scenario-file', `${d}-flows-file.json`, JSON.stringify(doc, null, 2));
  }
}
const engine = path.join(root, 'native/fuzz/corpus/devstack-dvr.json');
if (fs.existsSync(engine))
  seed('scenario-file', 'engine-devstack-dvr.json', fs.readFileSync(engine));

console.log(
  Object.entries(written)
    .map(([t, n]) => `${t}: ${n}`)
    .join(', '),
);
