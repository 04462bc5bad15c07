// The WebAssembly arena that bitmapNew places bitmaps in, and the small SIMD
// module, assembled here from its opcodes, that syncs and counts whole 64-byte
// blocks of bitmaps living there (sim/util/bitmap.ts calls it; any other
// Uint32Array takes bitmap.ts's plain loops, with the same results).
// Leaves out: a text-format (.wat) source and a toolchain to build it; the
// module is a few dozen opcodes.
//
// The module imports one shared memory and exports two functions over whole
// 64-byte blocks (addresses are byte offsets, any alignment):
//
//   (func $sync (param $kvm i32) (param $mig i32) (param $bytes i32) (result f64)
//     ;; for each block: load 4 x v128 of the log; if any bit is set, store
//     ;; zeros over them, OR them into the migration bitmap, and add
//     ;; i8x16.popcnt(log & ~old) of the four, widened to i32x4, to $acc;
//     ;; return the sum of $acc's lanes)
//   (func $count (param $p i32) (param $bytes i32) (result f64)
//     ;; the same popcount sum over one bitmap)
//
// Lane sums stay below 2^32 because a bitmap holds at most 2^32 bits.

const WORD_BYTES = 4;
/** Words the SIMD functions take per step: one 64-byte block. */
export const BLOCK_WORDS = 16;
/** Below this many words a call into the module costs more than it saves. */
export const SIMD_MIN_WORDS = 64;
const WASM_PAGE_BYTES = 65536;
// 4 GiB less one page: a 32-bit memory holds 4 GiB, and block ends must stay below 2^32.
const ARENA_WASM_PAGES_MAX = 65535;
const ARENA_GROW_WASM_PAGES_MIN = 16;
const ARENA_ALIGN_BYTES = 64;

// The slice of the WebAssembly JS API used here (the project's TypeScript libs
// do not declare it).
interface WasmMemory {
  readonly buffer: ArrayBufferLike;
  grow(deltaPages: number): number;
}
interface WasmApi {
  readonly Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  readonly Module: new (bytes: Uint8Array) => object;
  readonly Instance: new (module: object, imports: object) => { readonly exports: object };
}

export interface Arena {
  readonly memory: WasmMemory;
  readonly sync: (kvm: number, mig: number, bytes: number) => number;
  readonly count: (p: number, bytes: number) => number;
  /** Every buffer memory.buffer has been: growing a shared memory keeps old views valid. */
  readonly buffers: WeakSet<ArrayBufferLike>;
  /** Free byte ranges [start, end), sorted and coalesced. */
  readonly free: Array<[number, number]>;
  /** Live allocations: byte offset -> bytes. */
  readonly live: Map<number, number>;
  /** Bytes below this are allocated or on the free list. */
  top: number;
  /** Bytes below this may have been used: a new allocation there is zeroed first. */
  highWater: number;
}

let arenaState: Arena | null | undefined;

export function getArena(): Arena | null {
  if (arenaState === undefined) arenaState = createArena();
  return arenaState;
}

function createArena(): Arena | null {
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (wasm === undefined || typeof SharedArrayBuffer !== 'function') return null;
  try {
    const bytes = assembleBitmapModule();
    const memory = new wasm.Memory({ initial: 0, maximum: ARENA_WASM_PAGES_MAX, shared: true });
    const instance = new wasm.Instance(new wasm.Module(bytes), { env: { memory } });
    const exports = instance.exports as { sync: Arena['sync']; count: Arena['count'] };
    const buffers = new WeakSet<ArrayBufferLike>();
    buffers.add(memory.buffer);
    return { memory, sync: exports.sync, count: exports.count, buffers, free: [], live: new Map(), top: 0, highWater: 0 };
  } catch {
    return null;
  }
}

export function arenaAlloc(arena: Arena, words: number): Uint32Array | null {
  const bytes = Math.ceil((words * WORD_BYTES) / ARENA_ALIGN_BYTES) * ARENA_ALIGN_BYTES;
  let start = -1;
  for (let i = 0; i < arena.free.length; i++) {
    const range = arena.free[i]!;
    if (range[1] - range[0] >= bytes) {
      start = range[0];
      range[0] += bytes;
      if (range[0] === range[1]) arena.free.splice(i, 1);
      break;
    }
  }
  if (start < 0) {
    const end = arena.top + bytes;
    const have = arena.memory.buffer.byteLength;
    if (end > have) {
      const need = Math.ceil((end - have) / WASM_PAGE_BYTES);
      try {
        arena.memory.grow(Math.max(need, ARENA_GROW_WASM_PAGES_MIN));
      } catch {
        try {
          arena.memory.grow(need);
        } catch {
          return null;
        }
      }
      arena.buffers.add(arena.memory.buffer);
    }
    start = arena.top;
    arena.top = end;
  }
  arena.live.set(start, bytes);
  const view = new Uint32Array(arena.memory.buffer, start, words);
  if (start < arena.highWater) view.fill(0, 0, Math.ceil((arena.highWater - start) / WORD_BYTES));
  arena.highWater = Math.max(arena.highWater, start + bytes);
  return view;
}

