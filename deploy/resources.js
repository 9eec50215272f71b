// The CloudFormation that serverless.yml's `resources` adds, computed from the
// stage's params and the functions serverless.yml declares:
//
// - one IAM role per function, granting exactly the calls that function makes
//   (ACCESS below); a function missing from ACCESS fails packaging, so a new
//   function cannot silently inherit someone else's permissions;
// - a role and a dead-letter queue for the EventBridge Scheduler, each
//   schedule's retry policy (failed deliveries), and each scheduled
//   function's async invoke config (failed runs: retries, event age, and the
//   same dead-letter queue as its on-failure destination);
// - alarms (scheduled functions failing, dead letters, API 5xx, dependency
//   failures, lock timeouts, durable-like sync lag) on one SNS topic;
// - the HTTP API stage's throttling;
// - with the VPC params set, the interface endpoints the functions need to
//   reach AWS APIs without a NAT gateway (rds-data; ssm for the Redis secret;
//   kinesis-streams for queued point requests);
// - the stream of queued point requests, its consumer's on-failure queue,
//   and alarms on both (failures, lag).
//
// It is plain CommonJS on purpose: the framework loads it without a build step.

/**
 * What each function calls. `data`: 'none' or 'statements' (ExecuteStatement
 * only: every change is one SQL statement, its own transaction); `redis`: it connects to Redis (so it may read the
 * Redis secret). `schedule` (scheduled functions): how a failed run is
 * retried. The Scheduler invokes asynchronously, so its own retry policy
 * covers only deliveries; a run that fails is retried by Lambda
 * `retries` times (0 to 2) while the event is younger than
 * `maxEventAgeSeconds` (60 to 21600), then sent to the dead-letter queue.
 */
const ACCESS = {
  health: { data: 'statements', redis: true },
  like: { data: 'statements', redis: true },
  unlike: { data: 'statements', redis: true },
  'like-status': { data: 'statements', redis: true },
  // `stream`: 'put' (PutRecord on the point-request stream: Prefer: respond-async;
  // lib/platform/stream uses PutRecords only for puts that overlap in one
  // process, which a Lambda instance serving one request at a time never has),
  // 'consume' (the event source mapping's reads, and its on-failure queue),
  // 'dead-letters' (reads the records the mapping gave up on, from that queue).
  charge: { data: 'statements', redis: true, stream: 'put' },
  pay: { data: 'statements', redis: true, stream: 'put' },
  'point-request': { data: 'statements', redis: true },
  'apply-point-requests': { data: 'statements', redis: true, stream: 'consume' },
  'reject-point-requests': { data: 'statements', redis: false, stream: 'dead-letters' },
  'popular-items': { data: 'statements', redis: true },
  // Reads the trending counts, and repairs them from the orders table.
  'trending-items': { data: 'statements', redis: true },
  // Drops the cached variants, then re-warms them from the database.
  // Daily: a run an hour late still re-warms the day and purges the keys.
  'evict-popular-items': { data: 'statements', redis: true, schedule: { retries: 2, maxEventAgeSeconds: 3600 } },
  'purge-idempotency-keys': { data: 'statements', redis: false, schedule: { retries: 2, maxEventAgeSeconds: 3600 } },
  // Runs every minute: the next run is the retry, and an event older than a
  // minute would only run beside it.
  'sync-likes': { data: 'statements', redis: true, schedule: { retries: 0, maxEventAgeSeconds: 60 } },
  // Serves a document built into its bundle: no database, no Redis.
  openapi: { data: 'none', redis: false },
  // GET /docs on stage local only (serverless.yml): static files, no database, no Redis.
  docs: { data: 'none', redis: false },
};

const DATA_ACTIONS = {
  none: [],
  // No function opens a transaction: each write is one statement (sync-likes'
  // batches too), so no role gets the transaction actions.
  statements: ['rds-data:ExecuteStatement'],
};

