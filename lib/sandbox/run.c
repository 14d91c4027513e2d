/* Running the sandbox's guest: the exit loop, host calls, deadlines. */
#include <stdio.h>
#include <string.h>

#include "sandbox_internal.h"

int sbx_map_page(vmm_sandbox *sb)
{
	void *p;
	int r = vmm_mem_translate(vmm_vm_mem(sb->vm), VMM_GUEST_CALL_PAGE, VMM_PAGE_SIZE, true, &p);
	if (r)
		return vmm_err(r, "sandbox: call page not in guest memory");
	sb->page = p;
	return 0;
}

static const char *vector_name(uint32_t v)
{
	static const char *const names[32] = {
		"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
		"#BR bound range", "#UD invalid opcode", "#NM device not available",
		"#DF double fault", "coprocessor segment overrun", "#TS invalid TSS",
		"#NP segment not present", "#SS stack fault", "#GP general protection",
		"#PF page fault", "reserved", "#MF x87 error", "#AC alignment check",
		"#MC machine check", "#XM SIMD error", "#VE virtualization", "#CP control protection",
	};
	return v < 32 && names[v] ? names[v] : "exception";
}

static int guest_fault(const vmm_exit *e)
{
	if (e->u.fault.vector == 14)
		return vmm_err(-EFAULT, "sandbox: guest fault: vector 14 (%s) at rip %#llx, error code %#llx, "
				"address %#llx", vector_name(14), (unsigned long long)e->u.fault.rip,
			       (unsigned long long)e->u.fault.error_code, (unsigned long long)e->u.fault.cr2);
	if (e->u.fault.has_error_code)
		return vmm_err(-EFAULT, "sandbox: guest fault: vector %u (%s) at rip %#llx, error code %#llx",
			       e->u.fault.vector, vector_name(e->u.fault.vector),
			       (unsigned long long)e->u.fault.rip, (unsigned long long)e->u.fault.error_code);
	return vmm_err(-EFAULT, "sandbox: guest fault: vector %u (%s) at rip %#llx", e->u.fault.vector,
		       vector_name(e->u.fault.vector), (unsigned long long)e->u.fault.rip);
}

static const struct sbx_host_func *find_func(const vmm_sandbox *sb, uint32_t id, const char *name)
{
	for (size_t i = 0; i < sb->nr_funcs; i++) {
		const struct sbx_host_func *f = &sb->funcs[i];
		if (name ? (f->name[0] && !strcmp(f->name, name)) : f->id == id)
			return f;
	}
	return NULL;
}

/* The guest's vmm_guest_write: hand the bytes to the output callback. */
static int builtin_write(vmm_sandbox *sb, const uint64_t *args, uint32_t nargs)
{
	if (nargs < 2)
		return vmm_err(-EPROTO, "sandbox: guest output call with %u arguments", nargs);
	if (!sb->output || args[1] == 0)
		return 0;
	void *p;
	int r = vmm_sandbox_ptr(sb, args[0], (size_t)args[1], false, &p);
	if (r)
		return vmm_err(r, "sandbox: guest output buffer [%#llx, +%llu) is outside its memory",
			       (unsigned long long)args[0], (unsigned long long)args[1]);
	sb->output(sb->output_ctx, p, (size_t)args[1]);
	return 0;
}

static int host_call(vmm_sandbox *sb)
{
	volatile struct vmm_guest_call_page *pg = sb->page;
	/* Read everything the guest controls once, then validate the copies. */
	uint32_t id = pg->host_call.id, nargs = pg->host_call.nargs;
	uint64_t name_addr = pg->host_call.name;
	uint64_t args[VMM_GUEST_MAX_ARGS];
	for (unsigned i = 0; i < VMM_GUEST_MAX_ARGS; i++)
		args[i] = pg->host_call.args[i];
	if (nargs > VMM_GUEST_MAX_ARGS)
		return vmm_err(-EPROTO, "sandbox: guest host call with %u arguments (at most %u)", nargs,
			       VMM_GUEST_MAX_ARGS);
	sb->stats.host_calls++;
	uint64_t ret = 0;
	if (id == VMM_GUEST_HC_WRITE) {
		int r = builtin_write(sb, args, nargs);
		if (r)
			return r;
		pg->host_call.ret = 0;
		return 0;
	}
	char name[VMM_GUEST_MAX_NAME];
	const struct sbx_host_func *f;
	if (id == VMM_GUEST_HC_BY_NAME) {
		int r = sbx_read_string(sb, name_addr, name, sizeof name);
		if (r)
			return vmm_err(-EPROTO, "sandbox: guest host call by name: bad name pointer %#llx",
				       (unsigned long long)name_addr);
		f = find_func(sb, 0, name);
		if (!f)
			return vmm_err(-ENOSYS, "sandbox: guest called host function \"%s\", which is not "
					"registered", name);
	} else {
		f = find_func(sb, id, NULL);
		if (!f)
			return vmm_err(-ENOSYS, "sandbox: guest called host function %u, which is not registered",
				       id);
	}
	int r = f->fn(f->ctx, sb, args, nargs, &ret);
	if (r) {
		if (r > 0)
			r = -EPROTO;
		/* Keep the callback's own detail (e.g. an accessor's range error). */
		char why[256];
		snprintf(why, sizeof why, "%s", vmm_last_error() ? vmm_last_error() : "");
		return vmm_err(r, "sandbox: host function %u%s%s%s failed: %s%s%s", f->id, f->name[0] ? " (" : "",
			       f->name, f->name[0] ? ")" : "", vmm_strerror(r), why[0] ? "; " : "", why);
	}
	pg->host_call.ret = ret;
	return 0;
}

