/* Emulation fix-ups with a real CPL-0 guest (tests/guests/fixups.c). On nested-PVM hosts
 * KVM's emulator fails on INT3, INT n and FWAIT at ring 0 and the library completes them;
 * on bare-metal KVM they just run. Either way the guest's handlers must run with the
 * right return addresses. POPCNT at ring 0 is an emulation failure the library cannot
 * complete on those hosts (-EIO, VMM_EXIT_INTERNAL_ERROR, a message with RIP, bytes and
 * registers); elsewhere it computes the right value. The same report is checked on every
 * host by test_emulation_failure_report (popcnt with an MMIO operand, which KVM must
 * emulate and cannot), and the table's INT3, INT n and FWAIT completions and its decline
 * of popcnt are called directly by test_fixup_table_int_fwait, so bare-metal hosts test
 * them too. */
#include "harness/harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/vm_internal.h"
#include "kvm/kvm.h"

/* The emulation-failure message (lib/cpu/x86/run.c) names every register it lists with
 * the value the vCPU holds now (the failing instruction's: nothing ran since). */
static void assert_msg_has_regs(const char *msg, vmm_vcpu *v)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	assert_true(vmm_kvm_get_regs(v->fd, &r) >= 0);
	assert_true(vmm_kvm_get_sregs(v->fd, &s) >= 0);
	const struct {
		const char *name;
		unsigned long long value;
	} want[] = {
		{ "rax", r.rax }, { "rbx", r.rbx }, { "rcx", r.rcx }, { "rdx", r.rdx },
		{ "rsi", r.rsi }, { "rdi", r.rdi }, { "rsp", r.rsp }, { "rbp", r.rbp },
		{ "rflags", r.rflags }, { "cr0", s.cr0 }, { "cr3", s.cr3 }, { "cr4", s.cr4 },
		{ "efer", s.efer },
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		char needle[64];
		/* The whole field: a space before it (so that "rax=" never matches inside
		 * another name) and a space or the end after it (so that 0 is not 0x...). */
		int n = snprintf(needle, sizeof needle, " %s=%#llx", want[i].name, want[i].value);
		const char *p = msg;
		while ((p = strstr(p, needle)) && p[n] != ' ' && p[n] != '\0')
			p += n;
		if (!p)
			fail_msg("last error lacks \"%s\": \"%s\"", needle + 1, msg);
	}
}

static void test_fixups(void **state)
{
	kt_opts o = { .guest = "fixups", .cpl = 0 };
	kt_vm *t = kt_create(state, &o);
	kt_set_gate(t, 0, 3, "bp_handler", 0);
	kt_set_gate(t, 0, 0x21, "int21_handler", 0);

	/* int3, int $0x21 and fwait each ran once and execution continued after them. */
	kt_run_expect(t, 0, 0x1000 | 1 << 4 | 1);
	assert_int_equal(kt_read_u64(t, kt_sym(t, "bp_count")), 1);
	assert_int_equal(kt_read_u64(t, kt_sym(t, "bp_rip")), kt_sym(t, "after_int3"));
	assert_int_equal(kt_read_u64(t, kt_sym(t, "int21_count")), 1);
	assert_int_equal(kt_read_u64(t, kt_sym(t, "int21_rip")), kt_sym(t, "after_int21"));

	vmm_exit e;
	char buf[256];
	int r = kt_run(t, 0, &e, 0);
	if (r == 0 && e.reason == VMM_EXIT_GUEST) {
		/* The host ran popcnt natively (bare-metal KVM): a legitimate outcome, checked
		 * for the right value. The failure report this host does not produce here is
		 * tested on every host by test_emulation_failure_report. */
		print_message("popcnt at CPL 0 ran (no emulation failure on this host)\n");
		assert_int_equal(e.u.guest.code, 0x2000 | 16);
		kt_run_expect(t, 0, 0x600d);
		return;
	}
	if (r != -EIO || e.reason != VMM_EXIT_INTERNAL_ERROR)
		fail_msg("popcnt: expected completion or -EIO/INTERNAL_ERROR, got r=%d %s; %s", r,
			 kt_exit_str(&e, buf, sizeof buf), vmm_last_error());
	print_message("popcnt at CPL 0: emulation failure reported: %s\n", vmm_last_error());
	uint64_t rip = kt_sym(t, "popcnt_insn");
	assert_int_equal(e.u.internal.rip, rip);
	/* popcntq %rax-ish: f3 48 0f b8 /r */
	assert_true(e.u.internal.insn_len >= 5);
	assert_int_equal(e.u.internal.insn[0], 0xf3);
	assert_int_equal(e.u.internal.insn[2], 0x0f);
	assert_int_equal(e.u.internal.insn[3], 0xb8);
	const char *msg = vmm_last_error();
	char hex[32];
	snprintf(hex, sizeof hex, "%" PRIx64, rip);
	if (!strstr(msg, hex))
		fail_msg("last error does not name RIP %s: \"%s\"", hex, msg);
	if (!strstr(msg, "f3") && !strstr(msg, "F3"))
		fail_msg("last error does not show the instruction bytes: \"%s\"", msg);
	assert_msg_has_regs(msg, t->vcpu[0]);
}

