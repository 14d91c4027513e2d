/* Fuzz target: the virtio-mmio register state machine (lib/virtio/mmio.c + device.c)
 * driven by a sequence of register accesses and guest-memory writes, without a VM:
 * doorbells call the device synchronously and interrupts only count.
 *
 * Input (gen_virtio_mmio_seeds.py writes seeds in this format):
 *   byte 0      device: bit 0 clear = the "probe" device below (3 queues of at most 8,
 *               24 bytes of config), set = virtio-rng (bit 1: max 64 bytes a request)
 *   then ops, each an opcode byte (value % 6) and its arguments, little-endian:
 *   0 WRITE  u16 off, u8 size code (1 << (code & 3)), u64 value
 *   1 READ   u16 off, u8 size code
 *   2 MEM    u16 gpa, u8 len, len bytes       (the driver writing rings and buffers)
 *   3 RESCHED                                  (run notifications the device deferred)
 *   4 DEVICE u8 what: 0 config changed, 1 device fails, else interrupt(queue what % 4)
 *   5 REG    u8 register (index into regs[]), u32 value   (a 32-bit register write)
 * Guest RAM is [0, 64 KiB), zeroed for every input.
 *
 * Beyond "no crash": DRIVER_OK never without FEATURES_OK; accepted features are offered
 * ones and include VERSION_1; the queues do not change while DRIVER_OK is set (except by
 * reset); the device is notified only while activated; config accesses reach it only
 * inside config_size; identification registers never change; InterruptStatus has
 * only bits 0-1.
 */
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvmm/libvmm.h>
#include "virtio/mmio_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM_SIZE 0x10000u
#define PROBE_QUEUES 3
#define PROBE_QMAX 8
#define PROBE_CONFIG 24

static void check(bool cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_virtio_mmio: broken promise: %s (last error: %s)\n", what,
			vmm_last_error());
		abort();
	}
}

static vmm_mem *fuzz_mem;
static uint8_t *ram;

static vmm_mem *get_mem(void)
{
	if (fuzz_mem)
		return fuzz_mem;
	check(vmm_mem_create(&fuzz_mem) == 0, "vmm_mem_create");
	vmm_mem_region_opts o = VMM_MEM_REGION_OPTS_INIT;
	o.gpa = 0;
	o.len = RAM_SIZE;
	o.backing = VMM_MEM_ANON;
	check(vmm_mem_add_region(fuzz_mem, &o) == 0, "vmm_mem_add_region");
	void *host;
	check(vmm_mem_translate(fuzz_mem, 0, RAM_SIZE, true, &host) == 0, "translate RAM");
	ram = host;
	return fuzz_mem;
}

/* ---- the probe device: echoes readable bytes into writable ones ---- */

struct probe {
	bool activated;
	uint8_t cfg[PROBE_CONFIG];
	vmm_virtq_chain chain;
};

static void probe_config_read(void *ctx, uint32_t off, void *data, uint32_t len)
{
	struct probe *p = ctx;
	check((uint64_t)off + len <= PROBE_CONFIG, "config read inside config_size");
	memcpy(data, p->cfg + off, len);
}

static void probe_config_write(void *ctx, uint32_t off, const void *data, uint32_t len)
{
	struct probe *p = ctx;
	check((uint64_t)off + len <= PROBE_CONFIG, "config write inside config_size");
	memcpy(p->cfg + off, data, len);
}

static int probe_activate(void *ctx, vmm_virtio_dev *dev, uint64_t features)
{
	struct probe *p = ctx;
	check(!p->activated, "activate twice without reset");
	check(features == vmm_virtio_dev_features(dev), "activate gets the accepted features");
	p->activated = true;
	/* Refuse one feature combination, to exercise the refusal path. */
	return (features & 0xf) == 0xf ? -EINVAL : 0;
}

