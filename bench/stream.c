/*
 * A tight loopback stream of small messages: the capture's worst case, one
 * event per send and per receive. The client sends COUNT messages of SIZE
 * bytes, one send(2) each; the server receives each with one recv(2) of
 * exactly SIZE bytes (MSG_WAITALL). Prints one JSON line:
 *   {"messages":…, "size":…, "seconds":…, "sends_per_s":…}
 *
 *   stream COUNT SIZE
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
	perror(what);
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: stream COUNT SIZE\n");
		return 2;
	}
	long count = atol(argv[1]);
	int size = atoi(argv[2]), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	char buf[65536];

	if (size <= 0 || size > (int)sizeof(buf) || count <= 0)
		die("COUNT and SIZE (1..65536) must be positive");
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &len))
		die("listen");
	pid_t server = fork();

	if (server == 0) {
		int c = accept(l, NULL, NULL);

		if (c < 0)
			die("accept");
		for (long i = 0; i < count; i++)
			if (recv(c, buf, size, MSG_WAITALL) != size)
				die("recv");
		_exit(0);
	}
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct timespec t0, t1;

	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)))
		die("connect");
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < count; i++)
		if (send(c, buf, size, 0) != size)
			die("send");
	close(c);
	waitpid(server, NULL, 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;

	printf("{\"messages\": %ld, \"size\": %d, \"seconds\": %.6f, \"sends_per_s\": %.0f}\n", count, size, s,
	       count / s);
	return 0;
}
