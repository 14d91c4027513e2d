/* Device state across a snapshot (guest: tests/guests/vstate_console.c, a virtio-console
 * driver that answers each line upper-cased and stops after each answer).
 *
 * The guest brings the console up and has one exchange; the loop is stopped, a line
 * is typed while it is (it waits in the device), and the device state
 * (vmm_virtio_mmio_save_state) and the VM (vmm_snapshot_save) are saved. The VM is
 * restored into a new VM, a fresh console (another back end, another window size) is
 * attached at the same address and given the device state: the restored guest answers
 * the line typed before the save and then new ones, through the new back end, and the
 * hash of everything it received shows no byte lost or repeated. The original VM goes
 * on too, on its own device, unaffected by the save. A blob from another device type
 * is refused and leaves the new transport untouched.
 *
 * With a request in flight (guest: tests/guests/vstate_blk.c): a block write the old
 * device's rate limit holds back is in the saved state; the new device (no rate limit)
 * performs it after the load, and the guest reads back what it wrote. */
#include "harness/virtio_harness.h"
#include "test_snapshot_common.h"

#include <linux/virtio_config.h>
#include <pthread.h>
#include <string.h>

#include <libvmm/virtio_blk.h>
#include <libvmm/virtio_console.h>
#include <libvmm/virtio_rng.h>

struct vstate_results {
	uint64_t hash;
	uint32_t received;
	uint32_t buffers;
	uint32_t rounds;
	uint16_t cols, rows;
	uint64_t features;
};

struct sink {
	pthread_mutex_t lock;
	char buf[4096];
	size_t len;
};

/* Everything a test made, freed by the teardown even when the test fails half-way. */
struct vs {
	vt_env *e1;
	kt_vm *t2;
	vmm_loop *loop2;
	pthread_t thread2;
	bool running2;
	int loop2_result;
	vmm_virtio_mmio *tr2;
	st_files files;
	bool have_files;
	uint8_t *blob;
	struct sink s1, s2;
};

static void sink_output(void *ctx, const void *data, size_t len)
{
	struct sink *s = ctx;
	pthread_mutex_lock(&s->lock);
	if (len > sizeof s->buf - 1 - s->len)
		len = sizeof s->buf - 1 - s->len;
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = 0;
	pthread_mutex_unlock(&s->lock);
}

static void expect_output(struct sink *s, const char *want)
{
	pthread_mutex_lock(&s->lock);
	bool ok = strcmp(s->buf, want) == 0;
	pthread_mutex_unlock(&s->lock);
	if (!ok)
		fail_msg("console output \"%s\", expected \"%s\"", s->buf, want);
}

static vmm_virtio_device *console(struct sink *s, uint16_t cols, uint16_t rows)
{
	vmm_virtio_console_opts o = VMM_VIRTIO_CONSOLE_OPTS_INIT;
	o.backend = VMM_CONSOLE_CALLBACK;
	o.output = sink_output;
	o.ctx = s;
	o.cols = cols;
	o.rows = rows;
	vmm_virtio_device *d;
	kt_check(vmm_virtio_console_create(&d, &o), "vmm_virtio_console_create");
	return d;
}

static void type(vmm_virtio_device *d, const char *line)
{
	assert_int_equal(vmm_virtio_console_input(d, line, strlen(line)), (long)strlen(line));
}

static uint64_t fnv(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h;
}

static void *loop2_main(void *arg)
{
	struct vs *v = arg;
	v->loop2_result = vmm_loop_run(v->loop2);
	return NULL;
}

static int teardown(void **state)
{
	struct vs *v = *state;
	if (!v)
		return 0;
	if (v->running2) {
		vmm_loop_stop(v->loop2);
		pthread_join(v->thread2, NULL);
	}
	vmm_virtio_mmio_destroy(v->tr2);
	kt_destroy(v->t2);
	vmm_loop_destroy(v->loop2);
	vt_destroy(v->e1);
	if (v->have_files)
		st_files_remove(&v->files);
	free(v->blob);
	pthread_mutex_destroy(&v->s1.lock);
	pthread_mutex_destroy(&v->s2.lock);
	free(v);
	*state = NULL;
	return 0;
}

