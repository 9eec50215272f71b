import { Logger } from '@aws-lambda-powertools/logger';

/** Structured JSON logs; level from POWERTOOLS_LOG_LEVEL (tests set SILENT). */
export const logger = new Logger({ serviceName: 'likes-points-popular' });
