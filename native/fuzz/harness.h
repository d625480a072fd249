// The fuzz target's set-up (native/fuzz/fuzz_engine.cc describes the input
// layout): selector bits, the cluster of test/support/cluster.ts in both
// families, the lookup tables, and the harness that holds an engine together
// with what the harness itself did, to hold the engine's decisions and
// counters to. Shared by the IPv4 checks (fuzz_engine.cc) and the IPv6 ones
// (check_ipv6.cc).
#pragma once
#include <arpa/inet.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "../engine.h"

namespace fuzz {

using dpr::Action;
using dpr::Engine;
using dpr::EngineConfig;
using dpr::Ip6;
using dpr::Outcome;

// Byte 0.
constexpr uint8_t kSelServe = 0x01;
constexpr uint8_t kSelLoad = 0x02;
constexpr uint8_t kSelCsum = 0x04;
constexpr uint8_t kSelDraining = 0x08;
constexpr uint8_t kSelFix = 0x10;
constexpr uint8_t kSelMulti = 0x20;
// Byte 1.
constexpr uint8_t kExMacs = 0x01;
constexpr uint8_t kExSrcMac = 0x02;
constexpr uint8_t kExSrcIsHost0 = 0x04;
constexpr uint8_t kExOversize = 0x08;
constexpr uint8_t kExRouter = 0x10;
constexpr uint8_t kExIpv4Only = 0x20;  // no host has IPv6 addresses
constexpr uint8_t kExHost2No6 = 0x40;  // host 2 has IPv4 addresses only
constexpr uint8_t kExSelfNo6 = 0x80;   // this host has IPv4 addresses only (its peers have both)
// Both of the two above (otherwise the same as kExIpv4Only alone): no host has IPv4 addresses.
constexpr uint8_t kExIpv6Only = kExIpv4Only | kExSelfNo6;

inline bool Ipv6Only(uint8_t extras) { return (extras & kExIpv6Only) == kExIpv6Only; }

constexpr uint8_t kMacs[3][6] = {{2, 0, 0x5e, 0, 0, 0x10}, {2, 0, 0x5e, 0, 0, 0x11}, {}};  // host 2: not resolved
constexpr uint8_t kStranger[6] = {2, 0, 0x5e, 0, 0, 0x99};

inline void Require(bool cond) {
  if (!cond) __builtin_trap();
}

inline uint16_t Port(const uint8_t* b) { return static_cast<uint16_t>((b[0] << 8) | b[1]); }

// splitmix64's finalizer: spreads the fuzzer's own Maglev offsets and skips.
inline uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

inline uint32_t Addr(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return htonl((uint32_t{a} << 24) | (uint32_t{b} << 16) | (uint32_t{c} << 8) | d);
}

// 2001:2:0:<net>::<host> (RFC 5180's prefix), as test/support/cluster.ts has them.
inline Ip6 Addr6(uint8_t net, uint8_t host) {
  Ip6 a;
  a.b[0] = 0x20, a.b[1] = 0x01, a.b[3] = 0x02, a.b[7] = net, a.b[15] = host;
  return a;
}

// This host has IPv6 (its IPv6 packets get the IPv6 path), from the selectors alone.
inline bool WantsIpv6(uint8_t extras) { return Ipv6Only(extras) || (extras & (kExIpv4Only | kExSelfNo6)) == 0; }

inline EngineConfig MakeConfig(uint8_t sel, uint8_t extras) {
  EngineConfig c;
  c.role = (sel & kSelServe) ? dpr::Role::kServe : dpr::Role::kEntry;
  c.policy = (sel & kSelLoad) ? dpr::Policy::kLoad : dpr::Policy::kHash;
  c.self = (sel & kSelServe) ? 1 : 0;
  // Host 3 is a hole, as in the fixtures: peer ports naming it must be refused.
  c.serviceAddr = {Addr(198, 18, 0, 10), Addr(198, 18, 0, 11), Addr(198, 18, 0, 12), 0};
  c.clusterAddr = {Addr(198, 19, 0, 10), Addr(198, 19, 0, 11), Addr(198, 19, 0, 12), 0};
  if (Ipv6Only(extras)) {
    // IPv6-only hosts: the IPv4 lists are zeros (lib/plan.ts), every IPv6 address is there.
    c.serviceAddr = c.clusterAddr = {0, 0, 0, 0};
    c.serviceAddr6 = {Addr6(0, 0x10), Addr6(0, 0x11), Addr6(0, 0x12), Ip6{}};
    c.clusterAddr6 = {Addr6(1, 0x10), Addr6(1, 0x11), Addr6(1, 0x12), Ip6{}};
  } else if (!(extras & kExIpv4Only)) {
    c.serviceAddr6 = {Addr6(0, 0x10), Addr6(0, 0x11), Addr6(0, 0x12), Ip6{}};
    c.clusterAddr6 = {Addr6(1, 0x10), Addr6(1, 0x11), Addr6(1, 0x12), Ip6{}};
    if (extras & kExHost2No6) c.serviceAddr6[2] = c.clusterAddr6[2] = Ip6{};
    if (extras & kExSelfNo6) c.serviceAddr6[c.self] = c.clusterAddr6[c.self] = Ip6{};
  }
  c.servicePorts = {80, 443};
  c.peerPortBase = 20000;
  c.forwardMark = 0x100;
  c.serveMark = 0x200;
  // Small, so inserts hit both budgets and probe runs wrap around the table.
  c.maxFlows = 12;
  c.maxEmbryonic = 6;
  c.checkPeerMacs = (extras & kExMacs) != 0;
  c.routersBetween = (extras & kExRouter) ? 1 : 0;
  // Fixed keys and draws: an input must replay the same way.
  c.hashKey = dpr::SipKey{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
  c.flowKey = dpr::SipKey{0x1716151413121110ULL, 0x1f1e1d1c1b1a1918ULL};
  c.randomSeed = 0x2545f4914f6cdd1dULL;
  return c;
}

// Maglev population (Eisenbud et al., NSDI 2016): each host walks its own
// permutation of the slots and claims the next free one, in turns.
inline std::vector<uint16_t> Maglev(uint16_t hosts, size_t size) {
  std::vector<uint16_t> table(size, 0xffff);
  std::vector<size_t> offset(hosts), skip(hosts), next(hosts, 0);
  for (uint16_t h = 0; h < hosts; ++h) {
    offset[h] = Mix64(h + 1) % size;
    skip[h] = Mix64(h + 1001) % (size - 1) + 1;
  }
  for (size_t filled = 0; filled < size;) {
    for (uint16_t h = 0; h < hosts && filled < size; ++h) {
      size_t slot = (offset[h] + next[h] * skip[h]) % size;
      while (table[slot] != 0xffff) slot = (offset[h] + ++next[h] * skip[h]) % size;
      table[slot] = h;
      ++next[h];
      ++filled;
    }
  }
  return table;
}

// Indexed by selector bits 6-7: Maglev over the live hosts; all self; all
// host 1; and ids that are holes or out of range (the engine must fall back).
inline const std::vector<std::shared_ptr<const dpr::LookupTable>>& Tables() {
  static const auto* tables = new std::vector<std::shared_ptr<const dpr::LookupTable>>{
      std::make_shared<const dpr::LookupTable>(Maglev(3, 251)),
      std::make_shared<const dpr::LookupTable>(251, 0),
      std::make_shared<const dpr::LookupTable>(251, 1),
      std::make_shared<const dpr::LookupTable>(dpr::LookupTable{0, 1, 2, 3, 4, 7, 0xffff}),
  };
  return *tables;
}

struct Harness {
  uint8_t sel;
  uint8_t extras;
  Engine engine;
  uint32_t now = 1000;
  // Load policy: where each new flow went, per family.
  std::vector<std::pair<dpr::FlowKey, uint16_t>> decided;
  std::vector<std::pair<dpr::FlowKey6, uint16_t>> decided6;
  // What the engine must have counted.
  uint64_t processed = 0, bytes = 0, packets6 = 0, csumFull = 0, csumIncremental = 0;
  std::shared_ptr<dpr::PeerLoadBoard> board = std::make_shared<dpr::PeerLoadBoard>();
  Harness(uint8_t s, uint8_t x) : sel(s), extras(x), engine(MakeConfig(s, x)) {
    engine.loadDecider().SetBoard(board);
    SetLoads(0);
    engine.SetLookupTable(Tables()[s >> 6]);
    engine.SetDraining((s & kSelDraining) != 0);
    std::vector<uint8_t> macs(4 * 6, 0);
    for (size_t h = 0; h < 3; ++h) std::memcpy(macs.data() + h * 6, kMacs[h], 6);
    engine.SetPeerMacs(macs);
    Require(engine.HasIpv6() == WantsIpv6(x));
  }
  const EngineConfig& cfg() const { return engine.config(); }
  // Loads that send new flows everywhere in turn: `which` 0 keeps them here,
  // 1-3 make this host the busiest and a different peer the lightest.
  void SetLoads(uint8_t which) {
    engine.loadDecider().own().Calibrate(which == 0 ? 0 : 40, -1);
    for (uint16_t id = 0; id < 3; ++id) board->Publish(id, which == 0 ? 0 : (id + which) % 3 * 10);
  }
  // What the queue would have read from the kernel for a packet of `len` bytes.
  dpr::PacketMeta Meta(size_t len, bool csumNotReady) const {
    dpr::PacketMeta m;
    m.csumNotReady = csumNotReady;
    if (extras & kExSrcMac) m.srcMac = (extras & kExSrcIsHost0) ? kMacs[0] : kStranger;
    if ((extras & kExOversize) && len > 0) m.wireLength = static_cast<uint32_t>(std::max<size_t>(len + 1, 65535));
    return m;
  }
};

inline int ServicePortIndex(const EngineConfig& c, uint16_t port) {
  for (size_t k = 0; k < c.servicePorts.size(); ++k) {
    if (c.servicePorts[k] == port) return static_cast<int>(k);
  }
  return -1;
}

// The host a service address belongs to, in either family's list; -1 for none.
template <typename A>
int HostOf(const std::vector<A>& serviceAddrs, const A& addr) {
  for (size_t id = 0; id < serviceAddrs.size(); ++id) {
    if (!dpr::IsNoAddress(serviceAddrs[id]) && serviceAddrs[id] == addr) return static_cast<int>(id);
  }
  return -1;
}

// A host id an IPv6 packet may be sent to: in the cluster, with both IPv6
// addresses (its IPv4 ones do not matter: an IPv6-only host has none).
inline bool Has6(const EngineConfig& c, size_t id) {
  return id < c.serviceAddr6.size() && !dpr::IsNoAddress(c.serviceAddr6[id]) && !dpr::IsNoAddress(c.clusterAddr6[id]);
}

template <typename Key>
void RememberDecision(std::vector<std::pair<Key, uint16_t>>& decided, const Key& key, uint16_t target) {
  for (auto& d : decided) {
    if (d.first == key) {
      d.second = target;
      return;
    }
  }
  decided.emplace_back(key, target);
}

template <typename Key>
bool Decided(const std::vector<std::pair<Key, uint16_t>>& decided, const Key& key, uint16_t target) {
  return std::any_of(decided.begin(), decided.end(), [&](const auto& d) { return d.first == key && d.second == target; });
}

// ---- IPv6 (check_ipv6.cc). ----

struct Expect6 {
  dpr::ParseResult parse;  // what Process must report
  bool icmp;               // an ICMPv6 error the ICMP path takes
};
Expect6 Expected6(const uint8_t* in, size_t len, const dpr::PacketMeta& meta);
// A rewritten IPv6 segment or ICMPv6 error, checked against its input.
void CheckMangled6(const Harness& h, const uint8_t* in, const uint8_t* out, size_t len, const Outcome& o,
                   bool csumNotReady, bool icmp);
dpr::FlowKey6 KeyOf6(const uint8_t* b, size_t len);

}  // namespace fuzz
