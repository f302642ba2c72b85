/*
 * Loopback UDP traffic whose byte counts are known exactly, from two processes
 * (tests/capture/udp.rs). Built static, like tcp_workload.
 *
 *   udp_workload    forks a server (one IPv4 and one IPv6 socket, unconnected;
 *                   receives with recvmmsg, answers each datagram with half its
 *                   size plus one byte, by sendto or, for a batch, sendmmsg),
 *                   then runs the client scenarios and prints one JSON line:
 *                   {"server":COUNTS,"client":COUNTS}
 *
 * COUNTS is {"pid":…, "peers":[{"addr":…,"port":…,"sent":…,"consumed":…}…]},
 * per remote end as the process itself saw it (connect() target, recvfrom and
 * recvmsg/recvmmsg addresses). The client's recv() on an unconnected socket
 * does not ask for the address: those bytes have "addr": null.
 *
 * Client scenarios: a connected socket (send/write, recv); an unconnected one
 * (sendto, recvfrom); sendmmsg and recvmmsg of 8 datagrams; an IPv6 socket
 * (sendmsg, recvmsg); recv() without an address; MSG_PEEK then recvfrom
 * (consumed once); a reply truncated by a 100-byte buffer (consumed: what
 * recvfrom returned). Then "STOP" ends the server.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define BATCH 8
#define MAX_PEERS 16

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "udp_workload: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, ": %s\n", strerror(errno));
	va_end(ap);
	exit(1);
}

struct peer {
	char addr[INET6_ADDRSTRLEN]; /* "" : not asked for */
	int port;
	unsigned long sent, consumed;
};

static struct peer peers[MAX_PEERS];
static int npeers;

static struct peer *peer_of(const struct sockaddr *sa)
{
	char addr[INET6_ADDRSTRLEN] = "";
	int port = 0;

	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
		port = ntohs(in->sin_port);
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
		port = ntohs(in6->sin6_port);
	}
	for (int i = 0; i < npeers; i++)
		if (peers[i].port == port && !strcmp(peers[i].addr, addr))
			return &peers[i];
	if (npeers == MAX_PEERS)
		die("too many peers");
	strcpy(peers[npeers].addr, addr);
	peers[npeers].port = port;
	return &peers[npeers++];
}

static void print_counts(FILE *f)
{
	fprintf(f, "{\"pid\":%d,\"peers\":[", getpid());
	for (int i = 0; i < npeers; i++) {
		if (peers[i].addr[0])
			fprintf(f, "%s{\"addr\":\"%s\",\"port\":%d", i ? "," : "", peers[i].addr, peers[i].port);
		else
			fprintf(f, "%s{\"addr\":null,\"port\":null", i ? "," : "");
		fprintf(f, ",\"sent\":%lu,\"consumed\":%lu}", peers[i].sent, peers[i].consumed);
	}
	fprintf(f, "]}");
}

static int bound(int family, struct sockaddr_storage *ss, socklen_t *len)
{
	int fd = socket(family, SOCK_DGRAM, 0);

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *in = (void *)ss;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (void *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		*len = sizeof(*in6);
	}
	if (fd < 0 || bind(fd, (struct sockaddr *)ss, *len) || getsockname(fd, (struct sockaddr *)ss, len))
		die("bind");
	return fd;
}

