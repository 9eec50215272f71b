/**
 * Where the SQL runs: a PostgreSQL server through `pg`, or an embedded PGlite
 * database. Both hand out a `Connection` that a transaction can hold for as
 * long as it lives; values travel as text in both directions.
 */
import { mkdirSync } from 'node:fs';
import pg from 'pg';
import type { PGlite, Results } from '@electric-sql/pglite';
import { ARRAY_ELEMENTS, RawResult } from './results';

export interface Connection {
  query(sql: string, values?: (string | null)[]): Promise<RawResult>;
  /** `broken` drops the underlying connection instead of reusing it. */
  release(broken?: boolean): void;
}

export interface Backend {
  /** A connection of its own (for a transaction) or for one call. */
  connect(database: string | undefined): Promise<Connection>;
  close(): Promise<void>;
}

// Per pool, not pg.types.setTypeParser: other code in the process may use pg.
const RAW_TEXT = { getTypeParser: () => (text: string) => text };

export class PgBackend implements Backend {
  private readonly pools = new Map<string, pg.Pool>();
  private readonly defaultDatabase: string;

  constructor(private readonly databaseUrl: string) {
    const url = new URL(databaseUrl);
    this.defaultDatabase = decodeURIComponent(url.pathname.slice(1)) || decodeURIComponent(url.username) || 'postgres';
  }

  /** One pool per database, so callers can pick theirs with the request's `database`. */
  private pool(database: string): pg.Pool {
    let pool = this.pools.get(database);
    if (!pool) {
      const url = new URL(this.databaseUrl);
      url.pathname = `/${encodeURIComponent(database)}`;
      pool = new pg.Pool({
        connectionString: url.toString(),
        types: RAW_TEXT,
        // Aurora's default time zone; timestamptz results are UTC either way.
        options: '-c TimeZone=UTC',
        max: 10,
        idleTimeoutMillis: 10_000,
        connectionTimeoutMillis: 10_000,
      });
      pool.on('error', () => {}); // an idle connection dropped; the pool replaces it
      this.pools.set(database, pool);
    }
    return pool;
  }

  async connect(database: string | undefined): Promise<Connection> {
    const client = await this.pool(database || this.defaultDatabase).connect();
    return {
      async query(sql, values = []) {
        // No values → simple protocol, which also takes several statements.
        const res = await client.query({ text: sql, values, rowMode: 'array' });
        const last = Array.isArray(res) ? (res[res.length - 1] as pg.QueryArrayResult) : res;
        return {
          command: last.command ?? '',
          rowCount: last.rowCount ?? 0,
          fields: last.fields.map((f) => ({
            name: f.name,
            typeId: f.dataTypeID,
            tableId: f.tableID,
            columnId: f.columnID,
            typeModifier: f.dataTypeModifier,
          })),
          rows: last.rows,
        };
      },
      release: (broken) => client.release(broken),
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((pool) => pool.end()));
    this.pools.clear();
  }
}

/** Lets one holder at a time in, in arrival order. */
class Mutex {
  private tail = Promise.resolve();

  lock(): Promise<() => void> {
    let unlock!: () => void;
    const held = new Promise<void>((resolve) => (unlock = resolve));
    const acquired = this.tail.then(() => unlock);
    this.tail = this.tail.then(() => held);
    return acquired;
  }
}

/**
 * PGlite is a single connection, so a transaction holds the whole database
 * from BEGIN to COMMIT/ROLLBACK and every other call waits its turn. The
 * request's `database` is ignored.
 *
 * PGlite loads parts of itself with import(), which jest's module sandbox
 * refuses (no --experimental-vm-modules): under jest, run this backend in a
 * child process (local/data-api/main.ts), as tests/integration/data-api.test.ts does.
 */
export class PgliteBackend implements Backend {
  private readonly mutex = new Mutex();

  private constructor(private readonly db: PGlite) {}

  static async open(dataDir: string): Promise<PgliteBackend> {
    mkdirSync(dataDir, { recursive: true });
    const { PGlite, types } = await import('@electric-sql/pglite');
    // Identity parsers and serializers: text in, text out, as with pg above.
    const identity = (oids: string[]) => Object.fromEntries(oids.map((oid) => [oid, (v: string) => v]));
    const db = await PGlite.create({
      dataDir,
      parsers: identity([...Object.keys(types.parsers), ...Object.keys(ARRAY_ELEMENTS)]),
      serializers: identity(Object.keys(types.serializers)),
    });
    await db.exec("SET TimeZone = 'UTC'");
    return new PgliteBackend(db);
  }

  async connect(): Promise<Connection> {
    const unlock = await this.mutex.lock();
    const db = this.db;
    let released = false;
    return {
      async query(sql, values = []) {
        const options = { rowMode: 'array' as const };
        // exec() takes several statements but no parameters, like pg's simple protocol.
        const res: Results<unknown[]> = values.length
          ? await db.query<unknown[]>(sql, values, options)
          : ((await db.exec(sql, options)).at(-1) as Results<unknown[]> | undefined) ?? { rows: [], fields: [] };
        return {
          command: res.command ?? '',
          rowCount: res.rowCount ?? res.affectedRows ?? 0,
          fields: res.fields.map((f) => ({ name: f.name, typeId: f.dataTypeID })),
          rows: res.rows,
        };
      },
      release: () => {
        if (!released) unlock();
        released = true;
      },
    };
  }

  async close(): Promise<void> {
    const unlock = await this.mutex.lock();
    try {
      await this.db.close();
    } finally {
      unlock();
    }
  }
}
