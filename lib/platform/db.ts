import {
  BeginTransactionCommand,
  CommitTransactionCommand,
  ExecuteStatementCommand,
  RDSDataClient,
  RollbackTransactionCommand,
    type SqlParameter,
} from '@aws-sdk/client-rds-data';
import { config } from './config';
import { DependencyUnavailableError } from './errors';
import { logger } from './logger';

/**
 * The only door to the database: Aurora PostgreSQL through the RDS Data API.
 *
 * Every call is one HTTPS round trip. A transaction costs two more than its
 * statements (BeginTransaction and CommitTransaction), so callers should say
 * how many statements they run.
 *
 * Expected outcomes (not enough stock, a stale fencing token, a duplicate key)
 * must come from statement results (row counts, RETURNING, ON CONFLICT), never
 * from error text: the Data API gives PostgreSQL errors no SQLSTATE.
 */

/** Marks a value to be sent as JSON (`typeHint: JSON`), e.g. for jsonb_to_recordset. */
export class JsonValue {
  constructor(readonly value: unknown) {}
}
export const asJson = (value: unknown): JsonValue => new JsonValue(value);

export type SqlValue = number | bigint | string | boolean | null | Date | Uint8Array | JsonValue;
export type SqlParams = Readonly<Record<string, SqlValue>>;

export interface QueryResult<Row> {
  /** Rows of a SELECT or of RETURNING, keyed by column label. */
  rows: Row[];
  /**
   * Rows written by an INSERT, UPDATE or DELETE, or returned by a statement
   * that returns rows: the Data API reports numberOfRecordsUpdated = 0 for
   * `UPDATE ... RETURNING`, so the returned rows are the count there.
   */
  rowCount: number;
}

export interface Queryable {
  query<Row = Record<string, unknown>>(sql: string, params?: SqlParams): Promise<QueryResult<Row>>;
}

export interface Database extends Queryable {
  /**
   * Runs fn in one transaction: committed when fn resolves, rolled back when
   * it throws (the rollback is best effort; Aurora also rolls back a
   * transaction left idle for three minutes).
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
}

export interface DataApiTarget {
  resourceArn: string;
  secretArn: string;
  database: string;
  endpoint?: string | undefined;
  region: string;
  resumeBudgetMs: number;
}

let shared: Database | undefined;

/** The Lambda instance's database handle, created on first use. */
export function db(): Database {
  shared ??= createDatabase({ ...config().db, region: config().region });
  return shared;
}

export function createDatabase(target: DataApiTarget): Database {
  const client = new RDSDataClient({
    region: target.region,
    endpoint: target.endpoint,
    // The SDK would retry a statement whose reply it did not see, and a
    // retried UPDATE inside a transaction applies twice. We retry only where
    // the statement provably did not run (DatabaseResumingException).
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 2000, requestTimeout: 20000 },
  });
  const base = { resourceArn: target.resourceArn, secretArn: target.secretArn, database: target.database };

  async function send<T>(operation: string, run: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + target.resumeBudgetMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await run();
      } catch (error) {
        const name = (error as Error).name;
        if (name === 'DatabaseResumingException' && Date.now() < deadline) {
          // Aurora Serverless v2 waking from auto-pause; the SDK treats this as
          // a client fault and does not retry it.
          await sleep(Math.min(250 * 2 ** attempt, 2000));
          continue;
        }
        if (isDatabaseUnavailable(error)) {
          logger.warn('database unavailable', { operation, error: (error as Error).message });
          throw new DependencyUnavailableError('database', { cause: error, retryAfterSeconds: name === 'DatabaseResumingException' ? 5 : 1 });
        }
        throw error;
      }
    }
  }

  async function execute<Row>(sql: string, params: SqlParams | undefined, transactionId?: string): Promise<QueryResult<Row>> {
    const command = new ExecuteStatementCommand({
      ...base,
      sql,
      parameters: toParameters(params),
      transactionId,
      formatRecordsAs: 'JSON',
    });
    const output = await send('ExecuteStatement', () => client.send(command));
    const rows = output.formattedRecords ? (JSON.parse(output.formattedRecords) as Row[]) : [];
    return { rows, rowCount: Math.max(output.numberOfRecordsUpdated ?? 0, rows.length) };
  }

  return {
    query: (sql, params) => execute(sql, params),
    async transaction(fn) {
      const begin = new BeginTransactionCommand(base);
      const { transactionId } = await send('BeginTransaction', () => client.send(begin));
      if (!transactionId) throw new Error('BeginTransaction returned no transactionId');
      let settled = false;
      try {
        const result = await fn({ query: (sql, params) => execute(sql, params, transactionId) });
        const commit = new CommitTransactionCommand({ ...base, transactionId });
        settled = true; // a failed commit is not rolled back: its outcome is unknown, not failed
        await send('CommitTransaction', () => client.send(commit));
        return result;
      } finally {
        if (!settled) {
          const rollback = new RollbackTransactionCommand({ ...base, transactionId });
          await client.send(rollback).catch((error: Error) => logger.warn('rollback failed', { error: error.message }));
        }
      }
    },
  };
}

function toParameters(params: SqlParams | undefined): SqlParameter[] | undefined {
  if (!params) return undefined;
  return Object.entries(params).map(([name, value]) => toParameter(name, value));
}

function toParameter(name: string, value: SqlValue): SqlParameter {
  if (value === null) return { name, value: { isNull: true } };
  if (value instanceof JsonValue) return { name, value: { stringValue: JSON.stringify(value.value) }, typeHint: 'JSON' };
  if (value instanceof Date) {
    return { name, value: { stringValue: value.toISOString().replace('T', ' ').replace('Z', '') }, typeHint: 'TIMESTAMP' };
  }
  if (value instanceof Uint8Array) return { name, value: { blobValue: value } };
  switch (typeof value) {
    case 'string':
      return { name, value: { stringValue: value } };
    case 'boolean':
      return { name, value: { booleanValue: value } };
    case 'bigint':
      if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
        throw new RangeError(`parameter ${name}: ${value} does not fit a Data API longValue exactly`);
      }
      return { name, value: { longValue: Number(value) } };
    case 'number':
      if (!Number.isFinite(value)) throw new RangeError(`parameter ${name} is not a finite number`);
      return { name, value: Number.isInteger(value) ? { longValue: value } : { doubleValue: value } };
  }
}

const unavailableNames = new Set([
  'DatabaseUnavailableException',
  'DatabaseResumingException',
  'DatabaseNotFoundException',
  'ServiceUnavailableError',
  'InternalServerErrorException',
  'ThrottlingException',
  'TimeoutError',
]);
const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE', 'EHOSTUNREACH', 'EAI_AGAIN']);

function isDatabaseUnavailable(error: unknown): boolean {
  // Duck-typed: Node's network errors can come from another realm (the SDK
  // re-wraps them, and test runners use their own), failing `instanceof Error`.
  if (typeof error !== 'object' || error === null) return false;
  if (unavailableNames.has(String((error as { name?: unknown }).name))) return true;
  const { code, cause } = error as { code?: unknown; cause?: unknown };
  if (typeof code === 'string' && networkCodes.has(code)) return true;
  if (cause !== undefined && cause !== error && isDatabaseUnavailable(cause)) return true;
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status !== undefined && status >= 500;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
