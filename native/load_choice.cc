#include "load_choice.h"

#include <algorithm>

namespace dpr {

namespace {
double PerWeight(const Contender& c) { return c.load / c.weight; }
}  // namespace

uint16_t ChooseHost(const LoadSituation& s, uint32_t threshold) {
  if (s.count == 0) return s.self;
  if (s.selfEligible) {
    double total = s.ownLoad;
    double weight = s.ownWeight;
    for (size_t i = 0; i < s.count; ++i) {
      total += s.peers[i].load;
      weight += s.peers[i].weight;
    }
    const double after = (s.ownLoad + 1) / s.ownWeight;
    if (after <= std::max(static_cast<double>(threshold), (total + 1) / weight * (1 + kHeadroom))) return s.self;
  }
  const Contender* first = nullptr;
  size_t often = 0;
  for (size_t i = 0; i < s.count; ++i) {
    if (s.peers[i].id == s.hashTarget) first = &s.peers[i];
    if (s.peers[i].heardOften) ++often;
  }
  // The second choice: a random peer other than the first (none if the first
  // is the only one), among those heard often if any are.
  const size_t others = first == nullptr ? s.count : s.count - 1;
  if (first != nullptr && first->heardOften) --often;
  const bool onlyOften = often > 0;
  const size_t pool = onlyOften ? often : others;
  const Contender* second = nullptr;
  if (pool > 0) {
    size_t k = std::min(pool - 1, static_cast<size_t>(s.random * pool));
    for (size_t i = 0; i < s.count; ++i) {
      if (&s.peers[i] == first || (onlyOften && !s.peers[i].heardOften)) continue;
      if (k-- == 0) {
        second = &s.peers[i];
        break;
      }
    }
  }
  const Contender* pick = first != nullptr ? first : second;
  if (first != nullptr && second != nullptr && PerWeight(*second) < PerWeight(*first)) pick = second;
  if (!s.selfEligible) return pick->id;
  // The pick, with the connection, still lighter than this host without it.
  return (pick->load + 1) / pick->weight < s.ownLoad / s.ownWeight ? pick->id : s.self;
}

}  // namespace dpr
