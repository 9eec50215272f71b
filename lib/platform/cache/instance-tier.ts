import { LRUCache } from 'lru-cache';
import { config } from '../config';

/**
 * The cache's optional instance tier: values kept in this Lambda instance's
 * memory in front of Redis. How cachedField revalidates them against the
 * group's generation is told at the top of lib/platform/cache.ts.
 */

export interface InstanceTierSettings {
  /** δ: how long an entry is answered after its last check of the group's generation. */
  freshMs: number;
  maxEntries: number;
  /** Bytes of keys and values, counted as UTF-16 (2 bytes a character). */
  maxBytes: number;
}

export interface MemoryEntry {
  group: string;
  value: string;
  /** The group's generation this value was read under (null: never evicted). */
  generation: string | null;
  /** Wall-clock ms when the generation was last sent for (Date.now, see lib/platform/cache.ts). */
  checkedAt: number;
}

/** Every tier of this process: an eviction run here drops its group from each at once. */
const tiers = new Set<InstanceTier>();

/** Drops `group` from every tier of this process (lib/platform/cache's evictGroup). */
export function dropGroupInEveryTier(group: string): void {
  for (const tier of tiers) tier.dropGroup(group);
}

/**
 * Values kept in this instance's memory, in front of Redis: least recently
 * used first out past maxEntries or maxBytes. No TTL of its own: entries of
 * a past business date are simply never asked for again, and age out.
 */
export class InstanceTier {
  private readonly entries: LRUCache<string, MemoryEntry>;
  /** Memory-only values (remember()) being loaded: concurrent callers share one load. */
  private readonly loading = new Map<string, Promise<string>>();

  constructor(
    readonly settings: InstanceTierSettings,
    /** The wall clock; tests move it to play a frozen instance. */
    readonly now: () => number = Date.now,
  ) {
    this.entries = new LRUCache<string, MemoryEntry>({
      max: settings.maxEntries,
      maxSize: settings.maxBytes,
      sizeCalculation: (entry, key) => 2 * (entry.value.length + key.length) + 64,
    });
    tiers.add(this);
  }

  /** How many entries are held (tests, the bench). */
  get size(): number {
    return this.entries.size;
  }

  /** Drops every entry of `group` held here. */
  dropGroup(group: string): void {
    for (const [key, entry] of this.entries.entries()) {
      if (entry.group === group) this.entries.delete(key);
    }
  }

  /**
   * A value kept in memory only, for `maxAgeMs` from the start of the load
   * that produced it (a value that changes with every write, where a
   * generation would change as often: trending). Concurrent callers of one
   * key share one load; a failed load is not kept.
   */
  async remember(key: string, maxAgeMs: number, load: () => Promise<string>): Promise<string> {
    const now = this.now();
    const held = this.entries.get(key);
    if (held && now >= held.checkedAt && now - held.checkedAt < maxAgeMs) return held.value;
    const pending = this.loading.get(key);
    if (pending) return pending;
    const loaded = load().then(
      (value) => {
        this.entries.set(key, { group: '', value, generation: null, checkedAt: now });
        return value;
      },
    );
    this.loading.set(key, loaded);
    try {
      return await loaded;
    } finally {
      this.loading.delete(key);
    }
  }

  /** @internal cachedField's: the entry, and whether it is inside δ of its last check. */
  lookup(key: string): { entry: MemoryEntry; fresh: boolean } | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    const now = this.now();
    // A clock that stepped back proves nothing about the time since the check.
    return { entry, fresh: now >= entry.checkedAt && now - entry.checkedAt < this.settings.freshMs };
  }

  /** @internal */
  store(key: string, entry: MemoryEntry): void {
    this.entries.set(key, entry);
  }

  /** @internal */
  drop(key: string): void {
    this.entries.delete(key);
  }
}

let shared: InstanceTier | undefined;
/** This instance's tier, bounded by CACHE_INSTANCE_*: one for every group that keeps values in memory. */
export function sharedInstanceTier(): InstanceTier {
  shared ??= new InstanceTier(config().cache.instance);
  return shared;
}
