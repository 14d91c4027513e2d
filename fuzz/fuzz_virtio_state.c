/* Fuzz target: the device state loader (lib/virtio/mmio_state.c, virtq_state.h, and the
 * built-in devices' load_state) on a hostile blob, without a VM.
 *
 * Input (gen_virtio_state_seeds.py writes seeds in this format):
 *   byte 0      bits 0-1 device: 0 the "probe" device below (2 queues of at most 16, 8
 *               bytes of config, a state record of its own), 1 virtio-console (callback
 *               back end), 2 virtio-balloon, 3 virtio-rng (no state record);
 *               bit 7: seal the blob first (its length field and CRC made right), so
 *               mutations get past the checksum to the checks behind it
 *   u16 n, then n bytes copied into guest RAM at 0x1000 (rings and descriptors the
 *               in-flight heads of the blob point at), RAM [0, 64 KiB) zeroed first
 *   the rest    the blob given to vmmio_load_state
 *
 * Beyond "no crash": a refused blob leaves the transport as attached (status 0, no
 * queue ready, the device never activated); an accepted one saves again, the saved
 * blob loads into a third fresh transport, and that one saves byte for byte the same;
 * then the loaded device runs its notifications (in-flight chains come back from pop
 * and are walked against RAM) and is reset by the driver.
 * With FUZZ_VIRTIO_STATE_VERBOSE set, each input's load result is printed (to see that
 * the seeds are accepted).
 */
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvmm/libvmm.h>
#include <libvmm/virtio_balloon.h>
#include <libvmm/virtio_console.h>
#include <libvmm/virtio_rng.h>
#include "snapshot/snapshot_internal.h" /* vmm_crc32c */
#include "virtio/mmio_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM_SIZE 0x10000u
#define RAM_INPUT 0x1000u
#define PROBE_QUEUES 2
#define PROBE_QMAX 16
#define PROBE_CONFIG 8
#define PROBE_STATE_MAX 32

static void check(bool cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_virtio_state: broken promise: %s (last error: %s)\n", what,
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
	uint8_t state[PROBE_STATE_MAX];
	size_t state_len;
	vmm_virtq_chain chain;
};

static void probe_config_read(void *ctx, uint32_t off, void *data, uint32_t len)
{
	(void)ctx;
	check((uint64_t)off + len <= PROBE_CONFIG, "config read inside config_size");
	memset(data, 0x5a, len);
}

static int probe_activate(void *ctx, vmm_virtio_dev *dev, uint64_t features)
{
	struct probe *p = ctx;
	check(!p->activated, "activate twice without reset");
	check(features == vmm_virtio_dev_features(dev), "activate gets the accepted features");
	p->activated = true;
	return 0;
}

