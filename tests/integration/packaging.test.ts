import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import JSZip from 'jszip';
import { projectRoot } from '../../local/env';
import packageJson from '../../package.json';

/**
 * `npm run package:prod`, with its placeholder params, into a directory of
 * its own: what would be deployed, checked without deploying it.
 */

interface Resource {
  Type: string;
  Properties: Record<string, any>;
}
interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
}

// The routes of the HTTP contract (docs/api.md).
const contractRoutes = [
  'GET /health',
  'POST /posts/{postId}/likes',
  'DELETE /posts/{postId}/likes',
  'GET /posts/{postId}/likes',
  'GET /users/{userId}/received-likes',
  'GET /points',
  'POST /points/charge',
  'POST /orders',
  'GET /items/popular',
];

const [command, ...scriptArgs] = packageJson.scripts['package:prod'].split(' ');
const params = Object.fromEntries(
  scriptArgs.filter((arg) => arg.startsWith('--param=')).map((arg) => arg.slice('--param='.length).split(/=(.*)/s).slice(0, 2) as [string, string]),
);

/** Issue 11's goal for every zip; see the last tests. */
const ZIP_GOAL_BYTES = 150 * 1024;
/** What every zip stays under today: a regression guard until the goal holds. */
const ZIP_CEILING_BYTES = 256 * 1024;

let outDir: string;
let resources: Resource[];
const bundles = new Map<string, { files: string[]; code: string; zipBytes: number; entry: string }>();

