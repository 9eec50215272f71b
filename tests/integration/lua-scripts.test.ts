import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import '../../lib/likes/scripts';
import '../../lib/platform/cache';
import '../../lib/platform/lock';
import '../../lib/points/scripts';
import '../../lib/trending/counts';
import streamPrelude from '../../lib/likes/lua/likes-stream.prelude.lua';
import { entryAfter } from '../../lib/likes/sync';
import { declaredScripts } from '../../lib/platform/redis/scripts';
import { projectRoot } from '../../local/env';
import { masters, testRedis, type TestRedisClient } from '../support/redis-nodes';

/**
 * Every Lua script as declared (its preludes joined in front of its own
 * text) compiles in real Redis, every script file is the body of a declared
 * script and every prelude is joined into one, and the one TypeScript twin of
 * shared Lua agrees with it. Slots: tests/integration/cluster-slots.test.ts.
 */

let raw: TestRedisClient;
beforeAll(() => {
  raw = testRedis();
});
afterAll(() => raw.disconnect());

const libFiles = readdirSync(join(projectRoot, 'lib'), { recursive: true }).map(String).filter((file) => file.endsWith('.lua'));
const text = (file: string) => readFileSync(join(projectRoot, 'lib', file), 'utf8');
const scripts = declaredScripts();

it('loads every declared script, as joined, into every master (SCRIPT LOAD compiles it), under its own SHA', async () => {
  expect(scripts.length).toBeGreaterThan(0);
  for (const node of await masters(raw)) {
    for (const script of scripts) {
      const loaded = await node.script('LOAD', script.source).catch((error: Error) => `${script.name}: ${error.message}`);
      expect(loaded).toBe(script.sha1);
    }
  }
});

it('declares every script file under lib/ and joins every prelude into some script', () => {
  const bodies = libFiles.filter((file) => !file.endsWith('.prelude.lua'));
  const preludes = libFiles.filter((file) => file.endsWith('.prelude.lua'));
  expect(bodies.filter((file) => !scripts.some((script) => script.source.endsWith(text(file))))).toEqual([]);
  expect(preludes.filter((file) => !scripts.some((script) => script.source.startsWith(text(file)) || script.source.includes(`\n${text(file)}`)))).toEqual([]);
});

it('opens every script file, prelude or not, with its comment', () => {
  expect(libFiles.filter((file) => !text(file).startsWith('-- '))).toEqual([]);
});

describe("stream entry ids: the Lua id_before and lib/likes/sync.ts's entryAfter agree", () => {
  const cases: [string, string][] = [
    ['0-0', '0-1'],
    ['0-1', '0-0'],
    ['5-5', '5-5'],
    ['1733400000000-0', '1733400000000-1'],
    ['1733400000000-9', '1733400000000-10'], // numbers, not text: 9 < 10
    ['1733400000000-10', '1733400000000-9'],
    ['999-0', '1000-0'], // a shorter ms sorts first
    ['1733400000001-0', '1733400000000-99999'],
    ['1733400000000-99999', '1733400000001-0'],
    ['9007199254740-1', '9007199254740-2'],
    ['1-9007199254740991', '2-0'],
    ['2-0', '1-9007199254740991'],
  ];
  const before = (a: string, b: string) => raw.eval(`${streamPrelude}\nreturn id_before(ARGV[1], ARGV[2]) and 1 or 0`, 0, a, b) as Promise<number>;

  it.each(cases)('%s before %s', async (a, b) => {
    expect((await before(a, b)) === 1).toBe(entryAfter(b, a));
  });
});
