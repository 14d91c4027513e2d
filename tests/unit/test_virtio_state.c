/* Device state blobs (lib/virtio/mmio_state.c, virtq_state.h) without a VM: a transport
 * driven through its registers on mock guest memory is saved and loaded into a second,
 * fresh transport on the same memory, which must continue exactly where the first one
 * was (registers, queue progress, in-flight chains handed to the device again, the
 * device's own state); and every malformed blob is refused with -EINVAL, leaving the
 * second transport untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/snapshot_internal.h" /* vmm_crc32c, to re-seal mutated blobs */
#include "virtio/mmio_internal.h"
#include "virtio/virtq_state.h"

#define RAM 0x10000u
#define QSIZE 8u
#define Q0_DESC 0x1000u
#define Q0_AVAIL 0x1100u
#define Q0_USED 0x1200u
#define Q1_DESC 0x2000u
#define Q1_AVAIL 0x2100u
#define Q1_USED 0x2200u
#define BUF 0x4000u

/* ---- a device with a little state of its own ---- */

struct tdev {
	int activates, resets, notifies, loads;
	uint64_t features;
	int load_result;
	char state[16];     /* what save_state writes */
	char loaded[16];    /* what load_state got */
	size_t loaded_len;
	bool has_state;
};

static void t_config_read(void *ctx, uint32_t off, void *data, uint32_t len)
{
	(void)ctx;
	memset(data, (int)(0x40 + off), len);
}

static int t_activate(void *ctx, vmm_virtio_dev *dev, uint64_t features)
{
	struct tdev *d = ctx;
	(void)dev;
	d->activates++;
	d->features = features;
	return 0;
}

static void t_notify(void *ctx, vmm_virtio_dev *dev, uint16_t queue)
{
	struct tdev *d = ctx;
	(void)dev;
	(void)queue;
	d->notifies++;
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
}

static int t_save(void *ctx, vmm_virtio_dev *dev, void *buf, size_t cap, size_t *len)
{
	struct tdev *d = ctx;
	(void)dev;
	*len = d->has_state ? strlen(d->state) : 0;
	if (buf && cap < *len)
		return -ENOSPC;
	if (buf)
		memcpy(buf, d->state, *len);
	return 0;
}

static int t_load(void *ctx, vmm_virtio_dev *dev, const void *buf, size_t len)
{
	struct tdev *d = ctx;
	(void)dev;
	d->loads++;
	if (d->load_result)
		return d->load_result;
	if (len >= sizeof d->loaded)
		return -EINVAL;
	memcpy(d->loaded, buf, len);
	d->loaded[len] = 0;
	d->loaded_len = len;
	return 0;
}

static vmm_virtio_device_ops t_ops(uint32_t device_id, uint16_t nq)
{
	vmm_virtio_device_ops ops = VMM_VIRTIO_DEVICE_OPS_INIT;
	ops.name = "tdev";
	ops.device_id = device_id;
	ops.num_queues = nq;
	ops.queue_size_max = 16;
	ops.features = 1ull << 3;
	ops.config_size = 12;
	ops.config_read = t_config_read;
	ops.activate = t_activate;
	ops.notify = t_notify;
	ops.reset = t_reset;
	ops.destroy = t_destroy;
	ops.save_state = t_save;
	ops.load_state = t_load;
	return ops;
}

/* ---- two transports on one memory: a (saved) and b (loaded) ---- */

struct side {
	vmm_virtio_device *device;
	struct tdev *t;
	struct vmm_virtio_dev dev;
	int irqs;
};

struct fixture {
	vmm_mem *mem;
	vmm_loop *loop;
	uint8_t *ram;
	struct side a, b;
	uint8_t *blob;
	size_t len;
};

static void hook_kick(struct vmm_virtio_dev *dev, uint16_t queue)
{
	vdev_notify(dev, queue);
}

static void hook_irq(struct vmm_virtio_dev *dev)
{
	struct side *s = (struct side *)((char *)dev - offsetof(struct side, dev));
	s->irqs++;
}

static const struct vdev_hooks hooks = { .kick = hook_kick, .irq = hook_irq };

