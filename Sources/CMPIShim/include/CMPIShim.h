#ifndef CMPISHIM_H
#define CMPISHIM_H
// The only code in swift-dpo that touches MPI. Swift never sees an MPI type: requests
// are opaque pointers, datatypes are `dpo_mpi_dtype` values, and every call returns an
// MPI error code (0 = success) that `dpo_mpi_error_string` turns into text, because the
// world communicator is set to MPI_ERRORS_RETURN at init.
//
// Counts are element counts (size_t); calls split them into pieces that fit MPI's `int`.
// No stable Swift API: the Distributed target wraps these once.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Element types of reductions.
typedef enum {
    DPO_MPI_F32 = 0,   ///< float, MPI_FLOAT + MPI_SUM
    DPO_MPI_F16 = 1,   ///< IEEE binary16 as 2 contiguous bytes + a commutative user sum op
    DPO_MPI_F64 = 2,   ///< double, MPI_DOUBLE + MPI_SUM
    DPO_MPI_I64_MAX = 3  ///< int64_t, MPI_INT64_T + MPI_MAX
} dpo_mpi_dtype;

/// An outstanding non-blocking reduction (wraps MPI_Request).
typedef struct dpo_mpi_request dpo_mpi_request;

// MARK: - World

/// MPI_Init_thread(FUNNELED) (only the thread that initialised calls MPI), sets
/// MPI_ERRORS_RETURN on MPI_COMM_WORLD, creates the half datatype and sum op.
/// `provided` receives the thread level granted. Safe to call once.
int dpo_mpi_init(int *provided);
/// 1 after dpo_mpi_init succeeded and before finalize.
int dpo_mpi_is_initialized(void);
int dpo_mpi_finalize(void);
int dpo_mpi_rank(int *rank);
int dpo_mpi_size(int *size);
/// Rank and count of the ranks that share this node's memory (MPI_Comm_split_type SHARED), and
/// `leader`: the world rank of the node's first rank (node rank 0), the same on all of them.
int dpo_mpi_node_rank_size(int *node_rank, int *node_size, int *leader);
/// Processor name (host) into `buffer` (NUL-terminated, truncated to `length`).
int dpo_mpi_processor_name(char *buffer, int length);
/// Message for an MPI error code, NUL-terminated, truncated to `length`.
void dpo_mpi_error_string(int code, char *buffer, int length);
/// MPI_Abort on MPI_COMM_WORLD. Does not return.
void dpo_mpi_abort(int code);

// MARK: - Collectives (blocking)

int dpo_mpi_barrier(void);
int dpo_mpi_broadcast(void *buffer, size_t bytes, int root);
/// Every rank sends `bytes`; `receive` holds size * bytes, rank r's at r * bytes.
int dpo_mpi_allgather(const void *send, size_t bytes, void *receive);
/// Every rank sends its own `bytes`; `counts[r]` is rank r's byte count (all ranks pass
/// the same counts), `receive` holds their sum, rank r's bytes after those of ranks < r.
int dpo_mpi_allgatherv(const void *send, size_t bytes, void *receive, const size_t *counts);
/// In-place sum (or max for DPO_MPI_I64_MAX) over all ranks.
int dpo_mpi_allreduce(void *buffer, size_t count, dpo_mpi_dtype dtype);

// MARK: - Non-blocking all-reduce

/// Starts an in-place reduction of `count` elements (count <= INT32_MAX).
/// On success `*request` is a new request to pass to wait or test (which free it on completion).
int dpo_mpi_iallreduce(void *buffer, size_t count, dpo_mpi_dtype dtype, dpo_mpi_request **request);
/// Waits for the request and frees it.
int dpo_mpi_wait(dpo_mpi_request *request);
/// Sets *done to 1 (and frees the request) when the reduction has completed, else 0.
/// Also drives Open MPI's progress engine, which advances non-blocking collectives only
/// inside MPI calls.
int dpo_mpi_test(dpo_mpi_request *request, int *done);

