/* virtio-console end to end (guest: tests/guests/vcon_echo.c, which greets, then echoes
 * its input upper-cased until a newline). Each back end carries both directions: the
 * callback (input injected from the output callback itself, before the driver was
 * ready, and as a 96 KiB stream from another thread), fds (a pipe in, a socket out; a
 * reader that never reads; a reader that is gone), and a pty (the test opens the slave
 * like a terminal program would). */
#include "harness/virtio_harness.h"

#include <fcntl.h>
#include <linux/virtio_config.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HELLO "hello from guest\n"

struct vcon_results {
	uint32_t features;
	uint16_t cols, rows;
	uint32_t echoed;
	uint32_t buffers;
	uint32_t max_len;
	uint32_t tx_len;
	uint32_t flood_len;
};

/* What the callback back end saw. */
struct sink {
	pthread_mutex_t lock;
	char *buf;
	size_t len, cap;
	vmm_virtio_device *dev;   /* for injecting input from the callback */
	const char *reply;        /* injected once HELLO has arrived (NULL: nothing) */
	long reply_result;
	pthread_t loop_thread_seen;
};

static void sink_output(void *ctx, const void *data, size_t len)
{
	struct sink *s = ctx;
	pthread_mutex_lock(&s->lock);
	if (s->len + len + 1 > s->cap) {
		s->cap = (s->len + len + 1) * 2;
		s->buf = realloc(s->buf, s->cap);
		assert_non_null(s->buf);
	}
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = 0;
	bool greet = s->reply && strcmp(s->buf, HELLO) == 0;
	s->loop_thread_seen = pthread_self();
	pthread_mutex_unlock(&s->lock);
	/* Input from inside the output callback (the device lock is held here). */
	if (greet)
		s->reply_result = vmm_virtio_console_input(s->dev, s->reply, strlen(s->reply));
}

struct con_state {
	void *env;
	struct sink sink;
	int fds[4];
};

static int con_teardown(void **state)
{
	struct con_state *s = *state;
	if (s) {
		vt_teardown(&s->env);
		for (int i = 0; i < 4; i++)
			if (s->fds[i] >= 0)
				close(s->fds[i]);
		pthread_mutex_destroy(&s->sink.lock);
		free(s->sink.buf);
		free(s);
	}
	*state = NULL;
	return 0;
}

static struct con_state *new_state(void **state)
{
	con_teardown(state);
	struct con_state *s = calloc(1, sizeof *s);
	assert_non_null(s);
	*state = s;
	for (int i = 0; i < 4; i++)
		s->fds[i] = -1;
	pthread_mutex_init(&s->sink.lock, NULL);
	return s;
}

static vt_env *start(struct con_state *s, vmm_virtio_device *dev)
{
	kt_opts o = { .guest = "vcon_echo", .cpl = 3 };
	vt_env *e = vt_create(&s->env, &o);
	vt_attach(e, 0, dev);
	return e;
}

static struct vcon_results results(vt_env *e)
{
	struct vcon_results r;
	kt_read(e->kt, kt_sym(e->kt, "res"), &r, sizeof r);
	return r;
}

static vmm_virtio_device *callback_dev(struct con_state *s, uint16_t cols, uint16_t rows)
{
	vmm_virtio_console_opts co = VMM_VIRTIO_CONSOLE_OPTS_INIT;
	co.backend = VMM_CONSOLE_CALLBACK;
	co.output = sink_output;
	co.ctx = &s->sink;
	co.cols = cols;
	co.rows = rows;
	vmm_virtio_device *dev;
	kt_check(vmm_virtio_console_create(&dev, &co), "vmm_virtio_console_create");
	s->sink.dev = dev;
	return dev;
}

static void expect_output(struct con_state *s, const char *want)
{
	pthread_mutex_lock(&s->sink.lock);
	bool ok = s->sink.len == strlen(want) && memcmp(s->sink.buf, want, s->sink.len) == 0;
	pthread_mutex_unlock(&s->sink.lock);
	if (!ok)
		fail_msg("console output \"%.*s\", expected \"%s\"", (int)s->sink.len,
			 s->sink.buf ? s->sink.buf : "", want);
}

