/*
 * reg_blast.c - REGISTER flood from one source address, as fast as one core
 * can send it (or at a fixed rate), for bench/run.sh KIND=flood FLOODER=blast.
 *
 *   reg_blast SRC_IP SRC_PORT DST_IP DST_PORT SECS RATE
 *
 * Sends from SRC_IP:SRC_PORT to DST_IP:DST_PORT for SECS seconds (at most 120)
 * the REGISTER of scenarios/reg_flood.xml (no credentials, User-Agent
 * bench-flooder), with a fresh Via branch, From tag, Call-ID and user per
 * datagram, so that no proxy can treat them as retransmissions. RATE 0 means
 * as fast as possible (sendmmsg, 64 datagrams per call); RATE > 0 paces to
 * that many datagrams per second. Both addresses must be loopback (127/8):
 * this tool refuses anything else. It stops by itself.
 *
 * Replies (the 401s before the ban) are read on the same socket and counted.
 * The one output line is key=value:
 *   sent per_s span_s replies replies_last5s first_reply_ms last_reply_ms
 *   send_errors
 * where replies_last5s counts replies received during the last 5 s of the
 * flood (0 = the source was cut off) and the *_reply_ms are milliseconds
 * after the first datagram was sent.
 *
 * Based on ../shared/bench/kamailio/udp_ceiling.c (whose blast mode sends a
 * fixed 'S'-filled payload from 127.0.0.1 only, so it cannot stand in here).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MARK "################" /* 16 hex digits of the datagram counter */
#define MAXREPLY 1000000

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int loopback(const char *ip, struct in_addr *out) {
	if (inet_pton(AF_INET, ip, out) != 1) return 0;
	return (ntohl(out->s_addr) >> 24) == 127;
}

static double reply_at[MAXREPLY];

int main(int argc, char **argv) {
	if (argc != 7) {
		fprintf(stderr, "usage: reg_blast SRC_IP SRC_PORT DST_IP DST_PORT SECS RATE(0=max)\n");
		return 2;
	}
	struct sockaddr_in src = { .sin_family = AF_INET }, dst = { .sin_family = AF_INET };
	int sport = atoi(argv[2]), dport = atoi(argv[4]);
	double secs = atof(argv[5]);
	double rate = atof(argv[6]);
	if (!loopback(argv[1], &src.sin_addr) || !loopback(argv[3], &dst.sin_addr)) {
		fprintf(stderr, "reg_blast: both addresses must be in 127.0.0.0/8\n");
		return 2;
	}
	if (sport < 1 || sport > 65535 || dport < 1 || dport > 65535 || secs <= 0 || secs > 120 || rate < 0) {
		fprintf(stderr, "reg_blast: bad arguments\n");
		return 2;
	}
	src.sin_port = htons(sport);
	dst.sin_port = htons(dport);

	char tmpl[1024];
	int len = snprintf(tmpl, sizeof tmpl,
		"REGISTER sip:%s:%d SIP/2.0\r\n"
		"Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-" MARK "\r\n"
		"From: <sip:flood" MARK "@%s:%d>;tag=fl" MARK "\r\n"
		"To: <sip:flood" MARK "@%s:%d>\r\n"
		"Call-ID: " MARK "-blast@%s\r\n"
		"CSeq: 1 REGISTER\r\n"
		"Contact: <sip:flood" MARK "@%s:%d;transport=UDP>\r\n"
		"Expires: 3600\r\n"
		"Max-Forwards: 70\r\n"
		"User-Agent: bench-flooder\r\n"
		"Content-Length: 0\r\n\r\n",
		argv[3], dport, argv[1], sport, argv[3], dport, argv[3], dport, argv[1], argv[1], sport);
	if (len <= 0 || len >= (int)sizeof tmpl) return 2;
	/* where the counter goes */
	int marks[16], nmarks = 0;
	for (char *p = tmpl; (p = strstr(p, MARK)) && nmarks < 16; p += 16) marks[nmarks++] = p - tmpl;

	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0) { perror("socket"); return 1; }
	int one = 1, sz = 4 * 1024 * 1024;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(s, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	if (bind(s, (struct sockaddr *)&src, sizeof src) < 0) { perror("bind"); return 1; }
	if (connect(s, (struct sockaddr *)&dst, sizeof dst) < 0) { perror("connect"); return 1; }

	static char bufs[BATCH][1024];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	memset(msgs, 0, sizeof msgs);
	for (int i = 0; i < BATCH; i++) {
		memcpy(bufs[i], tmpl, len);
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = len;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	static const char hex[] = "0123456789abcdef";
	unsigned long long sent = 0, errors = 0, replies = 0;
	char rbuf[65536];
	double t0 = now(), deadline = t0 + secs, t = t0;
	while ((t = now()) < deadline) {
		int n = BATCH;
		if (rate > 0) {
			double due = rate * (t - t0) - (double)sent;
			if (due < 1) {
				struct timespec ts = { 0, 100000 }; /* 0.1 ms */
				nanosleep(&ts, NULL);
				goto drain;
			}
			if (due < n) n = (int)due;
		}
		for (int i = 0; i < n; i++) {
			unsigned long long c = sent + i;
			for (int m = 0; m < nmarks; m++)
				for (int d = 15; d >= 0; d--) bufs[i][marks[m] + 15 - d] = hex[(c >> (4 * d)) & 15];
		}
		int k = sendmmsg(s, msgs, n, 0);
		if (k > 0) sent += k;
		else if (errno != EINTR) errors++; /* ECONNREFUSED from an ICMP, ENOBUFS: count, go on */
	drain:
		for (;;) {
			ssize_t r = recv(s, rbuf, sizeof rbuf, MSG_DONTWAIT);
			if (r < 0) break;
			if (replies < MAXREPLY) reply_at[replies] = now() - t0;
			replies++;
		}
	}
	double span = now() - t0;
	/* replies still in flight for the last datagrams */
	usleep(200000);
	for (;;) {
		ssize_t r = recv(s, rbuf, sizeof rbuf, MSG_DONTWAIT);
		if (r < 0) break;
		if (replies < MAXREPLY) reply_at[replies] = now() - t0;
		replies++;
	}
	unsigned long long last5 = 0;
	unsigned long long kept = replies < MAXREPLY ? replies : MAXREPLY;
	for (unsigned long long i = 0; i < kept; i++)
		if (reply_at[i] >= span - 5) last5++;
	printf("blast sent=%llu span_s=%.2f per_s=%.0f replies=%llu replies_last5s=%llu first_reply_ms=%.1f "
	       "last_reply_ms=%.1f send_errors=%llu size=%d\n",
	       sent, span, sent / span, replies, last5, kept ? 1000 * reply_at[0] : -1.0,
	       kept ? 1000 * reply_at[kept - 1] : -1.0, errors, len);
	return 0;
}
