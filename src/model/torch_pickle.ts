// The pickle VM of the .pth reader (torch_pth.ts): runs the `data.pkl` of a torch.save zip
// (protocols 2 to 5, the opcodes torch.save and plain dicts/lists/tuples produce) without
// executing anything from it. It knows only the handful of globals a state_dict needs
// (OrderedDict, the tensor/parameter rebuild functions, the storage types); any other global
// (os.system, builtins.eval, ...) stops the read with an error naming it. Tensors come out as
// references to storages (TensorRef); reading the storages is torch_pth.ts's job.
//
// May touch: nothing but the bytes it is given (no files, no tensors); errors go through `fail`.

export type TorchDtype =
  | "float32" | "float64" | "float16" | "bfloat16"
  | "int64" | "int32" | "int16" | "int8" | "uint8" | "bool";

/** Raises the caller's error (a CheckpointError naming the file) with this message. */
export type Fail = (msg: string) => never;

/** A Python dict or OrderedDict, insertion-ordered like Python's. */
export class PyDict {
  readonly items = new Map<unknown, unknown>();
}

/** A reference to an allow-listed Python global; calling it is done by `callGlobal`. */
class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

class StorageRef {
  constructor(readonly dtype: TorchDtype, readonly key: string, readonly numel: number) {}
}

export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

const STORAGE_DTYPES: Record<string, TorchDtype> = {
  FloatStorage: "float32",
  DoubleStorage: "float64",
  HalfStorage: "float16",
  BFloat16Storage: "bfloat16",
  LongStorage: "int64",
  IntStorage: "int32",
  ShortStorage: "int16",
  CharStorage: "int8",
  ByteStorage: "uint8",
  BoolStorage: "bool",
};

/** Everything a state_dict pickle may name. Anything else is refused before it could be "called". */
const ALLOWED_GLOBALS = new Set<string>([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
  "torch._utils._rebuild_parameter_with_state",
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
]);

/** A name from the file (entry, key, global) for a message: at most 80 characters. */
export function clip(name: string): string {
  return name.length > 80 ? `${name.slice(0, 77)}...` : name;
}

export function describe(v: unknown): string {
  if (v === null) return "None";
  if (v instanceof PyDict) return "a dict";
  if (v instanceof PyGlobal) return clip(v.qualified);
  if (v instanceof TensorRef) return "a tensor";
  if (v instanceof StorageRef) return "a storage";
  if (Array.isArray(v)) return "a tuple/list";
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  return `${typeof v} ${String(v)}`;
}

/** Longest LONG1/LONG4 integer decoded (longer ones are refused). */
const MAX_LONG_BYTES = 16;

