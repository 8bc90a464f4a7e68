#!/bin/bash
# Every CLI verb on real stores, logging exit status, stdout and stderr (timings filtered out), so
# two checkouts can be diffed: issue 14 moved the commands' logic into lplabel.api and their text
# into lplabel.store.text, and the output must stay byte-identical.
#   benchmarks/cli_output_compare.sh ROOT OUT TEACHER.pt     # ROOT: a checkout (PYTHONPATH)
# TEACHER.pt: a TorchScript digits teacher (lplabel.teachers.save_teacher); PY: the interpreter.
set -u
ROOT=$(cd "$1" && pwd); OUT=$(realpath "$2"); T=$(realpath "$3"); PY=${PY:-python}
G=$(cd "$(dirname "$0")/../tests/golden/v1" && pwd)
W=$(mktemp -d /tmp/h14cmpXXXX); cd $W
export PYTHONPATH=$ROOT OMP_NUM_THREADS=1
: > $OUT
run() { echo "### $*" >> $OUT; "$PY" -m lplabel "$@" > o.txt 2> e.txt; echo "rc=$?" >> $OUT; cat o.txt >> $OUT; echo "--stderr--" >> $OUT; grep -v "^  warnings.warn\|Warning:\|views/s\|busy machine\|slow loop\|; total \|shards in " e.txt >> $OUT; }
run relabel digits -o full.lpl --teacher "$T" --epochs 2 -b 50 --no-progress --ipc 10
cp $G/dense-fp16-cutmix.lpl a.lpl; cp $G/topk4-fp16-lse.lpl k.lpl; cp $G/packed-topk3-fp16-cooc-rans.lpl r.lpl; cp $G/topk4-fp16-derived-views.lpl d.lpl
run info a.lpl
run info a.lpl k.lpl r.lpl d.lpl
run info --json a.lpl
run info --json a.lpl k.lpl
run info nope.lpl
run verify a.lpl
run verify -q a.lpl
run verify --json a.lpl
run verify r.lpl
run verify --json r.lpl
"$PY" -c "
b=bytearray(open('a.lpl','rb').read()); b[-3000]^=0xff; open('bad.lpl','wb').write(b)"
run verify bad.lpl
run verify --json bad.lpl
run show a.lpl
run show k.lpl --epoch 1 --step 2 --all -T 2 --mode renorm
run show --json d.lpl
run show a.lpl --step 1
run encode a.lpl -o e.lpl
run encode k.lpl -o e2.lpl --layout rans
run quantize a.lpl -o q.lpl --topk 3 --values int8 --tail logsumexp
run quantize a.lpl -o q2.lpl --topk 2 --values none
run prune a.lpl -o p.lpl --keep 1/2
run compare a.lpl q.lpl
run compare --json a.lpl q.lpl
run compare a.lpl q2.lpl --mode tail
run compare a.lpl q2.lpl
run compare a.lpl k.lpl
run quantize full.lpl -o fq.lpl --topk 3
run compare full.lpl fq.lpl
run export full.lpl -o lpld --to lpld --no-progress
run export full.lpl -o lpld --to lpld --no-progress
run export --json full.lpl -o lpld2 --to lpld --no-progress
run import lpld -o imp.lpl --no-progress
run import --json lpld -o imp2.lpl --no-progress --topk 3
run import lpld -o imp3.lpl --no-progress --values fp32 --zstd-level 5
run encode lpld -o enc-legacy.lpl
run compare full.lpl imp.lpl
run info enc-legacy.lpl
run relabel digits -o m.lpl --teacher "$T" --epochs 2 -b 50 --world-size 2 --rank 0 --no-merge --no-progress --ipc 10
run relabel digits -o m.lpl --teacher "$T" --epochs 2 -b 50 --world-size 2 --rank 1 --no-merge --no-progress --ipc 10
run merge m.lpl.partial -o m.lpl
ls -d m.lpl.partial >> $OUT 2>&1
run merge m.lpl.partial -o m2.lpl --remove-sources --no-progress
ls -d m.lpl.partial >> $OUT 2>&1
run merge m.lpl.partial -o m3.lpl
sed -i "s#$W#WORK#g" $OUT
rm -rf $W
