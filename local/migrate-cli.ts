/**
 * npm run db:migrate: applies db/migrations.
 *
 * Locally (the default): to the database the local stack uses (DATABASE_URL,
 * else the embedded one under .data/), through a Data API endpoint of its own
 * on a free port, as the functions reach the database. npm start migrates on
 * startup too; this needs no stack running (and for the embedded database,
 * which one process at a time may open, none may be).
 *
 * In AWS (`npm run db:migrate -- --aws`): through the real RDS Data API, to
 * the cluster named by DB_RESOURCE_ARN, DB_SECRET_ARN, DB_NAME and AWS_REGION,
 * with the caller's AWS credentials. Run it before deploying functions that
 * need the new schema.
 */
import { migrate } from '../db/migrate';
import { createDatabase } from '../lib/platform/db';
import { LocalStackError, localSettings, migrateLocalDatabase, startLocalDataApi, useLocalStackEnv } from './env';

async function migrateLocal(): Promise<void> {
  // Always a fresh endpoint: DATA_API_ENDPOINT names what the functions use.
  const settings = { ...localSettings(), dataApiEndpoint: undefined };
  const dataApi = await startLocalDataApi(settings, 0);
  try {
    useLocalStackEnv(settings, dataApi.url);
    const applied = await migrateLocalDatabase(dataApi);
    console.log(`${dataApi.description}: ${applied.length > 0 ? `applied ${applied.join(', ')}` : 'already up to date'}`);
  } finally {
    await dataApi.close();
  }
}

async function migrateAws(): Promise<void> {
  const required = ['DB_RESOURCE_ARN', 'DB_SECRET_ARN', 'DB_NAME', 'AWS_REGION'] as const;
  const missing = required.filter((name) => !process.env[name]);
  if (missing.length > 0) throw new LocalStackError(`--aws needs ${missing.join(', ')} in the environment`);
  const database = createDatabase({
    resourceArn: process.env.DB_RESOURCE_ARN!,
    secretArn: process.env.DB_SECRET_ARN!,
    database: process.env.DB_NAME!,
    region: process.env.AWS_REGION!,
    // Aurora Serverless v2 may be waking from auto-pause.
    resumeBudgetMs: 60_000,
  });
  const applied = await migrate(database);
  console.log(`${process.env.DB_RESOURCE_ARN} / ${process.env.DB_NAME}: ${applied.length > 0 ? `applied ${applied.join(', ')}` : 'already up to date'}`);
}

(process.argv.includes('--aws') ? migrateAws() : migrateLocal()).catch((error: Error) => {
  console.error(error instanceof LocalStackError ? error.message : error);
  process.exit(1);
});