static struct vs *new_state(void **state)
{
	struct vs *v = calloc(1, sizeof *v);
	assert_non_null(v);
	pthread_mutex_init(&v->s1.lock, NULL);
	pthread_mutex_init(&v->s2.lock, NULL);
	*state = v;
	return v;
}

/* The original VM, its console up and one exchange done; then stopped, with "ping 2"
 * typed while its loop is stopped, and saved (device state in v->blob). */
static size_t first_half(struct vs *v, vmm_virtio_device **dev1, vmm_virtio_mmio **tr1)
{
	kt_opts o = { .guest = "vstate_console", .cpl = 3 };
	v->e1 = vt_new(&o);
	*dev1 = console(&v->s1, 80, 24);
	*tr1 = vt_attach(v->e1, 0, *dev1);
	type(*dev1, "ping 1\n");
	kt_run_expect(v->e1->kt, 0, 0x11);
	expect_output(&v->s1, "ready\nPING 1\n");

	/* Quiescent: the vCPU is out of vmm_vcpu_run (kt_run returned) and the loop stopped. */
	vt_stop_loop(v->e1);
	type(*dev1, "ping 2\n");
	size_t len = 0;
	kt_check(vmm_virtio_mmio_save_state(*tr1, NULL, 0, &len), "sizing the device state");
	v->blob = malloc(len);
	assert_non_null(v->blob);
	size_t got = 0;
	assert_int_equal(vmm_virtio_mmio_save_state(*tr1, v->blob, len - 1, &got), -ENOSPC);
	kt_check(vmm_virtio_mmio_save_state(*tr1, v->blob, len, &got), "vmm_virtio_mmio_save_state");
	assert_int_equal(got, len);
	st_files_init(&v->files);
	v->have_files = true;
	st_save(v->e1->kt->vm, &v->files);
	return len;
}

/* A new VM from the snapshot, and a loop (not yet running) for its devices. */
static vmm_virtio_mmio_opts restore_second(struct vs *v)
{
	vmm_vm *vm2 = st_restore(&v->files, VMM_SNAPSHOT_MEM_EAGER);
	v->t2 = st_wrap(vm2, 3);
	kt_check(vmm_loop_create(&v->loop2), "vmm_loop_create");
	vmm_virtio_mmio_opts mo = VMM_VIRTIO_MMIO_OPTS_INIT;
	mo.base = VIO_TEST_BASE(0);
	mo.gsi = VIO_TEST_GSI(0);
	return mo;
}

