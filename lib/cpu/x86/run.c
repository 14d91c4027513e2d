/* The vCPU run loop: KVM_RUN, exit dispatch to the bus, kicks and library threads. */
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "../../core/vm_internal.h"
#include "../../kvm/kvm.h"

/* Fault frame the library's IDT stubs leave on the ring-0 stack (see long_mode.c). */
struct fault_frame {
	uint64_t vector, error_code, rip, cs, rflags, rsp, ss;
};

/* Vectors for which the CPU pushes an error code. */
static bool has_error_code(uint64_t v)
{
	return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
}

static int report_fault(vmm_vcpu *v, vmm_exit *exit, uint8_t written)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	int r = vmm_kvm_get_regs(v->fd, &regs);
	if (r >= 0)
		r = vmm_kvm_get_sregs(v->fd, &sregs);
	if (r < 0)
		return vmm_err(r, "reading registers after a guest fault failed");
	exit->reason = VMM_EXIT_FAULT;
	exit->u.fault.cr2 = sregs.cr2;
	struct fault_frame f;
	uint64_t gpa;
	if (vmm_vcpu_translate(v, regs.rsp, &gpa) || vmm_mem_read(v->vm->mem, gpa, &f, sizeof f)) {
		/* Not our stub's frame: the guest wrote the port itself with a stack we
		 * cannot read. Report what it wrote; the rest is unknown. */
		exit->u.fault.vector = written;
		exit->u.fault.rip = regs.rip;
		exit->u.fault.cs = sregs.cs.selector;
		return 0;
	}
	exit->u.fault.vector = (uint32_t)(f.vector & 0xff);
	exit->u.fault.has_error_code = has_error_code(f.vector);
	exit->u.fault.error_code = f.error_code;
	exit->u.fault.rip = f.rip;
	exit->u.fault.cs = f.cs;
	return 0;
}

static uint64_t io_value(const uint8_t *p, unsigned size)
{
	uint64_t val = 0;
	memcpy(&val, p, size > 8 ? 8 : size);
	return val;
}

/* Returns 1 when the exit must go to the caller (exit filled), 0 to re-enter, <0 error. */
static int handle_io(vmm_vcpu *v, vmm_exit *exit)
{
	struct kvm_run *run = v->run;
	unsigned size = run->io.size;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	uint16_t port = run->io.port;

	if (out && port == v->vm->exit_port) {
		exit->reason = VMM_EXIT_GUEST;
		exit->u.guest.code = io_value(data, size);
		return 1;
	}
	if (out && port == v->vm->fault_port) {
		int r = report_fault(v, exit, data[0]);
		return r ? r : 1;
	}
	/* `rep ins/outs` exits once with count items back to back. */
	for (uint32_t i = 0; i < run->io.count; i++, data += size) {
		int r = out ? vmm_bus_write(v->vm->bus, VMM_BUS_PIO, port, data, size)
			    : vmm_bus_read(v->vm->bus, VMM_BUS_PIO, port, data, size);
		if (r == -ENOENT && v->vm->exit_on_unhandled_io) {
			exit->reason = VMM_EXIT_IO;
			exit->u.io.addr = port;
			exit->u.io.size = size;
			exit->u.io.is_write = out;
			exit->u.io.is_mmio = 0;
			exit->u.io.value = out ? io_value(data, size) : 0;
			return 1;
		}
	}
	return 0;
}

static int handle_mmio(vmm_vcpu *v, vmm_exit *exit)
{
	struct kvm_run *run = v->run;
	unsigned len = run->mmio.len;
	if (len == 0 || len > 8)
		return vmm_err(-EIO, "MMIO exit with length %u at %#llx", len,
			       (unsigned long long)run->mmio.phys_addr);
	int r = run->mmio.is_write ? vmm_bus_write(v->vm->bus, VMM_BUS_MMIO, run->mmio.phys_addr, run->mmio.data, len)
				   : vmm_bus_read(v->vm->bus, VMM_BUS_MMIO, run->mmio.phys_addr, run->mmio.data, len);
	if (r == -ENOENT && v->vm->exit_on_unhandled_io) {
		exit->reason = VMM_EXIT_IO;
		exit->u.io.addr = run->mmio.phys_addr;
		exit->u.io.size = len;
		exit->u.io.is_write = run->mmio.is_write;
		exit->u.io.is_mmio = 1;
		exit->u.io.value = run->mmio.is_write ? io_value(run->mmio.data, len) : 0;
		return 1;
	}
	return 0;
}

