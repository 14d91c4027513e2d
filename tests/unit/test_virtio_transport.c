/* The virtio device object and the virtio-mmio register state machine without a VM:
 * ops validation, ownership, feature negotiation, status rules, queue locking, notify
 * gating, reset, config-space bounds, failure, watches and rescheduling (lib/virtio,
 * driven through the internal register functions with stub hooks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "virtio/mmio_internal.h"

#define RAM 0x10000u
#define DESC 0x1000u
#define AVAIL 0x1100u
#define USED 0x1200u

struct tdev {
	int activates, resets, notifies, destroys;
	int watch_calls;
	uint64_t features;
	int activate_result;
	uint8_t cfg[12];
	bool reschedule_once;
};

static int destroyed; /* counts destroy calls of freed contexts */

static void t_config_read(void *ctx, uint32_t off, void *data, uint32_t len)
{
	struct tdev *d = ctx;
	assert_true((uint64_t)off + len <= sizeof d->cfg);
	memcpy(data, d->cfg + off, len);
}

static int t_activate(void *ctx, vmm_virtio_dev *dev, uint64_t features)
{
	struct tdev *d = ctx;
	(void)dev;
	d->activates++;
	d->features = features;
	return d->activate_result;
}

static void t_notify(void *ctx, vmm_virtio_dev *dev, uint16_t queue)
{
	struct tdev *d = ctx;
	d->notifies++;
	if (d->reschedule_once) {
		d->reschedule_once = false;
		vmm_virtio_dev_reschedule(dev, queue);
	}
}

static void t_reset(void *ctx, vmm_virtio_dev *dev)
{
	struct tdev *d = ctx;
	(void)dev;
	d->resets++;
}

static void t_destroy(void *ctx)
{
	free(ctx);
	destroyed++;
}

static vmm_virtio_device_ops t_ops(void)
{
	vmm_virtio_device_ops ops = { .size = sizeof ops };
	ops.name = "tdev";
	ops.device_id = 0x77;
	ops.num_queues = 2;
	ops.queue_size_max = 16;
	ops.features = 1ull << 3 | 1ull << 30; /* bit 30: transport range, must be dropped */
	ops.config_size = 12;
	ops.config_read = t_config_read;
	ops.activate = t_activate;
	ops.notify = t_notify;
	ops.reset = t_reset;
	ops.destroy = t_destroy;
	return ops;
}

static void test_create_validation(void **state)
{
	(void)state;
	vmm_virtio_device *d = NULL;
	struct tdev ctx;
	vmm_virtio_device_ops ops = t_ops();
	assert_int_equal(vmm_virtio_device_create(NULL, &ops, &ctx), -EINVAL);
	assert_int_equal(vmm_virtio_device_create(&d, NULL, &ctx), -EINVAL);
	ops.num_queues = 0;
	assert_int_equal(vmm_virtio_device_create(&d, &ops, &ctx), -EINVAL);
	ops.num_queues = VMM_VIRTIO_MAX_QUEUES + 1;
	assert_int_equal(vmm_virtio_device_create(&d, &ops, &ctx), -EINVAL);
	ops = t_ops();
	ops.queue_size_max = 0;
	assert_int_equal(vmm_virtio_device_create(&d, &ops, &ctx), -EINVAL);
	ops.queue_size_max = 48;
	assert_int_equal(vmm_virtio_device_create(&d, &ops, &ctx), -EINVAL);
	ops.queue_size_max = 65535;
	assert_int_equal(vmm_virtio_device_create(&d, &ops, &ctx), -EINVAL);
	ops = t_ops();
	ops.notify = NULL;
	assert_int_equal(vmm_virtio_device_create(&d, &ops, &ctx), -EINVAL);
	ops = t_ops();
	ops.config_read = NULL;
	assert_int_equal(vmm_virtio_device_create(&d, &ops, &ctx), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "config_read"));
	ops = t_ops();
	ops.size = 2;
	assert_int_equal(vmm_virtio_device_create(&d, &ops, &ctx), -EINVAL);
	assert_null(d);
}

