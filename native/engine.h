// The per-packet logic shared by the queue threads, the packet-fixture tests
// and the fuzzer: parse, look up, decide, rewrite, choose a verdict. No I/O and
// no Node-API here, so it builds alone under libFuzzer and sanitizers.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>
#include <vector>

#include "flow_handoff.h"
#include "flow_table.h"
#include "icmp.h"
#include "load_decider.h"
#include "packet.h"
#include "siphash.h"

namespace dpr {

enum class Role : uint8_t { kEntry, kServe };

enum class Policy : uint8_t { kHash, kLoad };

struct EngineConfig {
  Role role = Role::kEntry;
  Policy policy = Policy::kHash;
  uint16_t self = 0;
  // Indexed by host id; 0 marks an id that is not in the cluster. Network order.
  std::vector<uint32_t> serviceAddr;
  std::vector<uint32_t> clusterAddr;
  // IPv6, indexed like the IPv4 lists (empty, or as long; all zero: that
  // host has no IPv6 address). This host has IPv6 when its own service6 is
  // set: then IPv6 packets get a flow table of their own (FlowTable6) and
  // the same treatment, forwarded only to hosts with IPv6 addresses.
  std::vector<Ip6> serviceAddr6;
  std::vector<Ip6> clusterAddr6;
  std::vector<uint16_t> servicePorts;  // host order
  uint16_t peerPortBase = 0;
  uint32_t forwardMark = 0;  // on rewritten entry packets: the chain untracks and accepts them
  uint32_t serveMark = 0;    // on restored packets at the serving host: the nat rule DNATs them
  // Kernel modes (`direct`, `tunnel`): a forwarded packet is not rewritten but
  // routed unchanged by its mark, forwardMark | the target's id in the bits
  // of peerMarkMask (policy routing, one table per peer), and a new forwarded
  // flow is handed to the kernel (SetHandoff).
  bool kernelForward = false;
  uint32_t peerMarkMask = 0;
  // Serve role, one L2 segment between the hosts (peers.routersBetween 0): a
  // peer-port packet must come from the MAC address of the host its peer
  // port names (SetPeerMacs); a forged TTL alone is not enough then.
  bool checkPeerMacs = false;
  // Routers between peers (peers.routersBetween): a peer's forwarded ICMP
  // error must arrive with TTL > 254 - this (GTSM), as forwarded segments do.
  uint8_t routersBetween = 0;
  size_t maxFlows = 1 << 20;
  size_t maxEmbryonic = 1 << 18;
  FlowTimeouts timeouts;
  // Maglev slot hash: the same key on every host (they must agree). Zero: a
  // random one (a host on its own).
  SipKey hashKey;
  // Flow-table hash: zero (the daemon) means a random key per start; tests
  // and the fuzzer fix one.
  SipKey flowKey;
  // Load policy: connections per unit of weight below which a host keeps
  // every new one (load.threshold).
  uint32_t loadThreshold = 0;
  // Load policy: seed of the second choice's draw; 0: random (tests fix one).
  uint64_t randomSeed = 0;
};

enum class Action : uint8_t {
  kAccept,   // NF_ACCEPT, packet unchanged, no mark
  kForward,  // NF_REPEAT, rewritten to the serving host, forwardMark
  kRestore,  // NF_ACCEPT, rewritten back to the entry host's service address, serveMark
  kDrop,     // NF_DROP (TCP sends it again: an oversize or forged peer-port packet)
  kCount
};

const char* ActionName(Action a);

// Why the packet got its action, beyond the parse result.
enum class Note : uint8_t {
  kNone = 0,
  kNotService,    // entry: not addressed to this host's service address and ports
  kNotPeerPort,   // serve: not addressed to this host's cluster address and peer ports
  kBadOrigin,     // serve: the peer port names no other host
  kNoFlow,        // entry: mid-flow packet with no entry (load policy: passed to the local stack)
  kNoFlowHashed,  // entry: mid-flow packet with no entry, routed by the hash table
  kTableFull,     // entry: a new flow found no room; routed without an entry
  kKeptForLocalSocket,  // entry: a forward turned local, the 4-tuple still has a socket here (TIME_WAIT)
  kDraining,      // entry: a new flow served locally because this host drains
  kProbeLimit,    // entry: a new flow's probe run would pass the bound; routed without an entry
  kRstInWindow,   // entry: a RST near the client's next sequence number; the flow waits in kReset
  kRstOutOfWindow,  // entry: a RST nowhere near it (a blind guess); the flow is left as it was
  kSynOnFlow,     // entry: a SYN on a live flow went to its host, not decided again
  kSynRedecided,  // entry: a SYN after a plausible RST, or towards a host no longer live: decided afresh
  kPeerMacUnknown,  // serve: dropped, the MAC of the host its peer port names is not known (yet)
  kBadPeerMac,      // serve: dropped, it did not come from the MAC of the host its peer port names
  kIcmpForwarded,   // entry: an ICMP error about a forwarded flow, handed on to its serving host
  kIcmpLocal,       // an ICMP error about a flow served here: for the local stack
  kIcmpNoFlow,      // entry: an ICMP error about no flow in the table: for the local stack
  kIcmpRestored,    // an ICMP error a peer forwarded: its destination put back to the peer's service address
  kIcmpNotOurs,     // an ICMP error quoting no service address and port of the cluster, or not from a peer: unchanged
  kOversize,        // larger than the queue's copy (GRO, reassembly): dropped if it goes to another host, else for the local stack
  kReusedHere,      // entry: a new connection on the 4-tuple of a closing or reset forwarded flow whose SYN went
                    // around the engine (SYN limit, full queue): served here; the stale entry is dropped
  kHostGone,        // entry: a packet of a flow whose serving host a reload removed: for the local stack (it resets it)
  kCount
};

const char* NoteName(Note n);

struct Outcome {
  Action action = Action::kAccept;
  ParseResult parse = ParseResult::kOk;
  Note note = Note::kNone;
  bool mangled = false;  // bytes changed in place: send them back with the verdict
  uint32_t mark = 0;
  uint16_t target = 0;
};

// What the queue knows of a packet besides its bytes.
struct PacketMeta {
  bool csumNotReady = false;        // NFQA_SKB_CSUMNOTREADY: the TCP checksum holds only the pseudo-header sum
  uint32_t wireLength = 0;          // NFQA_CAP_LEN: the real length when the copy was cut short; 0: whole
  const uint8_t* srcMac = nullptr;  // NFQA_HWADDR: 6 bytes, when the packet came over Ethernet
};

// Single-writer counters: the owning thread writes with relaxed load+store
// (a plain add), snapshots read them from any thread.
struct Counter {
  std::atomic<uint64_t> v{0};
  void Add(uint64_t n = 1) { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t Get() const { return v.load(std::memory_order_relaxed); }
};

struct EngineCounters {
  Counter packets;
  Counter bytes;
  Counter packets6;  // of packets, the IPv6 ones this host handles (it has IPv6)
  Counter byAction[static_cast<size_t>(Action::kCount)];
  Counter byParse[static_cast<size_t>(ParseResult::kCount)];
  Counter byNote[static_cast<size_t>(Note::kCount)];
  Counter newFlowsLocal;
  Counter newFlowsForwarded;
  std::vector<Counter> newFlowsByTarget;  // indexed by host id (local ones included)
  Counter csumFull;         // full TCP recomputes (partial checksum from the kernel)
  Counter csumIncremental;  // RFC 1624 updates
  Counter flowsExpired;
  Counter flowsClosed;      // moved to kReset by a plausible RST
  std::atomic<uint64_t> flowsByState[static_cast<size_t>(FlowState::kCount)] = {};
  std::atomic<uint64_t> remoteFlowsByState[static_cast<size_t>(FlowState::kCount)] = {};
  // Of flowsByState, those of the IPv6 table.
  std::atomic<uint64_t> flowsByState6[static_cast<size_t>(FlowState::kCount)] = {};
};

// A Maglev lookup table: slot -> host id. Built in TypeScript, read here.
using LookupTable = std::vector<uint16_t>;

class Engine {
 public:
  // At most this many host ids (a flow entry holds the target in a byte).
  static constexpr size_t kMaxHosts = 256;
  static constexpr uint16_t kNoHost = 0xffff;