static void test_console_continues(void **state)
{
	struct vs *v = new_state(state);
	vmm_virtio_device *dev1;
	vmm_virtio_mmio *tr1;
	size_t len = first_half(v, &dev1, &tr1);
	uint64_t sym_res = kt_sym(v->e1->kt, "res");

	vmm_virtio_mmio_opts mo = restore_second(v);
	vmm_virtio_device *dev2 = console(&v->s2, 132, 50); /* another back end and size */
	kt_check(vmm_virtio_mmio_attach(&v->tr2, v->t2->vm, v->loop2, &mo, dev2), "attach");
	assert_int_equal(vmm_virtio_mmio_status(v->tr2), 0);
	kt_check(vmm_virtio_mmio_load_state(v->tr2, v->blob, len), "vmm_virtio_mmio_load_state");
	assert_int_equal(vmm_virtio_mmio_status(v->tr2),
			 VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
				 VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(pthread_create(&v->thread2, NULL, loop2_main, v), 0);
	v->running2 = true;

	/* The restored guest answers the line typed before the save, then a new one, through
	 * the new back end; nothing of the old conversation shows up there again. */
	kt_run_expect(v->t2, 0, 0x12);
	expect_output(&v->s2, "PING 2\n");
	type(dev2, "ping 3, after the restore\n");
	kt_run_expect(v->t2, 0, 0x13);
	expect_output(&v->s2, "PING 2\nPING 3, AFTER THE RESTORE\n");
	struct vstate_results r;
	kt_read(v->t2, sym_res, &r, sizeof r);
	const char *all = "ping 1\nping 2\nping 3, after the restore\n";
	assert_int_equal(r.rounds, 3);
	assert_int_equal(r.received, strlen(all));
	assert_int_equal(r.hash, fnv(0xcbf29ce484222325ull, all));
	assert_int_equal(r.cols, 80);
	assert_int_equal(r.rows, 24);
	assert_true(r.features & (1ull << 29)); /* EVENT_IDX: its indices carried over */

	/* The original goes on, on its own device: the save took nothing from it. */
	vt_start_loop(v->e1);
	kt_run_expect(v->e1->kt, 0, 0x12);
	type(dev1, "pong 3\n");
	kt_run_expect(v->e1->kt, 0, 0x13);
	expect_output(&v->s1, "ready\nPING 1\nPING 2\nPONG 3\n");
	expect_output(&v->s2, "PING 2\nPING 3, AFTER THE RESTORE\n");
	struct vstate_results r1;
	kt_read(v->e1->kt, sym_res, &r1, sizeof r1);
	assert_int_equal(r1.hash, fnv(0xcbf29ce484222325ull, "ping 1\nping 2\npong 3\n"));

	/* The restored device saves again, and the guest can still reset it. */
	vmm_loop_stop(v->loop2);
	pthread_join(v->thread2, NULL);
	v->running2 = false;
	assert_int_equal(v->loop2_result, 0);
	size_t len2 = 0;
	kt_check(vmm_virtio_mmio_save_state(v->tr2, NULL, 0, &len2), "save after load");
	assert_true(len2 > 88);
}

/* A blob of another device type, and a corrupted one, on the restored VM: refused,
 * the transport untouched, and the right blob still loads afterwards. */
static void test_wrong_device(void **state)
{
	struct vs *v = new_state(state);
	vmm_virtio_device *dev1;
	vmm_virtio_mmio *tr1;
	size_t len = first_half(v, &dev1, &tr1);
	vmm_virtio_mmio_opts mo = restore_second(v);
	vmm_virtio_device *rng;
	kt_check(vmm_virtio_rng_create(&rng, NULL), "rng");
	kt_check(vmm_virtio_mmio_attach(&v->tr2, v->t2->vm, v->loop2, &mo, rng), "attach rng");
	assert_int_equal(vmm_virtio_mmio_load_state(v->tr2, v->blob, len), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "device id"));
	assert_int_equal(vmm_virtio_mmio_status(v->tr2), 0);
	vmm_virtio_mmio_destroy(v->tr2);
	v->tr2 = NULL;

	vmm_virtio_device *dev2 = console(&v->s2, 0, 0);
	kt_check(vmm_virtio_mmio_attach(&v->tr2, v->t2->vm, v->loop2, &mo, dev2), "attach");
	v->blob[len / 2] ^= 0x10;
	assert_int_equal(vmm_virtio_mmio_load_state(v->tr2, v->blob, len), -EINVAL);
	assert_int_equal(vmm_virtio_mmio_status(v->tr2), 0);
	v->blob[len / 2] ^= 0x10;
	/* A console created without a window size does not offer VIRTIO_CONSOLE_F_SIZE,
	 * which the guest accepted: refused too. */
	assert_int_equal(vmm_virtio_mmio_load_state(v->tr2, v->blob, len), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "offered"));
	vmm_virtio_mmio_destroy(v->tr2);
	v->tr2 = NULL;
	dev2 = console(&v->s2, 1, 1);
	kt_check(vmm_virtio_mmio_attach(&v->tr2, v->t2->vm, v->loop2, &mo, dev2), "attach");
	kt_check(vmm_virtio_mmio_load_state(v->tr2, v->blob, len), "load");
	assert_int_equal(pthread_create(&v->thread2, NULL, loop2_main, v), 0);
	v->running2 = true;
	kt_run_expect(v->t2, 0, 0x12);
	expect_output(&v->s2, "PING 2\n");
}