static void test_create_destroy(void **state)
{
	(void)state;
	struct tdev *ctx = calloc(1, sizeof *ctx);
	assert_non_null(ctx);
	vmm_virtio_device_ops ops = t_ops();
	ops.name = NULL; /* a default name is used */
	vmm_virtio_device *d;
	assert_int_equal(vmm_virtio_device_create(&d, &ops, ctx), 0);
	assert_ptr_equal(vmm_virtio_device_ctx(d), ctx);
	assert_int_equal(vmm_virtio_device_get_ops(d)->device_id, 0x77);
	assert_non_null(vmm_virtio_device_get_ops(d)->name);
	assert_null(vmm_virtio_device_dev(d));
	int before = destroyed;
	vmm_virtio_device_destroy(d);
	assert_int_equal(destroyed, before + 1);
	vmm_virtio_device_destroy(NULL);
	assert_null(vmm_virtio_device_ctx(NULL));
}

/* ---- the register state machine with stub hooks ---- */

struct fixture {
	vmm_mem *mem;
	vmm_loop *loop;
	uint8_t *ram;
	vmm_virtio_device *device;
	struct tdev *t;
	struct vmm_virtio_dev dev;
	int irqs, kicks;
};

static struct fixture *cur;

static void hook_kick(struct vmm_virtio_dev *dev, uint16_t queue)
{
	cur->kicks++;
	vdev_notify(dev, queue);
}

static void hook_irq(struct vmm_virtio_dev *dev)
{
	(void)dev;
	cur->irqs++;
}

static const struct vdev_hooks hooks = { .kick = hook_kick, .irq = hook_irq };

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	cur = f;
	assert_int_equal(vmm_mem_create(&f->mem), 0);
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.len = RAM;
	o.backing = VMM_MEM_ANON;
	assert_int_equal(vmm_mem_add_region(f->mem, &o), 0);
	void *host;
	assert_int_equal(vmm_mem_translate(f->mem, 0, RAM, true, &host), 0);
	f->ram = host;
	assert_int_equal(vmm_loop_create(&f->loop), 0);
	f->t = calloc(1, sizeof *f->t);
	assert_non_null(f->t);
	for (unsigned i = 0; i < sizeof f->t->cfg; i++)
		f->t->cfg[i] = (uint8_t)(0xa0 + i);
	vmm_virtio_device_ops ops = t_ops();
	assert_int_equal(vmm_virtio_device_create(&f->device, &ops, f->t), 0);
	assert_int_equal(vdev_init(&f->dev, f->device, f->mem, f->loop, &hooks), 0);
	f->device->dev = &f->dev;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	vdev_teardown(&f->dev, true);
	vmm_loop_destroy(f->loop);
	vmm_mem_destroy(f->mem);
	free(f);
	return 0;
}

static uint32_t rd(struct fixture *f, uint32_t off) { return (uint32_t)vmmio_read(&f->dev, off, 4); }
static void wr(struct fixture *f, uint32_t off, uint32_t v) { vmmio_write(&f->dev, off, 4, v); }

static void negotiate(struct fixture *f, uint32_t lo, uint32_t hi)
{
	wr(f, VIRTIO_MMIO_STATUS, 0);
	wr(f, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES, lo);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES, hi);
	wr(f, VIRTIO_MMIO_STATUS, rd(f, VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_FEATURES_OK);
}

