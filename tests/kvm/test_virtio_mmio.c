/* The virtio-mmio transport seen from a real guest (tests/guests/virtio_mmio.c), with an
 * "echo" device written here against the device API (include/libvmm/sys/device.h):
 * identification registers, feature negotiation (FEATURES_OK refused without
 * VERSION_1 or with bits not offered, frozen afterwards), DRIVER_OK only after
 * FEATURES_OK, queue registers locked after DRIVER_OK (CVE-2026-5747), QueueNotify
 * indexes compared unsigned (CVE-2011-2512), reset, config space of every access size,
 * interrupt status and acknowledge, a broken ring -> DEVICE_NEEDS_RESET and recovery
 * after a driver reset, invalid queue set-ups refused, no processing before DRIVER_OK,
 * a second VM that keeps working while the first one's device is broken, and
 * interrupts delivered to a CPL-0 guest with either irqchip. */
#include "harness/virtio_harness.h"
#include "virtio/transport.h"

#include <linux/virtio_config.h>
#include <stdlib.h>
#include <string.h>

#define ECHO_ID 0x4242
#define ECHO_QMAX 64
#define ECHO_FEATURES (1ull << 0 | 1ull << 5)

struct wlog {
	uint32_t off, len;
	uint64_t val;
};

struct echo {
	uint8_t cfg[16];
	int activates, resets, notifies;
	uint64_t features;
	struct wlog w[16];
	int nw;
	vmm_virtq_chain chain;
};

static void echo_config_read(void *ctx, uint32_t off, void *data, uint32_t len)
{
	struct echo *e = ctx;
	/* The transport promises off + len <= config_size: check that it keeps it. */
	assert_true((uint64_t)off + len <= sizeof e->cfg);
	memcpy(data, e->cfg + off, len);
}

static void echo_config_write(void *ctx, uint32_t off, const void *data, uint32_t len)
{
	struct echo *e = ctx;
	assert_true((uint64_t)off + len <= sizeof e->cfg);
	if (e->nw < 16) {
		struct wlog *w = &e->w[e->nw++];
		w->off = off;
		w->len = len;
		w->val = 0;
		memcpy(&w->val, data, len);
	}
}

static int echo_activate(void *ctx, vmm_virtio_dev *dev, uint64_t features)
{
	struct echo *e = ctx;
	(void)dev;
	e->activates++;
	e->features = features;
	return 0;
}

static void echo_notify(void *ctx, vmm_virtio_dev *dev, uint16_t queue)
{
	struct echo *e = ctx;
	vmm_virtq *vq = vmm_virtio_dev_queue(dev, queue);
	vmm_mem *mem = vmm_virtio_dev_mem(dev);
	e->notifies++;
	unsigned n = 0, limit = vmm_virtq_size(vq);
	for (; n < limit; n++) {
		int r = vmm_virtq_pop(vq, mem, &e->chain);
		if (r == 0)
			break;
		if (r < 0) {
			vmm_virtio_dev_fail(dev, vmm_last_error());
			return;
		}
		uint8_t buf[64];
		size_t got = vmm_virtq_chain_read(&e->chain, 0, buf,
						   e->chain.out_bytes < sizeof buf ? e->chain.out_bytes : sizeof buf);
		for (size_t i = 0; i < got; i++)
			buf[i] = (uint8_t)~buf[i];
		size_t put = vmm_virtq_chain_write(&e->chain, 0, buf, got);
		if (vmm_virtq_push(vq, mem, e->chain.head, (uint32_t)put) != 0) {
			vmm_virtio_dev_fail(dev, vmm_last_error());
			return;
		}
	}
	if (n)
		vmm_virtio_dev_interrupt(dev, queue);
	if (n == limit)
		vmm_virtio_dev_reschedule(dev, queue);
}

static void echo_reset(void *ctx, vmm_virtio_dev *dev)
{
	struct echo *e = ctx;
	(void)dev;
	e->resets++;
}

static void echo_destroy(void *ctx)
{
	free(ctx);
}

