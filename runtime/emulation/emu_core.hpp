// emu_core.hpp: dialect-neutral core of the dcagen GPU emulator (tests only).
//
// Runs the threads of one block (CUDA) / threadgroup (Metal) as cooperative
// fibers on one OS thread. Fibers switch only at block barriers and warp/SIMD
// collectives, in a configurable order, so a missing barrier shows up as wrong
// results instead of depending on luck. Shared memory is poisoned with 0xFF
// bytes (a NaN in f32, f16 and bf16) at every block start; deadlocks (divergent
// barriers, collectives that can never complete) abort with a description of
// every thread. A dialect header (cuda_emulation.hpp, later a Metal one) maps
// its language onto this file; nothing here is CUDA-specific.
//
// Environment (read once):
//   DCAGEN_EMU_SCHEDULE  alternate (default) | forward | reverse | shuffle
//                        order in which the threads of a block run between two
//                        switch points; alternate = reverse in even blocks,
//                        forward in odd ones (catches readers on either side).
//   DCAGEN_EMU_SEED      seed for shuffle (default 1)
//   DCAGEN_EMU_STACK_KB  stack per emulated thread (default 256)
//   DCAGEN_EMU_WORKERS   OS threads running blocks in parallel (default 1)
//   DCAGEN_EMU_UCONTEXT  1 = switch fibers with ucontext instead of the x86-64
//                        assembly switch (automatic off x86-64 / under CET).
// Errors print "dcagen-emu: ..." on stderr and exit with status 86.
#ifndef DCAGEN_EMU_CORE_HPP
#define DCAGEN_EMU_CORE_HPP

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

namespace dcagen_emu {

constexpr int kExitCode = 86;
constexpr unsigned char kPoisonByte = 0xFF;  // 0xFFFF.. is NaN in f32/f16/bf16
constexpr unsigned kMaxLanes = 32;            // collectives use 32-bit lane masks

#ifndef DCAGEN_EMU_DYN_SMEM_ALIGN
#define DCAGEN_EMU_DYN_SMEM_ALIGN 128
#endif

struct Dim3 {
  unsigned x, y, z;
};

enum class Order { Forward, Reverse, Shuffle, Alternate };

struct Config {
  Order order = Order::Alternate;
  uint64_t seed = 1;
  size_t stack_bytes = 256 * 1024;
  unsigned workers = 1;
  bool use_ucontext = false;
};

// ---------------------------------------------------------------------------
// Per-thread state and the structures the scheduler works on.

enum class FState : uint8_t { Runnable, AtBarrier, AtCollective, Exited };

struct AsyncCopy {
  void* dst;
  unsigned bytes;
  unsigned char data[16];
};

struct Fiber {
  void* sp = nullptr;  // saved stack pointer (assembly switch)
  ucontext_t uc;       // saved context (ucontext switch)
  char* stack_lo = nullptr;
  size_t stack_size = 0;
  unsigned linear = 0, warp = 0, lane = 0;
  Dim3 local_id{0, 0, 0};
  FState state = FState::Runnable;
  // What the fiber waits at (for matching and deadlock reports).
  const char* wait_name = nullptr;
  const char* wait_file = nullptr;
  int wait_line = 0;
  uint32_t wait_mask = 0;
  int barrier_value = 0, barrier_result = 0;
  // Asynchronous copies: issued but not committed, then committed groups.
  std::vector<AsyncCopy> async_open;
  std::deque<std::vector<AsyncCopy>> async_groups;
};

struct Collective;
using CombineFn = void (*)(const Collective&);

// One warp-collective operation. `aligned` ones (mma, ldmatrix) must be the
// same instruction in every lane; others (shuffles, votes) only the same kind.
struct CollectiveDesc {
  const char* name;
  bool aligned;
  const char* file;
  int line;
  unsigned in_size;
  CombineFn combine;
};

struct Collective {
  CollectiveDesc desc;
  uint32_t mask;     // member mask as given by the lanes
  uint32_t need;     // member lanes that exist in this warp
  uint32_t arrived;
  unsigned warp;
  void* in[kMaxLanes];
  void* out[kMaxLanes];
};

struct WarpState {
  uint32_t exist = 0;
  std::vector<Collective> pending;
};

struct Block {
  const char* kernel = "";
  const char* barrier_name = "barrier";
  Dim3 group_id{0, 0, 0}, group_size{1, 1, 1}, grid_size{1, 1, 1};
  unsigned linear_id = 0, nthreads = 0, lanes_per_warp = 32;
  Fiber* fibers = nullptr;
  std::vector<unsigned> order;  // fiber indices in running order for this phase
  std::vector<unsigned> rank;   // position of each fiber in `order`
  unsigned scan_from = 0;       // no runnable fiber before this position
  unsigned n_exited = 0, n_at_barrier = 0;
  uint64_t phase = 0;
  std::vector<WarpState> warps;
  void (*entry)(void*) = nullptr;
  void* entry_ctx = nullptr;
  char* dyn_smem = nullptr;
  size_t dyn_smem_size = 0;
};

struct Worker {
  void* sched_sp = nullptr;
  ucontext_t sched_uc;
  bool use_uc = false;
  // One mapping per worker holds the dynamic-shared arena and this OS thread's
  // stack (whose top holds its TLS, i.e. the static __shared__ variables), so
  // every shared address is a 32-bit offset from `window`.
  char* window = nullptr;
  size_t window_size = 0;
  char* arena_end = nullptr;  // a guard page follows
  size_t arena_capacity = 0;
  char* tbss_lo = nullptr;
  char* tbss_hi = nullptr;
  char* fiber_mem = nullptr;
  size_t fiber_mem_size = 0;
  std::vector<Fiber> fibers;
  Block block;
  void* altstack = nullptr;
};

struct Tls {
  Fiber* fiber;
  Block* block;
  Worker* worker;
};
// Lives in .tbss of this module, as do the static __shared__ variables of the
// dialects; poisoning saves and restores it.
inline thread_local Tls t_tls;

struct LaunchSpec {
  const char* kernel_name;
  const char* barrier_name;  // the dialect's name for a block barrier
  Dim3 grid, block;
  size_t dyn_smem;
  unsigned lanes_per_warp;
  void (*entry)(void*);  // runs the kernel body for the current fiber
  void* ctx;
};

// ---------------------------------------------------------------------------
// Errors.

namespace detail {

inline std::string vformat(const char* fmt, va_list ap) {
  char buf[1024];
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  std::string s;
  if (n >= (int)sizeof buf) {
    s.resize((size_t)n + 1);
    vsnprintf(&s[0], s.size(), fmt, ap2);
    s.resize((size_t)n);
  } else {
    s = buf;
  }
  va_end(ap2);
  return s;
}

inline std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline std::string format(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = vformat(fmt, ap);
  va_end(ap);
  return s;
}

inline std::string where() {
  const Block* b = t_tls.block;
  if (!b) return "";
  std::string s = format(" [kernel '%s', block (%u,%u,%u)", b->kernel, b->group_id.x, b->group_id.y,
                         b->group_id.z);
  if (const Fiber* f = t_tls.fiber)
    s += format(", thread (%u,%u,%u)", f->local_id.x, f->local_id.y, f->local_id.z);
  return s + "]";
}

[[noreturn]] inline void die(const std::string& text) {
  fflush(stdout);
  fprintf(stderr, "dcagen-emu: %s\n", text.c_str());
  fflush(stderr);
  _exit(kExitCode);
}

}  // namespace detail

// Aborts the program with a message and the current kernel/block/thread.
[[noreturn]] inline void fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] inline void fatal(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = detail::vformat(fmt, ap);
  va_end(ap);
  detail::die("error: " + s + detail::where());
}

