/* The boot tests' Linux microVM (see linux_vm.h). The set-up follows examples/microvm.c
 * step by step; the differences are the back ends (all in the test process) and the
 * watchdog. */
#include "linux_vm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VIRTIO_BASE 0xd0000000ull
#define CONSOLE_LIMIT (4u << 20) /* captured bytes per console; the rest is dropped */

double lvm_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int report(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "linux_vm: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, ": %s (%s)\n", vmm_strerror(err), vmm_last_error());
	va_end(ap);
	return err;
}

/* Appends to a capture buffer (caller holds m->lock). */
static void capture(char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
	if (*len + n > CONSOLE_LIMIT)
		n = CONSOLE_LIMIT - *len;
	if (*len + n + 1 > *cap) {
		size_t want = *cap ? *cap : 65536;
		while (want < *len + n + 1)
			want *= 2;
		char *p = realloc(*buf, want);
		if (!p)
			return;
		*buf = p;
		*cap = want;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
}

static void snapshot_status(lvm *m)
{
	lvm_dev *devs[] = { &m->blk, &m->net, &m->vsock, &m->con, &m->rng };
	for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++)
		if (devs[i]->mmio)
			devs[i]->status_at_done = vmm_virtio_mmio_status(devs[i]->mmio);
}

/* Serial console output (vCPU thread): captured, copied to stderr, and scanned line by
 * line for the two moments the test times. */
static void uart_output(void *ctx, const void *data, size_t len)
{
	lvm *m = ctx;
	fwrite(data, 1, len, stderr);
	pthread_mutex_lock(&m->lock);
	capture(&m->console, &m->console_len, &m->console_cap, data, len);
	char *nl;
	while (m->console && (nl = memchr(m->console + m->line_start, '\n', m->console_len - m->line_start))) {
		*nl = '\0';
		const char *line = m->console + m->line_start;
		if (m->t_run_init == 0 && strstr(line, "Run /init as init process"))
			m->t_run_init = lvm_now();
		if (m->t_init_start == 0 && strstr(line, "libvmm-init: start"))
			m->t_init_start = lvm_now();
		if (strstr(line, "libvmm-init: done"))
			snapshot_status(m);
		*nl = '\n';
		m->line_start = (size_t)(nl - m->console) + 1;
	}
	pthread_mutex_unlock(&m->lock);
}

static void hvc_output(void *ctx, const void *data, size_t len)
{
	lvm *m = ctx;
	pthread_mutex_lock(&m->lock);
	capture(&m->hvc, &m->hvc_len, &m->hvc_cap, data, len);
	pthread_mutex_unlock(&m->lock);
}

static void status_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	lvm *m = opaque;
	(void)offset;
	(void)size;
	pthread_mutex_lock(&m->lock);
	m->status_value = (int)(value & 0xff);
	pthread_mutex_unlock(&m->lock);
}

/* Records how the run ended (the first report wins) and stops every vCPU. */
static int end_run(lvm *m, uint32_t event, const char *fmt, ...)
{
	pthread_mutex_lock(&m->lock);
	if (!m->ended) {
		m->ended = true;
		m->end_event = event;
		m->t_end = lvm_now();
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(m->end_detail, sizeof m->end_detail, fmt, ap);
		va_end(ap);
		pthread_cond_broadcast(&m->ended_cond);
	}
	pthread_mutex_unlock(&m->lock);
	vmm_vm_request_stop(m->vm, event ? event : VMM_SYSTEM_EVENT_SHUTDOWN);
	return 1;
}

