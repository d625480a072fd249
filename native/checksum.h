// Internet checksums (RFC 1071) and their incremental update (RFC 1624).
#pragma once
#include <cstddef>
#include <cstdint>

#include "packet.h"

namespace dpr {

// One's-complement sum of a byte range, added to `sum`, not folded.
uint32_t ChecksumAdd(const uint8_t* data, size_t len, uint32_t sum);
uint16_t ChecksumFold(uint32_t sum);

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), on a 16-bit field stored in network
// byte order at `field`. `from`/`to` are 32- or 16-bit words in network order.
void ChecksumReplace32(uint8_t* field, uint32_t from, uint32_t to);
void ChecksumReplace16(uint8_t* field, uint16_t from, uint16_t to);
// The same for a 128-bit IPv6 address (eight 16-bit words).
void ChecksumReplace128(uint8_t* field, const Ip6& from, const Ip6& to);

// Recompute from scratch the TCP checksum over the pseudo-header and the whole
// segment (used when the kernel says the field holds only a partial sum:
// NFQA_SKB_CSUMNOTREADY).
void TcpChecksumFull(TcpPacket* p);
// IPv6: the pseudo-header of RFC 8200 section 8.1 (both addresses, the
// upper-layer length, next header 6).
void TcpChecksumFull(TcpPacket6* p);

}  // namespace dpr
