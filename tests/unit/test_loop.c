/* vmm_loop: level-triggered dispatch, add/modify/remove errors, removal of an fd whose
 * event was already fetched in the same iteration (also when its number is re-used at
 * once), cross-thread calls in FIFO order on the loop thread, stop from any thread, and
 * integration through vmm_loop_fd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <libvmm/libvmm.h>

static int efd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(fd >= 0);
	return fd;
}

static void signal_fd(int fd)
{
	uint64_t one = 1;
	assert_int_equal(write(fd, &one, sizeof one), sizeof one);
}

static void drain(int fd)
{
	uint64_t v;
	(void)!read(fd, &v, sizeof v);
}

struct rec {
	int calls;
	int last_fd;
	uint32_t last_events;
	bool consume;
};

static void rec_cb(void *ctx, int fd, uint32_t events)
{
	struct rec *r = ctx;
	r->calls++;
	r->last_fd = fd;
	r->last_events = events;
	if (r->consume)
		drain(fd);
}

static int setup(void **state)
{
	vmm_loop *l;
	assert_int_equal(vmm_loop_create(&l), 0);
	*state = l;
	return 0;
}

static int teardown(void **state)
{
	vmm_loop_destroy(*state);
	return 0;
}

static void test_create_args(void **state)
{
	(void)state;
	assert_int_equal(vmm_loop_create(NULL), -EINVAL);
	vmm_loop_destroy(NULL);
	assert_int_equal(vmm_loop_fd(NULL), -1);
	vmm_loop_stop(NULL);
}

static void test_level_triggered(void **state)
{
	vmm_loop *l = *state;
	int fd = efd();
	struct rec r = { 0 };
	assert_int_equal(vmm_loop_add(l, fd, VMM_LOOP_IN, rec_cb, &r), 0);
	/* Nothing ready: a zero timeout returns at once with no callbacks. */
	assert_int_equal(vmm_loop_run_once(l, 0), 0);
	assert_int_equal(r.calls, 0);
	signal_fd(fd);
	assert_int_equal(vmm_loop_run_once(l, 0), 1);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.last_fd, fd);
	assert_int_equal(r.last_events, VMM_LOOP_IN);
	/* Not consumed: level-triggered, so it fires again. */
	assert_int_equal(vmm_loop_run_once(l, 0), 1);
	assert_int_equal(r.calls, 2);
	r.consume = true;
	assert_int_equal(vmm_loop_run_once(l, 0), 1);
	assert_int_equal(vmm_loop_run_once(l, 0), 0);
	assert_int_equal(r.calls, 3);
	assert_int_equal(vmm_loop_remove(l, fd), 0);
	close(fd);
}

static void test_errors(void **state)
{
	vmm_loop *l = *state;
	int fd = efd();
	struct rec r = { 0 };
	assert_int_equal(vmm_loop_add(NULL, fd, VMM_LOOP_IN, rec_cb, &r), -EINVAL);
	assert_int_equal(vmm_loop_add(l, -1, VMM_LOOP_IN, rec_cb, &r), -EINVAL);
	assert_int_equal(vmm_loop_add(l, fd, VMM_LOOP_IN, NULL, &r), -EINVAL);
	assert_int_equal(vmm_loop_add(l, fd, 0x100, rec_cb, &r), -EINVAL);
	assert_int_equal(vmm_loop_modify(l, fd, VMM_LOOP_IN), -ENOENT);
	assert_int_equal(vmm_loop_remove(l, fd), -ENOENT);
	assert_int_equal(vmm_loop_remove(l, 1 << 20), -ENOENT);
	assert_int_equal(vmm_loop_add(l, fd, VMM_LOOP_IN, rec_cb, &r), 0);
	assert_int_equal(vmm_loop_add(l, fd, VMM_LOOP_IN, rec_cb, &r), -EEXIST);
	assert_true(strstr(vmm_last_error(), "already watched") != NULL);
	assert_int_equal(vmm_loop_modify(l, fd, 0x100), -EINVAL);
	assert_int_equal(vmm_loop_remove(l, fd), 0);
	assert_int_equal(vmm_loop_remove(l, fd), -ENOENT);
	/* A file epoll cannot watch (regular files): the errno of epoll_ctl. */
	int reg = open("/proc/self/status", O_RDONLY);
	(void)reg;
	close(fd);
	/* A closed fd: EBADF from epoll_ctl. */
	assert_int_equal(vmm_loop_add(l, fd, VMM_LOOP_IN, rec_cb, &r), -EBADF);
	if (reg >= 0) {
		assert_int_equal(vmm_loop_add(l, reg, VMM_LOOP_IN, rec_cb, &r), -EPERM);
		close(reg);
	}
	assert_int_equal(vmm_loop_call(l, NULL, NULL), -EINVAL);
	assert_int_equal(vmm_loop_run_once(NULL, 0), -EINVAL);
	assert_int_equal(vmm_loop_run(NULL), -EINVAL);
}

