// The load policy's decision for a new connection, in the entry queue's
// thread, with nothing to wait for: this host's load (OwnLoad), its peers'
// last reports (PeerLoadBoard, filled by the heartbeat thread) corrected by
// how far the count of our forwarded flows to each, open now, moved since that
// report came (the flow table counts them: connections sent since, minus ours
// that ended since; a report plus sends alone over-counts by what already
// ended), the weights, and the hosts the Maglev table names (the eligible ones).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "flow_table.h"
#include "load_choice.h"
#include "own_load.h"
#include "peer_load_board.h"

namespace dpr {

class LoadDecider {
 public:
  // `seed`: of the second choice's draw (0: a random one).
  explicit LoadDecider(uint64_t seed = 0);

  // Where peers' reports come from; none: every peer reads as idle but for our own sends.
  void SetBoard(std::shared_ptr<const PeerLoadBoard> board) { board_ = std::move(board); }
  // hosts[].weight by host id; ids past the end weigh 1.
  void SetWeights(std::vector<uint8_t> weights) { weights_ = std::move(weights); }
  void SetThreshold(uint32_t threshold) { threshold_ = threshold; }
  OwnLoad& own() { return own_; }

  // `live`: by host id, the hosts the table names (empty: no table, this host alone).
  uint16_t Decide(uint16_t self, uint16_t hashTarget, const std::vector<bool>& live, const OpenRemoteCounts& opens, uint32_t nowMs);
  // A peer's load now, as well as we know it (also for tests).
  double Estimate(uint16_t id, const OpenRemoteCounts& opens);

 private:
  uint32_t WeightOf(uint16_t id) const { return id < weights_.size() ? weights_[id] : 1; }
  double Random();

  std::shared_ptr<const PeerLoadBoard> board_;
  std::vector<uint8_t> weights_;
  uint32_t threshold_ = 0;
  OwnLoad own_;
  // By host id: the report generation last seen, and our open forwards to it then.
  uint32_t seen_[PeerLoadBoard::kHosts] = {};
  int64_t base_[PeerLoadBoard::kHosts] = {};
  uint64_t rng_;
  std::vector<Contender> scratch_;
};

}  // namespace dpr
