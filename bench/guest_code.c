/* The guest programs, as raw x86-64 bytes, so the benchmark needs no guest tool chain
 * and both back ends run exactly the same instructions. Ring-0 code is interpreted on
 * nested-PVM hosts (~250-500 ns an instruction), so the loops are three instructions. */
#include <string.h>
#include <time.h>

#include "bench.h"

static void emit(struct guest_code *c, const uint8_t *b, size_t n)
{
	memcpy(c->bytes + c->len, b, n);
	c->len += n;
}

static void emit32(struct guest_code *c, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	emit(c, b, sizeof b);
}

/* `out 0xf4, al; jmp $` (the jmp is never reached: the host stops at the out). */
static void emit_exit(struct guest_code *c)
{
	static const uint8_t b[] = { 0xe6, GUEST_EXIT_PORT, 0xeb, 0xfe };
	emit(c, b, sizeof b);
}

void guest_first_out(struct guest_code *c)
{
	c->len = 0;
	emit_exit(c);
}

/* xor eax, eax
 * again: mov ecx, n
 * loop:  <body>; dec ecx; jnz loop
 *        out 0xf4, al; jmp again
 * Each time the host resumes the guest after the exit-port write, n more exits follow. */
static void loop(struct guest_code *c, uint32_t n, const uint8_t *body, size_t len)
{
	static const uint8_t head[] = { 0x31, 0xc0, 0xb9 };
	c->len = 0;
	emit(c, head, sizeof head);
	emit32(c, n);
	emit(c, body, len);
	/* dec ecx; jnz back over body and itself; out; jmp back over all but the xor. */
	uint8_t tail[] = { 0xff, 0xc9, 0x75, (uint8_t)-(int)(len + 4), 0xe6, GUEST_EXIT_PORT, 0xeb,
			   (uint8_t)-(int)(len + 13) };
	emit(c, tail, sizeof tail);
}

void guest_pio_loop(struct guest_code *c, uint32_t n)
{
	static const uint8_t out[] = { 0xe6, GUEST_PIO_PORT }; /* out 0x10, al */
	loop(c, n, out, sizeof out);
}

void guest_mmio_loop(struct guest_code *c, uint32_t n)
{
	/* mov [disp32], eax (ModRM 04, SIB 25: absolute, sign-extended: keep it < 2 GiB) */
	_Static_assert(GUEST_MMIO_GPA < 0x80000000ull, "disp32 is sign-extended");
	uint32_t a = (uint32_t)GUEST_MMIO_GPA;
	uint8_t store[] = { 0x89, 0x04, 0x25, (uint8_t)a, (uint8_t)(a >> 8), (uint8_t)(a >> 16),
			    (uint8_t)(a >> 24) };
	loop(c, n, store, sizeof store);
}

void guest_irq_main(struct guest_code *c)
{
	static const uint8_t b[] = {
		0xb9, 0x1b, 0x00, 0x00, 0x00,       /* mov ecx, 0x1b (IA32_APIC_BASE) */
		0x0f, 0x32,                         /* rdmsr */
		0x0d, 0x00, 0x0c, 0x00, 0x00,       /* or eax, 0xc00 (EN | EXTD: x2APIC) */
		0x0f, 0x30,                         /* wrmsr */
		0xb9, 0x0f, 0x08, 0x00, 0x00,       /* mov ecx, 0x80f (x2APIC SVR) */
		0xb8, 0xff, 0x01, 0x00, 0x00,       /* mov eax, 0x1ff (APIC enabled) */
		0x31, 0xd2,                         /* xor edx, edx */
		0x0f, 0x30,                         /* wrmsr */
		0x31, 0xc0,                         /* xor eax, eax */
		0xe6, GUEST_EXIT_PORT,              /* out 0xf4, al: ready */
		0xfb,                               /* sti */
		0xf4,                               /* hlt */
		0xeb, 0xfd,                         /* jmp hlt */
	};
	c->len = 0;
	emit(c, b, sizeof b);
}

void guest_irq_handler(struct guest_code *c)
{
	static const uint8_t b[] = {
		0x50, 0x51, 0x52,                   /* push rax, rcx, rdx */
		0xb9, 0x0b, 0x08, 0x00, 0x00,       /* mov ecx, 0x80b (x2APIC EOI) */
		0x31, 0xc0,                         /* xor eax, eax */
		0x31, 0xd2,                         /* xor edx, edx */
		0x0f, 0x30,                         /* wrmsr */
		0xb0, 0x01,                         /* mov al, 1 */
		0xe6, GUEST_EXIT_PORT,              /* out 0xf4, al: one interrupt handled */
		0x5a, 0x59, 0x58,                   /* pop rdx, rcx, rax */
		0x48, 0xcf,                         /* iretq */
	};
	c->len = 0;
	emit(c, b, sizeof b);
}

