// The per-packet logic shared by the queue threads, the packet-fixture tests
// and the fuzzer: parse, look up, decide, rewrite, choose a verdict. No I/O and
// no Node-API here, so it builds alone under libFuzzer and sanitizers.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "flow_table.h"
#include "packet.h"

namespace dpr {

enum class Role : uint8_t { kEntry, kServe };

// Host ids are 0..255 (lib/config-schema.ts): counters by host are sized for
// all of them, so a reload that adds a host never resizes what other threads read.
constexpr size_t kMaxHosts = 256;

// TTL of a rewritten packet as the entry host hands it back to the kernel.
constexpr uint8_t kForwardTtl = 255;
enum class Policy : uint8_t { kHash, kLoad };

struct EngineConfig {
  Role role = Role::kEntry;
  Policy policy = Policy::kHash;
  uint16_t self = 0;
  // Indexed by host id; 0 marks an id that is not in the cluster. Network order.
  std::vector<uint32_t> serviceAddr;
  std::vector<uint32_t> clusterAddr;
  std::vector<uint16_t> servicePorts;  // host order
  uint16_t peerPortBase = 0;
  uint32_t forwardMark = 0;  // on rewritten entry packets: the chain untracks and accepts them
  uint32_t serveMark = 0;    // on restored packets at the serving host: the nat rule DNATs them
  size_t maxFlows = 1 << 20;
  size_t maxEmbryonic = 1 << 18;
  FlowTimeouts timeouts;
};

enum class Action : uint8_t {
  kAccept,   // NF_ACCEPT, packet unchanged, no mark
  kForward,  // NF_REPEAT, rewritten to the serving host, forwardMark
  kRestore,  // NF_ACCEPT, rewritten back to the entry host's service address, serveMark
  kDrop,     // NF_DROP (a duplicate SYN while its first copy waits for a decision)
  kDefer,    // hold: the policy must decide (load policy, new flow)
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
  kPendingDuplicate,
  kDraining,      // entry: a new flow served locally because this host drains
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
  FlowKey key{};  // valid when action == kDefer
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
  Counter byAction[static_cast<size_t>(Action::kCount)];
  Counter byParse[static_cast<size_t>(ParseResult::kCount)];
  Counter byNote[static_cast<size_t>(Note::kCount)];
  Counter newFlowsLocal;
  Counter newFlowsForwarded;
  std::vector<Counter> newFlowsByTarget;  // indexed by host id (local ones included)
  Counter csumFull;         // full TCP recomputes (partial checksum from the kernel)
  Counter csumIncremental;  // RFC 1624 updates
  Counter flowsExpired;
  Counter flowsClosed;      // removed on RST
  std::atomic<uint64_t> flowsByState[static_cast<size_t>(FlowState::kCount)] = {};
  std::atomic<uint64_t> remoteFlowsByState[static_cast<size_t>(FlowState::kCount)] = {};
};

// A Maglev lookup table: slot -> host id. Built in TypeScript, read here.
using LookupTable = std::vector<uint16_t>;

class Engine {
 public:
  explicit Engine(EngineConfig config);

  // Decide what to do with one packet; may rewrite it in place.
  Outcome Process(uint8_t* buf, size_t len, bool csumNotReady, uint32_t nowMs);
  // Process a packet that was deferred and counted once already.
  Outcome Replay(uint8_t* buf, size_t len, bool csumNotReady, uint32_t nowMs);

  // The policy's answer for a deferred flow: install it. Processing the held
  // packet again then applies it. False when the flow is gone (expired).
  bool Resolve(const FlowKey& key, uint16_t target, uint32_t nowMs);

  // The flow table as words, kFlowWords per flow, for a restart to pick up:
  // clientAddr, serviceAddr (network order), clientPort << 16 | servicePort,
  // target << 16 | state, age in ms. Pending flows are left out.
  static constexpr size_t kFlowWords = 5;
  std::vector<uint32_t> ExportFlows(uint32_t nowMs) const;
  // Re-inserts exported flows; skips any that do not fit this host's
  // configuration or have expired. Returns how many were taken.
  size_t ImportFlows(const uint32_t* words, size_t count, uint32_t nowMs);

  // The table also says which hosts are live: those it names.
  void SetLookupTable(std::shared_ptr<const LookupTable> table);
  // The cluster changed (a reload): every host's addresses, indexed by id,
  // 0 for none. This host's own must stay as they are; throws otherwise
  // (HostsProblem says why beforehand).
  void SetHosts(std::vector<uint32_t> serviceAddr, std::vector<uint32_t> clusterAddr);
  // Why SetHosts would refuse these lists for `config`, or null.
  static const char* HostsProblem(const EngineConfig& config, const std::vector<uint32_t>& serviceAddr,
                                  const std::vector<uint32_t>& clusterAddr);
  void SetDraining(bool draining) { draining_ = draining; }
  size_t Sweep(size_t budget, uint32_t nowMs);

  const EngineConfig& config() const { return config_; }
  EngineCounters& counters() { return counters_; }
  const FlowTable& flows() const { return flows_; }

  // The host the hash policy picks for a client (exposed for tests and bench).
  uint16_t HashTarget(uint32_t clientAddr, uint16_t clientPort) const;

 private:
  Outcome Decide(uint8_t* buf, size_t len, bool csumNotReady, uint32_t nowMs);
  Outcome ProcessEntry(TcpPacket& p, bool csumNotReady, uint32_t nowMs);
  Outcome ProcessServe(TcpPacket& p, bool csumNotReady);
  Outcome NewFlow(TcpPacket& p, const FlowKey& key, int portIndex, bool csumNotReady, uint32_t nowMs);
  Outcome Route(TcpPacket& p, uint16_t target, int portIndex, bool csumNotReady);
  int ServicePortIndex(uint16_t port) const;
  void Rewrite(TcpPacket& p, uint32_t daddr, uint16_t dport, bool csumNotReady);
  void SetForwardTtl(TcpPacket& p);
  void PublishFlowCounts();
  void CountNewFlow(uint16_t target);

  EngineConfig config_;
  FlowTable flows_;
  std::shared_ptr<const LookupTable> lookup_;
  std::vector<bool> live_;  // by host id; empty: no table yet, all count as live
  bool IsLive(uint16_t host) const { return live_.empty() || (host < live_.size() && live_[host]); }
  bool draining_ = false;
  EngineCounters counters_;
};

}  // namespace dpr