static void queue(struct fixture *f, uint32_t q, uint32_t num, uint32_t desc)
{
	wr(f, VIRTIO_MMIO_QUEUE_SEL, q);
	wr(f, VIRTIO_MMIO_QUEUE_NUM, num);
	wr(f, VIRTIO_MMIO_QUEUE_DESC_LOW, desc);
	wr(f, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
	wr(f, VIRTIO_MMIO_QUEUE_AVAIL_LOW, AVAIL);
	wr(f, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
	wr(f, VIRTIO_MMIO_QUEUE_USED_LOW, USED);
	wr(f, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
	wr(f, VIRTIO_MMIO_QUEUE_READY, 1);
}

static void driver_ok(struct fixture *f)
{
	wr(f, VIRTIO_MMIO_STATUS, rd(f, VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_DRIVER_OK);
}

static void test_identity(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(rd(f, VIRTIO_MMIO_MAGIC_VALUE), VMMIO_MAGIC);
	assert_int_equal(rd(f, VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(rd(f, VIRTIO_MMIO_DEVICE_ID), 0x77);
	assert_int_equal(rd(f, VIRTIO_MMIO_VENDOR_ID), VMMIO_VENDOR_ID);
	wr(f, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	/* bit 30 (transport range) dropped; INDIRECT (28) and EVENT_IDX (29) added */
	assert_int_equal(rd(f, VIRTIO_MMIO_DEVICE_FEATURES), 1u << 3 | 1u << 28 | 1u << 29);
	wr(f, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(rd(f, VIRTIO_MMIO_DEVICE_FEATURES), 1);
	/* Unaligned or non-32-bit register accesses read 0. */
	assert_int_equal(vmmio_read(&f->dev, VIRTIO_MMIO_MAGIC_VALUE, 2), 0);
	assert_int_equal(vmmio_read(&f->dev, VIRTIO_MMIO_MAGIC_VALUE + 1, 4), 0);
}

static void test_negotiation(void **state)
{
	struct fixture *f = *state;
	const uint32_t ad = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	negotiate(f, 1u << 3, 0);                      /* no VERSION_1 */
	assert_int_equal(rd(f, VIRTIO_MMIO_STATUS), ad);
	negotiate(f, 1u << 30, 1);                     /* a bit the device set but is not offered */
	assert_int_equal(rd(f, VIRTIO_MMIO_STATUS), ad);
	negotiate(f, 1u << 3 | 1u << 28, 1);
	assert_int_equal(rd(f, VIRTIO_MMIO_STATUS), ad | VIRTIO_CONFIG_S_FEATURES_OK);
	/* Frozen now. */
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES, 0);
	queue(f, 0, 8, DESC);
	driver_ok(f);
	assert_int_equal(f->t->activates, 1);
	assert_int_equal(f->t->features, 1ull << 3 | 1ull << 28 | 1ull << 32);
	assert_int_equal(vmm_virtio_dev_features(&f->dev), f->t->features);
	/* DRIVER_OK again: no second activation. */
	driver_ok(f);
	assert_int_equal(f->t->activates, 1);
}

static void test_queue_registers(void **state)
{
	struct fixture *f = *state;
	negotiate(f, 0, 1);
	/* Sizes the ring cannot take leave QueueReady at 0. */
	const uint32_t bad[] = { 0, 3, 32, 0x10010 };
	for (unsigned i = 0; i < 4; i++) {
		queue(f, 0, bad[i], DESC);
		assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	}
	queue(f, 0, 8, DESC + 4); /* misaligned */
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	queue(f, 0, 8, DESC);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 1);
	/* Ready: the registers are locked until QueueReady 0. */
	wr(f, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x3000);
	uint64_t d, a, u;
	vmm_virtq_addrs(f->dev.q[0].vq, &d, &a, &u);
	assert_int_equal(d, DESC);
	wr(f, VIRTIO_MMIO_QUEUE_READY, 0);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	queue(f, 0, 4, 0x3000);
	driver_ok(f);
	/* After DRIVER_OK nothing of the queue changes. */
	queue(f, 0, 8, DESC);
	wr(f, VIRTIO_MMIO_QUEUE_READY, 0);
	vmm_virtq_addrs(f->dev.q[0].vq, &d, &a, &u);
	assert_int_equal(d, 0x3000);
	assert_int_equal(vmm_virtq_size(f->dev.q[0].vq), 4);
	assert_true(vmm_virtq_ready(f->dev.q[0].vq));
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 1);
	/* Queue 1 was never set up; a selector out of range reads max 0. */
	wr(f, VIRTIO_MMIO_QUEUE_SEL, 1);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_NUM_MAX), 16);
	wr(f, VIRTIO_MMIO_QUEUE_SEL, 2);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
}

static void test_notify_gating(void **state)
{
	struct fixture *f = *state;
	negotiate(f, 0, 1);
	queue(f, 0, 8, DESC);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(f->t->notifies, 0); /* before DRIVER_OK */
	driver_ok(f);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(f->t->notifies, 1);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 1);  /* not ready */
	assert_int_equal(f->t->notifies, 1);
	int kicks = f->kicks;
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 2);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffffu);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0x10000);
	vmmio_write(&f->dev, VIRTIO_MMIO_QUEUE_NOTIFY, 2, 0);
	assert_int_equal(f->kicks, kicks); /* none reached the hook */
	assert_int_equal(f->t->notifies, 1);
}

