/* bench_boot: Linux boot time to the guest's /init, and the VMM's memory overhead, on
 * libvmm and, side by side in the same run, on QEMU's microvm machine booting the same
 * kernel, initramfs and command line.
 *
 * Boot time is measured the way Firecracker measures it: from the start of the VMM's
 * process (here: its fork) to the first sign of guest user space. The sign is the test
 * init's first console line, "libvmm-init: start" (guest/initramfs/init echoes it before
 * anything else; `echo` is a shell builtin, so it is the first system call of init
 * after the shell's own start-up). The kernel's "Run /init as init process" line (just
 * before it execs init) is reported too. libvmm boots in a fresh process of its own
 * (this program run with --child), which also reports the time from vmm_vm_create.
 *
 * Where QEMU cannot boot (on our nested-PVM machines it stops at the kernel's first
 * ring-0 INT3, the self-test in alternative_instructions()), both VMMs are also timed to
 * the console line printed just before that point, and their memory sampled there: the
 * one part of the boot both run, side by side.
 *
 * VMM memory overhead: the VMM process's VmRSS minus the guest RAM resident in it
 * (libvmm: mincore() over the guest RAM mapping; QEMU: the Rss of its guest RAM mapping
 * in /proc/PID/smaps), sampled at the init signal. Firecracker's target is <= 5 MiB.
 *
 * Output: one line per figure, "<name> value=<v>" or "<name> lib=<v> base=<v>
 * ratio=<r>", where a figure that was not reached reads "fail"; details in '#' lines.
 *
 *   bench_boot [--quick] [--runs N] [--guest-dir DIR] [--timeout S] [--cloud-timeout S]
 *              [--qemu PATH | --no-qemu] [--no-cloud] [--all] [--tcg] [--only NAMES]
 *              [--mem MIB]
 *
 * Every boot takes one to several minutes on hosts where guest ring-0 code is
 * interpreted (nested PVM); on bare-metal KVM, well under a second.
 * BENCH_BOOT_CONSOLE=1 copies the guests' consoles to stderr. Exit 77 without a usable
 * /dev/kvm (unless LIBVMM_REQUIRE_KVM=1) or without the guest files.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <libvmm/libvmm.h>

#include "boot_bench.h"
#include "stats.h"

#ifndef BENCH_BOOT_GUEST_DIR
#define BENCH_BOOT_GUEST_DIR "build/guest"
#endif

#define MAX_RUNS 20

/* The QEMU set-ups tried. "-cpu host" is what a KVM user would write; on some nested
 * hosts QEMU cannot set MSR_IA32_ARCH_CAPABILITIES and aborts, hence the second, which
 * runs for every kernel. The split irqchip is a third try on KVM (first kernel only).
 * TCG (no KVM at all) only with --tcg: on our machines both kernels stalled in it for
 * 300 s right after "tsc: Marking TSC unstable" (microvm offers no HPET or PM timer to
 * calibrate against, and without KVM there is no kvm-clock); with lpj= the minimal
 * kernel got a little further and stalled again. */
struct qemu_variant {
	const char *name, *accel;
	bool every_kernel; /* else the first kernel of the run only */
	bool quick;        /* also in --quick runs */
	bool tcg;          /* only with --tcg */
};
static const struct qemu_variant qemu_variants[] = {
	{ "qemu_kvm", "-enable-kvm -cpu host", true, true, false },
	{ "qemu_kvm_noarchcap", "-enable-kvm -cpu host,-arch-capabilities", true, true, false },
	{ "qemu_kvm_split", "-accel kvm,kernel-irqchip=split -cpu host,-arch-capabilities", false, false, false },
	{ "qemu_tcg", "-accel tcg -cpu max", false, false, true },
};
#define N_QEMU (sizeof qemu_variants / sizeof qemu_variants[0])

struct config {
	const char *name;     /* figure name part: microvm_pvh, ... */
	const char *kernel;   /* file under the guest directory */
	const char *initrd;
	bool cloud;           /* the stock kernel (its own timeout) */
	bool quick, normal;   /* in --quick runs; in default runs (else --all only) */
};
static const struct config configs[] = {
	{ "microvm_pvh", "microvm/vmlinux", "initramfs-microvm.cpio", false, true, true },
	{ "microvm_bzimage", "microvm/bzImage", "initramfs-microvm.cpio", false, false, true },
	{ "cloud_pvh", "cloud/vmlinux", "initramfs-cloud.cpio", true, false, true },
	{ "cloud_bzimage", "cloud/bzImage", "initramfs-cloud.cpio", true, false, false },
};
#define N_CONFIGS (sizeof configs / sizeof configs[0])

