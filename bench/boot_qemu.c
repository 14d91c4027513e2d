/* bench_boot: one Linux boot on QEMU's microvm machine (see boot_bench.h).
 *
 * QEMU runs with the serial console on its stdout and its own messages on stderr, both
 * piped here. The boot is timed from the fork to init's first console line, as for
 * libvmm; at that line this samples QEMU's VmRSS and the Rss of its guest RAM mapping
 * (from /proc/PID/smaps: the mapping of the guest's size) and kills it. QEMU may fail on
 * hosts whose KVM cannot run its guest: an abort, or a KVM emulation failure after which
 * QEMU stops the guest and waits. Either is recorded as the result, with the lines of
 * its report that say why (the error, the RIP and the instruction bytes).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "boot_bench.h"

#define MAX_ARGS 48

struct qemu_run {
	pid_t pid;
	double t_fork;
	unsigned mem_mib;
	struct boot_result *res;
	struct boot_lines out, err;
	bool failing;       /* stderr reported a KVM failure; collecting its details */
	double fail_at;
	char why[BOOT_LINE_MAX];   /* the first error line */
	char where[BOOT_LINE_MAX]; /* RIP=... and Code=... of a KVM failure report */
	bool done;
};

static void sample_memory(struct qemu_run *q, const char *at)
{
	struct boot_result *r = q->res;
	uint64_t kb = (uint64_t)q->mem_mib << 10, guest;
	if (boot_proc_mem(q->pid, &r->rss_kb, &r->anon_kb, &r->file_kb, &r->shmem_kb))
		return;
	/* QEMU maps guest RAM as one anonymous mapping of the guest's size (plus a little
	 * alignment). */
	if (boot_proc_mapping_rss(q->pid, kb, kb + 4096, &guest) == 0)
		r->guest_kb = guest;
	r->mem_at = at;
}

static void on_console_line(void *ctx, const char *line)
{
	struct qemu_run *q = ctx;
	struct boot_result *r = q->res;
	if (r->t_int3 < 0 && strstr(line, BOOT_MARKER_INT3)) {
		r->t_int3 = boot_now() - q->t_fork;
		uint64_t anon, file, shmem, guest;
		if (boot_proc_mem(q->pid, &r->rss_int3_kb, &anon, &file, &shmem) == 0 &&
		    boot_proc_mapping_rss(q->pid, (uint64_t)q->mem_mib << 10, ((uint64_t)q->mem_mib << 10) + 4096,
					  &guest) == 0)
			r->guest_int3_kb = guest;
	}
	if (r->t_run_init < 0 && strstr(line, BOOT_MARKER_RUN_INIT)) {
		r->t_run_init = boot_now() - q->t_fork;
		sample_memory(q, "run_init");
	}
	if (r->t_init < 0 && strstr(line, BOOT_MARKER_INIT)) {
		r->t_init = boot_now() - q->t_fork;
		r->ok = true;
		sample_memory(q, "init");
		snprintf(r->end, sizeof r->end, "init signal");
		q->done = true;
	}
}

/* Appends " src" to dst (BOOT_LINE_MAX bytes), cutting what does not fit. */
static void append(char *dst, const char *src)
{
	size_t have = strlen(dst);
	if (have && have < BOOT_LINE_MAX - 1)
		dst[have++] = ' ';
	size_t n = strlen(src);
	if (n > BOOT_LINE_MAX - 1 - have)
		n = BOOT_LINE_MAX - 1 - have;
	memcpy(dst + have, src, n);
	dst[have + n] = '\0';
}

static void on_error_line(void *ctx, const char *line)
{
	struct qemu_run *q = ctx;
	if (!*line || strstr(line, "warning:"))
		return;
	if (!q->why[0])
		boot_copy_line(q->why, line);
	if (strstr(line, "KVM internal error") || strstr(line, "emulation failure")) {
		if (!q->failing) {
			q->failing = true;
			q->fail_at = boot_now();
		}
		if (strstr(line, "emulation failure") && !strstr(q->why, "emulation failure"))
			append(q->why, "emulation failure");
	}
	if (q->failing && (strncmp(line, "RIP=", 4) == 0 || strncmp(line, "Code=", 5) == 0)) {
		char part[BOOT_LINE_MAX];
		/* "RIP=ffffffff81ae30a9 RFL=..." -> the RIP; "Code=... <cc> ..." -> the bytes
		 * around the failing instruction, which QEMU marks with <>. */
		const char *mark = strchr(line, '<');
		if (line[0] == 'R')
			snprintf(part, sizeof part, "%.20s", line);
		else if (mark)
			snprintf(part, sizeof part, "insn %.24s", mark);
		else
			snprintf(part, sizeof part, "%.40s", line);
		append(q->where, part);
		if (line[0] == 'C')
			q->done = true; /* the report is complete: QEMU now waits forever */
	}
}

