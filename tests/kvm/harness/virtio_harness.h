/* Helpers shared by the virtio KVM tests: a kt_vm (harness.h) plus an event loop on its
 * own thread and up to VT_MAX_DEVS virtio-mmio transports.
 *
 * Device i sits at VIO_TEST_BASE(i) with interrupt line VIO_TEST_GSI(i) (guests hard-code
 * the same addresses: 0xd0000000 + i * 0x1000). Usage:
 *
 *     static void test_x(void **state) {
 *         kt_opts o = { .guest = "virtio_rng", .cpl = 3 };
 *         vt_env *e = vt_create(state, &o);        // VM + loop thread
 *         vmm_virtio_device *rng;
 *         kt_check(vmm_virtio_rng_create(&rng, NULL), "rng");
 *         vmm_virtio_mmio *t = vt_attach(e, 0, rng); // at VIO_TEST_BASE(0), gsi 5
 *         kt_run_expect(e->kt, 0, 0x100);
 *     }
 *     ... cmocka_unit_test_teardown(test_x, vt_teardown) ...
 *
 * Teardown order: (the test's vCPUs have stopped: kt_run is synchronous) stop the loop
 * thread, destroy the transports (and their devices), destroy the VM, free the loop.
 * Every helper fails the current test on error.
 */
#ifndef KVM_TEST_VIRTIO_HARNESS_H
#define KVM_TEST_VIRTIO_HARNESS_H

#include "harness.h"

#define VIO_TEST_BASE(i) (0xd0000000ull + (uint64_t)(i) * 0x1000u)
#define VIO_TEST_GSI(i) (5u + (unsigned)(i))
#define VT_MAX_DEVS 8

typedef struct vt_env {
	kt_vm *kt;
	void *kt_state;                    /* what kt_create/kt_teardown manage */
	vmm_loop *loop;
	pthread_t thread;
	bool running;
	int loop_result;                   /* what vmm_loop_run returned last */
	vmm_virtio_mmio *dev[VT_MAX_DEVS]; /* indexed by slot */
} vt_env;

/* Creates the VM (kt_create with `o`), a loop and the loop thread. Stores the env in
 * *state (destroying what *state held, as kt_create does). */
vt_env *vt_create(void **state, const kt_opts *o);
/* The same without cmocka state: pair with vt_destroy (e.g. a second VM in one test). */
vt_env *vt_new(const kt_opts *o);
void vt_destroy(vt_env *e);
/* cmocka teardown for vt_create. */
int vt_teardown(void **state);

/* Attaches `dev` at slot i (VIO_TEST_BASE(i), VIO_TEST_GSI(i)); the transport owns dev.
 * The loop thread is paused around the attach. */
vmm_virtio_mmio *vt_attach(vt_env *e, unsigned i, vmm_virtio_device *dev);
/* Attaches with explicit options; returns the error instead of failing (dev stays the
 * caller's on failure). */
int vt_try_attach(vt_env *e, unsigned i, vmm_virtio_device *dev, vmm_virtio_mmio **out);

/* Starts / stops (and joins) the loop thread. vt_stop_loop asserts the loop ended
 * cleanly. Both are idempotent. */
void vt_start_loop(vt_env *e);
void vt_stop_loop(vt_env *e);

/* Polls the transport's status until (status & mask) == want, or timeout_ms passed.
 * Returns the last status read. */
uint32_t vt_wait_status(vmm_virtio_mmio *t, uint32_t mask, uint32_t want, unsigned timeout_ms);

/* Resident and peak-resident set size of this process, in bytes (from
 * /proc/self/status VmRSS / VmHWM), and a reset of the peak to the current RSS
 * (/proc/self/clear_refs "5"). */
uint64_t vt_rss_bytes(void);
uint64_t vt_peak_rss_bytes(void);
void vt_reset_peak_rss(void);

#endif
