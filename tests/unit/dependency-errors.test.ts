import { isDatabaseUnavailable, isRedisUnavailable, unavailableDependency } from '../../lib/platform/dependency-errors';
import { DependencyUnavailableError, IdempotencyInProgressError, InternalError } from '../../lib/platform/errors';
import { problem, toAppError } from '../../lib/platform/http';

const withProps = (message: string, props: Record<string, unknown> = {}) => Object.assign(new Error(message), props);

describe('the one list of dependency errors', () => {
  it.each([
    ['a refused connection', withProps('connect ECONNREFUSED 127.0.0.1:6379', { code: 'ECONNREFUSED' })],
    ['a command timeout', new Error('Command timed out')],
    ['the timer of lib/platform/redis', new Error("Command timed out: evalsha got no reply within 1000 ms or the request's deadline")],
    ['a closed connection', new Error('Connection is closed.')],
    ['retries exhausted', withProps('Reached the max retries per request limit (which is 0). Refer to "maxRetriesPerRequest" option for details.', { name: 'MaxRetriesPerRequestError' })],
    ['a demoted primary', withProps("READONLY You can't write against a read only replica.", { name: 'ReplyError' })],
    ['a node loading its data', withProps('LOADING Redis is loading the dataset in memory', { name: 'ReplyError' })],
    ['a deadline script refusing', withProps('EXPIRED the request gave up before this ran', { name: 'ReplyError' })],
    ['a cluster mid-failover', withProps('CLUSTERDOWN The cluster is down', { name: 'ReplyError' })],
    ['a cluster down through every redirection', new Error('Too many Cluster redirections. Last error: ReplyError: CLUSTERDOWN The cluster is down')],
    ['a cluster client with every node gone', new Error("Cluster isn't ready and enableOfflineQueue options is false")],
    ['a cluster client that has ended', withProps('Cluster is ended.', { name: 'AbortError' })],
    ['an error from another realm (a plain object)', { name: 'MaxRetriesPerRequestError', message: 'x' }],
    ['a wrapped socket error', new Error('request failed', { cause: withProps('socket hang up', { code: 'ECONNRESET' }) })],
  ])('Redis: %s', (_, error) => {
    expect(isRedisUnavailable(error)).toBe(true);
    expect(unavailableDependency(error)).toBe('redis');
    expect(toAppError(error)).toBeInstanceOf(DependencyUnavailableError);
  });

  it.each([
    ['the Data API saying the cluster is away', withProps('db away', { name: 'DatabaseUnavailableException' })],
    ['Aurora resuming', withProps('resuming', { name: 'DatabaseResumingException' })],
    ['a 503 from the endpoint', withProps('unavailable', { name: 'ServiceUnavailableError', $metadata: { httpStatusCode: 503 } })],
    ['any 5xx', withProps('odd', { name: 'Whatever', $metadata: { httpStatusCode: 502 } })],
    ['an SDK timeout', withProps('timed out', { name: 'TimeoutError' })],
  ])('database: %s', (_, error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
    expect(unavailableDependency(error)).toBe('database');
    expect(toAppError(error)).toMatchObject({ status: 503, dependency: 'database' });
  });

  it.each([
    ['a bug', new TypeError("Cannot read properties of undefined (reading 'x')")],
    ['a CORRUPT reply', withProps('CORRUPT likes:1 holds a string, not a set', { name: 'ReplyError' })],
    ['a script error', withProps('ERR user_script:1: Script attempted to access nonexistent global variable', { name: 'ReplyError' })],
    ['a word that only contains a reply code', new Error('UNLOADING failed')],
    ['a 4xx from the Data API', withProps('bad request', { name: 'BadRequestException', $metadata: { httpStatusCode: 400 } })],
    ['not an error', 'READONLY'],
    ['null', null],
  ])('not a dependency: %s', (_, error) => {
    expect(unavailableDependency(error)).toBeUndefined();
    expect(toAppError(error)).toBeInstanceOf(InternalError);
  });

  it('follows a cause chain by loop, and a cycle ends it', () => {
    const looped: { message: string; cause?: unknown } = { message: 'a' };
    looped.cause = { message: 'b', cause: looped };
    expect(unavailableDependency(looped)).toBeUndefined();
    let chain: unknown = withProps('x', { code: 'ECONNRESET' });
    for (let i = 0; i < 3; i++) chain = new Error(`level ${i}`, { cause: chain });
    expect(isRedisUnavailable(chain)).toBe(true);
  });
});

describe('Retry-After', () => {
  it('is on 409 IDEMPOTENCY_IN_PROGRESS and on every 503', () => {
    expect(problem(new IdempotencyInProgressError('still running')).headers).toMatchObject({ 'retry-after': '1' });
    expect(problem(toAppError(new Error('Command timed out'))).headers).toMatchObject({ 'retry-after': '1' });
  });
});
