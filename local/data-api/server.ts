/**
 * A local stand-in for the RDS Data API, for the local stack and the tests.
 * Production talks to AWS; this speaks the same REST-JSON protocol so the
 * real @aws-sdk/client-rds-data client can be pointed at it with `endpoint`,
 * and copies the behaviours code can trip over (parameter typing, 64-bit
 * integers, JSON results, transaction timeouts, error names).
 *
 * Backends: PostgreSQL via `databaseUrl` (one pool per requested database),
 * or else an embedded PGlite database in `dataDir`.
 *
 * Longer than most modules: the operations are one class over shared
 * transaction state; turning rows into results is ./results.ts.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import { Backend, Connection, PgBackend, PgliteBackend } from './backends';
import { ApiError, SQL_ERROR_TYPE, badRequest, isPgError, toApiError } from './errors';
import { parseRequestJson, toJson } from './json';
import {
  ARRAY_ELEMENTS,
  ColumnSource,
  RawResult,
  ResultField,
  ResultOptions,
  TYPES,
  checkResultSize,
  toColumnMetadata,
  toFormattedRecords,
  toRecords,
} from './results';
import { SqlParameter, bindParameters } from './sql';

export interface DataApiOptions {
  /** PostgreSQL server; the request's `database` picks the database on it. */
  databaseUrl?: string;
  /** PGlite data directory when there is no databaseUrl (default .data/pglite). */
  dataDir?: string;
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** A transaction with no call for this long is rolled back (AWS: 3 minutes). */
  idleTimeoutMs?: number;
}

export interface DataApiServer {
  url: string;
  close(): Promise<void>;
}

type Input = Record<string, unknown>;

interface Transaction {
  id: string;
  connection: Connection;
  /** AWS refuses a second call while one runs in the same transaction. */
  busy: boolean;
  timer?: NodeJS.Timeout;
}

function text(input: Input, key: string): string {
  const value = input[key];
  if (typeof value !== 'string' || value === '') throw badRequest(`${key} is required`);
  return value;
}

const optionalText = (input: Input, key: string): string | undefined =>
  typeof input[key] === 'string' && input[key] !== '' ? (input[key] as string) : undefined;

function list<T>(input: Input, key: string): T[] {
  const value = input[key] ?? [];
  if (!Array.isArray(value)) throw badRequest(`${key} must be a list`);
  return value as T[];
}

/** After an error PostgreSQL answered (or one of ours) the connection is fine; after any other it may not be. */
const releaseAfter = (connection: Connection, error: unknown) =>
  connection.release(!(isPgError(error) || error instanceof ApiError));

const COLUMN_SOURCES = `
  SELECT a.attrelid::int8, a.attnum::int8, n.nspname::text, c.relname::text, a.attnotnull,
         a.attidentity <> '' OR coalesce(pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%', false)
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0`;

class DataApi {
  private readonly transactions = new Map<string, Transaction>();

  constructor(
    private readonly backend: Backend,
    private readonly idleTimeoutMs: number,
  ) {}

  async execute(input: Input): Promise<object> {
    // Parameters are checked before the database sees anything, so a bad
    // one does not abort the caller's transaction.
    const statement = bindParameters(text(input, 'sql'), list<SqlParameter>(input, 'parameters'));
    return this.withConnection(input, async (connection) => {
      const result = await connection.query(statement.text, statement.values);
      return this.executeResponse(connection, result, input);
    });
  }

  private async executeResponse(connection: Connection, result: RawResult, input: Input): Promise<object> {
    const options = (input.resultSetOptions ?? {}) as ResultOptions;
    const resultSet = result.fields.length > 0;
    const response: Record<string, unknown> = {
      // As on AWS, a statement that returns rows (SELECT, ... RETURNING)
      // reports 0 here: the count is the number of records.
      numberOfRecordsUpdated: resultSet ? 0 : result.rowCount,
      generatedFields: [],
    };
    if (!resultSet) return response;
    checkResultSize(result);
    if (input.formatRecordsAs === 'JSON') response.formattedRecords = toJson(toFormattedRecords(result, options));
    else response.records = toRecords(result, options);
    if (input.includeResultMetadata === true) response.columnMetadata = await this.describe(connection, result.fields);
    return response;
  }