static vmm_virtio_device *blk(int fd, uint64_t ops_per_sec)
{
	vmm_virtio_blk_opts o = VMM_VIRTIO_BLK_OPTS_INIT;
	o.fd = fd;
	o.ops_per_sec = ops_per_sec;
	vmm_virtio_device *d;
	kt_check(vmm_virtio_blk_create(&d, &o), "vmm_virtio_blk_create");
	return d;
}

static void test_blk_request_in_flight(void **state)
{
	struct vs *v = new_state(state);
	char img[] = "/tmp/libvmm-vstate-blk-XXXXXX";
	int fd = mkstemp(img);
	assert_true(fd >= 0);
	unlink(img);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);

	kt_opts o = { .guest = "vstate_blk", .cpl = 3 };
	v->e1 = vt_new(&o);
	kt_set_arg(v->e1->kt, 0, 0x5a);
	/* One request per second: the first goes through, the second waits a second. */
	vmm_virtio_device *dev1 = blk(fd, 1);
	vmm_virtio_mmio *tr1 = vt_attach(v->e1, 0, dev1);
	kt_run_expect(v->e1->kt, 0, 0x11);
	vmm_exit e;
	assert_int_equal(kt_run(v->e1->kt, 0, &e, 100), -ETIMEDOUT); /* waiting for write 2 */
	vt_stop_loop(v->e1);
	vmm_virtio_blk_stats st;
	kt_check(vmm_virtio_blk_get_stats(dev1, &st), "stats");
	assert_int_equal(st.writes, 1);
	assert_true(st.throttled >= 1);

	size_t len = 0;
	kt_check(vmm_virtio_mmio_save_state(tr1, NULL, 0, &len), "sizing");
	v->blob = malloc(len);
	assert_non_null(v->blob);
	kt_check(vmm_virtio_mmio_save_state(tr1, v->blob, len, &len), "save");
	uint16_t inflight;
	memcpy(&inflight, v->blob + 88 + 38, 2); /* queue 0's in-flight count */
	assert_int_equal(inflight, 1);
	st_files_init(&v->files);
	v->have_files = true;
	st_save(v->e1->kt->vm, &v->files);

	uint8_t before[512];
	assert_int_equal(pread(fd, before, sizeof before, 2 * 512), (ssize_t)sizeof before);
	vmm_virtio_mmio_opts mo = restore_second(v);
	vmm_virtio_device *dev2 = blk(fd, 0);
	kt_check(vmm_virtio_mmio_attach(&v->tr2, v->t2->vm, v->loop2, &mo, dev2), "attach");
	kt_check(vmm_virtio_mmio_load_state(v->tr2, v->blob, len), "load");
	assert_int_equal(pthread_create(&v->thread2, NULL, loop2_main, v), 0);
	v->running2 = true;
	kt_run_expect(v->t2, 0, 0x100);
	struct { uint8_t st[4]; uint32_t mismatch; } r;
	kt_read(v->t2, kt_sym(v->e1->kt, "res"), &r, sizeof r);
	assert_int_equal(r.mismatch, 0);
	kt_check(vmm_virtio_blk_get_stats(dev2, &st), "stats");
	assert_int_equal(st.writes, 1); /* the write that was in flight, done here */
	assert_int_equal(st.reads, 2);
	/* On the disk: sector 2 holds what the guest wrote (it did not before). */
	uint8_t after[512], want[512];
	assert_int_equal(pread(fd, after, sizeof after, 2 * 512), (ssize_t)sizeof after);
	for (int i = 0; i < 512; i++)
		want[i] = (uint8_t)(0x5a * 3 + i * 7);
	assert_memory_equal(after, want, sizeof want);
	assert_memory_not_equal(before, want, sizeof want);
	close(fd);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_console_continues, teardown),
		cmocka_unit_test_teardown(test_wrong_device, teardown),
		cmocka_unit_test_teardown(test_blk_request_in_flight, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
