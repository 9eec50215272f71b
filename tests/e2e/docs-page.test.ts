import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { useOfflineStack } from '../support/offline';

/**
 * GET /docs on the local stack, as a person sees it: Debian's Chromium,
 * headless, renders the page, and every operation of /openapi.json is
 * listed on it. Everything the page loads comes from the stack itself (no
 * CDN). .ci/run installs chromium when it is missing; CHROMIUM_PATH points
 * elsewhere.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

const stack = useOfflineStack();
const { request } = stack;
let browser: Browser | undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

it('lists every operation of /openapi.json on the rendered page, loading nothing from elsewhere', async () => {
  const served = await request('GET', '/openapi.json');
  expect(served.status).toBe(200);
  const paths = (served.body as { paths: Record<string, Record<string, unknown>> }).paths;
  const documented = Object.entries(paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((key) => METHODS.includes(key))
      .map((method) => `${method.toUpperCase()} ${path}`),
  );
  expect(documented.length).toBeGreaterThanOrEqual(10);

  const baseUrl = stack.baseUrl;
  const page = await browser!.newPage();
  const elsewhere: string[] = [];
  const failed: string[] = [];
  page.on('request', (sent) => {
    if (!sent.url().startsWith(`${baseUrl}/`) && !sent.url().startsWith('data:')) elsewhere.push(sent.url());
  });
  page.on('requestfailed', (sent) => failed.push(sent.url()));
  const answer = await page.goto(`${baseUrl}/docs`);
  expect(answer?.status()).toBe(200);
  // Swagger UI fetches /openapi.json and renders one block per operation.
  // A string: the root tsconfig has no DOM types; it runs in the page.
  await page.waitForFunction(`document.querySelectorAll('.opblock').length >= ${documented.length}`, undefined, { timeout: 30_000 });
  const listed = await page.$$eval('.opblock', (blocks) =>
    blocks.map(
      (block) =>
        `${block.querySelector('.opblock-summary-method')?.textContent?.trim()} ${block.querySelector('.opblock-summary-path')?.getAttribute('data-path')}`,
    ),
  );
  expect([...listed].sort()).toEqual([...documented].sort());
  expect(await page.title()).toContain('API reference');
  expect({ elsewhere, failed }).toEqual({ elsewhere: [], failed: [] });
  await page.close();
}, 90_000);

it('serves its assets with their types, and nothing else under /docs', async () => {
  const baseUrl = stack.baseUrl;
  const css = await fetch(`${baseUrl}/docs/swagger-ui.css`);
  expect({ status: css.status, type: css.headers.get('content-type') }).toEqual({ status: 200, type: 'text/css; charset=utf-8' });
  const script = await fetch(`${baseUrl}/docs/swagger-ui-bundle.js`);
  expect({ status: script.status, type: script.headers.get('content-type') }).toEqual({ status: 200, type: 'text/javascript; charset=utf-8' });
  expect((await script.text()).length).toBeGreaterThan(100_000);
  const other = await request('GET', '/docs/package.json');
  expect(other).toMatchObject({ status: 404, type: 'application/problem+json', body: { code: 'NOT_FOUND' } });
});
