/* vmm_vm: opens /dev/kvm, checks capabilities, creates the VM and owns its parts. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kvm/kvm.h"
#include "vm_internal.h"

/* Where KVM places the three pages Intel VMX needs for real-mode emulation: just below
 * the 4 GiB boundary, in the hole that firmware and chipsets leave alone. */
#define VM_TSS_ADDR 0xfffbd000ull
#define VM_IDENTITY_MAP_ADDR 0xfffbc000ull

#define DEFAULT_EXIT_PORT 0xf4
#define DEFAULT_FAULT_PORT 0xf5

struct required_cap {
	long cap;
	const char *name;
};

/* Capabilities every composition needs. */
static const struct required_cap required_caps[] = {
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" },
};

/* Capabilities an in-kernel interrupt controller needs. */
static const struct required_cap irqchip_caps[] = {
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
	{ KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING" },
	{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
	{ KVM_CAP_SIGNAL_MSI, "KVM_CAP_SIGNAL_MSI" },
};

static int check_caps(int fd, const struct required_cap *caps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (vmm_kvm_check_extension(fd, caps[i].cap) <= 0)
			return vmm_err(-ENOTSUP, "KVM lacks capability %s", caps[i].name);
	return 0;
}

static void kick_handler(int sig)
{
	(void)sig; /* Only here so the signal interrupts KVM_RUN instead of killing us. */
}

/* Installs an empty handler for the kick signal unless the application already
 * handles (or ignores) it; an existing handler interrupts KVM_RUN just as well. */
static int install_kick_signal(int sig)
{
	struct sigaction old;
	if (sigaction(sig, NULL, &old) < 0)
		return vmm_err(-errno, "kick signal %d: sigaction failed", sig);
	if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN)
		return vmm_err(-EINVAL, "kick signal %d is ignored (SIG_IGN) by the application; "
				"choose another with vmm_vm_opts.kick_signal", sig);
	if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
		return 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) < 0)
		return vmm_err(-errno, "kick signal %d: sigaction failed", sig);
	return 0;
}

static int open_kvm(vmm_vm *vm, const char *path)
{
	int fd = vmm_kvm_open_dev(path);
	if (fd == -ENOENT || fd == -ENXIO || fd == -ENODEV)
		return vmm_err(-ENODEV, "%s: no such device (is the kvm module loaded?)", path);
	if (fd == -EACCES || fd == -EPERM)
		return vmm_err(-EACCES, "%s: permission denied (add the user to the kvm group)", path);
	if (fd < 0)
		return vmm_err(fd, "%s: open failed", path);
	vm->kvm_fd = fd;
	int version = vmm_kvm_api_version(fd);
	if (version == -ENOTTY || version == -EINVAL)
		return vmm_err(-ENODEV, "%s is not a KVM device", path);
	if (version != KVM_API_VERSION)
		return vmm_err(-ENOTSUP, "%s: KVM API version %d, libvmm needs %d", path, version,
			       KVM_API_VERSION);
	return 0;
}

/* At creation: the capabilities the composition needs, and the library-side vmm_irq
 * object. The controller itself is made in KVM later, see vmm_vm_realize_irqchip. */
static int setup_irqchip(vmm_vm *vm)
{
	int r;
	switch (vm->irqchip) {
	case VMM_IRQCHIP_NONE:
		atomic_store(&vm->irqchip_ready, true);
		return 0;
	case VMM_IRQCHIP_KERNEL:
		if ((r = check_caps(vm->vm_fd, irqchip_caps, sizeof irqchip_caps / sizeof irqchip_caps[0])))
			return r;
		if (!(vm->flags & VMM_VM_NO_PIT) && vmm_kvm_check_extension(vm->vm_fd, KVM_CAP_PIT2) <= 0)
			return vmm_err(-ENOTSUP, "KVM lacks capability KVM_CAP_PIT2 (use VMM_VM_NO_PIT)");
		break;
	case VMM_IRQCHIP_SPLIT:
		if ((r = check_caps(vm->vm_fd, irqchip_caps + 1, 3)))
			return r;
		if (vmm_kvm_check_extension(vm->vm_fd, KVM_CAP_SPLIT_IRQCHIP) <= 0)
			return vmm_err(-ENOTSUP, "KVM lacks capability KVM_CAP_SPLIT_IRQCHIP");
		break;
	default:
		return vmm_err(-EINVAL, "vmm_vm_opts.irqchip: unknown mode %d", (int)vm->irqchip);
	}
	return vmm_irq_create_for_vm(&vm->irq, vm);
}

