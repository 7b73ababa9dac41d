// Whether the native engine's signal guard is on in this process (tools/native/patch_binding.py):
// the binding, as it loads, blocks the asynchronous signals in Node's main thread (so TensorFlow's
// threads, started after, inherit the mask) and starts one idle thread, `bias_signals`, that takes
// them. Without it a signal handled while a thread runs oneDNN's JIT GEMM kernel corrupts the heap
// (docs/native.md, "The signal guard"). Read from /proc (Linux); `make doctor` prints it.
//
// May touch: /proc/self (reads).
import * as fs from "fs";
import * as os from "os";
import { readEnvironment } from "../config";

/** The guard as seen from /proc, and one line saying so. */
export interface SignalGuardState {
  on: boolean;
  line: string;
}

/** Bit of signal `n` in a /proc status mask (SigBlk). */
function maskHas(mask: bigint, signal: number): boolean {
  return ((mask >> BigInt(signal - 1)) & 1n) === 1n;
}

/** Reads the guard's state; call once the native engine (`kind`) has loaded. */
export function signalGuardState(kind: "cuda" | "native-cpu"): SignalGuardState {
  if (process.platform !== "linux") return { on: false, line: `not checked on ${process.platform} (the guard was written and tested on Linux)` };
  const status = fs.readFileSync("/proc/self/status", "utf8");
  const mask = BigInt(`0x${(status.match(/^SigBlk:\s*([0-9a-f]+)$/m) ?? [])[1] ?? "0"}`);
  const watched = ["SIGINT", "SIGTERM", "SIGHUP", "SIGUSR2", "SIGCHLD"] as const;
  const blocked = watched.filter((s) => maskHas(mask, os.constants.signals[s]));
  const taker = fs.readdirSync("/proc/self/task").some((id) => {
    try {
      return fs.readFileSync(`/proc/self/task/${id}/comm`, "utf8").trim() === "bias_signals";
    } catch {
      return false;
    }
  });
  if (blocked.length === watched.length && taker) {
    return { on: true, line: "on: TensorFlow's threads block SIGINT, SIGTERM and the other asynchronous signals; the thread bias_signals takes them (docs/native.md)" };
  }
  const why = readEnvironment().BIAS_INIT_SIGNAL_GUARD === "0" ? "BIAS_INIT_SIGNAL_GUARD=0"
    : `an engine built before the guard: \`make ${kind === "cuda" ? "native-gpu" : "native"} ARGS=--force\`, or any \`make run\`, rebuilds it`;
  return { on: false, line: `OFF (${why}): a Ctrl-C, Jupyter interrupt or SIGTERM that lands during a matrix product can corrupt memory (docs/native.md)` };
}