// MARK: - Sharded collectives (ZeRO-1)

/// Element-wise sum of `send` over all ranks (sum of counts[] elements, `dtype` DPO_MPI_F32 or
/// DPO_MPI_F16), scattered: rank r receives elements [counts[0] + ... + counts[r-1], + counts[r])
/// of the sum into `receive` (counts[r] elements). Every rank passes the same counts; a count
/// may be 0. `send` and `receive` must not overlap. (MPI_Reduce_scatter)
int dpo_mpi_reduce_scatter(const void *send, void *receive, const size_t *counts, dpo_mpi_dtype dtype);
/// Non-blocking dpo_mpi_reduce_scatter (MPI_Ireduce_scatter); both buffers stay in use until
/// the request completes (wait/test as for dpo_mpi_iallreduce).
int dpo_mpi_ireduce_scatter(const void *send, void *receive, const size_t *counts, dpo_mpi_dtype dtype,
                            dpo_mpi_request **request);
/// In-place all-gather of elements (`dtype` DPO_MPI_F32 or DPO_MPI_F16): rank r's counts[r]
/// elements already sit at offset counts[0] + ... + counts[r-1] of `buffer`; afterwards every
/// rank holds every rank's elements there. (MPI_Allgatherv with MPI_IN_PLACE)
int dpo_mpi_allgatherv_inplace(void *buffer, const size_t *counts, dpo_mpi_dtype dtype);

// MARK: - Half-precision helpers (no MPI; used around fp16 reductions and by tests)

/// inout[i] = half(float(in[i]) + float(inout[i])): the user op of the fp16 sum.
/// Correctly rounded (float has enough bits for a sum of two halves). NaN and inf propagate.
void dpo_f16_sum_into(const uint16_t *in, uint16_t *inout, size_t count);
/// dst[i] = half(src[i] * scale), round to nearest even.
void dpo_f32_to_f16_scaled(const float *src, uint16_t *dst, size_t count, float scale);
/// dst[i] = float(src[i]); returns 1 if any value is inf or NaN, else 0.
int dpo_f16_to_f32_checked(const uint16_t *src, float *dst, size_t count);
/// buffer[i] *= scale; returns 1 if any result is inf or NaN, else 0.
int dpo_f32_scale_checked(float *buffer, size_t count, float scale);
/// dst[i] += float(src[i]) (ZeRO-2 adding a later micro-batch's mean); returns 1 if any
/// input or sum is inf or NaN, else 0.
int dpo_f16_add_to_f32_checked(const uint16_t *src, float *dst, size_t count);
/// dst[i] += src[i]; returns 1 if any sum is inf or NaN, else 0.
int dpo_f32_add_checked(const float *src, float *dst, size_t count);
/// 1 when F16C/AVX-512 paths are in use.
int dpo_mpi_half_uses_f16c(void);
/// Tests: 1 = use the portable loops from now on, 0 = choose by CPU again.
void dpo_mpi_half_force_portable(int portable);

// MARK: - Processors (no MPI)

/// Processors in this process's affinity mask; 0 when unknown.
int dpo_affinity_core_count(void);

// MARK: - Stop signals (no MPI)

/// Installs handlers for SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 that record the signal
/// (a second SIGINT/SIGTERM restores the default action and re-raises it) and ignores SIGPIPE.
/// 0 on success.
int dpo_stop_signals_install(void);
/// Restores the default action of those signals.
void dpo_stop_signals_uninstall(void);
/// The last stop signal received, 0 if none.
int dpo_stop_signal_received(void);
void dpo_stop_signal_reset(void);
/// While nonzero, a stop signal ends the process at once (its default action) instead of being recorded.
void dpo_stop_signals_set_immediate(int immediate);
/// The line written to stderr when a stop signal ends the process at once: "stopped by <SIGNAL>"
/// followed by `note` (copied, at most 511 bytes) and a newline. NULL: no line.
void dpo_stop_signals_set_immediate_note(const char *note);

#ifdef __cplusplus
}
#endif
#endif
