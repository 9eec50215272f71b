import Ajv2020 from 'ajv/dist/2020';
import { useOfflineStack } from '../support/offline';
import { insertItem, insertUser } from '../support/points';

/**
 * GET /openapi.json against the live stack: every answer below, successes and
 * problems alike, must match the response the served document declares for
 * its route, status and content type (JSON Schema 2020-12, as OpenAPI 3.1
 * has it). The document is lib/openapi's; a field added to an answer but not
 * to the document fails here, since its objects are closed.
 */

const { database: t, request } = useOfflineStack();

interface Operation {
  responses: Record<string, { content?: Record<string, { schema: object }>; headers?: Record<string, unknown> }>;
}
let document: { openapi: string; paths: Record<string, Record<string, Operation>>; components: object };
let ajv: Ajv2020;
const checked = new Set<string>();
const usedSchemas = new Set<string>();

beforeAll(async () => {
  const served = await request('GET', '/openapi.json');
  expect(served).toMatchObject({ status: 200, type: expect.stringContaining('application/json') });
  document = served.body as typeof document;
  // strict: false, as the document (not a schema) holds the schemas under components.
  ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addSchema({ $id: 'openapi.json', components: document.components });
});

/** Asserts the answer is what the document says `METHOD path` answers with this status. */
function expectDocumented(method: string, path: string, answer: { status: number; type: string | null; body: unknown }): void {
  const operation = document.paths[path]?.[method.toLowerCase()];
  expect({ route: `${method} ${path}`, documented: operation !== undefined }).toEqual({ route: `${method} ${path}`, documented: true });
  const response = operation!.responses[String(answer.status)];
  expect({ route: `${method} ${path}`, status: answer.status, documented: response !== undefined }).toEqual({
    route: `${method} ${path}`,
    status: answer.status,
    documented: true,
  });
  const mediaType = (answer.type ?? '').split(';')[0]!.trim();
  const content = response!.content?.[mediaType];
  expect({ status: answer.status, mediaType, documented: content !== undefined }).toEqual({ status: answer.status, mediaType, documented: true });
  // Local $refs point into the document, which ajv holds as openapi.json.
  const schema = JSON.parse(JSON.stringify(content!.schema).replace(/"#\/components\//g, '"openapi.json#/components/'));
  const valid = ajv.validate(schema, answer.body);
  expect({ route: `${method} ${path}`, status: answer.status, body: answer.body, errors: valid ? null : ajv.errors }).toEqual({
    route: `${method} ${path}`,
    status: answer.status,
    body: answer.body,
    errors: null,
  });
  checked.add(`${method} ${path} ${answer.status}`);
  const named = /#\/components\/schemas\/(\w+)/.exec(JSON.stringify(content!.schema));
  if (named) usedSchemas.add(named[1]!);
}

async function call(method: string, template: string, concrete: string, userId?: number, body?: object, headers: Record<string, string> = {}) {
  const answer = await request(method, concrete, userId, { body, headers });
  expectDocumented(method, template, answer);
  return answer;
}

it('serves a 3.1 document', () => {
  expect(document.openapi).toBe('3.1.0');
});

it('answers the likes routes as documented', async () => {
  await insertUser(t.pg, 71, 0);
  await t.pg.query('INSERT INTO posts (id, author_id, title) VALUES (710, 71, $1)', ['documented']);
  const likes = '/posts/{postId}/likes';
  expect((await call('POST', likes, '/posts/710/likes', 72)).body).toMatchObject({ liked: true, changed: true });
  await call('GET', likes, '/posts/710/likes', 72);
  await call('GET', '/users/{userId}/received-likes', '/users/71/received-likes', 72);
  expect((await call('DELETE', likes, '/posts/710/likes', 72)).body).toMatchObject({ liked: false, changed: true });
  await call('POST', likes, '/posts/999999/likes', 72); // 404
  await call('GET', likes, '/posts/01/likes', 72); // 400
  await call('DELETE', likes, '/posts/710/likes'); // 401
});

it('answers the points routes as documented, problems with their instance', async () => {
  await insertUser(t.pg, 73, 1000);
  await insertItem(t.pg, 730, 300, 2);
  await call('GET', '/points', '/points', 73);
  await call('GET', '/points', '/points', 7399); // 404: no users row
  await call('POST', '/points/charge', '/points/charge', 73, { amount: 500 }, { 'idempotency-key': 'doc-1' });
  await call('POST', '/points/charge', '/points/charge', 73, { amount: 500 }, { 'idempotency-key': 'doc-1' }); // replay
  await call('POST', '/points/charge', '/points/charge', 73, { amount: 501 }, { 'idempotency-key': 'doc-1' }); // 422
  const invalid = await call('POST', '/points/charge', '/points/charge', 73, { amount: 0 }); // 400
  expect(invalid.body).toMatchObject({ code: 'VALIDATION_ERROR', instance: expect.any(String) });
  expect((await call('POST', '/orders', '/orders', 73, { items: [{ itemId: 730, quantity: 2 }] })).status).toBe(201);
  await call('POST', '/orders', '/orders', 73, { items: [{ itemId: 730, quantity: 1 }] }); // 409 OUT_OF_STOCK
  await call('POST', '/orders', '/orders', 73, { items: [{ itemId: 739, quantity: 1 }] }); // 404
});

it('answers queued point requests as documented: 202, then PENDING or the outcome', async () => {
  await insertUser(t.pg, 75, 0);
  const accepted = await call('POST', '/points/charge', '/points/charge', 75, { amount: 5 }, { prefer: 'respond-async' });
  const { requestId } = accepted.body as { requestId: string };
  const status = '/points/requests/{requestId}';
  for (let answer = await call('GET', status, `/points/requests/${requestId}`, 75); (answer.body as { status: string }).status === 'PENDING'; ) {
    await new Promise((done) => setTimeout(done, 50));
    answer = await call('GET', status, `/points/requests/${requestId}`, 75);
  }
  await call('POST', '/orders', '/orders', 75, { items: [{ itemId: 1, quantity: 1 }] }, { prefer: 'respond-async' });
  await call('GET', status, '/points/requests/never-accepted', 75); // 404
  await call('GET', status, '/points/requests/not.an.id', 75); // 400
});

it('answers popular and trending items, health and the document itself as documented', async () => {
  await insertItem(t.pg, 740, 1000, 10);
  await t.pg.query(
    `WITH o AS (INSERT INTO orders (user_id, status, total_amount, created_at)
                VALUES (74, 'PAID', 3000, now() - interval '1 day') RETURNING id)
     INSERT INTO order_items (order_id, item_id, quantity, unit_price) SELECT id, 740, 3, 1000 FROM o`,
  );
  const popular = await call('GET', '/items/popular', '/items/popular?days=2&limit=3', 74);
  expect((popular.body as { items: unknown[] }).items.length).toBeGreaterThan(0);
  await call('GET', '/items/popular', '/items/popular?days=0', 74); // 400
  await call('GET', '/items/trending', '/items/trending?minutes=5&limit=3', 74);
  await call('GET', '/items/trending', '/items/trending?minutes=0', 74); // 400
  await call('GET', '/health', '/health');
  await call('GET', '/openapi.json', '/openapi.json');
});

afterAll(() => {
  // Guards the guard: the answers above did go through expectDocumented,
  // one per documented (route, status) pair they exercise.
  expect(checked.size).toBeGreaterThanOrEqual(19);
  // Every response shape the document declares met a live answer, except the
  // API Gateway authorizer's own 401 body, which only AWS sends.
  const responseSchemas = Object.keys((document.components as { schemas: object }).schemas).filter((name) => !/Request$/.test(name));
  expect([...usedSchemas].sort()).toEqual(responseSchemas.filter((name) => name !== 'GatewayUnauthorized').sort());
});
