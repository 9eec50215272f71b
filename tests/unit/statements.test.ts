import { createHash } from 'node:crypto';
import { APPLY_SQL } from '../../lib/likes/sync';
import CHARGE from '../../lib/points/charge.sql';
import PAY from '../../lib/points/pay.sql';

/**
 * The statements that change balances and apply likes, each readable in one
 * place (lib/points/charge.sql, lib/points/pay.sql, lib/likes/sync.ts
 * APPLY_SQL), pinned: a change to what one sends to the database (comments
 * and layout aside) fails here until its fingerprint below is updated on
 * purpose, with the integration tests of that statement run.
 */

/** The statement as the database reads it: comments dropped, whitespace collapsed. */
const sqlOf = (text: string) =>
  text
    .split('\n')
    .filter((line) => !line.trim().startsWith('--'))
    .join('\n')
    .replace(/\s+/g, ' ')
    .trim();

const fingerprint = (text: string) => createHash('sha256').update(sqlOf(text)).digest('hex').slice(0, 16);

/** The named parameters a statement takes, in order of first use (`::casts` are not parameters). */
const parameters = (text: string) => [...new Set([...sqlOf(text).matchAll(/(?<!:):([A-Za-z]\w*)/g)].map((match) => match[1]))];

test.each([
  ['CHARGE', CHARGE, '4099dfd8d708b49a', ['userId', 'route', 'key', 'cutoffMs', 'sentAtMs', 'fence', 'amount', 'maxBalance', 'requestHash', 'requestId']],
  ['PAY', PAY, '2b349789a19032e6', ['userId', 'route', 'key', 'lines', 'cutoffMs', 'sentAtMs', 'fence', 'requestHash', 'requestId']],
  ['sync-likes apply', APPLY_SQL, '3dfed9e50295f31a', ['marks', 'changes']],
])('%s is the statement it was (fingerprint and parameters)', (_name, text, expected, names) => {
  expect(parameters(text)).toEqual(names);
  expect(fingerprint(text)).toBe(expected);
});

/** The parts every balance statement shares (lib/points/balance.ts settles their outcomes), the reply status aside. */
function sharedParts(text: string): string[] {
  const sql = sqlOf(text).replace(/, 20[01], /g, ', <status>, ');
  const cte = (name: string) => new RegExp(`${name} AS \\((?:[^()]|\\((?:[^()]|\\([^()]*\\))*\\))*\\)`).exec(sql)?.[0];
  const firstOutcomes = /WHEN clock_timestamp\(\).*?THEN 'stale_fence'/.exec(sql)?.[0];
  const reply = /SELECT verdict\.\*, receipt\.body FROM verdict LEFT JOIN receipt ON true$/.exec(sql)?.[0];
  const parts = [cte('prior'), cte('account'), firstOutcomes, cte('remembered'), cte('recorded'), reply];
  expect(parts.every((part) => part !== undefined)).toBe(true);
  return parts as string[];
}

test('CHARGE and PAY start and end alike: prior, account, the first outcomes, remembered, recorded and the reply', () => {
  expect(sharedParts(PAY)).toEqual(sharedParts(CHARGE));
  expect(sharedParts(CHARGE)[2]).toContain("'lock_wait' ELSE 'expired'");
});
