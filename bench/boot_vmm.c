/* bench_boot: one Linux boot on libvmm, in a process of its own (see boot_bench.h).
 *
 * The parent forks and execs this program with --child; the child builds the machine of
 * examples/microvm.c without virtio devices (1 vCPU in x2APIC mode, in-kernel irqchip,
 * COM1 with a callback back end, i8042, RTC, ACPI power-off, ACPI tables, RAM from GPA 0
 * in the library's default memfd backing), boots the kernel, and stops the machine at
 * init's first console line. It samples its own memory there: VmRSS from
 * /proc/self/status, and the guest RAM resident in it with mincore() over every guest
 * RAM mapping, so RSS minus that is what the VMM itself costs. It reports one line of
 * key=value pairs to the parent through a pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libvmm/libvmm.h>

#include "boot_bench.h"

/* ---- the child: a minimal VMM ---- */

struct child {
	vmm_vm *vm;
	vmm_loop *loop;
	vmm_vcpu *vcpu;
	vmm_uart *uart;
	vmm_i8042 *kbc;
	vmm_rtc *rtc;
	vmm_power *power;
	bool show_console;
	unsigned char *mincore_vec; /* allocated before the boot, not while sampling */
	size_t mincore_len;

	pthread_mutex_t lock;       /* the fields below */
	pthread_cond_t cond;
	bool ended;
	struct boot_lines lines;
	double t_create, t_int3, t_run_init, t_init, t_end;
	uint64_t rss, guest, anon, file, shmem;
	uint64_t rss_int3, guest_int3;
	const char *mem_at;
	char end[BOOT_LINE_MAX];
};

/* Guest RAM pages resident in this process, in KiB. */
static uint64_t guest_resident_kb(struct child *c)
{
	vmm_mem *mem = vmm_vm_mem(c->vm);
	uint64_t pages = 0;
	for (size_t i = 0; i < vmm_mem_region_count(mem); i++) {
		vmm_mem_region_info ri;
		if (vmm_mem_get_region(mem, i, &ri) || ri.len / VMM_PAGE_SIZE > c->mincore_len)
			continue;
		if (mincore(ri.host, ri.len, c->mincore_vec))
			continue;
		for (size_t p = 0; p < ri.len / VMM_PAGE_SIZE; p++)
			pages += c->mincore_vec[p] & 1;
	}
	return pages * (VMM_PAGE_SIZE / 1024);
}

/* Caller holds c->lock. */
static void sample_memory(struct child *c, const char *at)
{
	if (boot_proc_mem(0, &c->rss, &c->anon, &c->file, &c->shmem) == 0) {
		c->guest = guest_resident_kb(c);
		c->mem_at = at;
	}
}

/* Records how the run ended (the first report wins); the main thread then stops the
 * vCPU. Caller holds c->lock. */
static void end_locked(struct child *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void end_locked(struct child *c, const char *fmt, ...)
{
	if (c->ended)
		return;
	c->ended = true;
	c->t_end = boot_now();
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->end, sizeof c->end, fmt, ap);
	va_end(ap);
	pthread_cond_broadcast(&c->cond);
}

static void on_line(void *ctx, const char *line)
{
	struct child *c = ctx;
	if (c->t_int3 == 0 && strstr(line, BOOT_MARKER_INT3)) {
		c->t_int3 = boot_now();
		uint64_t anon, file, shmem;
		if (boot_proc_mem(0, &c->rss_int3, &anon, &file, &shmem) == 0)
			c->guest_int3 = guest_resident_kb(c);
	}
	if (c->t_run_init == 0 && strstr(line, BOOT_MARKER_RUN_INIT)) {
		c->t_run_init = boot_now();
		sample_memory(c, "run_init");
	}
	if (c->t_init == 0 && strstr(line, BOOT_MARKER_INIT)) {
		c->t_init = boot_now();
		sample_memory(c, "init");
		end_locked(c, "init signal");
	}
}

/* UART output (vCPU thread, one byte at a time). */
static void uart_output(void *ctx, const void *data, size_t len)
{
	struct child *c = ctx;
	if (c->show_console)
		fwrite(data, 1, len, stderr);
	pthread_mutex_lock(&c->lock);
	boot_lines_feed(&c->lines, data, len, on_line, c);
	pthread_mutex_unlock(&c->lock);
}

