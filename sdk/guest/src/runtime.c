/* libvmm guest SDK runtime: init, the call loop, buffers, host calls, mem* functions.
 *
 * The call loop is the heart of the sandbox's speed: the guest sits on one OUT to the
 * exit port. The host writes the next call into the call page and re-enters the vCPU,
 * the OUT completes, the loop calls the function, stores its result, and OUTs again.
 * So a call is exactly one VM exit, and the host never touches the vCPU's registers.
 *
 * The loop itself is in start.S, so that the vCPU's state at every DONE exit is fixed
 * by the code, not by a compiler: the state the host's snapshot holds (taken at init's
 * DONE) and the state after every call that returned are the same, which lets the host
 * undo a call by copying back memory alone (lib/sandbox: VMM_SNAPSHOT_RESET_MEMORY_ONLY):
 *  - at the OUT: every general register zero but RAX (the code), RDX (the port), RSI
 *    (vmm_guest_rt_clean) and RSP (the stack top); RFLAGS = init's IF and IOPL, the rest
 *    clear. Segments, control registers, MSRs and CR2 are not changed by code at CPL 3
 *    that did not fault, and a fault ends the call with an error (full reset). The host
 *    compares all of these with the snapshot's exit before it trusts them;
 *  - right after the OUT, before each call: the x87, SSE and AVX state every call starts
 *    from (vmm_guest_runtime_fpu_reset in start.S): x87 initialized with its data
 *    registers zeroed and init's control word, MXCSR init's, XMM/YMM/ZMM and opmask
 *    registers zero. The host cannot read these cheaply, so the runtime resets them on
 *    the way in, where no code before it can leave them otherwise (the host checks that
 *    the vCPU stopped at the loop's OUT, so the next call enters there).
 * The FPU reset needs CPL 3 (at CPL 0 on nested hosts x87 and MXCSR instructions fail)
 * and state components it knows: otherwise vmm_guest_rt_clean is 0 and the host resets
 * the whole vCPU after every call. */
#include "libvmm_guest.h"

#define PAGE ((volatile struct vmm_guest_call_page *)(uintptr_t)VMM_GUEST_CALL_PAGE)

/* start.S has these as numbers: it cannot include the ABI header. */
_Static_assert(VMM_GUEST_PORT == 0xf4u && VMM_GUEST_EXIT_DONE == 0x5b0d0001u, "start.S's copies");

typedef uint64_t (*guest_fn)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

/* Linker-script symbols (sdk/guest/vmm_guest.ld). */
extern void (*__vmm_init_array_start[])(void);
extern void (*__vmm_init_array_end[])(void);
extern uint8_t __start___sancov_cntrs[];
extern uint8_t __stop___sancov_cntrs[];
/* The program's VMM_GUEST_INIT, if it has one. */
extern int (*const vmm_guest_init_fn)(void) __attribute__((weak));

void vmm_guest_runtime_init(void) __attribute__((used));
void vmm_guest_runtime_call(void) __attribute__((used));

/* Read by start.S; set once by init (before the snapshot), so every call sees the same.
 * vmm_guest_rt_fpu: bit 0 reset x87/SSE, bit 1 AVX (vzeroall), bit 2 AVX-512 (opmask
 * and ZMM16-31). vmm_guest_rt_clean: VMM_GUEST_RT_CLEAN if the FPU reset covers every
 * state component the CPU has enabled, else 0 (the host reads it in RSI at DONE). */
#define VMM_GUEST_RT_CLEAN 0x5b0dc1ea
uint64_t vmm_guest_rt_rflags __attribute__((used)) = 0x2;
uint32_t vmm_guest_rt_mxcsr __attribute__((used)) = 0x1f80;
uint16_t vmm_guest_rt_fcw __attribute__((used)) = 0x37f;
uint8_t vmm_guest_rt_fpu __attribute__((used));
uint32_t vmm_guest_rt_clean __attribute__((used));

