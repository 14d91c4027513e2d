/* The built-in devices' own state in device state blobs, without a VM: each device is
 * attached to a transport on mock guest memory (vdev_init with stub hooks), saved, and
 * loaded into a second device of its kind on the same memory.
 *  - console: pending input reaches the guest after the load (replacing what the new
 *    device held); the window size stays;
 *  - net: a random MAC gives way to the saved one, an application's MAC stays;
 *  - blk: a disk of another size or writability is refused;
 *  - balloon: target, actual and counters survive;
 *  - vsock: the guest is sent TRANSPORT_RESET and reads the new device's CID;
 *  - malformed device records are refused, leaving the transport reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvmm/virtio_balloon.h>
#include <libvmm/virtio_blk.h>
#include <libvmm/virtio_console.h>
#include <libvmm/virtio_net.h>
#include <libvmm/virtio_vsock.h>

#include "snapshot/snapshot_internal.h" /* vmm_crc32c */
#include "virtio/mmio_internal.h"

#define RAM 0x20000u
#define QSIZE 8u
#define QBASE(q) (0x1000u + 0x1000u * (q)) /* desc; avail at +0x200, used at +0x400 */
#define BUF(q, h) (0x10000u + 0x1000u * (q) + 0x100u * (h))

struct side {
	vmm_virtio_device *device;
	struct vmm_virtio_dev dev;
	bool inited;
};

struct fixture {
	vmm_mem *mem;
	vmm_loop *loop;
	uint8_t *ram;
	struct side a, b;
	uint8_t *blob;
	size_t len;
	char out[256];
	size_t out_len;
};

static void hook_kick(struct vmm_virtio_dev *dev, uint16_t queue)
{
	vdev_notify(dev, queue);
}

static void hook_irq(struct vmm_virtio_dev *dev)
{
	(void)dev;
}

static const struct vdev_hooks hooks = { .kick = hook_kick, .irq = hook_irq };

static void attach(struct fixture *f, struct side *s, vmm_virtio_device *device)
{
	s->device = device;
	assert_int_equal(vdev_init(&s->dev, device, f->mem, f->loop, &hooks), 0);
	device->dev = &s->dev;
	s->inited = true;
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
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f->a.inited)
		vdev_teardown(&f->a.dev, true);
	if (f->b.inited)
		vdev_teardown(&f->b.dev, true);
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

