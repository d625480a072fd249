// The flow table: the one contract between the data plane and the control
// plane. Key: client address and port + service address and port. Value: the
// host that serves the flow, its TCP state as seen from the client side (the
// only side an entry host sees), where the client's sequence numbers are, and
// when it was last seen.
//
// One table per service address, so an entry does not repeat it. Open
// addressing with Robin Hood linear probing (an entry sits before any entry
// farther from its own home) and backward-shift deletion: no tombstones, and
// every entry stays within kMaxProbe slots of its home slot. The home slot is
// a keyed hash (SipHash-2-4, a random key per start), so nobody can pick
// colliding flows; the bound holds even for someone who could: an insert that
// would pass it is refused and counted. Bounded: inserts also fail once
// `maxFlows` are held, and embryonic flows (no progress from the client yet)
// have a budget of their own so a flood of them cannot take the whole table.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "ip6.h"
#include "siphash.h"

namespace dpr {

enum class FlowState : uint8_t {
  kFree = 0,
  kPending,      // unused since both policies decide at the SYN; kept so state numbers (snapshots, stats) stay
  kSynSeen,      // decided; no packet after the SYN yet
  kEstablished,  // the client made progress: data, a FIN, or an ACK number past its first
  kClosing,      // the client sent FIN
  kProbation,    // after the SYN only bare ACKs with one ACK number: still embryonic
  kReset,        // a plausible RST came: kept (the serving host decides), on a short timeout
  kCount
};

const char* FlowStateName(FlowState s);

// `Addr`: uint32_t (IPv4) or Ip6, both in network order. An IPv6 flow has a
// table of its own, so an IPv4 entry stays 24 bytes.
template <typename Addr>
struct BasicFlowKey {
  Addr clientAddr;
  Addr serviceAddr;
  uint16_t clientPort;   // host order
  uint16_t servicePort;  // host order

  bool operator==(const BasicFlowKey& o) const {
    return clientAddr == o.clientAddr && serviceAddr == o.serviceAddr &&
           clientPort == o.clientPort && servicePort == o.servicePort;
  }
};

// IPv4: 24 bytes; the table holds 2^k of them with load factor <= 0.75 (<= 64
// bytes per flow at the configured maximum, whatever it is). IPv6: 36 bytes
// (<= 96 per flow).
template <typename Addr>
struct BasicFlowEntry {
  Addr clientAddr;      // network order
  uint16_t clientPort;
  uint16_t servicePort;
  uint32_t lastSeenMs;  // engine clock, wraps after 49 days: compared as a signed difference
  uint32_t clientNext;  // the client's next sequence number (highest seq + length seen)
  uint32_t firstAck;    // probation: the ACK number of the client's first bare ACK
  uint8_t target;       // host id (ids are 0..255)
  FlowState state;
  uint8_t probe;        // slots between its home slot and where it sits
  uint8_t spare;
};

using FlowKey = BasicFlowKey<uint32_t>;
using FlowEntry = BasicFlowEntry<uint32_t>;
using FlowKey6 = BasicFlowKey<Ip6>;
using FlowEntry6 = BasicFlowEntry<Ip6>;
static_assert(sizeof(FlowEntry) == 24, "FlowEntry must stay 24 bytes (<= 64 B per flow)");
static_assert(sizeof(FlowEntry6) == 36, "FlowEntry6 must stay 36 bytes (<= 96 B per flow)");

// Open flows (SYN seen, probation, established: not closing, reset or
// pending) that each host serves for us, now, over every table of an engine
// (IPv4 and IPv6 share one). Written by the owning thread, read from any: the
// load policy's estimate of a peer is its last report corrected by how this
// count moved since (native/load_decider.h).
class OpenRemoteCounts {
 public:
  static constexpr size_t kTargets = 256;  // a flow entry's target is a byte
  int64_t Get(uint16_t target) const { return target < kTargets ? n_[target].load(std::memory_order_relaxed) : 0; }
  void Add(uint16_t target, int delta) {
    std::atomic<int64_t>& n = n_[target];
    n.store(n.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);  // one writer
  }

 private:
  std::atomic<int64_t> n_[kTargets] = {};
};

struct FlowTimeouts {
  uint32_t pendingMs = 1000;
  uint32_t synMs = 10000;
  uint32_t probationMs = 30000;
  uint32_t establishedMs = 900000;  // as IPVS's tcp timeout
  uint32_t closingMs = 120000;      // as IPVS's fin_wait
  uint32_t resetMs = 10000;         // as IPVS's close
};

enum class InsertResult : uint8_t { kOk, kFull, kEmbryonicFull, kProbeLimit };

template <typename Addr>
class BasicFlowTable {
 public:
  using Key = BasicFlowKey<Addr>;
  using Entry = BasicFlowEntry<Addr>;

  // No entry sits farther than this from its home slot (and no lookup looks
  // farther). Robin Hood keeps runs short: with random keys at load 3/4 the
  // longest measured was 22 slots in 2^21 (plain linear probing: 162).
  static constexpr size_t kMaxProbe = 64;

