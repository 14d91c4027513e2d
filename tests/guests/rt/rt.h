/* The freestanding runtime of libvmm's test guests (see tests/guests/README in
 * CMakeLists.txt): port I/O, MMIO, console output on port 0xe9, the exit port 0xf4,
 * MSRs, x2APIC and interrupt handlers.
 *
 * A guest defines `int guest_main(uint64_t arg)`; _start (start.S) calls it with the
 * host-chosen RDI as `arg` and writes the return value to the exit port, so the host's
 * vmm_vcpu_run returns VMM_EXIT_GUEST with that code. Guests are linked at 1 MiB,
 * physical = virtual, and run at CPL 3 (IOPL 3: port I/O works) or CPL 0. Everything that
 * needs CPL 0 (MSRs, cli/sti/hlt) is marked so. */
#ifndef GUEST_RT_H
#define GUEST_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_EXIT_PORT 0xf4    /* 32-bit write: ends vmm_vcpu_run with the value */
#define GUEST_CONSOLE_PORT 0xe9 /* byte writes: the harness's console buffer */

int guest_main(uint64_t arg);

/* Helpers below may be called from interrupt handlers: an ISR must only call functions
 * that preserve every register (clang enforces this even for inlined callees). */
#define RT_INLINE static inline __attribute__((always_inline, no_caller_saved_registers))

/* ---- port I/O (CPL 3 with IOPL 3, or CPL 0) ---- */
RT_INLINE void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory"); }
RT_INLINE void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port) : "memory"); }
RT_INLINE void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory"); }

RT_INLINE uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}
RT_INLINE uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}
RT_INLINE uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

/* ---- MMIO: one instruction of exactly the given width per access ---- */
RT_INLINE void mmio_write8(uint64_t a, uint8_t v) { __asm__ volatile("movb %1, (%0)" : : "r"(a), "q"(v) : "memory"); }
RT_INLINE void mmio_write16(uint64_t a, uint16_t v) { __asm__ volatile("movw %1, (%0)" : : "r"(a), "r"(v) : "memory"); }
RT_INLINE void mmio_write32(uint64_t a, uint32_t v) { __asm__ volatile("movl %1, (%0)" : : "r"(a), "r"(v) : "memory"); }
RT_INLINE void mmio_write64(uint64_t a, uint64_t v) { __asm__ volatile("movq %1, (%0)" : : "r"(a), "r"(v) : "memory"); }

RT_INLINE uint8_t mmio_read8(uint64_t a)
{
	uint8_t v;
	__asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(a) : "memory");
	return v;
}
RT_INLINE uint16_t mmio_read16(uint64_t a)
{
	uint16_t v;
	__asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(a) : "memory");
	return v;
}
RT_INLINE uint32_t mmio_read32(uint64_t a)
{
	uint32_t v;
	__asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(a) : "memory");
	return v;
}
RT_INLINE uint64_t mmio_read64(uint64_t a)
{
	uint64_t v;
	__asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(a) : "memory");
	return v;
}

/* The IOAPIC (KVM's in-kernel one, or libvmm's in split mode): register select and
 * window, and the redirection entry registers of a pin. */
#define IOAPIC 0xfec00000ull
#define IOAPIC_REGSEL 0x00
#define IOAPIC_WIN 0x10
#define REDIR_LO(pin) (0x10 + 2 * (pin))
#define REDIR_HI(pin) (0x11 + 2 * (pin))
RT_INLINE void ioapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(IOAPIC + IOAPIC_REGSEL, reg);
	mmio_write32(IOAPIC + IOAPIC_WIN, v);
}
RT_INLINE uint32_t ioapic_read(uint32_t reg)
{
	mmio_write32(IOAPIC + IOAPIC_REGSEL, reg);
	return mmio_read32(IOAPIC + IOAPIC_WIN);
}

/* ---- exit port ---- */

/* Ends the host's vmm_vcpu_run with VMM_EXIT_GUEST and `code`; if the host runs the
 * vCPU again, execution continues after this call. */
RT_INLINE void report(uint32_t code) { outl(GUEST_EXIT_PORT, code); }

/* Reports `code` and never returns (spins if the host runs the vCPU again). */
__attribute__((noreturn)) void exit(uint32_t code);

/* ---- console (port 0xe9) ---- */
void putc(char c);
void puts(const char *s);        /* no newline added */
void put_dec(uint64_t v);        /* decimal */
void put_hex(uint64_t v);        /* "0x" and lower-case digits, no leading zeros */

/* ---- misc ---- */
RT_INLINE void cpu_relax(void) { __asm__ volatile("pause" : : : "memory"); }
RT_INLINE void barrier(void) { __asm__ volatile("" : : : "memory"); }

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* ---- CPL 0 only ---- */
RT_INLINE uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr) : "memory");
	return (uint64_t)hi << 32 | lo;
}
RT_INLINE void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}
RT_INLINE void cli(void) { __asm__ volatile("cli" : : : "memory"); }
RT_INLINE void sti(void) { __asm__ volatile("sti" : : : "memory"); }
RT_INLINE void hlt(void) { __asm__ volatile("hlt" : : : "memory"); }
/* STI's one-instruction interrupt shadow makes this race-free: an interrupt that is
 * already pending wakes the HLT instead of being taken before it. */
RT_INLINE void sti_hlt(void) { __asm__ volatile("sti; hlt" : : : "memory"); }

/* x2APIC through MSRs (xAPIC MMIO does not work on nested-PVM hosts). */
#define MSR_APIC_BASE 0x1b
#define MSR_X2APIC_ID 0x802
#define MSR_X2APIC_EOI 0x80b
#define MSR_X2APIC_SVR 0x80f
#define APIC_BASE_EXTD (1ull << 10)
#define APIC_BASE_EN (1ull << 11)

RT_INLINE void x2apic_enable(void) { wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | APIC_BASE_EN | APIC_BASE_EXTD); }
/* Software-enables the LAPIC with spurious vector 0xff. */
RT_INLINE void x2apic_svr_enable(void) { wrmsr(MSR_X2APIC_SVR, 0x1ff); }
RT_INLINE void x2apic_eoi(void) { wrmsr(MSR_X2APIC_EOI, 0); }
RT_INLINE uint32_t x2apic_id(void) { return (uint32_t)rdmsr(MSR_X2APIC_ID); }

/* ---- interrupt and exception handlers ----
 * Write them in C as
 *   GUEST_INTERRUPT void my_handler(struct interrupt_frame *f);
 *   GUEST_INTERRUPT void my_fault(struct interrupt_frame *f, uint64_t error_code);
 * (the second form only for vectors that push an error code: 8, 10-14, 17, 21, 29, 30),
 * give them external linkage, and have the host install them with
 * vmm_vcpu_set_idt_gate(vcpu, vector, <address of the symbol>, dpl). They run at CPL 0.
 * A handler may change the return RIP with frame_set_ip (e.g. to skip the faulting
 * instruction). */
struct interrupt_frame {
	uint64_t ip, cs, flags, sp, ss;
};
#define GUEST_INTERRUPT __attribute__((interrupt, used))

/* Clang passes the frame like a by-value argument and drops plain stores to it as dead;
 * a volatile store reaches the hardware frame with both compilers. */
RT_INLINE void frame_set_ip(struct interrupt_frame *f, uint64_t ip)
{
	((volatile struct interrupt_frame *)f)->ip = ip;
}

#endif
