/* microvm: a complete Linux microVM in one file, on libvmm's public API.
 *
 *   microvm --kernel bzImage|vmlinux [--initrd FILE] [--cmdline "TEXT"] [--mem MIB]
 *           [--cpus N] [--disk FILE [--disk-ro]] [--tap NAME] [--vsock-cid CID
 *           --vsock-uds PATH] [--console serial|virtio] [--rng] [--virtio-cmdline]
 *
 * The machine: N vCPUs (x2APIC), RAM from 0 (above 3 GiB it continues at 4 GiB), the
 * in-kernel PIC/IOAPIC/LAPIC/PIT, a 16550 UART on COM1, the i8042 (reboot), a CMOS RTC,
 * an ACPI power-off register, and virtio-mmio devices at 0xd0000000 + i * 0x1000 on GSIs
 * 5, 6, 7, 9, 10, ... (8 is the RTC's) in this order: blk, net, vsock, console, rng.
 * ACPI tables at 0xe0000 describe all of it, so the kernel needs no device parameters;
 * --virtio-cmdline also passes virtio_mmio.device= for kernels without ACPI (a kernel
 * with both then finds each device twice; the second probe fails, harmlessly).
 *
 * The console (serial: ttyS0, virtio: hvc0) is wired to stdin and stdout. Default
 * command line: console=..., panic=-1 (a panic reboots, which ends the VMM), pci=off,
 * root=/dev/vda without an initrd, the nested-host parameters when the host needs them
 * (vmm_linux_host_is_nested), then --cmdline.
 *
 * Exit status: the byte the guest wrote to the exit port 0xf4 (libvmm's test init
 * writes its number of failed checks there); 0 after an ACPI power-off; 100 after a
 * reboot, a triple fault or a kernel panic (panic=-1); 101 when a vCPU stopped on an
 * error; 1 when the VMM could not set the machine up; 2 for a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libvmm/libvmm.h>

#define MAX_CPUS 64
#define MAX_VIRTIO 8
#define VIRTIO_BASE 0xd0000000ull
#define LOW_RAM_MAX (3ull << 30) /* below the MMIO hole: virtio, IOAPIC, LAPIC */
#define HIGH_RAM_GPA (4ull << 30)
#define EXIT_RESET 100
#define EXIT_VCPU_ERROR 101

struct options {
	const char *kernel, *initrd, *cmdline, *disk, *tap, *vsock_uds;
	unsigned long mem_mib, cpus, vsock_cid;
	int disk_ro, console_virtio, rng, virtio_cmdline;
};

struct machine {
	vmm_vm *vm;
	vmm_loop *loop;
	vmm_vcpu *vcpu[MAX_CPUS];
	unsigned nvcpus;
	vmm_virtio_mmio *virtio[MAX_VIRTIO];
	vmm_acpi_virtio_mmio acpi_virtio[MAX_VIRTIO];
	unsigned nvirtio;
	vmm_uart *uart;
	vmm_i8042 *i8042;
	vmm_rtc *rtc;
	vmm_power *power;
	atomic_int status; /* the exit status, -1 until the first vCPU decides it */
};

static void usage(void)
{
	fprintf(stderr, "usage: microvm --kernel FILE [--initrd FILE] [--cmdline TEXT] [--mem MIB]\n"
			"  [--cpus N] [--disk FILE [--disk-ro]] [--tap NAME] [--vsock-cid CID --vsock-uds PATH]\n"
			"  [--console serial|virtio] [--rng] [--virtio-cmdline]\n");
	exit(2);
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "microvm: %s: %s (%s)\n", what, vmm_strerror(err), vmm_last_error());
	return 1;
}

static unsigned long number(const char *s, unsigned long min, unsigned long max)
{
	char *end;
	unsigned long v = strtoul(s, &end, 0);
	if (*s == '\0' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "microvm: '%s' is not a number from %lu to %lu\n", s, min, max);
		exit(2);
	}
	return v;
}

