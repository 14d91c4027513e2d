/* Several vCPUs and kicks with a real guest (tests/guests/vcpus.c), and kicks next to the
 * application's own signals: a foreign signal neither reaches a library vCPU thread nor
 * ends vmm_vcpu_run early, and a handler the application put on the kick signal stays. */
#include "harness/harness.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The same computations as the guest's, to check its results. */
static uint32_t count_primes(uint32_t below)
{
	uint32_t n = 0;
	for (uint32_t i = 2; i < below; i++) {
		bool prime = true;
		for (uint32_t d = 2; d * d <= i; d++)
			if (i % d == 0) {
				prime = false;
				break;
			}
		n += prime;
	}
	return n;
}

static uint32_t collatz_total(uint32_t upto)
{
	uint32_t total = 0;
	for (uint32_t i = 1; i <= upto; i++)
		for (uint64_t x = i; x != 1; total++)
			x = (x & 1) ? 3 * x + 1 : x / 2;
	return total;
}

struct vcpu_result {
	vmm_exit exit;
	int err;
	atomic_int exits;
};

/* Library-thread callback: stops at the first exit, recording it. */
static int stop_at_first_exit(void *ctx, vmm_vcpu *vcpu, const vmm_exit *exit, int err)
{
	struct vcpu_result *res = ctx;
	(void)vcpu;
	atomic_fetch_add(&res->exits, 1);
	res->err = err;
	if (exit)
		res->exit = *exit;
	return exit && exit->reason == VMM_EXIT_GUEST ? 1 : 2;
}

struct kicker {
	vmm_vcpu **vcpus;
	unsigned n;
	unsigned delay_ms;
	atomic_bool stop;
};

/* Kicks every vCPU after delay_ms unless told to stop first: a watchdog for threads. */
static void *kicker_main(void *arg)
{
	struct kicker *k = arg;
	uint64_t end = kt_now_ms() + k->delay_ms;
	while (!atomic_load(&k->stop) && kt_now_ms() < end)
		usleep(1000);
	if (!atomic_load(&k->stop))
		for (unsigned i = 0; i < k->n; i++)
			vmm_vcpu_kick(k->vcpus[i]);
	return NULL;
}

/* Both vCPUs compute, then each waits for the other's flag: only concurrent execution
 * lets both finish. */
static void test_two_vcpus_concurrently(void **state)
{
	kt_opts o = { .guest = "vcpus", .cpl = 3, .vcpus = 2 };
	kt_vm *t = kt_create(state, &o);
	kt_set_arg(t, 0, 0);
	kt_set_arg(t, 1, 1);
	static struct vcpu_result res[2];
	memset(res, 0, sizeof res);
	struct kicker k = { .vcpus = t->vcpu, .n = 2, .delay_ms = KT_TIMEOUT_MS };
	pthread_t kth;
	assert_int_equal(pthread_create(&kth, NULL, kicker_main, &k), 0);
	kt_check(vmm_vcpu_start(t->vcpu[0], stop_at_first_exit, &res[0]), "vmm_vcpu_start(0)");
	kt_check(vmm_vcpu_start(t->vcpu[1], stop_at_first_exit, &res[1]), "vmm_vcpu_start(1)");
	assert_int_equal(vmm_vcpu_start(t->vcpu[1], stop_at_first_exit, &res[1]), -EBUSY);
	int r0 = 0, r1 = 0;
	kt_check(vmm_vcpu_join(t->vcpu[0], &r0), "vmm_vcpu_join(0)");
	kt_check(vmm_vcpu_join(t->vcpu[1], &r1), "vmm_vcpu_join(1)");
	atomic_store(&k.stop, true);
	pthread_join(kth, NULL);
	char b0[256], b1[256];
	if (r0 != 1 || r1 != 1)
		fail_msg("vCPU 0: %s (err %d), vCPU 1: %s (err %d)",
			 kt_exit_str(&res[0].exit, b0, sizeof b0), res[0].err,
			 kt_exit_str(&res[1].exit, b1, sizeof b1), res[1].err);
	assert_int_equal(res[0].exit.u.guest.code, count_primes(50000));
	assert_int_equal(res[0].exit.u.guest.code, 5133);
	assert_int_equal(res[1].exit.u.guest.code, collatz_total(20000));
	assert_int_equal(atomic_load(&res[0].exits), 1);
	assert_int_equal(atomic_load(&res[1].exits), 1);
	/* Both flags are up in the shared memory. */
	assert_int_equal(kt_read_u64(t, kt_sym(t, "flags")), 0x100000001ull);
	/* Joining twice is an error. */
	assert_int_equal(vmm_vcpu_join(t->vcpu[0], NULL), -EINVAL);
}

