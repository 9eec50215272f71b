import * as z from 'zod/mini';
import { db, type Database } from '../platform/db';
import { BalanceLimitExceededError } from '../platform/errors';
import { callParams, changeBalance, noAccount, type BalanceRequest, type PointsDeps, type Verdict } from './balance';
import CHARGE from './charge.sql';
import { keyParams, type Reply } from './idempotency';

/**
 * Points: reading a balance and charging it. A charge is a balance change
 * (lib/points/balance: the lock, the fencing and the one statement).
 */

export const CHARGE_ROUTE = 'POST /points/charge';
export const MAX_CHARGE = 1_000_000;
export const MAX_BALANCE = 100_000_000;

export const chargeRequest = z.object({ amount: z.number().check(z.int(), z.minimum(1), z.maximum(MAX_CHARGE)) });

export async function getBalance(userId: number, database: Database = db()): Promise<{ userId: number; balance: number }> {
  // A committed read needs no lock: it sees each change whole or not at all.
  const { rows } = await database.query<{ balance: number }>('SELECT point_balance AS balance FROM users WHERE id = :userId', { userId });
  if (!rows[0]) throw noAccount(userId);
  return { userId, balance: rows[0].balance };
}

export interface ChargeReceipt {
  userId: number;
  charged: number;
  balance: number;
  historyId: number;
}

export async function chargePoints(request: BalanceRequest & { amount: number }, deps: PointsDeps = {}): Promise<Reply<ChargeReceipt>> {
  return changeBalance<ChargeReceipt>(request, 200, deps, async (database, call) => {
    const { rows } = await database.query<Verdict>(
      CHARGE,
      {
        userId: request.userId,
        amount: request.amount,
        maxBalance: MAX_BALANCE,
        ...callParams(call),
        ...keyParams(CHARGE_ROUTE, request.idempotency),
      },
      { timeoutMs: call.timeoutMs },
    );
    const verdict = rows[0]!;
    if (verdict.outcome === 'over_limit') {
      throw new BalanceLimitExceededError(`balance ${verdict.balance} plus ${request.amount} would exceed ${MAX_BALANCE}`);
    }
    return verdict;
  });
}