static void test_reset_clears(void **state)
{
	struct fixture *f = *state;
	negotiate(f, 0, 1);
	queue(f, 0, 8, DESC);
	driver_ok(f);
	vmm_virtio_dev_interrupt(&f->dev, 0);
	vmm_virtio_dev_config_changed(&f->dev);
	assert_true(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS) & 2);
	wr(f, VIRTIO_MMIO_QUEUE_SEL, 1);
	wr(f, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(f->t->resets, 1);
	assert_int_equal(rd(f, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 0); /* selector back to 0, not ready */
	assert_false(vmm_virtq_ready(f->dev.q[0].vq));
	assert_int_equal(vmm_virtio_dev_features(&f->dev), 0);
	/* A second reset of an idle device does not call the device again. */
	wr(f, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(f->t->resets, 1);
	/* Clearing bits other than by writing 0 is ignored. */
	negotiate(f, 0, 1);
	wr(f, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* The driver cannot set DEVICE_NEEDS_RESET itself. */
	wr(f, VIRTIO_MMIO_STATUS, rd(f, VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_false(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_config_bounds(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(vmmio_read(&f->dev, VMMIO_CONFIG, 1), 0xa0);
	assert_int_equal(vmmio_read(&f->dev, VMMIO_CONFIG + 2, 2), 0xa3a2);
	assert_int_equal(vmmio_read(&f->dev, VMMIO_CONFIG + 4, 8), 0xabaaa9a8a7a6a5a4ull);
	assert_int_equal(vmmio_read(&f->dev, VMMIO_CONFIG + 8, 4), 0xabaaa9a8u);
	assert_int_equal(vmmio_read(&f->dev, VMMIO_CONFIG + 8, 8), 0); /* crosses the end */
	assert_int_equal(vmmio_read(&f->dev, VMMIO_CONFIG + 12, 1), 0);
	assert_int_equal(vmmio_read(&f->dev, VMMIO_CONFIG + 1, 3), 0);  /* odd size */
	vmmio_write(&f->dev, VMMIO_CONFIG, 4, 0x12345678); /* no config_write: ignored */
	assert_int_equal(vmmio_read(&f->dev, VMMIO_CONFIG, 1), 0xa0);
	uint32_t gen = rd(f, VIRTIO_MMIO_CONFIG_GENERATION);
	int irqs = f->irqs;
	vmm_virtio_dev_config_changed(&f->dev);
	assert_int_equal(rd(f, VIRTIO_MMIO_CONFIG_GENERATION), gen + 1);
	assert_int_equal(f->irqs, irqs); /* no driver yet: no interrupt */
}

static void test_fail(void **state)
{
	struct fixture *f = *state;
	negotiate(f, 0, 1);
	queue(f, 0, 8, DESC);
	driver_ok(f);
	int irqs = f->irqs;
	vmm_virtio_dev_fail(&f->dev, "first reason");
	vmm_virtio_dev_fail(&f->dev, "second reason");
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), 2);
	assert_int_equal(f->irqs, irqs + 1);
	assert_non_null(strstr(f->dev.error, "first reason"));
	assert_non_null(strstr(f->dev.error, "tdev"));
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(f->t->notifies, 0);
	wr(f, VIRTIO_MMIO_STATUS, 0);
	assert_string_equal(f->dev.error, "");
	negotiate(f, 0, 1);
	queue(f, 0, 8, DESC);
	driver_ok(f);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(f->t->notifies, 1);
}

static void test_activate_refused(void **state)
{
	struct fixture *f = *state;
	f->t->activate_result = -EIO;
	negotiate(f, 0, 1);
	driver_ok(f);
	uint32_t st = rd(f, VIRTIO_MMIO_STATUS);
	assert_true(st & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(st & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_non_null(strstr(f->dev.error, "activation refused"));
	wr(f, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(f->t->resets, 1); /* activate was called, so reset is owed */
}

static void test_ring_outside_ram(void **state)
{
	struct fixture *f = *state;
	negotiate(f, 0, 1);
	queue(f, 0, 8, RAM - 0x40); /* aligned, but the table runs past RAM */
	assert_int_equal(rd(f, VIRTIO_MMIO_QUEUE_READY), 1);
	driver_ok(f);
	assert_true(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(f->t->activates, 0);
	wr(f, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(f->t->resets, 0); /* never activated */
}

static void watch_fn(void *ctx, int fd, uint32_t events)
{
	struct tdev *d = ctx;
	(void)events;
	uint64_t v;
	(void)!read(fd, &v, sizeof v);
	d->watch_calls++;
}

static void test_watch_and_reschedule(void **state)
{
	struct fixture *f = *state;
	int fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(fd >= 0);
	pthread_mutex_lock(&f->dev.lock);
	assert_int_equal(vmm_virtio_dev_watch(&f->dev, fd, VMM_LOOP_IN, watch_fn, f->t), 0);
	assert_int_equal(vmm_virtio_dev_watch(&f->dev, fd, VMM_LOOP_IN, watch_fn, f->t), -EEXIST);
	pthread_mutex_unlock(&f->dev.lock);
	/* Not active: the readable fd is left pending. */
	assert_int_equal(vmm_loop_run_once(f->loop, 0), 0);
	assert_int_equal(f->t->watch_calls, 0);
	pthread_mutex_lock(&f->dev.lock);
	negotiate(f, 0, 1);
	queue(f, 0, 8, DESC);
	driver_ok(f);
	pthread_mutex_unlock(&f->dev.lock);
	assert_int_equal(vmm_loop_run_once(f->loop, 0), 1);
	assert_int_equal(f->t->watch_calls, 1);

	/* Reschedule: one loop event however often it is asked for. */
	pthread_mutex_lock(&f->dev.lock);
	f->t->reschedule_once = true;
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	vmm_virtio_dev_reschedule(&f->dev, 0);
	vmm_virtio_dev_reschedule(&f->dev, 0);
	vmm_virtio_dev_reschedule(&f->dev, 5); /* out of range: ignored */
	pthread_mutex_unlock(&f->dev.lock);
	assert_int_equal(f->t->notifies, 1);
	assert_int_equal(vmm_loop_run_once(f->loop, 0), 1);
	assert_int_equal(f->t->notifies, 2);
	assert_int_equal(vmm_loop_run_once(f->loop, 0), 0);

	/* After a failure the fd is left pending again; reset + DRIVER_OK resumes it. */
	pthread_mutex_lock(&f->dev.lock);
	vmm_virtio_dev_fail(&f->dev, "test");
	pthread_mutex_unlock(&f->dev.lock);
	uint64_t one = 1;
	assert_int_equal(write(fd, &one, sizeof one), sizeof one);
	assert_int_equal(vmm_loop_run_once(f->loop, 0), 0);
	pthread_mutex_lock(&f->dev.lock);
	negotiate(f, 0, 1); /* resets first */
	queue(f, 0, 8, DESC);
	driver_ok(f);
	assert_int_equal(vmm_virtio_dev_watch_modify(&f->dev, fd, VMM_LOOP_IN), 0);
	assert_int_equal(vmm_virtio_dev_watch_modify(&f->dev, 1000, VMM_LOOP_IN), -ENOENT);
	pthread_mutex_unlock(&f->dev.lock);
	assert_int_equal(vmm_loop_run_once(f->loop, 0), 1);
	assert_int_equal(f->t->watch_calls, 2);
	pthread_mutex_lock(&f->dev.lock);
	assert_int_equal(vmm_virtio_dev_unwatch(&f->dev, fd), 0);
	assert_int_equal(vmm_virtio_dev_unwatch(&f->dev, fd), -ENOENT);
	pthread_mutex_unlock(&f->dev.lock);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_validation),
		cmocka_unit_test(test_create_destroy),
		cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_negotiation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notify_gating, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_clears, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_activate_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ring_outside_ram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_and_reschedule, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