/* The driver: VERSION_1 plus `lo` features, `nq` queues of QSIZE, DRIVER_OK. */
static void bring_up(struct side *s, uint32_t lo, uint16_t nq)
{
	wr(s, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(s, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(s, VIRTIO_MMIO_DRIVER_FEATURES, lo);
	wr(s, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(s, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	wr(s, VIRTIO_MMIO_STATUS, rd(s, VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_FEATURES_OK);
	for (uint16_t q = 0; q < nq; q++) {
		wr(s, VIRTIO_MMIO_QUEUE_SEL, q);
		wr(s, VIRTIO_MMIO_QUEUE_NUM, QSIZE);
		wr(s, VIRTIO_MMIO_QUEUE_DESC_LOW, QBASE(q));
		wr(s, VIRTIO_MMIO_QUEUE_AVAIL_LOW, QBASE(q) + 0x200);
		wr(s, VIRTIO_MMIO_QUEUE_USED_LOW, QBASE(q) + 0x400);
		wr(s, VIRTIO_MMIO_QUEUE_READY, 1);
	}
	wr(s, VIRTIO_MMIO_STATUS, rd(s, VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(rd(s, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}

/* Posts descriptor `head` of queue q: one buffer of `len` bytes. */
static void post(struct fixture *f, uint16_t q, uint16_t head, uint32_t len, bool writable)
{
	struct vring_desc *d = (struct vring_desc *)(f->ram + QBASE(q)) + head;
	d->addr = BUF(q, head);
	d->len = len;
	d->flags = writable ? VRING_DESC_F_WRITE : 0;
	uint16_t *avail = (uint16_t *)(f->ram + QBASE(q) + 0x200);
	uint16_t idx = avail[1];
	avail[2 + idx % QSIZE] = head;
	__atomic_store_n(&avail[1], (uint16_t)(idx + 1), __ATOMIC_RELEASE);
}

static uint16_t used_idx(struct fixture *f, uint16_t q)
{
	return ((uint16_t *)(f->ram + QBASE(q) + 0x400))[1];
}

static struct vring_used_elem used_elem(struct fixture *f, uint16_t q, uint16_t i)
{
	return ((struct vring_used_elem *)(f->ram + QBASE(q) + 0x404))[i % QSIZE];
}

static void save(struct fixture *f, struct side *s)
{
	size_t need;
	assert_int_equal(vmmio_save_state(&s->dev, NULL, 0, &need), 0);
	free(f->blob);
	f->blob = malloc(need);
	assert_non_null(f->blob);
	assert_int_equal(vmmio_save_state(&s->dev, f->blob, need, &f->len), 0);
	assert_int_equal(f->len, need);
}

/* The device's own record: the last `dev_len` bytes of the blob. */
static uint8_t *dev_record(struct fixture *f, uint32_t *dev_len)
{
	memcpy(dev_len, f->blob + 80, 4);
	return f->blob + f->len - *dev_len;
}

static void reseal(struct fixture *f)
{
	memset(f->blob + 12, 0, 4);
	uint32_t crc = vmm_crc32c(0, f->blob, f->len);
	memcpy(f->blob + 12, &crc, 4);
}

/* ---- console ---- */

static void con_out(void *ctx, const void *data, size_t len)
{
	struct fixture *f = ctx;
	if (len > sizeof f->out - f->out_len)
		len = sizeof f->out - f->out_len;
	memcpy(f->out + f->out_len, data, len);
	f->out_len += len;
}

static vmm_virtio_device *console(struct fixture *f, uint16_t cols, uint16_t rows)
{
	vmm_virtio_console_opts o = VMM_VIRTIO_CONSOLE_OPTS_INIT;
	o.backend = VMM_CONSOLE_CALLBACK;
	o.output = con_out;
	o.ctx = f;
	o.cols = cols;
	o.rows = rows;
	vmm_virtio_device *d;
	assert_int_equal(vmm_virtio_console_create(&d, &o), 0);
	return d;
}

static void test_console(void **state)
{
	struct fixture *f = *state;
	attach(f, &f->a, console(f, 80, 25));
	bring_up(&f->a, 1u << VIRTIO_CONSOLE_F_SIZE, 2);
	/* Input while the guest has no receive buffer: it waits in the device. */
	assert_int_equal(vmm_virtio_console_input(f->a.device, "hello", 5), 5);
	vdev_run_rescheduled(&f->a.dev);
	assert_int_equal(used_idx(f, 0), 0);
	save(f, &f->a);

	attach(f, &f->b, console(f, 100, 40));
	assert_int_equal(vmm_virtio_console_input(f->b.device, "!", 1), 1); /* replaced */
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), 0);
	/* The window size the guest read. */
	assert_int_equal(vmmio_read(&f->b.dev, VMMIO_CONFIG, 2), 80);
	assert_int_equal(vmmio_read(&f->b.dev, VMMIO_CONFIG + 2, 2), 25);
	/* The guest posts a buffer and notifies: it gets the input saved with a. */
	post(f, 0, 3, 64, true);
	wr(&f->b, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	vdev_run_rescheduled(&f->b.dev);
	assert_int_equal(used_idx(f, 0), 1);
	struct vring_used_elem e = used_elem(f, 0, 0);
	assert_int_equal(e.id, 3);
	assert_int_equal(e.len, 5);
	assert_memory_equal(f->ram + BUF(0, 3), "hello", 5);
	/* And output still flows. */
	memcpy(f->ram + BUF(1, 0), "out", 3);
	post(f, 1, 0, 3, false);
	wr(&f->b, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(f->out_len, 3);
	assert_memory_equal(f->out, "out", 3);
}

static void test_console_bad_record(void **state)
{
	struct fixture *f = *state;
	attach(f, &f->a, console(f, 0, 0));
	bring_up(&f->a, 0, 2);
	save(f, &f->a);
	attach(f, &f->b, console(f, 0, 0));
	uint32_t dlen;
	uint8_t *d = dev_record(f, &dlen);
	assert_int_equal(dlen, 16);
	uint32_t big = 0x20000;
	memcpy(d + 8, &big, 4); /* input longer than the ring */
	reseal(f);
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "virtio-console"));
	assert_int_equal(rd(&f->b, VIRTIO_MMIO_STATUS), 0);
	memcpy(d + 8, &(uint32_t){ 0 }, 4);
	d[0] ^= 1; /* another record's tag */
	reseal(f);
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), -EINVAL);
	assert_int_equal(rd(&f->b, VIRTIO_MMIO_STATUS), 0);
	d[0] ^= 1;
	reseal(f);
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), 0);
	assert_true(rd(&f->b, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK);
}

/* ---- net ---- */

static void net_tx(void *ctx, const void *frame, size_t len)
{
	(void)ctx;
	(void)frame;
	(void)len;
}

static vmm_virtio_device *net(const uint8_t *mac)
{
	vmm_virtio_net_opts o = VMM_VIRTIO_NET_OPTS_INIT;
	o.backend = VMM_NET_CALLBACK;
	o.tx = net_tx;
	if (mac)
		memcpy(o.mac, mac, 6);
	vmm_virtio_device *d;
	assert_int_equal(vmm_virtio_net_create(&d, &o), 0);
	return d;
}

static void test_net_mac(void **state)
{
	struct fixture *f = *state;
	attach(f, &f->a, net(NULL));
	bring_up(&f->a, 1u << VIRTIO_NET_F_MAC, 2);
	uint8_t mac_a[6], mac_b[6];
	assert_int_equal(vmm_virtio_net_get_mac(f->a.device, mac_a), 0);
	save(f, &f->a);
	/* A random MAC gives way to the saved one. */
	attach(f, &f->b, net(NULL));
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), 0);
	assert_int_equal(vmm_virtio_net_get_mac(f->b.device, mac_b), 0);
	assert_memory_equal(mac_a, mac_b, 6);
	uint8_t cfg[6];
	for (int i = 0; i < 6; i++)
		cfg[i] = (uint8_t)vmmio_read(&f->b.dev, VMMIO_CONFIG + (unsigned)i, 1);
	assert_memory_equal(cfg, mac_a, 6);
	/* An application's MAC (a clone's identity) stays. */
	vdev_teardown(&f->b.dev, true);
	const uint8_t own[6] = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 };
	attach(f, &f->b, net(own));
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), 0);
	assert_int_equal(vmm_virtio_net_get_mac(f->b.device, mac_b), 0);
	assert_memory_equal(mac_b, own, 6);
	/* A multicast MAC in the record is refused. */
	vdev_teardown(&f->b.dev, true);
	attach(f, &f->b, net(NULL));
	uint32_t dlen;
	uint8_t *d = dev_record(f, &dlen);
	d[4] |= 1;
	reseal(f);
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "multicast"));
	assert_int_equal(rd(&f->b, VIRTIO_MMIO_STATUS), 0);
}

