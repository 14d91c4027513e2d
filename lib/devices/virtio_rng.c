/* virtio-rng (virtio 1.2, 5.4): one request queue; each chain's device-writable
 * buffers are filled with getrandom(2) straight into guest memory.
 *
 * The guest chooses the buffer sizes, so the device must not size anything by them:
 * nothing is allocated per request (the chain descriptor lives in the device state,
 * allocated once), and at most max_bytes_per_request bytes of one chain are filled
 * (Firecracker #5762 allocated a host buffer as large as the guest's). */
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <sys/random.h>

#include "../internal.h"

#define RNG_QUEUE_SIZE 256
#define RNG_DEFAULT_MAX (64u * 1024)

struct rng {
	uint32_t max_bytes;
	vmm_virtq_chain chain; /* reused for every request */
};

/* Fills [p, p + len) with random bytes; returns how many were filled (less only if
 * getrandom fails, which a guest cannot cause). */
static uint32_t fill_random(uint8_t *p, uint32_t len)
{
	uint32_t done = 0;
	while (done < len) {
		ssize_t n = getrandom(p + done, len - done, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		done += (uint32_t)n;
	}
	return done;
}

static uint32_t serve(struct rng *r, const vmm_virtq_chain *c)
{
	uint32_t budget = r->max_bytes, written = 0;
	for (uint32_t i = c->n_out; i < (uint32_t)c->n_out + c->n_in && budget; i++) {
		const vmm_virtq_seg *s = &c->segs[i];
		uint32_t len = s->len < budget ? s->len : budget;
		uint32_t got = fill_random(s->host, len);
		written += got;
		budget -= got;
		if (got < len)
			break;
	}
	return written;
}

static void rng_notify(void *ctx, vmm_virtio_dev *dev, uint16_t queue)
{
	struct rng *r = ctx;
	vmm_virtq *vq = vmm_virtio_dev_queue(dev, queue);
	vmm_mem *mem = vmm_virtio_dev_mem(dev);
	uint32_t limit = vmm_virtq_size(vq); /* bounded work per notification */
	uint32_t done = 0;
	for (; done < limit; done++) {
		int p = vmm_virtq_pop(vq, mem, &r->chain);
		if (p == 0)
			break;
		if (p < 0) {
			vmm_virtio_dev_fail(dev, vmm_last_error());
			return;
		}
		if (vmm_virtq_push(vq, mem, r->chain.head, serve(r, &r->chain)) != 0) {
			vmm_virtio_dev_fail(dev, vmm_last_error());
			return;
		}
	}
	if (done)
		vmm_virtio_dev_interrupt(dev, queue);
	if (done == limit)
		vmm_virtio_dev_reschedule(dev, queue);
}

static int rng_activate(void *ctx, vmm_virtio_dev *dev, uint64_t features)
{
	(void)ctx;
	(void)dev;
	(void)features;
	return 0;
}

static void rng_destroy(void *ctx)
{
	free(ctx);
}

int vmm_virtio_rng_create(vmm_virtio_device **out, const vmm_virtio_rng_opts *opts)
{
	if (!out)
		return vmm_err(-EINVAL, "virtio-rng: NULL out pointer");
	*out = NULL;
	vmm_virtio_rng_opts o = VMM_VIRTIO_RNG_OPTS_INIT;
	if (opts && vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "virtio-rng: opts.size %u is too small", opts->size);
	struct rng *r = calloc(1, sizeof *r);
	if (!r)
		return vmm_err(-ENOMEM, "virtio-rng: out of memory");
	r->max_bytes = o.max_bytes_per_request ? o.max_bytes_per_request : RNG_DEFAULT_MAX;

	/* VMM_VIRTIO_DEVICE_OPS_INIT trips -Wmissing-field-initializers. */
	vmm_virtio_device_ops ops = { .size = sizeof ops };
	ops.name = "virtio-rng";
	ops.device_id = VIRTIO_ID_RNG;
	ops.num_queues = 1;
	ops.queue_size_max = RNG_QUEUE_SIZE;
	ops.activate = rng_activate;
	ops.notify = rng_notify;
	ops.destroy = rng_destroy;
	int e = vmm_virtio_device_create(out, &ops, r);
	if (e)
		free(r);
	return e;
}
