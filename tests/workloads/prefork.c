/*
 * A pre-fork server whose numbers are known: the master listens on
 * 127.0.0.1 and never accepts; WORKERS forked children inherit the listener
 * and accept; a client process makes CONNS connections one after another
 * (each sends REQ bytes, reads RESP bytes, closes).
 *
 *   prefork WORKERS CONNS
 *
 * Prints one JSON line when done: the master's pid, the port, the client's
 * pid, and each worker's pid with the number of connections it accepted
 * (its exit status) and the client ports it served.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define REQ 100
#define RESP 200
#define MAX_WORKERS 8

static void die(const char *what)
{
	perror(what);
	exit(100);
}

static void full(ssize_t (*io)(int, void *, size_t), int fd, char *buf, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t r = io(fd, buf + done, n - done);

		if (r <= 0)
			die("io");
		done += r;
	}
}

static ssize_t wr(int fd, void *b, size_t n) { return write(fd, b, n); }
static ssize_t rd(int fd, void *b, size_t n) { return read(fd, b, n); }

static volatile sig_atomic_t accepted;

/* The client is done and every worker idles in accept(): report and go. */
static void on_term(int sig)
{
	(void)sig;
	_exit(accepted);
}

/* Ports served, one per line, to `report` (a pipe the master reads). */
static void worker(int lfd, int report)
{
	struct sigaction sa = { .sa_handler = on_term };
	char buf[RESP] = { 0 };

	sigaction(SIGTERM, &sa, NULL);
	for (;;) {
		struct sockaddr_in peer;
		socklen_t len = sizeof(peer);
		int c = accept(lfd, (struct sockaddr *)&peer, &len);

		if (c < 0) {
			if (errno == EINTR)
				continue;
			die("accept");
		}
		accepted++;
		full(rd, c, buf, REQ);
		full(wr, c, buf, RESP);
		close(c);
		dprintf(report, "%d %u\n", getpid(), ntohs(peer.sin_port));
	}
}

static void client(int port, int conns)
{
	char buf[RESP] = { 0 };
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };

	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < conns; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof(to)))
			die("connect");
		full(wr, fd, buf, REQ);
		full(rd, fd, buf, RESP);
		/* Wait for the worker's close, so it has logged the port. */
		if (read(fd, buf, 1) != 0)
			die("expected EOF");
		close(fd);
	}
	exit(0);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: prefork WORKERS CONNS\n");
		return 2;
	}
	int workers = atoi(argv[1]), conns = atoi(argv[2]);

	if (workers < 1 || workers > MAX_WORKERS || conns < 1 || conns > 250) {
		fprintf(stderr, "prefork: 1..%d workers, 1..250 connections\n", MAX_WORKERS);
		return 2;
	}
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1, pipefd[2];

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 64) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &len) || pipe(pipefd))
		die("listen");
	int port = ntohs(addr.sin_port);
	pid_t pids[MAX_WORKERS];

	for (int i = 0; i < workers; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork");
		if (pids[i] == 0) {
			close(pipefd[0]);
			worker(lfd, pipefd[1]);
		}
	}
	close(pipefd[1]);
	pid_t cpid = fork();

	if (cpid < 0)
		die("fork");
	if (cpid == 0)
		client(port, conns);
	int status;

	if (waitpid(cpid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		die("client");

	/* Every port the workers served, in the order they reported. */
	char ports[8192];
	size_t have = 0;
	int lines = 0;

	while (lines < conns && have < sizeof(ports) - 1) {
		ssize_t r = read(pipefd[0], ports + have, sizeof(ports) - 1 - have);

		if (r <= 0)
			die("read ports");
		for (ssize_t i = 0; i < r; i++)
			lines += ports[have + i] == '\n';
		have += r;
	}
	ports[have] = 0;

	printf("{\"master\": %d, \"port\": %d, \"client\": %d, \"workers\": [", getpid(), port, cpid);
	for (int i = 0; i < workers; i++) {
		kill(pids[i], SIGTERM);
		if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status))
			die("worker");
		printf("%s{\"pid\": %d, \"accepted\": %d, \"ports\": [", i ? ", " : "", pids[i], WEXITSTATUS(status));
		int first = 1;
		for (char *line = strtok(strdup(ports), "\n"); line; line = strtok(NULL, "\n")) {
			int pid;
			unsigned p;

			if (sscanf(line, "%d %u", &pid, &p) == 2 && pid == pids[i]) {
				printf("%s%u", first ? "" : ", ", p);
				first = 0;
			}
		}
		printf("]}");
	}
	printf("]}\n");
	return 0;
}
