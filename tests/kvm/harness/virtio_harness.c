/* Virtio test helpers (see virtio_harness.h). */
#include "virtio_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void *loop_main(void *arg)
{
	vt_env *e = arg;
	e->loop_result = vmm_loop_run(e->loop);
	return NULL;
}

void vt_start_loop(vt_env *e)
{
	if (e->running)
		return;
	assert_int_equal(pthread_create(&e->thread, NULL, loop_main, e), 0);
	e->running = true;
}

void vt_stop_loop(vt_env *e)
{
	if (!e->running)
		return;
	vmm_loop_stop(e->loop);
	pthread_join(e->thread, NULL);
	e->running = false;
	if (e->loop_result != 0)
		fail_msg("vmm_loop_run returned %d (%s): %s", e->loop_result,
			 vmm_strerror(e->loop_result), vmm_last_error());
}

vt_env *vt_new(const kt_opts *o)
{
	vt_env *e = calloc(1, sizeof *e);
	assert_non_null(e);
	e->kt = kt_create(&e->kt_state, o);
	kt_check(vmm_loop_create(&e->loop), "vmm_loop_create");
	vt_start_loop(e);
	return e;
}

void vt_destroy(vt_env *e)
{
	if (!e)
		return;
	if (e->running) {
		/* Not vt_stop_loop: a teardown must not fail half-way and leak the VM. */
		vmm_loop_stop(e->loop);
		pthread_join(e->thread, NULL);
		e->running = false;
	}
	for (unsigned i = 0; i < VT_MAX_DEVS; i++) {
		vmm_virtio_mmio_destroy(e->dev[i]);
		e->dev[i] = NULL;
	}
	kt_teardown(&e->kt_state);
	e->kt = NULL;
	vmm_loop_destroy(e->loop);
	free(e);
}

vt_env *vt_create(void **state, const kt_opts *o)
{
	vt_teardown(state);
	/* Publish the env before anything can fail: a failing kt_create longjmps out of
	 * here, and the teardown must still find (and free) the half-built env. */
	vt_env *e = calloc(1, sizeof *e);
	assert_non_null(e);
	*state = e;
	e->kt = kt_create(&e->kt_state, o);
	kt_check(vmm_loop_create(&e->loop), "vmm_loop_create");
	vt_start_loop(e);
	return e;
}

int vt_teardown(void **state)
{
	vt_destroy(*state);
	*state = NULL;
	return 0;
}

int vt_try_attach(vt_env *e, unsigned i, vmm_virtio_device *dev, vmm_virtio_mmio **out)
{
	assert_true(i < VT_MAX_DEVS);
	assert_null(e->dev[i]);
	bool was_running = e->running;
	vt_stop_loop(e);
	vmm_virtio_mmio_opts mo = VMM_VIRTIO_MMIO_OPTS_INIT;
	mo.base = VIO_TEST_BASE(i);
	mo.gsi = VIO_TEST_GSI(i);
	int r = vmm_virtio_mmio_attach(out, e->kt->vm, e->loop, &mo, dev);
	if (r == 0)
		e->dev[i] = *out;
	if (was_running)
		vt_start_loop(e);
	return r;
}

vmm_virtio_mmio *vt_attach(vt_env *e, unsigned i, vmm_virtio_device *dev)
{
	vmm_virtio_mmio *t = NULL;
	int r = vt_try_attach(e, i, dev, &t);
	if (r) {
		vmm_virtio_device_destroy(dev);
		kt_check(r, "vmm_virtio_mmio_attach");
	}
	return t;
}

uint32_t vt_wait_status(vmm_virtio_mmio *t, uint32_t mask, uint32_t want, unsigned timeout_ms)
{
	uint64_t end = kt_now_ms() + timeout_ms;
	uint32_t s;
	while (((s = vmm_virtio_mmio_status(t)) & mask) != want && kt_now_ms() < end)
		usleep(1000);
	return s;
}

static uint64_t status_kib(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	assert_non_null(f);
	char line[256];
	uint64_t v = 0;
	size_t kl = strlen(key);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtoull(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v * 1024;
}

uint64_t vt_rss_bytes(void) { return status_kib("VmRSS"); }
uint64_t vt_peak_rss_bytes(void) { return status_kib("VmHWM"); }

void vt_reset_peak_rss(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");
	assert_non_null(f);
	fputs("5", f);
	assert_int_equal(fclose(f), 0);
}
