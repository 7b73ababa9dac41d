// The native backend for a test file: loaded in its `before` hook, null where it cannot be used,
// with one line saying why (the tests skip with it). With `kernels`, only where this project's
// kernels run too (engine/custom_ops.ts).
import { initBackend } from "../../src/engine/backend";
import { customOpsActive, customOpsState } from "../../src/engine/custom_ops";
import { nativeCpuOps, nativeOps, NativeKernelBackend } from "../../src/model/ops/native_backend";

export async function loadNativeForTests(kernels = false): Promise<{ nb: NativeKernelBackend | null; why: string }> {
  try {
    await initBackend("native");
  } catch (e) {
    return { nb: null, why: `no native backend (${(e as Error).message.split("\n")[0]})` };
  }
  if (!kernels) return { nb: nativeOps(), why: "" };
  const nb = customOpsActive() ? nativeCpuOps() : null;
  return { nb, why: nb === null ? `this project's kernels are not active: ${customOpsState().reason}` : "" };
}
