// libFuzzer target for the data path: parse, flow table (keyed, Robin Hood,
// bounded), flow tracking (RST window, probation), rewrite, checksums, ICMP
// errors, oversize packets, the peer-MAC check. Built by scripts/fuzz.sh
// from the engine sources alone (no Node-API, no netlink) under ASan and
// UBSan. Besides memory errors it traps on broken invariants: a rewritten
// packet must re-parse, change only the destination and the checksums, and
// carry checksums that a separate, byte-wise implementation (reference.h)
// accepts; the table must keep its Robin Hood order and counts.
//
// Input layout. Byte 0 selects the set-up:
//   bit 0 serve role (else entry)      bit 1 load policy (else hash)
//   bit 2 csumNotReady (single mode)   bit 3 draining
//   bit 4 fix checksums first: the harness writes valid sums into the input,
//         so the output must verify outright (not only stay as wrong as it was)
//   bit 5 multi mode                   bits 6-7 lookup table (see Tables())
// Byte 1, what the queue would add:
//   bit 0 peer MACs checked (host 0's known, host 2's not)
//   bit 1 packets carry a source MAC   bit 2 ... host 0's (else a stranger's)
//   bit 3 every packet is larger than its copy (NFQA_CAP_LEN: 65,535 bytes)
//   bit 4 peers.routersBetween 1 (else 0)
// Single mode: the rest is one packet. It is processed, processed again as a
// retransmission, and the table swept later on.
// Multi mode: the rest is records [ctrl][len hi][len lo][len bytes], one packet
// each, so flows can move through their states. ctrl:
//   bit 0 csumNotReady  bit 1 new loads first (load policy)  bits 2-3 which
//   bit 4 sweep after   bits 5-7 clock advance before (kAdvanceMs)
// The load policy decides on loads the harness publishes: this host's and
// its peers' (a peer report, as the heartbeat thread would), from bits 2-3.
// The cluster matches test/support/cluster.ts, so fixtures make good seeds.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "../engine.h"
#include "reference.h"