static void side_init(struct fixture *f, struct side *s, vmm_virtio_device_ops ops)
{
	memset(s, 0, sizeof *s);
	s->t = calloc(1, sizeof *s->t);
	assert_non_null(s->t);
	assert_int_equal(vmm_virtio_device_create(&s->device, &ops, s->t), 0);
	assert_int_equal(vdev_init(&s->dev, s->device, f->mem, f->loop, &hooks), 0);
	s->device->dev = &s->dev;
}

static void side_fini(struct side *s)
{
	if (s->device)
		vdev_teardown(&s->dev, true);
	s->device = NULL;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	assert_int_equal(vmm_mem_create(&f->mem), 0);
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.len = RAM;
	o.backing = VMM_MEM_ANON;
	assert_int_equal(vmm_mem_add_region(f->mem, &o), 0);
	void *host;
	assert_int_equal(vmm_mem_translate(f->mem, 0, RAM, true, &host), 0);
	f->ram = host;
	assert_int_equal(vmm_loop_create(&f->loop), 0);
	side_init(f, &f->a, t_ops(0x77, 2));
	side_init(f, &f->b, t_ops(0x77, 2));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	side_fini(&f->a);
	side_fini(&f->b);
	vmm_loop_destroy(f->loop);
	vmm_mem_destroy(f->mem);
	free(f->blob);
	free(f);
	return 0;
}

static uint32_t rd(struct side *s, uint32_t off)
{
	return (uint32_t)vmmio_read(&s->dev, off, 4);
}

static void wr(struct side *s, uint32_t off, uint32_t v)
{
	vmmio_write(&s->dev, off, 4, v);
}