static int vcpu_exit(void *ctx, vmm_vcpu *vcpu, const vmm_exit *e, int err)
{
	struct child *c = ctx;
	(void)vcpu;
	pthread_mutex_lock(&c->lock);
	if (!e) {
		end_locked(c, "vCPU run failed: %s (%s)", vmm_strerror(err), vmm_last_error());
	} else {
		switch (e->reason) {
		case VMM_EXIT_KICK:
		case VMM_EXIT_HLT:
			if (!vmm_vm_stop_requested(c->vm)) {
				pthread_mutex_unlock(&c->lock);
				return 0;
			}
			end_locked(c, "stopped");
			break;
		case VMM_EXIT_GUEST:
			end_locked(c, "guest wrote %#" PRIx64 " to the exit port", (uint64_t)e->u.guest.code);
			break;
		case VMM_EXIT_SYSTEM_EVENT:
			end_locked(c, "guest power-off or reset (system event %u)", e->u.system.type);
			break;
		case VMM_EXIT_SHUTDOWN:
			end_locked(c, "triple fault (reboot=t: a reboot or a panic)");
			break;
		case VMM_EXIT_INTERNAL_ERROR:
			end_locked(c, "internal error: %s", vmm_last_error());
			break;
		default:
			end_locked(c, "unexpected exit reason %d", (int)e->reason);
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return 1;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "bench_boot child: %s: %s (%s)\n", what, vmm_strerror(err), vmm_last_error());
	return err;
}

static int build(struct child *c, const struct boot_guest *g)
{
	int r;
	vmm_vcpu_opts vo = VMM_VCPU_OPTS_INIT;
	if ((r = vmm_loop_create(&c->loop)))
		return fail("event loop", r);
	if ((r = vmm_vcpu_create(&c->vcpu, c->vm, &vo)))
		return fail("vCPU", r);
	vmm_uart_opts uo = VMM_UART_OPTS_INIT;
	uo.backend = VMM_UART_CALLBACK;
	uo.output = uart_output;
	uo.ctx = c;
	if ((r = vmm_uart_create(&c->uart, c->vm, &uo)))
		return fail("UART", r);
	if ((r = vmm_i8042_create(&c->kbc, c->vm, NULL)))
		return fail("i8042", r);
	if ((r = vmm_rtc_create(&c->rtc, c->vm, NULL)))
		return fail("RTC", r);
	if ((r = vmm_power_create(&c->power, c->vm, NULL)))
		return fail("power device", r);

	vmm_mem *mem = vmm_vm_mem(c->vm);
	vmm_mem_region_opts ram = VMM_MEM_REGION_OPTS_INIT;
	ram.len = (uint64_t)g->mem_mib << 20;
	ram.name = "bench-boot-ram";
	if ((r = vmm_mem_add_region(mem, &ram)))
		return fail("guest RAM", r);
	c->mincore_len = ram.len / VMM_PAGE_SIZE;
	if (!(c->mincore_vec = malloc(c->mincore_len)))
		return fail("mincore vector", -ENOMEM);
	memset(c->mincore_vec, 0, c->mincore_len); /* resident before the boot, not during */

	vmm_acpi_opts ao = VMM_ACPI_OPTS_INIT;
	ao.flags = VMM_ACPI_COM1 | VMM_ACPI_I8042 | VMM_ACPI_RTC | VMM_ACPI_PIC;
	ao.ncpus = 1;
	ao.sleep_port = VMM_POWER_PORT_DEFAULT;
	vmm_acpi_info acpi;
	if ((r = vmm_acpi_write(mem, VMM_ACPI_AREA_GPA, VMM_ACPI_AREA_SIZE, &ao, &acpi)))
		return fail("ACPI tables", r);
	vmm_e820_entry acpi_range = { VMM_ACPI_AREA_GPA, VMM_ACPI_AREA_SIZE, VMM_E820_ACPI };
	vmm_linux_opts lo = VMM_LINUX_OPTS_INIT;
	lo.kernel_path = g->kernel;
	lo.initrd_path = g->initrd;
	lo.cmdline = g->cmdline;
	lo.rsdp = acpi.rsdp_gpa;
	lo.e820_extra = &acpi_range;
	lo.n_e820_extra = 1;
	if ((r = vmm_linux_load(mem, c->vcpu, &lo, NULL)))
		return fail(g->kernel, r);
	if ((r = vmm_linux_prepare_vm(c->vm)))
		return fail("PIC", r);
	if ((r = vmm_linux_prepare_vcpu(c->vcpu)))
		return fail("x2APIC", r);
	return 0;
}

static void *loop_main(void *arg)
{
	int r = vmm_loop_run(arg);
	if (r)
		fail("event loop", r);
	return NULL;
}

/* Runs the machine until the init signal, its end, or the timeout. */
static int run(struct child *c, unsigned timeout_s)
{
	pthread_t loop;
	int r = pthread_create(&loop, NULL, loop_main, c->loop);
	if (r)
		return fail("loop thread", -r);
	if ((r = vmm_vcpu_start(c->vcpu, vcpu_exit, c))) {
		fail("vCPU thread", r);
	} else {
		struct timespec deadline;
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += timeout_s;
		pthread_mutex_lock(&c->lock);
		while (!c->ended)
			if (pthread_cond_timedwait(&c->cond, &c->lock, &deadline) == ETIMEDOUT) {
				end_locked(c, "timeout: init not reached in %u s", timeout_s);
				break;
			}
		if (!c->mem_at)
			sample_memory(c, "end");
		pthread_mutex_unlock(&c->lock);
		vmm_vm_request_stop(c->vm, VMM_SYSTEM_EVENT_SHUTDOWN);
		vmm_vcpu_join(c->vcpu, NULL);
	}
	vmm_loop_stop(c->loop);
	pthread_join(loop, NULL);
	return r;
}

static void destroy(struct child *c)
{
	vmm_uart_destroy(c->uart);
	vmm_i8042_destroy(c->kbc);
	vmm_rtc_destroy(c->rtc);
	vmm_power_destroy(c->power);
	vmm_vm_destroy(c->vm);
	vmm_loop_destroy(c->loop);
	free(c->mincore_vec);
}

/* argv: FD KERNEL INITRD MEM_MIB TIMEOUT_S SHOW_CONSOLE CMDLINE */
int boot_vmm_child(int argc, char **argv)
{
	if (argc != 7) {
		fputs("bench_boot: --child FD KERNEL INITRD MEM_MIB TIMEOUT_S SHOW_CONSOLE CMDLINE\n", stderr);
		return 2;
	}
	int fd = atoi(argv[0]);
	struct boot_guest g = {
		.kernel = argv[1], .initrd = *argv[2] ? argv[2] : NULL,
		.mem_mib = (unsigned)strtoul(argv[3], NULL, 10),
		.timeout_s = (unsigned)strtoul(argv[4], NULL, 10), .cmdline = argv[6],
	};
	FILE *out = fdopen(fd, "w");
	if (!out || g.mem_mib < 16 || g.timeout_s == 0)
		return 2;
	struct child c = { .show_console = strcmp(argv[5], "1") == 0, .mem_at = NULL };
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cond, NULL);

	c.t_create = boot_now();
	int r = vmm_vm_create(&c.vm, NULL);
	if (r)
		fail("creating the VM", r);
	else if (!(r = build(&c, &g)))
		r = run(&c, g.timeout_s);
	if (r && !c.ended)
		snprintf(c.end, sizeof c.end, "set-up failed: %s (%s)", vmm_strerror(r), vmm_last_error());
	char last[BOOT_LINE_MAX];
	boot_copy_line(last, c.lines.last);
	/* The end text and the last line go last: they may hold spaces. */
	fprintf(out, "create=%.6f int3=%.6f run_init=%.6f init=%.6f end=%.6f rss=%" PRIu64 " guest=%" PRIu64
		" anon=%" PRIu64 " file=%" PRIu64 " shmem=%" PRIu64 " mem_at=%s console=%" PRIu64 " rss3=%" PRIu64 " guest3=%" PRIu64 "\n"
		"end %s\nlast %s\n",
		c.t_create, c.t_int3, c.t_run_init, c.t_init, c.t_end, c.rss, c.guest, c.anon, c.file, c.shmem,
		c.mem_at ? c.mem_at : "none", c.lines.bytes, c.rss_int3, c.guest_int3, c.end, last);
	fclose(out);
	destroy(&c);
	return r ? 1 : 0;
}

