/* Error strings and the per-thread detail message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../internal.h"

static _Thread_local char last_error[1024];

int vmm_err(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	va_end(ap);
	return err;
}

void vmm_err_append(const char *fmt, ...)
{
	size_t used = strnlen(last_error, sizeof last_error);
	if (used + 1 >= sizeof last_error)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error + used, sizeof last_error - used, fmt, ap);
	va_end(ap);
}

void vmm_err_clear(void)
{
	last_error[0] = '\0';
}

const char *vmm_last_error(void)
{
	return last_error;
}

const char *vmm_strerror(int err)
{
	/* Negated as unsigned: -INT_MIN would overflow. */
	unsigned code = err < 0 ? 0u - (unsigned)err : (unsigned)err;
	switch (code) {
	case 0: return "success";
	case ENODEV: return "no such device (is /dev/kvm present?)";
	case EACCES: return "permission denied";
	case ENOTSUP: return "not supported by this host";
	case EINVAL: return "invalid argument";
	case ENOMEM: return "out of memory";
	case EFAULT: return "address outside guest memory";
	case EROFS: return "read-only guest memory";
	case EEXIST: return "already exists or overlaps";
	case ENOENT: return "not found";
	case ENOSPC: return "no space left in table";
	case EBUSY: return "busy";
	case EIO: return "guest or host I/O error";
	case ENOEXEC: return "not an executable for this machine";
	case EFBIG: return "file too large";
	case EINTR: return "interrupted";
	case EAGAIN: return "try again (interrupt not delivered)";
	case EPERM: return "operation not permitted";
	case E2BIG: return "argument list too long";
	default: return "unknown error";
	}
}

int vmm_opts_copy(void *dst, size_t dst_size, const void *src)
{
	uint32_t size;
	memcpy(&size, src, sizeof size);
	if (size < sizeof size)
		return -EINVAL;
	memcpy(dst, src, size < dst_size ? size : dst_size);
	/* The stored size is ours from now on. */
	memcpy(dst, &(uint32_t){ (uint32_t)dst_size }, sizeof size);
	return 0;
}

const char *vmm_version(void)
{
	return "0.1.0";
}