static int vcpu_exit(void *ctx, vmm_vcpu *vcpu, const vmm_exit *e, int err)
{
	lvm *m = ctx;
	unsigned id = vmm_vcpu_id(vcpu);
	if (!e)
		return end_run(m, 0, "vCPU %u: run failed: %s (%s)", id, vmm_strerror(err), vmm_last_error());
	switch (e->reason) {
	case VMM_EXIT_SYSTEM_EVENT:
		return end_run(m, e->u.system.type, "vCPU %u: system event %u", id, e->u.system.type);
	case VMM_EXIT_KICK:
	case VMM_EXIT_HLT: {
		uint32_t event = vmm_vm_stop_requested(m->vm);
		return event ? end_run(m, event, "vCPU %u: system event %u (kicked)", id, event) : 0;
	}
	case VMM_EXIT_SHUTDOWN:
		return end_run(m, 0, "vCPU %u: triple fault (KVM_EXIT_SHUTDOWN)", id);
	case VMM_EXIT_GUEST:
		return end_run(m, 0, "vCPU %u: exit port %#llx", id, (unsigned long long)e->u.guest.code);
	case VMM_EXIT_INTERNAL_ERROR:
		return end_run(m, 0, "vCPU %u: %s", id, vmm_last_error());
	default:
		return end_run(m, 0, "vCPU %u: unexpected exit reason %d", id, (int)e->reason);
	}
}

static int attach(lvm *m, lvm_dev *slot, vmm_virtio_device *dev, const char *what)
{
	if (m->nvirtio == sizeof m->acpi_virtio / sizeof m->acpi_virtio[0]) {
		vmm_virtio_device_destroy(dev);
		return report(-ENOSPC, "%s", what);
	}
	unsigned i = m->nvirtio;
	vmm_virtio_mmio_opts o = VMM_VIRTIO_MMIO_OPTS_INIT;
	o.base = VIRTIO_BASE + i * VMM_VIRTIO_MMIO_SIZE;
	o.gsi = 5 + i + (5 + i >= 8); /* GSI 8 is the RTC's, as in examples/microvm.c */
	int r = vmm_virtio_mmio_attach(&slot->mmio, m->vm, m->loop, &o, dev);
	if (r) {
		vmm_virtio_device_destroy(dev);
		return report(r, "attaching %s", what);
	}
	slot->dev = dev;
	m->acpi_virtio[i] = (vmm_acpi_virtio_mmio){ .base = o.base, .size = VMM_VIRTIO_MMIO_SIZE, .gsi = o.gsi };
	m->nvirtio++;
	return 0;
}

static int add_platform(lvm *m)
{
	int r;
	vmm_uart_opts uo = VMM_UART_OPTS_INIT;
	uo.backend = VMM_UART_CALLBACK;
	uo.output = uart_output;
	uo.ctx = m;
	if ((r = vmm_uart_create(&m->uart, m->vm, &uo)))
		return report(r, "UART");
	if ((r = vmm_i8042_create(&m->kbc, m->vm, NULL)))
		return report(r, "i8042");
	if ((r = vmm_rtc_create(&m->rtc, m->vm, NULL)))
		return report(r, "RTC");
	if ((r = vmm_power_create(&m->power, m->vm, NULL)))
		return report(r, "power device");
	vmm_bus_ops ops = { .read = NULL, .write = status_write };
	if ((r = vmm_bus_register(vmm_vm_bus(m->vm), VMM_BUS_PIO, LVM_STATUS_PORT, 1, &ops, m)))
		return report(r, "status port");
	return 0;
}

