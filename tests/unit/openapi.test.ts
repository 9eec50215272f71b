import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openApiDocument } from '../../lib/openapi/document';
import { OPENAPI_FILE, openApiText } from '../../local/openapi';

/**
 * GET /openapi.json's document is valid OpenAPI 3.1 (checked by a real
 * validator) and names every route serverless.yml serves; the e2e tests
 * (tests/e2e/openapi.test.ts) hold live answers to it.
 */

const document = openApiDocument() as { paths: Record<string, Record<string, unknown>> };

/** Every `METHOD /path` of serverless.yml's httpApi events, in either spelling. */
function servedRoutes(): string[] {
  const yaml = readFileSync(join(__dirname, '..', '..', 'serverless.yml'), 'utf8');
  const short = [...yaml.matchAll(/httpApi:\s+(GET|POST|PUT|PATCH|DELETE)\s+(\S+)/g)].map(([, method, path]) => `${method} ${path}`);
  const long = [...yaml.matchAll(/httpApi:\s*\n\s+method:\s*(\w+)\s*\n\s+path:\s*(\S+)/g)].map(([, method, path]) => `${method} ${path}`);
  // GET /docs (stage local only) is a page for people about the API, not part of it.
  return [...short, ...long].filter((route) => !/^GET \/docs\b/.test(route));
}

/**
 * The validator is an ES module, which jest's CommonJS runtime cannot load:
 * it runs in a plain node process, as `npx validate-api` would.
 */
async function validateWithSeriousme(spec: unknown): Promise<{ valid: boolean; errors?: unknown }> {
  const dir = mkdtempSync(join(tmpdir(), 'openapi-'));
  try {
    const file = join(dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(spec));
    const script = `import('@seriousme/openapi-schema-validator').then(async ({ Validator }) => {
      const validator = new Validator();
      const result = await validator.validate(process.argv[1]);
      process.stdout.write(JSON.stringify({ valid: result.valid, errors: result.errors, version: validator.version }));
    })`;
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script, file], { cwd: join(__dirname, '..', '..') });
    return JSON.parse(stdout) as { valid: boolean; errors?: unknown };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

it('is a valid OpenAPI 3.1 document', async () => {
  const result = await validateWithSeriousme(document);
  expect(result).toEqual({ valid: true, version: '3.1' });
  expect(document).toMatchObject({ openapi: '3.1.0' });
});

it('is refused by the same validator when broken (the check is real)', async () => {
  const broken = { ...document, paths: { '/x': { get: { responses: { 200: { content: {} } } } } } };
  expect((await validateWithSeriousme(broken)).valid).toBe(false);
});

it('is what functions/openapi serves: lib/openapi/openapi.json is current (npm run openapi writes it)', () => {
  if (readFileSync(OPENAPI_FILE, 'utf8') !== openApiText(document)) {
    throw new Error('lib/openapi/openapi.json is not current with lib/openapi/document.ts: run `npm run openapi` and commit the file');
  }
});

it('documents every route serverless.yml serves, and no other', () => {
  const served = servedRoutes();
  expect(served.length).toBeGreaterThanOrEqual(10);
  const documented = Object.entries(document.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((key) => ['get', 'post', 'put', 'patch', 'delete'].includes(key))
      .map((method) => `${method.toUpperCase()} ${path}`),
  );
  expect(documented.sort()).toEqual([...new Set(served)].sort());
});

it("takes the request schemas from the handlers' own validation", () => {
  const schemas = (openApiDocument() as { components: { schemas: Record<string, any> } }).components.schemas;
  expect(schemas.ChargeRequest).toMatchObject({ type: 'object', properties: { amount: { type: 'integer', minimum: 1, maximum: 1_000_000 } }, required: ['amount'] });
  expect(schemas.OrderRequest.properties.items).toMatchObject({ type: 'array', minItems: 1, maxItems: 20 });
  const popular = document.paths['/items/popular']!.get as { parameters: { name: string; schema: { default?: unknown; pattern?: string } }[] };
  expect(popular.parameters.map((p) => [p.name, p.schema.default])).toEqual([
    ['days', '3'],
    ['limit', '5'],
  ]);
});
