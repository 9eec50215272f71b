/**
 * npm run openapi: writes lib/openapi/openapi.json, the document GET
 * /openapi.json serves, from lib/openapi/document.ts (built from the
 * handlers' own schemas). Run it after changing a route or a schema and
 * commit the file; tests/unit/openapi.test.ts fails while it is not current.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadLuaAsText, projectRoot } from './env';

export const OPENAPI_FILE = join(projectRoot, 'lib', 'openapi', 'openapi.json');

/** The file's text for a document: what `npm run openapi` writes and the unit test expects. */
export function openApiText(document: unknown): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}

async function main(): Promise<void> {
  // The schemas' modules import Lua scripts and SQL statements (bundled as text).
  loadLuaAsText();
  const { openApiDocument } = await import('../lib/openapi/document');
  const text = openApiText(openApiDocument());
  const before = readFileSync(OPENAPI_FILE, 'utf8');
  const name = relative(projectRoot, OPENAPI_FILE);
  if (before === text) {
    console.log(`${name} is current`);
    return;
  }
  writeFileSync(OPENAPI_FILE, text);
  console.log(`wrote ${name}`);
}

if (require.main === module) {
  main().catch((error: Error) => {
    console.error(error);
    process.exitCode = 1;
  });
}
