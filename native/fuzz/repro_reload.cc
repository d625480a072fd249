// Reproducers of two findings of the IPv6 fuzz work (not part of the fuzz
// target, which never reloads, so it cannot see them), both about a reload
// (Engine::SetHosts) while flows live.
//
// `v6` (the default): EngineConfig promises that IPv6 packets are "forwarded only to hosts with
// IPv6 addresses", but after SetHosts takes a peer's IPv6 addresses away
// (a reload; the host keeps its IPv4 ones and its place in the lookup table)
// the next segment of a live IPv6 flow to it is still forwarded, rewritten
// to the unspecified address `::`. IPv4 behaves the same for a host whose addresses are
// zeroed (0.0.0.0), which the daemon avoids by keeping a removed host's
// addresses (docs/design-notes.md, "Removed hosts are retired"); it must
// keep the IPv6 ones likewise, and the engine could refuse the rewrite.
//
// `shrink`: HostsProblem accepts a shorter host list, and the next segment
// of a flow to an id past its end reads the cluster address beyond the
// vector (ASan: heap-buffer-overflow in Engine::Rewrite), IPv4 and IPv6.
//
// Build and run (exit 1, or an ASan report, while the defect stands):
//   clang++ -std=c++17 -g -fsanitize=address,undefined -Inative -o build/fuzz/repro_reload \
//     native/fuzz/repro_reload.cc native/{packet,checksum,siphash,flow_table,flow_track,load_choice,load_decider,own_load,icmp,engine,engine_icmp}.cc
//   build/fuzz/repro_reload v6; build/fuzz/repro_reload shrink
#include <cstdio>
#include <cstring>

#include "harness.h"
#include "reference.h"

namespace {

using namespace fuzz;  // NOLINT(build/namespaces): a one-file program

// A segment from [2001:2:0:100::7]:40001 to [2001:2::10]:80 with valid checksums.
std::vector<uint8_t> Segment(uint8_t flags, uint32_t seq) {
  std::vector<uint8_t> b(60, 0);
  b[0] = 0x60, b[5] = 20, b[6] = 6, b[7] = 64;  // payload 20 bytes, TCP, hop limit 64
  Ip6 client = Addr6(0, 7);
  client.b[6] = 0x01;  // 2001:2:0:100::7
  std::memcpy(&b[8], client.b, 16);
  std::memcpy(&b[24], Addr6(0, 0x10).b, 16);
  ref::Put16(&b[40], 40001);
  ref::Put16(&b[42], 80);
  ref::Put16(&b[44], static_cast<uint16_t>(seq >> 16));
  ref::Put16(&b[46], static_cast<uint16_t>(seq));
  b[52] = 0x50, b[53] = flags, b[54] = 0xff;
  ref::FixChecksums6(b.data(), b.size(), false);
  return b;
}

// A SYN forwarded to host 1, then SetHosts with `service`/`cluster`, then an
// ACK of the flow: returns 1 if it was forwarded to no address.
int AfterReload(const std::vector<uint32_t>& service, const std::vector<uint32_t>& cluster,
                const std::vector<Ip6>& service6, const std::vector<Ip6>& cluster6) {
  const EngineConfig c = MakeConfig(0, 0);  // entry, hash, dual-stack
  Engine engine(c);
  engine.SetLookupTable(Tables()[2]);  // every client to host 1
  const dpr::PacketMeta meta;
  std::vector<uint8_t> syn = Segment(dpr::kTcpSyn, 1);
  const Outcome first = engine.Process(syn.data(), syn.size(), meta, 1000);
  if (first.action != Action::kForward || first.target != 1) {
    std::printf("set-up: the SYN was not forwarded to host 1\n");
    return 2;
  }
  engine.SetHosts(service, cluster, service6, cluster6);
  std::vector<uint8_t> ack = Segment(dpr::kTcpAck, 2);
  const Outcome o = engine.Process(ack.data(), ack.size(), meta, 1001);
  Ip6 dst;
  std::memcpy(dst.b, &ack[24], 16);
  const bool toNowhere = o.action == Action::kForward && dpr::IsNoAddress(dst);
  std::printf("after the reload the ACK is %s to host %u%s\n", dpr::ActionName(o.action), o.target,
              toNowhere ? ", rewritten to :: (DEFECT)" : "");
  return toNowhere ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const EngineConfig c = MakeConfig(0, 0);
  if (argc > 1 && std::strcmp(argv[1], "shrink") == 0) {
    // Hosts 1-3 gone from the lists (ids 0 only).
    return AfterReload({c.serviceAddr[0]}, {c.clusterAddr[0]}, {c.serviceAddr6[0]}, {c.clusterAddr6[0]});
  }
  std::vector<Ip6> service6 = c.serviceAddr6, cluster6 = c.clusterAddr6;
  service6[1] = cluster6[1] = Ip6{};  // host 1 is IPv4-only from now on
  return AfterReload(c.serviceAddr, c.clusterAddr, service6, cluster6);
}
