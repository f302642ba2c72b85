/*
 * Loopback TCP traffic whose byte counts are known exactly, from two processes.
 * Built static, so the same binary runs here and in the test VM (tests/vm).
 *
 *   tcp_workload server            listens on two loopback ports, prints
 *                                  {"pid","port","other_port"}, serves until
 *                                  stdin closes, then prints its own counts.
 *   tcp_workload client PORT OTHER runs every scenario against PORT and one
 *                                  plain connection against OTHER, then one SYN
 *                                  that is retransmitted; prints its own counts.
 *   tcp_workload pair              runs a server and a client (both exec'd)
 *                                  and prints {"server":…,"served":…,"client":…}.
 *
 * Counts are what each process itself sent and consumed, per peer port, from
 * the return values of write/send/sendmsg/sendfile and read/recv/splice.
 * A MSG_PEEK read consumes nothing and counts 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define PLAIN_UP 1234567
#define PLAIN_DOWN 654321
#define SENDFILE_UP 2000000
#define PEEK_UP 10000
#define PEEK_LEN 5000
#define SHORT_CONNS 20
#define SHORT_REQ 100
#define SHORT_RESP 50
#define CHUNK 65536

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "tcp_workload: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, ": %s\n", strerror(errno));
	va_end(ap);
	exit(1);
}

/* Per peer port: what this process sent and consumed. */
struct counts {
	int n;
	struct {
		int port;
		long long sent, recv;
	} by_port[4];
};

static void add(struct counts *c, int port, long long sent, long long recv)
{
	int i;

	for (i = 0; i < c->n && c->by_port[i].port != port; i++)
		;
	if (i == c->n) {
		c->n++;
		c->by_port[i].port = port;
		c->by_port[i].sent = c->by_port[i].recv = 0;
	}
	c->by_port[i].sent += sent;
	c->by_port[i].recv += recv;
}

static void print_counts(const struct counts *c, const char *extra)
{
	long long sent = 0, recv = 0;

	printf("{\"pid\": %d, \"by_port\": {", getpid());
	for (int i = 0; i < c->n; i++) {
		printf("%s\"%d\": {\"sent\": %lld, \"recv\": %lld}", i ? ", " : "", c->by_port[i].port,
		       c->by_port[i].sent, c->by_port[i].recv);
		sent += c->by_port[i].sent;
		recv += c->by_port[i].recv;
	}
	printf("}, %s\"sent\": %lld, \"recv\": %lld}\n", extra, sent, recv);
	fflush(stdout);
}

static char *filled(size_t n, char byte)
{
	char *buf = malloc(n);

	if (!buf)
		die("malloc");
	memset(buf, byte, n);
	return buf;
}

/* Writes all of buf: the first byte (the mode) with the rest, as one stream. */
static void write_all(int fd, const char *buf, size_t n, struct counts *c, int port, int use_send)
{
	while (n) {
		ssize_t w = use_send ? send(fd, buf, n, 0) : write(fd, buf, n);

		if (w < 0)
			die("%s", use_send ? "send" : "write");
		add(c, port, w, 0);
		buf += w;
		n -= w;
	}
}

static void drain(int fd, struct counts *c, int port, int use_recv)
{
	static char buf[CHUNK];

	for (;;) {
		ssize_t r = use_recv ? recv(fd, buf, sizeof(buf), 0) : read(fd, buf, sizeof(buf));

		if (r < 0)
			die("%s", use_recv ? "recv" : "read");
		if (r == 0)
			return;
		add(c, port, 0, r);
	}
}

static void recv_exact(int fd, size_t n, struct counts *c, int port)
{
	static char buf[CHUNK];

	while (n) {
		ssize_t r = recv(fd, buf, n < sizeof(buf) ? n : sizeof(buf), 0);

		if (r <= 0)
			die("recv (peer closed early?)");
		add(c, port, 0, r);
		n -= r;
	}
}

static int connect_to(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)))
		die("connect to %d", port);
	return fd;
}

static int local_port(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &len))
		die("getsockname");
	return ntohs(a.sin_port);
}

/* Waits, up to 10 s, until the 32-bit field at `offset` of fd's tcp_info is
 * non-zero. */
static void wait_tcp_info(int fd, size_t offset, const char *what)
{
	for (int i = 0; i < 1000; i++) {
		struct tcp_info info;
		socklen_t len = sizeof(info);
		uint32_t v;

		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len))
			die("TCP_INFO");
		memcpy(&v, (char *)&info + offset, sizeof(v));
		if (v)
			return;
		usleep(10000);
	}
	die("waited 10 s for %s", what);
}

