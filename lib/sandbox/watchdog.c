/* The deadline watchdog of a sandbox (see struct sbx_watchdog). */
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sandbox_internal.h"

uint64_t sbx_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void futex_wait(_Atomic uint32_t *word, uint32_t val, uint64_t until_ns)
{
	struct timespec ts, *tp = NULL;
	if (until_ns != UINT64_MAX) {
		uint64_t now = sbx_now_ns();
		uint64_t rel = until_ns > now ? until_ns - now : 0;
		ts.tv_sec = (time_t)(rel / 1000000000u);
		ts.tv_nsec = (long)(rel % 1000000000u);
		tp = &ts;
	}
	/* Relative timeout on CLOCK_MONOTONIC; EINTR/EAGAIN/ETIMEDOUT all mean: look again. */
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, val, tp, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *watchdog_main(void *arg)
{
	struct sbx_watchdog *wd = arg;
	uint32_t kicked = 0; /* seq of the call already kicked (seq values of calls are odd) */
	while (!atomic_load(&wd->stop)) {
		uint32_t s = atomic_load(&wd->seq);
		uint64_t until = UINT64_MAX;
		if ((s & 1) && s != kicked) {
			uint64_t d = atomic_load(&wd->deadline);
			if (sbx_now_ns() >= d) {
				/* A kick that lands on a later call is harmless: the caller
				 * checks its own deadline and re-enters. */
				vmm_vcpu_kick(wd->vcpu);
				kicked = s;
			} else {
				until = d;
			}
		}
		/* Publish when we wake, then re-check: an arm that saw an older sleep_until
		 * has changed seq, and we see it here (both sides are seq_cst). */
		atomic_store(&wd->sleep_until, until);
		uint32_t w = atomic_load(&wd->wake);
		if (atomic_load(&wd->seq) != s || atomic_load(&wd->stop))
			continue;
		futex_wait(&wd->wake, w, until);
	}
	return NULL;
}

int sbx_watchdog_arm(struct sbx_watchdog *wd, uint64_t at)
{
	if (!wd->started) {
		atomic_store(&wd->sleep_until, UINT64_MAX);
		/* The thread takes no signals: the application's go to its own threads. */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		int r = pthread_create(&wd->thread, NULL, watchdog_main, wd);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (r)
			return vmm_err(-r, "sandbox: cannot start the deadline watchdog thread");
		wd->started = true;
	}
	atomic_store(&wd->deadline, at);
	atomic_fetch_add(&wd->seq, 1); /* odd: armed */
	if (at < atomic_load(&wd->sleep_until)) {
		atomic_fetch_add(&wd->wake, 1);
		futex_wake(&wd->wake);
	}
	return 0;
}

void sbx_watchdog_disarm(struct sbx_watchdog *wd)
{
	/* No wake-up: the thread notices at its next wake that this call is over. */
	atomic_fetch_add(&wd->seq, 1);
}

void sbx_watchdog_stop(struct sbx_watchdog *wd)
{
	if (!wd->started)
		return;
	atomic_store(&wd->stop, true);
	atomic_fetch_add(&wd->wake, 1);
	futex_wake(&wd->wake);
	pthread_join(wd->thread, NULL);
	wd->started = false;
}
