/* bench_virtio: one virtio-vsock stream each way through the Unix-socket back end
 * (guest: tests/guests/bench_vsock.c, on the vsock test guest's driver).
 *
 * g2h: the guest connects to host port BV_VSOCK_HOST_PORT, which the device turns into
 * a connection to our listener at "<uds>_2000"; a host thread reads until EOF. The
 * sample runs from the vmm_vcpu_run of the pass until both the guest closed (its
 * shutdown is answered once every byte reached our socket) and we read EOF.
 * h2g: a host thread connects to <uds>, sends "CONNECT 5001", waits for "OK", writes
 * the bytes and shuts its side down; the guest counts them until that SHUTDOWN. The
 * sample runs from the start of both to the guest's report. Connection set-up is inside
 * each sample (a few exits, well under a millisecond). MB/s = 10^6 bytes a second. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench_virtio_host.h"

#define CHUNK (256u << 10)

struct vs_env {
	struct bv_vm vm;
	char uds[96];
	char listen_path[108];
	int lfd;
	uint64_t cmd_gpa, out_gpa;
};

/* The host threads' sockets time out every 200 ms, so the threads can notice that the
 * pass is over: `give_up_ns` (atomic; 0 = not yet) is set at once when the guest failed,
 * and 10 s after it finished otherwise (the host side should be done by then). */
struct host_side {
	_Atomic double give_up_ns;
	int err;
	const char *step;
};

static bool retry(struct host_side *h, ssize_t r)
{
	double g = atomic_load(&h->give_up_ns);
	return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) &&
	       !(g > 0 && bench_now_ns() >= g);
}