namespace {

using dpr::Action;
using dpr::Engine;
using dpr::EngineConfig;
using dpr::Outcome;

constexpr uint8_t kSelServe = 0x01;
constexpr uint8_t kSelLoad = 0x02;
constexpr uint8_t kSelCsum = 0x04;
constexpr uint8_t kSelDraining = 0x08;
constexpr uint8_t kSelFix = 0x10;
constexpr uint8_t kSelMulti = 0x20;
constexpr uint8_t kExMacs = 0x01;
constexpr uint8_t kExSrcMac = 0x02;
constexpr uint8_t kExSrcIsHost0 = 0x04;
constexpr uint8_t kExOversize = 0x08;
constexpr uint8_t kExRouter = 0x10;
constexpr uint8_t kMacs[3][6] = {{2, 0, 0x5e, 0, 0, 0x10}, {2, 0, 0x5e, 0, 0, 0x11}, {}};  // host 2: not resolved
constexpr uint8_t kStranger[6] = {2, 0, 0x5e, 0, 0, 0x99};
constexpr size_t kMaxRecords = 64;
constexpr uint32_t kAdvanceMs[8] = {0, 1, 100, 1001, 10001, 130000, 1000000, 0x80000000u};

void Require(bool cond) {
  if (!cond) __builtin_trap();
}

// splitmix64's finalizer: spreads the fuzzer's own Maglev offsets and skips.
uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

uint32_t Addr(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return htonl((uint32_t{a} << 24) | (uint32_t{b} << 16) | (uint32_t{c} << 8) | d);
}

EngineConfig MakeConfig(uint8_t sel, uint8_t extras) {
  EngineConfig c;
  c.role = (sel & kSelServe) ? dpr::Role::kServe : dpr::Role::kEntry;
  c.policy = (sel & kSelLoad) ? dpr::Policy::kLoad : dpr::Policy::kHash;
  c.self = (sel & kSelServe) ? 1 : 0;
  // Host 3 is a hole, as in the fixtures: peer ports naming it must be refused.
  c.serviceAddr = {Addr(198, 18, 0, 10), Addr(198, 18, 0, 11), Addr(198, 18, 0, 12), 0};
  c.clusterAddr = {Addr(198, 19, 0, 10), Addr(198, 19, 0, 11), Addr(198, 19, 0, 12), 0};
  c.servicePorts = {80, 443};
  c.peerPortBase = 20000;
  c.forwardMark = 0x100;
  c.serveMark = 0x200;
  // Small, so inserts hit both budgets and probe runs wrap around the table.
  c.maxFlows = 12;
  c.maxEmbryonic = 6;
  c.checkPeerMacs = (extras & kExMacs) != 0;
  c.routersBetween = (extras & kExRouter) ? 1 : 0;
  // Fixed keys: an input must replay the same way.
  c.hashKey = dpr::SipKey{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
  c.flowKey = dpr::SipKey{0x1716151413121110ULL, 0x1f1e1d1c1b1a1918ULL};
  return c;
}

// Maglev population (Eisenbud et al., NSDI 2016): each host walks its own
// permutation of the slots and claims the next free one, in turns.
std::vector<uint16_t> Maglev(uint16_t hosts, size_t size) {
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
const std::vector<std::shared_ptr<const dpr::LookupTable>>& Tables() {
  static const auto* tables = new std::vector<std::shared_ptr<const dpr::LookupTable>>{
      std::make_shared<const dpr::LookupTable>(Maglev(3, 251)),
      std::make_shared<const dpr::LookupTable>(251, 0),
      std::make_shared<const dpr::LookupTable>(251, 1),
      std::make_shared<const dpr::LookupTable>(dpr::LookupTable{0, 1, 2, 3, 4, 7, 0xffff}),
  };
  return *tables;
}

using ref::IcmpResidual;
using ref::IpResidual;
using ref::Layout;
using ref::Look;
using ref::SameModOnes;
using ref::TcpResidual;

struct Harness {
  uint8_t sel;
  uint8_t extras;
  Engine engine;
  uint32_t now = 1000;
  // What the harness itself did, to hold the engine's decisions and counters to.
  std::vector<std::pair<dpr::FlowKey, uint16_t>> decided;  // load policy: where each new flow went
  uint64_t processed = 0, bytes = 0;
  std::shared_ptr<dpr::PeerLoadBoard> board = std::make_shared<dpr::PeerLoadBoard>();
  Harness(uint8_t s, uint8_t x) : sel(s), extras(x), engine(MakeConfig(s, x)) {
    engine.loadDecider().SetBoard(board);
    SetLoads(0);
    engine.SetLookupTable(Tables()[s >> 6]);
    engine.SetDraining((s & kSelDraining) != 0);
    std::vector<uint8_t> macs(4 * 6, 0);
    for (size_t h = 0; h < 3; ++h) std::memcpy(macs.data() + h * 6, kMacs[h], 6);
    engine.SetPeerMacs(macs);
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

uint16_t Port(const uint8_t* b) { return ref::Load16(b); }

// Offsets a rewrite may touch: IP checksum and destination, TCP destination
// port and checksum (the TTL is the kernel's business: mangle POSTROUTING).
bool MayChange(size_t i, size_t ihl) {
  return i == 10 || i == 11 || (i >= 16 && i < 20) || i == ihl + 2 || i == ihl + 3 || i == ihl + 16 || i == ihl + 17;
}

int ServicePortIndex(const EngineConfig& c, uint16_t port) {
  for (size_t k = 0; k < c.servicePorts.size(); ++k) {
    if (c.servicePorts[k] == port) return static_cast<int>(k);
  }
  return -1;
}

// The new destination must be the one DESIGN.md section 4 prescribes.
void CheckDestination(const Harness& h, const uint8_t* in, const uint8_t* out, size_t ihl, const Outcome& o) {
  const EngineConfig& c = h.cfg();
  const size_t nPorts = c.servicePorts.size();
  uint32_t inAddr, outAddr;
  std::memcpy(&inAddr, in + 16, 4);
  std::memcpy(&outAddr, out + 16, 4);
  const uint16_t inPort = Port(in + ihl + 2), outPort = Port(out + ihl + 2);
  if (o.action == Action::kForward) {
    const int k = ServicePortIndex(c, inPort);
    Require(inAddr == c.serviceAddr[c.self] && k >= 0);
    Require(o.target != c.self && o.target < c.clusterAddr.size() && c.serviceAddr[o.target] != 0);
    Require(outAddr == c.clusterAddr[o.target]);
    Require(outPort == c.peerPortBase + c.self * nPorts + static_cast<size_t>(k));
  } else {
    Require(inAddr == c.clusterAddr[c.self] && inPort >= c.peerPortBase);
    const size_t offset = inPort - c.peerPortBase;
    const size_t origin = offset / nPorts;
    Require(origin < c.serviceAddr.size() && origin != c.self && c.serviceAddr[origin] != 0);
    Require(outAddr == c.serviceAddr[origin] && outPort == c.servicePorts[offset % nPorts]);
  }
}

void CheckMangled(const Harness& h, const uint8_t* in, const uint8_t* out, size_t len, const Outcome& o,
                  bool csumNotReady) {
  dpr::TcpPacket p;
  Require(dpr::ParseTcp4(const_cast<uint8_t*>(out), len, &p) == dpr::ParseResult::kOk);
  const Layout l = Look(out, len);
  Require(l.tcp && l.ihl == p.ipHeaderLength && l.total == p.ipLength);
  for (size_t i = 0; i < len; ++i) Require(in[i] == out[i] || MayChange(i, l.ihl));
  CheckDestination(h, in, out, l.ihl, o);
  // Incremental updates keep a checksum exactly as right (or wrong) as it was.
  Require(SameModOnes(IpResidual(in, l), IpResidual(out, l)));
  if (csumNotReady) {
    Require(TcpResidual(out, l) == 0xffff);  // always recomputed in full
  } else {
    Require(SameModOnes(TcpResidual(in, l), TcpResidual(out, l)));
  }
  if (h.sel & kSelFix) Require(IpResidual(out, l) == 0xffff && TcpResidual(out, l) == 0xffff);
}

dpr::FlowKey KeyOf(const uint8_t* b) {
  const size_t ihl = size_t{b[0] & 0x0fu} * 4;
  dpr::FlowKey k{};
  std::memcpy(&k.clientAddr, b + 12, 4);
  std::memcpy(&k.serviceAddr, b + 16, 4);
  k.clientPort = Port(b + ihl);
  k.servicePort = Port(b + ihl + 2);
  return k;
}

// Stickiness: within one input the lookup table never changes, so a hashed
// flow always goes where the hash says; a load-policy flow goes only where its
// decision sent it (it is never hashed).
void CheckTarget(const Harness& h, const uint8_t* in, const Outcome& o) {
  if (o.action != Action::kForward) return;
  const dpr::FlowKey k = KeyOf(in);
  if (h.cfg().policy == dpr::Policy::kHash) {
    Require(o.target == h.engine.HashTarget(k.clientAddr, k.clientPort));
    return;
  }
  for (const auto& d : h.decided) {
    if (d.first == k) {
      Require(d.second == o.target);
      return;
    }
  }
  Require(false);
}

int HostOf(const EngineConfig& c, uint32_t serviceAddr) {
  for (size_t id = 0; id < c.serviceAddr.size(); ++id) {
    if (c.serviceAddr[id] != 0 && c.serviceAddr[id] == serviceAddr) return static_cast<int>(id);
  }
  return -1;
}

// An ICMP error handed on: only the outer destination (and the IPv4 checksum)
// may change. Forwarded: about a segment sent as this host, to the host that
// serves the quoted flow. Restored: from a peer (its TTL), about a segment
// sent as the peer, back to the peer's service address.
void CheckIcmpMangled(const Harness& h, const uint8_t* in, const uint8_t* out, size_t len, const Outcome& o,
                      const ref::Quote& q) {
  const EngineConfig& c = h.cfg();
  const Layout li = Look(in, len);
  const Layout lo = Look(out, len);
  Require(lo.icmp && lo.ihl == li.ihl && lo.total == li.total);
  for (size_t i = 0; i < len; ++i) Require(in[i] == out[i] || i == 10 || i == 11 || (i >= 16 && i < 20));
  Require(SameModOnes(IpResidual(in, li), IpResidual(out, lo)));
  if (h.sel & kSelFix) Require(IpResidual(out, lo) == 0xffff && IcmpResidual(out, lo) == 0xffff);
  Require(ServicePortIndex(c, q.sport) >= 0);
  uint32_t inDst, outDst;
  std::memcpy(&inDst, in + 16, 4);
  std::memcpy(&outDst, out + 16, 4);
  if (o.action == Action::kForward) {
    Require(c.role == dpr::Role::kEntry && inDst == c.serviceAddr[c.self] && q.saddr == c.serviceAddr[c.self]);
    Require(o.target != c.self && o.target < c.clusterAddr.size() && outDst == c.clusterAddr[o.target]);
    if (c.policy == dpr::Policy::kHash) {
      Require(o.target == h.engine.HashTarget(q.daddr, q.dport));
    } else {
      const dpr::FlowKey k{q.daddr, q.saddr, q.dport, q.sport};
      Require(std::any_of(h.decided.begin(), h.decided.end(), [&](const auto& d) { return d.first == k && d.second == o.target; }));
    }
    return;
  }
  const int origin = HostOf(c, q.saddr);
  Require(origin >= 0 && static_cast<size_t>(origin) != c.self && o.target == origin);
  Require(inDst == c.serviceAddr[c.self] || inDst == c.clusterAddr[c.self]);
  Require(in[8] > 254 - c.routersBetween);
  Require(outDst == c.serviceAddr[origin]);
}

void CheckOutcome(const Harness& h, const uint8_t* in, const uint8_t* out, size_t len, const Outcome& o,
                  const dpr::PacketMeta& meta) {
  const EngineConfig& c = h.cfg();
  const bool entry = c.role == dpr::Role::kEntry;
  const bool oversize = meta.wireLength > len;
  const dpr::ParseResult tcp = ref::Classify(in, len, oversize ? meta.wireLength : len);
  const ref::Quote quote = oversize ? ref::Quote{} : ref::LookIcmp(in, len);
  const bool icmp = tcp == dpr::ParseResult::kNotTcp && quote.ok;
  Require(static_cast<size_t>(o.action) < static_cast<size_t>(Action::kCount));
  Require(o.parse == (icmp ? dpr::ParseResult::kOk : tcp));
  if (o.parse != dpr::ParseResult::kOk) Require(o.action == Action::kAccept && o.note == dpr::Note::kNone);
  switch (o.action) {
    case Action::kForward: Require(entry && o.mangled && o.mark == c.forwardMark); break;
    // The entry engine restores only ICMP errors (where service and cluster address are one).
    case Action::kRestore: Require((!entry || icmp) && o.mangled && o.mark == c.serveMark); break;
    default: Require(!o.mangled && o.mark == 0); break;
  }
  // Too big to rewrite: passed on or dropped as it is, never handed elsewhere.
  if (oversize) Require(o.action == Action::kAccept || (o.action == Action::kDrop && o.note == dpr::Note::kOversize));
  // On one segment nothing is restored unless it came from the MAC of the host it names.
  if (o.action == Action::kRestore && c.checkPeerMacs) {
    Require(o.target < 3 && meta.srcMac != nullptr && std::memcmp(meta.srcMac, kMacs[o.target], 6) == 0);
  }
  if (!o.mangled) {
    Require(len == 0 || std::memcmp(in, out, len) == 0);
    return;
  }
  if (icmp) {
    CheckIcmpMangled(h, in, out, len, o, quote);
    return;
  }
  CheckMangled(h, in, out, len, o, meta.csumNotReady);
  CheckTarget(h, in, o);
}

// Every packet counted once; the serving side is
// stateless and must keep no flows.
void CheckCounters(Harness& h) {
  dpr::EngineCounters& c = h.engine.counters();
  Require(c.packets.Get() == h.processed && c.bytes.Get() == h.bytes);
  uint64_t actions = 0;
  for (const auto& a : c.byAction) actions += a.Get();
  Require(actions == h.processed);
  if (h.cfg().role == dpr::Role::kServe) Require(h.engine.flows().size() == 0);
}

void RememberDecision(Harness& h, const dpr::FlowKey& key, uint16_t target) {
  for (auto& d : h.decided) {
    if (d.first == key) {
      d.second = target;
      return;
    }
  }
  h.decided.emplace_back(key, target);
}

// Counts agree with the slots, budgets hold, and every live entry is found
// from its home slot (a broken backward-shift delete would strand one).
void CheckTable(Engine& engine) {
  auto& flows = const_cast<dpr::FlowTable&>(engine.flows());
  const EngineConfig& c = engine.config();
  Require(flows.size() <= c.maxFlows);
  Require(flows.Embryonic() <= c.maxEmbryonic);
  Require(flows.Verify());
  size_t live = 0, counted = 0;
  for (size_t s = 1; s < static_cast<size_t>(dpr::FlowState::kCount); ++s) {
    counted += flows.CountIn(static_cast<dpr::FlowState>(s));
  }
  for (size_t i = 0; i < flows.capacity(); ++i) {
    const dpr::FlowEntry e = flows.At(static_cast<long>(i));
    if (e.state == dpr::FlowState::kFree) continue;
    ++live;
    // At its own last-seen time an entry cannot be expired, so Find is pure.
    Require(flows.Find(flows.KeyOf(e), e.lastSeenMs) == static_cast<long>(i));
  }
  Require(live == flows.size() && counted == live);
}

struct Step {
  bool csumNotReady = false;
  bool setLoads = false;
  uint8_t loads = 0;
  bool sweep = false;
};

// One packet, in a heap buffer of exactly its size so ASan sees any over-read.
void RunPacket(Harness& h, const uint8_t* data, size_t len, const Step& s) {
  std::unique_ptr<uint8_t[]> buf(new uint8_t[len]);
  if (len > 0) std::memcpy(buf.get(), data, len);
  if (h.sel & kSelFix) ref::FixChecksums(buf.get(), len, s.csumNotReady);
  const std::vector<uint8_t> in(buf.get(), buf.get() + len);
  const dpr::PacketMeta meta = h.Meta(len, s.csumNotReady);
  if (s.setLoads) h.SetLoads(s.loads);
  const dpr::EngineCounters& c = h.engine.counters();
  const uint64_t newFlows = c.newFlowsLocal.Get() + c.newFlowsForwarded.Get();
  const Outcome o = h.engine.Process(buf.get(), len, meta, h.now);
  ++h.processed;
  h.bytes += len;
  // A new flow: where it went is where its later packets must go.
  if (c.newFlowsLocal.Get() + c.newFlowsForwarded.Get() != newFlows) RememberDecision(h, KeyOf(in.data()), o.target);
  CheckOutcome(h, in.data(), buf.get(), len, o, meta);
  CheckTable(h.engine);
  CheckCounters(h);
  if (s.sweep) {
    h.engine.Sweep(8, h.now);
    CheckTable(h.engine);
  }
}

void RunSingle(Harness& h, const uint8_t* data, size_t len) {
  Step s;
  s.csumNotReady = (h.sel & kSelCsum) != 0;
  s.setLoads = true;
  s.loads = len > 0 ? data[len - 1] % 4 : 0;
  RunPacket(h, data, len, s);
  h.now += 1;
  RunPacket(h, data, len, s);  // a retransmission meets the entry the first copy left
  h.now += 2000000;
  h.engine.Sweep(64, h.now);
  CheckTable(h.engine);
}

void RunMulti(Harness& h, const uint8_t* data, size_t len) {
  size_t at = 0;
  for (size_t n = 0; n < kMaxRecords && at + 3 <= len; ++n) {
    const uint8_t ctrl = data[at];
    size_t size = (size_t{data[at + 1]} << 8) | data[at + 2];
    at += 3;
    if (size > len - at) size = len - at;
    Step s;
    s.csumNotReady = (ctrl & 0x01) != 0;
    s.setLoads = (ctrl & 0x02) != 0;
    s.loads = (ctrl >> 2) & 0x03;
    s.sweep = (ctrl & 0x10) != 0;
    h.now += kAdvanceMs[ctrl >> 5];
    RunPacket(h, data + at, size, s);
    at += size;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Harness h(data[0], data[1]);
  if (data[0] & kSelMulti) {
    RunMulti(h, data + 2, size - 2);
  } else {
    RunSingle(h, data + 2, size - 2);
  }
  return 0;
}
