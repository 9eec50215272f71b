import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import JSZip from 'jszip';
import { projectRoot } from '../../local/env';
import packageJson from '../../package.json';

/**
 * What a deploy would create (issue 12), read from the CloudFormation
 * template `npm run package:prod` writes: one role per function with only
 * the calls it makes, the HTTP API access log and throttling, the
 * Scheduler's retries and dead letters, alarms, and with the VPC params the
 * rds-data interface endpoint.
 */

interface Resource {
  Type: string;
  Properties: Record<string, any>;
  DependsOn?: unknown;
}
type Template = Record<string, Resource>;
interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
}

const [, ...scriptArgs] = packageJson.scripts['package:prod'].split(' ');
const params = Object.fromEntries(
  scriptArgs.filter((arg) => arg.startsWith('--param=')).map((arg) => arg.slice('--param='.length).split(/=(.*)/s).slice(0, 2) as [string, string]),
);
// The VPC run also names the Redis AUTH token's SSM parameter (read at cold
// start) and turns tracing on.
const powertoolsLayer = 'arn:aws:lambda:ap-northeast-2:094274105915:layer:AWSLambdaPowertoolsTypeScriptV2:40';
const vpcParams = [
  '--param=tracing=true',
  `--param=tracingLayerArn=${powertoolsLayer}`,
  '--param=vpcSubnetIds=subnet-aaa,subnet-bbb',
  '--param=vpcSecurityGroupIds=sg-fn',
  '--param=vpcId=vpc-123',
  '--param=redisAuthParameter=/likes/prod/redis-auth',
];
/** The functions that connect to Redis, and so may read its token. */
const REDIS_USERS: string[] = ['health', 'like', 'unlike', 'like-status', 'charge', 'pay', 'popular-items', 'trending-items', 'evict-popular-items', 'sync-likes', 'point-request', 'apply-point-requests'];

/** The bundled code of every zip, by function. */
const bundles = new Map<string, string>();

async function packageTemplate(extra: string[]): Promise<Template> {
  const outDir = await mkdtemp(join(tmpdir(), 'template-'));
  const workFolder = join('.esbuild', `template-${randomBytes(4).toString('hex')}`);
  const serverless = join(projectRoot, 'node_modules', 'serverless', 'bin', 'serverless.js');
  try {
    await promisify(execFile)(process.execPath, [serverless, ...scriptArgs, ...extra, '--package', outDir], {
      cwd: projectRoot,
      env: { ...process.env, ESBUILD_WORK_FOLDER: workFolder },
      maxBuffer: 16 * 1024 * 1024,
    });
    for (const file of (await readdir(outDir)).filter((name) => name.endsWith('.zip'))) {
      const zip = await JSZip.loadAsync(await readFile(join(outDir, file)));
      const code = await Promise.all(Object.values(zip.files).filter((f) => f.name.endsWith('.js')).map((f) => f.async('string')));
      bundles.set(file.replace(/\.zip$/, ''), code.join('\n'));
    }
    return JSON.parse(await readFile(join(outDir, 'cloudformation-template-update-stack.json'), 'utf8')).Resources as Template;
  } catch (error) {
    const { stdout, stderr, message } = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`serverless package failed: ${message}\n${stdout ?? ''}\n${stderr ?? ''}`);
  } finally {
    await rm(outDir, { recursive: true, force: true });
    await rm(join(projectRoot, workFolder), { recursive: true, force: true });
  }
}

let plain: Template;
let inVpc: Template;
beforeAll(async () => {
  // One after the other: the machine's cores are shared.
  plain = await packageTemplate([]);
  inVpc = await packageTemplate(vpcParams);
}, 240_000);

const ofType = (template: Template, type: string) => Object.entries(template).filter(([, resource]) => resource.Type === type);
const asList = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);
const statementsOf = (role: Resource): Statement[] =>
  (role.Properties.Policies ?? []).flatMap((policy: { PolicyDocument: { Statement: Statement[] } }) => policy.PolicyDocument.Statement);
const functionIdOf = (name: string) => `${name.charAt(0).toUpperCase()}${name.slice(1).replace(/-/g, 'Dash')}LambdaFunction`;

