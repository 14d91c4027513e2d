/* Shared pieces of the emulation fix-ups (fixup.c holds the table; fixup_mem.c decodes
 * memory operands and reaches guest memory the way the CPU would; fixup_xsave.c
 * completes the XSAVE family). Internal to lib/cpu/x86. */
#ifndef VMM_CPU_X86_FIXUP_H
#define VMM_CPU_X86_FIXUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "../../core/vm_internal.h"

/* What a completion function returns (or a negative errno). */
enum {
	FIXUP_DONE = 0,    /* completed, or an architectural exception was injected */
	FIXUP_DECLINE = 1, /* not completable here: report the emulation failure */
	FIXUP_FAULT = 2,   /* vmm_fixup_map only: it injected #PF/#GP/#SS; the caller is done */
};

enum { FIXUP_VEC_UD = 6, FIXUP_VEC_NM = 7, FIXUP_VEC_SS = 12, FIXUP_VEC_GP = 13, FIXUP_VEC_PF = 14 };

/* Legacy prefixes, REX and the opcode position of one instruction (64-bit mode). */
struct fixup_insn {
	const uint8_t *b;
	size_t len;       /* bytes available */
	size_t op;        /* index of the first opcode byte */
	uint8_t rex;      /* 0 if none */
	uint8_t seg;      /* 0, 0x64 (FS) or 0x65 (GS): the overrides with a base in 64-bit mode */
	bool p66, pf2, pf3, lock, addr32;
};

/* Splits off the prefixes. Returns false if the bytes end before an opcode byte. */
VMM_HIDDEN bool vmm_fixup_prefixes(const uint8_t *b, size_t len, struct fixup_insn *d);

/* The memory operand of the ModRM byte at d->b[modrm_at] (mod != 3): its linear address
 * (segment base included, wrapping at 64 bits as the CPU's does) and the instruction's
 * total length (none of the instructions completed here has an immediate). *stack is
 * true for an SS-relative address (RSP or RBP base), whose canonical fault is #SS.
 * Returns FIXUP_DONE, or FIXUP_DECLINE (32-bit addressing, bytes missing). */
VMM_HIDDEN int vmm_fixup_modrm_addr(const struct fixup_insn *d, size_t modrm_at, const struct kvm_regs *regs,
			 const struct kvm_sregs *sregs, uint64_t *la, size_t *insn_len, bool *stack);

/* A guest linear range mapped for one access, page by page. */
#define FIXUP_MAX_PAGES 4
struct fixup_span {
	uint64_t la;
	size_t len;
	uint8_t *host[FIXUP_MAX_PAGES]; /* host address of the range's part in page i */
};

/* Maps [la, la + len) for a data access from the vCPU's current CPL as the CPU would:
 * canonical check (#GP(0), or #SS(0) when `stack`), 4- or 5-level page walk with the
 * present, write (CR0.WP), user and SMAP (EFLAGS.AC) checks (#PF with CR2 and the error
 * code), accessed bits on every level and the dirty bit on written pages. Returns 0,
 * FIXUP_FAULT (the exception is injected), FIXUP_DECLINE (a page table or the data is
 * outside RAM, protection keys or CET are on, or the range spans too many pages), or a
 * negative errno. Nothing is written to the data before every page is mapped. */
VMM_HIDDEN int vmm_fixup_map(vmm_vcpu *v, const struct kvm_regs *regs, const struct kvm_sregs *sregs, uint64_t la,
		  size_t len, bool write, bool stack, struct fixup_span *sp);
VMM_HIDDEN void vmm_fixup_span_read(const struct fixup_span *sp, size_t off, void *dst, size_t n);
VMM_HIDDEN void vmm_fixup_span_write(const struct fixup_span *sp, size_t off, const void *src, size_t n);

/* RIP += by. Returns 0 or a negative errno. */
VMM_HIDDEN int vmm_fixup_advance_rip(vmm_vcpu *v, const struct kvm_regs *regs, uint64_t by);
/* Injects exception `vector` (error code if err >= 0; CR2 = cr2 for #PF) to be delivered
 * through the guest's IDT at the next entry, RIP left at the faulting instruction.
 * Returns 0 or a negative errno. */
VMM_HIDDEN int vmm_fixup_raise(vmm_vcpu *v, const struct kvm_sregs *sregs, uint8_t vector, int64_t err, uint64_t cr2);

/* fixup_xsave.c: match (bytes) and complete functions of the table in fixup.c. */
VMM_HIDDEN bool vmm_fixup_is_xgetbv(const uint8_t *b, size_t len);
VMM_HIDDEN bool vmm_fixup_is_xsetbv(const uint8_t *b, size_t len);
VMM_HIDDEN bool vmm_fixup_is_xsave(const uint8_t *b, size_t len);
VMM_HIDDEN bool vmm_fixup_is_xrstor(const uint8_t *b, size_t len);
VMM_HIDDEN int vmm_fixup_xgetbv(vmm_vcpu *v, const uint8_t *b, size_t len, const struct kvm_regs *regs,
		     const struct kvm_sregs *sregs);
VMM_HIDDEN int vmm_fixup_xsetbv(vmm_vcpu *v, const uint8_t *b, size_t len, const struct kvm_regs *regs,
		     const struct kvm_sregs *sregs);
VMM_HIDDEN int vmm_fixup_xsave(vmm_vcpu *v, const uint8_t *b, size_t len, const struct kvm_regs *regs,
		    const struct kvm_sregs *sregs);
VMM_HIDDEN int vmm_fixup_xrstor(vmm_vcpu *v, const uint8_t *b, size_t len, const struct kvm_regs *regs,
		     const struct kvm_sregs *sregs);

#endif