/* ---- the parent side ---- */

static double rel(double t, double t0)
{
	return t > 0 ? t - t0 : -1;
}

static void parse_report(char *text, double t_fork, struct boot_result *res)
{
	double create = 0, int3 = 0, run_init = 0, init = 0, end = 0;
	char mem_at[16] = "";
	unsigned long long rss = 0, guest = 0, anon = 0, file = 0, shmem = 0, console = 0, rss3 = 0, guest3 = 0;
	if (sscanf(text, "create=%lf int3=%lf run_init=%lf init=%lf end=%lf rss=%llu guest=%llu anon=%llu "
			 "file=%llu shmem=%llu mem_at=%15s console=%llu rss3=%llu guest3=%llu",
		   &create, &int3, &run_init, &init, &end, &rss, &guest, &anon, &file, &shmem, mem_at,
		   &console, &rss3, &guest3) != 14) {
		snprintf(res->end, sizeof res->end, "the child's report is malformed");
		return;
	}
	res->t_create = rel(create, t_fork);
	res->t_int3 = rel(int3, t_fork);
	res->t_run_init = rel(run_init, t_fork);
	res->t_init = rel(init, t_fork);
	res->t_end = rel(end, t_fork);
	res->ok = init > 0;
	res->rss_kb = rss;
	res->guest_kb = guest;
	res->anon_kb = anon;
	res->file_kb = file;
	res->shmem_kb = shmem;
	res->console_bytes = console;
	res->rss_int3_kb = rss3;
	res->guest_int3_kb = guest3;
	static const char *const ats[] = { "init", "run_init", "end" };
	res->mem_at = "";
	for (size_t i = 0; i < 3; i++)
		if (strcmp(mem_at, ats[i]) == 0)
			res->mem_at = ats[i];
	char *e = strstr(text, "\nend ");
	char *l = strstr(text, "\nlast ");
	if (l) {
		*l = '\0'; /* ends the "end" line */
		char *nl = strchr(l + 6, '\n');
		if (nl)
			*nl = '\0';
		boot_copy_line(res->last_line, l + 6);
	}
	if (e)
		boot_copy_line(res->end, e + 5);
}