/* An emulation failure on every host, bare metal included: popcnt with its memory
 * operand at a GPA outside RAM. KVM must emulate an MMIO access and its emulator has no
 * popcnt, so KVM_RUN ends in KVM_EXIT_INTERNAL_ERROR (suberror EMULATION) at CPL 0; the
 * fix-up table declines popcnt and the library reports -EIO, VMM_EXIT_INTERNAL_ERROR and
 * a message with RIP, bytes and registers. The registers hold distinctive values set
 * here, so the message is shown to carry the failing instruction's registers. */
#define CODE_GPA 0x100000ull
#define MMIO_GPA 0x40000000ull /* 1 GiB: identity-mapped, far above the 32 MiB of RAM */

static void test_emulation_failure_report(void **state)
{
	kt_opts o = { .guest = NULL, .cpl = 0 };
	kt_vm *t = kt_create(state, &o);
	vmm_vcpu *v = t->vcpu[0];
	/* popcnt (%rsi), %rax; hlt (reached only if popcnt were completed) */
	static const uint8_t code[] = { 0xf3, 0x48, 0x0f, 0xb8, 0x06, 0xf4 };
	kt_write(t, CODE_GPA, code, sizeof code);
	struct kvm_regs r;
	assert_true(vmm_kvm_get_regs(v->fd, &r) >= 0);
	r.rax = 0xa1a2a3a4a5a6a7a8ull;
	r.rbx = 0xb1b2b3b4b5b6b7b8ull;
	r.rcx = 0xc1c2c3c4c5c6c7c8ull;
	r.rdx = 0xd1d2d3d4d5d6d7d8ull;
	r.rsi = MMIO_GPA;
	r.rdi = 0x1234567890abcdefull;
	r.rbp = 0x0fedcba987654321ull;
	r.rip = CODE_GPA;
	assert_true(vmm_kvm_set_regs(v->fd, &r) >= 0);

	vmm_exit e;
	char buf[256];
	int rc = kt_run(t, 0, &e, 0);
	if (rc != -EIO || e.reason != VMM_EXIT_INTERNAL_ERROR)
		fail_msg("popcnt with an MMIO operand: expected -EIO/INTERNAL_ERROR, got r=%d %s; %s", rc,
			 kt_exit_str(&e, buf, sizeof buf), vmm_last_error());
	assert_int_equal(e.u.internal.rip, CODE_GPA);
	assert_int_equal(e.u.internal.suberror, KVM_INTERNAL_ERROR_EMULATION);
	assert_true(e.u.internal.insn_len >= 5);
	assert_memory_equal(e.u.internal.insn, code, 5);

	const char *msg = vmm_last_error();
	print_message("reported: %s\n", msg);
	static const char *const parts[] = { "emulation failure", "rip 0x100000 ", "(cpl 0)",
					     "bytes: f3 48 0f b8 06", "suberror 1;" };
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
		if (!strstr(msg, parts[i]))
			fail_msg("last error lacks \"%s\": \"%s\"", parts[i], msg);
	/* The registers did not move (RIP still at the instruction) and the message names
	 * them: the values set above and the rest as KVM holds them. */
	struct kvm_regs now;
	assert_true(vmm_kvm_get_regs(v->fd, &now) >= 0);
	assert_int_equal(now.rip, CODE_GPA);
	assert_int_equal(now.rax, r.rax);
	assert_int_equal(now.rbx, r.rbx);
	assert_int_equal(now.rbp, r.rbp);
	assert_msg_has_regs(msg, v);
	assert_non_null(strstr(msg, " rbx=0xb1b2b3b4b5b6b7b8 "));
	assert_non_null(strstr(msg, " rsi=0x40000000 "));
}

/* FWAIT and INT3 at ring 0 in a loop: the fix-ups are repeatable and leave no state. */
static void test_fixups_repeat(void **state)
{
	for (int i = 0; i < 3; i++) {
		kt_opts o = { .guest = "fixups", .cpl = 0 };
		kt_vm *t = kt_create(state, &o);
		kt_set_gate(t, 0, 3, "bp_handler", 0);
		kt_set_gate(t, 0, 0x21, "int21_handler", 0);
		kt_run_expect(t, 0, 0x1011);
		kt_destroy(t);
		*state = NULL;
	}
}

