/* Shared by the tests/kvm/test_hostile_*.c programs: "the neighbour", a second VM in
 * this process whose driver behaves, running on its own vCPU thread while the test's
 * first VM misbehaves. Its device is attached to the first VM's event loop, so a broken
 * device and a healthy one share the loop thread (the way an application serves many
 * VMs from one loop).
 *
 * The neighbour's guest counts its completed rounds in a 64-bit `good_ok`, failed ones
 * in `good_bad`, and stops when the host sets `stop` (all guest globals); it then exits
 * with the code the test expects. */
#ifndef TEST_HOSTILE_COMMON_H
#define TEST_HOSTILE_COMMON_H

#include "harness/virtio_harness.h"

#include <linux/virtio_config.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct hn {
	void *state;           /* kt_create state */
	kt_vm *vm;
	vmm_virtio_mmio *t;    /* on the owner's loop */
	pthread_t th;
	bool running;
	atomic_bool done, abort;
	int r;
	vmm_exit exit;
	uint64_t ok_gpa, bad_gpa, stop_gpa;
};

static inline void *hn_main(void *arg)
{
	struct hn *n = arg;
	for (;;) {
		vmm_exit e;
		memset(&e, 0, sizeof e);
		int r = vmm_vcpu_run(n->vm->vcpu[0], &e);
		if (r != 0 || e.reason != VMM_EXIT_KICK || atomic_load(&n->abort)) {
			n->r = r;
			n->exit = e;
			break;
		}
	}
	atomic_store(&n->done, true);
	return NULL;
}

/* Creates the neighbour VM from `o`, attaches `dev` at slot `slot` on owner's loop (the
 * loop thread paused meanwhile), and starts its vCPU with `arg`. dev is the
 * transport's on success, destroyed on failure. */
static inline void hn_start(struct hn *n, const kt_opts *o, vt_env *owner, vmm_virtio_device *dev, unsigned slot,
			    uint64_t arg)
{
	n->vm = kt_create(&n->state, o);
	vmm_virtio_mmio_opts mo = VMM_VIRTIO_MMIO_OPTS_INIT;
	mo.base = VIO_TEST_BASE(slot);
	mo.gsi = VIO_TEST_GSI(slot);
	bool was = owner->running;
	vt_stop_loop(owner);
	int r = vmm_virtio_mmio_attach(&n->t, n->vm->vm, owner->loop, &mo, dev);
	if (r)
		vmm_virtio_device_destroy(dev);
	if (was)
		vt_start_loop(owner);
	kt_check(r, "vmm_virtio_mmio_attach (neighbour)");
	n->ok_gpa = kt_sym(n->vm, "good_ok");
	n->bad_gpa = kt_sym(n->vm, "good_bad");
	n->stop_gpa = kt_sym(n->vm, "stop");
	kt_set_arg(n->vm, 0, arg);
	assert_int_equal(pthread_create(&n->th, NULL, hn_main, n), 0);
	n->running = true;
}

static inline uint64_t hn_read(struct hn *n, uint64_t gpa)
{
	uint64_t v = 0;
	(void)vmm_mem_read(n->vm->mem, gpa, &v, sizeof v);
	return v;
}

/* Ends the neighbour's guest (it sees `stop`), or its vCPU if it does not listen. No
 * assertions: also the teardown's path. Returns true if the guest stopped itself. */
static inline bool hn_stop(struct hn *n)
{
	if (!n->running)
		return true;
	uint64_t one = 1;
	(void)vmm_mem_write(n->vm->mem, n->stop_gpa, &one, sizeof one);
	uint64_t end = kt_now_ms() + 5000;
	while (!atomic_load(&n->done) && kt_now_ms() < end)
		usleep(1000);
	bool clean = atomic_load(&n->done);
	atomic_store(&n->abort, true);
	while (!atomic_load(&n->done)) {
		vmm_vcpu_kick(n->vm->vcpu[0]);
		usleep(10000);
	}
	pthread_join(n->th, NULL);
	n->running = false;
	return clean;
}

/* The neighbour completes at least `rounds` more rounds within 5 s, none failed, and its
 * device is healthy. */
static inline void hn_progress(struct hn *n, uint64_t rounds, const char *when)
{
	uint64_t start = hn_read(n, n->ok_gpa), end = kt_now_ms() + 5000, now;
	while ((now = hn_read(n, n->ok_gpa)) < start + rounds && kt_now_ms() < end && !atomic_load(&n->done))
		usleep(500);
	if (now < start + rounds)
		fail_msg("the neighbour VM stalled %s: %llu rounds, %llu wanted (exited: %d)", when,
			 (unsigned long long)(now - start), (unsigned long long)rounds, atomic_load(&n->done));
	assert_int_equal(hn_read(n, n->bad_gpa), 0);
	assert_false(vmm_virtio_mmio_status(n->t) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* Checks the neighbour still works, stops it, and checks its exit `code`. */
static inline void hn_finish(struct hn *n, uint64_t code)
{
	hn_progress(n, 10, "at the end");
	uint64_t ok = hn_read(n, n->ok_gpa);
	assert_true(hn_stop(n));
	char buf[128];
	if (n->r != 0 || n->exit.reason != VMM_EXIT_GUEST || n->exit.u.guest.code != code)
		fail_msg("neighbour VM: r=%d, %s", n->r, kt_exit_str(&n->exit, buf, sizeof buf));
	assert_int_equal(hn_read(n, n->bad_gpa), 0);
	assert_false(vmm_virtio_mmio_status(n->t) & VIRTIO_CONFIG_S_NEEDS_RESET);
	print_message("  the neighbour VM completed %llu rounds meanwhile\n", (unsigned long long)ok);
}

/* Stops the loop thread of `owner` (no assertions). */
static inline void hn_stop_loop(vt_env *owner)
{
	if (owner && owner->running) {
		vmm_loop_stop(owner->loop);
		pthread_join(owner->thread, NULL);
		owner->running = false;
	}
}

/* Frees the neighbour; the owner's loop thread must be stopped (hn_stop_loop). */
static inline void hn_destroy(struct hn *n)
{
	if (n->vm)
		hn_stop(n);
	vmm_virtio_mmio_destroy(n->t);
	n->t = NULL;
	kt_teardown(&n->state);
	n->vm = NULL;
}

#endif