static vmm_virtio_device *echo_create(struct echo **out)
{
	struct echo *e = calloc(1, sizeof *e);
	assert_non_null(e);
	for (int i = 0; i < 16; i++)
		e->cfg[i] = (uint8_t)(0x10 + i);
	vmm_virtio_device_ops ops = { .size = sizeof ops };
	ops.name = "echo";
	ops.device_id = ECHO_ID;
	ops.num_queues = 2;
	ops.queue_size_max = ECHO_QMAX;
	ops.features = ECHO_FEATURES;
	ops.config_size = sizeof e->cfg;
	ops.config_read = echo_config_read;
	ops.config_write = echo_config_write;
	ops.activate = echo_activate;
	ops.notify = echo_notify;
	ops.reset = echo_reset;
	ops.destroy = echo_destroy;
	vmm_virtio_device *d;
	kt_check(vmm_virtio_device_create(&d, &ops, e), "vmm_virtio_device_create");
	*out = e;
	return d;
}

struct fixture {
	vt_env *e;
	vmm_virtio_mmio *t;
	struct echo *echo;
	uint64_t res[32];
};

static void start(void **state, struct fixture *f, uint64_t mode)
{
	kt_opts o = { .guest = "virtio_mmio", .cpl = 3 };
	f->e = vt_create(state, &o);
	f->t = vt_attach(f->e, 0, echo_create(&f->echo));
	kt_set_arg(f->e->kt, 0, mode);
}

static void fetch(struct fixture *f)
{
	kt_read(f->e->kt, kt_sym(f->e->kt, "res"), f->res, sizeof f->res);
}

/* Reads the echo device's counters under the device lock (the loop thread may run). */
static struct echo snapshot(struct fixture *f)
{
	vmm_virtio_dev *d = vmm_virtio_device_dev(vmm_virtio_mmio_device(f->t));
	assert_non_null(d);
	vmm_virtio_dev_lock(d);
	struct echo copy;
	memcpy(&copy, f->echo, offsetof(struct echo, chain));
	vmm_virtio_dev_unlock(d);
	return copy;
}

static void test_registers(void **state)
{
	struct fixture f = { 0 };
	start(state, &f, 1);
	kt_run_expect(f.e->kt, 0, 0x100);
	fetch(&f);
	assert_int_equal(f.res[0], 0x74726976);
	assert_int_equal(f.res[1], 2);
	assert_int_equal(f.res[2], ECHO_ID);
	assert_int_equal(f.res[3], 0x4d4d564c);
	assert_int_equal(f.res[4], ECHO_QMAX);
	assert_int_equal(f.res[5], ECHO_QMAX);
	assert_int_equal(f.res[6], 0);  /* QueueSel 2 of 2 queues */
	assert_int_equal(f.res[7], 0);  /* QueueSel 0xffffffff */
	assert_int_equal(f.res[18], 0); /* QueueReady of a queue that does not exist */
	assert_int_equal(f.res[8], 0xffffffffu);
	assert_int_equal(f.res[9], 0xffffffffu);
	assert_int_equal(f.res[10], 0);
	/* Offered: the device's bits, INDIRECT_DESC, EVENT_IDX; VERSION_1 in the high word. */
	assert_int_equal(f.res[11], ECHO_FEATURES | 1u << 28 | 1u << 29);
	assert_int_equal(f.res[12], 1);
	assert_int_equal(f.res[13], 0);
	assert_int_equal(f.res[14], 0);
	assert_int_equal(f.res[15], 0);
	assert_int_equal(f.res[16], 0);
	assert_int_equal(f.res[17], 0);
	char buf[64];
	assert_int_equal(vmm_virtio_mmio_cmdline(f.t, buf, sizeof buf),
			 (int)strlen("virtio_mmio.device=4K@0xd0000000:5"));
	assert_string_equal(buf, "virtio_mmio.device=4K@0xd0000000:5");
	assert_ptr_equal(vmm_virtio_device_ctx(vmm_virtio_mmio_device(f.t)), f.echo);
	assert_int_equal(vmm_virtio_device_get_ops(vmm_virtio_mmio_device(f.t))->device_id, ECHO_ID);
}

