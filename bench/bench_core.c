/* bench_core: libvmm against raw KVM ioctls, measured side by side in one run.
 *
 * Prints one line per figure:   <name> lib=<value>us raw=<value>us ratio=<lib/raw>
 * (and comment lines starting with '#'). The machines this runs on are shared and noisy,
 * so lib and raw samples alternate (lib, raw, raw, lib, ...): for the exit figures a lib
 * VM and a raw VM live side by side and take turns running chunks of a few tens of
 * milliseconds; VM creations alternate one by one. Each figure is the median of all its
 * samples; ratio is lib/raw of the two medians, and a '#' line per figure gives the
 * spread of the pairwise ratios (how much to trust it). Exit 77 without a usable
 * /dev/kvm (unless LIBVMM_REQUIRE_KVM=1).
 *
 *   bench_core [--quick] [--iterations N] [--rounds R]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "stats.h"

enum figure {
	F_CREATE, F_DESTROY, F_CREATE_PLATFORM, F_PIO0, F_PIO3, F_MMIO0, F_MMIO3, F_IRQFD, F_COUNT
};

static const char *const figure_names[F_COUNT] = {
	[F_CREATE] = "vm_create_to_first_insn",
	[F_DESTROY] = "vm_destroy",
	[F_CREATE_PLATFORM] = "vm_create_default_to_first_insn",
	[F_PIO0] = "pio_exit_cpl0",
	[F_PIO3] = "pio_exit_cpl3",
	[F_MMIO0] = "mmio_exit_cpl0",
	[F_MMIO3] = "mmio_exit_cpl3",
	[F_IRQFD] = "irqfd_roundtrip",
};

struct params {
	unsigned rounds;   /* fresh VMs each round */
	unsigned chunks;   /* samples per side per loop figure per round, interleaved */
	uint32_t n_cpl0;   /* exits per sample (chunk) at CPL 0 */
	uint32_t n_cpl3;   /* exits per sample at CPL 3 (each 3-6x dearer here) */
	uint32_t n_irq;    /* interrupts per sample */
	unsigned creates;  /* VM creations per side per round */
};

/* Per-unit samples (microseconds) of one figure on one side. */

struct results {
	struct bench_series s[F_COUNT][2]; /* [figure][0 = lib, 1 = raw] */
};

static const struct backend *const sides[2] = { &bench_lib, &bench_raw };

static int failed(enum figure f, int side)
{
	fprintf(stderr, "bench: %s failed on the %s side\n", figure_names[f], sides[side]->name);
	return -1;
}

/* One bare VM creation on side `side` (a F_CREATE and a F_DESTROY sample), and one with
 * the default composition, in-kernel irqchip and PIT (a F_CREATE_PLATFORM sample). */
static int create_sample(struct results *res, int side)
{
	double create_ns, destroy_ns;
	if (sides[side]->create_to_first_insn(false, &create_ns, &destroy_ns))
		return failed(F_CREATE, side);
	bench_push(&res->s[F_CREATE][side], create_ns / 1e3);
	bench_push(&res->s[F_DESTROY][side], destroy_ns / 1e3);
	if (sides[side]->create_to_first_insn(true, &create_ns, &destroy_ns))
		return failed(F_CREATE_PLATFORM, side);
	bench_push(&res->s[F_CREATE_PLATFORM][side], create_ns / 1e3);
	return 0;
}

/* One loop figure for one round: a lib VM and a raw VM side by side, their chunks
 * alternating (the side that goes first alternates too), so a burst of noise from the
 * other tenants of the machine hits both sides alike. */
static int loop_round(struct results *res, unsigned round, enum figure f, const struct params *p)
{
	enum loop_kind kind = f == F_PIO0 || f == F_PIO3 ? LOOP_PIO : f == F_IRQFD ? LOOP_IRQFD : LOOP_MMIO;
	unsigned cpl = f == F_PIO3 || f == F_MMIO3 ? 3 : 0;
	uint32_t n = f == F_IRQFD ? p->n_irq : cpl ? p->n_cpl3 : p->n_cpl0;
	void *vm[2] = { NULL, NULL };
	int r = 0;
	for (int side = 0; side < 2 && !r; side++)
		if (!(vm[side] = sides[side]->loop_open(kind, cpl, n)))
			r = failed(f, side);
	for (unsigned c = 0; c < p->chunks && !r; c++) {
		for (int k = 0; k < 2 && !r; k++) {
			int side = (int)((round + c + (unsigned)k) % 2);
			double ns;
			if (sides[side]->loop_chunk(vm[side], &ns))
				r = failed(f, side);
			else
				bench_push(&res->s[f][side], ns / 1e3 / n);
		}
	}
	for (int side = 0; side < 2; side++)
		if (vm[side])
			sides[side]->loop_close(vm[side]);
	return r;
}

