#include "engine.h"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>

#include "checksum.h"

namespace dpr {

const char* ActionName(Action a) {
  switch (a) {
    case Action::kAccept: return "accept";
    case Action::kForward: return "forward";
    case Action::kRestore: return "restore";
    case Action::kDrop: return "drop";
    case Action::kDefer: return "defer";
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
    case Note::kPendingDuplicate: return "pending_duplicate";
    case Note::kDraining: return "draining";
    case Note::kCount: break;
  }
  return "unknown";
}

Engine::Engine(EngineConfig config)
    : config_(std::move(config)),
      flows_(config_.maxFlows, config_.maxEmbryonic, config_.timeouts) {
  const size_t hosts = config_.serviceAddr.size();
  if (hosts == 0 || hosts != config_.clusterAddr.size()) {
    throw std::invalid_argument("serviceAddr and clusterAddr must list the same hosts");
  }
  if (config_.self >= hosts || config_.serviceAddr[config_.self] == 0) {
    throw std::invalid_argument("self is not one of the hosts");
  }
  if (config_.servicePorts.empty()) throw std::invalid_argument("servicePorts is empty");
  const size_t lastPeerPort = config_.peerPortBase + hosts * config_.servicePorts.size() - 1;
  if (config_.peerPortBase == 0 || lastPeerPort > 65535) {
    throw std::invalid_argument("peer port range does not fit in 1..65535");
  }
  if (config_.forwardMark == 0 || config_.serveMark == 0) {
    throw std::invalid_argument("marks must be non-zero");
  }
  if (hosts > kMaxHosts) throw std::invalid_argument("host ids must be below 256");
  flows_.SetLocalTarget(config_.self);
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
  const uint64_t h = Mix64((static_cast<uint64_t>(clientAddr) << 16) ^ clientPort ^ 0x6470720000000000ULL);
  const uint16_t target = (*t)[h % t->size()];
  // A table naming an unknown host would send packets nowhere: serve locally.
  if (target >= config_.serviceAddr.size() || config_.serviceAddr[target] == 0) return config_.self;
  return target;
}

Outcome Engine::Process(uint8_t* buf, size_t len, bool csumNotReady, uint32_t nowMs) {
  counters_.packets.Add();
  counters_.bytes.Add(len);
  return Decide(buf, len, csumNotReady, nowMs);
}

Outcome Engine::Replay(uint8_t* buf, size_t len, bool csumNotReady, uint32_t nowMs) {
  return Decide(buf, len, csumNotReady, nowMs);
}

Outcome Engine::Decide(uint8_t* buf, size_t len, bool csumNotReady, uint32_t nowMs) {
  TcpPacket p;
  Outcome out;
  out.parse = ParseTcp4(buf, len, &p);
  if (out.parse != ParseResult::kOk) {
    counters_.byParse[static_cast<size_t>(out.parse)].Add();
    counters_.byAction[static_cast<size_t>(Action::kAccept)].Add();
    return out;
  }
  out = config_.role == Role::kEntry ? ProcessEntry(p, csumNotReady, nowMs)
                                     : ProcessServe(p, csumNotReady);
  counters_.byAction[static_cast<size_t>(out.action)].Add();
  if (out.note != Note::kNone) counters_.byNote[static_cast<size_t>(out.note)].Add();
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
  long idx = flows_.Find(key, nowMs);
  if (idx >= 0) {
    FlowEntry& e = flows_.At(idx);
    if (e.state == FlowState::kPending) {
      out.action = Action::kDrop;  // the first copy is still held; TCP retransmits
      out.note = Note::kPendingDuplicate;
      return out;
    }
    // A new connection reusing the 4-tuple of a closed one, or a SYN sent
    // again towards a host that has gone since: decide afresh (otherwise the
    // retransmissions would follow the dead host until synMs runs out).
    const bool deadTarget = e.state == FlowState::kSynSeen && !IsLive(e.target);
    if (p.IsSyn() && (e.state != FlowState::kSynSeen || deadTarget)) {
      flows_.Erase(idx);
      counters_.flowsClosed.Add();
      return NewFlow(p, key, portIndex, csumNotReady, nowMs);
    }
    const uint16_t target = e.target;
    if (p.Has(kTcpRst)) {
      flows_.Erase(idx);
      counters_.flowsClosed.Add();
    } else {
      flows_.Touch(idx, nowMs);
      if (p.Has(kTcpFin)) {
        if (e.state != FlowState::kClosing) flows_.SetState(idx, FlowState::kClosing);
      } else if (e.state == FlowState::kSynSeen && !p.IsSyn()) {
        flows_.SetState(idx, FlowState::kEstablished);
      }
    }
    return Route(p, target, portIndex, csumNotReady);
  }
  if (p.IsSyn()) return NewFlow(p, key, portIndex, csumNotReady, nowMs);
  // Mid-flow with no entry: the hash still names the host that got the SYN
  // unless the table changed since; the load policy has nothing to go on, so
  // the local stack answers (with a reset if it has no socket).
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
  if (draining_) {
    flows_.Insert(key, config_.self, FlowState::kSynSeen, nowMs);
    CountNewFlow(config_.self);
    Outcome out;
    out.note = Note::kDraining;
    return out;
  }
  if (config_.policy == Policy::kLoad) {
    if (!flows_.Insert(key, config_.self, FlowState::kPending, nowMs)) {
      // No room to remember a decision: serve it here, where the kernel's own
      // socket lookup keeps later packets local without us.
      CountNewFlow(config_.self);
      Outcome out;
      out.note = Note::kTableFull;
      return out;
    }
    Outcome out;
    out.action = Action::kDefer;
    out.key = key;
    return out;
  }
  const uint16_t target = HashTarget(p.saddr, p.sport);
  const bool stored = flows_.Insert(key, target, FlowState::kSynSeen, nowMs);
  CountNewFlow(target);
  Outcome out = Route(p, target, portIndex, csumNotReady);
  if (!stored) out.note = Note::kTableFull;
  return out;
}

bool Engine::Resolve(const FlowKey& key, uint16_t target, uint32_t nowMs) {
  const long idx = flows_.Find(key, nowMs);
  if (idx < 0) return false;
  FlowEntry& e = flows_.At(idx);
  if (e.state != FlowState::kPending) return false;
  // A host the table does not name is down (or unknown): serve here.
  if (target >= config_.serviceAddr.size() || config_.serviceAddr[target] == 0 || !IsLive(target)) {
    target = config_.self;
  }
  flows_.SetTarget(idx, target);
  flows_.SetState(idx, FlowState::kSynSeen);
  flows_.Touch(idx, nowMs);
  CountNewFlow(target);
  return true;
}

Outcome Engine::Route(TcpPacket& p, uint16_t target, int portIndex, bool csumNotReady) {
  Outcome out;
  out.target = target;
  if (target == config_.self) return out;
  const size_t nPorts = config_.servicePorts.size();
  const uint16_t peerPort =
      static_cast<uint16_t>(config_.peerPortBase + config_.self * nPorts + portIndex);
  Rewrite(p, config_.clusterAddr[target], peerPort, csumNotReady);
  SetForwardTtl(p);
  out.action = Action::kForward;
  out.mangled = true;
  out.mark = config_.forwardMark;
  return out;
}

Outcome Engine::ProcessServe(TcpPacket& p, bool csumNotReady) {
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
  Rewrite(p, config_.serviceAddr[origin], config_.servicePorts[k], csumNotReady);
  out.action = Action::kRestore;
  out.mangled = true;
  out.mark = config_.serveMark;
  out.target = static_cast<uint16_t>(origin);
  return out;
}

// The serving host accepts peer-port packets only with a TTL that no sender
// more than `peers.routersBetween` routers away can produce (GTSM, RFC 5082):
// a forwarded packet still carries the client's source address, so the source
// cannot tell a peer's packet from an outsider's.
void Engine::SetForwardTtl(TcpPacket& p) {
  uint16_t before;
  std::memcpy(&before, p.ip + 8, 2);  // TTL and protocol: one checksummed word
  p.ip[8] = kForwardTtl;
  uint16_t after;
  std::memcpy(&after, p.ip + 8, 2);
  ChecksumReplace16(p.ip + 10, before, after);
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
    if (e.state == FlowState::kPending) return;
    out.push_back(e.key.clientAddr);
    out.push_back(e.key.serviceAddr);
    out.push_back(static_cast<uint32_t>(e.key.clientPort) << 16 | e.key.servicePort);
    out.push_back(static_cast<uint32_t>(e.target) << 16 | static_cast<uint32_t>(e.state));
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
    const uint32_t age = words[i + 4];
    if (stateWord < static_cast<uint32_t>(FlowState::kSynSeen) || stateWord >= static_cast<uint32_t>(FlowState::kCount)) continue;
    if (target >= config_.serviceAddr.size() || config_.serviceAddr[target] == 0) continue;
    if (key.serviceAddr != config_.serviceAddr[config_.self] || ServicePortIndex(key.servicePort) < 0) continue;
    if (flows_.Find(key, nowMs) >= 0) continue;
    // Inserted with its age, so the usual timeouts (and the sweep) apply.
    if (!flows_.Insert(key, target, static_cast<FlowState>(stateWord), nowMs - age)) continue;
    const long idx = flows_.Find(key, nowMs);  // drops it again if it has expired
    if (idx >= 0) ++taken;
  }
  PublishFlowCounts();
  return taken;
}

void Engine::SetLookupTable(std::shared_ptr<const LookupTable> table) {
  lookup_ = std::move(table);
  live_.assign(config_.serviceAddr.size(), false);
  live_[config_.self] = true;
  if (lookup_ == nullptr) {
    live_.clear();
    return;
  }
  for (const uint16_t host : *lookup_) {
    if (host < live_.size()) live_[host] = true;
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
