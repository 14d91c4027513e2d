/* virtio-blk requests (virtio 1.2, 5.2.6): parse one descriptor chain, check every
 * guest-supplied field, do the I/O directly between the image and the guest's buffers,
 * and write the status byte.
 *
 * Layout of a request: the device-readable part starts with the 16-byte header
 * {type, reserved, sector}, followed by the data of OUT, DISCARD and WRITE_ZEROES; the
 * device-writable part holds the data of IN and GET_ID and ends with the status byte.
 * Descriptor boundaries mean nothing: the header, the data and the status byte may share
 * or straddle descriptors in any way the guest likes.
 *
 * A guest can ask for anything, so: the header is copied once before it is looked at;
 * offsets and lengths are checked with overflow-free arithmetic against the capacity;
 * lengths of IN and OUT must be whole sectors; writes to a read-only disk, discards and
 * write-zeroes are refused before any I/O; discard and write-zeroes segments are all
 * copied and validated before the first one is executed. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk_internal.h"

/* Bytes of the readable and writable parts, recomputed from the segments (the chain
 * struct of a fuzzer or a test need not have consistent totals). */
static void chain_sizes(const vmm_virtq_chain *c, uint64_t *out, uint64_t *in)
{
	uint32_t n_out = c->n_out < VMM_VIRTQ_MAX_SEGS ? c->n_out : VMM_VIRTQ_MAX_SEGS;
	uint32_t end = n_out + c->n_in < VMM_VIRTQ_MAX_SEGS ? n_out + c->n_in : VMM_VIRTQ_MAX_SEGS;
	*out = *in = 0;
	for (uint32_t i = 0; i < end; i++)
		*(i < n_out ? out : in) += c->segs[i].len;
}

/* The last byte of the writable part, or NULL if it is empty. */
static uint8_t *status_byte(const vmm_virtq_chain *c)
{
	uint32_t n_out = c->n_out < VMM_VIRTQ_MAX_SEGS ? c->n_out : VMM_VIRTQ_MAX_SEGS;
	uint32_t end = n_out + c->n_in < VMM_VIRTQ_MAX_SEGS ? n_out + c->n_in : VMM_VIRTQ_MAX_SEGS;
	for (uint32_t i = end; i > n_out; i--)
		if (c->segs[i - 1].len > 0)
			return (uint8_t *)c->segs[i - 1].host + c->segs[i - 1].len - 1;
	return NULL;
}

/* Fills d->iov with [off, off + len) of the readable or writable part. Returns the
 * number of entries, or -1 if the part is shorter. */
static int chain_iov(vmm_blk_disk *d, const vmm_virtq_chain *c, bool writable, uint64_t off, uint64_t len)
{
	uint32_t n_out = c->n_out < VMM_VIRTQ_MAX_SEGS ? c->n_out : VMM_VIRTQ_MAX_SEGS;
	uint32_t end = n_out + c->n_in < VMM_VIRTQ_MAX_SEGS ? n_out + c->n_in : VMM_VIRTQ_MAX_SEGS;
	uint32_t i = writable ? n_out : 0;
	if (!writable)
		end = n_out;
	int n = 0;
	for (; i < end && len > 0; i++) {
		uint64_t sl = c->segs[i].len;
		if (off >= sl) { /* also skips empty segments */
			off -= sl;
			continue;
		}
		uint64_t take = sl - off < len ? sl - off : len;
		d->iov[n].iov_base = (uint8_t *)c->segs[i].host + off;
		d->iov[n].iov_len = take;
		n++;
		off = 0;
		len -= take;
	}
	return len ? -1 : n;
}

/* [sector * 512, + len) inside the disk? Stores the byte offset. */
static bool range_ok(const vmm_blk_disk *d, uint64_t sector, uint64_t len, uint64_t *off)
{
	if (sector > d->sectors)
		return false;
	/* sectors <= 2^63 / 512, so the shift cannot overflow once sector <= sectors. */
	uint64_t start = sector << BLK_SECTOR_SHIFT, end;
	if (vmm_add_overflows(start, len, &end) || end > d->sectors << BLK_SECTOR_SHIFT)
		return false;
	*off = start;
	return true;
}

/* ---- I/O helpers: each returns 0 or a negative errno ---- */

