#!/bin/sh
# cli_train_mpi.sh: data-parallel dpo-train under mpirun (issue #17): with 2
# and 3 ranks (3 ranks split batches of 4 and of 1 pair unevenly) the
# per-step losses, metrics, evaluations and final weights equal a
# one-process run's up to rounding; the reference pass is split over the
# ranks and cached by rank 0 in the store (one run row, metrics once);
# ranks that re-execute themselves at start (train_runtime_tune) run alike;
# a run resumes with another rank count; a rank that dies ends the job
# (no hang) and leaves the last checkpoint good to resume from; usage
# errors, --help and --version are printed once.
. "$top_srcdir/tests/tap.sh"
. "$top_srcdir/tests/mpi_lib.sh"
have_shared || skip_all "no ../shared fixtures"
cmp="$top_builddir/tests/test_trainer_cmp"
fx="$DPO_SHARED/fixtures/tiny-llama"
"$cmp" pairs "$fx/oracle.json" >"$T/p.jsonl"
# 5 pairs: steps of 4 and 1 pairs; two losses (sft's token-weighted mean is
# a whole-batch statistic), a schedule, eval pairs, clipping
run="--from-jsonl $T/p.jsonl --eval-jsonl $T/p.jsonl --model $fx/policy --ref-model $fx/reference
 --loss sigmoid,sft --beta 0.1 --lr 1e-3 --max-grad-norm 1 --schedule linear --warmup-steps 2
 --weight-decay 0.1 --no-append-eos --batch-size 4 --steps 6 --eval-every 2 --seed 3 --threads 1 --quiet"
# Adam divides by the root of the gradient's second moment: a reordered sum
# moves a weight by a small part of one step (lr 1e-3)
wtol=1e-4

ok "one process" dpo-train $run --log-json "$T/a.log" --out "$T/a"
for np in 2 3; do
	ok "mpirun -np $np" mpi $np $run --log-json "$T/n$np.log" --out "$T/n$np"
	ok "-np $np: the losses and metrics of every step and evaluation" $cmpr log "$T/a.log" "$T/n$np.log"
	ok "-np $np: the final weights" $cmpr weights "$T/a/model.safetensors" "$T/n$np/model.safetensors" $wtol
	ok "-np $np: dpo_run.json written" test -s "$T/n$np/dpo_run.json"
done
# each rank re-executes itself at start when OMP_WAIT_POLICY is not set
# (train_runtime_tune), before MPI starts: the job runs as before
reexec() { (unset OMP_WAIT_POLICY DPO_NO_REEXEC; mpi "$@"); }
ok "-np 2, ranks re-executing themselves" reexec 2 $run --log-json "$T/x2.log" --out "$T/x2"
ok "-np 2, re-executed: the same steps" $cmpr log "$T/a.log" "$T/x2.log"

# grad-accum: micro-batches of 2 split over 3 ranks (one has none)
ga="$run --batch-size 2 --grad-accum 2"
ok "grad-accum, one process" dpo-train $ga --log-json "$T/g1.log" --out "$T/g1"
ok "grad-accum, -np 3" mpi 3 $ga --log-json "$T/g3.log" --out "$T/g3"
ok "grad-accum, -np 3: same steps" $cmpr log "$T/g1.log" "$T/g3.log"
ok "grad-accum, -np 3: same weights" $cmpr weights "$T/g1/model.safetensors" "$T/g3/model.safetensors" $wtol

# resume with another rank count: checkpoint-2 of a 2-rank run, finished by
# 3 ranks and by one process, equals the uninterrupted one-process run
ok "-np 2 with checkpoints" mpi 2 $run --save-every 2 --log-json "$T/c.log" --out "$T/c"
ok "checkpoint-4 kept" test -s "$T/c/checkpoint-4/optimizer.bin"
cp "$T/c.log" "$T/r3.log"
ok "resumed by 3 ranks" mpi 3 $run --resume "$T/c/checkpoint-4" --log-json "$T/r3.log" --out "$T/r3"
ok "resumed by 3 ranks: steps as one process" $cmpr log "$T/a.log" "$T/r3.log"
ok "resumed by 3 ranks: weights as one process" $cmpr weights "$T/a/model.safetensors" "$T/r3/model.safetensors" $wtol
ok "resumed by one process" dpo-train $run --resume "$T/c/checkpoint-4" --out "$T/r1"
ok "resumed by one process: weights" $cmpr weights "$T/a/model.safetensors" "$T/r1/model.safetensors" $wtol