static void set_timeouts(int fd)
{
	struct timeval tv = { 0, 200000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

struct reader {
	struct host_side h;
	int lfd;
	uint64_t bytes;
	double eof_ns;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	char *buf = malloc(CHUNK);
	int c;
	rd->h.step = "accept";
	while ((c = accept(rd->lfd, NULL, NULL)) < 0 && retry(&rd->h, c))
		;
	if (c < 0 || !buf) {
		rd->h.err = buf ? errno : ENOMEM;
		free(buf);
		return NULL;
	}
	set_timeouts(c);
	rd->h.step = "read";
	ssize_t n;
	while ((n = read(c, buf, CHUNK)) > 0 || retry(&rd->h, n))
		if (n > 0)
			rd->bytes += (uint64_t)n;
	if (n < 0)
		rd->h.err = errno;
	rd->eof_ns = bench_now_ns();
	free(buf);
	close(c);
	return NULL;
}

struct writer {
	struct host_side h;
	const char *path;
	uint64_t bytes, written;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char *buf = malloc(CHUNK);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", w->path);
	w->h.step = "connect";
	if (!buf || s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0)
		goto fail;
	set_timeouts(s);
	char line[32];
	int len = snprintf(line, sizeof line, "CONNECT %u\n", BV_VSOCK_GUEST_PORT);
	w->h.step = "handshake";
	if (write(s, line, (size_t)len) != len)
		goto fail;
	size_t got = 0;
	while (got < sizeof line - 1) {
		ssize_t n = read(s, line + got, 1);
		if (n < 0 && retry(&w->h, n))
			continue;
		if (n <= 0)
			goto fail;
		if (line[got++] == '\n')
			break;
	}
	line[got] = 0;
	if (strncmp(line, "OK ", 3) != 0) {
		errno = EPROTO;
		goto fail;
	}
	memset(buf, 0x3c, CHUNK);
	w->h.step = "write";
	while (w->written < w->bytes) {
		size_t n = w->bytes - w->written < CHUNK ? (size_t)(w->bytes - w->written) : CHUNK;
		ssize_t r = write(s, buf, n);
		if (r < 0 && retry(&w->h, r))
			continue;
		if (r <= 0)
			goto fail;
		w->written += (uint64_t)r;
	}
	shutdown(s, SHUT_WR);
	w->h.step = "drain";
	ssize_t r;
	while ((r = read(s, buf, CHUNK)) > 0 || retry(&w->h, r)) /* until the guest's reset */
		;
	free(buf);
	close(s);
	return NULL;
fail:
	w->h.err = errno ? errno : EPROTO;
	free(buf);
	if (s >= 0)
		close(s);
	return NULL;
}

static int pass(struct vs_env *e, uint32_t op, uint64_t bytes, uint32_t src_port, double *ns)
{
	struct bv_vsock_cmd c = { .op = op, .src_port = src_port, .bytes = bytes };
	struct reader rd = { .lfd = e->lfd };
	struct writer w = { .path = e->uds, .bytes = bytes };
	struct host_side *h = op == BV_VSOCK_G2H ? &rd.h : &w.h;
	pthread_t th;
	if (bv_vm_write(&e->vm, e->cmd_gpa, &c, sizeof c))
		return -1;
	double t0 = bench_now_ns();
	if (pthread_create(&th, NULL, op == BV_VSOCK_G2H ? reader_main : writer_main,
			   op == BV_VSOCK_G2H ? (void *)&rd : (void *)&w) != 0) {
		fputs("bench_virtio: pthread_create failed\n", stderr);
		return -1;
	}
	double run_ns;
	int r = bv_vm_pass(&e->vm, &run_ns);
	double t_guest = bench_now_ns();
	atomic_store(&h->give_up_ns, r ? t_guest : t_guest + 10e9);
	pthread_join(th, NULL);
	struct bv_vsock_out out;
	if (r || bv_vm_read(&e->vm, e->out_gpa, &out, sizeof out))
		return -1;
	if (op == BV_VSOCK_G2H) {
		*ns = (rd.eof_ns > t_guest ? rd.eof_ns : t_guest) - t0;
		if (rd.h.err || rd.bytes != bytes || out.bytes != bytes) {
			fprintf(stderr, "bench_virtio: vsock g2h: host read %llu of %llu bytes (%s at %s), guest "
				"sent %llu\n", (unsigned long long)rd.bytes, (unsigned long long)bytes,
				strerror(rd.h.err), rd.h.step, (unsigned long long)out.bytes);
			return -1;
		}
	} else {
		*ns = t_guest - t0;
		if (w.h.err || w.written != bytes || out.bytes != bytes) {
			fprintf(stderr, "bench_virtio: vsock h2g: host wrote %llu of %llu bytes (%s at %s), "
				"guest received %llu\n", (unsigned long long)w.written, (unsigned long long)bytes,
				strerror(w.h.err), w.h.step, (unsigned long long)out.bytes);
			return -1;
		}
	}
	return 0;
}

static int listen_on(struct vs_env *e)
{
	snprintf(e->listen_path, sizeof e->listen_path, "%s_%u", e->uds, BV_VSOCK_HOST_PORT);
	unlink(e->listen_path);
	e->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", e->listen_path);
	if (e->lfd < 0 || bind(e->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(e->lfd, 4) != 0) {
		fprintf(stderr, "bench_virtio: listening on %s: %s\n", e->listen_path, strerror(errno));
		return -1;
	}
	set_timeouts(e->lfd); /* accept() honours SO_RCVTIMEO */
	return 0;
}

static int measure(struct vs_env *e, const struct bv_params *p)
{
	struct bench_series s[2] = { 0 };
	double cpu_loop[2] = { 0 }, cpu_vcpu[2] = { 0 }, mb[2] = { 0 };
	uint64_t bytes = (p->quick ? 8ull : 64ull) << 20;
	uint32_t port = 40000;
	double ns;
	int r = pass(e, BV_VSOCK_G2H, 1u << 20, port++, &ns); /* warm-up */
	if (!r)
		r = pass(e, BV_VSOCK_H2G, 1u << 20, 0, &ns);
	for (unsigned round = 0; round < p->rounds && !r; round++) {
		for (unsigned k = 0; k < 2 && !r; k++) {
			uint32_t op = (round + k) % 2;
			if ((r = pass(e, op, bytes, port++, &ns)))
				break;
			bench_push(&s[op], (double)bytes / (ns / 1e9) / 1e6);
			cpu_loop[op] += e->vm.pass_loop_cpu_ns;
			cpu_vcpu[op] += e->vm.pass_vcpu_cpu_ns;
			mb[op] += (double)bytes / 1e6;
		}
		if (!r)
			fprintf(stderr, "bench_virtio: vsock round %u/%u\n", round + 1, p->rounds);
	}
	if (!r) {
		printf("vsock_stream_g2h value=%.1fMB/s\n", bench_median(&s[BV_VSOCK_G2H]));
		printf("vsock_stream_h2g value=%.1fMB/s\n", bench_median(&s[BV_VSOCK_H2G]));
		printf("# vsock_stream: %llu MiB a sample over a fresh connection; the guest's buffer "
		       "1 MiB, the device's 256 KiB; guest payloads up to 64 KiB. Per MB: g2h loop "
		       "thread %.0f us CPU, vCPU thread %.0f us; h2g loop thread %.0f us, vCPU thread "
		       "%.0f us\n", (unsigned long long)(bytes >> 20), cpu_loop[0] / mb[0] / 1e3,
		       cpu_vcpu[0] / mb[0] / 1e3, cpu_loop[1] / mb[1] / 1e3, cpu_vcpu[1] / mb[1] / 1e3);
	}
	bench_series_free(&s[0]);
	bench_series_free(&s[1]);
	return r;
}

int bv_bench_vsock(const struct bv_params *p)
{
	struct vs_env *e = calloc(1, sizeof *e);
	if (!e)
		return -1;
	e->lfd = -1;
	snprintf(e->uds, sizeof e->uds, "%s/bench-vsock-%d", p->dir, (int)getpid());
	int r = -1;
	if (listen_on(e)) {
		if (e->lfd >= 0)
			close(e->lfd);
		free(e);
		return -1;
	}
	vmm_virtio_vsock_opts vo = VMM_VIRTIO_VSOCK_OPTS_INIT;
	vo.guest_cid = BV_VSOCK_CID;
	vo.uds_path = e->uds;
	vmm_virtio_device *dev;
	int cr = vmm_virtio_vsock_create(&dev, &vo);
	if (cr) {
		fprintf(stderr, "bench_virtio: vmm_virtio_vsock_create: %s (%s)\n", vmm_strerror(cr), vmm_last_error());
		close(e->lfd);
		unlink(e->listen_path);
		free(e);
		return -1;
	}
	if (bv_vm_open(&e->vm, "bench_vsock", p))
		vmm_virtio_device_destroy(dev);
	else if (!bv_vm_attach_start(&e->vm, dev)) {
		e->cmd_gpa = bv_vm_sym(&e->vm, "cmd");
		e->out_gpa = bv_vm_sym(&e->vm, "out");
		if (e->cmd_gpa && e->out_gpa)
			r = measure(e, p);
	}
	bv_vm_close(&e->vm);
	if (e->lfd >= 0)
		close(e->lfd);
	unlink(e->listen_path);
	free(e);
	return r;
}
