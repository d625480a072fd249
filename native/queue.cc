#include "queue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
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

namespace dpr {

namespace {

// Room for one verdict message besides its payload: headers and attributes.
constexpr size_t kVerdictOverhead = 128;
// netlink_sendmsg refuses messages larger than the socket's send buffer; we
// force the buffer past this and flush before a batch grows beyond it.
constexpr size_t kSendBufBytes = 1 << 20;
constexpr size_t kRecvBufBytes = 0xffff + 4096;
constexpr size_t kSweepPerLoop = 256;

std::string ErrnoText(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

}  // namespace

uint32_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint32_t>(ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000);
}

Queue::Queue(QueueOptions options, EngineConfig engine, DecisionSink sink)
    : options_(options), fixed_(engine), engine_(std::move(engine)), sink_(std::move(sink)) {
  if (options_.batchSize == 0 || options_.batchSize > 1024) {
    throw QueueError("EINVAL", EINVAL, "batchSize must be within 1..1024");
  }
}

Queue::~Queue() { Stop(); }

void Queue::Start() {
  if (running_.load()) throw QueueError("EALREADY", EALREADY, "queue already started");
  recvBufs_.assign(options_.batchSize, std::vector<uint8_t>(kRecvBufBytes));
  sendBuf_.assign(kSendBufBytes, 0);
  sendLen_ = 0;
  Bind();
  stopping_ = false;
  running_ = true;
  thread_ = std::thread([this] { Run(); });
}

void Queue::Bind() {
  fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd_ < 0) throw QueueError("ESOCKET", errno, ErrnoText("socket(AF_NETLINK, NETLINK_NETFILTER)", errno));
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  socklen_t alen = sizeof local;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) < 0 ||
      getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &alen) < 0) {
    const int err = errno;
    close(fd_);
    fd_ = -1;
    throw QueueError("EBIND", err, ErrnoText("bind netlink socket", err));
  }
  portId_ = local.nl_pid;
  // A big receive buffer absorbs bursts; FORCE needs CAP_NET_ADMIN, which we
  // need anyway for the queue, and falls back to the capped option.
  int rcv = static_cast<int>(options_.rcvBufBytes);
  if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv) < 0) {
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  }
  int snd = static_cast<int>(kSendBufBytes * 2);
  if (setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof snd) < 0) {
    setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
  }
  // Overflow is the kernel's business (fail-open); it should not turn every
  // later recv into an error.
  int one = 1;
  setsockopt(fd_, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);

  wakeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd_ < 0) {
    const int err = errno;
    close(fd_);
    fd_ = -1;
    throw QueueError("EEVENTFD", err, ErrnoText("eventfd", err));
  }

  try {
    SendConfig("bind queue", [](nlmsghdr* nlh, const Queue*) {
      nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
    });
    SendConfig("set copy mode", [](nlmsghdr* nlh, const Queue*) {
      nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 0xffff);
    });
    SendConfig("set queue length", [](nlmsghdr* nlh, const Queue* q) {
      nfq_nlmsg_cfg_put_qmaxlen(nlh, q->options_.maxLen);
    });
    SendConfig("set fail-open and GSO flags", [](nlmsghdr* nlh, const Queue*) {
      const uint32_t flags = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO;
      mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
      mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(flags));
    });
  } catch (...) {
    close(fd_);
    close(wakeFd_);
    fd_ = wakeFd_ = -1;
    throw;
  }
}

// Send one configuration message and wait for its acknowledgement. Packets that
// arrive meanwhile are accepted unchanged: we are not ready to route them.
void Queue::SendConfig(const char* step, void (*fill)(nlmsghdr*, const Queue*)) {
  std::vector<uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = nfq_nlmsg_put(reinterpret_cast<char*>(buf.data()), NFQNL_MSG_CONFIG, options_.queueNum);
  nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = ++seq_;
  fill(nlh, this);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd_, nlh, nlh->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    throw QueueError("ECONFIG", errno, ErrnoText(step, errno));
  }
  std::vector<uint8_t>& rb = recvBufs_[0];
  for (;;) {
    const ssize_t n = recv(fd_, rb.data(), rb.size(), 0);
    if (n < 0) {
      if (errno == EINTR || errno == ENOBUFS) continue;
      throw QueueError("ECONFIG", errno, ErrnoText(step, errno));
    }
    int len = static_cast<int>(n);
    for (auto* m = reinterpret_cast<nlmsghdr*>(rb.data()); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
      if (m->nlmsg_type == NLMSG_ERROR && m->nlmsg_seq == seq_) {
        const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
        if (e->error != 0) {
          const int err = -e->error;
          const std::string hint = err == EPERM ? " (needs CAP_NET_ADMIN)"
                                   : err == EBUSY ? " (another process holds this queue number)"
                                                  : "";
          throw QueueError("ECONFIG", err, ErrnoText(step, err) + hint);
        }
        FlushVerdicts();
        return;
      }
      if ((m->nlmsg_type & 0xff) == NFQNL_MSG_PACKET) {
        nlattr* attr[NFQA_MAX + 1] = {};
        if (nfq_nlmsg_parse(m, attr) >= 0 && attr[NFQA_PACKET_HDR] != nullptr) {
          const auto* ph = static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
          Verdict(ntohl(ph->packet_id), NF_ACCEPT, 0, nullptr, 0);
          counters_.startupAccepted.Add();
        }
      }
    }
  }
}

