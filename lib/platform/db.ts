import {
  BeginTransactionCommand,
  CommitTransactionCommand,
  ExecuteStatementCommand,
  RDSDataClient,
  RollbackTransactionCommand,
  type SqlParameter,
} from '@aws-sdk/client-rds-data';
import { config } from './config';
import { isDatabaseUnavailable } from './dependency-errors';
import { DependencyUnavailableError } from './errors';
import { currentDeadline, requestDeadline } from './deadline';
import { logger } from './logger';
import { traceAwsClient } from './tracing';

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
 *
 * Longer than most modules: the one wrapper every query goes through (calls,
 * transactions, parameters, the retry of calls that ran nothing).
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

/** Per call. Every call is also bounded by the request's deadline (lib/platform/deadline). */
export interface CallOptions {
  /** How long to wait for the reply; default DB_CALL_TIMEOUT_MS in a request, else only the deadline. */
  timeoutMs?: number;
  /**
   * Sent as a comment before the statement (letters, digits and dashes),
   * where pg_stat_activity shows it: so that a later statement can ask
   * whether this one is still waiting for a lock (STILL_WAITING_ON_LOCK).
   */
  label?: string;
}

/**
 * SQL: true while the statement labelled `:label` (CallOptions.label) waits
 * for a lock another transaction holds. One that does is behind a row
 * someone else is writing, on a database that answers: contention, not an
 * outage. pg_stat_activity shows the sessions of the caller's own role, which
 * every Data API call shares.
 */
export const STILL_WAITING_ON_LOCK = `EXISTS (
    SELECT 1 FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'
      AND starts_with(query, '/* ' || CAST(:label AS text) || ' */')
  )`;

const LABEL = /^[A-Za-z0-9-]{1,64}$/;

function labelled(sql: string, label: string | undefined): string {
  if (label === undefined) return sql;
  if (!LABEL.test(label)) throw new RangeError(`statement label ${JSON.stringify(label)}: letters, digits and dashes only`);
  return `/* ${label} */ ${sql}`;
}

export interface Queryable {
  query<Row = Record<string, unknown>>(sql: string, params?: SqlParams, options?: CallOptions): Promise<QueryResult<Row>>;
}

/**
 * Runs `statement`, a DELETE of at most :batchSize rows, until one deletes
 * fewer: a purge of any size without one long transaction. Returns how many
 * rows it deleted in all.
 */
export async function deleteInBatches(database: Queryable, statement: string, params: SqlParams, batchSize: number, options?: CallOptions): Promise<number> {
  let deleted = 0;
  for (;;) {
    const { rowCount } = await database.query(statement, { ...params, batchSize }, options);
    deleted += rowCount;
    if (rowCount < batchSize) return deleted;
  }
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
  /** Default: DB_CALL_TIMEOUT_MS. */
  callTimeoutMs?: number;
}

/**
 * The database did not answer (503 with Retry-After). `mayHaveRun` says
 * whether the call may have reached the database anyway: a timeout, an
 * abort or a connection lost after the request went out leave a statement
 * that may still commit, and only the caller can find out (a write with a
 * request id, lib/points/resolve). A refused connection, a cluster that is
 * resuming or throttling, or a call never sent because no time was left
 * ran nothing.
 */
export class DatabaseUnavailableError extends DependencyUnavailableError {
  constructor(
    readonly mayHaveRun: boolean,
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super('database', options);
  }
}

let shared: Database | undefined;

/** The Lambda instance's database handle, created on first use. */
export function db(): Database {
  shared ??= createDatabase({ ...config().db, region: config().region });
  return shared;
}

