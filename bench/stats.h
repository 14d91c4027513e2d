/* Samples, medians and spreads shared by the benchmarks in bench/.
 *
 * Every benchmark here measures two sides in one run (libvmm and a baseline), sample
 * by sample, alternating, and reports the ratio of the medians; the spread of the
 * pairwise ratios (sample i of one side over sample i of the other, taken next to each
 * other) says how far the median can be trusted on a noisy machine. */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stddef.h>

struct bench_series {
	double *v;
	size_t n, cap;
};

/* Appends a sample (exits with a message if memory runs out: benchmarks only). */
void bench_push(struct bench_series *s, double v);
/* Median of n values (0 for none); v is not modified. */
double bench_median_of(const double *v, size_t n);
double bench_median(const struct bench_series *s);
/* The q-quantile (0..1) of the samples, nearest rank; 0 for none. */
double bench_quantile(const struct bench_series *s, double q);
/* 10th, 50th and 90th percentile of the pairwise ratios a[i] / b[i] over the samples
 * both have (pairs with b[i] <= 0 count as 0). Any output pointer may be NULL. */
void bench_pair_ratios(const struct bench_series *a, const struct bench_series *b, double *p10, double *p50,
		       double *p90);
void bench_series_free(struct bench_series *s);
/* Returns if /dev/kvm opens read-write; otherwise exits 77 (skip), or 1 when the
 * environment has LIBVMM_REQUIRE_KVM=1 (CI must not skip). */
void bench_require_kvm(void);
/* CLOCK_MONOTONIC in nanoseconds. */
double bench_now_ns(void);

#endif