/* Receives what is queued on fd (recvmmsg) and answers each datagram. */
static int serve(int fd)
{
	static char bufs[16][65536], out[16][65536];
	struct sockaddr_storage from[16];
	struct iovec iov[16], oiov[16];
	struct mmsghdr in[16], reply[16];
	int stop = 0;

	for (int i = 0; i < 16; i++) {
		iov[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
		in[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &from[i], .msg_namelen = sizeof(from[i]),
						       .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	int n = recvmmsg(fd, in, 16, MSG_DONTWAIT, NULL);
	if (n < 0)
		die("recvmmsg");
	for (int i = 0; i < n; i++) {
		struct peer *p = peer_of((struct sockaddr *)&from[i]);
		unsigned len = in[i].msg_len;

		p->consumed += len;
		if (len == 4 && !memcmp(bufs[i], "STOP", 4)) {
			stop = 1;
			continue;
		}
		oiov[i] = (struct iovec){ out[i], len / 2 + 1 };
		reply[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &from[i], .msg_namelen = in[i].msg_hdr.msg_namelen,
							  .msg_iov = &oiov[i], .msg_iovlen = 1 } };
		if (bufs[i][0] != 'M') {
			ssize_t k = sendto(fd, out[i], len / 2 + 1, 0, (struct sockaddr *)&from[i], in[i].msg_hdr.msg_namelen);
			if (k < 0)
				die("sendto");
			p->sent += k;
		}
	}
	/* The batch's answers ('M' datagrams) go back in one sendmmsg. */
	struct mmsghdr batch[16];
	int nb = 0, idx[16];
	for (int i = 0; i < n; i++)
		if (bufs[i][0] == 'M' && !(in[i].msg_len == 4 && !memcmp(bufs[i], "STOP", 4))) {
			idx[nb] = i;
			batch[nb++] = reply[i];
		}
	for (int done = 0; done < nb;) {
		int k = sendmmsg(fd, batch + done, nb - done, 0);
		if (k < 0)
			die("sendmmsg");
		for (int j = done; j < done + k; j++)
			peer_of((struct sockaddr *)&from[idx[j]])->sent += batch[j].msg_len;
		done += k;
	}
	return stop;
}

static void server(int v4, int v6, int out)
{
	struct pollfd fds[2] = { { v4, POLLIN, 0 }, { v6, POLLIN, 0 } };
	int stop = 0;

	while (!stop) {
		if (poll(fds, 2, -1) < 0)
			die("poll");
		for (int i = 0; i < 2; i++)
			if (fds[i].revents & POLLIN)
				stop |= serve(fds[i].fd);
	}
	FILE *f = fdopen(out, "w");
	print_counts(f);
	fclose(f);
	_exit(0);
}

static char buf[65536];

static void fill(char first, size_t n)
{
	memset(buf, 'x', n);
	buf[0] = first;
}

static void sent_to(const struct sockaddr *to, ssize_t k)
{
	if (k < 0)
		die("send");
	peer_of(to)->sent += k;
}

static void consumed_from(const struct sockaddr *from, ssize_t k)
{
	if (k < 0)
		die("recv");
	peer_of(from)->consumed += k;
}

int main(void)
{
	struct sockaddr_storage s4, s6, from;
	socklen_t l4, l6, fl;
	int v4 = bound(AF_INET, &s4, &l4), v6 = bound(AF_INET6, &s6, &l6), p[2];
	const struct sockaddr *to4 = (struct sockaddr *)&s4, *to6 = (struct sockaddr *)&s6;

	if (pipe(p))
		die("pipe");
	pid_t srv = fork();
	if (srv < 0)
		die("fork");
	if (srv == 0) {
		close(p[0]);
		server(v4, v6, p[1]);
	}
	close(p[1]);
	close(v4);
	close(v6);

	/* A connected socket: send, write, recv. */
	int c = socket(AF_INET, SOCK_DGRAM, 0);
	if (c < 0 || connect(c, to4, l4))
		die("connect");
	for (int i = 1; i <= 5; i++) {
		fill('c', 100 * i);
		sent_to(to4, i == 3 ? write(c, buf, 100 * i) : send(c, buf, 100 * i, 0));
		consumed_from(to4, recv(c, buf, sizeof(buf), 0));
	}

	/* An unconnected socket: sendto, recvfrom. */
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	if (u < 0)
		die("socket");
	for (int i = 0; i < 3; i++) {
		fill('u', 1000 + i);
		sent_to(to4, sendto(u, buf, 1000 + i, 0, to4, l4));
		fl = sizeof(from);
		consumed_from((struct sockaddr *)&from, recvfrom(u, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl));
	}

	/* sendmmsg of 8 (10 to 80 bytes), answered by one sendmmsg; recvmmsg. */
	static char mbuf[BATCH][128];
	struct iovec iov[BATCH];
	struct mmsghdr m[BATCH];
	struct sockaddr_storage mfrom[BATCH];
	for (int i = 0; i < BATCH; i++) {
		memset(mbuf[i], 'M', 10 * (i + 1));
		iov[i] = (struct iovec){ mbuf[i], 10 * (i + 1) };
		m[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = (void *)to4, .msg_namelen = l4, .msg_iov = &iov[i],
						      .msg_iovlen = 1 } };
	}
	for (int done = 0; done < BATCH;) {
		int k = sendmmsg(u, m + done, BATCH - done, 0);
		if (k <= 0)
			die("sendmmsg");
		for (int j = done; j < done + k; j++)
			sent_to(to4, m[j].msg_len);
		done += k;
	}
	for (int got = 0; got < BATCH;) {
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){ mbuf[i], sizeof(mbuf[i]) };
			m[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &mfrom[i], .msg_namelen = sizeof(mfrom[i]),
							      .msg_iov = &iov[i], .msg_iovlen = 1 } };
		}
		int k = recvmmsg(u, m, BATCH - got, MSG_WAITFORONE, NULL);
		if (k <= 0)
			die("recvmmsg");
		for (int j = 0; j < k; j++)
			consumed_from((struct sockaddr *)&mfrom[j], m[j].msg_len);
		got += k;
	}

	/* IPv6: sendmsg, recvmsg. */
	int v = socket(AF_INET6, SOCK_DGRAM, 0);
	if (v < 0)
		die("socket6");
	for (int i = 0; i < 2; i++) {
		fill('v', 300 + i);
		struct iovec io = { buf, 300 + i };
		struct msghdr mh = { .msg_name = (void *)to6, .msg_namelen = l6, .msg_iov = &io, .msg_iovlen = 1 };
		sent_to(to6, sendmsg(v, &mh, 0));
		io.iov_len = sizeof(buf);
		mh = (struct msghdr){ .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &io, .msg_iovlen = 1 };
		consumed_from((struct sockaddr *)&from, recvmsg(v, &mh, 0));
	}

	/* recv() on an unconnected socket: the caller does not ask who sent it. */
	fill('u', 700);
	sent_to(to4, sendto(u, buf, 700, 0, to4, l4));
	consumed_from(NULL, recv(u, buf, sizeof(buf), 0));

	/* MSG_PEEK consumes nothing; the recvfrom after it consumes the datagram. */
	fill('u', 400);
	sent_to(to4, sendto(u, buf, 400, 0, to4, l4));
	if (recv(u, buf, sizeof(buf), MSG_PEEK) <= 0)
		die("peek");
	fl = sizeof(from);
	consumed_from((struct sockaddr *)&from, recvfrom(u, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl));

	/* A 451-byte answer into a 100-byte buffer: recvfrom returns 100, the rest is gone. */
	fill('u', 900);
	sent_to(to4, sendto(u, buf, 900, 0, to4, l4));
	fl = sizeof(from);
	consumed_from((struct sockaddr *)&from, recvfrom(u, buf, 100, 0, (struct sockaddr *)&from, &fl));

	sent_to(to4, sendto(u, "STOP", 4, 0, to4, l4));

	char sbuf[8192];
	ssize_t n = 0, k;
	while ((k = read(p[0], sbuf + n, sizeof(sbuf) - 1 - n)) > 0)
		n += k;
	sbuf[n] = 0;
	waitpid(srv, NULL, 0);
	printf("{\"server\":%s,\"client\":", sbuf);
	print_counts(stdout);
	printf("}\n");
	return 0;
}
