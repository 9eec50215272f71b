/**
 * Turns PostgreSQL's text output into Data API results: `records` of typed
 * fields, `formattedRecords` (formatRecordsAs JSON) and `columnMetadata`.
 * Both backends hand over raw text so the formatting here is the only one.
 *
 * Longer than most modules: one table of PostgreSQL types and the
 * conversions that read it.
 */
import { badRequest } from './errors';
import { RawJson } from './json';

export interface ResultField {
  name: string;
  typeId: number;
  /** pg only: the source column, for columnMetadata. */
  tableId?: number;
  columnId?: number;
  typeModifier?: number;
}

export interface RawResult {
  command: string;
  rowCount: number;
  fields: ResultField[];
  /** Text values; PGlite hands arrays over already split into elements. */
  rows: unknown[][];
}

export interface ResultOptions {
  longReturnType?: string;
  decimalReturnType?: string;
}

type Kind = 'long' | 'double' | 'decimal' | 'bool' | 'blob' | 'timestamp' | 'string';

interface PgType {
  name: string;
  /** java.sql.Types code, as the Data API's JDBC driver reports it. */
  jdbc: number;
  kind: Kind;
  precision: number;
}

const MAX = 2147483647;
const t = (name: string, jdbc: number, kind: Kind, precision = MAX): PgType => ({ name, jdbc, kind, precision });

export const TYPES: Record<number, PgType> = {
  16: t('bool', -7, 'bool', 1),
  17: t('bytea', -2, 'blob'),
  18: t('char', 1, 'string', 1),
  19: t('name', 12, 'string'),
  20: t('int8', -5, 'long', 19),
  21: t('int2', 5, 'long', 5),
  23: t('int4', 4, 'long', 10),
  25: t('text', 12, 'string'),
  26: t('oid', -5, 'long', 10),
  114: t('json', 1111, 'string'),
  700: t('float4', 7, 'double', 8),
  701: t('float8', 8, 'double', 17),
  1042: t('bpchar', 1, 'string'),
  1043: t('varchar', 12, 'string'),
  1082: t('date', 91, 'string', 13),
  1083: t('time', 92, 'string', 15),
  1114: t('timestamp', 93, 'timestamp', 29),
  1184: t('timestamptz', 93, 'timestamp', 35),
  1186: t('interval', 1111, 'string', 49),
  1266: t('timetz', 92, 'string', 21),
  1700: t('numeric', 2, 'decimal', 0),
  2950: t('uuid', 1111, 'string'),
  3802: t('jsonb', 1111, 'string'),
};

/** Array type oid → element type oid. */
export const ARRAY_ELEMENTS: Record<number, number> = {
  199: 114, 1000: 16, 1001: 17, 1002: 18, 1003: 19, 1005: 21, 1007: 23, 1009: 25, 1014: 1042,
  1015: 1043, 1016: 20, 1021: 700, 1022: 701, 1028: 26, 1115: 1114, 1182: 1082, 1183: 1083,
  1185: 1184, 1187: 1186, 1231: 1700, 1270: 1266, 2951: 2950, 3807: 3802,
};

const kindOf = (typeId: number | undefined): Kind => (typeId === undefined ? 'string' : TYPES[typeId]?.kind ?? 'string');

const NUMBER_LITERAL = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/;

/** Non-finite doubles go out as the strings AWS JSON protocols use for them. */
const double = (text: string): RawJson | string =>
  NUMBER_LITERAL.test(text) ? new RawJson(text) : text === 'NaN' ? 'NaN' : text.startsWith('-') ? '-Infinity' : 'Infinity';

const base64 = (byteaHex: string) => Buffer.from(byteaHex.slice(2), 'hex').toString('base64');

const TIMESTAMP = /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(\.\d+)?([+-]\d\d(?::\d\d){0,2})?( BC)?$/;

/**
 * "YYYY-MM-DD HH:MM:SS[.ffffff]" as the Data API writes timestamps; a
 * timestamptz is shown in UTC (sessions run in UTC, but a SET TIME ZONE
 * must not change the answer).
 */