  explicit Engine(EngineConfig config);

  // Decide what to do with one packet; may rewrite it in place.
  Outcome Process(uint8_t* buf, size_t len, const PacketMeta& meta, uint32_t nowMs);

  // The flow table as words, kFlowWords per flow, for a restart to pick up:
  // clientAddr, serviceAddr (network order), clientPort << 16 | servicePort,
  // target << 16 | state, the client's next sequence number, age in ms.
  static constexpr size_t kFlowWords = 6;
  std::vector<uint32_t> ExportFlows(uint32_t nowMs) const;
  // Re-inserts exported flows; skips any that do not fit this host's
  // configuration or have expired. Returns how many were taken.
  size_t ImportFlows(const uint32_t* words, size_t count, uint32_t nowMs);
  // The IPv6 table likewise, kFlowWords6 per flow: the client address (4
  // words as they lie in the packet), the service address (4), then as for
  // IPv4. Empty without IPv6.
  static constexpr size_t kFlowWords6 = 12;
  std::vector<uint32_t> ExportFlows6(uint32_t nowMs) const;
  size_t ImportFlows6(const uint32_t* words, size_t count, uint32_t nowMs);

  // The table also says which hosts are live: those it names.
  void SetLookupTable(std::shared_ptr<const LookupTable> table);
  // The cluster changed (a reload): every host's addresses, indexed by id,
  // 0 for none. This host's own must stay as they are; throws otherwise
  // (HostsProblem says why beforehand).
  // The IPv6 lists may be empty (no host has IPv6) or as long as the others.
  void SetHosts(std::vector<uint32_t> serviceAddr, std::vector<uint32_t> clusterAddr,
                std::vector<Ip6> serviceAddr6 = {}, std::vector<Ip6> clusterAddr6 = {});
  // Why SetHosts would refuse these lists for `config`, or null.
  static const char* HostsProblem(const EngineConfig& config, const std::vector<uint32_t>& serviceAddr,
                                  const std::vector<uint32_t>& clusterAddr, const std::vector<Ip6>& serviceAddr6 = {},
                                  const std::vector<Ip6>& clusterAddr6 = {});
  // Serve role: the MAC address of each host id, 6 bytes each (zeros: not
  // known); shorter lists leave the rest unknown.
  void SetPeerMacs(const std::vector<uint8_t>& macs);
  void SetDraining(bool draining) { draining_ = draining; }
  // Kernel modes: where new forwarded flows are announced (null: nowhere).
  // Owned by the caller, used on the engine's thread only.
  void SetHandoff(FlowHandoff* handoff) { handoff_ = handoff; }
  // Kernel modes: the mark that routes a packet to host `target`.
  uint32_t PeerMark(uint16_t target) const;
  // Load policy: what it decides on besides the flow table (weights, the
  // threshold, peers' reports, this host's load).
  LoadDecider& loadDecider() { return loadDecider_; }
  // Whether a 4-tuple still has a socket here (a TIME_WAIT the new
  // connection reuses): such a connection stays, whatever the policy says.
  // The load policy asks for every forward; the hash policy while one of
  // this host's TIME_WAITs may hold a 4-tuple its table now sends elsewhere
  // (WatchLocalSockets).
  using LocalSocketProbe = std::function<bool(const FlowKey&)>;
  using LocalSocketProbe6 = std::function<bool(const FlowKey6&)>;
  void SetLocalSocketProbe(LocalSocketProbe probe) { localSocket_ = std::move(probe); }
  void SetLocalSocketProbe6(LocalSocketProbe6 probe) { localSocket6_ = std::move(probe); }
  bool draining() const { return draining_; }
  // Hash policy: for the next kTimeWaitWatchMs, a forward first asks whether
  // the 4-tuple has a socket here. Called when this host may have served
  // connections its table sends elsewhere: at the start (with no daemon, the
  // rules served everything here), when the table or draining changes.
  void WatchLocalSockets(uint32_t nowMs);
  // Linux's TIME_WAIT (TCP_TIMEWAIT_LEN, fixed at 60 s), with a margin.
  static constexpr uint32_t kTimeWaitWatchMs = 65'000;
  // Visits `budget` slots of each table (both have the same capacity).
  size_t Sweep(size_t budget, uint32_t nowMs);
  // Flows in both tables: what the queue thread's idle tick and sweep are for.
  size_t FlowCount() const { return flows_.size() + (flows6_ ? flows6_->size() : 0); }

