/*
 * A bounded source of TCP SYNs for the data-path bench: crafted on a raw IP
 * socket and sent in batches with sendmmsg, so the sender costs little per
 * packet and outruns any NFQUEUE consumer. The 4-tuples cycle over --flows
 * distinct (source address, source port) pairs, so the consumer under test
 * sees a working set of flows, not one flow over and over.
 *
 *   syn_flood --dst ADDR [--dport 80] [--src ADDR] [--flows N] [--count N]
 *             [--seconds S] [--batch B] [--pps R] [--ack 1]
 *
 * --ack 1 sends bare ACKs instead: later packets of established flows (the
 * forward trial, where the kernel modes route them without a queue).
 * IPv6 addresses (both --dst and --src, 2001:2::/48 only) send IPv6 SYNs;
 * the flows then vary the last 32 bits of the source address and the port.
 *
 * Stops after --count packets or --seconds, whichever comes first. With
 * --pps it keeps to that rate (sleeping between batches), else it sends as
 * fast as it can. Prints one
 * JSON line: packets sent, seconds, packets/s, send errors, and the CPU time
 * it used, which includes the receiving namespace's softirq work that the
 * veth runs in the sender's context.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kPacketBytes = 40, kPacket6Bytes = 60, kPortsPerAddr = 64512, kFirstPort = 1024, kMaxBatch = 1024, kMaxAddrs = 64 };

struct options {
	int family;         /* AF_INET or AF_INET6, from --dst */
	uint32_t dst, src;  /* host order (IPv4) */
	struct in6_addr dst6, src6;
	uint16_t dport;
	uint32_t flows, batch;
	uint64_t count;
	double seconds;
	double pps;  /* 0: as fast as possible */
	int ack;     /* bare ACKs instead of SYNs */
};

static void usage(void)
{
	fprintf(stderr, "usage: syn_flood --dst ADDR [--dport 80] [--src ADDR] [--flows N] [--count N] "
			"[--seconds S] [--batch B] [--pps R] [--ack 1]\n");
	exit(2);
}

static uint32_t parse_addr(const char *text)
{
	struct in_addr a;
	if (inet_pton(AF_INET, text, &a) != 1) usage();
	return ntohl(a.s_addr);
}

/* 2001:2::/48, RFC 5180's benchmarking prefix: the first 6 bytes. */
static int in_bench6(const struct in6_addr *a)
{
	static const uint8_t prefix[6] = { 0x20, 0x01, 0x00, 0x02, 0x00, 0x00 };
	return memcmp(a->s6_addr, prefix, 6) == 0;
}

static struct in6_addr parse_addr6(const char *text)
{
	struct in6_addr a;
	if (inet_pton(AF_INET6, text, &a) != 1 || !in_bench6(&a)) usage();
	return a;
}

static struct options parse_options(int argc, char **argv)
{
	struct options o = { .family = AF_INET, .dst = 0, .src = parse_addr("198.18.0.16"), .dport = 80, .flows = 65536,
			     .batch = 256, .count = 500000, .seconds = 2.0 };
	int src6 = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--dst") && strchr(v, ':')) o.dst6 = parse_addr6(v), o.family = AF_INET6, o.dst = 0xc6120000u;
		else if (!strcmp(k, "--dst")) o.dst = parse_addr(v);
		else if (!strcmp(k, "--src") && strchr(v, ':')) o.src6 = parse_addr6(v), src6 = 1;
		else if (!strcmp(k, "--src")) o.src = parse_addr(v);
		else if (!strcmp(k, "--dport")) o.dport = (uint16_t)strtoul(v, NULL, 0);
		else if (!strcmp(k, "--flows")) o.flows = (uint32_t)strtoul(v, NULL, 0);
		else if (!strcmp(k, "--count")) o.count = strtoull(v, NULL, 0);
		else if (!strcmp(k, "--seconds")) o.seconds = strtod(v, NULL);
		else if (!strcmp(k, "--batch")) o.batch = (uint32_t)strtoul(v, NULL, 0);
		else if (!strcmp(k, "--pps")) o.pps = strtod(v, NULL);
		else if (!strcmp(k, "--ack")) o.ack = atoi(v);
		else usage();
	}
	if (o.family == AF_INET6 && !src6) o.src6 = parse_addr6("2001:2::1:0");
	if (o.family == AF_INET6) o.src = 0xc6120000u;  /* the IPv4 range check below passes; the IPv6 one was made */
	/* Only the benchmarking range, and a bounded working set. */
	const uint32_t last_src = o.src + (o.flows - 1) / kPortsPerAddr;
	if (argc % 2 == 0 || (o.dst >> 17) != (0xc612u >> 1) || (o.src >> 17) != (0xc612u >> 1) ||
	    (last_src >> 17) != (0xc612u >> 1) || o.flows == 0 || o.flows > kPortsPerAddr * kMaxAddrs ||
	    o.batch == 0 || o.batch > kMaxBatch || o.seconds <= 0 || o.seconds > 60 || o.pps < 0)
		usage();
	return o;
}

static double clock_s(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum)
{
	for (; len > 1; p += 2, len -= 2) sum += (uint32_t)(p[0] << 8 | p[1]);
	return sum;
}

