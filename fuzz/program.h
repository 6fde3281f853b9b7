// srcu_fuzz::program — fuzzer input bytes decoded into a valid srcu program.
//
// The decoder is pure (no srcu call, no thread): it turns bytes into rounds
// of operations for kWorkers worker threads over up to kSlots live domains.
// api_fuzzer.cc runs the rounds: domain creation and destruction on the
// fuzzing thread, then each worker's operations concurrently, then a join.
//
// Input format (every byte string decodes; missing bytes read as 0):
//   byte 0       initial domains: slots 0 .. (b & 3) are created; slot i < 3
//                gets executor ((b >> (2 + 2i)) & 3) % 3 (0: srcu's callback
//                thread, 1: inline executor, 2: executor thread).
//   then pairs   (op, arg): op & 31 is the code (see kCodes in program.cc),
//                (op >> 5) % kWorkers the worker; arg & 3 picks the domain
//                slot (the next live one if that slot is empty), arg >> 2
//                picks a token, cookie or variant.
//
// Only valid programs come out (srcu's preconditions hold in every
// interleaving); an operation that would break one is dropped or preceded by
// the unlocks that make it legal:
//  - every unlock matches an open section of its flavour, on the thread that
//    holds it; up_read() of another worker's down_read() token only for a
//    token taken in an earlier round (the token travels with the join);
//  - a blocking call (synchronize*, cond_synchronize, barrier) on the domain
//    in slot s is made by a thread holding sections of slots < s only (its
//    own sections of slots >= s are closed just before): slot order is a lock
//    order, so blocked threads never wait on each other in a cycle;
//  - every section of a domain that had a blocking call in a round is closed
//    by the end of that round (nobody waits on a worker that sits idle);
//  - a domain is destroyed between rounds, after all its sections ended,
//    and after the workers' reclaim_lists on it (each flushes);
//  - reclaim_list::flush() is a blocking call (it waits for grace periods);
//  - at the end every section is closed and every domain destroyed.
// With `misuse` set, code 31 becomes one deliberate misuse (the last op).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace srcu_fuzz {

inline constexpr int kWorkers = 3;
inline constexpr int kSlots = 4;             // domains alive at once
inline constexpr std::size_t kMaxOps = 512;  // decoded (op, arg) pairs per input
inline constexpr std::size_t kMaxInstances = 16;
inline constexpr std::size_t kMaxTokens = 256;
inline constexpr std::size_t kMaxCookies = 128;
inline constexpr std::size_t kMaxNodes = 256;  // queued callbacks
inline constexpr int kMaxBlocking = 32;        // blocking calls per input
inline constexpr int kMaxNesting = 8;          // open sections per worker, domain, flavour
inline constexpr std::uint16_t kDefaultCookie = 0xffff;  // poll(poll_cookie{})

enum class op_kind : std::uint8_t {
  read_lock,      // arg: token
  read_unlock,    // arg: token
  signal_lock,    // read_lock_signal_safe; arg: token
  signal_unlock,  // arg: token
  down_read,      // arg: token
  up_read,        // arg: token
  lock,
  try_lock,
  unlock,
  guarded_section,        // read_guard or unique_lock around a poll; arg: variant
  synchronize,            // checks: cookies
  synchronize_expedited,  // checks: cookies
  cond_synchronize,       // arg: cookie
  barrier,                // checks: nodes
  call_head,              // intrusive call(); arg: node
  call_lambda,            // call(F); arg: node
  retire,                 // retire(p, deleter); arg: node
  retire_obj,             // rcu_obj_base::retire(); arg: node
  get_cookie,             // arg: cookie
  start_poll,             // arg: cookie
  poll,                   // arg: cookie or kDefaultCookie
  gp_count,               // grace_periods_completed() monotonic
  defer,                  // the worker's reclaim_list::defer(); arg: node; kPinned: other = token
  reclaim,                // the worker's reclaim_list::reclaim()
  reclaim_flush,          // the worker's reclaim_list::flush(); checks: nodes
  misuse,                 // arg: misuse_kind; other: second domain
};

enum class misuse_kind : std::uint8_t {
  default_token,          // read_unlock(read_token{})
  foreign_token,          // up_read() given another domain's down_read() token
  wrong_flavour,          // read_unlock() given a read_lock_signal_safe() token
  unlock_without_lock,    // unlock() with no lock()
  synchronize_in_reader,  // synchronize() inside read_lock() of the same domain
  defer_twice,            // the worker's reclaim_list given one callback_head twice
  flush_in_function,      // reclaim_list::flush() from one of the list's own functions
};
inline constexpr int kMisuseKinds = 7;

// op::flags
inline constexpr std::uint8_t kExpectPending = 1;  // poll: a reader that began before
                                                   // the cookie is still inside
inline constexpr std::uint8_t kPinned = 2;  // defer: token `other`, opened by this worker
                                            // before the defer(), is open: the function
                                            // must not run while it stays open

struct op {
  op_kind kind{};
  std::uint8_t instance = 0;  // domain instance
  std::uint8_t flags = 0;
  std::uint8_t other = 0;  // misuse foreign_token: the token's domain instance; defer: token
  std::uint16_t arg = 0;
  std::uint16_t check_count = 0;  // entries of program::checks to verify afterwards
  std::uint32_t check_begin = 0;
};

enum class action_kind : std::uint8_t { create, destroy };

// Done by the fuzzing thread before a round's operations start.
struct domain_action {
  action_kind kind{};
  std::uint8_t instance = 0;
};

struct round {
  std::vector<domain_action> before;
  std::array<std::vector<op>, kWorkers> ops;  // per worker, in program order
};

struct instance_info {
  std::uint8_t slot = 0;
  std::uint8_t executor = 0;  // 0: callback thread, 1: inline, 2: executor thread
};

struct program {
  std::vector<round> rounds;
  std::vector<instance_info> instances;
  std::vector<std::uint8_t> node_instance;  // per callback node: its domain instance
  // Checks after blocking calls: cookie indexes (synchronize) or node
  // indexes (barrier) known to have been taken/queued before the call.
  std::vector<std::uint16_t> checks;
  std::size_t token_count = 0;
  std::size_t cookie_count = 0;
  bool has_misuse = false;
};

// Decodes `data`. Deterministic; never fails.
program decode(const std::uint8_t* data, std::size_t size, bool misuse);

// "read_lock", "synchronize", ... (for traces and failure reports).
const char* op_name(op_kind kind) noexcept;

// One line per round: domain actions, then each worker's operations
// (api_fuzzer prints this when SRCU_FUZZ_TRACE=1, to read a crash input).
void print(const program& p, std::FILE* out);

}  // namespace srcu_fuzz