int boot_vmm_run(const char *argv0, const struct boot_guest *g, struct boot_result *res)
{
	*res = (struct boot_result){ .t_create = -1, .t_int3 = -1, .t_run_init = -1, .t_init = -1, .t_end = -1, .mem_at = "" };
	int p[2];
	if (pipe2(p, O_CLOEXEC)) {
		perror("bench_boot: pipe");
		return -1;
	}
	char fd[16], mem[16], timeout[16];
	snprintf(fd, sizeof fd, "%d", p[1]);
	snprintf(mem, sizeof mem, "%u", g->mem_mib);
	snprintf(timeout, sizeof timeout, "%u", g->timeout_s);
	const char *show = getenv("BENCH_BOOT_CONSOLE");
	fflush(NULL);
	double t_fork = boot_now();
	pid_t pid = fork();
	if (pid < 0) {
		perror("bench_boot: fork");
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		/* The write end must survive exec; every other descriptor is close-on-exec. */
		int flags = fcntl(p[1], F_GETFD);
		fcntl(p[1], F_SETFD, flags & ~FD_CLOEXEC);
		execl(argv0, argv0, "--child", fd, g->kernel, g->initrd ? g->initrd : "", mem, timeout,
		      show && strcmp(show, "1") == 0 ? "1" : "0", g->cmdline, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char text[4 * BOOT_LINE_MAX];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof text - 1 && ((n = read(p[0], text + len, sizeof text - 1 - len)) > 0 ||
					 (n < 0 && errno == EINTR)))
		if (n > 0)
			len += (size_t)n;
	text[len] = '\0';
	close(p[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (len == 0) {
		snprintf(res->end, sizeof res->end, "the child reported nothing (wait status %#x)", status);
		return 0;
	}
	parse_report(text, t_fork, res);
	return 0;
}
