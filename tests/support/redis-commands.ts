import type { Command } from 'ioredis';
import type { RedisClient } from '../../lib/platform/redis/client';

/**
 * Records the name of every command `client` sends from now on (those
 * `pick` chooses), into `into`, and passes each one through unchanged; the
 * round-trip counts of the tests read it. A command ioredis passes through
 * sendCommand twice (one queued before `ready`) is recorded once. A Cluster
 * client has the same sendCommand to count through.
 */
export function recordCommands(client: RedisClient, into: string[] = [], pick: (command: Command) => boolean = () => true): string[] {
  const seen = new WeakSet<Command>();
  const send = client.sendCommand.bind(client) as (command: Command, ...rest: unknown[]) => unknown;
  client.sendCommand = ((command: Command, ...rest: unknown[]) => {
    if (!seen.has(command) && pick(command)) into.push(command.name);
    seen.add(command);
    return send(command, ...rest);
  }) as typeof client.sendCommand;
  return into;
}
