#include "flow_table.h"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>

namespace dpr {

const char* FlowStateName(FlowState s) {
  switch (s) {
    case FlowState::kFree: return "free";
    case FlowState::kPending: return "pending";
    case FlowState::kSynSeen: return "syn";
    case FlowState::kEstablished: return "established";
    case FlowState::kClosing: return "closing";
    case FlowState::kProbation: return "probation";
    case FlowState::kReset: return "reset";
    case FlowState::kCount: break;
  }
  return "unknown";
}

template <typename Addr>
BasicFlowTable<Addr>::BasicFlowTable(size_t maxFlows, size_t maxEmbryonic, FlowTimeouts timeouts, Addr serviceAddr,
                                     SipKey key, std::shared_ptr<OpenRemoteCounts> openRemote)
    : maxFlows_(maxFlows),
      maxEmbryonic_(maxEmbryonic),
      timeouts_(timeouts),
      serviceAddr_(serviceAddr),
      key_(key),
      openRemote_(openRemote ? std::move(openRemote) : std::make_shared<OpenRemoteCounts>()) {
  if (maxFlows == 0) throw std::invalid_argument("flow table size must be > 0");
  // Smallest power of two that keeps the load factor at or under 3/4.
  size_t cap = 16;
  while (cap * 3 < maxFlows * 4) cap <<= 1;
  slots_.assign(cap, Entry{});
  mask_ = cap - 1;
}

template <typename Addr>
size_t BasicFlowTable<Addr>::Home(const Key& key) const {
  // The service address is the same for every entry: only the rest is hashed.
  uint8_t in[sizeof(Addr) + 4];
  const uint16_t cport = htons(key.clientPort);
  const uint16_t sport = htons(key.servicePort);
  std::memcpy(in, &key.clientAddr, sizeof(Addr));
  std::memcpy(in + sizeof(Addr), &cport, 2);
  std::memcpy(in + sizeof(Addr) + 2, &sport, 2);
  return static_cast<size_t>(SipHash24(key_, in, sizeof in)) & mask_;
}

template <typename Addr>
bool BasicFlowTable<Addr>::Expired(const Entry& e, uint32_t nowMs) const {
  uint32_t limit = 0;
  switch (e.state) {
    case FlowState::kPending: limit = timeouts_.pendingMs; break;
    case FlowState::kSynSeen: limit = timeouts_.synMs; break;
    case FlowState::kProbation: limit = timeouts_.probationMs; break;
    case FlowState::kEstablished: limit = timeouts_.establishedMs; break;
    case FlowState::kClosing: limit = timeouts_.closingMs; break;
    case FlowState::kReset: limit = timeouts_.resetMs; break;
    default: return false;
  }
  return static_cast<int32_t>(nowMs - e.lastSeenMs) > static_cast<int32_t>(limit);
}

template <typename Addr>
long BasicFlowTable<Addr>::Find(const Key& key, uint32_t nowMs) {
  if (key.serviceAddr != serviceAddr_) return -1;
  size_t i = Home(key);
  for (size_t d = 0; d < kMaxProbe; ++d, i = Next(i)) {
    Entry& e = slots_[i];
    // Robin Hood order: past an entry nearer its home than we are, the key is absent.
    if (e.state == FlowState::kFree || e.probe < d) return -1;
    if (Holds(e, key)) {
      if (Expired(e, nowMs)) {
        Erase(static_cast<long>(i));
        ++expired_;
        return -1;
      }
      return static_cast<long>(i);
    }
  }
  return -1;
}

template <typename Addr>
InsertResult BasicFlowTable<Addr>::Insert(const Key& key, uint16_t target, FlowState state, uint32_t nowMs,
                                          uint32_t clientNext) {
  if (size_ >= maxFlows_ || key.serviceAddr != serviceAddr_) return InsertResult::kFull;
  if (IsEmbryonic(state) && Embryonic() >= maxEmbryonic_) return InsertResult::kEmbryonicFull;
  // Where it goes: the first free slot, or the first entry nearer its home
  // than the new one would be. From there to the next free slot every entry
  // moves one slot on, so none of them may be at the bound already.
  size_t at = Home(key);
  size_t d = 0;
  for (; slots_[at].state != FlowState::kFree && slots_[at].probe >= d; ++d, at = Next(at)) {
    if (d + 1 >= kMaxProbe) {
      ++probeLimited_;
      return InsertResult::kProbeLimit;
    }
  }
  size_t end = at;
  for (; slots_[end].state != FlowState::kFree; end = Next(end)) {
    if (slots_[end].probe + 1u >= kMaxProbe) {
      ++probeLimited_;
      return InsertResult::kProbeLimit;
    }
  }
  for (size_t j = end; j != at; j = Prev(j)) {
    slots_[j] = slots_[Prev(j)];
    ++slots_[j].probe;
  }
  slots_[at] = Entry{key.clientAddr, key.clientPort, key.servicePort, nowMs, clientNext, 0,
                         static_cast<uint8_t>(target), state, static_cast<uint8_t>(d), 0};
  ++size_;
  Count(slots_[at], +1);
  return InsertResult::kOk;
}

template <typename Addr>
void BasicFlowTable<Addr>::SetState(long index, FlowState state) {
  Entry& e = slots_[index];
  Count(e, -1);
  e.state = state;
  Count(e, +1);
}

template <typename Addr>
void BasicFlowTable<Addr>::Erase(long index) {
  size_t hole = static_cast<size_t>(index);
  Count(slots_[hole], -1);
  --size_;
  // Backward shift: the rest of the run moves one slot nearer home, up to an
  // entry that is at home already (or a free slot).
  for (size_t j = Next(hole); slots_[j].state != FlowState::kFree && slots_[j].probe > 0; j = Next(j)) {
    slots_[hole] = slots_[j];
    --slots_[hole].probe;
    hole = j;
  }
  slots_[hole] = Entry{};
}

template <typename Addr>
size_t BasicFlowTable<Addr>::Sweep(size_t budget, uint32_t nowMs) {
  size_t removed = 0;
  for (size_t n = 0; n < budget && size_ > 0; ++n) {
    const size_t i = sweepHand_;
    Entry& e = slots_[i];
    if (e.state != FlowState::kFree && Expired(e, nowMs)) {
      Erase(static_cast<long>(i));
      ++removed;
      ++expired_;
      continue;  // the slot may now hold a shifted entry: look at it again
    }
    sweepHand_ = Next(sweepHand_);
  }
  return removed;
}

template <typename Addr>
size_t BasicFlowTable<Addr>::LongestProbe() const {
  size_t longest = 0;
  for (const Entry& e : slots_) {
    if (e.state != FlowState::kFree && e.probe > longest) longest = e.probe;
  }
  return longest;
}

template <typename Addr>
bool BasicFlowTable<Addr>::Verify() const {
  size_t live = 0;
  size_t byState[static_cast<size_t>(FlowState::kCount)] = {};
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Entry& e = slots_[i];
    if (e.state == FlowState::kFree) continue;
    if (static_cast<size_t>(e.state) >= static_cast<size_t>(FlowState::kCount)) return false;
    ++live;
    ++byState[static_cast<size_t>(e.state)];
    if (e.probe >= kMaxProbe || ((i - Home(KeyOf(e))) & mask_) != e.probe) return false;
    // The run is unbroken back to home, and in Robin Hood order.
    const Entry& before = slots_[Prev(i)];
    if (e.probe > 0 && (before.state == FlowState::kFree || before.probe + 1u < e.probe)) return false;
  }
  if (live != size_) return false;
  for (size_t s = 1; s < static_cast<size_t>(FlowState::kCount); ++s) {
    if (byState[s] != byState_[s]) return false;
  }
  return true;
}

template class BasicFlowTable<uint32_t>;
template class BasicFlowTable<Ip6>;

}  // namespace dpr