static void test_features(void **state)
{
	struct fixture f = { 0 };
	start(state, &f, 2);
	kt_run_expect(f.e->kt, 0, 0x100);
	fetch(&f);
	const uint32_t base = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	assert_int_equal(f.res[0], base); /* no VERSION_1 */
	assert_int_equal(f.res[1], base); /* bit 33 not offered */
	assert_int_equal(f.res[2], base); /* bit 7 not offered */
	assert_int_equal(f.res[3], base | VIRTIO_CONFIG_S_FEATURES_OK);
	assert_int_equal(f.res[4], base | VIRTIO_CONFIG_S_FEATURES_OK);
	assert_int_equal(f.res[5], base | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	struct echo s = snapshot(&f);
	assert_int_equal(s.activates, 1);
	/* What was checked at FEATURES_OK, not the later write of bits 0-1. */
	assert_int_equal(s.features, 1ull | 1ull << VIRTIO_F_VERSION_1);
	vmm_virtio_dev *d = vmm_virtio_device_dev(vmm_virtio_mmio_device(f.t));
	vmm_virtio_dev_lock(d);
	assert_int_equal(vmm_virtio_dev_features(d), 1ull | 1ull << VIRTIO_F_VERSION_1);
	vmm_virtio_dev_unlock(d);
}

static void test_driver_ok_needs_features_ok(void **state)
{
	struct fixture f = { 0 };
	start(state, &f, 3);
	kt_run_expect(f.e->kt, 0, 0x100);
	fetch(&f);
	assert_int_equal(f.res[0], VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	assert_int_equal(snapshot(&f).activates, 1); /* only the proper start */
}

static void test_queue_locked_after_driver_ok(void **state)
{
	struct fixture f = { 0 };
	start(state, &f, 4);
	kt_run_expect(f.e->kt, 0, 0x100);
	fetch(&f);
	assert_int_equal(f.res[0], 8);
	assert_int_equal(f.res[1], 1); /* QueueReady 0 was ignored */
	assert_int_equal(f.res[2], 8); /* the original ring still works */
	assert_int_equal(f.res[3], 0); /* ring B was never used */
	/* The device still has ring A. */
	uint64_t ring_a = kt_sym(f.e->kt, "ring_a");
	vmm_virtio_dev *d = vmm_virtio_device_dev(vmm_virtio_mmio_device(f.t));
	vmm_virtio_dev_lock(d);
	uint64_t desc, avail, used;
	vmm_virtq *q = vmm_virtio_dev_queue(d, 0);
	vmm_virtq_addrs(q, &desc, &avail, &used);
	uint16_t size = vmm_virtq_size(q);
	vmm_virtio_dev_unlock(d);
	assert_int_equal(desc, ring_a);
	assert_int_equal(avail, ring_a + 16 * 16);
	assert_int_equal(size, 16);
	assert_false(vmm_virtio_mmio_status(f.t) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_notify_index(void **state)
{
	struct fixture f = { 0 };
	start(state, &f, 5);
	vmm_virtio_mmio_stats s0, s1;
	vmm_virtio_mmio_get_stats(f.t, &s0);
	assert_int_equal(s0.notifies, 0);
	kt_run_expect(f.e->kt, 0, 0x100);
	fetch(&f);
	assert_int_equal(f.res[0], 0); /* none of the bad notifies reached queue 0 */
	assert_int_equal(f.res[1], 8);
	assert_int_equal(f.res[2], 8);
	vmm_virtio_mmio_get_stats(f.t, &s1);
	/* queue 0 twice and queue 1 once: the bad ones were not counted as notifies. */
	assert_int_equal(s1.notifies, 3);
	assert_false(vmm_virtio_mmio_status(f.t) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* The same with the doorbells' ioeventfds removed: every QueueNotify write now exits to
 * user space and goes through the register file, which signals the doorbell itself. */
static void test_notify_without_ioeventfd(void **state)
{
	struct fixture f = { 0 };
	start(state, &f, 5);
	vmm_virtio_dev *d = vmm_virtio_device_dev(vmm_virtio_mmio_device(f.t));
	for (uint16_t i = 0; i < 2; i++)
		kt_check(vmm_bus_remove_ioeventfd(f.e->kt->bus, VMM_BUS_MMIO, VIO_TEST_BASE(0) + 0x50, 4,
						  d->q[i].kick_fd, VMM_IOEVENTFD_DATAMATCH, i),
			 "vmm_bus_remove_ioeventfd");
	kt_run_expect(f.e->kt, 0, 0x100);
	fetch(&f);
	assert_int_equal(f.res[0], 0);
	assert_int_equal(f.res[1], 8);
	assert_int_equal(f.res[2], 8);
	vmm_virtio_mmio_stats s;
	vmm_virtio_mmio_get_stats(f.t, &s);
	assert_int_equal(s.notifies, 3);
	assert_int_equal(snapshot(&f).notifies, 2); /* queue 1 is not ready */
}

static void test_reset(void **state)
{
	struct fixture f = { 0 };
	start(state, &f, 6);
	kt_run_expect(f.e->kt, 0, 0x100);
	fetch(&f);
	assert_int_equal(f.res[0], 0);
	assert_int_equal(f.res[1], 0);
	assert_int_equal(f.res[2], 0);
	assert_int_equal(f.res[3], 8);
	struct echo s = snapshot(&f);
	assert_int_equal(s.activates, 2);
	assert_int_equal(s.resets, 1); /* only an activated device is reset */
}

static void test_config_space(void **state)
{
	struct fixture f = { 0 };
	start(state, &f, 7);
	kt_run_expect(f.e->kt, 0, 0x101);
	vmm_virtio_dev *d = vmm_virtio_device_dev(vmm_virtio_mmio_device(f.t));
	vmm_virtio_dev_lock(d);
	vmm_virtio_dev_config_changed(d);
	vmm_virtio_dev_unlock(d);
	kt_run_expect(f.e->kt, 0, 0x100);
	fetch(&f);
	assert_int_equal(f.res[0], 0x10);
	assert_int_equal(f.res[1], 0x1312);
	assert_int_equal(f.res[2], 0x17161514);
	assert_int_equal(f.res[3], 0x1f1e1d1c1b1a1918ull);
	assert_int_equal(f.res[4], 0);
	assert_int_equal(f.res[5], 0);
	assert_int_equal(f.res[6], 0x1f);
	assert_int_equal(f.res[7], 0);
	assert_int_equal(f.res[9], f.res[8] + 1);
	assert_true(f.res[10] & 2);
	assert_int_equal(f.res[11], 0);
	struct echo s = snapshot(&f);
	assert_int_equal(s.nw, 4);
	const struct wlog want[4] = {
		{ 0, 1, 0xa1 }, { 2, 2, 0xb2b3 }, { 4, 4, 0xc4c5c6c7u }, { 8, 8, 0xd8d9dadbdcdddedfull },
	};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(s.w[i].off, want[i].off);
		assert_int_equal(s.w[i].len, want[i].len);
		assert_int_equal(s.w[i].val, want[i].val);
	}
}

static void test_interrupt_status(void **state)
{
	struct fixture f = { 0 };
	start(state, &f, 8);
	kt_run_expect(f.e->kt, 0, 0x100);
	fetch(&f);
	assert_true(f.res[0] & 1);
	assert_int_equal(f.res[1], 0);
	assert_int_equal(f.res[2] & 1, 0); /* VRING_AVAIL_F_NO_INTERRUPT honoured */
	vmm_virtio_mmio_stats s;
	vmm_virtio_mmio_get_stats(f.t, &s);
	assert_int_equal(s.interrupts, 1);
}

static void check_broken(struct fixture *f)
{
	fetch(f);
	assert_true(f->res[0] & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(f->res[0] & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_true(f->res[1] & 2); /* config-change interrupt */
	assert_true(vmm_virtio_mmio_status(f->t) & VIRTIO_CONFIG_S_NEEDS_RESET);
	char err[256];
	vmm_virtio_mmio_error(f->t, err, sizeof err);
	print_message("broken device: %s\n", err);
	assert_true(strlen(err) > 0);
	assert_non_null(strstr(err, "echo"));
}

static void check_recovered(struct fixture *f)
{
	fetch(f);
	assert_true(f->res[2] & VIRTIO_CONFIG_S_NEEDS_RESET); /* still broken before reset */
	assert_int_equal(f->res[3], 8);
	assert_false(f->res[4] & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_false(vmm_virtio_mmio_status(f->t) & VIRTIO_CONFIG_S_NEEDS_RESET);
	char err[256];
	assert_string_equal(vmm_virtio_mmio_error(f->t, err, sizeof err), "");
}

static void test_broken_ring(void **state)
{
	struct fixture f = { 0 };
	start(state, &f, 9);
	kt_run_expect(f.e->kt, 0, 0x101);
	check_broken(&f);
	int notifies = snapshot(&f).notifies;
	kt_run_expect(f.e->kt, 0, 0x100);
	check_recovered(&f);
	/* The notify sent while broken never reached the device. */
	assert_int_equal(snapshot(&f).notifies, notifies + 1);
	assert_int_equal(snapshot(&f).resets, 1);
}

static void test_bad_queue_setup(void **state)
{
	struct fixture f = { 0 };
	start(state, &f, 10);
	kt_run_expect(f.e->kt, 0, 0x100);
	fetch(&f);
	for (int i = 0; i < 4; i++)
		assert_int_equal(f.res[i], 0); /* size 3, 1024, 0, misaligned: not ready */
	assert_int_equal(f.res[4], 1);      /* aligned, checked against RAM at DRIVER_OK */
	assert_true(f.res[5] & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(f.res[6], 8);
	assert_int_equal(snapshot(&f).activates, 1); /* the refused one never activated */
}

static void test_no_work_before_driver_ok(void **state)
{
	struct fixture f = { 0 };
	start(state, &f, 11);
	kt_run_expect(f.e->kt, 0, 0x100);
	fetch(&f);
	assert_int_equal(f.res[0], 0);
	assert_int_equal(f.res[1], 8);
	assert_int_equal(f.res[2], 1);
}

/* Two VMs in one process: the first one's device broken on purpose, the second works
 * meanwhile; then the first recovers. */
static void test_second_vm_unaffected(void **state)
{
	struct fixture a = { 0 }, b = { 0 };
	start(state, &a, 9);
	kt_run_expect(a.e->kt, 0, 0x101);
	check_broken(&a);

	kt_opts o = { .guest = "virtio_mmio", .cpl = 3 };
	b.e = vt_new(&o);
	b.t = vt_attach(b.e, 0, echo_create(&b.echo));
	kt_set_arg(b.e->kt, 0, 4);
	kt_run_expect(b.e->kt, 0, 0x100);
	fetch(&b);
	assert_int_equal(b.res[0], 8);
	assert_int_equal(b.res[2], 8);
	assert_false(vmm_virtio_mmio_status(b.t) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(vmm_virtio_mmio_status(a.t) & VIRTIO_CONFIG_S_NEEDS_RESET);
	vt_destroy(b.e);

	kt_run_expect(a.e->kt, 0, 0x100);
	check_recovered(&a);
}

/* Interrupts reach a CPL-0 guest through the IOAPIC pin: an irqfd with the kernel
 * irqchip, vmm_irq_pulse with the split one (tests/guests/virtio_irq.c). */
static void irq_delivery(void **state, vmm_irqchip_mode mode)
{
	kt_opts o = { .guest = "virtio_irq", .cpl = 0, .irqchip = mode };
	vt_env *e = vt_create(state, &o);
	struct echo *ec;
	vmm_virtio_mmio *t = vt_attach(e, 0, echo_create(&ec));
	kt_set_gate(e->kt, 0, 0x45, "vio_irq_handler", 0);
	kt_run_expect(e->kt, 0, 0x100);
	uint64_t res[4];
	kt_read(e->kt, kt_sym(e->kt, "res"), res, sizeof res);
	assert_true(res[0] >= 1);     /* the handler ran */
	assert_true(res[1] & 1);      /* and saw the used-buffer bit */
	assert_int_equal(res[2], 8);
	assert_int_equal(res[3], 0);  /* acknowledged */
	vmm_virtio_mmio_stats s;
	vmm_virtio_mmio_get_stats(t, &s);
	assert_true(s.interrupts >= 1);
}

static void test_irq_kernel_irqchip(void **state) { irq_delivery(state, VMM_IRQCHIP_KERNEL); }
static void test_irq_split_irqchip(void **state) { irq_delivery(state, VMM_IRQCHIP_SPLIT); }

/* Attach errors: misaligned base, a taken range, a device attached twice. */
static void test_attach_errors(void **state)
{
	kt_opts o = { .guest = NULL, .cpl = 3 };
	vt_env *e = vt_create(state, &o);
	struct echo *ec;
	vmm_virtio_device *dev = echo_create(&ec);
	vmm_virtio_mmio *t = NULL;
	vmm_virtio_mmio_opts mo = VMM_VIRTIO_MMIO_OPTS_INIT;
	mo.base = VIO_TEST_BASE(0) + 0x10;
	vt_stop_loop(e);
	assert_int_equal(vmm_virtio_mmio_attach(&t, e->kt->vm, e->loop, &mo, dev), -EINVAL);
	mo.base = 0xfffffffffffff000ull;
	assert_int_equal(vmm_virtio_mmio_attach(&t, e->kt->vm, e->loop, &mo, dev), -EINVAL);
	mo.base = VIO_TEST_BASE(0);
	assert_int_equal(vmm_virtio_mmio_attach(&t, e->kt->vm, NULL, &mo, dev), -EINVAL);
	vt_start_loop(e);
	vt_attach(e, 0, dev); /* dev now belongs to the transport */
	struct echo *ec2;
	vmm_virtio_device *dev2 = echo_create(&ec2);
	vt_stop_loop(e);
	/* The range is taken. */
	assert_int_equal(vmm_virtio_mmio_attach(&t, e->kt->vm, e->loop, &mo, dev2), -EEXIST);
	/* An attached device cannot be attached again. */
	mo.base = VIO_TEST_BASE(1);
	assert_int_equal(vmm_virtio_mmio_attach(&t, e->kt->vm, e->loop, &mo, dev), -EINVAL);
	/* A failed attach left dev2 with us, and nothing behind: it attaches fine now. */
	assert_int_equal(vmm_virtio_mmio_attach(&t, e->kt->vm, e->loop, &mo, dev2), 0);
	e->dev[1] = t;
	vt_start_loop(e);
	/* vmm_virtio_device_destroy on an attached device is a no-op (no double free). */
	vmm_virtio_device_destroy(dev2);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_registers, vt_teardown),
		cmocka_unit_test_teardown(test_features, vt_teardown),
		cmocka_unit_test_teardown(test_driver_ok_needs_features_ok, vt_teardown),
		cmocka_unit_test_teardown(test_queue_locked_after_driver_ok, vt_teardown),
		cmocka_unit_test_teardown(test_notify_index, vt_teardown),
		cmocka_unit_test_teardown(test_notify_without_ioeventfd, vt_teardown),
		cmocka_unit_test_teardown(test_reset, vt_teardown),
		cmocka_unit_test_teardown(test_config_space, vt_teardown),
		cmocka_unit_test_teardown(test_interrupt_status, vt_teardown),
		cmocka_unit_test_teardown(test_broken_ring, vt_teardown),
		cmocka_unit_test_teardown(test_bad_queue_setup, vt_teardown),
		cmocka_unit_test_teardown(test_no_work_before_driver_ok, vt_teardown),
		cmocka_unit_test_teardown(test_second_vm_unaffected, vt_teardown),
		cmocka_unit_test_teardown(test_attach_errors, vt_teardown),
		cmocka_unit_test_teardown(test_irq_kernel_irqchip, vt_teardown),
		cmocka_unit_test_teardown(test_irq_split_irqchip, vt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