static uint16_t finish(uint32_t sum)
{
	while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

/* A complete SYN with valid checksums: the consumer's incremental update must
 * start from a correct sum to produce one. */
static void build_syn(uint8_t *p, const struct options *o, uint32_t flow)
{
	memset(p, 0, kPacketBytes);
	uint8_t *tcp = p + 20;
	p[0] = 0x45;
	put16(p + 2, kPacketBytes);
	put16(p + 4, (uint16_t)flow);
	put16(p + 6, 0x4000);  /* DF */
	p[8] = 64;
	p[9] = IPPROTO_TCP;
	put32(p + 12, o->src + flow / kPortsPerAddr);
	put32(p + 16, o->dst);
	put16(p + 10, finish(sum16(p, 20, 0)));
	put16(tcp, (uint16_t)(kFirstPort + flow % kPortsPerAddr));
	put16(tcp + 2, o->dport);
	put32(tcp + 4, flow * 2654435761u);  /* any ISN; spread for realism */
	tcp[12] = 5 << 4;
	tcp[13] = o->ack ? 0x10 : 0x02;  /* ACK or SYN */
	if (o->ack) put32(tcp + 8, 1);
	put16(tcp + 14, 65535);
	uint32_t pseudo = sum16(p + 12, 8, 0) + IPPROTO_TCP + (kPacketBytes - 20);
	put16(tcp + 16, finish(sum16(tcp, kPacketBytes - 20, pseudo)));
}

/* The same SYN over IPv6: no header checksum; the TCP one covers the IPv6
 * pseudo-header (RFC 8200 section 8.1). */
static void build_syn6(uint8_t *p, const struct options *o, uint32_t flow)
{
	memset(p, 0, kPacket6Bytes);
	uint8_t *tcp = p + 40;
	p[0] = 0x60;
	put16(p + 4, 20);
	p[6] = IPPROTO_TCP;
	p[7] = 64;
	memcpy(p + 8, o->src6.s6_addr, 16);
	put32(p + 20, ((uint32_t)p[20] << 24 | (uint32_t)p[21] << 16 | (uint32_t)p[22] << 8 | p[23]) + flow / kPortsPerAddr);
	memcpy(p + 24, o->dst6.s6_addr, 16);
	put16(tcp, (uint16_t)(kFirstPort + flow % kPortsPerAddr));
	put16(tcp + 2, o->dport);
	put32(tcp + 4, flow * 2654435761u);
	tcp[12] = 5 << 4;
	tcp[13] = o->ack ? 0x10 : 0x02;
	if (o->ack) put32(tcp + 8, 1);
	put16(tcp + 14, 65535);
	uint32_t pseudo = sum16(p + 8, 32, 0) + IPPROTO_TCP + 20;
	put16(tcp + 16, finish(sum16(tcp, 20, pseudo)));
}

int main(int argc, char **argv)
{
	const struct options o = parse_options(argc, argv);
	const int six = o.family == AF_INET6;
	const size_t bytes = six ? kPacket6Bytes : kPacketBytes;
	uint8_t *pkts = malloc((size_t)o.flows * bytes);
	if (!pkts) return 1;
	for (uint32_t f = 0; f < o.flows; f++) {
		if (six) build_syn6(pkts + (size_t)f * bytes, &o, f);
		else build_syn(pkts + (size_t)f * bytes, &o, f);
	}

	/* IPPROTO_RAW implies IP_HDRINCL (for IPv6 too): the packets go out byte for byte. */
	int fd = socket(o.family, SOCK_RAW, IPPROTO_RAW);
	if (fd < 0) {
		fprintf(stderr, "syn_flood: raw socket: %s\n", strerror(errno));
		return 1;
	}
	struct sockaddr_in to4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(o.dst) };
	struct sockaddr_in6 to6 = { .sin6_family = AF_INET6, .sin6_addr = o.dst6 };
	void *to = six ? (void *)&to6 : (void *)&to4;
	const socklen_t tolen = six ? sizeof to6 : sizeof to4;
	static struct mmsghdr msgs[kMaxBatch];
	static struct iovec iov[kMaxBatch];

	uint64_t sent = 0, errors = 0;
	const double start = now_s(), cpu_start = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	double elapsed = 0;
	while (sent < o.count && elapsed < o.seconds) {
		uint32_t n = o.batch;
		if (o.count - sent < n) n = (uint32_t)(o.count - sent);
		uint32_t next = (uint32_t)(sent % o.flows);  /* after a partial send, resume where it stopped */
		for (uint32_t i = 0; i < n; i++) {
			iov[i] = (struct iovec){ pkts + (size_t)next * bytes, bytes };
			msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = to, .msg_namelen = tolen,
								 .msg_iov = &iov[i], .msg_iovlen = 1 } };
			next = next + 1 == o.flows ? 0 : next + 1;
		}
		int r = sendmmsg(fd, msgs, n, 0);
		if (r < 0) {
			errors++;  /* ENOBUFS and the like: the receiver is behind, go on */
		} else {
			sent += (uint64_t)r;
		}
		elapsed = now_s() - start;
		if (o.pps > 0) {
			/* Ahead of the rate: wait until the packets sent so far are due. */
			const double ahead = (double)sent / o.pps - elapsed;
			if (ahead > 0) {
				struct timespec ts = { (time_t)ahead, (long)((ahead - (double)(time_t)ahead) * 1e9) };
				nanosleep(&ts, NULL);
				elapsed = now_s() - start;
			}
		}
	}
	printf("{\"sent\":%llu,\"seconds\":%.6f,\"pps\":%.0f,\"errors\":%llu,\"cpuSeconds\":%.6f}\n",
	       (unsigned long long)sent, elapsed, elapsed > 0 ? (double)sent / elapsed : 0.0, (unsigned long long)errors,
	       clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu_start);
	close(fd);
	free(pkts);
	return 0;
}
