import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  BatchExecuteStatementCommand,
  BeginTransactionCommand,
  CommitTransactionCommand,
  ExecuteStatementCommand,
  RDSDataClient,
  RollbackTransactionCommand,
  type ExecuteStatementCommandInput,
  type SqlParameter,
} from '@aws-sdk/client-rds-data';
import { Client } from 'pg';
import { startDataApi, type DataApiServer } from '../../local/data-api/server';

/**
 * The local Data API endpoint, driven by the production client
 * (@aws-sdk/client-rds-data) and, where the wire itself matters, by fetch.
 * Needs a PostgreSQL server (trust auth); makes and drops its own databases.
 */

jest.setTimeout(30_000);

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ARNS = {
  resourceArn: 'arn:aws:rds:us-east-1:000000000000:cluster:local',
  secretArn: 'arn:aws:secretsmanager:us-east-1:000000000000:secret:local',
};

const suffix = randomBytes(4).toString('hex');
const database = `dataapi_${suffix}`;
const otherDatabase = `dataapi_${suffix}_other`;

function clientFor(server: { url: string }): RDSDataClient {
  return new RDSDataClient({
    endpoint: server.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    maxAttempts: 1,
  });
}

async function admin<T>(fn: (pg: Client) => Promise<T>): Promise<T> {
  const pg = new Client({ connectionString: DATABASE_URL });
  await pg.connect();
  try {
    return await fn(pg);
  } finally {
    await pg.end();
  }
}

/** The error a promise rejects with (fails the test if it resolves). */
async function failure(promise: Promise<unknown>): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the call to fail');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let server: DataApiServer;
let client: RDSDataClient;

const exec = (sql: string, parameters?: SqlParameter[], extra: Partial<ExecuteStatementCommandInput> = {}) =>
  client.send(new ExecuteStatementCommand({ ...ARNS, database, sql, parameters, ...extra }));
const begin = async (db = database) => (await client.send(new BeginTransactionCommand({ ...ARNS, database: db }))).transactionId!;
const commit = (transactionId: string) => client.send(new CommitTransactionCommand({ ...ARNS, transactionId }));
const rollback = (transactionId: string) => client.send(new RollbackTransactionCommand({ ...ARNS, transactionId }));