/* ---- blk ---- */

static vmm_virtio_device *blk(char *path, off_t size, uint32_t flags)
{
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	vmm_virtio_blk_opts o = VMM_VIRTIO_BLK_OPTS_INIT;
	o.fd = fd;
	o.flags = flags;
	vmm_virtio_device *d;
	assert_int_equal(vmm_virtio_blk_create(&d, &o), 0);
	close(fd);
	unlink(path);
	return d;
}

static void test_blk_disk(void **state)
{
	struct fixture *f = *state;
	char p1[] = "/tmp/vstate-blk-XXXXXX", p2[] = "/tmp/vstate-blk-XXXXXX", p3[] = "/tmp/vstate-blk-XXXXXX";
	attach(f, &f->a, blk(p1, 1 << 20, 0));
	bring_up(&f->a, 0, 1);
	save(f, &f->a);
	attach(f, &f->b, blk(p2, 2 << 20, 0));
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "sectors"));
	assert_int_equal(rd(&f->b, VIRTIO_MMIO_STATUS), 0);
	vdev_teardown(&f->b.dev, true);
	attach(f, &f->b, blk(p3, 1 << 20, 0));
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), 0);
	assert_true(rd(&f->b, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK);
	/* A read-only disk offers other features: the negotiated ones do not fit. */
	char p4[] = "/tmp/vstate-blk-XXXXXX";
	vdev_teardown(&f->b.dev, true);
	attach(f, &f->b, blk(p4, 1 << 20, VMM_BLK_READONLY));
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), -EINVAL);
}

/* ---- balloon ---- */