struct options {
	bool quick, all, no_qemu, no_cloud, tcg;
	const char *only; /* comma-separated configuration names, or NULL */
	unsigned runs, timeout_s, cloud_timeout_s, tcg_timeout_s, mem_mib;
	const char *guest_dir, *qemu;
};

static void usage(FILE *to)
{
	fputs("usage: bench_boot [--quick] [--runs N] [--guest-dir DIR] [--timeout S]\n"
	      "                  [--cloud-timeout S] [--tcg-timeout S] [--qemu PATH | --no-qemu]\n"
	      "                  [--no-cloud] [--all] [--tcg] [--only NAMES] [--mem MIB]\n"
	      "  --quick           the microVM kernel through PVH only, QEMU on KVM only\n"
	      "  --runs N          libvmm boots per configuration (default 1; QEMU boots once)\n"
	      "  --guest-dir DIR   kernels and initramfs (default " BENCH_BOOT_GUEST_DIR ")\n"
	      "  --timeout S       per boot of the microVM kernel (default 400)\n"
	      "  --cloud-timeout S per boot of the stock kernel (default 600)\n"
	      "  --tcg-timeout S   per QEMU TCG boot (default 300)\n"
	      "  --all             also the stock kernel's bzImage\n"
	      "  --tcg             also QEMU without KVM (TCG), first kernel only\n"
	      "  --only NAMES      these configurations (comma-separated): microvm_pvh,\n"
	      "                    microvm_bzimage, cloud_pvh, cloud_bzimage\n"
	      "  --mem MIB         guest RAM (default 128)\n",
	      to);
}

static unsigned number(const char *opt, const char *arg, unsigned max)
{
	char *end;
	errno = 0;
	unsigned long v = arg ? strtoul(arg, &end, 10) : 0;
	if (!arg || errno || *end || v == 0 || v > max) {
		fprintf(stderr, "bench_boot: %s needs a number from 1 to %u\n", opt, max);
		exit(2);
	}
	return (unsigned)v;
}

static void parse(int argc, char **argv, struct options *o)
{
	*o = (struct options){ .runs = 1, .timeout_s = 400, .cloud_timeout_s = 600, .tcg_timeout_s = 300,
			       .mem_mib = 128, .guest_dir = BENCH_BOOT_GUEST_DIR, .qemu = "qemu-system-x86_64" };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--quick") == 0)
			o->quick = true;
		else if (strcmp(a, "--all") == 0)
			o->all = true;
		else if (strcmp(a, "--no-qemu") == 0)
			o->no_qemu = true;
		else if (strcmp(a, "--tcg") == 0)
			o->tcg = true;
		else if (strcmp(a, "--no-cloud") == 0)
			o->no_cloud = true;
		else if (strcmp(a, "--runs") == 0 && ++i)
			o->runs = number(a, v, MAX_RUNS);
		else if (strcmp(a, "--timeout") == 0 && ++i)
			o->timeout_s = number(a, v, 86400);
		else if (strcmp(a, "--cloud-timeout") == 0 && ++i)
			o->cloud_timeout_s = number(a, v, 86400);
		else if (strcmp(a, "--tcg-timeout") == 0 && ++i)
			o->tcg_timeout_s = number(a, v, 86400);
		else if (strcmp(a, "--mem") == 0 && ++i)
			o->mem_mib = number(a, v, 3072);
		else if (strcmp(a, "--only") == 0 && v && ++i)
			o->only = v;
		else if (strcmp(a, "--guest-dir") == 0 && v && ++i)
			o->guest_dir = v;
		else if (strcmp(a, "--qemu") == 0 && v && ++i)
			o->qemu = v;
		else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else {
			usage(stderr);
			exit(2);
		}
	}
	if (o->mem_mib < 32) {
		fputs("bench_boot: --mem needs at least 32 MiB\n", stderr);
		exit(2);
	}
}

