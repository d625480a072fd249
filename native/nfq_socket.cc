#include "nfq_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

extern "C" {
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
}

#include <algorithm>
#include <cstring>

namespace dpr {

namespace {

// Room for one verdict message besides its payload: headers and attributes.
constexpr size_t kVerdictOverhead = 128;
// The kernel copies at most this much of a packet (NFQNL_MAX_COPY_RANGE).
constexpr size_t kMaxCopy = 0xffff;
// A batch never needs more than this (batchSize verdicts of whole packets).
constexpr size_t kBatchCap = 1 << 20;
// netlink_sendmsg refuses a message longer than sk_sndbuf - 32 (EMSGSIZE).
constexpr size_t kSendBufReserve = 32;

std::string ErrnoText(const char* what, int err) { return std::string(what) + ": " + std::strerror(err); }

sockaddr_nl Kernel() {
  sockaddr_nl k{};
  k.nl_family = AF_NETLINK;
  return k;
}

}  // namespace

void NfqSocket::Open(const std::vector<QueueBinding>& queues, uint32_t maxLen, uint32_t rcvBufBytes,
                     uint32_t sndBufBytes) {
  fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd_ < 0) throw QueueError("ESOCKET", errno, ErrnoText("socket(AF_NETLINK, NETLINK_NETFILTER)", errno));
  try {
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) < 0) {
      throw QueueError("EBIND", errno, ErrnoText("bind netlink socket", errno));
    }
    // A big receive buffer absorbs bursts; FORCE needs CAP_NET_ADMIN, which
    // the queue needs anyway, and falls back to the capped option.
    int rcv = static_cast<int>(rcvBufBytes);
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv) < 0) {
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    }
    int snd = static_cast<int>(sndBufBytes);
    if (setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof snd) < 0) {
      setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
    }
    // What the kernel granted decides the batch size, not what was asked:
    // without CAP_NET_ADMIN in the initial namespace, SO_SNDBUF is capped by
    // net.core.wmem_max and a larger batch would fail whole (EMSGSIZE).
    int real = 0;
    socklen_t optlen = sizeof real;
    if (getsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &real, &optlen) < 0) {
      throw QueueError("ESNDBUF", errno, ErrnoText("getsockopt(SO_SNDBUF)", errno));
    }
    const size_t limit = real > static_cast<int>(kSendBufReserve) ? static_cast<size_t>(real) - kSendBufReserve : 0;
    if (limit < kVerdictOverhead + kMaxCopy) {
      throw QueueError("ESNDBUF", ENOBUFS,
                       "the netlink send buffer holds " + std::to_string(real) + " bytes; one verdict with a whole packet needs " +
                           std::to_string(kVerdictOverhead + kMaxCopy + kSendBufReserve) + " (raise queues.sndBufBytes)");
    }
    buf_.assign(std::min(limit, kBatchCap), 0);
    len_ = 0;
    ackBuf_.assign(kMaxCopy + 4096, 0);
    // Overflow is the kernel's business (fail-open, or a drop TCP repairs); it
    // should not turn every later recv into an error.
    int one = 1;
    setsockopt(fd_, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
    for (const QueueBinding& q : queues) {
      queues_.push_back(q);  // from here on Close() unbinds it
      Configure(q.num, "bind queue", [](nlmsghdr* nlh) { nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND); });
      Configure(q.num, "set copy mode", [](nlmsghdr* nlh) { nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, kMaxCopy); });
      Configure(q.num, "set queue length", [maxLen](nlmsghdr* nlh) { nfq_nlmsg_cfg_put_qmaxlen(nlh, maxLen); });
      Configure(q.num, "set fail-open and GSO flags", [q](nlmsghdr* nlh) {
        const uint32_t flags = (q.failOpen ? NFQA_CFG_F_FAIL_OPEN : 0) | NFQA_CFG_F_GSO;
        mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
        mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO));
      });
    }
  } catch (...) {
    Close();
    throw;
  }
}

