// libFuzzer target for the data path: parse, flow table (keyed, Robin Hood,
// bounded), flow tracking (RST window, probation), rewrite, checksums, ICMP
// errors, oversize packets, the peer-MAC check, for IPv4 and IPv6 (the
// IPv6 checks: check_ipv6.cc; the set-up: harness.h). Built by scripts/fuzz.sh
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
// and which hosts have IPv6 addresses (else all three, dual-stack):
//   bit 5 none (an IPv4-only cluster: IPv6 packets are not_ipv4, untouched)
//   bit 6 all but host 2         bit 7 all but this host (which has no IPv6 path then)
// Single mode: the rest is one packet. It is processed, processed again as a
// retransmission, and the table swept later on.
// Multi mode: the rest is records [ctrl][len hi][len lo][len bytes], one packet
// each, so flows can move through their states. ctrl:
//   bit 0 csumNotReady  bit 1 new loads first (load policy)  bits 2-3 which
//   bit 4 sweep after   bits 5-7 clock advance before (kAdvanceMs)
// The load policy decides on loads the harness publishes: this host's and
// its peers' (a peer report, as the heartbeat thread would), from bits 2-3.
// The cluster matches test/support/cluster.ts (SERVICE/CLUSTER and
// SERVICE6/CLUSTER6), so fixtures make good seeds.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "harness.h"
#include "reference.h"

namespace fuzz {
namespace {

using ref::IcmpResidual;
using ref::IpResidual;
using ref::Layout;
using ref::Look;
using ref::SameModOnes;
using ref::TcpResidual;

constexpr size_t kMaxRecords = 64;
constexpr uint32_t kAdvanceMs[8] = {0, 1, 100, 1001, 10001, 130000, 1000000, 0x80000000u};

// Offsets a rewrite may touch: IP checksum and destination, TCP destination
// port and checksum (the TTL is the kernel's business: mangle POSTROUTING).
bool MayChange(size_t i, size_t ihl) {
  return i == 10 || i == 11 || (i >= 16 && i < 20) || i == ihl + 2 || i == ihl + 3 || i == ihl + 16 || i == ihl + 17;
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
      Require(Decided(h.decided, dpr::FlowKey{q.daddr, q.saddr, q.dport, q.sport}, o.target));
    }
    return;
  }
  const int origin = HostOf(c.serviceAddr, q.saddr);
  Require(origin >= 0 && static_cast<size_t>(origin) != c.self && o.target == origin);
  Require(inDst == c.serviceAddr[c.self] || inDst == c.clusterAddr[c.self]);
  Require(in[8] > 254 - c.routersBetween);
  Require(outDst == c.serviceAddr[origin]);
}

// The family a packet takes: IPv6 only on a host with IPv6 (else an IPv6
// packet is just not IPv4).
bool TakesIpv6(const Harness& h, const uint8_t* in, size_t len) {
  return WantsIpv6(h.extras) && len > 0 && (in[0] >> 4) == 6;
}

// What Process must report for the input (reference.h), and whether the ICMP path takes it.
Expect6 Expected(const Harness& h, const uint8_t* in, size_t len, const dpr::PacketMeta& meta) {
  if (TakesIpv6(h, in, len)) return Expected6(in, len, meta);
  const bool oversize = meta.wireLength > len;
  const dpr::ParseResult tcp = ref::Classify(in, len, oversize ? meta.wireLength : len);
  const bool icmp = !oversize && tcp == dpr::ParseResult::kNotTcp && ref::LookIcmp(in, len).ok;
  return Expect6{icmp ? dpr::ParseResult::kOk : tcp, icmp};
}

void CheckOutcome(Harness& h, const uint8_t* in, const uint8_t* out, size_t len, const Outcome& o,
                  const dpr::PacketMeta& meta) {
  const EngineConfig& c = h.cfg();
  const bool entry = c.role == dpr::Role::kEntry;
  const bool oversize = meta.wireLength > len;
  const bool six = TakesIpv6(h, in, len);
  const Expect6 e = Expected(h, in, len, meta);
  const bool icmp = e.icmp;
  Require(static_cast<size_t>(o.action) < static_cast<size_t>(Action::kCount));
  Require(o.parse == e.parse);
  if (o.parse != dpr::ParseResult::kOk) Require(o.action == Action::kAccept && o.note == dpr::Note::kNone);
  // A host without IPv6 leaves every IPv6 packet alone.
  if (!six && len >= 20 && (in[0] >> 4) == 6) Require(o.parse == dpr::ParseResult::kNotIpv4);
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
  // A rewritten segment (not an ICMP error) has one TCP checksum update, of the kind the kernel's sum asks for.
  if (!icmp) ++(meta.csumNotReady ? h.csumFull : h.csumIncremental);
  if (six) {
    CheckMangled6(h, in, out, len, o, meta.csumNotReady, icmp);
  } else if (icmp) {
    CheckIcmpMangled(h, in, out, len, o, ref::LookIcmp(in, len));
  } else {
    CheckMangled(h, in, out, len, o, meta.csumNotReady);
    CheckTarget(h, in, o);
  }
}

