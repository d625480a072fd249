#include "queue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

extern "C" {
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
}

#include <algorithm>
#include <chrono>
#include <cstring>
#include <system_error>

namespace dpr {

namespace {

constexpr size_t kRecvBufBytes = 0xffff + 4096;
// A receive round ends after this many full batches or this long, whichever
// comes first, and housekeeping runs: at 64 packets a batch and ~1-2 µs a
// packet, about 1-2 ms.
constexpr unsigned kMaxBatchesPerRound = 16;
constexpr uint64_t kRoundBudgetUs = 2000;
// The sweep visits the whole table once in this long, in slices; it is what
// takes expired flows out of the counts (drain waits on them).
constexpr uint64_t kSweepPeriodMs = 15000;
// With flows to sweep, an idle thread wakes this often (no more); with none
// and nothing held, it sleeps until a packet or a control message.
constexpr int kIdleTickMs = 250;
constexpr int kShutdownBatches = 64;

uint64_t MonotonicUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000ULL + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

}  // namespace

uint32_t MonotonicMs() { return static_cast<uint32_t>(MonotonicUs() / 1000); }

Queue::Queue(QueueOptions options, EngineConfig engine)
    : options_(options), fixed_(engine), engine_(std::move(engine)) {
  if (options_.batchSize == 0 || options_.batchSize > 1024) {
    throw QueueError("EINVAL", EINVAL, "batchSize must be within 1..1024");
  }
  if (options_.flowsQueueNum == options_.queueNum) {
    throw QueueError("EINVAL", EINVAL, "the flows queue must differ from the queue");
  }
  if (options_.flowsQueueNum >= 0 && engine_.config().role != Role::kEntry) {
    throw QueueError("EINVAL", EINVAL, "only an entry queue has a flows queue");
  }
  ownMarkBits_ = engine_.config().forwardMark | engine_.config().serveMark | engine_.config().peerMarkMask;
  if (engine_.config().role == Role::kEntry) {
    engine_.loadDecider().SetBoard(board_);
    engine_.SetLocalSocketProbe([this](const FlowKey& key) { return HasLocalSocket(key); });
    engine_.SetLocalSocketProbe6([this](const FlowKey6& key) { return HasLocalSocket(key); });
  }
  if (!options_.ipsetPrefix.empty()) {
    if (engine_.config().role != Role::kEntry || !engine_.config().kernelForward) {
      throw QueueError("EINVAL", EINVAL, "only an entry queue in a kernel mode writes ipsets");
    }
    try {
      ipset_ = std::make_unique<IpsetWriter>(options_.ipsetPrefix, options_.ipsetPrefix6);
    } catch (const std::system_error& err) {
      throw QueueError("EIPSET", err.code().value(), err.what());
    }
    engine_.SetHandoff(ipset_.get());
  }
}

Queue::~Queue() { Stop(); }

void Queue::Start() {
  if (running_.load()) throw QueueError("EALREADY", EALREADY, "queue already started");
  recvBufs_.assign(options_.batchSize, std::vector<uint8_t>(kRecvBufBytes));
  recvMsgs_.assign(options_.batchSize, mmsghdr{});
  recvIovs_.assign(options_.batchSize, iovec{});
  wakeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd_ < 0) throw QueueError("EEVENTFD", errno, std::string("eventfd: ") + std::strerror(errno));
  std::vector<QueueBinding> queues{{options_.queueNum, true}};
  if (options_.flowsQueueNum >= 0) queues.push_back({static_cast<uint16_t>(options_.flowsQueueNum), false});
  try {
    nfq_.Open(queues, options_.maxLen, options_.rcvBufBytes, options_.sndBufBytes);
  } catch (...) {
    close(wakeFd_);
    wakeFd_ = -1;
    throw;
  }
  stopping_ = false;
  lastSweepMs_ = MonotonicMs();
  // Before this daemon, the rules' fail-open served every connection here.
  engine_.WatchLocalSockets(lastSweepMs_);
  running_ = true;
  thread_ = std::thread([this] { Run(); });
}

void Queue::Stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  Wake();
  thread_.join();
  running_ = false;
  close(wakeFd_);
  wakeFd_ = -1;
  // What the thread left (an export asked for as it stopped: its caller,
  // perhaps on another thread, gets the final table instead of a timeout).
  ApplyControl(MonotonicMs());
}