// ---------------------------------------------------------------------------
// Configuration.

namespace detail {

inline bool shadow_stack_active() {
  // The assembly switch changes stacks behind the CPU's back; under an active
  // CET shadow stack only ucontext (which glibc keeps consistent) is safe.
  FILE* f = fopen("/proc/self/status", "r");
  if (!f) return false;
  char line[512];
  bool on = false;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "x86_Thread_features:", 20) && strstr(line, "shstk")) on = true;
  fclose(f);
  return on;
}

inline Config load_config() {
  Config c;
  if (const char* s = getenv("DCAGEN_EMU_SCHEDULE"); s && *s) {
    if (!strcmp(s, "forward")) c.order = Order::Forward;
    else if (!strcmp(s, "reverse")) c.order = Order::Reverse;
    else if (!strcmp(s, "shuffle")) c.order = Order::Shuffle;
    else if (!strcmp(s, "alternate")) c.order = Order::Alternate;
    else die(format("error: DCAGEN_EMU_SCHEDULE='%s' (want alternate|forward|reverse|shuffle)", s));
  }
  if (const char* s = getenv("DCAGEN_EMU_SEED"); s && *s) c.seed = strtoull(s, nullptr, 0);
  if (const char* s = getenv("DCAGEN_EMU_STACK_KB"); s && *s) {
    long kb = strtol(s, nullptr, 10);
    if (kb < 16) die(format("error: DCAGEN_EMU_STACK_KB='%s' (want >= 16)", s));
    c.stack_bytes = (size_t)kb * 1024;
  }
  if (const char* s = getenv("DCAGEN_EMU_WORKERS"); s && *s) {
    long w = strtol(s, nullptr, 10);
    c.workers = w < 1 ? 1u : (unsigned)w;
  }
#if defined(__x86_64__) && !defined(DCAGEN_EMU_FORCE_UCONTEXT)
  const char* u = getenv("DCAGEN_EMU_UCONTEXT");
  c.use_ucontext = (u && *u && strcmp(u, "0")) || shadow_stack_active();
#else
  c.use_ucontext = true;
#endif
  return c;
}

}  // namespace detail

// Process-wide settings; a harness may change them between launches.
inline Config& config() {
  static Config c = detail::load_config();
  return c;
}

inline const char* order_name(Order o) {
  switch (o) {
    case Order::Forward: return "forward";
    case Order::Reverse: return "reverse";
    case Order::Shuffle: return "shuffle";
    case Order::Alternate: return "alternate";
  }
  return "?";
}