struct delayed_kick {
	vmm_vcpu *vcpu;
	unsigned delay_ms;
};

static void *delayed_kick_main(void *arg)
{
	struct delayed_kick *d = arg;
	usleep(d->delay_ms * 1000);
	vmm_vcpu_kick(d->vcpu);
	return NULL;
}

/* A guest spinning at CPL 3 (no exits at all) is stopped by a kick from another
 * thread; run again, it continues where it was and picks up a value from memory. */
static void test_kick(void **state)
{
	kt_opts o = { .guest = "vcpus", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	kt_set_arg(t, 0, 2);
	struct delayed_kick d = { t->vcpu[0], 50 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, delayed_kick_main, &d), 0);
	vmm_exit e;
	char buf[256];
	uint64_t t0 = kt_now_ms();
	int r = vmm_vcpu_run(t->vcpu[0], &e);
	pthread_join(th, NULL);
	if (r != 0 || e.reason != VMM_EXIT_KICK)
		fail_msg("expected KICK, got r=%d %s", r, kt_exit_str(&e, buf, sizeof buf));
	assert_true(kt_now_ms() - t0 >= 40);
	/* It was spinning in guest_main: RIP inside the image. */
	vmm_regs regs;
	kt_check(vmm_vcpu_get_regs(t->vcpu[0], &regs), "vmm_vcpu_get_regs");
	assert_true(regs.rip >= t->elf.low && regs.rip < t->elf.high);

	uint32_t release = 0x77;
	kt_write(t, kt_sym(t, "release"), &release, sizeof release);
	kt_run_expect(t, 0, 0x77);
}

/* A kick before run is not lost; several coalesce into one. */
static void test_kick_before_run(void **state)
{
	kt_opts o = { .guest = "vcpus", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	kt_set_arg(t, 0, 2);
	vmm_vcpu_kick(t->vcpu[0]);
	vmm_vcpu_kick(t->vcpu[0]);
	/* Guarded: if the kicks were lost, the guest would spin until this kicker. */
	struct kicker k = { .vcpus = t->vcpu, .n = 1, .delay_ms = 5000 };
	pthread_t kth;
	assert_int_equal(pthread_create(&kth, NULL, kicker_main, &k), 0);
	vmm_exit e;
	char buf[256];
	uint64_t t0 = kt_now_ms();
	int r = vmm_vcpu_run(t->vcpu[0], &e);
	uint64_t elapsed = kt_now_ms() - t0;
	atomic_store(&k.stop, true);
	pthread_join(kth, NULL);
	if (r != 0 || e.reason != VMM_EXIT_KICK)
		fail_msg("expected KICK, got r=%d %s", r, kt_exit_str(&e, buf, sizeof buf));
	if (elapsed >= 2500)
		fail_msg("the kicks before run were lost: run returned only after %llu ms",
			 (unsigned long long)elapsed);
	/* The second kick coalesced: the next run reaches the guest's exit. */
	uint32_t release = 0x55;
	kt_write(t, kt_sym(t, "release"), &release, sizeof release);
	r = vmm_vcpu_run(t->vcpu[0], &e);
	if (r != 0 || e.reason != VMM_EXIT_GUEST || e.u.guest.code != 0x55)
		fail_msg("expected GUEST 0x55, got r=%d %s", r, kt_exit_str(&e, buf, sizeof buf));
}

/* A kick to a vCPU on a library thread reaches the callback, which decides to stop. */
static void test_kick_library_thread(void **state)
{
	kt_opts o = { .guest = "vcpus", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	kt_set_arg(t, 0, 2);
	static struct vcpu_result res;
	memset(&res, 0, sizeof res);
	kt_check(vmm_vcpu_start(t->vcpu[0], stop_at_first_exit, &res), "vmm_vcpu_start");
	usleep(20000);
	vmm_vcpu_kick(t->vcpu[0]);
	int result = 0;
	kt_check(vmm_vcpu_join(t->vcpu[0], &result), "vmm_vcpu_join");
	assert_int_equal(result, 2);
	assert_int_equal(res.exit.reason, VMM_EXIT_KICK);
	assert_int_equal(res.err, 0);
}

/* ---- the application's own signals ------------------------------------------------ */

/* The default kick signal (vmm_vm_opts.kick_signal 0). */
#define KICK_SIGNAL (SIGRTMAX - 1)

static long my_tid(void)
{
	return (long)syscall(SYS_gettid);
}

/* The application's handler: counts, and counts runs on any thread but `app_expect_tid`. */
static atomic_int app_count;
static atomic_int app_elsewhere;
static atomic_long app_expect_tid;

static void app_note(void)
{
	int saved = errno;
	if (my_tid() != atomic_load(&app_expect_tid))
		atomic_fetch_add(&app_elsewhere, 1);
	atomic_fetch_add(&app_count, 1);
	errno = saved;
}

static void app_handler(int sig)
{
	(void)sig;
	app_note();
}

static void app_siginfo_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	app_note();
}

/* Installs the application's handler on `sig` (no SA_RESTART: an interrupted system call
 * fails with EINTR, the harshest case) and resets the counters; `old` gets the previous
 * action. */
static void app_install(int sig, bool siginfo, struct sigaction *old)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	if (siginfo) {
		sa.sa_sigaction = app_siginfo_handler;
		sa.sa_flags = SA_SIGINFO;
	} else {
		sa.sa_handler = app_handler;
	}
	sigemptyset(&sa.sa_mask);
	atomic_store(&app_count, 0);
	atomic_store(&app_elsewhere, 0);
	atomic_store(&app_expect_tid, my_tid());
	assert_int_equal(sigaction(sig, &sa, old), 0);
}

