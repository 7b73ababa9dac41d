#!/usr/bin/env python3
"""Patches tfjs-node's binding source before it is compiled (tools/native/build.sh step 4).

Two patches to AssignOpAttr, which sets an op's attributes from JS values:
- string lists: it sets TF_ATTR_STRING values as one string only, so ops whose attribute is a list
  of strings (the fused_ops of _FusedMatMul, _MklNativeFusedConv2D) cannot be run through the
  binding. With the patch, a JS array of strings sets a string list (TFE_OpSetAttrStringList).
- type lists: likewise TF_ATTR_TYPE takes one type only; _MklNativeFusedConv2D's kernel reads a
  list of types (TArgs). A JS array of type numbers sets a type list (TFE_OpSetAttrTypeList).
A plain string or type works as before.

One patch to the binding's module init (tfjs_binding.cc), the signal guard: TensorFlow's matrix
products run oneDNN's JIT GEMM kernels (also where oneDNN's ops are off: TF's Eigen contraction
calls oneDNN's sgemm), which point the stack register into the heap while they run (oneDNN issue
#4845, fixed upstream in PR #4855, not in TensorFlow 2.21). A signal whose handler runs on such a
thread writes its frame there and corrupts the heap: Ctrl-C, a Jupyter interrupt or Slurm's SIGTERM
during training, which this project handles to stop after the step in flight, aborted the process
("corrupted size vs. prev_size") or crashed it later. The guard, before TensorFlow creates its
threads, blocks the asynchronous signals in the loading thread (Node's main thread), so TensorFlow's
threads inherit the mask; starts, just before, one idle thread that keeps the mask the loading
thread had and so takes those signals instead (Node's signal handlers only write to a pipe,
whichever thread runs them); and gives the main thread an alternate signal stack for the signals
sent to it alone with SA_ONSTACK handlers (V8's profiler, SIGPROF).
BIAS_INIT_SIGNAL_GUARD=0 leaves it off (test/signal_guard.test.ts shows the crash without it).

Usage: patch_binding.py <package dir>. Idempotent; exits 1 naming the file if the source is not
the one this patch was written for (tfjs-node 4.22.0).
"""
import pathlib
import sys

MARK = "// bias-init: string-list attributes"
TYPE_MARK = "// bias-init: type-list attributes"
TYPE_OLD = """    case TF_ATTR_TYPE: {
      TF_DataType tf_data_type;"""
TYPE_NEW = """    case TF_ATTR_TYPE: {
      """ + TYPE_MARK + """
      if (IsArray(env, nstatus, &js_value)) {
        uint32_t length;
        nstatus = napi_get_array_length(env, js_value, &length);
        ENSURE_NAPI_OK(env, nstatus);
        std::vector<TF_DataType> types(length);
        for (uint32_t i = 0; i < length; ++i) {
          napi_value element;
          nstatus = napi_get_element(env, js_value, i, &element);
          ENSURE_NAPI_OK(env, nstatus);
          nstatus = napi_get_value_int32(env, element,
                                         reinterpret_cast<int32_t *>(&types[i]));
          ENSURE_NAPI_OK(env, nstatus);
        }
        TFE_OpSetAttrTypeList(tfe_op, attr_name, types.data(),
                              static_cast<int>(length));
        break;
      }
      TF_DataType tf_data_type;"""
OLD = """    case TF_ATTR_STRING: {
      // NOTE: String attribute values do not have to be utf8 encoded strings
      // (could be arbitrary byte sequences).
      std::string str_value;"""
NEW = """    case TF_ATTR_STRING: {
      """ + MARK + """
      if (IsArray(env, nstatus, &js_value)) {
        uint32_t length;
        nstatus = napi_get_array_length(env, js_value, &length);
        ENSURE_NAPI_OK(env, nstatus);
        std::vector<std::string> values(length);
        std::vector<const void *> pointers(length);
        std::vector<size_t> lengths(length);
        for (uint32_t i = 0; i < length; ++i) {
          napi_value element;
          nstatus = napi_get_element(env, js_value, i, &element);
          ENSURE_NAPI_OK(env, nstatus);
          nstatus = GetStringParam(env, element, values[i]);
          ENSURE_NAPI_OK(env, nstatus);
          pointers[i] = values[i].data();
          lengths[i] = values[i].size();
        }
        TFE_OpSetAttrStringList(tfe_op, attr_name, pointers.data(),
                                lengths.data(), static_cast<int>(length));
        break;
      }
      // NOTE: String attribute values do not have to be utf8 encoded strings
      // (could be arbitrary byte sequences).
      std::string str_value;"""


GUARD_MARK = "// bias-init: signal guard"
GUARD_OLD = """static napi_value InitTFNodeJSBinding(napi_env env, napi_value exports) {

  napi_status nstatus;

  TFJSBackend *const backend = TFJSBackend::Create(env);"""
GUARD_NEW = GUARD_MARK + """ (tools/native/patch_binding.py)
}  // namespace tfnodejs
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
namespace tfnodejs {

// Started before the main thread blocks anything: it keeps the mask the process started with.
static void *BiasInitSignalTaker(void *) {
  for (;;) pause();
  return nullptr;
}

static void BiasInitGuardSignals() {
  const char *setting = getenv("BIAS_INIT_SIGNAL_GUARD");
  if (setting != nullptr && strcmp(setting, "0") == 0) return;
  const int async_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM,
                               SIGCHLD, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGXCPU,
                               SIGXFSZ, SIGVTALRM, SIGWINCH, SIGIO, SIGPWR};
  sigset_t blocked;
  sigemptyset(&blocked);
  for (int s : async_signals) sigaddset(&blocked, s);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t taker;
  const bool started = pthread_create(&taker, &attr, BiasInitSignalTaker, nullptr) == 0;
  pthread_attr_destroy(&attr);
  if (!started) return;  // no thread to take them: leave the mask as it was
  pthread_setname_np(taker, "bias_signals");
  pthread_sigmask(SIG_BLOCK, &blocked, nullptr);
  stack_t current;
  if (sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE)) {
    stack_t alternate;
    alternate.ss_size = 256 * 1024;
    alternate.ss_sp = malloc(alternate.ss_size);
    alternate.ss_flags = 0;
    if (alternate.ss_sp != nullptr) sigaltstack(&alternate, nullptr);
  }
}

static napi_value InitTFNodeJSBinding(napi_env env, napi_value exports) {

  napi_status nstatus;

  BiasInitGuardSignals();
  TFJSBackend *const backend = TFJSBackend::Create(env);"""

PATCHES = [("tfjs_backend.cc", "AssignOpAttr string", MARK, OLD, NEW),
           ("tfjs_backend.cc", "AssignOpAttr type", TYPE_MARK, TYPE_OLD, TYPE_NEW),
           ("tfjs_binding.cc", "InitTFNodeJSBinding", GUARD_MARK, GUARD_OLD, GUARD_NEW)]


def main() -> int:
    for name, what, mark, old, new in PATCHES:
        path = pathlib.Path(sys.argv[1]) / "binding" / name
        source = path.read_text()
        if mark in source:
            continue
        if source.count(old) != 1:
            print(f"patch_binding.py: {path} does not hold the {what} code this patch expects "
                  "(written for tfjs-node 4.22.0); update tools/native/patch_binding.py", file=sys.stderr)
            return 1
        path.write_text(source.replace(old, new))
    return 0


if __name__ == "__main__":
    sys.exit(main())
