// The load policy's rule for one new connection, with no state and no I/O.
// Loads are compared per unit of weight (hosts[].weight).
//
// Serve it here while this host, with it, carries at most `threshold`
// connections per weight, or at most the cluster mean per weight x (1 +
// kHeadroom). Above that, send it to the lighter of two peers, the one the
// Maglev table names for it and one drawn at random, if that one, with the
// connection, is still lighter than this host without it: a move must make
// the pair more even, so equal hosts whose counts are off by one (this host's
// count between two exact ones includes closing sockets) do not trade
// connections (cluster bench: half of a balanced load was forwarded when
// "lighter than this host" was enough). The random one is drawn among the
// peers whose every report reaches this host when there are any (clusters of
// more than 9 hosts hear most peers once a second only). The least loaded peer would herd when several hosts forward
// on the same stale reports; two choices do not (Mitzenmacher, "How useful is
// old information?", 2000). The cluster model's figures for each part are in
// docs/design-notes.md ("The load policy").
#pragma once
#include <cstddef>
#include <cstdint>

namespace dpr {

// How far above the cluster mean per weight a host goes before it forwards
// (model: 0.1 beats 0 and 0.25).
constexpr double kHeadroom = 0.1;

struct Contender {
  uint16_t id;
  uint32_t weight;  // > 0
  double load;      // as estimated now
  bool heardOften = true;  // its every report reaches us (docs/peers.md, "Watchers")
};

struct LoadSituation {
  uint16_t self = 0;
  uint32_t ownWeight = 1;
  double ownLoad = 0;
  // This host may take new connections (in the table, weight > 0).
  bool selfEligible = true;
  // The eligible peers, this host not among them.
  const Contender* peers = nullptr;
  size_t count = 0;
  // The host the Maglev table names for this connection.
  uint16_t hashTarget = 0;
  // A uniform draw in [0, 1), for the second choice.
  double random = 0;
};

uint16_t ChooseHost(const LoadSituation& s, uint32_t threshold);

}  // namespace dpr
