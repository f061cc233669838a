// MPI calls behind plain C types: world set-up, blocking and non-blocking collectives.
#include "CMPIShim.h"
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

struct dpo_mpi_request {
    MPI_Request request;
    /// Count/displacement arrays a v-collective reads until it completes (NULL for others).
    int *arrays;
};

static void free_request(dpo_mpi_request *request) {
    free(request->arrays);
    free(request);
}

static int initialized = 0;
static MPI_Datatype half_type = MPI_DATATYPE_NULL;
static MPI_Op half_sum = MPI_OP_NULL;

/// Largest count passed to one MPI call (MPI counts are `int`).
static const size_t max_piece = (size_t)1 << 30;

// MARK: - fp16 sum op

static void half_sum_function(void *in, void *inout, int *length, MPI_Datatype *datatype) {
    (void)datatype;
    dpo_f16_sum_into((const uint16_t *)in, (uint16_t *)inout, (size_t)*length);
}

// MARK: - World

int dpo_mpi_init(int *provided) {
    if (initialized) { *provided = MPI_THREAD_FUNNELED; return MPI_SUCCESS; }
    int already = 0;
    MPI_Initialized(&already);
    // Open MPI's non-blocking all-reduce (libnbc) picks a binomial reduce + broadcast for
    // in-place buffers, about half the bandwidth of the blocking MPI_Allreduce; the
    // Rabenseifner algorithm (reduce-scatter + all-gather) is bandwidth-optimal. A value
    // set by the user (environment or mpirun --mca) wins.
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 0);
    int rc = MPI_SUCCESS;
    if (!already) rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, provided);
    else MPI_Query_thread(provided);
    if (rc != MPI_SUCCESS) return rc;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if ((rc = MPI_Type_contiguous(2, MPI_BYTE, &half_type)) != MPI_SUCCESS) return rc;
    if ((rc = MPI_Type_commit(&half_type)) != MPI_SUCCESS) return rc;
    if ((rc = MPI_Op_create(half_sum_function, 1, &half_sum)) != MPI_SUCCESS) return rc;
    initialized = 1;
    return MPI_SUCCESS;
}

int dpo_mpi_is_initialized(void) { return initialized; }

int dpo_mpi_finalize(void) {
    if (!initialized) return MPI_SUCCESS;
    MPI_Op_free(&half_sum);
    MPI_Type_free(&half_type);
    initialized = 0;
    return MPI_Finalize();
}

int dpo_mpi_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
int dpo_mpi_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }

int dpo_mpi_node_rank_size(int *node_rank, int *node_size, int *leader) {
    MPI_Comm node;
    int rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    if (rc != MPI_SUCCESS) return rc;
    MPI_Comm_rank(node, node_rank);
    MPI_Comm_size(node, node_size);
    /* The node's first rank says who it is in the world: ranks of different machines never
       confuse their nodes, whatever host names the machines report. */
    MPI_Comm_rank(MPI_COMM_WORLD, leader);
    int bcast = MPI_Bcast(leader, 1, MPI_INT, 0, node);
    int freed = MPI_Comm_free(&node);
    return bcast != MPI_SUCCESS ? bcast : freed;
}

int dpo_mpi_processor_name(char *buffer, int length) {
    char name[MPI_MAX_PROCESSOR_NAME + 1];
    int n = 0;
    int rc = MPI_Get_processor_name(name, &n);
    if (rc != MPI_SUCCESS) return rc;
    name[n] = 0;
    if (length > 0) {
        strncpy(buffer, name, (size_t)length - 1);
        buffer[length - 1] = 0;
    }
    return MPI_SUCCESS;
}

void dpo_mpi_error_string(int code, char *buffer, int length) {
    char text[MPI_MAX_ERROR_STRING + 1];
    int n = 0;
    if (MPI_Error_string(code, text, &n) != MPI_SUCCESS) n = 0;
    text[n] = 0;
    if (length > 0) {
        strncpy(buffer, n ? text : "unknown MPI error", (size_t)length - 1);
        buffer[length - 1] = 0;
    }
}

void dpo_mpi_abort(int code) {
    MPI_Abort(MPI_COMM_WORLD, code);
    abort();  // MPI_Abort should not return; never continue if it does
}

// MARK: - Blocking collectives

int dpo_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