/* Whether `sig` still has the application's handler. */
static bool app_handler_installed(int sig, bool siginfo)
{
	struct sigaction cur;
	assert_int_equal(sigaction(sig, NULL, &cur), 0);
	if (siginfo)
		return (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == app_siginfo_handler;
	return !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == app_handler;
}

/* Waits (polling, up to `ms`) until app_count reaches `n`. */
static bool wait_app_count(int n, unsigned ms)
{
	uint64_t end = kt_now_ms() + ms;
	while (atomic_load(&app_count) < n) {
		if (kt_now_ms() > end)
			return false;
		usleep(1000);
	}
	return true;
}

/* Waits until the guest's 32-bit word at `gpa` is non-zero (any thread: no cmocka). The
 * vcpus guest in role 0 raises flags[0] once it computed its primes, then spins at CPL 3
 * (no exits) until the host raises flags[1]: proof that the vCPU is inside the guest. */
static bool wait_guest_flag(kt_vm *t, uint64_t gpa, unsigned ms)
{
	uint64_t end = kt_now_ms() + ms;
	for (;;) {
		uint32_t v = 0;
		if (vmm_mem_read(t->mem, gpa, &v, sizeof v) == 0 && v != 0)
			return true;
		if (kt_now_ms() > end)
			return false;
		usleep(1000);
	}
}

static int set_guest_flag(kt_vm *t, uint64_t gpa)
{
	uint32_t one = 1;
	return vmm_mem_write(t->mem, gpa, &one, sizeof one);
}

struct sig_probe {
	int kick_signal;
	atomic_int exits;
	atomic_bool have_thread;
	pthread_t thread;   /* the library thread, seen at the first kick */
	long tid;
	bool usr1_blocked;  /* its signal mask there */
	bool kick_blocked;
	bool usr1_pending;  /* at the guest's exit: the SIGUSR1 sent to it still waits */
	vmm_exit last;
	int err;
};

/* Library-thread callback: the first kick records the thread and goes on running; the
 * guest's exit stops with 1; anything else (a watchdog kick, an error) stops with 3. */
static int probe_exit(void *ctx, vmm_vcpu *vcpu, const vmm_exit *exit, int err)
{
	struct sig_probe *p = ctx;
	(void)vcpu;
	int n = atomic_fetch_add(&p->exits, 1);
	p->err = err;
	if (exit)
		p->last = *exit;
	if (exit && exit->reason == VMM_EXIT_KICK && n == 0) {
		sigset_t cur;
		pthread_sigmask(SIG_BLOCK, NULL, &cur);
		p->usr1_blocked = sigismember(&cur, SIGUSR1) == 1;
		p->kick_blocked = sigismember(&cur, p->kick_signal) == 1;
		p->thread = pthread_self();
		p->tid = my_tid();
		atomic_store(&p->have_thread, true);
		return 0;
	}
	if (exit && exit->reason == VMM_EXIT_GUEST) {
		sigset_t pend;
		sigpending(&pend);
		p->usr1_pending = sigismember(&pend, SIGUSR1) == 1;
		return 1;
	}
	return 3;
}

/* A vCPU on a library thread while the application uses SIGUSR1 for itself: creating the
 * VM leaves the application's handler alone; SIGUSR1 sent to the process runs that handler
 * on the application's thread, never on the vCPU thread (which blocks it: it stays pending
 * there); SIGUSR1 sent to the vCPU thread itself does not disturb the guest, which finishes
 * its computation with one exit. */
static void test_foreign_signal_library_thread(void **state)
{
	struct sigaction old;
	app_install(SIGUSR1, false, &old);
	kt_opts o = { .guest = "vcpus", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	assert_true(app_handler_installed(SIGUSR1, false));
	kt_set_arg(t, 0, 0);
	uint64_t flags = kt_sym(t, "flags");

	static struct sig_probe p;
	memset(&p, 0, sizeof p);
	p.kick_signal = KICK_SIGNAL;
	/* Watchdog: a kick after the first one stops the thread (result 3). It blocks every
	 * signal, so that this thread is the only one that can take the process's SIGUSR1. */
	struct kicker k = { .vcpus = t->vcpu, .n = 1, .delay_ms = 3 * KT_TIMEOUT_MS };
	pthread_t kth;
	sigset_t all, prev;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &prev);
	int cr = pthread_create(&kth, NULL, kicker_main, &k);
	pthread_sigmask(SIG_SETMASK, &prev, NULL);
	assert_int_equal(cr, 0);
	kt_check(vmm_vcpu_start(t->vcpu[0], probe_exit, &p), "vmm_vcpu_start");
	bool running = wait_guest_flag(t, flags, KT_TIMEOUT_MS);
	/* One kick, to learn the library thread (the callback runs on it). */
	vmm_vcpu_kick(t->vcpu[0]);
	uint64_t end = kt_now_ms() + KT_TIMEOUT_MS;
	while (!atomic_load(&p.have_thread) && kt_now_ms() < end)
		usleep(1000);
	bool have_thread = atomic_load(&p.have_thread);

	/* To the process: only this thread leaves SIGUSR1 unblocked, so it runs here. */
	bool delivered = false;
	int count_after_process = -1;
	if (running && have_thread) {
		assert_int_equal(kill(getpid(), SIGUSR1), 0);
		delivered = wait_app_count(1, KT_TIMEOUT_MS);
		/* To the vCPU thread: blocked there, the handler must not run; give it time. */
		assert_int_equal(pthread_kill(p.thread, SIGUSR1), 0);
		usleep(200 * 1000);
		count_after_process = atomic_load(&app_count);
		kt_check(set_guest_flag(t, flags + 4), "writing flags[1]");
	}
	int result = 0;
	kt_check(vmm_vcpu_join(t->vcpu[0], &result), "vmm_vcpu_join");
	atomic_store(&k.stop, true);
	pthread_join(kth, NULL);
	assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);

	char buf[256];
	if (!running || !have_thread)
		fail_msg("guest running: %d, kick reached the callback: %d; last exit %s (err %d)",
			 running, have_thread, kt_exit_str(&p.last, buf, sizeof buf), p.err);
	if (result != 1)
		fail_msg("the vCPU thread stopped with %d after %d exits: last %s (err %d)", result,
			 atomic_load(&p.exits), kt_exit_str(&p.last, buf, sizeof buf), p.err);
	assert_true(delivered);                      /* the process's SIGUSR1 was handled... */
	assert_int_equal(atomic_load(&app_elsewhere), 0); /* ...on this thread */
	assert_int_equal(count_after_process, 1);    /* the thread-directed one never ran */
	assert_int_equal(atomic_load(&app_count), 1);
	assert_true(p.usr1_blocked);                 /* the thread blocks foreign signals */
	assert_false(p.kick_blocked);                /* but not the kick signal */
	assert_true(p.usr1_pending);                 /* so the SIGUSR1 sent to it waits there */
	assert_int_equal(p.tid == my_tid(), 0);
	/* The guest was not disturbed: its result, and only two exits (the kick, the end). */
	assert_int_equal(p.last.u.guest.code, count_primes(50000));
	assert_int_equal(atomic_load(&p.exits), 2);
}

