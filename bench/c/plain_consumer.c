/*
 * The yardstick for dpr's data path: the plainest NFQUEUE consumer that does
 * the work dpr's forward path needs at minimum, written the naive way (one
 * recv per packet, one verdict sendto per packet, no flow table, no batching).
 *
 *   plain_consumer --queue N --mode rewrite|accept [--to ADDR] [--port P]
 *                  [--mark M] [--maxlen L] [--rcvbuf BYTES]
 *
 * rewrite: destination -> ADDR:P with incremental checksum updates, verdict
 *          NF_REPEAT + mark (what dpr's entry host does for a forwarded flow).
 * accept:  NF_ACCEPT unchanged (what dpr does for a locally served SYN).
 *
 * The queue is configured like dpr's (copy mode, max length, receive buffer,
 * fail-open + GSO flags) so only the consumer differs. Prints "ready" once
 * bound; on SIGTERM prints one JSON line with its counts. The bench times it
 * from outside (queue length, CPU time), as it does dpr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

/* One queued packet (copy range 0xffff) plus netlink headers and attributes. */
enum { kMsgBytes = 0xffff + 4096 };

struct options {
	uint16_t queue;
	int rewrite;
	uint32_t to;      /* network order */
	uint16_t port;    /* host order */
	uint32_t mark;
	uint32_t maxlen;
	int rcvbuf;
};

struct counts {
	uint64_t packets, repeated, accepted, not_tcp, csum_full, recv_errors, send_errors;
};

static volatile sig_atomic_t stopping;

static void on_term(int sig) { (void)sig; stopping = 1; }

static void die(const char *what)
{
	fprintf(stderr, "plain_consumer: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: plain_consumer --queue N --mode rewrite|accept [--to ADDR] [--port P] "
			"[--mark M] [--maxlen L] [--rcvbuf BYTES]\n");
	exit(2);
}

static struct options parse_options(int argc, char **argv)
{
	struct options o = { .queue = 0, .rewrite = -1, .port = 20000, .mark = 0x100,
			     .maxlen = 4096, .rcvbuf = 8 << 20 };
	inet_pton(AF_INET, "198.18.0.2", &o.to);
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--queue")) o.queue = (uint16_t)strtoul(v, NULL, 0);
		else if (!strcmp(k, "--mode")) o.rewrite = !strcmp(v, "rewrite") ? 1 : !strcmp(v, "accept") ? 0 : -1;
		else if (!strcmp(k, "--to")) { if (inet_pton(AF_INET, v, &o.to) != 1) usage(); }
		else if (!strcmp(k, "--port")) o.port = (uint16_t)strtoul(v, NULL, 0);
		else if (!strcmp(k, "--mark")) o.mark = (uint32_t)strtoul(v, NULL, 0);
		else if (!strcmp(k, "--maxlen")) o.maxlen = (uint32_t)strtoul(v, NULL, 0);
		else if (!strcmp(k, "--rcvbuf")) o.rcvbuf = (int)strtol(v, NULL, 0);
		else usage();
	}
	if (o.rewrite < 0 || argc % 2 == 0) usage();
	return o;
}

/* --- checksums (RFC 1071 sums, RFC 1624 eqn. 3 updates) ------------------ */

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static uint32_t sum_bytes(const uint8_t *p, size_t len, uint32_t sum)
{
	for (; len > 1; p += 2, len -= 2) sum += (uint32_t)(p[0] << 8 | p[1]);
	if (len) sum += (uint32_t)(p[0] << 8);
	return sum;
}

/* HC' = ~(~HC + ~m + m') for one 16-bit word m -> m' (host order values). */
static void csum_replace16(uint8_t *field, uint16_t from, uint16_t to)
{
	uint32_t hc = (uint32_t)(field[0] << 8 | field[1]);
	uint16_t res = (uint16_t)~fold((uint16_t)~hc + (uint16_t)~from + (uint32_t)to);
	field[0] = (uint8_t)(res >> 8);
	field[1] = (uint8_t)res;
}

static void csum_replace_addr(uint8_t *field, const uint8_t *from, const uint8_t *to)
{
	csum_replace16(field, (uint16_t)(from[0] << 8 | from[1]), (uint16_t)(to[0] << 8 | to[1]));
	csum_replace16(field, (uint16_t)(from[2] << 8 | from[3]), (uint16_t)(to[2] << 8 | to[3]));
}

/* The field holds only the pseudo-header sum (CHECKSUM_PARTIAL) and the kernel
 * will not finish it for mangled bytes: compute the whole thing. */
static void tcp_csum_full(uint8_t *ip, uint8_t *tcp, size_t tcp_len)
{
	uint32_t sum = sum_bytes(ip + 12, 8, 0) + IPPROTO_TCP + (uint32_t)tcp_len;
	tcp[16] = tcp[17] = 0;
	uint16_t res = (uint16_t)~fold(sum_bytes(tcp, tcp_len, sum));
	tcp[16] = (uint8_t)(res >> 8);
	tcp[17] = (uint8_t)res;
}

