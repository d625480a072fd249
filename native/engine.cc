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
    case Note::kHostGone: return "host_gone";
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
  if (config.servicePorts.empty()) throw std::invalid_argument("servicePorts is empty");
  const size_t lastPeerPort = config.peerPortBase + hosts * config.servicePorts.size() - 1;
  if (config.peerPortBase == 0 || lastPeerPort > 65535) {
    throw std::invalid_argument("peer port range does not fit in 1..65535");
  }
  if (config.forwardMark == 0 || config.serveMark == 0) {
    throw std::invalid_argument("marks must be non-zero");
  }
  const bool ipv6 = !config.serviceAddr6.empty() || !config.clusterAddr6.empty();
  if (ipv6 && (config.serviceAddr6.size() != hosts || config.clusterAddr6.size() != hosts)) {
    throw std::invalid_argument("serviceAddr6 and clusterAddr6 must be empty or list the same hosts as serviceAddr");
  }
  // An IPv6-only host has no IPv4 service address (zero), a dual-stack or IPv4 one has it.
  if (config.self >= hosts || (config.serviceAddr[config.self] == 0 && (!ipv6 || IsNoAddress(config.serviceAddr6[config.self])))) {
    throw std::invalid_argument("self is not one of the hosts");
  }
  if (ipv6 && IsNoAddress(config.serviceAddr6[config.self]) != IsNoAddress(config.clusterAddr6[config.self])) {
    throw std::invalid_argument("this host needs both an IPv6 service and cluster address, or neither");
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
  if (!config_.serviceAddr6.empty() && !IsNoAddress(config_.serviceAddr6[config_.self])) {
    // Its own table (a 36-byte entry), the same bounds, and the one count of
    // open forwards the load policy reads, over both families.
    flows6_ = std::make_unique<FlowTable6>(config_.maxFlows, config_.maxEmbryonic, config_.timeouts,
                                           config_.serviceAddr6[config_.self],
                                           config_.flowKey.IsZero() ? RandomSipKey() : config_.flowKey,
                                           flows_.sharedOpenRemote());
    flows6_->SetLocalTarget(config_.self);
  }
  loadDecider_.SetThreshold(config_.loadThreshold);
  // Every possible id: a reload that adds a host never resizes what other threads read.
  counters_.newFlowsByTarget = std::vector<Counter>(kMaxHosts);
}

const char* Engine::HostsProblem(const EngineConfig& config, const std::vector<uint32_t>& serviceAddr,
                                 const std::vector<uint32_t>& clusterAddr, const std::vector<Ip6>& serviceAddr6,
                                 const std::vector<Ip6>& clusterAddr6) {
  const size_t hosts = serviceAddr.size();
  if (hosts == 0 || hosts != clusterAddr.size() || hosts > kMaxHosts) {
    return "serviceAddr and clusterAddr must list the same hosts, at most 256";
  }
  const bool ipv6 = !serviceAddr6.empty() || !clusterAddr6.empty();
  if (ipv6 && (serviceAddr6.size() != hosts || clusterAddr6.size() != hosts)) {
    return "serviceAddr6 and clusterAddr6 must be empty or list the same hosts as serviceAddr";
  }
  const uint16_t self = config.self;
  if (self >= hosts || serviceAddr[self] != config.serviceAddr[self] || clusterAddr[self] != config.clusterAddr[self]) {
    return "this host's own addresses cannot change while it runs";
  }
  const Ip6 none{};
  const auto own6 = [&](const std::vector<Ip6>& list) { return list.empty() ? none : list[self]; };
  if (own6(serviceAddr6) != own6(config.serviceAddr6) || own6(clusterAddr6) != own6(config.clusterAddr6)) {
    return "this host's own addresses cannot change while it runs";
  }
  if (config.peerPortBase + hosts * config.servicePorts.size() - 1 > 65535) return "peer port range does not fit in 1..65535";
  return nullptr;
}