export function formatTimestamp(text: string): string {
  const m = TIMESTAMP.exec(text);
  if (!m || !m[8]) return text;
  const [, y, mo, d, h, mi, s, fraction = '', offset, bc = ''] = m;
  const [oh = '0', om = '0', os = '0'] = offset!.slice(1).split(':');
  const sign = offset!.startsWith('-') ? -1 : 1;
  const shift = sign * (Number(oh) * 3600 + Number(om) * 60 + Number(os)) * 1000;
  if (shift === 0 || bc) return text.slice(0, text.length - offset!.length - bc.length) + bc;
  const utc = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) - shift);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return (
    `${p(utc.getUTCFullYear(), 4)}-${p(utc.getUTCMonth() + 1)}-${p(utc.getUTCDate())} ` +
    `${p(utc.getUTCHours())}:${p(utc.getUTCMinutes())}:${p(utc.getUTCSeconds())}${fraction}`
  );
}

type PgArray = (string | null | PgArray)[];

/** Parses PostgreSQL's array output, e.g. `{1,NULL}`, `{"a b","c\"d"}`, `{{1,2},{3,4}}`. */
export function parseArray(text: string): PgArray {
  let i = text.startsWith('[') ? text.indexOf('=') + 1 : 0; // drop "[0:1]=" bounds
  const parse = (): PgArray => {
    const items: PgArray = [];
    i++; // '{'
    while (i < text.length) {
      const c = text[i];
      if (c === '}') {
        i++;
        break;
      }
      if (c === ',') i++;
      else if (c === '{') items.push(parse());
      else if (c === '"') {
        let s = '';
        for (i++; text[i] !== '"' && i < text.length; i++) {
          if (text[i] === '\\') i++;
          s += text[i];
        }
        i++;
        items.push(s);
      } else {
        let j = i;
        while (j < text.length && text[j] !== ',' && text[j] !== '}') j++;
        const item = text.slice(i, j).trim();
        items.push(item === 'NULL' ? null : item);
        i = j;
      }
    }
    return items;
  };
  return parse();
}

function arrayValue(items: PgArray, elementType: number | undefined, options: ResultOptions): object {
  if (items.some(Array.isArray)) {
    return { arrayValues: items.map((x) => arrayValue(Array.isArray(x) ? x : [], elementType, options)) };
  }
  const values = items as (string | null)[];
  const each = <T>(f: (s: string) => T) => values.map((x) => (x === null ? null : f(x)));
  switch (kindOf(elementType)) {
    case 'long':
      return options.longReturnType === 'STRING' ? { stringValues: values } : { longValues: each((s) => new RawJson(s)) };
    case 'double':
      return { doubleValues: each(double) };
    case 'bool':
      return { booleanValues: each((s) => s === 't') };
    case 'blob':
      return { stringValues: each(base64) };
    case 'timestamp':
      return { stringValues: each(formatTimestamp) };
    default:
      return { stringValues: values };
  }
}

const asArray = (value: unknown): PgArray => (Array.isArray(value) ? (value as PgArray) : parseArray(String(value)));

/** One value as a Data API `Field`. */
function toField(value: unknown, typeId: number, options: ResultOptions): object {
  if (value === null || value === undefined) return { isNull: true };
  if (typeId in ARRAY_ELEMENTS || Array.isArray(value)) {
    return { arrayValue: arrayValue(asArray(value), ARRAY_ELEMENTS[typeId], options) };
  }
  const text = String(value);
  switch (kindOf(typeId)) {
    case 'long':
      return options.longReturnType === 'STRING' ? { stringValue: text } : { longValue: new RawJson(text) };
    case 'double':
      return { doubleValue: double(text) };
    case 'decimal':
      if (options.decimalReturnType !== 'DOUBLE_OR_LONG' || !NUMBER_LITERAL.test(text)) return { stringValue: text };
      return /^-?\d+$/.test(text) ? { longValue: new RawJson(text) } : { doubleValue: new RawJson(text) };
    case 'bool':
      return { booleanValue: text === 't' };
    case 'blob':
      return { blobValue: base64(text) };
    case 'timestamp':
      return { stringValue: formatTimestamp(text) };
    default:
      return { stringValue: text };
  }
}

