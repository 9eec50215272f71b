import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { NotFoundError } from '../lib/platform/errors';
import { httpHandler, type HttpResult } from '../lib/platform/http';

/**
 * GET /docs (stage local only, no token): Swagger UI rendering GET
 * /openapi.json, for people reading the API in a browser.
 *
 * The assets come from the installed swagger-ui-dist package, read from
 * node_modules at run time rather than bundled: swagger-ui-bundle.js alone
 * is about 1.8 MB, ten times a function's zip budget, and a page for
 * developers has no business in a deployed stack. serverless.yml declares
 * this function on stage local only, where node_modules is at hand; no CDN
 * is involved, so the page works offline.
 */

const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Likes, points and popular items: API reference</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });
  </script>
</body>
</html>
`;

// Resolved at run time from the bundle's location, which sits inside the project.
const assetDir = () => dirname(require.resolve('swagger-ui-dist/package.json'));
const loaded = new Map<string, Promise<string>>();

function asset(name: string): Promise<string> {
  let text = loaded.get(name);
  if (!text) {
    text = readFile(join(assetDir(), name), 'utf8');
    // A failed read is not kept: the next request tries again.
    text.catch(() => loaded.delete(name));
    loaded.set(name, text);
  }
  return text;
}

export const handler = httpHandler(async (event): Promise<HttpResult> => {
  const name = event.pathParameters?.asset;
  if (name === undefined) {
    return { statusCode: 200, headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' }, body: PAGE };
  }
  const type = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
  if (type === undefined) throw new NotFoundError(`no asset ${name} under /docs`);
  return { statusCode: 200, headers: { 'content-type': type, 'cache-control': 'public, max-age=3600' }, body: await asset(name) };
});