// ---------------------------------------------------------------------------
// Context switching.

}  // namespace dcagen_emu

#if defined(__x86_64__) && !defined(DCAGEN_EMU_FORCE_UCONTEXT)
#define DCAGEN_EMU_HAVE_ASM_SWITCH 1
// Saves the callee-saved registers, MXCSR and the x87 control word on the
// current stack, stores the stack pointer to *save, and resumes the context
// whose stack pointer is `to`. Defined once per program (comdat).
extern "C" __attribute__((visibility("hidden"))) void dcagen_emu_ctx_switch(void** save, void* to);
// First code a new fiber runs: calls r13(r12).
extern "C" __attribute__((visibility("hidden"))) void dcagen_emu_fiber_trampoline();
__asm__(R"(
  .pushsection .text.dcagen_emu_ctx_switch,"axG",@progbits,dcagen_emu_ctx_switch,comdat
  .weak dcagen_emu_ctx_switch
  .hidden dcagen_emu_ctx_switch
  .type dcagen_emu_ctx_switch, @function
dcagen_emu_ctx_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size dcagen_emu_ctx_switch, .-dcagen_emu_ctx_switch
  .weak dcagen_emu_fiber_trampoline
  .hidden dcagen_emu_fiber_trampoline
  .type dcagen_emu_fiber_trampoline, @function
dcagen_emu_fiber_trampoline:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size dcagen_emu_fiber_trampoline, .-dcagen_emu_fiber_trampoline
  .popsection
)");
#endif

namespace dcagen_emu {
namespace detail {

inline size_t page_size() {
  static const size_t p = (size_t)sysconf(_SC_PAGESIZE);
  return p;
}

inline size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

[[noreturn]] inline void fiber_exit(Fiber& f);

inline void fiber_body(Fiber* f) {
  Block& b = *t_tls.block;
  b.entry(b.entry_ctx);
  fiber_exit(*f);
}

inline void fiber_entry_asm(void* p) { fiber_body(static_cast<Fiber*>(p)); }
inline void fiber_entry_uc() { fiber_body(t_tls.fiber); }

inline void init_context(Worker& w, Fiber& f) {
  if (w.use_uc) {
    if (getcontext(&f.uc) != 0) die("error: getcontext failed");
    f.uc.uc_stack.ss_sp = f.stack_lo;
    f.uc.uc_stack.ss_size = f.stack_size;
    f.uc.uc_link = nullptr;
    makecontext(&f.uc, &fiber_entry_uc, 0);
    return;
  }
#ifdef DCAGEN_EMU_HAVE_ASM_SWITCH
  // Frame that dcagen_emu_ctx_switch pops: control words, r15..r12, rbx, rbp,
  // return address. The trampoline then starts with a 16-byte aligned stack.
  uintptr_t top = (uintptr_t)(f.stack_lo + f.stack_size) & ~uintptr_t(15);
  uint64_t* sp = reinterpret_cast<uint64_t*>(top - 64);
  uint32_t mxcsr;
  uint16_t fcw;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(fcw));
  sp[0] = (uint64_t)mxcsr | ((uint64_t)fcw << 32);
  sp[1] = 0;                                            // r15
  sp[2] = 0;                                            // r14
  sp[3] = (uint64_t)(uintptr_t)&fiber_entry_asm;        // r13: function
  sp[4] = (uint64_t)(uintptr_t)&f;                      // r12: its argument
  sp[5] = 0;                                            // rbx
  sp[6] = 0;                                            // rbp
  sp[7] = (uint64_t)(uintptr_t)&dcagen_emu_fiber_trampoline;
  f.sp = sp;
#endif
}

inline void switch_into(Worker& w, Fiber& f) {
  t_tls.fiber = &f;
  if (w.use_uc) {
    swapcontext(&w.sched_uc, &f.uc);
  } else {
#ifdef DCAGEN_EMU_HAVE_ASM_SWITCH
    dcagen_emu_ctx_switch(&w.sched_sp, f.sp);
#endif
  }
  t_tls.fiber = nullptr;
}

// Called on a fiber: back to the scheduler, which resumes it later.
inline void switch_out(Fiber& f) {
  Worker& w = *t_tls.worker;
  if (w.use_uc) {
    swapcontext(&f.uc, &w.sched_uc);
  } else {
#ifdef DCAGEN_EMU_HAVE_ASM_SWITCH
    dcagen_emu_ctx_switch(&f.sp, w.sched_sp);
#endif
  }
}

}  // namespace detail

// ---------------------------------------------------------------------------
// Accessors for dialects.

inline Fiber& self() {
  Fiber* f = t_tls.fiber;
  if (!f) detail::die("error: a kernel-only builtin (thread index, barrier, shuffle, ...) was used outside a kernel");
  return *f;
}

inline Block& current_block() {
  Block* b = t_tls.block;
  if (!b) detail::die("error: a kernel-only builtin (block index, shared memory, ...) was used outside a kernel");
  return *b;
}

// ---------------------------------------------------------------------------
// Deadlock reports.

