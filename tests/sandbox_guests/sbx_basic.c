/* Guest program for tests/kvm/test_sandbox.c, built with the guest SDK. Each export
 * exercises one part of the sandbox: results, buffers, host calls, state reset, and
 * every kind of failure. */
#include <libvmm_guest.h>

#define HOST_ADD_ONE 1   /* host function ids registered by the test */
#define HOST_READ_BUF 2

static uint64_t init_value;   /* set by init: proves init ran before the snapshot */
static uint64_t counter;      /* incremented by every call of bump() */
static uint8_t scratch[3 * 4096];

static int at_cpl3(void)
{
	uint16_t cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	return (cs & 3) == 3;
}

/* Control words init leaves, which every call must start with (test_fpu_state). */
#define INIT_FCW 0x027f     /* 53-bit precision */
#define INIT_MXCSR 0x9f80u  /* flush to zero, exceptions masked */

static int setup(void)
{
	/* x87 and MXCSR instructions fail at CPL 0 on nested hosts (VMM_SANDBOX_RING0). */
	if (at_cpl3()) {
		uint16_t fcw = INIT_FCW;
		uint32_t mxcsr = INIT_MXCSR;
		__asm__ volatile("fldcw %0\n\tldmxcsr %1" : : "m"(fcw), "m"(mxcsr));
	}
	init_value = 42;
	vmm_guest_print("init done\n");
	return 0;
}
VMM_GUEST_INIT(setup);

uint64_t add(uint64_t a, uint64_t b) { return a + b; }
VMM_GUEST_EXPORT(add);

uint64_t sum6(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, uint64_t f)
{
	return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f;
}
VMM_GUEST_EXPORT(sum6);

uint64_t empty(void) { return 0; }
VMM_GUEST_EXPORT(empty);

uint64_t get_init_value(void) { return init_value; }
VMM_GUEST_EXPORT(get_init_value);

uint64_t bump(void)
{
	/* Also dirties a few pages, so a reset has something to copy. */
	for (unsigned i = 0; i < sizeof scratch; i += 4096)
		scratch[i]++;
	return ++counter;
}
VMM_GUEST_EXPORT(bump);

/* Sum of input 0's bytes (returned); output 0 gets input 0 reversed. */
uint64_t checksum(void)
{
	size_t n, cap;
	const uint8_t *in = vmm_guest_in(0, &n);
	uint8_t *out = vmm_guest_out(0, &cap);
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += in[i];
	if (out && cap >= n) {
		for (size_t i = 0; i < n; i++)
			out[i] = in[n - 1 - i];
		vmm_guest_set_out_len(0, n);
	}
	return sum;
}
VMM_GUEST_EXPORT(checksum);

/* Concatenates every input buffer into output 1; output 0 gets the count (8 bytes). */
uint64_t concat(void)
{
	size_t cap0, cap1, used = 0;
	uint8_t *o0 = vmm_guest_out(0, &cap0), *o1 = vmm_guest_out(1, &cap1);
	uint64_t count = 0;
	for (unsigned i = 0;; i++) {
		size_t n;
		const uint8_t *p = vmm_guest_in(i, &n);
		if (!p)
			break;
		count++;
		if (used + n <= cap1) {
			memcpy(o1 + used, p, n);
			used += n;
		}
	}
	if (o0 && cap0 >= 8) {
		memcpy(o0, &count, 8);
		vmm_guest_set_out_len(0, 8);
	}
	vmm_guest_set_out_len(1, used);
	return count;
}
VMM_GUEST_EXPORT(concat);

/* Host functions by id and by name. */
uint64_t call_host(uint64_t x)
{
	uint64_t a = vmm_guest_host_call(HOST_ADD_ONE, x);
	uint64_t b = vmm_guest_host_call_name("times_two", a);
	return b;
}
VMM_GUEST_EXPORT(call_host);

/* The host reads `len` bytes of our buffer at `addr` through its checked accessor. */
uint64_t host_reads(uint64_t addr, uint64_t len)
{
	static const char msg[] = "hello host";
	if (!addr)
		addr = VMM_GUEST_PTR(msg);
	return vmm_guest_host_call(HOST_READ_BUF, addr, len);
}
VMM_GUEST_EXPORT(host_reads);

uint64_t call_unknown_host(void) { return vmm_guest_host_call(99, 1); }
VMM_GUEST_EXPORT(call_unknown_host);

uint64_t crash_null(void) { return *(volatile uint64_t *)0; }
VMM_GUEST_EXPORT(crash_null);

uint64_t crash_ud2(void)
{
	__asm__ volatile("ud2");
	return 1;
}
VMM_GUEST_EXPORT(crash_ud2);

uint64_t crash_div(uint64_t d) { return 100 / d; }
VMM_GUEST_EXPORT(crash_div);