// Every packet counted once (the IPv6 ones once more), every TCP checksum
// update of its kind; the serving side is stateless and must keep no flows.
void CheckCounters(Harness& h) {
  dpr::EngineCounters& c = h.engine.counters();
  Require(c.packets.Get() == h.processed && c.bytes.Get() == h.bytes && c.packets6.Get() == h.packets6);
  Require(c.csumFull.Get() == h.csumFull && c.csumIncremental.Get() == h.csumIncremental);
  uint64_t actions = 0;
  for (const auto& a : c.byAction) actions += a.Get();
  Require(actions == h.processed);
  if (h.cfg().role == dpr::Role::kServe) {
    Require(h.engine.flows().size() == 0);
    Require(h.engine.flows6() == nullptr || h.engine.flows6()->size() == 0);
  }
}

// Counts agree with the slots, budgets hold, every live entry is found from
// its home slot (a broken backward-shift delete would strand one), and every
// entry's host can take the flow's family.
template <typename Addr>
void CheckTable(const dpr::BasicFlowTable<Addr>& table, const EngineConfig& c) {
  auto& flows = const_cast<dpr::BasicFlowTable<Addr>&>(table);
  Require(flows.size() <= c.maxFlows);
  Require(flows.Embryonic() <= c.maxEmbryonic);
  Require(flows.Verify());
  size_t live = 0, counted = 0;
  for (size_t s = 1; s < static_cast<size_t>(dpr::FlowState::kCount); ++s) {
    counted += flows.CountIn(static_cast<dpr::FlowState>(s));
  }
  for (size_t i = 0; i < flows.capacity(); ++i) {
    const dpr::BasicFlowEntry<Addr> e = flows.At(static_cast<long>(i));
    if (e.state == dpr::FlowState::kFree) continue;
    ++live;
    // At its own last-seen time an entry cannot be expired, so Find is pure.
    Require(flows.Find(flows.KeyOf(e), e.lastSeenMs) == static_cast<long>(i));
    if (e.target == c.self) continue;
    if constexpr (sizeof(Addr) == 4) {
      Require(e.target < c.serviceAddr.size() && c.serviceAddr[e.target] != 0 && c.clusterAddr[e.target] != 0);
    } else {
      Require(Has6(c, e.target));
    }
  }
  Require(live == flows.size() && counted == live);
}

// Both tables, and the one count of open forwards per host the load policy
// reads (OpenRemoteCounts), which must be the open remote entries of both.
void CheckTables(Engine& engine) {
  const EngineConfig& c = engine.config();
  CheckTable(engine.flows(), c);
  if (engine.flows6() != nullptr) CheckTable(*engine.flows6(), c);
  int64_t open[4] = {};
  auto count = [&](const auto& e) {
    if (e.target != c.self && dpr::FlowTable::IsOpen(e.state)) ++open[e.target < 4 ? e.target : 3];
  };
  engine.flows().ForEach(count);
  if (engine.flows6() != nullptr) engine.flows6()->ForEach(count);
  for (uint16_t t = 0; t < 3; ++t) Require(engine.flows().OpenRemote(t) == open[t]);
  Require(open[3] == 0);
}

// After a sweep the published per-state counts are those of the tables: both
// together, and the IPv6 table's alone.
void CheckPublished(Engine& engine) {
  const dpr::EngineCounters& c = engine.counters();
  const dpr::FlowTable6* six = engine.flows6();
  for (size_t s = 0; s < static_cast<size_t>(dpr::FlowState::kCount); ++s) {
    const auto state = static_cast<dpr::FlowState>(s);
    const size_t n6 = six ? six->CountIn(state) : 0, r6 = six ? six->RemoteIn(state) : 0;
    Require(c.flowsByState[s].load() == engine.flows().CountIn(state) + n6);
    Require(c.remoteFlowsByState[s].load() == engine.flows().RemoteIn(state) + r6);
    Require(c.flowsByState6[s].load() == n6);
  }
}

void Sweep(Harness& h, size_t budget) {
  h.engine.Sweep(budget, h.now);
  CheckTables(h.engine);
  CheckPublished(h.engine);
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
  if (h.sel & kSelFix) {
    ref::FixChecksums(buf.get(), len, s.csumNotReady);
    ref::FixChecksums6(buf.get(), len, s.csumNotReady);
  }
  const std::vector<uint8_t> in(buf.get(), buf.get() + len);
  const dpr::PacketMeta meta = h.Meta(len, s.csumNotReady);
  if (s.setLoads) h.SetLoads(s.loads);
  const dpr::EngineCounters& c = h.engine.counters();
  const uint64_t newFlows = c.newFlowsLocal.Get() + c.newFlowsForwarded.Get();
  const Outcome o = h.engine.Process(buf.get(), len, meta, h.now);
  ++h.processed;
  h.bytes += len;
  const bool six = TakesIpv6(h, in.data(), len);
  if (six) ++h.packets6;
  // A new flow: where it went is where its later packets must go.
  if (c.newFlowsLocal.Get() + c.newFlowsForwarded.Get() != newFlows) {
    if (six) {
      RememberDecision(h.decided6, KeyOf6(in.data(), len), o.target);
    } else {
      RememberDecision(h.decided, KeyOf(in.data()), o.target);
    }
  }
  CheckOutcome(h, in.data(), buf.get(), len, o, meta);
  CheckTables(h.engine);
  CheckCounters(h);
  if (s.sweep) Sweep(h, 8);
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
  Sweep(h, 64);
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
}  // namespace fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fuzz;  // NOLINT(build/namespaces): the harness's names, here only
  if (size < 2) return 0;
  Harness h(data[0], data[1]);
  if (data[0] & kSelMulti) {
    RunMulti(h, data + 2, size - 2);
  } else {
    RunSingle(h, data + 2, size - 2);
  }
  return 0;
}
