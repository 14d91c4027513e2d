/* The C side of bench_call: the same loops as the Rust side, timed in C. Each returns
 * the elapsed nanoseconds, or a negative errno. */
#include <errno.h>
#include <stdint.h>
#include <time.h>
#include <libvmm/libvmm.h>

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* n runs of a guest that writes its counter to the exit port and loops. */
int64_t bench_c_vcpu_runs(vmm_vcpu *vcpu, uint64_t n)
{
	int64_t t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		vmm_exit e;
		int r = vmm_vcpu_run(vcpu, &e);
		if (r)
			return r;
		if (e.reason != VMM_EXIT_GUEST)
			return -EPROTO;
	}
	return now_ns() - t0;
}

/* n calls of guest function `fn` with arguments (1, 2). */
int64_t bench_c_sandbox_calls(vmm_sandbox *sb, const char *fn, uint64_t n)
{
	const uint64_t args[2] = { 1, 2 };
	int64_t t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		uint64_t ret;
		int r = vmm_sandbox_call(sb, fn, args, 2, NULL, &ret);
		if (r)
			return r;
	}
	return now_ns() - t0;
}

/* n calls of a trivial library function: the bare cost of crossing into libvmm. */
int64_t bench_c_getter(vmm_vm *vm, uint64_t n)
{
	volatile uint16_t sink = 0;
	int64_t t0 = now_ns();
	for (uint64_t i = 0; i < n; i++)
		sink = (uint16_t)(sink + vmm_vm_exit_port(vm));
	(void)sink;
	return now_ns() - t0;
}
