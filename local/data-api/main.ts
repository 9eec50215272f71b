/**
 * Runs the local Data API by hand:
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/app DATA_API_PORT=4000 npx tsx local/data-api/main.ts
 * Without DATABASE_URL it serves an embedded PGlite database from
 * DATA_API_DATA_DIR (default .data/pglite). Point RDSDataClient's `endpoint`
 * at the printed url.
 */
import { startDataApi } from './server';

async function main(): Promise<void> {
  const server = await startDataApi({
    databaseUrl: process.env.DATABASE_URL || undefined,
    dataDir: process.env.DATA_API_DATA_DIR || undefined,
    host: process.env.DATA_API_HOST || undefined,
    port: Number(process.env.DATA_API_PORT ?? 0),
  });
  console.log(server.url);
  const stop = () => {
    server.close().then(
      () => process.exit(0),
      (error: Error) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: Error) => {
  console.error(error);
  process.exit(1);
});
