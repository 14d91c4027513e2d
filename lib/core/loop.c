/* vmm_loop: an epoll set plus callbacks (see include/libvmm/loop.h).
 *
 * Registrations live in a table indexed by fd. Each entry carries a generation that
 * vmm_loop_remove bumps, and the epoll data of a registration is (generation << 32 | fd):
 * an event fetched before a remove (in the same epoll_wait batch) no longer matches the
 * table and is dropped, even if the fd number was re-added in the meantime. Nothing is
 * freed on remove, so there is nothing to defer.
 *
 * The table is guarded by a mutex because devices add and remove fds from vCPU threads
 * (a driver's DRIVER_OK or reset arrives on a vCPU) while the loop thread dispatches. The
 * lock is never held while a callback runs: a callback may add or remove fds itself.
 *
 * vmm_loop_call and vmm_loop_stop wake the loop through an eventfd in the same epoll
 * set; calls wait in a mutex-protected FIFO.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../internal.h"

/* epoll data of the wake-up eventfd; real registrations never have it (fd >= 0 fits in
 * the low 32 bits, which are all-ones only for fd -1). */
#define LOOP_WAKE_TAG UINT64_MAX
#define LOOP_BATCH 64

struct loop_reg {
	bool active;
	uint32_t gen;     /* bumped on every remove */
	uint32_t events;  /* VMM_LOOP_* interest */
	vmm_loop_fn fn;
	void *ctx;
};

struct loop_call {
	struct loop_call *next;
	vmm_loop_fn fn;
	void *ctx;
};

struct vmm_loop {
	int epfd;
	int wake_fd;
	pthread_mutex_t lock;   /* regs and the call queue */
	struct loop_reg *regs;  /* indexed by fd */
	size_t cap;
	struct loop_call *calls, *calls_tail;
	atomic_bool stop;
};

static uint32_t to_epoll(uint32_t events)
{
	uint32_t e = 0;
	if (events & VMM_LOOP_IN)
		e |= EPOLLIN;
	if (events & VMM_LOOP_OUT)
		e |= EPOLLOUT;
	return e; /* EPOLLERR and EPOLLHUP are always reported by the kernel */
}

static uint32_t from_epoll(uint32_t e)
{
	uint32_t events = 0;
	if (e & (EPOLLIN | EPOLLPRI))
		events |= VMM_LOOP_IN;
	if (e & EPOLLOUT)
		events |= VMM_LOOP_OUT;
	if (e & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
		events |= VMM_LOOP_ERR;
	return events;
}

static uint64_t reg_tag(int fd, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint32_t)fd;
}

int vmm_loop_create(vmm_loop **out)
{
	if (!out)
		return vmm_err(-EINVAL, "loop: NULL out pointer");
	*out = NULL;
	vmm_loop *l = calloc(1, sizeof *l);
	if (!l)
		return vmm_err(-ENOMEM, "loop: out of memory");
	l->wake_fd = -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int e = -errno;
		free(l);
		return vmm_err(e, "loop: epoll_create1: %s", vmm_strerror(e));
	}
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = LOOP_WAKE_TAG };
	if (l->wake_fd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0) {
		int e = -errno;
		if (l->wake_fd >= 0)
			close(l->wake_fd);
		close(l->epfd);
		free(l);
		return vmm_err(e, "loop: wake-up eventfd: %s", vmm_strerror(e));
	}
	pthread_mutex_init(&l->lock, NULL);
	atomic_init(&l->stop, false);
	*out = l;
	return 0;
}

void vmm_loop_destroy(vmm_loop *l)
{
	if (!l)
		return;
	struct loop_call *c = l->calls;
	while (c) {
		struct loop_call *next = c->next;
		free(c);
		c = next;
	}
	close(l->wake_fd);
	close(l->epfd);
	pthread_mutex_destroy(&l->lock);
	free(l->regs);
	free(l);
}

int vmm_loop_fd(const vmm_loop *l)
{
	return l ? l->epfd : -1;
}

/* Makes regs[fd] exist. Called with the lock held. */
static int grow(vmm_loop *l, int fd)
{
	size_t need = (size_t)fd + 1;
	if (need <= l->cap)
		return 0;
	size_t cap = l->cap ? l->cap : 64;
	while (cap < need)
		cap *= 2;
	struct loop_reg *n = realloc(l->regs, cap * sizeof *n);
	if (!n)
		return vmm_err(-ENOMEM, "loop: out of memory for fd %d", fd);
	memset(n + l->cap, 0, (cap - l->cap) * sizeof *n);
	l->regs = n;
	l->cap = cap;
	return 0;
}

int vmm_loop_add(vmm_loop *l, int fd, uint32_t events, vmm_loop_fn fn, void *ctx)
{
	if (!l || fd < 0 || !fn)
		return vmm_err(-EINVAL, "loop: add: NULL loop or callback, or negative fd %d", fd);
	if (events & ~(VMM_LOOP_IN | VMM_LOOP_OUT | VMM_LOOP_ERR))
		return vmm_err(-EINVAL, "loop: add fd %d: unknown event bits %#x", fd, events);
	pthread_mutex_lock(&l->lock);
	int r = grow(l, fd);
	if (r)
		goto out;
	struct loop_reg *reg = &l->regs[fd];
	if (reg->active) {
		r = vmm_err(-EEXIST, "loop: fd %d is already watched", fd);
		goto out;
	}
	struct epoll_event ev = { .events = to_epoll(events), .data.u64 = reg_tag(fd, reg->gen) };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		r = -errno;
		r = vmm_err(r, "loop: epoll_ctl(ADD, fd %d): %s", fd, vmm_strerror(r));
		goto out;
	}
	reg->active = true;
	reg->events = events;
	reg->fn = fn;
	reg->ctx = ctx;