/* Reads up to 15 instruction bytes at CS:RIP through the guest's page tables. */
static size_t fetch_insn(vmm_vcpu *v, uint64_t rip, uint8_t *buf)
{
	size_t got = 0;
	while (got < 15) {
		uint64_t gpa;
		if (vmm_vcpu_translate(v, rip + got, &gpa))
			break;
		size_t chunk = VMM_PAGE_SIZE - (size_t)(gpa & (VMM_PAGE_SIZE - 1));
		if (chunk > 15 - got)
			chunk = 15 - got;
		if (vmm_mem_read(v->vm->mem, gpa, buf + got, chunk))
			break;
		got += chunk;
	}
	return got;
}

static int handle_internal_error(vmm_vcpu *v, vmm_exit *exit)
{
	struct kvm_run *run = v->run;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	int r = vmm_kvm_get_regs(v->fd, &regs);
	if (r >= 0)
		r = vmm_kvm_get_sregs(v->fd, &sregs);
	if (r < 0)
		return vmm_err(r, "reading registers after an internal error failed");
	uint64_t rip = regs.rip + sregs.cs.base;
	uint8_t insn[16] = { 0 };
	size_t len = 0;
	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) &&
	    run->emulation_failure.insn_size > 0 && run->emulation_failure.insn_size <= 15) {
		len = run->emulation_failure.insn_size;
		memcpy(insn, run->emulation_failure.insn_bytes, len);
	} else {
		len = fetch_insn(v, rip, insn);
	}
	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION && len > 0) {
		r = vmm_fixup_emulation(v, insn, len, rip);
		if (r != 0)
			return r < 0 ? r : 0; /* completed: re-enter */
	}
	exit->reason = VMM_EXIT_INTERNAL_ERROR;
	exit->u.internal.rip = rip;
	exit->u.internal.suberror = run->internal.suberror;
	exit->u.internal.insn_len = (uint32_t)len;
	memcpy(exit->u.internal.insn, insn, sizeof exit->u.internal.insn);

	vmm_err(-EIO, "vCPU %u: %s at rip %#llx (cpl %u), bytes:", v->id,
		run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? "emulation failure"
									: "KVM internal error",
		(unsigned long long)rip, sregs.cs.dpl);
	for (size_t i = 0; i < len; i++)
		vmm_err_append(" %02x", insn[i]);
	if (len == 0)
		vmm_err_append(" (unreadable)");
	vmm_err_append("; suberror %u; rax=%#llx rbx=%#llx rcx=%#llx rdx=%#llx rsi=%#llx rdi=%#llx "
		       "rsp=%#llx rbp=%#llx rflags=%#llx cr0=%#llx cr3=%#llx cr4=%#llx efer=%#llx",
		       run->internal.suberror, (unsigned long long)regs.rax, (unsigned long long)regs.rbx,
		       (unsigned long long)regs.rcx, (unsigned long long)regs.rdx,
		       (unsigned long long)regs.rsi, (unsigned long long)regs.rdi,
		       (unsigned long long)regs.rsp, (unsigned long long)regs.rbp,
		       (unsigned long long)regs.rflags, (unsigned long long)sregs.cr0,
		       (unsigned long long)sregs.cr3, (unsigned long long)sregs.cr4,
		       (unsigned long long)sregs.efer);
	return -EIO;
}

