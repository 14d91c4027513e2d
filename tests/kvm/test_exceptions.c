/* Exceptions from a real guest (tests/guests/exceptions.c): with the library's fault IDT
 * each one ends vmm_vcpu_run with VMM_EXIT_FAULT carrying the right vector, RIP (compared
 * with the address of the faulting instruction's label), error code, CR2 and CS; with
 * a guest handler installed by the host, the guest handles #UD itself. Also the HLT and
 * SHUTDOWN (triple fault) exits of vmm_vcpu_run. */
#include "harness/harness.h"

#include <stdio.h>

struct fault_case {
	uint64_t arg;
	uint32_t vector;
	const char *label;     /* RIP in the exception frame */
	bool has_error_code;
	uint64_t error_code;   /* at CPL 3; at CPL 0 the U/S bit (2) of a #PF is clear */
};

static const struct fault_case cases[] = {
	{ 0, 6, "ud_insn", false, 0 },
	{ 1, 0, "de_insn", false, 0 },
	{ 2, 14, "pf_insn", true, 0x6 }, /* not present, write, user */
	{ 3, 13, "gp_insn", true, 0 },
	{ 4, 3, "bp_after", false, 0 },  /* a trap: RIP after the int3 */
};

static void run_fault(void **state, const struct fault_case *c, unsigned cpl)
{
	kt_opts o = { .guest = "exceptions", .cpl = cpl };
	kt_vm *t = kt_create(state, &o);
	kt_set_arg(t, 0, c->arg);
	vmm_exit e;
	char buf[256];
	int r = kt_run(t, 0, &e, 0);
	if (r != 0 || e.reason != VMM_EXIT_FAULT || e.u.fault.vector != c->vector)
		fail_msg("case %s at CPL %u: r=%d %s; %s", c->label, cpl, r,
			 kt_exit_str(&e, buf, sizeof buf), vmm_last_error());
	assert_int_equal(e.u.fault.rip, kt_sym(t, c->label));
	assert_int_equal(e.u.fault.cs & 3, cpl);
	assert_int_equal(!!e.u.fault.has_error_code, c->has_error_code);
	if (c->has_error_code) {
		uint64_t want = c->error_code;
		if (c->vector == 14 && cpl == 0)
			want &= ~4ull;
		assert_int_equal(e.u.fault.error_code, want);
	}
	if (c->vector == 14)
		assert_int_equal(e.u.fault.cr2, 0x4000000000ull);
	kt_destroy(t);
	*state = NULL;
}

static void test_faults_cpl3(void **state)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		run_fault(state, &cases[i], 3);
}

/* Ring 0 is interpreted on nested hosts: only the two that differ from CPL 3. */
static void test_faults_cpl0(void **state)
{
	run_fault(state, &cases[0], 0);
	run_fault(state, &cases[2], 0);
}

/* The guest's own #UD handler (a CPL-0 C function, installed by the host) runs for two
 * ud2s at CPL 3, counts them, records the RIP of the second and skips both. */
static void test_guest_handler(void **state)
{
	kt_opts o = { .guest = "exceptions", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	kt_set_arg(t, 0, 5);
	kt_set_gate(t, 0, 6, "ud_handler", 0);
	kt_run_expect(t, 0, 2);
	assert_int_equal(kt_read_u64(t, kt_sym(t, "ud_count")), 2);
	assert_int_equal(kt_read_u64(t, kt_sym(t, "ud_last_rip")), kt_sym(t, "ud_b"));
}

/* HLT with no in-kernel irqchip (nothing can wake the vCPU in KVM) ends vmm_vcpu_run
 * with VMM_EXIT_HLT, RIP just past the one-byte HLT; run again, the vCPU goes on with
 * the next instruction. A few code bytes at CPL 0 (HLT is privileged). */
static void test_hlt_exit(void **state)
{
	kt_opts o = { .guest = NULL, .cpl = 0, .irqchip = VMM_IRQCHIP_NONE };
	kt_vm *t = kt_create(state, &o);
	const uint64_t code = 0x300000;
	static const uint8_t insns[] = {
		0xb8, 0x34, 0x12, 0x00, 0x00, /* mov $0x1234, %eax */
		0xf4,                         /* hlt                (code + 5) */
		0xb8, 0x42, 0x00, 0x00, 0x00, /* mov $0x42, %eax    (code + 6) */
		0xe7, 0xf4,                   /* out %eax, $0xf4: VMM_EXIT_GUEST 0x42 */
		0x0f, 0x0b,                   /* ud2: never reached */
	};
	kt_write(t, code, insns, sizeof insns);
	vmm_regs regs;
	kt_check(vmm_vcpu_get_regs(t->vcpu[0], &regs), "vmm_vcpu_get_regs");
	regs.rip = code;
	regs.rax = 0;
	kt_check(vmm_vcpu_set_regs(t->vcpu[0], &regs), "vmm_vcpu_set_regs");

	vmm_exit e;
	char buf[256];
	int r = kt_run(t, 0, &e, 0);
	if (r != 0 || e.reason != VMM_EXIT_HLT)
		fail_msg("expected HLT, got r=%d %s; %s", r, kt_exit_str(&e, buf, sizeof buf),
			 vmm_last_error());
	kt_check(vmm_vcpu_get_regs(t->vcpu[0], &regs), "vmm_vcpu_get_regs");
	assert_int_equal(regs.rip, code + 6);
	assert_int_equal(regs.rax & 0xffffffff, 0x1234); /* the guest did run up to the HLT */

	/* Resumes after the HLT, not at it (no second HLT exit). */
	kt_run_expect(t, 0, 0x42);
}

/* Without the fault-reporting IDT the IDT's gates are not present: #UD -> #GP -> #DF ->
 * triple fault, and vmm_vcpu_run returns VMM_EXIT_SHUTDOWN (not a FAULT, not the
 * guest's 0xbad return, not an error). KVM leaves the registers undefined after a
 * shutdown (SVM resets the vCPU), so only the exit is checked. */
static void run_shutdown(void **state, unsigned cpl)
{
	kt_opts o = { .guest = "exceptions", .cpl = cpl, .no_fault_idt = true };
	kt_vm *t = kt_create(state, &o);
	kt_set_arg(t, 0, 0); /* ud2 */
	vmm_exit e;
	char buf[256];
	int r = kt_run(t, 0, &e, 0);
	if (r != 0 || e.reason != VMM_EXIT_SHUTDOWN)
		fail_msg("CPL %u: expected SHUTDOWN, got r=%d %s; %s", cpl, r,
			 kt_exit_str(&e, buf, sizeof buf), vmm_last_error());
	kt_destroy(t);
	*state = NULL;
}

static void test_shutdown_exit(void **state)
{
	run_shutdown(state, 3);
	run_shutdown(state, 0);
}

/* Bad gates are refused. */
static void test_gate_errors(void **state)
{
	kt_opts o = { .guest = "exceptions", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	assert_int_equal(vmm_vcpu_set_idt_gate(NULL, 6, 0x100000, 0), -EINVAL);
	assert_int_equal(vmm_vcpu_set_idt_gate(t->vcpu[0], 6, 0x100000, 4), -EINVAL);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_faults_cpl3, kt_teardown),
		cmocka_unit_test_teardown(test_faults_cpl0, kt_teardown),
		cmocka_unit_test_teardown(test_guest_handler, kt_teardown),
		cmocka_unit_test_teardown(test_gate_errors, kt_teardown),
		cmocka_unit_test_teardown(test_hlt_exit, kt_teardown),
		cmocka_unit_test_teardown(test_shutdown_exit, kt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