static int full_rw(int fd, bool write, uint8_t *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t r = write ? pwrite(fd, buf, len, (off_t)off) : pread(fd, buf, len, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO; /* the file shrank under us */
		buf += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int vec_rw(int fd, bool write, struct iovec *iov, int n, uint64_t off)
{
	while (n > 0) {
		ssize_t r = write ? pwritev(fd, iov, n, (off_t)off) : preadv(fd, iov, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		off += (uint64_t)r;
		size_t left = (size_t)r;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

static int bounce_get(vmm_blk_disk *d)
{
	if (d->bounce)
		return 0;
	void *p = NULL;
	if (posix_memalign(&p, 4096, BLK_BOUNCE_SIZE) != 0)
		return -ENOMEM;
	d->bounce = p;
	return 0;
}

/* Copies between the bounce buffer and the iovec, starting `skip` bytes in. */
static void iov_copy(struct iovec *iov, int n, uint64_t skip, uint8_t *buf, size_t len, bool to_iov)
{
	for (int i = 0; i < n && len > 0; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		size_t take = iov[i].iov_len - skip < len ? iov[i].iov_len - skip : len;
		uint8_t *p = (uint8_t *)iov[i].iov_base + skip;
		if (to_iov)
			memcpy(p, buf, take);
		else
			memcpy(buf, p, take);
		buf += take;
		len -= take;
		skip = 0;
	}
}

/* O_DIRECT wants sector-aligned buffers and lengths; the guest's need not be. */
static bool iov_aligned(const struct iovec *iov, int n)
{
	for (int i = 0; i < n; i++)
		if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & (BLK_SECTOR - 1))
			return false;
	return true;
}

/* Moves len bytes between d->iov[0..n) and the image at off. */
static int disk_rw(vmm_blk_disk *d, bool write, int n, uint64_t off, uint64_t len)
{
	if (!d->direct || iov_aligned(d->iov, n))
		return vec_rw(d->fd, write, d->iov, n, off);
	int r = bounce_get(d);
	for (uint64_t done = 0; r == 0 && done < len;) {
		size_t chunk = len - done < BLK_BOUNCE_SIZE ? (size_t)(len - done) : BLK_BOUNCE_SIZE;
		if (write)
			iov_copy(d->iov, n, done, d->bounce, chunk, false);
		r = full_rw(d->fd, write, d->bounce, chunk, off + done);
		if (r == 0 && !write)
			iov_copy(d->iov, n, done, d->bounce, chunk, true);
		done += chunk;
	}
	return r;
}

static int disk_sync(vmm_blk_disk *d)
{
	while (fdatasync(d->fd) != 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* Zeros [off, off + len): deallocating if `unmap` allows, else keeping the blocks
 * allocated; written out as zeros when the file system supports neither. */
static int disk_zero(vmm_blk_disk *d, uint64_t off, uint64_t len, bool unmap)
{
	if (len == 0)
		return 0;
	if (unmap && fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	if (fallocate(d->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	int r = bounce_get(d);
	if (r == 0)
		memset(d->bounce, 0, BLK_BOUNCE_SIZE);
	for (uint64_t done = 0; r == 0 && done < len;) {
		size_t chunk = len - done < BLK_BOUNCE_SIZE ? (size_t)(len - done) : BLK_BOUNCE_SIZE;
		r = full_rw(d->fd, true, d->bounce, chunk, off + done);
		done += chunk;
	}
	return r;
}

/* Discard is a hint (virtio 5.2.6.2: the device MAY deallocate): a file system that
 * cannot punch holes leaves the data, which is still correct. */
static int disk_discard(vmm_blk_disk *d, uint64_t off, uint64_t len)
{
	if (len == 0 || fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	return errno == EOPNOTSUPP || errno == ENOSYS ? 0 : -errno;
}

/* ---- request types; each returns a VIRTIO_BLK_S_* status ---- */

struct req {
	vmm_blk_disk *d;
	const vmm_virtq_chain *c;
	uint64_t out_bytes;   /* readable bytes, header included */
	uint64_t data_in;     /* writable bytes before the status byte */
	uint64_t sector;
	uint64_t wrote;       /* bytes written from the start of the writable part */
	uint64_t moved;       /* data bytes, for the rate limiter */
};

static uint8_t do_in(struct req *q)
{
	vmm_blk_disk *d = q->d;
	uint64_t off, len = q->data_in;
	if (len % BLK_SECTOR || !range_ok(d, q->sector, len, &off))
		return VIRTIO_BLK_S_IOERR;
	int n = chain_iov(d, q->c, true, 0, len);
	if (n < 0 || disk_rw(d, false, n, off, len) != 0)
		return VIRTIO_BLK_S_IOERR;
	q->wrote = q->moved = len;
	d->stats.reads++;
	d->stats.bytes_read += len;
	return VIRTIO_BLK_S_OK;
}

static uint8_t do_out(struct req *q)
{
	vmm_blk_disk *d = q->d;
	uint64_t off, len = q->out_bytes - sizeof(struct virtio_blk_outhdr);
	if (d->readonly || len % BLK_SECTOR || !range_ok(d, q->sector, len, &off))
		return VIRTIO_BLK_S_IOERR;
	int n = chain_iov(d, q->c, false, sizeof(struct virtio_blk_outhdr), len);
	if (n < 0 || disk_rw(d, true, n, off, len) != 0)
		return VIRTIO_BLK_S_IOERR;
	if (d->writethrough && len > 0 && disk_sync(d) != 0)
		return VIRTIO_BLK_S_IOERR;
	q->moved = len;
	d->stats.writes++;
	d->stats.bytes_written += len;
	return VIRTIO_BLK_S_OK;
}

static uint8_t do_flush(struct req *q)
{
	if (disk_sync(q->d) != 0)
		return VIRTIO_BLK_S_IOERR;
	q->d->stats.flushes++;
	return VIRTIO_BLK_S_OK;
}

static uint8_t do_get_id(struct req *q)
{
	if (q->data_in < VIRTIO_BLK_ID_BYTES)
		return VIRTIO_BLK_S_IOERR;
	vmm_virtq_chain_write(q->c, 0, q->d->id, VIRTIO_BLK_ID_BYTES);
	q->wrote = VIRTIO_BLK_ID_BYTES;
	q->d->stats.get_ids++;
	return VIRTIO_BLK_S_OK;
}

/* DISCARD and WRITE_ZEROES: a list of {sector, num_sectors, flags} after the header. */
static uint8_t do_ranges(struct req *q, bool zeroes)
{
	vmm_blk_disk *d = q->d;
	if (d->readonly)
		return VIRTIO_BLK_S_IOERR;
	if (!(zeroes ? d->write_zeroes : d->discard))
		return VIRTIO_BLK_S_UNSUPP;
	struct virtio_blk_discard_write_zeroes seg[BLK_MAX_DWZ_SEGS];
	uint64_t len = q->out_bytes - sizeof(struct virtio_blk_outhdr);
	if (len == 0 || len % sizeof seg[0] || len / sizeof seg[0] > BLK_MAX_DWZ_SEGS)
		return VIRTIO_BLK_S_IOERR;
	unsigned n = (unsigned)(len / sizeof seg[0]);
	vmm_virtq_chain_read(q->c, sizeof(struct virtio_blk_outhdr), seg, (size_t)len);

	uint32_t max = zeroes ? BLK_MAX_WRITE_ZEROES_SECTORS : BLK_MAX_DISCARD_SECTORS;
	uint32_t allowed = zeroes ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;
	uint64_t off[BLK_MAX_DWZ_SEGS], bytes[BLK_MAX_DWZ_SEGS];
	bool unmap[BLK_MAX_DWZ_SEGS];
	for (unsigned i = 0; i < n; i++) {
		uint32_t flags = le32toh(seg[i].flags), num = le32toh(seg[i].num_sectors);
		/* Unknown flags, and UNMAP on a discard, are UNSUPP (virtio 5.2.6.2). */
		if (flags & ~allowed)
			return VIRTIO_BLK_S_UNSUPP;
		bytes[i] = (uint64_t)num << BLK_SECTOR_SHIFT;
		unmap[i] = flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
		if (num > max || !range_ok(d, le64toh(seg[i].sector), bytes[i], &off[i]))
			return VIRTIO_BLK_S_IOERR;
	}
	for (unsigned i = 0; i < n; i++) {
		int r = zeroes ? disk_zero(d, off[i], bytes[i], unmap[i]) : disk_discard(d, off[i], bytes[i]);
		if (r != 0)
			return VIRTIO_BLK_S_IOERR;
	}
	if (d->writethrough && disk_sync(d) != 0)
		return VIRTIO_BLK_S_IOERR;
	if (zeroes)
		d->stats.write_zeroes++;
	else
		d->stats.discards++;
	return VIRTIO_BLK_S_OK;
}

void vmm_blk_handle(vmm_blk_disk *d, const vmm_virtq_chain *c, vmm_blk_result *res)
{
	res->written = 0;
	res->status = 0xff;
	res->bytes = 0;
	uint64_t in_bytes;
	struct req q = { .d = d, .c = c };
	chain_sizes(c, &q.out_bytes, &in_bytes);
	uint8_t *status = status_byte(c);
	if (!status) {
		/* Nowhere to report: complete it with nothing written. */
		d->stats.errors++;
		return;
	}
	q.data_in = in_bytes - 1;

	struct virtio_blk_outhdr h;
	uint8_t st;
	if (q.out_bytes < sizeof h) {
		st = VIRTIO_BLK_S_IOERR;
	} else {
		vmm_virtq_chain_read(c, 0, &h, sizeof h); /* the only read of the header */
		q.sector = le64toh(h.sector);
		switch (le32toh(h.type)) {
		case VIRTIO_BLK_T_IN: st = do_in(&q); break;
		case VIRTIO_BLK_T_OUT: st = do_out(&q); break;
		case VIRTIO_BLK_T_FLUSH: st = do_flush(&q); break;
		case VIRTIO_BLK_T_GET_ID: st = do_get_id(&q); break;
		case VIRTIO_BLK_T_DISCARD: st = do_ranges(&q, false); break;
		case VIRTIO_BLK_T_WRITE_ZEROES: st = do_ranges(&q, true); break;
		default: st = VIRTIO_BLK_S_UNSUPP; break;
		}
	}
	*(volatile uint8_t *)status = st;
	if (st != VIRTIO_BLK_S_OK)
		d->stats.errors++;
	/* The used length counts bytes written from the start of the writable part
	 * (virtio 2.7.8.2): all of it when the data reached the status byte, otherwise
	 * only the prefix actually written (the status byte alone is not a prefix). */
	uint64_t used = q.wrote == q.data_in ? in_bytes : q.wrote;
	res->written = used > UINT32_MAX ? UINT32_MAX : (uint32_t)used;
	res->status = st;
	res->bytes = q.moved;
}