export function unpickle(bytes: Uint8Array, fail: Fail): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder("utf-8");
  const latin1 = new TextDecoder("latin1");
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;

  const need = (n: number): void => {
    if (pos + n > bytes.length) fail(`data.pkl is truncated (needs ${n} bytes at offset ${pos})`);
  };
  const u8 = (): number => (need(1), bytes[pos++]);
  const u16 = (): number => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const u32 = (): number => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const i32 = (): number => (need(4), (pos += 4), view.getInt32(pos - 4, true));
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`length ${v} too large`);
    return Number(v);
  };
  const take = (n: number): Uint8Array => {
    need(n);
    pos += n;
    return bytes.subarray(pos - n, pos);
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail("data.pkl is truncated (unterminated GLOBAL)");
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1])) {
      fail(`data.pkl: stack underflow at offset ${pos - 1}`);
    }
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail(`data.pkl: empty stack at offset ${pos - 1}`);
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) return fail(`data.pkl: no MARK before offset ${pos - 1}`);
    return stack.splice(m);
  };
  const global = (module: string, name: string): PyGlobal => {
    const qualified = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.has(qualified)) {
      fail(`pickle references forbidden global ${clip(qualified)} (only state_dict tensors are allowed; nothing in the file is executed)`);
    }
    return new PyGlobal(module, name);
  };
  const dictOf = (target: unknown, op: string): PyDict => {
    if (!(target instanceof PyDict)) fail(`data.pkl: ${op} on ${describe(target)}`);
    return target as PyDict;
  };
  const listOf = (target: unknown, op: string): unknown[] => {
    if (!Array.isArray(target)) fail(`data.pkl: ${op} on ${describe(target)}`);
    return target as unknown[];
  };
  // LONG1/LONG4: little-endian two's complement. A state_dict's integers (sizes, strides, offsets,
  // element counts) fit in 8 bytes; anything longer is refused rather than decoded.
  const longFrom = (raw: Uint8Array): number | bigint => {
    if (raw.length > MAX_LONG_BYTES) fail(`data.pkl: a ${raw.length}-byte integer at offset ${pos - raw.length}; a state_dict has none over ${MAX_LONG_BYTES} bytes`);
    if (raw.length === 0) return 0;
    let hex = "";
    for (let i = raw.length - 1; i >= 0; i--) hex += raw[i].toString(16).padStart(2, "0");
    let v = BigInt(`0x${hex}`);
    if (raw[raw.length - 1] & 0x80) v -= 1n << BigInt(8 * raw.length);
    const asNumber = Number(v);
    return Number.isSafeInteger(asNumber) ? asNumber : v;
  };

  for (;;) {
    const opPos = pos;
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: take(8); break; // FRAME: a framing hint only
      case 0x2e: { // STOP
        if (stack.length !== 1) fail(`data.pkl: ${stack.length} values left at STOP`);
        return stack[0];
      }
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(longFrom(take(u8()))); break; // LONG1
      case 0x8b: stack.push(longFrom(take(u32()))); break; // LONG4
      case 0x47: need(8); stack.push(view.getFloat64(pos, false)); pos += 8; break; // BINFLOAT (big-endian)
      case 0x58: stack.push(utf8.decode(take(u32()))); break; // BINUNICODE
      case 0x8c: stack.push(utf8.decode(take(u8()))); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(utf8.decode(take(u64()))); break; // BINUNICODE8
      case 0x54: stack.push(latin1.decode(take(u32()))); break; // BINSTRING
      case 0x55: stack.push(latin1.decode(take(u8()))); break; // SHORT_BINSTRING
      case 0x42: stack.push(take(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(take(u8()).slice()); break; // SHORT_BINBYTES
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x61: { const v = pop(); listOf(top(), "APPEND").push(v); break; } // APPEND
      case 0x65: { // APPENDS (one at a time: a spread of millions of values would overflow the call stack)
        const vs = popMark();
        const list = listOf(top(), "APPENDS");
        for (const v of vs) list.push(v);
        break;
      }
      case 0x7d: stack.push(new PyDict()); break; // EMPTY_DICT
      case 0x64: { // DICT
        const kv = popMark();
        const d = new PyDict();
        for (let i = 0; i + 1 < kv.length; i += 2) d.items.set(kv[i], kv[i + 1]);
        stack.push(d);
        break;
      }
      case 0x73: { const v = pop(); const k = pop(); dictOf(top(), "SETITEM").items.set(k, v); break; } // SETITEM
      case 0x75: { // SETITEMS
        const kv = popMark();
        const d = dictOf(top(), "SETITEMS");
        for (let i = 0; i + 1 < kv.length; i += 2) d.items.set(kv[i], kv[i + 1]);
        break;
      }
      case 0x63: { const module = line(); stack.push(global(module, line())); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") fail("data.pkl: STACK_GLOBAL needs two strings");
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x51: stack.push(persistentLoad(pop(), fail)); break; // BINPERSID
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(callGlobal(fn, listOf(args, "REDUCE"), fail));
        break;
      }
      case 0x62: { // BUILD: only the `_metadata` attribute state_dict() attaches to its OrderedDict
        const stateArg = pop();
        const target = top();
        if (!(target instanceof PyDict) || !(stateArg instanceof PyDict || stateArg === null)) {
          fail(`data.pkl: BUILD of ${describe(target)} with ${describe(stateArg)} is not supported`);
        }
        break;
      }
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: { // BINGET, LONG_BINGET
        const idx = op === 0x68 ? u8() : u32();
        if (!memo.has(idx)) fail(`data.pkl: memo entry ${idx} read before it was written`);
        stack.push(memo.get(idx));
        break;
      }
      default:
        return fail(`data.pkl: unsupported pickle opcode 0x${op.toString(16).padStart(2, "0")} ` +
          `(${JSON.stringify(String.fromCharCode(op))}) at offset ${opPos}`);
    }
  }
}

/** torch.save writes each storage as ('storage', torch.XStorage, key, location, numel). */
function persistentLoad(pid: unknown, fail: Fail): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== "storage" || pid.length !== 5) {
    return fail(`data.pkl: unsupported persistent id ${describe(pid)}`);
  }
  const [, type, key, , numel] = pid as unknown[];
  if (!(type instanceof PyGlobal) || !(type.name in STORAGE_DTYPES)) {
    return fail(`data.pkl: persistent id names ${describe(type)}, not a storage type`);
  }
  if (typeof key !== "string" || !isCount(numel)) return fail(`data.pkl: malformed storage persistent id (key ${describe(key)}, size ${describe(numel)})`);
  return new StorageRef(STORAGE_DTYPES[type.name], key, numel);
}

/** A non-negative integer that a double holds exactly. */
const isCount = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;

function intList(v: unknown, what: string, fail: Fail): number[] {
  if (!Array.isArray(v) || !v.every(isCount)) {
    return fail(`data.pkl: tensor ${what} ${describe(v)} is not a tuple of non-negative integers`);
  }
  return v as number[];
}

function callGlobal(fn: unknown, args: unknown[], fail: Fail): unknown {
  if (!(fn instanceof PyGlobal)) return fail(`data.pkl: REDUCE calls ${describe(fn)}, which is not callable`);
  switch (fn.qualified) {
    case "collections.OrderedDict":
      if (args.length !== 0) fail("data.pkl: OrderedDict with arguments is not supported");
      return new PyDict();
    case "torch._utils._rebuild_tensor_v2": {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      const [storage, offset, size, stride] = args;
      if (!(storage instanceof StorageRef) || !isCount(offset)) {
        return fail(`data.pkl: malformed _rebuild_tensor_v2 arguments (storage ${describe(storage)}, offset ${describe(offset)})`);
      }
      const shape = intList(size, "size", fail);
      const strides = intList(stride, "stride", fail);
      if (shape.length !== strides.length) fail(`data.pkl: tensor size ${shape} and stride ${strides} differ in rank`);
      return new TensorRef(storage, offset, shape, strides);
    }
    case "torch._utils._rebuild_parameter":
    case "torch._utils._rebuild_parameter_with_state":
      // (data, requires_grad, backward_hooks[, state]): a Parameter is its tensor for our purposes.
      if (!(args[0] instanceof TensorRef)) return fail(`data.pkl: ${describe(fn)} of ${describe(args[0])}`);
      return args[0];
    default:
      return fail(`data.pkl: ${describe(fn)} cannot be called`);
  }
}
