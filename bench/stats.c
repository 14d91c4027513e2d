/* Samples, medians and spreads shared by the benchmarks (see stats.h). */
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void bench_push(struct bench_series *s, double v)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = realloc(s->v, s->cap * sizeof *s->v);
		if (!s->v) {
			fputs("bench: out of memory\n", stderr);
			exit(1);
		}
	}
	s->v[s->n++] = v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* A sorted copy of v (NULL for none or out of memory). */
static double *sorted_copy(const double *v, size_t n)
{
	double *t = n ? malloc(n * sizeof *t) : NULL;
	if (!t)
		return NULL;
	memcpy(t, v, n * sizeof *t);
	qsort(t, n, sizeof *t, cmp_double);
	return t;
}

double bench_median_of(const double *v, size_t n)
{
	double *t = sorted_copy(v, n);
	if (!t)
		return 0;
	double m = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
	free(t);
	return m;
}

double bench_median(const struct bench_series *s) { return bench_median_of(s->v, s->n); }

double bench_quantile(const struct bench_series *s, double q)
{
	double *t = sorted_copy(s->v, s->n);
	if (!t)
		return 0;
	size_t i = q <= 0 ? 0 : q >= 1 ? s->n - 1 : (size_t)(q * (double)(s->n - 1) + 0.5);
	double v = t[i];
	free(t);
	return v;
}

void bench_pair_ratios(const struct bench_series *a, const struct bench_series *b, double *p10, double *p50,
		       double *p90)
{
	size_t n = a->n < b->n ? a->n : b->n;
	double r10 = 0, r50 = 0, r90 = 0;
	double *q = n ? malloc(n * sizeof *q) : NULL;
	if (q) {
		for (size_t i = 0; i < n; i++)
			q[i] = b->v[i] > 0 ? a->v[i] / b->v[i] : 0;
		qsort(q, n, sizeof *q, cmp_double);
		r10 = q[n / 10];
		r50 = n % 2 ? q[n / 2] : (q[n / 2 - 1] + q[n / 2]) / 2;
		r90 = q[n - 1 - n / 10];
		free(q);
	}
	if (p10)
		*p10 = r10;
	if (p50)
		*p50 = r50;
	if (p90)
		*p90 = r90;
}

void bench_series_free(struct bench_series *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

double bench_now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

void bench_require_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return;
	}
	int err = errno;
	const char *req = getenv("LIBVMM_REQUIRE_KVM");
	if (req && strcmp(req, "1") == 0) {
		fprintf(stderr, "FAIL: /dev/kvm: %s, and LIBVMM_REQUIRE_KVM=1\n", strerror(err));
		exit(1);
	}
	fprintf(stderr, "SKIP: /dev/kvm: %s\n", strerror(err));
	exit(77);
}
