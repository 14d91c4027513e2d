/* bench_virtio: virtio-net through the callback back end (tests/guests/bench_net.c).
 *
 * TX: the guest keeps its 256 transmit slots queued; the device hands each frame to our
 * tx callback (which counts it) on the loop thread. RX: a host thread injects frames
 * with vmm_virtio_net_receive as fast as the device takes them (a full backlog,
 * -ENOBUFS, means wait and retry) while the guest takes them from its 256 posted
 * buffers and reposts them. A sample is one pass, timed around the vmm_vcpu_run that
 * runs it (RX: the injector starts with it). Frames of 64 bytes and of 1514 bytes (a
 * 1500-byte MTU), Ethernet header included; MB/s counts frame bytes (10^6 bytes),
 * without the virtio-net header. No baseline: the frames go nowhere else. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_virtio_host.h"

struct net_env {
	struct bv_vm vm;
	vmm_virtio_device *dev;
	uint64_t cmd_gpa, out_gpa;
	atomic_uint_fast64_t tx_frames, tx_bytes;
};

static void count_tx(void *ctx, const void *frame, size_t len)
{
	struct net_env *e = ctx;
	(void)frame;
	atomic_fetch_add_explicit(&e->tx_frames, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&e->tx_bytes, len, memory_order_relaxed);
}

struct injector {
	vmm_virtio_device *dev;
	uint8_t frame[BV_NET_SLOT];
	uint32_t len;
	uint64_t frames;
	uint64_t retries; /* -ENOBUFS: the backlog was full */
	double cpu_ns;    /* the injector thread's CPU time */
	int err;
	atomic_bool stop; /* the pass failed: give up */
};

