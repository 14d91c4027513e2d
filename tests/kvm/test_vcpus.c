/* Several vCPUs and kicks with a real guest (tests/guests/vcpus.c). */
#include "harness/harness.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The same computations as the guest's, to check its results. */
static uint32_t count_primes(uint32_t below)
{
	uint32_t n = 0;
	for (uint32_t i = 2; i < below; i++) {
		bool prime = true;
		for (uint32_t d = 2; d * d <= i; d++)
			if (i % d == 0) {
				prime = false;
				break;
			}
		n += prime;
	}
	return n;
}

static uint32_t collatz_total(uint32_t upto)
{
	uint32_t total = 0;
	for (uint32_t i = 1; i <= upto; i++)
		for (uint64_t x = i; x != 1; total++)
			x = (x & 1) ? 3 * x + 1 : x / 2;
	return total;
}

struct vcpu_result {
	vmm_exit exit;
	int err;
	atomic_int exits;
};

/* Library-thread callback: stops at the first exit, recording it. */
static int stop_at_first_exit(void *ctx, vmm_vcpu *vcpu, const vmm_exit *exit, int err)
{
	struct vcpu_result *res = ctx;
	(void)vcpu;
	atomic_fetch_add(&res->exits, 1);
	res->err = err;
	if (exit)
		res->exit = *exit;
	return exit && exit->reason == VMM_EXIT_GUEST ? 1 : 2;
}

struct kicker {
	vmm_vcpu **vcpus;
	unsigned n;
	unsigned delay_ms;
	atomic_bool stop;
};

/* Kicks every vCPU after delay_ms unless told to stop first: a watchdog for threads. */
static void *kicker_main(void *arg)
{
	struct kicker *k = arg;
	uint64_t end = kt_now_ms() + k->delay_ms;
	while (!atomic_load(&k->stop) && kt_now_ms() < end)
		usleep(1000);
	if (!atomic_load(&k->stop))
		for (unsigned i = 0; i < k->n; i++)
			vmm_vcpu_kick(k->vcpus[i]);
	return NULL;
}

/* Both vCPUs compute, then each waits for the other's flag: only concurrent execution
 * lets both finish. */
static void test_two_vcpus_concurrently(void **state)
{
	kt_opts o = { .guest = "vcpus", .cpl = 3, .vcpus = 2 };
	kt_vm *t = kt_create(state, &o);
	kt_set_arg(t, 0, 0);
	kt_set_arg(t, 1, 1);
	static struct vcpu_result res[2];
	memset(res, 0, sizeof res);
	struct kicker k = { .vcpus = t->vcpu, .n = 2, .delay_ms = KT_TIMEOUT_MS };
	pthread_t kth;
	assert_int_equal(pthread_create(&kth, NULL, kicker_main, &k), 0);
	kt_check(vmm_vcpu_start(t->vcpu[0], stop_at_first_exit, &res[0]), "vmm_vcpu_start(0)");
	kt_check(vmm_vcpu_start(t->vcpu[1], stop_at_first_exit, &res[1]), "vmm_vcpu_start(1)");
	assert_int_equal(vmm_vcpu_start(t->vcpu[1], stop_at_first_exit, &res[1]), -EBUSY);
	int r0 = 0, r1 = 0;
	kt_check(vmm_vcpu_join(t->vcpu[0], &r0), "vmm_vcpu_join(0)");
	kt_check(vmm_vcpu_join(t->vcpu[1], &r1), "vmm_vcpu_join(1)");
	atomic_store(&k.stop, true);
	pthread_join(kth, NULL);
	char b0[256], b1[256];
	if (r0 != 1 || r1 != 1)
		fail_msg("vCPU 0: %s (err %d), vCPU 1: %s (err %d)",
			 kt_exit_str(&res[0].exit, b0, sizeof b0), res[0].err,
			 kt_exit_str(&res[1].exit, b1, sizeof b1), res[1].err);
	assert_int_equal(res[0].exit.u.guest.code, count_primes(50000));
	assert_int_equal(res[0].exit.u.guest.code, 5133);
	assert_int_equal(res[1].exit.u.guest.code, collatz_total(20000));
	assert_int_equal(atomic_load(&res[0].exits), 1);
	assert_int_equal(atomic_load(&res[1].exits), 1);
	/* Both flags are up in the shared memory. */
	assert_int_equal(kt_read_u64(t, kt_sym(t, "flags")), 0x100000001ull);
	/* Joining twice is an error. */
	assert_int_equal(vmm_vcpu_join(t->vcpu[0], NULL), -EINVAL);
}