# the store: 2 ranks split the reference pass; rank 0 caches the log-probs
# and records the run and its metrics once
if command -v dpo-db >/dev/null 2>&1; then
	db="$T/d.db"
	dpo-db --db "$db" import -q "$T/p.jsonl" >/dev/null 2>&1
	st="--from-db --db $db --model $fx/policy --ref-model $fx/reference --no-append-eos --steps 3
 --batch-size 3 --lr 1e-3 --seed 4 --threads 1"
	ok "from the store, -np 2" mpi 2 $st --log-json "$T/s2.log" --out "$T/s2"
	ok "one process, from the cache" dpo-train $st --log-json "$T/s1.log" --out "$T/s1"
	like "rank 0 cached every pair's reference log-probs" "$(cat "$T/.err")" "5 from the cache, 0 computed"
	ok "same steps" $cmpr log "$T/s1.log" "$T/s2.log"
	if command -v sqlite3 >/dev/null 2>&1; then
		is "two train runs recorded, both ok" \
			"$(sqlite3 "$db" "select count(*) || ' ' || min(status) from runs where kind='train'")" "2 ok"
		is "the 2-rank run's losses recorded once per step" \
			"$(sqlite3 "$db" "select count(*) from metrics where name = 'loss' and run_id = (select min(id) from runs where kind='train')")" 3
	fi
fi

# a rank with settings of its own (a config file on its host) is refused
printf '[dpo-train]\nbeta = 0.3\n' >"$T/other.conf"
cat >"$T/rank1conf.sh" <<EOF
#!/bin/sh
[ "\$OMPI_COMM_WORLD_RANK" = 1 ] && DPO_CONFIG="$T/other.conf" && export DPO_CONFIG
exec "$(command -v dpo-train)" "\$@"
EOF
chmod +x "$T/rank1conf.sh"
timeout 120 mpirun --oversubscribe -np 2 "$T/rank1conf.sh" --from-jsonl "$T/p.jsonl" --model "$fx/policy" \
	--no-append-eos --batch-size 2 --steps 2 --quiet --out "$T/o" >"$T/o.out" 2>&1
rc=$?
ok "other options on rank 1: the job fails (exit $rc)" test "$rc" != 0 -a "$rc" != 124
like "and says why" "$(cat "$T/o.out")" "rank 1: the run's options differ from rank 0's"

# a rank that dies: the job ends (exit non-zero, well before the timeout)
# and the last checkpoint is whole: a run resumes from it
long="--from-jsonl $T/p.jsonl --model $fx/policy --ref-model $fx/reference --no-append-eos
 --batch-size 2 --steps 200 --save-every 2 --lr 1e-4 --seed 9 --threads 1 --quiet"
timeout 120 mpirun --oversubscribe -np 2 "$(command -v dpo-train)" $long --out "$T/k" >"$T/k.out" 2>&1 &
job=$!
i=0
while [ $i -lt 600 ] && ! ls "$T/k" 2>/dev/null | grep -q '^checkpoint-'; do
	sleep 0.1
	i=$((i + 1))
done
sleep 0.1
# timeout's child is mpirun, whose children are the ranks: kill the last
mp=$(ps -o pid= --ppid "$job" 2>/dev/null | tr -d ' ' | head -n 1)
victim=$(ps -o pid=,comm= --ppid "${mp:-1}" 2>/dev/null | awk '$2 == "dpo-train" { p = $1 } END { print p }')
[ -n "$victim" ] && kill -9 "$victim"
wait $job
rc=$?
ok "a rank was killed" test -n "$victim"
ok "the job failed (exit $rc), no hang (timeout: 124)" test "$rc" != 0 -a "$rc" != 124
last=$(ls -d "$T"/k/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -n 1)
ok "a checkpoint is left" test -n "$last"
ok "the job had not finished" test ! -e "$T/k/model.safetensors"
ok "the last checkpoint resumes (-np 3)" mpi 3 $long --resume "$last" --out "$T/k2"
ok "and the run finishes" test -s "$T/k2/model.safetensors"

# ---- what the command line says is said once, by rank 0 (each rank
# printing its own copy interleaved them on the terminal)
mpi 3 --no-such-option >/dev/null 2>&1
is "a usage error under mpirun: exit 2" "$?" 2
is "... printed once" "$(grep -c 'unknown option --no-such-option' "$T/mpi.err")" 1
is "... with its hint once" "$(grep -c "Try 'dpo-train --help'" "$T/mpi.err")" 1
mpi 3 --beta-sweep 0.1,0.2 --from-jsonl "$T/p.jsonl" --model "$fx/policy" --out "$T/bs" >/dev/null 2>&1
is "a usage error found after parsing (--beta-sweep under mpirun): exit 2" "$?" 2
is "... printed once" "$(grep -c 'not under mpirun' "$T/mpi.err")" 1
ok "--version under mpirun" mpi 3 --version
is "... one line" "$(cat "$T/.out")" "$(dpo-train --version)"
ok "--help under mpirun" mpi 2 --help
is "... once" "$(grep -c '^Usage: dpo-train' "$T/.out")" 1

done_testing
