// How an entry host follows a connection it sees one way only, the client's:
// where the client's sequence numbers are (so a RST can be judged), and the
// progress that takes a flow out of the embryonic budget. The serving host's
// stack has the whole picture and does the exact checks (RFC 5961); this only
// keeps an off-path attacker, who cannot see the traffic, from resetting or
// promoting flows with packets it makes up.
#pragma once
#include <cstdint>

#include "flow_table.h"
#include "packet.h"

namespace dpr {

// A segment is plausible when its sequence number lies within this distance
// of the client's next one, either way: a blind guess hits with probability
// (2 * 65536 + 1) / 2^32, about 1 in 32768. The client's own RST carries its
// next sequence number (or what the serving host last acknowledged, behind
// it), and retransmissions lie behind: 64 KiB is room for both.
constexpr uint32_t kClientWindow = 65536;

bool InClientWindow(uint32_t clientNext, uint32_t seq);

// A client segment that is neither a SYN nor a RST: refreshes the flow, moves
// the client's next sequence number (only from an in-window segment, so a
// spoofed one far ahead cannot move the window to where its RST would be),
// and the state: a bare ACK puts a new flow on probation, data, a FIN or a
// second ACK number make it established; after a RST, any such segment means
// the serving host kept the connection.
template <typename Addr>
void TrackSegment(BasicFlowTable<Addr>& flows, long index, const BasicTcpPacket<Addr>& p, uint32_t nowMs);

// A RST within the window moves the flow to kReset (kept, short timeout) and
// returns true; any other leaves the flow untouched.
template <typename Addr>
bool TrackRst(BasicFlowTable<Addr>& flows, long index, const BasicTcpPacket<Addr>& p, uint32_t nowMs);

// A SYN on a flow in kClosing: a client reusing the 4-tuple (the serving
// host's TIME_WAIT accepts it). Same host; the tracking starts over from its
// sequence number, as a new embryonic flow if the budget has room.
template <typename Addr>
void RearmForSyn(BasicFlowTable<Addr>& flows, long index, const BasicTcpPacket<Addr>& p, uint32_t nowMs);

}  // namespace dpr
