/* Instructions KVM's emulator may fail on at CPL 0 (tests/kvm/test_fixups.c).
 *
 * arg 0: int3 and int $0x21 with guest handlers, fwait; then popcnt, which on
 * nested-PVM hosts is an emulation failure the library cannot complete (on bare metal it
 * just runs).
 *   report(0x1000 | int3 count << 4 | int 0x21 count)   after int3, int $0x21, fwait
 *   report(0x2000 | popcnt(0xf0f0f0f0))                 after popcnt
 *   return 0x600d
 *
 * arg 1: the XSAVE family at CPL 0 (the host installs handlers for #UD, #NM, #GP, #SS and
 * #PF): CR4.OSXSAVE on, XGETBV/XSETBV, XSAVE/XSAVEOPT/XRSTOR round trips of XMM and YMM
 * state (moved with SSE moves and XRSTOR only: AVX instructions at CPL 0 are emulation
 * failures of their own on those hosts), and every fault the CPU raises on the way. Each
 * check has a number; the first one that fails is returned as 0xbad00 | number, with
 * `got` and `want` holding the values. Success: 0x600d, or 0x6000 if the vCPU has no
 * XSAVE or AVX (the host test then insists it does not). */
#include "rt/rt.h"

volatile uint64_t bp_count, bp_rip, int21_count, int21_rip;

GUEST_INTERRUPT void bp_handler(struct interrupt_frame *f)
{
	bp_count++;
	bp_rip = f->ip;
}

GUEST_INTERRUPT void int21_handler(struct interrupt_frame *f)
{
	int21_count++;
	int21_rip = f->ip;
}

static int basic(void)
{
	__asm__ volatile("int3\n.globl after_int3\nafter_int3:" ::: "memory");
	__asm__ volatile("int $0x21\n.globl after_int21\nafter_int21:" ::: "memory");
	__asm__ volatile(".globl fwait_insn\nfwait_insn: fwait" ::: "memory");
	report(0x1000u | (uint32_t)bp_count << 4 | (uint32_t)int21_count);
	uint64_t n;
	__asm__ volatile(".globl popcnt_insn\npopcnt_insn: popcntq %1, %0"
			 : "=r"(n) : "r"(0xf0f0f0f0ull) : "cc");
	report(0x2000u | (uint32_t)n);
	return 0x600d;
}

/* ---- the XSAVE family ---- */

/* The last exception: vector, error code, faulting RIP, CR2; the handlers resume at
 * `resume_at` (set by TRY right before the instruction: its end). */
volatile uint64_t resume_at, fault_vec, fault_err, fault_rip, fault_cr2, fault_count;
volatile uint64_t got, want, xcr0_initial, ymm_offset;

RT_INLINE void record(struct interrupt_frame *f, uint64_t vec, uint64_t err)
{
	fault_vec = vec;
	fault_err = err;
	fault_rip = f->ip;
	fault_count++;
	frame_set_ip(f, resume_at);
}

GUEST_INTERRUPT void ud_handler(struct interrupt_frame *f) { record(f, 6, ~0ull); }
GUEST_INTERRUPT void nm_handler(struct interrupt_frame *f)
{
	__asm__ volatile("clts" ::: "memory");
	record(f, 7, ~0ull);
}
GUEST_INTERRUPT void ss_handler(struct interrupt_frame *f, uint64_t err) { record(f, 12, err); }
GUEST_INTERRUPT void gp_handler(struct interrupt_frame *f, uint64_t err) { record(f, 13, err); }
GUEST_INTERRUPT void pf_handler(struct interrupt_frame *f, uint64_t err)
{
	uint64_t cr2;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	fault_cr2 = cr2;
	record(f, 14, err);
}

/* Runs `insn` (its operands as in asm) with resume_at = the address right after it. */
#define TRY(insn, ...)                                                                      \
	__asm__ volatile("leaq 1f(%%rip), %%r11\n\tmovq %%r11, resume_at(%%rip)\n\t" insn "\n1:" \
			 : : __VA_ARGS__ : "r11", "memory")

