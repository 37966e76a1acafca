/* trainer_loop.h: the training loop over the engine (trainer.h): epochs of
 * shuffled pairs, optimizer steps of grad_accum micro-batches, the
 * learning-rate schedule, evaluation every N steps and at the end,
 * checkpoints every N steps and when asked to stop, and resuming at a saved
 * position. What a program does with each step (log and record the
 * metrics, print progress, write a checkpoint) it does in hooks, so the
 * loop knows nothing of files, stores or terminals.
 *
 * Order: epoch e visits the pairs in a Fisher-Yates shuffle seeded by
 * (seed, e); an optimizer step takes up to batch_size * grad_accum pairs
 * from the current epoch (the last step of an epoch may take fewer), in
 * micro-batches of batch_size, each scaled by 1 / (micro-batches of the
 * step). The position (step, epoch, pos) is all a checkpoint needs besides
 * the weights and AdamW's moments to continue exactly. */
#ifndef DPO_TRAIN_TRAINER_LOOP_H
#define DPO_TRAIN_TRAINER_LOOP_H
#include <stddef.h>
#include "train/loss.h"
#include "train/optim.h"
#include "train/trainer.h"

/* The settings of a run. */
typedef struct train_loop_cfg {
	long batch_size;     /* pairs per micro-batch (>= 1) */
	long grad_accum;     /* micro-batches per optimizer step (>= 1) */
	long total_steps;    /* optimizer steps of the run (train_loop_total_steps) */
	long seed;           /* the shuffling seed */
	train_sched sched;   /* learning rate of each step */
	train_adamw adamw;
	double max_grad_norm; /* <= 0: no clipping */
	long eval_every;     /* evaluate after every N steps (0: at the end only) */
	long save_every;     /* the save hook after every N steps (0: never; always
			      * when stopping) */
} train_loop_cfg;

/* One optimizer step: the means over its micro-batches. */
typedef struct train_loop_stats {
	train_loss_batch m;  /* loss, rewards, log-probs (its pointers NULL) */
	double grad_norm;    /* before clipping */
	double lr;           /* the learning rate the step used */
	double tokens;       /* tokens and FLOPs since train_loop_run began */
	double flops;
	double seconds;      /* time since train_loop_run began */
} train_loop_stats;

typedef struct train_loop train_loop;

/* What the program does; every hook may be NULL. ud is passed back. */
typedef struct train_loop_hooks {
	void *ud;
	/* after each optimizer step (L->step is its 1-based number) */
	void (*step)(void *ud, const train_loop *L, const train_loop_stats *s);
	/* after an evaluation on the eval pairs */
	void (*eval)(void *ud, const train_loop *L, const train_loss_batch *m);
	/* write a checkpoint of L's position (and the engine's state); return 0,
	 * or -1 with a message in *err (the loop frees it) */
	int (*save)(void *ud, const train_loop *L, char **err);
	/* nonzero: save and stop after the current step (Ctrl-C) */
	int (*stop)(void *ud);
} train_loop_hooks;

/* Data parallelism (trainer_mpi.h): every process runs the same loop over
 * the same pairs; of each micro-batch of k pairs, process `rank` of `size`
 * takes pairs [k*rank/size, k*(rank+1)/size) (the engine's loss function
 * makes the loss the whole micro-batch's), begin is told before each
 * micro-batch whether it is the step's last, and before each optimizer step
 * sync sums the gradients (and counts[0..nc): the step's tokens and FLOPs)
 * over the processes, so that every one takes the same step. evaluate
 * replaces train_evaluate (same contract). */
typedef struct train_loop_dist {
	int rank, size;
	void *ud;
	/* before each micro-batch mb[0..k) (this process takes mb[lo..hi));
	 * last: the step's last (its backward may start summing the gradients) */
	void (*begin)(void *ud, int last, const train_pair *const *mb, int k, int lo, int hi);
	int (*sync)(void *ud, train_engine *e, double *counts, int nc);
	int (*evaluate)(void *ud, train_engine *e, const train_loss_cfg *loss, const train_pair *pairs,
			size_t n, long batch_size, train_loss_batch *out);
	/* when set: replaces train_engine_step (same contract; a sharded
	 * optimizer) */
	int (*step)(void *ud, train_engine *e, const train_adamw *opt, double lr, double max_grad_norm,
		    double *grad_norm);
	/* when set: called on every process before a checkpoint is saved (the
	 * optimizer state of every shard to the process that writes) */
	void (*gather)(void *ud, train_engine *e);
} train_loop_dist;

struct train_loop {
	/* set by the caller before train_loop_run */
	train_loop_cfg cfg;
	train_engine *e;
	const train_loss_cfg *loss;
	const train_pair *pairs;  /* the training pairs, with their reference log-probs */
	size_t n;
	const train_pair *evals;  /* the eval pairs (may be none) */
	size_t neval;
	train_loop_hooks hooks;
	const train_loop_dist *dist; /* NULL: one process */
	/* the position: zero for a new run, a checkpoint's to resume */
	long step;                /* optimizer steps done */
	long epoch;               /* the current epoch (0-based) */
	long pos;                 /* pairs of the current epoch done */
	/* the message of the last failure */
	char err[1024];
};

/* train_loop_run's results. */
enum {
	TRAIN_LOOP_DONE = 0,       /* every step taken, the final evaluation done */
	TRAIN_LOOP_STOPPED = 1,    /* the stop hook asked; the save hook was called */
	TRAIN_LOOP_EFAIL = -1,     /* an error (a micro-batch, an evaluation, the save
				    * hook): L->err says which, with the step */
	TRAIN_LOOP_EDIVERGED = -2, /* a non-finite loss or gradient norm: L->err says
				    * which; the weights are those of the last good step */
};

/* Optimizer steps of a run: steps when > 0, else epochs passes over n pairs
 * at batch_size * grad_accum pairs per step (the last of an epoch may have
 * fewer). */
long train_loop_total_steps(size_t n, long batch_size, long grad_accum, long epochs, long steps);

/* Run from L's position to cfg.total_steps, calling the hooks; then evaluate
 * once more (when there are eval pairs). Returns one of the results above. */
int train_loop_run(train_loop *L);

/* The fractional epoch of L's position (epoch + pos / n), for logs. */
double train_loop_epoch(const train_loop *L);

/* Loss, rewards and log-probs of the policy on pairs[0..n) (forward only,
 * batches of batch_size) against their reference log-probs, into *out (its
 * pointers NULL). Returns 0; 1 when the loss cannot be computed for these
 * pairs (out untouched); or a negative TRAIN_E* code (message in
 * train_engine_errmsg). */
int train_evaluate(train_engine *e, const train_loss_cfg *loss, const train_pair *pairs, size_t n,
		   long batch_size, train_loss_batch *out);

#endif