namespace detail {

inline std::string describe(const Fiber& f) {
  switch (f.state) {
    case FState::Runnable: return "runnable";
    case FState::Exited: return "exited";
    case FState::AtBarrier:
      return format("waiting at %s (%s:%d)", f.wait_name, f.wait_file, f.wait_line);
    case FState::AtCollective:
      return format("waiting at warp collective %s (%s:%d) in warp %u, member mask 0x%08x", f.wait_name,
                    f.wait_file, f.wait_line, f.warp, f.wait_mask);
  }
  return "?";
}

inline std::string thread_str(const Fiber& f) {
  return format("(%u,%u,%u)", f.local_id.x, f.local_id.y, f.local_id.z);
}

[[noreturn]] inline void deadlock(const Block& b, const std::string& reason) {
  std::string s = format("deadlock in kernel '%s' block (%u,%u,%u): %s\n", b.kernel, b.group_id.x,
                         b.group_id.y, b.group_id.z, reason.c_str());
  unsigned i = 0;
  while (i < b.nthreads) {
    std::string d = describe(b.fibers[i]);
    unsigned j = i + 1;
    while (j < b.nthreads && describe(b.fibers[j]) == d) ++j;
    if (j - i == 1)
      s += format("  thread %s: %s\n", thread_str(b.fibers[i]).c_str(), d.c_str());
    else
      s += format("  threads %s..%s [%u]: %s\n", thread_str(b.fibers[i]).c_str(),
                  thread_str(b.fibers[j - 1]).c_str(), j - i, d.c_str());
    i = j;
  }
  s.pop_back();
  die(s);
}

inline uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline void shuffle_in_place(std::vector<unsigned>& v, uint64_t seed) {
  uint64_t st = seed;
  for (size_t i = v.size(); i > 1; --i) {
    size_t j = (size_t)(splitmix64(st) % i);
    std::swap(v[i - 1], v[j]);
  }
}

// Thread order for the current phase (the stretch between two barriers).
inline void make_order(Block& b) {
  Order k = config().order;
  if (k == Order::Alternate) k = (b.linear_id % 2 == 0) ? Order::Reverse : Order::Forward;
  b.order.resize(b.nthreads);
  for (unsigned i = 0; i < b.nthreads; ++i) b.order[i] = i;
  if (k == Order::Reverse) std::reverse(b.order.begin(), b.order.end());
  if (k == Order::Shuffle)
    shuffle_in_place(b.order, config().seed * 0x100000001B3ull ^ ((uint64_t)b.linear_id << 32) ^ b.phase);
  b.rank.resize(b.nthreads);
  for (unsigned i = 0; i < b.nthreads; ++i) b.rank[b.order[i]] = i;
  b.scan_from = 0;
}

inline void make_runnable(Block& b, unsigned fiber) {
  b.fibers[fiber].state = FState::Runnable;
  b.scan_from = std::min(b.scan_from, b.rank[fiber]);
}

inline void complete_barrier(Block& b) {
  if (b.n_exited)
    deadlock(b, format("%s can never complete: some threads of the block exited without reaching it",
                       b.barrier_name));
  const Fiber* first = nullptr;
  int count = 0;
  for (unsigned i = 0; i < b.nthreads; ++i) {
    const Fiber& f = b.fibers[i];
    if (!first) {
      first = &f;
    } else if (strcmp(f.wait_name, first->wait_name) || strcmp(f.wait_file, first->wait_file) ||
               f.wait_line != first->wait_line) {
      deadlock(b, format("divergent barriers: threads of the block wait at different %s calls", b.barrier_name));
    }
    count += f.barrier_value != 0;
  }
  for (unsigned i = 0; i < b.nthreads; ++i) {
    b.fibers[i].state = FState::Runnable;
    b.fibers[i].barrier_result = count;
  }
  b.n_at_barrier = 0;
  b.scan_from = 0;
  ++b.phase;
  if (config().order == Order::Shuffle) make_order(b);
}

[[noreturn]] inline void fiber_exit(Fiber& f) {
  Block& b = *t_tls.block;
  f.state = FState::Exited;
  f.async_open.clear();
  f.async_groups.clear();  // never waited for: nobody can observe them any more
  ++b.n_exited;
  if (b.n_at_barrier && b.n_at_barrier + b.n_exited == b.nthreads)
    deadlock(b, format("%s can never complete: some threads of the block exited without reaching it",
                       b.barrier_name));
  switch_out(f);
  die("error: an exited emulated thread was resumed");
}

}  // namespace detail

// Block-wide barrier. `value` feeds the count returned to every thread (for
// __syncthreads_count and friends). Threads must all reach the same call.
inline int barrier(const char* name, const char* file, int line, int value = 0) {
  Fiber& f = self();
  Block& b = *t_tls.block;
  f.state = FState::AtBarrier;
  f.wait_name = name;
  f.wait_file = file;
  f.wait_line = line;
  f.barrier_value = value;
  if (++b.n_at_barrier + b.n_exited == b.nthreads) detail::complete_barrier(b);
  detail::switch_out(f);
  return f.barrier_result;
}

