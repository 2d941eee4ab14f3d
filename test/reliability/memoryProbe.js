/**
 * Loaded with `--require` (and `--expose-gc`) into the functions-framework child of the load test:
 * on SIGUSR2 it runs a full garbage collection and prints the heap, external memory (Buffers) and
 * RSS as one JSON log line,
 * so the test compares live memory after collection, not allocation noise.
 */
process.on('SIGUSR2', () => {
  const gc = typeof globalThis.gc === 'function' ? globalThis.gc : undefined;
  if (gc) {
    gc();
    gc();
  }
  const m = process.memoryUsage();
  process.stdout.write(
    JSON.stringify({
      severity: 'DEBUG',
      message: 'memory probe',
      heapUsed: m.heapUsed,
      external: m.external,
      rss: m.rss,
      gc: gc !== undefined,
    }) + '\n',
  );
});