export function createDatabase(target: DataApiTarget): Database {
  // A subsegment per Data API call when TRACING_ENABLED; the client as it is otherwise.
  const client = traceAwsClient(new RDSDataClient({
    region: target.region,
    endpoint: target.endpoint,
    // The SDK would retry a statement whose reply it did not see, and a
    // retried UPDATE inside a transaction applies twice. We retry only where
    // the statement provably did not run (DatabaseResumingException).
    maxAttempts: 1,
    // Backstops only: every call carries an abortSignal at its own deadline.
    requestHandler: { connectionTimeout: 1000, requestTimeout: 20000 },
  }));
  const base = { resourceArn: target.resourceArn, secretArn: target.secretArn, database: target.database };
  const callTimeoutMs = () => target.callTimeoutMs ?? config().db.callTimeoutMs;

  /**
   * One Data API call, given up on at the request's deadline or after the
   * call's timeout, whichever comes first: the abort closes the socket, so
   * no call outlives the request that made it.
   */
  async function send<T>(operation: string, run: (abortSignal: AbortSignal) => Promise<T>, options: CallOptions = {}): Promise<T> {
    const started = performance.now();
    // DB_CALL_TIMEOUT_MS is for requests, which owe an answer within about 2 s.
    // Work outside one (migrations, CLIs, and scheduled jobs, whose JobDeadline
    // is their invocation's remaining time) keeps only its deadline: its long
    // statements (an index build, a sync batch) must not be cut.
    const inRequest = requestDeadline() !== undefined;
    const deadline = currentDeadline();
    const budgetMs = Math.min(deadline.remainingMs(), options.timeoutMs ?? (inRequest ? callTimeoutMs() : Number.POSITIVE_INFINITY));
    if (budgetMs <= 0) {
      throw new DatabaseUnavailableError(false, { cause: new Error(`${operation}: no time left to call the database`) });
    }
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), budgetMs);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          return await run(abort.signal);
        } catch (error) {
          const name = (error as Error).name;
          const resumeLeft = target.resumeBudgetMs - (performance.now() - started);
          if (name === 'DatabaseResumingException' && !abort.signal.aborted && resumeLeft > 0) {
            // Aurora Serverless v2 waking from auto-pause; the SDK treats this
            // as a client fault and does not retry it. The statement did not
            // run, so trying again is safe; the pause ends with the call's time.
            await abortableSleep(Math.min(250 * 2 ** attempt, 2000, resumeLeft), abort.signal);
            if (!abort.signal.aborted) continue;
          }
          if (abort.signal.aborted || isDatabaseUnavailable(error)) {
            const mayHaveRun = !ranNothing(error) || abort.signal.aborted;
            logger.warn('database unavailable', { operation, mayHaveRun, afterMs: Math.round(performance.now() - started), error: (error as Error).message });
            throw new DatabaseUnavailableError(mayHaveRun && name !== 'DatabaseResumingException', {
              cause: error,
              retryAfterSeconds: name === 'DatabaseResumingException' ? 5 : 1,
            });
          }
          throw error;
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  async function execute<Row>(sql: string, params: SqlParams | undefined, transactionId?: string, options?: CallOptions): Promise<QueryResult<Row>> {
    const command = new ExecuteStatementCommand({
      ...base,
      sql: labelled(sql, options?.label),
      parameters: toParameters(params),
      transactionId,
      formatRecordsAs: 'JSON',
    });
    const output = await send('ExecuteStatement', (abortSignal) => client.send(command, { abortSignal }), options);
    const rows = output.formattedRecords ? (JSON.parse(output.formattedRecords) as Row[]) : [];
    return { rows, rowCount: Math.max(output.numberOfRecordsUpdated ?? 0, rows.length) };
  }

  return {
    query: (sql, params, options) => execute(sql, params, undefined, options),
    async transaction(fn) {
      const begin = new BeginTransactionCommand(base);
      const { transactionId } = await send('BeginTransaction', (abortSignal) => client.send(begin, { abortSignal }));
      if (!transactionId) throw new Error('BeginTransaction returned no transactionId');
      let settled = false;
      try {
        const result = await fn({ query: (sql, params, options) => execute(sql, params, transactionId, options) });
        const commit = new CommitTransactionCommand({ ...base, transactionId });
        settled = true; // a failed commit is not rolled back: its outcome is unknown, not failed
        await send('CommitTransaction', (abortSignal) => client.send(commit, { abortSignal }));
        return result;
      } finally {
        if (!settled) {
          const rollback = new RollbackTransactionCommand({ ...base, transactionId });
          // Best effort and never past the deadline: Aurora rolls back a transaction idle for 3 minutes anyway.
          await send('RollbackTransaction', (abortSignal) => client.send(rollback, { abortSignal })).catch((error: Error) =>
            logger.warn('rollback failed', { error: error.message }),
          );
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


/**
 * Errors that prove the request never reached a database that could run it.
 * Anything else that means "unavailable" (a timeout, a reset, a 5xx of the
 * Data API, which may have lost its database connection mid-statement) may
 * have run it.
 */
const ranNothingNames = new Set(['DatabaseResumingException', 'DatabaseNotFoundException', 'ThrottlingException']);
const connectCodes = ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN'];

function ranNothing(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { name, code, message } = error as { name?: unknown; code?: unknown; message?: unknown };
  if (ranNothingNames.has(String(name))) return true;
  if (typeof code === 'string' && connectCodes.includes(code)) return true;
  return typeof message === 'string' && connectCodes.some((c) => message.includes(`connect ${c}`));
}

/** Resolves after ms, or as soon as the signal aborts. */
function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