static int create_irqchip(vmm_vm *vm)
{
	int r;
	if (vm->irqchip == VMM_IRQCHIP_KERNEL) {
		if ((r = vmm_kvm_create_irqchip(vm->vm_fd)) < 0)
			return vmm_err(r, "KVM_CREATE_IRQCHIP failed");
		if (!(vm->flags & VMM_VM_NO_PIT) && (r = vmm_kvm_create_pit2(vm->vm_fd)) < 0)
			return vmm_err(r, "KVM_CREATE_PIT2 failed");
	} else {
		/* Reserve the IOAPIC's 24 pins as routes whose EOIs exit to user space. */
		if ((r = vmm_kvm_enable_cap(vm->vm_fd, KVM_CAP_SPLIT_IRQCHIP, VMM_IRQ_IOAPIC_PINS)) < 0)
			return vmm_err(r, "enabling KVM_CAP_SPLIT_IRQCHIP failed");
	}
	/* 32-bit x2APIC ids in MSIs, and no broadcast quirk: needed for > 255 vCPUs and
	 * harmless otherwise. Must precede vCPU creation. */
	if (vmm_kvm_check_extension(vm->vm_fd, KVM_CAP_X2APIC_API) > 0)
		vmm_kvm_enable_cap(vm->vm_fd, KVM_CAP_X2APIC_API,
				   KVM_X2APIC_API_USE_32BIT_IDS | KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK);
	return vmm_irq_realize(vm->irq);
}

