/* Function sandboxes (include/libvmm/sandbox.h): internal state shared by the files of
 * lib/sandbox. The guest side of the protocol is sdk/guest (libvmm_guest_abi.h). */
#ifndef LIBVMM_SANDBOX_INTERNAL_H
#define LIBVMM_SANDBOX_INTERNAL_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>

#include "../internal.h"
#include "../../sdk/guest/include/libvmm_guest_abi.h"

/* Guest-physical layout below the program (see libvmm_guest_abi.h). */
#define SBX_PT_GPA 0x1000u          /* 4 KiB page table of the first 2 MiB */
#define SBX_SYSTEM_AREA 0x10000u    /* vmm_vcpu_setup_long_mode's 128 KiB */
#define SBX_SMALL_PAGES_END 0x200000u
#define SBX_DIRTY_RING_ENTRIES 4096u /* per vCPU; a call dirtying more exits to harvest */

_Static_assert(SBX_SYSTEM_AREA + VMM_LONG_MODE_SYSTEM_AREA_SIZE <= VMM_GUEST_LOAD_ADDR,
	       "system area below the program");
_Static_assert(VMM_GUEST_CALL_PAGE < SBX_SYSTEM_AREA, "call page below the system area");
_Static_assert(sizeof(struct vmm_guest_call_page) <= VMM_PAGE_SIZE, "call page fits a page");

/* Deadline watchdog: one thread per sandbox that kicks the vCPU when a call overruns.
 * Arming and disarming are plain atomic stores on the call path; the thread is woken
 * (one futex syscall) only when it sleeps past the new deadline (idle, or after a
 * kick), so a stream of calls with the same time limit costs no syscall per call. */
struct sbx_watchdog {
	vmm_vcpu *vcpu;
	pthread_t thread;
	bool started;
	_Atomic uint32_t seq;         /* odd while a call with a deadline runs */
	_Atomic uint64_t deadline;    /* CLOCK_MONOTONIC ns of that call's limit */
	_Atomic uint64_t sleep_until; /* when the thread wakes next (UINT64_MAX: never) */
	_Atomic uint32_t wake;        /* futex word the thread sleeps on */
	atomic_bool stop;
};

struct sbx_export {
	char *name;
	uint64_t fn;
};

struct sbx_host_func {
	uint32_t id;
	char name[VMM_GUEST_MAX_NAME]; /* "" = no name */
	vmm_sandbox_host_fn fn;
	void *ctx;
};

struct vmm_sandbox {
	vmm_vm *vm;
	vmm_vcpu *vcpu;
	vmm_snapshot *snap;
	uint32_t flags;
	uint64_t mem_size;
	uint64_t io_base, io_size;     /* the I/O area: [io_base, io_base + io_size) */
	uint64_t heap_start;
	uint64_t deadline_ns;

	uint8_t *elf;                  /* copy of the program, for vmm_sandbox_symbol */
	size_t elf_size;
	struct sbx_export *exports;
	size_t nr_exports;
	struct sbx_host_func *funcs;
	size_t nr_funcs;
	vmm_sandbox_output_fn output;
	void *output_ctx;

	/* The call page, translated (and marked dirty) once per guest run. */
	volatile struct vmm_guest_call_page *page;
	bool dirty;      /* the guest ran since the last reset */
	bool must_reset; /* an error left the guest in an unknown state */
	/* state.c: whether copying back memory is reset enough (see there). */
	bool sync_regs;    /* KVM brings registers along with every exit */
	bool can_mem_only; /* the snapshot's exit qualifies (CPL 3, runtime resets the FPU) */
	bool clean;        /* the vCPU is as in the snapshot: the last call returned normally
	                    * and its DONE exit matched, or a full reset since */
	struct kvm_regs ref_regs; /* init's DONE exit, where the snapshot was taken */
	struct kvm_sregs ref_sregs;
	struct kvm_vcpu_events ref_events;
	atomic_bool busy;
	struct sbx_watchdog wd;
	vmm_sandbox_stats stats;
};

/* watchdog.c */
VMM_HIDDEN uint64_t sbx_now_ns(void);
/* Arms the watchdog for absolute deadline `at` (starting its thread the first time). */
VMM_HIDDEN int sbx_watchdog_arm(struct sbx_watchdog *wd, uint64_t at);
VMM_HIDDEN void sbx_watchdog_disarm(struct sbx_watchdog *wd);
VMM_HIDDEN void sbx_watchdog_stop(struct sbx_watchdog *wd);

/* run.c: runs the guest until it reports DONE (0) or an error (negative errno, message
 * set), serving host calls on the way. deadline_ns: relative limit, 0 = none. */
VMM_HIDDEN int sbx_run(vmm_sandbox *sb, uint64_t deadline_ns);
/* Translates the call page for this run (marks it dirty for the next reset). */
VMM_HIDDEN int sbx_map_page(vmm_sandbox *sb);

/* state.c: the memory-only reset's conditions. init once the VM exists; arm before
 * every run; record at init's DONE (before the snapshot); clean at a call's DONE. */
VMM_HIDDEN void sbx_state_init(vmm_sandbox *sb);
VMM_HIDDEN void sbx_state_arm(vmm_sandbox *sb);
VMM_HIDDEN void sbx_state_record(vmm_sandbox *sb);
VMM_HIDDEN bool sbx_state_clean(const vmm_sandbox *sb);

/* call.c: resets the VM to the snapshot (a failure leaves must_reset set). */
VMM_HIDDEN int sbx_reset(vmm_sandbox *sb);

/* layout.c: guest memory, page tables, exports. */
VMM_HIDDEN int sbx_setup_vm(vmm_sandbox *sb, const vmm_vm_opts *vm_opts);
VMM_HIDDEN int sbx_read_exports(vmm_sandbox *sb);
/* Loads the program (sb->elf) and sets up the vCPU; mem_size and io_* are set. */
VMM_HIDDEN int sbx_load(vmm_sandbox *sb);
/* Checks that [addr, addr+len) lies in the guest's accessible memory. */
VMM_HIDDEN int sbx_check_range(const vmm_sandbox *sb, uint64_t addr, uint64_t len);
/* Reads a NUL-terminated guest string of at most cap bytes (NUL included) into buf. */
VMM_HIDDEN int sbx_read_string(vmm_sandbox *sb, uint64_t addr, char *buf, size_t cap);

#endif