/* Without a handler for vector 3 the library's fault IDT reports the #BP. */
static void test_int3_without_handler(void **state)
{
	kt_opts o = { .guest = "fixups", .cpl = 0 };
	kt_vm *t = kt_create(state, &o);
	vmm_exit e;
	char buf[256];
	int r = kt_run(t, 0, &e, 0);
	if (r != 0 || e.reason != VMM_EXIT_FAULT || e.u.fault.vector != 3)
		fail_msg("expected FAULT #BP, got r=%d %s; %s", r, kt_exit_str(&e, buf, sizeof buf),
			 vmm_last_error());
	assert_int_equal(e.u.fault.rip, kt_sym(t, "after_int3"));
	assert_int_equal(e.u.fault.cs & 3, 0);
}

/* The XSAVE family at CPL 0 (tests/guests/fixups.c, arg 1): completed in user space on
 * nested-PVM hosts (lib/cpu/x86/fixup_xsave.c), native elsewhere; the guest checks the
 * architectural results and faults itself and names the first check that failed. */
static void test_xsave_family(void **state)
{
	kt_opts o = { .guest = "fixups", .cpl = 0 };
	kt_vm *t = kt_create(state, &o);
	kt_set_gate(t, 0, 6, "ud_handler", 0);
	kt_set_gate(t, 0, 7, "nm_handler", 0);
	kt_set_gate(t, 0, 12, "ss_handler", 0);
	kt_set_gate(t, 0, 13, "gp_handler", 0);
	kt_set_gate(t, 0, 14, "pf_handler", 0);
	kt_set_arg(t, 0, 1);
	vmm_exit e;
	char buf[256];
	int r = kt_run(t, 0, &e, 0);
	if (r != 0 || e.reason != VMM_EXIT_GUEST)
		fail_msg("XSAVE guest: r=%d %s; %s", r, kt_exit_str(&e, buf, sizeof buf), vmm_last_error());
	uint64_t code = e.u.guest.code;
	if (code == 0x6000) {
		/* The guest saw no XSAVE or AVX: only right if this CPU has neither. */
		unsigned a, b, c, d;
		__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
		if ((c & (1u << 26)) && (c & (1u << 28)))
			fail_msg("the host CPU has XSAVE and AVX, the guest's CPUID does not");
		print_message("no XSAVE/AVX on this CPU: nothing to test\n");
		skip();
	}
	if ((code & ~0xffull) == 0xbad00)
		fail_msg("XSAVE check %u failed: got %#" PRIx64 ", want %#" PRIx64
			 " (last fault: vector %" PRIu64 " error %#" PRIx64 " rip %#" PRIx64 " cr2 %#" PRIx64 ", %" PRIu64
			 " faults; XCR0 at start %#" PRIx64 ")",
			 (unsigned)(code & 0xff), kt_read_u64(t, kt_sym(t, "got")), kt_read_u64(t, kt_sym(t, "want")),
			 kt_read_u64(t, kt_sym(t, "fault_vec")), kt_read_u64(t, kt_sym(t, "fault_err")),
			 kt_read_u64(t, kt_sym(t, "fault_rip")), kt_read_u64(t, kt_sym(t, "fault_cr2")),
			 kt_read_u64(t, kt_sym(t, "fault_count")), kt_read_u64(t, kt_sym(t, "xcr0_initial")));
	assert_int_equal(code, 0x600d);
	/* Every fault the guest provoked arrived (1 #UD, 8 #GP, 2 #PF, 1 #NM). */
	assert_int_equal(kt_read_u64(t, kt_sym(t, "fault_count")), 12);
}

/* The fix-up table called directly on a real vCPU that is not running: XSETBV (which
 * KVM's emulator completes by itself on our hosts, so the guest above never reaches the
 * table with it) and the XSAVE-family forms the table must decline. */
static uint64_t xcr0_of(vmm_vcpu *v)
{
	struct kvm_xcrs x;
	memset(&x, 0, sizeof x);
	assert_true(vmm_kvm_get_xcrs(v->fd, &x) >= 0);
	for (uint32_t i = 0; i < x.nr_xcrs; i++)
		if (x.xcrs[i].xcr == 0)
			return x.xcrs[i].value;
	fail_msg("no XCR0");
	return 0;
}

/* The exception now pending for injection (-1: none), cleared afterwards. */
static int take_exception(vmm_vcpu *v, uint32_t *err)
{
	struct kvm_vcpu_events ev;
	assert_true(vmm_kvm_get_vcpu_events(v->fd, &ev) >= 0);
	int vec = ev.exception.injected ? ev.exception.nr : -1;
	*err = ev.exception.has_error_code ? ev.exception.error_code : ~0u;
	memset(&ev.exception, 0, sizeof ev.exception);
	ev.flags = 0;
	assert_true(vmm_kvm_set_vcpu_events(v->fd, &ev) >= 0);
	return vec;
}