const LOGS = ['logs:CreateLogStream', 'logs:PutLogEvents'];
const STATEMENT = ['rds-data:ExecuteStatement', 'secretsmanager:GetSecretValue'];
/** A scheduled function's failed run goes to the dead-letter queue with the function's own role. */
const DEAD_LETTER = ['sqs:SendMessage'];
const DEAD_LETTER_QUEUE = { 'Fn::GetAtt': ['ScheduledDeadLetterQueue', 'Arn'] };
const SCHEDULED = ['evict-popular-items', 'purge-idempotency-keys', 'sync-likes'];
/** Queued point requests: the stream, and what the mapping and the dead-letter reader call. */
const STREAM = { 'Fn::GetAtt': ['PointRequestStream', 'Arn'] };
const FAILURE_QUEUE = { 'Fn::GetAtt': ['PointRequestFailureQueue', 'Arn'] };
const PUT = ['kinesis:PutRecord'];
const CONSUME = ['kinesis:DescribeStream', 'kinesis:DescribeStreamSummary', 'kinesis:GetRecords', 'kinesis:GetShardIterator', 'kinesis:ListShards', 'sqs:SendMessage'];
const DEAD_LETTERS = ['kinesis:GetRecords', 'kinesis:GetShardIterator', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:ReceiveMessage'];
const STREAM_USERS = ['charge', 'pay', 'apply-point-requests', 'reject-point-requests'];
/**
 * What each function calls, written down independently of deploy/resources.js:
 * every balance change, like, ranking and purge is one SQL statement (its own
 * transaction), sync-likes' batches too; openapi calls nothing.
 */
const CALLS: Record<string, string[]> = {
  health: [...LOGS, ...STATEMENT],
  like: [...LOGS, ...STATEMENT],
  unlike: [...LOGS, ...STATEMENT],
  'like-status': [...LOGS, ...STATEMENT],
  charge: [...LOGS, ...STATEMENT, ...PUT],
  pay: [...LOGS, ...STATEMENT, ...PUT],
  'point-request': [...LOGS, ...STATEMENT],
  'apply-point-requests': [...LOGS, ...STATEMENT, ...CONSUME],
  'reject-point-requests': [...LOGS, ...STATEMENT, ...DEAD_LETTERS],
  'popular-items': [...LOGS, ...STATEMENT],
  'trending-items': [...LOGS, ...STATEMENT],
  'evict-popular-items': [...LOGS, ...STATEMENT, ...DEAD_LETTER],
  'purge-idempotency-keys': [...LOGS, ...STATEMENT, ...DEAD_LETTER],
  'sync-likes': [...LOGS, ...STATEMENT, ...DEAD_LETTER],
  openapi: [...LOGS],
};
const ENI = ['ec2:AssignPrivateIpAddresses', 'ec2:CreateNetworkInterface', 'ec2:DeleteNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:UnassignPrivateIpAddresses'];

/** Each Lambda function by its serverless.yml name, with the role resource it runs as. */
function functionsWithRoles(template: Template) {
  return ofType(template, 'AWS::Lambda::Function').map(([, fn]) => {
    const name = String(fn.Properties.FunctionName).replace(/^likes-points-popular-prod-/, '');
    const roleId = fn.Properties.Role['Fn::GetAtt']?.[0] as string;
    return { name, fn, roleId, role: template[roleId]! };
  });
}

describe('IAM', () => {
  it('gives every function a role of its own; the shared default role is gone', () => {
    const functions = functionsWithRoles(plain);
    // A new function needs its line in CALLS (and in deploy/resources.js) to pass.
    expect(Object.keys(CALLS)).toEqual(expect.arrayContaining(functions.map((f) => f.name)));
    expect(functions.map((f) => f.name)).toEqual(expect.arrayContaining(['health', 'like', 'charge', 'pay', 'popular-items', 'openapi']));
    expect(new Set(functions.map((f) => f.roleId)).size).toBe(functions.length);
    for (const { roleId, role } of functions) {
      expect({ roleId, type: role?.Type }).toEqual({ roleId, type: 'AWS::IAM::Role' });
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        { Effect: 'Allow', Principal: { Service: ['lambda.amazonaws.com'] }, Action: ['sts:AssumeRole'] },
      ]);
    }
    expect(plain.IamRoleLambdaExecution).toBeUndefined();
  });

  it('grants each function exactly the actions it calls, on its own log group, the cluster and the secret', () => {
    for (const { name, role } of functionsWithRoles(plain)) {
      const statements = statementsOf(role);
      expect(statements.every((s) => s.Effect === 'Allow')).toBe(true);
      const actions = statements.flatMap((s) => asList(s.Action)).sort();
      expect({ name, actions }).toEqual({ name, actions: [...CALLS[name]!].sort() });
      for (const statement of statements) {
        const resources = asList(statement.Resource);
        const service = asList(statement.Action)[0]!.split(':')[0];
        const expected = {
          logs: [{ 'Fn::GetAtt': [`${functionIdOf(name).replace(/LambdaFunction$/, '')}LogGroup`, 'Arn'] }],
          'rds-data': [params.dbClusterArn],
          secretsmanager: [params.dbSecretArn],
          ...(SCHEDULED.includes(name) ? { sqs: [DEAD_LETTER_QUEUE] } : {}),
          ...(STREAM_USERS.includes(name) ? { kinesis: [STREAM], sqs: [FAILURE_QUEUE] } : {}),
        }[service!];
        expect({ name, service, resources }).toEqual({ name, service, resources: expected });
      }
    }
  });

  it('adds the network-interface actions only in a VPC, and the Redis token parameter only to functions that use Redis', () => {
    for (const { name, role, fn } of functionsWithRoles(inVpc)) {
      const actions = statementsOf(role).flatMap((s) => asList(s.Action));
      const ssm = REDIS_USERS.includes(name) ? ['ssm:GetParameter'] : [];
      const xray = ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'];
      expect({ name, actions: [...actions].sort() }).toEqual({ name, actions: [...CALLS[name]!, ...ENI, ...ssm, ...xray].sort() });
      const parameter = statementsOf(role).find((s) => asList(s.Action).includes('ssm:GetParameter'));
      if (parameter) {
        expect(parameter.Resource).toEqual({ 'Fn::Sub': 'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/likes/prod/redis-auth' });
      }
      expect(fn.Properties.VpcConfig).toEqual({ SecurityGroupIds: ['sg-fn'], SubnetIds: ['subnet-aaa', 'subnet-bbb'] });
    }
  });
});

