import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../local/ports';

/**
 * A throwaway standalone `redis-server` for fault tests: on a free loopback
 * port, no persistence (`--save "" --appendonly no`), its files in a temp
 * directory of its own. It never touches the machine's Redis on 6379.
 *
 *   const server = await startRedisServer();
 *   process.env.REDIS_URL = server.url;   // before the code under test reads config
 *   server.pause();   // SIGSTOP: connections stay open, nothing answers
 *   server.resume();  // SIGCONT: it runs whatever reached it meanwhile
 *   await server.kill();     // SIGKILL: connections reset, data gone
 *   await server.restart();  // a new, empty server on the same port
 *   await server.stop();     // in afterAll: kills it and removes its directory
 *
 * Needs redis-server on the PATH.
 */
export interface RedisServer {
  readonly port: number;
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  /** Freezes the server (SIGSTOP). The kernel still accepts connections and bytes; no command runs. */
  pause(): void;
  /** Lets a paused server run again (SIGCONT). */
  resume(): void;
  /** Kills the server (SIGKILL) and waits until it has exited: its port refuses connections. */
  kill(): Promise<void>;
  /** Starts a new, empty server on the same port (killing the running one first, if any). */
  restart(): Promise<void>;
  /** Kills the server and removes its directory; safe to call twice. */
  stop(): Promise<void>;
}

export async function startRedisServer(): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'redis-fault-'));
  // A free port can be taken between our probe and redis-server's bind: retry with another.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    try {
      let child = await spawnServer(port, dir);
      const running = new Set<ChildProcess>([child]);
      const onExit = () => running.forEach((proc) => proc.kill('SIGKILL'));
      process.once('exit', onExit);
      let stopped = false;
      const killChild = async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGKILL');
        await exited;
      };
      return {
        port,
        url: `redis://127.0.0.1:${port}`,
        pause: () => void child.kill('SIGSTOP'),
        resume: () => void child.kill('SIGCONT'),
        kill: killChild,
        async restart() {
          await killChild();
          child = await spawnServer(port, dir);
          running.add(child);
        },
        async stop() {
          if (stopped) return;
          stopped = true;
          await killChild();
          process.removeListener('exit', onExit);
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (error) {
      if (attempt >= 4) {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
}

async function spawnServer(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', ''],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) => reject(new Error(`redis-server on port ${port} exited (${code ?? signal}): ${stderr.trim()}`))),
  );
  exited.catch(() => undefined);
  const started = performance.now();
  while (performance.now() - started < 10_000) {
    const answered = await Promise.race([ping(port), exited]);
    if (answered) return child;
    await sleep(20);
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server on port ${port} did not answer PING within 10 s`);
}

/** One raw PING, so that readiness needs no client library and no retry policy of one. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}