void Queue::Stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  Wake();
  thread_.join();
  running_ = false;
}

void Queue::Wake() {
  if (wakeFd_ < 0) return;
  const uint64_t one = 1;
  ssize_t r = write(wakeFd_, &one, sizeof one);
  (void)r;  // EAGAIN: the counter is already non-zero, the thread will wake
}

void Queue::SetLookupTable(std::shared_ptr<const LookupTable> table) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pendingTable_ = std::move(table);
    tableChanged_ = true;
  }
  controlDirty_ = true;
  if (!running_.load()) {
    ApplyControl(MonotonicMs());  // not started: nobody else touches the engine
  } else {
    Wake();
  }
}

void Queue::SetHosts(std::vector<uint32_t> serviceAddr, std::vector<uint32_t> clusterAddr) {
  // Checked here, in the caller's thread, so a bad list throws to JavaScript
  // instead of being dropped in the queue thread.
  if (const char* problem = Engine::HostsProblem(fixed_, serviceAddr, clusterAddr)) throw QueueError("EINVAL", EINVAL, problem);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pendingService_ = std::move(serviceAddr);
    pendingCluster_ = std::move(clusterAddr);
    hostsChanged_ = true;
  }
  controlDirty_ = true;
  if (!running_.load()) {
    ApplyControl(MonotonicMs());
  } else {
    Wake();
  }
}

void Queue::SetDraining(bool draining) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pendingDraining_ = draining;
    drainingChanged_ = true;
  }
  controlDirty_ = true;
  if (!running_.load()) {
    ApplyControl(MonotonicMs());
  } else {
    Wake();
  }
}

std::vector<uint32_t> Queue::ExportFlows() {
  if (!running_.load()) return engine_.ExportFlows(MonotonicMs());
  std::unique_lock<std::mutex> lock(mutex_);
  exportRequested_ = true;
  exportReady_ = false;
  controlDirty_ = true;
  Wake();
  // Bounded: a stuck queue thread must not hang the control plane.
  if (!exportDone_.wait_for(lock, std::chrono::seconds(5), [this] { return exportReady_; })) {
    throw QueueError("ETIMEDOUT", ETIMEDOUT, "the queue thread did not answer a flow-table export");
  }
  return std::move(exported_);
}

size_t Queue::ImportFlows(const uint32_t* words, size_t count) {
  if (running_.load()) throw QueueError("EBUSY", EBUSY, "flows can only be imported before the queue starts");
  return engine_.ImportFlows(words, count, MonotonicMs());
}

void Queue::Decide(const std::vector<uint32_t>& tokens, const std::vector<uint16_t>& targets) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < tokens.size() && i < targets.size(); ++i) {
      pendingDecisions_.emplace_back(tokens[i], targets[i]);
    }
  }
  controlDirty_ = true;
  Wake();
}

void Queue::ApplyControl(uint32_t nowMs) {
  if (!controlDirty_.exchange(false)) return;
  std::vector<std::pair<uint32_t, uint16_t>> decisions;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (tableChanged_) {
      engine_.SetLookupTable(std::move(pendingTable_));
      tableChanged_ = false;
    }
    if (drainingChanged_) {
      engine_.SetDraining(pendingDraining_);
      drainingChanged_ = false;
    }
    if (hostsChanged_) {
      engine_.SetHosts(std::move(pendingService_), std::move(pendingCluster_));
      hostsChanged_ = false;
    }
    decisions.swap(pendingDecisions_);
    if (exportRequested_) {
      exported_ = engine_.ExportFlows(nowMs);
      exportRequested_ = false;
      exportReady_ = true;
      exportDone_.notify_all();
    }
  }
  const uint64_t diagErrorsBefore = localSockets_.errors();
  for (const auto& [token, target] : decisions) {
    auto it = held_.find(token);
    if (it == held_.end()) {
      counters_.decisionsLate.Add();
      continue;
    }
    Held& h = it->second;
    counters_.decisionsAnswered.Add();
    uint16_t decided = target;
    if (decided != engine_.config().self && localSockets_.Exists(h.key)) {
      decided = engine_.config().self;
      counters_.decisionsKeptForLocalSocket.Add();
    }
    engine_.Resolve(h.key, decided, nowMs);
    const Outcome o = engine_.Replay(h.bytes.data(), h.bytes.size(), h.csumNotReady, nowMs);
    Verdict(h.packetId, o.action == Action::kForward ? NF_REPEAT : NF_ACCEPT, o.mark,
            o.mangled ? h.bytes.data() : nullptr, h.bytes.size());
    held_.erase(it);
  }
  counters_.sockDiagErrors.Add(localSockets_.errors() - diagErrorsBefore);
}

