/* virtio-mmio register behaviour from a real guest (tests/kvm/test_virtio_mmio.c).
 * The host attaches its "echo" test device (id 0x4242, 2 queues of at most 64, 16 bytes
 * of config space) at 0xd0000000. An echo request is one readable buffer and one
 * writable buffer; the device writes the readable bytes inverted and reports the
 * length. The guest stores what it observed in res[]; the exit code is 0x100 on
 * success, 0xe00 | step when a step failed, 0xeff for an unknown mode (arg). */
#include "rt/virtio.h"

#define BASE 0xd0000000ull
#define ECHO_ID 0x4242
#define QSIZE 16
#define SPIN (1ull << 31)

uint64_t res[32];
static uint8_t ring_a[VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t ring_b[VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static struct vio_dev dev;
static uint8_t ping[8], pong[8];

#define FAIL(step) return 0xe00 | (step)

/* One echo request; returns the used length, or -1 on timeout or a wrong echo. */
static int64_t echo(uint8_t seed)
{
	for (int i = 0; i < 8; i++) {
		ping[i] = (uint8_t)(seed + i);
		pong[i] = 0;
	}
	struct vio_buf b[2] = { { ping, 8, 0 }, { pong, 8, 1 } };
	int64_t len = vio_request(&dev, 0, b, 2);
	for (int i = 0; len >= 0 && i < 8; i++) {
		uint8_t want = (uint8_t)(ping[i] ^ 0xff);
		if (pong[i] != want)
			return -1;
	}
	return len;
}

static int up(uint64_t wanted)
{
	if (vio_init(&dev, BASE, ECHO_ID, wanted) != 0)
		return -1;
	if (vio_queue_setup(&dev, 0, QSIZE, ring_a) != 0)
		return -1;
	vio_driver_ok(&dev);
	return (vio_status(&dev) & VIO_S_DRIVER_OK) ? 0 : -1;
}

static void spin(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		cpu_relax();
}

/* Polls InterruptStatus until `bit` is set, up to n spins. */
static uint32_t wait_isr(uint32_t bit, uint64_t n)
{
	uint32_t isr = 0;
	for (uint64_t i = 0; i < n && !((isr = vio_reg_read(&dev, VIO_INTERRUPT_STATUS)) & bit); i++)
		spin(1000);
	return isr;
}

static int mode_regs(void)
{
	dev.base = BASE;
	res[0] = vio_reg_read(&dev, VIO_MAGIC);
	res[1] = vio_reg_read(&dev, VIO_VERSION);
	res[2] = vio_reg_read(&dev, VIO_DEVICE_ID);
	res[3] = vio_reg_read(&dev, VIO_VENDOR_ID);
	vio_reg_write(&dev, VIO_QUEUE_SEL, 0);
	res[4] = vio_reg_read(&dev, VIO_QUEUE_NUM_MAX);
	vio_reg_write(&dev, VIO_QUEUE_SEL, 1);
	res[5] = vio_reg_read(&dev, VIO_QUEUE_NUM_MAX);
	vio_reg_write(&dev, VIO_QUEUE_SEL, 2);
	res[6] = vio_reg_read(&dev, VIO_QUEUE_NUM_MAX);
	vio_reg_write(&dev, VIO_QUEUE_SEL, 0xffffffffu);
	res[7] = vio_reg_read(&dev, VIO_QUEUE_NUM_MAX);
	/* Writes to a queue that does not exist go nowhere, and the ready bit reads 0. */
	vio_reg_write(&dev, VIO_QUEUE_NUM, 8);
	vio_reg_write(&dev, VIO_QUEUE_READY, 1);
	res[18] = vio_reg_read(&dev, VIO_QUEUE_READY);
	vio_reg_write(&dev, VIO_QUEUE_SEL, 0);
	vio_reg_write(&dev, 0x0ac, 0); /* SHMSel */
	res[8] = vio_reg_read(&dev, 0x0b0);
	res[9] = vio_reg_read(&dev, 0x0b4);
	res[10] = vio_reg_read(&dev, VIO_CONFIG_GENERATION);
	vio_reg_write(&dev, VIO_DEVICE_FEATURES_SEL, 0);
	res[11] = vio_reg_read(&dev, VIO_DEVICE_FEATURES);
	vio_reg_write(&dev, VIO_DEVICE_FEATURES_SEL, 1);
	res[12] = vio_reg_read(&dev, VIO_DEVICE_FEATURES);
	vio_reg_write(&dev, VIO_DEVICE_FEATURES_SEL, 2);
	res[13] = vio_reg_read(&dev, VIO_DEVICE_FEATURES);
	res[14] = vio_reg_read(&dev, VIO_QUEUE_NUM);            /* write-only: 0 */
	res[15] = mmio_read16(BASE + VIO_MAGIC);                 /* not 32-bit: 0 */
	res[16] = mmio_read8(BASE + VIO_STATUS);
	res[17] = mmio_read64(BASE + VIO_MAGIC);
	return 0x100;
}

static int set_features(uint32_t lo, uint32_t hi)
{
	vio_reg_write(&dev, VIO_DRIVER_FEATURES_SEL, 0);
	vio_reg_write(&dev, VIO_DRIVER_FEATURES, lo);
	vio_reg_write(&dev, VIO_DRIVER_FEATURES_SEL, 1);
	vio_reg_write(&dev, VIO_DRIVER_FEATURES, hi);
	vio_reg_write(&dev, VIO_STATUS, vio_status(&dev) | VIO_S_FEATURES_OK);
	return (int)vio_status(&dev);
}

static void restart(void)
{
	vio_reg_write(&dev, VIO_STATUS, 0);
	vio_reg_write(&dev, VIO_STATUS, VIO_S_ACKNOWLEDGE | VIO_S_DRIVER);
}

static int mode_features(void)
{
	dev.base = BASE;
	restart();
	res[0] = (uint32_t)set_features(1, 0);          /* no VERSION_1 */
	restart();
	res[1] = (uint32_t)set_features(1, 1 | 2);      /* VERSION_1 + bit 33 (not offered) */
	restart();
	res[2] = (uint32_t)set_features(1 | 0x80, 1);   /* bit 7 not offered */
	restart();
	res[3] = (uint32_t)set_features(1, 1);          /* bit 0 + VERSION_1: accepted */
	/* Frozen after FEATURES_OK: this write must not change what the device gets. */
	vio_reg_write(&dev, VIO_DRIVER_FEATURES_SEL, 0);
	vio_reg_write(&dev, VIO_DRIVER_FEATURES, 1 | 2);
	/* Clearing FEATURES_OK (not by reset) is ignored. */
	vio_reg_write(&dev, VIO_STATUS, VIO_S_ACKNOWLEDGE | VIO_S_DRIVER);
	res[4] = vio_status(&dev);
	dev.features = 1 | VIO_F_VERSION_1;
	if (vio_queue_setup(&dev, 0, QSIZE, ring_a) != 0)
		FAIL(1);
	vio_driver_ok(&dev);
	res[5] = vio_status(&dev);
	if (echo(1) != 8)
		FAIL(2);
	return 0x100;
}

static int mode_driver_ok_early(void)
{
	dev.base = BASE;
	restart();
	/* DRIVER_OK without FEATURES_OK does not stick and activates nothing. */
	vio_reg_write(&dev, VIO_STATUS, VIO_S_ACKNOWLEDGE | VIO_S_DRIVER | VIO_S_DRIVER_OK);
	res[0] = vio_status(&dev);
	if (up(0) != 0)
		FAIL(1);
	if (echo(2) != 8)
		FAIL(2);
	return 0x100;
}

static void set_ring(uint64_t desc, uint64_t avail, uint64_t used)
{
	vio_reg_write(&dev, VIO_QUEUE_DESC_LOW, (uint32_t)desc);
	vio_reg_write(&dev, VIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	vio_reg_write(&dev, VIO_QUEUE_DRIVER_LOW, (uint32_t)avail);
	vio_reg_write(&dev, VIO_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
	vio_reg_write(&dev, VIO_QUEUE_DEVICE_LOW, (uint32_t)used);
	vio_reg_write(&dev, VIO_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
}

/* Ring B's parts, laid out like vio_queue_setup does. */
#define B_DESC ((uint64_t)(uintptr_t)ring_b)
#define B_AVAIL (B_DESC + QSIZE * 16)
#define B_USED (B_DESC + ((QSIZE * 16 + 6 + 2 * QSIZE + 4095) & ~4095ull))

static int mode_queue_lock(void)
{
	if (up(0) != 0)
		FAIL(1);
	res[0] = (uint64_t)echo(3);
	/* CVE-2026-5747: rewrite the queue after DRIVER_OK. */
	memset(ring_b, 0, sizeof ring_b);
	vio_reg_write(&dev, VIO_QUEUE_SEL, 0);
	vio_reg_write(&dev, VIO_QUEUE_NUM, 8);
	set_ring(B_DESC, B_AVAIL, B_USED);
	vio_reg_write(&dev, VIO_QUEUE_READY, 0);
	res[1] = vio_reg_read(&dev, VIO_QUEUE_READY);
	/* A request placed in ring B only: the device must not see it. */
	volatile struct vio_desc *bd = (volatile struct vio_desc *)B_DESC;
	volatile uint16_t *ba = (volatile uint16_t *)B_AVAIL, *bu = (volatile uint16_t *)B_USED;
	bd[0].addr = (uint64_t)(uintptr_t)pong;
	bd[0].len = 8;
	bd[0].flags = VIO_DESC_F_WRITE;
	ba[2] = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	ba[1] = 1;
	vio_notify(&dev, 0);
	/* Ring A keeps working; once its request is done, the notify above was seen. */
	res[2] = (uint64_t)echo(4);
	res[3] = bu[1];
	return 0x100;
}

static int mode_notify(void)
{
	if (up(0) != 0)
		FAIL(1);
	for (int i = 0; i < 8; i++)
		ping[i] = (uint8_t)i;
	struct vio_buf b[2] = { { ping, 8, 0 }, { pong, 8, 1 } };
	if (vio_add(&dev, 0, b, 2) < 0)
		FAIL(2);
	/* CVE-2011-2512: out-of-range indexes, one that a 16-bit truncation would turn
	 * into queue 0, and sizes other than 32 bits: all ignored. */
	vio_reg_write(&dev, VIO_QUEUE_NOTIFY, 0xffffffffu);
	vio_reg_write(&dev, VIO_QUEUE_NOTIFY, 2);
	vio_reg_write(&dev, VIO_QUEUE_NOTIFY, 0x10000);
	vio_reg_write(&dev, VIO_QUEUE_NOTIFY, 0x80000000u);
	mmio_write16(BASE + VIO_QUEUE_NOTIFY, 0);
	mmio_write8(BASE + VIO_QUEUE_NOTIFY, 0);
	spin(2000000);
	res[0] = dev.q[0].used[1];
	vio_notify(&dev, 0);
	uint32_t len = 0;
	if (vio_wait_used(&dev, 0, &len, SPIN) < 0)
		FAIL(3);
	res[1] = len;
	/* Queue 1 exists but is not ready: its notify is accepted and does nothing. */
	vio_reg_write(&dev, VIO_QUEUE_NOTIFY, 1);
	res[2] = (uint64_t)echo(5);
	return 0x100;
}

static int mode_reset(void)
{
	if (up(0) != 0)
		FAIL(1);
	if (echo(6) != 8)
		FAIL(2);
	vio_reg_write(&dev, VIO_INTERRUPT_ACK, 0); /* leave ISR as the device set it */
	vio_reg_write(&dev, VIO_DEVICE_FEATURES_SEL, 1);
	vio_reg_write(&dev, VIO_STATUS, 0);
	res[0] = vio_status(&dev);
	vio_reg_write(&dev, VIO_QUEUE_SEL, 0);
	res[1] = vio_reg_read(&dev, VIO_QUEUE_READY);
	res[2] = vio_reg_read(&dev, VIO_INTERRUPT_STATUS);
	if (up(0) != 0)
		FAIL(3);
	res[3] = (uint64_t)echo(7);
	return 0x100;
}

static int mode_config(void)
{
	if (up(0) != 0)
		FAIL(1);
	uint64_t c = BASE + VIO_CONFIG;
	res[0] = mmio_read8(c + 0);
	res[1] = mmio_read16(c + 2);
	res[2] = mmio_read32(c + 4);
	res[3] = mmio_read64(c + 8);
	res[4] = mmio_read32(c + 16);    /* past config_size */
	res[5] = mmio_read32(c + 14);    /* crosses the end */
	res[6] = mmio_read8(c + 15);     /* last byte */
	res[7] = mmio_read64(c + 0xef8); /* far past, still in the 4 KiB window */
	mmio_write8(c + 0, 0xa1);
	mmio_write16(c + 2, 0xb2b3);
	mmio_write32(c + 4, 0xc4c5c6c7u);
	mmio_write64(c + 8, 0xd8d9dadbdcdddedfull);
	mmio_write32(c + 14, 0x11111111u); /* crosses the end: dropped */
	mmio_write32(c + 0x200, 0x22222222u); /* past: dropped */
	res[8] = vio_reg_read(&dev, VIO_CONFIG_GENERATION);
	vio_reg_write(&dev, VIO_INTERRUPT_ACK, 3);
	report(0x101); /* the host changes the config now */
	res[9] = vio_reg_read(&dev, VIO_CONFIG_GENERATION);
	res[10] = wait_isr(2, 1000);
	vio_reg_write(&dev, VIO_INTERRUPT_ACK, 2);
	res[11] = vio_reg_read(&dev, VIO_INTERRUPT_STATUS);
	return 0x100;
}

static int mode_isr(void)
{
	if (up(0) != 0)
		FAIL(1);
	vio_reg_write(&dev, VIO_INTERRUPT_ACK, 3);
	if (echo(8) != 8)
		FAIL(2);
	res[0] = wait_isr(1, 1000);
	vio_reg_write(&dev, VIO_INTERRUPT_ACK, 1);
	res[1] = vio_reg_read(&dev, VIO_INTERRUPT_STATUS);
	/* VRING_AVAIL_F_NO_INTERRUPT: the device completes without interrupting. */
	dev.q[0].avail[0] = 1;
	if (echo(9) != 8)
		FAIL(3);
	res[2] = wait_isr(1, 300);
	dev.q[0].avail[0] = 0;
	return 0x100;
}

static int mode_broken(void)
{
	if (up(0) != 0)
		FAIL(1);
	if (echo(10) != 8)
		FAIL(2);
	/* A head index past the ring: the device must give up on the ring, not crash. */
	struct vio_queue *q = &dev.q[0];
	uint16_t idx = q->avail[1];
	q->avail[2 + idx % q->size] = 200;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	q->avail[1] = (uint16_t)(idx + 1);
	vio_notify(&dev, 0);
	uint32_t st = 0;
	for (int i = 0; i < 100000 && !((st = vio_status(&dev)) & VIO_S_NEEDS_RESET); i++)
		spin(1000);
	res[0] = st;
	res[1] = vio_reg_read(&dev, VIO_INTERRUPT_STATUS);
	report(0x101); /* the host looks at the broken device */
	/* Notifies are ignored until reset. */
	vio_notify(&dev, 0);
	res[2] = vio_status(&dev);
	/* A driver reset brings it back. */
	if (up(0) != 0)
		FAIL(3);
	res[3] = (uint64_t)echo(11);
	res[4] = vio_status(&dev);
	return 0x100;
}

static int mode_bad_queue(void)
{
	if (vio_init(&dev, BASE, ECHO_ID, 0) != 0)
		FAIL(1);
	uint64_t a = (uint64_t)(uintptr_t)ring_a;
	uint64_t used = a + ((QSIZE * 16 + 6 + 2 * QSIZE + 4095) & ~4095ull);
	vio_reg_write(&dev, VIO_QUEUE_SEL, 0);
	const uint32_t nums[3] = { 3, 1024, 0 }; /* not a power of two, above max, zero */
	for (int i = 0; i < 3; i++) {
		vio_reg_write(&dev, VIO_QUEUE_NUM, nums[i]);
		set_ring(a, a + QSIZE * 16, used);
		vio_reg_write(&dev, VIO_QUEUE_READY, 1);
		res[i] = vio_reg_read(&dev, VIO_QUEUE_READY);
	}
	vio_reg_write(&dev, VIO_QUEUE_NUM, QSIZE);
	set_ring(a + 8, a + QSIZE * 16, used); /* misaligned descriptor table */
	vio_reg_write(&dev, VIO_QUEUE_READY, 1);
	res[3] = vio_reg_read(&dev, VIO_QUEUE_READY);
	/* Aligned but on top of the device's own MMIO: refused at DRIVER_OK. */
	set_ring(BASE, a + QSIZE * 16, used);
	vio_reg_write(&dev, VIO_QUEUE_READY, 1);
	res[4] = vio_reg_read(&dev, VIO_QUEUE_READY);
	vio_driver_ok(&dev);
	res[5] = vio_status(&dev);
	if (up(0) != 0)
		FAIL(2);
	res[6] = (uint64_t)echo(12);
	return 0x100;
}

static int mode_before_driver_ok(void)
{
	if (vio_init(&dev, BASE, ECHO_ID, 0) != 0 || vio_queue_setup(&dev, 0, QSIZE, ring_a) != 0)
		FAIL(1);
	for (int i = 0; i < 8; i++)
		ping[i] = (uint8_t)(0x40 + i);
	struct vio_buf b[2] = { { ping, 8, 0 }, { pong, 8, 1 } };
	if (vio_add(&dev, 0, b, 2) < 0)
		FAIL(2);
	vio_notify(&dev, 0);
	spin(2000000);
	res[0] = dev.q[0].used[1]; /* not processed before DRIVER_OK */
	vio_driver_ok(&dev);
	vio_notify(&dev, 0);
	uint32_t len = 0;
	if (vio_wait_used(&dev, 0, &len, SPIN) < 0)
		FAIL(3);
	res[1] = len;
	res[2] = pong[0] == 0xbf; /* 0x40 inverted */
	return 0x100;
}

int guest_main(uint64_t arg)
{
	switch (arg) {
	case 1: return mode_regs();
	case 2: return mode_features();
	case 3: return mode_driver_ok_early();
	case 4: return mode_queue_lock();
	case 5: return mode_notify();
	case 6: return mode_reset();
	case 7: return mode_config();
	case 8: return mode_isr();
	case 9: return mode_broken();
	case 10: return mode_bad_queue();
	case 11: return mode_before_driver_ok();
	default: return 0xeff;
	}
}