static void set_state(vmm_vcpu *v, uint64_t rax, uint64_t rcx, uint64_t rdx, bool osxsave)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	assert_true(vmm_kvm_get_regs(v->fd, &r) >= 0);
	assert_true(vmm_kvm_get_sregs(v->fd, &s) >= 0);
	r.rax = rax;
	r.rcx = rcx;
	r.rdx = rdx;
	r.rip = 0x100000;
	s.cr4 = osxsave ? s.cr4 | (1ull << 18) : s.cr4 & ~(1ull << 18);
	assert_true(vmm_kvm_set_regs(v->fd, &r) >= 0);
	assert_true(vmm_kvm_set_sregs(v->fd, &s) >= 0);
}

static uint64_t rip_of(vmm_vcpu *v)
{
	struct kvm_regs r;
	assert_true(vmm_kvm_get_regs(v->fd, &r) >= 0);
	return r.rip;
}

static void test_fixup_table_direct(void **state)
{
	unsigned a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
	if (!(c & (1u << 26)) || !(c & (1u << 28))) {
		print_message("no XSAVE/AVX on this CPU: nothing to test\n");
		skip();
	}
	kt_opts o = { .guest = NULL, .cpl = 0 };
	kt_vm *t = kt_create(state, &o);
	vmm_vcpu *v = t->vcpu[0];
	static const uint8_t xsetbv[] = { 0x0f, 0x01, 0xd1 };
	uint32_t err;

	/* A valid XCR0: set, RIP past the instruction, no exception. */
	set_state(v, 7, 0, 0, true);
	assert_int_equal(vmm_fixup_emulation(v, xsetbv, sizeof xsetbv, 0x100000), 1);
	assert_int_equal(xcr0_of(v), 7);
	assert_int_equal(rip_of(v), 0x100003);
	assert_int_equal(take_exception(v, &err), -1);
	/* Invalid values and XCR index: #GP(0), RIP and XCR0 unchanged. */
	const uint64_t bad[][2] = { { 5, 0 } /* AVX without SSE */, { 6, 0 } /* no x87 */, { 7, 1 } /* XCR1 */ };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		set_state(v, bad[i][0], bad[i][1], 0, true);
		assert_int_equal(vmm_fixup_emulation(v, xsetbv, sizeof xsetbv, 0x100000), 1);
		assert_int_equal(take_exception(v, &err), 13);
		assert_int_equal(err, 0);
		assert_int_equal(rip_of(v), 0x100000);
		assert_int_equal(xcr0_of(v), 7);
	}
	/* Without CR4.OSXSAVE: #UD, no error code. */
	set_state(v, 3, 0, 0, false);
	assert_int_equal(vmm_fixup_emulation(v, xsetbv, sizeof xsetbv, 0x100000), 1);
	assert_int_equal(take_exception(v, &err), 6);
	assert_int_equal(err, ~0u);
	assert_int_equal(xcr0_of(v), 7);

	/* Not completed (the emulation failure is reported): XSAVEC, XSAVES, XRSTORS (state
	 * KVM does not expose), the forms without REX.W, 32-bit addressing, and prefixes
	 * that make 0f ae another instruction. */
	static const uint8_t declined[][5] = {
		{ 4, 0x48, 0x0f, 0xc7, 0x27 },       /* xsavec64 (%rdi) */
		{ 4, 0x48, 0x0f, 0xc7, 0x2f },       /* xsaves64 (%rdi) */
		{ 4, 0x48, 0x0f, 0xc7, 0x1f },       /* xrstors64 (%rdi) */
		{ 3, 0x0f, 0xae, 0x27 },             /* xsave (%rdi) */
		{ 3, 0x0f, 0xae, 0x2f },             /* xrstor (%rdi) */
		{ 4, 0x66, 0x0f, 0xae, 0x37 },       /* clwb (%rdi) */
		{ 4, 0x48, 0x0f, 0xae, 0xf0 },       /* mfence-like: no memory operand */
	};
	set_state(v, ~0ull, 0, ~0ull, true);
	for (size_t i = 0; i < sizeof declined / sizeof declined[0]; i++) {
		assert_int_equal(vmm_fixup_emulation(v, declined[i] + 1, declined[i][0], 0x100000), 0);
		assert_int_equal(rip_of(v), 0x100000);
		assert_int_equal(take_exception(v, &err), -1);
	}
	static const uint8_t addr32[] = { 0x67, 0x48, 0x0f, 0xae, 0x27 }; /* xsave64 (%edi) */
	assert_int_equal(vmm_fixup_emulation(v, addr32, sizeof addr32, 0x100000), 0);
}