static void test_modify(void **state)
{
	vmm_loop *l = *state;
	int fd = efd();
	struct rec r = { 0 };
	/* An eventfd below its maximum is always writable. */
	assert_int_equal(vmm_loop_add(l, fd, VMM_LOOP_OUT, rec_cb, &r), 0);
	assert_int_equal(vmm_loop_run_once(l, 0), 1);
	assert_int_equal(r.last_events, VMM_LOOP_OUT);
	assert_int_equal(vmm_loop_modify(l, fd, VMM_LOOP_IN), 0);
	assert_int_equal(vmm_loop_run_once(l, 0), 0);
	signal_fd(fd);
	assert_int_equal(vmm_loop_modify(l, fd, 0), 0);
	assert_int_equal(vmm_loop_run_once(l, 0), 0); /* readable, but not of interest */
	assert_int_equal(vmm_loop_modify(l, fd, VMM_LOOP_IN | VMM_LOOP_OUT), 0);
	assert_int_equal(vmm_loop_run_once(l, 0), 1);
	assert_int_equal(r.last_events, VMM_LOOP_IN | VMM_LOOP_OUT);
	assert_int_equal(r.calls, 2);
	assert_int_equal(vmm_loop_remove(l, fd), 0);
	close(fd);
}

static void test_hangup_is_err(void **state)
{
	vmm_loop *l = *state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct rec r = { 0 };
	/* No interest at all: errors and hang-ups are still reported. */
	assert_int_equal(vmm_loop_add(l, p[0], 0, rec_cb, &r), 0);
	assert_int_equal(vmm_loop_run_once(l, 0), 0);
	close(p[1]);
	assert_int_equal(vmm_loop_run_once(l, 0), 1);
	assert_true(r.last_events & VMM_LOOP_ERR);
	assert_int_equal(vmm_loop_remove(l, p[0]), 0);
	close(p[0]);
}

/* Two ready fds; whichever callback runs first removes the other: the other's event is
 * already fetched, and must be dropped. */
struct pair {
	vmm_loop *l;
	int fd[2];
	int calls[2];
	int reused_fd;   /* test_remove_reuse: the fd number given to a new registration */
	struct rec *late;
	bool reuse;
};

static void pair_cb(void *ctx, int fd, uint32_t events)
{
	struct pair *p = ctx;
	(void)events;
	int me = fd == p->fd[0] ? 0 : 1;
	p->calls[me]++;
	int other = p->fd[1 - me];
	assert_int_equal(vmm_loop_remove(p->l, other), 0);
	if (p->reuse) {
		/* Close it and watch a new (idle) fd that gets the same number. */
		close(other);
		int n = efd();
		assert_int_equal(n, other);
		p->reused_fd = n;
		assert_int_equal(vmm_loop_add(p->l, n, VMM_LOOP_IN, rec_cb, p->late), 0);
	}
	drain(fd);
}

static void test_remove_in_batch(void **state)
{
	vmm_loop *l = *state;
	struct pair p = { .l = l, .fd = { efd(), efd() }, .reused_fd = -1 };
	signal_fd(p.fd[0]);
	signal_fd(p.fd[1]);
	assert_int_equal(vmm_loop_add(l, p.fd[0], VMM_LOOP_IN, pair_cb, &p), 0);
	assert_int_equal(vmm_loop_add(l, p.fd[1], VMM_LOOP_IN, pair_cb, &p), 0);
	assert_int_equal(vmm_loop_run_once(l, 0), 1);
	assert_int_equal(p.calls[0] + p.calls[1], 1);
	int survivor = p.calls[0] ? p.fd[0] : p.fd[1];
	assert_int_equal(vmm_loop_remove(l, survivor), 0);
	close(p.fd[0]);
	close(p.fd[1]);
}

