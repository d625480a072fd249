// One NFQUEUE consumer served by one native thread: receive many packets per
// system call, run each through the Engine, send all verdicts of a batch in one
// system call. An entry host's consumer reads two queue numbers on one socket
// (new connections with fail-open, later packets without), so one thread and
// one flow table see every packet of a flow. Node-API stays out of this file;
// new-flow decisions leave through a callback and come back through Decide().
//
// The thread's loop: wait (poll) -> housekeeping (control messages from the
// control plane, decision deadlines, a slice of the flow-table sweep) ->
// receive, bounded in batches and time, so housekeeping and the stop flag are
// never more than a couple of milliseconds away, however hard the input
// floods -> again. On stop: a last drain, then unbind.
#pragma once
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine.h"
#include "ipset_writer.h"
#include "nfq_socket.h"
#include "sock_diag.h"

struct nlmsghdr;

namespace dpr {

struct QueueOptions {
  uint16_t queueNum = 0;
  // Entry hosts: the queue for packets of flows that may be forwarded (not
  // SYNs), bound without fail-open: a full queue drops them, and TCP sends
  // them again, where fail-open would hand them to the local stack, which
  // resets a forwarded connection. -1: none.
  int32_t flowsQueueNum = -1;
  uint32_t maxLen = 4096;          // packets the kernel holds per queue number
  uint32_t rcvBufBytes = 8 << 20;  // SO_RCVBUFFORCE
  uint32_t sndBufBytes = 2 << 20;  // SO_SNDBUFFORCE (the kernel doubles it)
  uint32_t batchSize = 64;         // messages per recvmmsg
  uint32_t decisionTimeoutMs = 50; // load policy: serve locally past this
  // Kernel modes, entry role: the prefix of the per-peer ipsets new
  // forwarded flows are written to (IpsetWriter). Empty: none.
  std::string ipsetPrefix;
};

struct DecisionRequest {
  uint32_t token;
  FlowKey key;
  uint16_t hashTarget;  // the host the Maglev table names for it: the load policy's first choice
};

struct QueueCounters {
  Counter batches;
  Counter batchPackets;  // sum of batch sizes, for the mean
  Counter batchMax;
  Counter recvErrors;
  Counter enobufs;
  Counter eintr;
  Counter verdictErrors;  // NLMSG_ERROR answers to our verdicts
  Counter decisionsRequested;
  Counter decisionsAnswered;
  Counter decisionsTimedOut;
  Counter decisionsLate;     // answers for flows that had timed out already
  Counter decisionsDropped;  // requests JavaScript's queue had no room for (served locally at the deadline)
  Counter decisionsKeptForLocalSocket;  // load policy: forward overridden, the 4-tuple has a local socket
  Counter sockDiagErrors;
  Counter roundsCut;  // receive rounds that stopped on their batch or time bound with input still waiting
  Counter flowsPackets;  // of batchPackets, those from the flows queue
  // Decisions received, by the host they named (late ones and overridden ones
  // too): with the flow table's open counts, the load policy tells which of
  // its sends the data path has not applied yet.
  std::vector<Counter> decisionsByTarget = std::vector<Counter>(Engine::kMaxHosts);
};

class Queue {
 public:
  // Hands a batch of new flows to the policy; false when it could not take them.
  using DecisionSink = std::function<bool(std::vector<DecisionRequest>&&)>;

  Queue(QueueOptions options, EngineConfig engine, DecisionSink sink);
  ~Queue();
  // Only before Start().
  void SetSink(DecisionSink sink) { sink_ = std::move(sink); }

  // Bind the queue(s) and start the thread. Throws QueueError.
  void Start();
  // Give every held packet a verdict, drain, unbind, join the thread. Idempotent.
  void Stop();

  void SetLookupTable(std::shared_ptr<const LookupTable> table);
  // A reload changed the hosts (Engine::SetHosts); applied between two batches.
  void SetHosts(std::vector<uint32_t> serviceAddr, std::vector<uint32_t> clusterAddr);
  // Serve role: each host id's MAC address, 6 bytes each (zeros: unknown).
  void SetPeerMacs(std::vector<uint8_t> macs);
  // A copy of the flow table (see Engine::ExportFlows); safe while running:
  // the queue thread makes it between two receive rounds.
  std::vector<uint32_t> ExportFlows();
  // Only before Start(): throws QueueError otherwise.
  size_t ImportFlows(const uint32_t* words, size_t count);
  void SetDraining(bool draining);
  // Answers from the policy for tokens handed to the sink.
  void Decide(const std::vector<uint32_t>& tokens, const std::vector<uint16_t>& targets);

