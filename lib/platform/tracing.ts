import type { Tracer } from '@aws-lambda-powertools/tracer';
import { config } from './config';
import { SERVICE_NAME } from './logger';

/**
 * X-Ray tracing through Powertools Tracer, only when TRACING_ENABLED (the
 * stage's `tracing` param, which also turns on Lambda's active tracing).
 *
 * The Tracer and the X-Ray SDK it loads are required on first use, not at
 * import, and are not bundled (below): with tracing off (the default) no
 * function pays for them. Outside Lambda the Tracer disables itself, so
 * locally this is a no-op.
 */

let tracer: Tracer | undefined;

/**
 * Required by a name esbuild cannot see, so no bundle carries the Tracer and
 * the X-Ray SDK (about a fifth of every zip, read at every cold start). With
 * tracing on, deploy/resources.js adds the Powertools for AWS Lambda
 * (TypeScript) layer, whose /opt/nodejs/node_modules Lambda's NODE_PATH
 * already searches; locally and in tests it is the installed package.
 */
const TRACER_MODULE = '@aws-lambda-powertools/tracer';
const runtimeRequire: NodeJS.Require = require;

function tracerIfEnabled(): Tracer | undefined {
  if (!config().tracing) return undefined;
  if (!tracer) {
    const { Tracer: TracerClass } = runtimeRequire(TRACER_MODULE) as typeof import('@aws-lambda-powertools/tracer');
    tracer = new TracerClass({ serviceName: SERVICE_NAME });
  }
  return tracer.isTracingEnabled() ? tracer : undefined;
}

/**
 * Wraps an AWS SDK v3 client so each call is a subsegment. Owners of SDK
 * clients (lib/platform/db's RDSDataClient) pass theirs through this.
 */
export function traceAwsClient<T>(client: T): T {
  return tracerIfEnabled()?.captureAWSv3Client(client) ?? client;
}

/** Runs one invocation inside a `## <name>` subsegment annotated with cold start, service and route. */
export async function traceInvocation<T>(name: string, annotations: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const active = tracerIfEnabled();
  const parent = active?.getSegment();
  if (!active || !parent) return fn();
  const segment = parent.addNewSubsegment(`## ${name}`);
  active.setSegment(segment);
  active.annotateColdStart();
  active.addServiceNameAnnotation();
  for (const [key, value] of Object.entries(annotations)) active.putAnnotation(key, value);
  try {
    return await fn();
  } catch (error) {
    active.addErrorAsMetadata(error as Error);
    throw error;
  } finally {
    segment.close();
    active.setSegment(parent);
  }
}
