/* trainer_mpi.h: data-parallel training over MPI (Open MPI) for dpo-train.
 *
 * Every process (rank) of `mpirun -np N dpo-train ...` runs the same loop
 * (trainer_loop.h) over the same pairs in the same order. Rank 0 alone reads
 * the inputs (model, tokenizer, store or JSONL, checkpoint) and broadcasts
 * the model's config and weights and the tokenized pairs, so other hosts
 * need no copy of the data or the model (only the program). Of each
 * micro-batch every rank takes a contiguous slice (uneven splits allowed),
 * the summed log-probs of the slices are gathered so that every rank
 * computes the loss of the whole micro-batch exactly as one process would,
 * and the gradients are summed over the ranks in buckets (a layer's part of
 * a tensor) posted while backward still runs. Full fine-tuning shards the
 * optimizer (ZeRO stage 1): each bucket has an owner rank, its sum goes to
 * the owner alone (MPI Ireduce), the owner takes AdamW's step on it (and
 * alone keeps its moments) and broadcasts the updated weights, so each
 * rank does 1/N of the optimizer's work; every parameter gets the same
 * arithmetic as in one process. The gradient norm for clipping is summed
 * from each owner's part. A LoRA adapter (small) is summed with MPI
 * Iallreduce and every rank takes the same step. The reference pass and
 * the evaluations are split the same way as the batches. Rank 0 alone
 * writes checkpoints (gathering the moments from their owners first),
 * logs, metrics and the store.
 *
 * MPI is started only when the program was launched by mpirun (Open MPI's
 * OMPI_COMM_WORLD_SIZE, or PMI's PMI_SIZE / PMIX_RANK, in the environment):
 * a plain `dpo-train` never touches MPI. Built without MPI (configure
 * --without-mpi or no Open MPI found), every function here is the
 * one-process case (rank 0 of 1) and a launch by mpirun with more than one
 * rank is refused. */
#ifndef DPO_TRAIN_TRAINER_MPI_H
#define DPO_TRAIN_TRAINER_MPI_H
#include <stddef.h>
#include <stdint.h>
#include "train/lora.h"
#include "train/model.h"
#include "train/trainer.h"
#include "train/trainer_loop.h"

/* Start MPI when launched by mpirun (see above); set each rank's threads to
 * the cores of its host divided by the ranks there when OMP_NUM_THREADS is
 * not set (--threads overrides). Returns this process's rank (0 when not
 * launched by mpirun). Exits 1 when launched with several ranks by a
 * program built without MPI. */
int train_mpi_init(int *argc, char ***argv);

/* This process's rank and the number of ranks (0 and 1 without MPI). */
int train_mpi_rank(void);
int train_mpi_size(void);

/* End MPI (every rank, after the last collective call); nothing without
 * MPI. */
void train_mpi_finalize(void);

/* Nonzero when this process was started by mpirun (MPI initialised, even
 * with one rank). */
int train_mpi_started(void);

/* Check that text (the run's settings) is the same on every rank as on
 * rank 0; exits 1 naming this rank when not (another config file on its
 * host, say). */
void train_mpi_check_same(const char *text);

/* Nonzero when flag is nonzero on any rank (a collective call). */
int train_mpi_any(int flag);

/* Broadcast len bytes at buf from rank 0 to every rank. */
void train_mpi_bcast(void *buf, size_t len);

/* Rank 0's model on every rank: rank 0 passes its model (returned as is),
 * the others NULL and get a new one (caller frees) with rank 0's config,
 * weights held in its precision (a bf16 model's bf16 weights are sent as
 * they are: no rank widens them), stored dtype and fingerprint. Exits 1
 * when the config does not parse on a rank. */
train_model *train_mpi_share_model(train_model *m);

/* Rank 0's LoRA adapter (--lora-r) on every rank, and the adapter the
 * ranks train (train_mpi_attach): rank 0 passes its adapter (returned as
 * is), the others NULL and get a new one (caller frees) with rank 0's
 * settings and weights, dropout seeded by seed (as rank 0's). Call it on
 * every rank of a LoRA run, also with one rank. Exits 1 when the adapter
 * does not fit the model on a rank. */
train_lora *train_mpi_share_lora(train_lora *lo, const train_config *c, uint64_t seed);

/* Rank 0's pairs (tokens, store ids, reference log-probs) on every rank:
 * the others get a new array in *pairs (caller frees each pair with
 * train_pair_free, then the array) and its size in *n. */
void train_mpi_share_pairs(train_pair **pairs, size_t *n);

/* Rank 0's optimizer state (AdamW's t and moments, of the model or of the
 * adapter) and loop position on every rank (after rank 0 resumed a
 * checkpoint). */
void train_mpi_share_state(train_engine *e, const train_model *m, train_loop *L);

/* Rank 0's reference log-probs of pairs[0..n) on every rank. */
void train_mpi_share_refs(train_pair *pairs, size_t n);

/* The reference pass split over the ranks: of the pairs marked in need[0..n)
 * (the same on every rank), set mine[i] for those this rank computes
 * (contiguous blocks of the marked pairs). */
void train_mpi_ref_split(const char *need, size_t n, char *mine);

/* After each rank computed the reference log-probs of its pairs (mine, with
 * scored tokens cnt[2i], cnt[2i+1]), every rank gets every pair's: the
 * pairs not in need keep rank 0's values (its cache hits), and cnt is
 * filled for all the pairs in need. */
void train_mpi_ref_gather(train_pair *pairs, size_t n, const char *need, const char *mine,
			  long *cnt);

/* Make engine e (over model m) and loop L data-parallel over the ranks
 * (nothing with one rank): the engine's loss over the whole micro-batch,
 * the loop's gradient sum, sharded optimizer step (full fine-tuning),
 * checkpoint gathering and split evaluation. */
void train_mpi_attach(train_engine *e, train_model *m, train_loop *L);

/* Seconds spent so far in the gradient sums over the ranks (from posting
 * them to their end) and, sharded, in broadcasting the updated weights. */
double train_mpi_allreduce_seconds(void);

#endif