static int guest_abort(vmm_sandbox *sb)
{
	uint64_t addr = sb->page->abort_msg;
	char msg[VMM_GUEST_MAX_ABORT];
	if (!addr)
		return vmm_err(-ECANCELED, "sandbox: the guest aborted");
	if (addr < VMM_GUEST_LOAD_ADDR || addr >= sb->mem_size)
		return vmm_err(-ECANCELED, "sandbox: the guest aborted (message pointer %#llx is invalid)",
			       (unsigned long long)addr);
	uint64_t avail = sb->mem_size - addr;
	size_t n = avail < sizeof msg - 1 ? (size_t)avail : sizeof msg - 1;
	if (vmm_mem_read(vmm_vm_mem(sb->vm), addr, msg, n))
		n = 0;
	msg[n] = 0;
	/* Show only printable bytes of a message the guest controls. */
	for (size_t i = 0; msg[i]; i++)
		if ((unsigned char)msg[i] < 0x20 || (unsigned char)msg[i] > 0x7e)
			msg[i] = '?';
	return vmm_err(-ECANCELED, "sandbox: the guest aborted: %s", msg);
}

/* One exit: 1 = the guest is done, 0 = re-enter, negative = error. */
static int handle_exit(vmm_sandbox *sb, const vmm_exit *e, uint64_t deadline_at)
{
	switch (e->reason) {
	case VMM_EXIT_GUEST:
		switch (e->u.guest.code) {
		case VMM_GUEST_EXIT_DONE:
			return 1;
		case VMM_GUEST_EXIT_HOST_CALL:
			return host_call(sb);
		case VMM_GUEST_EXIT_ABORT:
			return guest_abort(sb);
		default:
			return vmm_err(-EPROTO, "sandbox: the guest wrote unknown code %#llx to the exit port",
				       (unsigned long long)e->u.guest.code);
		}
	case VMM_EXIT_FAULT:
		return guest_fault(e);
	case VMM_EXIT_KICK:
		/* The watchdog kicks late calls; a kick meant for an earlier call is stale. */
		if (deadline_at && sbx_now_ns() >= deadline_at)
			return vmm_err(-ETIMEDOUT, "sandbox: the call ran past its deadline");
		return 0;
	case VMM_EXIT_SHUTDOWN:
		return vmm_err(-EFAULT, "sandbox: guest triple fault (shutdown)");
	case VMM_EXIT_HLT:
		return vmm_err(-EPROTO, "sandbox: the guest halted");
	case VMM_EXIT_IO:
		/* Unbacked addresses are not mapped, so this is rare: a port, or MMIO through
		 * page tables the guest (at CPL 0) rewrote. */
		return vmm_err(e->u.io.is_mmio ? -EFAULT : -EPROTO, "sandbox: the guest accessed %s %#llx, "
			       "which nothing handles", e->u.io.is_mmio ? "address" : "port",
			       (unsigned long long)e->u.io.addr);
	default:
		return vmm_err(-EPROTO, "sandbox: unexpected exit %d", (int)e->reason);
	}
}

int sbx_run(vmm_sandbox *sb, uint64_t deadline_ns)
{
	uint64_t at = 0;
	int r;
	if (deadline_ns) {
		at = sbx_now_ns() + deadline_ns;
		if (at < deadline_ns)
			at = UINT64_MAX;
		if ((r = sbx_watchdog_arm(&sb->wd, at)))
			return r;
	}
	for (;;) {
		vmm_exit e;
		sbx_state_arm(sb);
		r = vmm_vcpu_run(sb->vcpu, &e);
		if (r)
			break; /* run's message: an emulation failure, a KVM error */
		r = handle_exit(sb, &e, at);
		if (r) {
			if (r > 0)
				r = 0;
			break;
		}
	}
	if (deadline_ns)
		sbx_watchdog_disarm(&sb->wd);
	return r;
}