static void parse(int argc, char **argv, struct options *o)
{
	enum { KERNEL = 256, INITRD, CMDLINE, MEM, CPUS, DISK, DISK_RO, TAP, CID, UDS, CONSOLE, RNG, VCMD };
	static const struct option longopts[] = {
		{ "kernel", 1, 0, KERNEL }, { "initrd", 1, 0, INITRD }, { "cmdline", 1, 0, CMDLINE },
		{ "mem", 1, 0, MEM }, { "cpus", 1, 0, CPUS }, { "disk", 1, 0, DISK },
		{ "disk-ro", 0, 0, DISK_RO }, { "tap", 1, 0, TAP }, { "vsock-cid", 1, 0, CID },
		{ "vsock-uds", 1, 0, UDS }, { "console", 1, 0, CONSOLE }, { "rng", 0, 0, RNG },
		{ "virtio-cmdline", 0, 0, VCMD }, { 0, 0, 0, 0 },
	};
	*o = (struct options){ .mem_mib = 256, .cpus = 1 };
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case KERNEL: o->kernel = optarg; break;
		case INITRD: o->initrd = optarg; break;
		case CMDLINE: o->cmdline = optarg; break;
		case MEM: o->mem_mib = number(optarg, 16, 1ul << 20); break;
		case CPUS: o->cpus = number(optarg, 1, MAX_CPUS); break;
		case DISK: o->disk = optarg; break;
		case DISK_RO: o->disk_ro = 1; break;
		case TAP: o->tap = optarg; break;
		case CID: o->vsock_cid = number(optarg, 3, 0xfffffffeul); break;
		case UDS: o->vsock_uds = optarg; break;
		case CONSOLE:
			if (strcmp(optarg, "serial") && strcmp(optarg, "virtio"))
				usage();
			o->console_virtio = strcmp(optarg, "virtio") == 0;
			break;
		case RNG: o->rng = 1; break;
		case VCMD: o->virtio_cmdline = 1; break;
		default: usage();
		}
	}
	if (!o->kernel || optind != argc || !o->vsock_cid != !o->vsock_uds)
		usage();
}

/* The first vCPU to see the end of the machine records the exit status and stops the
 * others (vmm_vm_request_stop kicks them; their runs then return a system event). */
static int finish(struct machine *m, int status, uint32_t event)
{
	int none = -1;
	atomic_compare_exchange_strong(&m->status, &none, status);
	vmm_vm_request_stop(m->vm, event);
	return 1; /* ends this vCPU's thread */
}

static int event_status(uint32_t event)
{
	return event == VMM_SYSTEM_EVENT_SHUTDOWN ? 0 : EXIT_RESET;
}

/* Runs on each vCPU's thread for every exit vmm_vcpu_run reports. */
static int vcpu_exit(void *ctx, vmm_vcpu *vcpu, const vmm_exit *e, int err)
{
	struct machine *m = ctx;
	if (!e) {
		fprintf(stderr, "microvm: vCPU %u: %s (%s)\n", vmm_vcpu_id(vcpu), vmm_strerror(err),
			vmm_last_error());
		return finish(m, EXIT_VCPU_ERROR, VMM_SYSTEM_EVENT_SHUTDOWN);
	}
	switch (e->reason) {
	case VMM_EXIT_GUEST: /* the guest's exit code */
		return finish(m, (int)(e->u.guest.code & 0xff), VMM_SYSTEM_EVENT_SHUTDOWN);
	case VMM_EXIT_SYSTEM_EVENT: /* ACPI power-off, i8042 reset, or KVM's own */
		return finish(m, event_status(e->u.system.type), e->u.system.type);
	case VMM_EXIT_SHUTDOWN: /* triple fault: reboot=t, or a crash */
		return finish(m, EXIT_RESET, VMM_SYSTEM_EVENT_RESET);
	case VMM_EXIT_KICK: /* a device or another vCPU stopped the machine */
	case VMM_EXIT_HLT: { /* (the in-kernel LAPIC handles HLT; nothing to do) */
		uint32_t event = vmm_vm_stop_requested(m->vm);
		return event ? finish(m, event_status(event), event) : 0;
	}
	default:
		fprintf(stderr, "microvm: vCPU %u stopped: exit reason %d (%s)\n", vmm_vcpu_id(vcpu),
			(int)e->reason, e->reason == VMM_EXIT_INTERNAL_ERROR ? vmm_last_error() : "");
		return finish(m, EXIT_VCPU_ERROR, VMM_SYSTEM_EVENT_SHUTDOWN);
	}
}

static int add_ram(vmm_mem *mem, uint64_t gpa, uint64_t len)
{
	vmm_mem_region_opts r = VMM_MEM_REGION_OPTS_INIT;
	r.gpa = gpa;
	r.len = len;
	r.flags = VMM_MEM_THP;
	r.name = "microvm-ram";
	return vmm_mem_add_region(mem, &r);
}