#define RFLAGS_IF 0x200u
#define RFLAGS_IOPL 0x3000u
#define XCR0_X87_SSE 0x3u
#define XCR0_AVX 0x4u
#define XCR0_AVX512 0xe0u /* opmask, ZMM_Hi256, Hi16_ZMM */

static inline void guest_exit(uint32_t code)
{
	/* "memory": the host reads and writes the call page while we are out. */
	__asm__ volatile("outl %0, %w1" : : "a"(code), "Nd"(VMM_GUEST_PORT) : "memory");
}

static int running_at_cpl3(void)
{
	uint16_t cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	return (cs & 3) == 3;
}

/* Which FPU state the loop resets, and whether that is all of it. */
static void probe_fpu(void)
{
	if (!running_at_cpl3())
		return;
	uint16_t fcw;
	uint32_t mxcsr;
	__asm__ volatile("fnstcw %0\n\tstmxcsr %1" : "=m"(fcw), "=m"(mxcsr));
	vmm_guest_rt_fcw = fcw;
	vmm_guest_rt_mxcsr = mxcsr;
	uint8_t fpu = 1;
	uint32_t a = 1, b, c = 0, d;
	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	uint64_t xcr0 = XCR0_X87_SSE;
	if (c & (1u << 27)) { /* OSXSAVE: XGETBV works and says what is enabled */
		uint32_t lo, hi;
		__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
		xcr0 = (uint64_t)hi << 32 | lo;
	}
	if (xcr0 & XCR0_AVX)
		fpu |= 2;
	if ((xcr0 & XCR0_AVX512) == XCR0_AVX512)
		fpu |= 4;
	vmm_guest_rt_fpu = fpu;
	/* Anything else enabled (PKRU, AMX tiles, a partial AVX-512 set, ...) is state the
	 * reset does not know: the host then resets the whole vCPU. */
	if (!(xcr0 & ~(uint64_t)(XCR0_X87_SSE | XCR0_AVX | XCR0_AVX512)) &&
	    ((xcr0 & XCR0_AVX512) == 0 || (xcr0 & XCR0_AVX512) == XCR0_AVX512))
		vmm_guest_rt_clean = VMM_GUEST_RT_CLEAN;
}

/* Everything before the first DONE (start.S then enters the loop). */
void vmm_guest_runtime_init(void)
{
	uint64_t fl;
	__asm__ volatile("pushfq\n\tpopq %0" : "=r"(fl));
	vmm_guest_rt_rflags = (fl & (RFLAGS_IF | RFLAGS_IOPL)) | 0x2;
	if (PAGE->abi_version != VMM_GUEST_ABI_VERSION)
		vmm_guest_abort("the guest SDK's ABI version differs from the host library's: rebuild the guest");
	for (void (**c)(void) = __vmm_init_array_start; c < __vmm_init_array_end; c++)
		(*c)();
	int status = 0;
	if (&vmm_guest_init_fn && vmm_guest_init_fn)
		status = vmm_guest_init_fn();
	/* Coverage counters start from zero in the snapshot, whatever init did. */
	for (volatile uint8_t *p = __start___sancov_cntrs; p < __stop___sancov_cntrs; p++)
		*p = 0;
	/* After init: its x87 control word and MXCSR are what every call starts with. */
	probe_fpu();
	PAGE->init_status = status;
}

/* One call (start.S has reset the FPU state): the host has written it into the page. */
void vmm_guest_runtime_call(void)
{
	volatile struct vmm_guest_call_page *pg = PAGE;
	guest_fn fn = (guest_fn)(uintptr_t)pg->fn;
	pg->ret = fn(pg->args[0], pg->args[1], pg->args[2], pg->args[3], pg->args[4], pg->args[5]);
}

/* Weak no-op hooks for clang's -fsanitize-coverage: the host finds the counters through
 * the linker-script symbols, so nothing needs registering here. */