void Queue::ExpireHeld(uint32_t nowMs) {
  while (!heldOrder_.empty()) {
    const auto it = held_.find(heldOrder_.front());
    if (it == held_.end()) {  // answered already
      heldOrder_.pop_front();
      continue;
    }
    Held& h = it->second;
    if (static_cast<int32_t>(nowMs - h.deadlineMs) < 0) break;
    counters_.decisionsTimedOut.Add();
    engine_.Resolve(h.key, engine_.config().self, nowMs);
    Verdict(h.packetId, NF_ACCEPT, 0, nullptr, 0);
    held_.erase(it);
    heldOrder_.pop_front();
  }
}

void Queue::ReleaseAllHeld() {
  const uint32_t nowMs = MonotonicMs();
  for (auto& [token, h] : held_) {
    engine_.Resolve(h.key, engine_.config().self, nowMs);
    Verdict(h.packetId, NF_ACCEPT, 0, nullptr, 0);
  }
  held_.clear();
  heldOrder_.clear();
}

void Queue::Run() {
  std::vector<mmsghdr> msgs(options_.batchSize);
  std::vector<iovec> iovs(options_.batchSize);
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wakeFd_, POLLIN, 0}};
  while (!stopping_.load()) {
    int timeout = 250;
    if (!heldOrder_.empty()) {
      const auto it = held_.find(heldOrder_.front());
      if (it != held_.end()) {
        const int32_t left = static_cast<int32_t>(it->second.deadlineMs - MonotonicMs());
        timeout = std::max<int32_t>(0, std::min<int32_t>(left, timeout));
      } else {
        timeout = 0;
      }
    }
    const int ready = poll(fds, 2, timeout);
    if (ready < 0 && errno != EINTR) {
      counters_.recvErrors.Add();
      continue;
    }
    if (ready < 0) counters_.eintr.Add();
    if (fds[1].revents & POLLIN) {
      uint64_t drained;
      ssize_t r = read(wakeFd_, &drained, sizeof drained);
      (void)r;
    }
    uint32_t nowMs = MonotonicMs();
    ApplyControl(nowMs);
    if (fds[0].revents & (POLLIN | POLLERR)) {
      for (;;) {
        for (uint32_t i = 0; i < options_.batchSize; ++i) {
          iovs[i] = {recvBufs_[i].data(), recvBufs_[i].size()};
          msgs[i] = {};
          msgs[i].msg_hdr.msg_iov = &iovs[i];
          msgs[i].msg_hdr.msg_iovlen = 1;
        }
        const int n = recvmmsg(fd_, msgs.data(), options_.batchSize, MSG_DONTWAIT, nullptr);
        if (n < 0) {
          if (errno == EINTR) {
            counters_.eintr.Add();
            continue;
          }
          if (errno == ENOBUFS) {
            counters_.enobufs.Add();  // the kernel dropped messages for us: go on
            continue;
          }
          if (errno != EAGAIN && errno != EWOULDBLOCK) counters_.recvErrors.Add();
          break;
        }
        if (n == 0) break;
        nowMs = MonotonicMs();
        std::vector<DecisionRequest> asks;
        for (int i = 0; i < n; ++i) {
          int len = static_cast<int>(msgs[i].msg_len);
          for (auto* m = reinterpret_cast<nlmsghdr*>(recvBufs_[i].data()); mnl_nlmsg_ok(m, len);
               m = mnl_nlmsg_next(m, &len)) {
            HandleMessage(m, nowMs, &asks);
          }
        }
        FlushVerdicts();
        counters_.batches.Add();
        counters_.batchPackets.Add(static_cast<uint64_t>(n));
        if (static_cast<uint64_t>(n) > counters_.batchMax.Get()) {
          counters_.batchMax.v.store(static_cast<uint64_t>(n), std::memory_order_relaxed);
        }
        if (!asks.empty()) {
          counters_.decisionsRequested.Add(asks.size());
          if (sink_) {
            sink_(std::move(asks));
          }
        }
        if (static_cast<uint32_t>(n) < options_.batchSize) break;
      }
    }
    nowMs = MonotonicMs();
    ExpireHeld(nowMs);
    engine_.Sweep(kSweepPerLoop, nowMs);
    FlushVerdicts();
  }
  ReleaseAllHeld();
  FlushVerdicts();
  // Whatever reached the socket before the unbind gets a verdict too; what the
  // kernel queues after it is bypassed (fail-open) because nobody listens.
  for (int i = 0; i < 64; ++i) {
    const ssize_t n = recv(fd_, recvBufs_[0].data(), recvBufs_[0].size(), MSG_DONTWAIT);
    if (n <= 0) break;
    int len = static_cast<int>(n);
    for (auto* m = reinterpret_cast<nlmsghdr*>(recvBufs_[0].data()); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
      if ((m->nlmsg_type & 0xff) != NFQNL_MSG_PACKET) continue;
      nlattr* attr[NFQA_MAX + 1] = {};
      if (nfq_nlmsg_parse(m, attr) >= 0 && attr[NFQA_PACKET_HDR] != nullptr) {
        const auto* ph = static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
        Verdict(ntohl(ph->packet_id), NF_ACCEPT, 0, nullptr, 0);
      }
    }
  }
  FlushVerdicts();
  {
    char buf[256];
    nlmsghdr* nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, options_.queueNum);
    nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_UNBIND);
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    sendto(fd_, nlh, nlh->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
  }
  close(fd_);
  close(wakeFd_);
  fd_ = wakeFd_ = -1;
}

