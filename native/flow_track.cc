#include "flow_track.h"

namespace dpr {

bool InClientWindow(uint32_t clientNext, uint32_t seq) {
  const int64_t d = static_cast<int32_t>(seq - clientNext);
  return d >= -static_cast<int64_t>(kClientWindow) && d <= static_cast<int64_t>(kClientWindow);
}

namespace {

template <typename Addr>
FlowState Progress(const BasicFlowEntry<Addr>& e, const BasicTcpPacket<Addr>& p) {
  if (p.Has(kTcpFin)) return FlowState::kClosing;
  const bool data = p.PayloadLength() > 0;
  switch (e.state) {
    case FlowState::kSynSeen:
      if (data) return FlowState::kEstablished;
      return p.Has(kTcpAck) ? FlowState::kProbation : e.state;
    case FlowState::kProbation:
      return data || (p.Has(kTcpAck) && p.ack != e.firstAck) ? FlowState::kEstablished : e.state;
    case FlowState::kReset:
      return FlowState::kEstablished;
    default:
      return e.state;
  }
}

}  // namespace

template <typename Addr>
void TrackSegment(BasicFlowTable<Addr>& flows, long index, const BasicTcpPacket<Addr>& p, uint32_t nowMs) {
  auto& e = flows.At(index);
  flows.Touch(index, nowMs);
  if (InClientWindow(e.clientNext, p.seq)) {
    const uint32_t end = p.seq + static_cast<uint32_t>(p.PayloadLength()) + (p.Has(kTcpFin) ? 1 : 0);
    if (static_cast<int32_t>(end - e.clientNext) > 0) e.clientNext = end;
  }
  const FlowState next = Progress(e, p);
  if (next == e.state) return;
  if (next == FlowState::kProbation) e.firstAck = p.ack;
  flows.SetState(index, next);
}

template <typename Addr>
bool TrackRst(BasicFlowTable<Addr>& flows, long index, const BasicTcpPacket<Addr>& p, uint32_t nowMs) {
  auto& e = flows.At(index);
  if (!InClientWindow(e.clientNext, p.seq)) return false;
  flows.Touch(index, nowMs);
  if (e.state != FlowState::kReset) flows.SetState(index, FlowState::kReset);
  return true;
}

template <typename Addr>
void RearmForSyn(BasicFlowTable<Addr>& flows, long index, const BasicTcpPacket<Addr>& p, uint32_t nowMs) {
  auto& e = flows.At(index);
  flows.Touch(index, nowMs);
  e.clientNext = p.seq + 1;
  if (flows.Embryonic() < flows.maxEmbryonic()) flows.SetState(index, FlowState::kSynSeen);
}

#define DPR_FLOW_TRACK(Addr)                                                                           \
  template void TrackSegment(BasicFlowTable<Addr>&, long, const BasicTcpPacket<Addr>&, uint32_t); \
  template bool TrackRst(BasicFlowTable<Addr>&, long, const BasicTcpPacket<Addr>&, uint32_t);     \
  template void RearmForSyn(BasicFlowTable<Addr>&, long, const BasicTcpPacket<Addr>&, uint32_t);
DPR_FLOW_TRACK(uint32_t)
DPR_FLOW_TRACK(Ip6)
#undef DPR_FLOW_TRACK

}  // namespace dpr
