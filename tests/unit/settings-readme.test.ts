import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { declaredSchemas } from '../../lib/platform/config';

const lib = join(__dirname, '../../lib');
// Every feature's settings module, wherever it sits: each declares its schema when loaded.
const settingsModules = readdirSync(lib, { recursive: true }).map(String).filter((file) => /(^|\/)settings\.ts$/.test(file));
// eslint-disable-next-line @typescript-eslint/no-require-imports
for (const file of settingsModules) require(join(lib, file));

/**
 * Every variable of every settings schema (the platform's and each
 * feature's) has a row in the README's settings table, and the table names
 * none that no schema reads.
 */
it("lists every variable of every settings schema in the README's Configuration table", () => {
  const readme = readFileSync(join(__dirname, '../../README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Configuration\n'));
  const table = section.slice(0, section.indexOf('\n## ', 1));
  const listed = new Set(
    table
      .split('\n')
      .filter((line) => line.startsWith('| `'))
      .flatMap((line) => [...line.split('|')[1]!.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((match) => match[1]!)),
  );
  expect(settingsModules.length).toBeGreaterThan(0);
  const declared = declaredSchemas().flatMap((schema) => Object.keys(schema.shape));
  expect(declared.length).toBeGreaterThan(40);
  expect(declared.filter((name) => !listed.has(name))).toEqual([]);
  expect([...listed].filter((name) => !declared.includes(name))).toEqual([]);
});
