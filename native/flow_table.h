// The flow table: the one contract between the data plane and the control
// plane. Key: client address and port + service address and port. Value: the
// host that serves the flow, its TCP state as seen from the client side (the
// only side an entry host sees), and when it was last seen.
//
// Open addressing with linear probing and backward-shift deletion, so there
// are no tombstones and lookups stay short at any age. Bounded: inserts fail
// once `maxFlows` are held, and embryonic flows (a SYN seen, nothing after) have
// a budget of their own so a SYN flood cannot push out established flows.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dpr {

enum class FlowState : uint8_t {
  kFree = 0,
  kPending,      // SYN held in the kernel queue while policy decides
  kSynSeen,      // decided; no packet after the SYN yet
  kEstablished,  // the client sent data or an ACK
  kClosing,      // the client sent FIN
  kCount
};

const char* FlowStateName(FlowState s);

struct FlowKey {
  uint32_t clientAddr;   // network order
  uint32_t serviceAddr;  // network order
  uint16_t clientPort;   // host order
  uint16_t servicePort;  // host order

  bool operator==(const FlowKey& o) const {
    return clientAddr == o.clientAddr && serviceAddr == o.serviceAddr &&
           clientPort == o.clientPort && servicePort == o.servicePort;
  }
};

// 20 bytes; the table holds 2^k of them with load factor <= 0.75.
struct FlowEntry {
  FlowKey key;
  uint32_t lastSeenMs;  // engine clock, wraps after 49 days: compared as a signed difference
  uint16_t target;      // host id
  FlowState state;
  uint8_t reserved;
};

struct FlowTimeouts {
  uint32_t pendingMs = 1000;
  uint32_t synMs = 10000;
  uint32_t establishedMs = 900000;  // as IPVS's tcp timeout
  uint32_t closingMs = 120000;      // as IPVS's fin_wait
};

class FlowTable {
 public:
  FlowTable(size_t maxFlows, size_t maxEmbryonic, FlowTimeouts timeouts);

  // Index of the live entry for `key`, or -1. An expired entry is removed and
  // reported absent.
  long Find(const FlowKey& key, uint32_t nowMs);
  // Insert a new entry; false when the table or the embryonic budget is full.
  bool Insert(const FlowKey& key, uint16_t target, FlowState state, uint32_t nowMs);
  void SetState(long index, FlowState state);
  void Touch(long index, uint32_t nowMs) { slots_[index].lastSeenMs = nowMs; }
  void Erase(long index);
  FlowEntry& At(long index) { return slots_[index]; }

  // Calls fn(entry) for every live entry, in slot order.
  template <typename Fn>
  void ForEach(Fn fn) const {
    for (const FlowEntry& e : slots_) {
      if (e.state != FlowState::kFree) fn(e);
    }
  }

  // Visit `budget` slots from where the last sweep stopped and drop the expired.
  size_t Sweep(size_t budget, uint32_t nowMs);

  size_t size() const { return size_; }
  // Entries dropped for age, by a sweep or when a lookup met them.
  uint64_t expired() const { return expired_; }
  size_t capacity() const { return slots_.size(); }
  size_t maxFlows() const { return maxFlows_; }
  size_t CountIn(FlowState s) const { return byState_[static_cast<size_t>(s)]; }
  // Of those, the flows that another host serves (target != localTarget).
  size_t RemoteIn(FlowState s) const { return remoteByState_[static_cast<size_t>(s)]; }
  void SetLocalTarget(uint16_t target) { localTarget_ = target; }
  size_t BytesPerFlowAtMax() const { return slots_.size() * sizeof(FlowEntry) / maxFlows_; }

 private:
  size_t Home(const FlowKey& key) const;
  bool Expired(const FlowEntry& e, uint32_t nowMs) const;
  static bool IsEmbryonic(FlowState s) { return s == FlowState::kPending || s == FlowState::kSynSeen; }

  std::vector<FlowEntry> slots_;
  size_t mask_;
  size_t maxFlows_;
  size_t maxEmbryonic_;
  FlowTimeouts timeouts_;
  size_t size_ = 0;
  size_t sweepHand_ = 0;
  uint64_t expired_ = 0;
  size_t byState_[static_cast<size_t>(FlowState::kCount)] = {};
  size_t remoteByState_[static_cast<size_t>(FlowState::kCount)] = {};
  uint16_t localTarget_ = 0;

  void Count(const FlowEntry& e, int delta) {
    byState_[static_cast<size_t>(e.state)] += delta;
    if (e.target != localTarget_) remoteByState_[static_cast<size_t>(e.state)] += delta;
  }

 public:
  // Entries change target only through here, so the remote counts stay right.
  void SetTarget(long index, uint16_t target) {
    Count(slots_[index], -1);
    slots_[index].target = target;
    Count(slots_[index], +1);
  }
};

// 64-bit mixer (splitmix64's finalizer): cheap and good enough to spread
// client addresses and ports that differ in few bits.
inline uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace dpr