/* Whether `name` is one of the comma-separated names in `list`. */
static bool listed(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

static bool is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The QEMU binary's path if it can be run, else NULL. */
static const char *find_qemu(const char *qemu, char *buf, size_t len)
{
	if (strchr(qemu, '/'))
		return access(qemu, X_OK) == 0 ? qemu : NULL;
	const char *path = getenv("PATH");
	while (path && *path) {
		const char *colon = strchr(path, ':');
		size_t n = colon ? (size_t)(colon - path) : strlen(path);
		snprintf(buf, len, "%.*s/%s", (int)n, path, qemu);
		if (access(buf, X_OK) == 0)
			return buf;
		path = colon ? colon + 1 : NULL;
	}
	return NULL;
}

/* The command line every VMM gets: the console, a panic or reboot ends the VM as a
 * triple fault, no PCI scan, no KASLR, plus what nested hosts need. */
static char *build_cmdline(void)
{
	vmm_cmdline *cl;
	if (vmm_cmdline_create(&cl, 0))
		return NULL;
	int r = vmm_cmdline_append(cl, "console=ttyS0 panic=-1 reboot=t pci=off nokaslr");
	if (!r && vmm_linux_host_is_nested())
		r = vmm_linux_cmdline_nested_defaults(cl);
	char *s = r ? NULL : strdup(vmm_cmdline_str(cl));
	vmm_cmdline_destroy(cl);
	return s;
}

static void print_machine(const struct options *o)
{
	char model[128] = "unknown", line[256], load[64] = "?";
	FILE *f = fopen("/proc/cpuinfo", "re");
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "model name", 10) == 0) {
			const char *c = strchr(line, ':');
			if (c)
				snprintf(model, sizeof model, "%s", c + 2);
			model[strcspn(model, "\n")] = '\0';
			break;
		}
	if (f)
		fclose(f);
	f = fopen("/proc/loadavg", "re");
	double l1, l5, l15;
	if (f && fscanf(f, "%lf %lf %lf", &l1, &l5, &l15) == 3)
		snprintf(load, sizeof load, "%.2f %.2f %.2f", l1, l5, l15);
	if (f)
		fclose(f);
	struct utsname u;
	uname(&u);
	printf("# machine: %ld CPUs, %s, Linux %s, %s KVM, load average %s\n", sysconf(_SC_NPROCESSORS_ONLN),
	       model, u.release, vmm_linux_host_is_nested() ? "nested (guest ring 0 interpreted)" : "hardware",
	       load);
	printf("# guest: %u MiB, 1 vCPU, no virtio devices, files from %s\n", o->mem_mib, o->guest_dir);
}

