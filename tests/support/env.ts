import { randomBytes } from 'node:crypto';

/**
 * Runs before every test file (jest setupFiles), before the file's imports.
 * Each file gets its own database name and Redis key prefix, so files never
 * see each other's data; the services themselves come from global-setup.
 */
// TEST_RUN_ID comes from global-setup, so teardown drops only this run's
// databases and keys, never those of a run still going on beside it.
const runId = (process.env.TEST_RUN_ID ??= randomBytes(3).toString('hex'));
const fileId = `${runId}_${randomBytes(4).toString('hex')}`;

Object.assign(process.env, {
  STAGE: 'test',
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  DB_RESOURCE_ARN: 'arn:aws:rds:us-east-1:000000000000:cluster:test',
  DB_SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:000000000000:secret:test',
  DB_NAME: `t_${fileId}`,
  REDIS_KEY_PREFIX: `t:${fileId}:`,
  JWT_ISSUER: 'http://127.0.0.1/local-issuer',
  JWT_AUDIENCE: 'local',
  POWERTOOLS_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'SILENT',
  // Lambda runs Node 22; the SDK's notice about this machine's Node 20 is noise here.
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
});
process.env.REDIS_URL ??= 'redis://127.0.0.1:6379';
process.env.DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/test';
