/* bench_virtio: the virtio devices from a guest at CPL 3, through the public API.
 *
 * Prints one line per figure:
 *   <name> lib=<value><unit> base=<value><unit> ratio=<lib/base>   (a baseline exists)
 *   <name> value=<value><unit>                                      (no baseline)
 * and comment lines starting with '#'. Figures:
 *  - blk_seq_read, blk_seq_write (MB/s), blk_rand_read_4k, blk_rand_write_4k (IOPS):
 *    the guest through virtio-blk against the host's own pread/pwrite of the same
 *    requests on the same file (both on the page cache), samples alternating; comment
 *    lines add the host with a polling thread beside it (base+spin).
 *  - blk_{kicks,notifies,interrupts}_per_req_{no_event_idx,event_idx,event_idx_delayed}:
 *    what VIRTIO_F_EVENT_IDX does to notifications and interrupts.
 *  - net_{tx,rx}_{frames,mbytes}_{64b,1514b}: the callback back end.
 *  - vsock_stream_{g2h,h2g}: one stream through the Unix-socket back end.
 * Each figure is the median of its samples. Comment lines add the spread and, per
 * request or frame, the CPU time of each thread: the loop thread does all device work,
 * the vCPU thread runs the polling guest. The lib side thus needs two busy threads and
 * the base side one, so on a contended machine the ratios drop while the CPU figures
 * stay put; the first and last lines say how much CPU the machine gave. Compare lib and
 * base of one run, not numbers across runs. Exit 77 without a usable /dev/kvm (unless
 * LIBVMM_REQUIRE_KVM=1).
 *
 *   bench_virtio [--quick] [--rounds R] [--dir DIR] [--only blk|net|vsock]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_virtio_host.h"

/* How much CPU the machine gives us right now: two threads spin for 300 ms; each one's
 * share of a CPU (1.0 = an idle core each). The lib side of blk needs two busy threads
 * (the polling guest and the device's loop), the base side one, so a contended machine
 * lowers the ratios; this line says how contended it was. */
static void *spin_main(void *arg)
{
	double *share = arg, t0 = bench_now_ns();
	struct timespec c0, c1;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	for (volatile unsigned long x = 0; bench_now_ns() - t0 < 300e6; x++)
		;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	*share = ((double)(c1.tv_sec - c0.tv_sec) * 1e9 + (double)(c1.tv_nsec - c0.tv_nsec)) / (bench_now_ns() - t0);
	return NULL;
}

static void cpu_check(const char *when)
{
	pthread_t th[2];
	double share[2] = { 0, 0 };
	for (int i = 0; i < 2; i++)
		if (pthread_create(&th[i], NULL, spin_main, &share[i]) != 0)
			return;
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	printf("# CPU available %s: two spinning threads got %.2f and %.2f of a CPU\n", when, share[0], share[1]);
}

static void usage(FILE *to)
{
	fputs("usage: bench_virtio [--quick] [--rounds R] [--dir DIR] [--only blk|net|vsock]\n"
	      "  --quick        a few seconds in total (CI smoke run; figures are rough)\n"
	      "  --rounds R     samples a side and figure, lib and base alternating\n"
	      "                 (default 15, --quick 1)\n"
	      "  --dir DIR      where the 256 MiB image (--quick: 32 MiB) and the vsock\n"
	      "                 sockets go (default /tmp; a real file system, not tmpfs,\n"
	      "                 to measure the page cache of one)\n"
	      "  --only WHAT    run one group of figures\n",
	      to);
}

int main(int argc, char **argv)
{
	struct bv_params p = { .quick = false, .rounds = 0, .dir = "/tmp" };
	const char *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			p.quick = true;
		} else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
			char *end;
			errno = 0;
			unsigned long r = strtoul(argv[++i], &end, 10);
			if (errno || *end || r == 0 || r > 1000) {
				fputs("bench_virtio: --rounds needs a count from 1 to 1000\n", stderr);
				return 2;
			}
			p.rounds = (unsigned)r;
		} else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			p.dir = argv[++i];
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			only = argv[++i];
			if (strcmp(only, "blk") && strcmp(only, "net") && strcmp(only, "vsock")) {
				usage(stderr);
				return 2;
			}
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (p.rounds == 0)
		p.rounds = p.quick ? 1 : 15;
	if (strlen(p.dir) > 64) {
		fputs("bench_virtio: --dir: at most 64 characters (socket paths must fit)\n", stderr);
		return 2;
	}
	bench_require_kvm();
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# bench_virtio: guests at CPL 3 polling their rings; devices on a loop thread; "
	       "%u sample(s) a side and figure, medians%s\n", p.rounds, p.quick ? " (--quick: rough)" : "");
	cpu_check("before");
	double t0 = bench_now_ns();
	int r = 0;
	if (!r && (!only || !strcmp(only, "blk")))
		r = bv_bench_blk(&p);
	if (!r && (!only || !strcmp(only, "net")))
		r = bv_bench_net(&p);
	if (!r && (!only || !strcmp(only, "vsock")))
		r = bv_bench_vsock(&p);
	if (r)
		return 1;
	printf("# total %.1f s\n", (bench_now_ns() - t0) / 1e9);
	cpu_check("after");
	return 0;
}
