/* libvmm: the event loop devices do their I/O on.
 *
 * A vmm_loop is an epoll set plus callbacks. Virtio devices register their doorbells
 * (ioeventfds) and back-end fds on a loop, so guest I/O never needs a vCPU thread. The
 * application either runs the loop on a thread of its own (vmm_loop_run) or integrates
 * it into its own event loop: vmm_loop_fd is readable whenever vmm_loop_run_once(loop, 0)
 * has work.
 *
 * Threading: one thread runs the loop at a time; callbacks run on it. vmm_loop_add,
 * vmm_loop_modify and vmm_loop_remove may be called from callbacks or while the loop is
 * not running; vmm_loop_stop and vmm_loop_call from any thread. (add/modify/remove are
 * also safe from another thread while the loop runs, as devices do from vCPU threads,
 * but a callback of that fd already running on the loop thread may then still be
 * finishing when vmm_loop_remove returns.)
 */
#ifndef LIBVMM_LOOP_H
#define LIBVMM_LOOP_H

#include <libvmm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmm_loop vmm_loop;

/* Event bits (both the interest set and what a callback receives). */
#define VMM_LOOP_IN (1u << 0)
#define VMM_LOOP_OUT (1u << 1)
#define VMM_LOOP_ERR (1u << 2) /* error or hang-up; always reported */

/* Called on the loop thread when `fd` is ready; `events` is VMM_LOOP_* bits. */
typedef void (*vmm_loop_fn)(void *ctx, int fd, uint32_t events);

/* Returns 0, -ENOMEM, or the errno of epoll_create1/eventfd. */
VMM_API int vmm_loop_create(vmm_loop **out);
/* Frees the loop (it must not be running). Registered fds are not closed. NULL: no-op. */
VMM_API void vmm_loop_destroy(vmm_loop *loop);

/* Watches `fd` (level-triggered) for `events`. The fd stays the caller's. Returns 0,
 * -EEXIST (already watched), -EINVAL, -ENOMEM, or the errno of epoll_ctl. */
VMM_API int vmm_loop_add(vmm_loop *loop, int fd, uint32_t events, vmm_loop_fn fn, void *ctx);
/* Changes the interest set of a watched fd. Returns 0, -ENOENT, or an epoll errno. */
VMM_API int vmm_loop_modify(vmm_loop *loop, int fd, uint32_t events);
/* Stops watching `fd`; its callback is not called again, even for events already
 * fetched in the current iteration. Returns 0 or -ENOENT. */
VMM_API int vmm_loop_remove(vmm_loop *loop, int fd);

/* Waits up to timeout_ms (-1 = forever, 0 = poll) and dispatches ready callbacks once.
 * Returns the number of callbacks run, or a negative errno. */
VMM_API int vmm_loop_run_once(vmm_loop *loop, int timeout_ms);
/* Dispatches until vmm_loop_stop. Returns 0, or a negative errno on failure. */
VMM_API int vmm_loop_run(vmm_loop *loop);
/* Makes vmm_loop_run return after the current iteration. Any thread. */
VMM_API void vmm_loop_stop(vmm_loop *loop);

/* Runs fn(ctx, -1, 0) on the loop thread at its next iteration (a way for other threads
 * to hand work to the loop). Any thread. Returns 0 or -ENOMEM. */
VMM_API int vmm_loop_call(vmm_loop *loop, vmm_loop_fn fn, void *ctx);

/* The epoll fd, for integration into another loop (poll it for readability, then call
 * vmm_loop_run_once(loop, 0)). Borrowed. */
VMM_API int vmm_loop_fd(const vmm_loop *loop);

#ifdef __cplusplus
}
#endif
#endif