/* The interrupt now pending for injection (-1: none), cleared afterwards. */
static int take_interrupt(vmm_vcpu *v)
{
	struct kvm_vcpu_events ev;
	assert_true(vmm_kvm_get_vcpu_events(v->fd, &ev) >= 0);
	int nr = ev.interrupt.injected ? ev.interrupt.nr : -1;
	memset(&ev.interrupt, 0, sizeof ev.interrupt);
	ev.flags = 0;
	assert_true(vmm_kvm_set_vcpu_events(v->fd, &ev) >= 0);
	return nr;
}

#define CR0_MP (1ull << 1)
#define CR0_TS (1ull << 3)
#define CR0_NE (1ull << 5)

/* RIP = 0x100000, CPL 0 or 3 (CS and SS RPL/DPL), CR0 MP/TS/NE as given, and the x87
 * status word's ES (error summary) bit with an unmasked invalid-operation exception. */
static void set_x87_state(vmm_vcpu *v, unsigned cpl, uint64_t cr0_bits, bool pending)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_fpu f;
	assert_true(vmm_kvm_get_regs(v->fd, &r) >= 0);
	assert_true(vmm_kvm_get_sregs(v->fd, &s) >= 0);
	assert_true(vmm_kvm_get_fpu(v->fd, &f) >= 0);
	r.rip = 0x100000;
	s.cr0 = (s.cr0 & ~(CR0_MP | CR0_TS | CR0_NE)) | cr0_bits;
	s.cs.selector = (uint16_t)((s.cs.selector & ~3u) | cpl);
	s.cs.dpl = (uint8_t)cpl;
	s.ss.selector = (uint16_t)((s.ss.selector & ~3u) | cpl);
	s.ss.dpl = (uint8_t)cpl;
	f.fcw = pending ? 0x37e : 0x37f; /* IM unmasked when an exception is pending */
	f.fsw = pending ? 0x81 : 0;      /* ES | IE */
	assert_true(vmm_kvm_set_regs(v->fd, &r) >= 0);
	assert_true(vmm_kvm_set_sregs(v->fd, &s) >= 0);
	assert_true(vmm_kvm_set_fpu(v->fd, &f) >= 0);
}

/* The INT3, INT n and FWAIT entries of the fix-up table and its decline of popcnt,
 * called directly on a vCPU that is not running, so that every host (bare metal, where
 * the guest in test_fixups never reaches the table, included) checks them: RIP after a
 * completion, the event injected, and the branches FWAIT takes (#NM with CR0.TS and MP,
 * #MF for a pending x87 exception with CR0.NE, nothing otherwise). */
