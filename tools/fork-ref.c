/*
 * fork-ref: a minimal, independent fork() timing loop to cross-check `forkbench real`.
 *
 * It follows the reference method of the spec (real-fork.md): one 2 MiB-aligned private
 * anonymous region, populated as order-0 (MADV_NOHUGEPAGE) or PTE-mapped order-9 (MADV_HUGEPAGE,
 * then the mprotect split), pinned to one CPU, SCHED_FIFO parent and child, CLOCK_MONOTONIC
 * around fork() in the parent, the child _exit(0)s at once, waitpid outside the timed section,
 * then a sleep of max(1 ms, 20% of the iteration). It does not verify the layout: use it only
 * next to forkbench, which does.
 *
 * Build and run (as root, for SCHED_FIFO):
 *   gcc -O2 -o /tmp/fork-ref tools/fork-ref.c -lm
 *   /tmp/fork-ref [order0|pte-order9] [runs] [iters] [cpu] [--series|--probe]
 * Prints each run's mean, then the mean of run means, the run-to-run std_rel and the same
 * figure "without drift" (samples dealt round-robin into as many groups as runs), as forkbench
 * does. --series also prints every sample (ms since start, fork ms, fork-to-reaped ms).
 * --probe additionally times two probes of equal work before each fork and prints them as two
 * more columns: one dependent multiply chain (latency-bound: follows clock frequency) and four
 * independent add/xor chains (throughput-bound: also follows how much of its core the CPU gets,
 * e.g. an SMT sibling's load), and at the end each probe's correlation with the fork time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PMD (2UL << 20)

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void die(const char *what)
{
	fprintf(stderr, "fork-ref: %s: %s\n", what, strerror(errno));
	exit(1);
}

static unsigned long sink;

static double latency_probe_ms(void)
{
	double t0 = now_ms();
	unsigned long x = sink | 1;
	for (long k = 0; k < 1600000; k++)
		x = x * 6364136223846793005UL + 1442695040888963407UL;
	sink ^= x;
	return now_ms() - t0;
}

static double throughput_probe_ms(void)
{
	double t0 = now_ms();
	unsigned long a = sink, b = 2, c = 3, d = 4;
	for (long k = 0; k < 400000; k++) {
		a += b ^ k;
		b += c ^ k;
		c += d ^ k;
		d += a ^ k;
	}
	sink ^= a ^ b ^ c ^ d;
	return now_ms() - t0;
}

static double pearson(const double *x, const double *y, size_t n)
{
	double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
	for (size_t i = 0; i < n; i++) {
		mx += x[i] / n;
		my += y[i] / n;
	}
	for (size_t i = 0; i < n; i++) {
		sxy += (x[i] - mx) * (y[i] - my);
		sxx += (x[i] - mx) * (x[i] - mx);
		syy += (y[i] - my) * (y[i] - my);
	}
	return sxy / sqrt(sxx * syy);
}

static double std_rel(const double *x, int n)
{
	double m = 0, v = 0;
	for (int i = 0; i < n; i++)
		m += x[i];
	m /= n;
	for (int i = 0; i < n; i++)
		v += (x[i] - m) * (x[i] - m);
	return n > 1 ? 100.0 * sqrt(v / (n - 1)) / m : 0;
}

int main(int argc, char **argv)
{
	const char *layout = argc > 1 ? argv[1] : "order0";
	int runs = argc > 2 ? atoi(argv[2]) : 8;
	int iters = argc > 3 ? atoi(argv[3]) : 100;
	int cpu = argc > 4 ? atoi(argv[4]) : 1;
	int probe = argc > 5 && !strcmp(argv[5], "--probe");
	int series = probe || (argc > 5 && !strcmp(argv[5], "--series"));
	int huge = !strcmp(layout, "pte-order9");
	size_t size = 1UL << 30;

	if ((!huge && strcmp(layout, "order0")) || runs < 2 || iters < 1) {
		fprintf(stderr, "usage: fork-ref [order0|pte-order9] [runs>=2] [iters] [cpu] [--series|--probe]\n");
		return 2;
	}
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity");

	char *raw = mmap(NULL, size + PMD, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		die("mmap");
	char *p = (char *)(((unsigned long)raw + PMD - 1) & ~(PMD - 1));
	if (madvise(p, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		die("madvise");
	for (size_t off = 0; off < size; off += 4096)
		p[off] = 1;
	if (huge)
		for (size_t off = 0; off < size; off += PMD)
			if (mprotect(p + off + 4096, 4096, PROT_READ) ||
			    mprotect(p + off + 4096, 4096, PROT_READ | PROT_WRITE))
				die("mprotect");

	struct sched_param sp = { .sched_priority = 10 };
	if (sched_setscheduler(0, SCHED_FIFO, &sp))
		die("sched_setscheduler(SCHED_FIFO)");

	double *samples = calloc((size_t)runs * iters, sizeof(double));
	double *means = calloc(runs, sizeof(double));
	double *groups = calloc(runs, sizeof(double));
	double *lat = calloc((size_t)runs * iters, sizeof(double));
	double *tput = calloc((size_t)runs * iters, sizeof(double));
	if (!samples || !means || !groups || !lat || !tput)
		die("calloc");
	double start = now_ms();
	for (int r = 0; r < runs; r++) {
		for (int i = -1; i < iters; i++) { /* i == -1: one untimed warm-up fork */
			double lat_ms = probe ? latency_probe_ms() : 0;
			double tput_ms = probe ? throughput_probe_ms() : 0;
			double t0 = now_ms();
			pid_t pid = fork();
			if (pid == 0)
				_exit(0);
			double t1 = now_ms();
			if (pid < 0)
				die("fork");
			if (waitpid(pid, NULL, 0) != pid)
				die("waitpid");
			double t2 = now_ms();
			if (i >= 0) {
				size_t k = (size_t)r * iters + i;
				samples[k] = t1 - t0;
				lat[k] = lat_ms;
				tput[k] = tput_ms;
				means[r] += (t1 - t0) / iters;
				if (probe)
					printf("%.1f %.3f %.3f %.3f %.3f\n", t0 - start, t1 - t0,
					       t2 - t0, lat_ms, tput_ms);
				else if (series)
					printf("%.1f %.3f %.3f\n", t0 - start, t1 - t0, t2 - t0);
			}
			double pause = (t2 - t0) / 5 > 1 ? (t2 - t0) / 5 : 1;
			struct timespec ts = { 0, (long)(pause * 1e6) };
			nanosleep(&ts, NULL);
		}
		printf("run %d: mean %.3f ms\n", r, means[r]);
	}
	double total = 0;
	for (int r = 0; r < runs; r++)
		total += means[r] / runs;
	size_t n = (size_t)runs * iters;
	for (size_t k = 0; k < n; k++)
		groups[k % runs] += samples[k] / (double)iters;
	printf("%s over %d runs x %d: fork mean %.3f ms std_rel %.2f%% (without drift %.2f%%)\n",
	       layout, runs, iters, total, std_rel(means, runs), std_rel(groups, runs));
	if (probe)
		printf("correlation with fork time: latency probe r %.2f, throughput probe r %.2f\n",
		       pearson(lat, samples, n), pearson(tput, samples, n));
	return 0;
}
