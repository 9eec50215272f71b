/**
 * Errors the local Data API answers with. The SDK names the error it throws
 * after the `x-amzn-errortype` header, so `type` is what callers see as
 * `error.name`; `status` follows the HTTP code in the service model.
 */
export class ApiError extends Error {
  constructor(
    readonly type: string,
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export const badRequest = (message: string) => new ApiError('BadRequestException', 400, message);

/**
 * The Data API for Aurora Serverless v2 / provisioned clusters reports SQL
 * failures as DatabaseErrorException (HTTP 400), e.g.
 * "ERROR: relation "x" does not exist; Position: 13; SQLState: 42P01".
 * The retired v1 Data API used BadRequestException for the same thing.
 */
export const SQL_ERROR_TYPE = 'DatabaseErrorException';

interface PgLikeError {
  severity?: string;
  code?: string;
  message: string;
  detail?: string;
  hint?: string;
  position?: string;
}

export function isPgError(err: unknown): err is PgLikeError {
  const e = err as PgLikeError | null;
  return typeof e?.severity === 'string' && typeof e.code === 'string' && typeof e.message === 'string';
}

/** The PostgreSQL error as the Data API phrases it: the SQLSTATE only survives in the text. */
export function sqlError(err: PgLikeError): ApiError {
  const parts = [`${err.severity}: ${err.message}`];
  if (err.detail) parts.push(`Detail: ${err.detail}`);
  if (err.hint) parts.push(`Hint: ${err.hint}`);
  if (err.position) parts.push(`Position: ${err.position}`);
  parts.push(`SQLState: ${err.code}`);
  return new ApiError(SQL_ERROR_TYPE, 400, parts.join('; '));
}

/** Anything thrown while serving a call, as the error the client should get. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (isPgError(err)) return sqlError(err);
  const e = err as { code?: unknown; message?: unknown } | null;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  // Node socket errors (ECONNREFUSED, ...) and pg's connect/terminate errors
  // mean the database could not be reached; the SDK retries this one.
  if (typeof e?.code === 'string' || /connect|Connection terminated|closed/i.test(message)) {
    return new ApiError('DatabaseUnavailableException', 504, message);
  }
  return new ApiError('InternalServerErrorException', 500, message);
}
