import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
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

// The routes of the HTTP contract (API.md).
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

let outDir: string;
let resources: Resource[];
const bundles = new Map<string, { files: string[]; code: string; sources: string[] }>();

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
    const zip = await JSZip.loadAsync(await readFile(join(outDir, file)));
    const bundle = Object.keys(zip.files).find((name) => name.endsWith('.js'));
    const code = bundle ? await zip.file(bundle)!.async('string') : '';
    const map = bundle && zip.file(`${bundle}.map`) ? JSON.parse(await zip.file(`${bundle}.map`)!.async('string')) : { sources: [] };
    // Sources are relative to the build folder; what follows the ../ is the project path.
    const sources = (map.sources as string[]).map((source) => normalize(source).replace(/^(\.\.[/\\])+/, ''));
    bundles.set(file.replace(/\.zip$/, ''), { files: Object.keys(zip.files), code, sources });
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

it('leaves the AWS SDK out of every zip (the Lambda runtime provides it)', () => {
  for (const [name, bundle] of bundles) {
    expect({ name, files: bundle.files.filter((file) => file.includes('@aws-sdk')) }).toEqual({ name, files: [] });
    expect({ name, sources: bundle.sources.filter((source) => source.includes('@aws-sdk')) }).toEqual({ name, sources: [] });
  }
});

it('bundles the text of every Lua script a function uses', async () => {
  let checked = 0;
  for (const [name, bundle] of bundles) {
    for (const source of bundle.sources.filter((path) => /^(functions|lib)[/\\].*\.ts$/.test(path))) {
      const text = await readFile(join(projectRoot, source), 'utf8');
      for (const [, reference] of text.matchAll(/['"]([^'"]+\.lua)['"]/g)) {
        const script = await readFile(join(projectRoot, dirname(source), reference!), 'utf8');
        // Lines with quotes or backslashes are escaped inside the bundled string.
        const verbatim = script.split('\n').map((line) => line.trim()).filter((line) => line && !/["'`\\]/.test(line));
        expect(verbatim.length).toBeGreaterThan(0);
        for (const line of verbatim) expect({ name, script: reference, found: bundle.code.includes(line) }).toEqual({ name, script: reference, found: true });
        checked++;
      }
    }
  }
  const scripts = (await readdir(join(projectRoot, 'lua')).catch(() => [])).filter((file) => file.endsWith('.lua'));
  if (scripts.length > 0) expect(checked).toBeGreaterThan(0);
});

it('grants the Data API and the secret on exactly the configured ARNs, never on a wildcard', () => {
  const statements: Statement[] = [...ofType('AWS::IAM::Role'), ...ofType('AWS::IAM::Policy'), ...ofType('AWS::IAM::ManagedPolicy')]
    .flatMap((resource) => [
      ...(resource.Properties.Policies ?? []).map((policy: { PolicyDocument: unknown }) => policy.PolicyDocument),
      ...(resource.Properties.PolicyDocument ? [resource.Properties.PolicyDocument] : []),
    ])
    .flatMap((document: { Statement: Statement[] }) => document.Statement);
  const resourcesFor = (service: string) =>
    statements.filter((s) => asList(s.Action).some((action) => action.startsWith(`${service}:`))).flatMap((s) => asList(s.Resource));

  expect(resourcesFor('rds-data')).toEqual([params.dbClusterArn]);
  expect(resourcesFor('secretsmanager')).toEqual([params.dbSecretArn]);
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

it('serves every route of the contract, each behind the JWT authorizer except GET /health', () => {
  const routes = new Map(ofType('AWS::ApiGatewayV2::Route').map((route) => [route.Properties.RouteKey as string, route.Properties]));
  expect([...routes.keys()]).toEqual(expect.arrayContaining(contractRoutes));
  for (const [key, route] of routes) {
    if (key === 'GET /health') expect({ key, type: route.AuthorizationType }).toEqual({ key, type: undefined });
    else expect({ key, type: route.AuthorizationType, id: route.AuthorizerId }).toEqual({ key, type: 'JWT', id: { Ref: 'HttpApiAuthorizerJwt' } });
  }
  const [authorizer] = ofType('AWS::ApiGatewayV2::Authorizer');
  expect(authorizer!.Properties.JwtConfiguration).toEqual({ Issuer: params.jwtIssuer, Audience: [params.jwtAudience] });
});

it('never enables the local token shortcut or the local Data API endpoint in prod', () => {
  for (const fn of ofType('AWS::Lambda::Function')) {
    expect(fn.Properties.Environment.Variables).toMatchObject({ STAGE: 'prod', DATA_API_ENDPOINT: '' });
  }
});