/** One value for formatRecordsAs JSON: numbers and booleans as such, everything else (json columns too) a string. */
function toJsonValue(value: unknown, typeId: number | undefined, options: ResultOptions): unknown {
  if (value === null || value === undefined) return null;
  if ((typeId !== undefined && typeId in ARRAY_ELEMENTS) || Array.isArray(value)) {
    const element = typeId === undefined ? undefined : ARRAY_ELEMENTS[typeId];
    return asArray(value).map((x) => toJsonValue(x, element, options));
  }
  const text = String(value);
  switch (kindOf(typeId)) {
    case 'long':
      return options.longReturnType === 'STRING' ? text : new RawJson(text);
    case 'double':
      return double(text);
    case 'decimal':
      return options.decimalReturnType === 'DOUBLE_OR_LONG' && NUMBER_LITERAL.test(text) ? new RawJson(text) : text;
    case 'bool':
      return text === 't';
    case 'blob':
      return base64(text);
    case 'timestamp':
      return formatTimestamp(text);
    default:
      return text;
  }
}

/** AWS refuses result sets over 1 MiB rather than truncating them. */
const MAX_RESULT_BYTES = 1024 * 1024;

export function checkResultSize(result: RawResult): void {
  let bytes = 0;
  for (const row of result.rows) {
    for (const value of row) bytes += value === null ? 0 : Buffer.byteLength(String(value));
  }
  if (bytes > MAX_RESULT_BYTES) throw badRequest('Database returned more than the allowed response size limit');
}

export const toRecords = (result: RawResult, options: ResultOptions) =>
  result.rows.map((row) => row.map((value, i) => toField(value, result.fields[i]!.typeId, options)));

/** formattedRecords: a JSON string, with integer digits written verbatim. */
export const toFormattedRecords = (result: RawResult, options: ResultOptions) =>
  result.rows.map((row) =>
    Object.fromEntries(row.map((value, i) => [result.fields[i]!.name, toJsonValue(value, result.fields[i]!.typeId, options)])),
  );

/** What the catalog says about a result column (pg backend only). */
export interface ColumnSource {
  schemaName: string;
  tableName: string;
  notNull: boolean;
  autoIncrement: boolean;
}

const SERIALS: Record<string, string> = { int2: 'smallserial', int4: 'serial', int8: 'bigserial' };

export function toColumnMetadata(field: ResultField, source: ColumnSource | undefined, typeNames: Map<number, string>) {
  const element = ARRAY_ELEMENTS[field.typeId];
  const type = TYPES[field.typeId];
  const name = element !== undefined ? `_${TYPES[element]!.name}` : type?.name ?? typeNames.get(field.typeId) ?? 'unknown';
  const kind = kindOf(field.typeId);
  const mod = (field.typeModifier ?? -1) - 4;
  let precision = type?.precision ?? MAX;
  let scale = 0;
  if (field.typeId === 1700 && mod >= 0) {
    precision = (mod >> 16) & 0xffff;
    scale = mod & 0xffff;
  } else if ((field.typeId === 1042 || field.typeId === 1043) && mod >= 0) {
    precision = mod;
  }
  return {
    name: field.name,
    label: field.name,
    type: element !== undefined ? 2003 : type?.jdbc ?? 1111,
    typeName: source?.autoIncrement ? SERIALS[name] ?? name : name,
    schemaName: source?.schemaName ?? '',
    tableName: source?.tableName ?? '',
    isAutoIncrement: source?.autoIncrement ?? false,
    isSigned: kind === 'long' || kind === 'double' || kind === 'decimal',
    isCurrency: name === 'money',
    isCaseSensitive: kind === 'string' && element === undefined,
    // java.sql.ResultSetMetaData: 0 columnNoNulls, 1 columnNullable
    nullable: source?.notNull ? 0 : 1,
    precision,
    scale,
    arrayBaseColumnType: element !== undefined ? TYPES[element]!.jdbc : 0,
  };
}
