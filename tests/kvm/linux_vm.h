/* A Linux microVM for the boot tests: the machine examples/microvm.c builds (vCPUs in
 * x2APIC mode, in-kernel irqchip with the PICs masked, COM1, i8042, RTC, ACPI power-off,
 * virtio-mmio devices described by ACPI tables), but with every back end inside the test
 * process so the test sees both sides:
 *   - the serial console and hvc0 are captured (and the serial console is also copied
 *     to stderr, so a CI log shows the boot as it happens);
 *   - virtio-net has the callback back end, wired to a fake peer (linux_peer.h);
 *   - virtio-vsock's host side is a Unix-socket service run by the test;
 *   - a "status port" records the bytes the guest writes to it (the test init's exit
 *     code) without stopping the machine, so the guest goes on to power itself off.
 * Not thread-safe: one thread creates, runs and destroys a machine. */
#ifndef LINUX_VM_H
#define LINUX_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libvmm/libvmm.h>

#include "linux_peer.h"

#define LVM_MAX_CPUS 8
#define LVM_STATUS_PORT 0x4f0u

typedef struct lvm_opts {
	const char *kernel;   /* bzImage or vmlinux */
	const char *initrd;   /* NULL: none */
	const char *disk;     /* virtio-blk image (read-write); NULL: none */
	unsigned cpus;        /* 1..LVM_MAX_CPUS */
	unsigned mem_mib;
	const char *cmdline;  /* appended to the defaults (console, panic=-1, pci=off, and
	                       * the nested-host parameters where needed) */
	lvm_peer *peer;       /* virtio-net wired to this peer; NULL: no NIC */
	uint32_t vsock_cid;   /* 0: no vsock */
	const char *vsock_uds;
	bool hvc;             /* a virtio-console (captured) */
	bool rng;             /* a virtio-rng */
	unsigned timeout_s;   /* the watchdog: the machine is stopped after this long */
} lvm_opts;

/* What a device transport did, for the host-side assertions. */
typedef struct lvm_dev {
	vmm_virtio_mmio *mmio;   /* NULL if the machine has no such device */
	vmm_virtio_device *dev;  /* borrowed: owned by mmio */
	/* The device status register when the init printed its last line ("libvmm-init:
	 * done"), after using every device and before power-off resets them. */
	uint32_t status_at_done;
} lvm_dev;

typedef struct lvm {
	vmm_vm *vm;
	vmm_loop *loop;
	pthread_t loop_thread;
	bool loop_running;
	vmm_vcpu *vcpu[LVM_MAX_CPUS];
	unsigned ncpus;
	vmm_uart *uart;
	vmm_i8042 *kbc;
	vmm_rtc *rtc;
	vmm_power *power;
	lvm_dev blk, net, vsock, con, rng;
	unsigned nvirtio;
	vmm_acpi_virtio_mmio acpi_virtio[8];
	unsigned timeout_s;

	/* Results, written under `lock` by vCPU, loop and watchdog threads. */
	pthread_mutex_t lock;
	pthread_cond_t ended_cond;
	char *console;            /* serial console output, NUL-terminated */
	size_t console_len, console_cap;
	char *hvc;                /* hvc0 output */
	size_t hvc_len, hvc_cap;
	size_t line_start;        /* where the console line being written starts */
	int status_value;         /* last byte written to LVM_STATUS_PORT, -1 = none */
	bool ended;
	uint32_t end_event;       /* VMM_SYSTEM_EVENT_* that ended the run, 0 = none */
	bool timed_out;
	char end_detail[512];     /* how it ended, for messages */
	double t_start, t_run_init, t_init_start, t_end; /* seconds (CLOCK_MONOTONIC) */
} lvm;

/* Builds the machine and loads the kernel. Returns 0, or a negative errno after printing
 * what failed to stderr. On failure *out is NULL and nothing is left behind. */
int lvm_create(lvm **out, const lvm_opts *opts);

/* Runs the machine until the guest powers off, reboots, a vCPU fails, or the timeout.
 * Returns 0 (see the result fields for how it ended) or a negative errno. */
int lvm_run(lvm *m);

/* NULL is a no-op. */
void lvm_destroy(lvm *m);

/* Seconds of CLOCK_MONOTONIC. */
double lvm_now(void);

#endif
