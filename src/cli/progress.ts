/**
 * The replay progress bar: drawn on stderr with cli-progress, fed by polling the engine's
 * progress counters at most 10 times a second. While the engine does not know the total yet
 * (it reports 0), only the count and the rate are shown. The timer is unref'd so it never
 * keeps the process alive, and `stop()` clears the bar so the summary prints on a clean line.
 */
import cliProgress from 'cli-progress';
import type { Progress } from '../native.js';

/** A running progress display. */
export interface ProgressDisplay {
  stop(): void;
}

/** The payload handed to the formatter with every update. */
interface Payload {
  pps: number;
  known: boolean; // whether the total is known
}

/** Renders one line of the bar. */
export const formatProgress: cliProgress.GenericFormatter = (options, params, payload) => {
  const { pps, known } = payload as Payload;
  if (!known) return `${params.value} pkts | ${pps} pps`;
  const bar = cliProgress.Format.BarFormat(params.progress, options);
  const percent = Math.floor(params.progress * 100);
  return `${bar} ${percent}% | ${params.value}/${params.total} pkts | ${pps} pps | ETA ${params.eta}s`;
};

/** Polls `poll` every 100 ms and draws a bar on `stream`. */
export function startProgress(
  poll: () => Progress,
  stream: NodeJS.WritableStream = process.stderr,
): ProgressDisplay {
  const bar = new cliProgress.SingleBar({
    stream,
    fps: 10,
    format: formatProgress,
    hideCursor: true,
    clearOnComplete: true,
    etaBuffer: 50,
  });
  const started = process.hrtime.bigint();
  bar.start(1, 0, { pps: 0, known: false } satisfies Payload);
  const tick = () => {
    const { done, total } = poll();
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    const payload: Payload = {
      pps: elapsed > 0 ? Math.round(done / elapsed) : 0,
      known: total > 0,
    };
    bar.setTotal(Math.max(total, done, 1));
    bar.update(done, payload);
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
