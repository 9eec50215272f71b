import { config } from './config';

/**
 * Secrets read once per cold start, before the first invocation's work:
 * today the Redis AUTH token, from the SSM SecureString that
 * REDIS_AUTH_PARAMETER names. The environment carries only the parameter's
 * name; the token lives in this process's memory and nowhere else.
 *
 * @aws-sdk/client-ssm comes with the Lambda runtime (every bundle leaves
 * @aws-sdk out) and is required only when a parameter is set, so stages
 * without one (local, tests) never load it.
 */

let redisToken: string | undefined;
let loading: Promise<void> | undefined;

/** Resolves once the secrets are in memory; a failure is retried by the next invocation. */
export function loadSecrets(): Promise<void> {
  const parameter = config().redis.authParameter;
  if (!parameter) return Promise.resolve();
  loading ??= readParameter(parameter).then(
    (value) => {
      redisToken = value;
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

async function readParameter(name: string): Promise<string> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { SSMClient, GetParameterCommand } = require('@aws-sdk/client-ssm') as typeof import('@aws-sdk/client-ssm');
  const client = new SSMClient({ region: config().region });
  try {
    const { Parameter } = await client.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
    if (!Parameter?.Value) throw new Error(`SSM parameter ${name} has no value`);
    return Parameter.Value;
  } finally {
    client.destroy();
  }
}