static void test_balloon(void **state)
{
	struct fixture *f = *state;
	vmm_virtio_device *d;
	assert_int_equal(vmm_virtio_balloon_create(&d, NULL), 0);
	assert_int_equal(vmm_virtio_balloon_set_target(d, 123), 0);
	attach(f, &f->a, d);
	bring_up(&f->a, 0, 2);
	vmmio_write(&f->a.dev, VMMIO_CONFIG + 4, 4, 77); /* the guest reports "actual" */
	save(f, &f->a);
	assert_int_equal(vmm_virtio_balloon_create(&d, NULL), 0);
	attach(f, &f->b, d);
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), 0);
	vmm_virtio_balloon_stats st;
	assert_int_equal(vmm_virtio_balloon_get_stats(f->b.device, &st), 0);
	assert_int_equal(st.target_pages, 123);
	assert_int_equal(st.actual_pages, 77);
	assert_int_equal(vmmio_read(&f->b.dev, VMMIO_CONFIG, 4), 123);
}

/* ---- vsock ---- */

static vmm_virtio_device *vsock(uint64_t cid, char *dir)
{
	char path[128];
	snprintf(path, sizeof path, "%s/v%llu", dir, (unsigned long long)cid);
	vmm_virtio_vsock_opts o = VMM_VIRTIO_VSOCK_OPTS_INIT;
	o.guest_cid = cid;
	o.uds_path = path;
	vmm_virtio_device *d;
	assert_int_equal(vmm_virtio_vsock_create(&d, &o), 0);
	return d;
}

static void test_vsock_reset_event(void **state)
{
	struct fixture *f = *state;
	char dir[] = "/tmp/vstate-vsock-XXXXXX";
	assert_non_null(mkdtemp(dir));
	attach(f, &f->a, vsock(3, dir));
	bring_up(&f->a, 0, 3);
	save(f, &f->a);
	vdev_teardown(&f->a.dev, true);
	f->a.inited = false;
	attach(f, &f->b, vsock(42, dir));
	/* The driver's event buffer (as Linux posts them at probe). */
	memset(f->ram + BUF(2, 1), 0xff, 8);
	post(f, 2, 1, 8, true);
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), 0);
	assert_int_equal(used_idx(f, 2), 1);
	struct vring_used_elem e = used_elem(f, 2, 0);
	assert_int_equal(e.id, 1);
	assert_int_equal(e.len, 4);
	uint32_t id;
	memcpy(&id, f->ram + BUF(2, 1), 4);
	assert_int_equal(id, VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
	/* The CID the driver reads again is the new device's. */
	assert_int_equal(vmmio_read(&f->b.dev, VMMIO_CONFIG, 8), 42);
	/* Only one event. */
	post(f, 2, 2, 8, true);
	wr(&f->b, VIRTIO_MMIO_QUEUE_NOTIFY, 2);
	vdev_run_rescheduled(&f->b.dev);
	assert_int_equal(used_idx(f, 2), 1);
	vdev_teardown(&f->b.dev, true);
	f->b.inited = false;
	rmdir(dir);
}

/* No event buffer at load time: the event goes out with the first one. */
static void test_vsock_event_later(void **state)
{
	struct fixture *f = *state;
	char dir[] = "/tmp/vstate-vsock-XXXXXX";
	assert_non_null(mkdtemp(dir));
	attach(f, &f->a, vsock(3, dir));
	bring_up(&f->a, 0, 3);
	save(f, &f->a);
	vdev_teardown(&f->a.dev, true);
	f->a.inited = false;
	attach(f, &f->b, vsock(3, dir));
	assert_int_equal(vmmio_load_state(&f->b.dev, f->blob, f->len), 0);
	assert_int_equal(used_idx(f, 2), 0);
	post(f, 2, 0, 2, true); /* too small: returned empty */
	post(f, 2, 1, 4, true);
	wr(&f->b, VIRTIO_MMIO_QUEUE_NOTIFY, 2);
	assert_int_equal(used_idx(f, 2), 2);
	assert_int_equal(used_elem(f, 2, 0).len, 0);
	assert_int_equal(used_elem(f, 2, 1).len, 4);
	vdev_teardown(&f->b.dev, true);
	f->b.inited = false;
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_console, setup, teardown),
		cmocka_unit_test_setup_teardown(test_console_bad_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_net_mac, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blk_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_balloon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vsock_reset_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vsock_event_later, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
