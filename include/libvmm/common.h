/* libvmm: definitions shared by every public header. */
#ifndef LIBVMM_COMMON_H
#define LIBVMM_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define VMM_API __attribute__((visibility("default")))
#else
#define VMM_API
#endif

#define LIBVMM_VERSION_MAJOR 0
#define LIBVMM_VERSION_MINOR 1
#define LIBVMM_VERSION_PATCH 0

/* Opaque handles. Each is described in its own header. */
typedef struct vmm_vm vmm_vm;
typedef struct vmm_mem vmm_mem;
typedef struct vmm_vcpu vmm_vcpu;
typedef struct vmm_bus vmm_bus;
typedef struct vmm_irq vmm_irq;
typedef struct vmm_cpuid vmm_cpuid;

/* Every options struct starts with `uint32_t size`, set by its _INIT macro to
 * sizeof(the struct). The library reads only the fields that fit in `size`, so a program
 * built against an older, smaller struct keeps working when fields are appended. */

#endif
