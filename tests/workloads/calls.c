/*
 * A program with known call durations for the uprobe tests.
 *
 * Prints {"pid":P}, waits for a line on stdin, then prints one JSON line
 * per call it makes, with its own measurement:
 *   {"fn":"work","tid":T,"arg":MS,"ns":N}
 * then "holding" and blocks inside hold() until stdin closes, so a capture
 * stopped meanwhile sees an unfinished call.
 *
 *   work(ms)         sleeps ms milliseconds, returns ms * 2; called from
 *                    the main thread and from THREADS threads at once
 *   recurse(d, ms)   static; sleeps ms, then calls recurse(d - 1, ms)
 *                    while d > 0: the call at depth k lasts (d0 - k + 1) * ms
 *   hold()           blocks reading stdin
 *   helper(x)        static, and another static helper() in calls_twin.c:
 *                    an ambiguous name
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define THREADS 4
#define THREAD_CALLS 5
#define THREAD_MS 20

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts))
		;
}

__attribute__((noinline)) long work(long ms)
{
	sleep_ms(ms);
	return ms * 2;
}

__attribute__((noinline, noclone)) static long recurse(long depth, long ms)
{
	sleep_ms(ms);
	if (depth > 0)
		recurse(depth - 1, ms);
	return depth;
}

long twin(long x);

__attribute__((noinline)) static long helper(long x)
{
	return twin(x) + 1;
}

__attribute__((noinline)) long hold(void)
{
	char buf[64];

	while (read(0, buf, sizeof(buf)) > 0)
		;
	return 0;
}

static void report(const char *fn, long arg, long long ns)
{
	pthread_mutex_lock(&out_lock);
	printf("{\"fn\":\"%s\",\"tid\":%ld,\"arg\":%ld,\"ns\":%lld}\n", fn, (long)syscall(SYS_gettid), arg, ns);
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

static void timed_work(long ms)
{
	long long t0 = now_ns();

	work(ms);
	report("work", ms, now_ns() - t0);
}

static void *worker(void *arg)
{
	for (int i = 0; i < THREAD_CALLS; i++)
		timed_work(THREAD_MS);
	return arg;
}

int main(void)
{
	pthread_t threads[THREADS];

	char go[16];

	printf("{\"pid\":%d}\n", getpid());
	fflush(stdout);
	if (!fgets(go, sizeof(go), stdin))
		return 1;
	helper(1);
	for (int i = 0; i < 10; i++)
		timed_work(10);
	for (int i = 0; i < 3; i++)
		timed_work(40);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&threads[i], NULL, worker, NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	long long t0 = now_ns();
	recurse(3, 10);
	report("recurse", 3, now_ns() - t0);
	printf("holding\n");
	fflush(stdout);
	hold();
	return 0;
}