static int run_round(struct results *res, unsigned round, const struct params *p)
{
	/* Creation is quick and very noisy: many pairs per round, first side alternating. */
	for (unsigned i = 0; i < p->creates; i++) {
		int first = (int)((round + i) % 2);
		if (create_sample(res, first) || create_sample(res, !first))
			return -1;
	}
	static const enum figure loops[] = { F_PIO0, F_PIO3, F_MMIO0, F_MMIO3, F_IRQFD };
	for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++)
		if (loop_round(res, round, loops[i], p))
			return -1;
	return 0;
}

/* Quantiles of the pairwise lib/raw ratios of figure f (samples i of both sides were
 * taken next to each other): how much the medians can be trusted. */
static void pair_ratios(const struct results *res, enum figure f, double *p10, double *p50, double *p90)
{
	bench_pair_ratios(&res->s[f][0], &res->s[f][1], p10, p50, p90);
}

static void usage(FILE *to)
{
	fputs("usage: bench_core [--quick] [--iterations N] [--rounds R]\n"
	      "  --quick         a few seconds in total (CI smoke run; figures are rough)\n"
	      "  --iterations N  exits per sample at CPL 0 (default 4000, --quick 1000); CPL 3\n"
	      "                  samples take N/4 exits, irqfd samples N/2 interrupts\n"
	      "  --rounds R      rounds, each with fresh VMs and 15 samples per side and figure\n"
	      "                  (--quick: 3), lib and raw alternating (default 12, --quick 3)\n",
	      to);
}

static unsigned long parse_count(const char *opt, const char *arg)
{
	char *end;
	errno = 0;
	unsigned long v = arg ? strtoul(arg, &end, 10) : 0;
	if (!arg || errno || *end || v == 0 || v > 100000000ul) {
		fprintf(stderr, "bench: %s needs a count from 1 to 100000000\n", opt);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	unsigned long iterations = 4000, rounds = 12;
	bool quick = false, have_iter = false, have_rounds = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			quick = true;
		} else if (strcmp(argv[i], "--iterations") == 0) {
			iterations = parse_count(argv[i], argv[i + 1]);
			have_iter = true;
			i++;
		} else if (strcmp(argv[i], "--rounds") == 0) {
			rounds = parse_count(argv[i], argv[i + 1]);
			have_rounds = true;
			i++;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (quick) {
		iterations = have_iter ? iterations : 1000;
		rounds = have_rounds ? rounds : 3;
	}
	if (rounds > 1000) {
		fputs("bench: at most 1000 rounds\n", stderr);
		return 2;
	}
	struct params p = {
		.rounds = (unsigned)rounds,
		.chunks = quick ? 3 : 15,
		.n_cpl0 = (uint32_t)iterations,
		.n_cpl3 = iterations / 4 ? (uint32_t)(iterations / 4) : 1,
		.n_irq = iterations / 2 ? (uint32_t)(iterations / 2) : 1,
		.creates = quick ? 8 : 40,
	};
	bench_require_kvm();
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# bench_core: libvmm (lib) against inline KVM ioctls (raw), interleaved; medians of "
	       "%u samples a side; a sample is %u exits at CPL 0, %u at CPL 3, %u interrupts, or "
	       "one VM (%u)\n", p.rounds * p.chunks, p.n_cpl0, p.n_cpl3, p.n_irq, p.rounds * p.creates);

	double start = bench_now_ns();
	/* Warm-up, not recorded: page in code, KVM's caches, the library's first-use paths. */
	struct params warm = { .rounds = 1, .chunks = 1, .n_cpl0 = 50, .n_cpl3 = 10, .n_irq = 20, .creates = 1 };
	struct results scratch = { 0 };
	if (run_round(&scratch, 0, &warm))
		return 1;
	struct results res = { 0 };
	for (unsigned r = 0; r < p.rounds; r++) {
		if (run_round(&res, r, &p))
			return 1;
		fprintf(stderr, "bench: round %u/%u done (%.1f s)\n", r + 1, p.rounds,
			(bench_now_ns() - start) / 1e9);
	}

	static const enum figure order[] = { F_CREATE, F_DESTROY, F_CREATE_PLATFORM, F_PIO0, F_PIO3, F_MMIO0, F_MMIO3, F_IRQFD };
	for (size_t i = 0; i < F_COUNT; i++) {
		enum figure f = order[i];
		double lib = bench_median(&res.s[f][0]);
		double raw = bench_median(&res.s[f][1]);
		printf("%s lib=%.2fus raw=%.2fus ratio=%.3f\n", figure_names[f], lib, raw, lib / raw);
	}
	for (size_t i = 0; i < F_COUNT; i++) {
		enum figure f = order[i];
		double p10, p50, p90;
		pair_ratios(&res, f, &p10, &p50, &p90);
		printf("# %s: pairwise lib/raw ratio median %.3f, 10th-90th percentile %.3f .. %.3f, "
		       "%zu pairs\n", figure_names[f], p50, p10, p90, res.s[f][0].n);
	}
	printf("# total %.1f s\n", (bench_now_ns() - start) / 1e9);
	for (size_t f = 0; f < F_COUNT; f++)
		for (int s = 0; s < 2; s++) {
			free(res.s[f][s].v);
			free(scratch.s[f][s].v);
		}
	return 0;
}