/** A call as raw HTTP, to see exactly what goes over the wire. */
async function post(operation: string, body: string | object, target: { url: string } = server) {
  const res = await fetch(`${target.url}/${operation}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify({ ...ARNS, database, ...body }),
  });
  return { status: res.status, type: res.headers.get('x-amzn-errortype'), contentType: res.headers.get('content-type'), text: await res.text() };
}

beforeAll(async () => {
  await admin(async (pg) => {
    await pg.query(`CREATE DATABASE ${database}`);
    await pg.query(`CREATE DATABASE ${otherDatabase}`);
  });
  server = await startDataApi({ databaseUrl: DATABASE_URL, port: 0 });
  client = clientFor(server);
});

afterAll(async () => {
  client?.destroy();
  await server?.close();
  await admin(async (pg) => {
    await pg.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await pg.query(`DROP DATABASE IF EXISTS ${otherDatabase} WITH (FORCE)`);
  });
});

describe('parameters', () => {
  it('binds every value kind with the type AWS binds it as', async () => {
    const { records } = await exec(
      `SELECT :l AS l, pg_typeof(:l)::text, :d AS d, pg_typeof(:d)::text, :s AS s, pg_typeof(:s)::text,
              :b AS b, pg_typeof(:b)::text, coalesce(:nothing, 'untyped null') AS nothing, :blob AS blob, pg_typeof(:blob)::text`,
      [
        { name: 'l', value: { longValue: -42 } },
        { name: 'd', value: { doubleValue: 2.5 } },
        { name: 's', value: { stringValue: "it's" } },
        { name: 'b', value: { booleanValue: true } },
        { name: 'nothing', value: { isNull: true } },
        { name: 'blob', value: { blobValue: Buffer.from([0, 1, 255]) } },
      ],
    );
    expect(records).toEqual([
      [
        { longValue: -42 },
        { stringValue: 'bigint' },
        { doubleValue: 2.5 },
        { stringValue: 'double precision' },
        { stringValue: "it's" },
        { stringValue: 'character varying' },
        { booleanValue: true },
        { stringValue: 'boolean' },
        { stringValue: 'untyped null' },
        { blobValue: new Uint8Array([0, 1, 255]) },
        { stringValue: 'bytea' },
      ],
    ]);
  });

  it('casts by typeHint', async () => {
    const hinted = (name: string, stringValue: string, typeHint: SqlParameter['typeHint']): SqlParameter => ({
      name,
      value: { stringValue },
      typeHint,
    });
    const { records } = await exec(
      `SELECT :date + 1 AS date, pg_typeof(:time)::text, :ts + interval '1 second' AS ts, :dec * 2 AS dec,
              :uuid AS uuid, pg_typeof(:uuid)::text, :json -> 'a' AS json, pg_typeof(:json)::text`,
      [
        hinted('date', '2024-02-28', 'DATE'),
        hinted('time', '12:34:56', 'TIME'),
        hinted('ts', '2024-01-01 23:59:59.5', 'TIMESTAMP'),
        hinted('dec', '12345678901234567890.5', 'DECIMAL'),
        hinted('uuid', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'UUID'),
        hinted('json', '{"a": [1, 2]}', 'JSON'),
      ],
    );
    expect(records).toEqual([
      [
        { stringValue: '2024-02-29' },
        { stringValue: 'time without time zone' },
        { stringValue: '2024-01-02 00:00:00.5' },
        { stringValue: '24691357802469135781.0' },
        { stringValue: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' },
        { stringValue: 'uuid' },
        { stringValue: '[1, 2]' },
        { stringValue: 'jsonb' },
      ],
    ]);
  });

  it('rewrites only real placeholders: same name, same slot; casts, literals, identifiers and comments untouched', async () => {
    const sql = `
      SELECT :x = :x AS same, :x::text AS cast, ':x' AS literal, 'it''s :x' AS escaped, E'\\' :x' AS e_string,
             $$ :x $$ AS dollar, $tag$ :x $tag$ AS tagged, 1 AS ":x" -- :y
             /* :y /* nested :y */ :y */`;
    const { records, columnMetadata } = await exec(sql, [{ name: 'x', value: { longValue: 7 } }], { includeResultMetadata: true });
    expect(records).toEqual([
      [
        { booleanValue: true },
        { stringValue: '7' },
        { stringValue: ':x' },
        { stringValue: "it's :x" },
        { stringValue: "' :x" },
        { stringValue: ' :x ' },
        { stringValue: ' :x ' },
        { longValue: 1 },
      ],
    ]);
    expect(columnMetadata?.[7]?.label).toBe(':x');
  });

  it('refuses a missing parameter and array parameters with BadRequestException', async () => {
    const missing = await failure(exec('SELECT :absent'));
    expect(missing.name).toBe('BadRequestException');
    expect(missing.message).toContain('absent');
    const array = await failure(exec('SELECT :a', [{ name: 'a', value: { arrayValue: { longValues: [1] } } }]));
    expect(array.name).toBe('BadRequestException');
    expect(array.message).toBe('Array parameters are not supported.');
  });

  it('sends a string without typeHint as varchar, so PostgreSQL rejects it for a uuid column as on AWS', async () => {
    await exec('CREATE TABLE typed (id uuid)');
    const error = await failure(exec('INSERT INTO typed VALUES (:id)', [{ name: 'id', value: { stringValue: randomUUID() } }]));
    expect(error.name).toBe('DatabaseErrorException');
    expect(error.message).toContain('column "id" is of type uuid but expression is of type character varying');
    const ok = await exec('INSERT INTO typed VALUES (:id)', [{ name: 'id', value: { stringValue: randomUUID() }, typeHint: 'UUID' }]);
    expect(ok.numberOfRecordsUpdated).toBe(1);
  });
});

describe('results', () => {
  beforeAll(async () => {
    await exec(`
      CREATE TABLE kinds (
        i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, num numeric(10,3), b bool, t text, vc varchar(10), ch char(3),
        by bytea, ts timestamp, tstz timestamptz, d date, tm time, j json, jb jsonb, u uuid,
        ia int8[], ta text[], fa float8[], ba bool[], nested int4[], nothing text)`);
    await exec(`
      INSERT INTO kinds VALUES (
        -2, 4, 8, 1.5, -0.25, 12.34, true, 'text', 'varchar', 'ab', '\\x0102ff',
        '2024-02-03 04:05:06.789', '2024-02-03 04:05:06.123456+02', '2024-02-29', '23:59:59.5',
        '{"a": [1,2]}', '{"b": null, "a": 1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        '{1,NULL,9223372036854775807}', '{"a b","c\\"d",NULL}', '{1.5,-2}', '{t,f}', '{{1,2},{3,4}}', NULL)`);
  });

  it('maps every column type to its Data API field', async () => {
    const { records, numberOfRecordsUpdated } = await exec('SELECT * FROM kinds');
    expect(numberOfRecordsUpdated).toBe(0);
    expect(records).toEqual([
      [
        { longValue: -2 },
        { longValue: 4 },
        { longValue: 8 },
        { doubleValue: 1.5 },
        { doubleValue: -0.25 },
        { stringValue: '12.340' },
        { booleanValue: true },
        { stringValue: 'text' },
        { stringValue: 'varchar' },
        { stringValue: 'ab ' },
        { blobValue: new Uint8Array([1, 2, 255]) },
        { stringValue: '2024-02-03 04:05:06.789' },
        { stringValue: '2024-02-03 02:05:06.123456' },
        { stringValue: '2024-02-29' },
        { stringValue: '23:59:59.5' },
        { stringValue: '{"a": [1,2]}' },
        { stringValue: '{"a": 1, "b": null}' },
        { stringValue: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' },
        { arrayValue: { longValues: [1, null, 9223372036854775807] } },
        { arrayValue: { stringValues: ['a b', 'c"d', null] } },
        { arrayValue: { doubleValues: [1.5, -2] } },
        { arrayValue: { booleanValues: [true, false] } },
        { arrayValue: { arrayValues: [{ longValues: [1, 2] }, { longValues: [3, 4] }] } },
        { isNull: true },
      ],
    ]);
  });

  it('shows timestamptz in UTC whatever the session time zone', async () => {
    const tx = await begin();
    await exec("SET LOCAL TIME ZONE 'Asia/Kolkata'", undefined, { transactionId: tx });
    const { records } = await exec('SELECT tstz, tstz::text FROM kinds', undefined, { transactionId: tx });
    await rollback(tx);
    expect(records).toEqual([[{ stringValue: '2024-02-03 02:05:06.123456' }, { stringValue: '2024-02-03 07:35:06.123456+05:30' }]]);
  });

  it('formats records as JSON when asked, numbers as numbers and everything else as strings', async () => {
    const response = await exec('SELECT i8, f8, num, b, t, by, tstz, jb, ia, nothing, i4 AS "label" FROM kinds', undefined, {
      formatRecordsAs: 'JSON',
    });
    expect(response.records).toBeUndefined();
    expect(JSON.parse(response.formattedRecords!)).toEqual([
      {
        i8: 8,
        f8: -0.25,
        num: '12.340',
        b: true,
        t: 'text',
        by: 'AQL/',
        tstz: '2024-02-03 02:05:06.123456',
        jb: '{"a": 1, "b": null}',
        ia: [1, null, 9223372036854775807],
        nothing: null,
        label: 4,
      },
    ]);
  });

  it('returns columnMetadata when includeResultMetadata is set', async () => {
    await exec('CREATE TABLE described (id serial PRIMARY KEY, name varchar(20), amount numeric(12,2) NOT NULL)');
    const { columnMetadata } = await exec('SELECT id, name AS title, amount, now() AS at FROM described', undefined, {
      includeResultMetadata: true,
    });
    expect(columnMetadata).toEqual([
      expect.objectContaining({ name: 'id', label: 'id', typeName: 'serial', type: 4, tableName: 'described', nullable: 0, isAutoIncrement: true }),
      expect.objectContaining({ name: 'title', label: 'title', typeName: 'varchar', type: 12, precision: 20, nullable: 1 }),
      expect.objectContaining({ name: 'amount', typeName: 'numeric', type: 2, precision: 12, scale: 2, nullable: 0 }),
      expect.objectContaining({ name: 'at', typeName: 'timestamptz', type: 93, tableName: '' }),
    ]);
  });
});

describe('64-bit integers', () => {
  it('writes bigint digits verbatim on the wire; the SDK reads them as JS numbers, as against AWS', async () => {
    const sql = 'SELECT 9223372036854775807::int8 AS max, 9007199254740991::int8 AS safe, (-9223372036854775808)::int8 AS min';
    const wire = await post('Execute', { sql });
    expect(wire.status).toBe(200);
    expect(wire.contentType).toBe('application/json');
    expect(wire.text).toContain('{"longValue":9223372036854775807}');
    expect(wire.text).toContain('{"longValue":-9223372036854775808}');

    const { records } = await exec(sql);
    expect(records![0]![1]).toEqual({ longValue: Number.MAX_SAFE_INTEGER });
    expect(records![0]![0]!.longValue).toBe(Number('9223372036854775807'));

    const json = await post('Execute', { sql, formatRecordsAs: 'JSON' });
    expect(JSON.parse(json.text).formattedRecords).toBe(
      '[{"max":9223372036854775807,"safe":9007199254740991,"min":-9223372036854775808}]',
    );
  });

  it('takes a longValue parameter with all its digits from a raw request', async () => {
    const body = `{"resourceArn":"r","secretArn":"s","database":"${database}","sql":"SELECT :n - 1 AS n",
      "parameters":[{"name":"n","value":{"longValue":9223372036854775807}}]}`;
    const wire = await post('Execute', body);
    expect(wire.text).toContain('{"longValue":9223372036854775806}');
  });

  it('passes 2^53-1 through the SDK both ways', async () => {
    const { records } = await exec('SELECT :n::int8 + 0 AS n', [{ name: 'n', value: { longValue: Number.MAX_SAFE_INTEGER } }]);
    expect(records).toEqual([[{ longValue: Number.MAX_SAFE_INTEGER }]]);
  });
});

describe('writes', () => {
  beforeAll(() => exec('CREATE TABLE items (id int8 PRIMARY KEY, name text NOT NULL)'));

  it('reports numberOfRecordsUpdated for INSERT, UPDATE and DELETE, and an empty generatedFields', async () => {
    const insert = await exec("INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')");
    expect(insert.numberOfRecordsUpdated).toBe(3);
    expect(insert.generatedFields).toEqual([]);
    expect(insert.records).toBeUndefined();
    expect((await exec("UPDATE items SET name = name || '!' WHERE id >= 2")).numberOfRecordsUpdated).toBe(2);
    expect((await exec('DELETE FROM items WHERE id = 3')).numberOfRecordsUpdated).toBe(1);
    expect((await exec('DELETE FROM items WHERE id = 3')).numberOfRecordsUpdated).toBe(0);
  });

  it('returns RETURNING rows as records, with numberOfRecordsUpdated 0 as AWS does', async () => {
    const response = await exec("INSERT INTO items VALUES (10, 'x') RETURNING id, name", undefined);
    expect(response.records).toEqual([[{ longValue: 10 }, { stringValue: 'x' }]]);
    expect(response.numberOfRecordsUpdated).toBe(0);
    const updated = await exec("UPDATE items SET name = 'y' WHERE id = 10 RETURNING name", undefined, { formatRecordsAs: 'JSON' });
    expect(JSON.parse(updated.formattedRecords!)).toEqual([{ name: 'y' }]);
  });

  it('answers SQL errors with DatabaseErrorException and the SQLSTATE in the message', async () => {
    const error = await failure(exec("INSERT INTO items VALUES (1, 'dup')"));
    expect(error.name).toBe('DatabaseErrorException');
    expect(error.$metadata?.httpStatusCode).toBe(400);
    expect(error.message).toBe(
      'ERROR: duplicate key value violates unique constraint "items_pkey"; Detail: Key (id)=(1) already exists.; SQLState: 23505',
    );
    const wire = await post('Execute', { sql: 'SELECT * FROM missing_table' });
    expect(wire).toMatchObject({ status: 400, type: 'DatabaseErrorException', contentType: 'application/json' });
    expect(JSON.parse(wire.text)).toEqual({ message: 'ERROR: relation "missing_table" does not exist; Position: 15; SQLState: 42P01' });
  });
});

describe('transactions', () => {
  beforeAll(() => exec('CREATE TABLE ledger (id int8 PRIMARY KEY, note text)'));

  const count = async (transactionId?: string) =>
    (await exec('SELECT count(*) FROM ledger', undefined, { transactionId })).records![0]![0]!.longValue;

  it('commits: invisible outside until committed, then visible', async () => {
    const tx = await begin();
    expect(tx.length).toBeGreaterThan(20);
    await exec("INSERT INTO ledger VALUES (1, 'committed')", undefined, { transactionId: tx });
    expect(await count(tx)).toBe(1);
    expect(await count()).toBe(0);
    expect((await commit(tx)).transactionStatus).toBe('Transaction Committed');
    expect(await count()).toBe(1);
  });

  it('rolls back, and forgets the transaction once it is finished', async () => {
    const tx = await begin();
    await exec("INSERT INTO ledger VALUES (2, 'rolled back')", undefined, { transactionId: tx });
    expect((await rollback(tx)).transactionStatus).toBe('Rollback Complete');
    expect(await count()).toBe(1);
    const again = await failure(exec('SELECT 1', undefined, { transactionId: tx }));
    expect(again.name).toBe('BadRequestException');
    expect(again.message).toBe(`Transaction ${tx} is not found`);
    expect((await failure(commit(tx))).name).toBe('BadRequestException');
  });

  it('refuses an unknown transaction id with BadRequestException', async () => {
    expect((await failure(exec('SELECT 1', undefined, { transactionId: 'no-such-transaction' }))).name).toBe('BadRequestException');
    expect((await failure(rollback('no-such-transaction'))).name).toBe('BadRequestException');
  });

  it('keeps a transaction aborted after a failed statement until it is rolled back', async () => {
    const tx = await begin();
    await exec("INSERT INTO ledger VALUES (3, 'lost')", undefined, { transactionId: tx });
    expect((await failure(exec('SELECT 1 / 0', undefined, { transactionId: tx }))).message).toContain('SQLState: 22012');
    const aborted = await failure(exec('SELECT 1', undefined, { transactionId: tx }));
    expect(aborted.name).toBe('DatabaseErrorException');
    expect(aborted.message).toContain('current transaction is aborted');
    // COMMIT of an aborted transaction is a rollback in PostgreSQL, reported without error.
    expect((await commit(tx)).transactionStatus).toBe('Transaction Committed');
    expect(await count()).toBe(1);
  });

  it('refuses a second call while one runs in the same transaction', async () => {
    const tx = await begin();
    const slow = exec('SELECT pg_sleep(0.3)', undefined, { transactionId: tx });
    await sleep(50);
    const concurrent = await failure(exec('SELECT 1', undefined, { transactionId: tx }));
    expect(concurrent.name).toBe('DatabaseErrorException');
    expect(concurrent.message).toBe('Transaction is still running a query');
    await slow;
    await rollback(tx);
  });

  it('rolls back and forgets a transaction idle for idleTimeoutMs; calls keep it alive', async () => {
    const quick = await startDataApi({ databaseUrl: DATABASE_URL, idleTimeoutMs: 300 });
    const quickClient = clientFor(quick);
    try {
      const tx = (await quickClient.send(new BeginTransactionCommand({ ...ARNS, database }))).transactionId!;
      const insert = (id: number) =>
        quickClient.send(new ExecuteStatementCommand({ ...ARNS, database, transactionId: tx, sql: `INSERT INTO ledger VALUES (${id}, 'idle')` }));
      for (const id of [100, 101, 102]) {
        await insert(id);
        await sleep(150); // each call restarts the idle clock
      }
      await sleep(400);
      const expired = await failure(insert(103));
      expect(expired.name).toBe('BadRequestException');
      expect(expired.message).toContain('is not found');
      expect(await count()).toBe(1);
    } finally {
      quickClient.destroy();
      await quick.close();
    }
  });
});

describe('BatchExecute', () => {
  beforeAll(() => exec('CREATE TABLE batch (id int8 PRIMARY KEY, label text)'));

  const sets = (...ids: number[]): SqlParameter[][] =>
    ids.map((id) => [
      { name: 'id', value: { longValue: id } },
      { name: 'label', value: { stringValue: `row ${id}` } },
    ]);
  const batch = (parameterSets: SqlParameter[][], transactionId?: string) =>
    client.send(
      new BatchExecuteStatementCommand({ ...ARNS, database, sql: 'INSERT INTO batch VALUES (:id, :label)', parameterSets, transactionId }),
    );
  const ids = async () => (await exec('SELECT id FROM batch ORDER BY id')).records!.map((r) => r[0]!.longValue);

  it('runs the statement once per parameter set', async () => {
    const { updateResults } = await batch(sets(1, 2, 3));
    expect(updateResults).toEqual([{ generatedFields: [] }, { generatedFields: [] }, { generatedFields: [] }]);
    expect(await ids()).toEqual([1, 2, 3]);
  });

  it('is all or nothing outside a transaction', async () => {
    const error = await failure(batch(sets(4, 1, 5)));
    expect(error.name).toBe('DatabaseErrorException');
    expect(await ids()).toEqual([1, 2, 3]);
  });

  it('runs inside the given transaction', async () => {
    const tx = await begin();
    await batch(sets(6, 7), tx);
    expect(await ids()).toEqual([1, 2, 3]);
    await rollback(tx);
    expect(await ids()).toEqual([1, 2, 3]);
  });
});

describe('the database field', () => {
  it('selects the database on the server, for statements and transactions', async () => {
    await exec('CREATE TABLE only_there (v text)', undefined, { database: otherDatabase });
    await exec("INSERT INTO only_there VALUES ('other')", undefined, { database: otherDatabase });
    expect((await exec('SELECT current_database()')).records).toEqual([[{ stringValue: database }]]);
    expect((await exec('SELECT v FROM only_there', undefined, { database: otherDatabase })).records).toEqual([[{ stringValue: 'other' }]]);
    expect((await failure(exec('SELECT v FROM only_there'))).message).toContain('does not exist');

    const tx = await begin(otherDatabase);
    const { records } = await exec('SELECT current_database()', undefined, { transactionId: tx, database: otherDatabase });
    await commit(tx);
    expect(records).toEqual([[{ stringValue: otherDatabase }]]);
  });
});

describe('protocol errors', () => {
  it('answers an unknown path with UnknownOperationException and bad JSON with BadRequestException', async () => {
    expect(await post('ExecuteSql', {})).toMatchObject({ status: 404, type: 'UnknownOperationException' });
    expect(await post('Execute', '{not json')).toMatchObject({ status: 400, type: 'BadRequestException' });
    expect(await post('Execute', { sql: '' })).toMatchObject({ status: 400, type: 'BadRequestException' });
  });

  it('reports an unreachable database as DatabaseUnavailableException', async () => {
    const url = new URL(DATABASE_URL);
    url.port = '1';
    const unreachable = await startDataApi({ databaseUrl: url.toString() });
    const unreachableClient = clientFor(unreachable);
    try {
      const error = await failure(unreachableClient.send(new ExecuteStatementCommand({ ...ARNS, sql: 'SELECT 1' })));
      expect(error.name).toBe('DatabaseUnavailableException');
    } finally {
      unreachableClient.destroy();
      await unreachable.close();
    }
  });
});

describe('PGlite backend', () => {
  // PGlite loads parts of itself with import(), which jest's module sandbox
  // refuses; so this endpoint runs in its own process, through the CLI entry.
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'data-api-pglite-'));
  });
  afterAll(() => rm(dataDir, { recursive: true, force: true }));

  async function startCli(): Promise<{ url: string; stop(): Promise<void> }> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'local/data-api/main.ts'], {
      cwd: path.resolve(__dirname, '../..'),
      env: { ...process.env, DATABASE_URL: '', DATA_API_DATA_DIR: path.join(dataDir, 'db'), DATA_API_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const url = await new Promise<string>((resolve, reject) => {
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        const line = /^(http:\/\/\S+)$/m.exec(stdout);
        if (line) resolve(line[1]!);
      });
      void exited.then((code) => reject(new Error(`data api exited (${code}): ${stderr}`)));
    });
    return {
      url,
      async stop() {
        child.kill('SIGTERM');
        expect(await exited).toBe(0);
      },
    };
  }

  it('serves statements and transactions, and keeps the data across restarts', async () => {
    let local = await startCli();
    let localClient = clientFor(local);
    const run = (sql: string, extra: Partial<ExecuteStatementCommandInput> = {}) =>
      localClient.send(new ExecuteStatementCommand({ ...ARNS, sql, ...extra }));
    try {
      await run('CREATE TABLE notes (id int8 PRIMARY KEY, body text, at timestamptz)');
      const insert = await run("INSERT INTO notes VALUES (:id, :body, '2024-01-01 00:00:00+01')", {
        parameters: [
          { name: 'id', value: { longValue: 9007199254740991 } },
          { name: 'body', value: { stringValue: 'first' } },
        ],
      });
      expect(insert.numberOfRecordsUpdated).toBe(1);
      expect((await run('SELECT * FROM notes')).records).toEqual([
        [{ longValue: 9007199254740991 }, { stringValue: 'first' }, { stringValue: '2023-12-31 23:00:00' }],
      ]);
      const wire = await post('Execute', { sql: "SELECT 9223372036854775807::int8 AS max, '{1,2}'::int[] AS ints" }, local);
      expect(wire.text).toContain('[{"longValue":9223372036854775807},{"arrayValue":{"longValues":[1,2]}}]');

      const tx = (await localClient.send(new BeginTransactionCommand(ARNS))).transactionId!;
      await run("INSERT INTO notes VALUES (2, 'second', now())", { transactionId: tx });
      // One connection: a call outside the transaction waits for it to end.
      let outsideDone = false;
      const outside = run('SELECT count(*) FROM notes').then((response) => {
        outsideDone = true;
        return response;
      });
      await sleep(100);
      expect(outsideDone).toBe(false);
      expect((await localClient.send(new CommitTransactionCommand({ ...ARNS, transactionId: tx }))).transactionStatus).toBe(
        'Transaction Committed',
      );
      expect((await outside).records).toEqual([[{ longValue: 2 }]]);

      const doomed = (await localClient.send(new BeginTransactionCommand(ARNS))).transactionId!;
      await run('DELETE FROM notes', { transactionId: doomed });
      expect((await failure(run('SELECT nope FROM notes', { transactionId: doomed }))).name).toBe('DatabaseErrorException');
      await localClient.send(new RollbackTransactionCommand({ ...ARNS, transactionId: doomed }));
    } finally {
      localClient.destroy();
      await local.stop();
    }

    local = await startCli();
    localClient = clientFor(local);
    try {
      const { formattedRecords } = await run('SELECT id, body FROM notes ORDER BY id', { formatRecordsAs: 'JSON' });
      expect(JSON.parse(formattedRecords!)).toEqual([
        { id: 2, body: 'second' },
        { id: 9007199254740991, body: 'first' },
      ]);
    } finally {
      localClient.destroy();
      await local.stop();
    }
  }, 90_000); // PGlite's first start runs initdb
});
