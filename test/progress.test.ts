/**
 * The progress line: count and rate while the total is unknown, the bar once it is known.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatProgress } from '../src/cli/progress.js';

// cli-progress hands the formatter bar strings already repeated to the bar's size.
const OPTIONS = {
  barsize: 10,
  barCompleteString: '='.repeat(10),
  barIncompleteString: '-'.repeat(10),
  barGlue: '',
};

function params(value: number, total: number) {
  return {
    progress: value / total,
    eta: 3,
    startTime: 0,
    stopTime: null,
    total,
    value,
    maxWidth: 80,
  };
}

describe('progress line', () => {
  it('shows the count and the rate while the total is unknown', () => {
    const line = formatProgress(OPTIONS, params(300, 300), { pps: 1500, known: false });
    assert.equal(line, '300 pkts | 1500 pps');
  });

  it('shows the bar, the percentage and the ETA once the total is known', () => {
    const line = formatProgress(OPTIONS, params(400, 1000), { pps: 981, known: true });
    assert.equal(line, '====------ 40% | 400/1000 pkts | 981 pps | ETA 3s');
  });
});
