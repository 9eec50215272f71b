import { startFaultProxy, type FaultProxy } from '../support/fault-proxy';

/**
 * What the database fault files share: a fault proxy in front of the run's
 * local Data API endpoint, and a record of how each faulty request was
 * answered, printed when the file ends (the closing note quotes it).
 */

/**
 * Puts a fault proxy between the Data API client and the run's endpoint.
 * Call at the top of the file, before useTestDatabase(): DATA_API_ENDPOINT
 * must point at the proxy before anything reads the configuration.
 */
export function useDataApiProxy(): () => FaultProxy {
  let proxy: FaultProxy | undefined;
  beforeAll(async () => {
    const upstream = new URL(process.env.DATA_API_ENDPOINT!);
    proxy = await startFaultProxy({ host: upstream.hostname, port: Number(upstream.port) });
    process.env.DATA_API_ENDPOINT = proxy.url('http');
  });
  afterAll(async () => {
    await proxy?.close();
  });
  return () => proxy!;
}

/** Times handler calls and prints each answer's status and duration after the file's tests. */
export function useTimedFigures() {
  const figures: string[] = [];
  afterAll(() => {
    if (figures.length > 0) console.log(figures.join('\n'));
  });
  async function timed<T extends { statusCode: number }>(
    fn: () => Promise<T>,
    label = expect.getState().currentTestName ?? '',
  ): Promise<{ result: T; ms: number }> {
    const started = performance.now();
    const result = await fn();
    const ms = performance.now() - started;
    figures.push(`${label}: ${result.statusCode} in ${Math.round(ms)} ms`);
    return { result, ms };
  }
  /** Adds a figure of the test's own to the printout. */
  const note = (line: string) => figures.push(line);
  return Object.assign(timed, { note });
}