__attribute__((weak)) void __sanitizer_cov_8bit_counters_init(uint8_t *start, uint8_t *stop);
__attribute__((weak)) void __sanitizer_cov_8bit_counters_init(uint8_t *start, uint8_t *stop)
{
	(void)start;
	(void)stop;
}
__attribute__((weak)) void __sanitizer_cov_pcs_init(const uintptr_t *start, const uintptr_t *stop);
__attribute__((weak)) void __sanitizer_cov_pcs_init(const uintptr_t *start, const uintptr_t *stop)
{
	(void)start;
	(void)stop;
}

const void *vmm_guest_in(unsigned i, size_t *len)
{
	volatile struct vmm_guest_call_page *pg = PAGE;
	if (i >= VMM_GUEST_MAX_BUFS || i >= pg->nr_in) {
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = (size_t)pg->in[i].len;
	return (const void *)(uintptr_t)pg->in[i].addr;
}

void *vmm_guest_out(unsigned i, size_t *cap)
{
	volatile struct vmm_guest_call_page *pg = PAGE;
	if (i >= VMM_GUEST_MAX_BUFS || i >= pg->nr_out) {
		if (cap)
			*cap = 0;
		return NULL;
	}
	if (cap)
		*cap = (size_t)pg->out[i].len;
	return (void *)(uintptr_t)pg->out[i].addr;
}

int vmm_guest_set_out_len(unsigned i, size_t len)
{
	volatile struct vmm_guest_call_page *pg = PAGE;
	if (i >= VMM_GUEST_MAX_BUFS || i >= pg->nr_out || len > pg->out[i].len)
		return -1;
	pg->out_len[i] = len;
	return 0;
}

static uint64_t host_call(uint32_t id, const char *name, const uint64_t *args, unsigned nargs)
{
	volatile struct vmm_guest_call_page *pg = PAGE;
	if (nargs > VMM_GUEST_MAX_ARGS)
		vmm_guest_abort("vmm_guest_host_call: more than 6 arguments");
	pg->host_call.id = id;
	pg->host_call.name = (uint64_t)(uintptr_t)name;
	pg->host_call.nargs = nargs;
	for (unsigned i = 0; i < VMM_GUEST_MAX_ARGS; i++)
		pg->host_call.args[i] = i < nargs ? args[i] : 0;
	guest_exit(VMM_GUEST_EXIT_HOST_CALL);
	return pg->host_call.ret;
}

uint64_t vmm_guest_host_call_v(uint32_t id, const uint64_t *args, unsigned nargs)
{
	return host_call(id, NULL, args, nargs);
}

uint64_t vmm_guest_host_call_name_v(const char *name, const uint64_t *args, unsigned nargs)
{
	return host_call(VMM_GUEST_HC_BY_NAME, name, args, nargs);
}

void vmm_guest_write(const void *data, size_t len)
{
	uint64_t a[2] = { (uint64_t)(uintptr_t)data, len };
	host_call(VMM_GUEST_HC_WRITE, NULL, a, 2);
}

void vmm_guest_print(const char *s) { vmm_guest_write(s, strlen(s)); }

void vmm_guest_abort(const char *msg)
{
	PAGE->abort_msg = (uint64_t)(uintptr_t)msg;
	for (;;)
		guest_exit(VMM_GUEST_EXIT_ABORT);
}

void *vmm_guest_heap(size_t *size)
{
	volatile struct vmm_guest_call_page *pg = PAGE;
	uint64_t start = pg->heap_start, end = pg->heap_end;
	if (size)
		*size = end > start ? (size_t)(end - start) : 0;
	return (void *)(uintptr_t)start;
}

/* ---- freestanding string functions (GCC is told not to turn these loops into calls
 * to themselves: -fno-tree-loop-distribute-patterns in libvmm_guest.cmake) ---- */

__attribute__((weak)) void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

__attribute__((weak)) void *memmove(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	if (p < q) {
		while (n--)
			*p++ = *q++;
	} else {
		while (n--)
			p[n] = q[n];
	}
	return d;
}

__attribute__((weak)) void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

__attribute__((weak)) int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}

__attribute__((weak)) size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

__attribute__((weak)) int strcmp(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return (unsigned char)*a - (unsigned char)*b;
}
