#include "checksum.h"

#include <cstring>

namespace dpr {

uint32_t ChecksumAdd(const uint8_t* data, size_t len, uint32_t sum) {
  // 64-bit accumulator: adding 32-bit loads cannot overflow for any packet size
  // we handle (< 2^32 words), and it halves the loop count.
  uint64_t acc = sum;
  while (len >= 4) {
    uint32_t w;
    std::memcpy(&w, data, 4);
    acc += w;
    data += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    std::memcpy(&w, data, 2);
    acc += w;
    data += 2;
    len -= 2;
  }
  if (len == 1) {
    // The odd byte is the high byte of a word in network order; in the native
    // (little-endian) sum it is the low byte of a host-order load.
    uint16_t w = 0;
    std::memcpy(&w, data, 1);
    acc += w;
  }
  while (acc >> 32) acc = (acc & 0xffffffffu) + (acc >> 32);
  return static_cast<uint32_t>(acc);
}

uint16_t ChecksumFold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffffu) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// All sums run on words as they lie in memory, so the result can be stored
// back without byte swapping on either endianness.
void ChecksumReplace32(uint8_t* field, uint32_t from, uint32_t to) {
  uint16_t hc;
  std::memcpy(&hc, field, 2);
  uint32_t sum = static_cast<uint16_t>(~hc);
  sum += (~from & 0xffffu) + ((~from >> 16) & 0xffffu);
  sum += (to & 0xffffu) + (to >> 16);
  const uint16_t out = ChecksumFold(sum);
  std::memcpy(field, &out, 2);
}

void ChecksumReplace16(uint8_t* field, uint16_t from, uint16_t to) {
  uint16_t hc;
  std::memcpy(&hc, field, 2);
  uint32_t sum = static_cast<uint16_t>(~hc);
  sum += static_cast<uint16_t>(~from);
  sum += to;
  const uint16_t out = ChecksumFold(sum);
  std::memcpy(field, &out, 2);
}

void ChecksumReplace128(uint8_t* field, const Ip6& from, const Ip6& to) {
  uint16_t hc;
  std::memcpy(&hc, field, 2);
  uint32_t sum = static_cast<uint16_t>(~hc);
  for (size_t i = 0; i < 16; i += 2) {
    uint16_t f, t;
    std::memcpy(&f, from.b + i, 2);
    std::memcpy(&t, to.b + i, 2);
    sum += static_cast<uint16_t>(~f);
    sum += t;
  }
  const uint16_t out = ChecksumFold(sum);
  std::memcpy(field, &out, 2);
}

namespace {
// The TCP checksum over `pseudo` (the family's pseudo-header) and the segment.
template <typename Addr>
void FillTcpChecksum(BasicTcpPacket<Addr>* p, const uint8_t* pseudo, size_t pseudoLength) {
  const size_t tcpLength = p->ipLength - p->ipHeaderLength;
  p->tcp[16] = 0;
  p->tcp[17] = 0;
  uint32_t sum = ChecksumAdd(pseudo, pseudoLength, 0);
  sum = ChecksumAdd(p->tcp, tcpLength, sum);
  const uint16_t out = ChecksumFold(sum);
  std::memcpy(p->tcp + 16, &out, 2);
}
}  // namespace

void TcpChecksumFull(TcpPacket6* p) {
  const size_t tcpLength = p->ipLength - p->ipHeaderLength;
  uint8_t pseudo[40] = {};
  std::memcpy(pseudo, p->ip + 8, 32);  // source and destination address
  pseudo[32] = static_cast<uint8_t>(tcpLength >> 24);
  pseudo[33] = static_cast<uint8_t>(tcpLength >> 16);
  pseudo[34] = static_cast<uint8_t>(tcpLength >> 8);
  pseudo[35] = static_cast<uint8_t>(tcpLength);
  pseudo[39] = 6;
  FillTcpChecksum(p, pseudo, sizeof pseudo);
}

void TcpChecksumFull(TcpPacket* p) {
  const size_t tcpLength = p->ipLength - p->ipHeaderLength;
  uint8_t pseudo[12];
  std::memcpy(pseudo, p->ip + 12, 8);  // source and destination address
  pseudo[8] = 0;
  pseudo[9] = 6;
  pseudo[10] = static_cast<uint8_t>(tcpLength >> 8);
  pseudo[11] = static_cast<uint8_t>(tcpLength);
  FillTcpChecksum(p, pseudo, sizeof pseudo);
}

}  // namespace dpr