static void negotiate(struct side *s, uint32_t lo, uint32_t hi)
{
	wr(s, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(s, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(s, VIRTIO_MMIO_DRIVER_FEATURES, lo);
	wr(s, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(s, VIRTIO_MMIO_DRIVER_FEATURES, hi);
	wr(s, VIRTIO_MMIO_STATUS, rd(s, VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_FEATURES_OK);
}

static void queue(struct side *s, uint32_t q, uint32_t num, uint32_t desc, uint32_t avail, uint32_t used)
{
	wr(s, VIRTIO_MMIO_QUEUE_SEL, q);
	wr(s, VIRTIO_MMIO_QUEUE_NUM, num);
	wr(s, VIRTIO_MMIO_QUEUE_DESC_LOW, desc);
	wr(s, VIRTIO_MMIO_QUEUE_AVAIL_LOW, avail);
	wr(s, VIRTIO_MMIO_QUEUE_USED_LOW, used);
	wr(s, VIRTIO_MMIO_QUEUE_READY, 1);
}

static void driver_ok(struct side *s)
{
	wr(s, VIRTIO_MMIO_STATUS, rd(s, VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_DRIVER_OK);
}

/* The driver side of queue 0: descriptor `head` is one writable buffer of 16 bytes. */
static void post(struct fixture *f, uint16_t head)
{
	struct vring_desc *d = (struct vring_desc *)(f->ram + Q0_DESC) + head;
	d->addr = BUF + 16u * head;
	d->len = 16;
	d->flags = VRING_DESC_F_WRITE;
	d->next = 0;
	uint16_t *avail = (uint16_t *)(f->ram + Q0_AVAIL);
	uint16_t idx = avail[1];
	avail[2 + idx % QSIZE] = head;
	__atomic_store_n(&avail[1], (uint16_t)(idx + 1), __ATOMIC_RELEASE);
}

static uint16_t used_idx(struct fixture *f)
{
	return ((uint16_t *)(f->ram + Q0_USED))[1];
}

static void save(struct fixture *f, struct side *s)
{
	size_t need = 0;
	assert_int_equal(vmmio_save_state(&s->dev, NULL, 0, &need), 0);
	assert_true(need >= 88);
	free(f->blob);
	f->blob = malloc(need);
	assert_non_null(f->blob);
	size_t len = 0;
	if (need > 1) /* a buffer one byte short is refused and says what is needed */
		assert_int_equal(vmmio_save_state(&s->dev, f->blob, need - 1, &len), -ENOSPC);
	assert_int_equal(len, need);
	assert_int_equal(vmmio_save_state(&s->dev, f->blob, need, &len), 0);
	assert_int_equal(len, need);
	f->len = len;
}

/* Brings a's device up with EVENT_IDX, pops heads 2, 5 and 1 in that order, pushes 5:
 * in flight 2 and 1 (2 older), head 6 posted but not yet popped. */
static void busy_device(struct fixture *f)
{
	struct side *a = &f->a;
	strcpy(a->t->state, "dev-bytes");
	a->t->has_state = true;
	negotiate(a, 1u << 3 | 1u << VIRTIO_RING_F_EVENT_IDX, 1);
	queue(a, 0, QSIZE, Q0_DESC, Q0_AVAIL, Q0_USED);
	queue(a, 1, 4, Q1_DESC, Q1_AVAIL, Q1_USED);
	driver_ok(a);
	assert_int_equal(a->t->activates, 1);
	post(f, 2);
	post(f, 5);
	post(f, 1);
	vmm_virtq *q = vmm_virtio_dev_queue(&a->dev, 0);
	vmm_virtq_chain *c = malloc(sizeof *c);
	assert_non_null(c);
	for (int i = 0; i < 3; i++)
		assert_int_equal(vmm_virtq_pop(q, f->mem, c), 1);
	assert_int_equal(vmm_virtq_push(q, f->mem, 5, 7), 0);
	assert_int_equal(vmm_virtio_dev_interrupt(&a->dev, 0), 0);
	post(f, 6);
	free(c);
	vmm_virtio_dev_config_changed(&a->dev);
	wr(a, VIRTIO_MMIO_QUEUE_SEL, 1);
	wr(a, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
}

static void test_roundtrip_idle(void **state)
{
	struct fixture *f = *state;
	save(f, &f->a);
	assert_int_equal(f->len, 88 + 2 * 44);
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), 0);
	assert_int_equal(rd(&f->b, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(f->b.t->activates, 0);
	assert_int_equal(f->b.t->loads, 1);
	assert_int_equal(f->b.t->loaded_len, 0);
}

static void test_roundtrip_active(void **state)
{
	struct fixture *f = *state;
	struct side *a = &f->a, *b = &f->b;
	busy_device(f);
	uint16_t used_before = used_idx(f);
	assert_int_equal(used_before, 1);
	save(f, a);
	assert_int_equal(f->len, 88 + 2 * 44 + 2 * 2 + strlen("dev-bytes"));
	/* Saving changes nothing: a's queue still has 2 in flight. */
	assert_int_equal(a->dev.queue_sel, 1);
	assert_int_equal(vq_state_inflight(vmm_virtio_dev_queue(&a->dev, 0)), 2);

	int irqs = b->irqs;
	assert_int_equal(vmmio_load_state(&b->dev, f->blob, f->len), 0);
	/* Registers. */
	const uint32_t regs[] = { VIRTIO_MMIO_STATUS, VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_CONFIG_GENERATION,
				  VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_DEVICE_FEATURES };
	for (unsigned i = 0; i < sizeof regs / sizeof regs[0]; i++)
		assert_int_equal(rd(b, regs[i]), rd(a, regs[i]));
	assert_int_equal(b->dev.queue_sel, 1);
	assert_int_equal(b->dev.dev_feat_sel, 1);
	assert_int_equal(b->dev.features, a->dev.features);
	assert_true(rd(b, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
	assert_true(b->irqs > irqs); /* the unacknowledged interrupt is raised again */
	/* The device: activated with the saved features, then given its state. */
	assert_int_equal(b->t->activates, 1);
	assert_int_equal(b->t->features, a->t->features);
	assert_int_equal(b->t->loads, 1);
	assert_string_equal(b->t->loaded, "dev-bytes");
	/* Both queues enabled as they were. */
	vmm_virtq *q = vmm_virtio_dev_queue(&b->dev, 0);
	assert_true(vmm_virtq_ready(q));
	assert_int_equal(vmm_virtq_size(q), QSIZE);
	assert_int_equal(vmm_virtq_size(vmm_virtio_dev_queue(&b->dev, 1)), 4);
	uint64_t d, av, u;
	vmm_virtq_addrs(vmm_virtio_dev_queue(&b->dev, 1), &d, &av, &u);
	assert_int_equal(d, Q1_DESC);
	assert_int_equal(av, Q1_AVAIL);
	assert_int_equal(u, Q1_USED);
	/* Every ready queue gets one notify (lost doorbells). */
	assert_int_equal(b->dev.resched_mask, 3);
	vdev_run_rescheduled(&b->dev);
	assert_int_equal(b->t->notifies, 2);

	/* The in-flight chains come back first, oldest first, then the new one. */
	vmm_virtq_chain *c = malloc(sizeof *c);
	assert_non_null(c);
	uint16_t expect[] = { 2, 1, 6 };
	for (int i = 0; i < 3; i++) {
		assert_int_equal(vmm_virtq_pop(q, f->mem, c), 1);
		assert_int_equal(c->head, expect[i]);
		assert_int_equal(c->n_in, 1);
		assert_int_equal(c->segs[0].gpa, BUF + 16u * expect[i]);
	}
	assert_int_equal(vmm_virtq_pop(q, f->mem, c), 0);
	/* Pushes continue the used ring where a left it. */
	assert_int_equal(vmm_virtq_push(q, f->mem, 1, 3), 0);
	assert_int_equal(used_idx(f), used_before + 1);
	struct vring_used_elem *ue = (struct vring_used_elem *)(f->ram + Q0_USED + 4) + used_before;
	assert_int_equal(ue->id, 1);
	assert_int_equal(ue->len, 3);
	/* A head may not be pushed twice, nor a head never popped. */
	assert_int_equal(vmm_virtq_push(q, f->mem, 1, 0), -EINVAL);
	assert_int_equal(vmm_virtq_push(q, f->mem, 5, 0), -EINVAL);
	assert_int_equal(vmm_virtq_push(q, f->mem, 2, 0), 0);
	assert_int_equal(vmm_virtq_push(q, f->mem, 6, 0), 0);
	free(c);
	/* The driver resets b as usual. */
	wr(b, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(b->t->resets, 1);
}

/* Save of a loaded device (before its replayed chains were taken) gives the same blob. */
static void test_resave_identical(void **state)
{
	struct fixture *f = *state;
	busy_device(f);
	save(f, &f->a);
	uint8_t *first = f->blob;
	size_t first_len = f->len;
	f->blob = NULL;
	f->b.t->has_state = true;
	strcpy(f->b.t->state, "dev-bytes");
	assert_int_equal(vmmio_load_state(&f->b.dev, first, first_len), 0);
	save(f, &f->b);
	assert_int_equal(f->len, first_len);
	assert_memory_equal(f->blob, first, first_len);
	free(first);
}

/* A push of a replayed head before pop (a device that knew it) removes it from replay. */
static void test_push_before_replay(void **state)
{
	struct fixture *f = *state;
	busy_device(f);
	save(f, &f->a);
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), 0);
	vmm_virtq *q = vmm_virtio_dev_queue(&f->b.dev, 0);
	assert_int_equal(vmm_virtq_push(q, f->mem, 2, 0), 0);
	vmm_virtq_chain *c = malloc(sizeof *c);
	assert_non_null(c);
	assert_int_equal(vmm_virtq_pop(q, f->mem, c), 1);
	assert_int_equal(c->head, 1);
	assert_int_equal(vmm_virtq_pop(q, f->mem, c), 1);
	assert_int_equal(c->head, 6);
	free(c);
}

static void test_roundtrip_setup_phase(void **state)
{
	struct fixture *f = *state;
	struct side *a = &f->a, *b = &f->b;
	negotiate(a, 1u << 3, 1);
	queue(a, 0, 4, Q0_DESC, Q0_AVAIL, Q0_USED);
	wr(a, VIRTIO_MMIO_QUEUE_SEL, 1);
	wr(a, VIRTIO_MMIO_QUEUE_NUM, 5); /* written, never made ready: kept as written */
	save(f, a);
	assert_int_equal(vmmio_load_state(&b->dev, f->blob, f->len), 0);
	assert_int_equal(rd(b, VIRTIO_MMIO_STATUS), rd(a, VIRTIO_MMIO_STATUS));
	assert_int_equal(b->t->activates, 0);
	assert_int_equal(b->dev.q[1].num, 5);
	wr(b, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(rd(b, VIRTIO_MMIO_QUEUE_READY), 1);
	/* The driver finishes its set-up on b. */
	driver_ok(b);
	assert_int_equal(b->t->activates, 1);
	assert_int_equal(b->t->features, 1ull << 3 | 1ull << 32);
	assert_int_equal(vmm_virtq_size(vmm_virtio_dev_queue(&b->dev, 0)), 4);
}

static void test_roundtrip_failed(void **state)
{
	struct fixture *f = *state;
	struct side *a = &f->a, *b = &f->b;
	negotiate(a, 0, 1);
	queue(a, 0, QSIZE, Q0_DESC, Q0_AVAIL, Q0_USED);
	driver_ok(a);
	vmm_virtio_dev_fail(&a->dev, "the ring was bad");
	save(f, a);
	assert_int_equal(vmmio_load_state(&b->dev, f->blob, f->len), 0);
	assert_true(rd(b, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(rd(b, VIRTIO_MMIO_STATUS), rd(a, VIRTIO_MMIO_STATUS));
	assert_non_null(strstr(b->dev.error, "the ring was bad"));
	assert_int_equal(b->t->activates, 0);
	wr(b, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(b->t->notifies, 0);
	wr(b, VIRTIO_MMIO_STATUS, 0);
	assert_false(rd(b, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* A transport that was used is reset before the load. */
static void test_load_into_used(void **state)
{
	struct fixture *f = *state;
	busy_device(f);
	save(f, &f->a);
	negotiate(&f->b, 0, 1);
	queue(&f->b, 0, 4, Q1_DESC, Q1_AVAIL, Q1_USED);
	driver_ok(&f->b);
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), 0);
	assert_int_equal(f->b.t->resets, 1);
	assert_int_equal(f->b.t->activates, 2);
	assert_int_equal(vmm_virtq_size(vmm_virtio_dev_queue(&f->b.dev, 0)), QSIZE);
}

/* ---- malformed blobs ---- */

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

static void reseal(uint8_t *blob, size_t len)
{
	put32(blob + 12, 0);
	put32(blob + 12, vmm_crc32c(0, blob, len));
}

/* b is untouched after a refused load. */
static void assert_untouched(struct fixture *f)
{
	struct side *b = &f->b;
	assert_int_equal(rd(b, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(b->t->activates, 0);
	assert_int_equal(b->t->loads, 0);
	assert_int_equal(b->dev.queue_sel, 0);
	assert_int_equal(b->dev.config_gen, 0);
	assert_false(vmm_virtq_ready(vmm_virtio_dev_queue(&b->dev, 0)));
	assert_false(b->dev.q[0].ready);
	assert_int_equal(rd(b, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
}

static void refuse(struct fixture *f, const uint8_t *blob, size_t len, const char *why)
{
	assert_int_equal(vmmio_load_state(&f->b.dev, blob, len), -EINVAL);
	if (why && !strstr(vmm_last_error(), why))
		fail_msg("expected \"%s\" in \"%s\"", why, vmm_last_error());
	assert_untouched(f);
}

typedef void (*mutate_fn)(uint8_t *blob);

/* Queue 0's record of busy_device's blob (2 in flight) and queue 1's after it. */
#define Q0 88u
#define Q1 (88u + 44u + 4u)

static void m_magic(uint8_t *b) { b[0] ^= 1; }
static void m_version(uint8_t *b) { put16(b + 4, 2); }
static void m_hsize(uint8_t *b) { put16(b + 6, 96); }
static void m_devid(uint8_t *b) { put32(b + 16, 0x78); }
static void m_nq(uint8_t *b) { put16(b + 20, 3); }
static void m_qmax(uint8_t *b) { put16(b + 22, 24); }
static void m_cfgsize(uint8_t *b) { put32(b + 24, 16); }
static void m_status_bits(uint8_t *b) { put32(b + 28, 0x0f | 0x10); }
static void m_status_ok_no_feat(uint8_t *b) { put32(b + 28, 0x07); }
static void m_offered(uint8_t *b) { put64(b + 32, 1ull << 3 | 1ull << 5); }
static void m_feat_unoffered(uint8_t *b)
{
	put64(b + 40, 1ull << 32 | 1ull << 4);
	put64(b + 48, 1ull << 32 | 1ull << 4);
}
static void m_feat_differ(uint8_t *b) { put64(b + 40, 1ull << 32); }
static void m_feat_no_v1(uint8_t *b)
{
	put64(b + 40, 1ull << 3);
	put64(b + 48, 1ull << 3);
}
static void m_isr(uint8_t *b) { put32(b + 68, 4); }
static void m_flags(uint8_t *b) { put32(b + 76, 1); }
static void m_errlen(uint8_t *b) { put32(b + 84, 300); }
static void m_q_size_pow2(uint8_t *b) { put32(b + Q0, 6); }
static void m_q_size_big(uint8_t *b) { put32(b + Q0, 32); }
static void m_q_desc_align(uint8_t *b) { put64(b + Q0 + 4, Q0_DESC + 8); }
static void m_q_used_align(uint8_t *b) { put64(b + Q0 + 20, Q0_USED + 2); }
static void m_q_outside(uint8_t *b) { put64(b + Q0 + 4, RAM); }
static void m_q_wraps(uint8_t *b) { put64(b + Q0 + 20, 0xfffffffffffffff0ull); }
static void m_q_ready(uint8_t *b) { b[Q0 + 28] = 2; }
static void m_q_flags(uint8_t *b) { b[Q0 + 29] |= 0x80; }
static void m_q_not_enabled(uint8_t *b) { b[Q0 + 29] &= (uint8_t)~1u; }
static void m_q1_progress_unready(uint8_t *b)
{
	b[Q1 + 28] = 0; /* not ready, but enabled */
}
static void m_q_head_range(uint8_t *b) { put16(b + Q0 + 44, QSIZE); }
static void m_q_head_dup(uint8_t *b) { put16(b + Q0 + 46, 2); }
static void m_q_inflight_count(uint8_t *b) { put16(b + Q0 + 30, 5); /* last_avail */ }
static void m_q_inflight_big(uint8_t *b)
{
	put16(b + Q0 + 38, 9);  /* more than the queue size */
	put16(b + Q0 + 30, 10); /* consistent with the indices: last_avail - used = 9 */
}

static void test_malformed(void **state)
{
	struct fixture *f = *state;
	busy_device(f);
	save(f, &f->a);
	uint8_t *m = malloc(f->len + 8);
	assert_non_null(m);

	/* Every truncation, and stray bytes. */
	for (size_t n = 0; n < f->len; n++)
		refuse(f, f->blob, n, NULL);
	memcpy(m, f->blob, f->len);
	m[f->len] = 0;
	put32(m + 8, (uint32_t)f->len + 1);
	reseal(m, f->len + 1);
	refuse(f, m, f->len + 1, "stray");
	/* The checksum catches every single bit flip. */
	for (size_t i = 0; i < f->len; i++) {
		memcpy(m, f->blob, f->len);
		m[i] ^= (uint8_t)(1u << (i % 8));
		refuse(f, m, f->len, NULL);
	}
	memcpy(m, f->blob, f->len);
	m[f->len - 1] ^= 0x20;
	refuse(f, m, f->len, "checksum");

	/* Each field, with a valid checksum. */
	static const struct {
		mutate_fn fn;
		const char *why;
	} cases[] = {
		{ m_magic, "magic" },
		{ m_version, "version" },
		{ m_hsize, "header" },
		{ m_devid, "device id" },
		{ m_nq, "queues" },
		{ m_qmax, "queue_size_max" },
		{ m_cfgsize, "config space" },
		{ m_status_bits, "unknown bits" },
		{ m_status_ok_no_feat, "without FEATURES_OK" },
		{ m_offered, "offered" },
		{ m_feat_unoffered, "subset" },
		{ m_feat_differ, "not the driver's" },
		{ m_feat_no_v1, "VERSION_1" },
		{ m_isr, "interrupt status" },
		{ m_flags, "flags" },
		{ m_errlen, "error text" },
		{ m_q_size_pow2, "power of two" },
		{ m_q_size_big, "power of two" },
		{ m_q_desc_align, "aligned" },
		{ m_q_used_align, "aligned" },
		{ m_q_outside, "not inside guest RAM" },
		{ m_q_wraps, "not inside guest RAM" },
		{ m_q_ready, "ready 2" },
		{ m_q_flags, "flags" },
		{ m_q_not_enabled, "not enabled" },
		{ m_q1_progress_unready, "enabled" },
		{ m_q_head_range, ">= queue size" },
		{ m_q_head_dup, "twice" },
		{ m_q_inflight_count, "in flight" },
		{ m_q_inflight_big, "in flight" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		memcpy(m, f->blob, f->len);
		cases[i].fn(m);
		reseal(m, f->len);
		refuse(f, m, f->len, cases[i].why);
	}
	/* A message built on a callee's keeps both parts intact. */
	memcpy(m, f->blob, f->len);
	m_q_outside(m);
	reseal(m, f->len);
	refuse(f, m, f->len, "tdev: queue 0: virtqueue state: virtqueue: descriptor table [0x10000, +0x80) is not "
			     "inside guest RAM");
	/* Progress on a queue that was not enabled. */
	side_fini(&f->a);
	side_init(f, &f->a, t_ops(0x77, 2));
	save(f, &f->a);
	memcpy(m, f->blob, f->len);
	put16(m + Q0 + 30, 1);
	reseal(m, f->len);
	refuse(f, m, f->len, "progress");
	/* An error text without DEVICE_NEEDS_RESET, and a NUL inside the text. */
	f->a.t->has_state = false;
	save(f, &f->a);
	uint8_t *e = malloc(f->len + 4);
	assert_non_null(e);
	memcpy(e, f->blob, f->len);
	memcpy(e + f->len, "oops", 4);
	put32(e + 8, (uint32_t)f->len + 4);
	put32(e + 84, 4);
	reseal(e, f->len + 4);
	refuse(f, e, f->len + 4, "without DEVICE_NEEDS_RESET");
	put32(e + 28, VIRTIO_CONFIG_S_NEEDS_RESET);
	e[f->len + 1] = 0;
	reseal(e, f->len + 4);
	refuse(f, e, f->len + 4, "NUL");
	free(e);
	free(m);
	refuse(f, NULL, 0, NULL);
}

/* The device refuses its part: the transport is left reset. */
static void test_device_refuses(void **state)
{
	struct fixture *f = *state;
	busy_device(f);
	save(f, &f->a);
	f->b.t->load_result = -EINVAL;
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "device state refused"));
	assert_int_equal(rd(&f->b, VIRTIO_MMIO_STATUS), 0);
	assert_false(vmm_virtq_ready(vmm_virtio_dev_queue(&f->b.dev, 0)));
	assert_int_equal(f->b.t->activates, 1);
	assert_int_equal(f->b.t->resets, 1); /* what was activated was reset */
}

/* Device state for a device that cannot load any; another device type; queue count. */
static void test_other_device(void **state)
{
	struct fixture *f = *state;
	busy_device(f);
	save(f, &f->a);
	side_fini(&f->b);
	vmm_virtio_device_ops ops = t_ops(0x77, 2);
	ops.load_state = NULL; /* one without the other is refused */
	vmm_virtio_device *d = NULL;
	assert_int_equal(vmm_virtio_device_create(&d, &ops, NULL), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "go together"));
	ops.save_state = NULL;
	side_init(f, &f->b, ops);
	refuse(f, f->blob, f->len, "cannot load");
	side_fini(&f->b);
	side_init(f, &f->b, t_ops(0x78, 2));
	refuse(f, f->blob, f->len, "device id");
	side_fini(&f->b);
	side_init(f, &f->b, t_ops(0x77, 3));
	refuse(f, f->blob, f->len, "queues");
	/* A device with a smaller queue_size_max than the saved queue. */
	side_fini(&f->b);
	ops = t_ops(0x77, 2);
	ops.queue_size_max = 4;
	side_init(f, &f->b, ops);
	refuse(f, f->blob, f->len, "power of two in 1..4");
}

static void test_null_args(void **state)
{
	struct fixture *f = *state;
	size_t len;
	assert_int_equal(vmmio_save_state(NULL, NULL, 0, &len), -EINVAL);
	assert_int_equal(vmmio_save_state(&f->a.dev, NULL, 0, NULL), -EINVAL);
	assert_int_equal(vmmio_load_state(NULL, "x", 1), -EINVAL);
	assert_int_equal(vmm_virtio_mmio_save_state(NULL, NULL, 0, &len), -EINVAL);
	assert_int_equal(vmm_virtio_mmio_load_state(NULL, "x", 1), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip_active, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resave_identical, setup, teardown),
		cmocka_unit_test_setup_teardown(test_push_before_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip_setup_phase, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_into_used, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_null_args, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
