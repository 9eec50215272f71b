import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import * as esbuild from 'esbuild';
import JSZip from 'jszip';
import { projectRoot } from '../local/env';
import packageJson from '../package.json';
import { report, section } from './harness';

/**
 * Cold start of every function as deployed: `npm run package:prod` (the
 * real serverless-esbuild build, into a folder of its own), then for each zip
 * its size and the time to require() its handler in a fresh Node process
 * (module load and compile plus the function's own init, e.g. config
 * validation), median of RUNS, against an esbuild bundle of ioredis alone
 * (every function needs it) built with the same options in the same run.
 * Bundles of single libraries say where the rest goes. The AWS SDK is
 * external, as in Lambda (the runtime provides it); a function that loads it
 * at init pays for that here too, and the "sdk" column says whether it does.
 */

const RUNS = 9;

interface Measured {
  name: string;
  zipBytes?: number;
  bundleBytes: number;
  initMs: number;
  sdkAtInit: boolean;
}

/** What esbuild gets for the reference bundles: the custom.esbuild options that shape the code. */
const referenceOptions: esbuild.BuildOptions = {
  bundle: true,
  minify: true,
  legalComments: 'none',
  mainFields: ['module', 'main'],
  platform: 'node',
  target: 'node20',
  external: ['@aws-sdk/*'],
};

const references: Array<[string, string]> = [
  ['ioredis alone (baseline)', `import Redis from 'ioredis'; export const handler = async () => Redis;`],
  ['zod alone', `import { z } from 'zod'; export const schema = z.object({ a: z.string() }); schema.parse({ a: '' });`],
  ['zod/mini alone', `import * as z from 'zod/mini'; export const schema = z.object({ a: z.string() }); schema.parse({ a: '' });`],
  ['Powertools logger alone', `import { Logger } from '@aws-lambda-powertools/logger'; export const logger = new Logger();`],
  ['Powertools tracer alone (X-Ray SDK)', `import { Tracer } from '@aws-lambda-powertools/tracer'; export const tracer = Tracer;`],
  ['Data API client (SDK, from node_modules)', `export * from '@aws-sdk/client-rds-data';`],
];

export async function run(): Promise<void> {
  section('cold start: each function as packaged, against an ioredis-only bundle');
  const work = await mkdtemp(join(tmpdir(), 'cold-start-'));
  try {
    const packageDir = process.env.COLD_START_PACKAGE_DIR ?? (await packageProd(join(work, 'package')));
    const bundles: Array<{ name: string; file: string; zipBytes?: number }> = [];
    for (const zipName of (await readdir(packageDir)).filter((file) => file.endsWith('.zip')).sort()) {
      const zipPath = join(packageDir, zipName);
      const zip = await JSZip.loadAsync(await readFile(zipPath));
      const dir = join(work, 'functions', zipName.replace(/\.zip$/, ''));
      let entry: string | undefined;
      for (const [path, file] of Object.entries(zip.files)) {
        if (file.dir) continue;
        await mkdir(dirname(join(dir, path)), { recursive: true });
        await writeFile(join(dir, path), await file.async('nodebuffer'));
        if (path.endsWith('.js')) entry = join(dir, path);
      }
      if (!entry) throw new Error(`${zipName} holds no .js bundle`);
      bundles.push({ name: zipName.replace(/\.zip$/, ''), file: entry, zipBytes: (await stat(zipPath)).size });
    }
    for (const [name, source] of references) {
      const file = join(work, 'references', `${bundles.length}.js`);
      await esbuild.build({ ...referenceOptions, stdin: { contents: source, resolveDir: projectRoot, loader: 'ts' }, outfile: file });
      bundles.push({ name, file });
    }

    // Round robin, so a burst of load on this shared machine hits every bundle alike.
    const samples = new Map<string, number[]>(bundles.map((bundle) => [bundle.file, []]));
    const sdk = new Map<string, boolean>();
    for (let run = 0; run < RUNS; run++) {
      for (const bundle of bundles) {
        const { ms, sdkLoaded } = await timeRequire(bundle.file);
        samples.get(bundle.file)!.push(ms);
        sdk.set(bundle.file, sdkLoaded);
      }
    }
    const measured: Measured[] = [];
    for (const bundle of bundles) {
      measured.push({
        name: bundle.name,
        zipBytes: bundle.zipBytes,
        bundleBytes: (await stat(bundle.file)).size,
        initMs: median(samples.get(bundle.file)!),
        sdkAtInit: sdk.get(bundle.file)!,
      });
    }
    const baseline = measured.find((m) => m.name.startsWith('ioredis alone'))!;
    for (const m of measured) {
      const zip = m.zipBytes === undefined ? '' : `zip ${kb(m.zipBytes)}${m.zipBytes > 150 * 1024 ? ' (over 150 KB)' : ''}  `;
      const ratio = m === baseline ? '' : `  (x${(m.initMs / baseline.initMs).toFixed(2)} vs ioredis alone)`;
      report(`init ${m.name}`, `${zip}bundle ${kb(m.bundleBytes)}  require p50 ${m.initMs.toFixed(1)} ms${ratio}${m.sdkAtInit ? '  loads the AWS SDK' : ''}`);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** `npm run package:prod` into `outDir`, building in a work folder of its own. */
async function packageProd(outDir: string): Promise<string> {
  const [, ...args] = packageJson.scripts['package:prod'].split(' ');
  const workFolder = join('.esbuild', `bench-${randomBytes(4).toString('hex')}`);
  try {
    await promisify(execFile)(process.execPath, [join(projectRoot, 'node_modules', 'serverless', 'bin', 'serverless.js'), ...args, '--package', outDir], {
      cwd: projectRoot,
      env: { ...process.env, ESBUILD_WORK_FOLDER: workFolder },
      maxBuffer: 16 * 1024 * 1024,
    });
  } finally {
    await rm(join(projectRoot, workFolder), { recursive: true, force: true });
  }
  return outDir;
}

/**
 * A fresh Node process requires `file` and reports how long that took. The
 * environment is what the prod stage sets (see serverless.yml), so config
 * validates as it would in Lambda; nothing connects at init.
 */
async function timeRequire(file: string): Promise<{ ms: number; sdkLoaded: boolean }> {
  const script = `
    const started = performance.now();
    require(${JSON.stringify(file)});
    const ms = performance.now() - started;
    const sdkLoaded = Object.keys(require.cache).some((path) => path.includes('@aws-sdk'));
    process.stdout.write(JSON.stringify({ ms, sdkLoaded }));
    process.exit(0);`;
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], {
    env: {
      PATH: process.env.PATH,
      // Where the Lambda runtime would provide the AWS SDK from.
      NODE_PATH: join(projectRoot, 'node_modules'),
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      AWS_REGION: 'ap-northeast-2',
      AWS_LAMBDA_FUNCTION_NAME: 'cold-start-bench',
      STAGE: 'prod',
      POWERTOOLS_LOG_LEVEL: 'WARN',
      REDIS_URL: 'rediss://placeholder.cache.amazonaws.com:6379',
      DB_RESOURCE_ARN: 'arn:aws:rds:ap-northeast-2:123456789012:cluster:placeholder',
      DB_SECRET_ARN: 'arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:placeholder-AbCdEf',
      DB_NAME: 'app',
      JWT_ISSUER: 'https://issuer.example.com',
      JWT_AUDIENCE: 'placeholder-audience',
      BUSINESS_TIMEZONE: 'Asia/Seoul',
    },
  });
  return JSON.parse(stdout) as { ms: number; sdkLoaded: boolean };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
