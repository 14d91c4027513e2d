/* bench_virtio: virtio-blk throughput against the host's own pread/pwrite, and the
 * notification and interrupt counts with and without VIRTIO_F_EVENT_IDX.
 *
 * The image is a file of 256 MiB (--quick: 32 MiB) in --dir, written, synced and thus
 * in the page cache before the first sample: both sides measure the cached case (we
 * cannot drop the caches fairly on a shared machine). A "lib" sample is one guest pass
 * (tests/guests/bench_blk.c): nreq requests with qd in flight, timed around the
 * vmm_vcpu_run that runs it. A "base" sample is the host doing the very same requests
 * (same offsets, same sizes, reads and writes cycling through qd buffers of the same
 * size, so the memory touched is alike) with pread/pwrite, one at a time, on the same
 * file. A third, diagnostic side, "base+spin", is base with a thread polling on
 * another CPU as the guest's vCPU does: the polling guest slows the loop thread (much on
 * a busy machine, a little on an idle one), and lib/base+spin shows how much of the
 * lib/base gap that accounts for. Samples rotate lib, base,
 * base+spin, the side that goes first rotating too; before each write sample the same
 * writes are done once untimed, so every side rewrites dirty cached pages. Guests
 * negotiate FLUSH and EVENT_IDX (as Linux does) but never flush, like the host. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_virtio_host.h"

#define MIB (1ull << 20)

struct blk_fig {
	const char *name;
	uint32_t op, req_bytes, qd, random;
	bool iops; /* the figure is IOPS (else MB/s) */
};

static const struct blk_fig figs[] = {
	{ "blk_seq_read", BV_BLK_READ, 256u << 10, 32, 0, false },
	{ "blk_seq_write", BV_BLK_WRITE, 256u << 10, 32, 0, false },
	{ "blk_rand_read_4k", BV_BLK_READ, 4096, 64, 1, true },
	{ "blk_rand_write_4k", BV_BLK_WRITE, 4096, 64, 1, true },
};
#define NFIGS (sizeof figs / sizeof figs[0])

/* The event-index comparison: random 4 KiB reads, 64 in flight. */
struct evidx_cfg {
	const char *suffix;
	uint32_t event_idx, irq;
};
static const struct evidx_cfg cfgs[] = {
	{ "no_event_idx", 0, BV_IRQ_EACH },
	{ "event_idx", 1, BV_IRQ_EACH },
	{ "event_idx_delayed", 1, BV_IRQ_DELAYED },
};
#define NCFGS (sizeof cfgs / sizeof cfgs[0])

struct blk_env {
	struct bv_vm vm;
	vmm_virtio_device *dev; /* owned by the VM */
	int fd;
	uint64_t img_bytes;
	uint64_t cmd_gpa, out_gpa;
	uint8_t *bufs;          /* the host's qd buffers */
};

