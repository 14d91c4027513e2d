/* Guest reboot and power-off as VM-wide stops (tests/guests/platform_stop.c): the i8042's
 * "pulse reset" command and the ACPI S5 sleep write make vmm_vcpu_run return
 * VMM_EXIT_SYSTEM_EVENT with the reset / shutdown event on every vCPU (one running the
 * guest on a library thread is pulled out of it), the stop stays until
 * vmm_vm_clear_stop, and the first event wins. */
#include "harness/harness.h"

#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#define I8042_OK 0x8042u
#define AFTER 0xaf7e4u

static vmm_i8042 *kbc;
static vmm_power *power;

static int teardown(void **state)
{
	vmm_i8042_destroy(kbc);
	kbc = NULL;
	vmm_power_destroy(power);
	power = NULL;
	return kt_teardown(state);
}

/* vmm_vcpu_run returns a pending VM stop without entering the guest: runs every vCPU
 * once with a stop pending (each must return the event at once), then clears it. */
static void expect_pending_stop_returned(kt_vm *t)
{
	vmm_vm_request_stop(t->vm, VMM_SYSTEM_EVENT_RESET);
	for (unsigned i = 0; i < t->nvcpus; i++) {
		vmm_exit e;
		kt_check(vmm_vcpu_run(t->vcpu[i], &e), "vmm_vcpu_run");
		assert_int_equal(e.reason, VMM_EXIT_SYSTEM_EVENT);
		assert_int_equal(e.u.system.type, VMM_SYSTEM_EVENT_RESET);
	}
	vmm_vm_clear_stop(t->vm);
}

/* The exit that follows the guest's stop request must be the system event; the guest
 * must not have run on. */
static void expect_event(kt_vm *t, unsigned cpu, uint32_t event)
{
	vmm_exit e;
	int r = kt_run(t, cpu, &e, 0);
	char buf[256];
	if (r != 0 || e.reason != VMM_EXIT_SYSTEM_EVENT || e.u.system.type != event)
		fail_msg("vCPU %u: expected SYSTEM_EVENT %u, got r=%d %s (pending: %u)", cpu, event, r,
			 kt_exit_str(&e, buf, sizeof buf), vmm_vm_stop_requested(t->vm));
}

