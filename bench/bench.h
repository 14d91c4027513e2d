/* bench_core: libvmm against raw KVM ioctls, side by side.
 *
 * The same scenarios are implemented twice: lib.c through the public libvmm API, raw.c
 * with KVM ioctls written inline (the physical limit a library can approach). Both run
 * the same guest bytes (guest_code.c) at the same guest-physical addresses, so the ratio
 * of their timings is the cost the library adds. bench_core.c interleaves them.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stats.h"

/* Guest layout shared by both back ends. GPA 0 - 0x20000 is libvmm's default system area
 * (GDT, TSS, IDT, page tables, ring-0 stack); raw.c puts its own tables there too. */
#define GUEST_MEM_SIZE (64ull << 20)
#define GUEST_CODE_GPA 0x20000ull
#define GUEST_HANDLER_GPA 0x21000ull
#define GUEST_STACK 0x80000ull        /* RSP at CPL 0 and CPL 3 */
#define GUEST_MMIO_GPA 0x10000000ull  /* identity-mapped, not RAM: every store exits */
#define GUEST_IDENTITY_MAP (1ull << 30)
#define GUEST_PIO_PORT 0x10
#define GUEST_EXIT_PORT 0xf4          /* libvmm's default exit port */
#define GUEST_IRQ_VECTOR 0x40
#define GUEST_IRQ_GSI 24              /* first GSI above the IOAPIC pins */

struct guest_code {
	uint8_t bytes[64];
	size_t len;
};

/* `out 0xf4, al` as the very first instruction. */
void guest_first_out(struct guest_code *c);
/* Forever: n times `out 0x10, al` (n >= 1), then `out 0xf4, al`. */
void guest_pio_loop(struct guest_code *c, uint32_t n);
/* Forever: n times a 4-byte store to GUEST_MMIO_GPA (n >= 1), then `out 0xf4, al`. */
void guest_mmio_loop(struct guest_code *c, uint32_t n);
/* CPL 0: enable x2APIC, `out 0xf4` with al = 0 (ready), then `sti; hlt` forever. */
void guest_irq_main(struct guest_code *c);
/* Handler for GUEST_IRQ_VECTOR: x2APIC EOI, `out 0xf4` with al = 1, iretq. */
void guest_irq_handler(struct guest_code *c);


enum loop_kind { LOOP_PIO, LOOP_MMIO, LOOP_IRQFD };

/* One back end. Failures print why on stderr and return -1 (or NULL). */
struct backend {
	const char *name;
	/* Create VM + 64 MiB + vCPU + long mode at CPL 0, run to the first `out`, then
	 * destroy everything; both parts timed, separately. `platform`: the default
	 * composition (in-kernel irqchip and PIT) instead of a bare VM. */
	int (*create_to_first_insn)(bool platform, double *create_ns, double *destroy_ns);
	/* A VM whose guest, each time loop_chunk resumes it, makes `chunk` exits of
	 * `kind` at `cpl` (LOOP_IRQFD: CPL 0 only), each dispatched to a counting handler
	 * on the host, then writes the exit port. LOOP_IRQFD: `chunk` times eventfd write
	 * -> irqfd -> MSI -> guest handler -> EOI and `out`. Setup is not timed. */
	void *(*loop_open)(enum loop_kind kind, unsigned cpl, uint32_t chunk);
	/* Runs one chunk; checks the handler saw exactly `chunk` exits; *ns = its time. */
	int (*loop_chunk)(void *loop, double *ns);
	void (*loop_close)(void *loop);
};

extern const struct backend bench_lib;
extern const struct backend bench_raw;

#endif