void Queue::Wake() {
  if (wakeFd_ < 0) return;
  const uint64_t one = 1;
  ssize_t r = write(wakeFd_, &one, sizeof one);
  (void)r;  // EAGAIN: the counter is already non-zero, the thread will wake
}

// ---------------------------------------------------------------- control

void Queue::SetLookupTable(std::shared_ptr<const LookupTable> table) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pendingTable_ = std::move(table);
    tableChanged_ = true;
  }
  Control();
}

template <typename Key>
bool Queue::HasLocalSocket(const Key& key) {
  const uint64_t errors = localSockets_.errors();
  const bool exists = localSockets_.Exists(key);
  counters_.sockDiagErrors.Add(localSockets_.errors() - errors);
  return exists;
}

void Queue::SetHosts(std::vector<uint32_t> serviceAddr, std::vector<uint32_t> clusterAddr, std::vector<Ip6> serviceAddr6,
                     std::vector<Ip6> clusterAddr6) {
  // Checked here, in the caller's thread, so a bad list throws to JavaScript
  // instead of being dropped in the queue thread.
  if (const char* problem = Engine::HostsProblem(fixed_, serviceAddr, clusterAddr, serviceAddr6, clusterAddr6)) {
    throw QueueError("EINVAL", EINVAL, problem);
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pendingService_ = std::move(serviceAddr);
    pendingCluster_ = std::move(clusterAddr);
    pendingService6_ = std::move(serviceAddr6);
    pendingCluster6_ = std::move(clusterAddr6);
    hostsChanged_ = true;
  }
  Control();
}

void Queue::SetPeerMacs(std::vector<uint8_t> macs) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pendingMacs_ = std::move(macs);
    macsChanged_ = true;
  }
  Control();
}

void Queue::SetDraining(bool draining) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pendingDraining_ = draining;
    drainingChanged_ = true;
  }
  Control();
}

std::vector<uint32_t> Queue::ExportFlows(int family) {
  // One export at a time: callers may be on different threads (exportFlowsAsync).
  std::lock_guard<std::mutex> one(exportMutex_);
  if (!running_.load()) return family == 6 ? engine_.ExportFlows6(MonotonicMs()) : engine_.ExportFlows(MonotonicMs());
  std::unique_lock<std::mutex> lock(mutex_);
  exportRequested_ = true;
  exportFamily_ = family;
  exportReady_ = false;
  controlDirty_ = true;
  Wake();
  // Bounded: a stuck queue thread must not hang the control plane.
  if (!exportDone_.wait_for(lock, std::chrono::seconds(5), [this] { return exportReady_; })) {
    throw QueueError("ETIMEDOUT", ETIMEDOUT, "the queue thread did not answer a flow-table export");
  }
  return std::move(exported_);
}

size_t Queue::ImportFlows(const uint32_t* words, size_t count, int family) {
  if (running_.load()) throw QueueError("EBUSY", EBUSY, "flows can only be imported before the queue starts");
  const size_t taken = family == 6 ? engine_.ImportFlows6(words, count, MonotonicMs()) : engine_.ImportFlows(words, count, MonotonicMs());
  FlushKernel();
  return taken;
}

void Queue::SetWeights(std::vector<uint8_t> weights) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pendingWeights_ = std::move(weights);
    weightsChanged_ = true;
  }
  Control();
}

void Queue::SetLoadThreshold(uint32_t threshold) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pendingThreshold_ = threshold;
    thresholdChanged_ = true;
  }
  Control();
}

void Queue::CalibrateLoad(uint32_t value, int64_t inUse) { engine_.loadDecider().own().Calibrate(value, inUse); }

// A control change is applied by the queue thread at its next housekeeping,
// or here and now if it does not run yet (nobody else touches the engine then).
void Queue::Control() {
  controlDirty_ = true;
  if (!running_.load()) {
    ApplyControl(MonotonicMs());
  } else {
    Wake();
  }
}