// Warp collective: every lane of `mask` that exists calls this with its own
// `in`/`out`; the last one to arrive runs desc.combine over all of them.
inline void collective(const CollectiveDesc& d, uint32_t mask, void* in, void* out) {
  Fiber& f = self();
  Block& b = *t_tls.block;
  WarpState& ws = b.warps[f.warp];
  if (!((mask >> f.lane) & 1u))
    fatal("%s (%s:%d): the calling lane %u is not in the member mask 0x%08x", d.name, d.file, d.line, f.lane,
          mask);
  uint32_t need = mask & ws.exist;
  Collective* c = nullptr;
  for (Collective& p : ws.pending)
    if (p.need & need) {
      c = &p;
      break;
    }
  if (c) {
    unsigned other = (unsigned)__builtin_ctz(c->arrived);
    if (c->mask != mask)
      fatal("%s (%s:%d) with member mask 0x%08x, but lane %u of the warp waits at %s (%s:%d) with member mask "
            "0x%08x",
            d.name, d.file, d.line, mask, other, c->desc.name, c->desc.file, c->desc.line, c->mask);
    if (strcmp(c->desc.name, d.name) || c->desc.in_size != d.in_size ||
        (d.aligned && (c->desc.line != d.line || strcmp(c->desc.file, d.file))))
      fatal("lanes of a warp reached different warp-collective operations: this lane %s (%s:%d), lane %u %s "
            "(%s:%d)",
            d.name, d.file, d.line, other, c->desc.name, c->desc.file, c->desc.line);
  } else {
    ws.pending.emplace_back();
    c = &ws.pending.back();
    c->desc = d;
    c->mask = mask;
    c->need = need;
    c->arrived = 0;
    c->warp = f.warp;
  }
  c->in[f.lane] = in;
  c->out[f.lane] = out;
  c->arrived |= 1u << f.lane;
  f.state = FState::AtCollective;
  f.wait_name = d.name;
  f.wait_file = d.file;
  f.wait_line = d.line;
  f.wait_mask = mask;
  if (c->arrived == c->need) {
    Collective done = *c;
    ws.pending.erase(ws.pending.begin() + (c - ws.pending.data()));
    done.desc.combine(done);
    unsigned base = done.warp * b.lanes_per_warp;
    for (unsigned l = 0; l < kMaxLanes; ++l)
      if ((done.need >> l) & 1u) detail::make_runnable(b, base + l);
  }
  detail::switch_out(f);
}

// Thread (x,y,z) of lane `lane` of the warp a collective runs in, for messages.
inline std::string collective_thread(const Collective& c, unsigned lane) {
  const Block& b = current_block();
  return detail::thread_str(b.fibers[c.warp * b.lanes_per_warp + lane]);
}

// ---------------------------------------------------------------------------
// Shared memory.

inline void* dynamic_smem() { return current_block().dyn_smem; }
inline size_t dynamic_smem_size() { return current_block().dyn_smem_size; }

// Whether [p, p+n) lies in this block's dynamic or static shared memory.
inline bool is_shared_range(const void* p, size_t n) {
  const Worker* w = t_tls.worker;
  const Block* b = t_tls.block;
  if (!w || !b) return false;
  const char* c = static_cast<const char*>(p);
  if (c >= b->dyn_smem && c + n <= b->dyn_smem + b->dyn_smem_size) return true;
  return c >= w->tbss_lo && c + n <= w->tbss_hi;
}

// 32-bit shared-window address of a shared pointer (what cvta.to.shared gives
// on hardware), and back.
inline uint32_t shared_addr(const void* p) {
  const Worker* w = t_tls.worker;
  const char* c = static_cast<const char*>(p);
  if (!w || c < w->window || c >= w->window + w->window_size)
    fatal("address %p is not in shared memory (converting a generic pointer to a shared address)", p);
  return (uint32_t)(c - w->window);
}

inline void* shared_ptr(uint32_t addr) {
  const Worker* w = t_tls.worker;
  if (!w || addr >= w->window_size) fatal("shared address 0x%x is outside the shared window", addr);
  return w->window + addr;
}

// Whether p points into some emulated thread's stack (register/local memory).
inline bool is_local(const void* p) {
  const Worker* w = t_tls.worker;
  if (!w || !w->fiber_mem) return false;
  const char* c = static_cast<const char*>(p);
  return c >= w->fiber_mem && c < w->fiber_mem + w->fiber_mem_size;
}

// ---------------------------------------------------------------------------
// Device (global) memory: plain host memory with a registry, so launches and
// copies can tell device pointers from host ones. Fresh memory is poisoned.

namespace detail {
struct Heap {
  std::mutex m;
  std::map<uintptr_t, size_t> blocks;
};
inline Heap& heap() {
  static Heap h;
  return h;
}
}  // namespace detail

inline void* device_alloc(size_t n) {
  size_t sz = detail::round_up(n ? n : 1, 256);
  void* p = aligned_alloc(256, sz);
  if (!p) return nullptr;
  memset(p, kPoisonByte, sz);
  std::lock_guard<std::mutex> g(detail::heap().m);
  detail::heap().blocks[(uintptr_t)p] = n;
  return p;
}

inline bool device_free(void* p) {
  std::lock_guard<std::mutex> g(detail::heap().m);
  auto it = detail::heap().blocks.find((uintptr_t)p);
  if (it == detail::heap().blocks.end()) return false;
  detail::heap().blocks.erase(it);
  free(p);
  return true;
}