struct sig_sender {
	kt_vm *t;
	uint64_t flags;
	pthread_t target;
	unsigned to_thread, to_process;
	atomic_bool done;   /* set by the target once vmm_vcpu_run returned */
	const char *failed; /* why the sender gave up, or NULL */
};

/* Once the guest spins, sends SIGUSR1s to the target thread (inside vmm_vcpu_run) and
 * to the process, each only after the previous one was handled; then releases the guest.
 * Kicks the vCPU if anything hangs, so the target never waits forever. */
static void *sender_main(void *arg)
{
	struct sig_sender *s = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* process-directed ones go to the target */
	if (!wait_guest_flag(s->t, s->flags, KT_TIMEOUT_MS)) {
		s->failed = "the guest never raised flags[0]";
		goto out;
	}
	for (unsigned i = 0; i < s->to_thread + s->to_process; i++) {
		if (atomic_load(&s->done)) {
			s->failed = "vmm_vcpu_run returned while signals were being sent";
			goto out;
		}
		if (i < s->to_thread)
			pthread_kill(s->target, SIGUSR1);
		else
			kill(getpid(), SIGUSR1);
		if (!wait_app_count((int)i + 1, KT_TIMEOUT_MS)) {
			s->failed = "a SIGUSR1 was not handled";
			goto out;
		}
	}
	if (set_guest_flag(s->t, s->flags + 4))
		s->failed = "writing flags[1] failed";
out:;
	uint64_t end = kt_now_ms() + 3 * KT_TIMEOUT_MS;
	while (!atomic_load(&s->done) && kt_now_ms() < end)
		usleep(1000);
	if (!atomic_load(&s->done))
		vmm_vcpu_kick(s->t->vcpu[0]);
	return NULL;
}

