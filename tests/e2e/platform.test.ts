import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createLocalToken } from '../../lib/platform/local-token';
import { projectRoot } from '../../local/env';
import { STACK_TIMEOUT_MS, envWith, startOfflineStack, useOfflineStack } from '../support/offline';

/**
 * The platform through serverless-offline, as `npm start` runs it: health,
 * and the local-token check every protected route makes on stage local.
 */
const e2e = useOfflineStack();

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${e2e.baseUrl}${path}`, { headers });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

it('GET /health answers 200 with both dependencies up, without a token', async () => {
  const response = await get('/health');
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual({ redis: 'ok', database: 'ok' });
});

describe.each(['/points', '/posts/1/likes'])('GET %s', (path) => {
  it.each([
    ['no Authorization header', async () => ({})],
    ['a malformed token', async () => bearer('not.a-jwt')],
    ['a scheme other than Bearer', async () => ({ authorization: `Basic ${await createLocalToken(1)}` })],
    ['an expired token', async () => bearer(await createLocalToken(1, { expiresInSeconds: -60 }))],
    ['a token from another issuer', async () => bearer(await createLocalToken(1, { issuer: 'https://issuer.example.com' }))],
    ['a token for another audience', async () => bearer(await createLocalToken(1, { audience: 'someone-else' }))],
    ['a subject that is not a user id', async () => bearer(await createLocalToken(1, { sub: 'alice' }))],
    ['a subject with a leading zero', async () => bearer(await createLocalToken(1, { sub: '01' }))],
  ])('answers 401 problem+json for %s', async (_, headers) => {
    const response = await get(path, await headers());
    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await response.json()).toMatchObject({ type: 'about:blank', status: 401, code: 'UNAUTHORIZED' });
  });

  it('lets a valid local token through', async () => {
    const response = await get(path, bearer(await createLocalToken(1)));
    expect(response.status).not.toBe(401);
  });
});

it('npm start serves /health from the embedded database when DATABASE_URL is not set', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'local-stack-'));
  const embeddedEnv = { DATABASE_URL: undefined, DATA_API_ENDPOINT: undefined, DATA_API_DATA_DIR: join(dir, 'pglite') };
  try {
    const embedded = await startOfflineStack({ ...embeddedEnv, SEED_DEMO_DATA: undefined });
    try {
      const response = await fetch(`${embedded.baseUrl}/health`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ redis: 'ok', database: 'ok' });
      // PGlite is one process's database.
      await expect(migrateCli(embeddedEnv)).rejects.toThrow(/in use by process/);
    } finally {
      await embedded.stop();
    }
    // Stopped cleanly: the files open again, already migrated.
    await expect(migrateCli(embeddedEnv)).resolves.toMatch(/already up to date/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, STACK_TIMEOUT_MS);

/** npm run db:migrate; resolves to its output, rejects with it. */
async function migrateCli(env: Record<string, string | undefined>): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', join('local', 'migrate-cli.ts')], {
      cwd: projectRoot,
      env: envWith(env),
    });
    return stdout;
  } catch (error) {
    throw new Error(String((error as { stderr?: string }).stderr ?? error));
  }
}