inline bool is_device_range(const void* p, size_t n) {
  std::lock_guard<std::mutex> g(detail::heap().m);
  auto& bl = detail::heap().blocks;
  auto it = bl.upper_bound((uintptr_t)p);
  if (it == bl.begin()) return false;
  --it;
  uintptr_t a = (uintptr_t)p;
  return a >= it->first && a + n <= it->first + (it->second ? it->second : 1);
}

// ---------------------------------------------------------------------------
// Asynchronous copies (cp.async and relatives). The source is read at issue;
// the destination is poisoned at issue and receives the data only when the
// issuing thread waits for its group, so reading it early (or letting another
// thread read it before a barrier) sees NaNs.

inline void async_copy(void* dst, const void* src, unsigned bytes, unsigned src_bytes) {
  Fiber& f = self();
  if (bytes > 16 || src_bytes > bytes) fatal("async copy of %u bytes (%u from the source)", bytes, src_bytes);
  AsyncCopy c;
  c.dst = dst;
  c.bytes = bytes;
  memset(c.data, 0, sizeof c.data);
  if (src_bytes) memcpy(c.data, src, src_bytes);
  memset(dst, kPoisonByte, bytes);
  f.async_open.push_back(c);
}

inline void async_commit() {
  Fiber& f = self();
  f.async_groups.push_back(std::move(f.async_open));
  f.async_open.clear();
}

// Lands every committed group but the `allowed_pending` most recent ones.
inline void async_wait(unsigned allowed_pending) {
  Fiber& f = self();
  while (f.async_groups.size() > allowed_pending) {
    for (const AsyncCopy& c : f.async_groups.front()) memcpy(c.dst, c.data, c.bytes);
    f.async_groups.pop_front();
  }
}

// ---------------------------------------------------------------------------
// Numerics shared by the dialects: IEEE binary16, bfloat16 and tf32 rounding.

inline uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
inline float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// float -> binary16, round to nearest even; NaN -> 0x7fff (as CUDA).
inline uint16_t f32_to_f16_rne(float f) {
  uint32_t x = f32_bits(f);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return 0x7fff;
  int e = (int)(ax >> 23) - 127;     // unbiased exponent (denormal floats round to 0 below)
  uint32_t m = (ax & 0x7fffffu) | 0x800000u;
  if (e >= 16) return sign | 0x7c00;  // >= 65536 (or inf)
  if (e >= -14) {                     // normal half (rounding may carry into inf)
    uint32_t h = ((uint32_t)(e + 15) << 10) | ((m >> 13) & 0x3ffu);
    uint32_t rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
    return sign | (uint16_t)h;
  }
  int shift = -e - 1;  // value / 2^-24 = m * 2^(e+1)
  if (shift > 24) return sign;
  uint32_t q = m >> shift, r = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (r > half || (r == half && (q & 1u))) ++q;
  return sign | (uint16_t)q;
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    float v = (float)m * 5.9604644775390625e-08f;  // m * 2^-24, exact
    return sign ? -v : v;
  }
  if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
  return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