  const EngineConfig& config() const { return config_; }
  EngineCounters& counters() { return counters_; }
  const FlowTable& flows() const { return flows_; }
  // Null when this host has no IPv6 address.
  const FlowTable6* flows6() const { return flows6_.get(); }
  bool HasIpv6() const { return flows6_ != nullptr; }

  // The host the hash policy picks for a client (exposed for tests and bench).
  template <typename Addr>
  uint16_t HashTarget(const Addr& clientAddr, uint16_t clientPort) const;

 private:
  // Each family's addresses and table (Addr: uint32_t or Ip6).
  template <typename Addr>
  const std::vector<Addr>& ServiceAddrs() const;
  template <typename Addr>
  const std::vector<Addr>& ClusterAddrs() const;
  template <typename Addr>
  BasicFlowTable<Addr>& Table();
  // A host id names a host of this family (its service address is set).
  template <typename Addr>
  bool Known(size_t id) const {
    return id < ServiceAddrs<Addr>().size() && !IsNoAddress(ServiceAddrs<Addr>()[id]);
  }
  // Packets of this family can be sent to host `id`: it is in the list
  // with an address of this family, a cluster address among them.
  template <typename Addr>
  bool Reachable(size_t id) const {
    return Known<Addr>(id) && id < ClusterAddrs<Addr>().size() && !IsNoAddress(ClusterAddrs<Addr>()[id]);
  }

