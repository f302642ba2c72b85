/*
 * A steady mixed load for the soak benchmark (bench/soak.py), whose byte
 * counts each process knows exactly. Per millisecond tick the client sends
 * one request of 5 to 2004 bytes on a persistent TCP connection and reads
 * the reply (half as big, plus one); every 10th tick it opens a short
 * connection (64 bytes up, 32 down, close); every 4th tick it sends one UDP
 * query from an unconnected socket (sendto 100 bytes, recvfrom the 50-byte
 * answer); once a second it forks and execs /bin/true. Ticks are absolute
 * (clock_nanosleep), so the rate stays the same however long a tick took.
 *
 *   soak_load SECONDS
 *
 * Prints one JSON line per process (server first): its role, pid, what it
 * sent and consumed on TCP and on UDP, and the connections it made.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SHORT_UP 64
#define SHORT_DOWN 32
#define UDP_UP 100
#define UDP_DOWN 50

struct counts {
	atomic_ulong tcp_sent, tcp_recv, udp_sent, udp_recv, conns;
};

static struct counts c;
static char buf[65536];

static void die(const char *what)
{
	fprintf(stderr, "soak_load: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k <= 0)
			die("send");
		c.tcp_sent += k;
		p += k;
		n -= k;
	}
}

/* false: the peer closed before the first byte */
static int recv_all(int fd, char *p, size_t n)
{
	size_t want = n;

	while (n) {
		ssize_t k = recv(fd, p, n, 0);
		if (k == 0 && n == want)
			return 0;
		if (k <= 0)
			die("recv");
		c.tcp_recv += k;
		p += k;
		n -= k;
	}
	return 1;
}

static int listener(int type, struct sockaddr_in *a)
{
	socklen_t len = sizeof(*a);
	int fd = socket(AF_INET, type, 0), one = 1;

	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a->sin_port = 0;
	if (bind(fd, (struct sockaddr *)a, sizeof(*a)) || getsockname(fd, (struct sockaddr *)a, &len))
		die("bind");
	if (type == SOCK_STREAM && listen(fd, 1024))
		die("listen");
	return fd;
}

static void *serve_short(void *arg)
{
	int l = *(int *)arg;
	char req[SHORT_UP], resp[SHORT_DOWN] = {0};

	for (;;) {
		int fd = accept(l, NULL, NULL);
		if (fd < 0)
			die("accept");
		if (recv_all(fd, req, sizeof(req)))
			send_all(fd, resp, sizeof(resp));
		close(fd);
	}
	return NULL;
}

static void *serve_udp(void *arg)
{
	int fd = *(int *)arg;
	char req[UDP_UP], resp[UDP_DOWN] = {0};

	for (;;) {
		struct sockaddr_in from;
		socklen_t len = sizeof(from);
		ssize_t k = recvfrom(fd, req, sizeof(req), 0, (struct sockaddr *)&from, &len);
		if (k < 0)
			die("recvfrom");
		c.udp_recv += k;
		k = sendto(fd, resp, sizeof(resp), 0, (struct sockaddr *)&from, len);
		if (k < 0)
			die("sendto");
		c.udp_sent += k;
	}
	return NULL;
}

static void print_counts(const char *role)
{
	printf("{\"role\":\"%s\",\"pid\":%d,\"tcp_sent\":%lu,\"tcp_recv\":%lu,\"udp_sent\":%lu,\"udp_recv\":%lu,\"connections\":%lu}\n",
	       role, getpid(), c.tcp_sent, c.tcp_recv, c.udp_sent, c.udp_recv, c.conns);
	fflush(stdout);
}

/* Serves until the stream connection closes, then prints its counts. */
static void server(int stream_l, int short_l, int udp, int ready)
{
	pthread_t t1, t2;
	int fd = accept(stream_l, NULL, NULL);
	uint32_t n;

	if (pthread_create(&t1, NULL, serve_short, &short_l) || pthread_create(&t2, NULL, serve_udp, &udp))
		die("pthread_create");
	if (fd < 0)
		die("accept");
	close(ready);
	while (recv_all(fd, (char *)&n, sizeof(n))) {
		recv_all(fd, buf, n);
		send_all(fd, buf, n / 2 + 1);
	}
	/* The client waited for every answer: only a counter store may be in flight. */
	usleep(200000);
	print_counts("server");
	_exit(0);
}

static void tick_add(struct timespec *t, long ns)
{
	t->tv_nsec += ns;
	while (t->tv_nsec >= 1000000000) {
		t->tv_nsec -= 1000000000;
		t->tv_sec++;
	}
}

int main(int argc, char **argv)
{
	if (argc != 2 || atol(argv[1]) <= 0) {
		fprintf(stderr, "usage: soak_load SECONDS\n");
		return 2;
	}
	long ticks = atol(argv[1]) * 1000;
	struct sockaddr_in sa, sh, ua;
	int stream_l = listener(SOCK_STREAM, &sa), short_l = listener(SOCK_STREAM, &sh);
	int udp_s = listener(SOCK_DGRAM, &ua), p[2];

	setvbuf(stdout, NULL, _IOFBF, 4096);
	if (pipe(p))
		die("pipe");
	pid_t srv = fork();
	if (srv < 0)
		die("fork");
	if (srv == 0) {
		close(p[0]);
		server(stream_l, short_l, udp_s, p[1]);
	}
	close(p[1]);
	close(stream_l);
	close(short_l);
	close(udp_s);

	int s = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || u < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect");
	c.conns++;
	if (read(p[0], buf, 1) < 0) /* the server's threads run */
		die("read");

	struct timespec next;
	char req[SHORT_UP] = {0}, resp[SHORT_DOWN];
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (long i = 0; i < ticks; i++) {
		tick_add(&next, 1000000);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
		uint32_t n = 1 + (uint32_t)(i * 7919 % 2000);
		memcpy(buf, &n, sizeof(n));
		send_all(s, buf, sizeof(n) + n);
		recv_all(s, buf, n / 2 + 1);
		if (i % 10 == 0) {
			int fd = socket(AF_INET, SOCK_STREAM, 0);
			if (fd < 0 || connect(fd, (struct sockaddr *)&sh, sizeof(sh)))
				die("connect short");
			c.conns++;
			send_all(fd, req, sizeof(req));
			recv_all(fd, resp, sizeof(resp));
			close(fd);
		}
		if (i % 4 == 0) {
			ssize_t k = sendto(u, req, UDP_UP, 0, (struct sockaddr *)&ua, sizeof(ua));
			if (k < 0)
				die("sendto");
			c.udp_sent += k;
			k = recvfrom(u, buf, sizeof(buf), 0, NULL, NULL);
			if (k < 0)
				die("recvfrom");
			c.udp_recv += k;
		}
		if (i % 1000 == 0) {
			pid_t child = fork();
			if (child == 0) {
				execl("/bin/true", "true", (char *)NULL);
				_exit(127);
			}
			if (child > 0)
				waitpid(child, NULL, 0);
		}
	}
	close(s);
	waitpid(srv, NULL, 0);
	print_counts("client");
	return 0;
}
