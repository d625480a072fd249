// Writes forwarded flows into the kernel's per-peer ipsets (kernel modes):
// `<prefix>to<id>` of type hash:ip,port,ip (client address, client port,
// service address) with timeouts, created by `dpr install`; IPv6 flows into
// `<prefix6>to<id>`, the same type in family inet6 (an ipset holds one family). Messages are
// queued in a buffer and sent many per system call (Flush, called by the
// queue thread once per receive batch, before its verdicts leave), never one
// process or one system call per flow. Errors come back asynchronously (no
// NLM_F_ACK: the kernel only answers failures) and are counted.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine.h"
#include "flow_handoff.h"

struct mnl_socket;

namespace dpr {

struct IpsetCounters {
  Counter adds;
  Counter dels;
  Counter sends;
  Counter errors;      // refused by the kernel (a missing set, a full set, ...)
  Counter existing;    // keepExisting adds that found an entry: left as it was
  Counter sendErrors;  // the send itself failed; those messages are lost
  std::atomic<int32_t> lastErrno{0};
};

class IpsetWriter : public FlowHandoff {
 public:
  // Throws std::system_error when the netlink socket cannot be opened.
  // `prefix6` empty: no IPv6 sets (an IPv6 flow handed over is counted as an error).
  explicit IpsetWriter(std::string prefix, std::string prefix6 = "");
  ~IpsetWriter() override;
  IpsetWriter(const IpsetWriter&) = delete;
  IpsetWriter& operator=(const IpsetWriter&) = delete;

  void OnForwardDecided(const FlowKey& key, uint16_t target, uint32_t timeoutMs, bool keepExisting) override;
  void OnFlowGone(const FlowKey& key, uint16_t target) override;
  void OnForwardDecided(const FlowKey6& key, uint16_t target, uint32_t timeoutMs, bool keepExisting) override;
  void OnFlowGone(const FlowKey6& key, uint16_t target) override;
  // Sends what is queued, then reads back the kernel's error answers.
  void Flush();
  const IpsetCounters& counters() const { return counters_; }
  static std::string SetName(const std::string& prefix, uint16_t target);

 private:
  template <typename Key>
  void Put(uint8_t cmd, const Key& key, uint16_t target, uint32_t timeoutSec, bool exclusive);
  void ReadErrors();

  std::string prefix_;
  std::string prefix6_;
  mnl_socket* nl_ = nullptr;
  std::vector<char> buf_;
  size_t used_ = 0;
  uint32_t seq_ = 1;
  IpsetCounters counters_;
};

}  // namespace dpr
