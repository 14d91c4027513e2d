/* Device state across a snapshot with a request in flight (tests/kvm/test_virtio_state.c):
 * a virtio-blk driver at 0xd0000000 writes sector 1 (pattern from arg), reports 0x11,
 * then writes sector 2 and waits for it: the host's rate limit holds that request in
 * the device while the VM and the device are saved. After the restore the new device
 * performs it (it comes back from the queue as in flight), the guest reads both
 * sectors back and compares them: exit 0x100, or 0xe0 + step (status bytes in `res`). */
#include "rt/virtio.h"

#define BLK_BASE 0xd0000000ull
#define QSIZE 16
#define T_IN 0
#define T_OUT 1
#define SECTOR 512

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

struct vstate_blk_results {
	uint8_t st[4];
	uint32_t mismatch;
};

struct vstate_blk_results res;
static uint8_t ring[VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t data[4][SECTOR] __attribute__((aligned(512)));
static struct hdr hdrs[4];
static uint8_t status[4];
static struct vio_dev dev;

static int request(int i, uint32_t type, uint64_t sector)
{
	hdrs[i].type = type;
	hdrs[i].sector = sector;
	status[i] = 0xaa;
	struct vio_buf b[3] = {
		{ &hdrs[i], sizeof hdrs[i], 0 },
		{ data[i], SECTOR, type == T_IN },
		{ &status[i], 1, 1 },
	};
	if (vio_request(&dev, 0, b, 3) < 0)
		return -1;
	res.st[i] = status[i];
	return status[i] == 0 ? 0 : -1;
}

int guest_main(uint64_t arg)
{
	if (vio_init(&dev, BLK_BASE, 2, VIO_F_EVENT_IDX) != 0)
		return 0xe0;
	if (vio_queue_setup(&dev, 0, QSIZE, ring) != 0)
		return 0xe1;
	vio_driver_ok(&dev);
	for (int i = 0; i < SECTOR; i++) {
		data[0][i] = (uint8_t)(arg + i);
		data[1][i] = (uint8_t)(arg * 3 + i * 7);
	}
	if (request(0, T_OUT, 1) != 0)
		return 0xe2;
	report(0x11);
	if (request(1, T_OUT, 2) != 0) /* held back by the rate limit across the save */
		return 0xe3;
	if (request(2, T_IN, 1) != 0 || request(3, T_IN, 2) != 0)
		return 0xe4;
	res.mismatch = (uint32_t)memcmp(data[0], data[2], SECTOR) | (uint32_t)memcmp(data[1], data[3], SECTOR);
	return res.mismatch ? 0xe5 : 0x100;
}
