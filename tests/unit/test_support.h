// Helpers shared by the srcu tests.
#pragma once

#include <srcu/srcu.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace srcu_test {

using namespace std::chrono_literals;

// A latch a test thread can wait on; set once.
class flag {
 public:
  void set() { value_.store(true, std::memory_order_release); }
  bool is_set() const { return value_.load(std::memory_order_acquire); }
  // Waits until set; returns false after `limit` (a hang guard, not a timing
  // assertion: limits are minutes-scale generous).
  bool wait(std::chrono::milliseconds limit = 60s) const {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!is_set()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(100us);
    }
    return true;
  }

 private:
  std::atomic<bool> value_{false};
};

// A thread that holds a read_guard on `d` from construction (returns once it
// is inside) until release() (or destruction).
class held_reader {
 public:
  explicit held_reader(srcu::domain& d) : thread_([this, &d] {
    srcu::read_guard g(d);
    inside_.set();
    (void)release_.wait();
  }) {
    (void)inside_.wait();
  }
  ~held_reader() { release(); }
  void release() {
    release_.set();
    if (thread_.joinable()) thread_.join();
  }

 private:
  flag inside_, release_;
  std::thread thread_;
};

// An executor with one thread of its own and a FIFO queue. With `user_lock`,
// submit() takes that lock around queueing (a user's lock inside the hook).
class thread_executor final : public srcu::executor {
 public:
  explicit thread_executor(std::mutex* user_lock = nullptr)
      : user_lock_(user_lock), thread_([this] { loop(); }) {}
  ~thread_executor() {
    {
      std::lock_guard lk(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void submit(srcu::callback_batch batch) noexcept override {
    std::unique_lock<std::mutex> user;
    if (user_lock_ != nullptr) user = std::unique_lock(*user_lock_);
    submitted_.fetch_add(1);  // before the batch can run: a barrier() it ends sees the count
    {
      std::lock_guard lk(mutex_);
      queue_.push_back(std::move(batch));
    }
    cv_.notify_one();
  }
  std::thread::id thread_id() const { return thread_.get_id(); }
  int submitted() const { return submitted_.load(); }

 private:
  void loop() {
    std::unique_lock lk(mutex_);
    for (;;) {
      cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      srcu::callback_batch b = std::move(queue_.front());
      queue_.pop_front();
      lk.unlock();
      b.run();
      lk.lock();
    }
  }
  std::mutex* const user_lock_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<srcu::callback_batch> queue_;
  bool stop_ = false;
  std::atomic<int> submitted_{0};
  std::thread thread_;
};

// A hang guard for a step that must finish: if it is still armed after
// `limit`, prints what the test was waiting for and aborts, so the test fails
// with that message instead of hanging until ctest's TIMEOUT. Limits are
// tens of seconds: a guard against hangs, never a speed assertion.
// rearm() names the next step and restarts the limit; the destructor disarms.
class watchdog {
 public:
  explicit watchdog(std::string what, std::chrono::seconds limit = 30s)
      : limit_(limit), what_(std::move(what)), deadline_(clock::now() + limit_),
        thread_([this] { run(); }) {}
  ~watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      disarmed_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  void rearm(std::string what) {
    std::lock_guard<std::mutex> lock(mutex_);
    what_ = std::move(what);
    deadline_ = clock::now() + limit_;
  }

 private:
  using clock = std::chrono::steady_clock;

  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!disarmed_) {
      if (clock::now() >= deadline_) {
        std::fprintf(stderr, "srcu_test::watchdog: still waiting after %lld s for: %s\n",
                     static_cast<long long>(limit_.count()), what_.c_str());
        std::fflush(stderr);
        std::abort();
      }
      changed_.wait_until(lock, deadline_);
    }
  }

  const std::chrono::seconds limit_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string what_;
  clock::time_point deadline_;
  bool disarmed_ = false;
  std::thread thread_;  // last: starts after every other member is ready
};

// Scales stress durations: SRCU_STRESS_SECONDS (default `fallback`).
inline double stress_seconds(double fallback) {
  const char* v = std::getenv("SRCU_STRESS_SECONDS");
  return v != nullptr ? std::atof(v) : fallback;
}

// Before a fork(): the first signal-safe or down/up section or call() of a
// domain asks the engine for the full shard table, which it allocates. Waits
// until it has (on more than one CPU; one CPU keeps the small table). The
// GCC 12 ASan runtime's allocator lock, held by a thread allocating at
// fork(), stays held in the child, whose threads then hang; glibc's malloc
// is fork-safe, so plain builds need none of this.
inline void let_shards_grow(const srcu::domain& d) {
  if (std::thread::hardware_concurrency() <= 1) return;
  watchdog dog("the engine to add the full shard table of '" + std::string(d.name()) + "'");
  while (d.stats().reader_shards == 1) std::this_thread::sleep_for(100us);
}

}  // namespace srcu_test