/* The guest greets; the callback answers from inside itself; the guest echoes. */
static void test_callback_echo(void **state)
{
	struct con_state *s = new_state(state);
	vmm_virtio_device *dev = callback_dev(s, 80, 25);
	s->sink.reply = "ping pong\n";
	vt_env *e = start(s, dev);
	kt_set_arg(e->kt, 0, 1);
	kt_run_expect(e->kt, 0, 0x100);
	expect_output(s, HELLO "PING PONG\n");
	assert_int_equal(s->sink.reply_result, 10);
	assert_false(pthread_equal(s->sink.loop_thread_seen, pthread_self())); /* the loop's */
	struct vcon_results r = results(e);
	assert_true(r.features & 1); /* VIRTIO_CONSOLE_F_SIZE */
	assert_int_equal(r.cols, 80);
	assert_int_equal(r.rows, 25);
	assert_int_equal(r.echoed, 10);
	assert_int_equal(r.tx_len, 0); /* the device writes nothing into transmit buffers */
	assert_false(vmm_virtio_mmio_status(e->dev[0]) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* Input given before the device is attached and before the driver is ready waits. */
static void test_callback_early_input(void **state)
{
	struct con_state *s = new_state(state);
	vmm_virtio_device *dev = callback_dev(s, 0, 0);
	assert_int_equal(vmm_virtio_console_input(dev, "early ", 6), 6);
	vt_env *e = start(s, dev);
	assert_int_equal(vmm_virtio_console_input(dev, "bird\n", 5), 5);
	assert_null(vmm_virtio_console_pty_path(dev));
	kt_set_arg(e->kt, 0, 1);
	kt_run_expect(e->kt, 0, 0x100);
	expect_output(s, HELLO "EARLY BIRD\n");
	struct vcon_results r = results(e);
	assert_false(r.features & 1); /* no size given: F_SIZE not offered */
}

struct injector {
	vmm_virtio_device *dev;
	const char *data;
	size_t len;
	unsigned partial; /* times the 64 KiB buffer was full */
};

static void *inject_main(void *arg)
{
	struct injector *in = arg;
	size_t done = 0;
	uint64_t end = kt_now_ms() + 15000;
	while (done < in->len && kt_now_ms() < end) {
		long n = vmm_virtio_console_input(in->dev, in->data + done, in->len - done);
		if (n < 0)
			break;
		if ((size_t)n < in->len - done) {
			in->partial++;
			usleep(1000);
		}
		done += (size_t)n;
	}
	return NULL;
}

/* 96 KiB from another thread: more than the 64 KiB input buffer, so the injector sees
 * it fill and retries; the guest echoes every byte in order. */
static void test_callback_stream(void **state)
{
	struct con_state *s = new_state(state);
	vmm_virtio_device *dev = callback_dev(s, 0, 0);
	const size_t len = 96 * 1024;
	char *in = malloc(len + 1), *want = malloc(len + 1 + sizeof HELLO);
	assert_non_null(in);
	assert_non_null(want);
	for (size_t i = 0; i < len; i++)
		in[i] = (char)('a' + i % 26);
	in[len - 1] = '\n';
	strcpy(want, HELLO);
	for (size_t i = 0; i < len; i++)
		want[sizeof HELLO - 1 + i] = in[i] == '\n' ? '\n' : (char)(in[i] - 'a' + 'A');
	want[sizeof HELLO - 1 + len] = 0;

	vt_env *e = start(s, dev);
	struct injector inj = { .dev = dev, .data = in, .len = len };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, inject_main, &inj), 0);
	kt_set_arg(e->kt, 0, 1);
	vmm_exit ex;
	int rc = kt_run(e->kt, 0, &ex, 0);
	pthread_join(th, NULL);
	assert_int_equal(rc, 0);
	assert_int_equal(ex.reason, VMM_EXIT_GUEST);
	assert_int_equal(ex.u.guest.code, 0x100);
	expect_output(s, want);
	struct vcon_results r = results(e);
	assert_int_equal(r.echoed, len);
	assert_true(r.max_len <= 256);
	assert_true(r.buffers >= len / 256);
	assert_true(inj.partial > 0);
	print_message("96 KiB echoed in %u receive buffers; the injector found the buffer full %u times\n",
		      r.buffers, inj.partial);
	free(in);
	free(want);
}