  template <typename Addr>
  Outcome ProcessFamily(uint8_t* buf, size_t len, const PacketMeta& meta, uint32_t nowMs);
  template <typename Addr>
  Outcome ProcessEntry(BasicTcpPacket<Addr>& p, bool csumNotReady, uint32_t nowMs);
  template <typename Addr>
  Outcome ProcessServe(BasicTcpPacket<Addr>& p, const PacketMeta& meta);
  template <typename Addr>
  Outcome ProcessIcmp(BasicIcmpError<Addr>& m, const PacketMeta& meta, uint32_t nowMs);
  template <typename Addr>
  Outcome Oversize(uint8_t* buf, size_t len, const PacketMeta& meta, uint32_t nowMs);
  Outcome Counted(Outcome out);
  template <typename Addr>
  Outcome IcmpAboutOwnSegment(BasicIcmpError<Addr>& m, uint32_t nowMs);
  template <typename Addr>
  Outcome IcmpFromPeer(BasicIcmpError<Addr>& m, size_t origin, const PacketMeta& meta);
  template <typename Addr>
  int HostOfServiceAddr(const Addr& addr) const;
  Note CheckPeerMac(size_t origin, const uint8_t* srcMac) const;
  template <typename Addr>
  Outcome NewFlow(BasicTcpPacket<Addr>& p, const BasicFlowKey<Addr>& key, int portIndex, bool csumNotReady, uint32_t nowMs);
  template <typename Addr>
  Outcome SynOnFlow(BasicTcpPacket<Addr>& p, const BasicFlowKey<Addr>& key, long index, int portIndex, bool csumNotReady,
                    uint32_t nowMs);
  template <typename Addr>
  Outcome NoFlow(BasicTcpPacket<Addr>& p, int portIndex, bool csumNotReady);
  template <typename Addr>
  Outcome Route(BasicTcpPacket<Addr>& p, uint16_t target, int portIndex, bool csumNotReady);
  template <typename Addr>
  bool KeptForLocalSocket(const BasicFlowKey<Addr>& key) const;
  static EngineConfig Validated(EngineConfig config);
  static Note NoteFor(InsertResult r);
  int ServicePortIndex(uint16_t port) const;
  template <typename Addr>
  void Rewrite(BasicTcpPacket<Addr>& p, const Addr& daddr, uint16_t dport, bool csumNotReady);
  void PublishFlowCounts();
  void CountNewFlow(uint16_t target);
  template <typename Addr>
  void HandOff(const BasicFlowKey<Addr>& key, uint16_t target);
  template <typename Addr>
  std::vector<uint32_t> Export(const BasicFlowTable<Addr>& table, uint32_t nowMs) const;
  template <typename Addr>
  size_t Import(const uint32_t* words, size_t count, uint32_t nowMs);

  EngineConfig config_;
  SipKey hashKey_;
  FlowTable flows_;
  std::unique_ptr<FlowTable6> flows6_;
  std::shared_ptr<const LookupTable> lookup_;
  std::vector<bool> live_;  // by host id; empty: no table yet, all count as live
  std::vector<bool> live6_;  // of those, the hosts with IPv6 addresses: the candidates for an IPv6 connection
  template <typename Addr>
  const std::vector<bool>& LiveFor() const {
    if constexpr (std::is_same_v<Addr, uint32_t>) {
      return live_;
    } else {
      return live6_;
    }
  }
  bool IsLive(uint16_t host) const { return live_.empty() || (host < live_.size() && live_[host]); }
  bool draining_ = false;
  // Hash policy: until when a forward asks for a local socket (WatchLocalSockets).
  bool watchingLocalSockets_ = false;
  uint32_t watchLocalSocketsUntilMs_ = 0;
  bool WatchingLocalSockets(uint32_t nowMs);
  std::vector<uint8_t> peerMacs_;  // 6 bytes per host id
  FlowHandoff* handoff_ = nullptr;
  LoadDecider loadDecider_;
  LocalSocketProbe localSocket_;
  LocalSocketProbe6 localSocket6_;
  EngineCounters counters_;
};

template <>
inline const std::vector<uint32_t>& Engine::ServiceAddrs<uint32_t>() const { return config_.serviceAddr; }
template <>
inline const std::vector<Ip6>& Engine::ServiceAddrs<Ip6>() const { return config_.serviceAddr6; }
template <>
inline const std::vector<uint32_t>& Engine::ClusterAddrs<uint32_t>() const { return config_.clusterAddr; }
template <>
inline const std::vector<Ip6>& Engine::ClusterAddrs<Ip6>() const { return config_.clusterAddr6; }
template <>
inline FlowTable& Engine::Table<uint32_t>() { return flows_; }
template <>
inline FlowTable6& Engine::Table<Ip6>() { return *flows6_; }

}  // namespace dpr