static void test_fixup_table_int_fwait(void **state)
{
	kt_opts o = { .guest = NULL, .cpl = 0 };
	kt_vm *t = kt_create(state, &o);
	vmm_vcpu *v = t->vcpu[0];
	static const uint8_t int3[] = { 0xcc };
	static const uint8_t int21[] = { 0xcd, 0x21 };
	static const uint8_t fwait[] = { 0x9b };
	uint32_t err;

	/* INT3 at CPL 0: a trap, RIP after it, #BP without an error code. KVM_GET_VCPU_EVENTS
	 * does not report a pending software exception (#BP), so the vCPU runs and the
	 * library's fault IDT shows what was delivered and with which return address. */
	set_x87_state(v, 0, CR0_MP | CR0_NE, false);
	assert_int_equal(vmm_fixup_emulation(v, int3, sizeof int3, 0x100000), 1);
	assert_int_equal(rip_of(v), 0x100001);
	/* (No take_interrupt here: its KVM_SET_VCPU_EVENTS would drop the hidden #BP.) */
	vmm_exit e;
	char buf[256];
	int rc = kt_run(t, 0, &e, 0);
	if (rc != 0 || e.reason != VMM_EXIT_FAULT || e.u.fault.vector != 3)
		fail_msg("after the INT3 fix-up: expected FAULT #BP, got r=%d %s; %s", rc,
			 kt_exit_str(&e, buf, sizeof buf), vmm_last_error());
	assert_int_equal(e.u.fault.rip, 0x100001);
	assert_int_equal(e.u.fault.has_error_code, 0);
	assert_int_equal(e.u.fault.cs & 3, 0);
	/* INT n at CPL 0: RIP + 2, the vector injected as an interrupt, no exception. */
	set_x87_state(v, 0, CR0_MP | CR0_NE, false);
	assert_int_equal(vmm_fixup_emulation(v, int21, sizeof int21, 0x100000), 1);
	assert_int_equal(rip_of(v), 0x100002);
	assert_int_equal(take_interrupt(v), 0x21);
	assert_int_equal(take_exception(v, &err), -1);
	/* CD without its vector byte: not INT n. */
	set_x87_state(v, 0, CR0_MP | CR0_NE, false);
	assert_int_equal(vmm_fixup_emulation(v, int21, 1, 0x100000), 0);
	assert_int_equal(rip_of(v), 0x100000);
	/* At CPL 3 INT3 and INT n are declined (privilege checks are not modelled). */
	set_x87_state(v, 3, CR0_MP | CR0_NE, false);
	assert_int_equal(vmm_fixup_emulation(v, int3, sizeof int3, 0x100000), 0);
	assert_int_equal(vmm_fixup_emulation(v, int21, sizeof int21, 0x100000), 0);
	assert_int_equal(rip_of(v), 0x100000);
	assert_int_equal(take_exception(v, &err), -1);
	assert_int_equal(take_interrupt(v), -1);

	/* FWAIT with nothing pending: RIP + 1, at CPL 0 and at CPL 3, and with CR0.TS but
	 * not MP (WAIT ignores TS then). */
	const struct {
		unsigned cpl;
		uint64_t cr0;
	} quiet[] = { { 0, CR0_MP | CR0_NE }, { 3, CR0_MP | CR0_NE }, { 0, CR0_TS | CR0_NE } };
	for (size_t i = 0; i < sizeof quiet / sizeof quiet[0]; i++) {
		set_x87_state(v, quiet[i].cpl, quiet[i].cr0, false);
		assert_int_equal(vmm_fixup_emulation(v, fwait, sizeof fwait, 0x100000), 1);
		assert_int_equal(rip_of(v), 0x100001);
		assert_int_equal(take_exception(v, &err), -1);
	}
	/* CR0.TS and MP: #NM (a fault: RIP stays), even with an x87 exception pending. */
	set_x87_state(v, 0, CR0_MP | CR0_TS | CR0_NE, false);
	assert_int_equal(vmm_fixup_emulation(v, fwait, sizeof fwait, 0x100000), 1);
	assert_int_equal(take_exception(v, &err), 7);
	assert_int_equal(err, ~0u);
	assert_int_equal(rip_of(v), 0x100000);
	set_x87_state(v, 0, CR0_MP | CR0_TS | CR0_NE, true);
	assert_int_equal(vmm_fixup_emulation(v, fwait, sizeof fwait, 0x100000), 1);
	assert_int_equal(take_exception(v, &err), 7);
	assert_int_equal(rip_of(v), 0x100000);
	/* A pending unmasked x87 exception with CR0.NE: #MF, RIP stays. */
	set_x87_state(v, 0, CR0_MP | CR0_NE, true);
	assert_int_equal(vmm_fixup_emulation(v, fwait, sizeof fwait, 0x100000), 1);
	assert_int_equal(take_exception(v, &err), 16);
	assert_int_equal(err, ~0u);
	assert_int_equal(rip_of(v), 0x100000);
	/* Without CR0.NE (the legacy FERR# route, not modelled): no exception, RIP + 1. */
	set_x87_state(v, 0, CR0_MP, true);
	assert_int_equal(vmm_fixup_emulation(v, fwait, sizeof fwait, 0x100000), 1);
	assert_int_equal(take_exception(v, &err), -1);
	assert_int_equal(rip_of(v), 0x100001);

	/* popcnt (register and memory forms) is not in the table: declined, nothing done;
	 * run.c then reports the failure (test_emulation_failure_report). */
	static const uint8_t popcnt[][6] = {
		{ 5, 0xf3, 0x48, 0x0f, 0xb8, 0xc1 }, /* popcnt %rcx, %rax */
		{ 5, 0xf3, 0x48, 0x0f, 0xb8, 0x06 }, /* popcnt (%rsi), %rax */
	};
	set_x87_state(v, 0, CR0_MP | CR0_NE, false);
	for (size_t i = 0; i < sizeof popcnt / sizeof popcnt[0]; i++) {
		assert_int_equal(vmm_fixup_emulation(v, popcnt[i] + 1, popcnt[i][0], 0x100000), 0);
		assert_int_equal(rip_of(v), 0x100000);
		assert_int_equal(take_exception(v, &err), -1);
		assert_int_equal(take_interrupt(v), -1);
	}
}

/* The memory side of a completed XSAVE/XRSTOR (lib/cpu/x86/fixup_mem.c) on page tables
 * made for it, with the table called directly on a vCPU that is not running: data
 * written through the guest's mapping, accessed and dirty bits set like the CPU sets
 * them, and #PF with CR2 and the error code for a page that is absent, read-only
 * (CR0.WP) or a user page under SMAP. */
#define PT_BASE 0x400000ull  /* PML4, PDPT, PD, PT at PT_BASE + 0, 1, 2, 3 pages */
#define LA 0x40000000ull     /* 1 GiB: PML4[0], PDPT[1], PD[0], PT[i] = page i */
#define DATA 0x500000ull     /* page i of LA maps DATA + i * 4096 */
#define P_ 1ull
#define RW_ 2ull
#define US_ 4ull
#define A_ 0x20ull
#define D_ 0x40ull