// float -> bfloat16, round to nearest even; NaN -> 0x7fff (as CUDA).
inline uint16_t f32_to_bf16_rne(float f) {
  uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

// What tensor cores use of an f32 register in a .tf32 operand: the upper 19 bits.
inline float tf32_truncate(float f) { return bits_f32(f32_bits(f) & 0xffffe000u); }

// cvt.rna.tf32.f32: round to nearest, ties away from zero, to 10 mantissa bits.
inline float f32_to_tf32_rna(float f) {
  uint32_t x = f32_bits(f);
  if ((x & 0x7f800000u) == 0x7f800000u) return f;
  return bits_f32((x + 0x1000u) & 0xffffe000u);
}

// double -> float rounded to odd: a later rounding to a format with at most
// 22 significand bits is then correctly rounded (no double rounding).
inline float f64_to_f32_odd(double d) {
  float f = (float)d;
  if (std::isnan(d) || (double)f == d) return f;
  if (std::fabs((double)f) > std::fabs(d)) f = std::nextafter(f, 0.0f);
  return bits_f32(f32_bits(f) | 1u);
}

// ---------------------------------------------------------------------------
// Grid execution.

namespace detail {

struct SegvState {
  std::once_flag once;
  struct sigaction old_segv, old_bus;
};
inline SegvState& segv_state() {
  static SegvState s;
  return s;
}

inline void segv_handler(int sig, siginfo_t* si, void*) {
  Worker* w = t_tls.worker;
  Block* b = t_tls.block;
  if (!w || !b) {  // not ours: restore the previous action and fault again
    sigaction(sig, sig == SIGSEGV ? &segv_state().old_segv : &segv_state().old_bus, nullptr);
    return;
  }
  char* a = static_cast<char*>(si->si_addr);
  size_t pg = page_size();
  std::string what = format("segmentation fault at address %p", (void*)a);
  if (a >= w->arena_end && a < w->arena_end + pg)
    what = format("dynamic shared memory access past its end (%zu bytes requested at launch)", b->dyn_smem_size);
  else if (a >= w->window && a < w->window + pg)
    what = "access to shared address 0 (a null or unconverted shared pointer?)";
  for (const Fiber& f : w->fibers)
    if (a >= f.stack_lo - pg && a < f.stack_lo) {
      what = format("stack overflow of thread %s (raise DCAGEN_EMU_STACK_KB, now %zu)", thread_str(f).c_str(),
                    f.stack_size / 1024);
      break;
    }
  // A frame larger than the guard page can jump over it (compile with
  // -fstack-clash-protection to make that impossible).
  if (const Fiber* f = t_tls.fiber; f && a < f->stack_lo - pg && a + (64u << 20) >= f->stack_lo)
    what = format("segmentation fault at %p, below the stack of thread %s: probably a stack overflow (raise "
                  "DCAGEN_EMU_STACK_KB, now %zu; compile with -fstack-clash-protection)",
                  (void*)a, thread_str(*f).c_str(), f->stack_size / 1024);
  die("error: " + what + where());
}

inline void install_segv_handler() {
  std::call_once(segv_state().once, [] {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = &segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &segv_state().old_segv);
    sigaction(SIGBUS, &sa, &segv_state().old_bus);
  });
}

struct GridRun {
  const LaunchSpec* spec;
  std::vector<unsigned> blocks;  // linear block ids in execution order
  std::atomic<size_t> next{0};
  unsigned nthreads;
};

// The TLS block of this module on the calling thread: its zero-initialised
// tail (.tbss) holds the static shared variables of the kernels.
inline void find_tbss(Worker& w) {
  struct Find {
    const void* anchor;
    char* lo;
    char* hi;
  } fd{&t_tls, nullptr, nullptr};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        Find* f = static_cast<Find*>(data);
        if (!info->dlpi_tls_data) return 0;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const auto& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_TLS) continue;
          char* lo = static_cast<char*>(info->dlpi_tls_data);
          char* hi = lo + ph.p_memsz;
          if (static_cast<const char*>(f->anchor) >= lo && static_cast<const char*>(f->anchor) < hi) {
            f->lo = lo + ph.p_filesz;
            f->hi = hi;
            return 1;
          }
        }
        return 0;
      },
      &fd);
  w.tbss_lo = fd.lo;
  w.tbss_hi = fd.hi;
}

inline void poison_static_smem(Worker& w) {
  if (!w.tbss_lo) return;
  Tls saved = t_tls;
  memset(w.tbss_lo, kPoisonByte, (size_t)(w.tbss_hi - w.tbss_lo));
  t_tls = saved;
}

inline void run_block(Worker& w, const LaunchSpec& spec, unsigned linear) {
  Block& b = w.block;
  b.kernel = spec.kernel_name;
  b.barrier_name = spec.barrier_name;
  b.grid_size = spec.grid;
  b.group_size = spec.block;
  b.linear_id = linear;
  b.group_id = Dim3{linear % spec.grid.x, (linear / spec.grid.x) % spec.grid.y,
                    linear / (spec.grid.x * spec.grid.y)};
  b.nthreads = spec.block.x * spec.block.y * spec.block.z;
  b.lanes_per_warp = spec.lanes_per_warp;
  b.fibers = w.fibers.data();
  b.n_exited = b.n_at_barrier = 0;
  b.phase = 0;
  b.entry = spec.entry;
  b.entry_ctx = spec.ctx;
  size_t dyn = round_up(spec.dyn_smem, DCAGEN_EMU_DYN_SMEM_ALIGN);
  b.dyn_smem = w.arena_end - dyn;  // ends at the guard page
  b.dyn_smem_size = spec.dyn_smem;
  memset(b.dyn_smem, kPoisonByte, dyn);
  poison_static_smem(w);

  unsigned L = b.lanes_per_warp;
  unsigned nwarps = (b.nthreads + L - 1) / L;
  b.warps.assign(nwarps, WarpState{});
  for (unsigned wi = 0; wi < nwarps; ++wi) {
    unsigned n = std::min(L, b.nthreads - wi * L);
    b.warps[wi].exist = n >= 32 ? 0xffffffffu : ((1u << n) - 1u);
  }
  for (unsigned t = 0; t < b.nthreads; ++t) {
    Fiber& f = w.fibers[t];
    f.linear = t;
    f.local_id = Dim3{t % spec.block.x, (t / spec.block.x) % spec.block.y, t / (spec.block.x * spec.block.y)};
    f.warp = t / L;
    f.lane = t % L;
    f.state = FState::Runnable;
    f.wait_name = f.wait_file = nullptr;
    f.wait_line = 0;
    f.async_open.clear();
    f.async_groups.clear();
    init_context(w, f);
  }
  make_order(b);

  t_tls.block = &b;
  for (;;) {
    // The first runnable fiber in this phase's order.
    Fiber* next = nullptr;
    for (; b.scan_from < b.nthreads; ++b.scan_from) {
      Fiber& f = w.fibers[b.order[b.scan_from]];
      if (f.state == FState::Runnable) {
        next = &f;
        break;
      }
    }
    if (!next) {
      if (b.n_exited == b.nthreads) break;
      bool all_wait_barrier = true;
      for (unsigned t = 0; t < b.nthreads; ++t)
        if (w.fibers[t].state == FState::AtCollective) all_wait_barrier = false;
      deadlock(b, all_wait_barrier ? "no thread can make progress"
                                   : "no thread can make progress (a warp collective waits for lanes that are "
                                     "elsewhere or exited)");
    }
    switch_into(w, *next);
  }
  t_tls.block = nullptr;
}

