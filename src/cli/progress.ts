/**
 * The replay progress bar: drawn on stderr with cli-progress, fed by polling the engine's
 * progress counters at most 10 times a second. The timer is unref'd so it never keeps the
 * process alive, and `stop()` clears the bar so the summary prints on a clean line.
 */
import cliProgress from 'cli-progress';
import type { Progress } from '../native.js';

/** A running progress display. */
export interface ProgressDisplay {
  stop(): void;
}

/** Polls `poll` every 100 ms and draws a bar on `stream`. */
export function startProgress(
  poll: () => Progress,
  stream: NodeJS.WritableStream = process.stderr,
): ProgressDisplay {
  const bar = new cliProgress.SingleBar({
    stream,
    fps: 10,
    format: '{bar} {percentage}% | {value}/{total} pkts | {pps} pps | ETA {eta}s',
    hideCursor: true,
    clearOnComplete: true,
    etaBuffer: 50,
  });
  const started = process.hrtime.bigint();
  bar.start(1, 0, { pps: 0 });
  const tick = () => {
    const { done, total } = poll();
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    bar.setTotal(Math.max(total, done, 1));
    bar.update(done, { pps: elapsed > 0 ? Math.round(done / elapsed) : 0 });
  };
  const timer = setInterval(tick, 100);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      bar.stop();
    },
  };
}