static void test_i8042_reset(void **state)
{
	kt_opts o = { .guest = "platform_stop", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	kt_check(vmm_i8042_create(&kbc, t->vm, NULL), "vmm_i8042_create");
	kt_set_arg(t, 0, 1);
	assert_int_equal(vmm_vm_stop_requested(t->vm), 0);

	expect_pending_stop_returned(t);

	kt_run_expect(t, 0, I8042_OK); /* status and self-test as Linux's probe sees them */
	expect_event(t, 0, VMM_SYSTEM_EVENT_RESET);
	assert_int_equal(vmm_vm_stop_requested(t->vm), VMM_SYSTEM_EVENT_RESET);
	/* Sticky: the machine does not run again by itself. */
	expect_event(t, 0, VMM_SYSTEM_EVENT_RESET);
	/* A later power-off request does not replace the reset. */
	vmm_vm_request_stop(t->vm, VMM_SYSTEM_EVENT_SHUTDOWN);
	assert_int_equal(vmm_vm_stop_requested(t->vm), VMM_SYSTEM_EVENT_RESET);
	/* Cleared, the vCPU continues where it was: right after the OUT. */
	vmm_vm_clear_stop(t->vm);
	assert_int_equal(vmm_vm_stop_requested(t->vm), 0);
	kt_run_expect(t, 0, AFTER);
	kt_run_expect(t, 0, 0);
}

struct seen {
	_Atomic uint32_t done;
	uint32_t reason, type;
	int err;
};

static int vcpu1_exit(void *ctx, vmm_vcpu *vcpu, const vmm_exit *e, int err)
{
	struct seen *s = ctx;
	(void)vcpu;
	s->err = err;
	s->reason = e ? (uint32_t)e->reason : 0;
	s->type = e && e->reason == VMM_EXIT_SYSTEM_EVENT ? e->u.system.type : 0;
	atomic_store(&s->done, 1);
	return 1; /* any exit ends the thread: only the VM-wide stop should come */
}

/* vCPU 1 spins in the guest on a library thread; vCPU 0 powers the machine off through
 * the ACPI sleep register: both stop with the shutdown event. */
static void test_acpi_poweroff_stops_every_vcpu(void **state)
{
	kt_opts o = { .guest = "platform_stop", .cpl = 3, .vcpus = 2 };
	kt_vm *t = kt_create(state, &o);
	kt_check(vmm_power_create(&power, t->vm, NULL), "vmm_power_create");
	kt_set_arg(t, 0, 2);
	kt_set_arg(t, 1, 3);
	expect_pending_stop_returned(t);

	struct seen s = { 0 };
	kt_check(vmm_vcpu_start(t->vcpu[1], vcpu1_exit, &s), "vmm_vcpu_start");
	/* Let vCPU 1 get into the guest, so the stop has to pull it out of KVM_RUN. */
	usleep(50 * 1000);
	assert_int_equal(atomic_load(&s.done), 0);

	expect_event(t, 0, VMM_SYSTEM_EVENT_SHUTDOWN);
	uint64_t deadline = kt_now_ms() + 10000;
	while (!atomic_load(&s.done) && kt_now_ms() < deadline)
		usleep(1000);
	bool stopped = atomic_load(&s.done);
	if (!stopped)
		vmm_vcpu_kick(t->vcpu[1]);
	int result = 0;
	kt_check(vmm_vcpu_join(t->vcpu[1], &result), "vmm_vcpu_join");
	assert_true(stopped);
	assert_int_equal(result, 1);
	assert_int_equal(s.err, 0);
	assert_int_equal(s.reason, VMM_EXIT_SYSTEM_EVENT);
	assert_int_equal(s.type, VMM_SYSTEM_EVENT_SHUTDOWN);
	assert_int_equal(vmm_vm_stop_requested(t->vm), VMM_SYSTEM_EVENT_SHUTDOWN);
}

/* The stop API itself, on a VM without guest code. */
static void test_stop_api(void **state)
{
	kt_opts o = { .guest = NULL, .cpl = 0 };
	kt_vm *t = kt_create(state, &o);
	vmm_vm_request_stop(t->vm, 0); /* no event: nothing */
	assert_int_equal(vmm_vm_stop_requested(t->vm), 0);
	vmm_vm_request_stop(NULL, VMM_SYSTEM_EVENT_RESET);
	assert_int_equal(vmm_vm_stop_requested(NULL), 0);
	vmm_vm_clear_stop(NULL);
	expect_pending_stop_returned(t);
	/* The first event wins until cleared. */
	vmm_vm_request_stop(t->vm, VMM_SYSTEM_EVENT_SHUTDOWN);
	vmm_vm_request_stop(t->vm, VMM_SYSTEM_EVENT_RESET);
	assert_int_equal(vmm_vm_stop_requested(t->vm), VMM_SYSTEM_EVENT_SHUTDOWN);
	vmm_vm_clear_stop(t->vm);
	assert_int_equal(vmm_vm_stop_requested(t->vm), 0);
	/* Requested while no vCPU runs: the next run returns it without entering the
	 * guest (the vCPU's RIP points at no code here). */
	vmm_vm_request_stop(t->vm, VMM_SYSTEM_EVENT_SHUTDOWN);
	expect_event(t, 0, VMM_SYSTEM_EVENT_SHUTDOWN);
	vmm_vm_clear_stop(t->vm);
	vmm_vm_request_stop(t->vm, VMM_SYSTEM_EVENT_RESET);
	assert_int_equal(vmm_vm_stop_requested(t->vm), VMM_SYSTEM_EVENT_RESET);
	expect_event(t, 0, VMM_SYSTEM_EVENT_RESET);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_i8042_reset, teardown),
		cmocka_unit_test_teardown(test_acpi_poweroff_stops_every_vcpu, teardown),
		cmocka_unit_test_teardown(test_stop_api, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