/* The application's thread sits in vmm_vcpu_run while SIGUSR1s (the application's own
 * signal, with its handler) arrive, each interrupting KVM_RUN: the handler runs on that
 * thread every time, and vmm_vcpu_run neither returns early (no KICK, no -EINTR) nor
 * disturbs the guest, which ends by itself with its result. */
static void test_foreign_signal_app_thread(void **state)
{
	struct sigaction old;
	app_install(SIGUSR1, false, &old);
	kt_opts o = { .guest = "vcpus", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	kt_set_arg(t, 0, 0);
	static struct sig_sender s;
	memset(&s, 0, sizeof s);
	s.t = t;
	s.flags = kt_sym(t, "flags");
	s.target = pthread_self();
	s.to_thread = 5;
	s.to_process = 3;
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, sender_main, &s), 0);
	vmm_exit e;
	memset(&e, 0, sizeof e);
	int r = vmm_vcpu_run(t->vcpu[0], &e);
	atomic_store(&s.done, true);
	pthread_join(th, NULL);
	assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);

	char buf[256];
	if (r != 0 || e.reason != VMM_EXIT_GUEST || e.u.guest.code != count_primes(50000) ||
	    s.failed)
		fail_msg("expected GUEST %u after %u signals, got r=%d (%s) %s, %d signals handled; "
			 "sender: %s", count_primes(50000), s.to_thread + s.to_process, r,
			 vmm_strerror(r), kt_exit_str(&e, buf, sizeof buf), atomic_load(&app_count),
			 s.failed ? s.failed : "ok");
	assert_int_equal(atomic_load(&app_count), (int)(s.to_thread + s.to_process));
	assert_int_equal(atomic_load(&app_elsewhere), 0);
}

struct kick_sender {
	kt_vm *t;
	uint64_t flags;
	atomic_bool done;
	bool saw_guest;
};

/* Kicks once the guest spins; if that kick is lost, releases the guest after a long wait
 * (vmm_vcpu_run then returns GUEST instead of KICK and the test fails, not hangs). */
