/* The sandbox guest of the Python binding tests and benchmark, built with the guest SDK
 * (sdk/guest) by tests/support.py: build_sdk_guest. */
#include "libvmm_guest.h"

static uint64_t calls;        /* a call's changes to globals are undone by the reset */
static uint64_t squares[16];  /* filled by init, before the snapshot */

static int setup(void)
{
	for (uint64_t i = 0; i < 16; i++)
		squares[i] = i * i;
	return 0;
}
VMM_GUEST_INIT(setup);

uint64_t nop(void) { return 0; }
VMM_GUEST_EXPORT(nop);

uint64_t add(uint64_t a, uint64_t b) { return a + b; }
VMM_GUEST_EXPORT(add);

uint64_t sum6(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, uint64_t f)
{
	return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f;
}
VMM_GUEST_EXPORT(sum6);

uint64_t count(void) { return ++calls; }
VMM_GUEST_EXPORT(count);

uint64_t square(uint64_t i) { return squares[i & 15]; }
VMM_GUEST_EXPORT(square);

/* Output buffer 0 = input buffer 0 upper-cased; output 1 = the input's length as text. */
uint64_t upper(void)
{
	size_t n = 0, cap = 0, cap1 = 0;
	const char *in = vmm_guest_in(0, &n);
	char *out = vmm_guest_out(0, &cap);
	char *out1 = vmm_guest_out(1, &cap1);
	if (!in || !out || cap < n)
		return (uint64_t)-1;
	for (size_t i = 0; i < n; i++)
		out[i] = in[i] >= 'a' && in[i] <= 'z' ? (char)(in[i] - 32) : in[i];
	vmm_guest_set_out_len(0, n);
	if (out1 && cap1 >= 20) {
		char tmp[20];
		size_t k = 0, v = n;
		do {
			tmp[k++] = (char)('0' + v % 10);
			v /= 10;
		} while (v);
		for (size_t i = 0; i < k; i++)
			out1[i] = tmp[k - 1 - i];
		vmm_guest_set_out_len(1, k);
	}
	return n;
}
VMM_GUEST_EXPORT(upper);

uint64_t twice_on_host(uint64_t x) { return vmm_guest_host_call_name("twice", x); }
VMM_GUEST_EXPORT(twice_on_host);

uint64_t by_id(uint64_t x) { return vmm_guest_host_call(7, x, 1000); }
VMM_GUEST_EXPORT(by_id);

static char message[] = "sum these bytes";
uint64_t sum_on_host(void)
{
	return vmm_guest_host_call_name("sum", VMM_GUEST_PTR(message), sizeof message - 1);
}
VMM_GUEST_EXPORT(sum_on_host);

uint64_t say(void)
{
	vmm_guest_print("hello from the sandbox\n");
	return 1;
}
VMM_GUEST_EXPORT(say);

/* Reads a guest address: crash(0x10) touches the unmapped NULL page (#PF). */
uint64_t crash(uint64_t addr) { return *(volatile uint64_t *)(uintptr_t)addr; }
VMM_GUEST_EXPORT(crash);

uint64_t spin(void)
{
	for (;;)
		__asm__ volatile("pause");
}
VMM_GUEST_EXPORT(spin);

uint64_t give_up(void) { vmm_guest_abort("gave up on purpose"); }
VMM_GUEST_EXPORT(give_up);