void Queue::ApplyControl(uint32_t nowMs) {
  if (!controlDirty_.exchange(false)) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (tableChanged_) {
      engine_.SetLookupTable(std::move(pendingTable_));
      engine_.WatchLocalSockets(nowMs);
      tableChanged_ = false;
    }
    if (macsChanged_) {
      engine_.SetPeerMacs(pendingMacs_);
      macsChanged_ = false;
    }
    if (drainingChanged_) {
      engine_.SetDraining(pendingDraining_);
      engine_.WatchLocalSockets(nowMs);
      drainingChanged_ = false;
    }
    if (hostsChanged_) {
      engine_.SetHosts(std::move(pendingService_), std::move(pendingCluster_), std::move(pendingService6_),
                       std::move(pendingCluster6_));
      hostsChanged_ = false;
    }
    if (weightsChanged_) {
      engine_.loadDecider().SetWeights(std::move(pendingWeights_));
      weightsChanged_ = false;
    }
    if (thresholdChanged_) {
      engine_.loadDecider().SetThreshold(pendingThreshold_);
      thresholdChanged_ = false;
    }
    if (exportRequested_) {
      exported_ = exportFamily_ == 6 ? engine_.ExportFlows6(nowMs) : engine_.ExportFlows(nowMs);
      exportRequested_ = false;
      exportReady_ = true;
      exportDone_.notify_all();
    }
  }
}

// A slice of the sweep in proportion to the time since the last one, so the
// whole table is visited every kSweepPeriodMs whether the thread wakes 4 times
// a second (idle) or 1000 (a flood).
void Queue::SweepSlice(uint32_t nowMs) {
  const uint64_t elapsed = static_cast<uint32_t>(nowMs - lastSweepMs_);
  lastSweepMs_ = nowMs;
  const uint64_t capacity = engine_.flows().capacity();  // the IPv6 table's too
  if (engine_.FlowCount() == 0) {
    sweepCredit_ = 0;
  } else {
    sweepCredit_ = std::min(sweepCredit_ + capacity * elapsed, capacity * kSweepPeriodMs);
  }
  const uint64_t slots = sweepCredit_ / kSweepPeriodMs;
  sweepCredit_ -= slots * kSweepPeriodMs;
  engine_.Sweep(static_cast<size_t>(slots), nowMs);  // also publishes the per-state counts
}

// ---------------------------------------------------------------- the loop

void Queue::Run() {
  char name[16];
  std::snprintf(name, sizeof name, "dpr-q%u", options_.queueNum);
  pthread_setname_np(pthread_self(), name);
  while (!stopping_.load()) {
    WaitForWork(WaitTimeoutMs());
    Housekeeping(MonotonicMs());
    ReceiveRound();
  }
  ShutdownDrain();
}

int Queue::WaitTimeoutMs() const { return engine_.FlowCount() > 0 ? kIdleTickMs : -1; }

void Queue::WaitForWork(int timeoutMs) {
  pollfd fds[2] = {{nfq_.fd(), POLLIN, 0}, {wakeFd_, POLLIN, 0}};
  const int ready = poll(fds, 2, timeoutMs);
  if (ready < 0) {
    (errno == EINTR ? counters_.eintr : counters_.recvErrors).Add();
    return;
  }
  if (fds[1].revents & POLLIN) {
    uint64_t drained;
    ssize_t r = read(wakeFd_, &drained, sizeof drained);
    (void)r;
  }
}

void Queue::Housekeeping(uint32_t nowMs) {
  ApplyControl(nowMs);
  SweepSlice(nowMs);
  FlushKernel();
  nfq_.Flush();
}

void Queue::ReceiveRound() {
  const uint64_t started = MonotonicUs();
  for (unsigned b = 0; b < kMaxBatchesPerRound; ++b) {
    if (ReceiveBatch() < options_.batchSize) return;  // drained
    if (stopping_.load() || MonotonicUs() - started >= kRoundBudgetUs) break;
  }
  counters_.roundsCut.Add();
}

// One recvmmsg: every message handled, the verdicts sent. Returns the
// messages received (0: none waiting).
unsigned Queue::ReceiveBatch() {
  for (uint32_t i = 0; i < options_.batchSize; ++i) {
    recvIovs_[i] = {recvBufs_[i].data(), recvBufs_[i].size()};
    recvMsgs_[i] = mmsghdr{};
    recvMsgs_[i].msg_hdr.msg_iov = &recvIovs_[i];
    recvMsgs_[i].msg_hdr.msg_iovlen = 1;
  }
  const int n = recvmmsg(nfq_.fd(), recvMsgs_.data(), options_.batchSize, MSG_DONTWAIT, nullptr);
  if (n <= 0) {
    if (n < 0 && errno == EINTR) counters_.eintr.Add();
    else if (n < 0 && errno == ENOBUFS) counters_.enobufs.Add();  // the kernel dropped messages for us
    else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) counters_.recvErrors.Add();
    return 0;
  }
  const uint32_t nowMs = MonotonicMs();
  for (int i = 0; i < n; ++i) {
    int len = static_cast<int>(recvMsgs_[i].msg_len);
    for (auto* m = reinterpret_cast<nlmsghdr*>(recvBufs_[i].data()); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
      HandleMessage(m, nowMs);
    }
  }
  // The kernel learns the batch's forwarded flows before their SYNs leave,
  // so the client's next packet already finds its entry.
  FlushKernel();
  nfq_.Flush();
  counters_.batches.Add();
  counters_.batchPackets.Add(static_cast<uint64_t>(n));
  if (static_cast<uint64_t>(n) > counters_.batchMax.Get()) {
    counters_.batchMax.v.store(static_cast<uint64_t>(n), std::memory_order_relaxed);
  }
  return static_cast<unsigned>(n);
}

