/*
 * A request/response workload for the CI gate tests (tests/capture/gate.rs):
 * the same run twice must compare equal, and each knob changes one thing.
 *
 *   gate_workload REQUESTS PER_CONN REQUEST_BYTES REPLY_BYTES HANDLE_MS
 *
 * Forks a server (comm gate-server) and a client (comm gate-client) on
 * loopback. The client sends REQUESTS requests of REQUEST_BYTES, opening a
 * new connection every PER_CONN requests; the server reads each, calls
 * handle(HANDLE_MS), which sleeps that long, and replies REPLY_BYTES.
 * Prints {"server":PID,"client":PID} when both are done.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "gate_workload: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void full_write(int fd, const char *buf, long n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w <= 0)
			die("write");
		buf += w;
		n -= w;
	}
}

static void full_read(int fd, char *buf, long n)
{
	while (n > 0) {
		ssize_t r = read(fd, buf, n);
		if (r <= 0)
			die("read");
		buf += r;
		n -= r;
	}
}

/* The function the tests probe: its duration is the knob HANDLE_MS. */
__attribute__((noinline)) long handle(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts))
		;
	return ms;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: gate_workload REQUESTS PER_CONN REQUEST_BYTES REPLY_BYTES HANDLE_MS\n");
		return 2;
	}
	long requests = atol(argv[1]), per_conn = atol(argv[2]);
	long req_bytes = atol(argv[3]), reply_bytes = atol(argv[4]), handle_ms = atol(argv[5]);
	long conns = (requests + per_conn - 1) / per_conn;
	char *buf = calloc(1, req_bytes > reply_bytes ? req_bytes : reply_bytes);

	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 128) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &len))
		die("listen");

	pid_t server = fork();
	if (server == 0) {
		prctl(PR_SET_NAME, "gate-server");
		long served = 0;
		for (long c = 0; c < conns; c++) {
			int fd = accept(lfd, NULL, NULL);
			if (fd < 0)
				die("accept");
			for (long i = 0; i < per_conn && served < requests; i++, served++) {
				full_read(fd, buf, req_bytes);
				handle(handle_ms);
				full_write(fd, buf, reply_bytes);
			}
			close(fd);
		}
		_exit(0);
	}
	close(lfd);
	pid_t client = fork();
	if (client == 0) {
		prctl(PR_SET_NAME, "gate-client");
		long sent = 0;
		for (long c = 0; c < conns; c++) {
			int fd = socket(AF_INET, SOCK_STREAM, 0);
			if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)))
				die("connect");
			for (long i = 0; i < per_conn && sent < requests; i++, sent++) {
				full_write(fd, buf, req_bytes);
				full_read(fd, buf, reply_bytes);
			}
			/* The server closes first once it has served this connection. */
			char end;
			if (read(fd, &end, 1) != 0)
				die("expected the server's close");
			close(fd);
		}
		_exit(0);
	}
	int status, failed = 0;
	for (int i = 0; i < 2; i++) {
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			failed = 1;
	}
	printf("{\"server\":%d,\"client\":%d}\n", server, client);
	return failed;
}