/* Splits `accel` at spaces into argv (in a copy owned by the caller). */
static int split_args(char *s, const char **argv, int at, int max)
{
	for (char *tok = strtok(s, " "); tok; tok = strtok(NULL, " "))
		if (at < max)
			argv[at++] = tok;
	return at;
}

static void describe_exit(struct qemu_run *q, int status)
{
	struct boot_result *r = q->res;
	char how[64];
	if (WIFSIGNALED(status))
		snprintf(how, sizeof how, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(how, sizeof how, "exited with %d", WEXITSTATUS(status));
	snprintf(r->end, sizeof r->end, "%s%s%.170s", how, q->why[0] ? ": " : "", q->why);
}

int boot_qemu_run(const char *qemu, const char *accel, const struct boot_guest *g,
		  struct boot_result *res)
{
	*res = (struct boot_result){ .t_create = -1, .t_int3 = -1, .t_run_init = -1, .t_init = -1, .t_end = -1, .mem_at = "" };
	struct qemu_run q = { .res = res, .mem_mib = g->mem_mib };
	char accel_copy[256], mem[16];
	snprintf(accel_copy, sizeof accel_copy, "%s", accel);
	snprintf(mem, sizeof mem, "%u", g->mem_mib);
	const char *argv[MAX_ARGS];
	int n = 0;
	argv[n++] = qemu;
	argv[n++] = "-M";
	argv[n++] = "microvm";
	n = split_args(accel_copy, argv, n, MAX_ARGS - 20);
	const char *rest[] = { "-m", mem, "-smp", "1", "-nodefaults", "-no-user-config", "-nographic",
			       "-serial", "stdio", "-kernel", g->kernel, "-append", g->cmdline };
	for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++)
		argv[n++] = rest[i];
	if (g->initrd) {
		argv[n++] = "-initrd";
		argv[n++] = g->initrd;
	}
	argv[n] = NULL;

	int out[2], err[2];
	if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
		perror("bench_boot: pipe");
		return -1;
	}
	fflush(NULL);
	q.t_fork = boot_now();
	q.pid = fork();
	if (q.pid < 0) {
		perror("bench_boot: fork");
		return -1;
	}
	if (q.pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
			_exit(126);
		execvp(qemu, (char *const *)argv);
		dprintf(2, "cannot run %s: %s\n", qemu, strerror(errno));
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	const char *show = getenv("BENCH_BOOT_CONSOLE");
	bool show_console = show && strcmp(show, "1") == 0;
	double deadline = q.t_fork + g->timeout_s;
	struct pollfd pf[2] = { { .fd = out[0], .events = POLLIN }, { .fd = err[0], .events = POLLIN } };
	int open_fds = 2, status = 0;
	bool exited = false;
	while (!q.done && open_fds > 0) {
		double now = boot_now();
		/* After a KVM failure report, give QEMU 2 s to finish printing it. */
		double until = q.failing && q.fail_at + 2 < deadline ? q.fail_at + 2 : deadline;
		if (now >= until) {
			if (!q.failing)
				snprintf(res->end, sizeof res->end, "timeout: init not reached in %u s", g->timeout_s);
			break;
		}
		int ms = (int)((until - now) * 1000) + 1;
		if (poll(pf, 2, ms) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char buf[4096];
			ssize_t got = read(pf[i].fd, buf, sizeof buf);
			if (got <= 0) {
				if (got < 0 && errno == EINTR)
					continue;
				close(pf[i].fd);
				pf[i].fd = -1;
				open_fds--;
				continue;
			}
			if (i == 0) {
				if (show_console)
					fwrite(buf, 1, (size_t)got, stderr);
				boot_lines_feed(&q.out, buf, (size_t)got, on_console_line, &q);
			} else {
				boot_lines_feed(&q.err, buf, (size_t)got, on_error_line, &q);
			}
		}
	}
	res->t_end = boot_now() - q.t_fork;
	if (!res->mem_at[0]) {
		/* Memory at the end, if QEMU is still there (after a KVM failure it waits). */
		if (waitpid(q.pid, &status, WNOHANG) == q.pid)
			exited = true;
		else
			sample_memory(&q, "end");
	}
	if (!exited) {
		kill(q.pid, SIGKILL);
		while (waitpid(q.pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	for (int i = 0; i < 2; i++)
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	res->console_bytes = q.out.bytes;
	boot_copy_line(res->last_line, q.out.last);
	/* SIGKILL is ours; any other end is QEMU's own (it may have died just before). */
	bool died = exited || !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL;
	if (q.failing)
		snprintf(res->end, sizeof res->end, "%.100s%s%.120s", q.why, q.where[0] ? " at " : "", q.where);
	else if (died && !q.done)
		describe_exit(&q, status);
	else if (!res->end[0])
		snprintf(res->end, sizeof res->end, "QEMU closed its output%s%.180s", q.why[0] ? ": " : "", q.why);
	return 0;
}