static void set_mem_state(vmm_vcpu *v, uint64_t rdi, uint64_t cr0_or, uint64_t cr4_or, uint64_t rflags_or)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	assert_true(vmm_kvm_get_regs(v->fd, &r) >= 0);
	assert_true(vmm_kvm_get_sregs(v->fd, &s) >= 0);
	r.rdi = rdi;
	r.rax = 3; /* x87 | SSE */
	r.rdx = 0;
	r.rip = 0x100000;
	r.rflags = 2 | rflags_or;
	s.cr3 = PT_BASE;
	s.cr0 = (s.cr0 & ~(1ull << 16)) | cr0_or;
	s.cr4 = (s.cr4 & ~(1ull << 21)) | (1ull << 18) | cr4_or;
	assert_true(vmm_kvm_set_regs(v->fd, &r) >= 0);
	assert_true(vmm_kvm_set_sregs(v->fd, &s) >= 0);
	/* XCR0 = x87 | SSE (a new vCPU has x87 alone), so that MXCSR is saved too. */
	struct kvm_xcrs x;
	memset(&x, 0, sizeof x);
	x.nr_xcrs = 1;
	x.xcrs[0].value = 3;
	assert_true(vmm_kvm_set_xcrs(v->fd, &x) >= 0);
}

static uint64_t cr2_of(vmm_vcpu *v)
{
	struct kvm_sregs s;
	assert_true(vmm_kvm_get_sregs(v->fd, &s) >= 0);
	return s.cr2;
}