static void probe_notify(void *ctx, vmm_virtio_dev *dev, uint16_t queue)
{
	struct probe *p = ctx;
	check(p->activated, "notify only while activated");
	vmm_virtq *vq = vmm_virtio_dev_queue(dev, queue);
	vmm_mem *mem = vmm_virtio_dev_mem(dev);
	for (unsigned n = 0; n < 2u * PROBE_QMAX; n++) {
		int r = vmm_virtq_pop(vq, mem, &p->chain);
		if (r == 0)
			break;
		if (r < 0) {
			vmm_virtio_dev_fail(dev, vmm_last_error());
			return;
		}
		uint8_t buf[64];
		size_t got = vmm_virtq_chain_read(&p->chain, 0, buf, sizeof buf);
		size_t put = vmm_virtq_chain_write(&p->chain, 0, buf, got);
		if (vmm_virtq_push(vq, mem, p->chain.head, (uint32_t)put) != 0) {
			vmm_virtio_dev_fail(dev, vmm_last_error());
			return;
		}
	}
	vmm_virtio_dev_interrupt(dev, queue);
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

static int probe_save(void *ctx, vmm_virtio_dev *dev, void *buf, size_t cap, size_t *len)
{
	struct probe *p = ctx;
	(void)dev;
	*len = p->state_len;
	if (buf && cap < p->state_len)
		return -ENOSPC;
	if (buf)
		memcpy(buf, p->state, p->state_len);
	return 0;
}

static int probe_load(void *ctx, vmm_virtio_dev *dev, const void *buf, size_t len)
{
	struct probe *p = ctx;
	(void)dev;
	if (len > PROBE_STATE_MAX || (len && memcmp(buf, "PRB1", len < 4 ? len : 4)))
		return -EINVAL;
	memcpy(p->state, buf, len);
	p->state_len = len;
	return 0;
}

static void console_sink(void *ctx, const void *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
}

static vmm_virtio_device *make_device(uint8_t sel)
{
	vmm_virtio_device *d = NULL;
	switch (sel % 4) {
	case 1: {
		vmm_virtio_console_opts o = VMM_VIRTIO_CONSOLE_OPTS_INIT;
		o.backend = VMM_CONSOLE_CALLBACK;
		o.output = console_sink;
		check(vmm_virtio_console_create(&d, &o) == 0, "console create");
		return d;
	}
	case 2:
		check(vmm_virtio_balloon_create(&d, NULL) == 0, "balloon create");
		return d;
	case 3: {
		vmm_virtio_rng_opts o = VMM_VIRTIO_RNG_OPTS_INIT;
		check(vmm_virtio_rng_create(&d, &o) == 0, "rng create");
		return d;
	}
	default:
		break;
	}
	struct probe *p = calloc(1, sizeof *p);
	check(p != NULL, "calloc");
	vmm_virtio_device_ops ops = { .size = sizeof ops };
	ops.name = "probe";
	ops.device_id = 0x4243;
	ops.num_queues = PROBE_QUEUES;
	ops.queue_size_max = PROBE_QMAX;
	ops.features = 0x7;
	ops.config_size = PROBE_CONFIG;
	ops.config_read = probe_config_read;
	ops.activate = probe_activate;
	ops.notify = probe_notify;
	ops.reset = probe_reset;
	ops.destroy = probe_destroy;
	ops.save_state = probe_save;
	ops.load_state = probe_load;
	check(vmm_virtio_device_create(&d, &ops, p) == 0, "device create");
	return d;
}

/* ---- hooks: no VM ---- */

static void fuzz_kick(struct vmm_virtio_dev *dev, uint16_t queue)
{
	vdev_notify(dev, queue);
}

static void fuzz_irq(struct vmm_virtio_dev *dev)
{
	(void)dev;
}

static const struct vdev_hooks hooks = { .kick = fuzz_kick, .irq = fuzz_irq };

static void attach(struct vmm_virtio_dev *dev, uint8_t sel)
{
	vmm_virtio_device *d = make_device(sel);
	check(vdev_init(dev, d, get_mem(), NULL, &hooks) == 0, "vdev_init");
	d->dev = dev;
}

static uint8_t *save(struct vmm_virtio_dev *dev, size_t *len)
{
	check(vmmio_save_state(dev, NULL, 0, len) == 0, "sizing a save");
	uint8_t *b = malloc(*len);
	check(b != NULL, "malloc");
	size_t got;
	check(vmmio_save_state(dev, b, *len, &got) == 0 && got == *len, "save");
	return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	uint8_t sel = data[0] % 4;
	bool seal = data[0] & 0x80;
	size_t n = (size_t)data[1] | (size_t)data[2] << 8;
	data += 3;
	size -= 3;
	if (n > size)
		n = size;
	if (n > RAM_SIZE - RAM_INPUT)
		n = RAM_SIZE - RAM_INPUT;
	get_mem();
	memset(ram, 0, RAM_SIZE);
	memcpy(ram + RAM_INPUT, data, n);
	data += n;
	size -= n;

	uint8_t *blob = malloc(size ? size : 1);
	check(blob != NULL, "malloc");
	memcpy(blob, data, size);
	if (seal && size >= 16) {
		uint32_t len = (uint32_t)size, zero = 0;
		memcpy(blob + 8, &len, 4);
		memcpy(blob + 12, &zero, 4);
		uint32_t crc = vmm_crc32c(0, blob, size);
		memcpy(blob + 12, &crc, 4);
	}

	static struct vmm_virtio_dev a, b;
	attach(&a, sel);
	int r = vmmio_load_state(&a, blob, size);
	free(blob);
	if (getenv("FUZZ_VIRTIO_STATE_VERBOSE")) /* for checking seeds: what the loader said */
		fprintf(stderr, "load: %d %s\n", r, r ? vmm_last_error() : "");
	if (r != 0) {
		check(r == -EINVAL || r == -ENOMEM, "a refused load says -EINVAL");
		check(atomic_load(&a.status) == 0, "a refused load leaves the status");
		check(!a.activated && !a.active, "a refused load activates nothing");
		for (uint16_t i = 0; i < a.nq; i++)
			check(!a.q[i].ready && !vmm_virtq_ready(a.q[i].vq), "a refused load readies no queue");
		vdev_teardown(&a, true);
		return 0;
	}
	check(!(a.active && a.failed), "loaded: active or failed, not both");
	/* What was accepted saves, loads elsewhere, and saves the same again. */
	size_t l1, l2;
	uint8_t *s1 = save(&a, &l1);
	attach(&b, sel);
	check(vmmio_load_state(&b, s1, l1) == 0, "a saved blob loads");
	uint8_t *s2 = save(&b, &l2);
	check(l1 == l2 && memcmp(s1, s2, l1) == 0, "save, load, save gives the same blob");
	free(s1);
	free(s2);
	vdev_teardown(&b, true);
	/* The loaded device at work: replayed chains are walked against RAM. */
	vdev_run_rescheduled(&a);
	for (uint16_t i = 0; i < a.nq; i++)
		vdev_notify(&a, i);
	vdev_set_status(&a, 0);
	vdev_teardown(&a, true);
	return 0;
}