static void *inject_main(void *arg)
{
	struct injector *in = arg;
	for (uint64_t i = 0; i < in->frames && !atomic_load_explicit(&in->stop, memory_order_relaxed);) {
		int r = vmm_virtio_net_receive(in->dev, in->frame, in->len);
		if (r == 0) {
			i++;
		} else if (r == -ENOBUFS) {
			/* Full: the device is behind. Sleep rather than spin, so as not to take
			 * the CPU from the loop thread (1024 frames take the device ~1 ms). */
			in->retries++;
			struct timespec ts = { 0, 20000 };
			nanosleep(&ts, NULL);
		} else {
			in->err = r;
			break;
		}
	}
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	in->cpu_ns = (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
	return NULL;
}

/* Totals over the samples of one figure. */
struct net_acc {
	struct bench_series fps;
	double wall, cpu_loop, cpu_vcpu, cpu_inject;
	uint64_t frames, kicks, retries;
};

static int pass(struct net_env *e, const struct bv_net_cmd *c, double *ns, struct bv_net_out *out,
		struct net_acc *acc)
{
	struct injector in = { .dev = e->dev, .len = c->frame_len, .frames = c->frames };
	pthread_t th;
	bool rx = c->op == BV_NET_RX;
	uint64_t f0 = atomic_load(&e->tx_frames), b0 = atomic_load(&e->tx_bytes);
	if (bv_vm_write(&e->vm, e->cmd_gpa, c, sizeof *c))
		return -1;
	if (rx) {
		memset(in.frame, 0xff, 6); /* broadcast, from a made-up host MAC, our ethertype */
		memcpy(in.frame + 6, "\x02\x00\x00\x00\x00\x01\x88\xb6", 8);
		for (uint32_t k = 14; k < in.len; k++)
			in.frame[k] = (uint8_t)k;
	}
	double t0 = bench_now_ns();
	if (rx && pthread_create(&th, NULL, inject_main, &in) != 0) {
		fputs("bench_virtio: pthread_create failed\n", stderr);
		return -1;
	}
	double run_ns;
	int r = bv_vm_pass(&e->vm, &run_ns);
	*ns = bench_now_ns() - t0;
	if (rx) {
		if (r)
			atomic_store(&in.stop, true);
		pthread_join(th, NULL);
	}
	if (r) {
		vmm_virtio_net_stats st;
		if (vmm_virtio_net_get_stats(e->dev, &st) == 0)
			fprintf(stderr, "bench_virtio: net %s pass of %llu frames failed; device totals: tx %llu, "
				"rx %llu, rx_dropped %llu (the injector's retries count there: %llu this pass)\n",
				rx ? "RX" : "TX", (unsigned long long)c->frames,
				(unsigned long long)st.tx_frames, (unsigned long long)st.rx_frames,
				(unsigned long long)st.rx_dropped, (unsigned long long)in.retries);
		return -1;
	}
	if (bv_vm_read(&e->vm, e->out_gpa, out, sizeof *out))
		return -1;
	if (acc) {
		acc->wall += *ns;
		acc->cpu_loop += e->vm.pass_loop_cpu_ns;
		acc->cpu_vcpu += e->vm.pass_vcpu_cpu_ns;
		acc->cpu_inject += in.cpu_ns;
		acc->frames += c->frames;
		acc->kicks += out->kicks;
		acc->retries += in.retries;
		bench_push(&acc->fps, (double)c->frames / (*ns / 1e9));
	}
	uint64_t tx_f = atomic_load(&e->tx_frames) - f0, tx_b = atomic_load(&e->tx_bytes) - b0;
	bool ok = rx ? in.err == 0 && out->frames == c->frames && out->errors == 0 &&
			       out->bytes == c->frames * c->frame_len
		     : out->frames == c->frames && tx_f == c->frames && tx_b == c->frames * c->frame_len;
	if (!ok) {
		fprintf(stderr, "bench_virtio: net %s pass: guest %llu frames %llu bytes %llu errors; tx "
			"callback %llu frames; injector error %d; expected %llu frames of %u bytes\n",
			rx ? "RX" : "TX", (unsigned long long)out->frames, (unsigned long long)out->bytes,
			(unsigned long long)out->errors, (unsigned long long)tx_f, in.err,
			(unsigned long long)c->frames, c->frame_len);
		return -1;
	}
	return 0;
}

static int measure(struct net_env *e, const struct bv_params *p)
{
	static const uint32_t lens[2] = { 64, 1514 };
	struct net_acc acc[2][2]; /* [direction][length] */
	memset(acc, 0, sizeof acc);
	uint64_t frames = p->quick ? 20000 : 200000;
	int r = 0;
	/* Warm-up, not recorded. */
	for (uint32_t d = 0; d < 2 && !r; d++) {
		struct bv_net_cmd c = { .op = d, .frame_len = 1514, .frames = 2000 };
		struct bv_net_out out;
		double ns;
		r = pass(e, &c, &ns, &out, NULL);
	}
	for (unsigned round = 0; round < p->rounds && !r; round++) {
		for (unsigned k = 0; k < 4 && !r; k++) {
			unsigned d = (k + round) % 2, l = (k / 2 + round) % 2;
			struct bv_net_cmd c = { .op = d, .frame_len = lens[l], .frames = frames };
			struct bv_net_out out;
			double ns;
			r = pass(e, &c, &ns, &out, &acc[d][l]);
		}
		if (!r)
			fprintf(stderr, "bench_virtio: net round %u/%u\n", round + 1, p->rounds);
	}
	for (unsigned d = 0; d < 2 && !r; d++)
		for (unsigned l = 0; l < 2; l++) {
			const struct net_acc *a = &acc[d][l];
			double f = bench_median(&a->fps), n = (double)a->frames;
			const char *dir = d == BV_NET_TX ? "tx" : "rx";
			printf("net_%s_frames_%ub value=%.0fframes/s\n", dir, lens[l], f);
			printf("net_%s_mbytes_%ub value=%.1fMB/s\n", dir, lens[l], f * lens[l] / 1e6);
			printf("# net_%s_%ub: %llu frames a sample; per frame: %.3f us wall, loop thread %.3f us "
			       "CPU, vCPU thread %.3f us CPU, %.4f guest kicks", dir, lens[l],
			       (unsigned long long)frames, a->wall / n / 1e3, a->cpu_loop / n / 1e3,
			       a->cpu_vcpu / n / 1e3, (double)a->kicks / n);
			if (d == BV_NET_RX)
				printf(", injector %.3f us CPU; backlog (1024 frames) found full %llu times",
				       a->cpu_inject / n / 1e3, (unsigned long long)a->retries);
			printf("\n");
		}
	for (unsigned d = 0; d < 2; d++)
		for (unsigned l = 0; l < 2; l++)
			bench_series_free(&acc[d][l].fps);
	return r;
}

int bv_bench_net(const struct bv_params *p)
{
	struct net_env *e = calloc(1, sizeof *e);
	if (!e)
		return -1;
	vmm_virtio_net_opts no = VMM_VIRTIO_NET_OPTS_INIT;
	no.backend = VMM_NET_CALLBACK;
	no.tx = count_tx;
	no.ctx = e;
	no.rx_backlog = 1024;
	int r = vmm_virtio_net_create(&e->dev, &no);
	if (r) {
		fprintf(stderr, "bench_virtio: vmm_virtio_net_create: %s (%s)\n", vmm_strerror(r), vmm_last_error());
		free(e);
		return -1;
	}
	r = -1;
	if (bv_vm_open(&e->vm, "bench_net", p))
		vmm_virtio_device_destroy(e->dev);
	else if (!bv_vm_attach_start(&e->vm, e->dev)) {
		e->cmd_gpa = bv_vm_sym(&e->vm, "cmd");
		e->out_gpa = bv_vm_sym(&e->vm, "out");
		if (e->cmd_gpa && e->out_gpa)
			r = measure(e, p);
	}
	bv_vm_close(&e->vm);
	free(e);
	return r;
}
