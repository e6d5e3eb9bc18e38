/** A progress line on stderr: redrawn in place with an ETA on a TTY, a plain line every 10% otherwise. */
export function progressReporter(label: string): (done: number, total: number) => void {
  const start = Date.now();
  let lastDecile = -1;
  return (done, total) => {
    const fraction = total === 0 ? 1 : done / total;
    const elapsed = (Date.now() - start) / 1000;
    const eta = fraction > 0 ? (elapsed / fraction) * (1 - fraction) : 0;
    const text = `${label} ${done}/${total} (${(100 * fraction).toFixed(0)}%) ${elapsed.toFixed(0)}s elapsed, ETA ${eta.toFixed(0)}s`;
    if (process.stderr.isTTY) {
      const width = 24;
      const filled = Math.round(width * fraction);
      process.stderr.write(`\r[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${text}${done === total ? "\n" : ""}`);
    } else {
      const decile = Math.floor(fraction * 10);
      if (decile !== lastDecile || done === total) process.stderr.write(`${text}\n`);
      lastDecile = decile;
    }
  };
}
