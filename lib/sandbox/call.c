/* Calls into a sandbox: buffers in, run, buffers out; resets between calls. */
#include <string.h>

#include "sandbox_internal.h"

#define SBX_BUF_ALIGN 64u /* each buffer starts on its own cache line */

static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

/* Memory only when the vCPU is known to be as in the snapshot (state.c), else all. */
int sbx_reset(vmm_sandbox *sb)
{
	vmm_snapshot_reset_stats st = VMM_SNAPSHOT_RESET_STATS_INIT;
	vmm_snapshot_reset_opts ro = VMM_SNAPSHOT_RESET_OPTS_INIT;
	bool mem_only = sb->clean && !sb->must_reset;
	if (mem_only)
		ro.flags = VMM_SNAPSHOT_RESET_MEMORY_ONLY;
	int r = vmm_snapshot_reset_with(sb->snap, sb->vm, &ro, &st);
	if (r) {
		sb->must_reset = true;
		sb->clean = false;
		return r;
	}
	/* After a full reset the vCPU is the snapshot's; after a memory-only one it stays
	 * what it was, which was the snapshot's. */
	sb->clean = sb->can_mem_only;
	sb->stats.resets++;
	sb->stats.pages_reset += st.pages_copied;
	sb->dirty = false;
	sb->must_reset = false;
	return 0;
}

int vmm_sandbox_reset(vmm_sandbox *sb)
{
	if (!sb)
		return vmm_err(-EINVAL, "vmm_sandbox_reset: NULL sandbox");
	if (atomic_exchange(&sb->busy, true))
		return vmm_err(-EBUSY, "vmm_sandbox_reset: a call is in progress");
	int r = sbx_reset(sb);
	atomic_store(&sb->busy, false);
	return r;
}

/* Where a call's buffers go in the I/O area: offsets and sizes, all validated. */
struct call_layout {
	uint64_t in_off[VMM_GUEST_MAX_BUFS], out_off[VMM_GUEST_MAX_BUFS];
};

static int check_call(const vmm_sandbox *sb, const vmm_sandbox_call_opts *c, struct call_layout *l)
{
	if (c->flags & ~(uint32_t)VMM_SANDBOX_CALL_KEEP_STATE)
		return vmm_err(-EINVAL, "vmm_sandbox_call: unknown flags %#x", c->flags);
	if (c->nr_in > VMM_SANDBOX_MAX_BUFS || c->nr_out > VMM_SANDBOX_MAX_BUFS)
		return vmm_err(-EINVAL, "vmm_sandbox_call: more than %u input or output buffers",
			       VMM_SANDBOX_MAX_BUFS);
	if ((c->nr_in && !c->in) || (c->nr_out && !c->out))
		return vmm_err(-EINVAL, "vmm_sandbox_call: buffer count without buffers");
	uint64_t off = 0;
	for (size_t i = 0; i < c->nr_in + c->nr_out; i++) {
		bool in = i < c->nr_in;
		uint64_t len = in ? c->in[i].len : c->out[i - c->nr_in].cap;
		const void *data = in ? c->in[i].data : c->out[i - c->nr_in].data;
		if (len && !data)
			return vmm_err(-EINVAL, "vmm_sandbox_call: %s buffer %zu has no data pointer",
				       in ? "input" : "output", in ? i : i - c->nr_in);
		if (len > sb->io_size || off + len > sb->io_size)
			return vmm_err(-E2BIG, "vmm_sandbox_call: the buffers need more than the I/O area's "
					"%llu bytes (io_size)", (unsigned long long)sb->io_size);
		if (in)
			l->in_off[i] = off;
		else
			l->out_off[i - c->nr_in] = off;
		off = round_up(off + len, SBX_BUF_ALIGN);
	}
	return 0;
}

static const struct sbx_export *find_export(const vmm_sandbox *sb, const char *name)
{
	for (size_t i = 0; i < sb->nr_exports; i++)
		if (!strcmp(sb->exports[i].name, name))
			return &sb->exports[i];
	return NULL;
}