  // `openRemote`: where the open remote flows are counted (shared with the
  // engine's other table); null: a count of its own.
  BasicFlowTable(size_t maxFlows, size_t maxEmbryonic, FlowTimeouts timeouts, Addr serviceAddr, SipKey key,
                 std::shared_ptr<OpenRemoteCounts> openRemote = nullptr);

  // Index of the live entry for `key`, or -1. An expired entry is removed and
  // reported absent.
  long Find(const Key& key, uint32_t nowMs);
  InsertResult Insert(const Key& key, uint16_t target, FlowState state, uint32_t nowMs, uint32_t clientNext = 0);
  void SetState(long index, FlowState state);
  void Touch(long index, uint32_t nowMs) { slots_[index].lastSeenMs = nowMs; }
  void Erase(long index);
  Entry& At(long index) { return slots_[index]; }
  const Entry& At(long index) const { return slots_[index]; }
  Key KeyOf(const Entry& e) const { return Key{e.clientAddr, serviceAddr_, e.clientPort, e.servicePort}; }

  // Calls fn(entry) for every live entry, in slot order.
  template <typename Fn>
  void ForEach(Fn fn) const {
    for (const Entry& e : slots_) {
      if (e.state != FlowState::kFree) fn(e);
    }
  }

  // Visit `budget` slots from where the last sweep stopped and drop the expired.
  size_t Sweep(size_t budget, uint32_t nowMs);

  size_t size() const { return size_; }
  // Entries dropped for age, by a sweep or when a lookup met them.
  uint64_t expired() const { return expired_; }
  uint64_t probeLimited() const { return probeLimited_; }
  size_t capacity() const { return slots_.size(); }
  size_t maxFlows() const { return maxFlows_; }
  size_t maxEmbryonic() const { return maxEmbryonic_; }
  size_t CountIn(FlowState s) const { return byState_[static_cast<size_t>(s)]; }
  // Of those, the flows that another host serves (target != localTarget).
  size_t RemoteIn(FlowState s) const { return remoteByState_[static_cast<size_t>(s)]; }
  size_t Embryonic() const {
    return CountIn(FlowState::kPending) + CountIn(FlowState::kSynSeen) + CountIn(FlowState::kProbation);
  }
  void SetLocalTarget(uint16_t target) { localTarget_ = target; }
  // Open flows host `target` serves for us now (OpenRemoteCounts), over
  // every table that shares the count.
  int64_t OpenRemote(uint16_t target) const { return openRemote_->Get(target); }
  const OpenRemoteCounts& openRemote() const { return *openRemote_; }
  std::shared_ptr<OpenRemoteCounts> sharedOpenRemote() const { return openRemote_; }
  size_t BytesPerFlowAtMax() const { return slots_.size() * sizeof(Entry) / maxFlows_; }
  size_t LongestProbe() const;
  // The home slot a key hashes to (tests, the fuzzer).
  size_t Home(const Key& key) const;
  // Robin Hood order, probe lengths and counts all hold (the fuzzer checks it).
  bool Verify() const;

  static bool IsOpen(FlowState s) {
    return s == FlowState::kSynSeen || s == FlowState::kProbation || s == FlowState::kEstablished;
  }
  static bool IsEmbryonic(FlowState s) {
    return s == FlowState::kPending || s == FlowState::kSynSeen || s == FlowState::kProbation;
  }

  // Entries change target only through here, so the remote counts stay right.
  void SetTarget(long index, uint16_t target) {
    Count(slots_[index], -1);
    slots_[index].target = static_cast<uint8_t>(target);
    Count(slots_[index], +1);
  }

 private:
  bool Expired(const Entry& e, uint32_t nowMs) const;
  size_t Next(size_t i) const { return (i + 1) & mask_; }
  size_t Prev(size_t i) const { return (i - 1) & mask_; }
  bool Holds(const Entry& e, const Key& k) const {
    return e.clientAddr == k.clientAddr && e.clientPort == k.clientPort && e.servicePort == k.servicePort;
  }

  std::vector<Entry> slots_;
  size_t mask_;
  size_t maxFlows_;
  size_t maxEmbryonic_;
  FlowTimeouts timeouts_;
  Addr serviceAddr_;
  SipKey key_;
  size_t size_ = 0;
  size_t sweepHand_ = 0;
  uint64_t expired_ = 0;
  uint64_t probeLimited_ = 0;
  size_t byState_[static_cast<size_t>(FlowState::kCount)] = {};
  size_t remoteByState_[static_cast<size_t>(FlowState::kCount)] = {};
  uint16_t localTarget_ = 0;
  std::shared_ptr<OpenRemoteCounts> openRemote_;

  void Count(const Entry& e, int delta) {
    byState_[static_cast<size_t>(e.state)] += delta;
    if (e.target == localTarget_) return;
    remoteByState_[static_cast<size_t>(e.state)] += delta;
    if (IsOpen(e.state)) openRemote_->Add(e.target, delta);
  }
};

using FlowTable = BasicFlowTable<uint32_t>;
using FlowTable6 = BasicFlowTable<Ip6>;
extern template class BasicFlowTable<uint32_t>;
extern template class BasicFlowTable<Ip6>;

}  // namespace dpr