static void test_remove_reuse(void **state)
{
	vmm_loop *l = *state;
	struct rec late = { 0 };
	struct pair p = { .l = l, .fd = { efd(), efd() }, .reuse = true, .late = &late };
	signal_fd(p.fd[0]);
	signal_fd(p.fd[1]);
	assert_int_equal(vmm_loop_add(l, p.fd[0], VMM_LOOP_IN, pair_cb, &p), 0);
	assert_int_equal(vmm_loop_add(l, p.fd[1], VMM_LOOP_IN, pair_cb, &p), 0);
	assert_int_equal(vmm_loop_run_once(l, 0), 1);
	/* The stale event of the old fd did not reach the new registration. */
	assert_int_equal(late.calls, 0);
	assert_int_equal(p.calls[0] + p.calls[1], 1);
	/* The new registration works on its own. */
	signal_fd(p.reused_fd);
	assert_int_equal(vmm_loop_run_once(l, 0), 1);
	assert_int_equal(late.calls, 1);
	int survivor = p.calls[0] ? p.fd[0] : p.fd[1];
	assert_int_equal(vmm_loop_remove(l, survivor), 0);
	assert_int_equal(vmm_loop_remove(l, p.reused_fd), 0);
	close(p.fd[0]);
	close(p.fd[1]);
}

/* A callback that removes itself is not called again, even though still readable. */
static void self_remove_cb(void *ctx, int fd, uint32_t events)
{
	struct pair *p = ctx;
	(void)events;
	p->calls[0]++;
	assert_int_equal(vmm_loop_remove(p->l, fd), 0);
}

static void test_self_remove(void **state)
{
	vmm_loop *l = *state;
	struct pair p = { .l = l, .fd = { efd(), -1 } };
	signal_fd(p.fd[0]);
	assert_int_equal(vmm_loop_add(l, p.fd[0], VMM_LOOP_IN, self_remove_cb, &p), 0);
	assert_int_equal(vmm_loop_run_once(l, 0), 1);
	assert_int_equal(vmm_loop_run_once(l, 0), 0);
	assert_int_equal(p.calls[0], 1);
	close(p.fd[0]);
}

/* ---- calls and stop across threads ---- */

#define NCALLS 200

struct calls {
	vmm_loop *l;
	pthread_t loop_thread;
	pthread_mutex_t lock;
	int order[NCALLS];
	int n;
	bool wrong_thread, wrong_args;
	int run_result;
};

struct call_arg {
	struct calls *c;
	int i;
};

static void call_cb(void *ctx, int fd, uint32_t events)
{
	struct call_arg *a = ctx;
	if (fd != -1 || events != 0)
		a->c->wrong_args = true;
	if (!pthread_equal(pthread_self(), a->c->loop_thread))
		a->c->wrong_thread = true;
	pthread_mutex_lock(&a->c->lock);
	a->c->order[a->c->n++] = a->i;
	pthread_mutex_unlock(&a->c->lock);
}

static void *run_thread(void *arg)
{
	struct calls *c = arg;
	c->run_result = vmm_loop_run(c->l);
	return NULL;
}

static void test_call_from_thread(void **state)
{
	vmm_loop *l = *state;
	static struct calls c;
	static struct call_arg args[NCALLS];
	memset(&c, 0, sizeof c);
	c.l = l;
	pthread_mutex_init(&c.lock, NULL);
	assert_int_equal(pthread_create(&c.loop_thread, NULL, run_thread, &c), 0);
	for (int i = 0; i < NCALLS; i++) {
		args[i] = (struct call_arg){ &c, i };
		assert_int_equal(vmm_loop_call(l, call_cb, &args[i]), 0);
	}
	/* Wait for all of them, then stop from this thread. */
	for (int spin = 0; spin < 5000; spin++) {
		pthread_mutex_lock(&c.lock);
		int n = c.n;
		pthread_mutex_unlock(&c.lock);
		if (n == NCALLS)
			break;
		usleep(1000);
	}
	vmm_loop_stop(l);
	pthread_join(c.loop_thread, NULL);
	assert_int_equal(c.run_result, 0);
	assert_int_equal(c.n, NCALLS);
	for (int i = 0; i < NCALLS; i++)
		assert_int_equal(c.order[i], i);
	assert_false(c.wrong_thread);
	assert_false(c.wrong_args);
	pthread_mutex_destroy(&c.lock);
}

static void test_stop_before_run(void **state)
{
	vmm_loop *l = *state;
	/* A stop that races ahead of the run is not lost; it is consumed by that run. */
	vmm_loop_stop(l);
	assert_int_equal(vmm_loop_run(l), 0);
	assert_int_equal(vmm_loop_run_once(l, 0), 0);
}

