/* The KVM test harness: builds a VM around one of the guests of tests/guests, runs it
 * with a watchdog, and records what the guest prints on the console port 0xe9.
 *
 * Every function that can fail fails the current cmocka test (with vmm_last_error() in
 * the message), so tests read as straight-line code. Call kvm_test_require() first in
 * main(): it skips the whole program (exit 77) without a usable /dev/kvm. */
#ifndef KVM_TEST_HARNESS_H
#define KVM_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

#include <libvmm/libvmm.h>

#define KT_MAX_VCPUS 4
#define KT_CONSOLE_PORT 0xe9
#define KT_CONSOLE_MAX 16384
#define KT_RAM_DEFAULT (32ull << 20)
/* vCPU i gets the system area at i * VMM_LONG_MODE_SYSTEM_AREA_SIZE (below the guest
 * image at 1 MiB) and the stack top KT_STACK_TOP - i * KT_STACK_SPACING. */
#define KT_STACK_TOP 0x800000ull
#define KT_STACK_SPACING 0x80000ull
#define KT_TIMEOUT_MS 20000u

typedef struct kt_opts {
	const char *guest;        /* loads GUEST_DIR "/<guest>.elf"; NULL: load nothing */
	unsigned cpl;             /* 0 or 3 */
	unsigned vcpus;           /* 0 = 1 */
	uint64_t ram;             /* RAM at GPA 0 (memfd); 0 = KT_RAM_DEFAULT */
	vmm_irqchip_mode irqchip; /* default VMM_IRQCHIP_KERNEL */
	uint32_t vm_flags;        /* VMM_VM_* */
	bool no_fault_idt;        /* long mode without VMM_LONG_MODE_FAULT_IDT */
} kt_opts;

typedef struct kt_vm {
	vmm_vm *vm;
	vmm_mem *mem;
	vmm_bus *bus;
	vmm_irq *irq;
	vmm_vcpu *vcpu[KT_MAX_VCPUS];
	unsigned nvcpus;
	unsigned cpl;
	void *image;              /* the ELF file, for symbol look-ups */
	size_t image_size;
	vmm_elf_info elf;

	pthread_mutex_t console_lock;
	char console[KT_CONSOLE_MAX + 1]; /* NUL-terminated */
	size_t console_len;
} kt_vm;

/* Exits 77 (skip) if /dev/kvm cannot be opened read-write, unless the environment has
 * LIBVMM_REQUIRE_KVM=1: then exits 1 (CI must not skip). */
void kvm_test_require(void);

/* Creates the VM, RAM at GPA 0, loads the guest, creates the vCPUs in long mode at
 * entry = the ELF entry, registers the console. Stores the kt_vm in *state before
 * anything can fail (destroying whatever *state held), so kt_teardown frees it even
 * when the test fails half-way. Fails the test on any error. */
kt_vm *kt_create(void **state, const kt_opts *o);
void kt_destroy(kt_vm *t);
/* cmocka teardown: destroys the kt_vm in *state (if any) and clears it. */
int kt_teardown(void **state);

/* Address of a guest symbol (fails the test if absent). */
uint64_t kt_sym(kt_vm *t, const char *name);
/* Points IDT vector `vector` of vCPU `cpu` at the guest function `handler`. */
void kt_set_gate(kt_vm *t, unsigned cpu, uint8_t vector, const char *handler, unsigned dpl);
/* Sets RDI (the guest_main argument) of vCPU `cpu`. */
void kt_set_arg(kt_vm *t, unsigned cpu, uint64_t arg);

/* Guest memory access through the VM's memory map; fail the test on error. */
void kt_read(kt_vm *t, uint64_t gpa, void *buf, size_t len);
void kt_write(kt_vm *t, uint64_t gpa, const void *buf, size_t len);
uint64_t kt_read_u64(kt_vm *t, uint64_t gpa);

/* Runs vCPU `cpu` until an exit other than VMM_EXIT_KICK, or until timeout_ms (0 = the
 * default) passed: then a watchdog kicks it and kt_run returns -ETIMEDOUT. Otherwise
 * returns what vmm_vcpu_run returned (0, or -EIO with VMM_EXIT_INTERNAL_ERROR, ...). */
int kt_run(kt_vm *t, unsigned cpu, vmm_exit *exit, unsigned timeout_ms);
/* Runs and asserts a VMM_EXIT_GUEST exit with exactly `code`; on mismatch prints the
 * exit, the last error and the console, and fails. */
void kt_run_expect(kt_vm *t, unsigned cpu, uint64_t code);

/* Human-readable description of an exit (for failure messages). */
const char *kt_exit_str(const vmm_exit *e, char *buf, size_t n);

/* A copy of the console output so far (NUL-terminated, into buf of n bytes), and reset. */
const char *kt_console(kt_vm *t, char *buf, size_t n);
void kt_console_clear(kt_vm *t);

/* Fails the current test with a message that includes vmm_last_error(), unless r == 0. */
#define kt_check(r, what)                                                                      \
	do {                                                                                   \
		int kt_r_ = (r);                                                               \
		if (kt_r_ != 0)                                                                \
			fail_msg("%s: %d (%s): %s", (what), kt_r_, vmm_strerror(kt_r_),        \
				 vmm_last_error());                                            \
	} while (0)

/* A monotonic clock in milliseconds. */
uint64_t kt_now_ms(void);

/* What a fork() child of this process finds at host address `host`: */
enum kt_fork_view {
	KT_FORK_UNMAPPED = 10, /* nothing mapped there (VMM_VM_DONTFORK) */
	KT_FORK_SAME = 11,     /* mapped, and the first `len` bytes equal `expect` */
	KT_FORK_DIFFERENT = 12,
};
/* Forks, lets the child look, waits for it; fails the test if the child dies. */
enum kt_fork_view kt_fork_view(const void *host, const void *expect, size_t len);

#endif