/* The virtio devices, in the order of examples/microvm.c: blk, net, vsock, console, rng. */
static int add_virtio(lvm *m, const lvm_opts *o)
{
	vmm_virtio_device *dev;
	int r;
	if (o->disk) {
		vmm_virtio_blk_opts bo = VMM_VIRTIO_BLK_OPTS_INIT;
		bo.path = o->disk;
		if ((r = vmm_virtio_blk_create(&dev, &bo)))
			return report(r, "virtio-blk %s", o->disk);
		if ((r = attach(m, &m->blk, dev, "virtio-blk")))
			return r;
	}
	if (o->peer) {
		vmm_virtio_net_opts no = VMM_VIRTIO_NET_OPTS_INIT;
		no.backend = VMM_NET_CALLBACK;
		no.mac[0] = 0x52; /* a fixed, locally administered MAC the test can look for */
		no.mac[1] = 0x54;
		no.mac[2] = 0x00;
		no.mac[3] = 0x12;
		no.mac[4] = 0x34;
		no.mac[5] = 0x56;
		no.tx = lvm_peer_tx;
		no.ctx = o->peer;
		if ((r = vmm_virtio_net_create(&dev, &no)))
			return report(r, "virtio-net");
		o->peer->net = dev;
		if ((r = attach(m, &m->net, dev, "virtio-net")))
			return r;
	}
	if (o->vsock_cid) {
		vmm_virtio_vsock_opts vo = VMM_VIRTIO_VSOCK_OPTS_INIT;
		vo.guest_cid = o->vsock_cid;
		vo.uds_path = o->vsock_uds;
		if ((r = vmm_virtio_vsock_create(&dev, &vo)))
			return report(r, "virtio-vsock");
		if ((r = attach(m, &m->vsock, dev, "virtio-vsock")))
			return r;
	}
	if (o->hvc) {
		vmm_virtio_console_opts co = VMM_VIRTIO_CONSOLE_OPTS_INIT;
		co.backend = VMM_CONSOLE_CALLBACK;
		co.output = hvc_output;
		co.ctx = m;
		if ((r = vmm_virtio_console_create(&dev, &co)))
			return report(r, "virtio-console");
		if ((r = attach(m, &m->con, dev, "virtio-console")))
			return r;
	}
	if (o->rng) {
		if ((r = vmm_virtio_rng_create(&dev, NULL)))
			return report(r, "virtio-rng");
		if ((r = attach(m, &m->rng, dev, "virtio-rng")))
			return r;
	}
	return 0;
}

static int load(lvm *m, const lvm_opts *o)
{
	vmm_mem *mem = vmm_vm_mem(m->vm);
	vmm_mem_region_opts ram = VMM_MEM_REGION_OPTS_INIT;
	ram.len = (uint64_t)o->mem_mib << 20;
	int r = vmm_mem_add_region(mem, &ram);
	if (r)
		return report(r, "RAM");

	vmm_acpi_opts ao = VMM_ACPI_OPTS_INIT;
	ao.flags = VMM_ACPI_COM1 | VMM_ACPI_I8042 | VMM_ACPI_RTC | VMM_ACPI_PIC;
	ao.ncpus = m->ncpus;
	ao.virtio = m->acpi_virtio;
	ao.nvirtio = m->nvirtio;
	ao.sleep_port = VMM_POWER_PORT_DEFAULT;
	vmm_acpi_info acpi;
	if ((r = vmm_acpi_write(mem, VMM_ACPI_AREA_GPA, VMM_ACPI_AREA_SIZE, &ao, &acpi)))
		return report(r, "ACPI tables");

	vmm_cmdline *cl;
	if ((r = vmm_cmdline_create(&cl, 0)))
		return report(r, "command line");
	r = vmm_cmdline_append(cl, "console=ttyS0 panic=-1 pci=off");
	if (!r && vmm_linux_host_is_nested())
		r = vmm_linux_cmdline_nested_defaults(cl);
	if (!r && o->cmdline)
		r = vmm_cmdline_append(cl, o->cmdline);
	if (r) {
		vmm_cmdline_destroy(cl);
		return report(r, "command line");
	}
	fprintf(stderr, "linux_vm: command line: %s\n", vmm_cmdline_str(cl));

	vmm_e820_entry acpi_range = { VMM_ACPI_AREA_GPA, VMM_ACPI_AREA_SIZE, VMM_E820_ACPI };
	vmm_linux_opts lo = VMM_LINUX_OPTS_INIT;
	lo.kernel_path = o->kernel;
	lo.initrd_path = o->initrd;
	lo.cmdline = vmm_cmdline_str(cl);
	lo.rsdp = acpi.rsdp_gpa;
	lo.e820_extra = &acpi_range;
	lo.n_e820_extra = 1;
	r = vmm_linux_load(mem, m->vcpu[0], &lo, NULL);
	vmm_cmdline_destroy(cl);
	if (r)
		return report(r, "loading %s", o->kernel);
	if ((r = vmm_linux_prepare_vm(m->vm)))
		return report(r, "masking the PIC");
	for (unsigned i = 0; i < m->ncpus; i++)
		if ((r = vmm_linux_prepare_vcpu(m->vcpu[i])))
			return report(r, "x2APIC on vCPU %u", i);
	return 0;
}

