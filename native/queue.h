// One NFQUEUE consumer served by one native thread: receive many packets per
// system call, run each through the Engine, send all verdicts of a batch in one
// system call. An entry host's consumer reads two queue numbers on one socket
// (new connections with fail-open, later packets without), so one thread and
// one flow table see every packet of a flow. Node-API stays out of this file.
// Both policies decide new flows in this thread (the load policy on what the
// heartbeat thread publishes, native/load_decider.h): no packet waits for
// JavaScript.
//
// The thread's loop: wait (poll) -> housekeeping (control messages from the
// control plane, a slice of the flow-table sweep) ->
// receive, bounded in batches and time, so housekeeping and the stop flag are
// never more than a couple of milliseconds away, however hard the input
// floods -> again. On stop: a last drain, then unbind.
#pragma once
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
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
  // Kernel modes, entry role: the prefix of the per-peer ipsets new
  // forwarded flows are written to (IpsetWriter). Empty: none.
  std::string ipsetPrefix;
  // The same for IPv6 flows (`<ipsetPrefix6>to<id>`, family inet6). Empty: none.
  std::string ipsetPrefix6;
};

struct QueueCounters {
  Counter batches;
  Counter batchPackets;  // sum of batch sizes, for the mean
  Counter batchMax;
  Counter recvErrors;
  Counter enobufs;
  Counter eintr;
  Counter verdictErrors;  // NLMSG_ERROR answers to our verdicts
  Counter sockDiagErrors;  // load policy: looking up a 4-tuple's local socket failed
  Counter roundsCut;  // receive rounds that stopped on their batch or time bound with input still waiting
  Counter flowsPackets;  // of batchPackets, those from the flows queue
};

class Queue {
 public:
  Queue(QueueOptions options, EngineConfig engine);
  ~Queue();

  // Bind the queue(s) and start the thread. Throws QueueError.
  void Start();
  // Drain, unbind, join the thread. Idempotent.
  void Stop();

  void SetLookupTable(std::shared_ptr<const LookupTable> table);
  // A reload changed the hosts (Engine::SetHosts); applied between two batches.
  void SetHosts(std::vector<uint32_t> serviceAddr, std::vector<uint32_t> clusterAddr, std::vector<Ip6> serviceAddr6 = {},
                std::vector<Ip6> clusterAddr6 = {});
  // Serve role: each host id's MAC address, 6 bytes each (zeros: unknown).
  void SetPeerMacs(std::vector<uint8_t> macs);
  // A copy of the flow table (see Engine::ExportFlows); safe while running:
  // the queue thread makes it between two receive rounds.
  // `family` 4: the IPv4 table (Engine::ExportFlows); 6: the IPv6 one (ExportFlows6).
  std::vector<uint32_t> ExportFlows(int family = 4);
  // Only before Start(): throws QueueError otherwise.
  size_t ImportFlows(const uint32_t* words, size_t count, int family = 4);
  void SetDraining(bool draining);
  // Load policy: hosts[].weight by host id, and load.threshold.
  void SetWeights(std::vector<uint8_t> weights);
  void SetLoadThreshold(uint32_t threshold);
  // Load policy, any thread: this host's load as the control plane counted
  // it, and the sockets-in-use count read with it (OwnLoad::Calibrate).
  void CalibrateLoad(uint32_t value, int64_t inUse);
  // Where the heartbeat thread publishes peers' reports for this queue's decisions.
  std::shared_ptr<PeerLoadBoard> loadBoard() const { return board_; }

  bool running() const { return running_.load(); }
  const QueueCounters& counters() const { return counters_; }
  const SocketCounters& socketCounters() const { return nfq_.counters(); }
  size_t sendLimit() const { return nfq_.sendLimit(); }
  EngineCounters& engineCounters() { return engine_.counters(); }
  const Engine& engine() const { return engine_; }
  const QueueOptions& options() const { return options_; }
  // Kernel modes: the ipset writer's counters; null without one.
  const IpsetCounters* ipsetCounters() const { return ipset_ ? &ipset_->counters() : nullptr; }

 private:
  void Run();
  int WaitTimeoutMs() const;
  void WaitForWork(int timeoutMs);
  void Housekeeping(uint32_t nowMs);
  void ReceiveRound();
  unsigned ReceiveBatch();
  void ShutdownDrain();
  void HandleMessage(const ::nlmsghdr* nlh, uint32_t nowMs);
  void Answer(uint16_t queue, uint32_t id, const Outcome& o, uint32_t packetMark, const uint8_t* pkt, size_t len);
  void Control();
  void ApplyControl(uint32_t nowMs);
  void SweepSlice(uint32_t nowMs);
  void Wake();
  template <typename Key>
  bool HasLocalSocket(const Key& key);

  QueueOptions options_;
  // What SetHosts checks against, fixed at construction: the engine's own
  // copy belongs to the queue thread.
  EngineConfig fixed_;
  Engine engine_;
  std::shared_ptr<PeerLoadBoard> board_ = std::make_shared<PeerLoadBoard>();
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
  std::vector<Ip6> pendingService6_;
  std::vector<Ip6> pendingCluster6_;
  bool hostsChanged_ = false;
  std::vector<uint8_t> pendingWeights_;
  bool weightsChanged_ = false;
  uint32_t pendingThreshold_ = 0;
  bool thresholdChanged_ = false;
  bool exportRequested_ = false;
  bool exportReady_ = false;
  int exportFamily_ = 4;
  std::vector<uint32_t> exported_;
  std::condition_variable exportDone_;
  std::mutex exportMutex_;
};

uint32_t MonotonicMs();

}  // namespace dpr
