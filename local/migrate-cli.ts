/**
 * npm run db:migrate: applies db/migrations to the database the local stack
 * uses (DATABASE_URL, else the embedded one under .data/), through a Data API
 * endpoint of its own on a free port, as the functions reach the database.
 * npm start migrates on startup too; this needs no stack running (and for the
 * embedded database, which one process at a time may open, none may be).
 */
import { LocalStackError, localSettings, migrateLocalDatabase, startLocalDataApi, useLocalStackEnv } from './env';

async function main(): Promise<void> {
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

main().catch((error: Error) => {
  console.error(error instanceof LocalStackError ? error.message : error);
  process.exit(1);
});