// What already waits in the socket is handled as usual, except that new
// flows stay local (the next daemon would not know where they went), so
// packets of forwarded flows still reach their host. Then unbind.
void Queue::ShutdownDrain() {
  const bool wasDraining = engine_.draining();
  engine_.SetDraining(true);
  for (int i = 0; i < kShutdownBatches && ReceiveBatch() > 0; ++i) {
  }
  engine_.SetDraining(wasDraining);
  FlushKernel();
  nfq_.Close();
}

void Queue::HandleMessage(const nlmsghdr* nlh, uint32_t nowMs) {
  if (nlh->nlmsg_type == NLMSG_ERROR) {
    const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    if (e->error != 0) counters_.verdictErrors.Add();
    return;
  }
  if ((nlh->nlmsg_type & 0xff) != NFQNL_MSG_PACKET) return;
  nlattr* attr[NFQA_MAX + 1] = {};
  if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == nullptr) {
    counters_.recvErrors.Add();
    return;  // no id: nothing we can give a verdict to
  }
  const uint16_t queue = ntohs(static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh))->res_id);
  if (static_cast<int32_t>(queue) == options_.flowsQueueNum) counters_.flowsPackets.Add();
  const auto* ph = static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
  const uint32_t id = ntohl(ph->packet_id);
  uint8_t* payload = nullptr;
  size_t len = 0;
  if (attr[NFQA_PAYLOAD] != nullptr) {
    payload = static_cast<uint8_t*>(mnl_attr_get_payload(attr[NFQA_PAYLOAD]));
    len = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
  }
  PacketMeta meta;
  if (attr[NFQA_SKB_INFO] != nullptr) {
    meta.csumNotReady = (ntohl(mnl_attr_get_u32(attr[NFQA_SKB_INFO])) & NFQA_SKB_CSUMNOTREADY) != 0;
  }
  // Present only when the copy was cut short: the packet's real length.
  if (attr[NFQA_CAP_LEN] != nullptr) meta.wireLength = ntohl(mnl_attr_get_u32(attr[NFQA_CAP_LEN]));
  if (attr[NFQA_HWADDR] != nullptr) {
    const auto* hw = static_cast<const nfqnl_msg_packet_hw*>(mnl_attr_get_payload(attr[NFQA_HWADDR]));
    if (ntohs(hw->hw_addrlen) == 6) meta.srcMac = hw->hw_addr;
  }
  const uint32_t packetMark = attr[NFQA_MARK] != nullptr ? ntohl(mnl_attr_get_u32(attr[NFQA_MARK])) : 0;
  const Outcome o = engine_.Process(payload, len, meta, nowMs);
  Answer(queue, id, o, packetMark, payload, len);
}

// The verdict for an outcome. Our mark bits are set, any other software's
// bits on the packet are kept (a verdict's mark replaces the whole mark).
void Queue::Answer(uint16_t queue, uint32_t id, const Outcome& o, uint32_t packetMark, const uint8_t* pkt, size_t len) {
  const uint32_t mark = (packetMark & ~ownMarkBits_) | o.mark;
  switch (o.action) {
    case Action::kForward:
      // Kernel modes forward the packet unchanged: only the mark goes back.
      nfq_.Verdict(queue, id, NF_REPEAT, true, mark, o.mangled ? pkt : nullptr, o.mangled ? len : 0);
      break;
    case Action::kRestore:
      nfq_.Verdict(queue, id, NF_ACCEPT, true, mark, pkt, len);
      break;
    case Action::kDrop:
      nfq_.Verdict(queue, id, NF_DROP, false, 0, nullptr, 0);
      break;
    default:
      nfq_.Verdict(queue, id, NF_ACCEPT, false, 0, nullptr, 0);
  }
}

}  // namespace dpr
