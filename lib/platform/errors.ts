/**
 * The one error hierarchy. Domain code throws these; lib/platform/http maps them to
 * RFC 9457 problem+json. Anything that is not an AppError becomes a 500 that
 * carries no internals, or a 503 when lib/platform/dependency-errors
 * recognizes it as a dependency being unreachable.
 */

export type ErrorCode =
  | 'VALIDATION_ERROR'
  | 'UNAUTHORIZED'
  | 'NOT_FOUND'
  | 'INSUFFICIENT_BALANCE'
  | 'OUT_OF_STOCK'
  | 'BALANCE_LIMIT_EXCEEDED'
  | 'LOCK_TIMEOUT'
  | 'IDEMPOTENCY_IN_PROGRESS'
  | 'IDEMPOTENCY_KEY_REUSED'
  | 'DEPENDENCY_UNAVAILABLE'
  | 'INTERNAL';

export abstract class AppError extends Error {
  abstract readonly status: number;
  abstract readonly code: ErrorCode;
  abstract readonly title: string;
  /** Seconds a client should wait before retrying, sent as Retry-After. */
  readonly retryAfterSeconds: number | undefined = undefined;

  constructor(readonly detail: string, options?: { cause?: unknown }) {
    super(detail, options);
    this.name = new.target.name;
  }
}

export class ValidationError extends AppError {
  readonly status = 400;
  readonly code = 'VALIDATION_ERROR';
  readonly title = 'Invalid request';
}

export class UnauthorizedError extends AppError {
  readonly status = 401;
  readonly code = 'UNAUTHORIZED';
  readonly title = 'Unauthorized';
}

export class NotFoundError extends AppError {
  readonly status = 404;
  readonly code = 'NOT_FOUND';
  readonly title = 'Not found';
}

export class InsufficientBalanceError extends AppError {
  readonly status = 409;
  readonly code = 'INSUFFICIENT_BALANCE';
  readonly title = 'Insufficient balance';
}

export class OutOfStockError extends AppError {
  readonly status = 409;
  readonly code = 'OUT_OF_STOCK';
  readonly title = 'Out of stock';
}

export class BalanceLimitExceededError extends AppError {
  readonly status = 409;
  readonly code = 'BALANCE_LIMIT_EXCEEDED';
  readonly title = 'Balance limit exceeded';
}

export class LockTimeoutError extends AppError {
  readonly status = 409;
  readonly code = 'LOCK_TIMEOUT';
  readonly title = 'Busy, try again';
  override readonly retryAfterSeconds: number;
  constructor(detail: string, retryAfterSeconds = 1) {
    super(detail);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export class IdempotencyInProgressError extends AppError {
  readonly status = 409;
  readonly code = 'IDEMPOTENCY_IN_PROGRESS';
  readonly title = 'Request in progress';
  /** The first request usually finishes within a second; its reply is then replayed. */
  override readonly retryAfterSeconds: number;
  constructor(detail: string, retryAfterSeconds = 1) {
    super(detail);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export class IdempotencyKeyReusedError extends AppError {
  readonly status = 422;
  readonly code = 'IDEMPOTENCY_KEY_REUSED';
  readonly title = 'Idempotency key reused';
}

export class DependencyUnavailableError extends AppError {
  readonly status = 503;
  readonly code = 'DEPENDENCY_UNAVAILABLE';
  readonly title = 'Service unavailable';
  override readonly retryAfterSeconds: number;
  constructor(
    readonly dependency: 'redis' | 'database' | 'stream',
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(`${dependency} is unavailable`, options);
    this.retryAfterSeconds = options?.retryAfterSeconds ?? 1;
  }
}

/** A bug or an unexpected state: mapped to a bare 500, logged with its cause. */
export class InternalError extends AppError {
  readonly status = 500;
  readonly code = 'INTERNAL';
  readonly title = 'Internal error';
}
