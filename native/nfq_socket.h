// The netlink side of a queue: one NETLINK_NETFILTER socket bound to one or
// more NFQUEUE numbers, and the verdicts that go back on it in batches. No
// packet logic here; queue.cc owns the thread and the engine.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine.h"

struct nlmsghdr;

namespace dpr {

// An error with the failing step and errno; the binding turns it into the
// TypeScript DprNativeError with `code` and `errno`.
struct QueueError : std::runtime_error {
  QueueError(std::string code, int err, const std::string& what)
      : std::runtime_error(what), code(std::move(code)), errnum(err) {}
  std::string code;
  int errnum;
};

struct QueueBinding {
  uint16_t num;
  // NFQA_CFG_F_FAIL_OPEN: a full queue lets packets through instead of dropping them.
  bool failOpen;
};

struct SocketCounters {
  Counter eintr;
  Counter enobufs;
  Counter sendErrors;     // verdicts lost: the kernel refused the message itself
  Counter batchesSplit;   // batches the kernel refused whole, sent again one verdict at a time
  Counter startupAccepted;  // packets that came while binding, on a fail-open queue: accepted
  Counter startupDropped;   // ... on a queue without fail-open: dropped (TCP resends them)
};

class NfqSocket {
 public:
  NfqSocket() = default;
  ~NfqSocket() { Close(); }
  NfqSocket(const NfqSocket&) = delete;
  NfqSocket& operator=(const NfqSocket&) = delete;

  // Opens the socket, sizes its buffers and binds every queue (copy whole
  // packets, maxLen, GSO, fail-open as each says). Throws QueueError.
  void Open(const std::vector<QueueBinding>& queues, uint32_t maxLen, uint32_t rcvBufBytes, uint32_t sndBufBytes);
  // Unbinds every queue and closes the socket. Idempotent.
  void Close();
  int fd() const { return fd_; }

  // Queues one verdict; sends the batch first when this one would not fit the
  // socket's send buffer. `mark` replaces the packet's mark when `setMark`.
  void Verdict(uint16_t queue, uint32_t id, uint32_t verdict, bool setMark, uint32_t mark, const uint8_t* pkt,
               size_t len);
  // Sends the queued verdicts. If the kernel refuses the batch, it tries them
  // one by one, so a bad message costs one packet, not the batch.
  void Flush();

  // Largest batch sent at once: the socket's real send buffer less what
  // netlink_sendmsg keeps back.
  size_t sendLimit() const { return buf_.size(); }
  SocketCounters& counters() { return counters_; }
  const SocketCounters& counters() const { return counters_; }

 private:
  void Configure(uint16_t queue, const char* step, const std::function<void(::nlmsghdr*)>& fill);
  bool SendRetrying(const void* data, size_t len);

  int fd_ = -1;
  uint32_t seq_ = 0;
  std::vector<QueueBinding> queues_;
  std::vector<uint8_t> buf_;
  size_t len_ = 0;
  std::vector<uint8_t> ackBuf_;
  SocketCounters counters_;
};

}  // namespace dpr