/* Reads what is available on fd until `want` bytes or timeout_ms of silence. */
static size_t drain(int fd, char *buf, size_t want, unsigned timeout_ms)
{
	size_t got = 0;
	while (got < want) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)timeout_ms) <= 0)
			break;
		ssize_t n = read(fd, buf + got, want - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* A pipe for input, a socket for output; the caller's fds keep their flags. */
static void test_fd_backend(void **state)
{
	struct con_state *s = new_state(state);
	int in[2], out[2];
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out), 0);
	s->fds[0] = in[0], s->fds[1] = in[1], s->fds[2] = out[0], s->fds[3] = out[1];
	vmm_virtio_console_opts co = VMM_VIRTIO_CONSOLE_OPTS_INIT;
	co.backend = VMM_CONSOLE_FD;
	co.in_fd = in[0];
	co.out_fd = out[0];
	vmm_virtio_device *dev;
	kt_check(vmm_virtio_console_create(&dev, &co), "vmm_virtio_console_create");
	assert_false(fcntl(in[0], F_GETFL) & O_NONBLOCK);
	assert_false(fcntl(out[0], F_GETFL) & O_NONBLOCK);
	assert_int_equal(vmm_virtio_console_input(dev, "x", 1), -EINVAL); /* not callback */
	assert_int_equal(write(in[1], "ping ", 5), 5);
	vt_env *e = start(s, dev);
	assert_int_equal(write(in[1], "pong\n", 5), 5);
	kt_set_arg(e->kt, 0, 1);
	kt_run_expect(e->kt, 0, 0x100);
	char buf[128] = { 0 };
	const char *want = HELLO "PING PONG\n";
	size_t got = drain(out[1], buf, strlen(want), 2000);
	assert_int_equal(got, strlen(want));
	assert_string_equal(buf, want);
	assert_int_equal(drain(out[1], buf, 1, 100), 0); /* nothing more */
}

/* An output pipe nobody reads: the guest's 1 MiB is not held up; what reaches the pipe
 * is a prefix of it (the pipe's capacity plus the 64 KiB the device queues). */
static void test_fd_stalled_reader(void **state)
{
	struct con_state *s = new_state(state);
	int out[2];
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	s->fds[0] = out[0], s->fds[1] = out[1];
	long pipe_size = fcntl(out[1], F_GETPIPE_SZ);
	assert_true(pipe_size > 0);
	vmm_virtio_console_opts co = VMM_VIRTIO_CONSOLE_OPTS_INIT;
	co.backend = VMM_CONSOLE_FD;
	co.out_fd = out[1];
	vmm_virtio_device *dev;
	kt_check(vmm_virtio_console_create(&dev, &co), "vmm_virtio_console_create");
	vt_env *e = start(s, dev);
	uint32_t flood = 1u << 20;
	kt_write(e->kt, kt_sym(e->kt, "res") + offsetof(struct vcon_results, flood_len), &flood, 4);
	kt_set_arg(e->kt, 0, 2);
	kt_run_expect(e->kt, 0, 0x200);

	size_t cap = (size_t)pipe_size + 64 * 1024 + 8192;
	uint8_t *buf = malloc(cap);
	assert_non_null(buf);
	size_t got = drain(out[0], (char *)buf, cap, 300);
	print_message("stalled reader: %zu of %u bytes arrived (pipe %ld)\n", got, flood, pipe_size);
	assert_true(got >= (size_t)pipe_size);
	assert_true(got <= (size_t)pipe_size + 64 * 1024);
	for (size_t i = 0; i < got; i++)
		if (buf[i] != (uint8_t)i)
			fail_msg("byte %zu: %#x, expected %#x (not a prefix of the stream)", i, buf[i], (uint8_t)i);
	free(buf);
	assert_false(fcntl(out[1], F_GETFL) & O_NONBLOCK); /* reopened, not changed */
}