static void *kick_sender_main(void *arg)
{
	struct kick_sender *s = arg;
	s->saw_guest = wait_guest_flag(s->t, s->flags, KT_TIMEOUT_MS);
	vmm_vcpu_kick(s->t->vcpu[0]);
	uint64_t end = kt_now_ms() + 3 * KT_TIMEOUT_MS;
	while (!atomic_load(&s->done) && kt_now_ms() < end)
		usleep(1000);
	if (!atomic_load(&s->done))
		set_guest_flag(s->t, s->flags + 4);
	return NULL;
}

/* vmm_vm_opts.kick_signal: the library installs its handler only on a signal left at
 * SIG_DFL. A handler the application put on the kick signal before vmm_vm_create is kept
 * (and runs for each kick, on the kicked thread), and kicks still interrupt the guest; an
 * ignored kick signal is refused with -EINVAL. */
static void test_app_handler_on_kick_signal(void **state)
{
	struct sigaction old;
	app_install(KICK_SIGNAL, true, &old);
	kt_opts o = { .guest = "vcpus", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	assert_true(app_handler_installed(KICK_SIGNAL, true));
	kt_set_arg(t, 0, 0);
	static struct kick_sender s;
	memset(&s, 0, sizeof s);
	s.t = t;
	s.flags = kt_sym(t, "flags");
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, kick_sender_main, &s), 0);
	vmm_exit e;
	memset(&e, 0, sizeof e);
	int r = vmm_vcpu_run(t->vcpu[0], &e);
	atomic_store(&s.done, true);
	pthread_join(th, NULL);
	char buf[256];
	if (!s.saw_guest || r != 0 || e.reason != VMM_EXIT_KICK)
		fail_msg("expected KICK (guest running: %d), got r=%d %s; %s", s.saw_guest, r,
			 kt_exit_str(&e, buf, sizeof buf), vmm_last_error());
	assert_true(atomic_load(&app_count) >= 1);        /* the kick ran our handler... */
	assert_int_equal(atomic_load(&app_elsewhere), 0); /* ...on the vCPU's thread (this one) */
	assert_true(app_handler_installed(KICK_SIGNAL, true));
	/* The guest was only paused: released, it finishes its computation. */
	kt_check(set_guest_flag(t, s.flags + 4), "writing flags[1]");
	kt_run_expect(t, 0, count_primes(50000));
	assert_true(app_handler_installed(KICK_SIGNAL, true));
	kt_destroy(t);
	*state = NULL;
	assert_int_equal(sigaction(KICK_SIGNAL, &old, NULL), 0);

	/* A kick signal the application ignores is refused, and stays ignored. */
	int sig = SIGRTMAX - 2;
	struct sigaction ign, prev, cur;
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	assert_int_equal(sigaction(sig, &ign, &prev), 0);
	vmm_vm_opts vo = VMM_VM_OPTS_INIT;
	vo.kick_signal = sig;
	vmm_vm *vm = (vmm_vm *)1;
	assert_int_equal(vmm_vm_create(&vm, &vo), -EINVAL);
	assert_null(vm);
	assert_non_null(strstr(vmm_last_error(), "SIG_IGN"));
	assert_int_equal(sigaction(sig, NULL, &cur), 0);
	assert_true(!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_IGN);
	/* At SIG_DFL the library installs a handler (the default action would end the
	 * process at the first kick). */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	assert_int_equal(sigaction(sig, &dfl, NULL), 0);
	kt_check(vmm_vm_create(&vm, &vo), "vmm_vm_create(kick_signal at SIG_DFL)");
	assert_int_equal(sigaction(sig, NULL, &cur), 0);
	assert_true((cur.sa_flags & SA_SIGINFO) ||
		    (cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN));
	vmm_vm_destroy(vm);
	assert_int_equal(sigaction(sig, &prev, NULL), 0);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_two_vcpus_concurrently, kt_teardown),
		cmocka_unit_test_teardown(test_kick, kt_teardown),
		cmocka_unit_test_teardown(test_kick_before_run, kt_teardown),
		cmocka_unit_test_teardown(test_kick_library_thread, kt_teardown),
		cmocka_unit_test_teardown(test_foreign_signal_library_thread, kt_teardown),
		cmocka_unit_test_teardown(test_foreign_signal_app_thread, kt_teardown),
		cmocka_unit_test_teardown(test_app_handler_on_kick_signal, kt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