static void test_fixup_memory(void **state)
{
	unsigned a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
	if (!(c & (1u << 26))) {
		print_message("no XSAVE on this CPU: nothing to test\n");
		skip();
	}
	kt_opts o = { .guest = NULL, .cpl = 0 };
	kt_vm *t = kt_create(state, &o);
	vmm_vcpu *v = t->vcpu[0];
	static const uint8_t xsave[] = { 0x48, 0x0f, 0xae, 0x27 };  /* xsave64 (%rdi) */
	static const uint8_t xrstor[] = { 0x48, 0x0f, 0xae, 0x2f }; /* xrstor64 (%rdi) */
	uint64_t e;
	uint32_t err;
	/* Upper levels without A; PT: 0 writable, 1 read-only, 2 user + writable, 3 absent. */
	e = (PT_BASE + 0x1000) | P_ | RW_ | US_;
	kt_write(t, PT_BASE, &e, 8);
	e = (PT_BASE + 0x2000) | P_ | RW_ | US_;
	kt_write(t, PT_BASE + 0x1000 + 8, &e, 8);
	e = (PT_BASE + 0x3000) | P_ | RW_ | US_;
	kt_write(t, PT_BASE + 0x2000, &e, 8);
	const uint64_t pte[3] = { DATA | P_ | RW_, (DATA + 0x1000) | P_, (DATA + 0x2000) | P_ | RW_ | US_ };
	kt_write(t, PT_BASE + 0x3000, pte, sizeof pte);

	/* XSAVE to the writable page: done, RIP + 4, MXCSR and XSTATE_BV written, A on
	 * every level, D on the PTE only. */
	set_mem_state(v, LA, 0, 0, 0);
	assert_int_equal(vmm_fixup_emulation(v, xsave, sizeof xsave, 0x100000), 1);
	assert_int_equal(take_exception(v, &err), -1);
	assert_int_equal(rip_of(v), 0x100004);
	uint32_t mxcsr;
	kt_read(t, DATA + 24, &mxcsr, 4);
	assert_int_equal(mxcsr, 0x1f80);
	assert_int_equal(kt_read_u64(t, DATA + 512) & ~3ull, 0);
	assert_int_equal(kt_read_u64(t, PT_BASE) & (A_ | D_), A_);
	assert_int_equal(kt_read_u64(t, PT_BASE + 0x1000 + 8) & (A_ | D_), A_);
	assert_int_equal(kt_read_u64(t, PT_BASE + 0x2000) & (A_ | D_), A_);
	assert_int_equal(kt_read_u64(t, PT_BASE + 0x3000) & (A_ | D_), A_ | D_);

	/* XSAVE to the read-only page: without CR0.WP ring 0 may write it; with WP it is
	 * #PF(P|W) with CR2, nothing written, RIP unchanged. */
	set_mem_state(v, LA + 0x1000, 1ull << 16, 0, 0);
	assert_int_equal(vmm_fixup_emulation(v, xsave, sizeof xsave, 0x100000), 1);
	assert_int_equal(take_exception(v, &err), 14);
	assert_int_equal(err, 3);
	assert_int_equal(cr2_of(v), LA + 0x1000);
	assert_int_equal(rip_of(v), 0x100000);
	assert_int_equal(kt_read_u64(t, DATA + 0x1000 + 24), 0);
	set_mem_state(v, LA + 0x1000, 0, 0, 0);
	assert_int_equal(vmm_fixup_emulation(v, xsave, sizeof xsave, 0x100000), 1);
	assert_int_equal(take_exception(v, &err), -1);
	kt_read(t, DATA + 0x1000 + 24, &mxcsr, 4);
	assert_int_equal(mxcsr, 0x1f80);

	/* XRSTOR reads the read-only page (A set, D not): XMM0 comes from it. */
	uint8_t area[576] = { 0 };
	for (int i = 0; i < 16; i++)
		area[160 + i] = (uint8_t)(0x30 + i);
	mxcsr = 0x1f80;
	memcpy(area + 24, &mxcsr, 4);
	area[512] = 2; /* XSTATE_BV: SSE */
	kt_write(t, DATA + 0x1000, area, sizeof area);
	e = (DATA + 0x1000) | P_;
	kt_write(t, PT_BASE + 0x3000 + 8, &e, 8);
	set_mem_state(v, LA + 0x1000, 1ull << 16, 0, 0);
	assert_int_equal(vmm_fixup_emulation(v, xrstor, sizeof xrstor, 0x100000), 1);
	assert_int_equal(take_exception(v, &err), -1);
	assert_int_equal(rip_of(v), 0x100004);
	struct kvm_fpu fpu;
	assert_true(vmm_kvm_get_fpu(v->fd, &fpu) >= 0);
	assert_memory_equal(fpu.xmm[0], area + 160, 16);
	assert_int_equal(kt_read_u64(t, PT_BASE + 0x3000 + 8) & (A_ | D_), A_);

	/* Absent page: #PF with P clear (write: 2; read: 0). Misaligned: #GP(0). */
	set_mem_state(v, LA + 0x3000, 0, 0, 0);
	assert_int_equal(vmm_fixup_emulation(v, xsave, sizeof xsave, 0x100000), 1);
	assert_int_equal(take_exception(v, &err), 14);
	assert_int_equal(err, 2);
	assert_int_equal(cr2_of(v), LA + 0x3000);
	assert_int_equal(vmm_fixup_emulation(v, xrstor, sizeof xrstor, 0x100000), 1);
	assert_int_equal(take_exception(v, &err), 14);
	assert_int_equal(err, 0);
	set_mem_state(v, LA + 8, 0, 0, 0);
	assert_int_equal(vmm_fixup_emulation(v, xsave, sizeof xsave, 0x100000), 1);
	assert_int_equal(take_exception(v, &err), 13);
	assert_int_equal(err, 0);

	/* SMAP: a ring-0 access to a user page faults unless EFLAGS.AC is set. */
	struct kvm_sregs s;
	set_mem_state(v, LA + 0x2000, 0, 0, 0);
	assert_true(vmm_kvm_get_sregs(v->fd, &s) >= 0);
	s.cr4 |= 1ull << 21;
	if (vmm_kvm_set_sregs(v->fd, &s) < 0) {
		/* KVM refuses CR4.SMAP only when the CPU lacks it; then this part cannot run
		 * (a skip, which CI refuses), otherwise the refusal is a failure. */
		unsigned b7 = 0, a7, c7, d7;
		__asm__ volatile("cpuid" : "=a"(a7), "=b"(b7), "=c"(c7), "=d"(d7) : "a"(7), "c"(0));
		if (b7 & (1u << 20))
			fail_msg("KVM refused CR4.SMAP on a CPU that has SMAP");
		print_message("no SMAP on this CPU: SMAP part not run\n");
		skip();
	}
	assert_int_equal(vmm_fixup_emulation(v, xsave, sizeof xsave, 0x100000), 1);
	assert_int_equal(take_exception(v, &err), 14);
	assert_int_equal(err, 3);
	set_mem_state(v, LA + 0x2000, 0, 1ull << 21, 1ull << 18);
	assert_int_equal(vmm_fixup_emulation(v, xsave, sizeof xsave, 0x100000), 1);
	assert_int_equal(take_exception(v, &err), -1);
	assert_int_equal(rip_of(v), 0x100004);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_fixups, kt_teardown),
		cmocka_unit_test_teardown(test_emulation_failure_report, kt_teardown),
		cmocka_unit_test_teardown(test_fixup_table_int_fwait, kt_teardown),
		cmocka_unit_test_teardown(test_fixups_repeat, kt_teardown),
		cmocka_unit_test_teardown(test_int3_without_handler, kt_teardown),
		cmocka_unit_test_teardown(test_xsave_family, kt_teardown),
		cmocka_unit_test_teardown(test_fixup_table_direct, kt_teardown),
		cmocka_unit_test_teardown(test_fixup_memory, kt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