static void serve_one(int conn, int port, struct counts *c)
{
	char mode;

	if (recv(conn, &mode, 1, 0) != 1)
		die("recv mode");
	add(c, port, 0, 1);
	if (mode == 'P') { /* recv until EOF, then answer */
		char *down = filled(PLAIN_DOWN, 'd');

		drain(conn, c, port, 1);
		write_all(conn, down, PLAIN_DOWN, c, port, 1);
		free(down);
	} else if (mode == 'S') { /* consume with splice(2) only */
		int p[2], null = open("/dev/null", O_WRONLY);

		if (pipe(p) || null < 0)
			die("pipe or /dev/null");
		for (;;) {
			ssize_t n = splice(conn, NULL, p[1], NULL, CHUNK, 0);

			if (n < 0)
				die("splice from socket");
			if (n == 0)
				break;
			add(c, port, 0, n);
			while (n) {
				ssize_t m = splice(p[0], NULL, null, NULL, n, 0);

				if (m <= 0)
					die("splice to /dev/null");
				n -= m;
			}
		}
		close(p[0]);
		close(p[1]);
		close(null);
		write_all(conn, "ok", 2, c, port, 1);
	} else if (mode == 'K') { /* peek first: consumes nothing */
		char peeked[PEEK_LEN];

		if (recv(conn, peeked, PEEK_LEN, MSG_PEEK | MSG_WAITALL) != PEEK_LEN)
			die("peek");
		drain(conn, c, port, 1);
	} else if (mode == 'H') { /* one short request/response */
		char resp[SHORT_RESP];

		recv_exact(conn, SHORT_REQ, c, port);
		memset(resp, 'r', sizeof(resp));
		write_all(conn, resp, sizeof(resp), c, port, 1);
		/* The client closes first, so every run (and kernel) sees the
		 * same state sequences rather than a simultaneous close. */
		drain(conn, c, port, 1);
	}
	close(conn);
}

static int server(void)
{
	struct counts c = { 0 };
	int listeners[2], ports[2];

	prctl(PR_SET_NAME, "nr-server");
	for (int i = 0; i < 2; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET };

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		listeners[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (listeners[i] < 0 || bind(listeners[i], (struct sockaddr *)&a, sizeof(a)) ||
		    listen(listeners[i], 64))
			die("listen");
		ports[i] = local_port(listeners[i]);
	}
	printf("{\"pid\": %d, \"port\": %d, \"other_port\": %d}\n", getpid(), ports[0], ports[1]);
	fflush(stdout);
	for (;;) {
		struct pollfd fds[3] = {
			{ .fd = listeners[0], .events = POLLIN },
			{ .fd = listeners[1], .events = POLLIN },
			{ .fd = 0, .events = POLLIN },
		};
		char buf[64];

		if (poll(fds, 3, -1) < 0)
			die("poll");
		if (fds[2].revents && read(0, buf, sizeof(buf)) <= 0)
			break;
		for (int i = 0; i < 2; i++) {
			if (fds[i].revents & POLLIN) {
				int conn = accept(listeners[i], NULL, NULL);

				if (conn < 0)
					die("accept");
				serve_one(conn, ports[i], &c);
			}
		}
	}
	close(listeners[0]);
	close(listeners[1]);
	print_counts(&c, "");
	return 0;
}

