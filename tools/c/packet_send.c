/*
 * Sends hand-made IPv4 packets, malformed ones included, as Ethernet frames:
 * the kernel's IP layer never sees them on the way out, so it cannot refuse
 * or repair them. Used by the fault tests to put bad input on a test bed's
 * link, byte for byte.
 *
 *   packet_send --ifname IF --dst-mac MAC [--repeat N] [--gap-us U] < packets.hex
 *
 * stdin: one packet per line as hex (the IP packet: the frame's payload;
 * EtherType 0x0800 whatever the bytes say); blank lines and lines starting
 * with '#' are skipped. Every packet is sent --repeat times (default 1), the
 * lines in turn, --gap-us microseconds apart (default 0). A packet long
 * enough to carry a destination address must name one in 198.18.0.0/15 (the
 * benchmarking range): the tool is for test beds only.
 * Prints one JSON line: packets read, frames sent, send errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kMaxPacket = 65535, kMaxPackets = 100000 };

struct packet {
	uint8_t *bytes;
	size_t len;
};

static void usage(void)
{
	fprintf(stderr, "usage: packet_send --ifname IF --dst-mac aa:bb:cc:dd:ee:ff [--repeat N] [--gap-us U] < packets.hex\n");
	exit(2);
}

static int parse_mac(const char *text, uint8_t mac[6])
{
	unsigned int b[6];
	if (sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) return -1;
	for (int i = 0; i < 6; i++) mac[i] = (uint8_t)b[i];
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Returns the packet's length, or -1 if the line is not whole hex bytes. */
static long decode(const char *line, size_t n, uint8_t *out)
{
	if (n % 2 != 0 || n / 2 > kMaxPacket) return -1;
	for (size_t i = 0; i < n; i += 2) {
		const int hi = hexval(line[i]), lo = hexval(line[i + 1]);
		if (hi < 0 || lo < 0) return -1;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return (long)(n / 2);
}

static int in_test_range(const uint8_t *addr) { return addr[0] == 198 && (addr[1] & 0xfe) == 18; }

static void sleep_us(long us)
{
	if (us <= 0) return;
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

int main(int argc, char **argv)
{
	const char *ifname = NULL;
	uint8_t mac[6];
	int have_mac = 0;
	unsigned long repeat = 1;
	long gap_us = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--ifname")) ifname = v;
		else if (!strcmp(k, "--dst-mac")) have_mac = parse_mac(v, mac) == 0;
		else if (!strcmp(k, "--repeat")) repeat = strtoul(v, NULL, 0);
		else if (!strcmp(k, "--gap-us")) gap_us = strtol(v, NULL, 0);
		else usage();
	}
	if (argc % 2 == 0 || !ifname || !have_mac || repeat == 0 || repeat > 1000000 || gap_us < 0) usage();
	const unsigned int ifindex = if_nametoindex(ifname);
	if (ifindex == 0) {
		fprintf(stderr, "packet_send: interface %s: %s\n", ifname, strerror(errno));
		return 1;
	}

	struct packet *packets = calloc(kMaxPackets, sizeof *packets);
	uint8_t *scratch = malloc(kMaxPacket);
	if (!packets || !scratch) return 1;
	size_t count = 0, lineno = 0, cap = 0;
	char *line = NULL;
	ssize_t got;
	while ((got = getline(&line, &cap, stdin)) >= 0) {
		lineno++;
		size_t n = (size_t)got;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) n--;
		if (n == 0 || line[0] == '#') continue;
		const long len = decode(line, n, scratch);
		if (len <= 0) {
			fprintf(stderr, "packet_send: line %zu: not hex bytes\n", lineno);
			return 2;
		}
		if (len >= 20 && !in_test_range(scratch + 16)) {
			fprintf(stderr, "packet_send: line %zu: destination outside 198.18.0.0/15\n", lineno);
			return 2;
		}
		if (count == kMaxPackets) {
			fprintf(stderr, "packet_send: more than %d packets\n", kMaxPackets);
			return 2;
		}
		packets[count].bytes = malloc((size_t)len);
		if (!packets[count].bytes) return 1;
		memcpy(packets[count].bytes, scratch, (size_t)len);
		packets[count].len = (size_t)len;
		count++;
	}
	free(line);

	/* SOCK_DGRAM: the kernel writes the Ethernet header (our MAC, theirs,
	 * 0x0800) and nothing else; the payload goes out as given. */
	const int fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
	if (fd < 0) {
		fprintf(stderr, "packet_send: AF_PACKET socket: %s\n", strerror(errno));
		return 1;
	}
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP),
				  .sll_ifindex = (int)ifindex, .sll_halen = 6 };
	memcpy(to.sll_addr, mac, 6);

	unsigned long long sent = 0, errors = 0;
	int last_errno = 0;
	for (unsigned long r = 0; r < repeat; r++) {
		for (size_t i = 0; i < count; i++) {
			if (sendto(fd, packets[i].bytes, packets[i].len, 0, (struct sockaddr *)&to, sizeof to) < 0) {
				errors++;
				last_errno = errno;
			} else {
				sent++;
			}
			sleep_us(gap_us);
		}
	}
	printf("{\"packets\":%zu,\"sent\":%llu,\"errors\":%llu,\"lastError\":\"%s\"}\n", count, sent, errors,
	       last_errno ? strerror(last_errno) : "");
	close(fd);
	for (size_t i = 0; i < count; i++) free(packets[i].bytes);
	free(packets);
	free(scratch);
	return 0;
}