static void probe_notify(void *ctx, vmm_virtio_dev *dev, uint16_t queue)
{
	struct probe *p = ctx;
	check(p->activated, "notify only while activated");
	check(queue < PROBE_QUEUES, "notify of an existing queue");
	vmm_virtq *vq = vmm_virtio_dev_queue(dev, queue);
	vmm_mem *mem = vmm_virtio_dev_mem(dev);
	unsigned n = 0, limit = vmm_virtq_size(vq);
	for (; n < limit; n++) {
		int r = vmm_virtq_pop(vq, mem, &p->chain);
		if (r == 0)
			break;
		if (r < 0) {
			vmm_virtio_dev_fail(dev, vmm_last_error());
			return;
		}
		uint8_t buf[256];
		size_t got = vmm_virtq_chain_read(&p->chain, 0, buf, sizeof buf);
		size_t put = vmm_virtq_chain_write(&p->chain, 0, buf, got);
		if (vmm_virtq_push(vq, mem, p->chain.head, (uint32_t)put) != 0) {
			vmm_virtio_dev_fail(dev, vmm_last_error());
			return;
		}
	}
	vmm_virtio_dev_interrupt(dev, queue);
	if (n == limit)
		vmm_virtio_dev_reschedule(dev, queue);
}

static void probe_reset(void *ctx, vmm_virtio_dev *dev)
{
	struct probe *p = ctx;
	(void)dev;
	check(p->activated, "reset only after activate");
	p->activated = false;
}

static void probe_destroy(void *ctx)
{
	free(ctx);
}

static vmm_virtio_device *make_device(uint8_t sel)
{
	vmm_virtio_device *d = NULL;
	if (sel & 1) {
		vmm_virtio_rng_opts o = VMM_VIRTIO_RNG_OPTS_INIT;
		o.max_bytes_per_request = (sel & 2) ? 64 : 0;
		check(vmm_virtio_rng_create(&d, &o) == 0, "rng create");
		return d;
	}
	struct probe *p = calloc(1, sizeof *p);
	check(p != NULL, "calloc");
	for (unsigned i = 0; i < PROBE_CONFIG; i++)
		p->cfg[i] = (uint8_t)(0x30 + i);
	vmm_virtio_device_ops ops = { .size = sizeof ops };
	ops.name = "probe";
	ops.device_id = 0x4242;
	ops.num_queues = PROBE_QUEUES;
	ops.queue_size_max = PROBE_QMAX;
	ops.features = 0xf | 1ull << 40 | 1ull << 55; /* bit 40: transport range, dropped */
	ops.config_size = PROBE_CONFIG;
	ops.config_read = probe_config_read;
	ops.config_write = probe_config_write;
	ops.activate = probe_activate;
	ops.notify = probe_notify;
	ops.reset = probe_reset;
	ops.destroy = probe_destroy;
	check(vmm_virtio_device_create(&d, &ops, p) == 0, "device create");
	return d;
}

/* ---- hooks: no VM ---- */

static unsigned irqs;

static void fuzz_kick(struct vmm_virtio_dev *dev, uint16_t queue)
{
	vdev_notify(dev, queue); /* the lock is already held by the register access */
}

static void fuzz_irq(struct vmm_virtio_dev *dev)
{
	(void)dev;
	irqs++;
}

static const struct vdev_hooks hooks = { .kick = fuzz_kick, .irq = fuzz_irq };

/* ---- invariants ---- */

struct qsnap {
	uint64_t desc, avail, used;
	uint16_t size;
	bool ready;
};

static void snap_queues(struct vmm_virtio_dev *dev, struct qsnap *s)
{
	for (uint16_t i = 0; i < dev->nq; i++) {
		vmm_virtq_addrs(dev->q[i].vq, &s[i].desc, &s[i].avail, &s[i].used);
		s[i].size = vmm_virtq_size(dev->q[i].vq);
		s[i].ready = vmm_virtq_ready(dev->q[i].vq);
	}
}

static void check_state(struct vmm_virtio_dev *dev)
{
	uint32_t st = atomic_load(&dev->status);
	if (st & VIRTIO_CONFIG_S_DRIVER_OK)
		check(st & VIRTIO_CONFIG_S_FEATURES_OK, "DRIVER_OK implies FEATURES_OK");
	if (st & VIRTIO_CONFIG_S_FEATURES_OK) {
		check(!(dev->features & ~dev->offered), "accepted features were offered");
		check(dev->features & 1ull << VIRTIO_F_VERSION_1, "VERSION_1 accepted");
	}
	check(!(dev->offered & (1ull << 40)), "transport bits the device set are not offered");
	check(!(atomic_load(&dev->isr) & ~3u), "InterruptStatus has bits 0-1 only");
	check(vmmio_read(dev, VIRTIO_MMIO_MAGIC_VALUE, 4) == VMMIO_MAGIC, "magic");
	check(vmmio_read(dev, VIRTIO_MMIO_VERSION, 4) == VMMIO_VERSION, "version");
	if (dev->queue_sel >= dev->nq)
		check(vmmio_read(dev, VIRTIO_MMIO_QUEUE_NUM_MAX, 4) == 0, "no such queue: max 0");
}