it('traces only when asked, with the Powertools layer that carries the (unbundled) Tracer', () => {
  for (const { name, fn } of functionsWithRoles(plain)) {
    expect({ name, tracing: fn.Properties.TracingConfig, layers: fn.Properties.Layers }).toEqual({ name, tracing: undefined, layers: undefined });
    expect(statementsOf(functionsWithRoles(plain).find((f) => f.name === name)!.role).flatMap((s) => asList(s.Action))).not.toContain('xray:PutTraceSegments');
  }
  for (const { name, fn } of functionsWithRoles(inVpc)) {
    expect({ name, tracing: fn.Properties.TracingConfig, layers: fn.Properties.Layers }).toEqual({ name, tracing: { Mode: 'Active' }, layers: [powertoolsLayer] });
    expect(fn.Properties.Environment.Variables.TRACING_ENABLED).toBe('true');
  }
  // The X-Ray SDK (captureHTTPsGlobal is one of its functions) stays out of every zip.
  expect(bundles.size).toBeGreaterThan(0);
  for (const [name, code] of bundles) expect({ name, xraySdk: code.includes('captureHTTPsGlobal') }).toEqual({ name, xraySdk: false });
});

describe('HTTP API', () => {
  it('writes an access log line per request, keyed by the request id that problem bodies carry as instance', () => {
    const stage = plain.HttpApiStage!;
    expect(stage.Properties.AccessLogSettings.DestinationArn).toEqual({ 'Fn::GetAtt': ['HttpApiLogGroup', 'Arn'] });
    const format = JSON.parse(stage.Properties.AccessLogSettings.Format) as Record<string, string>;
    expect(format).toMatchObject({ requestId: '$context.requestId', routeKey: '$context.routeKey', status: '$context.status', authorizerError: '$context.authorizer.error' });
    expect(plain.HttpApiLogGroup!.Properties.RetentionInDays).toBeGreaterThan(0);
  });

  it('throttles at the stage', () => {
    const settings = plain.HttpApiStage!.Properties.DefaultRouteSettings;
    expect(settings.ThrottlingRateLimit).toBeGreaterThan(0);
    expect(settings.ThrottlingBurstLimit).toBeGreaterThanOrEqual(settings.ThrottlingRateLimit);
  });
});