int dpo_mpi_broadcast(void *buffer, size_t bytes, int root) {
    char *p = (char *)buffer;
    for (size_t done = 0; done < bytes; done += max_piece) {
        size_t n = bytes - done < max_piece ? bytes - done : max_piece;
        int rc = MPI_Bcast(p + done, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
}

int dpo_mpi_allgather(const void *send, size_t bytes, void *receive) {
    if (bytes > INT_MAX) return MPI_ERR_COUNT;
    return MPI_Allgather(send, (int)bytes, MPI_BYTE, receive, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
}

int dpo_mpi_allgatherv(const void *send, size_t bytes, void *receive, const size_t *counts) {
    int size = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int *ints = malloc(sizeof(int) * (size_t)size * 2);
    if (!ints) return MPI_ERR_NO_MEM;
    int *displacements = ints + size;
    size_t total = 0;
    for (int r = 0; r < size; r++) {
        if (counts[r] > INT_MAX || total > INT_MAX) { free(ints); return MPI_ERR_COUNT; }
        ints[r] = (int)counts[r];
        displacements[r] = (int)total;
        total += counts[r];
    }
    if (total > INT_MAX || bytes > INT_MAX) { free(ints); return MPI_ERR_COUNT; }
    int rc = MPI_Allgatherv(send, (int)bytes, MPI_BYTE, receive, ints, displacements, MPI_BYTE, MPI_COMM_WORLD);
    free(ints);
    return rc;
}

static void type_and_op(dpo_mpi_dtype dtype, MPI_Datatype *type, MPI_Op *op, size_t *width) {
    switch (dtype) {
    case DPO_MPI_F16: *type = half_type; *op = half_sum; *width = 2; break;
    case DPO_MPI_F64: *type = MPI_DOUBLE; *op = MPI_SUM; *width = 8; break;
    case DPO_MPI_I64_MAX: *type = MPI_INT64_T; *op = MPI_MAX; *width = 8; break;
    case DPO_MPI_F32:
    default: *type = MPI_FLOAT; *op = MPI_SUM; *width = 4; break;
    }
}

int dpo_mpi_allreduce(void *buffer, size_t count, dpo_mpi_dtype dtype) {
    MPI_Datatype type; MPI_Op op; size_t width;
    type_and_op(dtype, &type, &op, &width);
    char *p = (char *)buffer;
    for (size_t done = 0; done < count; done += max_piece) {
        size_t n = count - done < max_piece ? count - done : max_piece;
        int rc = MPI_Allreduce(MPI_IN_PLACE, p + done * width, (int)n, type, op, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_SUCCESS;
}

// MARK: - Non-blocking all-reduce

int dpo_mpi_iallreduce(void *buffer, size_t count, dpo_mpi_dtype dtype, dpo_mpi_request **request) {
    *request = NULL;
    if (count > INT_MAX) return MPI_ERR_COUNT;
    MPI_Datatype type; MPI_Op op; size_t width;
    type_and_op(dtype, &type, &op, &width);
    dpo_mpi_request *r = malloc(sizeof(dpo_mpi_request));
    if (!r) return MPI_ERR_NO_MEM;
    r->arrays = NULL;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buffer, (int)count, type, op, MPI_COMM_WORLD, &r->request);
    if (rc != MPI_SUCCESS) { free(r); return rc; }
    *request = r;
    return MPI_SUCCESS;
}

int dpo_mpi_wait(dpo_mpi_request *request) {
    int rc = MPI_Wait(&request->request, MPI_STATUS_IGNORE);
    free_request(request);
    return rc;
}

int dpo_mpi_test(dpo_mpi_request *request, int *done) {
    *done = 0;
    int rc = MPI_Test(&request->request, done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) { *done = 1; free_request(request); return rc; }
    if (*done) free_request(request);
    return MPI_SUCCESS;
}

// MARK: - Sharded collectives (ZeRO-1)

/// counts (size_t) -> int counts and displacements for the v-collectives; NULL when a count or
/// the total does not fit MPI's int. The caller frees the returned block (counts, then displacements).
static int *int_counts(const size_t *counts, int size) {
    int *ints = malloc(sizeof(int) * (size_t)size * 2);
    if (!ints) return NULL;
    size_t total = 0;
    for (int r = 0; r < size; r++) {
        if (counts[r] > INT_MAX || total > INT_MAX) { free(ints); return NULL; }
        ints[r] = (int)counts[r];
        ints[size + r] = (int)total;
        total += counts[r];
    }
    if (total > INT_MAX) { free(ints); return NULL; }
    return ints;
}

int dpo_mpi_reduce_scatter(const void *send, void *receive, const size_t *counts, dpo_mpi_dtype dtype) {
    int size = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Datatype type; MPI_Op op; size_t width;
    type_and_op(dtype, &type, &op, &width);
    int *ints = int_counts(counts, size);
    if (!ints) return MPI_ERR_COUNT;
    int rc = MPI_Reduce_scatter(send, receive, ints, type, op, MPI_COMM_WORLD);
    free(ints);
    return rc;
}

int dpo_mpi_ireduce_scatter(const void *send, void *receive, const size_t *counts, dpo_mpi_dtype dtype,
                            dpo_mpi_request **request) {
    *request = NULL;
    int size = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Datatype type; MPI_Op op; size_t width;
    type_and_op(dtype, &type, &op, &width);
    // A non-blocking collective may read its count arrays until it completes (MPI-3.1 5.12),
    // so they live in the request and are freed with it.
    dpo_mpi_request *r = malloc(sizeof(dpo_mpi_request));
    if (!r) return MPI_ERR_NO_MEM;
    int *ints = int_counts(counts, size);
    if (!ints) { free(r); return MPI_ERR_COUNT; }
    int rc = MPI_Ireduce_scatter(send, receive, ints, type, op, MPI_COMM_WORLD, &r->request);
    if (rc != MPI_SUCCESS) { free(ints); free(r); return rc; }
    r->arrays = ints;
    *request = r;
    return MPI_SUCCESS;
}

int dpo_mpi_allgatherv_inplace(void *buffer, const size_t *counts, dpo_mpi_dtype dtype) {
    int size = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Datatype type; MPI_Op op; size_t width;
    type_and_op(dtype, &type, &op, &width);
    int *ints = int_counts(counts, size);
    if (!ints) return MPI_ERR_COUNT;
    int rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer, ints, ints + size, type, MPI_COMM_WORLD);
    free(ints);
    return rc;
}