/* An output pipe whose reader is gone: no SIGPIPE (it would kill this process), and the
 * guest is not held up. */
static void test_fd_reader_gone(void **state)
{
	struct con_state *s = new_state(state);
	int out[2];
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	s->fds[1] = out[1];
	vmm_virtio_console_opts co = VMM_VIRTIO_CONSOLE_OPTS_INIT;
	co.backend = VMM_CONSOLE_FD;
	co.out_fd = out[1];
	vmm_virtio_device *dev;
	kt_check(vmm_virtio_console_create(&dev, &co), "vmm_virtio_console_create");
	close(out[0]);
	vt_env *e = start(s, dev);
	uint32_t flood = 64 * 1024;
	kt_write(e->kt, kt_sym(e->kt, "res") + offsetof(struct vcon_results, flood_len), &flood, 4);
	kt_set_arg(e->kt, 0, 2);
	kt_run_expect(e->kt, 0, 0x200);
	assert_false(vmm_virtio_mmio_status(e->dev[0]) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* The pty back end: a terminal program opens the slave, types, and reads the echo. */
static void test_pty(void **state)
{
	struct con_state *s = new_state(state);
	vmm_virtio_console_opts co = VMM_VIRTIO_CONSOLE_OPTS_INIT;
	co.backend = VMM_CONSOLE_PTY;
	vmm_virtio_device *dev;
	kt_check(vmm_virtio_console_create(&dev, &co), "vmm_virtio_console_create");
	const char *path = vmm_virtio_console_pty_path(dev);
	assert_non_null(path);
	assert_true(strncmp(path, "/dev/pts/", 9) == 0);
	int slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	assert_true(slave >= 0);
	s->fds[0] = slave;
	vt_env *e = start(s, dev);
	assert_int_equal(write(slave, "ping pong\n", 10), 10);
	kt_set_arg(e->kt, 0, 1);
	kt_run_expect(e->kt, 0, 0x100);
	char buf[128] = { 0 };
	const char *want = HELLO "PING PONG\n"; /* raw mode: no CR added, no echo */
	size_t got = drain(slave, buf, strlen(want), 2000);
	assert_int_equal(got, strlen(want));
	assert_string_equal(buf, want);
	assert_int_equal(drain(slave, buf, 1, 100), 0);
}

static void test_create_errors(void **state)
{
	(void)state;
	vmm_virtio_device *dev = (vmm_virtio_device *)1;
	vmm_virtio_console_opts co = VMM_VIRTIO_CONSOLE_OPTS_INIT;
	co.backend = VMM_CONSOLE_CALLBACK; /* without an output function */
	assert_int_equal(vmm_virtio_console_create(&dev, &co), -EINVAL);
	assert_null(dev);
	co.backend = (vmm_console_backend)7;
	assert_int_equal(vmm_virtio_console_create(&dev, &co), -EINVAL);
	co.backend = VMM_CONSOLE_FD;
	co.in_fd = 1000000; /* not open */
	assert_int_equal(vmm_virtio_console_create(&dev, &co), -EBADF);
	assert_int_equal(vmm_virtio_console_create(&dev, NULL), -EINVAL);
	assert_int_equal(vmm_virtio_console_input(NULL, "x", 1), -EINVAL);
	assert_null(vmm_virtio_console_pty_path(NULL));
	/* Neither fd: a console that drops output and never has input. */
	co.in_fd = -1;
	kt_check(vmm_virtio_console_create(&dev, &co), "vmm_virtio_console_create");
	vmm_virtio_device_destroy(dev);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_callback_echo, con_teardown),
		cmocka_unit_test_teardown(test_callback_early_input, con_teardown),
		cmocka_unit_test_teardown(test_callback_stream, con_teardown),
		cmocka_unit_test_teardown(test_fd_backend, con_teardown),
		cmocka_unit_test_teardown(test_fd_stalled_reader, con_teardown),
		cmocka_unit_test_teardown(test_fd_reader_gone, con_teardown),
		cmocka_unit_test_teardown(test_pty, con_teardown),
		cmocka_unit_test(test_create_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