static double load1(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "re");
	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static void print_result(const char *cfg, const char *vmm, unsigned run, const struct boot_result *r, double load)
{
	printf("# %s %s run %u (load %.1f): %s; ", cfg, vmm, run, load, r->end);
	if (r->t_init >= 0)
		printf("init signal %.2f s", r->t_init);
	else
		printf("no init signal");
	if (r->t_int3 >= 0)
		printf(", INT3 self-test point %.2f s", r->t_int3);
	if (r->t_run_init >= 0)
		printf(", kernel's Run /init %.2f s", r->t_run_init);
	if (r->t_create >= 0 && r->t_init >= 0)
		printf(", from vmm_vm_create %.2f s", r->t_init - r->t_create);
	printf(", ended %.2f s, %llu console bytes\n", r->t_end, (unsigned long long)r->console_bytes);
	if (r->mem_at[0])
		printf("#   memory at %s: VmRSS %.2f MiB (anon %.2f, file %.2f, shmem %.2f), guest RAM resident "
		       "%.2f MiB, VMM overhead %.2f MiB\n",
		       r->mem_at, r->rss_kb / 1024.0, r->anon_kb / 1024.0, r->file_kb / 1024.0, r->shmem_kb / 1024.0,
		       r->guest_kb / 1024.0, ((double)r->rss_kb - (double)r->guest_kb) / 1024.0);
	if (r->rss_int3_kb)
		printf("#   memory at the INT3 self-test point: VmRSS %.2f MiB, guest RAM resident %.2f MiB, "
		       "VMM overhead %.2f MiB\n", r->rss_int3_kb / 1024.0, r->guest_int3_kb / 1024.0,
		       ((double)r->rss_int3_kb - (double)r->guest_int3_kb) / 1024.0);
	if (!r->ok && r->last_line[0])
		printf("#   last console line: %s\n", r->last_line);
	fflush(stdout);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median of the values >= 0 among v[0..n); -1 if none. */
static double median(const double *v, size_t n)
{
	double t[MAX_RUNS];
	size_t k = 0;
	for (size_t i = 0; i < n && k < MAX_RUNS; i++)
		if (v[i] >= 0)
			t[k++] = v[i];
	if (!k)
		return -1;
	qsort(t, k, sizeof *t, cmp_double);
	return k % 2 ? t[k / 2] : (t[k / 2 - 1] + t[k / 2]) / 2;
}

static void fmt(char *buf, size_t len, double v, const char *unit)
{
	if (v < 0)
		snprintf(buf, len, "fail");
	else
		snprintf(buf, len, "%.2f%s", v, unit);
}

/* The figures of one VMM on one configuration: medians over its runs. */
struct figures {
	double init, run_init, overhead_mib, int3, overhead_int3_mib;
};

static struct figures summarize(const struct boot_result *r, unsigned n)
{
	double init[MAX_RUNS], run_init[MAX_RUNS], over[MAX_RUNS], int3[MAX_RUNS], over3[MAX_RUNS];
	for (unsigned i = 0; i < n; i++) {
		init[i] = r[i].t_init;
		run_init[i] = r[i].t_run_init;
		over[i] = !strcmp(r[i].mem_at, "init") && r[i].rss_kb >= r[i].guest_kb
				  ? (double)(r[i].rss_kb - r[i].guest_kb) / 1024.0
				  : -1;
		int3[i] = r[i].t_int3;
		over3[i] = r[i].rss_int3_kb && r[i].rss_int3_kb >= r[i].guest_int3_kb
				   ? (double)(r[i].rss_int3_kb - r[i].guest_int3_kb) / 1024.0
				   : -1;
	}
	return (struct figures){ median(init, n), median(run_init, n), median(over, n), median(int3, n),
				 median(over3, n) };
}

static void print_figures(const char *cfg, const char *vmm, const struct figures *f)
{
	char a[32], b[32], c[32], d[32], e[32];
	fmt(a, sizeof a, f->init, "s");
	fmt(b, sizeof b, f->run_init, "s");
	fmt(c, sizeof c, f->overhead_mib, "MiB");
	fmt(d, sizeof d, f->int3, "s");
	fmt(e, sizeof e, f->overhead_int3_mib, "MiB");
	printf("boot_to_init_%s_%s value=%s\n", cfg, vmm, a);
	printf("boot_to_run_init_%s_%s value=%s\n", cfg, vmm, b);
	printf("boot_to_int3_selftest_%s_%s value=%s\n", cfg, vmm, d);
	printf("vmm_overhead_%s_%s value=%s\n", cfg, vmm, c);
	printf("vmm_overhead_at_int3_selftest_%s_%s value=%s\n", cfg, vmm, e);
	fflush(stdout);
}

/* Returns 0, 1 when the guest files are missing, -1 on a failure of this program. */
static int run_config(const struct config *c, const struct options *o, const char *cmdline,
		      const char *qemu, const char *self, bool first)
{
	char kernel[4096], initrd[4096];
	snprintf(kernel, sizeof kernel, "%s/%s", o->guest_dir, c->kernel);
	snprintf(initrd, sizeof initrd, "%s/%s", o->guest_dir, c->initrd);
	if (!is_file(kernel) || !is_file(initrd)) {
		printf("# %s: skipped: %s or %s missing (scripts/build-guest-kernel.sh, "
		       "fetch-cloud-kernel.sh, build-initramfs.sh build them)\n", c->name, kernel, initrd);
		return 1;
	}
	struct boot_guest g = { .kernel = kernel, .initrd = initrd, .cmdline = cmdline, .mem_mib = o->mem_mib,
				.timeout_s = c->cloud ? o->cloud_timeout_s : o->timeout_s };
	struct boot_result lib[MAX_RUNS];
	for (unsigned i = 0; i < o->runs; i++) {
		double load = load1();
		fprintf(stderr, "bench_boot: %s on libvmm, run %u/%u (timeout %u s)\n", c->name, i + 1, o->runs,
			g.timeout_s);
		if (boot_vmm_run(self, &g, &lib[i]))
			return -1;
		print_result(c->name, "libvmm", i + 1, &lib[i], load);
	}
	struct figures lf = summarize(lib, o->runs);
	print_figures(c->name, "libvmm", &lf);

	for (size_t v = 0; !o->no_qemu && v < N_QEMU; v++) {
		const struct qemu_variant *qv = &qemu_variants[v];
		if (o->quick && !qv->quick)
			continue;
		if ((qv->tcg && !o->tcg) || (!qv->every_kernel && !first))
			continue;
		if (!qemu) {
			printf("# %s %s: QEMU not found (%s); Debian: apt-get install qemu-system-x86\n",
			       c->name, qv->name, o->qemu);
			continue;
		}
		struct boot_guest qg = g;
		if (qv->tcg)
			qg.timeout_s = o->tcg_timeout_s;
		struct boot_result qr;
		double load = load1();
		fprintf(stderr, "bench_boot: %s on QEMU (%s: %s)\n", c->name, qv->name, qv->accel);
		if (boot_qemu_run(qemu, qv->accel, &qg, &qr))
			return -1;
		printf("# %s %s: %s -M microvm %s\n", c->name, qv->name, qemu, qv->accel);
		print_result(c->name, qv->name, 1, &qr, load);
		struct figures qf = summarize(&qr, 1);
		print_figures(c->name, qv->name, &qf);
		if (lf.init >= 0 && qf.init >= 0)
			printf("boot_to_init_%s_libvmm_vs_%s lib=%.2fs base=%.2fs ratio=%.3f\n", c->name, qv->name,
			       lf.init, qf.init, lf.init / qf.init);
		/* Where QEMU stops on hosts like ours, both ran the same guest code: compare. */
		if (lf.int3 >= 0 && qf.int3 >= 0)
			printf("boot_to_int3_selftest_%s_libvmm_vs_%s lib=%.2fs base=%.2fs ratio=%.3f\n", c->name,
			       qv->name, lf.int3, qf.int3, lf.int3 / qf.int3);
		if (lf.overhead_int3_mib >= 0 && qf.overhead_int3_mib >= 0)
			printf("vmm_overhead_at_int3_selftest_%s_libvmm_vs_%s lib=%.2fMiB base=%.2fMiB ratio=%.3f\n",
			       c->name, qv->name, lf.overhead_int3_mib, qf.overhead_int3_mib,
			       lf.overhead_int3_mib / qf.overhead_int3_mib);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--child") == 0)
		return boot_vmm_child(argc - 2, argv + 2);
	struct options o;
	parse(argc, argv, &o);
	bench_require_kvm();
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* The child is this very program: /proc/self/exe survives a relative argv[0]. */
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0) {
		perror("bench_boot: /proc/self/exe");
		return 1;
	}
	self[n] = '\0';
	char *cmdline = build_cmdline();
	if (!cmdline) {
		fputs("bench_boot: cannot build the command line\n", stderr);
		return 1;
	}
	char qbuf[4096];
	const char *qemu = o.no_qemu ? NULL : find_qemu(o.qemu, qbuf, sizeof qbuf);

	printf("# bench_boot: boot to the guest's init, libvmm and QEMU -M microvm side by side; "
	       "times from the VMM process's fork to init's first console line\n");
	print_machine(&o);
	printf("# command line (every VMM): %s\n", cmdline);
	double start = boot_now();
	unsigned ran = 0;
	for (size_t i = 0; i < N_CONFIGS; i++) {
		const struct config *c = &configs[i];
		if (o.only ? !listed(o.only, c->name) : o.quick ? !c->quick : !(c->normal || o.all))
			continue;
		if (c->cloud && o.no_cloud)
			continue;
		int r = run_config(c, &o, cmdline, qemu, self, ran == 0);
		if (r < 0) {
			free(cmdline);
			return 1;
		}
		ran += r == 0;
	}
	printf("# total %.1f s, load average at the end %.1f\n", boot_now() - start, load1());
	free(cmdline);
	if (!ran) {
		fputs("SKIP: no configuration to run\n", stderr);
		return 77;
	}
	return 0;
}
