/**
 * Named parameters: the Data API takes `:name` placeholders plus a list of
 * typed values; PostgreSQL wants `$n`. Each value is sent as text with the
 * SQL type AWS's JDBC driver would bind it as (setLong → int8, setString →
 * varchar, ...), so type errors such as "column "id" is of type uuid but
 * expression is of type character varying" show up locally as they do on AWS.
 */
import { badRequest } from './errors';

export interface Field {
  isNull?: boolean;
  booleanValue?: boolean;
  /** A string when the request carried more digits than a JS number holds. */
  longValue?: number | string;
  doubleValue?: number;
  stringValue?: string;
  blobValue?: string;
  arrayValue?: unknown;
}

export interface SqlParameter {
  name?: string;
  value?: Field;
  typeHint?: string;
}

export interface BoundStatement {
  text: string;
  values: (string | null)[];
}

const TYPE_HINT_CASTS: Record<string, string> = {
  DATE: 'date',
  TIME: 'time',
  TIMESTAMP: 'timestamp',
  DECIMAL: 'numeric',
  UUID: 'uuid',
  JSON: 'jsonb',
};

/** The text sent to PostgreSQL for one parameter, and the cast naming its type (if any). */
function encodeParameter(param: SqlParameter): { value: string | null; cast: string | undefined } {
  const v = param.value ?? {};
  let value: string | null;
  let cast: string | undefined;
  if (v.isNull) {
    // JDBC setNull(Types.NULL) leaves the type to the server.
    value = null;
  } else if (v.booleanValue !== undefined) {
    value = v.booleanValue ? 'true' : 'false';
    cast = 'bool';
  } else if (v.longValue !== undefined) {
    value = String(v.longValue);
    cast = 'int8';
  } else if (v.doubleValue !== undefined) {
    value = String(v.doubleValue);
    cast = 'float8';
  } else if (v.stringValue !== undefined) {
    value = v.stringValue;
    cast = 'varchar';
  } else if (v.blobValue !== undefined) {
    value = '\\x' + Buffer.from(v.blobValue, 'base64').toString('hex');
    cast = 'bytea';
  } else if (v.arrayValue !== undefined) {
    throw badRequest('Array parameters are not supported.');
  } else {
    throw badRequest(`Parameter ${param.name} has no value.`);
  }
  if (param.typeHint !== undefined) {
    cast = TYPE_HINT_CASTS[param.typeHint];
    if (!cast) throw badRequest(`Invalid type hint ${param.typeHint} for parameter ${param.name}.`);
  }
  return { value, cast };
}

const IDENT_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;
const PARAM_NAME = /^:([A-Za-z_][A-Za-z0-9_]*)/;
const DOLLAR_TAG = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/;

/** Where the quoted string, comment or dollar-quoted body starting at `i` ends (exclusive). */
function skipQuoted(sql: string, i: number): number {
  const c = sql[i];
  const next = sql[i + 1];
  if (c === "'" || c === '"') {
    // E'...' strings also take backslash escapes.
    const backslashes = c === "'" && /[eE]/.test(sql[i - 1] ?? '') && !IDENT_CHAR.test(sql[i - 2] ?? '');
    let j = i + 1;
    while (j < sql.length) {
      if (backslashes && sql[j] === '\\') j += 2;
      else if (sql[j] === c && sql[j + 1] === c) j += 2;
      else if (sql[j] === c) return j + 1;
      else j++;
    }
    return sql.length;
  }
  if (c === '-' && next === '-') {
    const end = sql.indexOf('\n', i);
    return end < 0 ? sql.length : end + 1;
  }
  if (c === '/' && next === '*') {
    // Block comments nest in PostgreSQL.
    let depth = 1;
    let j = i + 2;
    while (j < sql.length && depth > 0) {
      if (sql.startsWith('/*', j)) {
        depth++;
        j += 2;
      } else if (sql.startsWith('*/', j)) {
        depth--;
        j += 2;
      } else {
        j++;
      }
    }
    return j;
  }
  if (c === '$' && !IDENT_CHAR.test(sql[i - 1] ?? '')) {
    const tag = DOLLAR_TAG.exec(sql.slice(i, i + 64))?.[0];
    if (tag) {
      const end = sql.indexOf(tag, i + tag.length);
      return end < 0 ? sql.length : end + tag.length;
    }
  }
  return i;
}

/**
 * Rewrites `:name` placeholders to `$n` (a name used twice gets the same
 * `$n`), leaving `::casts`, literals, quoted identifiers, comments and
 * dollar-quoted bodies alone. Only parameters the SQL names are sent.
 */
export function bindParameters(sql: string, parameters: SqlParameter[] = []): BoundStatement {
  const byName = new Map(parameters.map((p) => [p.name, p]));
  const slots = new Map<string, string>();
  const values: (string | null)[] = [];
  let text = '';
  let i = 0;
  while (i < sql.length) {
    const end = skipQuoted(sql, i);
    if (end > i) {
      text += sql.slice(i, end);
      i = end;
      continue;
    }
    if (sql.startsWith('::', i)) {
      text += '::';
      i += 2;
      continue;
    }
    const name = sql[i] === ':' ? PARAM_NAME.exec(sql.slice(i, i + 256))?.[1] : undefined;
    if (name === undefined) {
      text += sql[i];
      i++;
      continue;
    }
    let slot = slots.get(name);
    if (slot === undefined) {
      const param = byName.get(name);
      if (!param) throw badRequest(`No value specified for parameter: ${name}`);
      const { value, cast } = encodeParameter(param);
      values.push(value);
      slot = `$${values.length}` + (cast ? `::${cast}` : '');
      slots.set(name, slot);
    }
    text += slot;
    i += name.length + 1;
  }
  return { text, values };
}
