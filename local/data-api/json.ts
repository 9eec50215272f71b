/**
 * JSON in and out with 64-bit integers intact. JSON.parse/stringify go
 * through JS numbers, which would round 9223372036854775807; AWS writes and
 * reads those digits exactly, and the client decides what to do with them.
 */

/** Text written into the JSON output verbatim (a number literal). */
export class RawJson {
  constructor(readonly text: string) {}
}

export function toJson(value: unknown): string {
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value)) return `[${value.map((v) => toJson(v ?? null)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.entries(value).filter(([, v]) => v !== undefined);
    return `{${members.map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * Parses a request body, keeping every `"longValue": <integer>` as a string
 * of its digits. A quote inside a JSON string is always escaped, so a
 * `"longValue"` not preceded by a backslash is a real key.
 */
export function parseRequestJson(body: string): unknown {
  return JSON.parse(body.replace(/(?<!\\)("longValue"\s*:\s*)(-?\d+)(?=\s*[,}])/g, '$1"$2"'));
}