/* Writes past the end of RAM (the page tables end there): a page fault. */
uint64_t crash_wild(uint64_t addr)
{
	*(volatile uint64_t *)(uintptr_t)addr = 1;
	return 0;
}
VMM_GUEST_EXPORT(crash_wild);

/* Tries to rewrite its own page tables (supervisor-only): a page fault. */
uint64_t crash_system(void)
{
	*(volatile uint64_t *)(uintptr_t)0x1000 = 0;
	return 0;
}
VMM_GUEST_EXPORT(crash_system);

uint64_t spin(void)
{
	counter += 1000;
	for (;;)
		__asm__ volatile("" ::: "memory");
	return 0;
}
VMM_GUEST_EXPORT(spin);

/* Claims more output than the buffer holds, bypassing vmm_guest_set_out_len's check. */
uint64_t lie_out_len(void)
{
	volatile struct vmm_guest_call_page *pg = (volatile struct vmm_guest_call_page *)VMM_GUEST_CALL_PAGE;
	pg->out_len[0] = 1ull << 40;
	return 0;
}
VMM_GUEST_EXPORT(lie_out_len);

uint64_t bad_exit_code(void)
{
	__asm__ volatile("outl %0, %w1" : : "a"(0x1234u), "Nd"(VMM_GUEST_PORT) : "memory");
	return 0;
}
VMM_GUEST_EXPORT(bad_exit_code);

uint64_t bad_port(void)
{
	__asm__ volatile("outb %%al, $0x80" : : "a"(0) : "memory");
	return 0;
}
VMM_GUEST_EXPORT(bad_port);

uint64_t call_failing_host(void) { return vmm_guest_host_call_name("fail", 1); }
VMM_GUEST_EXPORT(call_failing_host);

uint64_t call_unknown_name(void) { return vmm_guest_host_call_name("nobody", 1); }
VMM_GUEST_EXPORT(call_unknown_name);

uint64_t give_up(void) { vmm_guest_abort("giving up on purpose"); }
VMM_GUEST_EXPORT(give_up);

uint64_t print(void)
{
	vmm_guest_print("hello from the guest");
	return 0;
}
VMM_GUEST_EXPORT(print);

/* The heap lies between the program and the I/O area, and is writable. */
uint64_t heap_check(void)
{
	size_t size;
	uint8_t *h = vmm_guest_heap(&size);
	if (size) {
		h[0] = 1;
		h[size - 1] = 2;
	}
	return size;
}
VMM_GUEST_EXPORT(heap_check);

/* ---- the state every call starts from (test_fpu_state, test_state_check) ---- */

/* 0: x87/SSE only, 1: AVX usable, 2: AVX-512 too. */
static uint64_t avx_level(void)
{
	uint32_t a = 1, b, c = 0, d;
	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	if (!(c & (1u << 27)) || !(c & (1u << 28)))
		return 0;
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	if ((lo & 6) != 6)
		return 0;
	a = 7;
	c = 0;
	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	return (b & (1u << 16)) && (lo & 0xe6) == 0xe6 ? 2 : 1;
}

/* Changes every piece of FPU/SSE/AVX state a call could leave behind. */
static void fpu_scribble(void)
{
	static const uint16_t fcw = 0x0c7f;   /* round toward zero, 64-bit precision */
	static const uint32_t mxcsr = 0x7f80; /* round toward zero */
	__asm__ volatile("fld1\n\tfldpi\n\tfldl2t\n\tfldcw %0\n\tldmxcsr %1" : : "m"(fcw), "m"(mxcsr));
	__asm__ volatile("pcmpeqd %%xmm0, %%xmm0\n\tpcmpeqd %%xmm7, %%xmm7\n\tpcmpeqd %%xmm8, %%xmm8\n\t"
			 "pcmpeqd %%xmm15, %%xmm15" : : : "xmm0", "xmm7", "xmm8", "xmm15");
	uint64_t lvl = avx_level();
	if (lvl >= 1)
		__asm__ volatile("vpcmpeqd %%ymm1, %%ymm1, %%ymm1\n\tvpcmpeqd %%ymm14, %%ymm14, %%ymm14"
				 : : : "xmm1", "xmm14");
	if (lvl >= 2)
		__asm__ volatile("kxnorw %%k1, %%k1, %%k1\n\tvpternlogd $0xff, %%zmm16, %%zmm16, %%zmm16\n\t"
				 "vpternlogd $0xff, %%zmm31, %%zmm31, %%zmm31\n\tvpternlogd $0xff, %%zmm2, %%zmm2, %%zmm2"
				 : : : "xmm2"); /* zmm16-31: not used by code built without AVX-512 */
}

uint64_t fpu_dirty(void)
{
	fpu_scribble();
	return 1;
}
VMM_GUEST_EXPORT(fpu_dirty);

uint64_t fpu_dirty_crash(void)
{
	fpu_scribble();
	__asm__ volatile("ud2");
	return 1;
}
VMM_GUEST_EXPORT(fpu_dirty_crash);

