/* bench_snapshot: snapshots, resets, clones and sandbox calls, each measured side by
 * side with its baseline in one run, samples alternating so that noise from the other
 * tenants of the machine hits both sides alike.
 *
 *  1. reset_<size>_<n>p: vmm_snapshot_reset after the guest (CPL 3) dirtied n pages
 *     spread over its fully touched RAM (n = 1, 16, 256, 4096; 64 MiB and 1 GiB),
 *     against fork() + the child storing to the same n pages of the same amount of
 *     touched memory + _exit + waitpid (the unit a process-based fuzzer pays per input).
 *     Goal: reset_64m_16p and reset_1g_16p ratio <= 0.2 (5x faster than the fork).
 *  2. call_reset / call_noreset: vmm_sandbox_call of an empty exported function, with
 *     the default reset and with VMM_SANDBOX_NO_RESET, against one raw KVM port-I/O
 *     exit round trip at CPL 3. Goal: ratio <= 1.3.
 *  3. clone_64m: 100 clones of a 64 MiB snapshot (latency, against fork() of a process
 *     with 64 MiB touched) and the RSS each adds after its guest dirtied 16 pages.
 *     Goal: clone_64m_rss_net <= 1024 KiB.
 *  4. restore_<size>: restore from files + run to the first guest exit, lazy against
 *     eager, and lazy 1 GiB against lazy 64 MiB. Goal: that ratio within 0.9 .. 1.1.
 *  5. save_<size>: vmm_snapshot_save to files against writing the memory with write();
 *     the state and memory files' apparent and allocated sizes.
 *
 * They run in the order 2, 3, 1 (with 5 per size), 4.
 *
 * Output: "<name> lib=<v><unit> base=<v><unit> ratio=<lib/base>" (medians) or
 * "<name> value=<v><unit>"; every other line is a '#' comment. Exit 77 without a
 * usable /dev/kvm (unless LIBVMM_REQUIRE_KVM=1).
 *
 *   bench_snapshot [--quick] [--dir DIR] [--part N]... [--irqchip kernel|none] [--no-pit] [--dirty-ring N]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot_bench.h"

static void usage(FILE *to)
{
	fputs("usage: bench_snapshot [--quick] [--dir DIR] [--part N]... [--irqchip kernel|none] [--no-pit] [--dirty-ring N]\n"
	      "  --quick          a few seconds (CI smoke run: 64 and 128 MiB guests, few samples;\n"
	      "                   the figures are rough)\n"
	      "  --dir DIR        where the snapshot files of parts 4 and 5 go (default /tmp); they\n"
	      "                   are removed at the end\n"
	      "  --part N         run part N only (1 reset, 2 calls, 3 clones, 4 restore, 5 save;\n"
	      "                   repeatable; 4 runs 5 too; default all)\n"
	      "  --irqchip MODE   interrupt controller of the reset/clone/restore VMs (default kernel:\n"
	      "                   LAPIC, IOAPIC, PIC and PIT in KVM, all part of every reset)\n"
	      "  --no-pit         those VMs without the in-kernel PIT (VMM_VM_NO_PIT)\n"
	      "  --dirty-ring N   KVM dirty ring entries per vCPU of those VMs, 0 = the dirty bitmap\n"
	      "                   (default 8192; falls back to the bitmap where KVM has no ring)\n",
	      to);
}

static void load_note(void)
{
	FILE *f = fopen("/proc/loadavg", "r");
	char buf[128] = "?";
	if (f) {
		if (!fgets(buf, sizeof buf, f))
			buf[0] = 0;
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	printf("# machine: %ld CPUs online, load average %s\n", cpus, buf);
}

/* The dirty ring is what a reset-heavy user should pick (collecting a few dirty pages
 * costs nothing per clean page); hosts without it get the bitmap. */
static uint32_t usable_ring(uint32_t entries, vmm_irqchip_mode chip)
{
	if (!entries)
		return 0;
	vmm_vm_opts vo = VMM_VM_OPTS_INIT;
	vo.irqchip = chip;
	vo.dirty_ring_entries = entries;
	vmm_vm *vm;
	int r = vmm_vm_create(&vm, &vo);
	if (r == 0) {
		vmm_vm_destroy(vm);
		return entries;
	}
	printf("# no dirty ring with %u entries (%s): using the dirty bitmap\n", entries, vmm_last_error());
	return 0;
}