static const uint16_t regs[] = {
	VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL,
	VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_READY,
	VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_STATUS,
	VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, VIRTIO_MMIO_QUEUE_AVAIL_LOW,
	VIRTIO_MMIO_QUEUE_AVAIL_HIGH, VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_QUEUE_USED_HIGH,
	VIRTIO_MMIO_SHM_SEL, VMMIO_CONFIG, VMMIO_CONFIG + 4, VMMIO_CONFIG + 20,
};

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void do_write(struct vmm_virtio_dev *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct qsnap before[VMM_VIRTIO_MAX_QUEUES], after[VMM_VIRTIO_MAX_QUEUES];
	memset(before, 0, sizeof before); /* memcmp below also sees the padding */
	memset(after, 0, sizeof after);
	bool locked = atomic_load(&dev->status) & VIRTIO_CONFIG_S_DRIVER_OK;
	if (locked)
		snap_queues(dev, before);
	vmmio_write(dev, off, size, val);
	/* Only a reset (status 0) may change the queues of a live device. */
	if (locked && (atomic_load(&dev->status) & VIRTIO_CONFIG_S_DRIVER_OK)) {
		snap_queues(dev, after);
		check(memcmp(before, after, dev->nq * sizeof before[0]) == 0,
		      "queues locked after DRIVER_OK");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	vmm_mem *mem = get_mem();
	memset(ram, 0, RAM_SIZE);
	vmm_virtio_device *device = make_device(data[0]);
	static struct vmm_virtio_dev dev;
	check(vdev_init(&dev, device, mem, NULL, &hooks) == 0, "vdev_init");
	device->dev = &dev;

	size_t i = 1;
	while (i < size) {
		uint8_t op = data[i++] % 6;
		const uint8_t *a = data + i;
		size_t left = size - i;
		pthread_mutex_lock(&dev.lock);
		switch (op) {
		case 0:
			if (left < 11)
				goto done;
			do_write(&dev, get_le(a, 2) & (VMM_VIRTIO_MMIO_SIZE - 1), 1u << (a[2] & 3),
				 get_le(a + 3, 8));
			i += 11;
			break;
		case 1: {
			if (left < 3)
				goto done;
			uint64_t off = get_le(a, 2) & (VMM_VIRTIO_MMIO_SIZE - 1);
			unsigned sz = 1u << (a[2] & 3);
			/* The bus never hands out an access crossing the range's end. */
			if (off + sz <= VMM_VIRTIO_MMIO_SIZE) {
				uint64_t v = vmmio_read(&dev, off, sz);
				if (sz < 8)
					check(v >> (8 * sz) == 0, "read value fits the access size");
			}
			i += 3;
			break;
		}
		case 2: {
			if (left < 3)
				goto done;
			uint32_t gpa = (uint32_t)get_le(a, 2), len = a[2];
			if (len > left - 3)
				len = (uint32_t)(left - 3);
			if (gpa + len > RAM_SIZE)
				len = RAM_SIZE - gpa;
			memcpy(ram + gpa, a + 3, len);
			i += 3 + (size_t)a[2];
			break;
		}
		case 3:
			vdev_run_rescheduled(&dev);
			break;
		case 4:
			if (left < 1)
				goto done;
			if (a[0] == 0)
				vmm_virtio_dev_config_changed(&dev);
			else if (a[0] == 1)
				vmm_virtio_dev_fail(&dev, "fuzz");
			else
				vmm_virtio_dev_interrupt(&dev, a[0] % 4);
			i += 1;
			break;
		case 5:
			if (left < 5)
				goto done;
			do_write(&dev, regs[a[0] % (sizeof regs / sizeof regs[0])], 4,
				 (uint32_t)get_le(a + 1, 4));
			i += 5;
			break;
		}
		check_state(&dev);
		pthread_mutex_unlock(&dev.lock);
		continue;
done:
		pthread_mutex_unlock(&dev.lock);
		break;
	}
	vdev_teardown(&dev, true);
	return 0;
}
