// This host's load for the load policy's decisions, in the entry queue's
// thread: the established connections on the service ports as the control
// plane last counted them exactly (a sock_diag dump, lib/load-meter.ts, about
// once a second while traffic passes), carried forward between two counts by
// the kernel's count of TCP sockets in use (/proc/net/sockstat and, for
// IPv6 sockets, which it leaves out, sockstat6: a pread each, ~4 µs; as
// lib/sockstat.ts) read at most every kMaxAgeMs, plus the connections kept
// here since that read (not established yet when it was taken).
#pragma once
#include <atomic>
#include <cstdint>

namespace dpr {

class OwnLoad {
 public:
  static constexpr uint32_t kMaxAgeMs = 5;

  OwnLoad();
  ~OwnLoad();
  OwnLoad(const OwnLoad&) = delete;
  OwnLoad& operator=(const OwnLoad&) = delete;

  // Control plane, any thread: an exact count, and the sockets-in-use count
  // read with it (negative: none, so `value` stands until the next count).
  void Calibrate(uint32_t value, int64_t inUse);
  // Queue thread: the load now.
  uint32_t Now(uint32_t nowMs);
  // Queue thread: a new connection was kept here.
  void NoteKept() { ++kept_; }

 private:
  int64_t ReadInUse();

  // value << 32 | inUse (0xffffffff: none), one word so a reader never sees half of it.
  std::atomic<uint64_t> calibration_{0xffffffffULL};
  std::atomic<uint32_t> calibrations_{0};
  // The queue thread's own.
  int fd_ = -1;
  int fd6_ = -1;
  uint32_t readAtMs_ = 0;
  bool read_ = false;
  uint32_t seenCalibrations_ = 0;
  uint32_t value_ = 0;
  uint32_t kept_ = 0;
};

}  // namespace dpr