/* Attaches `dev` as the next virtio-mmio device (or destroys it on failure). */
static int add_virtio(struct machine *m, vmm_virtio_device *dev)
{
	if (m->nvirtio == MAX_VIRTIO) {
		vmm_virtio_device_destroy(dev);
		return -ENOSPC;
	}
	unsigned i = m->nvirtio;
	vmm_virtio_mmio_opts o = VMM_VIRTIO_MMIO_OPTS_INIT;
	o.base = VIRTIO_BASE + i * VMM_VIRTIO_MMIO_SIZE;
	o.gsi = 5 + i + (5 + i >= 8); /* GSI 8 belongs to the RTC */
	int r = vmm_virtio_mmio_attach(&m->virtio[i], m->vm, m->loop, &o, dev);
	if (r) {
		vmm_virtio_device_destroy(dev);
		return r;
	}
	m->acpi_virtio[i] = (vmm_acpi_virtio_mmio){ .base = o.base, .size = VMM_VIRTIO_MMIO_SIZE, .gsi = o.gsi };
	m->nvirtio++;
	return 0;
}

static int add_devices(struct machine *m, const struct options *o)
{
	vmm_virtio_device *dev;
	int r;
	vmm_uart_opts uo = VMM_UART_OPTS_INIT;
	uo.loop = m->loop;
	if (!o->console_virtio) {
		uo.in_fd = 0;
		uo.out_fd = 1;
	}
	if ((r = vmm_uart_create(&m->uart, m->vm, &uo)))
		return fail("UART", r);
	if ((r = vmm_i8042_create(&m->i8042, m->vm, NULL)))
		return fail("i8042", r);
	if ((r = vmm_rtc_create(&m->rtc, m->vm, NULL)))
		return fail("RTC", r);
	if ((r = vmm_power_create(&m->power, m->vm, NULL)))
		return fail("ACPI power device", r);
	if (o->disk) {
		vmm_virtio_blk_opts bo = VMM_VIRTIO_BLK_OPTS_INIT;
		bo.path = o->disk;
		bo.flags = o->disk_ro ? VMM_BLK_READONLY : 0;
		if ((r = vmm_virtio_blk_create(&dev, &bo)) || (r = add_virtio(m, dev)))
			return fail(o->disk, r);
	}
	if (o->tap) {
		vmm_virtio_net_opts no = VMM_VIRTIO_NET_OPTS_INIT;
		no.tap_name = o->tap;
		if ((r = vmm_virtio_net_create(&dev, &no)) || (r = add_virtio(m, dev)))
			return fail(o->tap, r);
	}
	if (o->vsock_cid) {
		vmm_virtio_vsock_opts vo = VMM_VIRTIO_VSOCK_OPTS_INIT;
		vo.guest_cid = o->vsock_cid;
		vo.uds_path = o->vsock_uds;
		if ((r = vmm_virtio_vsock_create(&dev, &vo)) || (r = add_virtio(m, dev)))
			return fail("virtio-vsock", r);
	}
	if (o->console_virtio) {
		vmm_virtio_console_opts co = VMM_VIRTIO_CONSOLE_OPTS_INIT;
		co.in_fd = 0;
		co.out_fd = 1;
		if ((r = vmm_virtio_console_create(&dev, &co)) || (r = add_virtio(m, dev)))
			return fail("virtio-console", r);
	}
	if (o->rng && ((r = vmm_virtio_rng_create(&dev, NULL)) || (r = add_virtio(m, dev))))
		return fail("virtio-rng", r);
	return 0;
}

static int build_cmdline(vmm_cmdline *cl, const struct machine *m, const struct options *o)
{
	int r = vmm_cmdline_add(cl, "console", o->console_virtio ? "hvc0" : "ttyS0");
	if (!r)
		r = vmm_cmdline_append(cl, "panic=-1 pci=off");
	if (!r && o->disk && !o->initrd)
		r = vmm_cmdline_append(cl, o->disk_ro ? "root=/dev/vda ro" : "root=/dev/vda rw");
	if (!r && vmm_linux_host_is_nested())
		r = vmm_linux_cmdline_nested_defaults(cl);
	for (unsigned i = 0; !r && o->virtio_cmdline && i < m->nvirtio; i++) {
		char buf[64];
		vmm_virtio_mmio_cmdline(m->virtio[i], buf, sizeof buf);
		r = vmm_cmdline_append(cl, buf);
	}
	if (!r && o->cmdline)
		r = vmm_cmdline_append(cl, o->cmdline);
	return r ? fail("kernel command line", r) : 0;
}

/* RAM, with a hole for the MMIO devices between 3 and 4 GiB. Added before the vCPUs
 * and devices: the interrupt controller KVM makes for them then finds its memory slots
 * in place (a slot added after it costs milliseconds on some hosts, see vm.h). */