/* Returns 1 to go to the caller, 0 to re-enter, negative errno on error. */
static int handle_exit(vmm_vcpu *v, vmm_exit *exit)
{
	struct kvm_run *run = v->run;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		return handle_io(v, exit);
	case KVM_EXIT_MMIO:
		return handle_mmio(v, exit);
	case KVM_EXIT_HLT:
		exit->reason = VMM_EXIT_HLT;
		return 1;
	case KVM_EXIT_SHUTDOWN:
		exit->reason = VMM_EXIT_SHUTDOWN;
		return 1;
	case KVM_EXIT_SYSTEM_EVENT:
		exit->reason = VMM_EXIT_SYSTEM_EVENT;
		exit->u.system.type = run->system_event.type;
		return 1;
	case KVM_EXIT_IOAPIC_EOI:
		vmm_irq_eoi(v->vm->irq, run->eoi.vector);
		return 0;
	case KVM_EXIT_DIRTY_RING_FULL:
		return vmm_vm_harvest_ring(v);
	case KVM_EXIT_INTR:
		return 0; /* a signal; the kick check happens in the loop */
	case KVM_EXIT_INTERNAL_ERROR: {
		int r = handle_internal_error(v, exit);
		return r == -EIO ? -EIO : r;
	}
	case KVM_EXIT_FAIL_ENTRY:
		return vmm_err(-EIO, "vCPU %u: VM entry failed, hardware reason %#llx", v->id,
			       (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
	default:
		return vmm_err(-EIO, "vCPU %u: unexpected KVM exit reason %u", v->id, run->exit_reason);
	}
}

static bool consume_kick(vmm_vcpu *v)
{
	if (!atomic_exchange(&v->kick_pending, false))
		return false;
	/* A kick arriving after this point sets immediate_exit again and stays pending. */
	__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	return true;
}

static void set_runner(vmm_vcpu *v, bool on)
{
	pthread_mutex_lock(&v->runner_lock);
	v->runner = pthread_self();
	v->has_runner = on;
	pthread_mutex_unlock(&v->runner_lock);
}

int vmm_vcpu_run(vmm_vcpu *v, vmm_exit *exit)
{
	if (!v || !exit)
		return vmm_err(-EINVAL, "vmm_vcpu_run: NULL argument");
	if (atomic_exchange(&v->in_run, true))
		return vmm_err(-EBUSY, "vmm_vcpu_run: vCPU %u is already running on another thread", v->id);
	set_runner(v, true);
	memset(exit, 0, sizeof *exit);
	int r;
	for (;;) {
		/* A device asked the whole VM to stop (guest poweroff or reboot). */
		uint32_t event = atomic_load(&v->vm->stop_event);
		if (event) {
			consume_kick(v);
			exit->reason = VMM_EXIT_SYSTEM_EVENT;
			exit->u.system.type = event;
			r = 0;
			break;
		}
		if (consume_kick(v)) {
			exit->reason = VMM_EXIT_KICK;
			r = 0;
			break;
		}
		r = vmm_kvm_run(v->fd);
		if (r == -EINTR || r == -EAGAIN) {
			/* immediate_exit or a signal: a kick, or someone else's signal. */
			if (!atomic_load(&v->kick_pending))
				__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
			continue;
		}
		if (r < 0) {
			r = vmm_err(r, "KVM_RUN on vCPU %u failed", v->id);
			break;
		}
		r = handle_exit(v, exit);
		if (r != 0) {
			if (r > 0)
				r = 0;
			break;
		}
	}
	set_runner(v, false);
	atomic_store(&v->in_run, false);
	return r;
}

void vmm_vcpu_kick(vmm_vcpu *v)
{
	if (!v)
		return;
	atomic_store(&v->kick_pending, true);
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&v->runner_lock);
	if (v->has_runner)
		pthread_kill(v->runner, v->vm->kick_signal);
	pthread_mutex_unlock(&v->runner_lock);
}

static void *vcpu_thread(void *arg)
{
	vmm_vcpu *v = arg;
	int result = 0;
	/* Created with every signal blocked so the application's signals keep going to its
	 * own threads; only the kick signal may interrupt this one. */
	sigset_t kick;
	sigemptyset(&kick);
	sigaddset(&kick, v->vm->kick_signal);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	while (!atomic_load(&v->stop)) {
		vmm_exit exit;
		int r = vmm_vcpu_run(v, &exit);
		if (atomic_load(&v->stop))
			break;
		bool have_exit = r == 0 || exit.reason == VMM_EXIT_INTERNAL_ERROR;
		result = v->thread_fn(v->thread_ctx, v, have_exit ? &exit : NULL, r);
		if (result)
			break;
	}
	v->thread_result = result;
	return NULL;
}

int vmm_vcpu_start(vmm_vcpu *v, vmm_vcpu_exit_fn fn, void *ctx)
{
	if (!v || !fn)
		return vmm_err(-EINVAL, "vmm_vcpu_start: NULL argument");
	if (v->thread_state == VCPU_THREAD_RUNNING)
		return vmm_err(-EBUSY, "vmm_vcpu_start: vCPU %u already has a thread", v->id);
	v->thread_fn = fn;
	v->thread_ctx = ctx;
	v->thread_result = 0;
	atomic_store(&v->stop, false);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&v->thread, NULL, vcpu_thread, v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return vmm_err(-r, "vmm_vcpu_start: pthread_create failed");
	v->thread_state = VCPU_THREAD_RUNNING;
	return 0;
}

int vmm_vcpu_join(vmm_vcpu *v, int *result)
{
	if (!v || v->thread_state != VCPU_THREAD_RUNNING)
		return vmm_err(-EINVAL, "vmm_vcpu_join: vCPU has no running library thread");
	pthread_join(v->thread, NULL);
	v->thread_state = VCPU_THREAD_JOINED;
	if (result)
		*result = v->thread_result;
	return 0;
}