/* dst -> o->to:o->port on an unfragmented IPv4/TCP packet; 0 when it is not one. */
static int rewrite(uint8_t *ip, size_t len, int csum_not_ready, const struct options *o, struct counts *c)
{
	if (len < 20 || ip[0] >> 4 != 4 || ip[9] != IPPROTO_TCP) return 0;
	size_t ihl = (size_t)(ip[0] & 0xf) * 4;
	size_t tot = (size_t)(ip[2] << 8 | ip[3]);
	if (ihl < 20 || tot > len || tot < ihl + 20 || (ip[6] & 0x3f) || ip[7]) return 0;
	uint8_t *tcp = ip + ihl;
	const uint8_t *to = (const uint8_t *)&o->to;
	uint16_t old_port = (uint16_t)(tcp[2] << 8 | tcp[3]);

	csum_replace_addr(ip + 10, ip + 16, to);
	if (csum_not_ready) {
		memcpy(ip + 16, to, 4);
		tcp[2] = (uint8_t)(o->port >> 8);
		tcp[3] = (uint8_t)o->port;
		tcp_csum_full(ip, tcp, tot - ihl);
		c->csum_full++;
		return 1;
	}
	csum_replace_addr(tcp + 16, ip + 16, to);
	csum_replace16(tcp + 16, old_port, o->port);
	memcpy(ip + 16, to, 4);
	tcp[2] = (uint8_t)(o->port >> 8);
	tcp[3] = (uint8_t)o->port;
	return 1;
}

/* --- netlink ------------------------------------------------------------- */

static void send_config(struct mnl_socket *nl, const struct options *o, int step)
{
	static char buf[kMsgBytes];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, o->queue);
	nlh->nlmsg_flags |= NLM_F_ACK;
	switch (step) {
	case 0: nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND); break;
	case 1: nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 0xffff); break;
	case 2: nfq_nlmsg_cfg_put_qmaxlen(nlh, o->maxlen); break;
	default:
		mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO));
		mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO));
	}
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) die("send queue config");
	/* Nothing is queued before we bind and the sender starts after "ready",
	 * so the next message is the acknowledgement. */
	ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
	if (n < 0 || mnl_cb_run(buf, (size_t)n, 0, mnl_socket_get_portid(nl), NULL, NULL) < 0)
		die("queue config acknowledgement");
}

static struct mnl_socket *open_queue(const struct options *o)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!nl) die("mnl_socket_open");
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) die("mnl_socket_bind");
	int fd = mnl_socket_get_fd(nl);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &o->rcvbuf, sizeof o->rcvbuf) < 0) die("SO_RCVBUFFORCE");
	int one = 1;
	setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
	for (int step = 0; step < 4; step++) send_config(nl, o, step);
	/* recv wakes up now and then, so SIGTERM is seen even when idle. */
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return nl;
}

static void handle_packet(struct mnl_socket *nl, const struct nlmsghdr *in, const struct options *o,
			  struct counts *c)
{
	struct nlattr *attr[NFQA_MAX + 1] = { 0 };
	if (nfq_nlmsg_parse(in, attr) < 0 || !attr[NFQA_PACKET_HDR]) {
		c->recv_errors++;
		return;
	}
	const struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	uint8_t *pkt = attr[NFQA_PAYLOAD] ? mnl_attr_get_payload(attr[NFQA_PAYLOAD]) : NULL;
	uint16_t len = attr[NFQA_PAYLOAD] ? mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]) : 0;
	int not_ready = attr[NFQA_SKB_INFO] &&
			(ntohl(mnl_attr_get_u32(attr[NFQA_SKB_INFO])) & NFQA_SKB_CSUMNOTREADY);

	static char buf[kMsgBytes];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT, o->queue);
	if (o->rewrite && pkt && rewrite(pkt, len, not_ready, o, c)) {
		nfq_nlmsg_verdict_put(nlh, (int)ntohl(ph->packet_id), NF_REPEAT);
		nfq_nlmsg_verdict_put_mark(nlh, o->mark);
		nfq_nlmsg_verdict_put_pkt(nlh, pkt, len);
		c->repeated++;
	} else {
		if (o->rewrite) c->not_tcp++;
		nfq_nlmsg_verdict_put(nlh, (int)ntohl(ph->packet_id), NF_ACCEPT);
		c->accepted++;
	}
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) c->send_errors++;
}

static void run(struct mnl_socket *nl, const struct options *o, struct counts *c)
{
	static char buf[kMsgBytes];
	while (!stopping) {
		ssize_t n = recv(mnl_socket_get_fd(nl), buf, sizeof buf, 0);
		if (n < 0) {
			if (errno != EINTR && errno != EAGAIN && errno != ENOBUFS) c->recv_errors++;
			continue;
		}
		int left = (int)n;
		for (struct nlmsghdr *m = (struct nlmsghdr *)buf; mnl_nlmsg_ok(m, left); m = mnl_nlmsg_next(m, &left)) {
			if ((m->nlmsg_type & 0xff) != NFQNL_MSG_PACKET) continue;
			c->packets++;
			handle_packet(nl, m, o, c);
		}
	}
}

int main(int argc, char **argv)
{
	const struct options o = parse_options(argc, argv);
	struct sigaction sa = { .sa_handler = on_term }; /* no SA_RESTART: recv returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	struct mnl_socket *nl = open_queue(&o);
	printf("ready\n");
	fflush(stdout);

	struct counts c = { 0 };
	run(nl, &o, &c);
	mnl_socket_close(nl); /* closing the socket unbinds the queue */

	printf("{\"packets\":%llu,\"repeated\":%llu,\"accepted\":%llu,\"notTcp\":%llu,\"csumFull\":%llu,"
	       "\"recvErrors\":%llu,\"sendErrors\":%llu}\n",
	       (unsigned long long)c.packets, (unsigned long long)c.repeated, (unsigned long long)c.accepted,
	       (unsigned long long)c.not_tcp, (unsigned long long)c.csum_full,
	       (unsigned long long)c.recv_errors, (unsigned long long)c.send_errors);
	return 0;
}