describe('scheduled functions', () => {
  // sync-likes joins these once it is in serverless.yml.
  const scheduledNow = () => SCHEDULED.filter((name) => plain[functionIdOf(name)] !== undefined);

  it('are retried by the Scheduler, then dead-lettered to a queue, under a role that may invoke only them', () => {
    const scheduled = scheduledNow();
    expect(scheduled).toEqual(expect.arrayContaining(['evict-popular-items', 'purge-idempotency-keys']));
    const schedules = ofType(plain, 'AWS::Scheduler::Schedule').map(([, schedule]) => schedule.Properties.Target);
    expect(schedules.map((target) => target.Arn['Fn::GetAtt'][0]).sort()).toEqual(scheduled.map(functionIdOf).sort());
    for (const target of schedules) {
      expect(target).toMatchObject({
        RoleArn: { 'Fn::GetAtt': ['SchedulerRole', 'Arn'] },
        RetryPolicy: { MaximumRetryAttempts: expect.any(Number), MaximumEventAgeInSeconds: expect.any(Number) },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': ['ScheduledDeadLetterQueue', 'Arn'] } },
      });
    }
    expect(plain.ScheduledDeadLetterQueue!.Type).toBe('AWS::SQS::Queue');
    const role = plain.SchedulerRole!;
    expect(role.Properties.AssumeRolePolicyDocument.Statement[0].Principal).toEqual({ Service: ['scheduler.amazonaws.com'] });
    const grants = statementsOf(role).map((s) => ({ actions: asList(s.Action), resources: asList(s.Resource) }));
    expect(grants).toEqual([
      { actions: ['lambda:InvokeFunction'], resources: expect.arrayContaining(scheduled.map((name) => ({ 'Fn::GetAtt': [functionIdOf(name), 'Arn'] }))) },
      { actions: ['sqs:SendMessage'], resources: [{ 'Fn::GetAtt': ['ScheduledDeadLetterQueue', 'Arn'] }] },
    ]);
    expect(grants[0]!.resources).toHaveLength(scheduled.length);
  });

  it('a run that fails is retried by Lambda as fits its schedule, then sent to the dead-letter queue (async invoke config)', () => {
    for (const template of [plain, inVpc]) {
      const configs = ofType(template, 'AWS::Lambda::EventInvokeConfig').map(([, config]) => config.Properties);
      const byFunction = new Map(configs.map((config) => [config.FunctionName.Ref as string, config]));
      expect([...byFunction.keys()].sort()).toEqual(scheduledNow().map(functionIdOf).sort());
      for (const name of scheduledNow()) {
        const config = byFunction.get(functionIdOf(name))!;
        expect({ name, config }).toEqual({
          name,
          config: {
            FunctionName: { Ref: functionIdOf(name) },
            Qualifier: '$LATEST',
            MaximumRetryAttempts: expect.any(Number),
            MaximumEventAgeInSeconds: expect.any(Number),
            DestinationConfig: { OnFailure: { Destination: DEAD_LETTER_QUEUE } },
          },
        });
        // Lambda's bounds; an event is never retried past a day.
        expect(config.MaximumRetryAttempts).toBeGreaterThanOrEqual(0);
        expect(config.MaximumRetryAttempts).toBeLessThanOrEqual(2);
        expect(config.MaximumEventAgeInSeconds).toBeGreaterThanOrEqual(60);
        expect(config.MaximumEventAgeInSeconds).toBeLessThanOrEqual(21600);
        // The Scheduler's own deliveries give up no later than Lambda's retries.
        const schedule = ofType(template, 'AWS::Scheduler::Schedule').find(([, s]) => s.Properties.Target.Arn['Fn::GetAtt'][0] === functionIdOf(name))!;
        expect(schedule[1].Properties.Target.RetryPolicy.MaximumEventAgeInSeconds).toBe(config.MaximumEventAgeInSeconds);
      }
      // Every minute: the next run is the retry, and no event outlives the minute.
      if (byFunction.has(functionIdOf('sync-likes'))) {
        expect(byFunction.get(functionIdOf('sync-likes'))).toMatchObject({ MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 });
      }
    }
  });

  it('raise alarms when they fail and when a run is dead-lettered', () => {
    const scheduled = scheduledNow();
    const alarms = ofType(plain, 'AWS::CloudWatch::Alarm').map(([, alarm]) => alarm.Properties);
    for (const name of scheduled) {
      expect(alarms).toContainEqual(
        expect.objectContaining({ Namespace: 'AWS/Lambda', MetricName: 'Errors', Dimensions: [{ Name: 'FunctionName', Value: { Ref: functionIdOf(name) } }] }),
      );
    }
    expect(alarms).toContainEqual(expect.objectContaining({ Namespace: 'AWS/SQS', MetricName: 'ApproximateNumberOfMessagesVisible' }));
  });
});

it('alarms on API 5xx, dependency failures, lock timeouts and durable-like sync lag, all to one topic', () => {
  const alarms = ofType(plain, 'AWS::CloudWatch::Alarm').map(([, alarm]) => alarm.Properties);
  expect(alarms).toContainEqual(expect.objectContaining({ Namespace: 'AWS/ApiGateway', MetricName: '5xx', Dimensions: [{ Name: 'ApiId', Value: { Ref: 'HttpApi' } }] }));
  const metrics = ['DependencyFailure', 'LockTimeout', ...(plain.SyncDashlikesLambdaFunction ? ['LikeSyncLagMs'] : [])];
  for (const metric of metrics) {
    expect(alarms).toContainEqual(expect.objectContaining({ Namespace: 'LikesPointsPopular', MetricName: metric, Dimensions: [{ Name: 'service', Value: 'likes-points-popular' }] }));
  }
  for (const alarm of alarms) expect(alarm.AlarmActions).toEqual([{ Ref: 'AlarmTopic' }]);
});

