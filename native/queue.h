// One NFQUEUE queue served by one native thread: receive many packets per
// system call, run each through the Engine, send all verdicts of a batch in one
// system call. Node-API stays out of this file; new-flow decisions leave
// through a callback and come back through Decide().
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <unordered_map>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine.h"
#include "sock_diag.h"

struct nlmsghdr;

namespace dpr {

struct QueueOptions {
  uint16_t queueNum = 0;
  uint32_t maxLen = 4096;         // packets the kernel holds for us before fail-open
  uint32_t rcvBufBytes = 8 << 20;  // SO_RCVBUFFORCE
  uint32_t batchSize = 64;        // messages per recvmmsg
  uint32_t decisionTimeoutMs = 50;  // load policy: serve locally past this
};

// An error with the failing step and errno; the binding turns it into the
// TypeScript DprNativeError with `code` and `errno`.
struct QueueError : std::runtime_error {
  QueueError(std::string code, int err, const std::string& what)
      : std::runtime_error(what), code(std::move(code)), errnum(err) {}
  std::string code;
  int errnum;
};

struct DecisionRequest {
  uint32_t token;
  FlowKey key;
};

struct QueueCounters {
  Counter batches;
  Counter batchPackets;  // sum of batch sizes, for the mean
  Counter batchMax;
  Counter recvErrors;
  Counter enobufs;
  Counter eintr;
  Counter sendErrors;
  Counter verdictErrors;  // NLMSG_ERROR answers to our verdicts
  Counter decisionsRequested;
  Counter decisionsAnswered;
  Counter decisionsTimedOut;
  Counter decisionsLate;   // answers for flows that had timed out already
  Counter startupAccepted;  // packets that arrived while binding
  Counter decisionsKeptForLocalSocket;  // load policy: forward overridden, the 4-tuple has a local socket
  Counter sockDiagErrors;
};

class Queue {
 public:
  using DecisionSink = std::function<void(std::vector<DecisionRequest>&&)>;

  Queue(QueueOptions options, EngineConfig engine, DecisionSink sink);
  ~Queue();

  // Bind the queue and start the thread. Throws QueueError.
  void Start();
  // Give every held packet a verdict, unbind, join the thread. Idempotent.
  void Stop();

  void SetLookupTable(std::shared_ptr<const LookupTable> table);
  // A reload changed the hosts (Engine::SetHosts); applied between two batches.
  void SetHosts(std::vector<uint32_t> serviceAddr, std::vector<uint32_t> clusterAddr);
  // A copy of the flow table (see Engine::ExportFlows); safe while running:
  // the queue thread makes it between two batches.
  std::vector<uint32_t> ExportFlows();
  // Only before Start(): throws QueueError otherwise.
  size_t ImportFlows(const uint32_t* words, size_t count);
  void SetDraining(bool draining);
  // Answers from the policy for tokens handed to the sink.
  void Decide(const std::vector<uint32_t>& tokens, const std::vector<uint16_t>& targets);

  bool running() const { return running_.load(); }
  const QueueCounters& counters() const { return counters_; }
  EngineCounters& engineCounters() { return engine_.counters(); }
  const Engine& engine() const { return engine_; }
  const QueueOptions& options() const { return options_; }

 private:
  struct Held {
    uint32_t token;
    uint32_t packetId;
    uint32_t deadlineMs;
    bool csumNotReady;
    FlowKey key;
    std::vector<uint8_t> bytes;
  };

  void Bind();
  void SendConfig(const char* step, void (*fill)(::nlmsghdr*, const Queue*));
  void Run();
  void ProcessBatch(unsigned count);
  void HandleMessage(const ::nlmsghdr* nlh, uint32_t nowMs, std::vector<DecisionRequest>* asks);
  void Verdict(uint32_t id, uint32_t verdict, uint32_t mark, const uint8_t* pkt, size_t len);
  void FlushVerdicts();
  void ApplyControl(uint32_t nowMs);
  void ApplyDecisions(uint32_t nowMs);
  void ExpireHeld(uint32_t nowMs);
  void ReleaseAllHeld();
  void Wake();

  QueueOptions options_;
  // What SetHosts checks against, fixed at construction: the engine's own
  // copy belongs to the queue thread.
  EngineConfig fixed_;
  Engine engine_;
  DecisionSink sink_;
  QueueCounters counters_;

  int fd_ = -1;
  int wakeFd_ = -1;
  uint32_t portId_ = 0;
  uint32_t seq_ = 0;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stopping_{false};

  std::vector<std::vector<uint8_t>> recvBufs_;
  std::vector<uint8_t> sendBuf_;
  size_t sendLen_ = 0;

  LocalSockets localSockets_;
  std::unordered_map<uint32_t, Held> held_;  // by token
  std::deque<uint32_t> heldOrder_;           // tokens by deadline (one timeout for all)
  uint32_t nextToken_ = 1;

  // Control plane -> queue thread, guarded by mutex_, picked up once per batch.
  std::mutex mutex_;
  std::atomic<bool> controlDirty_{false};
  std::shared_ptr<const LookupTable> pendingTable_;
  bool tableChanged_ = false;
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