static void remove_files(const struct bench_params *p)
{
	char state[4096], mem[4096];
	const uint64_t sizes[2] = { p->small, p->big };
	for (int i = 0; i < 2; i++) {
		snap_file_paths(p, sizes[i], state, mem, sizeof state);
		unlink(state);
		unlink(mem);
	}
}

static int parse_args(int argc, char **argv, struct bench_params *p)
{
	unsigned long ring = 8192;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--quick") == 0) {
			p->quick = true;
		} else if (strcmp(a, "--dir") == 0 && v) {
			p->dir = v;
			i++;
		} else if (strcmp(a, "--irqchip") == 0 && v && (!strcmp(v, "kernel") || !strcmp(v, "none"))) {
			p->irqchip = strcmp(v, "none") == 0 ? VMM_IRQCHIP_NONE : VMM_IRQCHIP_KERNEL;
			i++;
		} else if (strcmp(a, "--no-pit") == 0) {
			p->no_pit = true;
		} else if (strcmp(a, "--part") == 0 && v && v[0] >= '1' && v[0] <= '5' && !v[1]) {
			p->parts |= PART(v[0] - '0');
			i++;
		} else if (strcmp(a, "--dirty-ring") == 0 && v) {
			char *end;
			errno = 0;
			ring = strtoul(v, &end, 10);
			if (errno || *end || ring > 65536) {
				fputs("bench_snapshot: --dirty-ring takes 0 or a power of two from 512 to 65536\n", stderr);
				return 2;
			}
			i++;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else {
			usage(stderr);
			return 2;
		}
	}
	p->dirty_ring = (uint32_t)ring;
	if (!p->parts)
		p->parts = PART(1) | PART(2) | PART(3) | PART(4) | PART(5);
	if (p->parts & PART(4))
		p->parts |= PART(5); /* the restores read the files the saves write */
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_params p = { .dir = "/tmp", .irqchip = VMM_IRQCHIP_KERNEL, .small = 64ull << 20 };
	int r = parse_args(argc, argv, &p);
	if (r)
		return r;
	if (p.quick) {
		p.big = 128ull << 20;
		p.reset_samples = 3;
		p.call_samples = 3;
		p.calls_per_sample = 10;
		p.clones = 5;
		p.restore_samples = 3;
		p.restore_eager_small = 2;
		p.restore_eager_big = 2;
		p.save_samples_small = 2;
		p.save_samples_big = 1;
	} else {
		p.big = 1ull << 30;
		p.reset_samples = 40;
		p.call_samples = 300;
		p.calls_per_sample = 20;
		p.clones = 100;
		p.restore_samples = 20;
		p.restore_eager_small = 10;
		p.restore_eager_big = 5;
		p.save_samples_small = 10;
		p.save_samples_big = 4;
	}
	bench_require_kvm();
	setvbuf(stdout, NULL, _IOLBF, 0);
	p.dirty_ring = usable_ring(p.dirty_ring, p.irqchip);
	printf("# bench_snapshot%s: lib = libvmm, base = the baseline named per figure; medians; reset/clone/"
	       "restore VMs: irqchip %s%s, dirty %s\n", p.quick ? " --quick (rough figures)" : "",
	       p.irqchip == VMM_IRQCHIP_NONE ? "none" : "kernel", p.no_pit ? " without PIT" : "",
	       p.dirty_ring ? "ring" : "bitmap");
	load_note();
	double start = bench_now_ns();
	/* The light parts first: the saves leave gigabytes of dirty page cache whose
	 * writeback competes for the two CPUs for a while afterwards. */
	const char *part = "calls";
	r = p.parts & PART(2) ? bench_calls(&p) : 0;
	if (!r && (p.parts & PART(3))) {
		part = "clones";
		r = bench_clones(&p);
	}
	if (!r) {
		part = "reset and save";
		r = bench_reset_and_save(&p);
	}
	if (!r && (p.parts & PART(4))) {
		part = "restore";
		r = bench_restore(&p);
	}
	remove_files(&p);
	if (r) {
		fprintf(stderr, "bench_snapshot: the %s part failed\n", part);
		return 1;
	}
	load_note();
	printf("# total %.1f s\n", (bench_now_ns() - start) / 1e9);
	return 0;
}
