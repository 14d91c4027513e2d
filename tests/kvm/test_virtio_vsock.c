/* virtio-vsock end to end (guest: tests/guests/vsock_guest.c, its own small vsock stack):
 *  - guest -> host: the guest connects to host port 1234, which reaches the Unix socket
 *    "<path>_1234"; 16 MiB arrive intact (every byte checked against the stream) and the
 *    FNV the guest printed matches what the host received;
 *  - host -> guest: a host client connects to <path>, says "CONNECT 5000", gets "OK <port>",
 *    sends 16 MiB which the guest checks byte by byte;
 *  - flow control: the guest advertises a 4 KiB buffer and grants credit by hand; it
 *    fails if the device ever sends beyond the credit, and expects CREDIT_REQUESTs;
 *  - hostile: malformed packets get RST or are dropped exactly as specified, a guest that
 *    overruns the device's credit is reset, and the device still carries a transfer;
 *  - options are validated, a stale socket is replaced and a regular file is not.
 */
#include "harness/virtio_harness.h"
#include "guests/vsock_test.h"

#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MIB (1ull << 20)
#define THREAD_TIMEOUT_MS 30000u
#define VS_RAM (64ull << 20)

/* ---- host-side helpers ---- */

/* A host service on "<path>_<port>": accepts one connection and reads it to EOF,
 * checking the stream (or, with hold, never reads until stopped). */
struct sink {
	char path[108];
	int lfd;
	bool hold;
	int nconn;        /* connections to take one after the other (0 = 1) */
	uint64_t first_total; /* bytes of the first of two connections */
	int64_t first_bad_at;
	bool first_eof;
	pthread_t th;
	bool started;
	atomic_bool stop;
	struct vt_stream s;
	uint64_t total;
	int64_t bad_at;   /* first wrong byte, -1 if none */
	uint64_t fnv;     /* of what arrived */
	bool accepted, eof;
};

/* A host client: connects to <path>, "CONNECT <port>\n", expects "OK <n>\n", sends `bytes`
 * of the stream, closes. */
struct client {
	char path[108];
	uint32_t port;
	uint64_t bytes, seed;
	pthread_t th;
	bool started;
	atomic_bool stop;
	char reply[64];
	bool ok;
	uint32_t local_port;
	uint64_t written;
	uint64_t fnv;
	int err;
};

struct vs {
	vt_env *e;
	vmm_virtio_mmio *t;
	char dir[64];
	char uds[108];
	struct sink sink[2];
	struct client client;
};

/* Waits for fd to be ready. A stop request still lets an event that is already
 * pending through (one last zero-timeout poll): a connection the device made just
 * before the test stopped the thread must still count as accepted. */
static bool wait_fd(int fd, short ev, atomic_bool *stop, uint64_t deadline)
{
	for (;;) {
		bool last = atomic_load(stop) || kt_now_ms() >= deadline;
		struct pollfd p = { fd, ev, 0 };
		int r = poll(&p, 1, last ? 0 : 100);
		if (r > 0)
			return true;
		if ((r < 0 && errno != EINTR) || last)
			return false;
	}
}

