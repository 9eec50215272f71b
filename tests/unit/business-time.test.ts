import { addDays, businessDate, msUntilNextMidnight } from '../../lib/platform/business-time';

const HOUR = 3_600_000;
const at = (iso: string) => new Date(iso);

describe('businessDate', () => {
  it('is the calendar date in the zone, not in UTC (Asia/Seoul is UTC+9)', () => {
    expect(businessDate(at('2024-03-09T14:59:59.999Z'), 'Asia/Seoul')).toBe('2024-03-09'); // 23:59:59.999 KST
    expect(businessDate(at('2024-03-09T15:00:00Z'), 'Asia/Seoul')).toBe('2024-03-10'); // 00:00 KST
    expect(businessDate(at('2024-03-09T15:00:00Z'), 'UTC')).toBe('2024-03-09');
  });

  it('follows DST in zones that have it', () => {
    // New York: EST (UTC-5) until 2024-03-10 02:00, then EDT (UTC-4).
    expect(businessDate(at('2024-03-10T04:59:59Z'), 'America/New_York')).toBe('2024-03-09');
    expect(businessDate(at('2024-03-10T05:00:00Z'), 'America/New_York')).toBe('2024-03-10');
    expect(businessDate(at('2024-03-11T03:59:59Z'), 'America/New_York')).toBe('2024-03-10');
    expect(businessDate(at('2024-03-11T04:00:00Z'), 'America/New_York')).toBe('2024-03-11');
  });
});

describe('addDays', () => {
  it('moves across month, leap day and year ends', () => {
    expect(addDays('2024-03-10', -30)).toBe('2024-02-09');
    expect(addDays('2024-03-01', -1)).toBe('2024-02-29');
    expect(addDays('2023-03-01', -1)).toBe('2023-02-28');
    expect(addDays('2024-01-01', -1)).toBe('2023-12-31');
    expect(addDays('2023-12-31', 1)).toBe('2024-01-01');
  });
});

describe('msUntilNextMidnight', () => {
  it('reaches the next 00:00 in the zone', () => {
    expect(msUntilNextMidnight(at('2024-03-09T15:00:00Z'), 'Asia/Seoul')).toBe(24 * HOUR); // at midnight: a whole day
    expect(msUntilNextMidnight(at('2024-03-09T14:59:59Z'), 'Asia/Seoul')).toBe(1000);
    expect(msUntilNextMidnight(at('2024-03-09T03:00:00Z'), 'Asia/Seoul')).toBe(12 * HOUR); // noon KST
  });

  it('counts the hour a DST change adds or removes before midnight', () => {
    // 2024-03-10 in New York has 23 hours; 2024-11-03 has 25.
    expect(msUntilNextMidnight(at('2024-03-10T05:00:00Z'), 'America/New_York')).toBe(23 * HOUR);
    expect(msUntilNextMidnight(at('2024-11-03T04:00:00Z'), 'America/New_York')).toBe(25 * HOUR);
  });

  it('starts the day at the jump where 00:00 does not exist', () => {
    // Santiago moved clocks from 24:00 to 01:00 on 2022-09-11 (UTC-4 to UTC-3).
    const lateEvening = at('2022-09-11T03:30:00Z'); // 23:30 on the 10th, UTC-4
    expect(msUntilNextMidnight(lateEvening, 'America/Santiago')).toBe(HOUR / 2);
  });
});
