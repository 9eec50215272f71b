import { handler as likeHandler } from '../../functions/like';
import { handler as purgeHandler } from '../../functions/purge-idempotency-keys';
import { logger } from '../../lib/platform/logger';
import { useTestDatabase } from '../support/database';
import { bodyOf, httpEvent, lambdaContext } from '../support/events';

/**
 * What a request prints (issue 12): one JSON line closing it, with its
 * request id, route and correlation id, and the metrics it emitted, also as
 * one CloudWatch EMF line. Handlers are called as API Gateway calls them and
 * stdout is read as CloudWatch Logs (or a developer running npm start) would.
 */

const t = useTestDatabase();
type Line = Record<string, any>;

/** Runs fn at log level INFO (the tests run SILENT) and returns the JSON lines it printed. */
async function printed<T>(fn: () => Promise<T>): Promise<{ result: T; lines: Line[] }> {
  const chunks: string[] = [];
  const capture = (chunk: unknown) => {
    chunks.push(String(chunk));
    return true;
  };
  const stdout = jest.spyOn(process.stdout, 'write').mockImplementation(capture);
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(capture);
  const level = logger.getLevelName();
  logger.setLogLevel('INFO');
  try {
    const result = await fn();
    const lines = chunks.join('').split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Line);
    return { result, lines };
  } finally {
    logger.setLogLevel(level);
    stdout.mockRestore();
    stderr.mockRestore();
  }
}

const emfLines = (lines: Line[]) => lines.filter((line) => line._aws?.CloudWatchMetrics);
const metricNames = (emf: Line) => emf._aws.CloudWatchMetrics.flatMap((set: { Metrics: { Name: string }[] }) => set.Metrics.map((m) => m.Name));

beforeAll(async () => {
  await t.pg.query("INSERT INTO users (id, name) VALUES (901, 'author') ON CONFLICT DO NOTHING");
  await t.pg.query('INSERT INTO posts (id, author_id) VALUES (9001, 901)');
});

it('prints one line per request with its request id, route and correlation id, and the metrics it emitted', async () => {
  const route = 'POST /posts/{postId}/likes';
  const event = httpEvent({ routeKey: route, pathParameters: { postId: '9001' }, userId: 5 });
  const context = lambdaContext();
  const { result, lines } = await printed(() => likeHandler(event, context));
  expect(result.statusCode).toBe(200);

  const requestLines = lines.filter((line) => line.message === 'request');
  expect(requestLines).toHaveLength(1);
  expect(requestLines[0]).toMatchObject({
    level: 'INFO',
    service: 'likes-points-popular',
    function_request_id: context.awsRequestId,
    function_name: context.functionName,
    cold_start: expect.any(Boolean),
    route,
    correlation_id: event.requestContext.requestId,
    status: 200,
    durationMs: expect.any(Number),
    metrics: { LikeAdded: 1 },
  });

  const emf = emfLines(lines);
  expect(emf).toHaveLength(1);
  expect(emf[0]).toMatchObject({ service: 'likes-points-popular', LikeAdded: 1 });
  expect(emf[0]!._aws.CloudWatchMetrics[0]).toMatchObject({ Namespace: 'LikesPointsPopular', Dimensions: [['service']] });
  expect(metricNames(emf[0]!)).toEqual(['LikeAdded']);
});

it('emits no metric for a like that changed nothing, and only the first invocation is a cold start', async () => {
  const event = () => httpEvent({ routeKey: 'POST /posts/{postId}/likes', pathParameters: { postId: '9001' }, userId: 5 });
  const { lines } = await printed(() => likeHandler(event(), lambdaContext()));
  const [line] = lines.filter((l) => l.message === 'request');
  expect(line).toMatchObject({ status: 200, metrics: {}, cold_start: false });
  expect(emfLines(lines)).toEqual([]);
});

it('echoes the correlation id as the problem body\'s instance, and logs the failure under the same id', async () => {
  const event = httpEvent({ routeKey: 'POST /posts/{postId}/likes', pathParameters: { postId: '9999' }, userId: 5 });
  const { result, lines } = await printed(() => likeHandler(event, lambdaContext()));
  expect(result.statusCode).toBe(404);
  expect(bodyOf(result)).toMatchObject({ code: 'NOT_FOUND', instance: event.requestContext.requestId });
  expect(lines.filter((line) => line.message === 'request')).toEqual([
    expect.objectContaining({ status: 404, correlation_id: event.requestContext.requestId }),
  ]);
});

it('gives a scheduled function the same context and closing line', async () => {
  const context = lambdaContext();
  const { result, lines } = await printed(() => purgeHandler({}, context));
  expect(result).toMatchObject({ purged: 0 });
  const own = lines.filter((line) => line.function_request_id === context.awsRequestId);
  // The function's own lines first (under the same request id), then the one closing the run.
  expect(own.length).toBeGreaterThanOrEqual(2);
  expect(own.every((line) => line.route === 'purge-idempotency-keys' && line.cold_start !== undefined)).toBe(true);
  expect(own.at(-1)).toMatchObject({ message: 'scheduled run', outcome: 'ok', metrics: {} });
});
