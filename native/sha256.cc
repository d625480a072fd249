#include "sha256.h"

#include <cstring>

namespace dpr {

namespace {

constexpr uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr Sha256State kInitial = {{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}};

uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

void Compress(Sha256State* s, const uint8_t* block) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i) {
    w[i] = static_cast<uint32_t>(block[4 * i]) << 24 | static_cast<uint32_t>(block[4 * i + 1]) << 16 |
           static_cast<uint32_t>(block[4 * i + 2]) << 8 | block[4 * i + 3];
  }
  for (int i = 16; i < 64; ++i) {
    const uint32_t s0 = Rotr(w[i - 15], 7) ^ Rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const uint32_t s1 = Rotr(w[i - 2], 17) ^ Rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; ++i) {
    const uint32_t t1 = h + (Rotr(e, 6) ^ Rotr(e, 11) ^ Rotr(e, 25)) + ((e & f) ^ (~e & g)) + kK[i] + w[i];
    const uint32_t t2 = (Rotr(a, 2) ^ Rotr(a, 13) ^ Rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
  s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

// Finishes a hash whose state has absorbed `prefix` bytes (a multiple of 64) with `data`.
void Finish(Sha256State s, uint64_t prefix, const uint8_t* data, size_t length, uint8_t* out) {
  size_t off = 0;
  for (; length - off >= 64; off += 64) Compress(&s, data + off);
  uint8_t block[128] = {};
  const size_t rest = length - off;
  std::memcpy(block, data + off, rest);
  block[rest] = 0x80;
  const size_t total = rest + 9 <= 64 ? 64 : 128;
  const uint64_t bits = (prefix + length) * 8;
  for (int i = 0; i < 8; ++i) block[total - 1 - i] = static_cast<uint8_t>(bits >> (8 * i));
  Compress(&s, block);
  if (total == 128) Compress(&s, block + 64);
  for (int i = 0; i < 8; ++i) {
    out[4 * i] = static_cast<uint8_t>(s.h[i] >> 24);
    out[4 * i + 1] = static_cast<uint8_t>(s.h[i] >> 16);
    out[4 * i + 2] = static_cast<uint8_t>(s.h[i] >> 8);
    out[4 * i + 3] = static_cast<uint8_t>(s.h[i]);
  }
}

}  // namespace

void Sha256(const uint8_t* data, size_t length, uint8_t* out) { Finish(kInitial, 0, data, length, out); }

HmacSha256::HmacSha256(const uint8_t* key, size_t keyLength) {
  uint8_t k[64] = {};
  if (keyLength > 64) {
    Sha256(key, keyLength, k);
  } else {
    std::memcpy(k, key, keyLength);
  }
  uint8_t pad[64];
  for (int i = 0; i < 64; ++i) pad[i] = k[i] ^ 0x36;
  inner_ = kInitial;
  Compress(&inner_, pad);
  for (int i = 0; i < 64; ++i) pad[i] = k[i] ^ 0x5c;
  outer_ = kInitial;
  Compress(&outer_, pad);
}

void HmacSha256::Mac(const uint8_t* data, size_t length, uint8_t* out) const {
  uint8_t innerHash[32];
  Finish(inner_, 64, data, length, innerHash);
  Finish(outer_, 64, innerHash, 32, out);
}

}  // namespace dpr