/* Output 0 gets: the FXSAVE image (512 bytes), the upper halves of YMM0-15 (256), ZMM16
 * and ZMM31 (128), k1 (8), ZMM2's upper 256 bits (32), and the AVX level (8). */
struct fpu_report {
	uint8_t fx[512];
	uint8_t ymm_hi[16][16];
	uint8_t zmm16[64], zmm31[64];
	uint64_t k1;
	uint8_t zmm2_hi[32];
	uint64_t level;
};

uint64_t fpu_read(void)
{
	static struct fpu_report rep __attribute__((aligned(64)));
	/* First, before any compiled code could use a vector register. */
	__asm__ volatile("fxsave64 %0" : "=m"(rep.fx));
	rep.level = avx_level();
	if (rep.level >= 1) {
#define HI(n) __asm__ volatile("vextractf128 $1, %%ymm" #n ", %0" : "=m"(rep.ymm_hi[n]))
		HI(0); HI(1); HI(2); HI(3); HI(4); HI(5); HI(6); HI(7);
		HI(8); HI(9); HI(10); HI(11); HI(12); HI(13); HI(14); HI(15);
#undef HI
	}
	if (rep.level >= 2)
		__asm__ volatile("vmovdqu64 %%zmm16, %0\n\tvmovdqu64 %%zmm31, %1\n\tkmovq %%k1, %2\n\t"
				 "vextracti64x4 $1, %%zmm2, %3"
				 : "=m"(rep.zmm16), "=m"(rep.zmm31), "=m"(rep.k1), "=m"(rep.zmm2_hi));
	size_t cap;
	uint8_t *out = vmm_guest_out(0, &cap);
	if (!out || cap < sizeof rep)
		return 0;
	memcpy(out, &rep, sizeof rep);
	vmm_guest_set_out_len(0, sizeof rep);
	return 1;
}
VMM_GUEST_EXPORT(fpu_read);

/* A guest that claims to be done from inside a function (its own OUT, with its own
 * registers): the host must not let the next call continue here. */
uint64_t fake_done(void)
{
	__asm__ volatile("movl $0x5b0d0001, %%eax\n\tmovl $0xf4, %%edx\n\tmovl $0x1111, %%ebx\n\t"
			 "outl %%eax, %%dx\n\tud2" : : : "rax", "rdx", "rbx", "memory");
	return 0;
}
VMM_GUEST_EXPORT(fake_done);

/* Returns normally with DS changed (a null selector): the host must notice. */
uint64_t set_ds_null(void)
{
	__asm__ volatile("movw %w0, %%ds" : : "r"(0) : "memory");
	return 0;
}
VMM_GUEST_EXPORT(set_ds_null);

uint64_t get_ds(void)
{
	uint16_t ds;
	__asm__ volatile("mov %%ds, %0" : "=r"(ds));
	return ds;
}
VMM_GUEST_EXPORT(get_ds);

/* Returns with the direction flag set: the loop clears it. */
uint64_t set_df(void)
{
	__asm__ volatile("std" : : : "cc");
	return 0;
}
VMM_GUEST_EXPORT(set_df);

uint64_t get_flags(void)
{
	uint64_t f;
	__asm__ volatile("pushfq\n\tpopq %0" : "=r"(f));
	return f;
}
VMM_GUEST_EXPORT(get_flags);

/* The stack below the caller's frame: a hash of 8 KiB below this function's frame, and
 * a function that fills that area. */
#define STACK_PROBE 8192u

__attribute__((noinline)) uint64_t stack_probe(void)
{
	uint8_t *sp;
	__asm__ volatile("mov %%rsp, %0" : "=r"(sp));
	const volatile uint8_t *p = sp - 256 - STACK_PROBE;
	uint64_t h = 1469598103934665603ull;
	for (unsigned i = 0; i < STACK_PROBE; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}
VMM_GUEST_EXPORT(stack_probe);

__attribute__((noinline)) uint64_t stack_fill(void)
{
	volatile uint8_t buf[STACK_PROBE + 1024];
	for (unsigned i = 0; i < sizeof buf; i++)
		buf[i] = 0xab;
	return buf[100];
}
VMM_GUEST_EXPORT(stack_fill);

/* The heap's first 8 KiB: returns their sum, then scribbles over them. */
uint64_t heap_poke(void)
{
	size_t size;
	uint8_t *h = vmm_guest_heap(&size);
	uint64_t sum = 0;
	for (size_t i = 0; i < 8192 && i < size; i++) {
		sum += h[i];
		h[i] = (uint8_t)(i * 13 + 1);
	}
	return sum;
}
VMM_GUEST_EXPORT(heap_poke);

/* The guest's TSC: a full reset sets it back to the snapshot's, memory alone does not. */
uint64_t get_tsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}
VMM_GUEST_EXPORT(get_tsc);
