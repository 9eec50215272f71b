/**
 * Calendar dates in the business time zone. A date is 'YYYY-MM-DD'; turning a
 * date into an instant is left to PostgreSQL (`AT TIME ZONE`) wherever a query
 * needs it, so DST rules live in one place. Only the cache TTL needs an
 * instant here, and it is a safety net, not a correctness boundary.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let found = formatters.get(timeZone);
  if (!found) {
    found = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, found);
  }
  return found;
}

/** The wall clock in `timeZone` at `instant`, written as if it were UTC. */
function wallClockAsUtc(instant: Date, timeZone: string): number {
  const parts: Record<string, number> = {};
  for (const { type, value } of formatter(timeZone).formatToParts(instant)) parts[type] = Number(value);
  return Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!, instant.getUTCMilliseconds());
}

const isoDate = (utcMs: number): string => new Date(utcMs).toISOString().slice(0, 10);

/** The calendar date in `timeZone` at `instant`. */
export function businessDate(instant: Date, timeZone: string): string {
  return isoDate(wallClockAsUtc(instant, timeZone));
}

/** `date` moved by `days` calendar days (negative goes back). */
export function addDays(date: string, days: number): string {
  return isoDate(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000);
}

/**
 * Milliseconds from `instant` to the next midnight in `timeZone`. The UTC
 * offset is read twice: once now and once at the first guess, because a DST
 * change before midnight moves midnight by the change.
 */
export function msUntilNextMidnight(instant: Date, timeZone: string): number {
  const midnightWall = Date.parse(`${addDays(businessDate(instant, timeZone), 1)}T00:00:00Z`);
  const offsetAt = (at: number) => wallClockAsUtc(new Date(at), timeZone) - at;
  const guess = midnightWall - offsetAt(instant.getTime());
  const corrected = midnightWall - offsetAt(guess);
  // Where 00:00 does not exist (a DST jump at midnight, e.g. America/Santiago)
  // the corrected guess falls back into today; the day then starts at the
  // jump, which the first guess (always after `instant`) lands on.
  return (corrected > instant.getTime() ? corrected : guess) - instant.getTime();
}
