/* Exceptions from a real guest (tests/guests/exceptions.c): with the library's fault IDT
 * each one ends vmm_vcpu_run with VMM_EXIT_FAULT carrying the right vector, RIP (compared
 * with the address of the faulting instruction's label), error code, CR2 and CS; with
 * a guest handler installed by the host, the guest handles #UD itself. */
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