struct delayed_kick {
	vmm_vcpu *vcpu;
	unsigned delay_ms;
};

static void *delayed_kick_main(void *arg)
{
	struct delayed_kick *d = arg;
	usleep(d->delay_ms * 1000);
	vmm_vcpu_kick(d->vcpu);
	return NULL;
}

/* A guest spinning at CPL 3 (no exits at all) is stopped by a kick from another
 * thread; run again, it continues where it was and picks up a value from memory. */
static void test_kick(void **state)
{
	kt_opts o = { .guest = "vcpus", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	kt_set_arg(t, 0, 2);
	struct delayed_kick d = { t->vcpu[0], 50 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, delayed_kick_main, &d), 0);
	vmm_exit e;
	char buf[256];
	uint64_t t0 = kt_now_ms();
	int r = vmm_vcpu_run(t->vcpu[0], &e);
	pthread_join(th, NULL);
	if (r != 0 || e.reason != VMM_EXIT_KICK)
		fail_msg("expected KICK, got r=%d %s", r, kt_exit_str(&e, buf, sizeof buf));
	assert_true(kt_now_ms() - t0 >= 40);
	/* It was spinning in guest_main: RIP inside the image. */
	vmm_regs regs;
	kt_check(vmm_vcpu_get_regs(t->vcpu[0], &regs), "vmm_vcpu_get_regs");
	assert_true(regs.rip >= t->elf.low && regs.rip < t->elf.high);

	uint32_t release = 0x77;
	kt_write(t, kt_sym(t, "release"), &release, sizeof release);
	kt_run_expect(t, 0, 0x77);
}

/* A kick before run is not lost; several coalesce into one. */
static void test_kick_before_run(void **state)
{
	kt_opts o = { .guest = "vcpus", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	kt_set_arg(t, 0, 2);
	vmm_vcpu_kick(t->vcpu[0]);
	vmm_vcpu_kick(t->vcpu[0]);
	/* Guarded: if the kicks were lost, the guest would spin until this kicker. */
	struct kicker k = { .vcpus = t->vcpu, .n = 1, .delay_ms = 5000 };
	pthread_t kth;
	assert_int_equal(pthread_create(&kth, NULL, kicker_main, &k), 0);
	vmm_exit e;
	char buf[256];
	uint64_t t0 = kt_now_ms();
	int r = vmm_vcpu_run(t->vcpu[0], &e);
	uint64_t elapsed = kt_now_ms() - t0;
	atomic_store(&k.stop, true);
	pthread_join(kth, NULL);
	if (r != 0 || e.reason != VMM_EXIT_KICK)
		fail_msg("expected KICK, got r=%d %s", r, kt_exit_str(&e, buf, sizeof buf));
	if (elapsed >= 2500)
		fail_msg("the kicks before run were lost: run returned only after %llu ms",
			 (unsigned long long)elapsed);
	/* The second kick coalesced: the next run reaches the guest's exit. */
	uint32_t release = 0x55;
	kt_write(t, kt_sym(t, "release"), &release, sizeof release);
	r = vmm_vcpu_run(t->vcpu[0], &e);
	if (r != 0 || e.reason != VMM_EXIT_GUEST || e.u.guest.code != 0x55)
		fail_msg("expected GUEST 0x55, got r=%d %s", r, kt_exit_str(&e, buf, sizeof buf));
}

/* A kick to a vCPU on a library thread reaches the callback, which decides to stop. */
static void test_kick_library_thread(void **state)
{
	kt_opts o = { .guest = "vcpus", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	kt_set_arg(t, 0, 2);
	static struct vcpu_result res;
	memset(&res, 0, sizeof res);
	kt_check(vmm_vcpu_start(t->vcpu[0], stop_at_first_exit, &res), "vmm_vcpu_start");
	usleep(20000);
	vmm_vcpu_kick(t->vcpu[0]);
	int result = 0;
	kt_check(vmm_vcpu_join(t->vcpu[0], &result), "vmm_vcpu_join");
	assert_int_equal(result, 2);
	assert_int_equal(res.exit.reason, VMM_EXIT_KICK);
	assert_int_equal(res.err, 0);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_two_vcpus_concurrently, kt_teardown),
		cmocka_unit_test_teardown(test_kick, kt_teardown),
		cmocka_unit_test_teardown(test_kick_before_run, kt_teardown),
		cmocka_unit_test_teardown(test_kick_library_thread, kt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
