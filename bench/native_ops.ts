// Counts and times what the native engine really executes: every libtensorflow op the tfjs-node
// binding runs (one TFE_Execute each, one kernel launch per op on a GPU), and every host tensor it
// creates (one upload each). tf.profile counts TF.js kernels instead, which include JS-only ones
// (Identity: a reference count, no op) and miss the ops that a custom op runs straight through the
// binding (ops/native_batchnorm.ts). A benchmark tool: it wraps the binding of the active backend
// while `measure` runs and puts it back afterwards.
import * as tf from "@tensorflow/tfjs";

export interface NativeOpStats {
  /**
   * Ops by name: calls, milliseconds spent inside executeOp (the op itself, synchronous on the CPU),
   * and the CPU milliseconds the process's threads spent meanwhile (process.cpuUsage: cpuMs / ms is
   * how many cores the op kept busy).
   */
  byOp: Map<string, { calls: number; ms: number; cpuMs: number }>;
  ops: number;
  opMs: number;
  /** CPU milliseconds inside ops, and over the whole of `f`. */
  opCpuMs: number;
  cpuMs: number;
  /** Host-to-engine tensor creations (N-API createTensor). */
  uploads: number;
  wallMs: number;
}

type Binding = Record<string, unknown> & { executeOp(...args: unknown[]): unknown; createTensor(...args: unknown[]): unknown };

/** Runs `f` once with the native binding wrapped; null when the active backend is not tfjs-node's. */
export function measureNativeOps(f: () => void): NativeOpStats | null {
  const backend = tf.backend() as unknown as { binding?: Binding };
  const real = backend.binding;
  if (tf.getBackend() !== "tensorflow" || real === undefined || typeof real.executeOp !== "function") return null;
  const stats: NativeOpStats = { byOp: new Map(), ops: 0, opMs: 0, opCpuMs: 0, cpuMs: 0, uploads: 0, wallMs: 0 };
  // The addon's functions are read-only properties: shadow them on an object that inherits the rest.
  const wrapped = Object.create(real) as Binding;
  Object.defineProperty(wrapped, "executeOp", {
    value: (name: string, ...rest: unknown[]) => {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const out = real.executeOp(name, ...rest);
      const ms = performance.now() - t0;
      const c1 = process.cpuUsage(c0);
      const cpuMs = (c1.user + c1.system) / 1000;
      const e = stats.byOp.get(name) ?? { calls: 0, ms: 0, cpuMs: 0 };
      e.calls++;
      e.ms += ms;
      e.cpuMs += cpuMs;
      stats.byOp.set(name, e);
      stats.ops++;
      stats.opMs += ms;
      stats.opCpuMs += cpuMs;
      return out;
    },
  });
  Object.defineProperty(wrapped, "createTensor", {
    value: (...args: unknown[]) => {
      stats.uploads++;
      return real.createTensor(...args);
    },
  });
  backend.binding = wrapped;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  try {
    f();
  } finally {
    const c1 = process.cpuUsage(c0);
    stats.cpuMs = (c1.user + c1.system) / 1000;
    stats.wallMs = performance.now() - t0;
    backend.binding = real;
  }
  return stats;
}