/* Writes the call into the call page and the input buffers into the I/O area. */
static int prepare(vmm_sandbox *sb, uint64_t fn, const uint64_t *args, size_t nargs,
		   const vmm_sandbox_call_opts *c, const struct call_layout *l)
{
	int r = sbx_map_page(sb);
	if (r)
		return r;
	volatile struct vmm_guest_call_page *pg = sb->page;
	pg->fn = fn;
	for (size_t i = 0; i < VMM_GUEST_MAX_ARGS; i++)
		pg->args[i] = i < nargs ? args[i] : 0;
	pg->nr_in = (uint32_t)c->nr_in;
	pg->nr_out = (uint32_t)c->nr_out;
	vmm_mem *mem = vmm_vm_mem(sb->vm);
	for (size_t i = 0; i < c->nr_in; i++) {
		pg->in[i].addr = sb->io_base + l->in_off[i];
		pg->in[i].len = c->in[i].len;
		if (c->in[i].len && (r = vmm_mem_write(mem, sb->io_base + l->in_off[i], c->in[i].data, c->in[i].len)))
			return vmm_err(r, "sandbox: cannot copy input buffer %zu", i);
	}
	for (size_t i = 0; i < c->nr_out; i++) {
		pg->out[i].addr = sb->io_base + l->out_off[i];
		pg->out[i].len = c->out[i].cap;
		pg->out_len[i] = 0;
	}
	return 0;
}

/* Copies the results out; every length the guest reported is checked first. */
static int finish(vmm_sandbox *sb, vmm_sandbox_call_opts *c, const struct call_layout *l, uint64_t *ret)
{
	volatile struct vmm_guest_call_page *pg = sb->page;
	uint64_t len[VMM_GUEST_MAX_BUFS];
	for (size_t i = 0; i < c->nr_out; i++) {
		len[i] = pg->out_len[i];
		if (len[i] > c->out[i].cap)
			return vmm_err(-EPROTO, "sandbox: the guest reported %llu bytes in output buffer %zu "
					"of %zu", (unsigned long long)len[i], i, c->out[i].cap);
	}
	for (size_t i = 0; i < c->nr_out; i++) {
		int r = len[i] ? vmm_mem_read(vmm_vm_mem(sb->vm), sb->io_base + l->out_off[i], c->out[i].data,
					      (size_t)len[i]) : 0;
		if (r)
			return vmm_err(r, "sandbox: cannot copy output buffer %zu", i);
	}
	for (size_t i = 0; i < c->nr_out; i++)
		c->out[i].len = (size_t)len[i];
	if (ret)
		*ret = pg->ret;
	return 0;
}

int vmm_sandbox_call(vmm_sandbox *sb, const char *fn, const uint64_t *args, size_t nargs,
		     const vmm_sandbox_call_opts *opts, uint64_t *ret)
{
	if (!sb || !fn || (nargs && !args))
		return vmm_err(-EINVAL, "vmm_sandbox_call: NULL argument");
	if (nargs > VMM_SANDBOX_MAX_ARGS)
		return vmm_err(-EINVAL, "vmm_sandbox_call: %zu arguments (at most %u)", nargs, VMM_SANDBOX_MAX_ARGS);
	vmm_sandbox_call_opts c = VMM_SANDBOX_CALL_OPTS_INIT;
	if (opts && vmm_opts_copy(&c, sizeof c, opts))
		return vmm_err(-EINVAL, "vmm_sandbox_call: opts->size is too small");
	struct call_layout l;
	int r = check_call(sb, &c, &l);
	if (r)
		return r;
	const struct sbx_export *e = find_export(sb, fn);
	if (!e)
		return vmm_err(-ENOENT, "vmm_sandbox_call: the guest exports no function \"%s\"", fn);
	if (atomic_exchange(&sb->busy, true))
		return vmm_err(-EBUSY, "vmm_sandbox_call: a call on this sandbox is in progress");

	bool keep = (sb->flags & VMM_SANDBOX_NO_RESET) || (c.flags & VMM_SANDBOX_CALL_KEEP_STATE);
	if (sb->must_reset || (sb->dirty && !keep))
		r = sbx_reset(sb);
	if (!r) {
		sb->dirty = true;
		r = prepare(sb, e->fn, args, nargs, &c, &l);
	}
	if (!r) {
		uint64_t limit = c.deadline_ns == UINT64_MAX ? 0 : c.deadline_ns ? c.deadline_ns : sb->deadline_ns;
		sb->stats.calls++;
		sb->clean = false;
		r = sbx_run(sb, limit);
		if (!r)
			r = finish(sb, &c, &l, ret);
		if (r) {
			sb->stats.errors++;
			sb->must_reset = true;
		} else {
			sb->clean = sbx_state_clean(sb);
		}
	}
	atomic_store(&sb->busy, false);
	return r;
}