static void *stopper(void *arg)
{
	usleep(20000);
	vmm_loop_stop(arg);
	return NULL;
}

static void test_stop_from_thread(void **state)
{
	vmm_loop *l = *state;
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, stopper, l), 0);
	assert_int_equal(vmm_loop_run(l), 0); /* blocks until the other thread stops it */
	pthread_join(th, NULL);
}

/* A call queued from inside a callback runs at the next iteration, not this one. */
static int chained;
static void chain_cb2(void *ctx, int fd, uint32_t events)
{
	(void)ctx;
	(void)fd;
	(void)events;
	chained++;
}

static void chain_cb1(void *ctx, int fd, uint32_t events)
{
	(void)fd;
	(void)events;
	chained++;
	assert_int_equal(vmm_loop_call(ctx, chain_cb2, NULL), 0);
}

static void test_call_from_callback(void **state)
{
	vmm_loop *l = *state;
	chained = 0;
	assert_int_equal(vmm_loop_call(l, chain_cb1, l), 0);
	assert_int_equal(vmm_loop_run_once(l, 0), 1);
	assert_int_equal(chained, 1);
	assert_int_equal(vmm_loop_run_once(l, 0), 1);
	assert_int_equal(chained, 2);
	assert_int_equal(vmm_loop_run_once(l, 0), 0);
}

static void test_pending_calls_freed(void **state)
{
	(void)state;
	vmm_loop *l;
	assert_int_equal(vmm_loop_create(&l), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(vmm_loop_call(l, chain_cb2, NULL), 0);
	vmm_loop_destroy(l); /* ASan reports a leak if the queue is not freed */
}

/* vmm_loop_fd for integration: readable exactly when run_once(0) has work. */
static void test_loop_fd(void **state)
{
	vmm_loop *l = *state;
	int fd = efd();
	struct rec r = { .consume = true };
	assert_int_equal(vmm_loop_add(l, fd, VMM_LOOP_IN, rec_cb, &r), 0);
	struct pollfd pfd = { .fd = vmm_loop_fd(l), .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 0), 0);
	signal_fd(fd);
	assert_int_equal(poll(&pfd, 1, 0), 1);
	assert_int_equal(vmm_loop_run_once(l, 0), 1);
	assert_int_equal(poll(&pfd, 1, 0), 0);
	assert_int_equal(vmm_loop_call(l, chain_cb2, NULL), 0);
	assert_int_equal(poll(&pfd, 1, 0), 1);
	assert_int_equal(vmm_loop_run_once(l, 0), 1);
	assert_int_equal(vmm_loop_remove(l, fd), 0);
	close(fd);
}

static void test_timeout(void **state)
{
	vmm_loop *l = *state;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(vmm_loop_run_once(l, 30), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	assert_true(ms >= 25);
}

/* Many fds, some with high numbers: the table grows and keeps earlier entries. */
static void test_many_fds(void **state)
{
	vmm_loop *l = *state;
	enum { N = 300 };
	int fds[N];
	struct rec r = { .consume = true };
	for (int i = 0; i < N; i++) {
		fds[i] = efd();
		assert_int_equal(vmm_loop_add(l, fds[i], VMM_LOOP_IN, rec_cb, &r), 0);
	}
	int high = dup2(fds[0], 4000);
	if (high == 4000) {
		assert_int_equal(vmm_loop_add(l, high, VMM_LOOP_IN, rec_cb, &r), 0);
	}
	for (int i = 0; i < N; i += 7)
		signal_fd(fds[i]);
	int total = 0, n;
	while ((n = vmm_loop_run_once(l, 0)) > 0)
		total += n;
	assert_true(n == 0);
	/* fds[0] and its dup share the counter: the first one drains it. */
	assert_true(r.calls >= (N + 6) / 7 && r.calls <= (N + 6) / 7 + 1);
	for (int i = 0; i < N; i++) {
		assert_int_equal(vmm_loop_remove(l, fds[i]), 0);
		close(fds[i]);
	}
	if (high == 4000) {
		assert_int_equal(vmm_loop_remove(l, high), 0);
		close(high);
	}
	(void)total;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_args),
		cmocka_unit_test_setup_teardown(test_level_triggered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_modify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hangup_is_err, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_in_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_self_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_from_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_before_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_from_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_from_callback, setup, teardown),
		cmocka_unit_test(test_pending_calls_freed),
		cmocka_unit_test_setup_teardown(test_loop_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_fds, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