out:
	pthread_mutex_unlock(&l->lock);
	return r;
}

int vmm_loop_modify(vmm_loop *l, int fd, uint32_t events)
{
	if (!l || fd < 0)
		return vmm_err(-EINVAL, "loop: modify: NULL loop or negative fd %d", fd);
	if (events & ~(VMM_LOOP_IN | VMM_LOOP_OUT | VMM_LOOP_ERR))
		return vmm_err(-EINVAL, "loop: modify fd %d: unknown event bits %#x", fd, events);
	int r = 0;
	pthread_mutex_lock(&l->lock);
	if ((size_t)fd >= l->cap || !l->regs[fd].active) {
		r = vmm_err(-ENOENT, "loop: fd %d is not watched", fd);
		goto out;
	}
	struct loop_reg *reg = &l->regs[fd];
	struct epoll_event ev = { .events = to_epoll(events), .data.u64 = reg_tag(fd, reg->gen) };
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
		r = -errno;
		r = vmm_err(r, "loop: epoll_ctl(MOD, fd %d): %s", fd, vmm_strerror(r));
		goto out;
	}
	reg->events = events;
out:
	pthread_mutex_unlock(&l->lock);
	return r;
}

int vmm_loop_remove(vmm_loop *l, int fd)
{
	if (!l || fd < 0)
		return vmm_err(-EINVAL, "loop: remove: NULL loop or negative fd %d", fd);
	int r = 0;
	pthread_mutex_lock(&l->lock);
	if ((size_t)fd >= l->cap || !l->regs[fd].active) {
		r = vmm_err(-ENOENT, "loop: fd %d is not watched", fd);
	} else {
		/* Fails only if the caller already closed the fd, which also took it out of
		 * the epoll set (unless it was dup'ed): forget it either way. */
		(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
		struct loop_reg *reg = &l->regs[fd];
		reg->active = false;
		reg->gen++;
		reg->fn = NULL;
		reg->ctx = NULL;
	}
	pthread_mutex_unlock(&l->lock);
	return r;
}

/* Runs the queued calls (those queued by now; later ones wake the next iteration). */
static int run_calls(vmm_loop *l)
{
	uint64_t v;
	/* Drain first: a call queued after this read writes the eventfd again. */
	while (read(l->wake_fd, &v, sizeof v) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&l->lock);
	struct loop_call *c = l->calls;
	l->calls = l->calls_tail = NULL;
	pthread_mutex_unlock(&l->lock);
	int n = 0;
	while (c) {
		struct loop_call *next = c->next;
		vmm_loop_fn fn = c->fn;
		void *ctx = c->ctx;
		free(c);
		fn(ctx, -1, 0);
		n++;
		c = next;
	}
	return n;
}

int vmm_loop_run_once(vmm_loop *l, int timeout_ms)
{
	if (!l)
		return vmm_err(-EINVAL, "loop: NULL loop");
	struct epoll_event evs[LOOP_BATCH];
	int n = epoll_wait(l->epfd, evs, LOOP_BATCH, timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		int e = -errno;
		return vmm_err(e, "loop: epoll_wait: %s", vmm_strerror(e));
	}
	int ran = 0;
	for (int i = 0; i < n; i++) {
		uint64_t tag = evs[i].data.u64;
		if (tag == LOOP_WAKE_TAG) {
			ran += run_calls(l);
			continue;
		}
		int fd = (int)(uint32_t)tag;
		uint32_t gen = (uint32_t)(tag >> 32);
		vmm_loop_fn fn = NULL;
		void *ctx = NULL;
		pthread_mutex_lock(&l->lock);
		/* Removed (or removed and re-added) since epoll_wait fetched it: stale. */
		if ((size_t)fd < l->cap && l->regs[fd].active && l->regs[fd].gen == gen) {
			fn = l->regs[fd].fn;
			ctx = l->regs[fd].ctx;
		}
		pthread_mutex_unlock(&l->lock);
		if (fn) {
			fn(ctx, fd, from_epoll(evs[i].events));
			ran++;
		}
	}
	return ran;
}

int vmm_loop_run(vmm_loop *l)
{
	if (!l)
		return vmm_err(-EINVAL, "loop: NULL loop");
	/* The stop request is consumed when run returns, so a stop issued before run even
	 * started (a thread racing its own start-up) is not lost. */
	while (!atomic_load(&l->stop)) {
		int r = vmm_loop_run_once(l, -1);
		if (r < 0) {
			atomic_store(&l->stop, false);
			return r;
		}
	}
	atomic_store(&l->stop, false);
	return 0;
}

static void wake(vmm_loop *l)
{
	uint64_t one = 1;
	/* EAGAIN only when the counter is near 2^64: the loop is awake anyway. */
	while (write(l->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
		;
}

void vmm_loop_stop(vmm_loop *l)
{
	if (!l)
		return;
	atomic_store(&l->stop, true);
	wake(l);
}

int vmm_loop_call(vmm_loop *l, vmm_loop_fn fn, void *ctx)
{
	if (!l || !fn)
		return vmm_err(-EINVAL, "loop: call: NULL loop or function");
	struct loop_call *c = malloc(sizeof *c);
	if (!c)
		return vmm_err(-ENOMEM, "loop: out of memory for a call");
	*c = (struct loop_call){ .fn = fn, .ctx = ctx };
	pthread_mutex_lock(&l->lock);
	if (l->calls_tail)
		l->calls_tail->next = c;
	else
		l->calls = c;
	l->calls_tail = c;
	pthread_mutex_unlock(&l->lock);
	wake(l);
	return 0;
}