int lvm_create(lvm **out, const lvm_opts *o)
{
	*out = NULL;
	if (!o->kernel || o->cpus < 1 || o->cpus > LVM_MAX_CPUS || o->mem_mib < 16 || o->mem_mib > 3072)
		return report(-EINVAL, "lvm_create: bad options");
	lvm *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->ended_cond, NULL);
	m->status_value = -1;
	m->ncpus = o->cpus;
	m->timeout_s = o->timeout_s ? o->timeout_s : 1200;
	int r = vmm_vm_create(&m->vm, NULL);
	if (r) {
		report(r, "creating the VM");
		goto fail;
	}
	if ((r = vmm_loop_create(&m->loop))) {
		report(r, "event loop");
		goto fail;
	}
	for (unsigned i = 0; i < m->ncpus; i++) {
		vmm_vcpu_opts vo = VMM_VCPU_OPTS_INIT;
		vo.id = i;
		if ((r = vmm_vcpu_create(&m->vcpu[i], m->vm, &vo))) {
			report(r, "vCPU %u", i);
			goto fail;
		}
	}
	if ((r = add_platform(m)) || (r = add_virtio(m, o)) || (r = load(m, o)))
		goto fail;
	*out = m;
	return 0;
fail:
	lvm_destroy(m);
	return r;
}

static void *loop_main(void *arg)
{
	lvm *m = arg;
	int r = vmm_loop_run(m->loop);
	if (r)
		report(r, "event loop");
	return NULL;
}

int lvm_run(lvm *m)
{
	int r = -pthread_create(&m->loop_thread, NULL, loop_main, m);
	if (r)
		return report(r, "loop thread");
	m->loop_running = true;
	m->t_start = lvm_now();
	unsigned started = 0;
	for (; started < m->ncpus; started++) {
		/* vCPU 0 enters the kernel; the others wait in KVM_RUN for INIT/SIPI. */
		if ((r = vmm_vcpu_start(m->vcpu[started], vcpu_exit, m))) {
			report(r, "starting vCPU %u", started);
			end_run(m, 0, "could not start vCPU %u", started);
			break;
		}
	}
	/* The watchdog: wait for the end, or stop the machine at the deadline. */
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += m->timeout_s;
	pthread_mutex_lock(&m->lock);
	while (!m->ended) {
		if (pthread_cond_timedwait(&m->ended_cond, &m->lock, &deadline) == ETIMEDOUT) {
			m->timed_out = true;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (m->timed_out)
		end_run(m, 0, "timed out after %u s", m->timeout_s);
	for (unsigned i = 0; i < started; i++)
		vmm_vcpu_join(m->vcpu[i], NULL);
	vmm_loop_stop(m->loop);
	pthread_join(m->loop_thread, NULL);
	m->loop_running = false;
	return r;
}

void lvm_destroy(lvm *m)
{
	if (!m)
		return;
	if (m->loop_running) {
		vmm_loop_stop(m->loop);
		pthread_join(m->loop_thread, NULL);
	}
	lvm_dev *devs[] = { &m->blk, &m->net, &m->vsock, &m->con, &m->rng };
	for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++)
		vmm_virtio_mmio_destroy(devs[i]->mmio);
	vmm_uart_destroy(m->uart);
	vmm_i8042_destroy(m->kbc);
	vmm_rtc_destroy(m->rtc);
	vmm_power_destroy(m->power);
	vmm_vm_destroy(m->vm); /* joins vCPU threads still running */
	vmm_loop_destroy(m->loop);
	free(m->console);
	free(m->hvc);
	pthread_cond_destroy(&m->ended_cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