  bool running() const { return running_.load(); }
  const QueueCounters& counters() const { return counters_; }
  const SocketCounters& socketCounters() const { return nfq_.counters(); }
  size_t sendLimit() const { return nfq_.sendLimit(); }
  EngineCounters& engineCounters() { return engine_.counters(); }
  const Engine& engine() const { return engine_; }
  // For each host id below `hosts`: [open flows it serves for us, decisions
  // received naming it], into out[2 * id], out[2 * id + 1]. Any thread.
  void ForwardState(double* out, size_t hosts) const;
  const QueueOptions& options() const { return options_; }
  // Kernel modes: the ipset writer's counters; null without one.
  const IpsetCounters* ipsetCounters() const { return ipset_ ? &ipset_->counters() : nullptr; }

 private:
  struct Held {
    uint32_t token;
    uint32_t packetId;
    uint16_t queueNum;
    uint32_t deadlineMs;
    uint32_t packetMark;
    bool csumNotReady;
    FlowKey key;
    std::vector<uint8_t> bytes;
  };

  void Run();
  int WaitTimeoutMs(uint32_t nowMs) const;
  void WaitForWork(int timeoutMs);
  void Housekeeping(uint32_t nowMs);
  void ReceiveRound();
  unsigned ReceiveBatch();
  void ShutdownDrain();
  void HandleMessage(const ::nlmsghdr* nlh, uint32_t nowMs, std::vector<DecisionRequest>* asks);
  void Answer(uint16_t queue, uint32_t id, const Outcome& o, uint32_t packetMark, const uint8_t* pkt, size_t len);
  void ApplyControl(uint32_t nowMs);
  void ApplyDecision(uint32_t token, uint16_t target, uint32_t nowMs);
  void ExpireHeld(uint32_t nowMs);
  void SweepSlice(uint32_t nowMs);
  void ReleaseAllHeld();
  void Wake();

  QueueOptions options_;
  // What SetHosts checks against, fixed at construction: the engine's own
  // copy belongs to the queue thread.
  EngineConfig fixed_;
  Engine engine_;
  DecisionSink sink_;
  QueueCounters counters_;
  NfqSocket nfq_;
  uint32_t ownMarkBits_;
  std::unique_ptr<IpsetWriter> ipset_;
  void FlushKernel() {
    if (ipset_) ipset_->Flush();
  }

  int wakeFd_ = -1;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stopping_{false};

  std::vector<std::vector<uint8_t>> recvBufs_;
  std::vector<mmsghdr> recvMsgs_;
  std::vector<iovec> recvIovs_;

  LocalSockets localSockets_;
  std::unordered_map<uint32_t, Held> held_;  // by token
  std::deque<uint32_t> heldOrder_;           // tokens by deadline (one timeout for all)
  uint32_t nextToken_ = 1;
  uint32_t lastSweepMs_ = 0;
  uint64_t sweepCredit_ = 0;

  // Control plane -> queue thread, guarded by mutex_, picked up at each housekeeping.
  std::mutex mutex_;
  std::atomic<bool> controlDirty_{false};
  std::shared_ptr<const LookupTable> pendingTable_;
  bool tableChanged_ = false;
  std::vector<uint8_t> pendingMacs_;
  bool macsChanged_ = false;
  bool pendingDraining_ = false;
  bool drainingChanged_ = false;
  std::vector<uint32_t> pendingService_;
  std::vector<uint32_t> pendingCluster_;
  bool hostsChanged_ = false;
  std::vector<std::pair<uint32_t, uint16_t>> pendingDecisions_;
  bool exportRequested_ = false;
  bool exportReady_ = false;
  std::vector<uint32_t> exported_;
  std::condition_variable exportDone_;
};

uint32_t MonotonicMs();

}  // namespace dpr