// Sends one configuration message and waits for its acknowledgement. Packets
// that arrive meanwhile cannot be routed yet: on a fail-open queue they go on
// to the local stack (what the kernel does without us), on the others they
// are dropped and TCP sends them again.
void NfqSocket::Configure(uint16_t queue, const char* step, const std::function<void(nlmsghdr*)>& fill) {
  std::vector<uint8_t> msg(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = nfq_nlmsg_put(reinterpret_cast<char*>(msg.data()), NFQNL_MSG_CONFIG, queue);
  nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = ++seq_;
  fill(nlh);
  const sockaddr_nl kernel = Kernel();
  if (sendto(fd_, nlh, nlh->nlmsg_len, 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) < 0) {
    throw QueueError("ECONFIG", errno, ErrnoText(step, errno));
  }
  for (;;) {
    const ssize_t n = recv(fd_, ackBuf_.data(), ackBuf_.size(), 0);
    if (n < 0) {
      if (errno == EINTR || errno == ENOBUFS) continue;
      throw QueueError("ECONFIG", errno, ErrnoText(step, errno));
    }
    int len = static_cast<int>(n);
    for (auto* m = reinterpret_cast<nlmsghdr*>(ackBuf_.data()); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
      if (m->nlmsg_type == NLMSG_ERROR && m->nlmsg_seq == seq_) {
        const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
        if (e->error != 0) {
          const int err = -e->error;
          const std::string hint = err == EPERM ? " (needs CAP_NET_ADMIN)"
                                   : err == EBUSY ? " (another process holds this queue number)"
                                                  : "";
          throw QueueError("ECONFIG", err, ErrnoText(step, err) + hint);
        }
        Flush();
        return;
      }
      if ((m->nlmsg_type & 0xff) != NFQNL_MSG_PACKET) continue;
      nlattr* attr[NFQA_MAX + 1] = {};
      if (nfq_nlmsg_parse(m, attr) < 0 || attr[NFQA_PACKET_HDR] == nullptr) continue;
      const auto* ph = static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
      const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(m));
      const uint16_t from = ntohs(nfg->res_id);
      const bool failOpen = std::any_of(queues_.begin(), queues_.end(), [from](const QueueBinding& b) {
        return b.num == from && b.failOpen;
      });
      Verdict(from, ntohl(ph->packet_id), failOpen ? NF_ACCEPT : NF_DROP, false, 0, nullptr, 0);
      (failOpen ? counters_.startupAccepted : counters_.startupDropped).Add();
    }
  }
}

void NfqSocket::Close() {
  if (fd_ < 0) return;
  Flush();
  // What the kernel queues from here on meets no listener: --queue-bypass
  // lets it through, a rule without it drops it (TCP resends it to the next daemon).
  for (const QueueBinding& q : queues_) {
    char msg[256];
    nlmsghdr* nlh = nfq_nlmsg_put(msg, NFQNL_MSG_CONFIG, q.num);
    nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_UNBIND);
    const sockaddr_nl kernel = Kernel();
    sendto(fd_, nlh, nlh->nlmsg_len, 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel);
  }
  queues_.clear();
  close(fd_);
  fd_ = -1;
}

void NfqSocket::Verdict(uint16_t queue, uint32_t id, uint32_t verdict, bool setMark, uint32_t mark, const uint8_t* pkt,
                        size_t len) {
  const size_t need = kVerdictOverhead + (pkt ? MNL_ALIGN(len) : 0);
  if (len_ + need > buf_.size()) Flush();
  auto* nlh = nfq_nlmsg_put(reinterpret_cast<char*>(buf_.data() + len_), NFQNL_MSG_VERDICT, queue);
  nfq_nlmsg_verdict_put(nlh, static_cast<int>(id), static_cast<int>(verdict));
  if (setMark) nfq_nlmsg_verdict_put_mark(nlh, mark);
  if (pkt != nullptr) nfq_nlmsg_verdict_put_pkt(nlh, pkt, static_cast<uint32_t>(len));
  len_ += NLMSG_ALIGN(nlh->nlmsg_len);
}

bool NfqSocket::SendRetrying(const void* data, size_t len) {
  const sockaddr_nl kernel = Kernel();
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (sendto(fd_, data, len, 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) >= 0) return true;
    if (errno == EINTR) {
      counters_.eintr.Add();
    } else if (errno == ENOBUFS || errno == EAGAIN) {
      counters_.enobufs.Add();
    } else {
      return false;
    }
  }
  return false;
}

void NfqSocket::Flush() {
  if (len_ == 0 || fd_ < 0) return;
  if (!SendRetrying(buf_.data(), len_)) {
    counters_.batchesSplit.Add();
    int left = static_cast<int>(len_);
    for (auto* m = reinterpret_cast<nlmsghdr*>(buf_.data()); mnl_nlmsg_ok(m, left); m = mnl_nlmsg_next(m, &left)) {
      // A verdict the kernel refuses even alone leaves its packet queued until
      // the queue is torn down; counted loudly, it must never happen.
      if (!SendRetrying(m, m->nlmsg_len)) counters_.sendErrors.Add();
    }
  }
  len_ = 0;
}

}  // namespace dpr
