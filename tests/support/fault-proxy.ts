import net from 'node:net';

/**
 * A TCP fault proxy for tests: listens on a free loopback port and forwards
 * to `target`, with a fault mode that can be switched at any time and that
 * applies at once to new and open connections alike (keep-alive HTTP and
 * Redis connections are long-lived; a fault must hit them too).
 *
 *   const proxy = await startFaultProxy({ host: '127.0.0.1', port: 6379 });
 *   // point the client at proxy.host:proxy.port (or proxy.url('redis'))
 *   proxy.set({ mode: 'blackhole' });       // ...
 *   proxy.set({ mode: 'pass' });
 *   await proxy.close();
 *
 * Modes:
 * - pass: bytes flow both ways.
 * - latency: every chunk, either way, is delayed by `ms` (order kept).
 *   What a client sent before it gave up still reaches the server.
 * - blackhole: the proxy accepts and reads, and neither forwards nor
 *   answers, as a host that went away without a reset. New connections
 *   are accepted and never connected upstream.
 * - dropAfterRequest: the client's bytes are forwarded upstream; when the
 *   upstream's first reply bytes arrive they are thrown away and both
 *   sockets destroyed, so the request was served (a statement committed, a
 *   command ran) and the client sees a reset instead of the answer.
 *   `once: true` drops one reply and then goes back to pass; otherwise
 *   every reply is dropped. `proxy.drops` counts the replies dropped.
 *
 * closeAll() destroys every open connection (both sides) without changing
 * the mode: a server restart or a failover, as the client sees it.
 */
export type FaultMode =
  | { mode: 'pass' }
  | { mode: 'latency'; ms: number }
  | { mode: 'blackhole' }
  | { mode: 'dropAfterRequest'; once?: boolean };

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  /** `${scheme}://host:port`, e.g. url('http') for a Data API endpoint, url('redis'). */
  url(scheme: string): string;
  set(mode: FaultMode): void;
  readonly current: FaultMode;
  /** Replies thrown away by dropAfterRequest so far. */
  readonly drops: number;
  /** Destroys every open connection, both sides; the mode stays. */
  closeAll(): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let current: FaultMode = { mode: 'pass' };
  let drops = 0;
  const sockets = new Set<net.Socket>();

  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {}); // a reset on one side is the test's business, not a crash
  };

  /**
   * Writes chunks to `to` in order, each after the mode's delay at the time
   * it arrived. `flushedAt()` is when the last one will have been written.
   */
  const forwarder = (to: () => net.Socket | undefined) => {
    let lastAt = 0;
    const send = (chunk: Buffer) => {
      const ms = current.mode === 'latency' ? current.ms : 0;
      if (ms <= 0 && lastAt <= Date.now()) {
        to()?.write(chunk);
        return;
      }
      lastAt = Math.max(Date.now() + ms, lastAt);
      setTimeout(() => {
        const socket = to();
        if (socket && !socket.destroyed) socket.write(chunk);
      }, lastAt - Date.now()).unref();
    };
    return Object.assign(send, { flushedAt: () => lastAt });
  };

  const server = net.createServer((client) => {
    track(client);
    let upstream: net.Socket | undefined;
    // Bytes that arrived while black-holed are gone for good, as on a dead link.
    const pending: Buffer[] = [];
    const toUpstream = forwarder(() => upstream);
    const toClient = forwarder(() => client);

    const connectUpstream = () => {
      upstream = net.connect(target.port, target.host);
      track(upstream);
      upstream.on('connect', () => {
        for (const chunk of pending.splice(0)) toUpstream(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        if (current.mode === 'blackhole') return;
        if (current.mode === 'dropAfterRequest') {
          drops++;
          if (current.once) current = { mode: 'pass' };
          upstream?.destroy();
          client.destroy();
          return;
        }
        toClient(chunk);
      });
      upstream.on('close', () => client.destroy());
    };

    client.on('data', (chunk: Buffer) => {
      if (current.mode === 'blackhole') return;
      if (!upstream) connectUpstream();
      if (upstream!.connecting) pending.push(chunk);
      else toUpstream(chunk);
    });
    // Bytes already on their way still arrive when the client gives up (a
    // slow network delivers what was sent): a delayed request reaches the
    // server after its client stopped waiting, as it would for real.
    client.on('close', () => {
      const wait = toUpstream.flushedAt() - Date.now();
      if (wait <= 0) upstream?.destroy();
      else setTimeout(() => upstream?.destroy(), wait + 50).unref();
    });
    // Connect at once unless black-holed, so servers that speak first (PostgreSQL does not, but some do) work.
    if (current.mode !== 'blackhole') connectUpstream();
  });

  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const { port } = server.address() as net.AddressInfo;
  const host = '127.0.0.1';

  const closeAll = () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };

  return {
    host,
    port,
    url: (scheme) => `${scheme}://${host}:${port}`,
    set(mode) {
      current = mode;
    },
    get current() {
      return current;
    },
    get drops() {
      return drops;
    },
    closeAll,
    close() {
      closeAll();
      return new Promise<void>((closed) => server.close(() => closed()));
    },
  };
}