void Engine::SetHosts(std::vector<uint32_t> serviceAddr, std::vector<uint32_t> clusterAddr,
                      std::vector<Ip6> serviceAddr6, std::vector<Ip6> clusterAddr6) {
  if (const char* problem = HostsProblem(config_, serviceAddr, clusterAddr, serviceAddr6, clusterAddr6)) {
    throw std::invalid_argument(problem);
  }
  config_.serviceAddr = std::move(serviceAddr);
  config_.clusterAddr = std::move(clusterAddr);
  config_.serviceAddr6 = std::move(serviceAddr6);
  config_.clusterAddr6 = std::move(clusterAddr6);
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

template <typename Addr>
uint16_t Engine::HashTarget(const Addr& clientAddr, uint16_t clientPort) const {
  const LookupTable* t = lookup_.get();
  if (t == nullptr || t->empty()) return config_.self;
  // Keyed: a client cannot pick the slot, so it cannot pick its serving host.
  uint8_t in[sizeof(Addr) + 2];
  const uint16_t port = htons(clientPort);
  std::memcpy(in, &clientAddr, sizeof(Addr));
  std::memcpy(in + sizeof(Addr), &port, 2);
  const uint16_t target = (*t)[SipHash24(hashKey_, in, sizeof in) % t->size()];
  // A table naming an unknown host would send packets nowhere: serve locally.
  // (An IPv6 client's: nor to a host without IPv6.)
  if (!Known<Addr>(target)) return config_.self;
  return target;
}

Outcome Engine::Process(uint8_t* buf, size_t len, const PacketMeta& meta, uint32_t nowMs) {
  counters_.packets.Add();
  counters_.bytes.Add(len);
  if (flows6_ != nullptr && len > 0 && (buf[0] >> 4) == 6) {
    counters_.packets6.Add();
    return Counted(ProcessFamily<Ip6>(buf, len, meta, nowMs));
  }
  return Counted(ProcessFamily<uint32_t>(buf, len, meta, nowMs));
}

namespace {
ParseResult ParseTcp(uint8_t* buf, size_t len, TcpPacket* p) { return ParseTcp4(buf, len, p); }
ParseResult ParseTcp(uint8_t* buf, size_t len, TcpPacket6* p) { return ParseTcp6(buf, len, p); }
ParseResult ParseHeaders(uint8_t* buf, size_t len, size_t wire, TcpPacket* p) { return ParseTcp4Headers(buf, len, wire, p); }
ParseResult ParseHeaders(uint8_t* buf, size_t len, size_t wire, TcpPacket6* p) { return ParseTcp6Headers(buf, len, wire, p); }
}  // namespace

template <typename Addr>
Outcome Engine::ProcessFamily(uint8_t* buf, size_t len, const PacketMeta& meta, uint32_t nowMs) {
  if (meta.wireLength > len) return Oversize<Addr>(buf, len, meta, nowMs);
  BasicTcpPacket<Addr> p;
  Outcome out;
  out.parse = ParseTcp(buf, len, &p);
  BasicIcmpError<Addr> icmp;
  if (out.parse == ParseResult::kNotTcp && ParseIcmpError(buf, len, &icmp)) return ProcessIcmp(icmp, meta, nowMs);
  if (out.parse != ParseResult::kOk) return out;
  return config_.role == Role::kEntry ? ProcessEntry(p, meta.csumNotReady, nowMs) : ProcessServe(p, meta);
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
template <typename Addr>
Outcome Engine::Oversize(uint8_t* buf, size_t len, const PacketMeta& meta, uint32_t nowMs) {
  BasicTcpPacket<Addr> p;
  Outcome out;
  out.parse = ParseHeaders(buf, len, meta.wireLength, &p);
  if (out.parse != ParseResult::kOk) return out;
  out.note = Note::kOversize;
  if (config_.role == Role::kServe) {
    const size_t peerPorts = config_.serviceAddr.size() * config_.servicePorts.size();
    const bool peerPort = p.dport >= config_.peerPortBase && p.dport < config_.peerPortBase + peerPorts;
    if (p.daddr == ClusterAddrs<Addr>()[config_.self] && peerPort) out.action = Action::kDrop;
    return out;
  }
  if (p.daddr != ServiceAddrs<Addr>()[config_.self] || ServicePortIndex(p.dport) < 0) {
    out.note = Note::kNotService;
    return out;
  }
  BasicFlowTable<Addr>& flows = Table<Addr>();
  const long idx = flows.Find(BasicFlowKey<Addr>{p.saddr, p.daddr, p.sport, p.dport}, nowMs);
  uint16_t target = config_.self;
  if (idx >= 0) {
    target = flows.At(idx).target;
  } else if (config_.policy == Policy::kHash) {
    target = HashTarget(p.saddr, p.sport);
  }
  out.target = target;
  if (target != config_.self) out.action = Action::kDrop;
  return out;
}

template <typename Addr>
Outcome Engine::ProcessEntry(BasicTcpPacket<Addr>& p, bool csumNotReady, uint32_t nowMs) {
  Outcome out;
  const int portIndex = ServicePortIndex(p.dport);
  if (p.daddr != ServiceAddrs<Addr>()[config_.self] || portIndex < 0) {
    out.note = Note::kNotService;
    return out;
  }
  BasicFlowTable<Addr>& flows = Table<Addr>();
  const BasicFlowKey<Addr> key{p.saddr, p.daddr, p.sport, p.dport};
  const long idx = flows.Find(key, nowMs);
  if (idx < 0) return p.IsSyn() ? NewFlow(p, key, portIndex, csumNotReady, nowMs) : NoFlow(p, portIndex, csumNotReady);
  const auto& e = flows.At(idx);
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
    flows.Erase(idx);
    out.note = Note::kReusedHere;
    return out;
  }
  // Every other packet of the flow goes to its host, whatever it says: the
  // serving host's stack decides what a RST or a stray segment means.
  const uint16_t target = e.target;
  Note note = Note::kNone;
  if (p.Has(kTcpRst)) {
    const bool plausible = TrackRst(flows, idx, p, nowMs);
    note = plausible ? Note::kRstInWindow : Note::kRstOutOfWindow;
    if (plausible) counters_.flowsClosed.Add();
  } else {
    TrackSegment(flows, idx, p, nowMs);
  }
  out = Route(p, target, portIndex, csumNotReady);
  if (out.note == Note::kNone) out.note = note;  // Route says host_gone first
  return out;
}

// A SYN never takes a live connection elsewhere. It is decided afresh only
// when the connection is over: after a plausible RST, or when its host is no
// longer live (otherwise a SYN retransmitted towards a host that went down
// would follow it until synMs runs out), or, while this host drains, when it
// reuses the 4-tuple of a closing forwarded flow (a new connection, which a
// draining host keeps).
template <typename Addr>
Outcome Engine::SynOnFlow(BasicTcpPacket<Addr>& p, const BasicFlowKey<Addr>& key, long index, int portIndex,
                          bool csumNotReady, uint32_t nowMs) {
  BasicFlowTable<Addr>& flows = Table<Addr>();
  const auto& e = flows.At(index);
  const bool reuseWhileDraining = draining_ && e.state == FlowState::kClosing && e.target != config_.self;
  if (e.state == FlowState::kReset || !IsLive(e.target) || reuseWhileDraining) {
    if (handoff_ != nullptr && e.target != config_.self) handoff_->OnFlowGone(key, e.target);
    flows.Erase(index);
    Outcome out = NewFlow(p, key, portIndex, csumNotReady, nowMs);
    if (out.note == Note::kNone) out.note = Note::kSynRedecided;
    return out;
  }
  const uint16_t target = e.target;
  // kSynSeen with the first SYN's sequence number: the client sends its SYN
  // again. Anything else: a spoofed SYN, or the client reusing the 4-tuple,
  // which the serving host's TIME_WAIT accepts (it answers the rest with a
  // challenge ACK). A reused 4-tuple meets kSynSeen too when this host saw
  // nothing after the first connection's SYN: a local flow (the socket match
  // takes its packets) or, in the kernel modes, any flow. (Fresh-clone runs
  // counted 31 of 800 such SYNs as retransmissions.)
  const bool retransmit = e.state == FlowState::kSynSeen && p.seq + 1 == e.clientNext;
  const Note note = retransmit ? Note::kNone : Note::kSynOnFlow;
  if (e.state == FlowState::kClosing) {
    RearmForSyn(flows, index, p, nowMs);
  } else {
    flows.Touch(index, nowMs);
  }
  Outcome out = Route(p, target, portIndex, csumNotReady);
  if (out.note == Note::kNone) out.note = note;
  return out;
}

// Mid-flow with no entry: the hash still names the host that got the SYN
// unless the table changed since; the load policy has nothing to go on, so
// the local stack answers (with a reset if it has no socket).
template <typename Addr>
Outcome Engine::NoFlow(BasicTcpPacket<Addr>& p, int portIndex, bool csumNotReady) {
  Outcome out;
  if (config_.policy == Policy::kHash) {
    out = Route(p, HashTarget(p.saddr, p.sport), portIndex, csumNotReady);
    if (out.note == Note::kNone) out.note = Note::kNoFlowHashed;
    return out;
  }
  out.note = Note::kNoFlow;
  return out;
}

void Engine::WatchLocalSockets(uint32_t nowMs) {
  watchingLocalSockets_ = true;
  watchLocalSocketsUntilMs_ = nowMs + kTimeWaitWatchMs;
}

bool Engine::WatchingLocalSockets(uint32_t nowMs) {
  if (watchingLocalSockets_ && static_cast<int32_t>(nowMs - watchLocalSocketsUntilMs_) >= 0) watchingLocalSockets_ = false;
  return watchingLocalSockets_;
}

template <typename Addr>
bool Engine::KeptForLocalSocket(const BasicFlowKey<Addr>& key) const {
  if constexpr (std::is_same_v<Addr, uint32_t>) {
    return localSocket_ && localSocket_(key);
  } else {
    return localSocket6_ && localSocket6_(key);
  }
}

template <typename Addr>
Outcome Engine::NewFlow(BasicTcpPacket<Addr>& p, const BasicFlowKey<Addr>& key, int portIndex, bool csumNotReady,
                        uint32_t nowMs) {
  BasicFlowTable<Addr>& flows = Table<Addr>();
  const uint32_t clientNext = p.seq + 1;
  if (draining_) {
    flows.Insert(key, config_.self, FlowState::kSynSeen, nowMs, clientNext);
    CountNewFlow(config_.self);
    HandOff(key, config_.self);
    Outcome out;
    out.note = Note::kDraining;
    return out;
  }
  uint16_t target = HashTarget(p.saddr, p.sport);
  Note note = Note::kNone;
  if (config_.policy == Policy::kLoad) {
    target = loadDecider_.Decide(config_.self, target, LiveFor<Addr>(), flows.openRemote(), nowMs);
  }
  // The client reuses the 4-tuple of a connection whose TIME_WAIT is here:
  // its later packets meet that socket (-m socket) wherever the SYN went, so
  // only this host can take it. The hash policy sends a 4-tuple where it went
  // before unless the table or this host's serving changed: it asks only then.
  if (target != config_.self && (config_.policy == Policy::kLoad || WatchingLocalSockets(nowMs)) && KeptForLocalSocket(key)) {
    target = config_.self;
    note = Note::kKeptForLocalSocket;
  }
  const InsertResult r = flows.Insert(key, target, FlowState::kSynSeen, nowMs, clientNext);
  // No room to remember a load decision: serve it here, where the kernel's
  // own socket lookup keeps later packets local without us. (The hash policy
  // finds a forgotten flow's host again by the hash.)
  if (r != InsertResult::kOk && config_.policy == Policy::kLoad) target = config_.self;
  if (config_.policy == Policy::kLoad && target == config_.self) loadDecider_.own().NoteKept();
  CountNewFlow(target);
  HandOff(key, target);
  Outcome out = Route(p, target, portIndex, csumNotReady);
  if (out.note == Note::kNone) out.note = r != InsertResult::kOk ? NoteFor(r) : note;
  return out;
}

// The one place a new flow's target reaches the kernel (kernel modes). The
// entry starts with the SYN timeout; the kernel's own rules lengthen it on
// the client's next packet and shorten it on FIN or RST (lib/rules.ts). Any
// entry of the same key under another peer (the 4-tuple of a closed
// connection, reused) goes, also when the new one stays here: the rules
// would follow the set that holds it for every packet the local socket
// lookup misses (a RST answering this host's TIME_WAIT, say).
template <typename Addr>
void Engine::HandOff(const BasicFlowKey<Addr>& key, uint16_t target) {
  if (handoff_ == nullptr) return;
  for (size_t id = 0; id < config_.serviceAddr.size(); ++id) {
    if (id != target && id != config_.self && Known<Addr>(id)) handoff_->OnFlowGone(key, static_cast<uint16_t>(id));
  }
  if (target != config_.self) handoff_->OnForwardDecided(key, target, config_.timeouts.synMs, false);
}

uint32_t Engine::PeerMark(uint16_t target) const {
  const uint32_t m = config_.peerMarkMask;
  return config_.forwardMark | ((static_cast<uint32_t>(target) << __builtin_ctz(m)) & m);
}

template <typename Addr>
Outcome Engine::Route(BasicTcpPacket<Addr>& p, uint16_t target, int portIndex, bool csumNotReady) {
  Outcome out;
  out.target = target;
  if (target == config_.self) return out;
  // A flow whose host a reload took away (its addresses, or its id past a
  // shorter list) has nowhere to go: the local stack answers it (a reset,
  // which ends the connection at once instead of a silent drop).
  if (!Reachable<Addr>(target)) {
    out.target = config_.self;
    out.note = Note::kHostGone;
    return out;
  }
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
  Rewrite(p, ClusterAddrs<Addr>()[target], peerPort, csumNotReady);
  out.action = Action::kForward;
  out.mangled = true;
  out.mark = config_.forwardMark;
  return out;
}

template <typename Addr>
Outcome Engine::ProcessServe(BasicTcpPacket<Addr>& p, const PacketMeta& meta) {
  Outcome out;
  const size_t hosts = config_.serviceAddr.size();
  const size_t nPorts = config_.servicePorts.size();
  if (p.daddr != ClusterAddrs<Addr>()[config_.self] || p.dport < config_.peerPortBase ||
      p.dport >= config_.peerPortBase + hosts * nPorts) {
    out.note = Note::kNotPeerPort;
    return out;
  }
  // Stateless: the peer port alone says which host the client connected to.
  const size_t offset = p.dport - config_.peerPortBase;
  const size_t origin = offset / nPorts;
  const size_t k = offset % nPorts;
  if (origin == config_.self || !Known<Addr>(origin)) {
    out.note = Note::kBadOrigin;
    return out;
  }
  out.note = CheckPeerMac(origin, meta.srcMac);
  if (out.note != Note::kNone) {
    out.action = Action::kDrop;
    return out;
  }
  Rewrite(p, ServiceAddrs<Addr>()[origin], config_.servicePorts[k], meta.csumNotReady);
  out.action = Action::kRestore;
  out.mangled = true;
  out.mark = config_.serveMark;
  out.target = static_cast<uint16_t>(origin);
  return out;
}

template <typename Addr>
void Engine::Rewrite(BasicTcpPacket<Addr>& p, const Addr& daddr, uint16_t dport, bool csumNotReady) {
  const Addr oldAddr = p.daddr;
  const uint16_t oldPortNet = htons(p.dport);
  const uint16_t newPortNet = htons(dport);
  SetDestination(&p, daddr, dport);
  // IPv6 has no header checksum; the TCP pseudo-header holds the address either way.
  if constexpr (std::is_same_v<Addr, uint32_t>) ChecksumReplace32(p.ip + 10, oldAddr, daddr);
  if (csumNotReady) {
    // The field holds only the pseudo-header sum and the kernel will not finish
    // it once we hand back new bytes (nfqnl_mangle sets CHECKSUM_NONE): an
    // incremental update of a partial sum yields a packet the receiver drops.
    TcpChecksumFull(&p);
    counters_.csumFull.Add();
  } else {
    if constexpr (std::is_same_v<Addr, uint32_t>) {
      ChecksumReplace32(p.tcp + 16, oldAddr, daddr);
    } else {
      ChecksumReplace128(p.tcp + 16, oldAddr, daddr);
    }
    ChecksumReplace16(p.tcp + 16, oldPortNet, newPortNet);
    counters_.csumIncremental.Add();
  }
}

namespace {
// An address as export words: IPv4 one word, IPv6 four, as they lie in the packet.
void PushAddr(std::vector<uint32_t>& out, uint32_t a) { out.push_back(a); }
void PushAddr(std::vector<uint32_t>& out, const Ip6& a) {
  for (size_t i = 0; i < 16; i += 4) {
    uint32_t w;
    std::memcpy(&w, a.b + i, 4);
    out.push_back(w);
  }
}
void ReadAddr(const uint32_t* w, uint32_t* a) { *a = w[0]; }
void ReadAddr(const uint32_t* w, Ip6* a) { std::memcpy(a->b, w, 16); }
}  // namespace

template <typename Addr>
std::vector<uint32_t> Engine::Export(const BasicFlowTable<Addr>& table, uint32_t nowMs) const {
  std::vector<uint32_t> out;
  constexpr size_t kWords = 4 + 2 * sizeof(Addr) / 4;
  out.reserve(table.size() * kWords);
  const Addr service = ServiceAddrs<Addr>()[config_.self];
  table.ForEach([&](const BasicFlowEntry<Addr>& e) {
    PushAddr(out, e.clientAddr);
    PushAddr(out, service);
    out.push_back(static_cast<uint32_t>(e.clientPort) << 16 | e.servicePort);
    out.push_back(static_cast<uint32_t>(e.target) << 16 | static_cast<uint32_t>(e.state));
    out.push_back(e.clientNext);
    out.push_back(nowMs - e.lastSeenMs);
  });
  return out;
}

std::vector<uint32_t> Engine::ExportFlows(uint32_t nowMs) const { return Export(flows_, nowMs); }

std::vector<uint32_t> Engine::ExportFlows6(uint32_t nowMs) const {
  return flows6_ ? Export(*flows6_, nowMs) : std::vector<uint32_t>{};
}

size_t Engine::ImportFlows(const uint32_t* words, size_t count, uint32_t nowMs) { return Import<uint32_t>(words, count, nowMs); }

size_t Engine::ImportFlows6(const uint32_t* words, size_t count, uint32_t nowMs) {
  return flows6_ ? Import<Ip6>(words, count, nowMs) : 0;
}

template <typename Addr>
size_t Engine::Import(const uint32_t* words, size_t count, uint32_t nowMs) {
  constexpr size_t kAddrWords = sizeof(Addr) / 4;
  constexpr size_t kWords = 4 + 2 * kAddrWords;
  static_assert(kWords == (sizeof(Addr) == 4 ? kFlowWords : kFlowWords6), "export layout");
  BasicFlowTable<Addr>& flows = Table<Addr>();
  size_t taken = 0;
  for (size_t i = 0; i + kWords <= count * kWords; i += kWords) {
    BasicFlowKey<Addr> key{};
    ReadAddr(words + i, &key.clientAddr);
    ReadAddr(words + i + kAddrWords, &key.serviceAddr);
    const uint32_t* w = words + i + 2 * kAddrWords;
    key.clientPort = static_cast<uint16_t>(w[0] >> 16);
    key.servicePort = static_cast<uint16_t>(w[0] & 0xffff);
    const uint16_t target = static_cast<uint16_t>(w[1] >> 16);
    const uint32_t stateWord = w[1] & 0xffff;
    const uint32_t clientNext = w[2];
    const uint32_t age = w[3];
    if (stateWord < static_cast<uint32_t>(FlowState::kSynSeen) || stateWord >= static_cast<uint32_t>(FlowState::kCount)) continue;
    if (!Known<Addr>(target)) continue;
    if (key.serviceAddr != ServiceAddrs<Addr>()[config_.self] || ServicePortIndex(key.servicePort) < 0) continue;
    if (flows.Find(key, nowMs) >= 0) continue;
    // Inserted with its age, so the usual timeouts (and the sweep) apply.
    // (A flow on probation comes back without its first ACK number: the
    // next ACK then counts as progress.)
    if (flows.Insert(key, target, static_cast<FlowState>(stateWord), nowMs - age, clientNext) != InsertResult::kOk) continue;
    const long idx = flows.Find(key, nowMs);  // drops it again if it has expired
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
  live6_.assign(config_.serviceAddr.size(), false);
  if (lookup_ == nullptr) {
    live_.clear();
    live6_.clear();
    return;
  }
  // A hole (no address: a removed host, a bad push) is never a load candidate;
  // nor, for an IPv6 connection, a host without IPv6.
  // (Each family on its own: an IPv6-only host has no IPv4 address.)
  for (const uint16_t host : *lookup_) {
    if (host >= live_.size()) continue;
    live_[host] = config_.serviceAddr[host] != 0;
    live6_[host] = Known<Ip6>(host) && !IsNoAddress(config_.clusterAddr6[host]);
  }
}

size_t Engine::Sweep(size_t budget, uint32_t nowMs) {
  size_t removed = flows_.Sweep(budget, nowMs);
  uint64_t expired = flows_.expired();
  if (flows6_) {
    removed += flows6_->Sweep(budget, nowMs);
    expired += flows6_->expired();
  }
  counters_.flowsExpired.v.store(expired, std::memory_order_relaxed);
  PublishFlowCounts();
  return removed;
}

void Engine::PublishFlowCounts() {
  for (size_t s = 0; s < static_cast<size_t>(FlowState::kCount); ++s) {
    const auto state = static_cast<FlowState>(s);
    const size_t six = flows6_ ? flows6_->CountIn(state) : 0;
    const size_t sixRemote = flows6_ ? flows6_->RemoteIn(state) : 0;
    counters_.flowsByState[s].store(flows_.CountIn(state) + six, std::memory_order_relaxed);
    counters_.remoteFlowsByState[s].store(flows_.RemoteIn(state) + sixRemote, std::memory_order_relaxed);
    counters_.flowsByState6[s].store(six, std::memory_order_relaxed);
  }
}

#define DPR_ENGINE_FAMILY(Addr)                                                                   \
  template Outcome Engine::ProcessFamily<Addr>(uint8_t*, size_t, const PacketMeta&, uint32_t); \
  template uint16_t Engine::HashTarget(const Addr&, uint16_t) const;
DPR_ENGINE_FAMILY(uint32_t)
DPR_ENGINE_FAMILY(Ip6)
#undef DPR_ENGINE_FAMILY

}  // namespace dpr
