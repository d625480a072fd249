#include "load_decider.h"

#include <random>

namespace dpr {

LoadDecider::LoadDecider(uint64_t seed) : rng_(seed != 0 ? seed : (static_cast<uint64_t>(std::random_device{}()) << 32 | std::random_device{}()) | 1) {
  scratch_.reserve(PeerLoadBoard::kHosts);
}

double LoadDecider::Random() {
  // xorshift64*: the draw needs to be even, not secret (the Maglev choice
  // beside it is keyed).
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return static_cast<double>((rng_ * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

double LoadDecider::Estimate(uint16_t id, const OpenRemoteCounts& opens) {
  if (id >= PeerLoadBoard::kHosts) return 0;
  const int64_t open = opens.Get(id);
  const uint32_t generation = board_ ? board_->Generation(id) : 0;
  // A new report counts what was open when the peer measured; before any
  // report (generation 0, base 0), what we sent is all we know of.
  if (generation != seen_[id]) {
    base_[id] = open;
    seen_[id] = generation;
  }
  const int64_t reported = board_ ? board_->Load(id) : 0;
  const int64_t estimate = reported + open - base_[id];
  return estimate > 0 ? static_cast<double>(estimate) : 0;
}

uint16_t LoadDecider::Decide(uint16_t self, uint16_t hashTarget, const std::vector<bool>& live, const OpenRemoteCounts& opens,
                             uint32_t nowMs) {
  scratch_.clear();
  for (size_t id = 0; id < live.size() && id < PeerLoadBoard::kHosts; ++id) {
    if (!live[id] || id == self || WeightOf(static_cast<uint16_t>(id)) == 0) continue;
    scratch_.push_back(Contender{static_cast<uint16_t>(id), WeightOf(static_cast<uint16_t>(id)), 0});
  }
  if (scratch_.empty()) return self;
  for (Contender& c : scratch_) {
    c.load = Estimate(c.id, opens);
    c.heardOften = !board_ || board_->HeardOften(c.id);
  }
  LoadSituation s;
  s.self = self;
  s.ownWeight = WeightOf(self);
  s.selfEligible = self < live.size() && live[self] && s.ownWeight > 0;
  s.ownLoad = s.selfEligible ? own_.Now(nowMs) : 0;
  s.peers = scratch_.data();
  s.count = scratch_.size();
  s.hashTarget = hashTarget;
  s.random = Random();
  return ChooseHost(s, threshold_);
}

}  // namespace dpr
