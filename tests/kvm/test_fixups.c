/* Emulation fix-ups with a real CPL-0 guest (tests/guests/fixups.c). On nested-PVM hosts
 * KVM's emulator fails on INT3, INT n and FWAIT at ring 0 and the library completes them;
 * on bare-metal KVM they just run. Either way the guest's handlers must run with the
 * right return addresses. POPCNT at ring 0 is an emulation failure the library cannot
 * complete on those hosts (-EIO, VMM_EXIT_INTERNAL_ERROR, a message with RIP and bytes);
 * elsewhere it computes the right value. */
#include "harness/harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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
		/* The host ran popcnt natively. */
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

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_fixups, kt_teardown),
		cmocka_unit_test_teardown(test_fixups_repeat, kt_teardown),
		cmocka_unit_test_teardown(test_int3_without_handler, kt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
