/* The virtio-mmio register file, separated from the VM plumbing of mmio.c so that it can
 * be driven without a VM (fuzz/fuzz_virtio_mmio.c): the caller supplies a
 * struct vmm_virtio_dev set up with vdev_init and its own hooks. */
#ifndef LIBVMM_VIRTIO_MMIO_INTERNAL_H
#define LIBVMM_VIRTIO_MMIO_INTERNAL_H

#include "transport.h"

#define VMMIO_MAGIC 0x74726976u     /* "virt" */
#define VMMIO_VERSION 2u            /* modern (non-legacy) register layout */
#define VMMIO_VENDOR_ID 0x4d4d564cu /* "LVMM" read as a little-endian word */
#define VMMIO_CONFIG 0x100u         /* device config space starts here */

/* One register access at `off` (< VMM_VIRTIO_MMIO_SIZE, off + size within it) of
 * `size` bytes (1, 2, 4 or 8). Called with dev->lock held. Registers below the config
 * space answer only aligned 32-bit accesses (virtio 1.2, 4.2.2.2): others read 0 and
 * writes are dropped. */
VMM_HIDDEN uint64_t vmmio_read(struct vmm_virtio_dev *dev, uint64_t off, unsigned size);
VMM_HIDDEN void vmmio_write(struct vmm_virtio_dev *dev, uint64_t off, unsigned size, uint64_t val);

/* The device state blob (mmio_state.c; vmm_virtio_mmio_save_state/_load_state without
 * the VM): both take dev->lock themselves. */
VMM_HIDDEN int vmmio_save_state(struct vmm_virtio_dev *dev, void *buf, size_t cap, size_t *len);
VMM_HIDDEN int vmmio_load_state(struct vmm_virtio_dev *dev, const void *buf, size_t len);

#endif
