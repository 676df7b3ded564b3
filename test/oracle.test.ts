/**
 * Differential test: every scenario in test/oracle/scenarios through real Open vSwitch
 * 3.1 and through `dvrlab replay`, compared port by port and byte for byte.
 *
 * `DVRLAB_ORACLE_ONLY=1` runs only the OVS side and checks each scenario's declared
 * expectations against it. `DVRLAB_ORACLE_KEEP=1` keeps the temporary directories, and
 * `DVRLAB_ORACLE_SCENARIO=a,b` runs only the named scenarios (an unknown name fails).
 * A missing oracle is a failure, never a skip. Scenarios run one after another.
 */
import { test } from 'node:test';
import { locate, runScenario } from './oracle/run.js';
import { scenarios } from './oracle/scenarios/index.js';

const oracleOnly = process.env.DVRLAB_ORACLE_ONLY === '1';
const keep = process.env.DVRLAB_ORACLE_KEEP === '1';
const only = (process.env.DVRLAB_ORACLE_SCENARIO ?? '').split(',').filter((n) => n !== '');

test('ovs oracle differential', async (t) => {
  const loc = locate();
  const unknown = only.filter((n) => !scenarios.some((s) => s.name === n));
  if (unknown.length > 0) throw new Error(`unknown scenario(s): ${unknown.join(', ')}`);
  for (const s of scenarios.filter((x) => only.length === 0 || only.includes(x.name))) {
    await t.test(s.name, () => {
      const r = runScenario(s, loc, { oracleOnly, keep });
      const emitted = Object.entries(r.emitted)
        .map(([p, n]) => `${p}=${n}`)
        .join(' ');
      t.diagnostic(
        `${s.name}: ${r.packetsIn} injected, ${r.skippedShort} skipped (<14 B); ` +
          `emitted ${emitted}` +
          (r.dvrlab !== undefined ? `; dvrlab dropped ${JSON.stringify(r.dvrlab.dropped)}` : '') +
          (keep ? `; kept ${r.dir}` : ''),
      );
    });
  }
});
