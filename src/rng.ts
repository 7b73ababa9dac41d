// Seeded randomness for everything that must replay identically: data order, initial weights,
// dropout and stochastic-depth masks. A resumed run derives the same streams from the same keys,
// so it continues exactly where an uninterrupted run would be.

/** A deterministic stream of uniform numbers in [0, 1) with a few helpers on top. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [0, n). */
  int(n: number): number;
  /** Standard normal (Box-Muller). */
  normal(): number;
  /** A 32-bit integer, e.g. to seed a TF.js random op. */
  uint32(): number;
  /** Fisher-Yates shuffle in place; returns the same array. */
  shuffle<T>(items: T[]): T[];
}

/** FNV-1a over the text of the keys: turns (seed, "epoch", 3, ...) into one 32-bit seed. */
export function deriveSeed(...keys: Array<string | number>): number {
  let h = 0x811c9dc5;
  for (const ch of keys.join("\u0000")) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** mulberry32: small, fast, and good enough for shuffles and weight init (not for cryptography). */
export function makeRng(...keys: Array<string | number>): Rng {
  let state = deriveSeed(...keys);
  const uint32 = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const next = (): number => uint32() / 4294967296;
  return {
    next,
    uint32,
    int: (n: number) => Math.floor(next() * n),
    normal: () => {
      // 1 - next() is in (0, 1], so the log is finite.
      const u = 1 - next();
      const v = next();
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    },
    shuffle<T>(items: T[]): T[] {
      for (let i = items.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        const tmp = items[i];
        items[i] = items[j];
        items[j] = tmp;
      }
      return items;
    },
  };
}