static void *sink_main(void *arg)
{
	struct sink *k = arg;
	uint64_t deadline = kt_now_ms() + THREAD_TIMEOUT_MS;
	uint8_t *buf = NULL;
	int fd = -1;
again:
	if (!wait_fd(k->lfd, POLLIN, &k->stop, deadline))
		goto out;
	fd = accept(k->lfd, NULL, NULL);
	if (fd < 0)
		goto out;
	k->accepted = true;
	if (k->hold) {
		while (!atomic_load(&k->stop) && kt_now_ms() < deadline)
			usleep(10000);
		goto out;
	}
	const size_t cap = 256 << 10;
	if (!buf)
		buf = malloc(cap);
	while (buf && wait_fd(fd, POLLIN, &k->stop, deadline)) {
		ssize_t n = read(fd, buf, cap);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			k->eof = n == 0;
			break;
		}
		size_t ok = vt_check(&k->s, buf, (size_t)n);
		if (ok != (size_t)n && k->bad_at < 0)
			k->bad_at = (int64_t)(k->total + ok);
		k->fnv = vt_fnv(k->fnv, buf, (size_t)n);
		k->total += (uint64_t)n;
	}
	if (k->nconn > 1) {
		/* Start over for the next connection. */
		k->nconn--;
		k->first_total = k->total;
		k->first_bad_at = k->bad_at;
		k->first_eof = k->eof;
		k->total = 0;
		k->bad_at = -1;
		k->eof = false;
		k->fnv = 0xcbf29ce484222325ull;
		vt_stream_init(&k->s, k->s.seed);
		close(fd);
		fd = -1;
		goto again;
	}
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void sink_start(struct vs *s, int i, uint32_t port, uint64_t seed, bool hold)
{
	struct sink *k = &s->sink[i];
	int nconn = k->nconn;
	memset(k, 0, sizeof *k);
	k->nconn = nconn;
	k->first_bad_at = -1;
	k->lfd = -1;
	int pn = snprintf(k->path, sizeof k->path, "%.80s_%u", s->uds, port);
	assert_true(pn > 0 && (size_t)pn < sizeof k->path);
	k->hold = hold;
	k->bad_at = -1;
	k->fnv = 0xcbf29ce484222325ull;
	vt_stream_init(&k->s, seed);
	k->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(k->lfd >= 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	strcpy(a.sun_path, k->path);
	assert_int_equal(bind(k->lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(k->lfd, 4), 0);
	assert_int_equal(pthread_create(&k->th, NULL, sink_main, k), 0);
	k->started = true;
}

static void sink_join(struct sink *k)
{
	if (k->started) {
		pthread_join(k->th, NULL);
		k->started = false;
	}
	if (k->lfd >= 0) {
		close(k->lfd);
		unlink(k->path);
		k->lfd = -1;
	}
}

static void sink_stop(struct sink *k)
{
	atomic_store(&k->stop, true);
	sink_join(k);
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	uint64_t deadline = kt_now_ms() + THREAD_TIMEOUT_MS;
	uint8_t *buf = NULL;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	strcpy(a.sun_path, c->path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		c->err = errno;
		goto out;
	}
	char line[32];
	int n = snprintf(line, sizeof line, "CONNECT %u\n", c->port);
	if (write(fd, line, (size_t)n) != n) {
		c->err = errno;
		goto out;
	}
	/* The reply, byte by byte so nothing after the newline is consumed. */
	size_t got = 0;
	while (got + 1 < sizeof c->reply) {
		if (!wait_fd(fd, POLLIN, &c->stop, deadline) || read(fd, &c->reply[got], 1) != 1) {
			c->err = EPROTO;
			goto out;
		}
		if (c->reply[got++] == '\n')
			break;
	}
	c->reply[got] = 0;
	if (sscanf(c->reply, "OK %u\n", &c->local_port) != 1)
		goto out;
	c->ok = true;
	struct vt_stream s;
	vt_stream_init(&s, c->seed);
	const size_t cap = 64 << 10;
	buf = malloc(cap);
	if (!buf) {
		c->err = ENOMEM;
		goto out;
	}
	while (c->written < c->bytes) {
		size_t chunk = c->bytes - c->written < cap ? c->bytes - c->written : cap;
		vt_fill(&s, buf, chunk);
		for (size_t off = 0; off < chunk;) {
			if (!wait_fd(fd, POLLOUT, &c->stop, deadline)) {
				c->err = ETIMEDOUT;
				goto out;
			}
			ssize_t w = send(fd, buf + off, chunk - off, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				c->err = errno;
				goto out;
			}
			off += (size_t)w;
		}
		c->written += chunk;
	}
	c->fnv = s.fnv;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void client_start(struct vs *s, uint32_t port, uint64_t bytes, uint64_t seed)
{
	struct client *c = &s->client;
	memset(c, 0, sizeof *c);
	memcpy(c->path, s->uds, sizeof c->path);
	c->port = port;
	c->bytes = bytes;
	c->seed = seed;
	assert_int_equal(pthread_create(&c->th, NULL, client_main, c), 0);
	c->started = true;
}

static void client_join(struct client *c)
{
	if (c->started) {
		pthread_join(c->th, NULL);
		c->started = false;
	}
}

static int vs_teardown(void **state)
{
	struct vs *s = *state;
	if (!s)
		return 0;
	for (int i = 0; i < 2; i++)
		sink_stop(&s->sink[i]);
	atomic_store(&s->client.stop, true);
	client_join(&s->client);
	vt_destroy(s->e);
	if (s->dir[0]) {
		/* The device removed its listener; anything left is a failure's debris. */
		unlink(s->uds);
		rmdir(s->dir);
	}
	free(s);
	*state = NULL;
	return 0;
}

static struct vs *vs_setup(void **state)
{
	vs_teardown(state);
	struct vs *s = calloc(1, sizeof *s);
	assert_non_null(s);
	*state = s;
	for (int i = 0; i < 2; i++)
		s->sink[i].lfd = -1;
	strcpy(s->dir, "/tmp/libvmm-vsock-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->uds, sizeof s->uds, "%s/v.sock", s->dir);
	kt_opts o = { .guest = "vsock_guest", .cpl = 3, .ram = VS_RAM };
	s->e = vt_new(&o);
	vmm_virtio_vsock_opts vo = VMM_VIRTIO_VSOCK_OPTS_INIT;
	vo.guest_cid = VT_GUEST_CID;
	vo.uds_path = s->uds;
	vmm_virtio_device *dev;
	kt_check(vmm_virtio_vsock_create(&dev, &vo), "vmm_virtio_vsock_create");
	s->t = vt_attach(s->e, 0, dev);
	return s;
}

static uint64_t guest_arg(uint32_t mode, uint64_t mib, uint64_t seed)
{
	return mode | mib << 8 | seed << 32;
}

/* The value the guest printed as "<key>=0x...". */
static uint64_t console_value(kt_vm *t, const char *key)
{
	static char buf[KT_CONSOLE_MAX + 1];
	kt_console(t, buf, sizeof buf);
	char pat[64];
	snprintf(pat, sizeof pat, "%s=", key);
	const char *p = strstr(buf, pat);
	if (!p)
		fail_msg("guest did not print %s; console:\n%s", key, buf);
	return strtoull(p + strlen(pat), NULL, 16);
}

static void assert_device_healthy(struct vs *s)
{
	char why[128];
	uint32_t st = vmm_virtio_mmio_status(s->t);
	if (st & 64)
		fail_msg("device needs reset: %s", vmm_virtio_mmio_error(s->t, why, sizeof why));
	assert_true(st & 4); /* DRIVER_OK */
}

/* ---- tests ---- */

static void test_guest_to_host(void **state)
{
	struct vs *s = vs_setup(state);
	const uint64_t seed = 0x1234, bytes = 16 * MIB;
	sink_start(s, 0, VT_HOST_PORT, seed, false);
	kt_set_arg(s->e->kt, 0, guest_arg(VT_MODE_SEND, bytes / MIB, seed));
	uint64_t t0 = kt_now_ms();
	kt_run_expect(s->e->kt, 0, VT_OK);
	uint64_t ms = kt_now_ms() - t0;
	sink_join(&s->sink[0]);
	struct sink *k = &s->sink[0];
	assert_true(k->accepted);
	assert_true(k->eof);
	assert_int_equal(k->bad_at, -1);
	assert_int_equal(k->total, bytes);
	assert_int_equal(console_value(s->e->kt, "sent"), bytes);
	assert_true(console_value(s->e->kt, "fnv") == k->fnv);
	assert_device_healthy(s);
	print_message("guest -> host: %llu MiB in %llu ms\n", (unsigned long long)(bytes / MIB),
		      (unsigned long long)ms);
}

static void test_host_to_guest(void **state)
{
	struct vs *s = vs_setup(state);
	const uint64_t seed = 0x5678, bytes = 16 * MIB;
	client_start(s, VT_GUEST_PORT, bytes, seed);
	kt_set_arg(s->e->kt, 0, guest_arg(VT_MODE_RECV, 0, seed));
	uint64_t t0 = kt_now_ms();
	kt_run_expect(s->e->kt, 0, VT_OK);
	uint64_t ms = kt_now_ms() - t0;
	client_join(&s->client);
	struct client *c = &s->client;
	assert_int_equal(c->err, 0);
	assert_true(c->ok);
	/* Host-initiated connections get source ports from 2^30 up. */
	assert_true(c->local_port >= (1u << 30));
	assert_int_equal(c->written, bytes);
	assert_int_equal(console_value(s->e->kt, "received"), bytes);
	assert_true(console_value(s->e->kt, "fnv") == c->fnv);
	assert_device_healthy(s);
	print_message("host -> guest: %llu MiB in %llu ms\n", (unsigned long long)(bytes / MIB),
		      (unsigned long long)ms);
}

static void test_credit(void **state)
{
	struct vs *s = vs_setup(state);
	const uint64_t seed = 0x9abc, bytes = 64 << 10;
	client_start(s, VT_GUEST_PORT, bytes, seed);
	kt_set_arg(s->e->kt, 0, guest_arg(VT_MODE_CREDIT, 0, seed));
	kt_run_expect(s->e->kt, 0, VT_OK);
	client_join(&s->client);
	assert_int_equal(s->client.err, 0);
	assert_int_equal(s->client.written, bytes);
	assert_int_equal(console_value(s->e->kt, "received"), bytes);
	assert_true(console_value(s->e->kt, "fnv") == s->client.fnv);
	/* 64 KiB through a 4 KiB window: the guest granted the window again and again. */
	assert_true(console_value(s->e->kt, "grants") >= bytes / VT_SMALL_BUF - 1);
	assert_true(console_value(s->e->kt, "credit_requests") >= 1);
	print_message("credit: %llu grants, %llu credit requests\n",
		      (unsigned long long)console_value(s->e->kt, "grants"),
		      (unsigned long long)console_value(s->e->kt, "credit_requests"));
	assert_device_healthy(s);
}

/* A device reset under an open connection: the host sees EOF, and the device works
 * again for the driver that set it up anew. */
static void test_reset(void **state)
{
	struct vs *s = vs_setup(state);
	const uint64_t seed = 0x7777, bytes = 1 * MIB;
	s->sink[0].nconn = 2;
	sink_start(s, 0, VT_HOST_PORT, seed, false);
	kt_set_arg(s->e->kt, 0, guest_arg(VT_MODE_RESET, bytes / MIB, seed));
	kt_run_expect(s->e->kt, 0, VT_OK);
	sink_join(&s->sink[0]);
	struct sink *k = &s->sink[0];
	assert_true(k->first_eof);
	assert_int_equal(k->first_bad_at, -1);
	assert_true(k->first_total <= VT_RESET_FIRST);
	print_message("reset: the first connection carried %llu bytes, then EOF\n", (unsigned long long)k->first_total);
	assert_true(k->eof);
	assert_int_equal(k->bad_at, -1);
	assert_int_equal(k->total, bytes);
	assert_true(console_value(s->e->kt, "fnv") == k->fnv);
	assert_device_healthy(s);
}

static void test_hostile(void **state)
{
	struct vs *s = vs_setup(state);
	const uint64_t seed = 0xdef0, bytes = 1 * MIB;
	sink_start(s, 0, VT_HOST_PORT, seed, false);
	sink_start(s, 1, VT_SINK_PORT, 0, true);
	kt_set_arg(s->e->kt, 0, guest_arg(VT_MODE_HOSTILE, bytes / MIB, seed));
	kt_run_expect(s->e->kt, 0, VT_OK);
	sink_join(&s->sink[0]);
	sink_stop(&s->sink[1]);
	assert_true(s->sink[1].accepted);
	/* The overrun was reset after the device had taken its whole advertised buffer. */
	assert_true(console_value(s->e->kt, "overrun_pushed") >= (256u << 10));
	assert_true(console_value(s->e->kt, "overrun_pushed") < 16 * MIB);
	print_message("overrun reset after %llu KiB\n",
		      (unsigned long long)console_value(s->e->kt, "overrun_pushed") >> 10);
	struct sink *k = &s->sink[0];
	assert_int_equal(k->bad_at, -1);
	assert_int_equal(k->total, bytes);
	assert_true(console_value(s->e->kt, "fnv") == k->fnv);
	assert_device_healthy(s);
}

/* Options and the listener's path, without a guest. */
static void test_options(void **state)
{
	(void)state;
	char dir[] = "/tmp/libvmm-vsock-opt-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[108];
	snprintf(path, sizeof path, "%s/l.sock", dir);
	vmm_virtio_device *dev = NULL;
	vmm_virtio_vsock_opts o = VMM_VIRTIO_VSOCK_OPTS_INIT;
	o.uds_path = path;

	o.guest_cid = 2;
	assert_int_equal(vmm_virtio_vsock_create(&dev, &o), -EINVAL);
	o.guest_cid = 0xffffffffull;
	assert_int_equal(vmm_virtio_vsock_create(&dev, &o), -EINVAL);
	o.guest_cid = 3;
	o.max_connections = 1u << 20;
	assert_int_equal(vmm_virtio_vsock_create(&dev, &o), -EINVAL);
	o.max_connections = 0;
	o.uds_path = NULL;
	assert_int_equal(vmm_virtio_vsock_create(&dev, &o), -EINVAL);
	char longp[200];
	memset(longp, 'a', sizeof longp - 1);
	longp[sizeof longp - 1] = 0;
	o.uds_path = longp;
	assert_int_equal(vmm_virtio_vsock_create(&dev, &o), -EINVAL);
	assert_int_equal(vmm_virtio_vsock_create(&dev, NULL), -EINVAL);

	/* A regular file in the way is not ours to remove. */
	o.uds_path = path;
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(vmm_virtio_vsock_create(&dev, &o), -EEXIST);
	unlink(path);

	/* A stale socket is replaced; the listener is removed again on destroy. */
	int st = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	strcpy(a.sun_path, path);
	assert_int_equal(bind(st, (struct sockaddr *)&a, sizeof a), 0);
	close(st);
	kt_check(vmm_virtio_vsock_create(&dev, &o), "create over a stale socket");
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));
	/* Someone can connect (the backlog holds it until the device is active). */
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof a), 0);
	close(c);
	vmm_virtio_device_destroy(dev);
	assert_int_equal(stat(path, &sb), -1);
	rmdir(dir);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options),
		cmocka_unit_test_teardown(test_guest_to_host, vs_teardown),
		cmocka_unit_test_teardown(test_host_to_guest, vs_teardown),
		cmocka_unit_test_teardown(test_credit, vs_teardown),
		cmocka_unit_test_teardown(test_hostile, vs_teardown),
		cmocka_unit_test_teardown(test_reset, vs_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