/** The framework's logical-id spelling of a function name (like-status -> LikeDashstatus). */
const normalized = (name) => {
  const spelled = name.replace(/-/g, 'Dash').replace(/_/g, 'Underscore');
  return spelled.charAt(0).toUpperCase() + spelled.slice(1);
};
const roleId = (name) => `${normalized(name)}LambdaRole`;
const functionId = (name) => `${normalized(name)}LambdaFunction`;
const list = (value) =>
  String(value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
const flag = (value) => value === true || value === 'true';

module.exports = async ({ resolveVariable }) => {
  const param = async (name) => String((await resolveVariable(`param:${name}`)) ?? '');
  // A function declared for some stages only is null in the others (docs: stage local).
  const declared = (await resolveVariable('self:functions')) ?? {};
  const functions = Object.fromEntries(Object.entries(declared).filter(([, fn]) => fn != null));
  const clusterArn = await param('dbClusterArn');
  const secretArn = await param('dbSecretArn');
  const subnetIds = list(await param('vpcSubnetIds'));
  const securityGroupIds = list(await param('vpcSecurityGroupIds'));
  const inVpc = subnetIds.length > 0;
  const tracing = flag(await param('tracing'));
  const tracingLayerArn = await param('tracingLayerArn');
  if (tracing && !tracingLayerArn) {
    // lib/platform/tracing requires the Tracer at run time; no bundle carries it.
    throw new Error(
      'tracing=true needs tracingLayerArn: the Powertools for AWS Lambda (TypeScript) layer, e.g. arn:aws:lambda:<region>:094274105915:layer:AWSLambdaPowertoolsTypeScriptV2:<version>',
    );
  }
  const redisAuthParameter = await param('redisAuthParameter');
  const alarmTopicArn = await param('alarmTopicArn');
  const namespace = await param('metricsNamespace');

  const isScheduled = (fn) => (fn.events ?? []).some((event) => event.schedule && event.schedule.method === 'scheduler');
  const deadLetterQueueArn = { 'Fn::GetAtt': ['ScheduledDeadLetterQueue', 'Arn'] };
  const unscheduled = Object.keys(functions).filter((name) => isScheduled(functions[name]) && !ACCESS[name]?.schedule);
  if (unscheduled.length > 0) {
    throw new Error(`deploy/resources.js: say how a failed run of ${unscheduled.join(', ')} is retried (ACCESS schedule)`);
  }
  const unknown = Object.keys(functions).filter((name) => !ACCESS[name]);
  if (unknown.length > 0) {
    throw new Error(`deploy/resources.js: say what ${unknown.join(', ')} may call (ACCESS), so it gets a role of its own`);
  }

  const Resources = {};
  const extensions = {};
  const Outputs = {};

  // ---- one role per function ----------------------------------------------
  const redisParameterArn = redisAuthParameter
    ? { 'Fn::Sub': `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter/${redisAuthParameter.replace(/^\//, '')}` }
    : undefined;
  for (const name of Object.keys(functions)) {
    const access = ACCESS[name];
    const statements = [
      // Its own log group only (the framework creates it, so no CreateLogGroup).
      { Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: [{ 'Fn::GetAtt': [`${normalized(name)}LogGroup`, 'Arn'] }] },
    ];
    if (access.data !== 'none') {
      statements.push({ Effect: 'Allow', Action: DATA_ACTIONS[access.data], Resource: clusterArn });
      // The Data API reads the database secret with the caller's permissions.
      statements.push({ Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: secretArn });
    }
    const streamArn = { 'Fn::GetAtt': ['PointRequestStream', 'Arn'] };
    const failureQueueArn = { 'Fn::GetAtt': ['PointRequestFailureQueue', 'Arn'] };
    if (access.stream === 'put') statements.push({ Effect: 'Allow', Action: ['kinesis:PutRecord'], Resource: streamArn });
    if (access.stream === 'consume') {
      // What the event source mapping calls with the function's role.
      statements.push({
        Effect: 'Allow',
        Action: ['kinesis:DescribeStream', 'kinesis:DescribeStreamSummary', 'kinesis:GetRecords', 'kinesis:GetShardIterator', 'kinesis:ListShards'],
        Resource: streamArn,
      });
      statements.push({ Effect: 'Allow', Action: ['sqs:SendMessage'], Resource: failureQueueArn });
    }
    if (access.stream === 'dead-letters') {
      statements.push({ Effect: 'Allow', Action: ['kinesis:GetRecords', 'kinesis:GetShardIterator'], Resource: streamArn });
      statements.push({ Effect: 'Allow', Action: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'], Resource: failureQueueArn });
    }
    if (access.redis && redisParameterArn) {
      statements.push({ Effect: 'Allow', Action: ['ssm:GetParameter'], Resource: redisParameterArn });
    }
    // Lambda sends a failed asynchronous run to its on-failure destination
    // with the function's own role.
    if (isScheduled(functions[name])) statements.push({ Effect: 'Allow', Action: ['sqs:SendMessage'], Resource: deadLetterQueueArn });
    if (inVpc) {
      // Lambda manages the function's network interfaces with its role; these
      // actions take no resource ARN.
      statements.push({
        Effect: 'Allow',
        Action: [
          'ec2:CreateNetworkInterface',
          'ec2:DescribeNetworkInterfaces',
          'ec2:DeleteNetworkInterface',
          'ec2:AssignPrivateIpAddresses',
          'ec2:UnassignPrivateIpAddresses',
        ],
        Resource: '*',
      });
    }
    if (tracing) statements.push({ Effect: 'Allow', Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], Resource: '*' });
    if (tracing) extensions[functionId(name)] = { Properties: { Layers: [tracingLayerArn] } };
    Resources[roleId(name)] = {
      Type: 'AWS::IAM::Role',
      Properties: {
        AssumeRolePolicyDocument: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { Service: ['lambda.amazonaws.com'] }, Action: ['sts:AssumeRole'] }],
        },
        Policies: [{ PolicyName: `${name}-access`, PolicyDocument: { Version: '2012-10-17', Statement: statements } }],
      },
    };
  }

  // ---- alarms' topic ---------------------------------------------------------
  let alarmActions = [];
  if (alarmTopicArn) alarmActions = [alarmTopicArn];
  else {
    Resources.AlarmTopic = { Type: 'AWS::SNS::Topic', Properties: { DisplayName: 'likes-points-popular alarms' } };
    alarmActions = [{ Ref: 'AlarmTopic' }];
    Outputs.AlarmTopicArn = { Description: 'Subscribe on-call here', Value: { Ref: 'AlarmTopic' } };
  }
  const alarm = (description, properties) => ({
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      AlarmDescription: description,
      AlarmActions: alarmActions,
      OKActions: alarmActions,
      TreatMissingData: 'notBreaching',
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 1,
      Period: 300,
      Statistic: 'Sum',
      ...properties,
    },
  });

  // ---- scheduled functions: retries, dead letters, alarms ---------------------
  const scheduled = Object.entries(functions).filter(([, fn]) => isScheduled(fn));
  if (scheduled.length > 0) {
    Resources.ScheduledDeadLetterQueue = {
      Type: 'AWS::SQS::Queue',
      Properties: { MessageRetentionPeriod: 1209600, SqsManagedSseEnabled: true },
    };
    Resources.SchedulerRole = {
      Type: 'AWS::IAM::Role',
      Properties: {
        AssumeRolePolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Principal: { Service: ['scheduler.amazonaws.com'] },
              Action: ['sts:AssumeRole'],
              // Only this account's schedules may use it (confused deputy).
              Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
            },
          ],
        },
        Policies: [
          {
            PolicyName: 'invoke-scheduled-functions',
            PolicyDocument: {
              Version: '2012-10-17',
              Statement: [
                { Effect: 'Allow', Action: ['lambda:InvokeFunction'], Resource: scheduled.map(([name]) => ({ 'Fn::GetAtt': [functionId(name), 'Arn'] })) },
                { Effect: 'Allow', Action: ['sqs:SendMessage'], Resource: [deadLetterQueueArn] },
              ],
            },
          },
        ],
      },
    };
    Resources.ScheduledDeadLettersAlarm = alarm('A scheduled run failed every retry and was dead-lettered', {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['ScheduledDeadLetterQueue', 'QueueName'] } }],
      Statistic: 'Maximum',
      Threshold: 1,
    });
    for (const [name, fn] of scheduled) {
      const { retries, maxEventAgeSeconds } = ACCESS[name].schedule;
      // A run that fails: Lambda's own retries, then the dead-letter queue
      // (without this, 2 retries over up to 6 hours, then dropped).
      Resources[`${normalized(name)}EventInvokeConfig`] = {
        Type: 'AWS::Lambda::EventInvokeConfig',
        Properties: {
          FunctionName: { Ref: functionId(name) },
          // The schedule invokes the unqualified function: $LATEST.
          Qualifier: '$LATEST',
          MaximumRetryAttempts: retries,
          MaximumEventAgeInSeconds: maxEventAgeSeconds,
          DestinationConfig: { OnFailure: { Destination: deadLetterQueueArn } },
        },
      };
      let n = 0;
      for (const event of fn.events) {
        if (!event.schedule || event.schedule.method !== 'scheduler') continue;
        n += 1;
        // Properties are assigned shallowly: Target is restated whole.
        extensions[`${normalized(name)}SchedulerSchedule${n}`] = {
          Properties: {
            Target: {
              Arn: { 'Fn::GetAtt': [functionId(name), 'Arn'] },
              RoleArn: { 'Fn::GetAtt': ['SchedulerRole', 'Arn'] },
              // Deliveries the Scheduler could not make (throttled, Lambda unreachable).
              RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: maxEventAgeSeconds },
              DeadLetterConfig: { Arn: deadLetterQueueArn },
            },
          },
        };
      }
      Resources[`${normalized(name)}ErrorsAlarm`] = alarm(`${name} failed (it is retried, then dead-lettered)`, {
        Namespace: 'AWS/Lambda',
        MetricName: 'Errors',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: functionId(name) } }],
        Threshold: 1,
      });
    }
  }

  // ---- service alarms ----------------------------------------------------------
  Resources.Api5xxAlarm = alarm('The HTTP API answered 5xx (dependency failures, internal errors)', {
    Namespace: 'AWS/ApiGateway',
    MetricName: '5xx',
    Dimensions: [{ Name: 'ApiId', Value: { Ref: 'HttpApi' } }],
    Threshold: 10,
  });
  const custom = (metric, description, properties) =>
    alarm(description, { Namespace: namespace, MetricName: metric, Dimensions: [{ Name: 'service', Value: 'likes-points-popular' }], ...properties });
  Resources.DependencyFailureAlarm = custom('DependencyFailure', 'Redis or the database did not answer (503 DEPENDENCY_UNAVAILABLE)', { Threshold: 10 });
  Resources.LockTimeoutAlarm = custom('LockTimeout', 'Point requests wait past the lock budget (409 LOCK_TIMEOUT)', { Threshold: 50 });
  if (functions['sync-likes']) {
    Resources.LikeSyncLagAlarm = custom('LikeSyncLagMs', 'Likes wait more than 5 minutes to reach PostgreSQL (lost if Redis loses its data)', {
      Statistic: 'Maximum',
      Period: 60,
      EvaluationPeriods: 5,
      Threshold: 300000,
    });
  }

  // ---- queued point requests: the stream, its on-failure queue, their alarms ----------
  const streamUsers = Object.keys(functions).filter((name) => ACCESS[name].stream);
  if (streamUsers.length > 0) {
    const mode = await param('pointRequestStreamMode');
    if (mode !== 'ON_DEMAND' && mode !== 'PROVISIONED') throw new Error('pointRequestStreamMode must be ON_DEMAND or PROVISIONED');
    Resources.PointRequestStream = {
      Type: 'AWS::Kinesis::Stream',
      Properties: {
        Name: await param('pointRequestStream'),
        StreamModeDetails: { StreamMode: mode },
        ...(mode === 'PROVISIONED' ? { ShardCount: Number(await param('pointRequestShards')) } : {}),
        // The consumer applies a request id once for as long as its row is kept (7 days); the stream keeps a record 24 h.
        RetentionPeriodHours: 24,
        StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
      },
    };
    Resources.PointRequestFailureQueue = {
      Type: 'AWS::SQS::Queue',
      // Longer than reject-point-requests' timeout (30 s), as Lambda requires of an event source queue.
      Properties: { MessageRetentionPeriod: 1209600, VisibilityTimeout: 180, SqsManagedSseEnabled: true },
    };
    Resources.PointRequestFailuresAlarm = alarm('Queued point requests failed every retry and were rejected with 503', {
      Namespace: 'AWS/SQS',
      MetricName: 'NumberOfMessagesSent',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['PointRequestFailureQueue', 'QueueName'] } }],
      Threshold: 1,
    });
    if (functions['apply-point-requests']) {
      Resources.PointRequestLagAlarm = alarm('Queued point requests wait more than a minute to be applied (the stream is behind)', {
        Namespace: 'AWS/Lambda',
        MetricName: 'IteratorAge',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: functionId('apply-point-requests') } }],
        Statistic: 'Maximum',
        Period: 60,
        EvaluationPeriods: 3,
        Threshold: 60000,
      });
    }
    Outputs.PointRequestStreamName = { Description: 'The stream of queued point requests', Value: { Ref: 'PointRequestStream' } };
  }

  // ---- API throttling at the stage -------------------------------------------------
  extensions.HttpApiStage = {
    Properties: {
      DefaultRouteSettings: {
        DetailedMetricsEnabled: false,
        ThrottlingRateLimit: Number(await param('apiThrottleRate')),
        ThrottlingBurstLimit: Number(await param('apiThrottleBurst')),
      },
    },
  };

  // ---- VPC endpoints -------------------------------------------------------------------
  if (inVpc && flag(await param('vpcEndpoints'))) {
    const vpcId = await param('vpcId');
    if (!vpcId) throw new Error('set vpcId with the VPC params (the rds-data endpoint is created in it), or vpcEndpoints=false when a NAT gateway reaches AWS APIs');
    Resources.VpcEndpointSecurityGroup = {
      Type: 'AWS::EC2::SecurityGroup',
      Properties: {
        GroupDescription: 'HTTPS from the functions to the AWS API endpoints',
        VpcId: vpcId,
        SecurityGroupIngress: securityGroupIds.map((id) => ({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443, SourceSecurityGroupId: id })),
      },
    };
    const endpoint = (service) => ({
      Type: 'AWS::EC2::VPCEndpoint',
      Properties: {
        VpcEndpointType: 'Interface',
        ServiceName: { 'Fn::Sub': `com.amazonaws.\${AWS::Region}.${service}` },
        VpcId: vpcId,
        SubnetIds: subnetIds,
        SecurityGroupIds: [{ Ref: 'VpcEndpointSecurityGroup' }],
        // The SDK's default hostnames then resolve to the endpoint.
        PrivateDnsEnabled: true,
      },
    });
    Resources.DataApiVpcEndpoint = endpoint('rds-data');
    if (redisAuthParameter) Resources.SsmVpcEndpoint = endpoint('ssm');
    // PutRecord, and the dead-letter reader's GetRecords, from inside the VPC.
    if (Object.keys(functions).some((name) => ACCESS[name].stream)) Resources.KinesisVpcEndpoint = endpoint('kinesis-streams');
  }

  return { Resources, Outputs, extensions };
};

module.exports.ACCESS = ACCESS;
