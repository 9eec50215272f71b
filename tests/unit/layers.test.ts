import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { projectRoot } from '../../local/env';

/**
 * Arrows only point down: functions -> lib/<feature> -> lib/platform. Nothing
 * under lib/ imports a handler from functions/ (which would also run a
 * handler's module code, and its settings check, wherever lib is used).
 */

const lib = join(projectRoot, 'lib');
const functions = join(projectRoot, 'functions');

/** Every relative module specifier of a file: import/export ... from, import(), require(). */
const specifiers = (source: string) =>
  [...source.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]*)['"]/gm)].map((match) => match[1]!);

function upwardImports(): string[] {
  const files = readdirSync(lib, { recursive: true })
    .map(String)
    .filter((file) => file.endsWith('.ts'));
  expect(files.length).toBeGreaterThan(20);
  return files.flatMap((file) => {
    const path = join(lib, file);
    return specifiers(readFileSync(path, 'utf8'))
      .filter((specifier) => {
        const target = resolve(dirname(path), specifier);
        return target === functions || target.startsWith(functions + sep);
      })
      .map((specifier) => `${relative(projectRoot, path)} imports ${specifier}`);
  });
}

it('finds the imports it checks', () => {
  expect(specifiers(`import { a } from '../../functions/x';\nconst b = require('./y');\nawait import('../z');`)).toEqual(['../../functions/x', './y', '../z']);
});

it('has no module under lib/ that imports from functions/', () => {
  expect(upwardImports()).toEqual([]);
});
