// Peers' load reports as the heartbeat thread accepts them, for the entry
// queue's thread, which decides the load policy's new connections on them
// without waiting for anyone. One writer (the heartbeat thread), one reader
// (the queue thread); a report is a load and a generation that changes with
// every accepted heartbeat, so the reader knows a new report from an old one.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace dpr {

class PeerLoadBoard {
 public:
  static constexpr size_t kHosts = 256;  // host ids are 0..255

  void Publish(uint16_t id, uint32_t load) {
    if (id >= kHosts) return;
    Slot& s = slots_[id];
    s.load.store(load, std::memory_order_relaxed);
    s.generation.store(s.generation.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  // Which report of `id` is the latest (0: none yet).
  uint32_t Generation(uint16_t id) const {
    return id < kHosts ? slots_[id].generation.load(std::memory_order_acquire) : 0;
  }
  uint32_t Load(uint16_t id) const { return id < kHosts ? slots_[id].load.load(std::memory_order_relaxed) : 0; }

 private:
  struct Slot {
    std::atomic<uint32_t> load{0};
    std::atomic<uint32_t> generation{0};
  };
  Slot slots_[kHosts];
};

}  // namespace dpr
