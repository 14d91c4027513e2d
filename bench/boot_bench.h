/* bench_boot: shared declarations of its parts.
 *
 *   bench_boot.c  options, the list of configurations, the report
 *   boot_vmm.c    one boot on libvmm, run in a child process of its own (a fresh VMM
 *                 process, so its RSS is that of a VMM and nothing else)
 *   boot_qemu.c   one boot on QEMU's microvm machine
 *   boot_proc.c   process plumbing: spawn with piped output, clocks, /proc readers
 *
 * Every boot is timed from the fork of its process (what Firecracker calls process
 * start) to the guest's init signal, the first console line of the test init,
 * "libvmm-init: start" (guest/initramfs/init prints it before anything else). The
 * libvmm child also reports the time from vmm_vm_create.
 */
#ifndef BOOT_BENCH_H
#define BOOT_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BOOT_MARKER_INIT "libvmm-init: start"        /* init's first user-space act */
#define BOOT_MARKER_RUN_INIT "Run /init as init process" /* kernel, just before exec */
/* The kernel's last line before alternative_instructions(), whose INT3 self-test is the
 * first ring-0 INT3 of every x86 Linux boot: where a VMM that cannot complete INT3 on
 * hosts like ours stops. Timed on every VMM, it compares them on the part they all run. */
#define BOOT_MARKER_INT3 "x86/fpu: x87 FPU will use"
#define BOOT_LINE_MAX 240

/* What one boot reached. Times are seconds from the fork of the VMM's process; < 0 when
 * not reached. */
struct boot_result {
	bool ok;                 /* the init signal was seen */
	double t_create;         /* libvmm: vmm_vm_create called (QEMU: not known, -1) */
	double t_int3;           /* the kernel's line before its INT3 self-test */
	double t_run_init;       /* the kernel's "Run /init" line */
	double t_init;           /* the init signal */
	double t_end;            /* the run ended (signal seen, failure, or timeout) */
	/* Memory, in KiB, sampled when the init signal arrived (else at "Run /init", else
	 * at the end); 0 when not sampled. */
	uint64_t rss_kb;         /* VmRSS of the VMM process */
	uint64_t guest_kb;       /* guest RAM resident in it (mincore / smaps) */
	uint64_t anon_kb, file_kb, shmem_kb; /* RssAnon, RssFile, RssShmem */
	const char *mem_at;      /* "init", "run_init", "end" or "" */
	/* VmRSS and guest RAM resident at the BOOT_MARKER_INT3 line (KiB; 0: not seen). */
	uint64_t rss_int3_kb, guest_int3_kb;
	uint64_t console_bytes;  /* serial output seen */
	char end[BOOT_LINE_MAX]; /* how the run ended */
	char last_line[BOOT_LINE_MAX]; /* last console line, for failures */
};

/* The guest a configuration boots. */
struct boot_guest {
	const char *kernel;   /* vmlinux (PVH) or bzImage */
	const char *initrd;
	const char *cmdline;  /* the full command line, the same for every VMM */
	unsigned mem_mib;
	unsigned timeout_s;
};

/* Boots `g` on libvmm in a child process (argv0: this program, run with --child).
 * Returns 0 with *res filled (res->ok says whether init was reached), -1 when the
 * child could not be run at all. */
int boot_vmm_run(const char *argv0, const struct boot_guest *g, struct boot_result *res);
/* The --child side: argv after "--child". Returns the process exit status. */
int boot_vmm_child(int argc, char **argv);

/* Boots `g` on `qemu` with the given accelerator/CPU arguments (space-separated, e.g.
 * "-enable-kvm -cpu host"). Returns 0 with *res filled, -1 if QEMU could not be
 * started. A QEMU failure (abort, emulation failure) is a result: res->ok false and
 * res->end says what happened. */
int boot_qemu_run(const char *qemu, const char *accel, const struct boot_guest *g,
		  struct boot_result *res);

/* ---- boot_proc.c ---- */

/* CLOCK_MONOTONIC in seconds (comparable between processes of one machine). */
double boot_now(void);

/* Line assembler for console output arriving in pieces (one byte at a time from the
 * UART). Calls `line_fn` for every complete line, without its newline. */
struct boot_lines {
	char buf[BOOT_LINE_MAX];
	size_t len;
	char last[BOOT_LINE_MAX];  /* last complete, non-empty line */
	uint64_t bytes;
};
void boot_lines_feed(struct boot_lines *l, const char *data, size_t n,
		     void (*line_fn)(void *ctx, const char *line), void *ctx);

/* Memory of process `pid` (0: this process) from /proc/PID/status, in KiB. Returns 0 or
 * -1. */
int boot_proc_mem(pid_t pid, uint64_t *rss, uint64_t *anon, uint64_t *file, uint64_t *shmem);
/* Rss (KiB) of the mapping in /proc/PID/smaps whose size is at least `min_kb` and at
 * most `max_kb` and that has the largest Rss among those (QEMU's guest RAM). Returns 0
 * or -1 when there is none. */
int boot_proc_mapping_rss(pid_t pid, uint64_t min_kb, uint64_t max_kb, uint64_t *rss_kb);

/* Copies at most BOOT_LINE_MAX - 1 bytes of `src` into dst, NUL-terminated, with
 * control characters replaced by spaces. */
void boot_copy_line(char *dst, const char *src);

#endif