export function arenaFree(arena: Arena, bitmap: Uint32Array): void {
  const start = bitmap.byteOffset;
  const bytes = arena.live.get(start);
  if (bytes === undefined || bitmap.byteLength > bytes) {
    throw new Error(`bitmapFree: no live bitmap at arena offset ${start} (double free, or a subarray)`);
  }
  arena.live.delete(start);
  const free = arena.free;
  let i = 0;
  while (i < free.length && free[i]![0] < start) i++;
  free.splice(i, 0, [start, start + bytes]);
  // Coalesce with the neighbours, then give the top range back to the bump pointer.
  if (i + 1 < free.length && free[i]![1] === free[i + 1]![0]) {
    free[i]![1] = free[i + 1]![1];
    free.splice(i + 1, 1);
  }
  if (i > 0 && free[i - 1]![1] === free[i]![0]) {
    free[i - 1]![1] = free[i]![1];
    free.splice(i, 1);
  }
  const lastRange = free[free.length - 1];
  if (lastRange !== undefined && lastRange[1] === arena.top) {
    arena.top = lastRange[0];
    free.pop();
  }
}

// WebAssembly encoding, only what the two functions need.
const OP = {
  block: 0x02, loop: 0x03, if: 0x04, end: 0x0b, br_if: 0x0d, drop: 0x1a,
  local_get: 0x20, local_set: 0x21, local_tee: 0x22,
  i32_const: 0x41, i32_ge_u: 0x4f, i32_lt_u: 0x49, i32_add: 0x6a, i32_sub: 0x6b,
  f64_add: 0xa0, f64_convert_i32_u: 0xb8, void: 0x40, simd: 0xfd,
} as const;
const SIMD = {
  v128_load: 0x00, v128_store: 0x0b, v128_const: 0x0c, i32x4_extract_lane: 0x1b,
  v128_andnot: 0x4f, v128_or: 0x50, v128_any_true: 0x53, i8x16_popcnt: 0x62, i8x16_add: 0x6e,
  i16x8_extadd_pairwise_i8x16_u: 0x7d, i32x4_extadd_pairwise_i16x8_u: 0x7f, i32x4_add: 0xae,
} as const;
const TYPE = { i32: 0x7f, f64: 0x7c, v128: 0x7b, func: 0x60 } as const;

