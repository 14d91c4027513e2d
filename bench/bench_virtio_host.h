/* bench_virtio: the host side of the virtio benchmarks (see bench_virtio.c).
 *
 * Each device module (bench_virtio_blk.c, _net.c, _vsock.c) builds a VM through the
 * public libvmm API (bench_virtio_vm.c) with one device and one of the guests
 * tests/guests/bench_*.c, and times guest passes; the command blocks and the
 * guest-host protocol are in tests/guests/bench_virtio.h. */
#ifndef BENCH_VIRTIO_HOST_H
#define BENCH_VIRTIO_HOST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libvmm/libvmm.h>

#include "bench_virtio.h"
#include "stats.h"

#define BV_RAM (64ull << 20)

/* What the command line asked for. */
struct bv_params {
	bool quick;
	unsigned rounds;     /* samples a side and figure */
	const char *dir;     /* where the image file and the sockets go */
};

/* ---- a VM with one virtio device and a benchmark guest (bench_virtio_vm.c) ---- */
struct bv_vm {
	vmm_vm *vm;
	vmm_vcpu *vcpu;
	vmm_loop *loop;
	vmm_virtio_mmio *mmio;
	void *image;
	size_t image_size;
	pthread_t loop_thread;
	bool loop_running;
	int loop_result;
	/* watchdog: kicks the vCPU when a run passes its deadline */
	pthread_t dog;
	bool dog_running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool dog_stop, fired;
	double deadline_ns;  /* 0: no run in progress */
	double timeout_s;    /* a pass longer than this fails (the guest is stuck) */
	double pass_vcpu_cpu_ns, pass_loop_cpu_ns; /* CPU time of the last pass's threads */
	char console[2048];  /* what the guest printed on port 0xe9 (for failures) */
	size_t console_len;
};

/* VM + RAM + the guest tests/guests/<guest>.elf at CPL 3 + a loop. Returns 0 or -1
 * (with a message on stderr); call bv_vm_close either way. */
int bv_vm_open(struct bv_vm *v, const char *guest, const struct bv_params *p);
/* Attaches dev at BV_DEV_BASE (the VM owns it from here on; on failure it is
 * destroyed), then starts the loop thread and runs the guest to its first BV_READY. */
int bv_vm_attach_start(struct bv_vm *v, vmm_virtio_device *dev);
/* Guest address of a symbol of the guest's ELF, or 0 (with a message). */
uint64_t bv_vm_sym(struct bv_vm *v, const char *name);
int bv_vm_write(struct bv_vm *v, uint64_t gpa, const void *buf, size_t len);
int bv_vm_read(struct bv_vm *v, uint64_t gpa, void *buf, size_t len);
/* Runs the guest until it reports BV_READY again (one pass); *ns = the run's time, and
 * pass_vcpu_cpu_ns / pass_loop_cpu_ns the CPU time the vCPU thread (guest included) and
 * the loop thread used meanwhile. Fails (-1) on any other exit or after v->timeout_s. */
int bv_vm_pass(struct bv_vm *v, double *ns);
/* Stops the loop, destroys the device, the VM and the loop. Safe on a half-opened VM. */
void bv_vm_close(struct bv_vm *v);

/* ---- the modules; each prints its figure lines; returns 0 or -1 ---- */
int bv_bench_blk(const struct bv_params *p);
int bv_bench_net(const struct bv_params *p);
int bv_bench_vsock(const struct bv_params *p);

#endif