  /** columnMetadata, with table, nullability and serial-ness from the catalog where pg names the source column. */
  private async describe(connection: Connection, fields: ResultField[]) {
    const tableIds = [...new Set(fields.map((f) => f.tableId).filter((id): id is number => !!id))];
    const sources = new Map<string, ColumnSource>();
    if (tableIds.length > 0) {
      const rows = (await connection.query(COLUMN_SOURCES, [`{${tableIds.join(',')}}`])).rows as string[][];
      for (const [table, column, schemaName, tableName, notNull, autoIncrement] of rows) {
        sources.set(`${table}:${column}`, {
          schemaName: schemaName!,
          tableName: tableName!,
          notNull: notNull === 't',
          autoIncrement: autoIncrement === 't',
        });
      }
    }
    const unknownTypes = [...new Set(fields.map((f) => f.typeId).filter((id) => !(id in TYPES) && !(id in ARRAY_ELEMENTS)))];
    const typeNames = new Map<number, string>();
    if (unknownTypes.length > 0) {
      const sql = 'SELECT oid::int8, typname::text FROM pg_type WHERE oid = ANY($1::oid[])';
      const rows = (await connection.query(sql, [`{${unknownTypes.join(',')}}`])).rows as string[][];
      for (const [oid, name] of rows) typeNames.set(Number(oid), name!);
    }
    return fields.map((f) => toColumnMetadata(f, sources.get(`${f.tableId}:${f.columnId}`), typeNames));
  }

  async batchExecute(input: Input): Promise<object> {
    const sql = text(input, 'sql');
    // As documented by AWS: one run per parameter set, none for an empty list.
    const statements = list<SqlParameter[]>(input, 'parameterSets').map((set) => bindParameters(sql, set));
    const runAll = async (connection: Connection) => {
      for (const statement of statements) await connection.query(statement.text, statement.values);
    };
    if (optionalText(input, 'transactionId')) {
      await this.withConnection(input, runAll);
    } else if (statements.length > 0) {
      // Outside a transaction the batch is all or nothing.
      await this.withConnection(input, async (connection) => {
        await connection.query('BEGIN');
        try {
          await runAll(connection);
          await connection.query('COMMIT');
        } catch (error) {
          await connection.query('ROLLBACK').catch(() => {});
          throw error;
        }
      });
    }
    return { updateResults: statements.map(() => ({ generatedFields: [] })) };
  }

  async begin(input: Input): Promise<object> {
    const connection = await this.backend.connect(optionalText(input, 'database'));
    try {
      await connection.query('BEGIN');
    } catch (error) {
      releaseAfter(connection, error);
      throw error;
    }
    const tx: Transaction = { id: randomBytes(96).toString('base64'), connection, busy: false };
    this.transactions.set(tx.id, tx);
    this.armIdleTimer(tx);
    return { transactionId: tx.id };
  }

  async commit(input: Input): Promise<object> {
    // COMMIT of a transaction aborted by an earlier error is a silent
    // rollback in PostgreSQL. Reported as committed, as pgjdbc (which the
    // Data API appears to be built on) does by default.
    await this.finish(this.claim(text(input, 'transactionId')), 'COMMIT');
    return { transactionStatus: 'Transaction Committed' };
  }

  async rollback(input: Input): Promise<object> {
    await this.finish(this.claim(text(input, 'transactionId')), 'ROLLBACK');
    return { transactionStatus: 'Rollback Complete' };
  }