static uint64_t xgetbv(uint32_t ecx)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(ecx));
	return (uint64_t)hi << 32 | lo;
}

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static void xsave64(void *area, uint64_t mask) { TRY("xsave64 (%0)", "r"(area), "a"((uint32_t)mask), "d"((uint32_t)(mask >> 32))); }
static void xsaveopt64(void *area, uint64_t mask) { TRY("xsaveopt64 (%0)", "r"(area), "a"((uint32_t)mask), "d"((uint32_t)(mask >> 32))); }
static void xrstor64(void *area, uint64_t mask) { TRY("xrstor64 (%0)", "r"(area), "a"((uint32_t)mask), "d"((uint32_t)(mask >> 32))); }
static void xsetbv(uint32_t ecx, uint64_t v) { TRY("xsetbv", "c"(ecx), "a"((uint32_t)v), "d"((uint32_t)(v >> 32))); }

static void set_xmm0(const void *p) { __asm__ volatile("movdqu (%0), %%xmm0" : : "r"(p) : "memory"); }
static void get_xmm0(void *p) { __asm__ volatile("movdqu %%xmm0, (%0)" : : "r"(p) : "memory"); }

static uint64_t u64_at(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* Global (not static): the RIP-relative form below names area_b in assembly. */
uint8_t area_a[4096] __attribute__((aligned(4096)));
uint8_t area_b[4096] __attribute__((aligned(4096)));

#define CHECK(n, g, w)                                                                       \
	do {                                                                                 \
		got = (uint64_t)(g);                                                         \
		want = (uint64_t)(w);                                                        \
		if (got != want)                                                             \
			return 0xbad00 | (n);                                                \
	} while (0)

#define EXPECT_FAULT(n, vec, err)                                                            \
	do {                                                                                 \
		CHECK(n, fault_count, faults + 1);                                           \
		CHECK(n, fault_vec, vec);                                                    \
		CHECK(n, fault_err, err);                                                    \
		faults = fault_count;                                                        \
	} while (0)

static const uint8_t pattern1[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
static const uint8_t pattern2[16] = { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
				      0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf };

static int xsave_family(void)
{
	uint32_t r[4];
	cpuid(1, 0, r);
	if (!(r[2] & (1u << 26)) || !(r[2] & (1u << 28)))
		return 0x6000; /* no XSAVE or no AVX */
	cpuid(0xd, 2, r);
	ymm_offset = r[1];
	uint64_t faults = 0;
	uint8_t buf[16];

	/* 1: XGETBV without CR4.OSXSAVE is #UD. */
	TRY("xgetbv", "c"(0));
	EXPECT_FAULT(1, 6, ~0ull);
	uint64_t cr4;
	__asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
	__asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | (1ull << 18)) : "memory");

	/* 2-4: XCR0 starts as x87 alone (or x87|SSE); XSETBV to x87|SSE|AVX; read back. */
	xcr0_initial = xgetbv(0);
	CHECK(2, xcr0_initial & 1, 1);
	xsetbv(0, 7);
	CHECK(3, fault_count, faults);
	CHECK(4, xgetbv(0), 7);
	/* 5-7: invalid XCR0 values and XCR index: #GP(0), XCR0 unchanged. */
	xsetbv(0, 6);          /* x87 bit clear */
	EXPECT_FAULT(5, 13, 0);
	xsetbv(0, 5);          /* AVX without SSE */
	EXPECT_FAULT(6, 13, 0);
	xsetbv(1, 7);          /* no XCR1 to write */
	EXPECT_FAULT(7, 13, 0);
	CHECK(8, xgetbv(0), 7);

	/* 9-12: XSAVE of x87|SSE|AVX: XMM0 and MXCSR in the legacy area, XSTATE_BV bit 1. */
	set_xmm0(pattern1);
	memset(area_a, 0, sizeof area_a);
	xsave64(area_a, ~0ull);
	CHECK(9, fault_count, faults);
	CHECK(10, memcmp(area_a + 160, pattern1, 16), 0);
	CHECK(11, u64_at(area_a + 24) & 0xffff, 0x1f80);  /* MXCSR after reset */
	CHECK(12, u64_at(area_a + 512) & 2, 2);
	CHECK(13, u64_at(area_a + 512) & ~7ull, 0);

	/* 14-17: XRSTOR of XMM0 = pattern2 and YMM0's upper half = pattern1; an XSAVE
	 * into another area reads both back, and an SSE move sees XMM0. */
	memcpy(area_a + 160, pattern2, 16);
	memcpy(area_a + ymm_offset, pattern1, 16);
	area_a[512] |= 4;
	xrstor64(area_a, ~0ull);
	CHECK(14, fault_count, faults);
	get_xmm0(buf);
	CHECK(15, memcmp(buf, pattern2, 16), 0);
	memset(area_b, 0xee, sizeof area_b);
	memset(area_b + 512, 0, 64);
	xsaveopt64(area_b, ~0ull);
	CHECK(16, memcmp(area_b + 160, pattern2, 16), 0);
	CHECK(17, memcmp(area_b + ymm_offset, pattern1, 16) == 0 && (area_b[512] & 4), 1);

	/* 18-19: XRSTOR with XSTATE_BV bit 2 clear puts YMM's upper halves in their initial
	 * state (zero), whatever the area holds; a mask without SSE leaves XMM0 alone. */
	memset(area_a + ymm_offset, 0x55, 16);
	area_a[512] &= (uint8_t)~4;
	xrstor64(area_a, 4);
	memset(area_b, 0xee, sizeof area_b);
	memset(area_b + 512, 0, 64);
	xsave64(area_b, ~0ull);
	bool ymm_zero = true;
	for (unsigned i = 0; i < 16; i++)
		ymm_zero = ymm_zero && area_b[ymm_offset + i] == 0;
	CHECK(18, !(area_b[512] & 4) || ymm_zero, 1);
	CHECK(19, memcmp(area_b + 160, pattern2, 16), 0);

	/* 20: a mask selects components: XSAVE of x87 alone leaves the XMM area as it was. */
	memset(area_b, 0xee, sizeof area_b);
	memset(area_b + 512, 0, 64);
	xsave64(area_b, 1);
	CHECK(20, area_b[160] == 0xee && area_b[ymm_offset] == 0xee && u64_at(area_b) != 0xeeeeeeeeeeeeeeeeull, 1);

	/* 21-25: faults. Misaligned area: #GP(0). Reserved header bytes or a component
	 * beyond XCR0 in XRSTOR: #GP(0). Non-canonical: #GP(0). Not mapped: #PF, write. */
	xsave64(area_a + 8, ~0ull);
	EXPECT_FAULT(21, 13, 0);
	area_a[512 + 8] = 1; /* XCOMP_BV */
	xrstor64(area_a, ~0ull);
	EXPECT_FAULT(22, 13, 0);
	area_a[512 + 8] = 0;
	area_a[512 + 1] = 2; /* XSTATE_BV bit 9 (PKRU), not in XCR0 */
	xrstor64(area_a, ~0ull);
	EXPECT_FAULT(23, 13, 0);
	area_a[512 + 1] = 0;
	xsave64((void *)0x8000000000000000ull, ~0ull);
	EXPECT_FAULT(24, 13, 0);
	xsave64((void *)0x8000000000ull, ~0ull); /* 512 GiB: beyond the identity map */
	EXPECT_FAULT(25, 14, 2);                  /* not present, write, supervisor */
	CHECK(26, fault_cr2, 0x8000000000ull);
	xrstor64((void *)0x8000000000ull, ~0ull);
	EXPECT_FAULT(27, 14, 0);                  /* not present, read */

	/* 28: MXCSR with reserved bits: XRSTOR raises #GP(0). */
	area_a[24 + 2] = 1; /* bit 16 */
	xrstor64(area_a, ~0ull);
	EXPECT_FAULT(28, 13, 0);
	area_a[24 + 2] = 0;

	/* 29: CR0.TS: #NM (the handler clears TS); nothing was written. */
	uint64_t cr0;
	__asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
	__asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 8) : "memory");
	memset(area_b, 0xee, 600);
	xsave64(area_b, ~0ull);
	EXPECT_FAULT(29, 7, ~0ull);
	CHECK(30, area_b[160], 0xee);

	/* 31: the RIP-relative form addresses the same bytes. */
	memset(area_b, 0, 1024);
	TRY("xsave64 area_b(%%rip)", "a"(~0u), "d"(~0u));
	CHECK(31, memcmp(area_b + 160, pattern2, 16), 0);
	return 0x600d;
}

int guest_main(uint64_t arg)
{
	return arg == 1 ? xsave_family() : basic();
}