static int client(int port, int other_port)
{
	struct counts c = { 0 };
	char *up = filled(PLAIN_UP + 1, 'u');
	int targets[2] = { port, other_port }, short_ports[SHORT_CONNS], fd;

	prctl(PR_SET_NAME, "nr-client");
	up[0] = 'P';
	for (int i = 0; i < 2; i++) { /* write() up, read() down */
		fd = connect_to(targets[i]);
		write_all(fd, up, PLAIN_UP + 1, &c, targets[i], 0);
		shutdown(fd, SHUT_WR);
		drain(fd, &c, targets[i], 0);
		close(fd);
	}
	free(up);

	{ /* sendfile() up, from a memory file */
		char *body = filled(SENDFILE_UP, 'f');
		int mem = memfd_create("sendfile", 0);
		off_t offset = 0;

		if (mem < 0)
			die("memfd_create");
		if (write(mem, body, SENDFILE_UP) != SENDFILE_UP)
			die("filling the memory file");
		free(body);
		fd = connect_to(port);
		write_all(fd, "S", 1, &c, port, 1);
		while (offset < SENDFILE_UP) {
			ssize_t n = sendfile(fd, mem, &offset, SENDFILE_UP - offset);

			if (n <= 0)
				die("sendfile");
			add(&c, port, n, 0);
		}
		shutdown(fd, SHUT_WR);
		drain(fd, &c, port, 1);
		close(fd);
		close(mem);
	}

	{ /* sendmsg() up, the server peeks first */
		char *body = filled(PEEK_UP, 'k');
		struct iovec iov[2] = { { "K", 1 }, { body, PEEK_UP } };
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
		ssize_t n;

		fd = connect_to(port);
		n = sendmsg(fd, &msg, 0);
		if (n != PEEK_UP + 1)
			die("sendmsg sent %zd", n);
		add(&c, port, n, 0);
		shutdown(fd, SHUT_WR);
		drain(fd, &c, port, 1);
		close(fd);
		free(body);
	}

	for (int i = 0; i < SHORT_CONNS; i++) {
		char req[SHORT_REQ + 1];

		fd = connect_to(port);
		short_ports[i] = local_port(fd);
		memset(req, 'q', sizeof(req));
		req[0] = 'H';
		write_all(fd, req, sizeof(req), &c, port, 1);
		recv_exact(fd, SHORT_RESP, &c, port);
		close(fd);
	}

	/* A SYN nobody answers, retransmitted after the initial 1 s RTO: this
	 * process's own listener has a full accept queue, so it drops the SYN.
	 * Both facts are waited for, not slept on: under load the handshake's
	 * last ACK may still sit in ksoftirqd when connect() returns, and then
	 * the queue is not yet full and the second SYN would be answered. */
	int retransmit_port;
	{
		struct sockaddr_in a = { .sin_family = AF_INET };
		int l = socket(AF_INET, SOCK_STREAM, 0), queued, dropped;

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 0))
			die("listen with backlog 0");
		retransmit_port = local_port(l);
		queued = connect_to(retransmit_port);
		/* A listener's tcpi_unacked is its accept queue's length. */
		wait_tcp_info(l, offsetof(struct tcp_info, tcpi_unacked), "the backlog-0 listener's queue to fill");
		a.sin_port = htons(retransmit_port);
		dropped = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (dropped < 0 || (connect(dropped, (struct sockaddr *)&a, sizeof(a)) && errno != EINPROGRESS))
			die("connect to the full listener");
		wait_tcp_info(dropped, offsetof(struct tcp_info, tcpi_total_retrans), "the dropped SYN's retransmit");
		close(dropped);
		close(queued);
		close(l);
	}

	char extra[512];
	int len = snprintf(extra, sizeof(extra), "\"retransmit_port\": %d, \"short_ports\": [", retransmit_port);

	for (int i = 0; i < SHORT_CONNS; i++)
		len += snprintf(extra + len, sizeof(extra) - len, "%s%d", i ? ", " : "", short_ports[i]);
	snprintf(extra + len, sizeof(extra) - len, "], ");
	print_counts(&c, extra);
	return 0;
}

/* Starts `self args…` with stdin and stdout on pipes. */
static pid_t spawn(const char *self, char *const argv[], int *to, FILE **from)
{
	int in[2], out[2];
	pid_t pid;

	if (pipe(in) || pipe(out))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		execv(self, argv);
		die("exec %s", self);
	}
	close(in[0]);
	close(out[1]);
	*to = in[1];
	*from = fdopen(out[0], "r");
	return pid;
}

/* Reads a child's one line of counts and waits for its clean exit. */
static void collect(FILE *from, char *line, int size, pid_t pid, const char *who)
{
	int status;

	if (!fgets(line, size, from))
		die("%s counts", who);
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		die("%s failed", who);
	line[strcspn(line, "\n")] = 0;
}

static int pair(const char *self)
{
	char announce[256], served[1024], client_out[2048], port[16], other[16];
	char *server_argv[] = { (char *)self, "server", NULL };
	char *client_argv[] = { (char *)self, "client", port, other, NULL };
	int server_in, client_in, p, o;
	FILE *server_out, *client_stdout;
	pid_t server_pid, client_pid;

	server_pid = spawn(self, server_argv, &server_in, &server_out);
	if (!fgets(announce, sizeof(announce), server_out))
		die("server announcement");
	if (sscanf(strstr(announce, "\"port\""), "\"port\": %d, \"other_port\": %d", &p, &o) != 2)
		die("parsing %s", announce);
	snprintf(port, sizeof(port), "%d", p);
	snprintf(other, sizeof(other), "%d", o);
	client_pid = spawn(self, client_argv, &client_in, &client_stdout);
	close(client_in);
	collect(client_stdout, client_out, sizeof(client_out), client_pid, "client");
	close(server_in);
	collect(server_out, served, sizeof(served), server_pid, "server");
	announce[strcspn(announce, "\n")] = 0;
	printf("{\"server\": %s, \"served\": %s, \"client\": %s}\n", announce, served, client_out);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "server"))
		return server();
	if (argc == 4 && !strcmp(argv[1], "client"))
		return client(atoi(argv[2]), atoi(argv[3]));
	if (argc == 2 && !strcmp(argv[1], "pair")) {
		static char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		if (n < 0)
			die("readlink /proc/self/exe");
		return pair(self);
	}
	fprintf(stderr, "usage: tcp_workload server | client PORT OTHER_PORT | pair\n");
	return 2;
}
