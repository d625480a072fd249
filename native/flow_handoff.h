// What the engine tells the kernel about forwarded flows in the kernel modes
// (`direct`, `tunnel`): after the SYN, a forwarded flow's packets are routed
// by the kernel from a per-peer ipset, so the engine says once, when a new
// flow's target is fixed, where the flow goes, and when it redecides a flow,
// that it is gone from its old host. Implemented by IpsetWriter (batched
// netlink); the engine only holds a pointer and never waits on it.
#pragma once
#include <cstdint>

#include "flow_table.h"

namespace dpr {

class FlowHandoff {
 public:
  virtual ~FlowHandoff() = default;
  // A new flow goes to peer `target` (never this host): its later packets
  // stay in the kernel. `timeoutMs`: how long the entry lives unless traffic
  // refreshes it. `keepExisting`: leave an entry that is there already as it
  // is (a snapshot's flow coming back after a restart), else replace it.
  virtual void OnForwardDecided(const FlowKey& key, uint16_t target, uint32_t timeoutMs, bool keepExisting) = 0;
  // The flow no longer goes to `target` (decided afresh).
  virtual void OnFlowGone(const FlowKey& key, uint16_t target) = 0;
  // The same for IPv6 flows (sets of their own: an ipset holds one family).
  virtual void OnForwardDecided(const FlowKey6& key, uint16_t target, uint32_t timeoutMs, bool keepExisting) = 0;
  virtual void OnFlowGone(const FlowKey6& key, uint16_t target) = 0;
};

}  // namespace dpr