beforeAll(async () => {
  expect(command).toBe('serverless');
  outDir = await mkdtemp(join(tmpdir(), 'package-prod-'));
  const workFolder = join('.esbuild', `package-${randomBytes(4).toString('hex')}`);
  const serverless = join(projectRoot, 'node_modules', 'serverless', 'bin', 'serverless.js');
  try {
    await promisify(execFile)(process.execPath, [serverless, ...scriptArgs, '--package', outDir], {
      cwd: projectRoot,
      env: { ...process.env, ESBUILD_WORK_FOLDER: workFolder },
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (error) {
    const { stdout, stderr, message } = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`serverless package failed: ${message}\n${stdout ?? ''}\n${stderr ?? ''}`);
  } finally {
    await rm(join(projectRoot, workFolder), { recursive: true, force: true });
  }
  const template = JSON.parse(await readFile(join(outDir, 'cloudformation-template-update-stack.json'), 'utf8'));
  resources = Object.values(template.Resources);
  for (const file of (await readdir(outDir)).filter((name) => name.endsWith('.zip'))) {
    const bytes = await readFile(join(outDir, file));
    const zip = await JSZip.loadAsync(bytes);
    const entry = Object.keys(zip.files).find((name) => name.endsWith('.js')) ?? '';
    const code = entry ? await zip.file(entry)!.async('string') : '';
    bundles.set(file.replace(/\.zip$/, ''), { files: Object.keys(zip.files), code, zipBytes: bytes.length, entry });
  }
}, 180_000);

afterAll(async () => {
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

const ofType = (type: string) => resources.filter((resource) => resource.Type === type);
const asList = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

it('packages every function into its own zip, on Node.js 22', () => {
  const functions = ofType('AWS::Lambda::Function');
  expect(functions.length).toBeGreaterThan(0);
  for (const fn of functions) {
    expect(fn.Properties.Runtime).toBe('nodejs22.x');
    const key = String(fn.Properties.Code.S3Key).split('/').pop()!.replace(/\.zip$/, '');
    expect([...bundles.keys()]).toContain(key);
  }
});

it('leaves the AWS SDK out of every zip (the Lambda runtime provides it): the bundle only requires it', () => {
  for (const [name, bundle] of bundles) {
    expect({ name, files: bundle.files.filter((file) => file.includes('@aws-sdk')) }).toEqual({ name, files: [] });
    // A bundled SDK would carry its client code; an external one is one require() per package.
    const mentions = bundle.code.match(/.{0,9}["']@aws-sdk\/client-rds-data["']/g) ?? [];
    expect({ name, mentions: mentions.filter((text) => !text.endsWith('require("@aws-sdk/client-rds-data"') && !text.includes('require(')) }).toEqual({ name, mentions: [] });
    expect({ name, bundled: /ExecuteStatementCommand\s*=\s*class|class \w+ extends .{0,40}Command\b.{0,200}"ExecuteStatement"/.test(bundle.code) }).toEqual({ name, bundled: false });
  }
});

it('ships minified code and no source map in any zip', () => {
  for (const [name, bundle] of bundles) {
    expect({ name, files: bundle.files.filter((file) => !file.endsWith('/')) }).toEqual({ name, files: [bundle.entry] });
    // Minified: nearly all the code sits on very long lines. The Lua scripts are held as strings whose line
    // breaks esbuild keeps, hundreds of short lines that weigh more in a bundle without zod classic.
    const onLongLines = bundle.code.split('\n').filter((line) => line.length > 1000).reduce((sum, line) => sum + line.length, 0);
    expect({ name, minified: onLongLines / bundle.code.length > 0.8 }).toEqual({ name, minified: true });
    expect({ name, sourceMappingURL: bundle.code.includes('sourceMappingURL=') }).toEqual({ name, sourceMappingURL: false });
  }
});

it('bundles the whole text of every Lua script it holds, and every script some handler imports is held by a bundle', async () => {
  // Each feature keeps its scripts in its own folder under lib/.
  const scripts = (await readdir(join(projectRoot, 'lib'), { recursive: true })).map(String).filter((file) => file.endsWith('.lua'));
  const imported = new Set<string>();
  for (const dir of ['functions', 'lib']) {
    for (const file of await readdir(join(projectRoot, dir), { recursive: true })) {
      if (!String(file).endsWith('.ts')) continue;
      const text = await readFile(join(projectRoot, dir, String(file)), 'utf8');
      for (const [, reference] of text.matchAll(/['"](\.{1,2}\/[^'"]+\.lua)['"]/g)) {
        imported.add(relative(join(projectRoot, 'lib'), resolve(join(projectRoot, dir, dirname(String(file))), reference!)));
      }
    }
  }
  for (const script of scripts) {
    const text = await readFile(join(projectRoot, 'lib', script), 'utf8');
    // Lines with quotes or backslashes are escaped inside the bundled string.
    const verbatim = text.split('\n').map((line) => line.trim()).filter((line) => line && !/["'`\\]/.test(line));
    expect(verbatim.length).toBeGreaterThan(0);
    // Each script's opening comment names its own KEYS and purpose: it marks the script as held.
    const holders = [...bundles].filter(([, bundle]) => bundle.code.includes(verbatim[0]!));
    if (imported.has(script)) expect({ script, held: holders.length > 0 }).toEqual({ script, held: true });
    for (const [name, bundle] of holders) {
      for (const line of verbatim) expect({ name, script, line, found: bundle.code.includes(line) }).toEqual({ name, script, line, found: true });
    }
  }
});

it(`keeps every zip under ${ZIP_CEILING_BYTES / 1024} KB`, () => {
  for (const [name, bundle] of bundles) expect({ name, under: bundle.zipBytes <= ZIP_CEILING_BYTES, bytes: bundle.zipBytes }).toMatchObject({ name, under: true });
});

// Issue 11's goal, met since validation moved from zod classic (about 450 KB of
// every bundle) to zod/mini: the zips are about 30-100 KB (`npm run bench cold-start`).
it(`keeps every zip under ${ZIP_GOAL_BYTES / 1024} KB`, () => {
  for (const [name, bundle] of bundles) expect({ name, under: bundle.zipBytes <= ZIP_GOAL_BYTES, bytes: bundle.zipBytes }).toMatchObject({ name, under: true });
});

// popular-items needs the database on a cache miss only; the like functions only to learn a post's author.
it.each(['popular-items', 'like', 'unlike', 'like-status'])('loads the Data API client in %s only when a statement runs, not at init', async (name) => {
  const bundle = bundles.get(name)!;
  const dir = await mkdtemp(join(tmpdir(), `${name}-init-`));
  try {
    const file = join(dir, 'handler.js');
    await writeFile(file, bundle.code);
    const script = `require(${JSON.stringify(file)}); process.stdout.write(String(Object.keys(require.cache).some((p) => p.includes('@aws-sdk'))));`;
    const fn = ofType('AWS::Lambda::Function').find((f) => String(f.Properties.Code.S3Key).endsWith(`/${name}.zip`))!;
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], {
      env: { PATH: process.env.PATH, NODE_PATH: join(projectRoot, 'node_modules'), AWS_REGION: 'ap-northeast-2', ...stringValues(fn.Properties.Environment.Variables) },
    });
    expect(stdout).toBe('false');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** A function's environment as CloudFormation has it: placeholders for what only a deploy resolves. */
function stringValues(variables: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(variables).map(([key, value]) => [key, typeof value === 'string' ? value : 'placeholder']));
}

it('grants the Data API and the secret on exactly the configured ARNs, never on a wildcard', () => {
  const statements: Statement[] = [...ofType('AWS::IAM::Role'), ...ofType('AWS::IAM::Policy'), ...ofType('AWS::IAM::ManagedPolicy')]
    .flatMap((resource) => [
      ...(resource.Properties.Policies ?? []).map((policy: { PolicyDocument: unknown }) => policy.PolicyDocument),
      ...(resource.Properties.PolicyDocument ? [resource.Properties.PolicyDocument] : []),
    ])
    .flatMap((document: { Statement: Statement[] }) => document.Statement);
  const resourcesFor = (service: string) =>
    statements.filter((s) => asList(s.Action).some((action) => action.startsWith(`${service}:`))).flatMap((s) => asList(s.Resource));

  // One statement per function role is fine; each names exactly these ARNs.
  expect([...new Set(resourcesFor('rds-data'))]).toEqual([params.dbClusterArn]);
  expect([...new Set(resourcesFor('secretsmanager'))]).toEqual([params.dbSecretArn]);
  expect(JSON.stringify([...resourcesFor('rds-data'), ...resourcesFor('secretsmanager')])).not.toContain('*');
});

it('schedules evict-popular-items with EventBridge Scheduler at midnight in Asia/Seoul', () => {
  const schedules = ofType('AWS::Scheduler::Schedule').filter(
    (schedule) => schedule.Properties.Target.Arn['Fn::GetAtt']?.[0] === 'EvictDashpopularDashitemsLambdaFunction',
  );
  expect(schedules).toHaveLength(1);
  expect(schedules[0]!.Properties).toMatchObject({
    ScheduleExpression: 'cron(0 0 * * ? *)',
    ScheduleExpressionTimezone: 'Asia/Seoul',
    State: 'ENABLED',
  });
});

// GET /openapi.json describes the API to anyone, as a published document would.
it('serves every route of the contract, each behind the JWT authorizer except GET /health and GET /openapi.json', () => {
  const routes = new Map(ofType('AWS::ApiGatewayV2::Route').map((route) => [route.Properties.RouteKey as string, route.Properties]));
  expect([...routes.keys()]).toEqual(expect.arrayContaining(contractRoutes));
  for (const [key, route] of routes) {
    if (key === 'GET /health' || key === 'GET /openapi.json') expect({ key, type: route.AuthorizationType }).toEqual({ key, type: undefined });
    else expect({ key, type: route.AuthorizationType, id: route.AuthorizerId }).toEqual({ key, type: 'JWT', id: { Ref: 'HttpApiAuthorizerJwt' } });
  }
  const [authorizer] = ofType('AWS::ApiGatewayV2::Authorizer');
  expect(authorizer!.Properties.JwtConfiguration).toEqual({ Issuer: params.jwtIssuer, Audience: [params.jwtAudience] });
});

// Swagger UI's assets are about ten times the zip budget: GET /docs is declared on stage local only.
it('leaves the docs page (GET /docs) out of prod', () => {
  expect([...bundles.keys()].filter((name) => name.includes('docs'))).toEqual([]);
  const routes = ofType('AWS::ApiGatewayV2::Route').map((route) => route.Properties.RouteKey as string);
  expect(routes.filter((key) => key.startsWith('GET /docs'))).toEqual([]);
});

it('never enables the local token shortcut or the local Data API endpoint in prod', () => {
  for (const fn of ofType('AWS::Lambda::Function')) {
    expect(fn.Properties.Environment.Variables).toMatchObject({ STAGE: 'prod', DATA_API_ENDPOINT: '' });
  }
});
