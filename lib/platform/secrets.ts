import { config } from './config';
import { currentDeadline } from './deadline';

/**
 * Secrets read once per cold start, before the first invocation's work:
 * today the Redis AUTH token, from the SSM SecureString that
 * REDIS_AUTH_PARAMETER names. The environment carries only the parameter's
 * name; the token lives in this process's memory and nowhere else.
 *
 * A read that fails or does not answer in time is not remembered: the next
 * invocation reads again, and until one succeeds lib/platform/redis builds no
 * client (those requests get 503). So one bad read never leaves the instance
 * broken for its lifetime.
 *
 * @aws-sdk/client-ssm comes with the Lambda runtime (every bundle leaves
 * @aws-sdk out) and is required only when a parameter is set, so stages
 * without one (local, tests) never load it.
 */

/**
 * Longest wait for SSM, within the invocation's deadline: it answers in tens
 * of milliseconds, and a read given up on leaves the request time to answer
 * 503 while the next one tries again.
 */
const READ_TIMEOUT_MS = 1000;

let redisToken: string | undefined;
let loading: Promise<void> | undefined;

/**
 * Resolves once the secrets are in memory; rejects when they could not be
 * read within READ_TIMEOUT_MS and the running deadline (lib/platform/deadline).
 */
export function loadSecrets(): Promise<void> {
  const parameter = config().redis.authParameter;
  if (!parameter || redisToken !== undefined) return Promise.resolve();
  loading ??= readParameter(parameter, Math.min(READ_TIMEOUT_MS, currentDeadline().remainingMs())).then(
    (value) => {
      redisToken = value;
      loading = undefined;
    },
    (error: unknown) => {
      loading = undefined;
      throw error;
    },
  );
  return loading;
}

/** The Redis AUTH token, when REDIS_AUTH_PARAMETER names one (after loadSecrets). */
export function redisAuthToken(): string | undefined {
  return redisToken;
}

async function readParameter(name: string, timeoutMs: number): Promise<string> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { SSMClient, GetParameterCommand } = require('@aws-sdk/client-ssm') as typeof import('@aws-sdk/client-ssm');
  const client = new SSMClient({ region: config().region });
  // The abort closes the socket: a read that hangs ends here, not at the platform's timeout.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), Math.max(1, timeoutMs));
  try {
    const { Parameter } = await client.send(new GetParameterCommand({ Name: name, WithDecryption: true }), { abortSignal: abort.signal });
    if (!Parameter?.Value) throw new Error(`SSM parameter ${name} has no value`);
    return Parameter.Value;
  } catch (error) {
    if (abort.signal.aborted) throw new Error(`SSM parameter ${name} was not read within ${Math.round(timeoutMs)} ms`, { cause: error });
    throw error;
  } finally {
    clearTimeout(timer);
    client.destroy();
  }
}