function leb128(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

// Signed LEB128, for i32.const immediates (64 needs two bytes: 0xc0 0x00).
function sleb128(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function vector(items: number[][]): number[] {
  return [...leb128(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...leb128(body.length), ...body];
}

function name(s: string): number[] {
  return [...leb128(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
}

function simd(op: number): number[] {
  return [OP.simd, ...leb128(op)];
}

// memarg: alignment hint 1 byte (any address), then the constant offset.
function memarg(offset: number): number[] {
  return [0, ...leb128(offset)];
}

function get(local: number): number[] {
  return [OP.local_get, local];
}

function set(local: number): number[] {
  return [OP.local_set, local];
}

// Sum of an i32x4 local's unsigned lanes, as f64.
function laneSum(local: number): number[] {
  return [0, 1, 2, 3].flatMap((lane) => [
    ...get(local), ...simd(SIMD.i32x4_extract_lane), lane, OP.f64_convert_i32_u, ...(lane > 0 ? [OP.f64_add] : []),
  ]);
}

// i8x16 byte counts -> i32x4, added into local acc.
function widenInto(acc: number, bytesLocal: number): number[] {
  return [
    ...get(acc), ...get(bytesLocal),
    ...simd(SIMD.i16x8_extadd_pairwise_i8x16_u), ...simd(SIMD.i32x4_extadd_pairwise_i16x8_u),
    ...simd(SIMD.i32x4_add), ...set(acc),
  ];
}

// for (p = start; p < end; p += 64) { body }, with start in local p and end in local end.
function blockLoop(p: number, end: number, body: number[]): number[] {
  return [
    OP.block, OP.void,
    ...get(p), ...get(end), OP.i32_ge_u, OP.br_if, 0,
    OP.loop, OP.void,
    ...body,
    ...get(p), OP.i32_const, ...sleb128(ARENA_ALIGN_BYTES), OP.i32_add, OP.local_tee, p,
    ...get(end), OP.i32_lt_u, OP.br_if, 0,
    OP.end,
    OP.end,
  ];
}

function syncBody(): number[] {
  // params: 0 kvm, 1 mig (made mig - kvm), 2 bytes; locals: 3 end; 4..7 log
  // vectors; 8 old; 9 acc (i32x4); 10 byte counts (i8x16).
  const KVM = 0, DELTA = 1, BYTES = 2, END = 3, LOG = 4, OLD = 8, ACC = 9, COUNTS = 10;
  const zero = [...simd(SIMD.v128_const), ...new Array<number>(16).fill(0)];
  const one = (j: number): number[] => [
    ...get(KVM), ...zero, ...simd(SIMD.v128_store), ...memarg(16 * j),
    ...get(KVM), ...get(DELTA), OP.i32_add, ...simd(SIMD.v128_load), ...memarg(16 * j), ...set(OLD),
    ...get(KVM), ...get(DELTA), OP.i32_add, ...get(OLD), ...get(LOG + j), ...simd(SIMD.v128_or),
    ...simd(SIMD.v128_store), ...memarg(16 * j),
    ...get(LOG + j), ...get(OLD), ...simd(SIMD.v128_andnot), ...simd(SIMD.i8x16_popcnt),
    ...(j > 0 ? [...get(COUNTS), ...simd(SIMD.i8x16_add)] : []), ...set(COUNTS),
  ];
  const body = [
    ...get(KVM), ...get(BYTES), OP.i32_add, ...set(END),
    ...get(DELTA), ...get(KVM), OP.i32_sub, ...set(DELTA),
    ...blockLoop(KVM, END, [
      ...[0, 1, 2, 3].flatMap((j) => [...get(KVM), ...simd(SIMD.v128_load), ...memarg(16 * j), ...set(LOG + j)]),
      ...get(LOG), ...get(LOG + 1), ...simd(SIMD.v128_or),
      ...get(LOG + 2), ...get(LOG + 3), ...simd(SIMD.v128_or), ...simd(SIMD.v128_or),
      ...simd(SIMD.v128_any_true),
      OP.if, OP.void,
      ...one(0), ...one(1), ...one(2), ...one(3),
      ...widenInto(ACC, COUNTS),
      OP.end,
    ]),
    ...laneSum(ACC),
    OP.end,
  ];
  const locals = vector([[1, TYPE.i32], [7, TYPE.v128]]);
  return [...leb128(locals.length + body.length), ...locals, ...body];
}

function countBody(): number[] {
  // params: 0 p, 1 bytes; locals: 2 end; 3 acc (i32x4); 4 byte counts (i8x16).
  const P = 0, BYTES = 1, END = 2, ACC = 3, COUNTS = 4;
  const body = [
    ...get(P), ...get(BYTES), OP.i32_add, ...set(END),
    ...blockLoop(P, END, [
      ...[0, 1, 2, 3].flatMap((j) => [
        ...get(P), ...simd(SIMD.v128_load), ...memarg(16 * j), ...simd(SIMD.i8x16_popcnt),
        ...(j > 0 ? [...get(COUNTS), ...simd(SIMD.i8x16_add)] : []), ...set(COUNTS),
      ]),
      ...widenInto(ACC, COUNTS),
    ]),
    ...laneSum(ACC),
    OP.end,
  ];
  const locals = vector([[1, TYPE.i32], [2, TYPE.v128]]);
  return [...leb128(locals.length + body.length), ...locals, ...body];
}

function assembleBitmapModule(): Uint8Array<ArrayBuffer> {
  const syncType = [TYPE.func, ...vector([[TYPE.i32], [TYPE.i32], [TYPE.i32]]), ...vector([[TYPE.f64]])];
  const countType = [TYPE.func, ...vector([[TYPE.i32], [TYPE.i32]]), ...vector([[TYPE.f64]])];
  // Memory import: limits flag 3 = shared, with a maximum.
  const memoryImport = [...name('env'), ...name('memory'), 0x02, 0x03, ...leb128(0), ...leb128(ARENA_WASM_PAGES_MAX)];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([syncType, countType])),
    ...section(2, vector([memoryImport])),
    ...section(3, vector([[0], [1]])),
    ...section(7, vector([[...name('sync'), 0x00, 0], [...name('count'), 0x00, 1]])),
    ...section(10, vector([syncBody(), countBody()])),
  ]);
}