int vmm_vm_realize_irqchip(vmm_vm *vm)
{
	if (atomic_load(&vm->irqchip_ready))
		return 0;
	pthread_mutex_lock(&vm->lock);
	int r = 0;
	/* A failure half-way (KVM_CREATE_PIT2 after KVM_CREATE_IRQCHIP) is not retried as
	 * if nothing had happened: the next call fails the same way, with EEXIST. */
	if (!atomic_load(&vm->irqchip_ready) && (r = create_irqchip(vm)) == 0)
		atomic_store(&vm->irqchip_ready, true);
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vmm_vm_harvest_ring(vmm_vcpu *v)
{
	pthread_mutex_lock(&v->ring_lock);
	uint32_t n = vmm_mem_ring_harvest(v->vm->mem, v->ring, v->vm->dirty_ring_entries, &v->ring_fetch);
	pthread_mutex_unlock(&v->ring_lock);
	int r = n ? vmm_kvm_reset_dirty_rings(v->vm->vm_fd) : 0;
	return r < 0 ? vmm_err(r, "KVM_RESET_DIRTY_RINGS failed") : 0;
}

/* vmm_mem's collect hook in dirty-ring mode: every vCPU's ring, then one reset. */
static void harvest_all(void *ctx)
{
	vmm_vm *vm = ctx;
	uint32_t n = 0;
	pthread_mutex_lock(&vm->lock);
	for (size_t i = 0; i < vm->nr_vcpus; i++) {
		vmm_vcpu *v = vm->vcpus[i];
		if (!v->ring)
			continue;
		pthread_mutex_lock(&v->ring_lock);
		n += vmm_mem_ring_harvest(vm->mem, v->ring, vm->dirty_ring_entries, &v->ring_fetch);
		pthread_mutex_unlock(&v->ring_lock);
	}
	pthread_mutex_unlock(&vm->lock);
	if (n)
		vmm_kvm_reset_dirty_rings(vm->vm_fd);
}

/* Enables per-vCPU dirty rings (before any vCPU exists, as KVM requires). */
static int setup_dirty_ring(vmm_vm *vm, uint32_t entries)
{
	if (entries < 512 || entries > 65536 || (entries & (entries - 1)))
		return vmm_err(-EINVAL, "dirty_ring_entries %u: must be a power of two from 512 to 65536",
			       entries);
	uint64_t bytes = (uint64_t)entries * sizeof(struct kvm_dirty_gfn);
	/* The acquire/release flavour is the one weakly ordered hosts need; x86 has both. */
	long cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
	int max = vmm_kvm_check_extension(vm->vm_fd, cap);
	if (max <= 0) {
		cap = KVM_CAP_DIRTY_LOG_RING;
		max = vmm_kvm_check_extension(vm->vm_fd, cap);
	}
	if (max <= 0)
		return vmm_err(-ENOTSUP, "KVM lacks capability KVM_CAP_DIRTY_LOG_RING");
	if (bytes > (uint64_t)max)
		return vmm_err(-EINVAL, "dirty_ring_entries %u exceeds KVM's maximum of %d bytes per ring",
			       entries, max);
	int r = vmm_kvm_enable_cap(vm->vm_fd, (uint32_t)cap, bytes);
	if (r < 0)
		return vmm_err(r, "enabling the KVM dirty ring (%u entries) failed", entries);
	vm->dirty_ring_entries = entries;
	vmm_mem_set_ring_mode(vm->mem, harvest_all, vm);
	return 0;
}

int vmm_vm_create(vmm_vm **out, const vmm_vm_opts *opts)
{
	if (!out)
		return vmm_err(-EINVAL, "vmm_vm_create: out is NULL");
	*out = NULL;
	vmm_vm_opts o = VMM_VM_OPTS_INIT;
	if (opts && vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "vmm_vm_create: opts->size is too small");
	if (o.flags & ~(uint32_t)(VMM_VM_NO_PIT | VMM_VM_EXIT_ON_UNHANDLED_IO | VMM_VM_DONTFORK))
		return vmm_err(-EINVAL, "vmm_vm_create: unknown flags %#x", o.flags);
	int sig = o.kick_signal ? o.kick_signal : SIGRTMAX - 1;
	if (sig < 1 || sig > SIGRTMAX || sig == SIGKILL || sig == SIGSTOP)
		return vmm_err(-EINVAL, "vmm_vm_create: kick_signal %d is not usable", sig);

	vmm_vm *vm = calloc(1, sizeof *vm);
	if (!vm)
		return vmm_err(-ENOMEM, "vmm_vm_create: out of memory");
	vm->kvm_fd = vm->vm_fd = -1;
	vm->flags = o.flags;
	vm->irqchip = o.irqchip;
	vm->exit_port = o.exit_port ? o.exit_port : DEFAULT_EXIT_PORT;
	vm->fault_port = o.fault_port ? o.fault_port : DEFAULT_FAULT_PORT;
	vm->kick_signal = sig;
	vm->exit_on_unhandled_io = o.flags & VMM_VM_EXIT_ON_UNHANDLED_IO;
	pthread_mutex_init(&vm->lock, NULL);

	int r = open_kvm(vm, o.kvm_path ? o.kvm_path : "/dev/kvm");
	if (r)
		goto fail;
	if ((r = check_caps(vm->kvm_fd, required_caps, sizeof required_caps / sizeof required_caps[0])))
		goto fail;
	if ((r = vm->vcpu_mmap_size = vmm_kvm_vcpu_mmap_size(vm->kvm_fd)) <= 0) {
		r = vmm_err(r ? r : -EIO, "KVM_GET_VCPU_MMAP_SIZE failed");
		goto fail;
	}
	if ((r = vm->vm_fd = vmm_kvm_create_vm(vm->kvm_fd)) < 0) {
		r = vmm_err(r, "KVM_CREATE_VM failed");
		goto fail;
	}
	int max = vmm_kvm_check_extension(vm->vm_fd, KVM_CAP_MAX_VCPUS);
	vm->max_vcpus = max > 0 ? (uint32_t)max : 1;
	if (vmm_kvm_check_extension(vm->kvm_fd, KVM_CAP_SET_TSS_ADDR) > 0 &&
	    (r = vmm_kvm_set_tss_addr(vm->vm_fd, VM_TSS_ADDR)) < 0) {
		r = vmm_err(r, "KVM_SET_TSS_ADDR failed");
		goto fail;
	}
	if (vmm_kvm_check_extension(vm->kvm_fd, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0)
		vmm_kvm_set_identity_map_addr(vm->vm_fd, VM_IDENTITY_MAP_ADDR);
	int slots = vmm_kvm_check_extension(vm->vm_fd, KVM_CAP_NR_MEMSLOTS);
	if ((r = vmm_mem_create_for_vm(&vm->mem, vm->vm_fd, slots > 0 ? (uint32_t)slots : 32)))
		goto fail;
	vmm_mem_set_dontfork(vm->mem, o.flags & VMM_VM_DONTFORK);
	if ((r = vmm_bus_create_for_vm(&vm->bus, vm->vm_fd)))
		goto fail;
	if (o.dirty_ring_entries && (r = setup_dirty_ring(vm, o.dirty_ring_entries)))
		goto fail;
	if ((r = setup_irqchip(vm)))
		goto fail;
	if ((r = install_kick_signal(vm->kick_signal)))
		goto fail;
	*out = vm;
	return 0;
fail:
	vmm_vm_destroy(vm);
	return r;
}

void vmm_vm_destroy(vmm_vm *vm)
{
	if (!vm)
		return;
	/* vCPUs remove themselves from the list as they go. */
	for (;;) {
		pthread_mutex_lock(&vm->lock);
		vmm_vcpu *v = vm->nr_vcpus ? vm->vcpus[vm->nr_vcpus - 1] : NULL;
		pthread_mutex_unlock(&vm->lock);
		if (!v)
			break;
		vmm_vcpu_destroy(v);
	}
	vmm_irq_free(vm->irq);
	vmm_bus_free(vm->bus);
	vmm_mem_free(vm->mem);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	free(vm->vcpus);
	if (!vm->supported_cpuid_shared)
		vmm_cpuid_destroy(vm->supported_cpuid);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

int vmm_vm_add_vcpu(vmm_vm *vm, vmm_vcpu *vcpu)
{
	int r = 0;
	pthread_mutex_lock(&vm->lock);
	for (size_t i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i]->id == vcpu->id) {
			r = vmm_err(-EEXIST, "vCPU id %u already exists in this VM", vcpu->id);
			goto out;
		}
	}
	if (vm->nr_vcpus >= vm->max_vcpus) {
		r = vmm_err(-ENOSPC, "VM already has the maximum of %u vCPUs", vm->max_vcpus);
		goto out;
	}
	if (vm->nr_vcpus == vm->cap_vcpus) {
		size_t cap = vm->cap_vcpus ? vm->cap_vcpus * 2 : 4;
		vmm_vcpu **n = realloc(vm->vcpus, cap * sizeof *n);
		if (!n) {
			r = vmm_err(-ENOMEM, "out of memory");
			goto out;
		}
		vm->vcpus = n;
		vm->cap_vcpus = cap;
	}
	vm->vcpus[vm->nr_vcpus++] = vcpu;
out:
	pthread_mutex_unlock(&vm->lock);
	return r;
}

void vmm_vm_remove_vcpu(vmm_vm *vm, vmm_vcpu *vcpu)
{
	pthread_mutex_lock(&vm->lock);
	for (size_t i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i] == vcpu) {
			memmove(&vm->vcpus[i], &vm->vcpus[i + 1], (vm->nr_vcpus - i - 1) * sizeof *vm->vcpus);
			vm->nr_vcpus--;
			break;
		}
	}
	pthread_mutex_unlock(&vm->lock);
}

vmm_mem *vmm_vm_mem(vmm_vm *vm) { return vm ? vm->mem : NULL; }
vmm_bus *vmm_vm_bus(vmm_vm *vm) { return vm ? vm->bus : NULL; }
vmm_irq *vmm_vm_irq(vmm_vm *vm) { return vm ? vm->irq : NULL; }
uint16_t vmm_vm_exit_port(const vmm_vm *vm) { return vm ? vm->exit_port : 0; }
uint16_t vmm_vm_fault_port(const vmm_vm *vm) { return vm ? vm->fault_port : 0; }
int vmm_vm_kvm_fd(const vmm_vm *vm) { return vm->kvm_fd; }
int vmm_vm_fd(const vmm_vm *vm) { return vm->vm_fd; }