void Queue::HandleMessage(const nlmsghdr* nlh, uint32_t nowMs, std::vector<DecisionRequest>* asks) {
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
  const auto* ph = static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
  const uint32_t id = ntohl(ph->packet_id);
  uint8_t* payload = nullptr;
  size_t len = 0;
  if (attr[NFQA_PAYLOAD] != nullptr) {
    payload = static_cast<uint8_t*>(mnl_attr_get_payload(attr[NFQA_PAYLOAD]));
    len = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
  }
  bool csumNotReady = false;
  if (attr[NFQA_SKB_INFO] != nullptr) {
    csumNotReady = (ntohl(mnl_attr_get_u32(attr[NFQA_SKB_INFO])) & NFQA_SKB_CSUMNOTREADY) != 0;
  }
  const Outcome o = engine_.Process(payload, len, csumNotReady, nowMs);
  switch (o.action) {
    case Action::kForward:
      Verdict(id, NF_REPEAT, o.mark, payload, len);
      break;
    case Action::kRestore:
      Verdict(id, NF_ACCEPT, o.mark, payload, len);
      break;
    case Action::kDrop:
      Verdict(id, NF_DROP, 0, nullptr, 0);
      break;
    case Action::kDefer: {
      const uint32_t token = nextToken_++;
      Held h{token, id, nowMs + options_.decisionTimeoutMs, csumNotReady, o.key,
             std::vector<uint8_t>(payload, payload + len)};
      held_.emplace(token, std::move(h));
      heldOrder_.push_back(token);
      asks->push_back(DecisionRequest{token, o.key});
      break;
    }
    default:
      Verdict(id, NF_ACCEPT, 0, nullptr, 0);
  }
}

void Queue::Verdict(uint32_t id, uint32_t verdict, uint32_t mark, const uint8_t* pkt, size_t len) {
  const size_t need = kVerdictOverhead + (pkt ? MNL_ALIGN(len) : 0);
  if (sendLen_ + need > sendBuf_.size()) FlushVerdicts();
  auto* nlh = nfq_nlmsg_put(reinterpret_cast<char*>(sendBuf_.data() + sendLen_), NFQNL_MSG_VERDICT,
                            options_.queueNum);
  nfq_nlmsg_verdict_put(nlh, static_cast<int>(id), static_cast<int>(verdict));
  if (mark != 0) nfq_nlmsg_verdict_put_mark(nlh, mark);
  if (pkt != nullptr) nfq_nlmsg_verdict_put_pkt(nlh, pkt, static_cast<uint32_t>(len));
  sendLen_ += NLMSG_ALIGN(nlh->nlmsg_len);
}

void Queue::FlushVerdicts() {
  if (sendLen_ == 0) return;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (sendto(fd_, sendBuf_.data(), sendLen_, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) >= 0) {
      sendLen_ = 0;
      return;
    }
    if (errno == EINTR) {
      counters_.eintr.Add();
      continue;
    }
    if (errno == ENOBUFS || errno == EAGAIN) {
      counters_.enobufs.Add();
      continue;
    }
    break;
  }
  // The packets stay queued in the kernel until the queue is torn down; count
  // it loudly, it must never happen.
  counters_.sendErrors.Add();
  sendLen_ = 0;
}

}  // namespace dpr
