/* The part of a save (to files) and a take (into memory) that reads the VM: one path,
 * so a snapshot in memory holds exactly what a state file would. */
#include <stdio.h>
#include <stdlib.h>

#include "snapshot_internal.h"

int snap_take_state(vmm_vm *vm, uint32_t mem_source, vmm_virtio_mmio *const *devs, size_t nr_devs,
		    struct snap_claim *c, uint8_t **state, size_t *state_len, struct snap_desc **out)
{
	*state = NULL;
	*state_len = 0;
	*out = NULL;
	if (nr_devs && !devs)
		return vmm_err(-EINVAL, "snapshot: nr_devices is %zu but devices is NULL", nr_devs);
	struct snap_desc *d = NULL;
	/* Hold every vCPU out of vmm_vcpu_run; finish what their last exits left half
	 * done; then read the state. */
	int r = snap_claim_vcpus(vm, c);
	if (r)
		return r;
	if ((r = snap_complete_io(c, false)))
		goto fail;
	if ((r = snap_capture(vm, c, mem_source, &d)))
		goto fail;
	if ((r = snap_capture_devices(d, devs, nr_devs)))
		goto fail;
	if ((r = snap_encode(d, state, state_len)))
		goto fail;
	/* Whatever we keep, we can read back: the one validator checks our own output,
	 * and what it returns is what the snapshot holds. */
	snap_desc_free(d);
	d = NULL;
	if ((r = snap_parse(*state, *state_len, &d))) {
		char why[512];
		snprintf(why, sizeof why, "%s", vmm_last_error());
		r = vmm_err(r, "snapshot: internal error, the state does not validate: %s", why);
		goto fail;
	}
	*out = d;
	return 0;
fail:
	snap_release_vcpus(c);
	snap_desc_free(d);
	free(*state);
	*state = NULL;
	*state_len = 0;
	return r;
}
