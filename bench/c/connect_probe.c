/*
 * Connection set-up time as a client sees it: for each source port read from
 * stdin (one a line), bind it, time a blocking connect() to --dst:--port with
 * CLOCK_MONOTONIC, close. One connection at a time, so every sample is one
 * SYN -> SYN-ACK round trip through whatever sits in between, undisturbed by
 * the probe's own other connections.
 *
 *   connect_probe --dst ADDR [--port 80] --src ADDR [--warmup N] [--timeout-ms MS] [--gap-us US] < ports
 *
 * The source port is chosen by the caller because, under dpr's hash policy,
 * it decides which host serves the connection: the bench picks ports that the
 * lookup table keeps local, or sends to the peer. The first --warmup ports are
 * connected but not recorded (ARP, caches, the server's first accepts).
 * --gap-us paces the connections: back to back they come faster than a node
 * server accepts them, its listen queue overflows and the kernel drops SYNs
 * (a 1 s retransmit in the samples), which says nothing about the path.
 *
 * Prints one JSON line: samples in ns (in port order), and errors by errno.
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
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum { kMaxPorts = 65536, kMaxErrno = 256 };

struct options {
	struct in_addr dst, src;
	uint16_t port;
	unsigned warmup;
	unsigned timeout_ms;
	unsigned gap_us;
};

static void usage(void)
{
	fprintf(stderr, "usage: connect_probe --dst ADDR [--port 80] --src ADDR [--warmup N] [--timeout-ms MS] [--gap-us US] < ports\n");
	exit(2);
}

static struct in_addr parse_addr(const char *text)
{
	struct in_addr a;
	if (inet_pton(AF_INET, text, &a) != 1) usage();
	return a;
}

static struct options parse_options(int argc, char **argv)
{
	struct options o = { .port = 80, .warmup = 0, .timeout_ms = 2000, .gap_us = 0 };
	int have_dst = 0, have_src = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--dst")) o.dst = parse_addr(v), have_dst = 1;
		else if (!strcmp(k, "--src")) o.src = parse_addr(v), have_src = 1;
		else if (!strcmp(k, "--port")) o.port = (uint16_t)strtoul(v, NULL, 10);
		else if (!strcmp(k, "--warmup")) o.warmup = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(k, "--timeout-ms")) o.timeout_ms = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(k, "--gap-us")) o.gap_us = (unsigned)strtoul(v, NULL, 10);
		else usage();
	}
	if (!have_dst || !have_src || argc % 2 == 0) usage();
	return o;
}

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Returns the connect time in ns, or -errno. */
static int64_t one(const struct options *o, uint16_t sport)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) return -errno;
	/* A connect that gets no answer fails after the timeout instead of the
	 * kernel's minutes of SYN retries; SO_SNDTIMEO bounds a blocking connect. */
	struct timeval tv = { .tv_sec = o->timeout_ms / 1000, .tv_usec = (o->timeout_ms % 1000) * 1000 };
	int one_ = 1;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one_, sizeof one_);
	struct sockaddr_in src = { .sin_family = AF_INET, .sin_addr = o->src, .sin_port = htons(sport) };
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_addr = o->dst, .sin_port = htons(o->port) };
	int64_t r;
	if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
		r = -errno;
	} else {
		int64_t t0 = now_ns();
		r = connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 ? -errno : now_ns() - t0;
	}
	close(fd);
	return r;
}

static unsigned read_ports(uint16_t *ports)
{
	unsigned n = 0, p;
	while (n < kMaxPorts && scanf("%u", &p) == 1) {
		if (p == 0 || p > 65535) {
			fprintf(stderr, "connect_probe: bad port %u\n", p);
			exit(2);
		}
		ports[n++] = (uint16_t)p;
	}
	return n;
}

int main(int argc, char **argv)
{
	struct options o = parse_options(argc, argv);
	static uint16_t ports[kMaxPorts];
	static int64_t samples[kMaxPorts];
	unsigned errs[kMaxErrno] = { 0 };
	unsigned n = read_ports(ports), recorded = 0, errors = 0;
	const struct timespec gap = { .tv_sec = o.gap_us / 1000000, .tv_nsec = (long)(o.gap_us % 1000000) * 1000 };
	for (unsigned i = 0; i < n; i++) {
		if (o.gap_us) nanosleep(&gap, NULL);
		int64_t r = one(&o, ports[i]);
		if (r < 0) {
			errors++;
			errs[-r < kMaxErrno ? -r : 0]++;
		} else if (i >= o.warmup) {
			samples[recorded++] = r;
		}
	}
	printf("{\"connections\":%u,\"errors\":%u,\"errno\":{", n, errors);
	const char *sep = "";
	for (int e = 0; e < kMaxErrno; e++) {
		if (errs[e]) printf("%s\"%s\":%u", sep, e ? strerrorname_np(e) : "other", errs[e]), sep = ",";
	}
	printf("},\"samplesNs\":[");
	for (unsigned i = 0; i < recorded; i++) printf("%s%lld", i ? "," : "", (long long)samples[i]);
	printf("]}\n");
	return 0;
}