describe('queued point requests', () => {
  it('creates the stream (on-demand, encrypted) and a consumer mapping that reports item failures, bisects, retries a bounded number of times and then sends to an alarmed queue', () => {
    expect(plain.PointRequestStream!.Properties).toMatchObject({
      StreamModeDetails: { StreamMode: 'ON_DEMAND' },
      RetentionPeriodHours: 24,
      StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
    });
    const mappings = ofType(plain, 'AWS::Lambda::EventSourceMapping').map(([, mapping]) => mapping.Properties);
    const consumer = mappings.find((mapping) => JSON.stringify(mapping.EventSourceArn) === JSON.stringify(STREAM));
    expect(consumer).toMatchObject({
      FunctionName: { 'Fn::GetAtt': [functionIdOf('apply-point-requests'), 'Arn'] },
      StartingPosition: 'TRIM_HORIZON',
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 0,
      ParallelizationFactor: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: 10,
      MaximumRecordAgeInSeconds: 3600,
      DestinationConfig: { OnFailure: { Destination: FAILURE_QUEUE } },
    });
    // The queue's reader ends the requests REJECTED 503.
    expect(mappings).toContainEqual(expect.objectContaining({ EventSourceArn: FAILURE_QUEUE, FunctionName: { 'Fn::GetAtt': [functionIdOf('reject-point-requests'), 'Arn'] } }));
    const alarms = ofType(plain, 'AWS::CloudWatch::Alarm').map(([, alarm]) => alarm.Properties);
    expect(alarms).toContainEqual(expect.objectContaining({ Namespace: 'AWS/SQS', MetricName: 'NumberOfMessagesSent', Threshold: 1 }));
    expect(alarms).toContainEqual(
      expect.objectContaining({ Namespace: 'AWS/Lambda', MetricName: 'IteratorAge', Dimensions: [{ Name: 'FunctionName', Value: { Ref: functionIdOf('apply-point-requests') } }] }),
    );
  });

  it('names the stream in the environment of the functions, and no local endpoint', () => {
    for (const [, fn] of ofType(plain, 'AWS::Lambda::Function')) {
      expect(fn.Properties.Environment.Variables).toMatchObject({ POINT_REQUEST_STREAM: 'likes-points-popular-prod-point-requests', KINESIS_ENDPOINT: '' });
    }
  });
});

describe('VPC', () => {
  it('creates no endpoint when the functions run outside a VPC', () => {
    expect(ofType(plain, 'AWS::EC2::VPCEndpoint')).toEqual([]);
  });

  it('creates the rds-data (and, for the Redis token, ssm) interface endpoints, with private DNS, reachable from the functions, when the VPC params are set', () => {
    const endpoints = ofType(inVpc, 'AWS::EC2::VPCEndpoint').map(([, endpoint]) => endpoint.Properties);
    const endpoint = (service: string) => ({
      VpcEndpointType: 'Interface',
      ServiceName: { 'Fn::Sub': `com.amazonaws.\${AWS::Region}.${service}` },
      VpcId: 'vpc-123',
      SubnetIds: ['subnet-aaa', 'subnet-bbb'],
      SecurityGroupIds: [{ Ref: 'VpcEndpointSecurityGroup' }],
      PrivateDnsEnabled: true,
    });
    // kinesis-streams: PutRecord from charge and pay, and the dead-letter reader's GetRecords.
    expect(endpoints).toEqual([endpoint('rds-data'), endpoint('ssm'), endpoint('kinesis-streams')]);
    expect(inVpc.VpcEndpointSecurityGroup!.Properties.SecurityGroupIngress).toEqual([
      { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, SourceSecurityGroupId: 'sg-fn' },
    ]);
  });
});

it('sets the user-id claim, and keeps secrets and the local shortcuts out of the environment', () => {
  for (const [, fn] of ofType(plain, 'AWS::Lambda::Function')) {
    const variables = fn.Properties.Environment.Variables as Record<string, string>;
    expect(variables).toMatchObject({ USER_ID_CLAIM: 'sub', DATA_API_ENDPOINT: '', STAGE: 'prod', TRACING_ENABLED: 'false' });
    // A password in the URL would sit in plain text in the function's configuration.
    expect(new URL(variables.REDIS_URL!).password).toBe('');
  }
});
