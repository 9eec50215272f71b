import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { openApiDocument } from '../../lib/openapi/document';
import { projectRoot } from '../../local/env';

/**
 * docs/ stays in step with the code: the API reference names every route
 * the OpenAPI document describes, every relative link in the Markdown
 * resolves, every decision record the code links to exists, and each record
 * has its three parts.
 */

const read = (path: string) => readFileSync(join(projectRoot, path), 'utf8');
const METHODS = ['get', 'put', 'post', 'patch', 'delete'];
const DECISIONS = join(projectRoot, 'docs', 'decisions');

function trackedFiles(): string[] {
  return execFileSync('git', ['ls-files', '-z'], { cwd: projectRoot, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
    .split('\0')
    .filter((file) => file !== '' && existsSync(join(projectRoot, file)));
}

it('docs/api.md names every route of the OpenAPI document', () => {
  const reference = read('docs/api.md');
  const paths = (openApiDocument() as { paths: Record<string, Record<string, unknown>> }).paths;
  const routes = Object.entries(paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((key) => METHODS.includes(key))
      .map((method) => `${method.toUpperCase()} ${path}`),
  );
  expect(routes.length).toBeGreaterThanOrEqual(10);
  // Written in code spans, `GET /items/popular` or `GET /items/popular?days=3`.
  const missing = routes.filter((route) => !reference.includes(`\`${route}\``) && !reference.includes(`\`${route}?`));
  expect(missing).toEqual([]);
});

it('resolves every relative link of the Markdown files', () => {
  const markdown = trackedFiles().filter((file) => file.endsWith('.md'));
  expect(markdown).toEqual(expect.arrayContaining(['README.md', 'docs/api.md', 'docs/architecture.md']));
  const broken: string[] = [];
  for (const file of markdown) {
    for (const [, target] of read(file).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^(https?:|mailto:|#)/.test(target!)) continue;
      const path = target!.split('#')[0]!;
      if (!existsSync(resolve(projectRoot, dirname(file), path))) broken.push(`${file}: ${target}`);
    }
  }
  expect(broken).toEqual([]);
});

it('has every decision record the code or the docs link to', () => {
  const missing: string[] = [];
  for (const file of trackedFiles()) {
    if (/\.(png|svg|json)$/.test(file) || file === 'package-lock.json') continue;
    for (const [record] of read(file).matchAll(/docs\/decisions\/\d{3}-[a-z0-9-]+\.md/g)) {
      if (!existsSync(join(projectRoot, record))) missing.push(`${file}: ${record}`);
    }
  }
  expect(missing).toEqual([]);
});

it('numbers each decision record once, with its context, decision and consequences', () => {
  const records = readdirSync(DECISIONS).filter((name) => name.endsWith('.md'));
  expect(records.length).toBeGreaterThanOrEqual(9);
  const numbers = records.map((name) => /^(\d{3})-[a-z0-9-]+\.md$/.exec(name)?.[1]);
  expect(numbers.filter((number) => number === undefined)).toEqual([]);
  expect(new Set(numbers).size).toBe(records.length);
  for (const name of records) {
    const text = readFileSync(join(DECISIONS, name), 'utf8');
    const parts = ['Context', 'Decision', 'Consequences'].filter((part) => !new RegExp(`^#{2,3} +${part}\\b`, 'im').test(text));
    expect({ name, missing: parts }).toEqual({ name, missing: [] });
  }
});