static int add_guest_ram(struct machine *m, uint64_t ram)
{
	vmm_mem *mem = vmm_vm_mem(m->vm);
	uint64_t low = ram < LOW_RAM_MAX ? ram : LOW_RAM_MAX;
	int r;
	if ((r = add_ram(mem, 0, low)) || (ram > low && (r = add_ram(mem, HIGH_RAM_GPA, ram - low))))
		return fail("guest RAM", r);
	return 0;
}

static int load(struct machine *m, const struct options *o)
{
	vmm_mem *mem = vmm_vm_mem(m->vm);
	int r;

	vmm_acpi_opts ao = VMM_ACPI_OPTS_INIT;
	ao.flags = VMM_ACPI_COM1 | VMM_ACPI_I8042 | VMM_ACPI_RTC | VMM_ACPI_PIC;
	ao.ncpus = m->nvcpus;
	ao.virtio = m->acpi_virtio;
	ao.nvirtio = m->nvirtio;
	ao.sleep_port = VMM_POWER_PORT_DEFAULT;
	vmm_acpi_info acpi;
	if ((r = vmm_acpi_write(mem, VMM_ACPI_AREA_GPA, VMM_ACPI_AREA_SIZE, &ao, &acpi)))
		return fail("ACPI tables", r);

	vmm_cmdline *cl;
	if ((r = vmm_cmdline_create(&cl, 0)))
		return fail("command line", r);
	if (build_cmdline(cl, m, o)) {
		vmm_cmdline_destroy(cl);
		return 1;
	}
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
		return fail(o->kernel, r);
	if ((r = vmm_linux_prepare_vm(m->vm)))
		return fail("PIC", r);
	for (unsigned i = 0; i < m->nvcpus; i++)
		if ((r = vmm_linux_prepare_vcpu(m->vcpu[i])))
			return fail("x2APIC", r);
	return 0;
}

static void *loop_thread(void *arg)
{
	int r = vmm_loop_run(arg);
	if (r)
		fail("event loop", r);
	return NULL;
}

/* Runs the machine until the guest ends it; returns the exit status. */
static int run(struct machine *m)
{
	pthread_t loop;
	unsigned started = 0;
	int r = pthread_create(&loop, NULL, loop_thread, m->loop);
	if (r)
		return fail("loop thread", -r);
	/* Only vCPU 0 has registers set up; the others wait in KVM_RUN for the guest's
	 * INIT/SIPI through the in-kernel LAPIC. */
	for (; started < m->nvcpus; started++)
		if ((r = vmm_vcpu_start(m->vcpu[started], vcpu_exit, m))) {
			fail("vCPU thread", r);
			finish(m, 1, VMM_SYSTEM_EVENT_SHUTDOWN);
			break;
		}
	for (unsigned i = 0; i < started; i++)
		vmm_vcpu_join(m->vcpu[i], NULL);
	vmm_loop_stop(m->loop);
	pthread_join(loop, NULL);
	return atomic_load(&m->status);
}

int main(int argc, char **argv)
{
	struct options o;
	struct machine m = { .status = -1 };
	int r, status = 1;
	parse(argc, argv, &o);
	m.nvcpus = (unsigned)o.cpus;

	if ((r = vmm_vm_create(&m.vm, NULL)))
		return fail("creating the VM", r);
	if (add_guest_ram(&m, (uint64_t)o.mem_mib << 20))
		goto out;
	if ((r = vmm_loop_create(&m.loop))) {
		fail("event loop", r);
		goto out;
	}
	for (unsigned i = 0; i < m.nvcpus; i++) {
		vmm_vcpu_opts vo = VMM_VCPU_OPTS_INIT;
		vo.id = i;
		if ((r = vmm_vcpu_create(&m.vcpu[i], m.vm, &vo))) {
			fail("creating a vCPU", r);
			goto out;
		}
	}
	if (add_devices(&m, &o) || load(&m, &o))
		goto out;
	status = run(&m);
out:
	/* The vCPU threads are joined; the devices go before the VM and the loop. */
	for (unsigned i = 0; i < m.nvirtio; i++)
		vmm_virtio_mmio_destroy(m.virtio[i]);
	vmm_uart_destroy(m.uart);
	vmm_i8042_destroy(m.i8042);
	vmm_rtc_destroy(m.rtc);
	vmm_power_destroy(m.power);
	vmm_vm_destroy(m.vm);
	vmm_loop_destroy(m.loop);
	return status;
}