struct WorkerArgs {
  GridRun* run;
  char* window;
  size_t window_size;
  char* arena_end;
  size_t arena_capacity;
};

inline void* worker_main(void* arg) {
  WorkerArgs& a = *static_cast<WorkerArgs*>(arg);
  GridRun& run = *a.run;
  Worker w;  // on this thread's stack, i.e. inside its window
  t_tls.worker = &w;
  w.use_uc = config().use_ucontext;
  w.window = a.window;
  w.window_size = a.window_size;
  w.arena_end = a.arena_end;
  w.arena_capacity = a.arena_capacity;
  find_tbss(w);

  // The SIGSEGV handler must run on its own stack to report stack overflows.
  stack_t alt, old_alt;
  memset(&alt, 0, sizeof alt);
  size_t alt_size = 64 * 1024;
  w.altstack = malloc(alt_size);
  alt.ss_sp = w.altstack;
  alt.ss_size = alt_size;
  sigaltstack(&alt, &old_alt);

  size_t pg = page_size();
  size_t stack = round_up(config().stack_bytes, pg);
  size_t stride = stack + pg;
  w.fiber_mem_size = stride * run.nthreads;
  void* mem = mmap(nullptr, w.fiber_mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
  if (mem == MAP_FAILED) die(format("error: cannot map %zu bytes of emulated thread stacks", w.fiber_mem_size));
  w.fiber_mem = static_cast<char*>(mem);
  w.fibers.resize(run.nthreads);
  for (unsigned i = 0; i < run.nthreads; ++i) {
    char* base = w.fiber_mem + (size_t)i * stride;
    mprotect(base, pg, PROT_NONE);  // guard page below each stack
    w.fibers[i].stack_lo = base + pg;
    w.fibers[i].stack_size = stack;
  }

  for (;;) {
    size_t i = run.next.fetch_add(1);
    if (i >= run.blocks.size()) break;
    run_block(w, *run.spec, run.blocks[i]);
  }

  alt.ss_flags = SS_DISABLE;
  sigaltstack(&alt, nullptr);
  free(w.altstack);
  munmap(w.fiber_mem, w.fiber_mem_size);
  t_tls = Tls{nullptr, nullptr, nullptr};
  return nullptr;
}

}  // namespace detail

// Runs a whole grid: blocks in the configured order (on DCAGEN_EMU_WORKERS OS
// threads), the threads of each block as fibers. Returns when all are done.
inline void run_grid(const LaunchSpec& spec) {
  using namespace detail;
  install_segv_handler();
  GridRun run;
  run.spec = &spec;
  run.nthreads = spec.block.x * spec.block.y * spec.block.z;
  if (spec.lanes_per_warp == 0 || spec.lanes_per_warp > kMaxLanes) die("error: bad lanes_per_warp");
  unsigned nblocks = spec.grid.x * spec.grid.y * spec.grid.z;
  run.blocks.resize(nblocks);
  for (unsigned i = 0; i < nblocks; ++i) run.blocks[i] = i;
  if (config().order == Order::Reverse) std::reverse(run.blocks.begin(), run.blocks.end());
  if (config().order == Order::Shuffle) shuffle_in_place(run.blocks, config().seed ^ 0xB10C5ull);
  if (nblocks == 0 || run.nthreads == 0) return;

  unsigned nw = std::min(config().workers, nblocks);
  size_t pg = page_size();
  size_t arena = round_up(spec.dyn_smem + DCAGEN_EMU_DYN_SMEM_ALIGN, pg);
  size_t wstack = 8u << 20;  // scheduler + this module's TLS (static shared memory)
  size_t total = pg + arena + pg + wstack;
  std::vector<WorkerArgs> args(nw);
  std::vector<pthread_t> threads(nw);
  for (unsigned i = 0; i < nw; ++i) {
    void* mem = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) die("error: cannot map the shared-memory window");
    char* win = static_cast<char*>(mem);
    mprotect(win, pg, PROT_NONE);                // shared address 0 is never valid
    mprotect(win + pg + arena, pg, PROT_NONE);   // catches overruns of dynamic smem
    args[i] = WorkerArgs{&run, win, total, win + pg + arena, arena};
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, win + 2 * pg + arena, wstack);
    if (pthread_create(&threads[i], &attr, &worker_main, &args[i]) != 0) die("error: cannot start a worker thread");
    pthread_attr_destroy(&attr);
  }
  for (unsigned i = 0; i < nw; ++i) pthread_join(threads[i], nullptr);
  for (unsigned i = 0; i < nw; ++i) munmap(args[i].window, args[i].window_size);
}

}  // namespace dcagen_emu

#endif  // DCAGEN_EMU_CORE_HPP