/* A file of `bytes` in dir, unlinked at once (the fd keeps it), written and synced. */
static int make_image(struct blk_env *e, const char *dir)
{
	char path[128];
	snprintf(path, sizeof path, "%s/bench-virtio-blk-XXXXXX", dir);
	e->fd = mkstemp(path);
	if (e->fd < 0) {
		fprintf(stderr, "bench_virtio: mkstemp %s: %s\n", path, strerror(errno));
		return -1;
	}
	unlink(path);
	uint8_t *chunk = malloc(MIB);
	if (!chunk)
		return -1;
	for (uint64_t off = 0; off < e->img_bytes; off += MIB) {
		for (size_t i = 0; i < MIB; i += 8) {
			uint64_t w = bv_mix(off + i);
			memcpy(chunk + i, &w, 8);
		}
		if (pwrite(e->fd, chunk, MIB, (off_t)off) != (ssize_t)MIB) {
			fprintf(stderr, "bench_virtio: writing the image: %s\n", strerror(errno));
			free(chunk);
			return -1;
		}
	}
	free(chunk);
	if (fdatasync(e->fd) != 0) {
		fprintf(stderr, "bench_virtio: fdatasync: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* A thread that polls like the guest does (a `pause` loop) while the host's own pass
 * runs: the "base+spin" side. The polling vCPU slows the loop thread: on a busy machine
 * it takes CPU time the loop thread would have had (pread 1.4-2x slower here), on an
 * idle one a few percent (shared caches and memory bandwidth). base+spin shows how much
 * of the lib/base gap is that rather than the library. */
static void *pause_spin(void *arg)
{
	atomic_bool *stop = arg;
	while (!atomic_load_explicit(stop, memory_order_relaxed))
		__builtin_ia32_pause();
	return NULL;
}

/* The host's own pass: the same requests with pread/pwrite, one at a time. *cpu_ns =
 * the CPU time this thread used. */
static int base_pass(struct blk_env *e, const struct bv_blk_cmd *c, double *ns, double *cpu_ns)
{
	struct timespec c0, c1;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	double t0 = bench_now_ns();
	for (uint64_t k = 0; k < c->nreq; k++) {
		uint8_t *b = e->bufs + (k % c->qd) * c->req_bytes;
		off_t off = (off_t)bv_blk_offset(c, k);
		ssize_t r = c->op == BV_BLK_WRITE ? pwrite(e->fd, b, c->req_bytes, off)
						  : pread(e->fd, b, c->req_bytes, off);
		if (r != (ssize_t)c->req_bytes) {
			fprintf(stderr, "bench_virtio: host %s at %lld: %zd (%s)\n",
				c->op == BV_BLK_WRITE ? "pwrite" : "pread", (long long)off, r, strerror(errno));
			return -1;
		}
	}
	*ns = bench_now_ns() - t0;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	*cpu_ns = (double)(c1.tv_sec - c0.tv_sec) * 1e9 + (double)(c1.tv_nsec - c0.tv_nsec);
	return 0;
}

/* One guest pass of *c; checks that every request completed with OK and that the
 * device counted exactly those requests. */
static int lib_pass(struct blk_env *e, const struct bv_blk_cmd *c, double *ns, struct bv_blk_out *out)
{
	vmm_virtio_blk_stats s0, s1;
	if (vmm_virtio_blk_get_stats(e->dev, &s0) || bv_vm_write(&e->vm, e->cmd_gpa, c, sizeof *c) ||
	    bv_vm_pass(&e->vm, ns) || bv_vm_read(&e->vm, e->out_gpa, out, sizeof *out) ||
	    vmm_virtio_blk_get_stats(e->dev, &s1))
		return -1;
	uint64_t served = c->op == BV_BLK_WRITE ? s1.writes - s0.writes : s1.reads - s0.reads;
	if (out->done != c->nreq || out->errors || served != c->nreq || s1.errors != s0.errors) {
		fprintf(stderr, "bench_virtio: blk pass: %llu of %llu done, %llu errors, device served %llu "
			"(%llu errors)\n", (unsigned long long)out->done, (unsigned long long)c->nreq,
			(unsigned long long)out->errors, (unsigned long long)served,
			(unsigned long long)(s1.errors - s0.errors));
		return -1;
	}
	return 0;
}

static double rate(const struct blk_fig *f, uint64_t nreq, double ns)
{
	double per_s = (double)nreq / (ns / 1e9);
	return f->iops ? per_s : per_s * f->req_bytes / 1e6;
}

static uint64_t fig_nreq(const struct blk_fig *f, const struct blk_env *e, bool quick)
{
	if (!f->random)
		return e->img_bytes / f->req_bytes; /* the whole image */
	return quick ? 2048 : 16384;
}

enum side { LIB, BASE, BASE_SPIN, NSIDES };

/* Per figure: the samples, and totals for the per-request breakdown. */
struct fig_acc {
	struct bench_series rate[NSIDES];
	double wall[NSIDES];       /* ns */
	uint64_t nreq[NSIDES];
	double cpu[NSIDES];        /* lib: the loop thread; base(+spin): the host thread */
	double cpu_vcpu;           /* lib: the vCPU thread (guest included) */
	uint64_t kicks;
};

static void report(const struct blk_fig *f, const struct fig_acc *a, uint64_t nreq)
{
	double lib = bench_median(&a->rate[LIB]), base = bench_median(&a->rate[BASE]);
	double spin = bench_median(&a->rate[BASE_SPIN]), p10, p90;
	bench_pair_ratios(&a->rate[LIB], &a->rate[BASE], &p10, NULL, &p90);
	const char *unit = f->iops ? "IOPS" : "MB/s";
	if (f->iops)
		printf("%s lib=%.0f%s base=%.0f%s ratio=%.3f\n", f->name, lib, unit, base, unit, lib / base);
	else
		printf("%s lib=%.1f%s base=%.1f%s ratio=%.3f\n", f->name, lib, unit, base, unit, lib / base);
	double other = f->iops ? f->req_bytes / 1e6 : 1e6 / f->req_bytes;
	const char *ounit = f->iops ? "MB/s" : "IOPS";
	printf("# %s: %u KiB %s requests, %llu a sample, %u in flight in the guest, one at a time "
	       "on the host; lib %.0f %s, base %.0f %s; pairwise lib/base 10th-90th percentile "
	       "%.3f .. %.3f; base+spin (a pause loop on another CPU, as the polling guest) "
	       "%.0f %s, lib/base+spin %.3f\n", f->name, f->req_bytes >> 10,
	       f->random ? "random" : "sequential", (unsigned long long)nreq, f->qd, lib * other, ounit,
	       base * other, ounit, p10, p90, spin, unit, lib / spin);
	double n[NSIDES];
	for (int i = 0; i < NSIDES; i++)
		n[i] = (double)a->nreq[i] * 1e3; /* ns -> us per request */
	/* The device's work all happens on the loop thread: with a core of its own (and one
	 * for the polling guest) the ratio would approach base CPU / loop-thread CPU. */
	printf("# %s per request: lib %.2f us wall, loop thread %.2f us CPU, vCPU thread %.2f us "
	       "CPU, %.4f guest kicks; base %.2f us wall, %.2f us CPU; base+spin %.2f us wall, "
	       "%.2f us CPU; base CPU / loop-thread CPU %.3f\n", f->name, a->wall[LIB] / n[LIB],
	       a->cpu[LIB] / n[LIB], a->cpu_vcpu / n[LIB], (double)a->kicks / (double)a->nreq[LIB],
	       a->wall[BASE] / n[BASE], a->cpu[BASE] / n[BASE], a->wall[BASE_SPIN] / n[BASE_SPIN],
	       a->cpu[BASE_SPIN] / n[BASE_SPIN], (a->cpu[BASE] / n[BASE]) / (a->cpu[LIB] / n[LIB]));
}

/* One sample of `side`. */
static int sample(struct blk_env *e, const struct bv_blk_cmd *c, enum side side, struct fig_acc *a,
		  double *ns)
{
	double cpu;
	struct bv_blk_out out;
	if (side == LIB) {
		if (lib_pass(e, c, ns, &out))
			return -1;
		a->kicks += out.kicks;
		a->cpu[LIB] += e->vm.pass_loop_cpu_ns;
		a->cpu_vcpu += e->vm.pass_vcpu_cpu_ns;
		return 0;
	}
	atomic_bool stop = false;
	pthread_t th;
	if (side == BASE_SPIN && pthread_create(&th, NULL, pause_spin, &stop) != 0) {
		fputs("bench_virtio: pthread_create failed\n", stderr);
		return -1;
	}
	int r = base_pass(e, c, ns, &cpu);
	if (side == BASE_SPIN) {
		atomic_store(&stop, true);
		pthread_join(th, NULL);
	}
	a->cpu[side] += cpu;
	return r;
}

static int throughput(struct blk_env *e, const struct bv_params *p)
{
	struct fig_acc acc[NFIGS];
	memset(acc, 0, sizeof acc);
	int r = 0;
	for (unsigned round = 0; round < p->rounds && !r; round++) {
		for (unsigned fi = 0; fi < NFIGS && !r; fi++) {
			const struct blk_fig *f = &figs[fi];
			struct fig_acc *a = &acc[fi];
			struct bv_blk_cmd c = { .op = f->op, .req_bytes = f->req_bytes, .qd = f->qd,
						.random = f->random, .nreq = fig_nreq(f, e, p->quick),
						.seed = round * 7919u + fi, .span_bytes = e->img_bytes,
						.event_idx = 1, .irq = BV_IRQ_EACH };
			for (unsigned k = 0; k < NSIDES && !r; k++) {
				enum side side = (enum side)((round + fi + k) % NSIDES);
				double ns, cpu;
				/* Writes: the first writer of a page cleaned by writeback pays more
				 * than the next one, so every timed side finds the same state: the
				 * pages of this request set dirtied just before, untimed. */
				if (f->op == BV_BLK_WRITE && (r = base_pass(e, &c, &ns, &cpu)))
					break;
				if ((r = sample(e, &c, side, a, &ns)))
					break;
				a->wall[side] += ns;
				a->nreq[side] += c.nreq;
				bench_push(&a->rate[side], rate(f, c.nreq, ns));
			}
		}
		if (!r)
			fprintf(stderr, "bench_virtio: blk round %u/%u\n", round + 1, p->rounds);
	}
	for (unsigned fi = 0; fi < NFIGS && !r; fi++)
		report(&figs[fi], &acc[fi], fig_nreq(&figs[fi], e, p->quick));
	for (unsigned fi = 0; fi < NFIGS; fi++)
		for (int i = 0; i < NSIDES; i++)
			bench_series_free(&acc[fi].rate[i]);
	return r;
}

static int event_idx(struct blk_env *e, const struct bv_params *p)
{
	struct {
		uint64_t req, kicks, notifies, interrupts;
		struct bench_series iops;
	} acc[NCFGS] = { 0 };
	uint64_t nreq = p->quick ? 2048 : 16384;
	int r = 0;
	for (unsigned round = 0; round < p->rounds && !r; round++) {
		for (unsigned ci = 0; ci < NCFGS && !r; ci++) {
			const struct evidx_cfg *cf = &cfgs[(ci + round) % NCFGS];
			unsigned idx = (unsigned)(cf - cfgs);
			struct bv_blk_cmd c = { .op = BV_BLK_READ, .req_bytes = 4096, .qd = 64, .random = 1,
						.nreq = nreq, .seed = 1000003u * round + ci, .span_bytes = e->img_bytes,
						.event_idx = cf->event_idx, .irq = cf->irq };
			/* The first pass after a switch re-initialises the driver: not counted. */
			struct bv_blk_cmd warm = c;
			warm.nreq = 64;
			struct bv_blk_out out;
			double ns;
			vmm_virtio_mmio_stats m0, m1;
			if ((r = lib_pass(e, &warm, &ns, &out)))
				break;
			vmm_virtio_mmio_get_stats(e->vm.mmio, &m0);
			if ((r = lib_pass(e, &c, &ns, &out)))
				break;
			vmm_virtio_mmio_get_stats(e->vm.mmio, &m1);
			acc[idx].req += c.nreq;
			acc[idx].kicks += out.kicks;
			acc[idx].notifies += m1.notifies - m0.notifies;
			acc[idx].interrupts += m1.interrupts - m0.interrupts;
			bench_push(&acc[idx].iops, (double)c.nreq / (ns / 1e9));
		}
	}
	static const char *const what[3] = { "kicks", "notifies", "interrupts" };
	for (unsigned w = 0; w < 3 && !r; w++)
		for (unsigned ci = 0; ci < NCFGS; ci++) {
			uint64_t n = w == 0 ? acc[ci].kicks : w == 1 ? acc[ci].notifies : acc[ci].interrupts;
			printf("blk_%s_per_req_%s value=%.4f/req\n", what[w], cfgs[ci].suffix,
			       (double)n / (double)acc[ci].req);
		}
	if (!r)
		printf("# blk_*_per_req: random 4 KiB reads, 64 in flight, %llu requests a sample. kicks: "
		       "QueueNotify writes by the guest (each an exit); notifies: doorbells the device "
		       "handled (vmm_virtio_mmio_get_stats; kicks that arrive while one is pending "
		       "coalesce); interrupts: raised by the device. no_event_idx: avail flags 0, kicks "
		       "unless VRING_USED_F_NO_NOTIFY; event_idx: avail_event decides kicks, used_event = "
		       "last used (virtqueue_enable_cb); event_idx_delayed: used_event 3/4 of the "
		       "requests in flight ahead (virtqueue_enable_cb_delayed). IOPS %.0f / %.0f / %.0f\n",
		       (unsigned long long)nreq, bench_median(&acc[0].iops), bench_median(&acc[1].iops),
		       bench_median(&acc[2].iops));
	for (unsigned ci = 0; ci < NCFGS; ci++)
		bench_series_free(&acc[ci].iops);
	return r;
}

int bv_bench_blk(const struct bv_params *p)
{
	struct blk_env e = { .fd = -1, .img_bytes = (p->quick ? 32 : 256) * MIB };
	int r = -1;
	bool opened = false;
	if (make_image(&e, p->dir))
		goto out;
	e.bufs = aligned_alloc(4096, BV_BLK_BUF_BYTES);
	if (!e.bufs)
		goto out;
	memset(e.bufs, 0x5a, BV_BLK_BUF_BYTES);
	vmm_virtio_blk_opts bo = VMM_VIRTIO_BLK_OPTS_INIT;
	bo.fd = e.fd;
	int cr = vmm_virtio_blk_create(&e.dev, &bo);
	if (cr) {
		fprintf(stderr, "bench_virtio: vmm_virtio_blk_create: %s (%s)\n", vmm_strerror(cr), vmm_last_error());
		goto out;
	}
	opened = true;
	if (bv_vm_open(&e.vm, "bench_blk", p)) {
		vmm_virtio_device_destroy(e.dev);
		goto out;
	}
	if (bv_vm_attach_start(&e.vm, e.dev))
		goto out;
	e.cmd_gpa = bv_vm_sym(&e.vm, "cmd");
	e.out_gpa = bv_vm_sym(&e.vm, "out");
	if (!e.cmd_gpa || !e.out_gpa)
		goto out;
	printf("# blk: %llu MiB image in %s, in the page cache on both sides\n",
	       (unsigned long long)(e.img_bytes / MIB), p->dir);
	/* Warm-up, not recorded: guest buffers and host buffers faulted in, code paths hot. */
	struct bv_blk_cmd w = { .op = BV_BLK_READ, .req_bytes = 256u << 10, .qd = 32, .random = 0,
				.nreq = e.img_bytes / (256u << 10), .seed = 1, .span_bytes = e.img_bytes,
				.event_idx = 1, .irq = BV_IRQ_EACH };
	struct bv_blk_out out;
	double ns, cpu;
	if (lib_pass(&e, &w, &ns, &out) || base_pass(&e, &w, &ns, &cpu))
		goto out;
	if (throughput(&e, p) || event_idx(&e, p))
		goto out;
	r = 0;
out:
	if (opened)
		bv_vm_close(&e.vm);
	free(e.bufs);
	if (e.fd >= 0)
		close(e.fd);
	return r;
}
