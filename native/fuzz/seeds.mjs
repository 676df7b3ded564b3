// Writes the seed corpus of every fuzz target into fuzz/corpus/TARGET/ (git-ignored), and
// the devstack scenario the datapath target loads (fuzz/corpus/devstack-dvr.json). Needs the
// TypeScript build (`npm run build` at the top of the repository) and reads the captures of
// the shared directory (see below). Run from native/: `node fuzz/seeds.mjs`.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const corpus = path.join(here, 'corpus');
// The captures: $DVRLAB_CAPTURES, else captures/ of the shared directory as the tests find it
// ($DVRLAB_SHARED, next to the repository, /work/shared).
const captures =
  process.env.DVRLAB_CAPTURES ??
  [process.env.DVRLAB_SHARED, path.resolve(root, '../shared'), '/work/shared']
    .filter(Boolean)
    .map((d) => path.join(d, 'captures'))
    .find((d) => fs.existsSync(d)) ??
  path.resolve(root, '../shared/captures');
const { loadScenarioOrTopology } = await import(path.join(root, 'dist/src/neutron/load.js'));

const written = {};
function seed(target, name, data) {
  const dir = path.join(corpus, target);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), data);
  written[target] = (written[target] ?? 0) + 1;
}

// Classic pcap records (either byte order), as [linktype, frame] pairs; pcapng is skipped.
function frames(file, max) {
  const b = fs.readFileSync(file);
  if (b.length < 24) return [];
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const be = magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1;
  if (!le && !be) return [];
  const u32 = (at) => (le ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const linktype = u32(20) & 0xffff;
  const out = [];
  for (let at = 24; at + 16 <= b.length && out.length < max; ) {
    const caplen = u32(at + 8);
    if (caplen > 262144 || at + 16 + caplen > b.length) break;
    out.push([linktype, b.subarray(at + 16, at + 16 + caplen)]);
    at += 16 + caplen;
  }
  return out;
}

// Scenarios: the seed devstack and every differential scenario, as the engine takes them.
const scenarios = [['devstack-dvr', loadScenarioOrTopology('devstack-dvr').scenario]];
const oracleDir = path.join(root, 'test/oracle/scenarios');
for (const d of fs.readdirSync(oracleDir)) {
  const f = path.join(oracleDir, d, 'scenario.json');
  if (fs.existsSync(f)) scenarios.push([d, loadScenarioOrTopology(f).scenario]);
}
for (const [name, sc] of scenarios) {
  seed('scenario', `${name}.json`, JSON.stringify(sc));
  const flows = [];
  for (const n of sc.nodes ?? [{ bridges: sc.bridges }]) {
    for (const b of n.bridges ?? []) for (const f of b.flows ?? []) flows.push(f.text ?? f);
    for (const ns of n.namespaces ?? []) {
      const texts = ['ip_rule', 'ip_route', 'ip_neigh', 'iptables_nat', 'iptables_mangle', 'iptables_raw'];
      const parts = texts.map((k) => ns[k] ?? '');
      seed('netns', `${name}-${ns.name}`, parts.join('\0'));
    }
  }
  flows.forEach((f, i) => typeof f === 'string' && seed('ofctl', `${name}-${i}`, f));
}
fs.writeFileSync(path.join(corpus, 'devstack-dvr.json'), JSON.stringify(scenarios[0][1]));

// Captures: whole files for the reader; frames for extraction and the datapath.
const files = fs.existsSync(captures) ? fs.readdirSync(captures).sort() : [];
for (const f of files) {
  if (!/\.(pcap|pcapng)$/.test(f)) continue;
  const p = path.join(captures, f);
  const size = fs.statSync(p).size;
  seed('capture', f, size <= 1 << 20 ? fs.readFileSync(p) : fs.readFileSync(p).subarray(0, 1 << 16));
  const ethernet = frames(p, 40).filter(([linktype]) => linktype === 1);
  // Bursts: eight frames in a row on one port, and the same again on another.
  for (let k = 0; k * 8 < ethernet.length; k++) {
    const records = ethernet.slice(k * 8, k * 8 + 8).map(([, fr], j) => {
      const body = fr.subarray(0, 65535);
      const sel = k % 13 + (j >= 4 ? 13 : 0);
      return Buffer.concat([Buffer.from([sel, body.length >> 8, body.length & 0xff]), body]);
    });
    seed('burst', `${f}-${k}`, Buffer.concat(records));
  }
  frames(p, 40).forEach(([linktype, fr], i) => {
    if (linktype !== 1) return;
    const params = Buffer.alloc(16, i * 37 + 11);
    seed('extract', `${f}-${i}`, Buffer.concat([params, fr]));
    const hdr = Buffer.from([i % 13, fr.length >> 8, fr.length & 0xff]);
    seed('datapath', `${f}-${i}`, Buffer.concat([hdr, fr.subarray(0, 65535)]));
  });
}
console.log(Object.entries(written).map(([t, n]) => `${t}: ${n}`).join(', '));