  /** Runs fn on the call's transaction, or on a connection of its own that autocommits. */
  private async withConnection<T>(input: Input, fn: (connection: Connection) => Promise<T>): Promise<T> {
    const transactionId = optionalText(input, 'transactionId');
    if (transactionId) {
      const tx = this.claim(transactionId);
      try {
        return await fn(tx.connection);
      } finally {
        tx.busy = false;
        if (this.transactions.get(tx.id) === tx) this.armIdleTimer(tx);
      }
    }
    const connection = await this.backend.connect(optionalText(input, 'database'));
    try {
      const result = await fn(connection);
      connection.release();
      return result;
    } catch (error) {
      releaseAfter(connection, error);
      throw error;
    }
  }

  private claim(id: string): Transaction {
    const tx = this.transactions.get(id);
    if (!tx) throw badRequest(`Transaction ${id} is not found`);
    if (tx.busy) throw new ApiError(SQL_ERROR_TYPE, 400, 'Transaction is still running a query');
    tx.busy = true;
    clearTimeout(tx.timer);
    return tx;
  }

  private armIdleTimer(tx: Transaction): void {
    clearTimeout(tx.timer);
    tx.timer = setTimeout(() => void this.finish(tx, 'ROLLBACK').catch(() => {}), this.idleTimeoutMs);
    tx.timer.unref();
  }

  /** Ends the transaction; it is forgotten whether or not the statement succeeds. */
  private async finish(tx: Transaction, sql: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    clearTimeout(tx.timer);
    if (this.transactions.get(tx.id) !== tx) return; // already ended (idle timeout racing close)
    this.transactions.delete(tx.id);
    try {
      await tx.connection.query(sql);
    } catch (error) {
      releaseAfter(tx.connection, error);
      throw error;
    }
    tx.connection.release();
  }

  async close(): Promise<void> {
    await Promise.all([...this.transactions.values()].map((tx) => this.finish(tx, 'ROLLBACK').catch(() => {})));
    await this.backend.close();
  }
}

const OPERATIONS: Record<string, (api: DataApi, input: Input) => Promise<object>> = {
  '/Execute': (api, input) => api.execute(input),
  '/BatchExecute': (api, input) => api.batchExecute(input),
  '/BeginTransaction': (api, input) => api.begin(input),
  '/CommitTransaction': (api, input) => api.commit(input),
  '/RollbackTransaction': (api, input) => api.rollback(input),
};

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function reply(res: http.ServerResponse, status: number, body: string, errorType?: string): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-amzn-requestid': randomUUID(),
    ...(errorType ? { 'x-amzn-errortype': errorType } : {}),
  });
  res.end(body);
}

async function handle(api: DataApi, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const operation = req.method === 'POST' ? OPERATIONS[(req.url ?? '').split('?')[0]!] : undefined;
  try {
    if (!operation) throw new ApiError('UnknownOperationException', 404, `Unknown operation ${req.method} ${req.url}`);
    const body = await readBody(req);
    let input: unknown;
    try {
      input = parseRequestJson(body || '{}');
    } catch {
      throw badRequest('The request body is not valid JSON');
    }
    if (input === null || typeof input !== 'object' || Array.isArray(input)) throw badRequest('The request body must be an object');
    reply(res, 200, toJson(await operation(api, input as Input)));
  } catch (error) {
    const apiError = toApiError(error);
    reply(res, apiError.status, JSON.stringify({ message: apiError.message }), apiError.type);
  }
}

export async function startDataApi(options: DataApiOptions = {}): Promise<DataApiServer> {
  const backend: Backend = options.databaseUrl
    ? new PgBackend(options.databaseUrl)
    : await PgliteBackend.open(path.resolve(options.dataDir ?? '.data/pglite'));
  const api = new DataApi(backend, options.idleTimeoutMs ?? 180_000);
  const server = http.createServer((req, res) => {
    handle(api, req, res).catch(() => res.destroy());
  });
  const host = options.host ?? '127.0.0.1';
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, host, resolve);
    });
  } catch (error) {
    await backend.close();
    throw error;
  }
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    async close() {
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeAllConnections(); // keep-alive sockets would hold the process open
      await api.close();
      await closed;
    },
  };
}
