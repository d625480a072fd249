#include "engine.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "checksum.h"
#include "flow_track.h"

namespace dpr {

namespace {
// What a flow of this state and age has left before its timeout.
uint32_t TimeLeft(const FlowTimeouts& t, FlowState state, uint32_t ageMs) {
  uint32_t limit = t.establishedMs;
  switch (state) {
    case FlowState::kSynSeen: limit = t.synMs; break;
    case FlowState::kProbation: limit = t.probationMs; break;
    case FlowState::kClosing: limit = t.closingMs; break;
    case FlowState::kReset: limit = t.resetMs; break;
    default: break;
  }
  return limit > ageMs ? limit - ageMs : 1;
}
}  // namespace

const char* ActionName(Action a) {
  switch (a) {
    case Action::kAccept: return "accept";
    case Action::kForward: return "forward";
    case Action::kRestore: return "restore";
    case Action::kDrop: return "drop";
    case Action::kCount: break;
  }
  return "unknown";
}

const char* NoteName(Note n) {
  switch (n) {
    case Note::kNone: return "none";
    case Note::kNotService: return "not_service";
    case Note::kNotPeerPort: return "not_peer_port";
    case Note::kBadOrigin: return "bad_origin";
    case Note::kNoFlow: return "no_flow";
    case Note::kNoFlowHashed: return "no_flow_hashed";
    case Note::kTableFull: return "table_full";
    case Note::kKeptForLocalSocket: return "kept_for_local_socket";
    case Note::kDraining: return "draining";
    case Note::kProbeLimit: return "probe_limit";
    case Note::kRstInWindow: return "rst_in_window";
    case Note::kRstOutOfWindow: return "rst_out_of_window";
    case Note::kSynOnFlow: return "syn_on_flow";
    case Note::kSynRedecided: return "syn_redecided";
    case Note::kPeerMacUnknown: return "peer_mac_unknown";
    case Note::kBadPeerMac: return "bad_peer_mac";
    case Note::kIcmpForwarded: return "icmp_forwarded";
    case Note::kIcmpLocal: return "icmp_local";
    case Note::kIcmpNoFlow: return "icmp_no_flow";
    case Note::kIcmpRestored: return "icmp_restored";
    case Note::kIcmpNotOurs: return "icmp_not_ours";
    case Note::kOversize: return "oversize";
    case Note::kReusedHere: return "reused_here";
    case Note::kCount: break;
  }
  return "unknown";
}

EngineConfig Engine::Validated(EngineConfig config) {
  const size_t hosts = config.serviceAddr.size();
  if (hosts == 0 || hosts != config.clusterAddr.size()) {
    throw std::invalid_argument("serviceAddr and clusterAddr must list the same hosts");
  }
  if (hosts > kMaxHosts) throw std::invalid_argument("at most 256 host ids");
  if (config.self >= hosts || config.serviceAddr[config.self] == 0) {
    throw std::invalid_argument("self is not one of the hosts");
  }
  if (config.servicePorts.empty()) throw std::invalid_argument("servicePorts is empty");
  const size_t lastPeerPort = config.peerPortBase + hosts * config.servicePorts.size() - 1;
  if (config.peerPortBase == 0 || lastPeerPort > 65535) {
    throw std::invalid_argument("peer port range does not fit in 1..65535");
  }
  if (config.forwardMark == 0 || config.serveMark == 0) {
    throw std::invalid_argument("marks must be non-zero");
  }
  if (config.kernelForward) {
    const uint32_t m = config.peerMarkMask;
    // Room for every id below `hosts` once shifted to the mask's lowest bit.
    if (m == 0 || (m & (config.forwardMark | config.serveMark)) != 0 || ((m >> __builtin_ctz(m)) + 1) < hosts) {
      throw std::invalid_argument("peerMarkMask must be non-zero, apart from the other marks, and hold every host id");
    }
  }
  return config;
}

Engine::Engine(EngineConfig config)
    : config_(Validated(std::move(config))),
      hashKey_(config_.hashKey.IsZero() ? RandomSipKey() : config_.hashKey),
      flows_(config_.maxFlows, config_.maxEmbryonic, config_.timeouts, config_.serviceAddr[config_.self],
             config_.flowKey.IsZero() ? RandomSipKey() : config_.flowKey),
      loadDecider_(config_.randomSeed) {
  flows_.SetLocalTarget(config_.self);
  loadDecider_.SetThreshold(config_.loadThreshold);
  // Every possible id: a reload that adds a host never resizes what other threads read.
  counters_.newFlowsByTarget = std::vector<Counter>(kMaxHosts);
}

const char* Engine::HostsProblem(const EngineConfig& config, const std::vector<uint32_t>& serviceAddr,
                                 const std::vector<uint32_t>& clusterAddr) {
  const size_t hosts = serviceAddr.size();
  if (hosts == 0 || hosts != clusterAddr.size() || hosts > kMaxHosts) {
    return "serviceAddr and clusterAddr must list the same hosts, at most 256";
  }
  const uint16_t self = config.self;
  if (self >= hosts || serviceAddr[self] != config.serviceAddr[self] || clusterAddr[self] != config.clusterAddr[self]) {
    return "this host's own addresses cannot change while it runs";
  }
  if (config.peerPortBase + hosts * config.servicePorts.size() - 1 > 65535) return "peer port range does not fit in 1..65535";
  return nullptr;
}

void Engine::SetHosts(std::vector<uint32_t> serviceAddr, std::vector<uint32_t> clusterAddr) {
  if (const char* problem = HostsProblem(config_, serviceAddr, clusterAddr)) throw std::invalid_argument(problem);
  config_.serviceAddr = std::move(serviceAddr);
  config_.clusterAddr = std::move(clusterAddr);
  SetLookupTable(lookup_);  // live_ follows the new size
}

Note Engine::NoteFor(InsertResult r) {
  switch (r) {
    case InsertResult::kOk: return Note::kNone;
    case InsertResult::kProbeLimit: return Note::kProbeLimit;
    default: return Note::kTableFull;
  }
}

void Engine::CountNewFlow(uint16_t target) {
  (target == config_.self ? counters_.newFlowsLocal : counters_.newFlowsForwarded).Add();
  counters_.newFlowsByTarget[target].Add();
}

int Engine::ServicePortIndex(uint16_t port) const {
  for (size_t k = 0; k < config_.servicePorts.size(); ++k) {
    if (config_.servicePorts[k] == port) return static_cast<int>(k);
  }
  return -1;
}

uint16_t Engine::HashTarget(uint32_t clientAddr, uint16_t clientPort) const {
  const LookupTable* t = lookup_.get();
  if (t == nullptr || t->empty()) return config_.self;
  // Keyed: a client cannot pick the slot, so it cannot pick its serving host.
  uint8_t in[6];
  const uint16_t port = htons(clientPort);
  std::memcpy(in, &clientAddr, 4);
  std::memcpy(in + 4, &port, 2);
  const uint16_t target = (*t)[SipHash24(hashKey_, in, sizeof in) % t->size()];
  // A table naming an unknown host would send packets nowhere: serve locally.
  if (target >= config_.serviceAddr.size() || config_.serviceAddr[target] == 0) return config_.self;
  return target;
}

Outcome Engine::Process(uint8_t* buf, size_t len, const PacketMeta& meta, uint32_t nowMs) {
  counters_.packets.Add();
  counters_.bytes.Add(len);
  if (meta.wireLength > len) return Counted(Oversize(buf, len, meta, nowMs));
  TcpPacket p;
  Outcome out;
  out.parse = ParseTcp4(buf, len, &p);
  IcmpError icmp;
  if (out.parse == ParseResult::kNotTcp && ParseIcmpError(buf, len, &icmp)) return Counted(ProcessIcmp(icmp, meta, nowMs));
  if (out.parse != ParseResult::kOk) return Counted(out);
  return Counted(config_.role == Role::kEntry ? ProcessEntry(p, meta.csumNotReady, nowMs) : ProcessServe(p, meta));
}

Outcome Engine::Counted(Outcome out) {
  if (out.parse != ParseResult::kOk) counters_.byParse[static_cast<size_t>(out.parse)].Add();
  counters_.byAction[static_cast<size_t>(out.action)].Add();
  if (out.note != Note::kNone) counters_.byNote[static_cast<size_t>(out.note)].Add();
  return out;
}

// A packet larger than the queue's copy (65,531 bytes: a GRO packet, BIG TCP,
// a reassembled datagram): only its headers are here, so it cannot be
// rewritten, and handed on unchanged the local stack would reset a forwarded
// flow. Dropped when it belongs to another host (TCP sends it again, smaller),
// passed on when it is this host's. The flow is not touched.
Outcome Engine::Oversize(uint8_t* buf, size_t len, const PacketMeta& meta, uint32_t nowMs) {
  TcpPacket p;
  Outcome out;
  out.parse = ParseTcp4Headers(buf, len, meta.wireLength, &p);
  if (out.parse != ParseResult::kOk) return out;
  out.note = Note::kOversize;
  if (config_.role == Role::kServe) {
    const size_t peerPorts = config_.serviceAddr.size() * config_.servicePorts.size();
    const bool peerPort = p.dport >= config_.peerPortBase && p.dport < config_.peerPortBase + peerPorts;
    if (p.daddr == config_.clusterAddr[config_.self] && peerPort) out.action = Action::kDrop;
    return out;
  }
  if (p.daddr != config_.serviceAddr[config_.self] || ServicePortIndex(p.dport) < 0) {
    out.note = Note::kNotService;
    return out;
  }
  const long idx = flows_.Find(FlowKey{p.saddr, p.daddr, p.sport, p.dport}, nowMs);
  uint16_t target = config_.self;
  if (idx >= 0) {
    target = flows_.At(idx).target;
  } else if (config_.policy == Policy::kHash) {
    target = HashTarget(p.saddr, p.sport);
  }
  out.target = target;
  if (target != config_.self) out.action = Action::kDrop;
  return out;
}

Outcome Engine::ProcessEntry(TcpPacket& p, bool csumNotReady, uint32_t nowMs) {
  Outcome out;
  const int portIndex = ServicePortIndex(p.dport);
  if (p.daddr != config_.serviceAddr[config_.self] || portIndex < 0) {
    out.note = Note::kNotService;
    return out;
  }
  const FlowKey key{p.saddr, p.daddr, p.sport, p.dport};
  const long idx = flows_.Find(key, nowMs);
  if (idx < 0) return p.IsSyn() ? NewFlow(p, key, portIndex, csumNotReady, nowMs) : NoFlow(p, portIndex, csumNotReady);
  const FlowEntry& e = flows_.At(idx);
  if (p.IsSyn()) return SynOnFlow(p, key, idx, portIndex, csumNotReady, nowMs);
  // A client reusing the 4-tuple of a finished forwarded connection, whose SYN
  // went around the engine (past queues.synLimit, or the entry queue full):
  // the kernel served that SYN here, with a SYN cookie under a flood, so the
  // connection has no socket yet that -m socket would find, and its first ACK
  // lands here, nowhere near the old connection's sequence numbers. It is
  // this host's; following the stale entry would send it to a host that
  // resets it.
  if ((e.state == FlowState::kClosing || e.state == FlowState::kReset) && e.target != config_.self &&
      !p.Has(kTcpRst) && !InClientWindow(e.clientNext, p.seq)) {
    flows_.Erase(idx);
    out.note = Note::kReusedHere;
    return out;
  }
  // Every other packet of the flow goes to its host, whatever it says: the
  // serving host's stack decides what a RST or a stray segment means.
  const uint16_t target = e.target;
  Note note = Note::kNone;
  if (p.Has(kTcpRst)) {
    const bool plausible = TrackRst(flows_, idx, p, nowMs);
    note = plausible ? Note::kRstInWindow : Note::kRstOutOfWindow;
    if (plausible) counters_.flowsClosed.Add();
  } else {
    TrackSegment(flows_, idx, p, nowMs);
  }
  out = Route(p, target, portIndex, csumNotReady);
  out.note = note;
  return out;
}

// A SYN never takes a live connection elsewhere. It is decided afresh only
// when the connection is over: after a plausible RST, or when its host is no
// longer live (otherwise a SYN retransmitted towards a host that went down
// would follow it until synMs runs out), or, while this host drains, when it
// reuses the 4-tuple of a closing forwarded flow (a new connection, which a
// draining host keeps).
Outcome Engine::SynOnFlow(TcpPacket& p, const FlowKey& key, long index, int portIndex, bool csumNotReady,
                          uint32_t nowMs) {
  const FlowEntry& e = flows_.At(index);
  const bool reuseWhileDraining = draining_ && e.state == FlowState::kClosing && e.target != config_.self;
  if (e.state == FlowState::kReset || !IsLive(e.target) || reuseWhileDraining) {
    if (handoff_ != nullptr && e.target != config_.self) handoff_->OnFlowGone(key, e.target);
    flows_.Erase(index);
    Outcome out = NewFlow(p, key, portIndex, csumNotReady, nowMs);
    if (out.note == Note::kNone) out.note = Note::kSynRedecided;
    return out;
  }
  const uint16_t target = e.target;
  // kSynSeen: the client sends its SYN again. Anything later: a spoofed SYN,
  // or (kClosing) the client reusing the 4-tuple, which the serving host's
  // TIME_WAIT accepts; it answers the rest with a challenge ACK.
  const Note note = e.state == FlowState::kSynSeen ? Note::kNone : Note::kSynOnFlow;
  if (e.state == FlowState::kClosing) {
    RearmForSyn(flows_, index, p, nowMs);
  } else {
    flows_.Touch(index, nowMs);
  }
  Outcome out = Route(p, target, portIndex, csumNotReady);
  out.note = note;
  return out;
}

// Mid-flow with no entry: the hash still names the host that got the SYN
// unless the table changed since; the load policy has nothing to go on, so
// the local stack answers (with a reset if it has no socket).
Outcome Engine::NoFlow(TcpPacket& p, int portIndex, bool csumNotReady) {
  Outcome out;
  if (config_.policy == Policy::kHash) {
    out = Route(p, HashTarget(p.saddr, p.sport), portIndex, csumNotReady);
    out.note = Note::kNoFlowHashed;
    return out;
  }
  out.note = Note::kNoFlow;
  return out;
}

Outcome Engine::NewFlow(TcpPacket& p, const FlowKey& key, int portIndex, bool csumNotReady,
                        uint32_t nowMs) {
  const uint32_t clientNext = p.seq + 1;
  if (draining_) {
    flows_.Insert(key, config_.self, FlowState::kSynSeen, nowMs, clientNext);
    CountNewFlow(config_.self);
    HandOff(key, config_.self);
    Outcome out;
    out.note = Note::kDraining;
    return out;
  }
  uint16_t target = HashTarget(p.saddr, p.sport);
  Note note = Note::kNone;
  if (config_.policy == Policy::kLoad) {
    target = loadDecider_.Decide(config_.self, target, live_, flows_, nowMs);
    // The client reuses the 4-tuple of a connection whose TIME_WAIT is here:
    // only this host's stack takes that SYN (another host's would answer it as new, this one resets it).
    if (target != config_.self && localSocket_ && localSocket_(key)) {
      target = config_.self;
      note = Note::kKeptForLocalSocket;
    }
  }
  const InsertResult r = flows_.Insert(key, target, FlowState::kSynSeen, nowMs, clientNext);
  // No room to remember a load decision: serve it here, where the kernel's
  // own socket lookup keeps later packets local without us. (The hash policy
  // finds a forgotten flow's host again by the hash.)
  if (r != InsertResult::kOk && config_.policy == Policy::kLoad) target = config_.self;
  if (config_.policy == Policy::kLoad && target == config_.self) loadDecider_.own().NoteKept();
  CountNewFlow(target);
  HandOff(key, target);
  Outcome out = Route(p, target, portIndex, csumNotReady);
  out.note = r != InsertResult::kOk ? NoteFor(r) : note;
  return out;
}

// The one place a new flow's target reaches the kernel (kernel modes). The
// entry starts with the SYN timeout; the kernel's own rules lengthen it on
// the client's next packet and shorten it on FIN or RST (lib/rules.ts). Any
// entry of the same key under another peer (the 4-tuple of a closed
// connection, reused) goes, also when the new one stays here: the rules
// would follow the set that holds it for every packet the local socket
// lookup misses (a RST answering this host's TIME_WAIT, say).
void Engine::HandOff(const FlowKey& key, uint16_t target) {
  if (handoff_ == nullptr) return;
  for (size_t id = 0; id < config_.serviceAddr.size(); ++id) {
    if (id != target && id != config_.self && config_.serviceAddr[id] != 0) handoff_->OnFlowGone(key, static_cast<uint16_t>(id));
  }
  if (target != config_.self) handoff_->OnForwardDecided(key, target, config_.timeouts.synMs, false);
}

uint32_t Engine::PeerMark(uint16_t target) const {
  const uint32_t m = config_.peerMarkMask;
  return config_.forwardMark | ((static_cast<uint32_t>(target) << __builtin_ctz(m)) & m);
}

Outcome Engine::Route(TcpPacket& p, uint16_t target, int portIndex, bool csumNotReady) {
  Outcome out;
  out.target = target;
  if (target == config_.self) return out;
  if (config_.kernelForward) {
    out.action = Action::kForward;  // NF_REPEAT, unchanged: the mark routes it (untracked, like a rewritten one)
    out.mark = PeerMark(target);
    return out;
  }
  const size_t nPorts = config_.servicePorts.size();
  const uint16_t peerPort =
      static_cast<uint16_t>(config_.peerPortBase + config_.self * nPorts + portIndex);
  // The TTL is set to 255 after the kernel's forwarding decrement (mangle
  // POSTROUTING, lib/rules.ts): set here, it would leave at 254.
  Rewrite(p, config_.clusterAddr[target], peerPort, csumNotReady);
  out.action = Action::kForward;
  out.mangled = true;
  out.mark = config_.forwardMark;
  return out;
}

Outcome Engine::ProcessServe(TcpPacket& p, const PacketMeta& meta) {
  Outcome out;
  const size_t hosts = config_.serviceAddr.size();
  const size_t nPorts = config_.servicePorts.size();
  if (p.daddr != config_.clusterAddr[config_.self] || p.dport < config_.peerPortBase ||
      p.dport >= config_.peerPortBase + hosts * nPorts) {
    out.note = Note::kNotPeerPort;
    return out;
  }
  // Stateless: the peer port alone says which host the client connected to.
  const size_t offset = p.dport - config_.peerPortBase;
  const size_t origin = offset / nPorts;
  const size_t k = offset % nPorts;
  if (origin == config_.self || config_.serviceAddr[origin] == 0) {
    out.note = Note::kBadOrigin;
    return out;
  }
  out.note = CheckPeerMac(origin, meta.srcMac);
  if (out.note != Note::kNone) {
    out.action = Action::kDrop;
    return out;
  }
  Rewrite(p, config_.serviceAddr[origin], config_.servicePorts[k], meta.csumNotReady);
  out.action = Action::kRestore;
  out.mangled = true;
  out.mark = config_.serveMark;
  out.target = static_cast<uint16_t>(origin);
  return out;
}

void Engine::Rewrite(TcpPacket& p, uint32_t daddr, uint16_t dport, bool csumNotReady) {
  const uint32_t oldAddr = p.daddr;
  const uint16_t oldPortNet = htons(p.dport);
  const uint16_t newPortNet = htons(dport);
  SetDestination(&p, daddr, dport);
  ChecksumReplace32(p.ip + 10, oldAddr, daddr);
  if (csumNotReady) {
    // The field holds only the pseudo-header sum and the kernel will not finish
    // it once we hand back new bytes (nfqnl_mangle sets CHECKSUM_NONE): an
    // incremental update of a partial sum yields a packet the receiver drops.
    TcpChecksumFull(&p);
    counters_.csumFull.Add();
  } else {
    ChecksumReplace32(p.tcp + 16, oldAddr, daddr);
    ChecksumReplace16(p.tcp + 16, oldPortNet, newPortNet);
    counters_.csumIncremental.Add();
  }
}

std::vector<uint32_t> Engine::ExportFlows(uint32_t nowMs) const {
  std::vector<uint32_t> out;
  out.reserve(flows_.size() * kFlowWords);
  flows_.ForEach([&](const FlowEntry& e) {
    out.push_back(e.clientAddr);
    out.push_back(config_.serviceAddr[config_.self]);
    out.push_back(static_cast<uint32_t>(e.clientPort) << 16 | e.servicePort);
    out.push_back(static_cast<uint32_t>(e.target) << 16 | static_cast<uint32_t>(e.state));
    out.push_back(e.clientNext);
    out.push_back(nowMs - e.lastSeenMs);
  });
  return out;
}

size_t Engine::ImportFlows(const uint32_t* words, size_t count, uint32_t nowMs) {
  size_t taken = 0;
  for (size_t i = 0; i + kFlowWords <= count * kFlowWords; i += kFlowWords) {
    const FlowKey key{words[i], words[i + 1], static_cast<uint16_t>(words[i + 2] >> 16),
                      static_cast<uint16_t>(words[i + 2] & 0xffff)};
    const uint16_t target = static_cast<uint16_t>(words[i + 3] >> 16);
    const uint32_t stateWord = words[i + 3] & 0xffff;
    const uint32_t clientNext = words[i + 4];
    const uint32_t age = words[i + 5];
    if (stateWord < static_cast<uint32_t>(FlowState::kSynSeen) || stateWord >= static_cast<uint32_t>(FlowState::kCount)) continue;
    if (target >= config_.serviceAddr.size() || config_.serviceAddr[target] == 0) continue;
    if (key.serviceAddr != config_.serviceAddr[config_.self] || ServicePortIndex(key.servicePort) < 0) continue;
    if (flows_.Find(key, nowMs) >= 0) continue;
    // Inserted with its age, so the usual timeouts (and the sweep) apply.
    // (A flow on probation comes back without its first ACK number: the
    // next ACK then counts as progress.)
    if (flows_.Insert(key, target, static_cast<FlowState>(stateWord), nowMs - age, clientNext) != InsertResult::kOk) continue;
    const long idx = flows_.Find(key, nowMs);  // drops it again if it has expired
    if (idx < 0) continue;
    ++taken;
    // Kernel modes: its ipset entry outlives the daemon by itself; put back
    // only one that is missing (the sets made anew), never shortening one.
    if (handoff_ != nullptr && target != config_.self) {
      handoff_->OnForwardDecided(key, target, TimeLeft(config_.timeouts, static_cast<FlowState>(stateWord), age), true);
    }
  }
  PublishFlowCounts();
  return taken;
}

// The rules already required an entry host's TTL (GTSM); on one segment
// anyone can send that, but a packet also carries the sender's MAC, which a
// host on the segment cannot forge past a switch that checks (and most do
// not bother to forge). Before a peer's MAC is known its packets are dropped:
// the daemon reads the neighbour table when the peer comes up, and TCP sends
// anything dropped meanwhile again.
Note Engine::CheckPeerMac(size_t origin, const uint8_t* srcMac) const {
  if (!config_.checkPeerMacs) return Note::kNone;
  const size_t at = origin * 6;
  static const uint8_t kZero[6] = {};
  if (at + 6 > peerMacs_.size() || std::memcmp(peerMacs_.data() + at, kZero, 6) == 0) return Note::kPeerMacUnknown;
  if (srcMac == nullptr || std::memcmp(srcMac, peerMacs_.data() + at, 6) != 0) return Note::kBadPeerMac;
  return Note::kNone;
}

void Engine::SetPeerMacs(const std::vector<uint8_t>& macs) {
  peerMacs_.assign(macs.begin(), macs.begin() + std::min(macs.size(), config_.serviceAddr.size() * 6));
}

void Engine::SetLookupTable(std::shared_ptr<const LookupTable> table) {
  lookup_ = std::move(table);
  live_.assign(config_.serviceAddr.size(), false);
  if (lookup_ == nullptr) {
    live_.clear();
    return;
  }
  // A hole (no address: a removed host, a bad push) is never a load candidate.
  for (const uint16_t host : *lookup_) {
    if (host < live_.size() && config_.serviceAddr[host] != 0) live_[host] = true;
  }
}

size_t Engine::Sweep(size_t budget, uint32_t nowMs) {
  const size_t removed = flows_.Sweep(budget, nowMs);
  counters_.flowsExpired.v.store(flows_.expired(), std::memory_order_relaxed);
  PublishFlowCounts();
  return removed;
}

void Engine::PublishFlowCounts() {
  for (size_t s = 0; s < static_cast<size_t>(FlowState::kCount); ++s) {
    counters_.flowsByState[s].store(flows_.CountIn(static_cast<FlowState>(s)), std::memory_order_relaxed);
    counters_.remoteFlowsByState[s].store(flows_.RemoteIn(static_cast<FlowState>(s)), std::memory_order_relaxed);
  }
}

}  // namespace dpr
