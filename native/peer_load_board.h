// Peers' load reports as the heartbeat thread accepts them, for the entry
// queue's thread, which decides the load policy's new connections on them
// without waiting for anyone. One writer (the heartbeat thread), one reader
// (the queue thread); a report is a load and a generation that changes with
// every accepted heartbeat, so the reader knows a new report from an old one.
// Beside each, whether this host hears that peer's every heartbeat (in
// clusters of more than 9 hosts only the hosts it watches; docs/peers.md),
// so the second choice can be drawn among peers whose reports are fresh.
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
  void SetHeardOften(uint16_t id, bool often) {
    if (id < kHosts) slots_[id].often.store(often, std::memory_order_relaxed);
  }
  // Every heartbeat of `id` reaches us (true until the heartbeat thread says otherwise).
  bool HeardOften(uint16_t id) const { return id < kHosts && slots_[id].often.load(std::memory_order_relaxed); }

 private:
  struct Slot {
    std::atomic<uint32_t> load{0};
    std::atomic<uint32_t> generation{0};
    std::atomic<bool> often{true};
  };
  Slot slots_[kHosts];
};

}  // namespace dpr
