#include "flow_table.h"

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
    case FlowState::kCount: break;
  }
  return "unknown";
}

FlowTable::FlowTable(size_t maxFlows, size_t maxEmbryonic, FlowTimeouts timeouts)
    : maxFlows_(maxFlows), maxEmbryonic_(maxEmbryonic), timeouts_(timeouts) {
  if (maxFlows == 0) throw std::invalid_argument("flow table size must be > 0");
  // Smallest power of two that keeps the load factor at or under 3/4.
  size_t cap = 16;
  while (cap * 3 < maxFlows * 4) cap <<= 1;
  slots_.assign(cap, FlowEntry{});
  mask_ = cap - 1;
}

size_t FlowTable::Home(const FlowKey& key) const {
  const uint64_t a = (static_cast<uint64_t>(key.clientAddr) << 32) | key.serviceAddr;
  const uint64_t b = (static_cast<uint64_t>(key.clientPort) << 16) | key.servicePort;
  return static_cast<size_t>(Mix64(a ^ Mix64(b))) & mask_;
}

bool FlowTable::Expired(const FlowEntry& e, uint32_t nowMs) const {
  uint32_t limit = 0;
  switch (e.state) {
    case FlowState::kPending: limit = timeouts_.pendingMs; break;
    case FlowState::kSynSeen: limit = timeouts_.synMs; break;
    case FlowState::kEstablished: limit = timeouts_.establishedMs; break;
    case FlowState::kClosing: limit = timeouts_.closingMs; break;
    default: return false;
  }
  return static_cast<int32_t>(nowMs - e.lastSeenMs) > static_cast<int32_t>(limit);
}

long FlowTable::Find(const FlowKey& key, uint32_t nowMs) {
  for (size_t i = Home(key);; i = (i + 1) & mask_) {
    FlowEntry& e = slots_[i];
    if (e.state == FlowState::kFree) return -1;
    if (e.key == key) {
      if (Expired(e, nowMs)) {
        Erase(static_cast<long>(i));
        ++expired_;
        return -1;
      }
      return static_cast<long>(i);
    }
  }
}

bool FlowTable::Insert(const FlowKey& key, uint16_t target, FlowState state, uint32_t nowMs) {
  if (size_ >= maxFlows_) return false;
  if (IsEmbryonic(state) &&
      byState_[static_cast<size_t>(FlowState::kPending)] +
              byState_[static_cast<size_t>(FlowState::kSynSeen)] >=
          maxEmbryonic_) {
    return false;
  }
  size_t i = Home(key);
  while (slots_[i].state != FlowState::kFree) i = (i + 1) & mask_;
  slots_[i] = FlowEntry{key, nowMs, target, state, 0};
  ++size_;
  Count(slots_[i], +1);
  return true;
}

void FlowTable::SetState(long index, FlowState state) {
  FlowEntry& e = slots_[index];
  Count(e, -1);
  e.state = state;
  Count(e, +1);
}

void FlowTable::Erase(long index) {
  size_t hole = static_cast<size_t>(index);
  Count(slots_[hole], -1);
  --size_;
  // Backward shift: pull later members of the probe run into the hole when the
  // hole lies between their home slot and where they sit.
  for (size_t j = (hole + 1) & mask_; slots_[j].state != FlowState::kFree; j = (j + 1) & mask_) {
    const size_t home = Home(slots_[j].key);
    const bool movable = ((j - home) & mask_) >= ((j - hole) & mask_);
    if (movable) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = FlowEntry{};
}

size_t FlowTable::Sweep(size_t budget, uint32_t nowMs) {
  size_t removed = 0;
  for (size_t n = 0; n < budget && size_ > 0; ++n) {
    const size_t i = sweepHand_;
    FlowEntry& e = slots_[i];
    if (e.state != FlowState::kFree && Expired(e, nowMs)) {
      Erase(static_cast<long>(i));
      ++removed;
      ++expired_;
      continue;  // the slot may now hold a shifted entry: look at it again
    }
    sweepHand_ = (sweepHand_ + 1) & mask_;
  }
  return removed;
}

}  // namespace dpr
