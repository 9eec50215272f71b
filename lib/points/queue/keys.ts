import { userTag } from '../keys';

/**
 * The queued point requests' Redis key (lib/points/keys has the schema's
 * other keys and the hash tag):
 *
 *   qreq:{u:<id>}:<requestId>   STRING  "<request hash or -> <nonce>": the request was accepted
 *                                       (lib/points/lua/point-request-accept.lua), for POINT_REQUEST_MARKER_TTL_S
 *
 * Losing it only turns a request that is still PENDING into a 404 until it
 * is applied, and lets a repeated Idempotency-Key with another body be
 * accepted (its apply then answers 422 from idempotency_keys, or finds the
 * request id's outcome row): the database stays the record.
 */
export const acceptedMarkerKey = (userId: number, requestId: string): string => `qreq:${userTag(userId)}:${requestId}`;
